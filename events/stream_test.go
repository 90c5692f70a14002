package events_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/hookline/hookline/events"
	"github.com/hookline/hookline/migrations/dbtest"
)

// publish writes one event of the scope in tx, without deliveries.
func publish(t *testing.T, tx pgx.Tx, scope events.Scope) *events.Event {
	t.Helper()
	evt, err := events.NewPublisher(nil).Publish(context.Background(), tx, scope, events.CheckoutCreated, map[string]string{"n": "x"}, "")
	if err != nil {
		t.Error(err)
		return nil
	}
	return evt
}

// readAll reads the scope's stream from cursor until it has nothing more.
func readAll(t *testing.T, pool *pgxpool.Pool, scope events.Scope, cursor *events.StreamCursor) []string {
	t.Helper()
	var ids []string
	for {
		evts, err := events.ReadStream(context.Background(), pool, scope, *cursor, 3)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range evts {
			ids = append(ids, e.ID)
			*cursor = e.Cursor
		}
		if len(evts) < 3 {
			return ids
		}
	}
}

// readUntil reads the scope's stream from cursor until it has n events, or
// for 30 s. The horizon is the whole cluster's: a transaction of another test
// that started before the events' own delays them (a bounded wait, not a
// speed assertion).
func readUntil(t *testing.T, pool *pgxpool.Pool, scope events.Scope, cursor *events.StreamCursor, n int) []string {
	t.Helper()
	var ids []string
	for deadline := time.Now().Add(30 * time.Second); len(ids) < n && time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		ids = append(ids, readAll(t, pool, scope, cursor)...)
	}
	return ids
}

// TestStreamWaitsForEarlierTransactions is the case id order gets wrong: an
// event minted first but committed last. Its transaction is still open
// when a later one commits; the stream holds the later event back until the
// earlier transaction ends, then streams both, the earlier one first, so that
// a reader's cursor never passes an event that is yet to commit. A rolled
// back transaction leaves nothing behind it.
func TestStreamWaitsForEarlierTransactions(t *testing.T) {
	t.Parallel()

	ctx := context.Background()
	pool := dbtest.NewPool(t)
	m := dbtest.Merchant(t, pool, "Streamer")
	scope := events.Scope{MerchantID: m.ID}
	cursor, last, err := events.StreamStart(ctx, pool, scope)
	if err != nil || last != "" {
		t.Fatalf("a new merchant's stream starts after %q (%v), want no event", last, err)
	}

	slow, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Rollback(ctx) //nolint:errcheck // committed below
	first := publish(t, slow, scope)
	var second *events.Event
	if err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error { second = publish(t, tx, scope); return nil }); err != nil {
		t.Fatal(err)
	}
	if first.ID >= second.ID {
		t.Fatalf("ids %s, %s: want the open transaction's minted first", first.ID, second.ID)
	}
	if got := readAll(t, pool, scope, &cursor); len(got) != 0 {
		t.Fatalf("streamed %v while an earlier transaction is open", got)
	}
	heads, err := events.StreamHeads(ctx, pool, []events.Scope{scope})
	if err != nil || len(heads) != 0 {
		t.Fatalf("heads %v (%v) while an earlier transaction is open, want none", heads, err)
	}
	if err := slow.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if got := readUntil(t, pool, scope, &cursor, 2); len(got) != 2 || got[0] != first.ID || got[1] != second.ID {
		t.Fatalf("streamed %v, want [%s %s]", got, first.ID, second.ID)
	}
	heads, err = events.StreamHeads(ctx, pool, []events.Scope{scope, {MerchantID: m.ID, Livemode: true}})
	if err != nil || len(heads) != 1 || heads[scope] != cursor {
		t.Fatalf("heads %v (%v), want the test mode's at %v", heads, err, cursor)
	}

	// A stream starting now starts after the last event, and says so.
	start, last, err := events.StreamStart(ctx, pool, scope)
	if err != nil || last != second.ID || start.TxID <= cursor.TxID {
		t.Fatalf("a stream starting now: at %v after %q (%v), want after %s", start, last, err, second.ID)
	}

	resumed, err := events.StreamCursorAt(ctx, pool, scope, first.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, pool, scope, &resumed); len(got) != 1 || got[0] != second.ID {
		t.Fatalf("resuming after %s streamed %v, want [%s]", first.ID, got, second.ID)
	}
	for _, other := range []events.Scope{{MerchantID: m.ID, Livemode: true}, {MerchantID: "acct_other"}} {
		if _, err := events.StreamCursorAt(ctx, pool, other, first.ID); err != events.ErrNotFound {
			t.Errorf("the cursor of %s in %+v: %v, want ErrNotFound", first.ID, other, err)
		}
	}
}

// TestStreamUnderConcurrentWriters has writers commit (or roll back)
// transactions of one to three events, of random lengths, in both modes,
// while a reader follows the test mode's stream: the reader ends with every
// committed event of its scope exactly once, and nothing else, its cursor
// only moving forward.
func TestStreamUnderConcurrentWriters(t *testing.T) {
	t.Parallel()

	ctx := context.Background()
	pool := dbtest.NewPool(t)
	m := dbtest.Merchant(t, pool, "Streamer")
	scope := events.Scope{MerchantID: m.ID}
	scopes := []events.Scope{scope, {MerchantID: m.ID, Livemode: true}}
	cursor, _, err := events.StreamStart(ctx, pool, scope)
	if err != nil {
		t.Fatal(err)
	}

	const writers, each = 6, 25
	var mu sync.Mutex
	want := map[string]bool{}
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				var ids []string
				err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
					s := scopes[(w+i)%2]
					for range 1 + rand.IntN(3) {
						if evt := publish(t, tx, s); evt != nil && s == scope {
							ids = append(ids, evt.ID)
						}
						time.Sleep(time.Duration(rand.IntN(3)) * time.Millisecond)
					}
					if i%7 == 3 {
						ids = nil
						return fmt.Errorf("roll back")
					}
					return nil
				})
				if err != nil && ids != nil {
					t.Error(err)
				}
				mu.Lock()
				for _, id := range ids {
					want[id] = true
				}
				mu.Unlock()
			}
		})
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()

	seen := map[string]int{}
	var last events.StreamCursor
	read := func() {
		evts, err := events.ReadStream(ctx, pool, scope, cursor, 10)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range evts {
			if e.Cursor.TxID < last.TxID || (e.Cursor.TxID == last.TxID && e.Cursor.ID <= last.ID) {
				t.Fatalf("the stream went back from %v to %v", last, e.Cursor)
			}
			last, cursor = e.Cursor, e.Cursor
			seen[e.ID]++
		}
	}
	for running := true; running; {
		select {
		case <-done:
			running = false
		default:
			read()
		}
	}
	// Every writer is done: what is left becomes readable once the
	// transactions of other tests that started before them end.
	for deadline := time.Now().Add(30 * time.Second); len(seen) < len(want) && time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		read()
	}
	for id := range want {
		if seen[id] != 1 {
			t.Errorf("event %s streamed %d times, want once", id, seen[id])
		}
	}
	for id := range seen {
		if !want[id] {
			t.Errorf("streamed %s, which is not a committed event of the scope", id)
		}
	}
}
