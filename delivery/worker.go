package delivery

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"

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

// Timeout leaves the attempt its whole HTTP timeout plus time to record it.
func (w *Worker) Timeout(*river.Job[DeliverArgs]) time.Duration { return w.timeout + 5*time.Second }

// NextRetry is the time Work stored on the delivery as next_attempt_at.
func (w *Worker) NextRetry(job *river.Job[DeliverArgs]) time.Time { return job.Args.nextRetry }

// target is everything one attempt needs, read in one query.
type target struct {
	deliveryID     string
	status         string
	attemptCount   int
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
	secrets        []string
}

func (w *Worker) load(ctx context.Context, id string) (*target, error) {
	t := &target{deliveryID: id}
	var secret, accountSecret string
	var previous *string
	var previousExpires *time.Time
	var endpointSecret *string
	err := w.pool.QueryRow(ctx, `select d.status, d.attempt_count, coalesce(w.url, d.url), e.id, e.created_at, e.payload,
		d.merchant_id, d.livemode, w.id, coalesce(w.type, 'webhook'), coalesce(w.display_name, m.name), w.status,
		coalesce(w.failing_since < now() - $2::interval, false), w.deleted_at is not null, w.secret, w.previous_secret, w.previous_secret_expires_at, m.webhook_secret
		from deliveries d
		join events e on e.id = d.event_id
		join merchants m on m.id = d.merchant_id
		left join webhook_endpoints w on w.id = d.endpoint_id
		where d.id = $1`, id, circuitAfter).Scan(&t.status, &t.attemptCount, &t.url, &t.eventID, &t.eventCreated, &t.payload,
		&t.scope.MerchantID, &t.scope.Livemode, &t.endpointID, &t.endpointType, &t.displayName, &t.endpointStatus, &t.failing, &t.deleted,
		&endpointSecret, &previous,
		&previousExpires, &accountSecret)
	if err != nil {
		return nil, events.WrapNotFound(err, "load delivery")
	}
	switch {
	case endpointSecret != nil:
		secret, err = w.keyring.Open(*t.endpointID, *endpointSecret)
	default:
		secret, err = w.keyring.Open(t.scope.MerchantID, accountSecret) // a checkout's own webhook_url
	}
	if err != nil {
		return nil, err
	}
	t.secrets = []string{secret}
	if previous != nil && previousExpires != nil && previousExpires.After(time.Now()) {
		old, err := w.keyring.Open(*t.endpointID, *previous)
		if err != nil {
			return nil, err
		}
		t.secrets = append(t.secrets, old)
	}
	return t, nil
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

// Work makes one attempt of a delivery and records it.
func (w *Worker) Work(ctx context.Context, job *river.Job[DeliverArgs]) error {
	t, err := w.load(ctx, job.Args.DeliveryID)
	if errors.Is(err, events.ErrNotFound) {
		return river.JobCancel(fmt.Errorf("delivery %s does not exist", job.Args.DeliveryID))
	}
	if err != nil {
		return err
	}
	if !job.Args.Manual {
		if t.status == StatusSucceeded {
			return nil // acknowledged meanwhile through a manual retry
		}
		if t.endpointID != nil && (t.deleted || *t.endpointStatus != EndpointEnabled) {
			return w.abandon(ctx, t, job)
		}
	}

	// A checkout's own webhook_url has no endpoint: its URL is the destination.
	dest := t.url
	if t.endpointID != nil {
		dest = *t.endpointID
	}
	release, snooze, ok := w.inflight.acquire(dest, t.failing)
	if !ok {
		return river.JobSnooze(snooze)
	}
	defer release()

	o := w.send(ctx, t)
	if ctx.Err() != nil && o.err != "" {
		// The worker is shutting down mid-request: release the job without
		// recording or spending an attempt; another process takes it up.
		return river.JobSnooze(0)
	}
	return w.record(context.WithoutCancel(ctx), t, job, o)
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
		sig, err := signatureHeader(t.secrets, t.eventID, o.started, body)
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

// abandon ends the retries of a delivery whose endpoint was disabled or
// deleted: it is marked failed, visibly and retryable, without an attempt.
func (w *Worker) abandon(ctx context.Context, t *target, job *river.Job[DeliverArgs]) error {
	return pgx.BeginFunc(ctx, w.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `update deliveries set status = 'failed', next_attempt_at = null, updated_at = now()
			where id = $1`, t.deliveryID); err != nil {
			return fmt.Errorf("abandon delivery: %w", err)
		}
		_, err := river.JobCompleteTx[*riverpgxv5.Driver](ctx, tx, job)
		return err
	})
}

// recordAttempt writes one attempt: the delivery's new state, the attempt
// row numbered from the delivery's count, and, when the attempt was
// acknowledged, the end of its endpoint's failure streak (taking the
// endpoint's row lock only when there is a streak to end: every acknowledged
// attempt taking it would serialize the workers).
const recordAttempt = `with d as (
		update deliveries set attempt_count = attempt_count + 1, status = $2, last_status_code = $3,
			next_attempt_at = $4, url = $5, updated_at = now()
		where id = $1 returning attempt_count
	), a as (
		insert into delivery_attempts (delivery_id, attempt, started_at, duration_ms, status_code, error, response_body)
		select $1, d.attempt_count, $6, $7, $3, $8, $9 from d
	)
	update webhook_endpoints set failing_since = null
	where id = $10 and $2 = 'succeeded' and failing_since is not null`

// record writes the attempt and its consequences, in one statement when it
// was acknowledged, in one transaction when the endpoint's health changes
// with it (a failure streak, disabling, webhook_endpoint.disabled). River
// completes the job when Work returns nil: if the process dies before that,
// the rescued job finds the delivery succeeded and sends nothing again. A
// failed automatic attempt returns an error so that River schedules the next.
func (w *Worker) record(ctx context.Context, t *target, job *river.Job[DeliverArgs], o *outcome) error {
	now := time.Now()
	exhausted := job.Attempt >= job.MaxAttempts
	status := t.status
	var next *time.Time
	var disable string
	switch {
	case o.acknowledged():
		status = StatusSucceeded
	case o.statusCode == http.StatusGone && t.endpointID != nil:
		status, disable = StatusFailed, DisabledGone
	case job.Args.Manual:
		// One attempt only: an automatic chain still running keeps the delivery
		// pending, and an acknowledged delivery stays acknowledged.
	case exhausted:
		status = StatusFailed
	default:
		status = StatusPending
		notBefore := retryAfter(o.statusCode, o.header, now)
		if t.endpointType == TypeDiscord {
			notBefore = maxTime(notBefore, discordRetryAfter(o.statusCode, o.body, now))
		}
		n := w.schedule.Next(now, job.Attempt, notBefore)
		next, job.Args.nextRetry = &n, n
	}

	var statusCode *int
	if o.statusCode != 0 {
		statusCode = &o.statusCode
	}
	var errText, body *string
	if o.err != "" {
		errText = &o.err
	}
	if o.statusCode != 0 {
		body = &o.body // no response, no body: null rather than ""
	}
	args := []any{t.deliveryID, status, statusCode, next, t.url, o.started, o.duration.Milliseconds(), errText, body, t.endpointID}
	var err error
	if o.acknowledged() || t.endpointID == nil {
		// The common case is one statement: the attempt, the delivery's new
		// state and, on a 2xx, the end of the endpoint's failure streak.
		_, err = w.pool.Exec(ctx, recordAttempt, args...)
	} else {
		err = pgx.BeginFunc(ctx, w.pool, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, recordAttempt, args...); err != nil {
				return err
			}
			if disable == "" {
				var err error
				if disable, err = w.markFailing(ctx, tx, *t.endpointID, now); err != nil {
					return fmt.Errorf("update endpoint health: %w", err)
				}
			}
			if disable != "" {
				return w.disable(ctx, tx, t.scope, *t.endpointID, disable)
			}
			return nil
		})
	}
	if err != nil {
		return fmt.Errorf("record attempt: %w", err)
	}
	w.metrics.observe(o, status != StatusPending, t.attemptCount+1, t.eventCreated)
	if disable != "" {
		w.metrics.disabled.WithLabelValues(disable).Inc()
	}
	if o.acknowledged() || job.Args.Manual || disable != "" {
		return nil
	}
	return fmt.Errorf("attempt %d of delivery %s failed: %s", job.Attempt, t.deliveryID, o.err)
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
