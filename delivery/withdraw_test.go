package delivery_test

import (
	"context"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/hookline/hookline/delivery"
	"github.com/hookline/hookline/events"
)

// A burst of jobs queued for an endpoint that refuses connections: once the
// process finds it failing, the first job it refuses withdraws the rest from
// the queue and parks their deliveries, so that they stop standing in front
// of other jobs. Without the withdrawal every one of the 300 jobs is fetched,
// loaded and refused in turn. Nothing is lost: every delivery is still
// pending, and each is parked (the release's) or named by a job that will
// run.
func TestFailingDestinationsQueuedJobsAreWithdrawn(t *testing.T) {
	t.Parallel()
	e := newEnvWith(t, envOptions{schedule: delivery.Schedule{time.Minute}, timeout: time.Second, workers: 4})
	ctx := context.Background()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "http://" + l.Addr().String() + "/dead"
	l.Close()
	ep := e.endpoint(dead, []string{"checkout.created"})

	const burst = 300
	e.queueCheckouts(burst)
	var queued int
	if err := e.pool.QueryRow(ctx, `select count(*) from river_job where kind = 'deliver' and state = 'available'
		and args->>'destination' = $1`, ep.ID).Scan(&queued); err != nil {
		t.Fatal(err)
	}
	if queued != burst {
		t.Fatalf("%d jobs queued for the endpoint, want %d, each naming it", queued, burst)
	}
	if err := e.client.Start(ctx); err != nil {
		t.Fatal(err)
	}

	deadline := time.Now().Add(30 * time.Second)
	var left int
	for {
		if err := e.pool.QueryRow(ctx, `select count(*) from river_job where kind = 'deliver'
			and (state in ('available', 'running') or (state = 'scheduled' and priority = $1))`, delivery.SetAsidePriority).
			Scan(&left); err != nil {
			t.Fatal(err)
		}
		if left == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d delivery jobs still queued or running after 30s", left)
		}
		time.Sleep(20 * time.Millisecond)
	}
	var ran, pending, parked, stranded int
	if err := e.pool.QueryRow(ctx, `select
			(select count(*) from river_job where kind = 'deliver' and attempt > 0),
			count(*) filter (where d.status = 'pending'),
			count(*) filter (where d.parked),
			count(*) filter (where d.status = 'pending' and not d.parked and not exists (select 1 from river_job j
				where j.kind = 'deliver' and j.state in ('available', 'scheduled', 'running', 'retryable')
					and j.args->'delivery_ids' ? d.id))
		from deliveries d where d.endpoint_id = $1`, ep.ID).Scan(&ran, &pending, &parked, &stranded); err != nil {
		t.Fatal(err)
	}
	withdrawn := metricValue(t, e.registry, "hookline_deliveries_withdrawn_total", nil)
	t.Logf("%d of %d jobs ran; %d deliveries withdrawn; %d pending, %d parked", ran, burst, int(withdrawn), pending, parked)
	if pending != burst {
		t.Errorf("%d of %d deliveries pending, want all (one attempt each at most, retried a minute later)", pending, burst)
	}
	if stranded != 0 {
		t.Errorf("%d pending deliveries neither parked nor named by a job that will run", stranded)
	}
	if ran > burst/3 {
		t.Errorf("%d of the %d queued jobs ran, want the failing endpoint's queue withdrawn after the first few", ran, burst)
	}
	if int(withdrawn) != burst-ran {
		t.Errorf("%v deliveries withdrawn, want the %d whose jobs did not run", withdrawn, burst-ran)
	}
}

// A healthy destination that is only busy keeps its queue: its jobs past
// its places wait, then park for its admitted jobs to drain, and nothing is
// withdrawn (the release would hand its backlog back more slowly than its
// own jobs drain it).
func TestBusyHealthyDestinationKeepsItsQueue(t *testing.T) {
	t.Parallel()
	e := newEnvWith(t, envOptions{schedule: fast, timeout: 5 * time.Second, workers: 4, inFlight: 1})
	ctx := context.Background()
	busy := newReceiver(t, func(int, http.ResponseWriter) { time.Sleep(300 * time.Millisecond) })
	e.endpoint(busy.srv.URL, []string{"checkout.created"})
	const queued = 20
	e.queueCheckouts(queued)
	if err := e.client.Start(ctx); err != nil {
		t.Fatal(err)
	}
	for _, d := range e.waitDeliveries() {
		if d.Status != delivery.StatusSucceeded || d.AttemptCount != 1 {
			t.Errorf("delivery %s: %s after %d attempts, want succeeded after 1", d.ID, d.Status, d.AttemptCount)
		}
	}
	var ran int
	if err := e.pool.QueryRow(ctx, `select count(*) from river_job where kind = 'deliver' and attempt > 0`).Scan(&ran); err != nil {
		t.Fatal(err)
	}
	if n := metricValue(t, e.registry, "hookline_deliveries_withdrawn_total", nil); n != 0 {
		t.Errorf("%v deliveries of a healthy, busy destination withdrawn, want none", n)
	}
	if ran < queued {
		t.Errorf("%d of the %d queued jobs ran: the rest went another way", ran, queued)
	}
}

// queueCheckouts stops the River client and creates n checkouts, each in its
// own transaction, so with its own job: a burst queued while no worker
// runs. The test starts the client again.
func (e *env) queueCheckouts(n int) {
	e.t.Helper()
	ctx := context.Background()
	if err := e.client.Stop(ctx); err != nil {
		e.t.Fatal(err)
	}
	for range n {
		e.tx(func(tx pgx.Tx) error {
			_, err := e.service.CreateCheckout(ctx, tx, e.scope, events.CheckoutParams{Amount: "100", InvoiceCurrency: "usd"})
			return err
		})
	}
}
