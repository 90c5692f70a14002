package delivery

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"

	"github.com/hookline/hookline/events"
)

// pruneBatch is how many deliveries one pruning transaction removes, with
// their attempts: small enough that no transaction holds locks for long.
const pruneBatch = 5000

// PruneArgs is the periodic River job that keeps the tables at the size of
// the retention window, so that a delivery costs the same at 10 million rows
// as at 10 thousand.
type PruneArgs struct{}

// Kind is the job's River kind.
func (PruneArgs) Kind() string { return "prune" }

// InsertOpts makes prune jobs one at a time.
func (PruneArgs) InsertOpts() river.InsertOpts { return events.OneAtATime() }

// PruneWorker works PruneArgs.
type PruneWorker struct {
	river.WorkerDefaults[PruneArgs]
	logger    *slog.Logger
	pool      *pgxpool.Pool
	retention time.Duration
}

// NewPruneWorker returns the worker that removes what is older than retention.
func NewPruneWorker(pool *pgxpool.Pool, retention time.Duration, logger *slog.Logger) *PruneWorker {
	return &PruneWorker{logger: logger, pool: pool, retention: retention}
}

// Timeout lets one run work through a large backlog of old rows.
func (w *PruneWorker) Timeout(*river.Job[PruneArgs]) time.Duration { return 10 * time.Minute }

// Work deletes, batch by batch, finished deliveries older than the retention
// with their attempts, then events older than it that no delivery still
// names, then idempotency keys past their 24 hours.
func (w *PruneWorker) Work(ctx context.Context, _ *river.Job[PruneArgs]) error {
	cutoff := time.Now().Add(-w.retention)
	var deliveries, events int64
	for {
		var n int64
		err := pgx.BeginFunc(ctx, w.pool, func(tx pgx.Tx) error {
			rows, err := tx.Query(ctx, `select id from deliveries where created_at < $1 and status <> 'pending'
				order by created_at limit $2 for update skip locked`, cutoff, pruneBatch)
			if err != nil {
				return err
			}
			ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
			if err != nil {
				return err
			}
			n = int64(len(ids))
			if _, err := tx.Exec(ctx, `delete from delivery_attempts where delivery_id = any($1)`, ids); err != nil {
				return err
			}
			_, err = tx.Exec(ctx, `delete from deliveries where id = any($1)`, ids)
			return err
		})
		if err != nil {
			return fmt.Errorf("prune deliveries: %w", err)
		}
		deliveries += n
		if n < pruneBatch {
			break
		}
	}
	for {
		tag, err := w.pool.Exec(ctx, `delete from events where id in (select e.id from events e
			where e.created_at < $1 and not exists (select 1 from deliveries d where d.event_id = e.id)
			order by e.created_at limit $2)`, cutoff, pruneBatch)
		if err != nil {
			return fmt.Errorf("prune events: %w", err)
		}
		events += tag.RowsAffected()
		if tag.RowsAffected() < pruneBatch {
			break
		}
	}
	if _, err := w.pool.Exec(ctx, `delete from idempotency_keys where created_at < now() - interval '24 hours'`); err != nil {
		return fmt.Errorf("prune idempotency keys: %w", err)
	}
	if deliveries+events > 0 {
		w.logger.InfoContext(ctx, "pruned", slog.Int64("deliveries", deliveries), slog.Int64("events", events),
			slog.Time("older_than", cutoff))
	}
	return nil
}
