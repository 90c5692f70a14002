package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hookline/hookline/migrations/dbtest"
)

// exportLines are the "traces not exported" lines of a JSON log.
func exportLines(t *testing.T, log []byte) []map[string]any {
	t.Helper()
	var lines []map[string]any
	for _, line := range bytes.Split(bytes.TrimSpace(log), []byte("\n")) {
		var rec map[string]any
		if len(line) == 0 {
			continue
		}
		if err := json.Unmarshal(line, &rec); err != nil {
			t.Fatalf("log line %s: %v", line, err)
		}
		if rec["msg"] == "traces not exported" {
			lines = append(lines, rec)
		}
	}
	return lines
}

// Failures to export are logged the first at once, then at most once a
// minute with the count of failures and spans lost since the previous line;
// what is left at shutdown is logged then.
func TestExportFailuresAreLoggedOnceAMinute(t *testing.T) {
	t.Parallel()

	var log bytes.Buffer
	now := time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)
	f := &exportFailures{logger: slog.New(slog.NewJSONHandler(&log, nil)), now: func() time.Time { return now }}
	refused := errors.New("HTTP 401")
	type want struct{ failures, spans float64 }
	steps := []struct {
		after time.Duration // since the previous step
		spans int
		lines []want // the lines the step adds
	}{
		{0, 512, []want{{1, 512}}},                 // the first: at once
		{time.Second, 512, nil},                    // within the minute: counted
		{30 * time.Second, 100, nil},               // still within
		{0, 0, nil},                                // a failure with no span count (the global handler's)
		{29 * time.Second, 512, []want{{4, 1124}}}, // a minute after the first line: the four since
		{59 * time.Second, 1, nil},
		{2 * time.Minute, 2, []want{{2, 3}}},
	}
	for i, s := range steps {
		now = now.Add(s.after)
		before := len(exportLines(t, log.Bytes()))
		f.report(refused, s.spans)
		lines := exportLines(t, log.Bytes())[before:]
		if len(lines) != len(s.lines) {
			t.Fatalf("step %d: %d lines, want %d", i, len(lines), len(s.lines))
		}
		for j, w := range s.lines {
			if lines[j]["failures"] != w.failures || lines[j]["spans_lost"] != w.spans || lines[j]["error"] != "HTTP 401" || lines[j]["level"] != "WARN" {
				t.Errorf("step %d: line %v, want %v failures, %v spans lost", i, lines[j], w.failures, w.spans)
			}
		}
	}
	now = now.Add(time.Second)
	f.report(refused, 7)
	f.flush()
	f.flush() // nothing left: no line
	lines := exportLines(t, log.Bytes())
	if last := lines[len(lines)-1]; len(lines) != 4 || last["failures"] != 1.0 || last["spans_lost"] != 7.0 {
		t.Errorf("lines %v, want a fourth at shutdown with the last failure", lines)
	}
}

// syncBuffer is a log written by a running process.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) Bytes() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return bytes.Clone(s.b.Bytes())
}

// A collector refusing every batch (a wrong API key: 401) costs spans, and a
// line or two of log, not one per batch: with batches of one span, each
// request's span is a failed export of its own. (Not parallel: the SDK reads
// OTEL_BSP_MAX_EXPORT_BATCH_SIZE from the process's environment.)
func TestARefusingCollectorDoesNotFloodTheLog(t *testing.T) {
	t.Setenv("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "1")
	var mu sync.Mutex
	posts := 0
	collector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		mu.Lock()
		posts++
		mu.Unlock()
		http.Error(w, "bad API key", http.StatusUnauthorized)
	}))
	t.Cleanup(collector.Close)
	pool, url := migratedPool(t)
	merchant := dbtest.Merchant(t, pool, "Refused")
	var log syncBuffer
	m, stop := launch(t, map[string]string{"DATABASE_URL": url, "OTEL_EXPORTER_OTLP_ENDPOINT": collector.URL},
		slog.New(slog.NewJSONHandler(&log, &slog.HandlerOptions{Level: slog.LevelWarn})))
	t.Cleanup(stop)
	const requests = 20
	for range requests {
		req, _ := http.NewRequest("GET", "http://"+m.Addr()+"/v1/account", nil)
		req.Header.Set("Authorization", "Bearer "+merchant.TestAPIKey)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
	}
	stop() // flushes what is left, and logs the failures not logged yet

	mu.Lock()
	defer mu.Unlock()
	lines := exportLines(t, log.Bytes())
	failures, spans := 0.0, 0.0
	for _, l := range lines {
		failures += l["failures"].(float64)
		spans += l["spans_lost"].(float64)
		if !strings.Contains(l["error"].(string), "401") {
			t.Errorf("line %v, want the collector's 401", l)
		}
	}
	// One line at the first failure, one at shutdown; a third only if the
	// test ran for over a minute.
	if posts < requests || len(lines) < 2 || len(lines) > 1+posts/2 || int(failures) != posts || int(spans) != posts {
		t.Errorf("%d batches refused, %d lines logged counting %v failures and %v spans lost: %v", posts, len(lines), failures, spans, lines)
	}
}
