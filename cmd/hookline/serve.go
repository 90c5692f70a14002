package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/hookline/hookline/api"
	"github.com/hookline/hookline/api/stream"
	"github.com/hookline/hookline/delivery"
	"github.com/hookline/hookline/events"
)

// deliveryWorkers is the delivery queue's workers: each makes one job's
// attempts, a few side by side.
const deliveryWorkers = 100

// shutdownTimeout bounds the drain on SIGTERM: in-flight requests and
// deliveries get this long to finish.
const shutdownTimeout = 30 * time.Second

// Roles of a serving process (`hookline serve --role`): API nodes and
// delivery nodes scale apart over one Postgres, which River coordinates.
const (
	RoleAll    = "all"
	RoleAPI    = "api"
	RoleWorker = "worker"
)

// poolSizes are the default sizes of the API's pool and the workers' pool; a
// process serving both roles has both, so that neither waits for connections
// behind the other. The API needs one connection per concurrent write
// transaction (checkout creates share theirs). The workers' 100 deliveries
// hold one only to load and record a job, and River keeps a few: past about
// a dozen, more connections only made more Postgres backends contend for the
// same cores. In make bench on 2 cores, the workers' pool at 12 rather than
// 50 drained the backlog at 6,800 rather than 5,700 deliveries/s, with the
// API's p99 at 52 rather than 156 ms; at 6 or 8, bursts waited for
// connections (p99 0.7 to 1.4 s).
var poolSizes = map[string]int32{RoleAPI: 20, RoleWorker: 12}

// Main is the serving process: the API, the River workers, or both. Tests
// boot it on :0 exactly as `hookline serve` does.
type Main struct {
	http     *http.Server
	listener net.Listener
	// metricsHTTP serves /metrics on metricsListener when HOOKLINE_METRICS_ADDR
	// is set; both are nil otherwise, and http serves it.
	metricsHTTP     *http.Server
	metricsListener net.Listener
	logger          *slog.Logger
	pool            *pgxpool.Pool // the workers', or on an API node the API's
	apiPool         *pgxpool.Pool // the API's, or on a worker node pool (for /readyz)
	role            string
	workers         *river.Client[pgx.Tx] // nil on an API node
	// traces exports the process's spans; nil when tracing is off.
	traces *sdktrace.TracerProvider
}

// New connects to the database and wires the process. It listens at once so
// that Addr is known (HOOKLINE_ADDR may be :0), but serves only in Run.
func New(ctx context.Context, cfg config, role string, keyring *events.Keyring, logger *slog.Logger) (*Main, error) {
	if role != RoleAPI && role != RoleWorker && role != RoleAll {
		return nil, fmt.Errorf("--role must be api, worker or all, not %q", role)
	}
	m := &Main{logger: logger, role: role}
	var err error
	if m.traces, err = newTracerProvider(ctx, cfg.Traces, logger); err != nil {
		return nil, err
	}
	if role != RoleWorker {
		if m.apiPool, err = newPool(ctx, cfg, poolSizes[RoleAPI], nil); err != nil {
			m.Close()
			return nil, err
		}
	}
	if role != RoleAPI {
		// The workers' own writes (attempt records, deliveries' statuses, River's job
		// states) commit without waiting for the WAL to reach the disk: a Postgres
		// crash can undo the last fraction of a second of them, and the deliveries
		// concerned are then sent again, as at-least-once allows (a later commit
		// never survives an earlier one: the WAL is written in order). What must not
		// be undone commits synchronously all the same: every event
		// (events.Publisher sets it for its transaction: the expiry sweep's, an
		// endpoint's disabling) and everything the API acknowledges (its pool keeps
		// the default). make bench, 2 cores: backlog drain 6,324 -> 8,330/s, burst
		// 4,378-4,575 -> 4,486-5,238/s over three pairs of runs.
		if m.pool, err = newPool(ctx, cfg, poolSizes[RoleWorker], map[string]string{"synchronous_commit": "off"}); err != nil {
			m.Close()
			return nil, err
		}
	}
	switch role {
	case RoleAPI:
		m.pool = m.apiPool
	case RoleWorker:
		m.apiPool = m.pool
	}
	if err := m.wire(cfg, keyring); err != nil {
		m.Close()
		return nil, err
	}
	m.listener, err = net.Listen("tcp", cfg.Addr)
	if err != nil {
		m.Close()
		return nil, fmt.Errorf("listen on HOOKLINE_ADDR %s: %w", cfg.Addr, err)
	}
	if m.metricsHTTP != nil {
		if m.metricsListener, err = net.Listen("tcp", cfg.MetricsAddr); err != nil {
			m.Close()
			return nil, fmt.Errorf("listen on HOOKLINE_METRICS_ADDR %s: %w", cfg.MetricsAddr, err)
		}
	}
	return m, nil
}

// newPool connects a pool of size connections, unless HOOKLINE_DB_MAX_CONNS
// or pool_max_conns in DATABASE_URL sets the size, with the planner settings
// and extra session settings, each unless DATABASE_URL sets it.
func newPool(ctx context.Context, cfg config, size int32, extra map[string]string) (*pgxpool.Pool, error) {
	poolCfg, err := pgxpool.ParseConfig(cfg.DatabaseURL)
	if err != nil {
		return nil, fmt.Errorf("DATABASE_URL: %w", err)
	}
	if !strings.Contains(cfg.DatabaseURL, "pool_max_conns") {
		poolCfg.MaxConns = cmp.Or(cfg.DBMaxConns, size)
	}
	settings := delivery.PlannerSettings()
	maps.Copy(settings, extra)
	for name, value := range settings {
		if _, set := poolCfg.ConnConfig.RuntimeParams[name]; !set {
			poolCfg.ConnConfig.RuntimeParams[name] = value
		}
	}
	pool, err := pgxpool.NewWithConfig(ctx, poolCfg)
	if err != nil {
		return nil, fmt.Errorf("connect to DATABASE_URL: %w", err)
	}
	return pool, nil
}

func (m *Main) wire(cfg config, keyring *events.Keyring) error {
	driver := riverpgxv5.New(m.pool)
	riverLog := riverLogger(m.logger)
	// The domain inserts its jobs through an insert-only client, so that it
	// can exist before the working client, whose workers need the domain.
	inserter, err := river.NewClient(driver, &river.Config{Logger: riverLog})
	if err != nil {
		return fmt.Errorf("create river inserter: %w", err)
	}
	guard := delivery.NewGuard(cfg.Env == "production", cfg.AllowPrivate...)
	dispatcher := delivery.NewDispatcher(inserter, m.tracer("delivery"))
	publisher := events.NewPublisher(dispatcher)
	service := events.NewService(publisher)

	registry := prometheus.NewRegistry()
	registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	metrics := delivery.NewMetrics(registry, m.pool, m.logger)
	// Event streams read through the API's pool, a statement at a time.
	streams := stream.NewHub(m.apiPool, m.logger)
	apiConfig := api.Config{
		Checkouts: events.NewCheckoutBatcher(service, m.apiPool, m.logger), Dispatcher: dispatcher, Endpoints: delivery.NewEndpoints(guard, keyring, cfg.MaxEndpoints), Guard: guard, Keyring: keyring,
		Logger: m.logger, Metrics: registry, MetricsElsewhere: cfg.MetricsAddr != "", OperatorToken: cfg.OperatorToken, Pool: m.apiPool,
		PortalFrameAncestors: cfg.PortalFrameAncestors, PublicURL: cfg.PublicURL,
		RateLimit: api.RateLimit{Rate: cfg.RateLimit, Burst: cfg.RateBurst}, Service: service, Streams: streams, TrustedProxies: cfg.TrustedProxies,
		Tracer: m.tracer("api"),
	}
	var handler http.Handler
	if m.role == RoleWorker {
		handler = api.NewHealth(apiConfig) // health and metrics only
	} else {
		handler = api.New(apiConfig)
	}
	m.http = m.newHTTPServer(handler)
	// A stream never goes idle by itself: shutting down ends them all, so
	// that draining waits only for requests.
	m.http.RegisterOnShutdown(streams.Close)
	if cfg.MetricsAddr != "" {
		mux := http.NewServeMux()
		mux.Handle("GET /metrics", api.Metrics(registry))
		m.metricsHTTP = m.newHTTPServer(mux)
	}
	if m.role == RoleAPI {
		return nil
	}

	workers := river.NewWorkers()
	river.AddWorker(workers, events.NewExpireCheckoutsWorker(m.pool, service))
	river.AddWorker(workers, delivery.NewRecoverWorker(m.pool, dispatcher, m.logger))
	river.AddWorker(workers, delivery.NewReplayWorker(m.pool, dispatcher, m.logger))
	river.AddWorker(workers, delivery.NewFillEventTypesWorker(m.pool, m.logger))
	river.AddWorker(workers, delivery.NewPruneWorker(m.pool, cfg.Retention, m.logger))
	river.AddWorker(workers, delivery.NewFoldStatsWorker(m.pool, metrics))
	river.AddWorker(workers, delivery.NewReleaseWorker(m.pool, m.logger, cfg.EndpointInFlight))
	river.AddWorker(workers, delivery.NewReconcileWorker(m.pool, dispatcher, metrics, m.logger, cfg.DeliveryTimeout))
	river.AddWorker(workers, delivery.NewWorker(delivery.WorkerConfig{
		Guard: guard, InFlight: cfg.EndpointInFlight, Workers: deliveryWorkers, Keyring: keyring, Logger: m.logger, Metrics: metrics, Pool: m.pool, Publisher: publisher,
		Schedule: cfg.RetrySchedule, Timeout: cfg.DeliveryTimeout, Tracer: m.tracer("delivery"),
	}))
	m.workers, err = river.NewClient(driver, riverConfig(cfg, workers, riverLog))
	if err != nil {
		return fmt.Errorf("create river client: %w", err)
	}
	return nil
}

// newHTTPServer returns a server of handler with hookline's timeouts and
// limits, logging its errors at warn.
func (m *Main) newHTTPServer(handler http.Handler) *http.Server {
	return &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(m.logger.Handler(), slog.LevelWarn),
	}
}

// completedJobRetention is how long River keeps a completed job before its
// cleaner (on the elected leader, every 30 s) deletes it. hookline never reads
// a completed job: a delivery's outcome lives in deliveries and
// delivery_attempts. Nor does River: the periodic jobs are scheduled in the
// leader's memory, not from past runs, and their uniqueness
// (events.OneAtATime) leaves completed jobs out, or (the statistics' fold) is
// by period, each key holding its own second, so neither a long nor a short
// retention moves the next sweep or prune. (River's default unique states do
// include completed: a periodic job using them would wait out this retention
// before its next run.) River's default, 24 h, kept every job of a day in
// river_job (86 M rows at 1,000 events/s), whose indexes every fetch and
// insert walks and autovacuum must keep up with. Five minutes keeps the jobs
// that just ran for whoever looks (River UI, a fault test checking which
// process worked which job) longer than a test or bench scenario lasts; less
// would gain little, as the cleaner only runs every 30 s.
const completedJobRetention = 5 * time.Minute

// riverConfig is the working client's configuration. A job's timeout is its
// attempts' plus time to record them (delivery.JobTimeout); a job still
// "running" past that belongs to a crashed process and is rescued, so a crash
// delays its deliveries by under a minute (River's rescuer runs every 30s),
// not River's default hour.
func riverConfig(cfg config, workers *river.Workers, logger *slog.Logger) *river.Config {
	jobTimeout := delivery.JobTimeout(cfg.DeliveryTimeout)
	return &river.Config{
		CompletedJobRetentionPeriod: completedJobRetention,
		JobTimeout:                  jobTimeout,
		Logger:                      logger,
		RescueStuckJobsAfter:        jobTimeout + 5*time.Second,
		// On SIGTERM attempts get this long to finish; those still running
		// are then cancelled and released without spending an attempt, inside
		// the 30s a process has to exit.
		SoftStopTimeout: 20 * time.Second,
		Queues: map[string]river.QueueConfig{
			river.QueueDefault: {MaxWorkers: 10},
			// Deliveries are short and many: fetch as soon as slots free up.
			delivery.QueueDelivery: {FetchCooldown: 10 * time.Millisecond, FetchPollInterval: 250 * time.Millisecond, MaxWorkers: deliveryWorkers},
		},
		PeriodicJobs: []*river.PeriodicJob{
			river.NewPeriodicJob(river.PeriodicInterval(10*time.Minute),
				func() (river.JobArgs, *river.InsertOpts) { return delivery.PruneArgs{}, nil },
				&river.PeriodicJobOpts{RunOnStart: true}),
			river.NewPeriodicJob(river.PeriodicInterval(delivery.ReleaseInterval),
				func() (river.JobArgs, *river.InsertOpts) { return delivery.ReleaseArgs{}, nil },
				&river.PeriodicJobOpts{RunOnStart: true}),
			river.NewPeriodicJob(river.PeriodicInterval(delivery.StatsFoldInterval),
				func() (river.JobArgs, *river.InsertOpts) { return delivery.FoldStatsArgs{}, nil },
				&river.PeriodicJobOpts{RunOnStart: true}),
			river.NewPeriodicJob(river.PeriodicInterval(delivery.ReconcileInterval),
				func() (river.JobArgs, *river.InsertOpts) { return delivery.ReconcileArgs{}, nil },
				&river.PeriodicJobOpts{RunOnStart: true}),
			river.NewPeriodicJob(river.PeriodicInterval(delivery.FillEventTypesInterval),
				func() (river.JobArgs, *river.InsertOpts) { return delivery.FillEventTypesArgs{}, nil },
				&river.PeriodicJobOpts{RunOnStart: true}),
			river.NewPeriodicJob(river.PeriodicInterval(events.ExpirySweepInterval),
				func() (river.JobArgs, *river.InsertOpts) { return events.ExpireCheckoutsArgs{}, nil },
				&river.PeriodicJobOpts{RunOnStart: true}),
		},
		Workers: workers,
	}
}

// Addr is the address the API listens on.
func (m *Main) Addr() string { return m.listener.Addr().String() }

// MetricsAddr is the address /metrics is served on: HOOKLINE_METRICS_ADDR's
// listener when it is set, else the API's.
func (m *Main) MetricsAddr() string {
	if m.metricsListener != nil {
		return m.metricsListener.Addr().String()
	}
	return m.Addr()
}

// Run serves the API (and /metrics on its own listener when
// HOOKLINE_METRICS_ADDR is set) and works jobs until ctx is done, then drains
// (see drain): River stops fetching, and side by side its running jobs
// complete and both listeners' in-flight requests finish (a job still running
// at the deadline is rescued by another process later, never lost).
func (m *Main) Run(ctx context.Context) error {
	if m.workers != nil {
		// Jobs' contexts derive from Start's: start on one the signal does
		// not cancel, so that SIGTERM lets in-flight attempts finish (Stop,
		// below) instead of cutting them off.
		if err := m.workers.Start(context.WithoutCancel(ctx)); err != nil {
			return fmt.Errorf("start river: %w", err)
		}
	}
	m.logger.InfoContext(ctx, "hookline serving", slog.String("addr", m.Addr()), slog.String("metrics_addr", m.MetricsAddr()),
		slog.String("role", m.role))

	serveErr := make(chan error, 2)
	go func() { serveErr <- m.http.Serve(m.listener) }()
	if m.metricsHTTP != nil {
		go func() { serveErr <- m.metricsHTTP.Serve(m.metricsListener) }()
	}

	var err error
	select {
	case <-ctx.Done():
	case err = <-serveErr:
		err = fmt.Errorf("serve http: %w", err)
	}

	m.logger.InfoContext(context.WithoutCancel(ctx), "hookline draining")
	return errors.Join(err, m.drain(context.WithoutCancel(ctx)))
}

// traceFlushTimeout is how long the drain's last step, sending the spans
// still queued, may take, after shutdownTimeout's.
const traceFlushTimeout = 5 * time.Second

// drain stops the process within shutdownTimeout, then sends the spans
// still queued within traceFlushTimeout. River's Stop starts first and ends
// fetching at once (a job started after the signal would only be
// cut off or handed back), then waits for the jobs under way, whose attempts
// get SoftStopTimeout to finish. Meanwhile, not afterwards, the listeners
// stop taking requests and those in flight finish: a slow request must
// neither keep the workers fetching nor eat into their time.
func (m *Main) drain(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, shutdownTimeout)
	defer cancel()
	var mu sync.Mutex
	var err error
	fail := func(e error) {
		mu.Lock()
		defer mu.Unlock()
		err = errors.Join(err, e)
	}
	var wg sync.WaitGroup
	if m.workers != nil {
		wg.Go(func() {
			if stopErr := m.workers.Stop(ctx); stopErr != nil {
				fail(fmt.Errorf("stop river: %w", stopErr))
			}
		})
	}
	for name, srv := range map[string]*http.Server{"http": m.http, "metrics http": m.metricsHTTP} {
		if srv == nil {
			continue
		}
		wg.Go(func() {
			if shutdownErr := srv.Shutdown(ctx); shutdownErr != nil && !errors.Is(shutdownErr, http.ErrServerClosed) {
				fail(fmt.Errorf("shut down %s: %w", name, shutdownErr))
			}
		})
	}
	wg.Wait()
	// Last: the spans of the requests and attempts that just finished go
	// too, with a budget of their own (a drain that took all of
	// shutdownTimeout would leave them none). A collector away costs them,
	// not the exit code.
	if m.traces != nil {
		flushCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), traceFlushTimeout)
		defer cancel()
		if flushErr := m.traces.Shutdown(flushCtx); flushErr != nil {
			m.logger.WarnContext(ctx, "flush traces", slog.String("error", flushErr.Error()))
		}
	}
	m.logger.InfoContext(ctx, "hookline stopped")
	return err
}

// Close releases the listeners, the pools and the trace exporter (after
// Run's drain, which flushed it, there is nothing left to send).
func (m *Main) Close() {
	if m.traces != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = m.traces.Shutdown(ctx) // spans still unsent are dropped: Close is not a drain
	}
	if m.listener != nil {
		m.listener.Close()
	}
	if m.metricsListener != nil {
		m.metricsListener.Close()
	}
	if m.apiPool != nil && m.apiPool != m.pool {
		m.apiPool.Close()
	}
	if m.pool != nil {
		m.pool.Close()
	}
}
