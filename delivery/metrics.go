package delivery

import (
	"context"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
)

// Attempt outcomes, the label of hookline_delivery_attempts_total.
const (
	outcomeSucceeded       = "succeeded"
	outcomeHTTPError       = "http_error"
	outcomeTimeout         = "timeout"
	outcomeConnectionError = "connection_error"
)

// class is the attempt's outcome: succeeded (2xx), http_error (any other
// status), timeout or connection_error (no response), as the metrics, the
// endpoint statistics and the attempts' spans name it.
func (o *outcome) class() string {
	switch {
	case o.acknowledged():
		return outcomeSucceeded
	case o.statusCode != 0:
		return outcomeHTTPError
	case o.err == errTimedOut:
		return outcomeTimeout
	default:
		return outcomeConnectionError
	}
}

// Metrics are the delivery engine's Prometheus metrics.
type Metrics struct {
	attempts            *prometheus.CounterVec
	latency             prometheus.Histogram
	attemptsPerDelivery prometheus.Histogram
	disabled            *prometheus.CounterVec
	requeued            prometheus.Counter
	withdrawn           prometheus.Counter
	foldErrors          prometheus.Counter
	foldedTallies       prometheus.Counter
}

// NewMetrics registers the delivery metrics with reg, and a collector that
// reports River's queue depth by job state, the parked deliveries and the
// tallies waiting for the fold from pool at each scrape, at a bounded cost
// (queueDepthCap).
func NewMetrics(reg prometheus.Registerer, pool *pgxpool.Pool, logger *slog.Logger) *Metrics {
	m := &Metrics{
		attempts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hookline_delivery_attempts_total",
			Help: "Delivery attempts by outcome: succeeded (2xx), http_error (any other status), timeout, connection_error.",
		}, []string{"outcome"}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "hookline_delivery_latency_seconds",
			Help:    "Time from an event's creation to its acknowledgement by a destination, retries included.",
			Buckets: []float64{.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300, 1800, 3600, 6 * 3600, 24 * 3600, 72 * 3600},
		}),
		attemptsPerDelivery: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "hookline_delivery_attempts_per_delivery",
			Help:    "Attempts a delivery took to end, succeeded or failed.",
			Buckets: []float64{1, 2, 3, 4, 5, 7, 10, 13, 20},
		}),
		disabled: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hookline_endpoints_disabled_total",
			Help: "Endpoints hookline disabled, by reason: gone (410, or a chat webhook's 404), unauthorized (a chat webhook's 401 or 403) or failing (3 days of failures).",
		}, []string{"reason"}),
		requeued: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "hookline_deliveries_requeued_total",
			Help: "Pending deliveries that no job would take (a job discarded or lost), given a new job by the reconciler.",
		}),
		withdrawn: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "hookline_deliveries_withdrawn_total",
			Help: "Deliveries of a failing destination parked for the release when their queued jobs were taken out of the queue.",
		}),
		foldErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "hookline_endpoint_stats_fold_errors_total",
			Help: "Runs of the endpoint statistics' fold (fold_endpoint_stats) that failed: the tallies they had not folded wait for the next run.",
		}),
		foldedTallies: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "hookline_endpoint_stats_tallies_folded_total",
			Help: "Tallies (attempt_tallies rows, one per statement that recorded attempts) the fold added to the endpoint statistics.",
		}),
	}
	reg.MustRegister(m.attempts, m.latency, m.attemptsPerDelivery, m.disabled, m.requeued, m.withdrawn, m.foldErrors, m.foldedTallies,
		&queueCollector{pool: pool, logger: logger})
	return m
}

func (m *Metrics) observe(o *outcome, final bool, attempts int, eventCreated time.Time) {
	class := o.class()
	m.attempts.WithLabelValues(class).Inc()
	if class == outcomeSucceeded {
		m.latency.Observe(time.Since(eventCreated).Seconds())
	}
	if final {
		m.attemptsPerDelivery.Observe(float64(attempts))
	}
}

// queueDepthCap is where each hookline_queue_jobs series stops counting.
// Counting every job on each scrape cost a scrape as much as river_job was
// big (a backlog of millions is when an operator scrapes most), and anyone
// who can reach /metrics could make Postgres do it at will; a count that
// stops at the cap reads at most this many index entries per queue and state,
// whatever the table holds. Below the cap the figure is exact, which is where
// an alert's threshold sits (100 workers per process are busy long before);
// at the cap it means "at least this many".
const queueDepthCap = 10_000

// queueStates are the states hookline_queue_jobs reports: the jobs still
// owed. Finished jobs (completed, cancelled, discarded) are pruned by River
// and say nothing about backlog.
var queueStates = []string{"available", "pending", "retryable", "running", "scheduled"}

// queueDepthSQL counts, for every queue River knows (river_queue has a row
// per queue a worker serves) and every state of queueStates, the jobs in that
// queue and state, stopping at $2: each count is a walk of at most $2 entries
// of River's fetch index (state, queue, …).
const queueDepthSQL = `select q.name, s.state, (select count(*) from (select from river_job j
		where j.state = s.state::river_job_state and j.queue = q.name limit $2) bounded)
	from river_queue q cross join unnest($1::text[]) s(state)`

// parkedSQL counts the parked deliveries (those waiting for their
// destination's release, see the README's "Isolation"), stopping at $1: a
// walk of at most $1 entries of deliveries_parked_idx, which holds only them.
const parkedSQL = `select count(*) from (select from deliveries where parked limit $1) bounded`

// talliesWaitingSQL counts the tallies the fold has not taken yet, stopping
// at $1: a walk of attempt_tallies' primary key (queueDepthSettings, run
// before it, rule out a scan of the table) through at most $1 live entries,
// and the entries of folded tallies a vacuum has not removed yet (autovacuum
// comes after 5,000 of them: migration 018). The fold takes the tallies
// every second, so the count stays near what a second of recordings writes;
// a count that keeps growing means the fold fails or does not run.
const talliesWaitingSQL = `select count(*) from (select from attempt_tallies limit $1) bounded`

// queueDepthSettings is run before queueDepthSQL, in its transaction, so
// that the statement keeps its bounded cost whatever the connection's
// settings (DATABASE_URL may set them). Each count stops at the cap only if
// it walks River's fetch index in order: the planner, which expects the
// matching jobs to be spread over the table, would otherwise scan river_job to
// its end for every empty series (1.7 s at 2 M available jobs, on a
// connection without PlannerSettings' enable_seqscan=off), or build a bitmap
// of every matching job before counting the first. And the statement's cost estimate
// grows with river_queue's row estimate, a thousand rows on a table not yet
// analyzed: enough for Postgres to JIT-compile it, which took 750 ms against
// 20 ms of execution (PostgreSQL 15, 200,000 available jobs).
const queueDepthSettings = `select set_config('enable_seqscan', 'off', true), set_config('enable_bitmapscan', 'off', true),
	set_config('jit', 'off', true)`

// queueDepth describes hookline_queue_jobs.
var queueDepth = prometheus.NewDesc("hookline_queue_jobs",
	"River jobs owed by queue and state (available, pending, retryable, running, scheduled), read at scrape time "+
		"and counted up to 10000: 10000 means at least that many.",
	[]string{"queue", "state"}, nil)

// parkedDeliveries describes hookline_parked_deliveries.
var parkedDeliveries = prometheus.NewDesc("hookline_parked_deliveries",
	"Deliveries parked until their destination (busy, failing, paused by a 429, or at its rate limit) takes more, read at scrape time "+
		"and counted up to 10000: 10000 means at least that many.", nil, nil)

// talliesWaiting describes hookline_endpoint_stats_tallies_waiting.
var talliesWaiting = prometheus.NewDesc("hookline_endpoint_stats_tallies_waiting",
	"Tallies of recorded attempts (attempt_tallies rows) the endpoint statistics' fold has not taken yet, read at scrape time "+
		"and counted up to 10000: 10000 means at least that many.", nil, nil)

// queueCollector reads River's job counts when Prometheus scrapes, so the
// figure is never stale and costs nothing between scrapes; queueDepthCap
// bounds what a scrape costs.
type queueCollector struct {
	pool   *pgxpool.Pool
	logger *slog.Logger
}

func (c *queueCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- queueDepth
	ch <- parkedDeliveries
	ch <- talliesWaiting
}

func (c *queueCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var metrics []prometheus.Metric
	err := pgx.BeginFunc(ctx, c.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, queueDepthSettings); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, queueDepthSQL, queueStates, queueDepthCap)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var queue, state string
			var n int64
			if err := rows.Scan(&queue, &state, &n); err != nil {
				return err
			}
			metrics = append(metrics, prometheus.MustNewConstMetric(queueDepth, prometheus.GaugeValue, float64(n), queue, state))
		}
		if err := rows.Err(); err != nil {
			return err
		}
		var parked int64
		if err := tx.QueryRow(ctx, parkedSQL, queueDepthCap).Scan(&parked); err != nil {
			return err
		}
		metrics = append(metrics, prometheus.MustNewConstMetric(parkedDeliveries, prometheus.GaugeValue, float64(parked)))
		var tallies int64
		if err := tx.QueryRow(ctx, talliesWaitingSQL, queueDepthCap).Scan(&tallies); err != nil {
			return err
		}
		metrics = append(metrics, prometheus.MustNewConstMetric(talliesWaiting, prometheus.GaugeValue, float64(tallies)))
		return nil
	})
	if err != nil {
		c.logger.WarnContext(ctx, "collect queue depth", slog.String("error", err.Error()))
		return
	}
	for _, m := range metrics {
		ch <- m
	}
}
