//go:build chaos

package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"
)

// TestChaosRateLimitAcrossWorkers: an endpoint with rate_limit 50 owes 2,000
// deliveries, worked by two worker processes. The receiver must see 50 a
// second, within 10 %, over a 20 s window in the middle of the drain (after
// the first second's full bucket), and every delivery in the end: deliveries
// over the limit wait, parked, without spending an attempt.
func TestChaosRateLimitAcrossWorkers(t *testing.T) {
	e := newChaosEnv(t)
	const limit, owed = 50, 2000
	env := map[string]string{"DATABASE_URL": e.url}
	api := start(t, env, "--role", "api")

	var mu sync.Mutex
	var arrivals []time.Time
	seen := map[string]int{}
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		arrivals = append(arrivals, time.Now())
		seen[r.Header.Get("webhook-id")]++
	}))
	t.Cleanup(receiver.Close)
	code, body := e.post(api.addr, "/v1/webhook_endpoints",
		`{"url":"`+receiver.URL+`","enabled_events":["checkout.created"],"rate_limit":50}`)
	if code != 201 {
		t.Fatalf("register endpoint: %d %s", code, body)
	}
	var ep struct{ ID string }
	_ = json.Unmarshal(body, &ep)
	seedOwed(t, e, ep.ID, owed)
	w1, w2 := start(t, env, "--role", "worker"), start(t, env, "--role", "worker")

	deadline := time.Now().Add(3 * owed / limit * time.Second)
	for {
		mu.Lock()
		n := len(seen)
		mu.Unlock()
		if n == owed {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d deliveries received in %v", n, owed, 3*owed/limit*time.Second)
		}
		time.Sleep(200 * time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	first := arrivals[0]
	from, to := first.Add(5*time.Second), first.Add(25*time.Second)
	inWindow := 0
	for _, at := range arrivals {
		if !at.Before(from) && at.Before(to) {
			inWindow++
		}
	}
	rate := float64(inWindow) / 20
	t.Logf("%d deliveries from %v to %v after the first: %.1f/s (limit %d/s); all %d in %v, %d requests",
		inWindow, from.Sub(first), to.Sub(first), rate, limit, owed, arrivals[len(arrivals)-1].Sub(first).Round(time.Millisecond), len(arrivals))
	if len(arrivals) != owed {
		t.Errorf("%d requests for %d deliveries: none should have been sent twice", len(arrivals), owed)
	}
	if rate < 0.9*limit || rate > 1.1*limit {
		t.Errorf("the receiver saw %.1f deliveries/s over 20 s, want %d ± 10 %%", rate, limit)
	}
	var attempts, maxAttempts int
	if err := e.pool.QueryRow(t.Context(), `select count(*), coalesce(max(attempt_count), 0) from deliveries where endpoint_id = $1`, ep.ID).
		Scan(&attempts, &maxAttempts); err != nil {
		t.Fatal(err)
	}
	if maxAttempts != 1 {
		t.Errorf("a delivery took %d attempts: waiting for the limit must not spend one", maxAttempts)
	}
	for _, w := range []*proc{w1, w2} {
		select {
		case err := <-w.done:
			t.Fatalf("a worker exited: %v\n%s", err, w.stderr)
		default:
		}
	}
	stop(t, w1)
	stop(t, w2)
	stop(t, api)
}
