package api_test

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/hookline/hookline/schema/schematest"
)

// replayBody reads a 202 of POST /v1/webhook_endpoints/{id}/replay, checked
// against its schema.
func replayBody(t *testing.T, r response) (matched, queued int) {
	t.Helper()
	r.must(t, http.StatusAccepted)
	schematest.Object(t, "replay", r.body)
	var b struct{ Matched, Queued int }
	if err := json.Unmarshal(r.body, &b); err != nil {
		t.Fatal(err)
	}
	return b.Matched, b.Queued
}

// TestReplayEndpoint: a replay answers what matched and what it queued;
// a dry run and every refused request change nothing; an Idempotency-Key
// replays the first answer without replaying the events again.
func TestReplayEndpoint(t *testing.T) {
	t.Parallel()

	h := newHarness(t)
	h.checkout(nil)
	h.checkout(nil) // two checkout.created events, before the endpoint
	ep := decodeEndpoint(t, h.do("POST", "/v1/webhook_endpoints", h.a.TestAPIKey,
		map[string]any{"url": "https://hooks.example.com/a", "enabled_events": []string{"checkout.paid"}}).must(t, http.StatusCreated))
	path := "/v1/webhook_endpoints/" + ep.ID + "/replay"
	since := time.Now().Add(-time.Hour).Unix()
	deliveries, jobs := h.count("deliveries"), h.count("river_job")

	// The subscription (checkout.paid) matches none; the type asked, both.
	if m, q := replayBody(t, h.do("POST", path, h.a.TestAPIKey, map[string]any{"since": since})); m != 0 || q != 0 {
		t.Fatalf("replay of the subscription: matched %d queued %d, want 0 and 0", m, q)
	}
	dry := map[string]any{"since": since, "types": []string{"checkout.created"}, "dry_run": true}
	if m, q := replayBody(t, h.do("POST", path, h.a.TestAPIKey, dry)); m != 2 || q != 0 {
		t.Fatalf("dry run: matched %d queued %d, want 2 and 0", m, q)
	}
	for _, c := range []struct {
		name  string
		body  map[string]any
		param string
	}{
		{"no since", map[string]any{}, "since"},
		{"a window over 30 days", map[string]any{"since": time.Now().Add(-31 * 24 * time.Hour).Unix()}, "since"},
		{"until before since", map[string]any{"since": since, "until": since - 1}, "until"},
		{"since in the future", map[string]any{"since": time.Now().Add(time.Hour).Unix()}, "since"},
		{"until after the year 9999", map[string]any{"since": since, "until": int64(253402300800)}, "until"},
		{"until at the end of int64", map[string]any{"since": since, "until": int64(9223372036854775807)}, "until"},
		{"since after the year 9999", map[string]any{"since": int64(9223372036854775807)}, "since"},
		{"an unknown type", map[string]any{"since": since, "types": []string{"checkout.refunded"}}, "types"},
		{"no type", map[string]any{"since": since, "types": []string{}}, "types"},
		{"a type that is not a string", map[string]any{"since": since, "types": []any{7}}, "types"},
		{"an unknown field", map[string]any{"since": since, "event_types": []string{"checkout.paid"}}, "event_types"},
	} {
		res := h.do("POST", path, h.a.TestAPIKey, c.body).must(t, http.StatusBadRequest)
		schematest.Object(t, "error", res.body)
		if p := res.errorParam(t); p != c.param {
			t.Errorf("%s: param %q, want %q", c.name, p, c.param)
		}
	}
	h.do("POST", "/v1/webhook_endpoints/we_missing/replay", h.a.TestAPIKey, map[string]any{"since": since}).must(t, http.StatusNotFound)
	h.do("POST", path, h.b.TestAPIKey, map[string]any{"since": since}).must(t, http.StatusNotFound)
	if h.count("deliveries") != deliveries || h.count("river_job") != jobs {
		t.Fatal("a dry run or a refused replay changed deliveries or jobs")
	}

	real := map[string]any{"since": since, "types": []string{"checkout.created"}}
	first := h.do("POST", path, h.a.TestAPIKey, real, "Idempotency-Key", "replay-1")
	if m, q := replayBody(t, first); m != 2 || q != 2 {
		t.Fatalf("replay: matched %d queued %d, want 2 and 2", m, q)
	}
	again := h.do("POST", path, h.a.TestAPIKey, real, "Idempotency-Key", "replay-1")
	if replayBody(t, again); string(again.body) != string(first.body) {
		t.Fatalf("the same key answered %s, then %s", first.body, again.body)
	}
	var toEndpoint int
	if err := h.pool.QueryRow(context.Background(), `select count(*) from deliveries where endpoint_id = $1`, ep.ID).Scan(&toEndpoint); err != nil {
		t.Fatal(err)
	}
	if toEndpoint != 2 {
		t.Fatalf("%d deliveries to the endpoint after a replay and its idempotent repeat, want 2", toEndpoint)
	}

	if _, err := h.pool.Exec(context.Background(), `update webhook_endpoints set status = 'disabled' where id = $1`, ep.ID); err != nil {
		t.Fatal(err)
	}
	res := h.do("POST", path, h.a.TestAPIKey, map[string]any{"since": since}).must(t, http.StatusConflict)
	schematest.Object(t, "error", res.body)
}

// TestReconciliationList: GET /v1/events?delivery_success=false lists the
// events with a delivery not succeeded, newest first, with type and the
// cursors; delivery_success=true and other values are a 400 naming it.
func TestReconciliationList(t *testing.T) {
	t.Parallel()

	h := newHarness(t)
	decodeEndpoint(t, h.do("POST", "/v1/webhook_endpoints", h.a.TestAPIKey,
		map[string]any{"url": "https://hooks.example.com/a", "enabled_events": []string{"*"}}).must(t, http.StatusCreated))
	for range 3 {
		h.attempt(h.checkout(nil), map[string]any{}) // checkout.created, payment_attempt.created
	}
	// No worker runs here: every delivery is pending. Settle all but those
	// of the second checkout's events and of the newest event.
	all, _ := h.do("GET", "/v1/events", h.a.TestAPIKey, nil).must(t, http.StatusOK).list(t)
	var ids []string
	for _, e := range all {
		var evt struct{ ID string }
		if err := json.Unmarshal(e, &evt); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, evt.ID)
	}
	if len(ids) != 6 {
		t.Fatalf("%d events, want 6", len(ids))
	}
	want := []string{ids[0], ids[2], ids[3]} // newest first
	if _, err := h.pool.Exec(context.Background(), `update deliveries set status = 'succeeded' where not (event_id = any($1))`, want); err != nil {
		t.Fatal(err)
	}
	if _, err := h.pool.Exec(context.Background(), `update deliveries set status = 'failed' where event_id = $1`, ids[2]); err != nil {
		t.Fatal(err)
	}

	list := func(query string) ([]string, bool) {
		t.Helper()
		data, more := h.do("GET", "/v1/events?delivery_success=false"+query, h.a.TestAPIKey, nil).must(t, http.StatusOK).list(t)
		var got []string
		for _, d := range data {
			var evt struct{ ID, Type string }
			if err := json.Unmarshal(d, &evt); err != nil {
				t.Fatal(err)
			}
			schematest.Event(t, evt.Type, d)
			got = append(got, evt.ID)
		}
		return got, more
	}
	if got, more := list(""); !slices.Equal(got, want) || more {
		t.Fatalf("undelivered events %v (has_more %v), want %v", got, more, want)
	}
	if got, more := list("&limit=2"); !slices.Equal(got, want[:2]) || !more {
		t.Fatalf("first page %v (has_more %v), want %v and more", got, more, want[:2])
	}
	if got, more := list("&limit=2&starting_after=" + want[1]); !slices.Equal(got, want[2:]) || more {
		t.Fatalf("page after %s: %v (has_more %v), want %v", want[1], got, more, want[2:])
	}
	if got, more := list("&limit=1&ending_before=" + want[2]); !slices.Equal(got, want[1:2]) || !more {
		t.Fatalf("page before %s: %v (has_more %v), want %v and more", want[2], got, more, want[1:2])
	}
	// ids[0] and ids[2] are payment_attempt.created, ids[3] checkout.created.
	if got, _ := list("&type=checkout.created"); !slices.Equal(got, want[2:]) {
		t.Fatalf("undelivered checkout.created events %v, want %v", got, want[2:])
	}
	if got, _ := list("&type=payment_attempt.created&limit=1&starting_after=" + want[0]); !slices.Equal(got, want[1:2]) {
		t.Fatalf("undelivered payment_attempt.created events after %s: %v, want %v", want[0], got, want[1:2])
	}
	for _, c := range []struct{ query, param string }{
		{"?delivery_success=true", "delivery_success"},
		{"?delivery_success=no", "delivery_success"},
		{"?delivery_success=false&type=checkout.refunded", "type"},
	} {
		res := h.do("GET", "/v1/events"+c.query, h.a.TestAPIKey, nil).must(t, http.StatusBadRequest)
		schematest.Object(t, "error", res.body)
		if p := res.errorParam(t); p != c.param {
			t.Errorf("%s: param %q, want %q", c.query, p, c.param)
		}
	}
}
