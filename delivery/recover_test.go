package delivery_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/hookline/hookline/delivery"
	"github.com/hookline/hookline/events"
	"github.com/hookline/hookline/migrations/dbtest"
)

func TestParseWhen(t *testing.T) {
	t.Parallel()

	now := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		in      string
		want    time.Time
		wantErr bool
	}{
		{"6h", now.Add(-6 * time.Hour), false},
		{"90m", now.Add(-90 * time.Minute), false},
		{"2026-11-20T14:00:00Z", time.Date(2026, 11, 20, 14, 0, 0, 0, time.UTC), false},
		{"2026-11-20T14:00:00+02:00", time.Date(2026, 11, 20, 12, 0, 0, 0, time.UTC), false},
		{"-6h", time.Time{}, true},
		{"yesterday", time.Time{}, true},
		{"2026-11-20", time.Time{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			t.Parallel()

			got, err := delivery.ParseWhen(tt.in, now)
			if (err != nil) != tt.wantErr || !got.Equal(tt.want) {
				t.Fatalf("ParseWhen(%q) = %v, %v; want %v (error %v)", tt.in, got, err, tt.want, tt.wantErr)
			}
		})
	}
}

// TestRecoverAWindow plays an afternoon of failures: more failed deliveries
// than one batch, recovered with one call once the receiver is back; those
// outside the window stay failed.
func TestRecoverAWindow(t *testing.T) {
	t.Parallel()

	ctx := context.Background()
	e := newEnv(t, delivery.Schedule{}, 5*time.Second)
	r := newReceiver(t, nil)
	ep := e.endpoint(r.srv.URL, []string{"checkout.created"})
	e.pay(nil) // one event to hang the failed deliveries on
	e.waitDeliveries()
	base := len(r.requests())

	const inWindow, before = 2500, 10
	if _, err := e.pool.Exec(ctx, `insert into deliveries (id, merchant_id, livemode, event_id, endpoint_id, url, status,
		attempt_count, last_status_code, created_at, updated_at)
		select case when g <= $1::int then $3 else $4 end || lpad(g::text, 16, '0'), d.merchant_id, d.livemode, d.event_id, d.endpoint_id, d.url, 'failed', 1, 503,
			case when g <= $1::int then now() - interval '3 hours' else now() - interval '20 days' end, now()
		from deliveries d, generate_series(1, $1::int + $2::int) g limit $1::int + $2::int`, inWindow, before,
		idsMintedAt(-3*time.Hour), idsMintedAt(-20*24*time.Hour)); err != nil {
		t.Fatal(err)
	}

	recoverNow := func(since time.Time, dryRun bool) (*delivery.Recovery, error) {
		var rec *delivery.Recovery
		err := pgx.BeginFunc(ctx, e.pool, func(tx pgx.Tx) (err error) {
			rec, err = e.dispatcher.Recover(ctx, tx, &e.scope, ep.ID, since, time.Now(), dryRun)
			return err
		})
		return rec, err
	}
	var invalid *events.InvalidError
	if _, err := recoverNow(time.Now().Add(-15*24*time.Hour), true); !errors.As(err, &invalid) {
		t.Fatalf("a 15-day window gave %v, want an InvalidError", err)
	}
	other := events.Scope{MerchantID: dbtest.Merchant(t, e.pool, "Another merchant").ID}
	if err := pgx.BeginFunc(ctx, e.pool, func(tx pgx.Tx) error {
		_, err := e.dispatcher.Recover(ctx, tx, &other, ep.ID, time.Now().Add(-time.Hour), time.Now(), true)
		return err
	}); !errors.Is(err, events.ErrNotFound) {
		t.Fatalf("another merchant's recovery gave %v, want ErrNotFound", err)
	}

	dry, err := recoverNow(time.Now().Add(-6*time.Hour), true)
	if err != nil {
		t.Fatal(err)
	}
	if dry.Matched != inWindow || dry.Retried != 0 {
		t.Fatalf("dry run %+v, want matched %d retried 0", dry, inWindow)
	}
	rec, err := recoverNow(time.Now().Add(-6*time.Hour), false)
	if err != nil {
		t.Fatal(err)
	}
	// The request queues the first batch itself; jobs queue the rest.
	if rec.Matched != inWindow || rec.Retried != 1000 {
		t.Fatalf("recovery %+v, want matched %d and retried 1000", rec, inWindow)
	}

	deadline := time.Now().Add(120 * time.Second)
	for {
		var succeeded, failed int
		if err := e.pool.QueryRow(ctx, `select count(*) filter (where status = 'succeeded'), count(*) filter (where status = 'failed')
			from deliveries where endpoint_id = $1`, ep.ID).Scan(&succeeded, &failed); err != nil {
			t.Fatal(err)
		}
		if succeeded == inWindow+1 && failed == before {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after recovery: %d succeeded, %d failed; want %d and %d", succeeded, failed, inWindow+1, before)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if n := len(r.requests()) - base; n != inWindow {
		t.Fatalf("receiver got %d requests, want %d", n, inWindow)
	}

	// A disabled endpoint is refused: its deliveries would only fail again.
	if _, err := e.pool.Exec(ctx, `update webhook_endpoints set status = 'disabled' where id = $1`, ep.ID); err != nil {
		t.Fatal(err)
	}
	var state *events.StateError
	if _, err := recoverNow(time.Now().Add(-time.Hour), true); !errors.As(err, &state) {
		t.Fatalf("recovering a disabled endpoint gave %v, want a StateError", err)
	}
}

// TestRecoveryWaitsForALockedRow: a failed delivery that another
// transaction holds while a recovery runs (a manual attempt being recorded)
// is retried once it is free, not passed over, and the recovery's count is
// what it queued.
func TestRecoveryWaitsForALockedRow(t *testing.T) {
	t.Parallel()

	ctx := context.Background()
	e := newEnv(t, delivery.Schedule{}, 5*time.Second)
	r := newReceiver(t, nil)
	ep := e.endpoint(r.srv.URL, []string{"checkout.created"})
	e.pay(nil)
	e.waitDeliveries()
	minted := idsMintedAt(-3 * time.Hour)
	if _, err := e.pool.Exec(ctx, `insert into deliveries (id, merchant_id, livemode, event_id, endpoint_id, url, status,
		attempt_count, last_status_code, created_at, updated_at)
		select $1 || lpad(g::text, 16, '0'), d.merchant_id, d.livemode, d.event_id, d.endpoint_id, d.url, 'failed', 1, 503,
			now() - interval '3 hours', now()
		from deliveries d, generate_series(1, 3) g`, minted); err != nil {
		t.Fatal(err)
	}
	lock, err := e.pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Rollback(ctx) //nolint:errcheck // rolled back below; this only frees the connection on failure
	if _, err := lock.Exec(ctx, `select from deliveries where id = $1 || lpad('2', 16, '0') for update`, minted); err != nil {
		t.Fatal(err)
	}

	done := make(chan *delivery.Recovery, 1)
	go func() {
		var rec *delivery.Recovery
		err := pgx.BeginFunc(ctx, e.pool, func(tx pgx.Tx) (err error) {
			rec, err = e.dispatcher.Recover(ctx, tx, &e.scope, ep.ID, time.Now().Add(-6*time.Hour), time.Now(), false)
			return err
		})
		if err != nil {
			t.Error(err)
		}
		done <- rec
	}()
	dbtest.AwaitBlocked(t, e.pool, lock, "nothing waited for the locked delivery: the recovery passed it over")
	if err := lock.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	if rec := <-done; rec == nil || rec.Matched != 3 || rec.Retried != 3 {
		t.Fatalf("recovery %+v, want matched and retried 3", rec)
	}
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		var succeeded int
		if err := e.pool.QueryRow(ctx, `select count(*) from deliveries where endpoint_id = $1 and status = 'succeeded'`, ep.ID).
			Scan(&succeeded); err != nil {
			t.Fatal(err)
		}
		if succeeded == 4 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of the endpoint's 4 deliveries succeeded after the recovery, want all", succeeded)
		}
	}
	if n := len(r.requests()); n != 4 {
		t.Errorf("the receiver got %d requests, want 4", n)
	}
}

// idsMintedAt is the start of the ids of deliveries minted ago (negative)
// from now: their prefix and a ULID's time; 16 more characters complete one.
func idsMintedAt(ago time.Duration) string {
	return events.FirstIDAt(events.PrefixDelivery, time.Now().Add(ago))[:len("dlv_")+10]
}
