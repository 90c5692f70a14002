package delivery

import (
	"context"
	"log/slog"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

const (
	// withdrawMax is the most queued jobs one withdrawal locks (up to
	// jobSize deliveries each); a larger queue is withdrawn in turns.
	withdrawMax = 5000
	// withdrawChunk is how many of them one statement deletes and parks.
	withdrawChunk = 200
	// withdrawBudget bounds the statements of one withdrawal, and so how
	// long it holds the jobs it locked: past it, what was withdrawn is
	// committed and the jobs not reached yet go back to the queue. It ends
	// sooner when the job's timeout is nearer than withdrawMargin, which
	// would roll it all back. Parking is the cost: 4,900 jobs of 10
	// deliveries took 7.5 s on the 2-core machine beside another tenant's
	// load.
	withdrawBudget = 20 * time.Second
	withdrawMargin = 3 * time.Second
	// withdrawEvery is how long one process waits after withdrawing a
	// destination's queued jobs before it withdraws them again: once is
	// enough for what was queued, and the jobs queued since (retries
	// coming due) are few.
	withdrawEvery = 5 * time.Second
)

// lockQueued locks destination $1's queued automatic jobs, up to $2, oldest
// first, where River's fetch would lock them: a job River is fetching is
// skipped and stays River's, and River's fetch skips the jobs locked here,
// so that from this statement on they stand in front of no one while
// withdrawJobs works through them. Manual retries and probes are not
// withdrawn (a retry is never parked: see batch.park; a probe is sent
// although its destination is paused). river_job_queued_destination_idx
// (migration 019) holds only the queued delivery jobs: the statement reads
// what it locks, not the destination's history.
const lockQueued = `select id from river_job
	where state = 'available' and kind = 'deliver' and args->>'destination' = $1
		and args->'manual' is null and args->'probe' is null
	order by args->>'destination', id
	limit $2
	for update skip locked`

// withdrawJobs deletes the jobs $1, which lockQueued locked in the same
// transaction, and parks their deliveries, so that nothing is stranded
// between the two: a parked delivery costs the queue nothing, and the
// release hands it back at the rate its destination takes (one probe per
// interval for a failing one). A delivery whose attempt count moved on (made
// by another job) or that was parked already (perhaps under a drain's lease)
// is left alone: its job would have sent nothing. It answers each delivery
// the jobs named, and whether it was parked.
const withdrawJobs = `with gone as (
		delete from river_job where id = any($1::bigint[]) and state = 'available' returning args),
	owed as (
		select o.id, o.count::int as count
		from gone, rows from (jsonb_array_elements_text(gone.args->'delivery_ids'), jsonb_array_elements_text(gone.args->'counts')) as o (id, count)),
	parked as (
		update deliveries d set parked = true, next_attempt_at = least(d.next_attempt_at, now())
		from owed
		where d.id = owed.id and d.attempt_count = owed.count and (d.status = 'pending') is true and not d.parked
		returning d.id)
	select owed.id, parked.id is not null from owed left join parked on parked.id = owed.id`

// withdrawFound withdraws the queued jobs of the destinations the job found
// failing or slow, each at most once every withdrawEvery in this process.
func (w *Worker) withdrawFound(ctx context.Context, b *batch) {
	for _, destination := range b.troubled {
		if w.limiter.withdrawDue(destination) {
			w.withdraw(ctx, destination)
			w.limiter.withdrew(destination)
		}
	}
}

// withdraw takes destination's queued automatic jobs out of River's queue
// and parks their deliveries, in one transaction: the jobs are locked at
// once (lockQueued), then deleted and parked withdrawChunk at a time
// (withdrawJobs), for up to withdrawBudget. River fetches first in, first out: a merchant's burst of
// thousands of jobs to a dead or slow endpoint would otherwise stand in
// front of every other merchant's jobs until each had been fetched, loaded
// and refused in turn. A failure is logged and leaves the jobs queued, as
// they were (they are then refused one by one).
func (w *Worker) withdraw(ctx context.Context, destination string) {
	start := time.Now()
	until := start.Add(withdrawBudget)
	if deadline, ok := ctx.Deadline(); ok && deadline.Add(-withdrawMargin).Before(until) {
		until = deadline.Add(-withdrawMargin)
	}
	var jobs, named, parked int
	err := pgx.BeginFunc(ctx, w.pool, func(tx pgx.Tx) error {
		named, parked = 0, 0
		rows, err := tx.Query(ctx, lockQueued, destination, withdrawMax)
		if err != nil {
			return err
		}
		ids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
		if err != nil {
			return err
		}
		jobs = len(ids)
		for i := 0; i < len(ids) && time.Now().Before(until); i += withdrawChunk {
			rows, err := tx.Query(ctx, withdrawJobs, ids[i:min(i+withdrawChunk, len(ids))])
			if err != nil {
				return err
			}
			var id string
			var wasParked bool
			if _, err := pgx.ForEachRow(rows, []any{&id, &wasParked}, func() error {
				named++
				if wasParked {
					parked++
				}
				return nil
			}); err != nil {
				return err
			}
		}
		return nil
	})
	// An endpoint is named; a checkout's webhook_url is not (its key is a
	// digest of the URL, which may hold a token).
	who := slog.String("endpoint_id", destination)
	if strings.HasPrefix(destination, "url:") {
		who = slog.String("endpoint_id", "")
	}
	if err != nil {
		w.logger.WarnContext(ctx, "withdraw a failing or slow destination's queued jobs", who,
			slog.String("error", err.Error()), slog.Duration("took", time.Since(start)))
		return
	}
	if named > 0 {
		w.metrics.withdrawn.Add(float64(parked))
		w.logger.InfoContext(ctx, "withdrew a failing or slow destination's queued jobs: their deliveries are parked for the release", who,
			slog.Int("jobs", jobs), slog.Int("deliveries", named), slog.Int("parked", parked), slog.Duration("took", time.Since(start)))
	}
}
