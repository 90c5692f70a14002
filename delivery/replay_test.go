package delivery_test

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/hookline/hookline/delivery"
	"github.com/hookline/hookline/events"
	"github.com/hookline/hookline/migrations/dbtest"
)

// replay runs a replay request as the API does: its plan on the pool, then
// its start in a committed transaction.
func (e *env) replay(scope events.Scope, endpointID string, p delivery.ReplayParams) (*delivery.Replay, error) {
	plan, err := e.dispatcher.PlanReplay(context.Background(), e.pool, scope, endpointID, p)
	if err != nil {
		return nil, err
	}
	var r *delivery.Replay
	err = pgx.BeginFunc(context.Background(), e.pool, func(tx pgx.Tx) (err error) {
		r, err = e.dispatcher.StartReplay(context.Background(), tx, plan)
		return err
	})
	return r, err
}

// counts is how many deliveries and River jobs the database holds.
func (e *env) counts() [2]int {
	e.t.Helper()
	var c [2]int
	if err := e.pool.QueryRow(context.Background(), `select (select count(*) from deliveries), (select count(*) from river_job
		where kind <> 'release_parked')`).Scan(&c[0], &c[1]); err != nil {
		e.t.Fatal(err)
	}
	return c
}

// receivedEvents is the event id of each request a receiver got, in order.
func receivedEvents(t *testing.T, r *receiver) []string {
	t.Helper()
	var ids []string
	for _, req := range r.requests() {
		var e struct{ ID string }
		if err := json.Unmarshal(req.body, &e); err != nil {
			t.Fatalf("delivery body is not JSON: %s", req.body)
		}
		ids = append(ids, e.ID)
	}
	return ids
}

// waitReceived waits until r has had n requests.
func waitReceived(t *testing.T, r *receiver, n int) {
	t.Helper()
	for deadline := time.Now().Add(120 * time.Second); len(r.requests()) < n; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the receiver got %d requests, want %d", len(r.requests()), n)
		}
	}
}

// TestReplayBackfillsANewEndpoint: events of a merchant created before an
// endpoint existed reach it, signed with its secret, once replayed: those its
// subscription names unless the request names types, whatever their earlier
// deliveries; a dry run and a refused request change nothing.
func TestReplayBackfillsANewEndpoint(t *testing.T) {
	t.Parallel()

	e := newEnv(t, delivery.Schedule{}, 5*time.Second)
	old := newReceiver(t, nil)
	e.endpoint(old.srv.URL, []string{delivery.AllEvents})
	e.pay(nil)
	e.pay(nil) // 8 events: 2 of each of checkout.created, payment_attempt.created, payment_attempt.succeeded, checkout.paid
	e.waitDeliveries()
	other := events.Scope{MerchantID: dbtest.Merchant(t, e.pool, "Another merchant").ID}
	e.payIn(other, nil)                                                        // events of another merchant, never replayed here
	e.payIn(events.Scope{MerchantID: e.scope.MerchantID, Livemode: true}, nil) // nor of the other mode

	r := newReceiver(t, nil)
	ep := e.endpoint(r.srv.URL, []string{string(events.CheckoutPaid)})
	r.verifyWith(ep.Secret)
	since := time.Now().Add(-time.Hour)
	before := e.counts()

	dry, err := e.replay(e.scope, ep.ID, delivery.ReplayParams{Since: since, Until: time.Now().Add(time.Minute), DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	if *dry != (delivery.Replay{Matched: 2}) || e.counts() != before {
		t.Fatalf("dry run %+v and %v deliveries and jobs; want matched 2, queued 0, and %v unchanged", dry, e.counts(), before)
	}

	var invalid *events.InvalidError
	for _, c := range []struct {
		name  string
		p     delivery.ReplayParams
		param string
	}{
		{"a window over 30 days", delivery.ReplayParams{Since: time.Now().Add(-31 * 24 * time.Hour), Until: time.Now()}, "since"},
		{"since after until", delivery.ReplayParams{Since: since, Until: since.Add(-time.Second)}, "until"},
		{"since equal to until", delivery.ReplayParams{Since: since, Until: since}, "until"},
		{"since in the future", delivery.ReplayParams{Since: time.Now().Add(time.Hour), Until: time.Now().Add(2 * time.Hour)}, "since"},
		{"an unknown type", delivery.ReplayParams{Since: since, Until: time.Now(), Types: []string{"checkout.paid", "checkout.refunded"}}, "types"},
		{"no type", delivery.ReplayParams{Since: since, Until: time.Now(), Types: []string{}}, "types"},
		{"every type, as a subscription says it", delivery.ReplayParams{Since: since, Until: time.Now(), Types: []string{delivery.AllEvents}}, "types"},
	} {
		if _, err := e.replay(e.scope, ep.ID, c.p); !errors.As(err, &invalid) || invalid.Param != c.param {
			t.Errorf("%s: %v, want an InvalidError naming %s", c.name, err, c.param)
		}
	}
	if _, err := e.replay(other, ep.ID, delivery.ReplayParams{Since: since, Until: time.Now()}); !errors.Is(err, events.ErrNotFound) {
		t.Errorf("another merchant's replay to the endpoint: %v, want ErrNotFound", err)
	}
	if _, err := e.replay(events.Scope{MerchantID: e.scope.MerchantID, Livemode: true}, ep.ID,
		delivery.ReplayParams{Since: since, Until: time.Now()}); !errors.Is(err, events.ErrNotFound) {
		t.Errorf("a replay to the endpoint in live mode: %v, want ErrNotFound", err)
	}
	if e.counts() != before {
		t.Fatalf("refused replays changed deliveries and jobs: %v, want %v", e.counts(), before)
	}

	// The subscription's types: the two checkout.paid events, signed.
	rep, err := e.replay(e.scope, ep.ID, delivery.ReplayParams{Since: since, Until: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	if *rep != (delivery.Replay{Matched: 2, Queued: 2}) {
		t.Fatalf("replay %+v, want matched and queued 2", rep)
	}
	waitReceived(t, r, 2)
	if got := r.types(); !slices.Equal(got, []string{"checkout.paid", "checkout.paid"}) { // sorted, schema-checked
		t.Fatalf("the new endpoint received %v, want the two checkout.paid events", got)
	}

	// Types named: those, whatever the subscription and the earlier
	// deliveries (the checkout.paid events are replayed again).
	rep, err = e.replay(e.scope, ep.ID, delivery.ReplayParams{Since: since, Until: time.Now(),
		Types: []string{"checkout.created", "checkout.paid", "checkout.created"}})
	if err != nil {
		t.Fatal(err)
	}
	if *rep != (delivery.Replay{Matched: 4, Queued: 4}) {
		t.Fatalf("replay of two types %+v, want matched and queued 4", rep)
	}
	waitReceived(t, r, 6)
	if got := r.types(); !slices.Equal(got, []string{"checkout.created", "checkout.created", "checkout.paid", "checkout.paid", "checkout.paid", "checkout.paid"}) {
		t.Fatalf("the endpoint received %v after the replay of two types, want two checkout.created and four checkout.paid", got)
	}
	mine, err := events.ListEvents(context.Background(), e.pool, e.scope, "", events.Page{Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, evt := range mine.Data {
		ids = append(ids, evt.ID)
	}
	for _, id := range receivedEvents(t, r) {
		if !slices.Contains(ids, id) {
			t.Errorf("the endpoint received %s, not one of its merchant's test-mode events", id)
		}
	}
	if n := len(old.requests()); n != 8 {
		t.Errorf("the first endpoint received %d requests, want its 8 only", n)
	}

	// A disabled endpoint is refused: its deliveries would wait unsent.
	if _, err := e.pool.Exec(context.Background(), `update webhook_endpoints set status = 'disabled' where id = $1`, ep.ID); err != nil {
		t.Fatal(err)
	}
	var state *events.StateError
	if _, err := e.replay(e.scope, ep.ID, delivery.ReplayParams{Since: since, Until: time.Now()}); !errors.As(err, &state) {
		t.Fatalf("a replay to a disabled endpoint: %v, want a StateError", err)
	}
}

// TestReplayLeavesOutOtherEndpointsTestEvents: a test event goes to its own
// endpoint only (contract §6), replays included. Endpoint A gets a test
// event; a replay of its type to endpoint B neither counts nor sends it,
// while a replay to A counts and sends it again.
func TestReplayLeavesOutOtherEndpointsTestEvents(t *testing.T) {
	t.Parallel()

	e := newEnv(t, delivery.Schedule{}, 5*time.Second)
	ra, rb := newReceiver(t, nil), newReceiver(t, nil)
	a := e.endpoint(ra.srv.URL, []string{string(events.CheckoutPaid)})
	b := e.endpoint(rb.srv.URL, []string{string(events.CheckoutPaid)})
	since := time.Now().Add(-time.Hour)
	test := e.sendTestEvent(a.ID, events.CheckoutPaid)
	e.pay(nil) // one real checkout.paid event, delivered to both
	waitReceived(t, ra, 2)
	waitReceived(t, rb, 1)
	e.waitDeliveries()

	rep, err := e.replay(e.scope, b.ID, delivery.ReplayParams{Since: since, Until: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	if *rep != (delivery.Replay{Matched: 1, Queued: 1}) {
		t.Fatalf("replay to B %+v, want the real event only: matched and queued 1", rep)
	}
	waitReceived(t, rb, 2)
	e.waitDeliveries()
	for _, id := range receivedEvents(t, rb) {
		if id == test.Event {
			t.Fatalf("endpoint B received endpoint A's test event %s", id)
		}
	}

	rep, err = e.replay(e.scope, a.ID, delivery.ReplayParams{Since: since, Until: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	if *rep != (delivery.Replay{Matched: 2, Queued: 2}) {
		t.Fatalf("replay to A %+v, want its test event and the real event: matched and queued 2", rep)
	}
	waitReceived(t, ra, 4)
	e.waitDeliveries()
	if n := len(rb.requests()); n != 2 {
		t.Fatalf("endpoint B received %d requests, want 2", n)
	}
	var tests int
	for _, id := range receivedEvents(t, ra) {
		if id == test.Event {
			tests++
		}
	}
	if tests != 2 {
		t.Fatalf("endpoint A received its test event %d times, want 2 (sent, then replayed)", tests)
	}
}

// TestReplayCountTimesOut: a window the request cannot count within its
// timeout is a 400 naming since, and nothing is written. The count is made
// to wait on a lock that a transaction holds on events.
func TestReplayCountTimesOut(t *testing.T) {
	t.Parallel()

	ctx := context.Background()
	e := newEnv(t, delivery.Schedule{}, 5*time.Second)
	ep := e.endpoint(newReceiver(t, nil).srv.URL, []string{delivery.AllEvents})
	e.pay(nil)
	before := e.counts()
	lock, err := e.pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Rollback(ctx) //nolint:errcheck // only frees the connection
	if _, err := lock.Exec(ctx, `lock table events in access exclusive mode`); err != nil {
		t.Fatal(err)
	}
	d := delivery.NewDispatcher(nil, nil)
	delivery.SetReplayCountTimeout(d, 100*time.Millisecond)
	_, err = d.PlanReplay(ctx, e.pool, e.scope, ep.ID, delivery.ReplayParams{Since: time.Now().Add(-time.Hour), Until: time.Now()})
	var invalid *events.InvalidError
	if !errors.As(err, &invalid) || invalid.Param != "since" || !strings.Contains(invalid.Message, "smaller windows") {
		t.Fatalf("a count that timed out: %v, want an InvalidError naming since that suggests smaller windows", err)
	}
	if err := lock.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	if e.counts() != before {
		t.Fatalf("a refused replay changed deliveries and jobs: %v, want %v", e.counts(), before)
	}
}

// TestReplayStopsWhenItsEndpointIsDisabled: a replay whose endpoint is
// disabled, or deleted, between its request's count (which holds no lock)
// and its first batch is refused, and creates nothing.
func TestReplayStopsWhenItsEndpointIsDisabled(t *testing.T) {
	t.Parallel()

	ctx := context.Background()
	e := newEnv(t, delivery.Schedule{}, 5*time.Second)
	ep := e.endpoint(newReceiver(t, nil).srv.URL, []string{delivery.AllEvents})
	e.pay(nil)
	e.waitDeliveries()
	plan, err := e.dispatcher.PlanReplay(ctx, e.pool, e.scope, ep.ID, delivery.ReplayParams{Since: time.Now().Add(-time.Hour), Until: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	before := e.counts()
	if _, err := e.pool.Exec(ctx, `update webhook_endpoints set status = 'disabled' where id = $1`, ep.ID); err != nil {
		t.Fatal(err)
	}
	var state *events.StateError
	err = pgx.BeginFunc(ctx, e.pool, func(tx pgx.Tx) error {
		_, err := e.dispatcher.StartReplay(ctx, tx, plan)
		return err
	})
	if !errors.As(err, &state) {
		t.Fatalf("a replay started after its endpoint was disabled: %v, want a StateError", err)
	}
	if _, err := e.pool.Exec(ctx, `update webhook_endpoints set deleted_at = now() where id = $1`, ep.ID); err != nil {
		t.Fatal(err)
	}
	err = pgx.BeginFunc(ctx, e.pool, func(tx pgx.Tx) error {
		_, err := e.dispatcher.StartReplay(ctx, tx, plan)
		return err
	})
	if !errors.Is(err, events.ErrNotFound) {
		t.Fatalf("a replay started after its endpoint was deleted: %v, want ErrNotFound", err)
	}
	if e.counts() != before {
		t.Fatalf("refused replays changed deliveries and jobs: %v, want %v", e.counts(), before)
	}
}

// TestReplayStopsBetweenBatches: a replay of two batches whose endpoint is
// disabled after the first creates nothing more, and its job logs that the
// replay stopped, and why, not that it is done.
func TestReplayStopsBetweenBatches(t *testing.T) {
	t.Parallel()

	ctx := context.Background()
	log := &dbtest.LogBuffer{}
	e := newEnvWith(t, envOptions{timeout: 5 * time.Second, log: log})
	ep := e.endpoint(newReceiver(t, nil).srv.URL, []string{string(events.CheckoutPaid)})
	minted := events.FirstIDAt(events.PrefixEvent, time.Now().Add(-time.Hour))[:len("evt_")+10]
	if _, err := e.pool.Exec(ctx, `insert into events (id, merchant_id, livemode, type, payload, created_at)
		select $1 || lpad(g::text, 16, '0'), $2, false, 'checkout.paid', '{}'::bytea, now() - interval '1 hour'
		from generate_series(1, 1500) g`, minted, e.scope.MerchantID); err != nil {
		t.Fatal(err)
	}
	plan, err := e.dispatcher.PlanReplay(ctx, e.pool, e.scope, ep.ID, delivery.ReplayParams{Since: time.Now().Add(-2 * time.Hour), Until: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	e.tx(func(tx pgx.Tx) error {
		if _, err := e.dispatcher.StartReplay(ctx, tx, plan); err != nil {
			return err
		}
		// The next batch's job waits until the endpoint is disabled.
		_, err := tx.Exec(ctx, `update river_job set state = 'scheduled', scheduled_at = now() + interval '1 hour' where kind = 'replay_events'`)
		if err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `update webhook_endpoints set status = 'disabled' where id = $1`, ep.ID)
		return err
	})
	if _, err := e.pool.Exec(ctx, `update river_job set state = 'available', scheduled_at = now() where kind = 'replay_events'`); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(60 * time.Second); !strings.Contains(log.String(), "replay stopped"); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no replay stopped line in the log:\n%s", log.String())
		}
	}
	line := log.String()[strings.Index(log.String(), "replay stopped"):]
	line = line[:strings.IndexByte(line, '\n')]
	if !strings.Contains(line, `reason="endpoint disabled"`) || !strings.Contains(line, "queued=1000") || strings.Contains(log.String(), "replay done") {
		t.Fatalf("the replay's log line %q, want the reason and the 1000 queued, and no replay done", line)
	}
	var n int
	if err := e.pool.QueryRow(ctx, `select count(*) from deliveries where endpoint_id = $1`, ep.ID).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 1000 {
		t.Fatalf("%d deliveries to the endpoint, want the first batch's 1000 only", n)
	}
}

// TestReplayResumesAfterACrash plays a replay of 2,500 events (three
// batches) whose worker process dies while it works the second batch: the
// job's transaction is lost with it, River runs the job again once the
// process is back, and every event of the window reaches the endpoint
// exactly once; events outside the window or of another type do not.
func TestReplayResumesAfterACrash(t *testing.T) {
	t.Parallel()

	ctx := context.Background()
	e := newEnv(t, delivery.Schedule{}, 5*time.Second)
	r := newReceiver(t, nil)
	ep := e.endpoint(r.srv.URL, []string{string(events.CheckoutPaid)})
	r.verifyWith(ep.Secret)
	const inWindow = 2500
	minted := events.FirstIDAt(events.PrefixEvent, time.Now().Add(-3*time.Hour))[:len("evt_")+10]
	earlier := events.FirstIDAt(events.PrefixEvent, time.Now().Add(-30*time.Hour))[:len("evt_")+10]
	if _, err := e.pool.Exec(ctx, `insert into events (id, merchant_id, livemode, type, payload, created_at)
		select id, $2, false, type, ('{"id":"' || id || '","object":"event","type":"' || type || '"}')::bytea, created_at
		from (select case when g <= $3::int + 10 then $1 || lpad(g::text, 16, '0') else $4 || lpad(g::text, 16, '0') end as id,
			case when g <= $3::int or g > $3::int + 10 then 'checkout.paid' else 'checkout.created' end as type,
			case when g <= $3::int + 10 then now() - interval '3 hours' else now() - interval '30 hours' end as created_at
			from generate_series(1, $3::int + 20) g) x`, minted, e.scope.MerchantID, inWindow, earlier); err != nil {
		t.Fatal(err)
	}

	// The request makes the first batch; its next job is held back until
	// the first batch is delivered, so that no delivery is in flight when the
	// process dies.
	plan, err := e.dispatcher.PlanReplay(ctx, e.pool, e.scope, ep.ID, delivery.ReplayParams{Since: time.Now().Add(-24 * time.Hour), Until: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	var rep *delivery.Replay
	e.tx(func(tx pgx.Tx) (err error) {
		if rep, err = e.dispatcher.StartReplay(ctx, tx, plan); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `update river_job set state = 'scheduled', scheduled_at = now() + interval '1 hour' where kind = 'replay_events'`)
		return err
	})
	if *rep != (delivery.Replay{Matched: inWindow, Queued: 1000}) {
		t.Fatalf("replay %+v, want matched %d and queued 1000 (the first batch)", rep, inWindow)
	}
	waitReceived(t, r, 1000)
	e.waitDeliveries() // and recorded

	// The second batch's job waits for the endpoint, which a transaction
	// holds, and its process dies meanwhile.
	lock, err := e.pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Rollback(ctx) //nolint:errcheck // rolled back below; this only frees the connection on failure
	if _, err := lock.Exec(ctx, `select from webhook_endpoints where id = $1 for update`, ep.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := e.pool.Exec(ctx, `update river_job set state = 'available', scheduled_at = now() where kind = 'replay_events'`); err != nil {
		t.Fatal(err)
	}
	dbtest.AwaitBlocked(t, e.pool, lock, "the replay's second job never reached its endpoint")
	if err := e.client.StopAndCancel(ctx); err != nil {
		t.Fatal(err)
	}
	if err := lock.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	var deliveries int
	if err := e.pool.QueryRow(ctx, `select count(*) from deliveries where endpoint_id = $1`, ep.ID).Scan(&deliveries); err != nil {
		t.Fatal(err)
	}
	if deliveries != 1000 {
		t.Fatalf("%d deliveries after the crash, want the first batch's 1000", deliveries)
	}
	// The job is still to be done (River puts a job its stopping client
	// cancelled back in the queue; a process that died outright leaves it
	// running, for River's rescuer): the process comes back and works it.
	var state string
	if err := e.pool.QueryRow(ctx, `select string_agg(state::text, ',') from river_job where kind = 'replay_events'`).Scan(&state); err != nil {
		t.Fatal(err)
	}
	if state != "available" && state != "retryable" {
		t.Fatalf("the replay's jobs after the crash: %s, want the one that died, to be run again", state)
	}
	if _, err := e.pool.Exec(ctx, `update river_job set scheduled_at = now() where kind = 'replay_events'`); err != nil {
		t.Fatal(err)
	}
	if err := e.client.Start(ctx); err != nil {
		t.Fatal(err)
	}
	waitReceived(t, r, inWindow)
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		var unfinished int
		if err := e.pool.QueryRow(ctx, `select count(*) from river_job where kind = 'replay_events' and state <> 'completed'`).Scan(&unfinished); err != nil {
			t.Fatal(err)
		}
		if unfinished == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d replay jobs unfinished", unfinished)
		}
	}
	got := receivedEvents(t, r)
	slices.Sort(got)
	if len(got) != inWindow || len(slices.Compact(got)) != inWindow {
		t.Fatalf("the endpoint received %d requests for %d events, want each of the %d once", len(receivedEvents(t, r)), len(slices.Compact(got)), inWindow)
	}
	for _, id := range got {
		if !strings.HasPrefix(id, minted) {
			t.Fatalf("the endpoint received %s, outside the window", id)
		}
	}
	if err := e.pool.QueryRow(ctx, `select count(*) from deliveries where endpoint_id = $1`, ep.ID).Scan(&deliveries); err != nil {
		t.Fatal(err)
	}
	if deliveries != inWindow {
		t.Fatalf("%d deliveries to the endpoint, want one for each of the %d events", deliveries, inWindow)
	}
}

// TestUndeliveredEvents: delivery_success=false lists exactly the scope's
// events that have a delivery not succeeded (pending or failed), newest
// first, a page at a time in both directions, with or without a type.
func TestUndeliveredEvents(t *testing.T) {
	t.Parallel()

	ctx := context.Background()
	e := newEnv(t, delivery.Schedule{}, 5*time.Second)
	r := newReceiver(t, nil)
	e.endpoint(r.srv.URL, []string{delivery.AllEvents})
	e.endpoint(r.srv.URL, []string{delivery.AllEvents})
	for range 4 {
		e.pay(nil)
	}
	e.waitDeliveries()
	other := events.Scope{MerchantID: dbtest.Merchant(t, e.pool, "Another merchant").ID}
	e.payIn(other, nil)
	e.payIn(events.Scope{MerchantID: e.scope.MerchantID, Livemode: true}, nil)
	// Events with one delivery failed, one pending and one with both of
	// theirs failed; every delivery of the other scopes is failed.
	all, err := events.ListEvents(ctx, e.pool, e.scope, "", events.Page{Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	if len(all.Data) != 16 {
		t.Fatalf("%d events, want 16", len(all.Data))
	}
	var want, wantPaid []string
	for i, evt := range all.Data { // newest first
		status := ""
		switch i % 4 {
		case 0:
			status = "failed"
		case 1:
			status = "pending"
		}
		if status == "" {
			continue
		}
		want = append(want, evt.ID)
		if evt.Type == events.CheckoutPaid {
			wantPaid = append(wantPaid, evt.ID)
		}
		if _, err := e.pool.Exec(ctx, `update deliveries set status = $2 where id = (select min(id) from deliveries where event_id = $1)`,
			evt.ID, status); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := e.pool.Exec(ctx, `update deliveries set status = 'failed' where event_id = $1`, want[0]); err != nil {
		t.Fatal(err)
	}
	if _, err := e.pool.Exec(ctx, `update deliveries set status = 'failed' where merchant_id = $1 or livemode`, other.MerchantID); err != nil {
		t.Fatal(err)
	}
	if len(wantPaid) == 0 {
		t.Fatal("no checkout.paid event among those changed")
	}

	for _, c := range []struct {
		name string
		t    events.EventType
		want []string
	}{{"every type", "", want}, {"checkout.paid", events.CheckoutPaid, wantPaid}} {
		t.Run(c.name, func(t *testing.T) {
			// Forward, two at a time, then back from the end.
			var got []string
			page := events.Page{Limit: 2}
			for {
				l, err := delivery.ListUndelivered(ctx, e.pool, e.scope, c.t, page)
				if err != nil {
					t.Fatal(err)
				}
				got = append(got, idsOf(l)...)
				if !l.HasMore {
					break
				}
				page.StartingAfter = l.Data[len(l.Data)-1].ID
			}
			if !slices.Equal(got, c.want) {
				t.Fatalf("forward: %v, want %v", got, c.want)
			}
			var back []string
			page = events.Page{Limit: 2, EndingBefore: c.want[len(c.want)-1]}
			for {
				l, err := delivery.ListUndelivered(ctx, e.pool, e.scope, c.t, page)
				if err != nil {
					t.Fatal(err)
				}
				back = append(idsOf(l), back...)
				if !l.HasMore {
					break
				}
				page.EndingBefore = l.Data[0].ID
			}
			if !slices.Equal(back, c.want[:len(c.want)-1]) {
				t.Fatalf("backward: %v, want %v", back, c.want[:len(c.want)-1])
			}
		})
	}
}

// idsOf is the ids of a page's events, in its order.
func idsOf(l *events.List[*events.Event]) []string {
	var ids []string
	for _, evt := range l.Data {
		ids = append(ids, evt.ID)
	}
	return ids
}

// TestFillEventTypes: deliveries not succeeded that lack their event's type
// (written before migration 016, or by an older process during a rolling
// upgrade) get it from the periodic fill, several batches in one run, and
// then appear in the reconciliation list by type; succeeded ones keep none.
func TestFillEventTypes(t *testing.T) {
	t.Parallel()

	ctx := context.Background()
	e := newEnv(t, delivery.Schedule{}, 5*time.Second)
	e.endpoint(newReceiver(t, nil).srv.URL, []string{delivery.AllEvents})
	for range 3 {
		e.pay(nil) // 4 events each
	}
	e.waitDeliveries()
	// As an older process writes them: no type. Two in three not succeeded.
	if _, err := e.pool.Exec(ctx, `update deliveries set event_type = null,
		status = case when id in (select id from deliveries order by id limit 4) then 'succeeded' else 'failed' end`); err != nil {
		t.Fatal(err)
	}
	paid, err := delivery.ListUndelivered(ctx, e.pool, e.scope, events.CheckoutPaid, events.Page{Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	if len(paid.Data) != 0 {
		t.Fatalf("%d checkout.paid events listed before the fill, want none (their deliveries have no type yet)", len(paid.Data))
	}

	w := delivery.NewFillEventTypesWorker(e.pool, slog.New(slog.DiscardHandler))
	delivery.SetFillBatch(w, 3) // 8 untyped deliveries: three batches
	if err := w.Work(ctx, nil); err != nil {
		t.Fatal(err)
	}
	var wrong, untypedSucceeded int
	if err := e.pool.QueryRow(ctx, `select count(*) filter (where d.status <> 'succeeded' and d.event_type is distinct from e.type),
		count(*) filter (where d.status = 'succeeded' and d.event_type is null)
		from deliveries d join events e on e.id = d.event_id`).Scan(&wrong, &untypedSucceeded); err != nil {
		t.Fatal(err)
	}
	if wrong != 0 || untypedSucceeded != 4 {
		t.Fatalf("after the fill: %d unsucceeded deliveries without their event's type (want 0), %d succeeded ones untyped (want 4)",
			wrong, untypedSucceeded)
	}
	if paid, err = delivery.ListUndelivered(ctx, e.pool, e.scope, events.CheckoutPaid, events.Page{Limit: 10}); err != nil {
		t.Fatal(err)
	}
	var want int
	if err := e.pool.QueryRow(ctx, `select count(distinct e.id) from deliveries d join events e on e.id = d.event_id
		where e.type = 'checkout.paid' and d.status <> 'succeeded'`).Scan(&want); err != nil {
		t.Fatal(err)
	}
	if want == 0 || len(paid.Data) != want {
		t.Fatalf("%d checkout.paid events listed after the fill, want %d (and some)", len(paid.Data), want)
	}
}
