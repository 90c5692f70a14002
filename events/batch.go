package events

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/hookline/hookline/events/traceparent"
)

// Bounds of the checkout batcher: how many checkouts one transaction writes at
// most, how many such transactions run at once, how long one may take, and
// how long finding out what a lost commit did may take.
const (
	maxCheckoutBatch     = 100
	maxCheckoutBatches   = 4
	checkoutBatchTimeout = 30 * time.Second
	lostCommitTimeout    = 10 * time.Second
)

// ErrCommitUnknown is returned for a checkout whose transaction lost its
// connection during COMMIT when hookline could not then find out whether it
// committed (the database stayed out of reach): the checkout may exist.
var ErrCommitUnknown = errors.New("the connection was lost during commit and the outcome could not be read back")

// CheckoutBatcher creates the checkouts of concurrent requests together (group
// commit): the requests that arrive while earlier batches are being written
// share the next transaction, and its statements, one per table whatever the
// batch's size. A lone request is written at once, alone; under load, a
// transaction and its commit serve many requests. Each request still gets its
// answer only once its checkout, its event and its deliveries are committed.
//
// Every check of a request's input runs before it joins a batch, so a batch
// fails only as a whole (the database away, say), and every request in it gets
// that error. Two failures need more than passing the error on, because these
// requests carry no Idempotency-Key and their clients retry blindly: a commit
// whose connection was lost may have committed (each checkout is looked up by
// its id, minted before the insert, and one found is answered as created), and
// a panic while writing must still answer every waiter (with an internal
// error) and leave the process and the batcher running.
type CheckoutBatcher struct {
	service *Service
	pool    *pgxpool.Pool
	logger  *slog.Logger
	// beforeCommit, set only by tests (export_test.go), runs in each batch's
	// transaction just before COMMIT: where they lose the connection or panic.
	beforeCommit func(ctx context.Context, tx pgx.Tx)

	mu      sync.Mutex
	queue   []*queuedCheckout
	running int // batches being written
}

type queuedCheckout struct {
	row  *newCheckoutRow
	err  error
	done chan struct{}
}

// NewCheckoutBatcher returns a batcher that writes through service in
// transactions of pool, logging to logger what it cannot answer plainly (a
// lost commit, a panic).
func NewCheckoutBatcher(service *Service, pool *pgxpool.Pool, logger *slog.Logger) *CheckoutBatcher {
	return &CheckoutBatcher{service: service, pool: pool, logger: logger}
}

// Create creates an open, unpaid checkout and emits checkout.created, as
// Service.CreateCheckout does, in a transaction shared with other requests.
// If ctx ends first, Create returns ctx's error, and the checkout may still be
// created, as when a connection drops after the commit.
func (b *CheckoutBatcher) Create(ctx context.Context, scope Scope, p CheckoutParams) (*Checkout, error) {
	row, err := newCheckout(scope, p)
	if err != nil {
		return nil, err
	}
	// The batch is written under another request's context: each checkout's
	// event keeps the trace of its own.
	row.trace = traceparent.FromContext(ctx)
	q := &queuedCheckout{row: row, done: make(chan struct{})}
	b.mu.Lock()
	b.queue = append(b.queue, q)
	lead := b.running < maxCheckoutBatches
	if lead {
		b.running++
	}
	b.mu.Unlock()
	if lead {
		// Written apart from ctx: the batch holds other requests too.
		b.write(context.WithoutCancel(ctx))
	}
	select {
	case <-q.done:
		return row.checkout, q.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// write writes one batch from the queue and answers its waiters, then hands
// on (see handOn). A panic while writing answers every waiter not yet
// answered with an internal error, and is logged with its stack: it must
// neither leave a waiter without an answer, nor the batcher without a writer,
// nor (in a handed-on goroutine) end the process.
func (b *CheckoutBatcher) write(ctx context.Context) {
	defer b.handOn(ctx)
	b.mu.Lock()
	n := min(len(b.queue), maxCheckoutBatch)
	batch := b.queue[:n:n]
	b.queue = b.queue[n:]
	b.mu.Unlock()
	if len(batch) == 0 {
		return
	}
	answered := 0
	defer func() {
		r := recover()
		if r == nil {
			return
		}
		b.logger.ErrorContext(ctx, "checkout batch panicked", slog.Int("checkouts", len(batch)),
			slog.String("panic", fmt.Sprint(r)), slog.String("stack", string(debug.Stack())))
		for _, q := range batch[answered:] {
			q.err = fmt.Errorf("write checkout batch: panic: %v", r)
			close(q.done)
		}
	}()

	errs := b.commit(ctx, batch)
	for i, q := range batch {
		q.err = errs[i]
		answered++
		close(q.done)
	}
}

// commit writes batch's checkouts in one transaction and returns each one's
// error: nil for a checkout committed. When the connection is lost during
// COMMIT, whether the transaction committed is looked up (lostCommit).
func (b *CheckoutBatcher) commit(ctx context.Context, batch []*queuedCheckout) []error {
	rows := make([]*newCheckoutRow, len(batch))
	for i, q := range batch {
		rows[i] = q.row
	}
	all := func(err error) []error {
		errs := make([]error, len(batch))
		for i := range errs {
			errs[i] = err
		}
		return errs
	}
	ctx, cancel := context.WithTimeout(ctx, checkoutBatchTimeout)
	defer cancel()
	tx, err := b.pool.Begin(ctx)
	if err != nil {
		return all(fmt.Errorf("begin checkout batch: %w", err))
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // after a commit, a no-op; otherwise the error that matters is returned
	if err := b.service.insertCheckouts(ctx, tx, rows); err != nil {
		return all(err)
	}
	// The transaction's id, by which a lost COMMIT's outcome is read back:
	// the server's own name for it, unlike the connection's process id,
	// which a pooler (PgBouncer) replaces with its own.
	var xid string
	if err := tx.QueryRow(ctx, transactionID).Scan(&xid); err != nil {
		return all(fmt.Errorf("checkout batch transaction id: %w", err))
	}
	if b.beforeCommit != nil {
		b.beforeCommit(ctx, tx)
	}
	err = tx.Commit(ctx)
	if err == nil || !commitAmbiguous(err) {
		return all(err)
	}
	ids := make([]string, len(rows))
	for i, r := range rows {
		ids[i] = r.checkout.ID
	}
	committed, lookupErr := b.lostCommit(ctx, xid)
	b.logger.WarnContext(ctx, "checkout batch lost its connection during commit", slog.String("error", err.Error()),
		slog.Int("checkouts", len(ids)), slog.Bool("committed", committed), slog.Any("lookup_error", lookupErr))
	switch {
	case lookupErr != nil:
		return all(fmt.Errorf("%w: commit: %w; lookup: %w", ErrCommitUnknown, err, lookupErr))
	case committed:
		return make([]error, len(ids))
	default:
		return all(fmt.Errorf("commit checkout batch: %w", err))
	}
}

// transactionID is the running transaction's id (it takes one, as it has
// written).
const transactionID = `select pg_current_xact_id()::text`

// xactStatus is a transaction's outcome: committed, aborted, or in
// progress.
const xactStatus = `select pg_xact_status($1::xid8)`

// commitAmbiguous reports whether a failed COMMIT may have committed all the
// same: no ERROR came back for it. A FATAL (a backend terminated just after
// its commit) may follow a commit that happened, and so may any failure to
// read the answer. pgconn.SafeToRetry cannot tell: pgx reports a connection
// lost while reading the answer to a COMMIT as "conn closed", an error that
// claims nothing was sent (the lost-after-commit test shows it).
func commitAmbiguous(err error) bool {
	var pgErr *pgconn.PgError
	if errors.Is(err, pgx.ErrTxCommitRollback) || (errors.As(err, &pgErr) && pgErr.Severity == "ERROR") {
		return false
	}
	return true
}

// lostCommit finds out, on another connection, whether the transaction
// xid of the lost connection committed. Its backend may still be running the
// commit, or waiting for a COMMIT that will never arrive until it notices
// its client has gone (which ends the transaction): the status is read every
// 100 ms until it is final, for up to lostCommitTimeout.
func (b *CheckoutBatcher) lostCommit(ctx context.Context, xid string) (bool, error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), lostCommitTimeout)
	defer cancel()
	for {
		var status *string
		if err := b.pool.QueryRow(ctx, xactStatus, xid).Scan(&status); err != nil {
			return false, fmt.Errorf("read transaction %s's outcome: %w", xid, err)
		}
		switch {
		case status == nil:
			return false, fmt.Errorf("transaction %s is too old for its outcome to be known", xid)
		case *status == "committed":
			return true, nil
		case *status == "aborted":
			return false, nil
		}
		select {
		case <-ctx.Done():
			return false, fmt.Errorf("transaction %s still in progress: %w", xid, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// handOn writes the next batch if the queue filled meanwhile (in a goroutine,
// so that the request that led this one gets its answer now), or frees a
// writer's slot.
func (b *CheckoutBatcher) handOn(ctx context.Context) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.queue) > 0 {
		go b.write(ctx)
		return
	}
	b.running--
}
