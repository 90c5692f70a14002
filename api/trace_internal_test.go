package api

import (
	"io"
	"log"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
)

// A handler that panics ends its request's span as an error, not as the
// 200 the status recorder starts from: net/http recovers the panic and
// drops the connection, and the client gets no response.
func TestAPanicEndsTheRequestSpanAsAnError(t *testing.T) {
	t.Parallel()

	rec := tracetest.NewSpanRecorder()
	s := newServer(Config{Metrics: prometheus.NewRegistry(), Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Tracer: sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec)).Tracer("api")})
	s.mux.HandleFunc("GET /panic", func(http.ResponseWriter, *http.Request) { panic("a bug") })
	srv := httptest.NewUnstartedServer(s)
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // net/http logs the panic's stack
	srv.Start()
	t.Cleanup(srv.Close)

	if res, err := http.Get(srv.URL + "/panic"); err == nil {
		res.Body.Close()
		t.Fatalf("GET /panic answered %d, want the connection dropped", res.StatusCode)
	}
	// The span ended before the panic reached net/http, which then closed
	// the connection that the client saw fail.
	spans := rec.Ended()
	if len(spans) != 1 || spans[0].Status().Code != codes.Error {
		for _, sp := range spans {
			t.Logf("span %s: status %v", sp.Name(), sp.Status())
		}
		t.Errorf("%d spans, want GET /panic's, ended as an error", len(spans))
	}
}
