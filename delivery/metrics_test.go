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
