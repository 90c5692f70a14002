package api_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/hookline/hookline/events"
	"github.com/hookline/hookline/schema/schematest"
)

// TestSendTestEvent sends test events over the API: 202 and the new delivery,
// to that endpoint only, whatever it subscribes to; the event in the log is
// its type's valid envelope marked "example": true; checkout.paid when the
// body names no type; the same Idempotency-Key sends nothing twice; a
// disabled endpoint is sent to, a deleted one is a 404; refusals write
// nothing.
func TestSendTestEvent(t *testing.T) {
	t.Parallel()

	h := newHarness(t)
	ep := decodeEndpoint(t, h.do("POST", "/v1/webhook_endpoints", h.a.TestAPIKey,
		map[string]any{"url": "http://127.0.0.1:9/hooks", "enabled_events": []string{"checkout.expired"}}).must(t, http.StatusCreated))
	decodeEndpoint(t, h.do("POST", "/v1/webhook_endpoints", h.a.TestAPIKey,
		map[string]any{"url": "http://127.0.0.1:9/everything", "enabled_events": []string{"*"}}).must(t, http.StatusCreated))
	path := "/v1/webhook_endpoints/" + ep.ID + "/send_test_event"

	type deliveryBody struct {
		ID       string `json:"id"`
		Event    string `json:"event"`
		Endpoint string `json:"endpoint"`
		Status   string `json:"status"`
	}
	send := func(body any, headers ...string) deliveryBody {
		t.Helper()
		res := h.do("POST", path, h.a.TestAPIKey, body, headers...).must(t, http.StatusAccepted)
		schematest.Object(t, "delivery", res.body)
		var d deliveryBody
		if err := json.Unmarshal(res.body, &d); err != nil {
			t.Fatal(err)
		}
		if d.Endpoint != ep.ID || d.Status != "pending" {
			t.Fatalf("send_test_event answered %s", res.body)
		}
		return d
	}
	event := func(id string) (string, map[string]any) {
		t.Helper()
		res := h.do("GET", "/v1/events/"+id, h.a.TestAPIKey, nil).must(t, http.StatusOK)
		var env map[string]any
		if err := json.Unmarshal(res.body, &env); err != nil {
			t.Fatal(err)
		}
		typ, _ := env["type"].(string)
		schematest.Event(t, typ, res.body)
		return typ, env
	}

	for _, c := range events.Catalog {
		d := send(map[string]any{"type": c.Type})
		typ, env := event(d.Event)
		if typ != string(c.Type) || env["example"] != true || env["livemode"] != false {
			t.Errorf("test event of %s: type %s, example %v, livemode %v", c.Type, typ, env["example"], env["livemode"])
		}
		if data, _ := h.do("GET", "/v1/deliveries?event="+d.Event, h.a.TestAPIKey, nil).must(t, http.StatusOK).list(t); len(data) != 1 {
			t.Errorf("test event of %s has %d deliveries, want 1 (its endpoint's)", c.Type, len(data))
		}
	}
	if typ, _ := event(send(nil).Event); typ != "checkout.paid" {
		t.Errorf("a body without type sent %s, want checkout.paid", typ)
	}
	if typ, _ := event(send(map[string]any{"type": nil}).Event); typ != "checkout.paid" {
		t.Errorf("type null sent %s, want checkout.paid", typ)
	}

	first := send(map[string]any{"type": "checkout.failed"}, "Idempotency-Key", "test-event-1")
	before := h.count("events")
	again := send(map[string]any{"type": "checkout.failed"}, "Idempotency-Key", "test-event-1")
	if again.ID != first.ID || h.count("events") != before {
		t.Errorf("a replayed Idempotency-Key sent another test event (%s, then %s)", first.ID, again.ID)
	}

	// A real event never says "example", not even false.
	h.checkout(nil)
	list, _ := h.do("GET", "/v1/events?type=checkout.created", h.a.TestAPIKey, nil).must(t, http.StatusOK).list(t)
	if len(list) != 2 || strings.Contains(string(list[0]), `"example"`) {
		t.Errorf("the real checkout.created event, then the test one: %s", list)
	}

	h.do("PATCH", "/v1/webhook_endpoints/"+ep.ID, h.a.TestAPIKey, map[string]any{"status": "disabled"}).must(t, http.StatusOK)
	send(map[string]any{"type": "payment_attempt.failed"})

	evts, dlvs, jobs := h.count("events"), h.count("deliveries"), h.count("river_job")
	res := h.do("POST", path, h.a.TestAPIKey, map[string]any{"type": "charge.succeeded"}).must(t, http.StatusBadRequest)
	schematest.Object(t, "error", res.body)
	if !strings.Contains(string(res.body), "charge.succeeded") {
		t.Errorf("the 400 does not name the type: %s", res.body)
	}
	h.do("DELETE", "/v1/webhook_endpoints/"+ep.ID, h.a.TestAPIKey, nil).must(t, http.StatusOK)
	schematest.Object(t, "error", h.do("POST", path, h.a.TestAPIKey, nil).must(t, http.StatusNotFound).body)
	h.do("POST", "/v1/webhook_endpoints/we_01ARZ3NDEKTSV4RRFFQ69G5FAV/send_test_event", h.a.TestAPIKey, nil).must(t, http.StatusNotFound)
	if h.count("events") != evts || h.count("deliveries") != dlvs || h.count("river_job") != jobs {
		t.Error("a refused test event wrote something")
	}
}
