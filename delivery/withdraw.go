package delivery

import (
	"context"
	"log/slog"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

const (
	// setAsideBatch is how many queued jobs one setAsideQueued statement
	// takes: a short statement, repeated until the queue is set aside.
	setAsideBatch = 5000
	// withdrawBatch is how many of them one withdrawQueued statement
	// deletes and parks (up to jobSize deliveries each).
	withdrawBatch = 200
	// withdrawBudget bounds the parking of one withdrawal, which ends
	// sooner when the job's timeout is nearer than withdrawMargin. What is
	// left then stays set aside, and the next withdrawal goes on with it;
	// River's scheduler hands it back to the queue after a minute, behind
	// every other job (setAsideQueued). Parking is the cost: 4,900 jobs of
	// 10 deliveries took 3.3 to 5.3 s on the 2-core machine beside another
	// tenant's load.
	withdrawBudget = 20 * time.Second
	withdrawMargin = 3 * time.Second
	// withdrawEvery is how long one process waits after withdrawing a
	// destination's queued jobs before it withdraws them again: once is
	// enough for what was queued, and the jobs queued since (retries
	// coming due) are few.
	withdrawEvery = 5 * time.Second
)

// setAsidePriority marks the jobs a withdrawal set aside: River fetches by
// priority first, and hookline queues every other job at priority 1, so a
// set-aside job that River hands back stands behind all of them.
const setAsidePriority = 4

// queuedOf is the condition of a destination's queued automatic jobs,
// written as river_job_queued_destination_idx's predicate (migration 019)
// so that the index holds them: those River would fetch, and those a
// withdrawal set aside. Manual retries and probes are not withdrawn (a
// retry is never parked: see batch.park; a probe is sent although its
// destination is paused).
const queuedOf = `kind = 'deliver' and (state = 'available' or (state = 'scheduled' and priority = 4))
		and args->>'destination' = $1 and args->'manual' is null and args->'probe' is null`

// setAsideQueued sets up to $2 of destination $1's queued jobs aside, in a
// short statement: scheduled a minute ahead, at setAsidePriority. River's
// fetch passes them by (it takes available jobs due now, by priority
// first), so from that moment they stand in front of no other tenant's
// jobs, and none is fetched, loaded and refused on its own. The rows are
// locked as River's fetch locks them: a job River is fetching is skipped,
// and stays River's. It answers the ids it set aside.
const setAsideQueued = `update river_job set state = 'scheduled', priority = 4, scheduled_at = now() + interval '1 minute'
	where id in (select id from river_job
		where ` + queuedOf + ` and state = 'available'
		order by args->>'destination', id
		limit $2
		for update skip locked)
	returning id`

// withdrawQueued deletes up to $2 of destination $1's queued jobs (set
// aside or not) and parks their deliveries, in one statement: a parked
// delivery costs the queue nothing, and the release hands it back at the
// rate its destination takes (one probe per interval for a failing one). A
// delivery whose attempt count moved on (made by another job) or that was
// parked already (perhaps under a drain's lease) is left alone: its job
// would have sent nothing. It answers each delivery the jobs named, and
// whether it was parked.
const withdrawQueued = `with gone as (
		delete from river_job where id in (select id from river_job
			where ` + queuedOf + `
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

// withdrawFound withdraws the queued jobs of the destinations the job found
// failing, a destination's at most once every withdrawEvery.
func (w *Worker) withdrawFound(ctx context.Context, b *batch) {
	if ctx.Err() != nil {
		return // stopping: its statements would only fail
	}
	for _, destination := range b.failing {
		if w.limiter.withdrawDue(destination) {
			func() {
				defer w.limiter.withdrew(destination)
				w.withdraw(ctx, destination)
			}()
		}
	}
}

// withdraw takes destination's queued automatic jobs out of River's queue
// and parks their deliveries. River fetches first in, first out: a
// merchant's burst of thousands of jobs to a dead endpoint would
// otherwise stand in front of every other merchant's jobs until each had
// been fetched, loaded and refused in turn. So it first sets them all aside
// (setAsideQueued: one cheap write of each job, no delivery touched), then
// parks their deliveries (withdrawQueued) for up to withdrawBudget, unless
// another withdrawal of this process is parking (each holds one of the
// workers' few connections throughout): then the next withdrawal parks
// them. Every statement commits on its own: one cut short by a failure, the
// job's timeout or a stop loses only itself, and holds no lock or snapshot
// long. A failure is logged; what is left is taken by the next withdrawal.
func (w *Worker) withdraw(ctx context.Context, destination string) {
	start := time.Now()
	until := start.Add(withdrawBudget)
	if deadline, ok := ctx.Deadline(); ok && deadline.Add(-withdrawMargin).Before(until) {
		until = deadline.Add(-withdrawMargin)
	}
	var setAside, named, parked int
	err := func() error {
		for {
			tag, err := w.pool.Exec(ctx, setAsideQueued, destination, setAsideBatch)
			if err != nil {
				return err
			}
			setAside += int(tag.RowsAffected())
			if tag.RowsAffected() < setAsideBatch || !time.Now().Before(until) {
				break
			}
		}
		if !w.limiter.startParking() {
			return nil
		}
		defer w.limiter.stopParking()
		for time.Now().Before(until) {
			rows, err := w.pool.Query(ctx, withdrawQueued, destination, withdrawBatch)
			if err != nil {
				return err
			}
			var id string
			var wasParked bool
			n, err := pgx.ForEachRow(rows, []any{&id, &wasParked}, func() error {
				if wasParked {
					parked++
				}
				return nil
			})
			if err != nil {
				return err
			}
			if n.RowsAffected() == 0 {
				return nil
			}
			named += int(n.RowsAffected())
		}
		return nil
	}()
	if parked > 0 {
		w.metrics.withdrawn.Add(float64(parked))
	}
	// An endpoint is named; a checkout's webhook_url is not (its key is a
	// digest of the URL, which may hold a token).
	who := slog.String("endpoint_id", destination)
	if strings.HasPrefix(destination, "url:") {
		who = slog.String("endpoint_id", "")
	}
	attrs := []any{who, slog.Int("set_aside", setAside), slog.Int("deliveries", named), slog.Int("parked", parked),
		slog.Duration("took", time.Since(start))}
	switch {
	case err != nil:
		w.logger.WarnContext(ctx, "withdraw a failing destination's queued jobs", append(attrs, slog.String("error", err.Error()))...)
	case setAside > 0 || named > 0:
		w.logger.InfoContext(ctx, "withdrew a failing destination's queued jobs: their deliveries are parked for the release", attrs...)
	}
}
