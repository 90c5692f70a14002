package delivery

import (
	"context"
	"io"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/hookline/hookline/migrations/dbtest"
)

// A withdrawal takes exactly the destination's queued automatic jobs that
// no one else holds, and those an earlier withdrawal set aside, and parks
// exactly their deliveries still owed at the job's count: not a manual
// retry, a probe, a scheduled retry, a running or locked job, nor another
// destination's; not a delivery settled, moved on by another job, or parked
// under a drain's lease (whose lease it keeps).
func TestWithdrawTakesOnlyTheQueue(t *testing.T) {
	ctx := context.Background()
	pool := dbtest.NewPool(t)
	m := dbtest.Merchant(t, pool, "Withdraw")
	type row struct {
		id, dest, status string
		count            int
		parked           bool
		leased           bool // next_attempt_at an hour ahead: a drain's lease
	}
	rows := []row{
		{"dlv_1", "we_x", "pending", 0, false, false},   // owed: parked
		{"dlv_2", "we_x", "pending", 1, false, false},   // its attempt made by another job
		{"dlv_3", "we_x", "pending", 0, true, true},     // parked, claimed by a drain
		{"dlv_4", "we_x", "succeeded", 0, false, false}, // settled
		{"dlv_5", "we_x", "pending", 0, false, false},   // a manual retry's
		{"dlv_6", "we_x", "pending", 0, false, false},   // a probe's
		{"dlv_7", "we_x", "pending", 0, false, false},   // a scheduled job's
		{"dlv_8", "we_x", "pending", 0, false, false},   // a running job's
		{"dlv_9", "we_x", "pending", 0, false, false},   // a job River is fetching
		{"dlv_10", "we_y", "pending", 0, false, false},  // another destination's
		{"dlv_11", "we_x", "pending", 0, false, false},  // set aside by an earlier withdrawal
	}
	for _, r := range rows {
		if _, err := pool.Exec(ctx, `insert into deliveries (id, merchant_id, livemode, event_id, endpoint_id, url, status, attempt_count,
			parked, next_attempt_at, created_at, updated_at)
			values ($1, $2, false, 'evt_' || $1, $3, 'https://example.com/', $4, $5, $6, now() + case when $7 then interval '1 hour' else interval '0' end, now(), now())`,
			r.id, m.ID, r.dest, r.status, r.count, r.parked, r.leased); err != nil {
			t.Fatal(err)
		}
	}
	job := func(args, state string) int64 {
		t.Helper()
		priority := 1
		if state == "set aside" {
			state, priority = "scheduled", setAsidePriority
		}
		var id int64
		if err := pool.QueryRow(ctx, `insert into river_job (args, kind, max_attempts, queue, state, priority, scheduled_at, attempt, attempted_at)
			values ($1, 'deliver', 25, 'delivery', $2::text::river_job_state, $3,
				now() + case when $2::text = 'scheduled' then interval '1 hour' else interval '0' end,
				case when $2::text = 'running' then 1 else 0 end, case when $2::text = 'running' then now() end) returning id`, args, state, priority).Scan(&id); err != nil {
			t.Fatal(err)
		}
		return id
	}
	gone := []int64{
		job(`{"delivery_ids": ["dlv_1", "dlv_2"], "counts": [0, 0], "destination": "we_x"}`, "available"),
		job(`{"delivery_ids": ["dlv_3"], "counts": [0], "destination": "we_x"}`, "available"),
		job(`{"delivery_ids": ["dlv_4"], "counts": [0], "destination": "we_x"}`, "available"),
		job(`{"delivery_ids": ["dlv_11"], "counts": [0], "destination": "we_x"}`, "set aside"),
	}
	fetched := job(`{"delivery_ids": ["dlv_9"], "counts": [0], "destination": "we_x"}`, "available")
	kept := []int64{
		job(`{"delivery_ids": ["dlv_5"], "counts": [0], "destination": "we_x", "manual": true}`, "available"),
		job(`{"delivery_ids": ["dlv_6"], "counts": [0], "destination": "we_x", "probe": true}`, "available"),
		job(`{"delivery_ids": ["dlv_7"], "counts": [0], "destination": "we_x"}`, "scheduled"),
		job(`{"delivery_ids": ["dlv_8"], "counts": [0], "destination": "we_x"}`, "running"),
		job(`{"delivery_ids": ["dlv_10"], "counts": [0], "destination": "we_y"}`, "available"),
		fetched,
	}
	// River's fetch holds dlv_9's job while the withdrawal runs: it must go
	// past it, not wait for it.
	fetch, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = fetch.Rollback(ctx) }()
	if _, err := fetch.Exec(ctx, `select 1 from river_job where id = $1 for update`, fetched); err != nil {
		t.Fatal(err)
	}

	registry := prometheus.NewRegistry()
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	w := &Worker{pool: pool, limiter: newLimiter(50, 25, 100), logger: logger, metrics: NewMetrics(registry, pool, logger)}
	withdrawCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	w.withdraw(withdrawCtx, "we_x")
	if withdrawCtx.Err() != nil {
		t.Fatal("the withdrawal waited for the job River is fetching")
	}
	if err := fetch.Rollback(ctx); err != nil {
		t.Fatal(err)
	}

	var left []int64
	r, err := pool.Query(ctx, `select id from river_job where id = any($1) order by id`, append(append([]int64{}, gone...), kept...))
	if err != nil {
		t.Fatal(err)
	}
	if left, err = pgx.CollectRows(r, pgx.RowTo[int64]); err != nil {
		t.Fatal(err)
	}
	if slices.Sort(kept); !slices.Equal(left, kept) {
		t.Errorf("jobs left %v, want exactly %v (withdrawn: %v)", left, kept, gone)
	}
	for _, want := range []struct {
		id     string
		parked bool
		due    string // when next_attempt_at is: "now" or "later"
	}{
		{"dlv_1", true, "now"}, {"dlv_2", false, "now"}, {"dlv_3", true, "later"}, {"dlv_4", false, "now"},
		{"dlv_5", false, "now"}, {"dlv_6", false, "now"}, {"dlv_7", false, "now"}, {"dlv_8", false, "now"},
		{"dlv_9", false, "now"}, {"dlv_10", false, "now"}, {"dlv_11", true, "now"},
	} {
		var parked, later bool
		if err := pool.QueryRow(ctx, `select parked, next_attempt_at > now() + interval '30 minutes' from deliveries where id = $1`, want.id).
			Scan(&parked, &later); err != nil {
			t.Fatal(err)
		}
		if parked != want.parked || later != (want.due == "later") {
			t.Errorf("%s: parked %v, due later %v; want parked %v, due %s", want.id, parked, later, want.parked, want.due)
		}
	}
	families, err := registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var withdrawn float64
	for _, f := range families {
		if f.GetName() == "hookline_deliveries_withdrawn_total" {
			withdrawn = f.GetMetric()[0].GetCounter().GetValue()
		}
	}
	if withdrawn != 2 {
		t.Errorf("%v deliveries counted withdrawn, want 2 (dlv_1, dlv_11)", withdrawn)
	}
}

// One withdrawal at a time in a process (each holds one of the workers' few
// connections throughout), and a destination's not again until
// withdrawEvery after the last ended.
func TestWithdrawalsOneAtATime(t *testing.T) {
	l := newLimiter(50, 25, 100)
	if !l.withdrawDue("we_a") {
		t.Fatal("the first withdrawal was refused")
	}
	if l.withdrawDue("we_b") {
		t.Error("a second withdrawal started while one was under way")
	}
	l.withdrew("we_a")
	if l.withdrawDue("we_a") {
		t.Error("we_a was withdrawn again at once")
	}
	if !l.withdrawDue("we_b") {
		t.Error("we_b was refused once the other withdrawal ended")
	}
	l.withdrew("we_b")
	l.withdrawn["we_a"] = time.Now().Add(-withdrawEvery)
	if !l.withdrawDue("we_a") {
		t.Error("we_a was refused withdrawEvery after its last withdrawal")
	}
}
