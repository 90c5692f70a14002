package events

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
)

// ExpireCheckoutArgs is the River job that expires a checkout at its expiry_at.
// It is inserted, scheduled, in the transaction that creates the checkout, so a
// committed checkout always has its expiry pending.
type ExpireCheckoutArgs struct {
	CheckoutID string `json:"checkout_id"`
}

// Kind is the job's River kind.
func (ExpireCheckoutArgs) Kind() string { return "expire_checkout" }

// ExpireCheckoutWorker works ExpireCheckoutArgs.
type ExpireCheckoutWorker struct {
	river.WorkerDefaults[ExpireCheckoutArgs]
	pool    *pgxpool.Pool
	service *Service
}

// NewExpireCheckoutWorker returns the worker of checkout expiry jobs.
func NewExpireCheckoutWorker(pool *pgxpool.Pool, service *Service) *ExpireCheckoutWorker {
	return &ExpireCheckoutWorker{pool: pool, service: service}
}

// Work expires the checkout if it is still open, and completes the job in the
// same transaction, so the expiry and its event happen exactly once. A checkout
// that was paid or expired by hand meanwhile is left as it is.
func (w *ExpireCheckoutWorker) Work(ctx context.Context, job *river.Job[ExpireCheckoutArgs]) error {
	return pgx.BeginFunc(ctx, w.pool, func(tx pgx.Tx) error {
		var scope Scope
		err := tx.QueryRow(ctx, `select merchant_id, livemode from checkouts where id = $1`, job.Args.CheckoutID).
			Scan(&scope.MerchantID, &scope.Livemode)
		if errors.Is(err, pgx.ErrNoRows) {
			return river.JobCancel(fmt.Errorf("checkout %s does not exist", job.Args.CheckoutID))
		}
		if err != nil {
			return fmt.Errorf("find checkout: %w", err)
		}
		var stateErr *StateError
		if _, err := w.service.ExpireCheckout(ctx, tx, scope, job.Args.CheckoutID); err != nil && !errors.As(err, &stateErr) {
			return err
		}
		_, err = river.JobCompleteTx[*riverpgxv5.Driver](ctx, tx, job)
		return err
	})
}
