package delivery

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"

	"github.com/hookline/hookline/events"
)

const (
	// ReconcileInterval is how often pending deliveries are checked for a job.
	ReconcileInterval = time.Minute
	// reconcileWindow is how many pending deliveries one statement looks at.
	reconcileWindow = 1000
	// reconcileWindows is how many windows one run looks at: a run costs the
	// same however many deliveries are pending, and a large backlog is gone
	// through over several runs.
	reconcileWindows = 20
	// reconcileBudget ends a run early once it has worked this long. A
	// window's job lookups read River's GIN index on args, whose pending
	// list (recent inserts not yet merged, up to 4 MB) every lookup scans:
	// while River inserts many jobs, a window took 600 ms instead of 20 ms
	// in the review's measurement on the seeded history, and 20 of them
	// would cost the database 12 s every minute just when it is busiest.
	// With the budget a run costs at most about this much; the walk resumes
	// where it stopped.
	reconcileBudget = 2 * time.Second
)

// ReconcileArgs is the periodic River job that finds pending deliveries no
// job will ever take, and gives them one. Every path that leaves a delivery
// pending writes its next job in the same transaction, so such a delivery is
// a fault: a job River discarded after it errored on every run (a database
// fault, a bug, a key dropped from HOOKLINE_ENCRYPTION_KEY before the worker
// failed targets alone), a job deleted by hand, or a migration's mistake.
// Without the reconciler it stays pending for ever, and retention keeps it.
type ReconcileArgs struct{}

// Kind is the job's River kind.
func (ReconcileArgs) Kind() string { return "reconcile_deliveries" }

// InsertOpts makes the reconciler one at a time.
func (ReconcileArgs) InsertOpts() river.InsertOpts { return events.OneAtATime() }

// ReconcileWorker works ReconcileArgs.
type ReconcileWorker struct {
	river.WorkerDefaults[ReconcileArgs]
	dispatcher *Dispatcher
	logger     *slog.Logger
	metrics    *Metrics
	pool       *pgxpool.Pool
	// grace is how long past its next_attempt_at a delivery must be before
	// it counts as stranded: longer than any lease or job can hold it unseen.
	grace time.Duration
	// windowSize is reconcileWindow; tests make it smaller.
	windowSize int

	mu sync.Mutex
	// after is where the next run goes on: the last pending delivery id the
	// previous run looked at ("" from the start). Each process keeps its own;
	// whichever runs the job walks on from its own place, and every place
	// goes round all pending deliveries.
	after string
}

// NewReconcileWorker returns the worker of the reconciler; deliveryTimeout
// is HOOKLINE_DELIVERY_TIMEOUT, which bounds how long a job can hold a
// delivery.
func NewReconcileWorker(pool *pgxpool.Pool, dispatcher *Dispatcher, metrics *Metrics, logger *slog.Logger, deliveryTimeout time.Duration) *ReconcileWorker {
	return &ReconcileWorker{
		dispatcher: dispatcher, logger: logger, metrics: metrics, pool: pool, windowSize: reconcileWindow,
		// A job runs at most JobTimeout, then River rescues it; a drain's
		// lease is JobTimeout plus recordTimeout and a few seconds; a minute
		// more for River's rescuer and scheduler to act.
		grace: JobTimeout(deliveryTimeout) + recordTimeout + time.Minute,
	}
}

// Timeout lets a run go through its windows whatever the delivery timeout.
func (w *ReconcileWorker) Timeout(*river.Job[ReconcileArgs]) time.Duration { return 5 * time.Minute }

// ownerless is true of a pending delivery (d) that no job will take: not
// parked (the release owns those), due more than $2 ago, and named by no
// River delivery job that will still run. The job lookup is one probe of
// River's GIN index on args (river_job_args_index) per delivery, a few
// pages whatever river_job holds. It is written so that nothing else can
// join the probe: only delivery jobs have delivery_ids (so no kind), and a
// job that will still run is one River has not finalized (its check
// constraint ties finalized_at to the completed, cancelled and discarded
// states). A condition on state instead let the planner AND the probe with
// River's fetch index, reading every waiting job for each delivery.
const ownerless = `not d.parked and coalesce(d.next_attempt_at, d.created_at) < now() - $2::interval
	and not exists (select 1 from river_job j
		where j.args @> jsonb_build_object('delivery_ids', jsonb_build_array(d.id)) and j.finalized_at is null)`

// reconcileSettings lets the reconciler's statements read River's GIN
// index, which only a bitmap scan can: PlannerSettings turns bitmap scans
// off for every other statement (see there).
const reconcileSettings = `select set_config('enable_bitmapscan', 'on', true)`

// ReconcilePlannerSettings are the settings the reconciler's statements run
// under: PlannerSettings and reconcileSettings.
func ReconcilePlannerSettings() map[string]string {
	settings := PlannerSettings()
	settings["enable_bitmapscan"] = "on"
	return settings
}

// pendingWindow is the next $3 pending deliveries after $1 by id, each with
// whether it is ownerless: a walk of deliveries_unsettled_idx, whose cost
// follows the window, not the table.
const pendingWindow = `select d.id, ` + ownerless + `
	from deliveries d where d.status = 'pending' and d.id > $1 order by d.id limit $3`

// requeueOwnerless gives the deliveries of $1 that are still ownerless a
// fresh next_attempt_at, and answers what their jobs need. It runs in the
// transaction that inserts those jobs, and checks again, row by row under
// the row's lock, what pendingWindow saw: a job written meanwhile (a record,
// a release) moved next_attempt_at or parked, and the row is left alone.
// Its status test is written as parkDeliveries explains, so that the ids are
// read by primary key whatever the statistics say of pending deliveries.
const requeueOwnerless = `update deliveries d set next_attempt_at = now(), updated_at = now()
	where d.id = any($1) and (d.status = 'pending') is true and ` + ownerless + `
	returning d.id, d.attempt_count, coalesce(d.endpoint_id, 'url:' || md5(d.url))`

// Work walks the pending deliveries, a window at a time, from where the last
// run stopped, and requeues those no job will take. It stops at the end (the
// next run starts over), after reconcileWindows windows, or once it has
// worked reconcileBudget.
func (w *ReconcileWorker) Work(ctx context.Context, _ *river.Job[ReconcileArgs]) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	start := time.Now()
	for range reconcileWindows {
		if time.Since(start) > reconcileBudget {
			return nil // the next run goes on from w.after
		}
		ids, stranded, err := w.next(ctx)
		if err != nil {
			return err
		}
		if len(stranded) > 0 {
			n, err := w.requeue(ctx, stranded)
			if err != nil {
				return err
			}
			w.metrics.requeued.Add(float64(n))
			w.logger.WarnContext(ctx, "requeued pending deliveries that no job would take", slog.Int("deliveries", n),
				slog.String("first_id", stranded[0]), slog.String("last_id", stranded[len(stranded)-1]))
		}
		if len(ids) < w.windowSize {
			w.after = "" // the end: the next run starts over
			return nil
		}
		w.after = ids[len(ids)-1]
	}
	return nil
}

// next reads the next window of pending deliveries: their ids, and those of
// them that are ownerless.
func (w *ReconcileWorker) next(ctx context.Context) (ids, stranded []string, err error) {
	err = pgx.BeginFunc(ctx, w.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, reconcileSettings); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, pendingWindow, w.after, w.grace, w.windowSize)
		if err != nil {
			return err
		}
		var id string
		var alone bool
		_, err = pgx.ForEachRow(rows, []any{&id, &alone}, func() error {
			ids = append(ids, id)
			if alone {
				stranded = append(stranded, id)
			}
			return nil
		})
		return err
	})
	if err != nil {
		return nil, nil, fmt.Errorf("find ownerless deliveries: %w", err)
	}
	return ids, stranded, nil
}

// requeue gives the deliveries of ids that are still ownerless jobs, by
// destination as the fan-out makes them, and answers how many.
func (w *ReconcileWorker) requeue(ctx context.Context, ids []string) (int, error) {
	var n int
	err := pgx.BeginFunc(ctx, w.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, reconcileSettings); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, requeueOwnerless, ids, w.grace)
		if err != nil {
			return err
		}
		// One destination's deliveries share jobs, as the fan-out's do.
		var order []string
		var id, key string
		var count int
		idsOf, countsOf := map[string][]string{}, map[string][]int{}
		_, err = pgx.ForEachRow(rows, []any{&id, &count, &key}, func() error {
			if idsOf[key] == nil {
				order = append(order, key)
			}
			idsOf[key], countsOf[key] = append(idsOf[key], id), append(countsOf[key], count)
			n++
			return nil
		})
		if err != nil {
			return err
		}
		var jobs []river.InsertManyParams
		for _, key := range order {
			jobs = append(jobs, deliverJobs(key, idsOf[key], countsOf[key], false, time.Time{})...)
		}
		if len(jobs) == 0 {
			return nil
		}
		_, err = w.dispatcher.river.InsertManyTx(ctx, tx, jobs)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("requeue ownerless deliveries: %w", err)
	}
	return n, nil
}
