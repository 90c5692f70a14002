package delivery

import (
	"context"
	"log/slog"
	"time"

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

// Metrics are the delivery engine's Prometheus metrics.
type Metrics struct {
	attempts            *prometheus.CounterVec
	latency             prometheus.Histogram
	attemptsPerDelivery prometheus.Histogram
	disabled            *prometheus.CounterVec
}

// NewMetrics registers the delivery metrics with reg, and a collector that
// reports River's queue depth by job state from pool at each scrape.
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
	}
	reg.MustRegister(m.attempts, m.latency, m.attemptsPerDelivery, m.disabled, &queueCollector{pool: pool, logger: logger})
	return m
}

func (m *Metrics) observe(o *outcome, final bool, attempts int, eventCreated time.Time) {
	switch {
	case o.acknowledged():
		m.attempts.WithLabelValues(outcomeSucceeded).Inc()
		m.latency.Observe(time.Since(eventCreated).Seconds())
	case o.statusCode != 0:
		m.attempts.WithLabelValues(outcomeHTTPError).Inc()
	case o.err == errTimedOut:
		m.attempts.WithLabelValues(outcomeTimeout).Inc()
	default:
		m.attempts.WithLabelValues(outcomeConnectionError).Inc()
	}
	if final {
		m.attemptsPerDelivery.Observe(float64(attempts))
	}
}

// queueDepth describes hookline_queue_jobs.
var queueDepth = prometheus.NewDesc("hookline_queue_jobs",
	"River jobs by queue and state (available, scheduled, retryable, running, …), read at scrape time.",
	[]string{"queue", "state"}, nil)

// queueCollector reads River's job counts when Prometheus scrapes, so the
// figure is never stale and costs nothing between scrapes.
type queueCollector struct {
	pool   *pgxpool.Pool
	logger *slog.Logger
}

func (c *queueCollector) Describe(ch chan<- *prometheus.Desc) { ch <- queueDepth }

func (c *queueCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	// Finished jobs are pruned by River and say nothing about backlog.
	rows, err := c.pool.Query(ctx, `select queue, state::text, count(*) from river_job
		where state not in ('completed', 'cancelled', 'discarded') group by queue, state`)
	if err != nil {
		c.logger.WarnContext(ctx, "collect queue depth", slog.String("error", err.Error()))
		return
	}
	defer rows.Close()
	for rows.Next() {
		var queue, state string
		var n int64
		if err := rows.Scan(&queue, &state, &n); err != nil {
			c.logger.WarnContext(ctx, "collect queue depth", slog.String("error", err.Error()))
			return
		}
		ch <- prometheus.MustNewConstMetric(queueDepth, prometheus.GaugeValue, float64(n), queue, state)
	}
}
