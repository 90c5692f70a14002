package delivery_test

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/hookline/hookline/delivery"
	"github.com/hookline/hookline/events"
	"github.com/hookline/hookline/migrations/dbtest"
	"github.com/hookline/hookline/schema/schematest"
)

// TestEndpointStats delivers to four real receivers, one per outcome (200
// after a varying delay, 500, too slow, a refused connection), then reads
// each endpoint's statistics over every window: exact counts, rate, latency
// percentiles within the histogram's resolution of the recorded durations,
// and each attempt in the series bucket of the minute (or hour) it started.
func TestEndpointStats(t *testing.T) {
	t.Parallel()

	ctx := context.Background()
	e := newEnv(t, delivery.Schedule{}, 400*time.Millisecond) // one attempt each
	delays := []time.Duration{5 * time.Millisecond, 20 * time.Millisecond, 40 * time.Millisecond, 90 * time.Millisecond, 150 * time.Millisecond}
	ok := newReceiver(t, func(n int, w http.ResponseWriter) {
		time.Sleep(delays[(n-1)%len(delays)])
		w.WriteHeader(http.StatusOK)
	})
	failing := newReceiver(t, func(_ int, w http.ResponseWriter) { w.WriteHeader(http.StatusInternalServerError) })
	slow := newReceiver(t, func(_ int, w http.ResponseWriter) {
		time.Sleep(time.Second)
		w.WriteHeader(http.StatusOK)
	})
	closed := httptest.NewServer(http.NotFoundHandler())
	closed.Close() // its port now refuses connections
	endpoints := map[string]*delivery.Endpoint{
		"ok": e.endpoint(ok.srv.URL, []string{"checkout.created"}), "failing": e.endpoint(failing.srv.URL, []string{"checkout.created"}),
		"slow": e.endpoint(slow.srv.URL, []string{"checkout.created"}), "refused": e.endpoint(closed.URL, []string{"checkout.created"}),
	}
	const payments = 5
	for range payments {
		e.pay(nil)
	}
	e.waitDeliveries()
	// What the periodic fold does every second (this test's client runs
	// none): it adds every attempt recorded.
	if _, n, err := delivery.FoldStats(ctx, e.pool); err != nil || n != len(endpoints)*payments {
		t.Fatalf("the fold added %d attempts (%v), want %d", n, err, len(endpoints)*payments)
	}
	// One of the failing endpoint's deliveries pending again (as a retry
	// scheduled would leave it), for the current counts.
	if _, err := e.pool.Exec(ctx, `update deliveries set status = 'pending' where id = (select min(id) from deliveries
		where endpoint_id = $1)`, endpoints["failing"].ID); err != nil {
		t.Fatal(err)
	}
	now := time.Now()

	want := map[string]delivery.AttemptCounts{
		"ok": {Succeeded: payments}, "failing": {HTTPError: payments}, "slow": {Timeout: payments}, "refused": {ConnectionError: payments},
	}
	for name, ep := range endpoints {
		durations, minutes := recordedAttempts(t, e, ep.ID)
		for _, window := range []string{"1h", "24h", "7d", ""} {
			s, err := delivery.EndpointStats(ctx, e.pool, e.scope, ep.ID, window, now)
			if err != nil {
				t.Fatalf("%s %s: %v", name, window, err)
			}
			if s.Object != "webhook_endpoint_stats" || s.Window != cmpOr(window, "24h") || s.Endpoint != ep.ID {
				t.Errorf("%s %s: object %q window %q endpoint %q", name, window, s.Object, s.Window, s.Endpoint)
			}
			body, err := json.Marshal(s)
			if err != nil {
				t.Fatal(err)
			}
			schematest.Object(t, "webhook_endpoint_stats", body)
			if s.Attempts != want[name] {
				t.Errorf("%s %s: attempts %+v, want %+v", name, window, s.Attempts, want[name])
			}
			wantRate := float64(want[name].Succeeded) / payments
			if s.SuccessRate == nil || *s.SuccessRate != wantRate {
				t.Errorf("%s %s: success rate %v, want %v", name, window, s.SuccessRate, wantRate)
			}
			wantPending, wantFailed := 0, payments
			if name == "failing" {
				wantPending, wantFailed = 1, payments-1
			} else if name == "ok" {
				wantFailed = 0
			}
			if s.Pending != wantPending || s.Failed != wantFailed {
				t.Errorf("%s %s: pending %d failed %d, want %d and %d", name, window, s.Pending, s.Failed, wantPending, wantFailed)
			}
			checkPercentiles(t, name+" "+window, s.LatencyMS, durations)
			width, _ := delivery.StatsBucketWidth(s.Window)
			buckets := map[int]int{60: 60, 3600: 24, 21600: 28}[int(width.Seconds())]
			if len(s.Series) != buckets {
				t.Fatalf("%s %s: %d buckets, want %d", name, window, len(s.Series), buckets)
			}
			last := s.Series[len(s.Series)-1]
			if last.Start != now.Truncate(width).Unix() {
				t.Errorf("%s %s: the last bucket starts at %d, want %d (the one holding now)", name, window, last.Start, now.Truncate(width).Unix())
			}
			perBucket := map[int64]int{}
			for _, m := range minutes {
				perBucket[m.Truncate(width).Unix()]++
			}
			for i, b := range s.Series {
				if i > 0 && b.Start-s.Series[i-1].Start != int64(width.Seconds()) {
					t.Errorf("%s %s: bucket %d starts %d s after the previous one", name, window, i, b.Start-s.Series[i-1].Start)
				}
				wantOK, wantFailed := perBucket[b.Start], 0
				if want[name].Succeeded == 0 {
					wantOK, wantFailed = 0, perBucket[b.Start]
				}
				if b.Succeeded != wantOK || b.Failed != wantFailed {
					t.Errorf("%s %s: bucket %d has %d succeeded and %d failed, want %d and %d", name, window, b.Start,
						b.Succeeded, b.Failed, wantOK, wantFailed)
				}
				if (b.LatencyP50MS == nil) != (b.LatencyP99MS == nil) || (b.LatencyP50MS != nil && len(durations) == 0) {
					t.Errorf("%s %s: bucket %d latency p50 %v p99 %v", name, window, b.Start, b.LatencyP50MS, b.LatencyP99MS)
				}
			}
		}
	}

	if _, err := delivery.EndpointStats(ctx, e.pool, e.scope, endpoints["ok"].ID, "2h", now); !isInvalid(err, "window") {
		t.Errorf("window 2h: %v, want an invalid window", err)
	}
	other := dbtest.Merchant(t, e.pool, "Other")
	for _, scope := range []events.Scope{{MerchantID: other.ID}, {MerchantID: e.scope.MerchantID, Livemode: true}} {
		if _, err := delivery.EndpointStats(ctx, e.pool, scope, endpoints["ok"].ID, "1h", now); !errors.Is(err, events.ErrNotFound) {
			t.Errorf("another scope %+v: %v, want not found", scope, err)
		}
	}
	if _, err := delivery.EndpointStats(ctx, e.pool, e.scope, "we_missing", "1h", now); !errors.Is(err, events.ErrNotFound) {
		t.Errorf("unknown endpoint: %v, want not found", err)
	}
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func isInvalid(err error, param string) bool {
	var invalid *events.InvalidError
	return errors.As(err, &invalid) && invalid.Param == param
}

// recordedAttempts reads an endpoint's attempts as delivery_attempts holds
// them: the durations of those answered, and every attempt's start.
func recordedAttempts(t *testing.T, e *env, endpointID string) ([]int, []time.Time) {
	t.Helper()
	rows, err := e.pool.Query(context.Background(), `select a.duration_ms, a.status_code is not null, a.started_at
		from delivery_attempts a join deliveries d on d.id = a.delivery_id where d.endpoint_id = $1`, endpointID)
	if err != nil {
		t.Fatal(err)
	}
	var durations []int
	var starts []time.Time
	var ms int
	var answered bool
	var started time.Time
	if _, err := pgx.ForEachRow(rows, []any{&ms, &answered, &started}, func() error {
		if answered {
			durations = append(durations, ms)
		}
		starts = append(starts, started)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return durations, starts
}

// checkPercentiles compares percentiles read from the histogram with the
// exact ones (nearest rank) of durations: within 2^(1/8) (9.1 %), plus the
// rounding to whole milliseconds.
func checkPercentiles(t *testing.T, what string, got delivery.Percentiles, durations []int) {
	t.Helper()
	slices.Sort(durations)
	for _, p := range []struct {
		q   float64
		got *int
	}{{.5, got.P50}, {.9, got.P90}, {.99, got.P99}} {
		if len(durations) == 0 {
			if p.got != nil {
				t.Errorf("%s: p%.0f %d without any response", what, p.q*100, *p.got)
			}
			continue
		}
		exact := float64(durations[max(0, int(math.Ceil(p.q*float64(len(durations))))-1)])
		if p.got == nil || math.Abs(float64(*p.got)-exact) > exact*(math.Exp2(1.0/8)-1)+1 {
			t.Errorf("%s: p%.0f %v, want %v within 9.1 %%", what, p.q*100, p.got, exact)
		}
	}
}
