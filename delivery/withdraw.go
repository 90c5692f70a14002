package delivery

import (
	"context"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
)

const (
	// withdrawBatch is how many queued jobs one withdrawQueued statement
	// takes out (up to jobSize deliveries each).
	withdrawBatch = 200
	// withdrawBudget bounds the statements one job runs to withdraw a
	// destination's queue; what is left is withdrawn by the next job refused
	// after withdrawEvery.
	withdrawBudget = 2 * time.Second
	// withdrawEvery is how often one process withdraws one destination's
	// queued jobs at most: once is enough for what was queued, and the jobs
	// queued since (retries coming due) are few.
	withdrawEvery = 5 * time.Second
)

// withdrawQueued takes up to $2 queued jobs of destination $1 out of River's
// queue and parks their deliveries, in one statement, so that nothing is
// stranded between the two. River fetches jobs first in, first out: a
// merchant's burst of thousands of jobs to a dead or slow endpoint would
// otherwise stand in front of every other merchant's jobs until each had
// been fetched, loaded and refused one by one (TestChaosNoisyNeighbour saw
// another merchant's p99 reach 903 ms on a slow machine). A parked delivery
// costs the queue nothing: the release hands it back at the rate its
// destination takes (probes for a failing one).
//
// Only automatic jobs go: a manual retry or a probe is not parked (see
// batch.park). The rows are locked as River's fetch locks them (skip
// locked), so a job being fetched stays with River; a job's delivery whose
// attempt count moved on (made by another job) or that was parked already
// (perhaps under a drain's lease) is left alone, and its job is dropped all
// the same, as it would have sent nothing. river_job_queued_destination_idx
// (migration 019) holds only the queued delivery jobs, so the statement reads
// what it withdraws, not the destination's history. It answers each delivery
// the withdrawn jobs named, and whether it was parked.
const withdrawQueued = `with gone as (
		delete from river_job where id in (
			select id from river_job
			where state = 'available' and kind = 'deliver' and args->>'destination' = $1
				and args->'manual' is null and args->'probe' is null
			order by args->>'destination', id
			limit $2
			for update skip locked)
		returning args),
	owed as (
		select o.id, o.count::int as count
		from gone, rows from (jsonb_array_elements_text(gone.args->'delivery_ids'), jsonb_array_elements_text(gone.args->'counts')) as o (id, count)),
	parked as (
		update deliveries d set parked = true, next_attempt_at = least(d.next_attempt_at, now())
		from owed
		where d.id = owed.id and d.attempt_count = owed.count and (d.status = 'pending') is true and not d.parked
		returning d.id)
	select owed.id, parked.id is not null from owed left join parked on parked.id = owed.id`

// withdraw takes destination's queued automatic jobs out of the queue and
// parks their deliveries (withdrawQueued), a batch per statement, until one
// finds none, for up to withdrawBudget. A failure is logged: the jobs left
// then run, and are refused, one by one, as before.
func (w *Worker) withdraw(ctx context.Context, destination string) {
	start := time.Now()
	var named, parked int
	for time.Since(start) < withdrawBudget && ctx.Err() == nil {
		rows, err := w.pool.Query(ctx, withdrawQueued, destination, withdrawBatch)
		if err != nil {
			w.logger.WarnContext(ctx, "withdraw queued jobs", slog.String("destination", destination), slog.String("error", err.Error()))
			break
		}
		var id string
		var wasParked bool
		n := 0
		_, err = pgx.ForEachRow(rows, []any{&id, &wasParked}, func() error {
			n++
			if wasParked {
				parked++
			}
			return nil
		})
		if err != nil {
			w.logger.WarnContext(ctx, "withdraw queued jobs", slog.String("destination", destination), slog.String("error", err.Error()))
			break
		}
		if n == 0 {
			break
		}
		named += n
	}
	if named > 0 {
		w.metrics.withdrawn.Add(float64(parked))
		w.logger.InfoContext(ctx, "withdrew a troubled destination's queued jobs: their deliveries are parked for the release",
			slog.String("destination", destination), slog.Int("deliveries", named), slog.Int("parked", parked),
			slog.Duration("took", time.Since(start)))
	}
}
