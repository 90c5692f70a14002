package api_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/hookline/hookline/events"
	"github.com/hookline/hookline/schema/schematest"
)

type endpointBody struct {
	ID             string   `json:"id"`
	Secret         string   `json:"secret"`
	Status         string   `json:"status"`
	EnabledEvents  []string `json:"enabled_events"`
	DisabledReason *string  `json:"disabled_reason"`
	URL            string   `json:"url"`
	DisplayName    *string  `json:"display_name"`
}

func decodeEndpoint(t *testing.T, r response) endpointBody {
	t.Helper()
	schematest.Object(t, "webhook_endpoint", r.body)
	var e endpointBody
	if err := json.Unmarshal(r.body, &e); err != nil {
		t.Fatal(err)
	}
	return e
}

func TestWebhookEndpointLifecycle(t *testing.T) {
	t.Parallel()

	h := newHarness(t)
	created := decodeEndpoint(t, h.do("POST", "/v1/webhook_endpoints", h.a.TestAPIKey,
		map[string]any{"url": "http://127.0.0.1:9/hooks", "description": "orders"}).must(t, http.StatusCreated))
	if !strings.HasPrefix(created.Secret, "whsec_") || created.Status != "enabled" {
		t.Fatalf("created %+v", created)
	}
	var defaults []string
	for _, t := range events.DefaultEnabledTypes() {
		defaults = append(defaults, string(t))
	}
	if !slices.Equal(created.EnabledEvents, defaults) {
		t.Fatalf("an endpoint without enabled_events reports %v, want the default-on types %v", created.EnabledEvents, defaults)
	}
	if created.DisplayName == nil || *created.DisplayName != "Merchant A" {
		t.Fatalf("display_name %v, want the merchant's name", created.DisplayName)
	}

	got := decodeEndpoint(t, h.do("GET", "/v1/webhook_endpoints/"+created.ID, h.a.TestAPIKey, nil).must(t, http.StatusOK))
	if got.Secret != "" {
		t.Fatal("retrieve shows the secret; only create and rotate may")
	}
	list, _ := h.do("GET", "/v1/webhook_endpoints", h.a.TestAPIKey, nil).must(t, http.StatusOK).list(t)
	if len(list) != 1 || strings.Contains(string(list[0]), "whsec_") {
		t.Fatalf("list %s", list)
	}

	updated := decodeEndpoint(t, h.do("PATCH", "/v1/webhook_endpoints/"+created.ID, h.a.TestAPIKey,
		map[string]any{"url": "http://127.0.0.1:9/v2", "enabled_events": []string{"checkout.created", "checkout.created", "*"}, "status": "disabled"}).
		must(t, http.StatusOK))
	if updated.URL != "http://127.0.0.1:9/v2" || !slices.Equal(updated.EnabledEvents, []string{"checkout.created", "*"}) ||
		updated.Status != "disabled" || updated.DisabledReason != nil {
		t.Fatalf("updated %+v", updated)
	}
	enabled := decodeEndpoint(t, h.do("PATCH", "/v1/webhook_endpoints/"+created.ID, h.a.TestAPIKey,
		map[string]any{"status": "enabled"}).must(t, http.StatusOK))
	if enabled.Status != "enabled" || enabled.URL != updated.URL {
		t.Fatalf("re-enabled %+v", enabled)
	}

	rotated := decodeEndpoint(t, h.do("POST", "/v1/webhook_endpoints/"+created.ID+"/rotate_secret", h.a.TestAPIKey,
		map[string]any{"grace_period_seconds": 3600}).must(t, http.StatusOK))
	if !strings.HasPrefix(rotated.Secret, "whsec_") || rotated.Secret == created.Secret {
		t.Fatalf("rotate gave %q", rotated.Secret)
	}
	h.do("POST", "/v1/webhook_endpoints/"+created.ID+"/rotate_secret", h.a.TestAPIKey, nil).must(t, http.StatusOK)

	del := h.do("DELETE", "/v1/webhook_endpoints/"+created.ID, h.a.TestAPIKey, nil).must(t, http.StatusOK)
	if string(del.body) != `{"id":"`+created.ID+`","object":"webhook_endpoint","deleted":true}`+"\n" {
		t.Fatalf("delete answered %s", del.body)
	}
	h.do("GET", "/v1/webhook_endpoints/"+created.ID, h.a.TestAPIKey, nil).must(t, http.StatusNotFound)
	h.do("DELETE", "/v1/webhook_endpoints/"+created.ID, h.a.TestAPIKey, nil).must(t, http.StatusNotFound)

	chat := decodeEndpoint(t, h.do("POST", "/v1/webhook_endpoints", h.a.TestAPIKey,
		map[string]any{"url": "http://127.0.0.1:9/api/webhooks/1/x", "type": "discord", "display_name": "New project"}).must(t, http.StatusCreated))
	if chat.DisplayName == nil || *chat.DisplayName != "New project" {
		t.Fatalf("discord endpoint %+v", chat)
	}
}

func TestWebhookEndpointRefusesBadInput(t *testing.T) {
	t.Parallel()

	h := newHarness(t)
	ep := decodeEndpoint(t, h.do("POST", "/v1/webhook_endpoints", h.a.TestAPIKey,
		map[string]any{"url": "http://127.0.0.1:9/hooks"}).must(t, http.StatusCreated))
	tests := []struct {
		name      string
		method    string
		path      string
		body      any
		wantParam string
	}{
		{"missing url", "POST", "/v1/webhook_endpoints", map[string]any{}, "url"},
		{"ftp url", "POST", "/v1/webhook_endpoints", map[string]any{"url": "ftp://x.example/"}, "url"},
		{"unknown event type", "POST", "/v1/webhook_endpoints", map[string]any{"url": "http://127.0.0.1:9/", "enabled_events": []string{"checkout.paid", "checkout.nope"}}, "enabled_events[1]"},
		{"empty enabled_events", "POST", "/v1/webhook_endpoints", map[string]any{"url": "http://127.0.0.1:9/", "enabled_events": []string{}}, "enabled_events"},
		{"unknown type", "POST", "/v1/webhook_endpoints", map[string]any{"url": "http://127.0.0.1:9/", "type": "teams"}, "type"},
		{"unknown field", "POST", "/v1/webhook_endpoints", map[string]any{"url": "http://127.0.0.1:9/", "secret": "whsec_x"}, "secret"},
		{"bad status", "PATCH", "/v1/webhook_endpoints/" + ep.ID, map[string]any{"status": "paused"}, "status"},
		{"empty list on update", "PATCH", "/v1/webhook_endpoints/" + ep.ID, map[string]any{"enabled_events": []string{}}, "enabled_events"},
		{"bad url on update", "PATCH", "/v1/webhook_endpoints/" + ep.ID, map[string]any{"url": "nope"}, "url"},
		{"negative grace", "POST", "/v1/webhook_endpoints/" + ep.ID + "/rotate_secret", map[string]any{"grace_period_seconds": -1}, "grace_period_seconds"},
		{"grace over 7 days", "POST", "/v1/webhook_endpoints/" + ep.ID + "/rotate_secret", map[string]any{"grace_period_seconds": 700000}, "grace_period_seconds"},
		{"bad delivery status filter", "GET", "/v1/deliveries?status=lost", nil, "status"},
		{"rate limit zero", "POST", "/v1/webhook_endpoints", map[string]any{"url": "http://127.0.0.1:9/", "rate_limit": 0}, "rate_limit"},
		{"rate limit too high", "POST", "/v1/webhook_endpoints", map[string]any{"url": "http://127.0.0.1:9/", "rate_limit": 10001}, "rate_limit"},
		{"rate limit not a number", "POST", "/v1/webhook_endpoints", map[string]any{"url": "http://127.0.0.1:9/", "rate_limit": "50"}, "rate_limit"},
		{"rate limit fraction on update", "PATCH", "/v1/webhook_endpoints/" + ep.ID, map[string]any{"rate_limit": 1.5}, "rate_limit"},
		{"rate limit negative on update", "PATCH", "/v1/webhook_endpoints/" + ep.ID, map[string]any{"rate_limit": -3}, "rate_limit"},
		{"signature header", "POST", "/v1/webhook_endpoints", map[string]any{"url": "http://127.0.0.1:9/", "headers": map[string]string{"Webhook-Signature": "x"}}, "headers.Webhook-Signature"},
		{"content type header", "POST", "/v1/webhook_endpoints", map[string]any{"url": "http://127.0.0.1:9/", "headers": map[string]string{"content-type": "text/plain"}}, "headers.content-type"},
		{"trace context header", "POST", "/v1/webhook_endpoints", map[string]any{"url": "http://127.0.0.1:9/", "headers": map[string]string{"Traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}}, "headers.Traceparent"},
		{"trace state header", "PATCH", "/v1/webhook_endpoints/" + ep.ID, map[string]any{"headers": map[string]string{"tracestate": "vendor=x"}}, "headers.tracestate"},
		{"hop-by-hop header", "PATCH", "/v1/webhook_endpoints/" + ep.ID, map[string]any{"headers": map[string]string{"Proxy-Authorization": "x"}}, "headers.Proxy-Authorization"},
		{"header name not a token", "POST", "/v1/webhook_endpoints", map[string]any{"url": "http://127.0.0.1:9/", "headers": map[string]string{"X Key": "x"}}, "headers.X Key"},
		{"header name too long", "POST", "/v1/webhook_endpoints", map[string]any{"url": "http://127.0.0.1:9/", "headers": map[string]string{"X-" + strings.Repeat("a", 63): "x"}}, "headers.X-" + strings.Repeat("a", 63)},
		{"header value too long", "POST", "/v1/webhook_endpoints", map[string]any{"url": "http://127.0.0.1:9/", "headers": map[string]string{"X-Key": strings.Repeat("a", 1025)}}, "headers.X-Key"},
		{"header value with a newline", "PATCH", "/v1/webhook_endpoints/" + ep.ID, map[string]any{"headers": map[string]string{"X-Key": "a\r\nHost: evil"}}, "headers.X-Key"},
		{"same header twice", "POST", "/v1/webhook_endpoints", map[string]any{"url": "http://127.0.0.1:9/", "headers": map[string]string{"X-Key": "a", "x-key": "b"}}, "headers.x-key"},
		{"too many headers", "POST", "/v1/webhook_endpoints", map[string]any{"url": "http://127.0.0.1:9/", "headers": manyHeaders(21)}, "headers"},
		{"headers on a chat endpoint", "POST", "/v1/webhook_endpoints", map[string]any{"url": "http://127.0.0.1:9/", "type": "discord", "headers": map[string]string{"X-Key": "a"}}, "headers"},
		{"unknown test event type", "POST", "/v1/webhook_endpoints/" + ep.ID + "/send_test_event", map[string]any{"type": "checkout.refunded"}, "type"},
		{"empty test event type", "POST", "/v1/webhook_endpoints/" + ep.ID + "/send_test_event", map[string]any{"type": ""}, "type"},
		{"test event type not a string", "POST", "/v1/webhook_endpoints/" + ep.ID + "/send_test_event", map[string]any{"type": 7}, "type"},
		{"test event with an unknown field", "POST", "/v1/webhook_endpoints/" + ep.ID + "/send_test_event", map[string]any{"type": "checkout.paid", "data": map[string]any{}}, "data"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()

			res := h.do(tt.method, tt.path, h.a.TestAPIKey, tt.body).must(t, http.StatusBadRequest)
			if got := res.errorParam(t); got != tt.wantParam {
				t.Errorf("param %q, want %q: %s", got, tt.wantParam, res.body)
			}
		})
	}
}

func TestDeliveriesAPI(t *testing.T) {
	t.Parallel()

	h := newHarness(t)
	ep := decodeEndpoint(t, h.do("POST", "/v1/webhook_endpoints", h.a.TestAPIKey,
		map[string]any{"url": "http://127.0.0.1:9/hooks"}).must(t, http.StatusCreated))
	chk := h.checkout(map[string]any{"webhook_url": "http://127.0.0.1:9/checkout"})
	h.attempt(chk, map[string]any{}) // payment_attempt.created: default on, so to both destinations

	data, _ := h.do("GET", "/v1/deliveries", h.a.TestAPIKey, nil).must(t, http.StatusOK).list(t)
	if len(data) != 2 {
		t.Fatalf("%d deliveries, want 2 (the endpoint and the checkout's webhook_url; checkout.created is off)", len(data))
	}
	var dlv struct {
		ID       string  `json:"id"`
		Event    string  `json:"event"`
		Endpoint *string `json:"endpoint"`
		Status   string  `json:"status"`
	}
	for _, d := range data {
		schematest.Object(t, "delivery", d)
	}
	if err := json.Unmarshal(data[0], &dlv); err != nil {
		t.Fatal(err)
	}
	filters := map[string]int{
		"?event=" + dlv.Event: 2,
		"?endpoint=" + ep.ID:  1,
		"?status=pending":     2,
		"?status=failed":      0,
		"?endpoint=we_none":   0,
	}
	for q, want := range filters {
		if got, _ := h.do("GET", "/v1/deliveries"+q, h.a.TestAPIKey, nil).must(t, http.StatusOK).list(t); len(got) != want {
			t.Errorf("%s: %d deliveries, want %d", q, len(got), want)
		}
	}
	one := h.do("GET", "/v1/deliveries/"+dlv.ID, h.a.TestAPIKey, nil).must(t, http.StatusOK)
	schematest.Object(t, "delivery", one.body)
	if !strings.Contains(string(one.body), `"attempts":[]`) {
		t.Fatalf("retrieve has no attempts list: %s", one.body)
	}
	jobs := h.count("river_job")
	h.do("POST", "/v1/deliveries/"+dlv.ID+"/retry", h.a.TestAPIKey, nil).must(t, http.StatusAccepted)
	if got := h.count("river_job"); got != jobs+1 {
		t.Fatalf("retry enqueued %d jobs, want 1", got-jobs)
	}
	h.do("POST", "/v1/deliveries/dlv_01ARZ3NDEKTSV4RRFFQ69G5FAV/retry", h.a.TestAPIKey, nil).must(t, http.StatusNotFound)
}

// TestEd25519EndpointsOverTheAPI creates and rotates an ed25519 endpoint
// (public keys only, never a secret), and checks the 400s of the option.
// An endpoint's rate_limit is set on create, kept by an update that does not
// name it, changed by one that does, and removed by null.
func TestEndpointRateLimitOverTheAPI(t *testing.T) {
	t.Parallel()

	h := newHarness(t)
	res := h.do("POST", "/v1/webhook_endpoints", h.a.TestAPIKey,
		map[string]any{"url": "http://127.0.0.1:9/hooks", "rate_limit": 50}).must(t, http.StatusCreated)
	ep := decodeEndpoint(t, res)
	limit := func(res response) any {
		t.Helper()
		var body map[string]any
		if err := json.Unmarshal(res.body, &body); err != nil {
			t.Fatal(err)
		}
		return body["rate_limit"]
	}
	if got := limit(res); got != float64(50) {
		t.Fatalf("created with rate_limit %v, want 50: %s", got, res.body)
	}
	path := "/v1/webhook_endpoints/" + ep.ID
	for _, step := range []struct {
		body map[string]any
		want any
	}{
		{map[string]any{"description": "kept"}, float64(50)},
		{map[string]any{"rate_limit": 10000}, float64(10000)},
		{map[string]any{"rate_limit": nil}, nil},
	} {
		res := h.do("PATCH", path, h.a.TestAPIKey, step.body).must(t, http.StatusOK)
		decodeEndpoint(t, res)
		if got := limit(res); got != step.want {
			t.Errorf("after %v: rate_limit %v, want %v", step.body, got, step.want)
		}
	}
	if got := limit(h.do("GET", path, h.a.TestAPIKey, nil).must(t, http.StatusOK)); got != nil {
		t.Errorf("retrieved rate_limit %v, want null", got)
	}
}

func manyHeaders(n int) map[string]string {
	h := map[string]string{}
	for i := range n {
		h["X-Header-"+strconv.Itoa(i)] = "v"
	}
	return h
}

// Custom headers are shown as stored, an authorization value masked; an
// update that sends the mask back keeps the stored value (the worker's
// test checks what a receiver gets), {} removes them all.
func TestEndpointHeadersOverTheAPI(t *testing.T) {
	t.Parallel()

	h := newHarness(t)
	headers := func(res response) map[string]string {
		t.Helper()
		var body struct{ Headers map[string]string }
		if err := json.Unmarshal(res.body, &body); err != nil {
			t.Fatal(err)
		}
		return body.Headers
	}
	res := h.do("POST", "/v1/webhook_endpoints", h.a.TestAPIKey, map[string]any{"url": "http://127.0.0.1:9/hooks",
		"headers": map[string]string{"X-Api-Key": "k1", "Authorization": "Bearer 0123456789abcdefwxyz"}}).must(t, http.StatusCreated)
	ep := decodeEndpoint(t, res)
	want := map[string]string{"X-Api-Key": "k1", "Authorization": "Bearer ****wxyz"}
	if got := headers(res); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("created with headers %v, want %v", got, want)
	}
	if strings.Contains(string(res.body), "0123456789abcdef") {
		t.Fatalf("the authorization value is shown: %s", res.body)
	}
	path := "/v1/webhook_endpoints/" + ep.ID
	got := h.do("GET", path, h.a.TestAPIKey, nil).must(t, http.StatusOK)
	if fmt.Sprint(headers(got)) != fmt.Sprint(want) {
		t.Errorf("retrieved headers %v, want %v", headers(got), want)
	}
	short := h.do("PATCH", path, h.a.TestAPIKey, map[string]any{"headers": map[string]string{"Authorization": "Basic dTpw"}}).must(t, http.StatusOK)
	if got := headers(short); fmt.Sprint(got) != fmt.Sprint(map[string]string{"Authorization": "Basic ****"}) {
		t.Errorf("a short credential is shown as %v, want Basic ****", got)
	}
	basic := h.do("PATCH", path, h.a.TestAPIKey, map[string]any{"headers": map[string]string{"Authorization": "Basic dXNlcjpzZWNyZXQtcGFzc3dvcmQ="}}).must(t, http.StatusOK)
	if got := headers(basic); fmt.Sprint(got) != fmt.Sprint(map[string]string{"Authorization": "Basic ****"}) {
		t.Errorf("a Basic credential is shown as %v, want Basic **** (its last characters are the password's)", got)
	}
	cleared := h.do("PATCH", path, h.a.TestAPIKey, map[string]any{"headers": map[string]string{}}).must(t, http.StatusOK)
	decodeEndpoint(t, cleared)
	if got := headers(cleared); len(got) != 0 {
		t.Errorf("headers after {}: %v, want none", got)
	}
}

func TestEd25519EndpointsOverTheAPI(t *testing.T) {
	t.Parallel()

	h := newHarness(t)
	res := h.do("POST", "/v1/webhook_endpoints", h.a.TestAPIKey,
		map[string]any{"url": "http://127.0.0.1:9/hooks", "signature_scheme": "ed25519"}).must(t, http.StatusCreated)
	decodeEndpoint(t, res)
	id, key := res.field(t, "id"), res.field(t, "public_key")
	if !strings.HasPrefix(key, "whpk_") || res.field(t, "secret") != "" || res.field(t, "signature_scheme") != "ed25519" {
		t.Fatalf("created %s: want signature_scheme ed25519, a whpk_ public_key and no secret", res.body)
	}
	got := h.do("GET", "/v1/webhook_endpoints/"+id, h.a.TestAPIKey, nil).must(t, http.StatusOK)
	decodeEndpoint(t, got)
	if got.field(t, "signature_scheme") != "ed25519" || got.field(t, "public_key") != "" {
		t.Fatalf("retrieved %s: want the scheme, and the key shown only on create and rotation", got.body)
	}
	rotated := h.do("POST", "/v1/webhook_endpoints/"+id+"/rotate_secret", h.a.TestAPIKey, nil).must(t, http.StatusOK)
	decodeEndpoint(t, rotated)
	if k := rotated.field(t, "public_key"); !strings.HasPrefix(k, "whpk_") || k == key || rotated.field(t, "secret") != "" {
		t.Fatalf("rotated %s: want a new public_key and no secret", rotated.body)
	}
	hmac := h.do("POST", "/v1/webhook_endpoints", h.a.TestAPIKey, map[string]any{"url": "http://127.0.0.1:9/hooks"}).must(t, http.StatusCreated)
	if hmac.field(t, "signature_scheme") != "hmac" || !strings.HasPrefix(hmac.field(t, "secret"), "whsec_") {
		t.Fatalf("default endpoint %s: want hmac with a secret", hmac.body)
	}

	for _, body := range []map[string]any{
		{"url": "http://127.0.0.1:9/hooks", "signature_scheme": "rsa"},
		{"url": "http://127.0.0.1:9/chat", "type": "discord", "signature_scheme": "ed25519"},
		{"url": "http://127.0.0.1:9/chat", "type": "slack", "signature_scheme": "hmac"},
	} {
		res := h.do("POST", "/v1/webhook_endpoints", h.a.TestAPIKey, body).must(t, http.StatusBadRequest)
		if p := res.errorParam(t); p != "signature_scheme" {
			t.Errorf("%v: error names %q, want signature_scheme", body, p)
		}
	}
}
