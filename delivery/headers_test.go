package delivery_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/hookline/hookline/delivery"
	"github.com/hookline/hookline/events/traceparent"
)

// An endpoint's custom headers reach its receiver on every attempt, beside
// the signature (which still verifies); an authorization value sent back as
// its mask by an update keeps the stored value, which the receiver gets in
// full.
func TestCustomHeadersReachTheReceiver(t *testing.T) {
	t.Parallel()

	e := newEnv(t, fast, 5*time.Second)
	r := newReceiver(t, nil)
	ctx := context.Background()
	const token = "Bearer 0123456789abcdefwxyz"
	checked, err := e.endpoints.Check(ctx, delivery.EndpointParams{URL: r.srv.URL, EnabledEvents: []string{"checkout.created"},
		Headers: map[string]string{"X-Api-Key": "k1", "Authorization": token}})
	if err != nil {
		t.Fatal(err)
	}
	var ep *delivery.Endpoint
	e.tx(func(tx pgx.Tx) (err error) {
		ep, err = e.endpoints.Create(ctx, tx, e.scope, checked)
		return err
	})
	r.verifyWith(ep.Secret)
	// The merchant's dashboard sends back what it read, plus a new header.
	update, err := e.endpoints.CheckUpdate(ctx, delivery.EndpointUpdate{
		Headers: map[string]string{"X-Api-Key": "k2", "Authorization": ep.Headers["Authorization"], "X-Tenant": "acme"}})
	if err != nil {
		t.Fatal(err)
	}
	e.tx(func(tx pgx.Tx) error {
		_, err := e.endpoints.Update(ctx, tx, e.scope, ep.ID, update)
		return err
	})
	e.pay(nil)
	e.waitDeliveries()
	reqs := r.requests()
	if len(reqs) != 1 {
		t.Fatalf("%d requests, want 1", len(reqs))
	}
	h := reqs[0].header
	for name, want := range map[string]string{"X-Api-Key": "k2", "Authorization": token, "X-Tenant": "acme",
		"Content-Type": "application/json"} {
		if got := h.Get(name); got != want {
			t.Errorf("%s: %q, want %q", name, got, want)
		}
	}
	if h.Get("Webhook-Signature") == "" {
		t.Error("no signature")
	}
	var stored string
	if err := e.pool.QueryRow(ctx, `select header_authorization from webhook_endpoints where id = $1`, ep.ID).Scan(&stored); err != nil {
		t.Fatal(err)
	}
	if stored == token || stored == "" {
		t.Errorf("the authorization value is stored as %q, want it sealed", stored)
	}
}

// An endpoint disabled by a 410 is described to the merchant's other
// endpoints (webhook_endpoint.disabled) with its headers' names only: a
// receiver's credentials never travel to another receiver, nor stay in the
// event log.
func TestDisabledEventHidesHeaderValues(t *testing.T) {
	t.Parallel()

	e := newEnv(t, fast, 5*time.Second)
	ctx := context.Background()
	gone := newReceiver(t, func(_ int, w http.ResponseWriter) { w.WriteHeader(http.StatusGone) })
	watcher := newReceiver(t, nil)
	checked, err := e.endpoints.Check(ctx, delivery.EndpointParams{URL: gone.srv.URL, EnabledEvents: []string{"checkout.created"},
		Headers: map[string]string{"X-Api-Key": "key-of-receiver-a", "Authorization": "Basic dXNlcjpzZWNyZXQtcGFzc3dvcmQ="}})
	if err != nil {
		t.Fatal(err)
	}
	e.tx(func(tx pgx.Tx) error {
		_, err := e.endpoints.Create(ctx, tx, e.scope, checked)
		return err
	})
	e.endpoint(watcher.srv.URL, []string{"webhook_endpoint.disabled"})
	e.pay(nil)
	e.waitDeliveries()
	reqs := watcher.requests()
	if len(reqs) != 1 {
		t.Fatalf("the other endpoint got %d requests, want webhook_endpoint.disabled", len(reqs))
	}
	var evt struct {
		Data struct{ Headers map[string]string }
	}
	if err := json.Unmarshal(reqs[0].body, &evt); err != nil {
		t.Fatal(err)
	}
	if want := map[string]string{"X-Api-Key": "****", "Authorization": "****"}; fmt.Sprint(evt.Data.Headers) != fmt.Sprint(want) {
		t.Errorf("the event's headers: %v, want %v", evt.Data.Headers, want)
	}
	var leaked bool
	if err := e.pool.QueryRow(ctx, `select exists (select 1 from events where position('key-of-receiver-a' in convert_from(payload, 'UTF8')) > 0
		or position('dXNlcjpz' in convert_from(payload, 'UTF8')) > 0)`).Scan(&leaked); err != nil {
		t.Fatal(err)
	}
	if leaked {
		t.Error("a header value is in the event log")
	}
}

// An endpoint stored before traceparent and tracestate were reserved names
// (the API refuses them since) may hold them among its custom headers: the
// receiver gets hookline's traceparent, one value, never the stored one, and
// no tracestate, which would otherwise travel with a trace it does not
// describe. (Written here straight into the table, as an old row is.)
func TestStoredTraceHeadersAreNotSent(t *testing.T) {
	t.Parallel()

	e := newEnv(t, fast, 5*time.Second)
	r := newReceiver(t, nil)
	ctx := context.Background()
	checked, err := e.endpoints.Check(ctx, delivery.EndpointParams{URL: r.srv.URL, EnabledEvents: []string{"checkout.created"},
		Headers: map[string]string{"X-Tenant": "acme"}})
	if err != nil {
		t.Fatal(err)
	}
	var ep *delivery.Endpoint
	e.tx(func(tx pgx.Tx) (err error) {
		ep, err = e.endpoints.Create(ctx, tx, e.scope, checked)
		return err
	})
	const stored = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	if _, err := e.pool.Exec(ctx, `update webhook_endpoints set headers = headers || jsonb_build_object('traceparent', $2::text, 'tracestate', 'vendor=x')
		where id = $1`, ep.ID, stored); err != nil {
		t.Fatal(err)
	}
	e.pay(nil)
	e.waitDeliveries()
	reqs := r.requests()
	if len(reqs) != 1 {
		t.Fatalf("%d requests, want 1", len(reqs))
	}
	h := reqs[0].header
	if tps := h.Values("Traceparent"); len(tps) != 1 || tps[0] == stored || !traceparent.Parse(tps[0]).IsValid() {
		t.Errorf("traceparent %q, want one of hookline's, not the stored %s", tps, stored)
	}
	if ts := h.Values("Tracestate"); len(ts) != 0 {
		t.Errorf("tracestate %q, want none", ts)
	}
	if got := h.Get("X-Tenant"); got != "acme" {
		t.Errorf("X-Tenant %q, want the endpoint's other header", got)
	}
}
