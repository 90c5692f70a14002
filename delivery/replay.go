package delivery

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"

	"github.com/hookline/hookline/events"
)

const (
	// MaxReplayWindow is the longest window one replay may span (contract
	// §6): a longer one is more likely a mistake than a plan, and can be
	// split.
	MaxReplayWindow = 30 * 24 * time.Hour
	// replayBatch is how many events one replay job gives a delivery, in one
	// short transaction.
	replayBatch = 1000
)

// Replay is the answer to a replay request: how many events of the window
// match, exactly, and how many deliveries the request itself created (0 on
// a dry run): all of them when they are at most a batch (1,000), else the
// first batch, and River jobs create the rest, a batch at a time.
type Replay struct {
	Matched int `json:"matched"`
	Queued  int `json:"queued"`
}

// ReplayArgs is the River job that gives one batch of a replay's events a
// new delivery each, then enqueues the job of the next batch, so a replay of
// any size is many short transactions, never one long one. A replay walks
// its types one after another, each in id order, through
// events_merchant_type_idx: every statement reads only the events it
// delivers.
type ReplayArgs struct {
	EndpointID string    `json:"endpoint_id"`
	MerchantID string    `json:"merchant_id"`
	Livemode   bool      `json:"livemode"`
	Since      time.Time `json:"since"`
	Until      time.Time `json:"until"`
	// Types are the types still to walk, the first being walked.
	Types []string `json:"types"`
	// After is the last event id of the previous batch of Types[0].
	After string `json:"after"`
	// Matched is the request's count, and Queued how many deliveries the
	// replay has created so far, for the line logged when it ends.
	Matched int `json:"matched,omitempty"`
	Queued  int `json:"queued,omitempty"`
}

// Kind is the job's River kind.
func (ReplayArgs) Kind() string { return "replay_events" }

// ReplayParams is what a replay request asks: the window [Since, Until) of
// event creation times, and the types to replay (nil: those the endpoint
// subscribes to).
type ReplayParams struct {
	Since, Until time.Time
	Types        []string
	DryRun       bool
}

// countWindow counts the scope's events of some types created in [$4, $5),
// whose ids are in [$6, $7) (eventWindowIDs), and not addressed to another
// endpoint than $8 (a test event goes to its own endpoint only), type by
// type. Each count is a range of events_merchant_type_idx (merchant_id,
// livemode, type, id): the type and the id bounds are written as row
// comparisons of (type, id), which no other index can serve and which the
// index scan starts and stops at. With plain type equality and id bounds, the
// generic plan for a merchant that owns most events read events_pkey through
// the id range, every type of the window, for each type; with the whole
// (merchant_id, livemode, type, id) as row comparisons it read
// events_merchant_idx through the merchant's history; with the equalities
// beside the row comparisons, Postgres 15 started the scan at the type's
// first event, not at the window's. The count reads the events it counts,
// and the few test events among them.
const countWindow = `select coalesce(sum(n), 0) from unnest($3::text[]) t (type)
	cross join lateral (select count(*) as n from events
		where merchant_id = $1 and livemode = $2 and (type, id) >= (t.type, $6) and (type, id) < (t.type, $7)
		and created_at >= $4 and created_at < $5 and (addressed_to is null or addressed_to = $8)) c`

// windowEvents is the next batch of the scope's events of one type created
// in [$5, $6), with ids in ($4, $7) (the cursor, or the window's lower id
// bound, and the upper one), not addressed to another endpoint than $8, in id
// order: a range of events_merchant_type_idx, written as countWindow's is.
const windowEvents = `select id, created_at from events
	where merchant_id = $1 and livemode = $2 and (type, id) > ($3, $4) and (type, id) < ($3, $7)
	and created_at >= $5 and created_at < $6 and (addressed_to is null or addressed_to = $8)
	order by type, id limit $9`

// replayDestination is a replay's endpoint, whether it still takes the
// replay (enabled and not deleted), and whether its destination is paused
// (its deliveries are then parked, as the fan-out's are). A share lock: a
// delete or a disable of the endpoint waits for the batch.
const replayDestination = `select w.url, w.status, w.deleted_at is not null, coalesce(s.paused_until > now(), false)
	from webhook_endpoints w left join delivery_destinations s on s.key = w.id
	where w.id = $1 for share of w`

// replayEndpoint is the endpoint a replay request names, in the request's
// scope, without a lock: the request counts its window first, then its
// first batch takes replayDestination's lock.
const replayEndpoint = `select status, enabled_events from webhook_endpoints where id = $1 and merchant_id = $2 and livemode = $3
	and deleted_at is null`

// replayCountTimeout bounds the request's exact count (Dispatcher's
// countTimeout): a window too large to count in this long is refused (400
// naming since), and the merchant replays smaller windows.
const replayCountTimeout = 10 * time.Second

// queryCanceled is Postgres's SQLSTATE of a statement cancelled, here by
// statement_timeout.
const queryCanceled = "57014"

// ReplayPlan is a replay request checked and counted by PlanReplay, which
// StartReplay starts.
type ReplayPlan struct {
	args   ReplayArgs
	dryRun bool
}

// PlanReplay checks a replay request for the scope's endpoint endpointID and
// counts its window exactly, on db (the pool: it holds no lock and no
// transaction of the request's, so a long count delays no write to the
// endpoint), within replayCountTimeout. The window is [p.Since, p.Until) of
// event creation times, Until capped at now; the types are p.Types or, when
// nil, those the endpoint subscribes to, as the fan-out reads its
// enabled_events. The endpoint must be enabled: the deliveries of a disabled
// endpoint would wait, unsent, for it to be enabled again (a merchant
// enables it first, then replays).
func (d *Dispatcher) PlanReplay(ctx context.Context, db beginner, scope events.Scope, endpointID string, p ReplayParams) (*ReplayPlan, error) {
	now := time.Now()
	if p.Until.After(now) {
		p.Until = now
	}
	if p.Since.After(now) {
		return nil, &events.InvalidError{Param: "since", Message: "must not be in the future"}
	}
	if err := checkWindow(p.Since, p.Until, MaxReplayWindow, "replay"); err != nil {
		return nil, err
	}
	if p.Types != nil {
		if err := checkReplayTypes(p.Types); err != nil {
			return nil, err
		}
	}
	plan := &ReplayPlan{dryRun: p.DryRun, args: ReplayArgs{EndpointID: endpointID, MerchantID: scope.MerchantID,
		Livemode: scope.Livemode, Since: p.Since, Until: p.Until}}
	err := pgx.BeginFunc(ctx, db, func(tx pgx.Tx) error {
		var status string
		var enabled []string
		err := tx.QueryRow(ctx, replayEndpoint, endpointID, scope.MerchantID, scope.Livemode).Scan(&status, &enabled)
		if err != nil {
			return events.WrapNotFound(err, "find endpoint")
		}
		if status != EndpointEnabled {
			return disabledError(endpointID)
		}
		types := p.Types
		if types == nil {
			types = subscribedTypes(enabled)
		}
		plan.args.Types = slices.Compact(slices.Sorted(slices.Values(types)))
		if _, err := tx.Exec(ctx, `select set_config('statement_timeout', $1, true)`, d.countTimeout.String()); err != nil {
			return fmt.Errorf("count replayed events: %w", err)
		}
		lo, hi := windowIDs(events.PrefixEvent, p.Since, p.Until)
		err = tx.QueryRow(ctx, countWindow, scope.MerchantID, scope.Livemode, plan.args.Types, p.Since, p.Until, lo, hi, endpointID).
			Scan(&plan.args.Matched)
		if err != nil {
			return fmt.Errorf("count replayed events: %w", err)
		}
		return nil
	})
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == queryCanceled && ctx.Err() == nil {
		return nil, &events.InvalidError{Param: "since", Message: fmt.Sprintf(
			"the window holds too many events to count within %v; replay it as several smaller windows (a later since)", d.countTimeout)}
	}
	if err != nil {
		return nil, err
	}
	return plan, nil
}

// beginner is a pool, or a transaction (whose Begin is a savepoint).
type beginner interface {
	Begin(ctx context.Context) (pgx.Tx, error)
}

// disabledError refuses a replay to a disabled endpoint.
func disabledError(endpointID string) error {
	return &events.StateError{Message: fmt.Sprintf("endpoint %s is disabled: enable it before replaying events to it", endpointID)}
}

// StartReplay starts a planned replay in tx: it gives the endpoint a new
// delivery of each event of the window, whatever the event's earlier
// deliveries (a new endpoint is back-filled this way). The deliveries are
// created now and are ordinary ones: signed, retried, recorded,
// rate-limited, through the same jobs as the fan-out's. StartReplay creates
// the first batch in tx, and a River job per further batch creates the rest
// (see ReplayArgs). A dry run, or a window of no event, writes nothing. An
// endpoint disabled or deleted since the plan is refused as PlanReplay
// refuses it.
func (d *Dispatcher) StartReplay(ctx context.Context, tx pgx.Tx, plan *ReplayPlan) (*Replay, error) {
	r := &Replay{Matched: plan.args.Matched}
	if plan.dryRun || r.Matched == 0 {
		return r, nil
	}
	a := plan.args
	_, stopped, err := d.replayBatch(ctx, tx, &a)
	switch {
	case err != nil:
		return nil, err
	case stopped == stoppedDeleted:
		return nil, events.ErrNotFound
	case stopped == stoppedDisabled:
		return nil, disabledError(a.EndpointID)
	}
	r.Queued = a.Queued
	return r, nil
}

// checkReplayTypes refuses a list of no type or with one not in the catalog.
func checkReplayTypes(types []string) error {
	if len(types) == 0 {
		return &events.InvalidError{Param: "types", Message: "must name at least one event type, or be left out for the endpoint's own"}
	}
	for _, t := range types {
		if _, ok := events.Lookup(events.EventType(t)); !ok {
			return &events.InvalidError{Param: "types", Message: fmt.Sprintf("%q is not an event type of GET /v1/event_types", t)}
		}
	}
	return nil
}

// subscribedTypes is the catalog types an endpoint with enabled_events
// receives, as the fan-out decides: the default-on types when it chose none,
// every type for "*", else its choice.
func subscribedTypes(enabled []string) []string {
	var types []string
	switch {
	case enabled == nil:
		for _, t := range events.DefaultEnabledTypes() {
			types = append(types, string(t))
		}
	case slices.Contains(enabled, AllEvents):
		types = events.TypeNames()
	default:
		for _, t := range enabled {
			if _, ok := events.Lookup(events.EventType(t)); ok {
				types = append(types, t)
			}
		}
	}
	return types
}

// Why a replay stopped before the end of its window: its endpoint was
// deleted or disabled meanwhile.
const (
	stoppedDeleted  = "endpoint deleted"
	stoppedDisabled = "endpoint disabled"
)

// replayBatch gives the next batch of a's window (the events of a.Types[0]
// after a.After, then of the next types while the batch has room) a delivery
// each to a's endpoint, with their jobs, and, unless the window is done, the
// job of the next batch, in tx. It adds what it created to a.Queued and
// answers whether the replay is done, or why it stopped (the endpoint
// deleted or disabled meanwhile: nothing is created). Everything a batch does
// commits with the job's completion or not at all, so a job run again after
// its process died creates its batch once.
func (d *Dispatcher) replayBatch(ctx context.Context, tx pgx.Tx, a *ReplayArgs) (done bool, stopped string, err error) {
	dst := destination{endpointID: a.EndpointID}
	var status string
	var deleted bool
	err = tx.QueryRow(ctx, replayDestination, a.EndpointID).Scan(&dst.url, &status, &deleted, &dst.paused)
	switch {
	case errors.Is(err, pgx.ErrNoRows) || deleted:
		return true, stoppedDeleted, nil
	case err != nil:
		return false, "", fmt.Errorf("find replayed endpoint: %w", err)
	case status != EndpointEnabled:
		return true, stoppedDisabled, nil
	}
	lo, hi := windowIDs(events.PrefixEvent, a.Since, a.Until)
	var evts []*events.Event
	for room := replayBatch; room > 0 && len(a.Types) > 0; room = replayBatch - len(evts) {
		rows, err := tx.Query(ctx, windowEvents, a.MerchantID, a.Livemode, a.Types[0], cmp.Or(a.After, lo), a.Since, a.Until, hi,
			a.EndpointID, room)
		if err != nil {
			return false, "", fmt.Errorf("read replayed events: %w", err)
		}
		evt := events.Event{MerchantID: a.MerchantID, Livemode: a.Livemode, Type: events.EventType(a.Types[0])}
		n, err := pgx.ForEachRow(rows, []any{&evt.ID, &evt.CreatedAt}, func() error {
			e := evt
			evts = append(evts, &e)
			return nil
		})
		if err != nil {
			return false, "", fmt.Errorf("read replayed events: %w", err)
		}
		if int(n.RowsAffected()) < room {
			a.Types, a.After = a.Types[1:], "" // the type's window is done
		} else {
			a.After = evts[len(evts)-1].ID
		}
	}
	if len(evts) == 0 {
		return true, "", nil
	}
	byEvent := make([][]destination, len(evts))
	for i := range byEvent {
		byEvent[i] = []destination{dst}
	}
	if err := d.enqueue(ctx, tx, evts, byEvent, time.Now()); err != nil {
		return false, "", fmt.Errorf("replay: %w", err)
	}
	a.Queued += len(evts)
	if len(a.Types) == 0 {
		return true, "", nil
	}
	if _, err := d.river.InsertTx(ctx, tx, *a, nil); err != nil {
		return false, "", fmt.Errorf("enqueue next replay batch: %w", err)
	}
	return false, "", nil
}

// ReplayWorker works ReplayArgs.
type ReplayWorker struct {
	river.WorkerDefaults[ReplayArgs]
	dispatcher *Dispatcher
	logger     *slog.Logger
	pool       *pgxpool.Pool
}

// NewReplayWorker returns the worker of replay jobs; it logs each replay's
// exact count when its last batch is created.
func NewReplayWorker(pool *pgxpool.Pool, dispatcher *Dispatcher, logger *slog.Logger) *ReplayWorker {
	return &ReplayWorker{dispatcher: dispatcher, logger: logger, pool: pool}
}

// Work creates the next batch of a replay's deliveries and their jobs, in
// one transaction with the next batch's job and this job's completion.
func (w *ReplayWorker) Work(ctx context.Context, job *river.Job[ReplayArgs]) error {
	a := job.Args
	var done bool
	var stopped string
	err := pgx.BeginFunc(ctx, w.pool, func(tx pgx.Tx) (err error) {
		if done, stopped, err = w.dispatcher.replayBatch(ctx, tx, &a); err != nil {
			return err
		}
		_, err = river.JobCompleteTx[*riverpgxv5.Driver](ctx, tx, job)
		return err
	})
	if err != nil || !done {
		return err
	}
	attrs := []any{slog.String("endpoint_id", a.EndpointID), slog.Time("since", a.Since), slog.Time("until", a.Until),
		slog.Int("matched", a.Matched), slog.Int("queued", a.Queued)}
	if stopped != "" {
		w.logger.WarnContext(ctx, "replay stopped", append(attrs, slog.String("reason", stopped))...)
		return nil
	}
	w.logger.InfoContext(ctx, "replay done", attrs...)
	return nil
}
