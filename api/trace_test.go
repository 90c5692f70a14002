package api_test

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/attribute"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/hookline/hookline/api"
	"github.com/hookline/hookline/events/traceparent"
)

// tracedHarness is the API with a tracer whose sampler is sampler and whose
// ended spans the returned recorder keeps.
func tracedHarness(t *testing.T, sampler sdktrace.Sampler) (*harness, *tracetest.SpanRecorder) {
	t.Helper()
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec), sdktrace.WithSampler(sampler))
	t.Cleanup(func() { _ = tp.Shutdown(t.Context()) })
	return newHarnessWith(t, harnessOptions{token: operatorToken, tracer: tp.Tracer("api")}), rec
}

// awaitSpans waits, bounded, until rec holds n ended spans (a request's span
// ends as its handler returns, a moment after the client may have read the
// response), and returns them.
func awaitSpans(t *testing.T, rec *tracetest.SpanRecorder, n int) []sdktrace.ReadOnlySpan {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		spans := rec.Ended()
		if len(spans) >= n {
			return spans
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d spans ended, want %d", len(spans), n)
		}
	}
}

// The API is a public endpoint: a client's traceparent neither chooses the
// trace of the request's span nor its sampling. The span is the root of a
// trace of hookline's, which the operator's sampler decides, with a link to
// the client's span. A client claiming "sampled" cannot force recording
// (parentbased_always_off), nor "not sampled" hide a request from it
// (parentbased_always_on).
func TestRequestSpansIgnoreTheClientsTraceparent(t *testing.T) {
	t.Parallel()

	const sampled = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	const unsampled = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"
	t.Run("sampled by hookline", func(t *testing.T) {
		t.Parallel()
		h, rec := tracedHarness(t, sdktrace.ParentBased(sdktrace.AlwaysSample()))
		h.do("GET", "/v1/account", h.a.TestAPIKey, nil, "traceparent", unsampled).must(t, http.StatusOK)
		spans := awaitSpans(t, rec, 1)
		if len(spans) != 1 {
			t.Fatalf("%d spans, want the request's", len(spans))
		}
		s, client := spans[0], traceparent.Parse(unsampled)
		if s.Parent().IsValid() || s.SpanContext().TraceID() == client.TraceID() || !s.SpanContext().IsSampled() {
			t.Errorf("span of trace %s, parent %v, sampled %v: want the sampled root of a new trace", s.SpanContext().TraceID(), s.Parent(), s.SpanContext().IsSampled())
		}
		if links := s.Links(); len(links) != 1 || links[0].SpanContext.TraceID() != client.TraceID() || links[0].SpanContext.SpanID() != client.SpanID() {
			t.Errorf("links %v, want one to the client's span %s", links, unsampled)
		}
	})
	t.Run("not sampled by hookline", func(t *testing.T) {
		t.Parallel()
		h, rec := tracedHarness(t, sdktrace.ParentBased(sdktrace.NeverSample()))
		h.do("GET", "/v1/account", h.a.TestAPIKey, nil, "traceparent", sampled).must(t, http.StatusOK)
		// A span recorded would have ended before the client read the
		// response: ServeHTTP ends it before net/http sends the buffered
		// (small) body.
		if spans := rec.Ended(); len(spans) != 0 {
			t.Errorf("%d spans recorded with parentbased_always_off (the client's traceparent says sampled), want none", len(spans))
		}
	})
}

// /healthz, /readyz and /metrics make no spans, on the API and on a worker
// node's (NewHealth): probes and scrapes every few seconds would drown the
// requests' traces.
func TestOperationalRoutesAreNotTraced(t *testing.T) {
	t.Parallel()

	h, rec := tracedHarness(t, sdktrace.AlwaysSample())
	health := httptest.NewServer(api.NewHealth(api.Config{Pool: h.pool, Metrics: prometheus.NewRegistry(),
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Tracer: sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec)).Tracer("api")}))
	t.Cleanup(health.Close)
	for _, base := range []string{h.url, health.URL} {
		for _, path := range []string{"/healthz", "/readyz", "/metrics"} {
			res, err := http.Get(base + path)
			if err != nil {
				t.Fatal(err)
			}
			_, _ = io.Copy(io.Discard, res.Body)
			res.Body.Close()
			if res.StatusCode != http.StatusOK {
				t.Errorf("GET %s%s: %d", base, path, res.StatusCode)
			}
		}
	}
	// Then a traced request on the same connection, served after them.
	h.do("GET", "/v1/account", h.a.TestAPIKey, nil).must(t, http.StatusOK)
	spans := awaitSpans(t, rec, 1)
	for _, s := range spans {
		if s.Name() != "GET /v1/account" {
			t.Errorf("a span %q, want only GET /v1/account's", s.Name())
		}
	}
}

// A retry's request span (the merchant's, the operator's) names the
// delivery it queued and the attempt it will be, in an event: the attempt's
// span, a descendant of the event's original request, carries the same
// delivery id and attempt number.
func TestRetrySpansNameTheAttempt(t *testing.T) {
	t.Parallel()

	h, rec := tracedHarness(t, sdktrace.AlwaysSample())
	decodeEndpoint(t, h.do("POST", "/v1/webhook_endpoints", h.a.TestAPIKey,
		map[string]any{"url": "http://127.0.0.1:9/hooks"}).must(t, http.StatusCreated))
	chk := h.checkout(map[string]any{})
	h.attempt(chk, map[string]any{})
	data, _ := h.do("GET", "/v1/deliveries", h.a.TestAPIKey, nil).must(t, http.StatusOK).list(t)
	if len(data) != 1 {
		t.Fatalf("%d deliveries, want 1", len(data))
	}
	var dlv struct{ ID string }
	if err := json.Unmarshal(data[0], &dlv); err != nil {
		t.Fatal(err)
	}
	h.do("POST", "/v1/deliveries/"+dlv.ID+"/retry", h.a.TestAPIKey, nil).must(t, http.StatusAccepted)
	h.do("POST", "/v1/operator/deliveries/"+dlv.ID+"/retry", "", nil, "Authorization", "Bearer "+operatorToken).must(t, http.StatusAccepted)
	for _, route := range []string{"POST /v1/deliveries/{id}/retry", "POST /v1/operator/deliveries/{id}/retry"} {
		var found bool
		for deadline := time.Now().Add(10 * time.Second); !found && time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
			for _, s := range rec.Ended() {
				if s.Name() != route {
					continue
				}
				found = true
				evts := s.Events()
				if len(evts) != 1 || evts[0].Name != "delivery retried" || !slices.Contains(evts[0].Attributes, attribute.String("hookline.delivery.id", dlv.ID)) ||
					!slices.Contains(evts[0].Attributes, attribute.Int("hookline.attempt", 1)) {
					t.Errorf("%s's events %v, want a delivery retried naming %s, attempt 1", route, evts, dlv.ID)
				}
			}
		}
		if !found {
			t.Errorf("no span of %s", route)
		}
	}
}
