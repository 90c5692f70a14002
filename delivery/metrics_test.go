package delivery

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"

	"github.com/hookline/hookline/events"
	"github.com/hookline/hookline/migrations/dbtest"
)

// A scrape must cost the same whatever river_job holds: with more available
// jobs than queueDepthCap, hookline_queue_jobs says the cap (exact below it),
// and the statement reads at most the cap of river_job's index entries per
// series, on the connection settings hookline's pools have, without JIT
// compilation (river_queue, never analyzed here, looks big to the planner).
func TestQueueDepthIsBoundedWhateverTheBacklog(t *testing.T) {
	t.Parallel()

	pool := dbtest.NewPool(t)
	ctx := context.Background()
	if _, err := pool.Exec(ctx, `insert into river_queue (name, created_at, updated_at)
		values ('delivery', now(), now()), ('default', now(), now())`); err != nil {
		t.Fatal(err)
	}
	const scheduled = 3
	if _, err := pool.Exec(ctx, `insert into river_job (args, kind, max_attempts, queue, state, scheduled_at)
		select '{}', 'deliver', 25, 'delivery', 'available', now() from generate_series(1, $1) g`, queueDepthCap+500); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `insert into river_job (args, kind, max_attempts, queue, state, scheduled_at)
		select '{}', 'deliver', 25, 'delivery', 'scheduled', now() + interval '1 hour' from generate_series(1, $1) g;
		`, scheduled); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, "analyze river_job"); err != nil {
		t.Fatal(err)
	}

	registry := prometheus.NewRegistry()
	NewMetrics(registry, pool, slog.New(slog.NewTextHandler(io.Discard, nil)))
	families, err := registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, f := range families {
		if f.GetName() != "hookline_queue_jobs" {
			continue
		}
		for _, m := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			got[labels["queue"]+"/"+labels["state"]] = m.GetGauge().GetValue()
		}
	}
	if len(got) != 2*len(queueStates) {
		t.Errorf("%d series, want one per queue and state (%d): %v", len(got), 2*len(queueStates), got)
	}
	for series, want := range map[string]float64{"delivery/available": queueDepthCap, "delivery/scheduled": scheduled,
		"delivery/retryable": 0, "default/available": 0} {
		if got[series] != want {
			t.Errorf("hookline_queue_jobs %s = %v, want %v", series, got[series], want)
		}
	}

	// On hookline's pools, and on a connection whose DATABASE_URL set none of
	// their planner settings: the collector's own settings must suffice.
	for _, settings := range []map[string]string{PlannerSettings(), {}} {
		read, indexes, jit := explainQueueDepth(t, pool, settings)
		if jit != nil {
			t.Errorf("%v: the statement was JIT-compiled, which costs more than running it: %v", settings, jit)
		}
		if want := float64(queueDepthCap + scheduled); read > want {
			t.Errorf("%v: the statement read %v rows of river_job, want at most %v (the cap plus the small series)", settings, read, want)
		}
		if len(indexes) == 0 {
			t.Errorf("%v: no read of river_job in the plan", settings)
		}
		for _, index := range indexes {
			if index != "Index Only Scan using river_job_prioritized_fetching_index" && index != "Index Scan using river_job_prioritized_fetching_index" {
				t.Errorf("%v: river_job read by %s, want River's fetch index", settings, index)
			}
		}
	}
}

// explainQueueDepth runs queueDepthSQL under EXPLAIN ANALYZE as the collector
// does, on a connection with settings, and returns the rows of river_job it
// read (returned or filtered out), how it read them, and its JIT section.
func explainQueueDepth(t *testing.T, pool *pgxpool.Pool, settings map[string]string) (read float64, indexes []string, jit any) {
	t.Helper()
	ctx := context.Background()
	conn, err := pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	tx, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	for name, value := range settings {
		if _, err := tx.Exec(ctx, "select set_config($1, $2, true)", name, value); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := tx.Exec(ctx, queueDepthSettings); err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, "prepare queueDepth as "+queueDepthSQL); err != nil {
		t.Fatal(err)
	}
	defer tx.Exec(ctx, "deallocate queueDepth")
	var plan []struct {
		Plan planNode
		JIT  any
	}
	if err := tx.QueryRow(ctx, fmt.Sprintf("explain (analyze, format json) execute queueDepth('{%s}', %d)",
		strings.Join(queueStates, ","), queueDepthCap)).Scan(&plan); err != nil {
		t.Fatal(err)
	}
	plan[0].Plan.walk(func(n *planNode) {
		if n.Relation == "river_job" {
			read += (n.ActualRows + n.RemovedByFilter) * n.ActualLoops
			indexes = append(indexes, n.NodeType+" using "+n.Index)
		}
	})
	return read, indexes, plan[0].JIT
}

// planNode is a node of EXPLAIN (FORMAT JSON).
type planNode struct {
	NodeType    string  `json:"Node Type"`
	Relation    string  `json:"Relation Name"`
	Index       string  `json:"Index Name"`
	ActualRows  float64 `json:"Actual Rows"`
	ActualLoops float64 `json:"Actual Loops"`
	// RemovedByFilter are rows read and not returned, per loop.
	RemovedByFilter float64    `json:"Rows Removed by Filter"`
	Plans           []planNode `json:"Plans"`
}

func (n *planNode) walk(f func(*planNode)) {
	f(n)
	for i := range n.Plans {
		n.Plans[i].walk(f)
	}
}

// hookline_parked_deliveries is exact below queueDepthCap and says the cap
// above it, counting only parked deliveries.
func TestParkedGaugeCountsParkedDeliveriesUpToTheCap(t *testing.T) {
	t.Parallel()

	pool := dbtest.NewPool(t)
	ctx := context.Background()
	registry := prometheus.NewRegistry()
	NewMetrics(registry, pool, slog.New(slog.NewTextHandler(io.Discard, nil)))
	insert := func(prefix string, n int, parked bool) {
		t.Helper()
		if _, err := pool.Exec(ctx, `insert into deliveries (id, merchant_id, livemode, event_id, endpoint_id, url, status,
			next_attempt_at, created_at, updated_at, parked)
			select 'dlv_' || $3 || g, 'acct_1', false, 'evt_1', 'we_1', 'https://example.com/', 'pending', now(), now(), now(), $2
			from generate_series(1, $1) g`, n, parked, prefix); err != nil {
			t.Fatal(err)
		}
	}
	gauge := func() float64 {
		t.Helper()
		families, err := registry.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range families {
			if f.GetName() == "hookline_parked_deliveries" {
				return f.GetMetric()[0].GetGauge().GetValue()
			}
		}
		t.Fatal("no hookline_parked_deliveries")
		return 0
	}
	insert("a", 7, true)
	insert("b", 20, false)
	if got := gauge(); got != 7 {
		t.Errorf("hookline_parked_deliveries = %v, want 7", got)
	}
	insert("c", queueDepthCap, true)
	if got := gauge(); got != queueDepthCap {
		t.Errorf("hookline_parked_deliveries = %v, want the cap %v", got, queueDepthCap)
	}
}

// gathered reads the value of every series without labels, counter or
// gauge, by metric name.
func gathered(t *testing.T, registry *prometheus.Registry) map[string]float64 {
	t.Helper()
	families, err := registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	values := map[string]float64{}
	for _, f := range families {
		for _, m := range f.GetMetric() {
			if len(m.GetLabel()) > 0 {
				continue
			}
			switch {
			case m.GetCounter() != nil:
				values[f.GetName()] = m.GetCounter().GetValue()
			case m.GetGauge() != nil:
				values[f.GetName()] = m.GetGauge().GetValue()
			}
		}
	}
	return values
}

// TestFoldMetrics runs the fold's job as River does, over four tallies one
// of which the fold cannot read (a null start, which no recording writes):
// the run folds the three others, drops it, and fails, and the metrics say
// so beside River's log line (one error, four tallies taken, none waiting).
// A run with nothing left to fold succeeds and changes nothing.
func TestFoldMetrics(t *testing.T) {
	t.Parallel()

	pool, registry, w := newFold(t, `select array['we_1', 'we_2'], array[now(), now()], array['succeeded', 'timeout'], array[20, null]
		from generate_series(1, 3)`)
	ctx := context.Background()
	var unreadable int64
	if err := pool.QueryRow(ctx, `insert into attempt_tallies (endpoint_ids, started_at, outcomes, latency_buckets)
		values (array['we_1'], array[null]::timestamptz[], array['succeeded'], array[20]) returning id`).Scan(&unreadable); err != nil {
		t.Fatal(err)
	}
	check := func(when string, errors, folded, waiting float64) {
		t.Helper()
		got := gathered(t, registry)
		for name, want := range map[string]float64{"hookline_endpoint_stats_fold_errors_total": errors,
			"hookline_endpoint_stats_tallies_folded_total": folded, "hookline_endpoint_stats_tallies_waiting": waiting} {
			if v, ok := got[name]; !ok || v != want {
				t.Errorf("%s: %s = %v (reported: %v), want %v", when, name, v, ok, want)
			}
		}
	}
	check("before a fold", 0, 0, 4)
	if err := w.Work(ctx, &river.Job[FoldStatsArgs]{}); err == nil {
		t.Fatal("the fold read a tally with a null start")
	}
	check("after the failed fold", 1, 4, 0)
	var left bool
	if err := pool.QueryRow(ctx, `select exists (select from attempt_tallies where id = $1)`, unreadable).Scan(&left); err != nil || left {
		t.Fatalf("the unreadable tally is still there (%v): it would stop every fold", err)
	}
	if err := w.Work(ctx, &river.Job[FoldStatsArgs]{}); err != nil {
		t.Fatal(err)
	}
	check("after the next fold", 1, 4, 0)
	if got, want := minuteCounts(t, pool), (AttemptCounts{Succeeded: 3, Timeout: 3}); got != want {
		t.Errorf("the rollup's minutes hold %+v, want the three tallies' %+v", got, want)
	}
}

// newFold is a fold's job with its metrics in a registry of their own, on a
// database holding the tallies rows makes: a select or values clause of
// (endpoint_ids, started_at, outcomes, latency_buckets).
func newFold(t *testing.T, rows string) (*pgxpool.Pool, *prometheus.Registry, *FoldStatsWorker) {
	t.Helper()
	pool := dbtest.NewPool(t)
	registry := prometheus.NewRegistry()
	if _, err := pool.Exec(context.Background(),
		`insert into attempt_tallies (endpoint_ids, started_at, outcomes, latency_buckets) `+rows); err != nil {
		t.Fatal(err)
	}
	return pool, registry, NewFoldStatsWorker(pool, NewMetrics(registry, pool, slog.New(slog.NewTextHandler(io.Discard, nil))))
}

// minuteCounts is the attempts endpoint_stats' minutes hold, by outcome.
func minuteCounts(t *testing.T, pool *pgxpool.Pool) AttemptCounts {
	t.Helper()
	var c AttemptCounts
	if err := pool.QueryRow(context.Background(), `select coalesce(sum(succeeded), 0), coalesce(sum(http_error), 0),
		coalesce(sum(timeout), 0), coalesce(sum(connection_error), 0) from endpoint_stats where span_seconds = 60`).
		Scan(&c.Succeeded, &c.HTTPError, &c.Timeout, &c.ConnectionError); err != nil {
		t.Fatal(err)
	}
	return c
}

// TestFoldDropsAMalformedTally: a tally whose arrays differ in length, or
// hold a null (never written so), is dropped, the others of its batch are
// folded, and the run fails, counted. Read as
// one, it stopped the fold with a panic, which River recovers uncounted,
// on every run, since the fold takes the oldest tallies first.
func TestFoldDropsAMalformedTally(t *testing.T) {
	t.Parallel()

	pool, registry, w := newFold(t, `values
		(array['we_1', 'we_1'], array[now()], array['succeeded', 'succeeded'], array[20, 20]),
		(array['we_1', null], array[now(), now()], array['succeeded', 'succeeded'], array[20, 20]),
		(array['we_1'], array[now()], array['succeeded'], array[20])`)
	if err := w.Work(context.Background(), &river.Job[FoldStatsArgs]{}); err == nil || !strings.Contains(err.Error(), "2 malformed") {
		t.Fatalf("the fold answered %v, want the malformed tally named", err)
	}
	got := gathered(t, registry)
	if got["hookline_endpoint_stats_fold_errors_total"] != 1 || got["hookline_endpoint_stats_tallies_waiting"] != 0 {
		t.Errorf("after the fold: %v", got)
	}
	if got, want := minuteCounts(t, pool), (AttemptCounts{Succeeded: 1}); got != want {
		t.Errorf("the rollup's minutes hold %+v, want the well-formed tally's %+v", got, want)
	}
}

// TestFoldIsNotHeldByAStuckFold: a fold job left running (its process was
// killed mid-run, and River's rescuer has not freed it yet) does not keep
// the next period's fold from being inserted.
func TestFoldIsNotHeldByAStuckFold(t *testing.T) {
	t.Parallel()

	pool := dbtest.NewPool(t)
	ctx := context.Background()
	client, err := river.NewClient(riverpgxv5.New(pool), &river.Config{})
	if err != nil {
		t.Fatal(err)
	}
	first, err := client.Insert(ctx, FoldStatsArgs{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `update river_job set state = 'running', attempt = 1, attempted_at = now() where id = $1`, first.Job.ID); err != nil {
		t.Fatal(err)
	}
	// The next period (River keys it on the job's scheduled time): the
	// periodic enqueuer inserts one fold per interval.
	at := first.Job.ScheduledAt
	next, err := client.Insert(ctx, FoldStatsArgs{}, &river.InsertOpts{ScheduledAt: at.Add(StatsFoldInterval)})
	if err != nil {
		t.Fatal(err)
	}
	if next.UniqueSkippedAsDuplicate {
		t.Error("the next fold was skipped as a duplicate of the stuck one")
	}
	// The same period: one fold, not two.
	again, err := client.Insert(ctx, FoldStatsArgs{}, &river.InsertOpts{ScheduledAt: at.Add(StatsFoldInterval)})
	if err != nil {
		t.Fatal(err)
	}
	if !again.UniqueSkippedAsDuplicate {
		t.Error("a second fold was inserted in the same period")
	}
}

// TestFoldsDoNotOverlap: a fold that finds another at work (its lock held)
// ends at once, taking nothing, where folds side by side queued on the same
// rows of endpoint_stats, each holding a connection.
func TestFoldsDoNotOverlap(t *testing.T) {
	t.Parallel()

	pool := dbtest.NewPool(t)
	ctx := context.Background()
	if _, err := pool.Exec(ctx, `insert into attempt_tallies (endpoint_ids, started_at, outcomes, latency_buckets)
		values (array['we_1'], array[now()], array['succeeded'], array[20])`); err != nil {
		t.Fatal(err)
	}
	tx, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	var held bool
	if err := tx.QueryRow(ctx, foldLock).Scan(&held); err != nil || !held {
		t.Fatalf("the fold's lock: %v %v", held, err)
	}
	if tallies, _, err := FoldStats(ctx, pool); err != nil || tallies != 0 {
		t.Errorf("a fold beside another took %d tallies (%v), want none", tallies, err)
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	if tallies, _, err := FoldStats(ctx, pool); err != nil || tallies != 1 {
		t.Errorf("a fold alone took %d tallies (%v), want the 1", tallies, err)
	}
}

// hookline_endpoint_stats_tallies_waiting is exact below queueDepthCap and
// says the cap above it, whatever the backlog (the fold failing for an
// hour): its statement reads at most the cap of attempt_tallies' primary
// key, never the table, on the settings of hookline's pools and on a
// connection without them (the collector's own settings suffice).
func TestTalliesWaitingIsBoundedWhateverTheBacklog(t *testing.T) {
	t.Parallel()

	pool := dbtest.NewPool(t)
	ctx := context.Background()
	registry := prometheus.NewRegistry()
	NewMetrics(registry, pool, slog.New(slog.NewTextHandler(io.Discard, nil)))
	insert := func(n int) {
		t.Helper()
		if _, err := pool.Exec(ctx, `insert into attempt_tallies (endpoint_ids, started_at, outcomes, latency_buckets)
			select array['we_1'], array[now()], array['succeeded'], array[20] from generate_series(1, $1::int)`, n); err != nil {
			t.Fatal(err)
		}
	}
	insert(7)
	if got := gathered(t, registry)["hookline_endpoint_stats_tallies_waiting"]; got != 7 {
		t.Errorf("hookline_endpoint_stats_tallies_waiting = %v, want 7", got)
	}
	insert(3 * queueDepthCap)
	// Some folded, as a fold's delete leaves them for the vacuum.
	if _, err := pool.Exec(ctx, `delete from attempt_tallies where id <= 1000`); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `analyze attempt_tallies`); err != nil {
		t.Fatal(err)
	}
	if got := gathered(t, registry)["hookline_endpoint_stats_tallies_waiting"]; got != queueDepthCap {
		t.Errorf("hookline_endpoint_stats_tallies_waiting = %v, want the cap %v", got, queueDepthCap)
	}
	for _, settings := range []map[string]string{PlannerSettings(), {}} {
		plans := dbtest.CheckPlans(t, pool, settings, func(ctx context.Context, db events.DB) error {
			if _, err := db.Exec(ctx, queueDepthSettings); err != nil {
				return err
			}
			var n int
			return db.QueryRow(ctx, talliesWaitingSQL, queueDepthCap).Scan(&n)
		}, dbtest.Want{MaxRead: queueDepthCap})
		dbtest.LogPlans(t, plans)
		for _, p := range plans {
			if p.SQL != talliesWaitingSQL {
				continue
			}
			var scans []string
			var walk func(n *dbtest.PlanNode)
			walk = func(n *dbtest.PlanNode) {
				if n.RelationName == "attempt_tallies" {
					scans = append(scans, n.NodeType+" using "+n.IndexName)
				}
				for i := range n.Plans {
					walk(&n.Plans[i])
				}
			}
			walk(&p.Root)
			if len(scans) != 1 || !strings.HasPrefix(scans[0], "Index") || !strings.HasSuffix(scans[0], "attempt_tallies_pkey") {
				t.Errorf("%v: attempt_tallies read by %q, want its primary key", settings, scans)
			}
		}
	}
}
