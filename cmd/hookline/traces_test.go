package main

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/oklog/ulid/v2"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/hookline/hookline/events/traceparent"
	"github.com/hookline/hookline/migrations/dbtest"
)

// collector is an OTLP/HTTP trace receiver: it decodes each
// ExportTraceServiceRequest posted to it (protobuf) and keeps its spans,
// with the service.name of their resource.
type collector struct {
	srv      *httptest.Server
	mu       sync.Mutex
	requests int
	services map[string]bool
	spans    []*tracepb.Span
}

func newCollector(t *testing.T) *collector {
	t.Helper()
	c := &collector{services: map[string]bool{}}
	c.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var req coltracepb.ExportTraceServiceRequest
		if r.URL.Path != "/v1/traces" || r.Header.Get("Content-Type") != "application/x-protobuf" {
			t.Errorf("the exporter posted %s %s (%s), want OTLP/HTTP protobuf to /v1/traces", r.Method, r.URL.Path, r.Header.Get("Content-Type"))
		} else if err := proto.Unmarshal(body, &req); err != nil {
			t.Errorf("decode ExportTraceServiceRequest: %v", err)
		}
		c.mu.Lock()
		c.requests++
		for _, rs := range req.ResourceSpans {
			for _, kv := range rs.GetResource().GetAttributes() {
				if kv.Key == "service.name" {
					c.services[kv.Value.GetStringValue()] = true
				}
			}
			for _, ss := range rs.ScopeSpans {
				c.spans = append(c.spans, ss.Spans...)
			}
		}
		c.mu.Unlock()
		out, _ := proto.Marshal(&coltracepb.ExportTraceServiceResponse{})
		w.Header().Set("Content-Type", "application/x-protobuf")
		_, _ = w.Write(out)
	}))
	t.Cleanup(c.srv.Close)
	return c
}

// attr is the value of a span's attribute key, as text ("" if absent).
func attr(s *tracepb.Span, key string) string {
	for _, kv := range s.Attributes {
		if kv.Key == key {
			return anyValue(kv.Value)
		}
	}
	return ""
}

func anyValue(v *commonpb.AnyValue) string {
	switch x := v.Value.(type) {
	case *commonpb.AnyValue_StringValue:
		return x.StringValue
	case *commonpb.AnyValue_IntValue:
		return fmt.Sprint(x.IntValue)
	case *commonpb.AnyValue_BoolValue:
		return fmt.Sprint(x.BoolValue)
	}
	return v.String()
}

// webhookReceiver is an endpoint that answers 200 and keeps, by
// webhook-id (the event id), the traceparent each delivery carried.
type webhookReceiver struct {
	srv    *httptest.Server
	mu     sync.Mutex
	traces map[string][]string
}

func newWebhookReceiver(t *testing.T) *webhookReceiver {
	t.Helper()
	r := &webhookReceiver{traces: map[string][]string{}}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.mu.Lock()
		r.traces[req.Header.Get("webhook-id")] = append(r.traces[req.Header.Get("webhook-id")], req.Header.Get("traceparent"))
		r.mu.Unlock()
	}))
	t.Cleanup(r.srv.Close)
	return r
}

// await waits, bounded, until every event of ids reached the receiver.
func (r *webhookReceiver) await(t *testing.T, ids []string) map[string][]string {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		r.mu.Lock()
		missing := 0
		for _, id := range ids {
			if len(r.traces[id]) == 0 {
				missing++
			}
		}
		got := map[string][]string{}
		for id, tps := range r.traces {
			got[id] = append([]string(nil), tps...)
		}
		r.mu.Unlock()
		if missing == 0 {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of the events %v never reached the receiver", missing, ids)
		}
	}
}

// postAs POSTs body to the API at addr with key, and with a client's
// traceparent unless tp is "".
func postAs(t *testing.T, addr, key, path, body, tp string) (int, []byte) {
	t.Helper()
	req, _ := http.NewRequest("POST", "http://"+addr+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/json")
	if tp != "" {
		req.Header.Set("traceparent", tp)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Error(err)
		return 0, nil
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, b
}

// deref is *s, or "<nil>".
func deref(s *string) string {
	if s == nil {
		return "<nil>"
	}
	return *s
}

// tracedEvent is an event as stored, with the trace context it kept.
type tracedEvent struct {
	id, typ string
	trace   *string
}

// merchantEvents is every event of the pool's merchants, oldest first.
func merchantEvents(t *testing.T, pool *pgxpool.Pool) []tracedEvent {
	t.Helper()
	rows, err := pool.Query(context.Background(), `select id, type, traceparent from events order by id`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []tracedEvent
	for rows.Next() {
		var e tracedEvent
		if err := rows.Scan(&e.id, &e.typ, &e.trace); err != nil {
			t.Fatal(err)
		}
		out = append(out, e)
	}
	return out
}

// TestTracesOfACheckoutPayment boots hookline with OTEL_EXPORTER_OTLP_ENDPOINT
// pointing at a real OTLP/HTTP receiver, runs checkout → payment attempt →
// succeed against an endpoint, shuts hookline down as SIGTERM does (which
// flushes the spans), and reads the span tree: each request's server span
// (the root of a new trace, linked to the client's traceparent), each event's fan-out span and each
// delivery attempt's client span, both children of the request that wrote
// the event, with their attributes; the event row keeps the request's
// context; the receiver got a traceparent naming the attempt's span. The
// checkouts are created by concurrent requests, each with a trace of its
// own, which the checkout batcher may write in one transaction: each
// checkout's event must keep its own request's trace. (Sixteen concurrent
// requests make the batcher share transactions: four run at once at most.)
func TestTracesOfACheckoutPayment(t *testing.T) {
	t.Parallel()

	pool, url := migratedPool(t)
	merchant := dbtest.Merchant(t, pool, "Traced")
	otlp := newCollector(t)
	receiver := newWebhookReceiver(t)
	m, stop := launch(t, map[string]string{"DATABASE_URL": url, "OTEL_EXPORTER_OTLP_ENDPOINT": otlp.srv.URL,
		"OTEL_SERVICE_NAME": "hookline-traced"}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	t.Cleanup(stop)

	// clientTrace is the traceparent a client sends with request i: a
	// sampled span of its own trace.
	clientTrace := func(i int) string {
		return fmt.Sprintf("00-%032x-%016x-01", 0xc0ffee00+i, 0xbeef00+i)
	}
	post := func(path, body, tp string, want int) []byte {
		t.Helper()
		code, b := postAs(t, m.Addr(), merchant.TestAPIKey, path, body, tp)
		if code != want {
			t.Errorf("POST %s: %d %s", path, code, b)
		}
		return b
	}
	// An unauthenticated request whose path is not UTF-8: its span goes in
	// the same batch as the checkouts', which the exporter must still be
	// able to encode (OTLP's strings are UTF-8).
	res, err := http.Get("http://" + m.Addr() + "/%ff%00")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 400 {
		t.Errorf("GET /%%ff%%00: %d, want 400", res.StatusCode)
	}
	var endpoint struct{ ID string }
	_ = json.Unmarshal(post("/v1/webhook_endpoints", `{"url":"`+receiver.srv.URL+`/hook","enabled_events":["*"]}`, "", 201), &endpoint)

	const checkouts = 16
	ids := make([]string, checkouts)
	var wg sync.WaitGroup
	for i := range checkouts {
		wg.Go(func() {
			var c struct{ ID string }
			_ = json.Unmarshal(post("/v1/checkouts", `{"amount":"100","invoice_currency":"usd"}`, clientTrace(i), 201), &c)
			ids[i] = c.ID
		})
	}
	wg.Wait()
	var attempt struct{ ID string }
	_ = json.Unmarshal(post("/v1/checkouts/"+ids[0]+"/payment_attempts", "", clientTrace(checkouts), 201), &attempt)
	post("/v1/payment_attempts/"+attempt.ID+"/succeed", "", clientTrace(checkouts+1), 200)
	if t.Failed() {
		t.FailNow()
	}

	evts := merchantEvents(t, pool)
	var eventIDs []string
	for _, e := range evts {
		eventIDs = append(eventIDs, e.id)
	}
	sent := receiver.await(t, eventIDs)
	stop() // SIGTERM's drain: River and the API stop, then the spans are flushed

	otlp.mu.Lock()
	defer otlp.mu.Unlock()
	if !otlp.services["hookline-traced"] || len(otlp.services) != 1 {
		t.Errorf("spans of the services %v, want hookline-traced (OTEL_SERVICE_NAME)", otlp.services)
	}
	spanID := func(s *tracepb.Span) string { return hex.EncodeToString(s.SpanId) }
	traceID := func(s *tracepb.Span) string { return hex.EncodeToString(s.TraceId) }
	parentOf := func(s *tracepb.Span) string { return hex.EncodeToString(s.ParentSpanId) }
	// The server span of each client request, by the client's traceparent.
	requests := map[string]*tracepb.Span{}
	fanOuts, attempts := map[string]*tracepb.Span{}, map[string][]*tracepb.Span{}
	for _, s := range otlp.spans {
		switch {
		case s.Kind == tracepb.Span_SPAN_KIND_SERVER && len(s.Links) == 1:
			// A root of hookline's, linked to the client's span (the API is
			// a public endpoint).
			if len(s.ParentSpanId) > 0 {
				t.Errorf("the server span %s has the parent %s, want a root", s.Name, parentOf(s))
			}
			l := s.Links[0]
			if hex.EncodeToString(l.TraceId) == traceID(s) {
				t.Errorf("the server span %s has its client's trace id %s", s.Name, traceID(s))
			}
			requests[fmt.Sprintf("00-%s-%s-01", hex.EncodeToString(l.TraceId), hex.EncodeToString(l.SpanId))] = s
		case s.Name == "fan-out":
			fanOuts[attr(s, "hookline.event.id")] = s
		case s.Name == "delivery attempt":
			attempts[attr(s, "hookline.event.id")] = append(attempts[attr(s, "hookline.event.id")], s)
		}
	}
	unreadable := 0
	for _, s := range otlp.spans {
		if s.Kind == tracepb.Span_SPAN_KIND_SERVER && s.Name == "GET" && attr(s, "url.path") == "/\uFFFD" && attr(s, "http.response.status_code") == "400" {
			unreadable++
		}
	}
	if unreadable != 1 {
		t.Errorf("%d spans of GET /%%ff%%00 with url.path %q, want 1", unreadable, "/\uFFFD")
	}
	// Which request wrote each event: checkout i's checkout.created, the
	// attempt's payment_attempt.created, and the rest (succeeded, paid) the
	// succeed request.
	causes := map[string]string{}
	routes := map[string]string{}
	for _, e := range evts {
		var object string // the id of the object the event is about
		if err := pool.QueryRow(context.Background(), `select convert_from(payload, 'UTF8')::jsonb->'data'->>'id' from events where id = $1`,
			e.id).Scan(&object); err != nil {
			t.Fatal(err)
		}
		switch {
		case e.typ == "checkout.created":
			for i, id := range ids {
				if id == object {
					causes[e.id], routes[e.id] = clientTrace(i), "POST /v1/checkouts"
				}
			}
		case e.typ == "payment_attempt.created":
			causes[e.id], routes[e.id] = clientTrace(checkouts), "POST /v1/checkouts/{id}/payment_attempts"
		default:
			causes[e.id], routes[e.id] = clientTrace(checkouts+1), "POST /v1/payment_attempts/{id}/succeed"
		}
	}
	if len(evts) < checkouts+3 {
		t.Fatalf("%d events, want the %d checkouts' checkout.created, payment_attempt.created and the succeed's", len(evts), checkouts)
	}

	for _, e := range evts {
		req := requests[causes[e.id]]
		if req == nil {
			t.Errorf("%s %s: no server span links to its client's traceparent %s", e.typ, e.id, causes[e.id])
			continue
		}
		if req.Name != routes[e.id] || attr(req, "http.route") != strings.TrimPrefix(routes[e.id], "POST ") ||
			attr(req, "http.request.method") != "POST" || !strings.HasPrefix(attr(req, "http.response.status_code"), "20") {
			t.Errorf("%s's request span: %s, route %q, method %q, status %q; want %s", e.typ, req.Name, attr(req, "http.route"),
				attr(req, "http.request.method"), attr(req, "http.response.status_code"), routes[e.id])
		}
		if want := traceparent.Format([16]byte(req.TraceId), [8]byte(req.SpanId), 1); e.trace == nil || *e.trace != want {
			t.Errorf("%s %s keeps the trace context %s, want its request's %s", e.typ, e.id, deref(e.trace), want)
		}
		fan := fanOuts[e.id]
		if fan == nil || traceID(fan) != traceID(req) || parentOf(fan) != spanID(req) ||
			attr(fan, "hookline.event.type") != e.typ || attr(fan, "hookline.deliveries") != "1" {
			t.Errorf("%s's fan-out span %v, want a child of its request %s with 1 delivery", e.typ, fan, spanID(req))
		}
		if len(attempts[e.id]) != 1 {
			t.Errorf("%s: %d attempt spans, want 1", e.typ, len(attempts[e.id]))
			continue
		}
		a := attempts[e.id][0]
		for key, want := range map[string]string{"hookline.event.type": e.typ, "hookline.endpoint.id": endpoint.ID,
			"hookline.attempt": "1", "http.response.status_code": "200", "hookline.outcome": "succeeded"} {
			if got := attr(a, key); got != want {
				t.Errorf("%s's attempt span: %s = %q, want %q", e.typ, key, got, want)
			}
		}
		if a.Kind != tracepb.Span_SPAN_KIND_CLIENT || traceID(a) != traceID(req) || parentOf(a) != spanID(req) {
			t.Errorf("%s's attempt span: kind %v, trace %s, parent %s; want a client span, child of its request %s/%s",
				e.typ, a.Kind, traceID(a), parentOf(a), traceID(req), spanID(req))
		}
		if want := fmt.Sprintf("00-%s-%s-01", traceID(a), spanID(a)); len(sent[e.id]) != 1 || sent[e.id][0] != want {
			t.Errorf("%s reached the receiver with traceparent %v, want its attempt span's %s", e.typ, sent[e.id], want)
		}
	}
}

// TestTracesOff boots hookline with the SDK disabled (OTEL_SDK_DISABLED)
// although OTEL_EXPORTER_OTLP_ENDPOINT names a receiver: nothing is
// exported, events keep no trace context, and every delivery still carries
// a valid traceparent, whose trace id is its event id's ULID and whose flags
// say sampled: a receiver's parent-based sampler then records its handler.
func TestTracesOff(t *testing.T) {
	t.Parallel()

	pool, url := migratedPool(t)
	merchant := dbtest.Merchant(t, pool, "Untraced")
	otlp := newCollector(t)
	receiver := newWebhookReceiver(t)
	m, stop := launch(t, map[string]string{"DATABASE_URL": url, "OTEL_EXPORTER_OTLP_ENDPOINT": otlp.srv.URL, "OTEL_SDK_DISABLED": "true"},
		slog.New(slog.NewTextHandler(io.Discard, nil)))
	t.Cleanup(stop)
	if m.traces != nil {
		t.Fatal("a tracer provider with OTEL_SDK_DISABLED=true")
	}
	if code, body := postAs(t, m.Addr(), merchant.TestAPIKey, "/v1/webhook_endpoints", `{"url":"`+receiver.srv.URL+`/hook","enabled_events":["*"]}`, ""); code != 201 {
		t.Fatalf("register endpoint: %d %s", code, body)
	}
	for range 2 {
		if code, body := postAs(t, m.Addr(), merchant.TestAPIKey, "/v1/checkouts", `{"amount":"100","invoice_currency":"usd"}`, ""); code != 201 {
			t.Fatalf("create checkout: %d %s", code, body)
		}
	}
	evts := merchantEvents(t, pool)
	var ids []string
	for _, e := range evts {
		ids = append(ids, e.id)
		if e.trace != nil {
			t.Errorf("event %s keeps the trace context %s with tracing off", e.id, *e.trace)
		}
	}
	sent := receiver.await(t, ids)
	stop()
	for _, id := range ids {
		sc := traceparent.Parse(sent[id][0])
		want, err := ulid.ParseStrict(strings.TrimPrefix(id, "evt_"))
		if err != nil {
			t.Fatal(err)
		}
		if !sc.IsValid() || sc.TraceID() != [16]byte(want) || !sc.IsSampled() {
			t.Errorf("event %s reached the receiver with traceparent %q, want the event's ULID as the trace id, sampled (the receiver's sampler decides)", id, sent[id][0])
		}
	}
	otlp.mu.Lock()
	defer otlp.mu.Unlock()
	if otlp.requests != 0 {
		t.Errorf("the OTLP receiver got %d requests with tracing off", otlp.requests)
	}
}
