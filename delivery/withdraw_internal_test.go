package delivery

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/hookline/hookline/migrations/dbtest"
)

// A withdrawal takes exactly the destination's queued automatic jobs that
// no one else holds, and those an earlier withdrawal set aside, and parks
// exactly their deliveries still owed at the job's count: not a manual
// retry, a probe, a scheduled retry, a running or locked job, nor another
// destination's; not a delivery settled, moved on by another job, or parked
// under a drain's lease (whose lease it keeps). While another withdrawal of
// the process parks, it only sets the same jobs aside: scheduled a minute
// ahead at setAsidePriority, their deliveries untouched.
func TestWithdrawTakesOnlyTheQueue(t *testing.T) {
	for _, parks := range []bool{true, false} {
		t.Run(map[bool]string{true: "parks", false: "another withdrawal parks"}[parks], func(t *testing.T) {
			withdrawOnce(t, parks)
		})
	}
}

// withdrawOnce is TestWithdrawTakesOnlyTheQueue: the withdrawal parks, or
// (parks false) another of the process is parking.
func withdrawOnce(t *testing.T, parks bool) {
	ctx := context.Background()
	pool := dbtest.NewPool(t)
	m := dbtest.Merchant(t, pool, "Withdraw")
	for _, d := range []struct {
		id, dest, status string
		count            int
		parked, leased   bool // leased: next_attempt_at an hour ahead, a drain's lease
	}{
		{"dlv_1", "we_x", "pending", 0, false, false},   // owed: parked
		{"dlv_2", "we_x", "pending", 1, false, false},   // its attempt made by another job
		{"dlv_3", "we_x", "pending", 0, true, true},     // parked, claimed by a drain
		{"dlv_4", "we_x", "succeeded", 0, false, false}, // settled
		{"dlv_5", "we_x", "pending", 0, false, false},   // a manual retry's
		{"dlv_6", "we_x", "pending", 0, false, false},   // a probe's
		{"dlv_7", "we_x", "pending", 0, false, false},   // a scheduled retry's
		{"dlv_8", "we_x", "pending", 0, false, false},   // a running job's
		{"dlv_9", "we_x", "pending", 0, false, false},   // a job River is fetching
		{"dlv_10", "we_y", "pending", 0, false, false},  // another destination's
		{"dlv_11", "we_x", "pending", 0, false, false},  // set aside by an earlier withdrawal
	} {
		if _, err := pool.Exec(ctx, `insert into deliveries (id, merchant_id, livemode, event_id, endpoint_id, url, status, attempt_count,
			parked, next_attempt_at, created_at, updated_at)
			values ($1, $2, false, 'evt_' || $1, $3, 'https://example.com/', $4, $5, $6, now() + case when $7 then interval '1 hour' else interval '0' end, now(), now())`,
			d.id, m.ID, d.dest, d.status, d.count, d.parked, d.leased); err != nil {
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
			values ($1, 'deliver', 25, 'delivery', $2::text::river_job_state, $3::int,
				now() + case when $2::text = 'scheduled' and $3::int = 1 then interval '1 hour' else interval '0' end,
				case when $2::text = 'running' then 1 else 0 end, case when $2::text = 'running' then now() end) returning id`,
			args, state, priority).Scan(&id); err != nil {
			t.Fatal(err)
		}
		return id
	}
	queued := []int64{ // withdrawn, or set aside
		job(`{"delivery_ids": ["dlv_1", "dlv_2"], "counts": [0, 0], "destination": "we_x"}`, "available"),
		job(`{"delivery_ids": ["dlv_3"], "counts": [0], "destination": "we_x"}`, "available"),
		job(`{"delivery_ids": ["dlv_4"], "counts": [0], "destination": "we_x"}`, "available"),
	}
	setAside := job(`{"delivery_ids": ["dlv_11"], "counts": [0], "destination": "we_x"}`, "set aside")
	fetched := job(`{"delivery_ids": ["dlv_9"], "counts": [0], "destination": "we_x"}`, "available")
	kept := map[int64]string{ // left as they were
		job(`{"delivery_ids": ["dlv_5"], "counts": [0], "destination": "we_x", "manual": true}`, "available"): "available",
		job(`{"delivery_ids": ["dlv_6"], "counts": [0], "destination": "we_x", "probe": true}`, "available"):  "available",
		job(`{"delivery_ids": ["dlv_7"], "counts": [0], "destination": "we_x"}`, "scheduled"):                 "scheduled",
		job(`{"delivery_ids": ["dlv_8"], "counts": [0], "destination": "we_x"}`, "running"):                   "running",
		job(`{"delivery_ids": ["dlv_10"], "counts": [0], "destination": "we_y"}`, "available"):                "available",
		fetched: "available",
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
	if !parks && !w.limiter.startParking() {
		t.Fatal("no other withdrawal parks: parking refused")
	}
	withdrawCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	w.withdraw(withdrawCtx, "we_x")
	if withdrawCtx.Err() != nil {
		t.Fatal("the withdrawal waited for the job River is fetching")
	}
	if err := fetch.Rollback(ctx); err != nil {
		t.Fatal(err)
	}

	// Each job's state, priority and whether it waits about a minute.
	type jobState struct {
		state    string
		priority int
		minute   bool
	}
	jobs := map[int64]jobState{}
	rows, err := pool.Query(ctx, `select id, state::text, priority, scheduled_at between now() + interval '50 seconds' and now() + interval '70 seconds'
		from river_job`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var id int64
		var s jobState
		if err := rows.Scan(&id, &s.state, &s.priority, &s.minute); err != nil {
			t.Fatal(err)
		}
		jobs[id] = s
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	for id, state := range kept {
		if s, ok := jobs[id]; !ok || s.state != state || s.priority != 1 {
			t.Errorf("job %d: %+v (there: %v), want left %s at priority 1", id, s, ok, state)
		}
	}
	for _, id := range queued {
		s, ok := jobs[id]
		if parks && ok {
			t.Errorf("job %d left %+v, want it withdrawn", id, s)
		}
		if !parks && (s != jobState{"scheduled", setAsidePriority, true}) {
			t.Errorf("job %d: %+v (there: %v), want set aside: scheduled a minute ahead at priority %d", id, s, ok, setAsidePriority)
		}
	}
	if _, ok := jobs[setAside]; ok == parks {
		t.Errorf("the job set aside earlier is there %v, want %v", ok, !parks)
	}

	for _, want := range []struct {
		id     string
		parked bool
		due    string // when next_attempt_at is: "now" or "later"
	}{
		{"dlv_1", parks, "now"}, {"dlv_2", false, "now"}, {"dlv_3", true, "later"}, {"dlv_4", false, "now"},
		{"dlv_5", false, "now"}, {"dlv_6", false, "now"}, {"dlv_7", false, "now"}, {"dlv_8", false, "now"},
		{"dlv_9", false, "now"}, {"dlv_10", false, "now"}, {"dlv_11", parks, "now"},
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
	if want := map[bool]float64{true: 2, false: 0}[parks]; withdrawn != want {
		t.Errorf("%v deliveries counted withdrawn, want %v", withdrawn, want)
	}
}

// A destination's withdrawal runs while another's does (setting a queue
// aside is cheap and must not wait), but not twice at once, nor again until
// withdrawEvery after it ended; and one withdrawal at a time parks, each
// holding one of the workers' few connections throughout.
func TestWithdrawalsTakeTurns(t *testing.T) {
	l := newLimiter(50, 25, 100)
	if !l.withdrawDue("we_a") || !l.withdrawDue("we_b") {
		t.Fatal("a withdrawal was refused while another destination's was under way")
	}
	if l.withdrawDue("we_a") {
		t.Error("we_a was withdrawn twice at once")
	}
	if !l.startParking() {
		t.Fatal("the first withdrawal could not park")
	}
	if l.startParking() {
		t.Error("two withdrawals parked at once")
	}
	l.stopParking()
	if !l.startParking() {
		t.Error("parking was refused once the other withdrawal had stopped")
	}
	l.stopParking()
	l.withdrew("we_a")
	if l.withdrawDue("we_a") {
		t.Error("we_a was withdrawn again at once")
	}
	l.withdrawn["we_a"] = time.Now().Add(-withdrawEvery)
	if !l.withdrawDue("we_a") {
		t.Error("we_a was refused withdrawEvery after its last withdrawal")
	}
}
