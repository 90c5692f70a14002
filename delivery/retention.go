package delivery

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"

	"github.com/hookline/hookline/events"
)

// pruneBatch is how many deliveries one pruning transaction removes, with
// their attempts: small enough that no transaction holds locks for long.
const pruneBatch = 5000

// prunableDeliveries is the next batch of settled deliveries minted before
// the id $1, after the id $3 (the last batch's last): the primary key from
// where the run got to, past the old deliveries still owed (pending), which
// retention keeps. A run reads each row once, not its first rows once per
// batch.
const prunableDeliveries = `select id from deliveries where id < $1 and id > $3 and status <> 'pending'
	order by id limit $2 for update skip locked`

// pruneEvents deletes the next batch of events minted before the id $1,
// after the id $3 (the last batch's last), that no delivery names any more:
// the primary key from where the run got to. It reads, as well as the events
// it deletes, the old events whose deliveries retention keeps (still
// pending), one lookup of deliveries_event_idx each, once a run.
const pruneEvents = `delete from events where id in (select e.id from events e
	where e.id < $1 and e.id > $3 and not exists (select 1 from deliveries d where d.event_id = e.id)
	order by e.id limit $2)
	returning id`

// pruneIdempotencyKeys forgets the idempotency keys past their window, over
// idempotency_keys_created_idx.
const pruneIdempotencyKeys = `delete from idempotency_keys where created_at < now() - interval '24 hours'`

// prunePortalSessions deletes the next batch of merchant portal sessions
// minted before the id $1 (every one of them ended an hour after it was
// minted), from the low end of the primary key.
const prunePortalSessions = `delete from portal_sessions where id in (select id from portal_sessions
	where id < $1 order by id limit $2)`

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
// names, then idempotency keys past their 24 hours, then merchant portal
// sessions older than the retention (kept that long, long after they end,
// as the record of who opened the portal when), then the endpoint
// statistics' rollup rows past theirs (statsRetention: 2 hours for minutes,
// 7 days for hours, whatever the retention).
func (w *PruneWorker) Work(ctx context.Context, _ *river.Job[PruneArgs]) error {
	return w.prune(ctx, time.Now().Add(-w.retention))
}

// prune removes what was created before cutoff. Age is read from the ids
// (ULIDs carry their minting time), so each batch is a range of the primary
// key from its low end: no index on a creation time, which every insert and
// every non-HOT update of the table would otherwise write.
func (w *PruneWorker) prune(ctx context.Context, cutoff time.Time) error {
	var deliveries, evts int64
	last := ""
	for {
		var n int64
		err := pgx.BeginFunc(ctx, w.pool, func(tx pgx.Tx) error {
			rows, err := tx.Query(ctx, prunableDeliveries, events.FirstIDAt(events.PrefixDelivery, cutoff), pruneBatch, last)
			if err != nil {
				return err
			}
			ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
			if err != nil {
				return err
			}
			n = int64(len(ids))
			if n > 0 {
				last = ids[n-1]
			}
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
	for last = ""; ; {
		rows, err := w.pool.Query(ctx, pruneEvents, events.FirstIDAt(events.PrefixEvent, cutoff), pruneBatch, last)
		if err != nil {
			return fmt.Errorf("prune events: %w", err)
		}
		ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return fmt.Errorf("prune events: %w", err)
		}
		evts += int64(len(ids))
		if len(ids) < pruneBatch {
			break
		}
		last = slices.Max(ids)
	}
	if _, err := w.pool.Exec(ctx, pruneIdempotencyKeys); err != nil {
		return fmt.Errorf("prune idempotency keys: %w", err)
	}
	for {
		tag, err := w.pool.Exec(ctx, prunePortalSessions, events.FirstIDAt(events.PrefixPortalSession, cutoff), pruneBatch)
		if err != nil {
			return fmt.Errorf("prune portal sessions: %w", err)
		}
		if tag.RowsAffected() < pruneBatch {
			break
		}
	}
	stats, err := pruneEndpointStats(ctx, w.pool, time.Now())
	if err != nil {
		return err
	}
	if deliveries+evts+stats > 0 {
		w.logger.InfoContext(ctx, "pruned", slog.Int64("deliveries", deliveries), slog.Int64("events", evts),
			slog.Int64("endpoint_stats_rows", stats), slog.Time("older_than", cutoff))
	}
	return nil
}
