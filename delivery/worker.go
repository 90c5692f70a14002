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

	"github.com/hookline/hookline/events"
)

// Version is hookline's version, sent as user-agent: hookline/<version>. The
// build sets it with -ldflags -X.
var Version = "dev"

const (
	// responseExcerpt is how much of a receiver's response body is kept.
	responseExcerpt = 4 << 10
	// circuitAfter is how long an endpoint must fail every attempt before
	// only one attempt at a time probes it: a streak, not a single blip.
	circuitAfter = 30 * time.Second
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
	// (HOOKLINE_ENDPOINT_CONCURRENCY, default 20).
	InFlight  int
	Keyring   *events.Keyring
	Logger    *slog.Logger
	Metrics   *Metrics
	Pool      *pgxpool.Pool
	Publisher *events.Publisher
	Schedule  Schedule
	Timeout   time.Duration
}

// Worker makes delivery attempts: it is the River worker of DeliverArgs.
type Worker struct {
	river.WorkerDefaults[DeliverArgs]
	client    *http.Client
	inflight  *inflight
	keyring   *events.Keyring
	logger    *slog.Logger
	metrics   *Metrics
	pool      *pgxpool.Pool
	publisher *events.Publisher
	schedule  Schedule
	timeout   time.Duration
}

// NewWorker returns the delivery worker.
func NewWorker(cfg WorkerConfig) *Worker {
	return &Worker{
		client:    newHTTPClient(cfg.Guard),
		inflight:  newInflight(cmp.Or(cfg.InFlight, 20)),
		keyring:   cfg.Keyring,
		logger:    cfg.Logger,
		metrics:   cfg.Metrics,
		pool:      cfg.Pool,
		publisher: cfg.Publisher,
		schedule:  cfg.Schedule,
		timeout:   cfg.Timeout,
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

// Timeout leaves the attempts their whole HTTP timeout (they run side by
// side) plus time to record them.
func (w *Worker) Timeout(*river.Job[DeliverArgs]) time.Duration { return w.timeout + 5*time.Second }

// target is everything one attempt needs, read with the job's other targets
// in one query.
type target struct {
	deliveryID     string
	status         string
	attemptCount   int
	recorded       bool // this job already recorded an attempt of it
	url            string
	eventID        string
	eventCreated   time.Time
	payload        []byte
	scope          events.Scope
	endpointID     *string
	endpointType   string
	displayName    string
	endpointStatus *string
	failing        bool
	deleted        bool
	scheme         string // SchemeHMAC or SchemeEd25519
	secrets        []string
}

// destination is the key of the target's in-flight cap: its endpoint, or for
// a checkout's own webhook_url (no endpoint) the URL.
func (t *target) destination() string {
	if t.endpointID != nil {
		return *t.endpointID
	}
	return t.url
}

// loadTargets reads a job's deliveries with what sending them needs.
const loadTargets = `select d.id, d.status, d.attempt_count, coalesce(d.attempted_by_job = $3, false),
		coalesce(w.url, d.url), e.id, e.created_at, e.payload,
		d.merchant_id, d.livemode, w.id, coalesce(w.type, 'webhook'), coalesce(w.display_name, m.name), w.status,
		coalesce(w.failing_since < now() - $2::interval, false), w.deleted_at is not null, coalesce(w.signature_scheme, 'hmac'), w.secret, w.previous_secret, w.previous_secret_expires_at,
		case when d.livemode then m.webhook_secret else m.test_webhook_secret end
		from deliveries d
		join events e on e.id = d.event_id
		join merchants m on m.id = d.merchant_id
		left join webhook_endpoints w on w.id = d.endpoint_id
		where d.id = any($1)`

func (w *Worker) load(ctx context.Context, ids []string, jobID int64) ([]*target, error) {
	rows, err := w.pool.Query(ctx, loadTargets, ids, circuitAfter, jobID)
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
		if err := row.Scan(&t.deliveryID, &t.status, &t.attemptCount, &t.recorded, &t.url, &t.eventID, &t.eventCreated, &t.payload,
			&t.scope.MerchantID, &t.scope.Livemode, &t.endpointID, &t.endpointType, &t.displayName, &t.endpointStatus, &t.failing, &t.deleted,
			&t.scheme, &s.endpoint, &s.previous, &s.previousExpires, &s.account); err != nil {
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
			return nil, fmt.Errorf("load deliveries: %w", err)
		}
	}
	return targets, nil
}

// sealedSecrets is a target's secrets as stored.
type sealedSecrets struct {
	endpoint, previous, account *string
	previousExpires             *time.Time
}

// openSecrets decrypts the secrets an attempt signs with: the endpoint's (and
// its previous one during a rotation's grace period), or for a checkout's own
// webhook_url the account's secret of the delivery's mode, never the other
// mode's (a test key can read the test secret).
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
	if s.previous != nil && s.previousExpires != nil && s.previousExpires.After(time.Now()) {
		old, err := w.keyring.Open(*t.endpointID, *s.previous)
		if err != nil {
			return err
		}
		t.secrets = append(t.secrets, old)
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

// result is one target of the job with what became of it: sent (outcome
// set), or deferred for snooze without an attempt.
type result struct {
	*target
	outcome *outcome
	snooze  time.Duration
	final   bool // the attempt settled the delivery: succeeded or failed
}

// observe counts recorded attempts, and endpoints disabled with them, in the
// metrics: only once they are written.
func (w *Worker) observe(results []*result, disabled []string) {
	for _, a := range results {
		if a.outcome != nil {
			w.metrics.observe(a.outcome, a.final, a.attemptCount+1, a.eventCreated)
		}
	}
	for _, reason := range disabled {
		w.metrics.disabled.WithLabelValues(reason).Inc()
	}
}

// Work makes one attempt of each of the job's deliveries, side by side, and
// records them all together. A delivery this job already recorded (the job
// is running again after its process died) is skipped, as is, for an
// automatic job, one acknowledged meanwhile; one whose endpoint was disabled
// or deleted is marked failed without an attempt.
func (w *Worker) Work(ctx context.Context, job *river.Job[DeliverArgs]) error {
	targets, err := w.load(ctx, job.Args.ids(), job.ID)
	if err != nil {
		return err
	}
	var send, abandoned []*target
	for _, t := range targets {
		switch {
		case t.recorded:
		case job.Args.Manual:
			send = append(send, t)
		case t.status == StatusSucceeded:
		case t.endpointID != nil && (t.deleted || *t.endpointStatus != EndpointEnabled):
			abandoned = append(abandoned, t)
		default:
			send = append(send, t)
		}
	}
	results := make([]*result, len(send))
	var wg sync.WaitGroup
	for i, t := range send {
		a := &result{target: t}
		results[i] = a
		wg.Go(func() {
			release, snooze, ok := w.inflight.acquire(ctx, t.destination(), t.failing)
			if !ok {
				a.snooze = snooze
				return
			}
			defer release()
			o := w.send(ctx, t)
			if ctx.Err() != nil && o.err != "" {
				// The worker is shutting down mid-request: put the delivery
				// back without recording or spending an attempt; another
				// process takes it up.
				return
			}
			a.outcome = o
		})
	}
	wg.Wait()
	return w.record(context.WithoutCancel(ctx), job, results, abandoned)
}

// send makes the HTTP request of one attempt.
func (w *Worker) send(ctx context.Context, t *target) *outcome {
	o := &outcome{started: time.Now()}
	defer func() { o.duration = time.Since(o.started) }()

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
	o.body = strings.ToValidUTF8(strings.ReplaceAll(string(excerpt), "\x00", ""), "\uFFFD")
	// Drain a little more so the connection can be reused; never much.
	_, _ = io.Copy(io.Discard, io.LimitReader(res.Body, 64<<10))
	if !o.acknowledged() {
		o.err = fmt.Sprintf("HTTP %d", res.StatusCode)
	}
	return o
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

// recordAttempts writes a job's attempts: each delivery's new state, its
// attempt row numbered from the delivery's count, and, for destinations that
// acknowledged, the end of their endpoint's failure streak (taking an
// endpoint's row lock only when there is a streak to end: every acknowledged
// attempt taking it would serialize the workers).
const recordAttempts = `with i as (
		select * from unnest($1::text[], $2::text[], $3::int[], $4::timestamptz[], $5::text[], $6::timestamptz[],
			$7::int[], $8::text[], $9::text[])
			as i (id, status, status_code, next_attempt_at, url, started_at, duration_ms, error, response_body)
	), d as (
		update deliveries d set attempt_count = d.attempt_count + 1, status = i.status, last_status_code = i.status_code,
			next_attempt_at = i.next_attempt_at, url = i.url, attempted_by_job = $10, updated_at = now()
		from i where d.id = i.id returning d.id, d.attempt_count
	), a as (
		insert into delivery_attempts (delivery_id, attempt, started_at, duration_ms, status_code, error, response_body)
		select d.id, d.attempt_count, i.started_at, i.duration_ms, i.status_code, i.error, i.response_body
		from d join i on i.id = d.id
	)
	update webhook_endpoints set failing_since = null where id = any($11) and failing_since is not null`

// record writes the job's attempts and their consequences: in one statement
// when every attempt was acknowledged, otherwise in one transaction with the
// jobs of the next attempts (the schedule with jitter, or a later
// Retry-After), the jobs of deferred deliveries, the failure of abandoned
// ones, and the health of endpoints that failed (a failure streak,
// disabling, webhook_endpoint.disabled). River completes the job when Work
// returns nil; if the process dies before that, the job runs again and skips
// what it recorded here.
func (w *Worker) record(ctx context.Context, job *river.Job[DeliverArgs], results []*result, abandoned []*target) error {
	now := time.Now()
	number := job.Args.attemptNumber(job)
	exhausted := number >= w.schedule.MaxAttempts()
	// One jittered time for the job's failures: they failed together, and
	// retry together in one job unless a receiver asked for later.
	scheduled := w.schedule.Next(now, number, time.Time{})
	var b recordBatch
	retryAt := map[time.Time][]string{}
	failing := map[string]events.Scope{}
	disable := map[string]string{}
	later := map[string]*deferral{}
	for _, a := range results {
		o := a.outcome
		if o == nil {
			// Deferred (its destination busy, or the process stopping): the
			// same attempt again later, in one job per destination.
			d := later[a.destination()]
			if d == nil {
				d = &deferral{at: now.Add(a.snooze)}
				later[a.destination()] = d
			}
			d.ids = append(d.ids, a.deliveryID)
			continue
		}
		status := a.status
		var next *time.Time
		switch {
		case o.acknowledged():
			status = StatusSucceeded
			if a.endpointID != nil {
				b.acknowledged = append(b.acknowledged, *a.endpointID)
			}
		case o.statusCode == http.StatusGone && a.endpointID != nil:
			status, disable[*a.endpointID] = StatusFailed, DisabledGone
		case job.Args.Manual:
			// One attempt only: an automatic chain still running keeps the
			// delivery pending, and an acknowledged delivery stays acknowledged.
		case exhausted:
			status = StatusFailed
		default:
			status = StatusPending
			notBefore := retryAfter(o.statusCode, o.header, now)
			if a.endpointType == TypeDiscord {
				notBefore = maxTime(notBefore, discordRetryAfter(o.statusCode, o.body, now))
			}
			at := maxTime(scheduled, notBefore)
			next = &at
			retryAt[at] = append(retryAt[at], a.deliveryID)
		}
		if !o.acknowledged() && a.endpointID != nil {
			failing[*a.endpointID] = a.scope
		}
		b.add(a.target, status, next, o)
		a.final = status != StatusPending
	}
	// The jobs of the next attempts, and of the deferred ones (the same
	// attempt again).
	var jobs []river.InsertManyParams
	for at, ids := range retryAt {
		jobs = append(jobs, retryJob(ids, number+1, false, at))
	}
	for _, d := range later {
		jobs = append(jobs, retryJob(d.ids, number, job.Args.Manual, d.at))
	}
	args := b.args(job.ID)
	if len(failing) == 0 && len(jobs) == 0 && len(abandoned) == 0 {
		if len(b.ids) == 0 {
			return nil
		}
		// The common case: every attempt acknowledged, in one statement.
		if _, err := w.pool.Exec(ctx, recordAttempts, args...); err != nil {
			return fmt.Errorf("record attempts: %w", err)
		}
		w.observe(results, nil)
		return nil
	}
	var disabled []string
	err := pgx.BeginFunc(ctx, w.pool, func(tx pgx.Tx) error {
		if len(b.ids) > 0 {
			if _, err := tx.Exec(ctx, recordAttempts, args...); err != nil {
				return fmt.Errorf("record attempts: %w", err)
			}
		}
		if len(abandoned) > 0 {
			ids := make([]string, len(abandoned))
			for i, t := range abandoned {
				ids[i] = t.deliveryID
			}
			if _, err := tx.Exec(ctx, `update deliveries set status = 'failed', next_attempt_at = null, updated_at = now()
				where id = any($1)`, ids); err != nil {
				return fmt.Errorf("abandon deliveries: %w", err)
			}
		}
		if len(jobs) > 0 {
			if _, err := river.ClientFromContext[pgx.Tx](ctx).InsertManyTx(ctx, tx, jobs); err != nil {
				return fmt.Errorf("enqueue next attempts: %w", err)
			}
		}
		for _, endpointID := range slices.Sorted(maps.Keys(failing)) { // one lock order for all workers
			reason := disable[endpointID]
			if reason == "" {
				var err error
				if reason, err = w.markFailing(ctx, tx, endpointID, now); err != nil {
					return fmt.Errorf("update endpoint health: %w", err)
				}
			}
			if reason != "" {
				if err := w.disable(ctx, tx, failing[endpointID], endpointID, reason); err != nil {
					return err
				}
				disabled = append(disabled, reason)
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	w.observe(results, disabled)
	return nil
}

// deferral is the deliveries of one destination put off until at.
type deferral struct {
	ids []string
	at  time.Time
}

// retryJob is the job of attempt number of deliveries, at at.
func retryJob(ids []string, number int, manual bool, at time.Time) river.InsertManyParams {
	return river.InsertManyParams{Args: DeliverArgs{DeliveryIDs: ids, Attempt: number, Manual: manual}, InsertOpts: deliverOpts(at)}
}

// recordBatch is the columns of recordAttempts, one element per attempt.
type recordBatch struct {
	ids, statuses, urls, errs, bodies []string
	codes                             []*int32
	durations                         []int32
	nexts                             []*time.Time
	started                           []time.Time
	errSet, bodySet                   []bool
	acknowledged                      []string
}

func (b *recordBatch) add(t *target, status string, next *time.Time, o *outcome) {
	b.ids, b.statuses, b.urls, b.nexts, b.started = append(b.ids, t.deliveryID), append(b.statuses, status),
		append(b.urls, t.url), append(b.nexts, next), append(b.started, o.started)
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
}

func (b *recordBatch) args(jobID int64) []any {
	return []any{b.ids, b.statuses, b.codes, b.nexts, b.urls, b.started, b.durations,
		nullable(b.errs, b.errSet), nullable(b.bodies, b.bodySet), jobID, b.acknowledged}
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
// endpoints with webhook_endpoint.disabled, in the attempt's transaction.
func (w *Worker) disable(ctx context.Context, tx pgx.Tx, scope events.Scope, endpointID, reason string) error {
	tag, err := tx.Exec(ctx, `update webhook_endpoints set status = 'disabled', disabled_reason = $2
		where id = $1 and status = 'enabled'`, endpointID, reason)
	if err != nil {
		return fmt.Errorf("disable endpoint: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return nil // already disabled
	}
	e, err := Get(ctx, tx, scope, endpointID)
	if err != nil {
		return err
	}
	w.logger.WarnContext(ctx, "webhook endpoint disabled", slog.String("endpoint_id", endpointID),
		slog.String("merchant_id", scope.MerchantID), slog.String("reason", reason))
	_, err = w.publisher.Publish(ctx, tx, scope, events.WebhookEndpointDisabled, e, "")
	return err
}
