package api_test

import (
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
)

// TestDashboardRules checks the dashboard's guards without a browser: the
// login, the cookie's flags, CSRF on every action, and that it is off without
// a token. The browser path is cmd/hookline's TestDashboardRetryInChromium.
func TestDashboardRules(t *testing.T) {
	t.Parallel()

	h := newHarness(t)
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	post := func(path string, form url.Values, cookie *http.Cookie) *http.Response {
		t.Helper()
		req, _ := http.NewRequest("POST", h.url+path, strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if cookie != nil {
			req.AddCookie(cookie)
		}
		res, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res
	}

	if res := post("/dashboard/login", url.Values{"token": {"wrong"}}, nil); res.StatusCode != http.StatusUnauthorized {
		t.Fatalf("a wrong token logged in: %d", res.StatusCode)
	}
	res := post("/dashboard/login", url.Values{"token": {operatorToken}}, nil)
	if res.StatusCode != http.StatusSeeOther || len(res.Cookies()) != 1 {
		t.Fatalf("login answered %d with %d cookies", res.StatusCode, len(res.Cookies()))
	}
	cookie := res.Cookies()[0]
	if !cookie.HttpOnly || !cookie.Secure || cookie.SameSite != http.SameSiteStrictMode || strings.Contains(cookie.Value, operatorToken) {
		t.Fatalf("session cookie %+v: want HttpOnly, Secure, SameSite=Strict, and not the token", cookie)
	}

	req, _ := http.NewRequest("GET", h.url+"/dashboard", nil)
	req.AddCookie(cookie)
	page, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body := new(strings.Builder)
	_, _ = io.Copy(body, page.Body)
	page.Body.Close()
	if page.StatusCode != http.StatusOK || !strings.Contains(page.Header.Get("Content-Security-Policy"), "default-src 'none'") {
		t.Fatalf("dashboard %d, CSP %q", page.StatusCode, page.Header.Get("Content-Security-Policy"))
	}
	csrf := regexp.MustCompile(`name="csrf" value="([0-9a-f]+)"`).FindStringSubmatch(body.String())
	if csrf == nil {
		t.Fatal("the dashboard has no CSRF field")
	}

	action := "/dashboard/deliveries/dlv_01ARZ3NDEKTSV4RRFFQ69G5FAV/retry"
	if res := post(action, url.Values{}, cookie); res.StatusCode != http.StatusForbidden {
		t.Errorf("an action without its CSRF field: %d, want 403", res.StatusCode)
	}
	if res := post(action, url.Values{"csrf": {"00" + csrf[1][2:]}}, cookie); res.StatusCode != http.StatusForbidden {
		t.Errorf("an action with a wrong CSRF field: %d, want 403", res.StatusCode)
	}
	if res := post(action, url.Values{"csrf": {csrf[1]}}, nil); res.StatusCode != http.StatusForbidden {
		t.Errorf("an action without the session: %d, want 403", res.StatusCode)
	}
	res = post(action, url.Values{"csrf": {csrf[1]}}, cookie)
	if res.StatusCode != http.StatusSeeOther || !strings.Contains(res.Header.Get("Location"), "No+such+delivery") {
		t.Errorf("retrying an unknown delivery: %d to %s", res.StatusCode, res.Header.Get("Location"))
	}

	off := newHarnessWith(t, harnessOptions{})
	if res := off.do("GET", "/dashboard", "", nil); res.status != http.StatusNotFound {
		t.Errorf("dashboard without a token: %d, want 404", res.status)
	}
}

// TestDashboardPagesAreHTML opens pages of the dashboard as a browser does
// (signed in, Accept: text/html): an endpoint's page with a window that is
// not one (unknown, empty, given twice) shows the default window's
// statistics and says so; an unknown endpoint or delivery, and a form
// refused for its CSRF token, are the dashboard's HTML error page with the
// status and message the API would answer, never a JSON body.
func TestDashboardPagesAreHTML(t *testing.T) {
	t.Parallel()

	h := newHarness(t)
	id := h.do("POST", "/v1/webhook_endpoints", h.a.TestAPIKey, map[string]any{"url": "https://a.example.com/hooks"}).
		must(t, http.StatusCreated).field(t, "id")
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	login, _ := http.NewRequest("POST", h.url+"/dashboard/login", strings.NewReader(url.Values{"token": {operatorToken}}.Encode()))
	login.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	res, err := client.Do(login)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if len(res.Cookies()) != 1 {
		t.Fatalf("login answered %d with %d cookies", res.StatusCode, len(res.Cookies()))
	}
	cookie := res.Cookies()[0]
	open := func(method, path string, form url.Values) (int, string, string) {
		t.Helper()
		req, _ := http.NewRequest(method, h.url+path, strings.NewReader(form.Encode()))
		req.Header.Set("Accept", "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8")
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.AddCookie(cookie)
		res, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		body, err := io.ReadAll(res.Body)
		if err != nil {
			t.Fatal(err)
		}
		return res.StatusCode, res.Header.Get("Content-Type"), string(body)
	}

	for _, query := range []string{"?window=2h", "?window=", "?window=1h&window=24h", "?window=24h&window=24h"} {
		status, ctype, body := open("GET", "/dashboard/endpoints/"+id+query, nil)
		if status != http.StatusOK || !strings.HasPrefix(ctype, "text/html") {
			t.Errorf("%s: %d %s, want the page:\n%s", query, status, ctype, body)
			continue
		}
		for _, want := range []string{`<p class="flash" role="status">?window= must be 1h, 24h or 7d, given once: showing 24h.</p>`,
			`<a href="?window=24h" aria-current="page">24h</a>`, `id="outcomes-chart"`} {
			if !strings.Contains(body, want) {
				t.Errorf("%s: the page does not say %s:\n%s", query, want, body)
			}
		}
	}
	status, _, body := open("GET", "/dashboard/endpoints/"+id+"?window=7d", nil)
	if status != http.StatusOK || strings.Contains(body, `class="flash"`) || !strings.Contains(body, `aria-current="page">7d</a>`) {
		t.Errorf("?window=7d: %d, want the week without a message:\n%s", status, body)
	}

	for _, c := range []struct {
		method, path string
		form         url.Values
		status       int
		message      string
	}{
		{"GET", "/dashboard/endpoints/we_missing?window=1h", nil, http.StatusNotFound, "No such webhook_endpoint: &#39;we_missing&#39;"},
		{"GET", "/dashboard/deliveries/dlv_missing", nil, http.StatusNotFound, "No such delivery: &#39;dlv_missing&#39;"},
		{"POST", "/dashboard/endpoints/" + id + "/enable", url.Values{"csrf": {"stale"}}, http.StatusForbidden,
			"Sign in again: this form is stale or did not come from the dashboard."},
		// Refused before any route runs: an unreadable URL, an unknown
		// path, a method the route does not take.
		{"GET", "/dashboard/endpoints/%FF", nil, http.StatusBadRequest, "The request path must be UTF-8 text, without the NUL character (%00)."},
		{"GET", "/dashboard/endpoints/" + id + "?window=%00", nil, http.StatusBadRequest, "window must be UTF-8 text, without the NUL character (%00)"},
		{"GET", "/dashboard/nope", nil, http.StatusNotFound, "Unrecognized request URL (GET /dashboard/nope)."},
		{"GET", "/dashboard/login", nil, http.StatusMethodNotAllowed, "Method GET is not allowed on /dashboard/login."},
	} {
		status, ctype, body := open(c.method, c.path, c.form)
		if status != c.status || !strings.HasPrefix(ctype, "text/html") || strings.HasPrefix(body, "{") {
			t.Errorf("%s %s: %d %s, want the %d error page:\n%s", c.method, c.path, status, ctype, c.status, body)
			continue
		}
		if want := `<p class="failed" id="problem" role="alert">` + c.message + `</p>`; !strings.Contains(body, want) {
			t.Errorf("%s %s: the error page does not say %s:\n%s", c.method, c.path, want, body)
		}
		if !strings.Contains(body, `<a href="/dashboard">Back to the dashboard</a>`) {
			t.Errorf("%s %s: the error page does not lead back:\n%s", c.method, c.path, body)
		}
	}
}
