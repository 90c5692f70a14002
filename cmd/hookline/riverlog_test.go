package main

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"
)

// logRecorder is a slog handler that keeps the level and message of every
// record at or above its level.
type logRecorder struct {
	level   slog.Level
	mu      *sync.Mutex
	records *[]slog.Record
}

func newLogRecorder(level slog.Level) logRecorder {
	return logRecorder{level: level, mu: &sync.Mutex{}, records: &[]slog.Record{}}
}

func (l logRecorder) Enabled(_ context.Context, level slog.Level) bool { return level >= l.level }
func (l logRecorder) WithAttrs([]slog.Attr) slog.Handler               { return l }
func (l logRecorder) WithGroup(string) slog.Handler                    { return l }
func (l logRecorder) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	*l.records = append(*l.records, r)
	return nil
}

// levels returns the level of each record whose message ends with suffix.
func (l logRecorder) levels(suffix string) []slog.Level {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []slog.Level
	for _, r := range *l.records {
		if strings.HasSuffix(r.Message, suffix) {
			out = append(out, r.Level)
		}
	}
	return out
}

func TestRiverLogger(t *testing.T) {
	t.Parallel()

	tests := []struct {
		name  string
		level slog.Level // of the record River writes
		msg   string
		want  slog.Level // of the record hookline's log gets
	}{
		{"producer's job counts", slog.LevelInfo, "producer: Producer job counts", slog.LevelDebug},
		{"completed jobs cleaned", slog.LevelInfo, "maintenance.JobCleaner: Ran successfully", slog.LevelDebug},
		{"scheduled jobs made available", slog.LevelInfo, "maintenance.JobScheduler: Ran successfully", slog.LevelDebug},
		{"queues cleaned", slog.LevelInfo, "maintenance.QueueCleaner: Ran successfully", slog.LevelDebug},
		{"jobs rescued from a dead process", slog.LevelInfo, "maintenance.JobRescuer: Ran successfully", slog.LevelInfo},
		{"a job errored", slog.LevelInfo, "jobexecutor.JobExecutor: Job errored; retrying", slog.LevelInfo},
		{"an error", slog.LevelError, "maintenance.JobCleaner: Error cleaning jobs", slog.LevelError},
		{"a warning that ends like a report", slog.LevelWarn, "producer: Producer job counts", slog.LevelWarn},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()

			debug, info := newLogRecorder(slog.LevelDebug), newLogRecorder(slog.LevelInfo)
			for _, rec := range []logRecorder{debug, info} {
				riverLogger(slog.New(rec)).With("client_id", "x").Log(context.Background(), tt.level, tt.msg)
			}
			if got := debug.levels(tt.msg); len(got) != 1 || got[0] != tt.want {
				t.Errorf("at DEBUG the log got %v, want one record at %v", got, tt.want)
			}
			wantAtInfo := 0
			if tt.want >= slog.LevelInfo {
				wantAtInfo = 1
			}
			if got := info.levels(tt.msg); len(got) != wantAtInfo {
				t.Errorf("at INFO the log got %v, want %d records", got, wantAtInfo)
			}
		})
	}
}

// TestRiverReportsAtDebug runs hookline and waits for River's producer to
// report its job counts, which it does every 5 s after jobs ran: the report
// reaches hookline's log at DEBUG, and nothing routine of River's at INFO.
func TestRiverReportsAtDebug(t *testing.T) {
	t.Parallel()

	pool, url := migratedPool(t)
	seedDelivery(t, pool, "http://127.0.0.1:1/down", defaultRetrySchedule) // a job runs
	log := newLogRecorder(slog.LevelDebug)
	bootLogging(t, map[string]string{"DATABASE_URL": url}, slog.New(log))

	// Bounded wait, not a speed assertion: the producer reports every 5 s.
	deadline := time.Now().Add(60 * time.Second)
	for len(log.levels(": Producer job counts")) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("River's producer reported no job counts within 60s")
		}
		time.Sleep(50 * time.Millisecond)
	}
	for _, level := range log.levels(": Producer job counts") {
		if level != slog.LevelDebug {
			t.Errorf("River's job counts logged at %v, want DEBUG", level)
		}
	}
	if got := log.levels("hookline serving"); len(got) != 1 || got[0] != slog.LevelInfo {
		t.Errorf("hookline serving logged at %v, want once at INFO", got)
	}
	log.mu.Lock()
	defer log.mu.Unlock()
	for _, r := range *log.records {
		if r.Level == slog.LevelInfo && routineRiverReport(r.Message) {
			t.Errorf("River's routine %q reached the log at INFO", r.Message)
		}
	}
}
