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
