package api_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hookline/hookline/api/client"
	"github.com/hookline/hookline/schema"
	"github.com/hookline/hookline/schema/schematest"
)

// TestEveryOperationThroughTheClient calls every operation of
// schema/openapi.yaml through the client generated from it (api/client)
// against the served API. Every answer is validated against the spec's
// schema of its operation and status (schematest.Response: a missing
// required field, a null the spec does not allow, a field it lacks, a wrong
// media type), and every JSON answer is decoded strictly into its generated
// type (a named one, or the inline struct the generated response holds for
// the operator's enable and retry and for deletion, which the spec does not
// name): an operation of the spec that no call here reached with a 2xx
// fails the test too. The spec and the server cannot drift apart.
func TestEveryOperationThroughTheClient(t *testing.T) {
	t.Parallel()

	h := newHarnessWith(t, harnessOptions{token: operatorToken, keepAlive: 50 * time.Millisecond})
	rec := &recorder{t: t}
	merchant := newClient(t, h.url, rec, h.a.TestAPIKey)
	operator := newClient(t, h.url, rec, operatorToken)
	ctx := t.Context()

	health := strict[client.Health](t, http.StatusOK)(merchant.HealthzWithResponse(ctx))
	ready := strict[client.Health](t, http.StatusOK)(merchant.ReadyzWithResponse(ctx))
	if health.Status != client.Ok || ready.Status != client.Ok {
		t.Fatalf("healthz %+v, readyz %+v", health, ready)
	}
	metrics, err := merchant.MetricsWithResponse(ctx)
	if err != nil || metrics.StatusCode() != http.StatusOK || !bytes.Contains(metrics.Body, []byte("# TYPE")) {
		t.Fatalf("metrics: %v %d %.200s", err, metrics.StatusCode(), metrics.Body)
	}

	account := strict[client.Account](t, http.StatusOK)(merchant.GetAccountWithResponse(ctx))
	if account.Id != h.a.ID || account.WebhookSecret != h.a.TestWebhookSecret {
		t.Fatalf("account %+v", account)
	}
	portal := strict[client.PortalSession](t, http.StatusCreated)(merchant.CreatePortalSessionWithResponse(ctx,
		client.CreatePortalSessionJSONRequestBody{ReturnUrl: ptr("https://shop.example.com/settings")}))
	if !strings.Contains(portal.Url, "/portal/") || time.Until(time.Unix(int64(portal.ExpiresAt), 0)) <= 0 {
		t.Fatalf("portal session %+v", portal)
	}

	// Endpoints first, so that the events below have deliveries.
	ep := strict[client.WebhookEndpoint](t, http.StatusCreated)(merchant.CreateWebhookEndpointWithResponse(ctx,
		client.CreateWebhookEndpointJSONRequestBody{Url: "http://127.0.0.1:9/hooks", Description: ptr("through the client")}))
	if ep.Secret == nil || ep.Status != client.WebhookEndpointStatusEnabled || ep.Livemode {
		t.Fatalf("created endpoint %+v", ep)
	}
	strict[client.WebhookEndpoint](t, http.StatusOK)(merchant.GetWebhookEndpointWithResponse(ctx, ep.Id))
	updated := strict[client.WebhookEndpoint](t, http.StatusOK)(merchant.UpdateWebhookEndpointWithResponse(ctx, ep.Id,
		client.UpdateWebhookEndpointJSONRequestBody{Description: ptr("renamed"), RateLimit: ptr(50)}))
	if updated.Description == nil || *updated.Description != "renamed" || updated.RateLimit == nil || *updated.RateLimit != 50 {
		t.Fatalf("updated endpoint %+v", updated)
	}
	rotated := strict[client.WebhookEndpoint](t, http.StatusOK)(merchant.RotateWebhookEndpointSecretWithResponse(ctx, ep.Id,
		client.RotateWebhookEndpointSecretJSONRequestBody{GracePeriodSeconds: ptr(60)}))
	if rotated.Secret == nil || *rotated.Secret == *ep.Secret {
		t.Fatalf("rotation kept the secret: %+v", rotated)
	}
	stats := strict[client.WebhookEndpointStats](t, http.StatusOK)(merchant.GetWebhookEndpointStatsWithResponse(ctx, ep.Id,
		&client.GetWebhookEndpointStatsParams{Window: ptr(client.GetWebhookEndpointStatsParamsWindowN1h)}))
	if stats.Endpoint != ep.Id || stats.Window != client.WebhookEndpointStatsWindowN1h || len(stats.Series) != 60 || stats.SuccessRate != nil {
		t.Fatalf("stats of a new endpoint %+v", stats)
	}
	endpoints := strict[client.WebhookEndpointList](t, http.StatusOK)(merchant.ListWebhookEndpointsWithResponse(ctx,
		&client.ListWebhookEndpointsParams{Limit: ptr(10)}))
	if len(endpoints.Data) != 1 || endpoints.Data[0].Id != ep.Id || endpoints.HasMore {
		t.Fatalf("endpoints %+v", endpoints)
	}

	// A checkout paid through a payment attempt, another that fails, and a
	// third that expires.
	var amount client.AmountInput
	if err := amount.FromAmountInput0("6700"); err != nil {
		t.Fatal(err)
	}
	newCheckout := func() client.Checkout {
		return strict[client.Checkout](t, http.StatusCreated)(merchant.CreateCheckoutWithResponse(ctx, client.CreateCheckoutJSONRequestBody{
			Amount: amount, InvoiceCurrency: "USD", TransactionDescription: ptr("1 x Item"), Metadata: &map[string]string{"order_id": "55679"}}))
	}
	chk := newCheckout()
	if chk.Amount != "6700" || chk.InvoiceCurrency != "usd" || chk.Status != client.CheckoutStatusOpen {
		t.Fatalf("checkout %+v", chk)
	}
	strict[client.Checkout](t, http.StatusOK)(merchant.GetCheckoutWithResponse(ctx, chk.Id))
	pat := strict[client.PaymentAttempt](t, http.StatusCreated)(merchant.CreatePaymentAttemptWithResponse(ctx, chk.Id,
		client.CreatePaymentAttemptJSONRequestBody{PaymentMethod: ptr("card")}))
	strict[client.PaymentAttempt](t, http.StatusOK)(merchant.ProcessPaymentAttemptWithResponse(ctx, pat.Id))
	succeeded := strict[client.PaymentAttempt](t, http.StatusOK)(merchant.SucceedPaymentAttemptWithResponse(ctx, pat.Id))
	if succeeded.Status != client.PaymentAttemptStatusSucceeded {
		t.Fatalf("attempt %+v", succeeded)
	}
	strict[client.PaymentAttempt](t, http.StatusOK)(merchant.GetPaymentAttemptWithResponse(ctx, pat.Id))
	paid := strict[client.Checkout](t, http.StatusOK)(merchant.GetCheckoutWithResponse(ctx, chk.Id))
	if paid.PaymentStatus != client.CheckoutPaymentStatusPaid {
		t.Fatalf("checkout after success %+v", paid)
	}
	other := newCheckout()
	pat2 := strict[client.PaymentAttempt](t, http.StatusCreated)(merchant.CreatePaymentAttemptWithResponse(ctx, other.Id,
		client.CreatePaymentAttemptJSONRequestBody{}))
	failed := strict[client.PaymentAttempt](t, http.StatusOK)(merchant.FailPaymentAttemptWithResponse(ctx, pat2.Id,
		client.FailPaymentAttemptJSONRequestBody{FailureCode: "card_declined", FailureMessage: ptr("The card was declined.")}))
	if failed.FailureCode == nil || *failed.FailureCode != "card_declined" {
		t.Fatalf("failed attempt %+v", failed)
	}
	expired := strict[client.Checkout](t, http.StatusOK)(merchant.ExpireCheckoutWithResponse(ctx, newCheckout().Id))
	if expired.Status != client.CheckoutStatusExpired {
		t.Fatalf("expired checkout %+v", expired)
	}
	checkouts := strict[client.CheckoutList](t, http.StatusOK)(merchant.ListCheckoutsWithResponse(ctx, &client.ListCheckoutsParams{Limit: ptr(2)}))
	if len(checkouts.Data) != 2 || !checkouts.HasMore {
		t.Fatalf("checkouts %+v", checkouts)
	}

	// Events: every one of the list decodes strictly as its own type's schema.
	evts := strict[client.EventList](t, http.StatusOK)(merchant.ListEventsWithResponse(ctx, &client.ListEventsParams{Limit: ptr(100)}))
	var types []string
	for _, e := range evts.Data {
		types = append(types, strictEvent(t, e))
	}
	for _, want := range []string{"checkout.created", "payment_attempt.created", "payment_attempt.processing",
		"payment_attempt.succeeded", "checkout.paid", "payment_attempt.failed", "checkout.expired"} {
		if !slices.Contains(types, want) {
			t.Errorf("events %v lack %s", types, want)
		}
	}
	first := strict[client.Event](t, http.StatusOK)(merchant.GetEventWithResponse(ctx, eventID(t, evts.Data[0])))
	strictEvent(t, first)
	eventTypes := strict[client.EventTypeList](t, http.StatusOK)(merchant.ListEventTypesWithResponse(ctx, &client.ListEventTypesParams{Limit: ptr(100)}))
	if len(eventTypes.Data) != 9 || eventTypes.HasMore {
		t.Fatalf("%d event types", len(eventTypes.Data))
	}
	streamFirstMessage(t, merchant)

	// Deliveries: the events above went to the endpoint.
	deliveries := strict[client.DeliveryList](t, http.StatusOK)(merchant.ListDeliveriesWithResponse(ctx,
		&client.ListDeliveriesParams{Endpoint: &ep.Id, Status: ptr(client.ListDeliveriesParamsStatusPending)}))
	if len(deliveries.Data) == 0 {
		t.Fatal("no delivery to the endpoint")
	}
	dlv := strict[client.Delivery](t, http.StatusOK)(merchant.GetDeliveryWithResponse(ctx, deliveries.Data[0].Id))
	if dlv.Attempts == nil || dlv.Endpoint == nil || *dlv.Endpoint != ep.Id {
		t.Fatalf("delivery %+v", dlv)
	}
	strict[client.Delivery](t, http.StatusAccepted)(merchant.RetryDeliveryWithResponse(ctx, dlv.Id))
	test := strict[client.Delivery](t, http.StatusAccepted)(merchant.SendTestEventWithResponse(ctx, ep.Id,
		client.SendTestEventJSONRequestBody{Type: ptr("payment_attempt.failed")}))
	if test.Status != client.DeliveryStatusPending {
		t.Fatalf("test event's delivery %+v", test)
	}
	// Reconciliation: the endpoint's deliveries are pending (nothing serves
	// its URL), so their events are listed as not delivered.
	undelivered := strict[client.EventList](t, http.StatusOK)(merchant.ListEventsWithResponse(ctx,
		&client.ListEventsParams{DeliverySuccess: ptr(client.False)}))
	if len(undelivered.Data) == 0 {
		t.Fatal("no event listed by delivery_success=false beside pending deliveries")
	}
	since := int(time.Now().Add(-time.Hour).Unix())
	replayRes, err := merchant.ReplayWebhookEndpointWithResponse(ctx, ep.Id,
		client.ReplayWebhookEndpointJSONRequestBody{Since: since, DryRun: ptr(true)})
	replay := strictAs(t, http.StatusAccepted, replayRes.JSON202)(replayRes, err)
	if replay.Matched == 0 || replay.Queued != 0 {
		t.Fatalf("replay dry run %+v", replay)
	}
	recovery := strict[client.Recovery](t, http.StatusAccepted)(merchant.RecoverWebhookEndpointWithResponse(ctx, ep.Id,
		client.RecoverWebhookEndpointJSONRequestBody{Since: since, DryRun: ptr(true)}))
	if recovery.Matched != 0 || recovery.Retried != 0 {
		t.Fatalf("recovery %+v", recovery)
	}

	// The operator API, across merchants: two endpoints in trouble, so that a
	// limit of one has more.
	second := strict[client.WebhookEndpoint](t, http.StatusCreated)(merchant.CreateWebhookEndpointWithResponse(ctx,
		client.CreateWebhookEndpointJSONRequestBody{Url: "http://127.0.0.1:9/other"}))
	if _, err := h.pool.Exec(ctx, `update webhook_endpoints set status = 'disabled', disabled_reason = 'gone',
		failing_since = now() - interval '1 hour' where id = any($1)`, []string{ep.Id, second.Id}); err != nil {
		t.Fatal(err)
	}
	conflict := strict[client.ErrorBody](t, http.StatusConflict)(merchant.RecoverWebhookEndpointWithResponse(ctx, ep.Id,
		client.RecoverWebhookEndpointJSONRequestBody{Since: since}))
	if conflict.Error.Code != "state_conflict" {
		t.Fatalf("recovering a disabled endpoint: %+v", conflict)
	}
	strict[client.ErrorBody](t, http.StatusConflict)(operator.OperatorRecoverEndpointWithResponse(ctx, ep.Id,
		client.OperatorRecoverEndpointJSONRequestBody{Since: since}))
	failing := strict[client.FailingEndpointList](t, http.StatusOK)(operator.OperatorListFailingEndpointsWithResponse(ctx,
		&client.OperatorListFailingEndpointsParams{Failing: client.OperatorListFailingEndpointsParamsFailingTrue, Limit: ptr(1)}))
	if len(failing.Data) != 1 || !failing.HasMore || failing.Object != client.FailingEndpointListObjectList {
		t.Fatalf("failing endpoints, limit 1: %+v", failing)
	}
	failing = strict[client.FailingEndpointList](t, http.StatusOK)(operator.OperatorListFailingEndpointsWithResponse(ctx,
		&client.OperatorListFailingEndpointsParams{Failing: client.OperatorListFailingEndpointsParamsFailingTrue}))
	if len(failing.Data) != 2 || failing.HasMore {
		t.Fatalf("failing endpoints: %+v", failing)
	}
	for _, f := range failing.Data {
		if f.Object != client.FailingEndpointObjectFailingEndpoint || f.MerchantId != h.a.ID || f.FailingSince == nil ||
			time.Since(time.Unix(int64(*f.FailingSince), 0)) < 59*time.Minute || f.PendingDeliveries == 0 && f.Id == ep.Id {
			t.Errorf("failing endpoint %+v", f)
		}
	}
	enableRes, err := operator.OperatorEnableEndpointWithResponse(ctx, ep.Id)
	if err != nil {
		t.Fatal(err)
	}
	enabled := strictAs(t, http.StatusOK, enableRes.JSON200)(enableRes, nil)
	if enabled.Id != ep.Id || enabled.Object != "webhook_endpoint" || enabled.Status != "enabled" {
		t.Fatalf("enable answered %+v", enabled)
	}
	strict[client.Recovery](t, http.StatusAccepted)(operator.OperatorRecoverEndpointWithResponse(ctx, ep.Id,
		client.OperatorRecoverEndpointJSONRequestBody{Since: since, DryRun: ptr(true)}))
	recent := strict[client.OperatorDeliveryList](t, http.StatusOK)(operator.OperatorListDeliveriesWithResponse(ctx,
		&client.OperatorListDeliveriesParams{Limit: ptr(1)}))
	if len(recent.Data) != 1 || !recent.HasMore || recent.Data[0].MerchantId != h.a.ID || recent.Data[0].Object != client.OperatorDeliveryObjectDelivery {
		t.Fatalf("operator deliveries %+v", recent)
	}
	retryRes, err := operator.OperatorRetryDeliveryWithResponse(ctx, recent.Data[0].Id)
	if err != nil {
		t.Fatal(err)
	}
	retried := strictAs(t, http.StatusAccepted, retryRes.JSON202)(retryRes, nil)
	if retried.Id != recent.Data[0].Id || retried.Object != "delivery" || !retried.Retried {
		t.Fatalf("operator retry answered %+v", retried)
	}

	// Errors decode as the error body too.
	missing := strict[client.ErrorBody](t, http.StatusNotFound)(merchant.GetCheckoutWithResponse(ctx, "chk_01ARZ3NDEKTSV4RRFFQ69G5FAV"))
	if missing.Error.Type != client.InvalidRequestError || missing.Error.Param == nil || *missing.Error.Param != "id" {
		t.Fatalf("404 %+v", missing)
	}

	deleteRes, err := merchant.DeleteWebhookEndpointWithResponse(ctx, second.Id)
	if err != nil {
		t.Fatal(err)
	}
	deleted := strictAs(t, http.StatusOK, deleteRes.JSON200)(deleteRes, nil)
	if !deleted.Deleted || deleted.Id != second.Id || deleted.Object != "webhook_endpoint" {
		t.Fatalf("delete answered %+v", deleted)
	}

	rec.requireEveryOperation(t)
}

// newClient is the generated client on the test server, sending key as the
// bearer token and recording each request's route and status in rec.
func newClient(t *testing.T, url string, rec *recorder, key string) *client.ClientWithResponses {
	t.Helper()
	c, err := client.NewClientWithResponses(url, client.WithHTTPClient(&recordingDoer{rec: rec}),
		client.WithRequestEditorFn(func(_ context.Context, r *http.Request) error {
			r.Header.Set("Authorization", "Bearer "+key)
			return nil
		}))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// apiResponse is what every generated response type has.
type apiResponse interface {
	StatusCode() int
	GetBody() []byte
}

// strict returns a function checking a generated call's answer: no error,
// the status want, and a body that decodes into T with no field T lacks, no
// value of another type, and nothing after it. (Its validation against the
// spec is the recordingDoer's, for every answer.)
func strict[T any](t *testing.T, want int) func(res apiResponse, err error) T {
	t.Helper()
	return func(res apiResponse, err error) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		if res.StatusCode() != want {
			t.Fatalf("status %d, want %d: %s", res.StatusCode(), want, res.GetBody())
		}
		v, err := decodeStrict[T](res.GetBody())
		if err != nil {
			t.Fatalf("decode into %T: %v: %s", v, err, res.GetBody())
		}
		return v
	}
}

// strictAs is strict for the type of a generated response's field (JSON200,
// JSON202): the inline struct the generator makes of a response schema the
// spec does not name.
func strictAs[T any](t *testing.T, want int, _ *T) func(res apiResponse, err error) T {
	t.Helper()
	return strict[T](t, want)
}

func decodeStrict[T any](b []byte) (T, error) {
	var v T
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	if err := d.Decode(&v); err != nil {
		return v, err
	}
	if d.More() {
		return v, fmt.Errorf("more than one JSON value")
	}
	return v, nil
}

// strictEvent decodes an event (a union in the generated code, which keeps
// its JSON as it came) strictly into the generated type of its own event
// type, and returns the type.
func strictEvent(t *testing.T, e client.Event) string {
	t.Helper()
	typ, err := e.Discriminator()
	if err != nil {
		t.Fatal(err)
	}
	raw, err := e.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	decoders := map[string]func([]byte) error{
		"checkout.created":           decodeAs[client.CheckoutCreatedEvent],
		"checkout.paid":              decodeAs[client.CheckoutPaidEvent],
		"checkout.failed":            decodeAs[client.CheckoutFailedEvent],
		"checkout.expired":           decodeAs[client.CheckoutExpiredEvent],
		"payment_attempt.created":    decodeAs[client.PaymentAttemptCreatedEvent],
		"payment_attempt.processing": decodeAs[client.PaymentAttemptProcessingEvent],
		"payment_attempt.succeeded":  decodeAs[client.PaymentAttemptSucceededEvent],
		"payment_attempt.failed":     decodeAs[client.PaymentAttemptFailedEvent],
		"webhook_endpoint.disabled":  decodeAs[client.WebhookEndpointDisabledEvent],
	}
	decode, ok := decoders[typ]
	if !ok {
		t.Fatalf("event of type %q, which the client has no type for: %s", typ, raw)
	}
	if err := decode(raw); err != nil {
		t.Fatalf("event %s: %v: %s", typ, err, raw)
	}
	schematest.Event(t, typ, raw)
	return typ
}

func decodeAs[T any](b []byte) error {
	_, err := decodeStrict[T](b)
	return err
}

func eventID(t *testing.T, e client.Event) string {
	t.Helper()
	raw, err := e.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	var v struct{ ID string }
	if err := json.Unmarshal(raw, &v); err != nil || v.ID == "" {
		t.Fatalf("event without id: %v: %s", err, raw)
	}
	return v.ID
}

// streamFirstMessage opens the event stream through the client and reads
// its first line (the id of the last event before it, or a keep-alive when
// no event is in stream order yet), then closes it.
func streamFirstMessage(t *testing.T, c *client.ClientWithResponses) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	res, err := c.StreamEvents(ctx, &client.StreamEventsParams{Types: ptr("checkout.paid,checkout.expired")})
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK || !strings.HasPrefix(res.Header.Get("Content-Type"), "text/event-stream") {
		t.Fatalf("stream: %d %s", res.StatusCode, res.Header.Get("Content-Type"))
	}
	line, err := bufio.NewReader(res.Body).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "id: evt_") && line != ": keep-alive\n" {
		t.Fatalf("stream's first line %q (%v)", line, err)
	}
}

func ptr[T any](v T) *T { return &v }

// recorder keeps the method, path and status of every request the clients
// sent, and fails t for each answer that openapi.yaml does not describe.
type recorder struct {
	t     *testing.T
	mu    sync.Mutex
	calls []string
}

type recordingDoer struct{ rec *recorder }

// Do sends r, records it, and validates the answer against the spec
// (schematest.Response): a JSON body is read whole here and handed on
// unread; any other (the event stream, /metrics' text) is left to the
// caller, its media type checked.
func (d *recordingDoer) Do(r *http.Request) (*http.Response, error) {
	res, err := http.DefaultClient.Do(r)
	if err != nil {
		return res, err
	}
	d.rec.mu.Lock()
	d.rec.calls = append(d.rec.calls, fmt.Sprintf("%s %s %d", r.Method, r.URL.Path, res.StatusCode))
	d.rec.mu.Unlock()
	var body []byte
	if mt, _, _ := mime.ParseMediaType(res.Header.Get("Content-Type")); mt == "application/json" {
		body, err = io.ReadAll(res.Body)
		res.Body.Close()
		if err != nil {
			return nil, err
		}
		res.Body = io.NopCloser(bytes.NewReader(body))
	}
	if err := schematest.Response(r.Method, r.URL.Path, res.StatusCode, res.Header.Get("Content-Type"), body); err != nil {
		d.rec.t.Errorf("%s %s answered what openapi.yaml does not describe: %v\n%s", r.Method, r.URL.Path, err, body)
	}
	return res, nil
}

// requireEveryOperation fails the test for each operation of
// schema/openapi.yaml that no recorded request reached with a 2xx.
func (rec *recorder) requireEveryOperation(t *testing.T) {
	t.Helper()
	ops := specOperations(t)
	reached := map[string]bool{}
	for _, call := range rec.calls {
		var method, path string
		var status int
		if _, err := fmt.Sscanf(call, "%s %s %d", &method, &path, &status); err != nil {
			t.Fatal(err)
		}
		if status/100 != 2 {
			continue
		}
		if op := method + " " + path; slices.Contains(ops, op) { // a literal path
			reached[op] = true
			continue
		}
		for _, op := range ops {
			m, tmpl, _ := strings.Cut(op, " ")
			re := regexp.MustCompile("^" + regexp.MustCompile(`\\\{[^}]+\\\}`).ReplaceAllString(regexp.QuoteMeta(tmpl), "[^/]+") + "$")
			if m == method && re.MatchString(path) && !slices.Contains(ops, method+" "+path) {
				reached[op] = true
			}
		}
	}
	for _, op := range ops {
		if !reached[op] {
			t.Errorf("no call through the client reached %s with a 2xx", op)
		}
	}
}

// specOperations lists "METHOD /path" for every operation of
// schema/openapi.yaml, read from its paths section (a path at two spaces'
// indent, its methods at four).
func specOperations(t *testing.T) []string {
	t.Helper()
	var ops []string
	var path string
	sc := bufio.NewScanner(bytes.NewReader(schema.OpenAPI()))
	inPaths := false
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "paths:":
			inPaths = true
		case inPaths && line != "" && !strings.HasPrefix(line, " "):
			inPaths = false
		case inPaths && strings.HasPrefix(line, "  /") && strings.HasSuffix(line, ":"):
			path = strings.TrimSuffix(strings.TrimSpace(line), ":")
		case inPaths && regexp.MustCompile(`^    (get|post|put|patch|delete):$`).MatchString(line):
			ops = append(ops, strings.ToUpper(strings.TrimSuffix(strings.TrimSpace(line), ":"))+" "+path)
		}
	}
	if len(ops) < 30 {
		t.Fatalf("read only %d operations from openapi.yaml", len(ops))
	}
	return ops
}
