package delivery_test

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/riverqueue/river"

	"github.com/hookline/hookline/delivery"
)

// TestPruneKeepsTheWindow ages part of a real delivery history past the
// retention and prunes: the old events, deliveries and attempts go; recent
// ones, and old deliveries still pending, stay.
func TestPruneKeepsTheWindow(t *testing.T) {
	t.Parallel()

	ctx := context.Background()
	e := newEnv(t, delivery.Schedule{}, 5*time.Second)
	r := newReceiver(t, nil)
	e.endpoint(r.srv.URL, []string{"*"})
	for range 3 {
		e.pay(nil) // 4 events and 4 deliveries each
	}
	e.waitDeliveries()
	// Age the first two payments' rows by 40 days; leave one old delivery pending.
	if _, err := e.pool.Exec(ctx, `with old as (select id from events order by id limit 8)
		update events set created_at = created_at - interval '40 days' where id in (select id from old)`); err != nil {
		t.Fatal(err)
	}
	if _, err := e.pool.Exec(ctx, `update deliveries d set created_at = e.created_at from events e where e.id = d.event_id`); err != nil {
		t.Fatal(err)
	}
	if _, err := e.pool.Exec(ctx, `update deliveries set status = 'pending' where id = (select min(id) from deliveries)`); err != nil {
		t.Fatal(err)
	}

	w := delivery.NewPruneWorker(e.pool, 30*24*time.Hour, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err := w.Work(ctx, &river.Job[delivery.PruneArgs]{}); err != nil {
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
