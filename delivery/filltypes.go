package delivery

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"

	"github.com/hookline/hookline/events"
)

const (
	// FillEventTypesInterval is how often the deliveries not succeeded that
	// lack their event's type get it: until then the reconciliation list
	// misses them.
	FillEventTypesInterval = time.Minute
	// fillBatch is how many deliveries one fill transaction types.
	fillBatch = 1000
	// fillBudget ends a run early once it has worked this long; the next run
	// goes on (the typed deliveries have left the index it reads).
	fillBudget = 10 * time.Second
)

// FillEventTypesArgs is the periodic River job that writes event_type on
// the deliveries not succeeded that lack it: those written before migration
// 016, and those that processes of an older release still write during a
// rolling upgrade. The reconciliation list (ListUndelivered) reads
// deliveries by type, and would miss them. The fill replaces a backfill in
// the migration, which held the deliveries table's lock for a full-table
// update: it goes through deliveries_untyped_idx, a partial index that a
// delivery written with its type never enters (so the hot path pays
// nothing), in batches of fillBatch by id, each its own short transaction,
// skipping rows a worker holds (the next run takes them). Once every
// delivery has its type, a run reads an empty index.
type FillEventTypesArgs struct{}

// Kind is the job's River kind.
func (FillEventTypesArgs) Kind() string { return "fill_delivery_event_types" }

// InsertOpts makes the fill one at a time.
func (FillEventTypesArgs) InsertOpts() river.InsertOpts { return events.OneAtATime() }

// fillEventTypes types the next $2 untyped deliveries not succeeded after
// $1, by id, with their events' types (read by primary key), and answers how
// many it looked at, the last id it looked at, and how many it typed. Its
// where clause is deliveries_untyped_idx's predicate, written out, so that
// the plan reads that index.
const fillEventTypes = `with batch as (
		select id, event_id from deliveries where event_type is null and status <> 'succeeded' and id > $1
		order by id limit $2 for update skip locked),
	filled as (
		update deliveries d set event_type = e.type from batch b join events e on e.id = b.event_id
		where d.id = b.id returning d.id)
	select (select count(*) from batch)::int, (select coalesce(max(id), '') from batch), (select count(*) from filled)::int`

// FillEventTypesWorker works FillEventTypesArgs.
type FillEventTypesWorker struct {
	river.WorkerDefaults[FillEventTypesArgs]
	logger *slog.Logger
	pool   *pgxpool.Pool
	// batch is fillBatch; tests make it smaller.
	batch int
}

// NewFillEventTypesWorker returns the worker of the event type fill.
func NewFillEventTypesWorker(pool *pgxpool.Pool, logger *slog.Logger) *FillEventTypesWorker {
	return &FillEventTypesWorker{logger: logger, pool: pool, batch: fillBatch}
}

// Work types the untyped deliveries a batch at a time, until none is left
// or fillBudget has passed, and logs how many it typed.
func (w *FillEventTypesWorker) Work(ctx context.Context, _ *river.Job[FillEventTypesArgs]) error {
	start := time.Now()
	after, typed := "", 0
	defer func() {
		if typed > 0 {
			w.logger.InfoContext(ctx, "typed deliveries", slog.Int("deliveries", typed))
		}
	}()
	for time.Since(start) < fillBudget {
		var seen, n int
		if err := w.pool.QueryRow(ctx, fillEventTypes, after, w.batch).Scan(&seen, &after, &n); err != nil {
			return fmt.Errorf("fill delivery event types: %w", err)
		}
		typed += n
		if seen < w.batch {
			return nil
		}
	}
	return nil
}
