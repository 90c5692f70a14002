package stream

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/hookline/hookline/events"
)

const (
	// MaxPerKey is how many streams one API key (a merchant's mode) may have
	// open at once, across every API process.
	MaxPerKey = 5
	// PollInterval is how often a process looks for new events of the
	// scopes it streams: the longest an event waits, once final, to be
	// streamed.
	PollInterval = 250 * time.Millisecond
	// leaseTTL is how long a stream's lease lasts unless renewed: how long a
	// dead process's streams still count towards MaxPerKey.
	leaseTTL = 30 * time.Second
	// leaseRenewal is how often a process renews the leases of its streams.
	leaseRenewal = 10 * time.Second
	// sweepBatch is how many expired leases a renewal drops at most.
	sweepBatch = 100
)

// ErrTooMany is Open's error when the scope already has MaxPerKey streams.
var ErrTooMany = errors.New("stream: too many open streams for this API key")

// ErrClosed is Open's error once the hub is closed (the process is stopping).
var ErrClosed = errors.New("stream: the server is shutting down")

// Hub is one process's event streams. It polls, for all of them at once, the
// heads of the scopes they stream (one statement per PollInterval, only
// while a stream is open, on a pool connection held for that statement
// alone) and wakes the streams of a scope whose head moved; each stream then
// reads its events from its own cursor. No stream holds a connection while
// it waits.
type Hub struct {
	pool   *pgxpool.Pool
	logger *slog.Logger

	mu      sync.Mutex
	streams map[events.Scope]map[*Stream]bool
	heads   map[events.Scope]events.StreamCursor
	polling bool
	closed  chan struct{}
	isDone  bool
}

// NewHub returns the hub of a process's streams, which reads through pool.
func NewHub(pool *pgxpool.Pool, logger *slog.Logger) *Hub {
	return &Hub{
		pool: pool, logger: logger,
		streams: map[events.Scope]map[*Stream]bool{},
		heads:   map[events.Scope]events.StreamCursor{},
		closed:  make(chan struct{}),
	}
}

// Stream is one open stream: its lease, and the signal that its scope has
// new events.
type Stream struct {
	hub   *Hub
	lease string
	scope events.Scope
	wake  chan struct{}
}

// Wake is signalled when the stream's scope may have new events to read.
func (s *Stream) Wake() <-chan struct{} { return s.wake }

// Done is closed when the hub closes: the stream must end.
func (s *Stream) Done() <-chan struct{} { return s.hub.closed }

// acquireLease takes a place among the scope's streams, under a lock of the
// scope (a transaction-scoped advisory lock on its hash), after dropping the
// scope's expired leases; it answers false when every place is taken.
const acquireLease = `select pg_advisory_xact_lock(hashtextextended('event_streams/' || $1 || '/' || $2::boolean::text, 0))`

// takeLease takes one of the scope's MaxPerKey places for the lease, or
// answers ErrTooMany, in tx: under the scope's lock (acquireLease), it drops
// the scope's expired leases, counts the others and inserts the new one.
// Each statement reads the scope's few rows (event_streams_scope_idx).
func takeLease(ctx context.Context, tx events.DB, scope events.Scope, lease string) error {
	if _, err := tx.Exec(ctx, acquireLease, scope.MerchantID, scope.Livemode); err != nil {
		return err
	}
	// The expiry test is written so that no index can take it: the
	// scope's few rows are read by the scope's index, never the expired
	// leases of every scope by the expiry index, which a plan made while
	// every lease was live would pick.
	if _, err := tx.Exec(ctx, `delete from event_streams where merchant_id = $1 and livemode = $2 and (expires_at < now()) is true`,
		scope.MerchantID, scope.Livemode); err != nil {
		return err
	}
	var open int
	if err := tx.QueryRow(ctx, `select count(*) from event_streams where merchant_id = $1 and livemode = $2`,
		scope.MerchantID, scope.Livemode).Scan(&open); err != nil {
		return err
	}
	if open >= MaxPerKey {
		return ErrTooMany
	}
	_, err := tx.Exec(ctx, `insert into event_streams (id, merchant_id, livemode, expires_at) values ($1, $2, $3, now() + $4::interval)`,
		lease, scope.MerchantID, scope.Livemode, leaseTTL)
	return err
}

// Open opens a stream of the scope: a lease of one of its MaxPerKey places,
// or ErrTooMany.
func (h *Hub) Open(ctx context.Context, scope events.Scope) (*Stream, error) {
	select {
	case <-h.closed:
		return nil, ErrClosed
	default:
	}
	lease := events.NewID("str")
	err := pgx.BeginFunc(ctx, h.pool, func(tx pgx.Tx) error { return takeLease(ctx, tx, scope, lease) })
	if errors.Is(err, ErrTooMany) {
		return nil, err
	}
	if err != nil {
		return nil, fmt.Errorf("open stream: %w", err)
	}
	s := &Stream{hub: h, lease: lease, scope: scope, wake: make(chan struct{}, 1)}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.streams[scope] == nil {
		h.streams[scope] = map[*Stream]bool{}
	}
	h.streams[scope][s] = true
	if !h.polling && !h.isDone {
		h.polling = true
		go h.poll()
	}
	return s, nil
}

// releaseLease gives a stream's place back.
const releaseLease = `delete from event_streams where id = $1`

// Close ends the stream and gives its place back.
func (s *Stream) Close() {
	h := s.hub
	h.mu.Lock()
	delete(h.streams[s.scope], s)
	if len(h.streams[s.scope]) == 0 {
		delete(h.streams, s.scope)
		delete(h.heads, s.scope)
	}
	h.mu.Unlock()
	// Given back even when the request is gone; if this fails, the lease
	// expires.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := h.pool.Exec(ctx, releaseLease, s.lease); err != nil {
		h.logger.WarnContext(ctx, "release event stream lease", slog.String("error", err.Error()))
	}
}

// Close ends every stream of the hub (their Done channel closes) and stops
// its polling: the process is stopping.
func (h *Hub) Close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.isDone {
		h.isDone = true
		close(h.closed)
	}
}

// poll wakes the streams of every scope whose head moved, each PollInterval,
// and renews the process's leases each leaseRenewal, until the hub closes or
// has no stream left.
func (h *Hub) poll() {
	ticker := time.NewTicker(PollInterval)
	defer ticker.Stop()
	renewed := time.Now()
	failing := false // logged once per streak of failed polls, not every tick
	for {
		select {
		case <-h.closed:
			return
		case <-ticker.C:
		}
		h.mu.Lock()
		scopes := make([]events.Scope, 0, len(h.streams))
		var leases []string
		for scope, streams := range h.streams {
			scopes = append(scopes, scope)
			for s := range streams {
				leases = append(leases, s.lease)
			}
		}
		if len(scopes) == 0 {
			h.polling = false
			h.mu.Unlock()
			return
		}
		h.mu.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), PollInterval*4)
		if time.Since(renewed) >= leaseRenewal {
			if err := renew(ctx, h.pool, leases); err != nil {
				h.logger.WarnContext(ctx, "renew event stream leases", slog.String("error", err.Error()))
			} else {
				renewed = time.Now()
			}
		}
		heads, err := events.StreamHeads(ctx, h.pool, scopes)
		cancel()
		if err != nil {
			if !failing {
				h.logger.WarnContext(ctx, "poll event streams", slog.String("error", err.Error()))
			}
			failing = true
			continue
		}
		failing = false
		h.mu.Lock()
		for _, scope := range scopes {
			head, ok := heads[scope]
			if !ok || head == h.heads[scope] || h.streams[scope] == nil {
				continue // no new event, or its streams closed meanwhile
			}
			h.heads[scope] = head
			for s := range h.streams[scope] {
				select {
				case s.wake <- struct{}{}:
				default: // already signalled
				}
			}
		}
		h.mu.Unlock()
	}
}

// renew extends the leases of the process's open streams, and drops up to
// sweepBatch other leases that expired (those of processes that died, oldest
// first; the next renewal takes more), in one statement: the leases by key,
// the expired ones through event_streams_expiry_idx, whatever the statistics
// (a bounded batch in expiry order is that index's to serve even when the
// statistics predate the leases and call every row expired), so a renewal
// reads its own rows and a batch of dead ones, never every open stream.
func renew(ctx context.Context, db events.DB, leases []string) error {
	_, err := db.Exec(ctx, `with renewed as (
			update event_streams set expires_at = now() + $2::interval where id = any($1)
		)
		delete from event_streams where id in (select id from event_streams
			where expires_at < now() and id <> all($1) order by expires_at limit $3 for update skip locked)`,
		leases, leaseTTL, sweepBatch)
	return err
}
