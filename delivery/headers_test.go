package delivery_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/hookline/hookline/delivery"
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
