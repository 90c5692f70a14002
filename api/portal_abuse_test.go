package api_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/hookline/hookline/api"
	"github.com/hookline/hookline/delivery"
)

// TestPortalFormsSpendTheKeysRateLimit floods the portal's test-event form:
// each form takes a token from the bucket of the session's API key, as the
// API request it stands for would, so past the burst the form is refused
// with a 429 page (Retry-After) and sends nothing, and the API's own
// requests with the key are refused too.
func TestPortalFormsSpendTheKeysRateLimit(t *testing.T) {
	t.Parallel()
	// A token every 1000 s: the bucket does not refill during the test.
	h := newHarnessWith(t, harnessOptions{limit: api.RateLimit{Rate: 0.001, Burst: 5}})
	id := h.do("POST", "/v1/webhook_endpoints", h.a.TestAPIKey, map[string]any{"url": "https://a.example.com/h"}).
		must(t, http.StatusCreated).field(t, "id")
	b := h.signIn(h.a.TestAPIKey) // the link took a second token
	csrf := b.csrf("/portal/endpoints/" + id)
	form := url.Values{"csrf": {csrf}, "type": {"checkout.paid"}}
	for i := range 3 {
		if res := b.post("/portal/endpoints/"+id+"/test", form); res.status != http.StatusSeeOther {
			t.Fatalf("test event %d answers %d, want 303: %s", i+1, res.status, res.body)
		}
	}
	res := b.post("/portal/endpoints/"+id+"/test", form)
	if res.status != http.StatusTooManyRequests || res.header.Get("Retry-After") == "" {
		t.Fatalf("past the burst the form answers %d (Retry-After %q), want 429 with Retry-After", res.status, res.header.Get("Retry-After"))
	}
	if ct := res.header.Get("Content-Type"); ct != "text/html; charset=utf-8" {
		t.Errorf("the 429 is %s, want the portal's page", ct)
	}
	res.has(t, "Too many requests")
	if n := h.count("deliveries"); n != 3 {
		t.Errorf("%d deliveries, want the 3 the bucket allowed", n)
	}
	if res := h.do("POST", "/v1/webhook_endpoints/"+id+"/send_test_event", h.a.TestAPIKey, nil); res.status != http.StatusTooManyRequests {
		t.Errorf("after the portal spent the bucket the API answers %d, want 429", res.status)
	}
	// Another merchant's bucket is its own.
	h.do("GET", "/v1/webhook_endpoints", h.b.TestAPIKey, nil).must(t, http.StatusOK)
}

// TestPortalRefusesTextPostgresCannotHold sends form values with NUL or
// bytes that are not UTF-8, in each field that reaches a text column: each
// is a 400 page naming its field (as the API's 400 names it), never a 500,
// and nothing is written.
func TestPortalRefusesTextPostgresCannotHold(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	id := h.do("POST", "/v1/webhook_endpoints", h.a.TestAPIKey, map[string]any{"url": "https://a.example.com/h", "description": "kept"}).
		must(t, http.StatusCreated).field(t, "id")
	b := h.signIn(h.a.TestAPIKey)
	csrf := b.csrf("/portal/endpoints/new")
	for _, c := range []struct {
		path, field, value, want string
	}{
		{"/portal/endpoints", "description", "a\x00b", "The description must be UTF-8 text"},
		{"/portal/endpoints", "description", "caf\xe9", "The description must be UTF-8 text"},
		{"/portal/endpoints", "url", "https://a.example.com/h\xff", "The URL must be UTF-8 text"},
		{"/portal/endpoints", "url", "https://a.example.com/\x00", "The URL must be UTF-8 text"},
		{"/portal/endpoints", "headers", "X-A: \xff", "The headers must be UTF-8 text"},
		{"/portal/endpoints/" + id, "description", "x\x00", "The description must be UTF-8 text"},
	} {
		form := url.Values{"csrf": {csrf}, "once": {b.once("/portal/endpoints/new")}, "url": {"https://b.example.com/"}, "subscribe": {"all"}}
		form.Set(c.field, c.value)
		res := b.post(c.path, form)
		if res.status != http.StatusBadRequest {
			t.Errorf("POST %s %s=%q answers %d, want 400", c.path, c.field, c.value, res.status)
		}
		res.has(t, c.want)
	}
	if n := h.count("webhook_endpoints"); n != 1 {
		t.Errorf("%d endpoints after refused forms, want 1", n)
	}
	var description string
	if err := h.pool.QueryRow(context.Background(), `select description from webhook_endpoints`).Scan(&description); err != nil || description != "kept" {
		t.Errorf("the description is %q (%v), want kept", description, err)
	}
}

// TestPortalUnreadableURLsArePages opens portal paths and queries with NUL
// or bytes that are not UTF-8: each is the portal's 400 page, not the API's
// JSON and not a 500.
func TestPortalUnreadableURLsArePages(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	id := h.do("POST", "/v1/webhook_endpoints", h.a.TestAPIKey, map[string]any{"url": "https://a.example.com/h"}).
		must(t, http.StatusCreated).field(t, "id")
	b := h.signIn(h.a.TestAPIKey)
	csrf := b.csrf("/portal/endpoints/new")
	for _, res := range []response{
		b.get("/portal/endpoints/%00"), b.get("/portal/deliveries/%FF"), b.get("/portal/endpoints/" + id + "?window=%00"),
		b.post("/portal/endpoints/%00/delete", url.Values{"csrf": {csrf}}),
	} {
		if res.status != http.StatusBadRequest || res.header.Get("Content-Type") != "text/html; charset=utf-8" {
			t.Errorf("answered %d %s, want the portal's 400 page", res.status, res.header.Get("Content-Type"))
		}
		res.has(t, "This address is not valid")
	}
	if n := h.count("webhook_endpoints where deleted_at is null"); n != 1 {
		t.Errorf("%d endpoints, want 1", n)
	}
}

// TestPortalRotateGraceOutOfRange sends grace periods out of range, one
// of them large enough to overflow a Duration once multiplied: each is a
// 400 page naming the grace period, and the secret is not rotated.
func TestPortalRotateGraceOutOfRange(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	id := h.do("POST", "/v1/webhook_endpoints", h.a.TestAPIKey, map[string]any{"url": "https://a.example.com/h"}).
		must(t, http.StatusCreated).field(t, "id")
	b := h.signIn(h.a.TestAPIKey)
	csrf := b.csrf("/portal/endpoints/" + id)
	for _, grace := range []string{"-5", "604801", "36028797018967568", "99999999999999999999", "soon"} {
		res := b.post("/portal/endpoints/"+id+"/rotate", url.Values{"csrf": {csrf}, "once": {b.once("/portal/endpoints/" + id)},
			"grace_period_seconds": {grace}})
		if res.status != http.StatusBadRequest {
			t.Errorf("grace %s answers %d, want 400", grace, res.status)
		}
		res.has(t, "The grace period must be from 0 to 604800 seconds")
	}
	if n := h.count("webhook_endpoints where cardinality(previous_secrets) > 0"); n != 0 {
		t.Errorf("the secret was rotated by a refused form")
	}
}

// TestPortalResubmittedFormsActOnce sends the create and rotate forms twice
// each, as a browser's reload of the page that shows the secret does: the
// second is a 409 page saying the form was already submitted, without the
// secret, and creates or rotates nothing; the same form rendered again (a
// new key) acts again.
func TestPortalResubmittedFormsActOnce(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	b := h.signIn(h.a.TestAPIKey)
	create := url.Values{"csrf": {b.csrf("/portal/endpoints/new")}, "once": {b.once("/portal/endpoints/new")},
		"url": {"https://b.example.com/"}, "subscribe": {"all"}}
	b.post("/portal/endpoints", create).must(t, http.StatusCreated).has(t, "whsec_")
	again := b.post("/portal/endpoints", create)
	if again.status != http.StatusConflict {
		t.Errorf("the create form again answers %d, want 409", again.status)
	}
	again.has(t, "This form was already submitted")
	if strings.Contains(string(again.body), "whsec_") {
		t.Errorf("the resubmitted form shows a secret:\n%s", again.body)
	}
	if n := h.count("webhook_endpoints"); n != 1 {
		t.Fatalf("%d endpoints after the form was sent twice, want 1", n)
	}
	var id string
	if err := h.pool.QueryRow(context.Background(), `select id from webhook_endpoints`).Scan(&id); err != nil {
		t.Fatal(err)
	}
	again.has(t, `href="/portal/endpoints/`+id+`"`)
	// The key is the merchant's: another session sending the same form
	// finds it used too.
	other := h.signIn(h.a.TestAPIKey)
	create.Set("csrf", other.csrf("/portal/endpoints/new"))
	other.post("/portal/endpoints", create).must(t, http.StatusConflict)

	rotate := url.Values{"csrf": {b.csrf("/portal/endpoints/" + id)}, "once": {b.once("/portal/endpoints/" + id)},
		"grace_period_seconds": {"3600"}}
	b.post("/portal/endpoints/"+id+"/rotate", rotate).must(t, http.StatusOK).has(t, "whsec_")
	again = b.post("/portal/endpoints/"+id+"/rotate", rotate)
	if again.status != http.StatusConflict || strings.Contains(string(again.body), "whsec_") {
		t.Errorf("the rotate form again answers %d (want 409, without a secret):\n%s", again.status, again.body)
	}
	previous := func() int {
		t.Helper()
		var n int
		if err := h.pool.QueryRow(context.Background(), `select cardinality(previous_secrets) from webhook_endpoints where id = $1`, id).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	if n := previous(); n != 1 {
		t.Errorf("%d previous secrets after the rotate form was sent twice, want 1 (one rotation)", n)
	}
	rotate.Set("once", b.once("/portal/endpoints/"+id))
	b.post("/portal/endpoints/"+id+"/rotate", rotate).must(t, http.StatusOK)
	if n := previous(); n != 2 {
		t.Errorf("%d previous secrets after a new rotate form, want 2", n)
	}
	// A form without its key is refused before it acts.
	create.Del("once")
	create.Set("csrf", b.csrf("/portal/endpoints/new"))
	b.post("/portal/endpoints", create).must(t, http.StatusForbidden)
}

// TestPortalCookieIsSecureWhenBrowsersUseHTTPS opens links where hookline
// sees plain http but browsers reach it over https: with an https
// HOOKLINE_PUBLIC_URL (a proxy hookline is not told about), and in
// production without one. The cookie is Secure, and SameSite=None and
// Partitioned where the portal may be framed; production's link is https.
func TestPortalCookieIsSecureWhenBrowsersUseHTTPS(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name   string
		o      harnessOptions
		prefix string
	}{
		{"an https public URL", harnessOptions{publicURL: "https://hooks.example.com", frameAncestors: []string{"https://shop.example.com"}},
			"https://hooks.example.com/portal/start?token="},
		{"production", harnessOptions{guard: delivery.NewGuard(true), frameAncestors: []string{"https://shop.example.com"}},
			"https://127.0.0.1:"},
	} {
		h := newHarnessWith(t, c.o)
		link := h.portalLink(h.a.TestAPIKey, nil)
		if !strings.HasPrefix(link, c.prefix) {
			t.Errorf("%s: the link is %s, want %s…", c.name, link, c.prefix)
		}
		u, err := url.Parse(link)
		if err != nil {
			t.Fatal(err)
		}
		res := h.browser().get(h.url + u.RequestURI())
		cookies := (&http.Response{Header: res.header}).Cookies()
		if len(cookies) != 1 || !cookies[0].Secure || cookies[0].SameSite != http.SameSiteNoneMode || !cookies[0].Partitioned {
			t.Errorf("%s: the cookie is %v, want Secure, SameSite=None, Partitioned", c.name, res.header.Values("Set-Cookie"))
		}
	}
}
