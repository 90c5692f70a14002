package delivery_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/hookline/hookline/delivery"
	"github.com/hookline/hookline/events"
	"github.com/hookline/hookline/schema/schematest"
)

// sendTestEvent sends a test event of type t to an endpoint, in a committed
// transaction, and returns its delivery.
func (e *env) sendTestEvent(endpointID string, t events.EventType) *delivery.Delivery {
	e.t.Helper()
	var d *delivery.Delivery
	e.tx(func(tx pgx.Tx) (err error) {
		d, err = e.dispatcher.SendTestEvent(context.Background(), tx, e.service, e.scope, endpointID, t)
		return err
	})
	return d
}

// TestTestEvents sends a test event of every catalog type to an endpoint
// subscribed to none of them: each reaches it alone, signed with its secret,
// as a valid envelope of its type marked "example": true with fresh ids and
// times, and the one its receiver refuses at first is retried like any
// delivery. The merchant's other endpoint receives nothing.
func TestTestEvents(t *testing.T) {
	t.Parallel()

	e := newEnv(t, fast, 5*time.Second)
	target := newReceiver(t, func(n int, w http.ResponseWriter) {
		if n == 1 {
			w.WriteHeader(http.StatusServiceUnavailable) // retried on the schedule
			return
		}
		w.WriteHeader(http.StatusOK)
	})
	other := newReceiver(t, nil)
	ep := e.endpoint(target.srv.URL, []string{"checkout.expired"})
	target.verifyWith(ep.Secret)
	e.endpoint(other.srv.URL, []string{"*"})

	sent := map[string]*delivery.Delivery{}
	for _, c := range events.Catalog {
		d := e.sendTestEvent(ep.ID, c.Type)
		b, _ := json.Marshal(d)
		schematest.Object(t, "delivery", b)
		if d.Endpoint == nil || *d.Endpoint != ep.ID || d.Status != delivery.StatusPending || d.AttemptCount != 0 {
			t.Fatalf("send_test_event answered %s", b)
		}
		sent[d.Event] = d
	}
	deliveries := e.waitDeliveries()
	if len(deliveries) != len(events.Catalog) {
		t.Fatalf("%d deliveries, want one per test event (%d)", len(deliveries), len(events.Catalog))
	}
	var retried int
	for _, d := range deliveries {
		if sent[d.Event] == nil || d.Status != delivery.StatusSucceeded {
			t.Errorf("delivery %s of event %s: %s", d.ID, d.Event, d.Status)
		}
		if d.AttemptCount == 2 {
			retried++
		}
	}
	if retried != 1 {
		t.Errorf("%d deliveries took two attempts, want the one refused with a 503", retried)
	}

	var types []string
	for _, c := range events.Catalog {
		types = append(types, string(c.Type))
	}
	if got := target.types(); !slices.Equal(slices.Compact(got), sorted(types...)) || len(got) != len(types)+1 {
		t.Errorf("the endpoint received %v in %d requests, want every type once, plus the retry", got, len(target.requests()))
	}
	for _, req := range target.requests() {
		var env struct {
			ID        string          `json:"id"`
			Example   *bool           `json:"example"`
			CreatedAt int64           `json:"created_at"`
			Livemode  bool            `json:"livemode"`
			Data      json.RawMessage `json:"data"`
		}
		if err := json.Unmarshal(req.body, &env); err != nil {
			t.Fatal(err)
		}
		if env.Example == nil || !*env.Example || sent[env.ID] == nil || req.header.Get("webhook-id") != env.ID {
			t.Errorf("test event %s: example %v, webhook-id %s", env.ID, env.Example, req.header.Get("webhook-id"))
		}
		if age := time.Since(time.Unix(env.CreatedAt, 0)); age < -time.Minute || age > time.Minute || env.Livemode {
			t.Errorf("test event %s created %v ago, livemode %v", env.ID, age, env.Livemode)
		}
		if strings.Contains(string(env.Data), "01M81R") { // the examples' ids, minted on 2026-11-22
			t.Errorf("test event %s keeps an id of the example: %s", env.ID, env.Data)
		}
	}
	if n := len(other.requests()); n != 0 {
		t.Errorf("the merchant's other endpoint (subscribed to everything) received %d test events", n)
	}

	// Real events never carry "example", not even false.
	e.pay(nil)
	e.waitDeliveries()
	for _, req := range other.requests() {
		if strings.Contains(string(req.body), `"example"`) {
			t.Errorf("a real event carries example: %s", req.body)
		}
	}
}

// TestTestEventToDisabledEndpoint sends a test event to a disabled endpoint:
// it gets one attempt at once (a merchant checks a repaired receiver before
// enabling it), which fails here, and no retry while it stays disabled.
func TestTestEventToDisabledEndpoint(t *testing.T) {
	t.Parallel()

	e := newEnv(t, fast, 5*time.Second)
	r := newReceiver(t, func(_ int, w http.ResponseWriter) { w.WriteHeader(http.StatusInternalServerError) })
	ep := e.endpoint(r.srv.URL, nil)
	r.verifyWith(ep.Secret)
	disabled := delivery.EndpointDisabled
	checked, err := e.endpoints.CheckUpdate(context.Background(), delivery.EndpointUpdate{Status: &disabled})
	if err != nil {
		t.Fatal(err)
	}
	e.tx(func(tx pgx.Tx) error {
		_, err := e.endpoints.Update(context.Background(), tx, e.scope, ep.ID, checked)
		return err
	})

	e.sendTestEvent(ep.ID, events.PaymentAttemptFailed)
	deliveries := e.waitDeliveries()
	if len(deliveries) != 1 || deliveries[0].Status != delivery.StatusFailed || deliveries[0].AttemptCount != 1 {
		t.Fatalf("deliveries %+v, want one failed after its single attempt", deliveries)
	}
	if got := r.types(); !slices.Equal(got, []string{"payment_attempt.failed"}) {
		t.Fatalf("the disabled endpoint received %v", got)
	}
}

// TestTestEventToChatEndpoint sends the default test event, checkout.paid, to
// a Discord endpoint: the message of the example, marked as a test event.
func TestTestEventToChatEndpoint(t *testing.T) {
	t.Parallel()

	e := newEnv(t, fast, 5*time.Second)
	discord := newReceiver(t, func(_ int, w http.ResponseWriter) { w.WriteHeader(http.StatusNoContent) })
	e.chatEndpoint("discord", discord.srv.URL+"/api/webhooks/1/token", []string{"checkout.failed"}, "New project")
	var id string
	if err := e.pool.QueryRow(context.Background(), `select id from webhook_endpoints`).Scan(&id); err != nil {
		t.Fatal(err)
	}
	e.sendTestEvent(id, delivery.DefaultTestEventType)
	e.waitDeliveries()
	reqs := discord.requests()
	if len(reqs) != 1 || reqs[0].header.Get("webhook-signature") != "" {
		t.Fatalf("discord got %d requests (signed: %q), want one unsigned", len(reqs), reqs[0].header.Get("webhook-signature"))
	}
	var body struct {
		Content string `json:"content"`
		Embeds  []struct {
			Footer struct {
				Text string `json:"text"`
			} `json:"footer"`
		} `json:"embeds"`
	}
	if err := json.Unmarshal(reqs[0].body, &body); err != nil {
		t.Fatal(err)
	}
	if want := "[New project]: New successful payment for 67 USD for 1 x Item."; body.Content != want {
		t.Errorf("content %q, want %q", body.Content, want)
	}
	if len(body.Embeds) != 1 || !strings.HasSuffix(body.Embeds[0].Footer.Text, " · test mode · test event") {
		t.Errorf("embeds %+v, want a footer marking the test event", body.Embeds)
	}
}

// TestTestEventRefusals: an unknown type and a deleted endpoint write
// nothing.
func TestTestEventRefusals(t *testing.T) {
	t.Parallel()

	e := newEnv(t, fast, 5*time.Second)
	ep := e.endpoint("http://127.0.0.1:9/hooks", nil)
	ctx := context.Background()
	try := func(id string, typ events.EventType) error {
		return pgx.BeginFunc(ctx, e.pool, func(tx pgx.Tx) error {
			_, err := e.dispatcher.SendTestEvent(ctx, tx, e.service, e.scope, id, typ)
			return err
		})
	}
	var invalid *events.InvalidError
	if err := try(ep.ID, "checkout.nope"); !errors.As(err, &invalid) || invalid.Param != "type" {
		t.Errorf("an unknown type: %v, want an InvalidError naming type", err)
	}
	e.tx(func(tx pgx.Tx) error { return delivery.Delete(ctx, tx, e.scope, ep.ID) })
	if err := try(ep.ID, events.CheckoutPaid); !errors.Is(err, events.ErrNotFound) {
		t.Errorf("a deleted endpoint: %v, want ErrNotFound", err)
	}
	live := events.Scope{MerchantID: e.merchant.ID, Livemode: true}
	other := e.endpoint("http://127.0.0.1:9/other", nil)
	if err := pgx.BeginFunc(ctx, e.pool, func(tx pgx.Tx) error {
		_, err := e.dispatcher.SendTestEvent(ctx, tx, e.service, live, other.ID, events.CheckoutPaid)
		return err
	}); !errors.Is(err, events.ErrNotFound) {
		t.Errorf("another mode's endpoint: %v, want ErrNotFound", err)
	}
	var n int
	if err := e.pool.QueryRow(ctx, `select (select count(*) from events) + (select count(*) from deliveries)`).Scan(&n); err != nil || n != 0 {
		t.Errorf("the refusals wrote %d events and deliveries (%v)", n, err)
	}
}
