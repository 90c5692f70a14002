package events

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
)

// ExpirySweepInterval is how often open checkouts past their expiry_at are
// expired: a checkout expires within this long of its expiry_at.
const ExpirySweepInterval = 10 * time.Second

// expireBatch is how many checkouts one sweep transaction expires.
const expireBatch = 100

// ExpireCheckoutsArgs is the periodic River job that expires every open
// checkout past its expiry_at. A sweep over an index replaces a scheduled job
// per checkout, which cost every checkout creation a second job insert.
type ExpireCheckoutsArgs struct{}

// Kind is the job's River kind.
func (ExpireCheckoutsArgs) Kind() string { return "expire_checkouts" }

// InsertOpts makes sweeps one at a time.
func (ExpireCheckoutsArgs) InsertOpts() river.InsertOpts { return OneAtATime() }

// OneAtATime is the insert options of a periodic job: unique while one is
// waiting or running, and only then. River's default unique states include
// completed, which would hold the next run off until River prunes the
// finished job, a day later.
func OneAtATime() river.InsertOpts {
	return river.InsertOpts{UniqueOpts: river.UniqueOpts{ByArgs: true, ByState: []rivertype.JobState{
		rivertype.JobStateAvailable, rivertype.JobStatePending, rivertype.JobStateRetryable,
		rivertype.JobStateRunning, rivertype.JobStateScheduled,
	}}}
}

// ExpireCheckoutsWorker works ExpireCheckoutsArgs.
type ExpireCheckoutsWorker struct {
	river.WorkerDefaults[ExpireCheckoutsArgs]
	pool    *pgxpool.Pool
	service *Service
}

// NewExpireCheckoutsWorker returns the worker of the expiry sweep.
func NewExpireCheckoutsWorker(pool *pgxpool.Pool, service *Service) *ExpireCheckoutsWorker {
	return &ExpireCheckoutsWorker{pool: pool, service: service}
}

// Work expires due checkouts batch by batch, each expiry with its
// checkout.expired event in the batch's transaction.
func (w *ExpireCheckoutsWorker) Work(ctx context.Context, _ *river.Job[ExpireCheckoutsArgs]) error {
	for {
		n, err := w.expireBatch(ctx)
		if err != nil {
			return fmt.Errorf("expire checkouts: %w", err)
		}
		if n < expireBatch {
			return nil
		}
	}
}

// expireDue expires up to $1 open checkouts whose expiry is past. The
// status is written out, not a parameter: a generic plan can use the partial
// index of open checkouts (checkouts_open_expiry_idx) only when the
// statement's own text implies its predicate.
const expireDue = `update checkouts set status = 'expired' where id in (
		select id from checkouts where status = 'open' and expiry_at <= now() order by expiry_at limit $1 for update skip locked)
	returning ` + checkoutFields + `, merchant_id`

// expireBatch expires up to expireBatch due checkouts, and publishes their
// checkout.expired, in one transaction with one statement for the checkouts.
// Rows are taken with skip locked: a checkout being paid right now is left to
// the next sweep, which then finds it no longer open.
func (w *ExpireCheckoutsWorker) expireBatch(ctx context.Context) (int, error) {
	var pubs []Publication
	err := pgx.BeginFunc(ctx, w.pool, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, expireDue, expireBatch)
		if err != nil {
			return err
		}
		pubs, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (Publication, error) {
			var merchantID string
			c, err := scanCheckout(row, &merchantID)
			return Publication{Scope: Scope{MerchantID: merchantID, Livemode: c.Livemode}, Type: CheckoutExpired, Object: c,
				WebhookURL: deref(c.WebhookURL)}, err
		})
		if err != nil || len(pubs) == 0 {
			return err
		}
		_, err = w.service.publisher.PublishMany(ctx, tx, pubs)
		return err
	})
	return len(pubs), err
}
