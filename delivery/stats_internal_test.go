package delivery

import (
	"context"
	"fmt"
	"math"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/hookline/hookline/events"
	"github.com/hookline/hookline/migrations/dbtest"
)

func TestLatencyBucket(t *testing.T) {
	t.Parallel()

	for _, tt := range []struct {
		ms   int64
		want int
	}{
		{-1, 0}, {0, 0}, {1, 1}, {2, 5}, {3, 7}, {4, 9}, {120, 28}, {1000, 40}, {92681, 66}, {92682, 67}, {10_000_000, 67},
	} {
		if got := latencyBucket(tt.ms); got != tt.want {
			t.Errorf("latencyBucket(%d) = %d, want %d", tt.ms, got, tt.want)
		}
	}
}

// TestLatencyResolution checks the README's promise for every duration up to
// the open last bucket: a percentile reads within 2^(1/8) (9.1 %) of it, give
// or take the rounding to a millisecond.
func TestLatencyResolution(t *testing.T) {
	t.Parallel()

	for ms := int64(0); ms < 92682; ms++ {
		got := float64(latencyValue(latencyBucket(ms)))
		if math.Abs(got-float64(ms)) > float64(ms)*(math.Exp2(1.0/8)-1)+0.5 {
			t.Fatalf("%d ms reads as %.0f", ms, got)
		}
	}
}

func TestPercentile(t *testing.T) {
	t.Parallel()

	hist := make([]int, latencyBuckets)
	hist[latencyBucket(10)], hist[latencyBucket(100)], hist[latencyBucket(1000)] = 50, 40, 10
	for _, tt := range []struct {
		p    float64
		want int
	}{{0, 10}, {.5, 10}, {.51, 99}, {.9, 99}, {.91, 939}, {.99, 939}, {1, 939}} {
		if got := percentile(hist, tt.p); got == nil || *got != tt.want {
			t.Errorf("p%v = %v, want %d", tt.p, deref(got), tt.want)
		}
	}
	if got := percentile(make([]int, latencyBuckets), .5); got != nil {
		t.Errorf("an empty histogram's median is %d, want none", *got)
	}
}

// TestStatsCountWhatIsRecorded records attempts as jobs do, 40 batches at
// once over two endpoints from the pool's connections, while two folds run
// over and over beside them (as two processes' would): after a last fold,
// the statistics match delivery_attempts exactly, no batch or fold fails,
// and a batch recorded again (a job run twice, whose counts moved on) adds
// nothing.
func TestStatsCountWhatIsRecorded(t *testing.T) {
	t.Parallel()

	ctx := context.Background()
	pool := dbtest.NewPool(t)
	m := dbtest.Merchant(t, pool, "Rollup")
	const batches, perBatch = 40, 10
	n := batches * perBatch
	for _, q := range []struct {
		sql  string
		args []any
	}{
		{`insert into webhook_endpoints (id, merchant_id, livemode, type, url, status, secret, created_at)
			select 'we_' || k, $1, false, 'webhook', 'https://example.com/' || k, 'enabled', 'whsec_x', now()
			from generate_series(1, 2) k`, []any{m.ID}},
		{`insert into events (id, merchant_id, livemode, type, payload, created_at)
			select 'evt_' || g, $1, false, 'checkout.created', '{}', now() from generate_series(1, $2::int) g`, []any{m.ID, n}},
		// Endpoints alternate every 4 deliveries, so that each gets every
		// outcome.
		{`insert into deliveries (id, merchant_id, livemode, event_id, endpoint_id, url, status, attempt_count, created_at, updated_at)
			select 'dlv_' || g, $1, false, 'evt_' || g, 'we_' || (1 + g / 4 % 2), 'https://example.com/', 'pending', 0, now(), now()
			from generate_series(1, $2::int) g`, []any{m.ID, n}},
	} {
		if _, err := pool.Exec(ctx, q.sql, q.args...); err != nil {
			t.Fatal(err)
		}
	}
	w := &Worker{}
	outcomes := []*outcome{
		{statusCode: 200, duration: 40 * time.Millisecond},
		{statusCode: 500, duration: 10 * time.Millisecond},
		{err: errTimedOut, duration: time.Second},
		{err: "connection failed: dial: refused"},
	}
	batch := func(b int) []any {
		var rb recordBatch
		for i := range perBatch {
			n := b*perBatch + i + 1
			o := *outcomes[n%len(outcomes)]
			o.duration += time.Duration(n) * time.Millisecond // durations spread over buckets
			o.started = time.Now()
			rb.add(&target{deliveryID: fmt.Sprintf("dlv_%d", n), url: "https://example.com/"}, StatusFailed, nil, &o)
		}
		return rb.args(nil)
	}
	var wg sync.WaitGroup
	errs := make(chan error, batches+2)
	recording := make(chan struct{})
	folded := make(chan int, 2)
	for range 2 {
		go func() {
			total := 0
			for {
				_, n, err := FoldStats(ctx, pool)
				total += n
				if err != nil {
					errs <- err
					folded <- total
					return
				}
				select {
				case <-recording:
					folded <- total
					return
				default:
				}
			}
		}()
	}
	for b := range batches {
		wg.Go(func() {
			recorded, err := w.recordAttempts(ctx, pool, batch(b))
			if err == nil && len(recorded) != perBatch {
				err = fmt.Errorf("batch %d recorded %d of %d", b, len(recorded), perBatch)
			}
			if err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(recording)
	if recorded, err := w.recordAttempts(ctx, pool, batch(0)); err != nil || len(recorded) != 0 {
		t.Fatalf("a batch recorded again: %d recorded, %v", len(recorded), err)
	}
	total := <-folded + <-folded
	_, last, err := FoldStats(ctx, pool)
	if err != nil {
		t.Fatal(err)
	}
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if total+last != n {
		t.Errorf("the folds added %d and then %d attempts, want %d in all", total, last, n)
	}

	now := time.Now()
	for _, endpointID := range []string{"we_1", "we_2"} {
		var want AttemptCounts
		var p50, p90, p99 int64
		if err := pool.QueryRow(ctx, `select count(*) filter (where status_code between 200 and 299),
			count(*) filter (where status_code >= 300), count(*) filter (where error = 'timed out'),
			count(*) filter (where status_code is null and error <> 'timed out'),
			percentile_disc(.5) within group (order by duration_ms) filter (where status_code is not null),
			percentile_disc(.9) within group (order by duration_ms) filter (where status_code is not null),
			percentile_disc(.99) within group (order by duration_ms) filter (where status_code is not null)
			from delivery_attempts a join deliveries d on d.id = a.delivery_id where d.endpoint_id = $1`, endpointID).
			Scan(&want.Succeeded, &want.HTTPError, &want.Timeout, &want.ConnectionError, &p50, &p90, &p99); err != nil {
			t.Fatal(err)
		}
		if want.Total() != n/2 || want.Succeeded == 0 || want.HTTPError == 0 || want.Timeout == 0 || want.ConnectionError == 0 {
			t.Fatalf("%s has %+v attempts recorded, want %d of every outcome", endpointID, want, n/2)
		}
		for _, window := range []string{StatsWindowHour, StatsWindowDay} {
			s, err := EndpointStats(ctx, pool, events.Scope{MerchantID: m.ID}, endpointID, window, now)
			if err != nil {
				t.Fatal(err)
			}
			if s.Attempts != want {
				t.Errorf("%s %s: the statistics count %+v, delivery_attempts %+v", endpointID, window, s.Attempts, want)
			}
			// The histogram keeps the order of its buckets: each percentile
			// is the exact one's bucket.
			for _, p := range []struct {
				got   *int
				exact int64
			}{{s.LatencyMS.P50, p50}, {s.LatencyMS.P90, p90}, {s.LatencyMS.P99, p99}} {
				if p.got == nil || *p.got != latencyValue(latencyBucket(p.exact)) {
					t.Errorf("%s %s: latency %v, exact %d, want its bucket's %d", endpointID, window, deref(p.got), p.exact,
						latencyValue(latencyBucket(p.exact)))
				}
			}
		}
	}
}

// deref shows a percentile, "none" for nil.
func deref(p *int) string {
	if p == nil {
		return "none"
	}
	return fmt.Sprint(*p)
}

// lockSetup gives a failing endpoint we_1, probed (its destination row's
// probe_ms over 1000), two pending deliveries dlv_1 and dlv_2, and two
// connections.
func lockSetup(t *testing.T, pool *pgxpool.Pool) (*pgxpool.Conn, *pgxpool.Conn) {
	t.Helper()
	ctx := context.Background()
	m := dbtest.Merchant(t, pool, "Locks")
	for _, q := range []string{
		`insert into webhook_endpoints (id, merchant_id, livemode, type, url, status, secret, created_at, failing_since)
			values ('we_1', $1, false, 'webhook', 'https://example.com/', 'enabled', 'whsec_x', now(), now() - interval '1 minute')`,
		`insert into events (id, merchant_id, livemode, type, payload, created_at)
			select 'evt_' || g, $1, false, 'checkout.created', '{}', now() from generate_series(1, 2) g`,
		`insert into deliveries (id, merchant_id, livemode, event_id, endpoint_id, url, status, attempt_count, created_at, updated_at)
			select 'dlv_' || g, $1, false, 'evt_' || g, 'we_1', 'https://example.com/', 'pending', 0, now(), now()
			from generate_series(1, 2) g`,
		`insert into delivery_destinations (key, probe_ms) select 'we_1', 4000 where $1::text is not null`,
	} {
		if _, err := pool.Exec(ctx, q, m.ID); err != nil {
			t.Fatal(err)
		}
	}
	var conns [2]*pgxpool.Conn
	for i := range conns {
		c, err := pool.Acquire(ctx)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(c.Release)
		conns[i] = c
	}
	return conns[0], conns[1]
}

// failingEndpointBatch is the arguments of recordAttempts for one attempt
// of a delivery to we_1 with outcome o.
func failingEndpointBatch(id string, o outcome) []any {
	var rb recordBatch
	o.started = time.Now()
	rb.add(&target{deliveryID: id, url: "https://example.com/"}, StatusFailed, nil, &o)
	var acknowledged []string
	if o.acknowledged() {
		acknowledged = []string{"we_1"}
	}
	return rb.args(acknowledged)
}

// waitForLock waits until the connection's backend waits on a lock.
func waitForLock(t *testing.T, pool *pgxpool.Pool, c *pgxpool.Conn) {
	t.Helper()
	for waiting := false; !waiting; time.Sleep(10 * time.Millisecond) {
		if err := pool.QueryRow(context.Background(), `select coalesce(bool_or(wait_event_type = 'Lock'), false) from pg_stat_activity
			where pid = $1`, c.Conn().PgConn().PID()).Scan(&waiting); err != nil {
			t.Fatal(err)
		}
	}
}

// TestAcknowledgedRecordLocksEndpointsBeforeDestinations is the interleaving
// that would deadlock if recordAttempts locked a destination before its
// endpoint: a failing job's transaction has marked the endpoint failing and
// is about to pause its destination's probing, while an acknowledged job of
// the same endpoint records and ends the
// endpoint's failure streak and its destination's probing. The second must
// wait on the endpoint's row without holding the destination's.
func TestAcknowledgedRecordLocksEndpointsBeforeDestinations(t *testing.T) {
	t.Parallel()

	ctx := context.Background()
	pool := dbtest.NewPool(t)
	c1, c2 := lockSetup(t, pool)
	w := &Worker{}
	tx, err := c1.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	if _, err := w.recordAttempts(ctx, tx, failingEndpointBatch("dlv_1", outcome{statusCode: 500})); err != nil {
		t.Fatal(err)
	}
	if _, err := w.markFailing(ctx, tx, "we_1", time.Now()); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := w.recordAttempts(ctx, c2, failingEndpointBatch("dlv_2", outcome{statusCode: 200}))
		done <- err
	}()
	waitForLock(t, pool, c2)
	if _, err := tx.Exec(ctx, pauseProbed, []string{"we_1"}, maxProbeInterval.Milliseconds()); err != nil {
		t.Fatalf("pause the probed destination: %v", err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("the acknowledged job: %v", err)
	}
}
