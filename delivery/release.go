package delivery

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"

	"github.com/hookline/hookline/events"
)

const (
	// ReleaseInterval is how often parked deliveries are handed out again.
	ReleaseInterval = time.Second
	// maxProbeInterval caps the growing interval between the probes of a
	// destination that fails every attempt.
	maxProbeInterval = 5 * time.Minute
	// Bounds of a destination's release size, which doubles after each
	// release it took whole and halves after one it could not.
	minRelease, maxRelease = jobSize, 5000
	// busyPause is how long a destination found saturated waits for its
	// next release (its jobs, and their drains, go on meanwhile).
	busyPause = 5 * time.Second
	// releaseDestinations is the most destinations one release serves; the
	// next release serves the others first (the least recently released).
	releaseDestinations = 500
)

// ReleaseArgs is the periodic River job that hands parked deliveries new jobs,
// destination by destination, at the rate each destination takes them: one
// probe per probe interval to a destination that fails every attempt, and to
// the others a release that doubles while the destination keeps up and halves
// when it was found saturated.
type ReleaseArgs struct{}

// Kind is the job's River kind.
func (ReleaseArgs) Kind() string { return "release_parked" }

// InsertOpts makes the release one at a time: a release still waiting or
// running when the next is due is enough.
func (ReleaseArgs) InsertOpts() river.InsertOpts { return events.OneAtATime() }

// ReleaseWorker works ReleaseArgs.
type ReleaseWorker struct {
	river.WorkerDefaults[ReleaseArgs]
	logger *slog.Logger
	pool   *pgxpool.Pool
	// perDestination is the jobs of one destination a process works at once
	// (HOOKLINE_ENDPOINT_CONCURRENCY): a release is split into as many jobs,
	// so that a slow destination, whose jobs each make few attempts within
	// their send budget, still has that many attempts in flight.
	perDestination int
}

// NewReleaseWorker returns the worker of the release job; perDestination is
// HOOKLINE_ENDPOINT_CONCURRENCY.
func NewReleaseWorker(pool *pgxpool.Pool, logger *slog.Logger, perDestination int) *ReleaseWorker {
	return &ReleaseWorker{logger: logger, pool: pool, perDestination: max(1, perDestination)}
}

// parkedDestinations is the destinations that have parked deliveries, whose
// pause has ended, and which, if found saturated since their last release,
// were released over busyPause ago (so that a slow destination is not handed
// a release every second only to park most of it again), least recently
// released first. A busy destination is not paused: its own jobs still run. The recursive part
// walks deliveries_parked_idx one destination at a time (a loose index scan),
// so its cost follows the number of destinations with parked deliveries, not
// the number of parked deliveries.
const parkedDestinations = `with recursive k (key) as (
		(select coalesce(endpoint_id, 'url:' || md5(url)) from deliveries where parked
			order by coalesce(endpoint_id, 'url:' || md5(url)) limit 1)
		union all
		select (select coalesce(d.endpoint_id, 'url:' || md5(d.url)) from deliveries d
			where d.parked and coalesce(d.endpoint_id, 'url:' || md5(d.url)) > k.key
			order by coalesce(d.endpoint_id, 'url:' || md5(d.url)) limit 1)
		from k where k.key is not null
	)
	select k.key from k left join delivery_destinations s on s.key = k.key
	where k.key is not null and (s.key is null or (s.paused_until <= now()
		and (s.busy_at is null or s.released_at is null or s.busy_at <= s.released_at or s.released_at <= now() - $2::interval)))
	order by s.released_at nulls first limit $1`

// releaseParked hands out up to $2 parked deliveries of destination $1,
// oldest first, but for those a job has claimed (their lease,
// next_attempt_at, has not run out).
const releaseParked = `update deliveries set parked = false
	where id in (select id from deliveries
		where parked and coalesce(endpoint_id, 'url:' || md5(url)) = $1 and (status = 'pending') is true and next_attempt_at <= now()
		order by coalesce(endpoint_id, 'url:' || md5(url)), id
		limit $2 for update skip locked)
	returning id, attempt_count`

// Work releases the parked deliveries of every destination that may have
// more, each destination in a transaction of its own with its new jobs.
func (w *ReleaseWorker) Work(ctx context.Context, job *river.Job[ReleaseArgs]) error {
	rows, err := w.pool.Query(ctx, parkedDestinations, releaseDestinations, busyPause)
	if err != nil {
		return fmt.Errorf("find parked destinations: %w", err)
	}
	keys, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return fmt.Errorf("find parked destinations: %w", err)
	}
	released := 0
	for _, key := range keys {
		n, err := w.release(ctx, key)
		if err != nil {
			return fmt.Errorf("release parked deliveries of %s: %w", key, err)
		}
		released += n
	}
	if released > 0 {
		w.logger.DebugContext(ctx, "released parked deliveries", slog.Int("deliveries", released), slog.Int("destinations", len(keys)))
	}
	return nil
}

// release hands out the next parked deliveries of one destination, with
// their jobs, and sets when it may have more: an endpoint failing every
// attempt gets one probe and a pause that doubles each time; another
// destination gets its release size, halved (and a pause of busyPause) if it
// was found saturated since its last release, doubled if not.
func (w *ReleaseWorker) release(ctx context.Context, key string) (int, error) {
	var n int
	err := pgx.BeginFunc(ctx, w.pool, func(tx pgx.Tx) error {
		var busyAt, releasedAt *time.Time
		var size, probeMS int
		var failing bool
		var rateLimit *int
		var sinceRelease float64
		err := tx.QueryRow(ctx, `insert into delivery_destinations as s (key) values ($1)
			on conflict (key) do update set key = s.key
			returning busy_at, released_at, release_size, probe_ms,
				coalesce((select failing_since < now() - $2::interval from webhook_endpoints where id = $1), false),
				(select rate_limit from webhook_endpoints where id = $1),
				coalesce(extract(epoch from now() - released_at)::float8, 1)`,
			key, circuitAfter).Scan(&busyAt, &releasedAt, &size, &probeMS, &failing, &rateLimit, &sinceRelease)
		if err != nil {
			return err
		}
		pause := time.Duration(0)
		switch {
		case failing:
			// One probe, then a pause that doubles with each release until
			// a probe is acknowledged (recordAttempts resets it).
			size, pause = 1, time.Duration(probeMS)*time.Millisecond
			probeMS = int(min(2*pause, maxProbeInterval).Milliseconds())
		case busyAt != nil && (releasedAt == nil || busyAt.After(*releasedAt)):
			// Saturated since the last release: half as many (and the next
			// release waits busyPause, see parkedDestinations).
			size, probeMS = max(minRelease, size/2), 1000
		default:
			size, probeMS = min(maxRelease, size*2), 1000
		}
		releasing := size
		if rateLimit != nil && !failing {
			// What the rate limit allowed since the last release (about
			// ReleaseInterval ago, up to twice that when the release was
			// late): more would only be parked again by the token bucket.
			releasing = int(math.Ceil(float64(*rateLimit) * min(2, max(1, sinceRelease))))
		}
		rows, err := tx.Query(ctx, releaseParked, key, releasing)
		if err != nil {
			return err
		}
		ids, counts, err := scanIDsAndCounts(rows)
		if err != nil {
			return err
		}
		if failing {
			size = 0 // keep the size the destination had before it failed
		}
		if _, err := tx.Exec(ctx, `update delivery_destinations set released_at = now(), paused_until = now() + $2::interval,
			probe_ms = $3, release_size = coalesce(nullif($4, 0), release_size) where key = $1`,
			key, pause, probeMS, size); err != nil {
			return err
		}
		n = len(ids)
		if n == 0 {
			return nil
		}
		jobs := jobsOf(key, ids, counts, false, time.Time{}, min(jobSize, (n+w.perDestination-1)/w.perDestination))
		if failing {
			args := jobs[0].Args.(DeliverArgs)
			args.Probe = true
			jobs[0].Args = args
		}
		_, err = river.ClientFromContext[pgx.Tx](ctx).InsertManyTx(ctx, tx, jobs)
		return err
	})
	return n, err
}
