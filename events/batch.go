package events

import (
	"context"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Bounds of the checkout batcher: how many checkouts one transaction writes at
// most, how many such transactions run at once, and how long one may take.
const (
	maxCheckoutBatch     = 100
	maxCheckoutBatches   = 4
	checkoutBatchTimeout = 30 * time.Second
)

// CheckoutBatcher creates the checkouts of concurrent requests together (group
// commit): the requests that arrive while earlier batches are being written
// share the next transaction, and its statements, one per table whatever the
// batch's size. A lone request is written at once, alone; under load, a
// transaction and its commit serve many requests. Each request still gets its
// answer only once its checkout, its event and its deliveries are committed.
//
// Every check of a request's input runs before it joins a batch, so a batch
// fails only as a whole (the database away, say), and every request in it gets
// that error.
type CheckoutBatcher struct {
	service *Service
	pool    *pgxpool.Pool

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
// transactions of pool.
func NewCheckoutBatcher(service *Service, pool *pgxpool.Pool) *CheckoutBatcher {
	return &CheckoutBatcher{service: service, pool: pool}
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

// write writes one batch from the queue, then hands on (see handOn), even if
// writing panicked: the batcher must never be left without a writer.
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

	rows := make([]*newCheckoutRow, len(batch))
	for i, q := range batch {
		rows[i] = q.row
	}
	ctx, cancel := context.WithTimeout(ctx, checkoutBatchTimeout)
	defer cancel()
	err := pgx.BeginFunc(ctx, b.pool, func(tx pgx.Tx) error { return b.service.insertCheckouts(ctx, tx, rows) })
	for _, q := range batch {
		q.err = err
		close(q.done)
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
