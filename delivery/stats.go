package delivery

import (
	"context"
	"fmt"
	"math"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"

	"github.com/hookline/hookline/events"
)

// The statistics' windows (GET /v1/webhook_endpoints/{id}/stats?window=).
const (
	StatsWindowHour    = "1h"
	StatsWindowDay     = "24h"
	StatsWindowWeek    = "7d"
	DefaultStatsWindow = StatsWindowDay
)

// statsWindow is how a window is read: its buckets' width, how many of them
// (the last one holds now), and the span of the rollup rows summed into them.
type statsWindow struct {
	step    time.Duration
	buckets int
	span    int // endpoint_stats.span_seconds
}

var statsWindows = map[string]statsWindow{
	StatsWindowHour: {time.Minute, 60, 60},
	StatsWindowDay:  {time.Hour, 24, 3600},
	StatsWindowWeek: {6 * time.Hour, 28, 3600},
}

// StatsBucketWidth is the width of one series bucket of a window (a minute,
// an hour or 6 hours), and false for an unknown window: the charts' axis.
func StatsBucketWidth(window string) (time.Duration, bool) {
	w, ok := statsWindows[window]
	return w.step, ok
}

// PageStatsWindow is the window a page's ?window= values ask for: none is
// DefaultStatsWindow, one window is itself. Anything else (an unknown
// window, an empty one, several) is DefaultStatsWindow and false: the
// portal's and the dashboard's endpoint pages show it and say so, where the
// API answers 400, since a page's link is followed by a person, who is
// better served by the statistics than by an error.
func PageStatsWindow(values []string) (string, bool) {
	if len(values) == 0 {
		return DefaultStatsWindow, true
	}
	if _, ok := statsWindows[values[0]]; ok && len(values) == 1 {
		return values[0], true
	}
	return DefaultStatsWindow, false
}

// Stats is an endpoint's statistics over a window, the body of
// GET /v1/webhook_endpoints/{id}/stats. The window is its Series: the
// buckets (minutes, hours or 6 hours, aligned on UTC) that end with the one
// holding now, so the 24h window starts between 23 and 24 hours ago. Counts
// are exact for those buckets, for the attempts recorded up to the last fold
// (FoldStats, every StatsFoldInterval): each attempt is tallied by the
// statement that records it, and counted once.
type Stats struct {
	Object   string        `json:"object"`
	Endpoint string        `json:"endpoint"`
	Window   string        `json:"window"`
	Attempts AttemptCounts `json:"attempts"`
	// SuccessRate is succeeded attempts over all attempts, 0 to 1; null
	// without attempts.
	SuccessRate *float64 `json:"success_rate"`
	// LatencyMS is of the attempts that got an HTTP response (a timeout or a
	// connection error has no latency of the receiver's), read from a
	// histogram: see latencyBucket for the resolution.
	LatencyMS Percentiles `json:"latency_ms"`
	// Pending and Failed are the endpoint's deliveries in those states now,
	// counted up to CountCap: CountCap means at least that many.
	Pending int           `json:"pending"`
	Failed  int           `json:"failed"`
	Series  []StatsBucket `json:"series"`
}

// AttemptCounts counts attempts by outcome, as hookline_delivery_attempts_total
// does.
type AttemptCounts struct {
	Succeeded       int `json:"succeeded"`
	HTTPError       int `json:"http_error"`
	Timeout         int `json:"timeout"`
	ConnectionError int `json:"connection_error"`
}

// Total is every attempt counted.
func (c AttemptCounts) Total() int { return c.Succeeded + c.HTTPError + c.Timeout + c.ConnectionError }

// Percentiles are latency percentiles in milliseconds; null where no attempt
// got a response.
type Percentiles struct {
	P50 *int `json:"p50"`
	P90 *int `json:"p90"`
	P99 *int `json:"p99"`
}

// StatsBucket is one bucket of a window's series: its start (Unix seconds),
// its attempts succeeded and failed (any other outcome), and its latency
// median and 99th percentile for the latency chart (a contract extension;
// null where no attempt got a response).
type StatsBucket struct {
	Start        int64 `json:"start"`
	Succeeded    int   `json:"succeeded"`
	Failed       int   `json:"failed"`
	LatencyP50MS *int  `json:"latency_ms_p50"`
	LatencyP99MS *int  `json:"latency_ms_p99"`
}

// The latency histogram: bucket 0 holds 0 ms, bucket k (1 to
// latencyBuckets-1) the durations d with 2^((k-1)/4) <= d < 2^(k/4) ms, four
// buckets per doubling, the last open-ended from 2^16.5 ms (92.7 s). A
// percentile reads as its bucket's geometric middle, within 2^(1/8), 9.1 %,
// of the exact figure (plus the rounding to whole milliseconds).
const (
	latencyBuckets   = 68
	latencyPerDouble = 4
)

// latencyBucket is the histogram bucket of a duration in milliseconds.
func latencyBucket(ms int64) int {
	if ms <= 0 {
		return 0
	}
	return min(latencyBuckets-1, 1+int(math.Floor(latencyPerDouble*math.Log2(float64(ms)))))
}

// latencyValue is what a percentile falling in bucket k reads as: its
// geometric middle, or the last bucket's lower bound.
func latencyValue(k int) int {
	switch {
	case k <= 0:
		return 0
	case k == latencyBuckets-1:
		return int(math.Round(math.Exp2(float64(k-1) / latencyPerDouble)))
	}
	return int(math.Round(math.Exp2((float64(k) - 0.5) / latencyPerDouble)))
}

// percentile is the p-th (0 to 1) percentile of a histogram, nearest rank;
// nil for an empty one.
func percentile(hist []int, p float64) *int {
	total := 0
	for _, n := range hist {
		total += n
	}
	if total == 0 {
		return nil
	}
	rank := max(1, int(math.Ceil(p*float64(total))))
	seen := 0
	for k, n := range hist {
		if seen += n; seen >= rank {
			v := latencyValue(k)
			return &v
		}
	}
	return nil
}

// tallyAttempts is the part of recordAttempts that keeps the attempts it
// recorded for the statistics (its CTEs d and i; $12 each attempt's outcome
// class, $13 its latencyBucket or null): one attempt_tallies row per
// statement, which FoldStats adds to endpoint_stats within about a second.
//
// Why this shape. It rides in the statement that records the attempts, so
// it costs no round trip, and an attempt is tallied if and only if its row is
// written (a crash loses or doubles neither). It tallies the rows d updated,
// not the batch sent: an attempt another job recorded first is not counted
// twice. It inserts one row and locks none another job could want: when
// this statement upserted the endpoints' minute and hour rows itself, every
// job of an endpoint updated the same rows, and the statement alone, timed
// from 8 connections on 5 endpoints, ran at half the rate
// (migrations/018_attempt_tallies.sql).
const tallyAttempts = `st as (
		insert into attempt_tallies (endpoint_ids, started_at, outcomes, latency_buckets)
		select array_agg(d.endpoint_id), array_agg(i.started_at), array_agg(i.outcome), array_agg(i.latency_bucket)
		from d join i on i.id = d.id where d.endpoint_id is not null
		having count(*) > 0
		returning 1
	)`

// StatsFoldInterval is how often FoldStats runs: how far the statistics may
// lag the attempts recorded.
const StatsFoldInterval = time.Second

// foldBatch is how many tallies one fold transaction takes: 200 jobs'
// attempts, at most jobSize each (10,000 attempts, 20,000 rows of
// endpoint_stats).
const foldBatch = 200

// foldBudget is how long one fold job goes on taking batches: what is left
// then is the next run's, a second later, so that a backlog never makes the
// job time out (and wait out River's retry backoff).
const foldBudget = 10 * time.Second

// foldLock is taken by each fold transaction before its tallies: a fold
// that finds it held by another ends its run. A transaction-level advisory
// lock, so a fold whose process dies releases it with its connection.
const foldLock = `select pg_try_advisory_xact_lock(hashtextextended('fold_endpoint_stats', 0))`

// takeTallies deletes the oldest tallies, up to $1, skipping those a
// concurrent fold holds, through the primary key, and answers them.
const takeTallies = `delete from attempt_tallies
	where id = any(array(select id from attempt_tallies order by id limit $1 for update skip locked))
	returning endpoint_ids, started_at, outcomes, latency_buckets`

// addStats adds attempts to endpoint_stats: per endpoint ($1), span ($2)
// and bucket ($3), its counts by outcome ($4 to $7) and its latency
// histogram, the n-th $9 elements of $8. Rows are taken in key order, so
// that two folds never wait on each other crosswise. Every fold writes shard
// 0 (rows of other shards were written by recordings before
// attempt_tallies; readers sum the shards).
const addStats = `insert into endpoint_stats as t (endpoint_id, span_seconds, bucket, shard, succeeded, http_error, timeout, connection_error, latency)
	select g.endpoint_id, g.span, g.bucket, 0, g.succeeded, g.http_error, g.timeout, g.connection_error,
		($8::int[])[(g.n - 1) * $9 + 1 : g.n * $9]
	from unnest($1::text[], $2::int[], $3::timestamptz[], $4::int[], $5::int[], $6::int[], $7::int[])
		with ordinality g (endpoint_id, span, bucket, succeeded, http_error, timeout, connection_error, n)
	order by g.endpoint_id, g.span, g.bucket
	on conflict (endpoint_id, span_seconds, bucket, shard) do update set
		succeeded = t.succeeded + excluded.succeeded, http_error = t.http_error + excluded.http_error,
		timeout = t.timeout + excluded.timeout, connection_error = t.connection_error + excluded.connection_error,
		latency = array(select coalesce(x, 0) + coalesce(y, 0) from unnest(t.latency, excluded.latency) with ordinality u (x, y, n) order by n)`

// statsKey is one row of endpoint_stats but its shard.
type statsKey struct {
	endpointID string
	span       int
	bucket     time.Time
}

// statsSum is what a fold adds to one row of endpoint_stats.
type statsSum struct {
	counts  AttemptCounts
	latency [latencyBuckets]int32
}

// FoldStats adds the attempts tallied since the last fold to endpoint_stats,
// a batch of tallies per transaction (foldTallies), until none is left or
// foldBudget is spent, and answers how many tallies it took and attempts it
// added: on an error, those of the batches it committed before. A malformed
// tally is dropped with its batch's others folded, and the run then fails,
// so that hookline_endpoint_stats_fold_errors_total shows it.
func FoldStats(ctx context.Context, pool *pgxpool.Pool) (tallies, attempts int, err error) {
	var dropped int
	for start := time.Now(); time.Since(start) < foldBudget; {
		var batch, added, malformed int
		var alone bool
		err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) (err error) {
			if err := tx.QueryRow(ctx, foldLock).Scan(&alone); err != nil || !alone {
				return err
			}
			batch, added, malformed, err = foldTallies(ctx, tx)
			return err
		})
		if err != nil {
			return tallies, attempts, fmt.Errorf("fold endpoint stats: %w", err)
		}
		tallies, attempts, dropped = tallies+batch, attempts+added, dropped+malformed
		if !alone || batch < foldBatch {
			break
		}
	}
	if dropped > 0 {
		return tallies, attempts, fmt.Errorf("fold endpoint stats: dropped %d malformed tallies (arrays of different lengths, or a null other than a latency)", dropped)
	}
	return tallies, attempts, nil
}

// foldTallies takes up to foldBatch tallies and adds their attempts to
// endpoint_stats, in tx: each attempt to its endpoint's rows of the minute
// and of the hour it started in. The tallies are deleted in the transaction
// that adds them, so that each is counted once whatever fails. It answers
// how many tallies and attempts it took, and how many tallies it dropped as
// malformed.
func foldTallies(ctx context.Context, tx events.DB) (tallies, attempts, malformed int, err error) {
	rows, err := tx.Query(ctx, takeTallies, foldBatch)
	if err != nil {
		return 0, 0, 0, err
	}
	sums := map[statsKey]*statsSum{}
	var endpointIDs, outcomes []*string
	var starts []*time.Time
	var latencies []*int32
	_, err = pgx.ForEachRow(rows, []any{&endpointIDs, &starts, &outcomes, &latencies}, func() error {
		tallies++
		if !wellFormed(endpointIDs, starts, outcomes, latencies) {
			// Never written so (one array_agg per column over the same
			// rows, of columns that are not null); read as one, it would
			// stop every fold after it.
			malformed++
			return nil
		}
		for i, endpoint := range endpointIDs {
			endpointID, start, outcome := *endpoint, *starts[i], *outcomes[i]
			attempts++
			for _, r := range statsRetention {
				k := statsKey{endpointID, r.span, start.UTC().Truncate(time.Duration(r.span) * time.Second)}
				sum := sums[k]
				if sum == nil {
					sum = &statsSum{}
					sums[k] = sum
				}
				sum.counts.add(outcome)
				if latencies[i] != nil {
					sum.latency[min(max(0, int(*latencies[i])), latencyBuckets-1)]++
				}
			}
		}
		return nil
	})
	if err != nil || len(sums) == 0 {
		return tallies, attempts, malformed, err
	}
	_, err = tx.Exec(ctx, addStats, statsArgs(sums)...)
	return tallies, attempts, malformed, err
}

// wellFormed says whether a tally's arrays are as tallyAttempts writes them:
// one element per attempt in each, none null but a latency (an attempt with
// no response).
func wellFormed(endpointIDs []*string, starts []*time.Time, outcomes []*string, latencies []*int32) bool {
	n := len(endpointIDs)
	if len(starts) != n || len(outcomes) != n || len(latencies) != n {
		return false
	}
	for i := range n {
		if endpointIDs[i] == nil || starts[i] == nil || outcomes[i] == nil {
			return false
		}
	}
	return true
}

// add counts one attempt of outcome (an outcome class).
func (c *AttemptCounts) add(outcome string) {
	switch outcome {
	case outcomeSucceeded:
		c.Succeeded++
	case outcomeHTTPError:
		c.HTTPError++
	case outcomeTimeout:
		c.Timeout++
	default:
		c.ConnectionError++
	}
}

// statsArgs is addStats's arguments for sums.
func statsArgs(sums map[statsKey]*statsSum) []any {
	var endpointIDs []string
	var spans []int32
	var buckets []time.Time
	var succeeded, httpErrors, timeouts, connectionErrors, latency []int32
	for k, sum := range sums {
		endpointIDs, spans, buckets = append(endpointIDs, k.endpointID), append(spans, int32(k.span)), append(buckets, k.bucket)
		succeeded, httpErrors = append(succeeded, int32(sum.counts.Succeeded)), append(httpErrors, int32(sum.counts.HTTPError))
		timeouts, connectionErrors = append(timeouts, int32(sum.counts.Timeout)), append(connectionErrors, int32(sum.counts.ConnectionError))
		latency = append(latency, sum.latency[:]...)
	}
	return []any{endpointIDs, spans, buckets, succeeded, httpErrors, timeouts, connectionErrors, latency, latencyBuckets}
}

// FoldStatsArgs is the periodic River job that runs FoldStats.
type FoldStatsArgs struct{}

// Kind is the job's River kind.
func (FoldStatsArgs) Kind() string { return "fold_endpoint_stats" }

// InsertOpts makes about one fold per StatsFoldInterval (River keys the
// period on the wall clock at insert, so now and then a second has none),
// whatever became of the last: unique while one waits or runs
// (events.OneAtATime), a fold held by a process killed mid-run stayed
// "running" until River's rescuer freed it, a minute or more without
// statistics. Folds that overlap do not work side by side (foldLock): the
// later one finds the lock taken and ends at once, where ten at a time,
// each queued on the same hot rows of endpoint_stats, held ten of the
// process's connections for no gain. A failed fold is not retried (its
// committed batches stay folded): the next run, a second later, takes what
// it left, where a retry would hold new runs off for River's backoff.
func (FoldStatsArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{MaxAttempts: 1, UniqueOpts: river.UniqueOpts{ByArgs: true, ByPeriod: StatsFoldInterval}}
}

// FoldStatsWorker works FoldStatsArgs.
type FoldStatsWorker struct {
	river.WorkerDefaults[FoldStatsArgs]
	pool    *pgxpool.Pool
	metrics *Metrics
}

// NewFoldStatsWorker returns the worker of the fold job, which counts what
// it folds and its failures in metrics.
func NewFoldStatsWorker(pool *pgxpool.Pool, metrics *Metrics) *FoldStatsWorker {
	return &FoldStatsWorker{pool: pool, metrics: metrics}
}

// Work folds the tallies. A failed run is counted
// (hookline_endpoint_stats_fold_errors_total) besides River's log line: the
// statistics fall behind while the tallies wait
// (hookline_endpoint_stats_tallies_waiting), and nothing else says so.
func (w *FoldStatsWorker) Work(ctx context.Context, _ *river.Job[FoldStatsArgs]) error {
	tallies, _, err := FoldStats(ctx, w.pool)
	w.metrics.foldedTallies.Add(float64(tallies))
	if err != nil {
		w.metrics.foldErrors.Inc()
	}
	return err
}

// statsRows reads an endpoint's rollup rows of one span from $3 up to $4,
// every shard: at most 4 a bucket, through the primary key.
const statsRows = `select bucket, succeeded, http_error, timeout, connection_error, latency from endpoint_stats
	where endpoint_id = $1 and span_seconds = $2 and bucket >= $3 and bucket < $4`

// statsCounts counts an endpoint's pending and failed deliveries up to
// CountCap each, through deliveries_endpoint_status_idx (the statuses are
// parameters: see PendingDeliveries).
const statsCounts = `select
	(select count(*) from (select 1 from deliveries where endpoint_id = $1 and status = $2 limit $4) c),
	(select count(*) from (select 1 from deliveries where endpoint_id = $1 and status = $3 limit $4) c)`

// EndpointStats returns the statistics of the scope's endpoint endpointID
// over window (StatsWindowHour, StatsWindowDay or StatsWindowWeek; ""
// means DefaultStatsWindow) ending at now. It reads the rollup
// (FoldStats), never delivery_attempts: at most 672 rows for 7 days,
// and two counts capped at CountCap. An unknown window is an
// *events.InvalidError naming "window"; an endpoint that is not the scope's
// (another merchant's or mode's, deleted, unknown) is events.ErrNotFound.
func EndpointStats(ctx context.Context, db events.DB, scope events.Scope, endpointID, window string, now time.Time) (*Stats, error) {
	if window == "" {
		window = DefaultStatsWindow
	}
	w, ok := statsWindows[window]
	if !ok {
		return nil, &events.InvalidError{Param: "window", Message: "must be 1h, 24h or 7d"}
	}
	if _, err := Get(ctx, db, scope, endpointID); err != nil {
		return nil, err
	}
	s := &Stats{Object: "webhook_endpoint_stats", Endpoint: endpointID, Window: window, Series: make([]StatsBucket, w.buckets)}
	last := now.UTC().Truncate(w.step) // Truncate is from the zero time: UTC-aligned for these widths
	first := last.Add(-time.Duration(w.buckets-1) * w.step)
	if err := db.QueryRow(ctx, statsCounts, endpointID, StatusPending, StatusFailed, CountCap).Scan(&s.Pending, &s.Failed); err != nil {
		return nil, fmt.Errorf("count deliveries: %w", err)
	}
	rows, err := db.Query(ctx, statsRows, endpointID, w.span, first, last.Add(w.step))
	if err != nil {
		return nil, fmt.Errorf("read endpoint stats: %w", err)
	}
	hists := make([][]int, w.buckets)
	total := make([]int, latencyBuckets)
	var bucket time.Time
	var c AttemptCounts
	var latency []int32
	_, err = pgx.ForEachRow(rows, []any{&bucket, &c.Succeeded, &c.HTTPError, &c.Timeout, &c.ConnectionError, &latency}, func() error {
		i := int(bucket.Sub(first) / w.step)
		if i < 0 || i >= w.buckets {
			return nil
		}
		s.Attempts.Succeeded += c.Succeeded
		s.Attempts.HTTPError += c.HTTPError
		s.Attempts.Timeout += c.Timeout
		s.Attempts.ConnectionError += c.ConnectionError
		s.Series[i].Succeeded += c.Succeeded
		s.Series[i].Failed += c.HTTPError + c.Timeout + c.ConnectionError
		if hists[i] == nil {
			hists[i] = make([]int, latencyBuckets)
		}
		for k, n := range latency[:min(len(latency), latencyBuckets)] {
			hists[i][k] += int(n)
			total[k] += int(n)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read endpoint stats: %w", err)
	}
	for i := range s.Series {
		s.Series[i].Start = first.Add(time.Duration(i) * w.step).Unix()
		s.Series[i].LatencyP50MS, s.Series[i].LatencyP99MS = percentile(hists[i], .5), percentile(hists[i], .99)
	}
	if n := s.Attempts.Total(); n > 0 {
		rate := float64(s.Attempts.Succeeded) / float64(n)
		s.SuccessRate = &rate
	}
	s.LatencyMS = Percentiles{P50: percentile(total, .5), P90: percentile(total, .9), P99: percentile(total, .99)}
	return s, nil
}

// The rollup's spans and their retention: minute rows serve the 1h window
// alone, and are kept two hours (the prune job runs every few minutes); hour
// rows serve the 24h and 7d windows. A fold adds each attempt to a row of
// each span.
var statsRetention = []struct {
	span int
	keep time.Duration
}{{60, 2 * time.Hour}, {3600, 7 * 24 * time.Hour}}

// pruneStats deletes up to $3 rollup rows of span $1 older than $2, through
// endpoint_stats_prune_idx.
const pruneStats = `delete from endpoint_stats where ctid = any(array(select ctid from endpoint_stats
	where span_seconds = $1 and bucket < $2 limit $3 for update skip locked))`

// pruneEndpointStats deletes the rollup rows past statsRetention of now, in
// batches of pruneBatch, and answers how many.
func pruneEndpointStats(ctx context.Context, db events.DB, now time.Time) (int64, error) {
	var deleted int64
	for _, r := range statsRetention {
		for {
			tag, err := db.Exec(ctx, pruneStats, r.span, now.Add(-r.keep), pruneBatch)
			if err != nil {
				return deleted, fmt.Errorf("prune endpoint stats: %w", err)
			}
			deleted += tag.RowsAffected()
			if tag.RowsAffected() < pruneBatch {
				break
			}
		}
	}
	return deleted, nil
}
