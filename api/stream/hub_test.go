package stream_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/hookline/hookline/api/stream"
	"github.com/hookline/hookline/events"
	"github.com/hookline/hookline/migrations/dbtest"
)

var discard = slog.New(slog.NewTextHandler(io.Discard, nil))

// TestStreamsPerKeyAcrossProcesses opens streams of one key through two hubs,
// as two API processes would: together they hold MaxPerKey, one more is
// ErrTooMany in either, another key is not affected, a closed stream gives
// its place back, and so does the lease of a process that died once it
// expires.
func TestStreamsPerKeyAcrossProcesses(t *testing.T) {
	t.Parallel()

	ctx := context.Background()
	pool := dbtest.NewPool(t)
	m := dbtest.Merchant(t, pool, "Streamer")
	scope, live := events.Scope{MerchantID: m.ID}, events.Scope{MerchantID: m.ID, Livemode: true}
	one, two := stream.NewHub(pool, discard), stream.NewHub(pool, discard)
	t.Cleanup(one.Close)
	t.Cleanup(two.Close)

	var open []*stream.Stream
	for i := range stream.MaxPerKey {
		hub := one
		if i%2 == 1 {
			hub = two
		}
		s, err := hub.Open(ctx, scope)
		if err != nil {
			t.Fatalf("stream %d: %v", i+1, err)
		}
		open = append(open, s)
	}
	for _, hub := range []*stream.Hub{one, two} {
		if _, err := hub.Open(ctx, scope); !errors.Is(err, stream.ErrTooMany) {
			t.Fatalf("stream %d: %v, want ErrTooMany", stream.MaxPerKey+1, err)
		}
	}
	other, err := two.Open(ctx, live)
	if err != nil {
		t.Fatalf("the live key's first stream: %v", err)
	}
	other.Close()

	open[0].Close()
	if open[0], err = two.Open(ctx, scope); err != nil {
		t.Fatalf("a place given back: %v", err)
	}
	// A process that died leaves its leases; they expire.
	if _, err := pool.Exec(ctx, `update event_streams set expires_at = now() - interval '1 second'
		where id = (select id from event_streams where merchant_id = $1 and not livemode limit 1)`, m.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := one.Open(ctx, scope); err != nil {
		t.Fatalf("after a lease expired: %v", err)
	}

	one.Close()
	select {
	case <-open[2].Done():
	default:
		t.Error("a stream of a closed hub is not done")
	}
	if _, err := one.Open(ctx, scope); !errors.Is(err, stream.ErrClosed) {
		t.Errorf("Open on a closed hub: %v, want ErrClosed", err)
	}
}

// TestHubWakesStreamsOfTheirScope commits an event of one scope: its stream
// is woken, the stream of a scope without events is not.
func TestHubWakesStreamsOfTheirScope(t *testing.T) {
	t.Parallel()

	ctx := context.Background()
	pool := dbtest.NewPool(t)
	m := dbtest.Merchant(t, pool, "Streamer")
	scope, quiet := events.Scope{MerchantID: m.ID}, events.Scope{MerchantID: m.ID, Livemode: true}
	hub := stream.NewHub(pool, discard)
	t.Cleanup(hub.Close)
	s, err := hub.Open(ctx, scope)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	q, err := hub.Open(ctx, quiet)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()

	err = pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		_, err := events.NewPublisher(nil).Publish(ctx, tx, scope, events.CheckoutCreated, map[string]string{}, "")
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	// A bounded wait (other tests' transactions hold the horizon back), not
	// a speed assertion.
	select {
	case <-s.Wake():
	case <-time.After(30 * time.Second):
		t.Fatal("the stream was not woken for its scope's event")
	}
	select {
	case <-q.Wake():
		t.Error("a stream was woken for another scope's event")
	default:
	}
}
