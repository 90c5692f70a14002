package delivery_test

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"

	"github.com/hookline/hookline/delivery"
)

// TestReconcilerRequeuesOwnerlessDeliveries: pending deliveries whose job
// River finished (discarded, completed, cancelled) or that never had one get
// a new job and are delivered; those a job, the release or the schedule
// still owns are left alone, and a second run finds nothing more. The
// windows are of 2 deliveries, so that a run walks several.
func TestReconcilerRequeuesOwnerlessDeliveries(t *testing.T) {
	t.Parallel()

	ctx := context.Background()
	e := newEnv(t, delivery.Schedule{time.Hour}, 5*time.Second)
	r := newReceiver(t, nil)
	e.endpoint(r.srv.URL, []string{"checkout.created"})
	e.pay(nil)
	e.waitDeliveries()

	// Deliveries of the same event, each in a state to check, and the River
	// job of each that has one (jobState), in that state.
	cases := []struct {
		id, status string
		parked     bool
		due        time.Duration // next_attempt_at, from now
		jobState   string
		requeue    bool
	}{
		{"dlv_a_no_job", "pending", false, -time.Hour, "", true},
		{"dlv_b_discarded", "pending", false, -time.Hour, "discarded", true},
		{"dlv_c_completed", "pending", false, -time.Hour, "completed", true},
		{"dlv_d_cancelled", "pending", false, -time.Hour, "cancelled", true},
		{"dlv_e_scheduled", "pending", false, -time.Hour, "scheduled", false},
		{"dlv_f_retryable", "pending", false, -time.Hour, "retryable", false},
		{"dlv_g_running", "pending", false, -time.Hour, "running", false},
		{"dlv_h_parked", "pending", true, -time.Hour, "", false},
		{"dlv_i_recent", "pending", false, -5 * time.Second, "", false},
		{"dlv_j_failed", "failed", false, -time.Hour, "", false},
	}
	inserter, err := river.NewClient(riverpgxv5.New(e.pool), &river.Config{})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cases {
		// The parked one's destination (its own URL) is paused, so that the
		// release leaves it parked throughout.
		if _, err := e.pool.Exec(ctx, `insert into deliveries (id, merchant_id, livemode, event_id, endpoint_id, url, status,
				next_attempt_at, parked, created_at, updated_at)
			select $1, merchant_id, livemode, event_id, case when $3 then null else endpoint_id end,
				case when $3 then 'http://127.0.0.1:9/parked' else url end, $2, now() + $4::interval, $3, now() - interval '2 hours', now()
			from deliveries limit 1`, c.id, c.status, c.parked, c.due); err != nil {
			t.Fatal(err)
		}
		if c.jobState == "" {
			continue
		}
		res, err := inserter.Insert(ctx, delivery.DeliverArgs{DeliveryIDs: []string{c.id}, Counts: []int{0}},
			&river.InsertOpts{Queue: delivery.QueueDelivery, ScheduledAt: time.Now().Add(time.Hour)})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := e.pool.Exec(ctx, `update river_job set state = $2::river_job_state,
				finalized_at = case when $2 in ('discarded', 'completed', 'cancelled') then now() end,
				attempted_at = case when $2 = 'running' then now() end, attempt = case when $2 = 'running' then 1 else 0 end
			where id = $1`, res.Job.ID, c.jobState); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := e.pool.Exec(ctx, `insert into delivery_destinations (key, paused_until)
		values ('url:' || md5('http://127.0.0.1:9/parked'), now() + interval '1 hour')`); err != nil {
		t.Fatal(err)
	}

	registry := prometheus.NewRegistry()
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	w := delivery.NewReconcileWorker(e.pool, e.dispatcher, delivery.NewMetrics(registry, e.pool, logger), logger, 5*time.Second)
	delivery.SetReconcileWindow(w, 2)
	var started time.Time
	if err := e.pool.QueryRow(ctx, `select now()`).Scan(&started); err != nil {
		t.Fatal(err)
	}
	for run := range 2 {
		if err := w.Work(ctx, &river.Job[delivery.ReconcileArgs]{}); err != nil {
			t.Fatal(err)
		}
		if n := metricValue(t, registry, "hookline_deliveries_requeued_total", nil); n != 4 {
			t.Fatalf("after run %d: %v deliveries requeued, want 4", run+1, n)
		}
	}
	for _, c := range cases {
		var jobs int
		if err := e.pool.QueryRow(ctx, `select count(*) from river_job where kind = 'deliver' and created_at >= $2
			and args @> jsonb_build_object('delivery_ids', jsonb_build_array($1::text), 'counts', jsonb_build_array(0))`,
			c.id, started).Scan(&jobs); err != nil {
			t.Fatal(err)
		}
		if want := map[bool]int{true: 1, false: 0}[c.requeue]; jobs != want {
			t.Errorf("%s: %d new jobs, want %d", c.id, jobs, want)
		}
	}

	// The requeued deliveries are made like any other.
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		var done int
		if err := e.pool.QueryRow(ctx, `select count(*) from deliveries where id = any($1) and status = 'succeeded'`,
			[]string{"dlv_a_no_job", "dlv_b_discarded", "dlv_c_completed", "dlv_d_cancelled"}).Scan(&done); err != nil {
			t.Fatal(err)
		}
		if done == 4 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of the 4 requeued deliveries succeeded after 30s", done)
		}
	}
	if n := len(r.requests()); n != 5 {
		t.Errorf("the receiver got %d requests, want 5 (the first delivery and the 4 requeued)", n)
	}
	var stillPending int
	if err := e.pool.QueryRow(ctx, `select count(*) from deliveries where status = 'pending'`).Scan(&stillPending); err != nil {
		t.Fatal(err)
	}
	if stillPending != 5 {
		t.Errorf("%d deliveries pending, want the 5 still owned (scheduled, retryable, running, parked, recent)", stillPending)
	}
}
