package delivery_test

import (
	"context"
	"io"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/hookline/hookline/delivery"
	"github.com/hookline/hookline/events"
	"github.com/hookline/hookline/migrations/dbtest"
)

// TestPruneKeepsTheWindow prunes a real delivery history with a cutoff after
// its first two payments: their events, deliveries and attempts go; the
// third's, and an old delivery still pending, stay.
func TestPruneKeepsTheWindow(t *testing.T) {
	t.Parallel()

	ctx := context.Background()
	e := newEnv(t, delivery.Schedule{}, 5*time.Second)
	r := newReceiver(t, nil)
	e.endpoint(r.srv.URL, []string{"*"})
	for range 2 {
		e.pay(nil) // 4 events and 4 deliveries each
	}
	e.waitDeliveries()
	// What was minted before cutoff is past the retention; leave one old
	// delivery pending.
	time.Sleep(2 * time.Millisecond) // ids carry milliseconds: let the clock pass one
	cutoff := time.Now()
	time.Sleep(2 * time.Millisecond)
	e.pay(nil)
	e.waitDeliveries()
	if _, err := e.pool.Exec(ctx, `update deliveries set status = 'pending' where id = (select min(id) from deliveries)`); err != nil {
		t.Fatal(err)
	}

	w := delivery.NewPruneWorker(e.pool, 30*24*time.Hour, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err := delivery.PruneBefore(w, ctx, cutoff); err != nil {
		t.Fatal(err)
	}
	counts := map[string]int{}
	for _, table := range []string{"events", "deliveries", "delivery_attempts"} {
		var n int
		if err := e.pool.QueryRow(ctx, "select count(*) from "+table).Scan(&n); err != nil {
			t.Fatal(err)
		}
		counts[table] = n
	}
	// Kept: the 4 recent events and deliveries (4 attempts), and the old
	// pending delivery with its event and attempt.
	want := map[string]int{"events": 5, "deliveries": 5, "delivery_attempts": 5}
	for table, n := range want {
		if counts[table] != n {
			t.Errorf("%s: %d rows after pruning, want %d", table, counts[table], n)
		}
	}
}

// TestPruneRemovesOldStatsRows runs the prune job over endpoint statistics'
// rollup rows: minute rows older than 2 hours and hour rows older than 7
// days go, more than one batch of them, and the younger ones stay.
func TestPruneRemovesOldStatsRows(t *testing.T) {
	t.Parallel()

	ctx := context.Background()
	pool := dbtest.NewPool(t)
	// 6,000 old minute rows (more than a batch), then one row of each span
	// on either side of its limit.
	if _, err := pool.Exec(ctx, `insert into endpoint_stats (endpoint_id, span_seconds, bucket, shard, succeeded, http_error, timeout, connection_error, latency)
		select 'we_' || g, 60, date_bin('1 minute', now() - interval '3 hours', timestamptz '2000-01-01 00:00:00+00'), 0, 1, 0, 0, 0, '{}'::int[]
		from generate_series(1, 6000) g
		union all select 'we_kept', s, now() - age, 0, 1, 0, 0, 0, '{}'::int[]
		from (values (60, interval '1 hour'), (60, interval '3 hours'), (3600, interval '6 days'), (3600, interval '8 days')) v (s, age)`); err != nil {
		t.Fatal(err)
	}
	w := delivery.NewPruneWorker(pool, 30*24*time.Hour, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err := delivery.PruneBefore(w, ctx, time.Now().Add(-30*24*time.Hour)); err != nil {
		t.Fatal(err)
	}
	rows, err := pool.Query(ctx, `select endpoint_id || ' ' || span_seconds || ' ' || round(extract(epoch from now() - bucket) / 3600)
		from endpoint_stats order by 1`)
	if err != nil {
		t.Fatal(err)
	}
	left, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"we_kept 3600 144", "we_kept 60 1"}; !slices.Equal(left, want) {
		t.Errorf("rows left %q, want %q", left, want)
	}
}

// TestPruneRemovesOldPortalSessions prunes merchant portal sessions: one
// minted before the cutoff goes, one minted after it stays.
func TestPruneRemovesOldPortalSessions(t *testing.T) {
	t.Parallel()

	ctx := context.Background()
	pool := dbtest.NewPool(t)
	m := dbtest.Merchant(t, pool, "Portal merchant")
	cutoff := time.Now().Add(-30 * 24 * time.Hour)
	old := events.FirstIDAt(events.PrefixPortalSession, cutoff.Add(-time.Hour))
	recent := events.NewID(events.PrefixPortalSession)
	for i, id := range []string{old, recent} {
		if _, err := pool.Exec(ctx, `insert into portal_sessions (id, merchant_id, livemode, token_hash, expires_at)
			values ($1, $2, false, $3, now())`, id, m.ID, []byte{byte(i)}); err != nil {
			t.Fatal(err)
		}
	}
	w := delivery.NewPruneWorker(pool, 30*24*time.Hour, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err := delivery.PruneBefore(w, ctx, cutoff); err != nil {
		t.Fatal(err)
	}
	rows, err := pool.Query(ctx, `select id from portal_sessions`)
	if err != nil {
		t.Fatal(err)
	}
	kept, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	if len(kept) != 1 || kept[0] != recent {
		t.Errorf("after pruning the sessions are %q, want only the recent %s", kept, recent)
	}
}
