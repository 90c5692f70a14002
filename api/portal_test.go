package api_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/netip"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hookline/hookline/delivery"
	"github.com/hookline/hookline/schema/schematest"
)

// portalLink creates a portal session with key through the API and returns
// its link.
func (h *harness) portalLink(key string, body any) string {
	h.t.Helper()
	res := h.do("POST", "/v1/portal_sessions", key, body).must(h.t, http.StatusCreated)
	schematest.Object(h.t, "portal_session", res.body)
	return res.field(h.t, "url")
}

// browser is an HTTP client standing in for a merchant's browser in the
// portal: it keeps its cookies and shows each redirect rather than
// following it.
type browser struct {
	t      *testing.T
	h      *harness
	client *http.Client
}

func (h *harness) browser() *browser {
	jar, err := cookiejar.New(nil)
	if err != nil {
		h.t.Fatal(err)
	}
	return &browser{t: h.t, h: h, client: &http.Client{Jar: jar,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

func (b *browser) send(req *http.Request) response {
	b.t.Helper()
	res, err := b.client.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		b.t.Fatal(err)
	}
	return response{status: res.StatusCode, header: res.Header, body: body}
}

// get fetches a URL, or a path of the API's server.
func (b *browser) get(target string, headers ...string) response {
	b.t.Helper()
	if strings.HasPrefix(target, "/") {
		target = b.h.url + target
	}
	req, err := http.NewRequest("GET", target, nil)
	if err != nil {
		b.t.Fatal(err)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	return b.send(req)
}

// post submits a form to a path, as a same-origin form of the portal does.
func (b *browser) post(path string, form url.Values, headers ...string) response {
	b.t.Helper()
	req, err := http.NewRequest("POST", b.h.url+path, strings.NewReader(form.Encode()))
	if err != nil {
		b.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	return b.send(req)
}

var csrfField = regexp.MustCompile(`name="csrf" value="([0-9a-f]+)"`)

// csrf reads the CSRF token of a portal page's forms.
func (b *browser) csrf(path string) string {
	b.t.Helper()
	page := b.get(path).must(b.t, http.StatusOK)
	m := csrfField.FindSubmatch(page.body)
	if m == nil {
		b.t.Fatalf("%s has no CSRF field:\n%s", path, page.body)
	}
	return string(m[1])
}

var onceField = regexp.MustCompile(`name="once" value="([A-Z2-7]+)"`)

// once reads the one-time key of a portal page's create or rotate form.
func (b *browser) once(path string) string {
	b.t.Helper()
	page := b.get(path).must(b.t, http.StatusOK)
	m := onceField.FindSubmatch(page.body)
	if m == nil {
		b.t.Fatalf("%s has no once field:\n%s", path, page.body)
	}
	return string(m[1])
}

// signIn opens a new portal session of key in a new browser.
func (h *harness) signIn(key string) *browser {
	h.t.Helper()
	b := h.browser()
	res := b.get(h.portalLink(key, nil))
	if res.status != http.StatusSeeOther || res.header.Get("Location") != "/portal/endpoints" {
		h.t.Fatalf("the link answers %d to %q, want 303 to /portal/endpoints: %s", res.status, res.header.Get("Location"), res.body)
	}
	return b
}

func (r response) has(t *testing.T, texts ...string) {
	t.Helper()
	for _, s := range texts {
		if !strings.Contains(string(r.body), s) {
			t.Errorf("the page (%d) does not say %q:\n%s", r.status, s, r.body)
		}
	}
}

// TestPortalSessionTokenIsHashedAndSingleUse creates a portal session, reads
// its row (the link's token and the session cookie only as their SHA-256),
// opens it once (a cookie, then the endpoints without the token in the URL)
// and again (refused with a page saying the link was used).
func TestPortalSessionTokenIsHashedAndSingleUse(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	ctx := context.Background()

	res := h.do("POST", "/v1/portal_sessions", h.a.TestAPIKey, map[string]any{"return_url": "https://shop.example.com/settings"}).
		must(t, http.StatusCreated)
	schematest.Object(t, "portal_session", res.body)
	link, err := url.Parse(res.field(t, "url"))
	if err != nil || link.Path != "/portal/start" || h.url != link.Scheme+"://"+link.Host {
		t.Fatalf("the link is %q, want %s/portal/start?token=…", res.field(t, "url"), h.url)
	}
	token := link.Query().Get("token")
	if len(token) < 26 {
		t.Fatalf("the token %q is shorter than 128 bits of base32", token)
	}

	var tokenHash, sessionHash []byte
	var merchant, row string
	var livemode bool
	read := func() {
		t.Helper()
		if err := h.pool.QueryRow(ctx, `select token_hash, session_hash, merchant_id, livemode, to_jsonb(s)::text
			from portal_sessions s`).Scan(&tokenHash, &sessionHash, &merchant, &livemode, &row); err != nil {
			t.Fatal(err)
		}
	}
	read()
	if sum := sha256.Sum256([]byte(token)); string(tokenHash) != string(sum[:]) || strings.Contains(row, token) {
		t.Errorf("the row does not hold the token as its SHA-256 alone: %s", row)
	}
	if merchant != h.a.ID || livemode {
		t.Errorf("the session is %s livemode %v, want %s in test mode", merchant, livemode, h.a.ID)
	}

	b := h.browser()
	res = b.get(link.String())
	if res.status != http.StatusSeeOther || res.header.Get("Location") != "/portal/endpoints" {
		t.Fatalf("the link answers %d to %q, want 303 to /portal/endpoints", res.status, res.header.Get("Location"))
	}
	cookies := (&http.Response{Header: res.header}).Cookies()
	if len(cookies) != 1 {
		t.Fatalf("the link sets %d cookies, want 1", len(cookies))
	}
	c := cookies[0]
	if !c.HttpOnly || c.Secure || c.SameSite != http.SameSiteLaxMode || c.Path != "/portal" || c.Value == token {
		t.Errorf("the session cookie is %s: want HttpOnly, SameSite=Lax, Path=/portal, not Secure over plain http, not the token", c)
	}
	if d := time.Until(c.Expires); d < 59*time.Minute || d > 61*time.Minute {
		t.Errorf("the session cookie expires in %s, want with its session, in an hour", d)
	}
	read()
	if sum := sha256.Sum256([]byte(c.Value)); string(sessionHash) != string(sum[:]) || strings.Contains(row, c.Value) {
		t.Errorf("the row does not hold the session cookie as its SHA-256 alone: %s", row)
	}

	page := b.get("/portal/endpoints").must(t, http.StatusOK)
	page.has(t, "<h2>No endpoints yet</h2>", "Add one to start receiving webhooks.", "Merchant A", "Test mode",
		`href="https://shop.example.com/settings" target="_top">← Back to shop.example.com</a>`)
	if cc := page.header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("Cache-Control is %q, want no-store", cc)
	}

	// Used once: a second use, from this browser or another, is refused.
	for _, other := range []*browser{b, h.browser()} {
		again := other.get(link.String())
		if again.status != http.StatusGone || len(again.header.Values("Set-Cookie")) != 0 {
			t.Errorf("the link used again answers %d with cookies %q, want 410 and none", again.status, again.header.Values("Set-Cookie"))
		}
		again.has(t, "This link has already been used")
	}
}

// TestPortalLinkAndSessionExpire ends a link unused and a session in use:
// the link is refused as expired, the session's pages say it has ended and
// lead back to the merchant's application; an unknown token and a forged
// cookie get their own pages.
func TestPortalLinkAndSessionExpire(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	ctx := context.Background()
	end := func() {
		t.Helper()
		if _, err := h.pool.Exec(ctx, `update portal_sessions set expires_at = now() - interval '1 second'`); err != nil {
			t.Fatal(err)
		}
	}

	link := h.portalLink(h.a.TestAPIKey, nil)
	end()
	res := h.browser().get(link)
	if res.status != http.StatusGone {
		t.Errorf("an expired link answers %d, want 410", res.status)
	}
	res.has(t, "This link has expired")

	b := h.browser()
	if res := b.get(h.portalLink(h.a.TestAPIKey, map[string]any{"return_url": "https://shop.example.com/"})); res.status != http.StatusSeeOther {
		t.Fatalf("a fresh link answers %d, want 303", res.status)
	}
	b.get("/portal/endpoints").must(t, http.StatusOK)
	end()
	res = b.get("/portal/endpoints")
	if res.status != http.StatusUnauthorized {
		t.Errorf("an ended session's page answers %d, want 401", res.status)
	}
	res.has(t, "Your session has ended", `href="https://shop.example.com/"`)

	res = h.browser().get("/portal/start?token=NOTATOKEN")
	if res.status != http.StatusNotFound {
		t.Errorf("an unknown token answers %d, want 404", res.status)
	}
	res.has(t, "This link is not valid")

	res = h.browser().get("/portal/endpoints", "Cookie", "hookline_portal=forged")
	if res.status != http.StatusUnauthorized {
		t.Errorf("a forged cookie answers %d, want 401", res.status)
	}
	res.has(t, "Sign in through your application")
}

// TestPortalFormsNeedTheSessionsCSRFToken posts the new endpoint form
// without a CSRF token, with a wrong one, with another session's and from
// another origin: each is refused with 403 and creates nothing; the same
// form with the session's token creates the endpoint and shows its secret.
func TestPortalFormsNeedTheSessionsCSRFToken(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	b, other := h.signIn(h.a.TestAPIKey), h.signIn(h.a.TestAPIKey)
	form := func(csrf string) url.Values {
		return url.Values{"csrf": {csrf}, "url": {"https://example.com/hooks"}, "subscribe": {"default"}}
	}
	token := b.csrf("/portal/endpoints/new")
	for _, c := range []struct {
		name    string
		form    url.Values
		headers []string
	}{
		{"no token", url.Values{"url": {"https://example.com/hooks"}, "subscribe": {"default"}}, nil},
		{"a wrong token", form(strings.Repeat("0", 64)), nil},
		{"another session's token", form(other.csrf("/portal/endpoints/new")), nil},
		{"another site", form(token), []string{"Sec-Fetch-Site", "cross-site"}},
		{"another origin", form(token), []string{"Sec-Fetch-Site", "", "Origin", "https://evil.example"}},
	} {
		res := b.post("/portal/endpoints", c.form, c.headers...)
		if res.status != http.StatusForbidden {
			t.Errorf("%s: the form answers %d, want 403", c.name, res.status)
		}
		res.has(t, "This form has expired")
	}
	if n := h.count("webhook_endpoints"); n != 0 {
		t.Fatalf("%d endpoints after refused forms, want 0", n)
	}
	created := form(token)
	created.Set("once", b.once("/portal/endpoints/new"))
	res := b.post("/portal/endpoints", created).must(t, http.StatusCreated)
	res.has(t, "Signing secret", "it is shown only once", "whsec_")
	if n := h.count("webhook_endpoints"); n != 1 {
		t.Errorf("%d endpoints, want 1", n)
	}
}

// TestPortalSecurityHeaders reads the portal's headers without and with
// frame ancestors: a strict CSP whose frame-ancestors are the configured
// origins ('none' by default, with X-Frame-Options), and, behind a trusted
// proxy that says https, a Secure cookie that is SameSite=None and
// Partitioned where other origins may frame the portal.
func TestPortalSecurityHeaders(t *testing.T) {
	t.Parallel()
	const strict = "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; base-uri 'none'; frame-ancestors "

	h := newHarness(t)
	res := h.signIn(h.a.TestAPIKey).get("/portal/endpoints").must(t, http.StatusOK)
	if csp := res.header.Get("Content-Security-Policy"); csp != strict+"'none'" {
		t.Errorf("CSP is %q, want %q", csp, strict+"'none'")
	}
	if res.header.Get("X-Frame-Options") != "DENY" || res.header.Get("Referrer-Policy") != "no-referrer" {
		t.Errorf("X-Frame-Options %q, Referrer-Policy %q: want DENY, no-referrer", res.header.Get("X-Frame-Options"), res.header.Get("Referrer-Policy"))
	}
	if strings.Contains(string(res.body), "<script") || strings.Contains(string(res.body), "style=") {
		t.Errorf("the page has a script or an inline style, which its CSP would block:\n%s", res.body)
	}
	// The endpoint's page with its charts (SVG) too.
	id := h.do("POST", "/v1/webhook_endpoints", h.a.TestAPIKey, map[string]any{"url": "https://a.example.com/h"}).
		must(t, http.StatusCreated).field(t, "id")
	h.do("POST", "/v1/webhook_endpoints/"+id+"/send_test_event", h.a.TestAPIKey, nil).must(t, http.StatusAccepted)
	stats := h.signIn(h.a.TestAPIKey).get("/portal/endpoints/"+id+"?window=1h").must(t, http.StatusOK)
	stats.has(t, "<svg")
	if strings.Contains(string(stats.body), "<script") || strings.Contains(string(stats.body), "style=") {
		t.Errorf("the statistics page has a script or an inline style, which its CSP would block:\n%s", stats.body)
	}

	framed := newHarnessWith(t, harnessOptions{frameAncestors: []string{"https://dashboard.example.com", "https://*.shop.example"},
		trusted: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}})
	b := framed.browser()
	link := framed.portalLink(framed.a.TestAPIKey, nil)
	start := b.get(link, "X-Forwarded-Proto", "https")
	c := (&http.Response{Header: start.header}).Cookies()
	if len(c) != 1 || !c[0].Secure || c[0].SameSite != http.SameSiteNoneMode || !c[0].Partitioned || !c[0].HttpOnly {
		t.Errorf("behind https the framed portal's cookie is %v: want Secure, HttpOnly, SameSite=None, Partitioned", c)
	}
	res = b.get("/portal/events", "Cookie", "hookline_portal="+c[0].Value).must(t, http.StatusOK)
	want := strict + "https://dashboard.example.com https://*.shop.example"
	if csp := res.header.Get("Content-Security-Policy"); csp != want || res.header.Get("X-Frame-Options") != "" {
		t.Errorf("CSP %q and X-Frame-Options %q, want %q and none", csp, res.header.Get("X-Frame-Options"), want)
	}
	if link := framed.portalLink(framed.a.TestAPIKey, nil); !strings.HasPrefix(link, "http://127.0.0.1") {
		t.Errorf("without X-Forwarded-Proto the link is %s, want http://127.0.0.1…", link)
	}
}

// TestPortalShowsOneMerchantAndMode opens merchant A's test-mode portal on
// merchant B's endpoint and delivery and on A's live endpoint: each page and
// action is the not-found page, and nothing changes.
func TestPortalShowsOneMerchantAndMode(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	foreign := h.do("POST", "/v1/webhook_endpoints", h.b.TestAPIKey, map[string]any{"url": "https://b.example.com/hooks"}).
		must(t, http.StatusCreated).field(t, "id")
	live := h.do("POST", "/v1/webhook_endpoints", h.a.LiveAPIKey, map[string]any{"url": "https://a.example.com/live"}).
		must(t, http.StatusCreated).field(t, "id")
	dlv := h.do("POST", "/v1/webhook_endpoints/"+foreign+"/send_test_event", h.b.TestAPIKey, nil).
		must(t, http.StatusAccepted).field(t, "id")

	b := h.signIn(h.a.TestAPIKey)
	csrf := b.csrf("/portal/endpoints/new")
	for _, id := range []string{foreign, live} {
		for _, path := range []string{"/portal/endpoints/" + id, "/portal/endpoints/" + id + "/edit", "/portal/endpoints/" + id + "/delete"} {
			res := b.get(path)
			if res.status != http.StatusNotFound {
				t.Errorf("GET %s answers %d, want 404", path, res.status)
			}
			res.has(t, "Not found")
		}
		for _, action := range []struct{ path, field, value string }{
			{"/delete", "", ""}, {"/status", "status", "disabled"}, {"/rotate", "grace_period_seconds", "0"}, {"/test", "type", "checkout.paid"},
			{"", "url", "https://evil.example/"},
		} {
			form := url.Values{"csrf": {csrf}, "subscribe": {"all"}, "once": {b.once("/portal/endpoints/new")}}
			if action.field != "" {
				form.Set(action.field, action.value)
			}
			if res := b.post("/portal/endpoints/"+id+action.path, form); res.status != http.StatusNotFound {
				t.Errorf("POST /portal/endpoints/%s%s answers %d, want 404: %s", id, action.path, res.status, res.body)
			}
		}
	}
	for _, res := range []response{b.get("/portal/deliveries/" + dlv), b.post("/portal/deliveries/"+dlv+"/retry", url.Values{"csrf": {csrf}})} {
		if res.status != http.StatusNotFound {
			t.Errorf("another merchant's delivery answers %d, want 404", res.status)
		}
	}
	if res := b.get("/portal/deliveries?endpoint="+foreign).must(t, http.StatusOK); strings.Contains(string(res.body), dlv) {
		t.Errorf("the deliveries filtered by another merchant's endpoint show its delivery")
	}
	for key, id := range map[string]string{h.b.TestAPIKey: foreign, h.a.LiveAPIKey: live} {
		e := h.do("GET", "/v1/webhook_endpoints/"+id, key, nil).must(t, http.StatusOK)
		if e.field(t, "status") != "enabled" || strings.Contains(string(e.body), "evil") {
			t.Errorf("the portal changed %s: %s", id, e.body)
		}
	}
	if n := h.count("delivery_attempts"); n > 1 {
		t.Errorf("%d attempts: the portal sent to another merchant's endpoint", n)
	}
}

// TestPortalFormShowsErrorsBesideTheirFields posts endpoint forms the domain
// refuses: each is the form again, 400, with the message beside its field,
// and nothing is created.
func TestPortalFormShowsErrorsBesideTheirFields(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	b := h.signIn(h.a.TestAPIKey)
	csrf := b.csrf("/portal/endpoints/new")
	for _, c := range []struct {
		name, field, value, want string
	}{
		{"url", "url", "ftp://example.com/hooks", "Must be an absolute http or https URL."},
		{"rate_limit", "rate_limit", "0", "Must be from 1 to 10000 deliveries per second, or null for none."},
		{"rate_limit", "rate_limit", "fast", "A whole number of deliveries per second, or empty for no limit."},
		{"headers", "headers", "Webhook-Id: mine", "Webhook-Id is set by hookline or by the connection, not by an endpoint."},
		{"headers", "headers", "no colon here", "Line 1 is not Name: value."},
		{"headers", "headers", "X-Bad Name: 1", "X-Bad Name: A header name is 1 to 64 letters, digits or !#$%&amp;&#39;*&#43;-.^_`|~."},
		{"enabled_events", "subscribe", "selected", "Choose at least one event type, or all of them."},
	} {
		form := url.Values{"csrf": {csrf}, "url": {"https://example.com/hooks"}, "subscribe": {"default"}}
		form.Set(c.field, c.value)
		res := b.post("/portal/endpoints", form)
		if res.status != http.StatusBadRequest {
			t.Errorf("%s %q: the form answers %d, want 400", c.field, c.value, res.status)
		}
		res.has(t, `<p class="error" id="`+c.name+`-error">`+c.want+`</p>`)
	}
	if n := h.count("webhook_endpoints"); n != 0 {
		t.Errorf("%d endpoints after refused forms, want 0", n)
	}
}

// TestPortalSessionReturnURL checks return_url: https anywhere, http only on
// a loopback host in development, never elsewhere or in production, and
// nothing but a URL.
func TestPortalSessionReturnURL(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	prod := newHarnessWith(t, harnessOptions{guard: delivery.NewGuard(true)})
	for _, c := range []struct {
		h      *harness
		url    any
		status int
	}{
		{h, "https://shop.example.com/back", http.StatusCreated},
		{h, "http://localhost:3000/settings", http.StatusCreated},
		{h, "http://127.0.0.1:3000/", http.StatusCreated},
		{h, "http://shop.example.com/", http.StatusBadRequest},
		{h, "javascript:alert(1)", http.StatusBadRequest},
		{h, "https://user:pass@shop.example.com/", http.StatusBadRequest},
		{h, "/relative", http.StatusBadRequest},
		{h, 42, http.StatusBadRequest},
		{prod, "http://localhost:3000/", http.StatusBadRequest},
		{prod, "https://shop.example.com/", http.StatusCreated},
	} {
		res := c.h.do("POST", "/v1/portal_sessions", c.h.a.TestAPIKey, map[string]any{"return_url": c.url})
		if res.status != c.status {
			t.Errorf("return_url %v answers %d, want %d: %s", c.url, res.status, c.status, res.body)
		}
		if c.status == http.StatusBadRequest && res.errorParam(t) != "return_url" {
			t.Errorf("return_url %v: the error names %q, want return_url", c.url, res.errorParam(t))
		}
	}
	if res := h.do("POST", "/v1/portal_sessions", "", nil); res.status != http.StatusUnauthorized {
		t.Errorf("without a key the API answers %d, want 401", res.status)
	}
	if res := h.do("POST", "/v1/portal_sessions", h.a.TestAPIKey, map[string]any{"returnurl": "x"}); res.status != http.StatusBadRequest {
		t.Errorf("an unknown field answers %d, want 400", res.status)
	}
	expires := h.do("POST", "/v1/portal_sessions", h.a.TestAPIKey, nil).must(t, http.StatusCreated)
	var body struct {
		ExpiresAt int64 `json:"expires_at"`
	}
	if err := json.Unmarshal(expires.body, &body); err != nil {
		t.Fatal(err)
	}
	if d := time.Until(time.Unix(body.ExpiresAt, 0)); d < 59*time.Minute || d > 61*time.Minute {
		t.Errorf("the session expires in %s, want an hour", d)
	}
}

// TestPortalGuessesCountAsFailedAuthentications sends forged session
// cookies: each is a failed authentication of the client's address, and
// past 20 in a minute the address is refused (429) before any cookie or
// token is looked up, as it is for wrong API keys.
func TestPortalGuessesCountAsFailedAuthentications(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	b := h.browser()
	for i := range 20 {
		if res := b.get("/portal/endpoints", "Cookie", "hookline_portal=guess"+strconv.Itoa(i)); res.status != http.StatusUnauthorized {
			t.Fatalf("guess %d answers %d, want 401", i+1, res.status)
		}
	}
	for _, path := range []string{"/portal/endpoints", "/portal/start?token=GUESS"} {
		res := b.get(path, "Cookie", "hookline_portal=guess")
		if res.status != http.StatusTooManyRequests || res.header.Get("Retry-After") == "" {
			t.Errorf("%s after 20 failures answers %d (Retry-After %q), want 429 with Retry-After", path, res.status, res.header.Get("Retry-After"))
		}
		if ct := res.header.Get("Content-Type"); ct != "text/html; charset=utf-8" {
			t.Errorf("%s after 20 failures answers %s, want the portal's page", path, ct)
		}
		res.has(t, "Too many attempts")
	}
}

// TestPortalLogoutOverTheLimit: Log out looks a cookie up like any page.
// Forged cookies, with the CSRF tokens anyone can derive from them, count
// as failed authentications and learn nothing (the page of any logout).
// From the address then over the limit the merchant still logs out: the
// cookie is expired as it was set (framed behind https: Secure,
// SameSite=None, Partitioned), and, as nothing was looked up, the page says
// the session itself lasts until it expires, and so it does.
func TestPortalLogoutOverTheLimit(t *testing.T) {
	t.Parallel()
	h := newHarnessWith(t, harnessOptions{frameAncestors: []string{"https://shop.example.com"},
		trusted: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}})
	ctx := context.Background()
	b := h.browser()
	set := (&http.Response{Header: b.get(h.portalLink(h.a.TestAPIKey, nil), "X-Forwarded-Proto", "https").header}).Cookies()
	if len(set) != 1 {
		t.Fatalf("the link sets cookies %v, want the session's", set)
	}
	// The jar keeps a Secure cookie from plain http, so send it by hand.
	cookie := "hookline_portal=" + set[0].Value
	m := csrfField.FindSubmatch(b.get("/portal/endpoints", "Cookie", cookie).must(t, http.StatusOK).body)
	if m == nil {
		t.Fatal("the page has no CSRF field")
	}

	for i := range 20 {
		guess := "guess" + strconv.Itoa(i)
		mac := hmac.New(sha256.New, []byte(guess))
		mac.Write([]byte("hookline portal csrf"))
		h.browser().post("/portal/logout", url.Values{"csrf": {hex.EncodeToString(mac.Sum(nil))}}, "Cookie", "hookline_portal="+guess).
			must(t, http.StatusOK).has(t, "<h1>You are logged out</h1>")
	}
	b.get("/portal/endpoints", "Cookie", cookie).must(t, http.StatusTooManyRequests)

	res := b.post("/portal/logout", url.Values{"csrf": {string(m[1])}}, "Cookie", cookie, "X-Forwarded-Proto", "https").must(t, http.StatusOK)
	res.has(t, "<h1>You are logged out</h1>", "it stays valid until it expires")
	c := (&http.Response{Header: res.header}).Cookies()
	if len(c) != 1 || c[0].Name != "hookline_portal" || c[0].Value != "" || c[0].MaxAge >= 0 || c[0].Path != "/portal" ||
		!c[0].Secure || !c[0].HttpOnly || c[0].SameSite != http.SameSiteNoneMode || !c[0].Partitioned {
		t.Errorf("logging out over the limit sets cookies %v, want hookline_portal expired as it was set", res.header.Values("Set-Cookie"))
	}
	var live int
	if err := h.pool.QueryRow(ctx, `select count(*) from portal_sessions where expires_at > now() and session_hash is not null`).Scan(&live); err != nil {
		t.Fatal(err)
	}
	if live != 1 {
		t.Errorf("%d sessions live after logging out over the limit, want the 1 until it expires", live)
	}
}

// TestPortalEditKeepsTheSealedAuthorization creates an endpoint with custom
// headers and a rate limit in the portal, then saves its edit form as shown
// (the Authorization value masked) with the rate limit emptied: the sealed
// Authorization stays as it was, the other header too, and the limit is
// gone; the endpoint reads through the API as the portal shows it.
func TestPortalEditKeepsTheSealedAuthorization(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	ctx := context.Background()
	b := h.signIn(h.a.TestAPIKey)
	csrf := b.csrf("/portal/endpoints/new")
	b.post("/portal/endpoints", url.Values{"csrf": {csrf}, "once": {b.once("/portal/endpoints/new")}, "url": {"https://example.com/hooks"}, "subscribe": {"all"},
		"headers": {"Authorization: Bearer tok_0123456789abcdef_wxyz\nX-Team: payments"}, "rate_limit": {"5"}}).must(t, http.StatusCreated)
	var id, sealed string
	if err := h.pool.QueryRow(ctx, `select id, header_authorization from webhook_endpoints`).Scan(&id, &sealed); err != nil {
		t.Fatal(err)
	}

	edit := b.get("/portal/endpoints/"+id+"/edit").must(t, http.StatusOK)
	edit.has(t, "Authorization: Bearer ****wxyz\nX-Team: payments</textarea>", `value="5"`)
	if strings.Contains(string(edit.body), "0123456789abcdef") {
		t.Errorf("the edit form shows the Authorization value")
	}
	res := b.post("/portal/endpoints/"+id, url.Values{"csrf": {csrf}, "url": {"https://example.com/hooks"}, "subscribe": {"all"},
		"headers": {"Authorization: Bearer ****wxyz\r\nX-Team: payments"}, "rate_limit": {""}, "description": {"Payments"}})
	if res.status != http.StatusSeeOther || res.header.Get("Location") != "/portal/endpoints/"+id+"?flash=saved" {
		t.Fatalf("saving answers %d to %q: %s", res.status, res.header.Get("Location"), res.body)
	}
	var kept string
	if err := h.pool.QueryRow(ctx, `select header_authorization from webhook_endpoints`).Scan(&kept); err != nil {
		t.Fatal(err)
	}
	if kept != sealed {
		t.Errorf("saving the masked value changed the sealed Authorization")
	}
	var e struct {
		Headers       map[string]string `json:"headers"`
		RateLimit     *int              `json:"rate_limit"`
		Description   string            `json:"description"`
		EnabledEvents []string          `json:"enabled_events"`
	}
	if err := json.Unmarshal(h.do("GET", "/v1/webhook_endpoints/"+id, h.a.TestAPIKey, nil).must(t, http.StatusOK).body, &e); err != nil {
		t.Fatal(err)
	}
	if e.Headers["Authorization"] != "Bearer ****wxyz" || e.Headers["X-Team"] != "payments" || e.RateLimit != nil ||
		e.Description != "Payments" || len(e.EnabledEvents) != 1 || e.EnabledEvents[0] != "*" {
		t.Errorf("after the edit the endpoint is %+v", e)
	}
	page := b.get("/portal/endpoints/"+id+"?flash=saved").must(t, http.StatusOK)
	page.has(t, "Endpoint saved.", "Bearer ****wxyz", "All events")
}

// TestPortalStatsWindowFallsBack opens an endpoint's page with a window
// that is not one (unknown, empty, given twice): the page shows the last
// 24 hours and says so beside the statistics, rather than an error; a
// window that is one shows without a note.
func TestPortalStatsWindowFallsBack(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	id := h.do("POST", "/v1/webhook_endpoints", h.a.TestAPIKey, map[string]any{"url": "https://a.example.com/h"}).
		must(t, http.StatusCreated).field(t, "id")
	b := h.signIn(h.a.TestAPIKey)
	for _, query := range []string{"?window=2h", "?window=", "?window=1h&window=24h", "?window=7d&window=7d"} {
		page := b.get("/portal/endpoints/"+id+query).must(t, http.StatusOK)
		page.has(t, `id="window-note">This link asked for a period the portal does not keep. Showing the last 24 hours;`,
			`id="window-24h" aria-current="true"`)
	}
	page := b.get("/portal/endpoints/"+id+"?window=1h").must(t, http.StatusOK)
	page.has(t, `id="window-1h" aria-current="true"`)
	if strings.Contains(string(page.body), "window-note") {
		t.Errorf("?window=1h has a note:\n%s", page.body)
	}
}

// TestPortalLogout logs a session out with the layout's form. Without the
// session's CSRF token it is refused and the session goes on; with it the
// answer says the merchant is logged out, with the way back to the
// application, and expires the cookie; the session's row has ended (it
// stays, as the record retention keeps); the old cookie, sent again from
// anywhere, gets the page saying the session has ended, and this browser,
// with no cookie left, the page asking to open the portal from the
// application. Logging out again, with no session left, gets the same
// logged-out page.
func TestPortalLogout(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	ctx := context.Background()
	b := h.browser()
	if res := b.get(h.portalLink(h.a.TestAPIKey, map[string]any{"return_url": "https://shop.example.com/settings"})); res.status != http.StatusSeeOther {
		t.Fatalf("the link answers %d, want 303", res.status)
	}
	portal, err := url.Parse(h.url + "/portal/")
	if err != nil {
		t.Fatal(err)
	}
	var old string
	for _, c := range b.client.Jar.Cookies(portal) {
		if c.Name == "hookline_portal" {
			old = c.Value
		}
	}
	if old == "" {
		t.Fatal("the browser holds no session cookie")
	}
	page := b.get("/portal/endpoints").must(t, http.StatusOK)
	page.has(t, `<form class="logout" method="post" action="/portal/logout">`, `id="logout">Log out</button>`)
	m := csrfField.FindSubmatch(page.body)
	if m == nil {
		t.Fatal("the page has no CSRF field")
	}
	csrf := string(m[1])

	b.post("/portal/logout", url.Values{"csrf": {strings.Repeat("0", 64)}}).must(t, http.StatusForbidden).has(t, "This form has expired")
	b.get("/portal/endpoints").must(t, http.StatusOK)

	res := b.post("/portal/logout", url.Values{"csrf": {csrf}}).must(t, http.StatusOK)
	res.has(t, "<h1>You are logged out</h1>", `href="https://shop.example.com/settings" target="_top">Go back</a>`)
	if strings.Contains(string(res.body), `action="/portal/logout"`) || strings.Contains(string(res.body), "Merchant A") {
		t.Errorf("the logged-out page still shows the session:\n%s", res.body)
	}
	cookies := (&http.Response{Header: res.header}).Cookies()
	if len(cookies) != 1 || cookies[0].Name != "hookline_portal" || cookies[0].MaxAge >= 0 || cookies[0].Path != "/portal" ||
		cookies[0].Value != "" {
		t.Errorf("logging out sets cookies %v, want hookline_portal expired at /portal", cookies)
	}
	var ended int
	if err := h.pool.QueryRow(ctx, `select count(*) from portal_sessions where session_hash = sha256($1::bytea) and expires_at <= now()`,
		[]byte(old)).Scan(&ended); err != nil {
		t.Fatal(err)
	}
	if ended != 1 {
		t.Errorf("after logging out %d sessions of the cookie have ended, want its 1", ended)
	}

	for name, c := range map[string]struct {
		get  func() response
		page string
	}{
		"the old cookie": {func() response { return h.browser().get("/portal/endpoints", "Cookie", "hookline_portal="+old) }, "Your session has ended"},
		"this browser":   {func() response { return b.get("/portal/endpoints") }, "Sign in through your application"},
	} {
		res := c.get()
		if res.status != http.StatusUnauthorized {
			t.Errorf("%s after logging out: %d, want 401", name, res.status)
		}
		res.has(t, c.page)
	}
	b.post("/portal/logout", url.Values{}).must(t, http.StatusOK).has(t, "<h1>You are logged out</h1>")
}
