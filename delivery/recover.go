package delivery

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"

	"github.com/hookline/hookline/events"
)

const (
	// MaxRecoveryWindow is the longest window one recovery may span: a wider
	// one is more likely a mistake than a plan, and can be split.
	MaxRecoveryWindow = 14 * 24 * time.Hour
	// recoverBatch is how many deliveries one recovery job retries, each in a
	// short transaction of its own.
	recoverBatch = 1000
)

// Recovery is the answer to a recovery request: how many failed deliveries
// the window holds, and how many the request itself queued again, exactly (0
// on a dry run): all of them when they are at most a batch (1,000), else the
// first batch, and River jobs queue the rest, a batch at a time.
type Recovery struct {
	Matched int `json:"matched"`
	Retried int `json:"retried"`
}

// RecoverArgs is the River job that retries one batch of an endpoint's failed
// deliveries in a window, then enqueues the job of the next batch, so a
// recovery of any size is many short transactions, never one long one.
type RecoverArgs struct {
	EndpointID string    `json:"endpoint_id"`
	Since      time.Time `json:"since"`
	Until      time.Time `json:"until"`
	// After is the last delivery id of the previous batch.
	After string `json:"after"`
	// Matched is the request's count, and Retried how many the recovery has
	// queued so far, for the line logged when it ends.
	Matched int `json:"matched,omitempty"`
	Retried int `json:"retried,omitempty"`
}

// Kind is the job's River kind.
func (RecoverArgs) Kind() string { return "recover_deliveries" }

// Recover queues again every failed delivery to an endpoint created in
// [since, until). scope limits it to one merchant's endpoint; an operator
// passes the zero Scope to reach any endpoint. The endpoint must be enabled:
// its deliveries would otherwise only fail again.
func (d *Dispatcher) Recover(ctx context.Context, tx pgx.Tx, scope *events.Scope, endpointID string, since, until time.Time, dryRun bool) (*Recovery, error) {
	if err := checkWindow(since, until, MaxRecoveryWindow, "recovery"); err != nil {
		return nil, err
	}
	var status string
	err := tx.QueryRow(ctx, `select status from webhook_endpoints where id = $1 and deleted_at is null
		and ($2::text is null or (merchant_id = $2 and livemode = $3))`, endpointID, scopeMerchant(scope), scope != nil && scope.Livemode).Scan(&status)
	if err != nil {
		return nil, events.WrapNotFound(err, "find endpoint")
	}
	if status != EndpointEnabled {
		return nil, &events.StateError{Message: fmt.Sprintf("endpoint %s is disabled: enable it before recovering its deliveries", endpointID)}
	}
	r := &Recovery{}
	lo, hi := windowIDs(events.PrefixDelivery, since, until)
	if err := tx.QueryRow(ctx, countFailed, endpointID, since, until, lo, hi, StatusFailed).Scan(&r.Matched); err != nil {
		return nil, fmt.Errorf("count failed deliveries: %w", err)
	}
	if dryRun || r.Matched == 0 {
		return r, nil
	}
	a := RecoverArgs{EndpointID: endpointID, Since: since, Until: until, Matched: r.Matched}
	if _, err := d.recoverBatch(ctx, tx, &a); err != nil {
		return nil, err
	}
	r.Retried = a.Retried
	return r, nil
}

// checkWindow refuses a window [since, until) that is empty or longer than
// limit (whole days), naming the field to change: the recovery's and the
// replay's rule alike.
func checkWindow(since, until time.Time, limit time.Duration, what string) error {
	if !until.After(since) {
		return &events.InvalidError{Param: "until", Message: "must be after since"}
	}
	if until.Sub(since) > limit {
		return &events.InvalidError{Param: "since", Message: fmt.Sprintf("must be at most %d days before until; split a longer %s",
			int(limit/(24*time.Hour)), what)}
	}
	return nil
}

// resetFailed sets the next batch of an endpoint's failed deliveries in the
// window, after a cursor, back to pending with a fresh schedule. It waits for
// a row another transaction holds (a manual attempt being recorded) rather
// than skipping it: a skipped row would be passed by the cursor and never
// retried. Rows are locked in id order, so recoveries never deadlock one
// another, and nothing else locks more than one failed delivery at a time.
// The failed status is the parameter $8, as in countFailed.
const resetFailed = `update deliveries set status = 'pending', next_attempt_at = now(), schedule_base = attempt_count, updated_at = now()
	where id in (select id from deliveries where endpoint_id = $1 and status = $8
		and created_at >= $2 and created_at < $3 and id > $4 and id >= $6 and id < $7 order by id limit $5 for update)
	returning id, attempt_count`

// countFailed counts an endpoint's failed deliveries created in [$2, $3),
// whose ids are in [$4, $5) (windowIDs). The status is the parameter $6: a
// literal 'failed' matches deliveries_unsettled_idx, and with statistics
// that predate an outage the plan reads every merchant's failed deliveries
// in the window from it, filtering on the endpoint (see PendingDeliveries).
const countFailed = `select count(*) from deliveries where endpoint_id = $1 and status = $6
	and created_at >= $2 and created_at < $3 and id >= $4 and id < $5`

// windowIDs bounds the ids (of the prefix's objects) created in [since,
// until): an id is minted as its object is created (a ULID carries the
// time), a moment before or after its created_at is read. So the window is a
// range of an index ending in id: a recovery reads the window's failed
// deliveries, not all those of its endpoint (a dead endpoint may have
// millions), and a replay the window's events of a type; created_at stays
// the exact test. The minute of slack on each side covers the time between
// an event's clock reading and its deliveries' ids, and clocks of processes
// a little apart. (An id equal to the lower bound would be a minute older
// than since: a strict comparison with it loses nothing of the window.)
func windowIDs(prefix string, since, until time.Time) (string, string) {
	return events.FirstIDAt(prefix, since.Add(-time.Minute)), events.FirstIDAt(prefix, until.Add(time.Minute))
}

// recoverBatch resets the batch of a's window after a.After, queues its
// deliveries' jobs, and, unless the batch was empty, the job of the next
// batch, in tx. It adds what it queued to a.Retried, and answers whether the
// recovery is done. A short batch is not the end: a row that was waited for
// and had meanwhile stopped being failed drops out of the LIMIT, so only an
// empty batch says nothing is left.
func (d *Dispatcher) recoverBatch(ctx context.Context, tx pgx.Tx, a *RecoverArgs) (bool, error) {
	lo, hi := windowIDs(events.PrefixDelivery, a.Since, a.Until)
	rows, err := tx.Query(ctx, resetFailed, a.EndpointID, a.Since, a.Until, a.After, recoverBatch, lo, hi, StatusFailed)
	if err != nil {
		return false, fmt.Errorf("reset failed deliveries: %w", err)
	}
	ids, counts, err := scanIDsAndCounts(rows)
	if err != nil {
		return false, fmt.Errorf("reset failed deliveries: %w", err)
	}
	if len(ids) == 0 {
		return true, nil
	}
	a.Retried += len(ids)
	if _, err := d.river.InsertManyTx(ctx, tx, deliverJobs(a.EndpointID, ids, counts, false, time.Time{})); err != nil {
		return false, fmt.Errorf("enqueue recovered deliveries: %w", err)
	}
	next := *a
	next.After = slices.Max(ids)
	if _, err := d.river.InsertTx(ctx, tx, next, nil); err != nil {
		return false, fmt.Errorf("enqueue next recovery batch: %w", err)
	}
	return false, nil
}

func scopeMerchant(scope *events.Scope) *string {
	if scope == nil {
		return nil
	}
	return &scope.MerchantID
}

// RecoverWorker works RecoverArgs.
type RecoverWorker struct {
	river.WorkerDefaults[RecoverArgs]
	dispatcher *Dispatcher
	logger     *slog.Logger
	pool       *pgxpool.Pool
}

// NewRecoverWorker returns the worker of recovery jobs; it logs each
// recovery's exact count when its last batch is queued.
func NewRecoverWorker(pool *pgxpool.Pool, dispatcher *Dispatcher, logger *slog.Logger) *RecoverWorker {
	return &RecoverWorker{dispatcher: dispatcher, logger: logger, pool: pool}
}

// Work resets the next batch of failed deliveries to pending and gives them
// new automatic delivery jobs (a whole retry schedule), in one transaction
// with the next batch's job and this job's completion.
func (w *RecoverWorker) Work(ctx context.Context, job *river.Job[RecoverArgs]) error {
	a := job.Args
	var done bool
	err := pgx.BeginFunc(ctx, w.pool, func(tx pgx.Tx) (err error) {
		if done, err = w.dispatcher.recoverBatch(ctx, tx, &a); err != nil {
			return err
		}
		_, err = river.JobCompleteTx[*riverpgxv5.Driver](ctx, tx, job)
		return err
	})
	if err == nil && done {
		w.logger.InfoContext(ctx, "recovery done", slog.String("endpoint_id", a.EndpointID), slog.Time("since", a.Since),
			slog.Time("until", a.Until), slog.Int("matched", a.Matched), slog.Int("retried", a.Retried))
	}
	return err
}

// RetryByID queues one immediate attempt of a delivery of any merchant: the
// operator's retry. It reports ErrNotFound for an unknown id.
func (d *Dispatcher) RetryByID(ctx context.Context, tx pgx.Tx, id string) error {
	var exists bool
	if err := tx.QueryRow(ctx, `select exists (select 1 from deliveries where id = $1)`, id).Scan(&exists); err != nil {
		return fmt.Errorf("find delivery: %w", err)
	}
	if !exists {
		return events.ErrNotFound
	}
	return d.enqueueManual(ctx, tx, id)
}

// errWindow is returned by ParseWhen for a value that is neither a time nor a
// duration.
var errWindow = errors.New("must be an RFC 3339 time, such as 2026-11-20T14:00:00Z, or a Go duration meaning that long ago, such as 6h")

// ParseWhen reads a recovery bound as the CLI takes it: an RFC 3339 time, or
// a Go duration meaning that long before now.
func ParseWhen(s string, now time.Time) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	if d, err := time.ParseDuration(s); err == nil && d >= 0 {
		return now.Add(-d), nil
	}
	return time.Time{}, errWindow
}
