package delivery_test

import (
	"cmp"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/hookline/hookline/delivery"
	"github.com/hookline/hookline/events"
	"github.com/hookline/hookline/migrations/dbtest"
	"github.com/hookline/hookline/schema/schematest"
)

// env is the delivery engine as `hookline serve` runs it, on a fresh schema,
// with a running River client and one merchant in test mode.
type env struct {
	t          *testing.T
	pool       *pgxpool.Pool
	merchant   *events.NewMerchant
	scope      events.Scope
	service    *events.Service
	endpoints  *delivery.Endpoints
	dispatcher *delivery.Dispatcher
	registry   *prometheus.Registry
	// client is the running River client, which a test may stop and start
	// again as a process that dies and restarts.
	client *river.Client[pgx.Tx]
}

func newEnv(t *testing.T, schedule delivery.Schedule, timeout time.Duration) *env {
	t.Helper()
	return newEnvWith(t, envOptions{schedule: schedule, timeout: timeout})
}

// envOptions vary the engine under test: workerGuard is what the worker dials
// through (endpoints are still registered under development rules, as a URL
// that passed registration and later points somewhere private would be),
// workers the delivery queue's size, inFlight the cap per destination, log
// where the engine's log goes (nowhere when nil).
type envOptions struct {
	log         io.Writer
	schedule    delivery.Schedule
	timeout     time.Duration
	workerGuard *delivery.Guard
	workers     int
	inFlight    int
}

func newEnvWith(t *testing.T, o envOptions) *env {
	t.Helper()
	schedule, timeout, workerGuard := o.schedule, o.timeout, o.workerGuard
	if workerGuard == nil {
		workerGuard = delivery.NewGuard(false)
	}
	pool := dbtest.NewPool(t)
	driver := riverpgxv5.New(pool)
	inserter, err := river.NewClient(driver, &river.Config{})
	if err != nil {
		t.Fatal(err)
	}
	guard, keyring := delivery.NewGuard(false), dbtest.Keyring(t)
	dispatcher := delivery.NewDispatcher(inserter, nil)
	publisher := events.NewPublisher(dispatcher)
	logger := slog.New(slog.NewTextHandler(cmp.Or[io.Writer](o.log, io.Discard), nil))
	registry := prometheus.NewRegistry()
	metrics := delivery.NewMetrics(registry, pool, logger)
	workers := river.NewWorkers()
	river.AddWorker(workers, delivery.NewRecoverWorker(pool, dispatcher, logger))
	river.AddWorker(workers, delivery.NewReplayWorker(pool, dispatcher, logger))
	river.AddWorker(workers, delivery.NewReleaseWorker(pool, logger, cmp.Or(o.inFlight, 20)))
	river.AddWorker(workers, delivery.NewWorker(delivery.WorkerConfig{
		Guard: workerGuard, InFlight: o.inFlight, Keyring: keyring, Logger: logger, Metrics: metrics, Pool: pool, Publisher: publisher, Schedule: schedule, Timeout: timeout,
	}))
	client, err := river.NewClient(driver, &river.Config{
		FetchCooldown:     10 * time.Millisecond,
		FetchPollInterval: 20 * time.Millisecond,
		Logger:            logger,
		Queues: map[string]river.QueueConfig{
			river.QueueDefault:     {MaxWorkers: 2},
			delivery.QueueDelivery: {MaxWorkers: cmp.Or(o.workers, 20)},
		},
		PeriodicJobs: []*river.PeriodicJob{river.NewPeriodicJob(river.PeriodicInterval(delivery.ReleaseInterval),
			func() (river.JobArgs, *river.InsertOpts) { return delivery.ReleaseArgs{}, nil }, nil)},
		Workers: workers,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := client.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = client.Stop(context.Background()) })
	m := dbtest.Merchant(t, pool, "New project")
	return &env{
		t: t, pool: pool, merchant: m, scope: events.Scope{MerchantID: m.ID},
		service: events.NewService(publisher), endpoints: delivery.NewEndpoints(guard, keyring, 50), dispatcher: dispatcher,
		registry: registry, client: client,
	}
}

// tx runs f in a committed transaction.
func (e *env) tx(f func(tx pgx.Tx) error) {
	e.t.Helper()
	if err := pgx.BeginFunc(context.Background(), e.pool, f); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) endpoint(url string, enabled []string) *delivery.Endpoint {
	e.t.Helper()
	checked, err := e.endpoints.Check(context.Background(), delivery.EndpointParams{URL: url, EnabledEvents: enabled})
	if err != nil {
		e.t.Fatal(err)
	}
	var ep *delivery.Endpoint
	e.tx(func(tx pgx.Tx) (err error) {
		ep, err = e.endpoints.Create(context.Background(), tx, e.scope, checked)
		return err
	})
	return ep
}

// pay runs a whole payment: checkout (with webhookURL, if any), attempt,
// succeed. Events: checkout.created, payment_attempt.created,
// payment_attempt.succeeded, checkout.paid.
func (e *env) pay(webhookURL *string) {
	e.t.Helper()
	e.payIn(e.scope, webhookURL)
}

// payIn runs pay's payment in a scope (a mode of the merchant).
func (e *env) payIn(scope events.Scope, webhookURL *string) {
	e.t.Helper()
	ctx := context.Background()
	e.tx(func(tx pgx.Tx) error {
		c, err := e.service.CreateCheckout(ctx, tx, scope, events.CheckoutParams{
			Amount: "860000000", InvoiceCurrency: "sol", WebhookURL: webhookURL,
		})
		if err != nil {
			return err
		}
		a, err := e.service.CreateAttempt(ctx, tx, scope, c.ID, events.AttemptParams{})
		if err != nil {
			return err
		}
		_, err = e.service.TransitionAttempt(ctx, tx, scope, a.ID, events.AttemptSucceeded, nil)
		return err
	})
}

// waitDeliveries waits until no delivery is pending and returns them all.
func (e *env) waitDeliveries() []*delivery.Delivery {
	e.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		var pending int
		if err := e.pool.QueryRow(context.Background(), `select count(*) from deliveries where status = 'pending'`).Scan(&pending); err != nil {
			e.t.Fatal(err)
		}
		if pending == 0 {
			break
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("%d deliveries still pending after 60s", pending)
		}
		time.Sleep(20 * time.Millisecond)
	}
	list, err := delivery.ListDeliveries(context.Background(), e.pool, e.scope, delivery.DeliveryFilter{}, events.Page{Limit: 100})
	if err != nil {
		e.t.Fatal(err)
	}
	var out []*delivery.Delivery
	for _, d := range list.Data {
		full, err := delivery.GetDelivery(context.Background(), e.pool, &e.scope, d.ID)
		if err != nil {
			e.t.Fatal(err)
		}
		out = append(out, full)
	}
	return out
}

// request is one delivery attempt as a receiver saw it.
type request struct {
	at     time.Time
	header http.Header
	body   []byte
}

// receiver is a loopback HTTP server that records every request, verifies its
// signature with the Standard Webhooks library, and answers as respond says.
type receiver struct {
	t       *testing.T
	srv     *httptest.Server
	mu      sync.Mutex
	reqs    []request
	secrets []string
	respond func(n int, w http.ResponseWriter) // n: 1 for the first request
}

func newReceiver(t *testing.T, respond func(n int, w http.ResponseWriter)) *receiver {
	r := &receiver{t: t, respond: respond}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		r.reqs = append(r.reqs, request{at: time.Now(), header: req.Header.Clone(), body: body})
		n, secrets := len(r.reqs), slices.Clone(r.secrets)
		r.mu.Unlock()
		for _, s := range secrets {
			wh, err := standardwebhooks.NewWebhook(s)
			if err != nil {
				t.Errorf("receiver secret: %v", err)
			} else if err := wh.Verify(body, req.Header); err != nil {
				t.Errorf("request %d does not verify with %.12s…: %v", n, s, err)
			}
		}
		if respond == nil {
			w.WriteHeader(http.StatusOK)
			return
		}
		respond(n, w)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

// verifyWith makes the receiver check every request against each secret.
func (r *receiver) verifyWith(secrets ...string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.secrets = secrets
}

func (r *receiver) requests() []request {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.reqs)
}

// types lists the event types of the requests received, in arrival order,
// checking each body against its event schema.
func (r *receiver) types() []string {
	var types []string
	for _, req := range r.requests() {
		var e struct{ Type string }
		if err := json.Unmarshal(req.body, &e); err != nil {
			r.t.Fatalf("delivery body is not JSON: %s", req.body)
		}
		schematest.Event(r.t, e.Type, req.body)
		if req.header.Get("webhook-id") == "" || req.header.Get("user-agent") != "hookline/dev" ||
			req.header.Get("content-type") != "application/json" {
			r.t.Errorf("headers %v", req.header)
		}
		types = append(types, e.Type)
	}
	slices.Sort(types)
	return types
}

func sorted(s ...string) []string {
	slices.Sort(s)
	return s
}

var fast = delivery.Schedule{50 * time.Millisecond, 50 * time.Millisecond, 50 * time.Millisecond}

func TestSubscriptions(t *testing.T) {
	t.Parallel()

	e := newEnv(t, fast, 5*time.Second)
	defaults, explicit, all, other := newReceiver(t, nil), newReceiver(t, nil), newReceiver(t, nil), newReceiver(t, nil)
	for _, pair := range []struct {
		r       *receiver
		enabled []string
	}{
		{defaults, nil},
		{explicit, []string{"checkout.created", "checkout.paid"}},
		{all, []string{"*"}},
		{other, []string{"checkout.expired"}},
	} {
		pair.r.verifyWith(e.endpoint(pair.r.srv.URL, pair.enabled).Secret)
	}
	e.pay(nil)
	e.waitDeliveries()

	tests := []struct {
		name string
		r    *receiver
		want []string
	}{
		{"no enabled_events: the default-on types, not checkout.created", defaults,
			sorted("payment_attempt.created", "payment_attempt.succeeded", "checkout.paid")},
		{"an explicit list: exactly those, default-off included", explicit, sorted("checkout.created", "checkout.paid")},
		{"*: everything", all, sorted("checkout.created", "payment_attempt.created", "payment_attempt.succeeded", "checkout.paid")},
		{"a list none of the events is on", other, nil},
	}
	for _, tt := range tests {
		if got := tt.r.types(); !slices.Equal(got, tt.want) {
			t.Errorf("%s: received %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestCheckoutWebhookURL(t *testing.T) {
	t.Parallel()

	e := newEnv(t, fast, 5*time.Second)
	r := newReceiver(t, nil)
	r.verifyWith(e.merchant.TestWebhookSecret) // the account's secret of the mode signs a checkout's own URL
	url := r.srv.URL + "/checkout-hook"
	e.pay(&url)
	deliveries := e.waitDeliveries()

	want := sorted("payment_attempt.created", "payment_attempt.succeeded", "checkout.paid")
	if got := r.types(); !slices.Equal(got, want) {
		t.Fatalf("webhook_url received %v, want the default-on %v", got, want)
	}
	for _, d := range deliveries {
		if d.Endpoint != nil || d.URL != url || d.Status != delivery.StatusSucceeded {
			t.Errorf("delivery %+v: want endpoint null, url %s, succeeded", d, url)
		}
		b, _ := json.Marshal(d)
		schematest.Object(t, "delivery", b)
	}
}

// TestTestKeyCannotSignLiveDeliveries pays a checkout in each mode, each with
// its own webhook_url: live deliveries verify with the account's live secret
// and with nothing a test key can read (the account as a test key reads it,
// a test endpoint's secret); test deliveries verify with the test secret
// only.
func TestTestKeyCannotSignLiveDeliveries(t *testing.T) {
	t.Parallel()

	e := newEnv(t, fast, 5*time.Second)
	ctx := context.Background()
	live := events.Scope{MerchantID: e.merchant.ID, Livemode: true}
	liveReceiver, testReceiver := newReceiver(t, nil), newReceiver(t, nil)
	liveReceiver.verifyWith(e.merchant.WebhookSecret)
	testReceiver.verifyWith(e.merchant.TestWebhookSecret)
	testAccount, err := events.GetMerchant(ctx, e.pool, dbtest.Keyring(t), e.scope)
	if err != nil {
		t.Fatal(err)
	}
	readable := []string{testAccount.WebhookSecret, e.endpoint(newReceiver(t, nil).srv.URL, nil).Secret}

	liveURL, testURL := liveReceiver.srv.URL+"/live", testReceiver.srv.URL+"/test"
	e.payIn(live, &liveURL)
	e.pay(&testURL)
	e.waitDeliveries()
	if len(liveReceiver.requests()) == 0 || len(testReceiver.requests()) == 0 {
		t.Fatalf("%d live and %d test requests, want some of each", len(liveReceiver.requests()), len(testReceiver.requests()))
	}
	for _, req := range liveReceiver.requests() {
		for _, secret := range readable {
			wh, err := standardwebhooks.NewWebhook(secret)
			if err != nil {
				t.Fatal(err)
			}
			if err := wh.Verify(req.body, req.header); err == nil {
				t.Fatal("a secret a test key can read verifies a live delivery")
			}
		}
	}
	liveSecret, _ := standardwebhooks.NewWebhook(e.merchant.WebhookSecret)
	for _, req := range testReceiver.requests() {
		if err := liveSecret.Verify(req.body, req.header); err == nil {
			t.Fatal("the live secret signs a test delivery")
		}
	}
}

// TestTestDeliveriesOfAnEarlierMerchant starts from a merchant as migration
// 006 leaves one created before it (no test secret yet): its test-mode
// checkout deliveries are signed with a test secret made on first use, the
// one a test key then reads, and never with the live secret.
func TestTestDeliveriesOfAnEarlierMerchant(t *testing.T) {
	t.Parallel()

	e := newEnv(t, fast, 5*time.Second)
	ctx := context.Background()
	if _, err := e.pool.Exec(ctx, `update merchants set test_webhook_secret = null where id = $1`, e.merchant.ID); err != nil {
		t.Fatal(err)
	}
	r := newReceiver(t, nil)
	url := r.srv.URL + "/checkout-hook"
	e.pay(&url)
	e.waitDeliveries()
	account, err := events.GetMerchant(ctx, e.pool, dbtest.Keyring(t), e.scope)
	if err != nil {
		t.Fatal(err)
	}
	if account.WebhookSecret == e.merchant.WebhookSecret {
		t.Fatal("the test secret made on first use is the live secret")
	}
	reqs := r.requests()
	if len(reqs) == 0 {
		t.Fatal("no delivery")
	}
	made, _ := standardwebhooks.NewWebhook(account.WebhookSecret)
	live, _ := standardwebhooks.NewWebhook(e.merchant.WebhookSecret)
	for _, req := range reqs {
		if err := made.Verify(req.body, req.header); err != nil {
			t.Errorf("a test delivery does not verify with the test secret a test key reads: %v", err)
		}
		if err := live.Verify(req.body, req.header); err == nil {
			t.Error("the live secret verifies a test delivery")
		}
	}
}

func TestRetriesUntilAcknowledged(t *testing.T) {
	t.Parallel()

	e := newEnv(t, fast, 5*time.Second)
	r := newReceiver(t, func(n int, w http.ResponseWriter) {
		if n <= 2 {
			w.WriteHeader(http.StatusInternalServerError)
			_, _ = w.Write([]byte("database down"))
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	ep := e.endpoint(r.srv.URL, []string{"checkout.created"})
	r.verifyWith(ep.Secret)
	e.pay(nil)
	deliveries := e.waitDeliveries()

	if len(deliveries) != 1 {
		t.Fatalf("%d deliveries, want 1", len(deliveries))
	}
	d := deliveries[0]
	if d.Status != delivery.StatusSucceeded || d.AttemptCount != 3 || *d.LastStatusCode != 204 || d.NextAttemptAt != nil {
		t.Fatalf("delivery %+v, want succeeded after 3 attempts", d)
	}
	attempts := *d.Attempts
	if len(attempts) != 3 || *attempts[0].StatusCode != 500 || *attempts[0].ResponseBody != "database down" ||
		*attempts[2].StatusCode != 204 || attempts[2].Error != nil {
		t.Fatalf("attempts %+v", attempts)
	}
	reqs := r.requests()
	for _, req := range reqs[1:] {
		if string(req.body) != string(reqs[0].body) || req.header.Get("webhook-id") != reqs[0].header.Get("webhook-id") {
			t.Fatal("a retry sent other bytes or another webhook-id than the first attempt")
		}
	}
	b, _ := json.Marshal(d)
	schematest.Object(t, "delivery", b)

	for _, m := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"hookline_delivery_attempts_total", map[string]string{"outcome": "http_error"}, 2},
		{"hookline_delivery_attempts_total", map[string]string{"outcome": "succeeded"}, 1},
		{"hookline_delivery_attempts_per_delivery", nil, 3}, // the sum: one delivery, 3 attempts
		{"hookline_delivery_latency_seconds", nil, -1},      // observed once, any value
	} {
		got := metricValue(t, e.registry, m.name, m.labels)
		if (m.want >= 0 && got != m.want) || (m.want < 0 && got <= 0) {
			t.Errorf("%s%v = %v, want %v", m.name, m.labels, got, m.want)
		}
	}
}

// metricValue returns a counter's value, or a histogram's sum, from reg.
func metricValue(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
	next:
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if want, ok := labels[l.GetName()]; ok && want != l.GetValue() {
					continue next
				}
			}
			if m.GetHistogram() != nil {
				return m.GetHistogram().GetSampleSum()
			}
			return m.GetCounter().GetValue()
		}
	}
	return 0
}

func TestFailedAttempts(t *testing.T) {
	t.Parallel()

	tests := []struct {
		name        string
		respond     func(n int, w http.ResponseWriter)
		wantErr     string
		wantCode    *int
		wantTargets int // requests that reached the redirect target
	}{
		{"302 is not followed", func(_ int, w http.ResponseWriter) {
			w.Header().Set("Location", "/elsewhere")
			w.WriteHeader(http.StatusFound)
		}, "HTTP 302", ptr(302), 0},
		{"404 fails", func(_ int, w http.ResponseWriter) { w.WriteHeader(http.StatusNotFound) }, "HTTP 404", ptr(404), 0},
		{"a slow receiver times out", func(_ int, w http.ResponseWriter) {
			time.Sleep(700 * time.Millisecond)
			w.WriteHeader(http.StatusOK)
		}, "timed out", nil, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()

			e := newEnv(t, delivery.Schedule{}, 300*time.Millisecond) // one attempt, then failed
			r := newReceiver(t, tt.respond)
			e.endpoint(r.srv.URL, []string{"checkout.created"})
			e.pay(nil)
			d := e.waitDeliveries()[0]
			a := (*d.Attempts)[0]
			if (tt.wantCode == nil) != (a.ResponseBody == nil) {
				t.Errorf("response_body %v with status code %v: a body exactly when there was a response", a.ResponseBody, a.StatusCode)
			}
			if d.Status != delivery.StatusFailed || d.AttemptCount != 1 || a.Error == nil || *a.Error != tt.wantErr ||
				(tt.wantCode == nil) != (a.StatusCode == nil) || (tt.wantCode != nil && *a.StatusCode != *tt.wantCode) {
				t.Fatalf("delivery %+v attempt %+v, want failed with %q", d, a, tt.wantErr)
			}
			if n := len(r.requests()); n != 1 {
				t.Fatalf("receiver got %d requests, want 1 (no redirect followed)", n)
			}
		})
	}
}

func TestExhaustedDeliveryFailsAndCanBeRetried(t *testing.T) {
	t.Parallel()

	e := newEnv(t, fast, 5*time.Second)
	var mu sync.Mutex
	up := false
	r := newReceiver(t, func(_ int, w http.ResponseWriter) {
		mu.Lock()
		defer mu.Unlock()
		if up {
			w.WriteHeader(http.StatusOK)
			return
		}
		w.WriteHeader(http.StatusBadGateway)
	})
	e.endpoint(r.srv.URL, []string{"checkout.created"})
	e.pay(nil)
	d := e.waitDeliveries()[0]
	if d.Status != delivery.StatusFailed || d.AttemptCount != fast.MaxAttempts() || d.NextAttemptAt != nil {
		t.Fatalf("delivery %+v, want failed after %d attempts", d, fast.MaxAttempts())
	}

	mu.Lock()
	up = true
	mu.Unlock()
	e.tx(func(tx pgx.Tx) error {
		_, err := e.dispatcher.Retry(context.Background(), tx, e.scope, d.ID)
		return err
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		d, err := delivery.GetDelivery(context.Background(), e.pool, &e.scope, d.ID)
		if err != nil {
			t.Fatal(err)
		}
		if d.Status == delivery.StatusSucceeded {
			if d.AttemptCount != fast.MaxAttempts()+1 {
				t.Fatalf("after a manual retry: %d attempts, want %d", d.AttemptCount, fast.MaxAttempts()+1)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the manual retry did not succeed: %+v", d)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestGoneDisablesTheEndpoint(t *testing.T) {
	t.Parallel()

	e := newEnv(t, fast, 5*time.Second)
	gone := newReceiver(t, func(_ int, w http.ResponseWriter) { w.WriteHeader(http.StatusGone) })
	watcher := newReceiver(t, nil)
	ep := e.endpoint(gone.srv.URL, []string{"checkout.created"})
	watcher.verifyWith(e.endpoint(watcher.srv.URL, []string{"webhook_endpoint.disabled"}).Secret)
	e.pay(nil)
	deliveries := e.waitDeliveries()

	if n := len(gone.requests()); n != 1 {
		t.Fatalf("410 endpoint got %d requests, want 1: retries must stop", n)
	}
	got, err := delivery.Get(context.Background(), e.pool, e.scope, ep.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != delivery.EndpointDisabled || got.DisabledReason == nil || *got.DisabledReason != delivery.DisabledGone {
		t.Fatalf("endpoint %+v, want disabled for gone", got)
	}
	if types := watcher.types(); !slices.Equal(types, []string{"webhook_endpoint.disabled"}) {
		t.Fatalf("the other endpoint received %v, want webhook_endpoint.disabled", types)
	}
	if n := metricValue(t, e.registry, "hookline_endpoints_disabled_total", map[string]string{"reason": "gone"}); n != 1 {
		t.Fatalf("hookline_endpoints_disabled_total{reason=gone} = %v, want 1", n)
	}
	for _, d := range deliveries {
		if d.Endpoint != nil && *d.Endpoint == ep.ID && d.Status != delivery.StatusFailed {
			t.Errorf("delivery to the gone endpoint is %s, want failed", d.Status)
		}
	}

	// A disabled endpoint gets no new deliveries.
	e.pay(nil)
	e.waitDeliveries()
	if n := len(gone.requests()); n != 1 {
		t.Fatalf("disabled endpoint got %d requests, want still 1", n)
	}
}

// TestGoneAtOnceCountsOneDisabling: six jobs of one endpoint are answered
// 410 together, so each records a disabling of the endpoint; it was turned
// off once, and is counted, logged and announced once.
func TestGoneAtOnceCountsOneDisabling(t *testing.T) {
	t.Parallel()

	const jobs = 6
	e := newEnv(t, fast, 5*time.Second)
	var arrived sync.WaitGroup
	arrived.Add(jobs)
	all := make(chan struct{})
	go func() { arrived.Wait(); close(all) }()
	gone := newReceiver(t, func(n int, w http.ResponseWriter) {
		if n <= jobs {
			arrived.Done()
			select { // every first attempt is in flight before any is answered
			case <-all:
			case <-time.After(30 * time.Second):
			}
		}
		w.WriteHeader(http.StatusGone)
	})
	watcher := newReceiver(t, nil)
	e.endpoint(gone.srv.URL, []string{"checkout.created"})
	e.endpoint(watcher.srv.URL, []string{"webhook_endpoint.disabled"})
	for range jobs { // a transaction each: a delivery job each
		e.tx(func(tx pgx.Tx) error {
			_, err := e.service.CreateCheckout(context.Background(), tx, e.scope, events.CheckoutParams{Amount: "100", InvoiceCurrency: "usd"})
			return err
		})
	}
	e.waitDeliveries()

	select {
	case <-all:
	default:
		t.Fatalf("%d requests reached the receiver, not %d at once: the test did not race the disablings", len(gone.requests()), jobs)
	}
	if n := metricValue(t, e.registry, "hookline_endpoints_disabled_total", map[string]string{"reason": "gone"}); n != 1 {
		t.Fatalf("hookline_endpoints_disabled_total{reason=gone} = %v after one endpoint was disabled, want 1", n)
	}
	if types := watcher.types(); !slices.Equal(types, []string{"webhook_endpoint.disabled"}) {
		t.Fatalf("the other endpoint received %v, want one webhook_endpoint.disabled", types)
	}
}

func TestRetryAfterDelaysTheNextAttempt(t *testing.T) {
	t.Parallel()

	e := newEnv(t, fast, 5*time.Second)
	r := newReceiver(t, func(n int, w http.ResponseWriter) {
		if n == 1 {
			w.Header().Set("Retry-After", "2")
			w.WriteHeader(http.StatusTooManyRequests)
			return
		}
		w.WriteHeader(http.StatusOK)
	})
	e.endpoint(r.srv.URL, []string{"checkout.created"})
	e.pay(nil)
	d := e.waitDeliveries()[0]
	reqs := r.requests()
	if d.Status != delivery.StatusSucceeded || len(reqs) != 2 {
		t.Fatalf("delivery %+v after %d requests, want succeeded after 2", d, len(reqs))
	}
	// The schedule says 50ms; Retry-After says 2s, and wins.
	if gap := reqs[1].at.Sub(reqs[0].at); gap < 2*time.Second {
		t.Fatalf("second attempt came %s after the 429, before its Retry-After of 2s", gap)
	}
}

// TestRotationSignsWithEverySecretInGrace rotates an endpoint's secret
// twice inside one grace period: the first secret keeps signing beside the
// second and the third until its own grace ends, as does every secret rotated
// out whose grace lasts, up to delivery.MaxPreviousSecrets of them. Each
// signature must verify on its own with the Standard Webhooks library.
func TestRotationSignsWithEverySecretInGrace(t *testing.T) {
	t.Parallel()

	e := newEnv(t, fast, 5*time.Second)
	r := newReceiver(t, nil)
	ep := e.endpoint(r.srv.URL, []string{"checkout.created"})
	secrets := []string{ep.Secret}
	rotate := func(grace time.Duration) {
		t.Helper()
		var rotated *delivery.Endpoint
		e.tx(func(tx pgx.Tx) (err error) {
			rotated, err = e.endpoints.RotateSecret(context.Background(), tx, e.scope, ep.ID, grace)
			return err
		})
		if slices.Contains(secrets, rotated.Secret) {
			t.Fatal("rotation kept a secret")
		}
		secrets = append(secrets, rotated.Secret)
	}
	// deliver sends one event and returns its request, checking that each of
	// signing verifies it and each of notSigning does not.
	deliver := func(signing, notSigning []string) request {
		t.Helper()
		r.verifyWith(signing...)
		before := len(r.requests())
		e.pay(nil)
		e.waitDeliveries()
		reqs := r.requests()
		if len(reqs) != before+1 {
			t.Fatalf("%d requests, want %d", len(reqs), before+1)
		}
		req := reqs[len(reqs)-1]
		for _, s := range notSigning {
			wh, _ := standardwebhooks.NewWebhook(s)
			if err := wh.Verify(req.body, req.header); err == nil {
				t.Errorf("secret %d of %d verifies a delivery, want it out of grace", slices.Index(secrets, s)+1, len(secrets))
			}
		}
		if n := len(strings.Fields(req.header.Get("webhook-signature"))); n != len(signing) {
			t.Errorf("%d signatures, want %d", n, len(signing))
		}
		return req
	}

	// Two rotations within an hour's grace: all three secrets sign.
	rotate(time.Hour)
	rotate(time.Hour)
	deliver(secrets[0:3], nil)

	// A rotation with no grace: the secret it replaces stops at once, the
	// earlier ones sign until their own grace ends.
	rotate(0)
	deliver([]string{secrets[0], secrets[1], secrets[3]}, secrets[2:3])

	// Past the cap, the oldest previous secrets stop: the current one and the
	// newest MaxPreviousSecrets rotated out with grace sign.
	for range delivery.MaxPreviousSecrets {
		rotate(time.Hour)
	}
	n := len(secrets)
	deliver(append([]string{secrets[n-1]}, secrets[n-1-delivery.MaxPreviousSecrets:n-1]...), secrets[0:3])

	// A previous secret whose grace has ended stops signing.
	if _, err := e.pool.Exec(context.Background(), `update webhook_endpoints
		set previous_secrets_expire_at[1] = now() - interval '1 second' where id = $1`, ep.ID); err != nil {
		t.Fatal(err)
	}
	deliver(append([]string{secrets[n-1]}, secrets[n-1-delivery.MaxPreviousSecrets:n-2]...), secrets[n-2:n-1])
}

func ptr[T any](v T) *T { return &v }

func TestFailingForThreeDaysDisablesTheEndpoint(t *testing.T) {
	t.Parallel()

	e := newEnv(t, delivery.Schedule{}, 5*time.Second)
	down := newReceiver(t, func(_ int, w http.ResponseWriter) { w.WriteHeader(http.StatusInternalServerError) })
	ep := e.endpoint(down.srv.URL, []string{"checkout.created"})
	// The endpoint has failed every attempt for just over three days.
	if _, err := e.pool.Exec(context.Background(), `update webhook_endpoints set failing_since = now() - interval '72 hours 1 minute'
		where id = $1`, ep.ID); err != nil {
		t.Fatal(err)
	}
	e.pay(nil)
	e.waitDeliveries()
	got, err := delivery.Get(context.Background(), e.pool, e.scope, ep.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != delivery.EndpointDisabled || got.DisabledReason == nil || *got.DisabledReason != delivery.DisabledFailing {
		t.Fatalf("endpoint %+v, want disabled for failing", got)
	}
	list, err := events.ListEvents(context.Background(), e.pool, e.scope, events.WebhookEndpointDisabled, events.Page{Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	if len(list.Data) != 1 {
		t.Fatalf("%d webhook_endpoint.disabled events, want 1", len(list.Data))
	}
	schematest.Event(t, "webhook_endpoint.disabled", list.Data[0].Payload)

	// A success ends a failure streak: an endpoint that recovers is not disabled.
	up := newReceiver(t, nil)
	healthy := e.endpoint(up.srv.URL, []string{"checkout.created"})
	if _, err := e.pool.Exec(context.Background(), `update webhook_endpoints set failing_since = now() - interval '80 hours'
		where id = $1`, healthy.ID); err != nil {
		t.Fatal(err)
	}
	e.pay(nil)
	e.waitDeliveries()
	var since *time.Time
	if err := e.pool.QueryRow(context.Background(), `select failing_since from webhook_endpoints where id = $1`, healthy.ID).Scan(&since); err != nil {
		t.Fatal(err)
	}
	if since != nil {
		t.Fatalf("an acknowledged delivery left failing_since at %v", since)
	}
}

// TestEd25519Endpoint delivers to an endpoint created with the ed25519
// scheme: creation and rotation show public keys only, and every delivery's
// v1a signatures verify with crypto/ed25519 as a receiver following the
// Standard Webhooks text would (both keys during the rotation's grace).
func TestEd25519Endpoint(t *testing.T) {
	t.Parallel()

	e := newEnv(t, fast, 5*time.Second)
	r := newReceiver(t, nil)
	var ep, rotated *delivery.Endpoint
	checked, err := e.endpoints.Check(context.Background(), delivery.EndpointParams{
		URL: r.srv.URL, EnabledEvents: []string{"checkout.created"}, SignatureScheme: delivery.SchemeEd25519,
	})
	if err != nil {
		t.Fatal(err)
	}
	e.tx(func(tx pgx.Tx) (err error) {
		ep, err = e.endpoints.Create(context.Background(), tx, e.scope, checked)
		return err
	})
	if ep.Secret != "" || ep.SignatureScheme != delivery.SchemeEd25519 {
		t.Fatalf("created %+v: want the ed25519 scheme and no secret", ep)
	}
	first := publicKey(t, ep.PublicKey)
	e.pay(nil)
	e.waitDeliveries()

	e.tx(func(tx pgx.Tx) (err error) {
		rotated, err = e.endpoints.RotateSecret(context.Background(), tx, e.scope, ep.ID, time.Hour)
		return err
	})
	if rotated.Secret != "" || rotated.PublicKey == ep.PublicKey {
		t.Fatalf("rotated %+v: want a new public key and no secret", rotated)
	}
	second := publicKey(t, rotated.PublicKey)
	e.pay(nil)
	e.waitDeliveries()

	reqs := r.requests()
	if len(reqs) != 2 {
		t.Fatalf("%d requests, want 2", len(reqs))
	}
	for i, want := range [][]ed25519.PublicKey{{first}, {first, second}} {
		h := reqs[i].header
		content := []byte(h.Get("webhook-id") + "." + h.Get("webhook-timestamp") + "." + string(reqs[i].body))
		sigs := strings.Split(h.Get("webhook-signature"), " ")
		if len(sigs) != len(want) {
			t.Fatalf("request %d has signatures %q, want %d", i+1, sigs, len(want))
		}
		for _, key := range want {
			verified := false
			for _, sig := range sigs {
				b64, ok := strings.CutPrefix(sig, "v1a,")
				raw, err := base64.StdEncoding.DecodeString(b64)
				verified = verified || (ok && err == nil && ed25519.Verify(key, content, raw))
			}
			if !verified {
				t.Errorf("request %d: no signature verifies with a public key in force", i+1)
			}
		}
	}
}

// publicKey decodes a whpk_ public key.
func publicKey(t *testing.T, s string) ed25519.PublicKey {
	t.Helper()
	b64, ok := strings.CutPrefix(s, "whpk_")
	raw, err := base64.StdEncoding.DecodeString(b64)
	if !ok || err != nil || len(raw) != ed25519.PublicKeySize {
		t.Fatalf("public key %q is not whpk_ and the base64 of 32 bytes", s)
	}
	return raw
}

// TestProductionNeverDialsPrivateAddresses registers a loopback receiver (as
// a name that resolved publicly at registration and now resolves to
// 127.0.0.1 would be) and delivers with the production guard: no request may
// reach it, and the attempt says why.
func TestProductionNeverDialsPrivateAddresses(t *testing.T) {
	t.Parallel()

	e := newEnvWith(t, envOptions{timeout: 5 * time.Second, workerGuard: delivery.NewGuard(true)})
	r := newReceiver(t, nil)
	e.endpoint(r.srv.URL, []string{"checkout.created"})
	e.pay(nil)
	d := e.waitDeliveries()[0]
	if n := len(r.requests()); n != 0 {
		t.Fatalf("the production worker reached a loopback receiver %d times", n)
	}
	a := (*d.Attempts)[0]
	if d.Status != delivery.StatusFailed || a.Error == nil || *a.Error != "refused: the destination resolves to a non-public address" {
		t.Fatalf("delivery %+v attempt %+v", d, a)
	}
}

// TestSlowReceiverCannotTakeThePool runs four workers against an endpoint
// that takes a second per request and one that answers at once. The slow one
// may hold at most its cap of two workers; its excess is snoozed, spending no
// attempt, and every delivery still arrives on its first attempt.
func TestSlowReceiverCannotTakeThePool(t *testing.T) {
	t.Parallel()

	e := newEnvWith(t, envOptions{schedule: fast, timeout: 5 * time.Second, workers: 4, inFlight: 2})
	var mu sync.Mutex
	inFlight, peak := 0, 0
	slow := newReceiver(t, func(int, http.ResponseWriter) {
		mu.Lock()
		inFlight++
		peak = max(peak, inFlight)
		mu.Unlock()
		time.Sleep(time.Second)
		mu.Lock()
		inFlight--
		mu.Unlock()
	})
	quick := newReceiver(t, nil)
	slowEP := e.endpoint(slow.srv.URL, []string{"checkout.created"})
	quickEP := e.endpoint(quick.srv.URL, []string{"checkout.created"})
	for range 6 {
		e.pay(nil)
	}

	// The quick endpoint's deliveries all land while the slow one's backlog
	// is still being worked off.
	deadline := time.Now().Add(60 * time.Second)
	for {
		var quickDone, slowPending int
		if err := e.pool.QueryRow(context.Background(), `select
			count(*) filter (where endpoint_id = $1 and status = 'succeeded'),
			count(*) filter (where endpoint_id = $2 and status = 'pending') from deliveries`, quickEP.ID, slowEP.ID).
			Scan(&quickDone, &slowPending); err != nil {
			t.Fatal(err)
		}
		if quickDone == 6 {
			if slowPending == 0 {
				t.Fatal("the slow endpoint finished first: this run shows nothing about the cap")
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of 6 quick deliveries after 60s", quickDone)
		}
		time.Sleep(20 * time.Millisecond)
	}
	for _, d := range e.waitDeliveries() {
		if d.Status != delivery.StatusSucceeded || d.AttemptCount != 1 {
			t.Errorf("delivery %s: %s after %d attempts, want succeeded after 1 (snoozes spend none)", d.ID, d.Status, d.AttemptCount)
		}
	}
	if peak > 2 {
		t.Fatalf("the slow receiver had %d requests at once, over the cap of 2", peak)
	}
}

// insertJob enqueues a delivery job as the engine makes them: deliveries
// with the attempt counts the job is for.
func (e *env) insertJob(args delivery.DeliverArgs) int64 {
	e.t.Helper()
	inserter, err := river.NewClient(riverpgxv5.New(e.pool), &river.Config{})
	if err != nil {
		e.t.Fatal(err)
	}
	res, err := inserter.Insert(context.Background(), args, &river.InsertOpts{Queue: delivery.QueueDelivery})
	if err != nil {
		e.t.Fatal(err)
	}
	return res.Job.ID
}

// waitJob waits for a job to complete.
func (e *env) waitJob(id int64) {
	e.t.Helper()
	e.waitJobWithin(id, 60*time.Second)
}

// waitJobWithin waits up to within for a job to complete, and answers how
// long it ran.
func (e *env) waitJobWithin(id int64, within time.Duration) time.Duration {
	e.t.Helper()
	deadline := time.Now().Add(within)
	for {
		var state string
		var ran time.Duration
		if err := e.pool.QueryRow(context.Background(), `select state, coalesce(finalized_at - attempted_at, '0')
			from river_job where id = $1`, id).Scan(&state, &ran); err != nil {
			e.t.Fatal(err)
		}
		if state == "completed" {
			return ran
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("job %d is %s after %v", id, state, within)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// joblessCheckouts stops the River client and creates n checkouts whose
// deliveries (the ids answered, in order) have no job: the test makes their
// jobs, and starts the client again.
func (e *env) joblessCheckouts(n int) []string {
	e.t.Helper()
	ctx := context.Background()
	if err := e.client.Stop(ctx); err != nil {
		e.t.Fatal(err)
	}
	var ids []string
	e.tx(func(tx pgx.Tx) (err error) {
		if ids, err = e.checkouts(tx, n); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `delete from river_job where kind = 'deliver'`)
		return err
	})
	return ids
}

// TestAnAttemptIsMadeAndRecordedOnce: a job makes attempt n of a delivery
// only while the delivery has n-1 recorded. A job whose process died after
// recording, and whose next job already ran, sends nothing when River runs
// it again; a stale automatic job of a delivery acknowledged meanwhile sends
// nothing; a manual attempt of an acknowledged delivery is recorded, and the
// delivery stays succeeded even when that attempt fails.
func TestAnAttemptIsMadeAndRecordedOnce(t *testing.T) {
	t.Parallel()

	e := newEnv(t, fast, 5*time.Second)
	failing := newReceiver(t, func(_ int, w http.ResponseWriter) { w.WriteHeader(http.StatusInternalServerError) })
	e.endpoint(failing.srv.URL, []string{"checkout.created"})
	ctx := context.Background()
	var ids []string
	// Two deliveries, set in the transaction that enqueues their job (for
	// attempt 1 of each) as a crash and a race leave them.
	e.tx(func(tx pgx.Tx) (err error) {
		if ids, err = e.checkouts(tx, 3); err != nil {
			return err
		}
		// The first: job 1 recorded attempt 1, job 2 recorded attempt 2, and
		// job 1's process died before River completed it. The second: it was
		// acknowledged by a manual retry while its automatic job waited.
		_, err = tx.Exec(ctx, `update deliveries set attempt_count = 2 where id = $1`, ids[0])
		if err != nil {
			return err
		}
		if _, err = tx.Exec(ctx, `update deliveries set attempt_count = 1, status = 'succeeded' where id = $1`, ids[1]); err != nil {
			return err
		}
		// The third settled without its count moving (an operator marked it):
		// an automatic job never sends a delivery that is not pending.
		_, err = tx.Exec(ctx, `update deliveries set status = 'succeeded' where id = $1`, ids[2])
		return err
	})
	for _, d := range e.waitJobsOf(ids) {
		e.waitJob(d)
	}
	if n := len(failing.requests()); n != 0 {
		t.Fatalf("stale jobs sent %d requests, want 0", n)
	}
	// A manual attempt of the acknowledged delivery fails: it is recorded as
	// attempt 2, and the delivery stays succeeded.
	e.waitJob(e.insertJob(delivery.DeliverArgs{DeliveryIDs: ids[1:2], Counts: []int{1}, Manual: true}))
	var status string
	var count, attempts int
	if err := e.pool.QueryRow(ctx, `select status, attempt_count, (select count(*) from delivery_attempts where delivery_id = $1)
		from deliveries where id = $1`, ids[1]).Scan(&status, &count, &attempts); err != nil {
		t.Fatal(err)
	}
	if status != delivery.StatusSucceeded || count != 2 || attempts != 1 || len(failing.requests()) != 1 {
		t.Fatalf("after a failed manual attempt: %s, count %d, %d attempt rows, %d requests; want succeeded, 2, 1, 1",
			status, count, attempts, len(failing.requests()))
	}
	// The same job run again (its process died after recording) sends nothing.
	e.waitJob(e.insertJob(delivery.DeliverArgs{DeliveryIDs: ids[1:2], Counts: []int{1}, Manual: true}))
	if n := len(failing.requests()); n != 1 {
		t.Fatalf("a job whose attempt was recorded sent again: %d requests, want 1", n)
	}
}

// checkouts creates n checkouts in tx and answers the ids of every delivery
// (the test's endpoints' only), in order.
func (e *env) checkouts(tx pgx.Tx, n int) ([]string, error) {
	ctx := context.Background()
	for range n {
		if _, err := e.service.CreateCheckout(ctx, tx, e.scope, events.CheckoutParams{Amount: "100", InvoiceCurrency: "usd"}); err != nil {
			return nil, err
		}
	}
	rows, err := tx.Query(ctx, `select id from deliveries order by id`)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[string])
}

// waitJobsOf is the delivery jobs that hold any of ids.
func (e *env) waitJobsOf(ids []string) []int64 {
	e.t.Helper()
	rows, err := e.pool.Query(context.Background(), `select id from river_job where kind = 'deliver'
		and exists (select 1 from jsonb_array_elements_text(args->'delivery_ids') x where x = any($1))`, ids)
	if err != nil {
		e.t.Fatal(err)
	}
	jobs, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil || len(jobs) == 0 {
		e.t.Fatalf("jobs of %v: %v (%d found)", ids, err, len(jobs))
	}
	return jobs
}

// Concurrent creates share transactions (events.CheckoutBatcher), and a
// shared transaction still gives each merchant's checkout its own event and
// only its own merchant's deliveries, one job per event.
func TestBatchedCheckoutsShareTransactions(t *testing.T) {
	e := newEnv(t, fast, 5*time.Second)
	ctx := context.Background()
	other := dbtest.Merchant(t, e.pool, "Other merchant")
	otherScope := events.Scope{MerchantID: other.ID}
	mine, theirs := newReceiver(t, nil), newReceiver(t, nil)
	e.endpoint(mine.srv.URL, []string{"*"})
	checked, err := e.endpoints.Check(ctx, delivery.EndpointParams{URL: theirs.srv.URL, EnabledEvents: []string{"checkout.created"}})
	if err != nil {
		t.Fatal(err)
	}
	e.tx(func(tx pgx.Tx) error {
		_, err := e.endpoints.Create(ctx, tx, otherScope, checked)
		return err
	})
	batcher := events.NewCheckoutBatcher(e.service, e.pool, slog.New(slog.NewTextHandler(io.Discard, nil)))

	// Hold the table so that the first transactions wait, and every other
	// request queues behind them.
	lock, err := e.pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Rollback(ctx) //nolint:errcheck // committed below; this only frees the connection on failure
	if _, err := lock.Exec(ctx, "lock table checkouts in exclusive mode"); err != nil {
		t.Fatal(err)
	}
	const perMerchant = 15
	owner := map[string]string{} // checkout id -> merchant id
	var mu sync.Mutex
	var wg sync.WaitGroup
	for i := range 2 * perMerchant {
		scope := e.scope
		if i%2 == 1 {
			scope = otherScope
		}
		wg.Go(func() {
			c, err := batcher.Create(ctx, scope, events.CheckoutParams{Amount: "100", InvoiceCurrency: "usd"})
			if err != nil {
				t.Errorf("create: %v", err)
				return
			}
			mu.Lock()
			owner[c.ID] = scope.MerchantID
			mu.Unlock()
		})
	}
	for waiting := 0; waiting == 0; time.Sleep(10 * time.Millisecond) {
		if err := e.pool.QueryRow(ctx, `select count(*) from pg_locks where not granted and relation = 'checkouts'::regclass`).
			Scan(&waiting); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(100 * time.Millisecond) // the other goroutines reach the queue
	if err := lock.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	if len(owner) != 2*perMerchant {
		t.Fatalf("%d checkouts created, want %d", len(owner), 2*perMerchant)
	}

	var transactions int
	rows, err := e.pool.Query(ctx, `select c.id, c.merchant_id, c.xmin::text = e.xmin::text, e.merchant_id,
			(select count(*) from river_job j where j.kind = 'deliver' and j.args->'delivery_ids' ? d.id)
		from checkouts c
		join events e on convert_from(e.payload, 'UTF8')::jsonb->'data'->>'id' = c.id
		join deliveries d on d.event_id = e.id`)
	if err != nil {
		t.Fatal(err)
	}
	var id, checkoutMerchant, eventMerchant string
	var sameTransaction bool
	var jobs, seen int
	if _, err := pgx.ForEachRow(rows, []any{&id, &checkoutMerchant, &sameTransaction, &eventMerchant, &jobs}, func() error {
		seen++
		if checkoutMerchant != owner[id] || eventMerchant != owner[id] || !sameTransaction || jobs != 1 {
			t.Errorf("checkout %s of %s: merchant %s, event of %s, same transaction %v, %d jobs",
				id, owner[id], checkoutMerchant, eventMerchant, sameTransaction, jobs)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if seen != 2*perMerchant {
		t.Errorf("%d checkouts with an event and a delivery, want %d", seen, 2*perMerchant)
	}
	if err := e.pool.QueryRow(ctx, `select count(distinct xmin::text) from checkouts`).Scan(&transactions); err != nil {
		t.Fatal(err)
	}
	if transactions >= 2*perMerchant {
		t.Errorf("%d checkouts in %d transactions: none shared", 2*perMerchant, transactions)
	}
	t.Logf("%d checkouts in %d transactions", 2*perMerchant, transactions)

	e.waitDeliveries()
	for _, r := range []*receiver{mine, theirs} {
		if got := r.types(); len(got) != perMerchant {
			t.Errorf("a receiver got %d deliveries, want %d: %v", len(got), perMerchant, got)
		}
	}
}

// TestOneBadTargetFailsAlone: of five endpoints of an event, one has a secret
// that no longer opens (a key dropped from HOOKLINE_ENCRYPTION_KEY). Its
// delivery fails alone, with the reason recorded and its next attempt
// scheduled; the other four are sent once each, by jobs that completed. A retry of a
// delivery whose endpoint was deleted is refused.
func TestOneBadTargetFailsAlone(t *testing.T) {
	t.Parallel()

	e := newEnv(t, delivery.Schedule{time.Hour}, 5*time.Second)
	var good []*receiver
	for range 4 {
		r := newReceiver(t, nil)
		e.endpoint(r.srv.URL, []string{"checkout.created"})
		good = append(good, r)
	}
	bad := newReceiver(t, nil)
	badEP := e.endpoint(bad.srv.URL, []string{"checkout.created"})
	ctx := context.Background()
	e.tx(func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `update webhook_endpoints set secret = 'v1:unknown-key:AAAA' where id = $1`, badEP.ID)
		return err
	})
	e.pay(nil)
	var badDelivery *delivery.Delivery
	for deadline := time.Now().Add(30 * time.Second); badDelivery == nil; time.Sleep(20 * time.Millisecond) {
		list, err := delivery.ListDeliveries(ctx, e.pool, e.scope, delivery.DeliveryFilter{EndpointID: badEP.ID}, events.Page{Limit: 10})
		if err != nil {
			t.Fatal(err)
		}
		if len(list.Data) == 1 && list.Data[0].AttemptCount == 1 {
			badDelivery = list.Data[0]
		}
		if time.Now().After(deadline) {
			t.Fatal("the bad target's attempt was never recorded")
		}
	}
	got, err := delivery.GetDelivery(ctx, e.pool, &e.scope, badDelivery.ID)
	if err != nil {
		t.Fatal(err)
	}
	attempts := *got.Attempts
	if got.Status != delivery.StatusPending || got.NextAttemptAt == nil || len(attempts) != 1 || attempts[0].Error == nil ||
		!strings.Contains(*attempts[0].Error, "signing secret") || len(bad.requests()) != 0 {
		t.Fatalf("bad target: %s, next %v, attempts %+v, %d requests; want pending, scheduled, one attempt naming the secret, none sent",
			got.Status, got.NextAttemptAt, attempts, len(bad.requests()))
	}
	// Every job done (the bad target's next attempt scheduled an hour out):
	// no job failed and went back to River, which would resend its targets.
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		var open int
		if err := e.pool.QueryRow(ctx, `select count(*) from river_job where kind = 'deliver'
			and state not in ('completed', 'scheduled')`).Scan(&open); err != nil {
			t.Fatal(err)
		}
		if open == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d delivery jobs still open after 30s", open)
		}
	}
	for i, r := range good {
		if n := len(r.requests()); n != 1 {
			t.Errorf("healthy endpoint %d got %d requests, want 1", i, n)
		}
	}

	e.tx(func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `update webhook_endpoints set deleted_at = now() where id = $1`, badEP.ID)
		return err
	})
	err = pgx.BeginFunc(ctx, e.pool, func(tx pgx.Tx) error {
		_, err := e.dispatcher.Retry(ctx, tx, e.scope, badDelivery.ID)
		return err
	})
	var stateErr *events.StateError
	if !errors.As(err, &stateErr) || stateErr.Code != "endpoint_deleted" {
		t.Fatalf("retry of a deleted endpoint's delivery: %v, want a StateError endpoint_deleted", err)
	}
}

// TestRecoveryGivesAFreshSchedule: a delivery that spent its schedule and
// failed gets, once recovered, the whole schedule again (its attempts go on
// being numbered after the earlier ones).
func TestRecoveryGivesAFreshSchedule(t *testing.T) {
	t.Parallel()

	e := newEnv(t, fast, 5*time.Second)
	r := newReceiver(t, func(_ int, w http.ResponseWriter) { w.WriteHeader(http.StatusBadGateway) })
	ep := e.endpoint(r.srv.URL, []string{"checkout.created"})
	e.pay(nil)
	d := e.waitDeliveries()[0]
	if d.Status != delivery.StatusFailed || d.AttemptCount != fast.MaxAttempts() {
		t.Fatalf("delivery %+v, want failed after %d attempts", d, fast.MaxAttempts())
	}
	ctx := context.Background()
	e.tx(func(tx pgx.Tx) error {
		_, err := e.dispatcher.Recover(ctx, tx, &e.scope, ep.ID, time.Now().Add(-time.Hour), time.Now().Add(time.Minute), false)
		return err
	})
	for deadline := time.Now().Add(90 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		got, err := delivery.GetDelivery(ctx, e.pool, &e.scope, d.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.Status == delivery.StatusFailed && got.AttemptCount > fast.MaxAttempts() {
			if got.AttemptCount != 2*fast.MaxAttempts() {
				t.Fatalf("recovered delivery failed after %d attempts in all, want %d: a fresh schedule of %d",
					got.AttemptCount, 2*fast.MaxAttempts(), fast.MaxAttempts())
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("recovered delivery: %s after %d attempts", got.Status, got.AttemptCount)
		}
	}
}

// TestLaneWaitsForASlotNoLongerThanItsBudget: a job admitted to a destination
// whose in-flight slots another job's slow attempts hold waits for a slot no
// longer than its send budget, then parks its delivery unsent, spending no
// attempt, and leaves its worker: it does not hold it until the slow attempts
// end or its job times out. A manual retry in the same place comes back as a
// retry: parking would do nothing to a failed delivery.
func TestLaneWaitsForASlotNoLongerThanItsBudget(t *testing.T) {
	t.Parallel()

	e := newEnvWith(t, envOptions{schedule: fast, timeout: 30 * time.Second, workers: 4, inFlight: 2})
	hold := make(chan struct{})
	slow := newReceiver(t, func(n int, w http.ResponseWriter) {
		if n <= 2 {
			<-hold // the first two attempts hold both slots until the test ends them
		}
	})
	t.Cleanup(func() { close(hold) }) // before the receiver's Close, which waits for its requests
	e.endpoint(slow.srv.URL, []string{"checkout.created"})
	ctx := context.Background()
	ids := e.joblessCheckouts(4)
	if _, err := e.pool.Exec(ctx, `update deliveries set status = 'failed' where id = $1`, ids[3]); err != nil {
		t.Fatal(err)
	}
	e.insertJob(delivery.DeliverArgs{DeliveryIDs: ids[:2], Counts: []int{0, 0}})
	if err := e.client.Start(ctx); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(30 * time.Second); len(slow.requests()) < 2; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the first job made %d attempts in 30s, want 2", len(slow.requests()))
		}
	}
	// Each job's timeout is 42 s (30 s a request): a lane waiting until then,
	// or until the held attempts end, fails waitJobWithin's 20 s.
	// Admitted (the destination has two places), it waited in its lane.
	if ran := e.waitJobWithin(e.insertJob(delivery.DeliverArgs{DeliveryIDs: ids[2:3], Counts: []int{0}}), 20*time.Second); ran < 1500*time.Millisecond {
		t.Fatalf("the job ran %v: it did not wait for a slot", ran)
	}
	ahead := func(id string, manual bool) int {
		t.Helper()
		var n int
		if err := e.pool.QueryRow(ctx, `select count(*) from river_job where kind = 'deliver' and state <> 'completed'
			and args->'delivery_ids' @> jsonb_build_array($1::text) and coalesce((args->>'manual')::bool, false) = $2`, id, manual).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	var parked bool
	var count int
	if err := e.pool.QueryRow(ctx, `select parked, attempt_count from deliveries where id = $1`, ids[2]).Scan(&parked, &count); err != nil {
		t.Fatal(err)
	}
	// Parked, or already handed a job again by the release.
	if n := len(slow.requests()); n != 2 || count != 0 || (!parked && ahead(ids[2], false) == 0) {
		t.Fatalf("while the slots were held: %d requests, the third delivery's count %d, parked %v; want 2, 0, parked or released",
			n, count, parked)
	}
	if ran := e.waitJobWithin(e.insertJob(delivery.DeliverArgs{DeliveryIDs: ids[3:], Counts: []int{0}, Manual: true}), 20*time.Second); ran < 1500*time.Millisecond {
		t.Fatalf("the retry's job ran %v: it did not wait for a slot", ran)
	}
	if n := ahead(ids[3], true); n != 1 || len(slow.requests()) != 2 {
		t.Fatalf("the retry that found no slot: %d retry jobs after it, %d requests; want 1, 2", n, len(slow.requests()))
	}
}

// TestJobStopsAtAnotherJobsPause: a job sending a destination's deliveries
// starts no more once another job of the process has had a 429 with
// Retry-After from it; it parks the rest unsent, spending no attempt.
func TestJobStopsAtAnotherJobsPause(t *testing.T) {
	t.Parallel()

	e := newEnvWith(t, envOptions{schedule: fast, timeout: 10 * time.Second, workers: 4})
	release := make(chan struct{})
	r := newReceiver(t, func(n int, w http.ResponseWriter) {
		switch {
		case n <= 5: // the long job's first five, side by side, until the other job's 429 is recorded
			<-release
		case n == 6: // the other job's
			w.Header().Set("Retry-After", "60")
			w.WriteHeader(http.StatusTooManyRequests)
		}
	})
	var once sync.Once
	end := func() { once.Do(func() { close(release) }) }
	t.Cleanup(end) // before the receiver's Close, which waits for its requests
	e.endpoint(r.srv.URL, []string{"checkout.created"})
	ctx := context.Background()
	ids := e.joblessCheckouts(21)
	long := e.insertJob(delivery.DeliverArgs{DeliveryIDs: ids[:20], Counts: make([]int, 20)})
	if err := e.client.Start(ctx); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(30 * time.Second); len(r.requests()) < 5; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the long job made %d attempts in 30s, want 5", len(r.requests()))
		}
	}
	e.waitJob(e.insertJob(delivery.DeliverArgs{DeliveryIDs: ids[20:], Counts: []int{0}}))
	if n := len(r.requests()); n != 6 {
		t.Fatalf("%d requests when the 429 was recorded, want 6", n)
	}
	// The long job's lanes go on within its send budget of 2 s on a machine
	// that ran the other job in time (on a slower one, the budget stops them
	// too, and this test shows nothing).
	end()
	e.waitJob(long)
	var attempted, parked int
	if err := e.pool.QueryRow(ctx, `select count(*) filter (where attempt_count > 0), count(*) filter (where parked and attempt_count = 0)
		from deliveries where id = any($1)`, ids[:20]).Scan(&attempted, &parked); err != nil {
		t.Fatal(err)
	}
	if n := len(r.requests()); n != 6 || attempted != 5 || parked != 15 {
		t.Fatalf("after the pause: %d requests, %d of the long job's deliveries attempted, %d parked unsent; want 6, 5, 15", n, attempted, parked)
	}
}

// A job of several manual retries that meets a 429 with Retry-After stops
// there (one attempt at a time: in-flight cap 1) and hands the rest back as
// one retry job, due when the receiver asked to hear from hookline again,
// not a second later; that job then makes their attempts. (The API's
// retries are one delivery a job; a job handed back several at once is
// also one stopped by a shutdown.)
func TestManualRetryComesBackAfterRetryAfter(t *testing.T) {
	t.Parallel()

	e := newEnvWith(t, envOptions{schedule: fast, timeout: 10 * time.Second, workers: 4, inFlight: 1})
	r := newReceiver(t, func(n int, w http.ResponseWriter) {
		if n == 1 {
			w.Header().Set("Retry-After", "3")
			w.WriteHeader(http.StatusTooManyRequests)
		}
	})
	e.endpoint(r.srv.URL, []string{"checkout.created"})
	ctx := context.Background()
	ids := e.joblessCheckouts(5)
	if _, err := e.pool.Exec(ctx, `update deliveries set status = 'failed' where id = any($1)`, ids); err != nil {
		t.Fatal(err)
	}
	if err := e.client.Start(ctx); err != nil {
		t.Fatal(err)
	}
	asked := time.Now()
	e.waitJob(e.insertJob(delivery.DeliverArgs{DeliveryIDs: ids, Counts: make([]int, 5), Manual: true}))
	var jobs, retries int
	var earliest time.Time
	if err := e.pool.QueryRow(ctx, `select count(*), coalesce(sum(jsonb_array_length(args->'delivery_ids')), 0), coalesce(min(scheduled_at), now())
		from river_job where kind = 'deliver' and state <> 'completed' and (args->>'manual')::bool`).Scan(&jobs, &retries, &earliest); err != nil {
		t.Fatal(err)
	}
	// A second later (the old schedule) is before 2.5 s.
	if n := len(r.requests()); n != 1 || jobs != 1 || retries != 4 || earliest.Before(asked.Add(2500*time.Millisecond)) {
		t.Fatalf("%d requests; %d retry jobs of %d deliveries, the first due %v after the retry; want 1 request, 1 job of 4, due 3s after",
			n, jobs, retries, earliest.Sub(asked).Round(100*time.Millisecond))
	}
	once := 0 // deliveries whose one attempt is recorded
	for deadline := time.Now().Add(30 * time.Second); once < 5; time.Sleep(20 * time.Millisecond) {
		if err := e.pool.QueryRow(ctx, `select count(*) from deliveries where id = any($1) and attempt_count = 1`, ids).Scan(&once); err != nil {
			t.Fatal(err)
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d deliveries attempted 30s after the retry, want 5", once)
		}
	}
	if reqs := r.requests(); len(reqs) != 5 || reqs[1].at.Before(asked.Add(3*time.Second)) {
		t.Fatalf("%d requests, the second %v after the retry; want 5, after 3s", len(reqs), reqs[1].at.Sub(asked).Round(100*time.Millisecond))
	}
}

// A manual retry of a pending delivery that fails schedules the next
// attempt as an automatic one (which waits out pauses and stops at a
// disabled endpoint), not as another manual retry.
func TestFailedManualRetryNextAttemptIsAutomatic(t *testing.T) {
	t.Parallel()

	e := newEnvWith(t, envOptions{schedule: delivery.Schedule{time.Hour, time.Hour}, timeout: 10 * time.Second, workers: 4})
	r := newReceiver(t, func(_ int, w http.ResponseWriter) { w.WriteHeader(http.StatusInternalServerError) })
	e.endpoint(r.srv.URL, []string{"checkout.created"})
	ctx := context.Background()
	ids := e.joblessCheckouts(1)
	if err := e.client.Start(ctx); err != nil {
		t.Fatal(err)
	}
	e.waitJob(e.insertJob(delivery.DeliverArgs{DeliveryIDs: ids, Counts: []int{0}, Manual: true}))
	var automatic, manual int
	if err := e.pool.QueryRow(ctx, `select count(*) filter (where not coalesce((args->>'manual')::bool, false)),
			count(*) filter (where coalesce((args->>'manual')::bool, false))
		from river_job where kind = 'deliver' and state <> 'completed' and args->'delivery_ids' @> jsonb_build_array($1::text)`,
		ids[0]).Scan(&automatic, &manual); err != nil {
		t.Fatal(err)
	}
	if n := len(r.requests()); n != 1 || automatic != 1 || manual != 0 {
		t.Fatalf("%d requests; next attempt jobs: %d automatic, %d manual; want 1 request, 1 automatic, 0 manual", n, automatic, manual)
	}
}
