package delivery

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"go.opentelemetry.io/otel/trace"

	"github.com/hookline/hookline/events"
)

// Version is hookline's version, sent as user-agent: hookline/<version>. The
// build sets it with -ldflags -X.
var Version = "dev"

const (
	// responseExcerpt is how much of a receiver's response body is kept.
	responseExcerpt = 4 << 10
	// circuitAfter is how long an endpoint must fail every attempt before
	// only one attempt at a time probes it: a streak, not a single blip, and
	// short enough that a dead endpoint's backlog is not sent whole first.
	circuitAfter = 5 * time.Second
	// failingWindow is how long an endpoint may fail every attempt before it
	// is disabled (contract §4): as long as the retry schedule, about 3 days.
	failingWindow = 72 * time.Hour
)

// errTimedOut is the error text of an attempt that hit the delivery timeout.
const errTimedOut = "timed out"

// WorkerConfig is what the delivery worker needs from the process.
type WorkerConfig struct {
	Guard *Guard
	// InFlight caps one process's attempts under way to each destination
	// (HOOKLINE_ENDPOINT_CONCURRENCY, default 50).
	InFlight int
	// MerchantJobs caps one process's delivery jobs under way for each
	// merchant while others need workers (default a quarter of Workers).
	MerchantJobs int
	// Workers is the delivery queue's MaxWorkers (default 100).
	Workers   int
	Keyring   *events.Keyring
	Logger    *slog.Logger
	Metrics   *Metrics
	Pool      *pgxpool.Pool
	Publisher *events.Publisher
	Schedule  Schedule
	Timeout   time.Duration
	// Tracer makes each attempt's span (README, "Traces"); nil, tracing is
	// off and none is made.
	Tracer trace.Tracer
}

// Worker makes delivery attempts: it is the River worker of DeliverArgs.
type Worker struct {
	river.WorkerDefaults[DeliverArgs]
	client    *http.Client
	discord   *invalidBudget
	limiter   *limiter
	keyring   *events.Keyring
	logger    *slog.Logger
	metrics   *Metrics
	pool      *pgxpool.Pool
	publisher *events.Publisher
	schedule  Schedule
	timeout   time.Duration
	tracer    trace.Tracer // nil: tracing off
}

// NewWorker returns the delivery worker.
func NewWorker(cfg WorkerConfig) *Worker {
	return &Worker{
		client:    newHTTPClient(cfg.Guard),
		discord:   &invalidBudget{},
		limiter:   newLimiter(cmp.Or(cfg.InFlight, 50), cmp.Or(cfg.MerchantJobs, cmp.Or(cfg.Workers, 100)/4), cmp.Or(cfg.Workers, 100)),
		keyring:   cfg.Keyring,
		logger:    cfg.Logger,
		metrics:   cfg.Metrics,
		pool:      cfg.Pool,
		publisher: cfg.Publisher,
		schedule:  cfg.Schedule,
		timeout:   cfg.Timeout,
		tracer:    cfg.Tracer,
	}
}

// newHTTPClient is the outbound client: it never follows redirects (a 3xx is
// a failed attempt), never uses a proxy from the environment (that would
// bypass the guard), dials only what the guard allows, and keeps connections
// to each receiver alive between deliveries.
func newHTTPClient(guard *Guard) *http.Client {
	dialer := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second, Control: guard.control}
	return &http.Client{
		Transport: &http.Transport{
			Proxy:                  nil,
			DialContext:            dialer.DialContext,
			ForceAttemptHTTP2:      true,
			MaxIdleConns:           1000,
			MaxIdleConnsPerHost:    100,
			IdleConnTimeout:        90 * time.Second,
			TLSHandshakeTimeout:    10 * time.Second,
			ExpectContinueTimeout:  time.Second,
			MaxResponseHeaderBytes: 64 << 10,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

const (
	// placeWait is how long a job of a healthy destination waits for one of
	// its places before it parks its deliveries (limiter.enter).
	placeWait = 250 * time.Millisecond
	// sendBudget is how long a job keeps starting attempts: past it, the job
	// parks the rest, so a slow destination's job ends within sendBudget plus
	// one attempt.
	sendBudget = 2 * time.Second
	// recordTimeout bounds the recording of a job's attempts. A job that
	// cannot record fails, and River runs it again: what it did not record
	// was not counted, and is attempted again without spending an attempt.
	recordTimeout = 10 * time.Second
)

// JobTimeout is how long a delivery job can run when each attempt may take
// deliveryTimeout: River rescues a job still running past it.
func JobTimeout(deliveryTimeout time.Duration) time.Duration {
	return sendBudget + deliveryTimeout + recordTimeout
}

// Timeout is JobTimeout of the worker's delivery timeout.
func (w *Worker) Timeout(*river.Job[DeliverArgs]) time.Duration { return JobTimeout(w.timeout) }

// target is everything one attempt needs, read with the job's other targets
// in one query.
type target struct {
	deliveryID     string
	status         string
	attemptCount   int
	expected       int // the attempt count the job was made for
	scheduleBase   int // the attempt count its retry schedule starts from (a recovery's)
	parked         bool
	url            string
	destination    string // see destinationKey
	paused         bool   // the destination's pause has not ended
	eventID        string
	eventType      string
	eventCreated   time.Time
	traceparent    string // the event's stored trace context, or ""
	payload        []byte
	scope          events.Scope
	endpointID     *string
	endpointType   string
	displayName    string
	endpointStatus *string
	failing        bool
	deleted        bool
	scheme         string            // SchemeHMAC or SchemeEd25519
	rateLimit      *int              // the endpoint's deliveries per second, if it set a limit
	headers        map[string]string // the endpoint's custom headers, authorization opened
	secrets        []string
	// unusable says why the target cannot be sent (its secret does not
	// open): its attempt fails with this error, alone.
	unusable string
}

// loadTargets reads a job's deliveries with what sending them needs.
const loadTargets = `select d.id, d.status, d.attempt_count, d.schedule_base, d.parked, coalesce(w.url, d.url),
		coalesce(d.endpoint_id, 'url:' || md5(d.url)), coalesce(s.paused_until > now(), false), e.id, e.type, e.created_at, coalesce(e.traceparent, ''), e.payload,
		d.merchant_id, d.livemode, w.id, coalesce(w.type, 'webhook'), coalesce(w.display_name, m.name), w.status,
		coalesce(w.failing_since < now() - $2::interval, false), w.deleted_at is not null, coalesce(w.signature_scheme, 'hmac'), w.rate_limit, w.headers, w.header_authorization, w.secret, w.previous_secrets, w.previous_secrets_expire_at,
		case when d.livemode then m.webhook_secret else m.test_webhook_secret end
		from deliveries d
		join events e on e.id = d.event_id
		join merchants m on m.id = d.merchant_id
		left join webhook_endpoints w on w.id = d.endpoint_id
		left join delivery_destinations s on s.key = coalesce(d.endpoint_id, 'url:' || md5(d.url))
		where d.id = any($1)`

func (w *Worker) load(ctx context.Context, ids []string) ([]*target, error) {
	rows, err := w.pool.Query(ctx, loadTargets, ids, circuitAfter)
	if err != nil {
		return nil, fmt.Errorf("load deliveries: %w", err)
	}
	// The secrets are opened once the rows are read: opening may write (a test
	// secret made on first use), which must not wait for a second connection
	// while this one is held.
	var stored []sealedSecrets
	targets, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (*target, error) {
		t := &target{}
		var s sealedSecrets
		if err := row.Scan(&t.deliveryID, &t.status, &t.attemptCount, &t.scheduleBase, &t.parked, &t.url, &t.destination, &t.paused, &t.eventID, &t.eventType, &t.eventCreated, &t.traceparent, &t.payload,
			&t.scope.MerchantID, &t.scope.Livemode, &t.endpointID, &t.endpointType, &t.displayName, &t.endpointStatus, &t.failing, &t.deleted,
			&t.scheme, &t.rateLimit, &t.headers, &s.authorization, &s.endpoint, &s.previous, &s.previousExpires, &s.account); err != nil {
			return nil, err
		}
		stored = append(stored, s)
		return t, nil
	})
	if err != nil {
		return nil, fmt.Errorf("load deliveries: %w", err)
	}
	for i, t := range targets {
		if err := w.openSecrets(ctx, t, stored[i]); err != nil {
			if stored[i].endpoint == nil && stored[i].account == nil && !t.scope.Livemode {
				// Making the test secret failed: a database error, not a
				// key; the job runs again.
				return nil, fmt.Errorf("load deliveries: %w", err)
			}
			// One target whose secret does not open (a key dropped from
			// HOOKLINE_ENCRYPTION_KEY) fails alone, on its schedule.
			t.unusable = "cannot open the signing secret: check HOOKLINE_ENCRYPTION_KEY"
			w.logger.ErrorContext(ctx, "open signing secret", slog.String("delivery_id", t.deliveryID), slog.String("error", err.Error()))
		}
	}
	return targets, nil
}

// sealedSecrets is a target's secrets as stored.
type sealedSecrets struct {
	endpoint, account *string
	previous          []string
	previousExpires   []time.Time
	authorization     *string // a custom authorization header
}

// openSecrets decrypts the secrets an attempt signs with: the endpoint's (and
// the previous ones whose rotation's grace period has not ended), or for a
// checkout's own webhook_url the account's secret of the delivery's mode,
// never the other mode's (a test key can read the test secret).
func (w *Worker) openSecrets(ctx context.Context, t *target, s sealedSecrets) error {
	var secret string
	var err error
	switch {
	case s.endpoint != nil:
		secret, err = w.keyring.Open(*t.endpointID, *s.endpoint)
	default:
		secret, err = events.OpenAccountSecret(ctx, w.pool, w.keyring, t.scope, s.account)
	}
	if err != nil {
		return err
	}
	t.secrets = []string{secret}
	if s.authorization != nil {
		if err := w.openAuthorization(t, *s.authorization); err != nil {
			return err
		}
	}
	now := time.Now()
	for i, sealed := range s.previous {
		if i >= len(s.previousExpires) || !s.previousExpires[i].After(now) {
			continue
		}
		old, err := w.keyring.Open(*t.endpointID, sealed)
		if err != nil {
			return err
		}
		t.secrets = append(t.secrets, old)
	}
	return nil
}

// openAuthorization puts the endpoint's authorization header, opened, in
// place of its mask among the target's headers.
func (w *Worker) openAuthorization(t *target, sealed string) error {
	value, err := w.keyring.Open(*t.endpointID, sealed)
	if err != nil {
		return err
	}
	for name := range t.headers {
		if strings.EqualFold(name, authorizationField) {
			t.headers[name] = value
		}
	}
	return nil
}

// outcome is what one attempt produced.
type outcome struct {
	started    time.Time
	duration   time.Duration
	statusCode int
	header     http.Header
	body       string
	err        string
}

func (o *outcome) acknowledged() bool {
	return o.err == "" && o.statusCode >= 200 && o.statusCode < 300
}

// result is one target of the job that was sent, with what the attempt
// produced.
type result struct {
	*target
	outcome *outcome
	final   bool // the attempt settled the delivery: succeeded or failed
}

// batch is what a job did with its targets, for record: the attempts it made,
// the deliveries it parked (and whether because the destination was
// saturated), those it hands back to the queue unsent (the process is
// stopping, or a manual retry could not be sent), and those it abandons
// (their endpoint is off).
type batch struct {
	mu        sync.Mutex
	sent      []*result
	parked    []*target
	busy      []string             // destinations found saturated
	failing   []string             // destinations found failing: their queued jobs are withdrawn
	pauses    map[string]time.Time // destinations to pause, until when
	leave     []func()             // the limiter places the job holds
	admitted  []string             // destinations the limiter admitted the job to
	refused   bool                 // a manual retry found no place
	limited   bool                 // a destination has a rate limit: the release paces it, not drain
	manual    bool                 // the job is a manual retry
	requeue   []*target
	abandoned []*target
}

func newBatch(manual bool) *batch {
	return &batch{manual: manual, pauses: map[string]time.Time{}}
}

// park sets ts aside unsent, without spending an attempt: parked for the
// release (busy: their destination was found saturated), or, in a manual
// retry's batch, handed back as retries.
func (b *batch) park(ts []*target, busy bool) {
	if len(ts) == 0 {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.manual {
		// A retry is not parked (a settled delivery would not be, and the
		// release would send a pending one as an automatic attempt): it
		// comes back as a retry, in a job of its destination's
		// (enqueueNext).
		b.requeue = append(b.requeue, ts...)
		return
	}
	b.parked = append(b.parked, ts...)
	if busy {
		b.busy = append(b.busy, ts[0].destination)
	}
}

// foundFailing notes that the job found destination failing (its circuit
// open, or failing in this process): Work then withdraws its queued jobs
// (Worker.withdraw). A paused destination is not: a receiver's pause is
// often a second or two, and its queued jobs park as they come. Nor is a
// slow one: a burst on a busy machine makes a healthy receiver's attempts
// slow for a moment (a withdrawal then sent a burst's deliveries the long
// way, through the release), and a slow destination's jobs are refused
// and parked as they come, at the pace of its few places.
func (b *batch) foundFailing(destination string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.failing = append(b.failing, destination)
}

// observe counts recorded attempts, and endpoints disabled with them, in the
// metrics: only once they are written.
func (w *Worker) observe(results []*result, recorded map[string]bool, disabled []string) {
	for _, a := range results {
		if recorded[a.deliveryID] {
			w.metrics.observe(a.outcome, a.final, a.attemptCount+1, a.eventCreated)
		}
	}
	for _, reason := range disabled {
		w.metrics.disabled.WithLabelValues(reason).Inc()
	}
}

// Work makes one attempt of each of the job's deliveries that is still its
// to make, and records them. A delivery whose attempt count moved on since
// the job was made (another job made that attempt, or this one did before
// its process died) is skipped, as is, for an automatic job, one that
// settled meanwhile; one whose endpoint was disabled or deleted is failed
// without an attempt. Each destination's deliveries go through the limiter:
// a saturated destination parks them, a paused one parks them, a failing one
// gets one probe and parks the rest. A job admitted to a destination whose
// deliveries this process parked for lack of room then works those, batch
// after batch, until its send budget is spent: the parked deliveries are the
// destination's own queue, and its admitted jobs drain it at the rate it
// answers.
func (w *Worker) Work(ctx context.Context, job *river.Job[DeliverArgs]) error {
	start := time.Now()
	expected := make(map[string]int, len(job.Args.DeliveryIDs))
	for i, id := range job.Args.DeliveryIDs {
		if i < len(job.Args.Counts) {
			expected[id] = job.Args.Counts[i]
		}
	}
	targets, err := w.load(ctx, job.Args.DeliveryIDs)
	if err != nil {
		return err
	}
	b := newBatch(job.Args.Manual)
	byDestination := map[string][]*target{}
	var order []string
	for _, t := range targets {
		t.expected = expected[t.deliveryID]
		switch {
		case t.attemptCount != t.expected || (t.parked && !job.Args.Manual):
		case !job.Args.Manual && t.status != StatusPending:
		case t.endpointID != nil && (t.deleted || (!job.Args.Manual && *t.endpointStatus != EndpointEnabled)):
			b.abandoned = append(b.abandoned, t)
		default:
			if byDestination[t.destination] == nil {
				order = append(order, t.destination)
			}
			byDestination[t.destination] = append(byDestination[t.destination], t)
		}
	}
	var wg sync.WaitGroup
	for _, key := range order {
		wg.Go(func() { w.deliverTo(ctx, start, byDestination[key], job.Args, b) })
	}
	wg.Wait()
	// Last, once the places below are given back: a withdrawal takes a
	// moment, and holds the job's worker, not its destination's places.
	defer w.withdrawFound(ctx, b)
	defer func() {
		for _, leave := range b.leave {
			leave()
		}
	}()
	if err := w.recordWithin(ctx, b); err != nil {
		return err
	}
	if b.refused {
		return river.JobSnooze(time.Second)
	}
	if len(b.admitted) != 1 || job.Args.Manual || b.limited {
		return nil
	}
	return w.drain(ctx, start, b.admitted[0])
}

// withinRateLimit answers the targets the endpoint's rate limit lets go now.
// The others wait without spending an attempt: an automatic job's park, not
// as saturated (the release hands out a second's worth of them each
// second), a manual retry's come back after a second (River's scheduler
// makes them available within its 5 s). If the bucket cannot be
// read, none go: a limit is a promise to the receiver.
func (w *Worker) withinRateLimit(ctx context.Context, ts []*target, b *batch) []*target {
	t := ts[0]
	granted, err := take(ctx, w.pool, t.destination, *t.rateLimit, len(ts))
	if err != nil {
		w.logger.WarnContext(ctx, "rate limit", slog.String("endpoint_id", t.destination), slog.String("error", err.Error()))
	}
	b.mu.Lock()
	b.limited = true
	b.mu.Unlock()
	b.park(ts[granted:], false)
	return ts[:granted]
}

// recordWithin records b within recordTimeout, even when the job's context
// is done: what was sent must be recorded.
func (w *Worker) recordWithin(ctx context.Context, b *batch) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), recordTimeout)
	defer cancel()
	return w.record(ctx, b)
}

// claimParked takes the next parked deliveries of a destination that are
// due, for this job: they stay parked, with a lease (next_attempt_at) that
// keeps other jobs and the release off them until the job's timeout. If the
// process dies, the lease runs out and they are taken again; recording an
// attempt unparks its delivery.
const claimParked = `update deliveries set next_attempt_at = now() + $3::interval
	where id in (select id from deliveries
		where parked and coalesce(endpoint_id, 'url:' || md5(url)) = $1 and (status = 'pending') is true and next_attempt_at <= now()
		order by coalesce(endpoint_id, 'url:' || md5(url)), id
		limit $2 for update skip locked)
	returning id, attempt_count`

// drain works the deliveries this process parked for destination, batch
// after batch, while the job's send budget lasts and the destination is not
// paused. The job keeps its limiter place throughout.
func (w *Worker) drain(ctx context.Context, start time.Time, destination string) error {
	for time.Since(start) < sendBudget && ctx.Err() == nil && w.limiter.hasParked(destination) && !w.limiter.isPaused(destination) {
		// The lease outlasts the job and its recording, and River's rescue.
		rows, err := w.pool.Query(ctx, claimParked, destination, jobSize, JobTimeout(w.timeout)+recordTimeout+5*time.Second)
		if err != nil {
			return fmt.Errorf("claim parked deliveries: %w", err)
		}
		claimed := map[string]int{}
		var ids []string
		var id string
		var count int
		if _, err := pgx.ForEachRow(rows, []any{&id, &count}, func() error {
			claimed[id] = count
			ids = append(ids, id)
			return nil
		}); err != nil {
			return fmt.Errorf("claim parked deliveries: %w", err)
		}
		if len(ids) < jobSize {
			w.limiter.drained(destination)
		}
		if len(ids) == 0 {
			return nil
		}
		targets, err := w.load(ctx, ids)
		if err != nil {
			return err
		}
		b := newBatch(false)
		var ts []*target
		for _, t := range targets {
			t.expected = claimed[t.deliveryID]
			if t.attemptCount != t.expected || t.status != StatusPending || !t.parked {
				continue // recorded meanwhile (a manual retry): no longer the claim's
			}
			if t.endpointID != nil && (t.deleted || *t.endpointStatus != EndpointEnabled) {
				b.abandoned = append(b.abandoned, t)
			} else {
				ts = append(ts, t)
			}
		}
		if len(ts) > 0 {
			w.sendAdmitted(ctx, start, ts, DeliverArgs{}, b)
		}
		if err := w.recordWithin(ctx, b); err != nil {
			return err
		}
		if b.limited {
			return nil // the endpoint set a rate limit meanwhile: the release paces it
		}
		if len(ts) > 0 && ts[0].paused {
			// Paused by another process (the database's pause, which this
			// process's limiter does not know): sendAdmitted parked them
			// back, and the release hands them out when the pause ends.
			return nil
		}
	}
	return nil
}

// deliverTo admits a job's targets of one destination to the limiter, or
// parks them, and makes their attempts (see sendAdmitted).
func (w *Worker) deliverTo(ctx context.Context, start time.Time, ts []*target, args DeliverArgs, b *batch) {
	t := ts[0]
	var until time.Time // a paused or failing destination's jobs wait for no place (nor in this process: enter)
	if !t.paused && !t.failing {
		until = time.Now().Add(placeWait)
	}
	leave, ok := w.limiter.enter(ctx, t.destination, t.scope.MerchantID, until)
	if !ok {
		if args.Manual {
			// A manual retry takes its turn like any job: it comes back.
			b.mu.Lock()
			b.refused = true
			b.mu.Unlock()
			return
		}
		b.park(ts, !t.paused && ctx.Err() == nil) // a wait cut short by a stop says nothing of the destination
		if t.failing || w.limiter.isFailing(t.destination) {
			b.foundFailing(t.destination)
		}
		return
	}
	// The place is kept until the job has recorded, so that the next job of
	// the destination sees what this one learned (a pause, a failure).
	b.mu.Lock()
	b.leave = append(b.leave, leave)
	b.admitted = append(b.admitted, t.destination)
	b.mu.Unlock()
	w.sendAdmitted(ctx, start, ts, args, b)
}

// sendAdmitted makes the attempts of one destination's admitted targets, the
// limiter's lanes at a time, each in one of the destination's in-flight slots, starting
// none after sendBudget (a target whose lane waited that long for a slot
// parks), unless the destination is paused (they park), or failing (one
// probe; the rest park), and notes in b what became of each.
func (w *Worker) sendAdmitted(ctx context.Context, start time.Time, ts []*target, args DeliverArgs, b *batch) {
	t := ts[0]
	if !args.Manual {
		if !args.Probe && (t.paused || w.limiter.isPaused(t.destination)) {
			b.park(ts, false)
			return
		}
		if t.endpointType == TypeDiscord {
			if until := w.discord.blockedUntil(time.Now()); !until.IsZero() {
				w.logger.WarnContext(ctx, "pausing a discord endpoint: this process is close to discord's limit of invalid requests",
					slog.String("endpoint_id", t.destination), slog.Time("until", until))
				b.park(ts, false)
				b.mu.Lock()
				b.pauses[t.destination] = until
				b.mu.Unlock()
				return
			}
		}
		if w.limiter.isFailing(t.destination) {
			t.failing = true // as if the database's streak were long enough
		}
		if t.failing {
			// The circuit is open: one probe; the rest wait for its answer.
			b.park(ts[1:], false)
			ts = ts[:1]
			b.foundFailing(t.destination)
		}
	}
	if t.rateLimit != nil {
		if ts = w.withinRateLimit(ctx, ts, b); len(ts) == 0 {
			return
		}
	}
	var mu sync.Mutex
	next, paused := 0, false // paused: the destination asked to be left alone
	var unsent []*target     // taken, but no slot freed within the send budget
	take := func() *target {
		mu.Lock()
		defer mu.Unlock()
		// Another job's attempt may have paused the destination, or found
		// it failing, since these targets were loaded (a manual retry does
		// not wait for either).
		if next == len(ts) || (next > 0 && (paused || ctx.Err() != nil || time.Since(start) > sendBudget)) {
			return nil
		}
		if next > 0 && !args.Manual && w.limiter.holdsBack(t.destination) {
			paused = true
			return nil
		}
		next++
		return ts[next-1]
	}
	var wg sync.WaitGroup
	for range min(len(ts), w.limiter.lanes) {
		wg.Go(func() {
			for t := take(); t != nil; t = take() {
				release, ok := w.limiter.send(ctx, t.destination, start.Add(sendBudget))
				if !ok && ctx.Err() != nil {
					b.mu.Lock()
					b.requeue = append(b.requeue, t) // stopping: hand it back unsent
					b.mu.Unlock()
					continue
				}
				if !ok {
					mu.Lock()
					unsent = append(unsent, t)
					mu.Unlock()
					continue
				}
				o := w.send(ctx, t)
				release()
				w.limiter.observe(t.destination, o.duration, o.acknowledged())
				if t.endpointType == TypeDiscord {
					w.discord.note(o.statusCode, time.Now())
				}
				if t.failing && !o.acknowledged() {
					// The probe failed: the destination's other jobs here
					// park until the database's longer pause reaches them.
					w.limiter.pause(t.destination, time.Now().Add(time.Second))
				}
				if until := pauseUntil(t, o, time.Now()); o.statusCode != 0 && until.After(time.Now()) {
					w.limiter.pause(t.destination, until)
					mu.Lock()
					paused = true
					mu.Unlock()
				}
				b.mu.Lock()
				if ctx.Err() != nil && o.err != "" {
					// The worker is stopping mid-request: hand the delivery
					// back without recording or spending an attempt.
					b.requeue = append(b.requeue, t)
				} else {
					b.sent = append(b.sent, &result{target: t, outcome: o})
				}
				b.mu.Unlock()
			}
		})
	}
	wg.Wait()
	b.park(append(unsent, ts[next:]...), !paused && ctx.Err() == nil) // a stop says nothing of the destination
}

// send makes the HTTP request of one attempt.
func (w *Worker) send(ctx context.Context, t *target) *outcome {
	o := &outcome{started: time.Now()}
	var span trace.Span // nil: tracing off
	if w.tracer != nil {
		span = w.startAttempt(ctx, t)
	}
	defer func() {
		o.duration, o.err = time.Since(o.started), cleanText(o.err)
		if span != nil {
			endAttempt(span, o)
		}
	}()
	if t.unusable != "" {
		o.err = t.unusable
		return o
	}

	ctx, cancel := context.WithTimeout(ctx, w.timeout)
	defer cancel()
	body, err := t.body()
	if err != nil {
		o.err = err.Error()
		return o
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, t.url, bytes.NewReader(body))
	if err != nil {
		o.err = "invalid destination URL"
		return o
	}
	for name, value := range t.headers {
		// checkHeaders keeps reserved names out; an endpoint stored before a
		// name was reserved (tracestate, say) still has it, and it is not sent.
		if !reserved(name) {
			req.Header.Set(name, value)
		}
	}
	// Set after the custom headers, as the ones below: hookline's own.
	req.Header["Traceparent"] = []string{attemptTraceparent(span, t)}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "hookline/"+Version)
	if t.endpointType == TypeWebhook {
		// Chat messages are not signed: Discord and Slack verify nothing.
		sig, err := signatureHeader(t.scheme, t.secrets, t.eventID, o.started, body)
		if err != nil {
			o.err = err.Error()
			return o
		}
		req.Header.Set("webhook-id", t.eventID)
		req.Header.Set("webhook-timestamp", fmt.Sprint(o.started.Unix()))
		req.Header.Set("webhook-signature", sig)
	}

	res, err := w.client.Do(req)
	if err != nil {
		o.err = describe(err, ctx)
		return o
	}
	defer res.Body.Close()
	o.statusCode, o.header = res.StatusCode, res.Header
	excerpt, _ := io.ReadAll(io.LimitReader(res.Body, responseExcerpt))
	o.body = cleanText(string(excerpt))
	// Drain a little more so the connection can be reused; never much.
	_, _ = io.Copy(io.Discard, io.LimitReader(res.Body, 64<<10))
	if !o.acknowledged() {
		o.err = fmt.Sprintf("HTTP %d", res.StatusCode)
	}
	return o
}

// cleanText is s as Postgres text can hold it: valid UTF-8, without NUL.
// Receivers' bodies and error texts (an x509 error quotes a certificate's
// names raw) may carry either.
func cleanText(s string) string {
	return strings.ToValidUTF8(strings.ReplaceAll(s, "\x00", ""), "\uFFFD")
}

// body is what an attempt sends: the stored envelope for a webhook, a chat
// message rendered from it for Discord and Slack. Rendering is deterministic,
// so every attempt sends the same bytes either way.
func (t *target) body() ([]byte, error) {
	switch t.endpointType {
	case TypeDiscord:
		return renderDiscord(t.displayName, t.payload)
	case TypeSlack:
		return renderSlack(t.displayName, t.payload)
	default:
		return t.payload, nil
	}
}

// describe turns a client error into a message without the URL, which may
// carry a token (Discord's and Slack's webhook URLs do).
func describe(err error, ctx context.Context) string {
	switch {
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		return errTimedOut
	case errors.Is(err, errBlockedAddress):
		return "refused: the destination resolves to a non-public address"
	}
	var urlErr *url.Error
	if errors.As(err, &urlErr) {
		err = urlErr.Err
	}
	var opErr *net.OpError
	if errors.As(err, &opErr) {
		return "connection failed: " + opErr.Op + ": " + opErr.Err.Error()
	}
	return err.Error()
}

// recordAttempts writes a job's attempts: each delivery's new state and its
// attempt row numbered from the delivery's count, only where the count is
// still the one the job was made for (so each attempt number is recorded
// once, whichever job makes it), and never moving a succeeded delivery back.
// For destinations that acknowledged, it ends their endpoint's failure streak
// and their probing (taking those rows' locks only when there is something to
// end: every acknowledged attempt taking them would serialize the workers).
// It tallies the attempts it recorded for their endpoints' statistics (see
// tallyAttempts), in the same statement: an attempt is counted exactly when
// it is recorded. It answers the ids it recorded.
//
// Its row locks come in one order: deliveries, endpoints, destinations (the
// tally is a new row, which no one else locks). Postgres runs the
// data-modifying CTEs that the query does not read in no documented order
// (Postgres 15 runs the last declared first), so each reads the one before
// it (a count, never negative): the endpoints' update reads st (which reads
// d), the destinations' reads e, and each has written, and holds its rows,
// before the next locks any. record's transaction then takes endpoints and
// destinations after it. (Run destinations first, an acknowledged job could
// hold a destination and wait for its endpoint while a failing job of that
// endpoint, having marked it failing, waits to pause the destination:
// TestAcknowledgedRecordLocksEndpointsBeforeDestinations.)
const recordAttempts = `with i as (
		select * from unnest($1::text[], $2::int[], $3::text[], $4::int[], $5::timestamptz[], $6::text[], $7::timestamptz[],
			$8::int[], $9::text[], $10::text[], $12::text[], $13::int[])
			as i (id, expected, status, status_code, next_attempt_at, url, started_at, duration_ms, error, response_body,
				outcome, latency_bucket)
	), d as (
		update deliveries d set attempt_count = d.attempt_count + 1,
			status = case when d.status = 'succeeded' then d.status else i.status end,
			next_attempt_at = case when d.status = 'succeeded' then null else i.next_attempt_at end,
			last_status_code = i.status_code, url = i.url, parked = false, updated_at = now()
		from i where d.id = i.id and d.attempt_count = i.expected
		returning d.id, d.attempt_count, d.endpoint_id
	), a as (
		insert into delivery_attempts (delivery_id, attempt, started_at, duration_ms, status_code, error, response_body)
		select d.id, d.attempt_count, i.started_at, i.duration_ms, i.status_code, i.error, i.response_body
		from d join i on i.id = d.id
	), ` + tallyAttempts + `, e as (
		update webhook_endpoints set failing_since = null where id = any($11) and failing_since is not null
			and (select count(*) from st) >= 0
		returning 1
	), s as (
		update delivery_destinations set probe_ms = 1000, paused_until = now()
		where key = any($11) and probe_ms > 1000 and (select count(*) from e) >= 0
	)
	select id from d`

// parkDeliveries sets deliveries aside for their destination's release, where
// the job still holds them (their count is the job's), due now (a claimed
// delivery's lease ends).
//
// Its status test, like that of every statement that takes deliveries by id
// or by destination, is written `(status = 'pending') is true`. Written
// `status = 'pending'`, it matches deliveries_unsettled_idx (status, id), and
// a generic plan made while the table's statistics say pending deliveries
// are rare (a backlog loaded or built up since the last analyze: an outage)
// reads that index's whole pending range, filtering on id, for each
// statement. In make bench's backlog every one of the workers' 12
// connections sat in this statement for 15 to 30 s, up to 1.3 s each, and
// the backlog drained nothing meanwhile (goroutine dump, pg_stat_activity,
// EXPLAIN of the generic plan). Written so, the test can only filter the
// rows the primary key (or deliveries_parked_idx) found.
const parkDeliveries = `update deliveries d set parked = true, next_attempt_at = least(d.next_attempt_at, now())
	where d.id = any($1::text[]) and d.attempt_count = ($2::int[])[array_position($1::text[], d.id)]
		and (d.status = 'pending') is true`

// markBusy notes the destinations a job found saturated since their last
// release, which halves their next release (see ReleaseWorker.release): only
// whether busy_at is later than released_at counts, so a destination already
// marked since its release is left alone, and its row is not locked. An
// upsert locked it whatever it changed: in make bench's single drain every
// refused job of the one destination waited, in its transaction and holding
// one of the workers' dozen connections, for the one before it to commit
// (8 ms a statement, about 5 s of connection time in 8 s). A release that
// commits between this statement's snapshot and its update can go unmarked;
// the next refusal marks it.
const markBusy = `with marked as (
		update delivery_destinations set busy_at = now()
		where key = any($1::text[]) and (busy_at is null or busy_at <= released_at)
	)
	insert into delivery_destinations (key, busy_at)
	select k, now() from unnest($1::text[]) k
	where not exists (select from delivery_destinations s where s.key = k)
	on conflict (key) do nothing`

// pauseDestination holds back a destination's deliveries until $2: it asked
// for that with a 429 or 503 and Retry-After.
const pauseDestination = `insert into delivery_destinations (key, paused_until) values ($1, $2)
	on conflict (key) do update set paused_until = greatest(delivery_destinations.paused_until, excluded.paused_until)`

// pauseProbed holds back destinations whose probe failed for their probe
// interval, which doubles (up to maxProbeInterval) once per interval, however
// many attempts failed in it: while a destination fails every attempt, its
// backlog costs one attempt per interval.
const pauseProbed = `insert into delivery_destinations as s (key, paused_until, probe_ms)
	select unnest($1::text[]), now() + interval '1 second', 2000
	on conflict (key) do update set paused_until = greatest(s.paused_until, now() + s.probe_ms * interval '1 millisecond'),
		probe_ms = case when s.paused_until <= now() then least(s.probe_ms * 2, $2) else s.probe_ms end`

// record writes what the job did: in one statement when every attempt was
// acknowledged, otherwise in one transaction with the jobs of the next
// attempts (the schedule with jitter, or a later Retry-After), the parked
// deliveries, the failure of abandoned ones, the pauses receivers asked for,
// and the health of endpoints that failed (a failure streak, disabling,
// webhook_endpoint.disabled). River completes the job when it returns nil;
// if the process dies before that, the job runs again and skips what was
// recorded here (the counts moved on).
func (w *Worker) record(ctx context.Context, b *batch) error {
	now := time.Now()
	var rb recordBatch
	var acknowledged []string
	failing := map[string]events.Scope{}
	disable := map[string]string{}
	next := map[string]time.Time{}
	pauses := b.pauses
	var probed []string // destinations whose circuit is open, probed in vain
	for _, a := range b.sent {
		o := a.outcome
		status := a.status
		var at *time.Time
		notBefore := pauseUntil(a.target, o, now)
		if notBefore.After(now) {
			pauses[a.destination] = maxTime(pauses[a.destination], notBefore)
		}
		switch {
		case o.acknowledged():
			status = StatusSucceeded
			acknowledged = append(acknowledged, a.destination)
		case o.statusCode == http.StatusGone && a.endpointID != nil:
			status, disable[*a.endpointID] = StatusFailed, DisabledGone
		case chatDisableReason(a.endpointType, o.statusCode) != "" && a.endpointID != nil:
			status, disable[*a.endpointID] = StatusFailed, chatDisableReason(a.endpointType, o.statusCode)
		case a.status != StatusPending:
			// A manual attempt of a settled delivery: it stays settled.
		case a.attemptCount+1-a.scheduleBase >= w.schedule.MaxAttempts():
			status = StatusFailed
		default:
			status = StatusPending
			if a.failing {
				probed = append(probed, a.destination)
			}
			t := maxTime(w.schedule.Next(now, a.attemptCount+1-a.scheduleBase, time.Time{}), notBefore)
			at = &t
			next[a.deliveryID] = t
		}
		if !o.acknowledged() && a.endpointID != nil {
			failing[*a.endpointID] = a.scope
		}
		rb.add(a.target, status, at, o)
		a.final = status != StatusPending
	}
	if len(failing) == 0 && len(next) == 0 && len(pauses) == 0 && len(b.parked) == 0 && len(b.requeue) == 0 && len(b.abandoned) == 0 {
		if len(rb.ids) == 0 {
			return nil
		}
		// The common case: every attempt acknowledged, in one statement.
		recorded, err := w.recordAttempts(ctx, w.pool, rb.args(acknowledged))
		if err != nil {
			return err
		}
		w.observe(b.sent, recorded, nil)
		return nil
	}
	var disabled []string
	var recorded map[string]bool
	err := pgx.BeginFunc(ctx, w.pool, func(tx pgx.Tx) error {
		// The deliveries the job did not send first: recordAttempts then
		// locks endpoints, and a delivery locked after them would wait on a
		// manual retry of it that waits on those endpoints
		// (TestParkBeforeRecordingAttempts).
		if len(b.abandoned) > 0 {
			ids, _ := idsAndCounts(b.abandoned, 0)
			if _, err := tx.Exec(ctx, `update deliveries set status = 'failed', next_attempt_at = null, parked = false, updated_at = now()
				where id = any($1) and (status = 'pending') is true`, ids); err != nil {
				return fmt.Errorf("abandon deliveries: %w", err)
			}
		}
		if len(b.parked) > 0 {
			ids, counts := idsAndCounts(b.parked, 0)
			if _, err := tx.Exec(ctx, parkDeliveries, ids, counts); err != nil {
				return fmt.Errorf("park deliveries: %w", err)
			}
		}
		if len(rb.ids) > 0 { // a job that only parked (refused a place) made no attempt
			var err error
			if recorded, err = w.recordAttempts(ctx, tx, rb.args(acknowledged)); err != nil {
				return err
			}
		}
		if err := w.enqueueNext(ctx, tx, b, recorded, next); err != nil {
			return err
		}
		// Deliveries, then endpoints, then destinations: the order
		// recordAttempts takes them in (an acknowledged attempt ends its
		// endpoint's failure streak, then its destination's probing), so
		// that no two jobs, or a job and a manual retry of one of its
		// deliveries, wait on each other's locks crosswise (a deadlock
		// Postgres would break by failing one, whose attempts would then be
		// sent again).
		for _, endpointID := range slices.Sorted(maps.Keys(failing)) { // one lock order for all workers
			reason := disable[endpointID]
			if reason == "" {
				var err error
				if reason, err = w.markFailing(ctx, tx, endpointID, now); err != nil {
					return fmt.Errorf("update endpoint health: %w", err)
				}
			}
			if reason != "" {
				changed, err := w.disable(ctx, tx, failing[endpointID], endpointID, reason)
				if err != nil {
					return err
				}
				if changed {
					disabled = append(disabled, reason)
				}
			}
		}
		if len(b.busy) > 0 {
			if _, err := tx.Exec(ctx, markBusy, slices.Compact(slices.Sorted(slices.Values(b.busy)))); err != nil {
				return fmt.Errorf("mark destinations busy: %w", err)
			}
		}
		if len(probed) > 0 {
			if _, err := tx.Exec(ctx, pauseProbed, slices.Compact(slices.Sorted(slices.Values(probed))), maxProbeInterval.Milliseconds()); err != nil {
				return fmt.Errorf("pause failing destinations: %w", err)
			}
		}
		for _, key := range slices.Sorted(maps.Keys(pauses)) { // one lock order for all workers
			if _, err := tx.Exec(ctx, pauseDestination, key, pauses[key]); err != nil {
				return fmt.Errorf("pause destination: %w", err)
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, destination := range b.busy {
		w.limiter.parkedHere(destination)
	}
	w.observe(b.sent, recorded, disabled)
	return nil
}

// recordAttempts runs the statement of that name and answers the ids it
// recorded.
func (w *Worker) recordAttempts(ctx context.Context, db events.DB, args []any) (map[string]bool, error) {
	rows, err := db.Query(ctx, recordAttempts, args...)
	if err != nil {
		return nil, fmt.Errorf("record attempts: %w", err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("record attempts: %w", err)
	}
	recorded := make(map[string]bool, len(ids))
	for _, id := range ids {
		recorded[id] = true
	}
	return recorded, nil
}

// enqueueNext writes the jobs of the next attempts of the deliveries just
// recorded as pending (at their own times; those due together share jobs),
// and of those handed back unsent, in tx.
func (w *Worker) enqueueNext(ctx context.Context, tx pgx.Tx, b *batch, recorded map[string]bool, next map[string]time.Time) error {
	type group struct {
		destination string
		at          time.Time
		handedBack  bool // unsent: still the attempt the job was made for
	}
	groups := map[group][]*target{}
	for _, a := range b.sent {
		if at, ok := next[a.deliveryID]; ok && recorded[a.deliveryID] {
			g := group{a.destination, at, false}
			groups[g] = append(groups[g], a.target)
		}
	}
	// Those handed back come back a second later, or once the pause their
	// destination asked for (a 429 or 503 with Retry-After) ends.
	later := time.Now().Add(time.Second)
	for _, t := range b.requeue {
		g := group{t.destination, maxTime(later, b.pauses[t.destination]), true}
		groups[g] = append(groups[g], t)
	}
	var jobs []river.InsertManyParams
	for g, ts := range groups {
		add, manual := 1, false
		if g.handedBack {
			add, manual = 0, b.manual
		}
		ids, counts := idsAndCounts(ts, add)
		jobs = append(jobs, deliverJobs(g.destination, ids, counts, manual, g.at)...)
	}
	if len(jobs) == 0 {
		return nil
	}
	if _, err := river.ClientFromContext[pgx.Tx](ctx).InsertManyTx(ctx, tx, jobs); err != nil {
		return fmt.Errorf("enqueue next attempts: %w", err)
	}
	return nil
}

// idsAndCounts is ts's delivery ids, and their expected attempt counts plus
// add.
func idsAndCounts(ts []*target, add int) ([]string, []int) {
	ids, counts := make([]string, len(ts)), make([]int, len(ts))
	for i, t := range ts {
		ids[i], counts[i] = t.deliveryID, t.expected+add
	}
	return ids, counts
}

// recordBatch is the columns of recordAttempts, one element per attempt.
type recordBatch struct {
	ids, statuses, urls, errs, bodies []string
	expected                          []int32
	codes                             []*int32
	durations                         []int32
	nexts                             []*time.Time
	started                           []time.Time
	errSet, bodySet                   []bool
	outcomes                          []string // outcome.class, for the statistics
	latencies                         []*int32 // latencyBucket of an attempt answered, null for the others
}

func (b *recordBatch) add(t *target, status string, next *time.Time, o *outcome) {
	b.ids, b.statuses, b.urls, b.nexts, b.started = append(b.ids, t.deliveryID), append(b.statuses, status),
		append(b.urls, t.url), append(b.nexts, next), append(b.started, o.started)
	b.expected = append(b.expected, int32(t.expected))
	b.durations = append(b.durations, int32(o.duration.Milliseconds()))
	b.errs, b.errSet = append(b.errs, o.err), append(b.errSet, o.err != "")
	var code *int32
	if o.statusCode != 0 {
		c := int32(o.statusCode)
		code = &c
	}
	b.codes = append(b.codes, code)
	// No response, no body: null rather than "".
	b.bodies, b.bodySet = append(b.bodies, o.body), append(b.bodySet, o.statusCode != 0)
	b.outcomes = append(b.outcomes, o.class())
	var latency *int32
	if o.statusCode != 0 {
		l := int32(latencyBucket(o.duration.Milliseconds()))
		latency = &l
	}
	b.latencies = append(b.latencies, latency)
}

func (b *recordBatch) args(acknowledged []string) []any {
	return []any{b.ids, b.expected, b.statuses, b.codes, b.nexts, b.urls, b.started, b.durations,
		nullable(b.errs, b.errSet), nullable(b.bodies, b.bodySet), acknowledged, b.outcomes, b.latencies}
}

// nullable is values with those not set as SQL nulls.
func nullable(values []string, set []bool) []*string {
	out := make([]*string, len(values))
	for i := range values {
		if set[i] {
			out[i] = &values[i]
		}
	}
	return out
}

// markFailing starts or continues the endpoint's failure streak, and says to
// disable it once the streak is older than failingWindow.
func (w *Worker) markFailing(ctx context.Context, tx pgx.Tx, endpointID string, now time.Time) (string, error) {
	var since time.Time
	err := tx.QueryRow(ctx, `update webhook_endpoints set failing_since = coalesce(failing_since, $2)
		where id = $1 returning failing_since`, endpointID, now).Scan(&since)
	if err != nil {
		return "", err
	}
	if now.Sub(since) >= failingWindow {
		return DisabledFailing, nil
	}
	return "", nil
}

// disable turns an endpoint off for reason and tells the merchant's other
// endpoints with webhook_endpoint.disabled, in the attempt's transaction. It
// reports whether this call turned it off: jobs of one endpoint answered 410
// at once each get here, and only the first finds it enabled, so that the
// endpoint is counted (hookline_endpoints_disabled_total), logged and
// announced once.
func (w *Worker) disable(ctx context.Context, tx pgx.Tx, scope events.Scope, endpointID, reason string) (bool, error) {
	tag, err := tx.Exec(ctx, `update webhook_endpoints set status = 'disabled', disabled_reason = $2
		where id = $1 and status = 'enabled'`, endpointID, reason)
	if err != nil {
		return false, fmt.Errorf("disable endpoint: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return false, nil // already disabled
	}
	e, err := Get(ctx, tx, scope, endpointID)
	if err != nil {
		return false, err
	}
	w.logger.WarnContext(ctx, "webhook endpoint disabled", slog.String("endpoint_id", endpointID),
		slog.String("merchant_id", scope.MerchantID), slog.String("reason", reason))
	// The event goes to the merchant's other endpoints and stays in the log:
	// the headers' names, never their values (a receiver's API key).
	e.Headers = maskedHeaders(e.Headers)
	if _, err := w.publisher.Publish(ctx, tx, scope, events.WebhookEndpointDisabled, e, ""); err != nil {
		return false, err
	}
	return true, nil
}
