package api_test

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"

	"github.com/hookline/hookline/api"
	"github.com/hookline/hookline/api/stream"
	"github.com/hookline/hookline/delivery"
	"github.com/hookline/hookline/events"
	"github.com/hookline/hookline/migrations/dbtest"
)

// harness is the API on a loopback server over a fresh schema, with two
// merchants: a (the one most tests act as) and b (the other tenant).
type harness struct {
	t       *testing.T
	pool    *pgxpool.Pool
	url     string
	a, b    *events.NewMerchant
	service *events.Service
}

// operatorToken is the operator API's token in tests.
const operatorToken = "operator-token-for-the-api-tests"

func newHarness(t *testing.T) *harness {
	t.Helper()
	return newHarnessWith(t, harnessOptions{token: operatorToken})
}

// harnessOptions vary the API under test: the operator token ("" turns the
// operator API off), a rate limit (zero: none), a logger (nil: discard), the
// endpoints allowed per merchant and mode (zero: 50, hookline's default), a
// guard (nil: development's), how often idle event streams send a comment
// (zero: 15 s).
type harnessOptions struct {
	token        string
	limit        api.RateLimit
	logger       *slog.Logger
	maxEndpoints int
	guard        *delivery.Guard
	keepAlive    time.Duration
}

func newHarnessWith(t *testing.T, o harnessOptions) *harness {
	t.Helper()
	pool := dbtest.NewPool(t)
	inserter, err := river.NewClient(riverpgxv5.New(pool), &river.Config{})
	if err != nil {
		t.Fatal(err)
	}
	guard, keyring := o.guard, dbtest.Keyring(t)
	if guard == nil {
		guard = delivery.NewGuard(false)
	}
	if o.logger == nil {
		o.logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	dispatcher := delivery.NewDispatcher(inserter)
	service := events.NewService(events.NewPublisher(dispatcher))
	streams := stream.NewHub(pool, o.logger)
	srv := httptest.NewServer(api.New(api.Config{
		Checkouts: events.NewCheckoutBatcher(service, pool, o.logger), Dispatcher: dispatcher, Endpoints: delivery.NewEndpoints(guard, keyring, cmp.Or(o.maxEndpoints, 50)), Guard: guard, Keyring: keyring,
		Logger: o.logger, Metrics: prometheus.NewRegistry(), OperatorToken: o.token, Pool: pool,
		RateLimit: o.limit, Service: service, Streams: streams, StreamKeepAlive: o.keepAlive,
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(streams.Close) // first: open streams end, so that srv.Close need not wait for them
	h := &harness{t: t, pool: pool, url: srv.URL, service: service}
	h.a, h.b = dbtest.Merchant(t, pool, "Merchant A"), dbtest.Merchant(t, pool, "Merchant B")
	return h
}

type response struct {
	status int
	header http.Header
	body   []byte
}

// field returns a top-level string field of a JSON object response.
func (r response) field(t *testing.T, name string) string {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("response is not a JSON object: %v: %s", err, r.body)
	}
	s, _ := m[name].(string)
	return s
}

// errorParam returns error.param of an error response.
func (r response) errorParam(t *testing.T) string {
	t.Helper()
	var e struct {
		Error struct {
			Param *string `json:"param"`
		} `json:"error"`
	}
	if err := json.Unmarshal(r.body, &e); err != nil {
		t.Fatalf("not an error body: %s", r.body)
	}
	if e.Error.Param == nil {
		return ""
	}
	return *e.Error.Param
}

// list decodes a list response's data.
func (r response) list(t *testing.T) ([]json.RawMessage, bool) {
	t.Helper()
	var l struct {
		Object  string            `json:"object"`
		Data    []json.RawMessage `json:"data"`
		HasMore bool              `json:"has_more"`
	}
	if err := json.Unmarshal(r.body, &l); err != nil || l.Object != "list" {
		t.Fatalf("not a list: %v: %s", err, r.body)
	}
	return l.Data, l.HasMore
}

// do sends a request with key as the bearer token; body is marshalled unless it
// is a string, which is sent as it is.
func (h *harness) do(method, path, key string, body any, headers ...string) response {
	h.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			h.t.Fatal(err)
		}
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, h.url+path, rd)
	if err != nil {
		h.t.Fatal(err)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		h.t.Fatal(err)
	}
	return response{status: res.StatusCode, header: res.Header, body: b}
}

// must fails the test unless the response has the status.
func (r response) must(t *testing.T, status int) response {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d: %s", r.status, status, r.body)
	}
	return r
}

func (h *harness) count(table string) int {
	h.t.Helper()
	var n int
	if err := h.pool.QueryRow(context.Background(), "select count(*) from "+table).Scan(&n); err != nil {
		h.t.Fatal(err)
	}
	return n
}

// checkout creates a checkout for merchant a in test mode and returns its id.
func (h *harness) checkout(extra map[string]any) string {
	h.t.Helper()
	body := map[string]any{"amount": "6700", "invoice_currency": "usd"}
	for k, v := range extra {
		body[k] = v
	}
	return h.do("POST", "/v1/checkouts", h.a.TestAPIKey, body).must(h.t, http.StatusCreated).field(h.t, "id")
}

// attempt creates a payment attempt on a checkout and returns its id.
func (h *harness) attempt(checkoutID string, body map[string]any) string {
	h.t.Helper()
	return h.do("POST", "/v1/checkouts/"+checkoutID+"/payment_attempts", h.a.TestAPIKey, body).
		must(h.t, http.StatusCreated).field(h.t, "id")
}
