package api

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/go-playground/validator/v10"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/hookline/hookline/api/portal"
	"github.com/hookline/hookline/api/stream"
	"github.com/hookline/hookline/delivery"
	"github.com/hookline/hookline/events"
)

// Server is hookline's REST API.
type Server struct {
	checkouts     *events.CheckoutBatcher
	dispatcher    *delivery.Dispatcher
	endpoints     *delivery.Endpoints
	failures      *authFailures
	trusted       []netip.Prefix
	guard         *delivery.Guard
	keyring       *events.Keyring
	limiters      *limiters
	logger        *slog.Logger
	metrics       *requestMetrics
	metricsRoute  bool
	mux           *http.ServeMux
	operatorToken string
	pool          *pgxpool.Pool
	portal        *portal.Portal
	registry      *prometheus.Registry
	service       *events.Service
	streams       *stream.Hub
	keepAlive     time.Duration
	tracer        trace.Tracer // nil: tracing off
	validate      *validator.Validate
}

// Config is what the API needs from the process.
type Config struct {
	Checkouts  *events.CheckoutBatcher
	Dispatcher *delivery.Dispatcher
	Endpoints  *delivery.Endpoints
	Guard      *delivery.Guard
	Keyring    *events.Keyring
	Logger     *slog.Logger
	// Metrics is the registry /metrics serves; the API adds its own to it.
	Metrics *prometheus.Registry
	// MetricsElsewhere leaves /metrics out of the routes (a 404): the process
	// serves it on its own listener (HOOKLINE_METRICS_ADDR), which operators
	// can keep off the network merchants reach.
	MetricsElsewhere bool
	// OperatorToken enables the operator API; empty leaves it off.
	OperatorToken string
	Pool          *pgxpool.Pool
	// PortalFrameAncestors are the origins that may frame the merchant
	// portal (HOOKLINE_PORTAL_FRAME_ANCESTORS); none by default.
	PortalFrameAncestors []string
	// PublicURL is where browsers reach hookline (HOOKLINE_PUBLIC_URL), the
	// base of portal links; empty, the origin of the request creating one.
	PublicURL string
	RateLimit RateLimit
	Service   *events.Service
	// Streams is the process's event streams (GET /v1/events/stream); the
	// process closes it when it stops, which ends them.
	Streams *stream.Hub
	// StreamKeepAlive is how often an idle stream sends a comment (zero:
	// every 15 s).
	StreamKeepAlive time.Duration
	// TrustedProxies are the load balancers and reverse proxies in front of
	// the API (HOOKLINE_TRUSTED_PROXIES): a request from one is counted
	// against the client address it appended to X-Forwarded-For, not its own,
	// by the failed-authentication limit (clientAddr).
	TrustedProxies []netip.Prefix
	// Tracer makes a server span of each request (README, "Traces"); nil,
	// tracing is off and none is made.
	Tracer trace.Tracer
}

// New returns the API's handler with every route registered.
func New(cfg Config) *Server {
	s := newServer(cfg)
	s.routes()
	return s
}

func newServer(cfg Config) *Server {
	s := &Server{
		checkouts:     cfg.Checkouts,
		dispatcher:    cfg.Dispatcher,
		endpoints:     cfg.Endpoints,
		failures:      newAuthFailures(),
		trusted:       cfg.TrustedProxies,
		guard:         cfg.Guard,
		keyring:       cfg.Keyring,
		limiters:      newLimiters(cfg.RateLimit),
		logger:        cfg.Logger,
		metrics:       newRequestMetrics(cfg.Metrics),
		metricsRoute:  !cfg.MetricsElsewhere,
		mux:           http.NewServeMux(),
		operatorToken: cfg.OperatorToken,
		pool:          cfg.Pool,
		registry:      cfg.Metrics,
		service:       cfg.Service,
		streams:       cfg.Streams,
		keepAlive:     cmp.Or(cfg.StreamKeepAlive, defaultKeepAlive),
		tracer:        cfg.Tracer,
		validate:      newValidator(),
	}
	s.portal = portal.New(portal.Config{
		Pool: cfg.Pool, Endpoints: cfg.Endpoints, Dispatcher: cfg.Dispatcher, Service: cfg.Service, Logger: cfg.Logger,
		FrameAncestors: cfg.PortalFrameAncestors, TrustedProxies: cfg.TrustedProxies, PublicURL: cfg.PublicURL,
		Production: cfg.Guard != nil && cfg.Guard.Production,
		Admit:      s.admitPortal, Limit: s.limitPortal, Once: s.portalOnce,
	})
	return s
}

// admitPortal is the portal's Config.Admit: a portal link's token and
// session cookie count towards the failure limit of the client's address
// like API keys (authFailures.begin); the portal answers the 429 itself,
// with a page.
func (s *Server) admitPortal(r *http.Request) (func(failed bool), time.Duration, error) {
	a, wait, err := s.failures.begin(r.Context(), clientAddr(r, s.trusted))
	if err != nil || a == nil {
		return nil, wait, err
	}
	return a.done, 0, nil
}

// limitPortal is the portal's Config.Limit: a portal form spends from the
// bucket of the API key of its session's merchant and mode, as the API
// request it stands for would (admit).
func (s *Server) limitPortal(scope events.Scope) (time.Duration, bool) {
	ok, wait := s.limiters.allow(limiterKey(scope), time.Now())
	return wait, ok
}

// portalOnce is the portal's Config.Once, on the API's idempotency keys:
// the form's key (under "portal ", apart from any Idempotency-Key header)
// claimed in the form's own transaction, with the result stored for the
// replay. A key used with another form, or claimed by a request that
// another has just expired, is a replay without a result: either way the
// form was already submitted.
func (s *Server) portalOnce(ctx context.Context, tx pgx.Tx, scope events.Scope, form, key string, do func() (string, error)) (string, bool, error) {
	key = "portal " + key
	hash := sha256.Sum256([]byte("portal form " + form))
	stored, err := claimIdempotencyKey(ctx, tx, s.keyring, scope, key, hash[:])
	if e, ok := errors.AsType[*Error](err); ok && e.Status == http.StatusConflict {
		return "", true, nil
	}
	if err != nil {
		return "", false, err
	}
	if stored != nil {
		return string(stored.body), true, nil
	}
	result, err := do()
	if err != nil {
		return "", false, err
	}
	return result, false, storeIdempotentResponse(ctx, tx, s.keyring, scope, key, http.StatusOK, []byte(result))
}

// NewHealth returns a handler of the operational routes only (/healthz,
// /readyz, and /metrics unless MetricsElsewhere): what a delivery-only node
// serves.
func NewHealth(cfg Config) *Server {
	s := newServer(cfg)
	s.healthRoutes()
	return s
}

func (s *Server) healthRoutes() {
	s.mux.HandleFunc("GET /healthz", s.healthz)
	s.mux.HandleFunc("GET /readyz", s.readyz)
	if s.metricsRoute {
		s.mux.Handle("GET /metrics", Metrics(s.registry))
	}
}

// Metrics is the handler of GET /metrics: reg in Prometheus's text format.
// The API serves it among its routes, or the process on a listener of its own.
func Metrics(reg *prometheus.Registry) http.Handler {
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
}

// routes is the route table: one line per endpoint of contract §2.
func (s *Server) routes() {
	s.healthRoutes()

	s.read("GET /v1/account", s.getAccount)
	s.read("GET /v1/event_types", s.listEventTypes)
	s.read("GET /v1/events", s.listEvents)
	s.read("GET /v1/events/{id}", s.getEvent)
	s.mux.HandleFunc("GET /v1/events/stream", s.streamEvents)

	s.writeBatched("POST /v1/checkouts", http.StatusCreated, s.createCheckout, s.createCheckoutBatched)
	s.read("GET /v1/checkouts", s.listCheckouts)
	s.read("GET /v1/checkouts/{id}", s.getCheckout)
	s.write("POST /v1/checkouts/{id}/expire", http.StatusOK, s.expireCheckout)
	s.write("POST /v1/checkouts/{id}/payment_attempts", http.StatusCreated, s.createAttempt)

	s.read("GET /v1/payment_attempts/{id}", s.getAttempt)
	s.write("POST /v1/payment_attempts/{id}/process", http.StatusOK, s.transitionAttempt(events.AttemptProcessing))
	s.write("POST /v1/payment_attempts/{id}/succeed", http.StatusOK, s.transitionAttempt(events.AttemptSucceeded))
	s.write("POST /v1/payment_attempts/{id}/fail", http.StatusOK, s.failAttempt)

	s.writePrepared("POST /v1/webhook_endpoints", http.StatusCreated, s.createEndpoint)
	s.read("GET /v1/webhook_endpoints", s.listEndpoints)
	s.read("GET /v1/webhook_endpoints/{id}", s.getEndpoint)
	s.read("GET /v1/webhook_endpoints/{id}/stats", s.endpointStats)
	s.writePrepared("PATCH /v1/webhook_endpoints/{id}", http.StatusOK, s.updateEndpoint)
	s.write("DELETE /v1/webhook_endpoints/{id}", http.StatusOK, s.deleteEndpoint)
	s.write("POST /v1/webhook_endpoints/{id}/rotate_secret", http.StatusOK, s.rotateSecret)
	s.write("POST /v1/webhook_endpoints/{id}/send_test_event", http.StatusAccepted, s.sendTestEvent)
	s.writePrepared("POST /v1/webhook_endpoints/{id}/replay", http.StatusAccepted, s.replayEndpoint)

	s.read("GET /v1/deliveries", s.listDeliveries)
	s.read("GET /v1/deliveries/{id}", s.getDelivery)
	s.write("POST /v1/deliveries/{id}/retry", http.StatusAccepted, s.retryDelivery)
	s.write("POST /v1/webhook_endpoints/{id}/recover", http.StatusAccepted, s.recoverEndpoint)

	s.readAs(s.authenticateOperator, "GET /v1/operator/endpoints", s.operatorEndpoints)
	s.writeAs(s.authenticateOperator, "POST /v1/operator/endpoints/{id}/enable", http.StatusOK, s.operatorEnable)
	s.writeAs(s.authenticateOperator, "POST /v1/operator/endpoints/{id}/recover", http.StatusAccepted, s.operatorRecover)
	s.readAs(s.authenticateOperator, "GET /v1/operator/deliveries", s.operatorDeliveries)
	s.writeAs(s.authenticateOperator, "POST /v1/operator/deliveries/{id}/retry", http.StatusAccepted, s.operatorRetry)

	s.write("POST /v1/portal_sessions", http.StatusCreated, s.createPortalSession)
	s.mux.Handle(portalPattern, s.portal)

	s.dashboardRoutes()
}

// portalPattern is the route of the merchant portal, which answers in
// pages, never in the API's JSON.
const portalPattern = "/portal/"

// ServeHTTP serves a request, answering unknown paths and methods in the API's
// JSON error shape rather than ServeMux's plain text.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
	h, pattern := s.mux.Handler(r)
	if s.tracer != nil && traced(pattern) {
		var span trace.Span
		r, span = s.startSpan(r, pattern)
		defer func() {
			if p := recover(); p != nil {
				// net/http recovers it and drops the connection: the
				// client got no 200, whatever rec says.
				span.SetStatus(codes.Error, "handler panicked")
				span.End()
				panic(p)
			}
			endSpan(span, rec.status)
		}()
	}
	// The portal checks its own URLs, to answer with a page (portalPattern).
	if err := unreadableURL(r); err != nil && pattern != portalPattern {
		s.routeError(rec, r, err)
	} else if pattern == "" {
		// Let the mux decide between 404 and 405 (and set Allow), then speak JSON.
		probe := httptest.NewRecorder()
		h.ServeHTTP(probe, r)
		if allow := probe.Header().Get("Allow"); allow != "" {
			rec.Header().Set("Allow", allow)
		}
		msg := "Unrecognized request URL (" + r.Method + " " + r.URL.Path + ")."
		if probe.Code == http.StatusMethodNotAllowed {
			msg = "Method " + r.Method + " is not allowed on " + r.URL.Path + "."
		}
		s.routeError(rec, r, &Error{Status: probe.Code, Type: "invalid_request_error", Code: "route_missing", Message: msg})
	} else {
		s.mux.ServeHTTP(rec, r)
	}
	s.metrics.observe(pattern, rec.status, time.Since(start))
	s.logger.DebugContext(r.Context(), "request", slog.String("method", r.Method), slog.String("route", pattern),
		slog.Int("status", rec.status), slog.Duration("duration", time.Since(start)))
}

// routeError answers a request refused before any route ran (an unreadable
// URL, an unknown path or method): the dashboard's error page under
// /dashboard, which browsers read, and the API's JSON anywhere else.
func (s *Server) routeError(w http.ResponseWriter, r *http.Request, err error) {
	if r.URL.Path == "/dashboard" || strings.HasPrefix(r.URL.Path, "/dashboard/") {
		s.dashboardError(w, r, "", err)
		return
	}
	s.renderError(w, r, err)
}

// unreadableURL refuses a path or query holding NUL (%00) or bytes that are
// not UTF-8 (%FF): every id and cursor reaches Postgres, whose text refuses
// both, which would answer 500.
func unreadableURL(r *http.Request) error {
	if !events.IsText(r.URL.Path) {
		return invalid("id", "The request path must be UTF-8 text, without the NUL character (%00).")
	}
	for name, values := range r.URL.Query() {
		if !events.IsText(name + strings.Join(values, "")) {
			return invalid(name, name+" must be UTF-8 text, without the NUL character (%00)")
		}
	}
	return nil
}

// asText is s with what isText refuses replaced: invalid UTF-8 by U+FFFD,
// NUL removed.
func asText(s string) string {
	return strings.ToValidUTF8(strings.ReplaceAll(s, "\x00", ""), "\uFFFD")
}

// traced reports whether requests to the route pattern make spans: not the
// probes and scrapes, which every load balancer and Prometheus sends every
// few seconds to every node.
func traced(pattern string) bool {
	switch pattern {
	case "GET /healthz", "GET /readyz", "GET /metrics":
		return false
	}
	return true
}

// startSpan starts the server span of a request that the route table
// matched to pattern ("" for none), and returns the request with the span in
// its context: the events it writes keep it (events.Event.Trace).
//
// The API is a public endpoint (otelhttp's WithPublicEndpoint): anyone can
// send a traceparent, which must neither choose the trace id of hookline's
// spans nor their sampling (a "sampled" flag on every request would force
// the operator's sampler to record everything, "not sampled" would hide a
// request from it). So the span is always the root of a new trace, sampled
// by the operator's sampler alone, with a link to the caller's span when the
// request carries a W3C traceparent. Always, even from HOOKLINE_TRUSTED_PROXIES:
// a proxy that does not trace passes its client's header on unchanged.
func (s *Server) startSpan(r *http.Request, pattern string) (*http.Request, trace.Span) {
	caller := trace.SpanContextFromContext(propagation.TraceContext{}.Extract(r.Context(), propagation.HeaderCarrier(r.Header)))
	name, route := r.Method, ""
	if pattern != "" {
		// A pattern is "METHOD /path/{id}": the route is its path.
		name, route = pattern, pattern[strings.IndexByte(pattern, ' ')+1:]
	}
	// The path as text OTLP can carry: one span with bytes that are not
	// UTF-8 (GET /%ff, refused by unreadableURL) would make the exporter
	// fail to encode its whole batch, everyone's spans.
	attrs := []attribute.KeyValue{semconv.HTTPRequestMethodKey.String(r.Method), semconv.URLPath(asText(r.URL.Path)), semconv.URLScheme(scheme(r))}
	if route != "" {
		attrs = append(attrs, semconv.HTTPRoute(route))
	}
	opts := []trace.SpanStartOption{trace.WithNewRoot(), trace.WithSpanKind(trace.SpanKindServer), trace.WithAttributes(attrs...)}
	if caller.IsValid() {
		opts = append(opts, trace.WithLinks(trace.Link{SpanContext: caller}))
	}
	ctx, span := s.tracer.Start(r.Context(), name, opts...)
	return r.WithContext(ctx), span
}

// scheme is the scheme the request reached hookline's listener with.
func scheme(r *http.Request) string {
	if r.TLS != nil {
		return "https"
	}
	return "http"
}

// endSpan ends a request's span with its response's status: an error for a
// 5xx, hookline's failure, not for a 4xx, the client's (OpenTelemetry's
// HTTP server conventions).
func endSpan(span trace.Span, status int) {
	span.SetAttributes(semconv.HTTPResponseStatusCode(status))
	if status >= http.StatusInternalServerError {
		span.SetStatus(codes.Error, http.StatusText(status))
	}
	span.End()
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(status int) {
	r.status = status
	r.ResponseWriter.WriteHeader(status)
}

// Unwrap lets http.ResponseController reach the connection (an event
// stream flushes and sets its own deadlines).
func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// call is one authenticated request as handlers see it.
type call struct {
	r     *http.Request
	scope events.Scope
	body  []byte
}

func (c *call) id() string { return c.r.PathValue("id") }

// authFunc authenticates a request: a merchant's API key, or the operator's
// token (whose scope is empty).
type authFunc func(*http.Request) (events.Scope, error)

// read registers a merchant's GET handler, which reads through the pool.
func (s *Server) read(pattern string, h func(ctx context.Context, c *call) (any, error)) {
	s.readAs(s.authenticate, pattern, h)
}

// write registers a merchant's POST, PATCH or DELETE handler.
func (s *Server) write(pattern string, status int, h func(ctx context.Context, c *call, tx pgx.Tx) (any, error)) {
	s.writeAs(s.authenticate, pattern, status, h)
}

func (s *Server) readAs(auth authFunc, pattern string, h func(ctx context.Context, c *call) (any, error)) {
	s.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		scope, err := s.admit(w, r, auth)
		if err != nil {
			s.renderError(w, r, err)
			return
		}
		out, err := h(r.Context(), &call{r: r, scope: scope})
		if err != nil {
			s.renderError(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, out)
	})
}

// txFunc is the part of a write that runs in the request's transaction.
type txFunc func(ctx context.Context, tx pgx.Tx) (any, error)

// prepareFunc is the part of a write that runs before any transaction:
// decoding, and the checks that wait on the network (a URL's DNS lookup, up
// to 5 s against a merchant's DNS server). It returns the work to do in the
// transaction. While it runs, the request holds no pool connection, no
// transaction and no Idempotency-Key row: a slow resolver delays only its own
// request.
type prepareFunc func(ctx context.Context, c *call) (txFunc, error)

// inTx is the prepareFunc of a handler that has nothing to do before its
// transaction.
func inTx(h func(ctx context.Context, c *call, tx pgx.Tx) (any, error)) prepareFunc {
	return func(_ context.Context, c *call) (txFunc, error) {
		return func(ctx context.Context, tx pgx.Tx) (any, error) { return h(ctx, c, tx) }, nil
	}
}

// writePrepared registers a merchant's write that checks its request (and
// resolves DNS) with prepare before writeAs's transaction.
func (s *Server) writePrepared(pattern string, status int, prepare prepareFunc) {
	s.mux.HandleFunc(pattern, s.writeHandler(s.authenticate, status, prepare, nil))
}

// writeAs registers a handler that writes. It runs in one transaction with
// the merchant's idempotency record: either the change, its events, its jobs
// and the stored response all commit, or nothing does. (Operator requests
// have no merchant, and no idempotency keys.)
func (s *Server) writeAs(auth authFunc, pattern string, status int, h func(ctx context.Context, c *call, tx pgx.Tx) (any, error)) {
	s.mux.HandleFunc(pattern, s.writeHandler(auth, status, inTx(h), nil))
}

// writeBatched registers a merchant's write whose requests without an
// Idempotency-Key go to batched, which shares transactions between requests;
// those with one go to prepare, then to its txFunc in writeAs's transaction
// with the key's record.
func (s *Server) writeBatched(pattern string, status int, prepare prepareFunc, batched func(ctx context.Context, c *call) (any, error)) {
	s.mux.HandleFunc(pattern, s.writeHandler(s.authenticate, status, prepare, batched))
}

func (s *Server) writeHandler(auth authFunc, status int, prepare prepareFunc, batched func(ctx context.Context, c *call) (any, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		scope, err := s.admit(w, r, auth)
		if err != nil {
			s.renderError(w, r, err)
			return
		}
		body, err := readBody(r)
		if err != nil {
			s.renderError(w, r, err)
			return
		}
		c := &call{r: r, scope: scope, body: body}
		if batched != nil && r.Header.Get("Idempotency-Key") == "" {
			obj, err := batched(r.Context(), c)
			if err != nil {
				s.renderError(w, r, err)
				return
			}
			writeJSON(w, status, obj)
			return
		}
		h, err := prepare(r.Context(), c)
		if err != nil {
			s.renderError(w, r, err)
			return
		}
		var replay *storedResponse
		var out []byte
		err = pgx.BeginFunc(r.Context(), s.pool, func(tx pgx.Tx) error {
			key := r.Header.Get("Idempotency-Key")
			if scope.MerchantID == "" {
				key = ""
			}
			if key != "" {
				stored, err := claimIdempotencyKey(r.Context(), tx, s.keyring, scope, key, requestHash(r, body))
				if err != nil || stored != nil {
					replay = stored
					return err
				}
			}
			obj, err := h(r.Context(), tx)
			if err != nil {
				return err
			}
			if out, err = json.Marshal(obj); err != nil {
				return err
			}
			if key != "" {
				return storeIdempotentResponse(r.Context(), tx, s.keyring, scope, key, status, out)
			}
			return nil
		})
		switch {
		case err != nil:
			s.renderError(w, r, err)
		case replay != nil:
			w.Header().Set("Idempotent-Replayed", "true")
			writeRaw(w, replay.status, replay.body)
		default:
			writeRaw(w, status, out)
		}
	}
}

// maxURLLength bounds a request's path and query, like the URLs merchants
// register: nothing legitimate is longer.
const maxURLLength = 2048

// admit authenticates a request and takes a token from its key's bucket.
// A client address over the limit of failed authentications is refused
// first, before its credential costs a lookup; the lookup holds a place of
// the limit (beginAuth), which a failure keeps and a success gives back.
// Operator requests are not limited otherwise: there is one operator, and it
// must be able to act while merchants are being throttled.
func (s *Server) admit(w http.ResponseWriter, r *http.Request, auth authFunc) (events.Scope, error) {
	if len(r.URL.RequestURI()) > maxURLLength {
		return events.Scope{}, &Error{Status: http.StatusRequestURITooLong, Type: "invalid_request_error", Code: "url_too_long",
			Message: "The request URL is longer than 2048 characters."}
	}
	attempt, err := s.beginAuth(w, r)
	if err != nil {
		return events.Scope{}, err
	}
	// Deferred: a place never given back (after a panic in the lookup, which
	// net/http recovers) would shrink its address's limit for good.
	failed := false
	defer func() { attempt.done(failed) }()
	scope, err := auth(r)
	e, ok := errors.AsType[*Error](err)
	failed = ok && e.Status == http.StatusUnauthorized && e.Code != codeAPIKeyMissing
	if err != nil || scope.MerchantID == "" {
		return scope, err
	}
	if ok, wait := s.limiters.allow(limiterKey(scope), time.Now()); !ok {
		return events.Scope{}, rateLimited(w, wait)
	}
	return scope, nil
}

// beginAuth takes a place of the failure limit for the request's
// authentication (authFailures.begin), or returns the 429 of a client
// address over the limit.
func (s *Server) beginAuth(w http.ResponseWriter, r *http.Request) (*authAttempt, error) {
	attempt, wait, err := s.failures.begin(r.Context(), clientAddr(r, s.trusted))
	if err != nil {
		return nil, err
	}
	if attempt == nil {
		return nil, tooManyFailures(w, wait)
	}
	return attempt, nil
}

// codeAPIKeyMissing is the 401 of a request without credentials: not a
// failed guess, so it does not count towards the failure limit.
const codeAPIKeyMissing = "api_key_missing"

// authenticate resolves the request's API key, sent as a bearer token (or, for
// curl's -u, as the basic-auth user name), to its merchant and mode.
func (s *Server) authenticate(r *http.Request) (events.Scope, error) {
	key, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok {
		key, _, ok = r.BasicAuth()
	}
	if !ok || key == "" {
		return events.Scope{}, &Error{Status: http.StatusUnauthorized, Type: "authentication_error", Code: codeAPIKeyMissing,
			Message: "You did not provide an API key. Send it as Authorization: Bearer sk_test_..."}
	}
	scope, err := events.Authenticate(r.Context(), s.pool, key)
	if errors.Is(err, events.ErrNotFound) {
		return events.Scope{}, &Error{Status: http.StatusUnauthorized, Type: "authentication_error", Code: "api_key_invalid",
			Message: "Invalid API key provided."}
	}
	return scope, err
}

// pageParams reads ?limit, ?starting_after and ?ending_before, refusing any
// query parameter not in allowed (besides those three).
func pageParams(r *http.Request, allowed ...string) (events.Page, error) {
	q := r.URL.Query()
	limit, err := limitParam(r, 10, 100, slices.Concat(allowed, []string{"starting_after", "ending_before"})...)
	if err != nil {
		return events.Page{}, err
	}
	page := events.Page{Limit: limit, StartingAfter: q.Get("starting_after"), EndingBefore: q.Get("ending_before")}
	if page.StartingAfter != "" && page.EndingBefore != "" {
		return events.Page{}, invalid("ending_before", "Send starting_after or ending_before, not both.")
	}
	return page, nil
}

// limitParam reads ?limit (1 to most, fallback when absent), refusing any
// query parameter other than limit and allowed: a misspelt filter must not
// silently list everything.
func limitParam(r *http.Request, fallback, most int, allowed ...string) (int, error) {
	q := r.URL.Query()
	for name := range q {
		if name != "limit" && !slices.Contains(allowed, name) {
			return 0, invalid(name, "Received unknown parameter: "+name)
		}
	}
	l := q.Get("limit")
	if l == "" {
		return fallback, nil
	}
	n, err := strconv.Atoi(l)
	if err != nil || n < 1 || n > most {
		return 0, invalid("limit", fmt.Sprintf("limit must be a whole number from 1 to %d", most))
	}
	return n, nil
}

// listBody is the JSON of a list response.
type listBody[T any] struct {
	Object  string `json:"object"`
	Data    []T    `json:"data"`
	HasMore bool   `json:"has_more"`
	URL     string `json:"url"`
}

func newList[T any](r *http.Request, l *events.List[T]) listBody[T] {
	data := l.Data
	if data == nil {
		data = []T{}
	}
	return listBody[T]{Object: "list", Data: data, HasMore: l.HasMore, URL: r.URL.Path}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status, b = http.StatusInternalServerError, []byte(`{"error":{"type":"api_error","code":"internal_error","message":"An internal error occurred.","param":null}}`)
	}
	writeRaw(w, status, b)
}

func writeRaw(w http.ResponseWriter, status int, body []byte) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(append(body, '\n'))
}

func (s *Server) healthz(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// readyz reports whether the database answers: a process that cannot reach
// Postgres can neither accept nor deliver events.
func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	if err := s.pool.Ping(ctx); err != nil {
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "unavailable", "reason": "database unreachable"})
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}
