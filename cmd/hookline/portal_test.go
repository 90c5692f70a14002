package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/hookline/hookline/migrations/dbtest"
)

// artifactsDir is where browser tests leave their screenshots:
// $TEST_ARTIFACTS_DIR/<name> when set, else the checkout's git-ignored
// .hookline/artifacts/<name>.
func artifactsDir(t *testing.T, name string) string {
	t.Helper()
	dir := os.Getenv("TEST_ARTIFACTS_DIR")
	if dir == "" {
		dir = filepath.Join("..", "..", ".hookline", "artifacts")
	}
	dir, err := filepath.Abs(filepath.Join(dir, name))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// received is one request the test's receiver got.
type received struct {
	header http.Header
	body   []byte
}

// TestPortalInChromium drives the merchant portal in a real browser from
// the link the API makes to the deletion of an endpoint: the link's token
// leaves the URL, an endpoint created in the portal shows its secret once,
// its test event reaches the receiver signed with that secret and its
// attempt shows on the delivery's page, a retry adds an attempt, the
// subscriptions change, the endpoint is disabled and enabled, its secret
// rotated, the catalog browsed, the endpoint deleted, and the merchant
// logs out. Each page is saved as a screenshot (artifactsDir "portal").
func TestPortalInChromium(t *testing.T) {
	t.Parallel()

	pool, dbURL := migratedPool(t)
	merchant := dbtest.Merchant(t, pool, "Acme Coffee")
	start := time.Now()
	got := make(chan received, 10)
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		got <- received{header: r.Header.Clone(), body: body}
		w.WriteHeader(http.StatusNoContent)
	}))
	defer receiver.Close()
	m := boot(t, map[string]string{"DATABASE_URL": dbURL})
	_, port, _ := net.SplitHostPort(m.Addr())
	api := "http://localhost:" + port

	// The merchant's server asks for a link.
	req, err := http.NewRequest("POST", api+"/v1/portal_sessions", strings.NewReader(`{"return_url":"https://acme.example/settings"}`))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+merchant.TestAPIKey)
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var session struct{ URL string }
	err = json.NewDecoder(res.Body).Decode(&session)
	res.Body.Close()
	if err != nil || res.StatusCode != http.StatusCreated {
		t.Fatalf("POST /v1/portal_sessions: %d, %v", res.StatusCode, err)
	}

	ctx, step := browser(t)
	step("size the window", chromedp.Do(ctx, chromedp.EmulateViewport(1280, 900)))
	dir := artifactsDir(t, "portal")
	shot := func(name string) {
		t.Helper()
		t.Logf("%s at %s", name, time.Since(start).Round(time.Millisecond))
		png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		step("screenshot "+name, err)
		if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	text := func(sel string) string {
		t.Helper()
		out, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
		step("read "+sel, err)
		return out
	}
	location := func() string {
		t.Helper()
		loc, err := chromedp.Run(ctx, chromedp.Location())
		step("read the location", err)
		return loc
	}

	// The link: a cookie, and the endpoints without the token in the URL.
	step("open the link", chromedp.Do(ctx, chromedp.Navigate(session.URL), chromedp.WaitVisible(chromedp.CSS("#add-endpoint"))))
	if loc := location(); loc != api+"/portal/endpoints" || strings.Contains(loc, "token") {
		t.Errorf("after the link the browser is at %s, want %s/portal/endpoints", loc, api)
	}
	if empty := text(".empty"); !strings.Contains(empty, "No endpoints yet") || !strings.Contains(empty, "Add one to start receiving webhooks.") {
		t.Errorf("the empty endpoints page says %q", empty)
	}
	shot("01-endpoints-empty")

	// A URL the domain refuses: the form again, the message beside the field.
	step("refused URL", chromedp.Do(ctx,
		chromedp.Click(chromedp.CSS("#add-endpoint")),
		chromedp.WaitVisible(chromedp.CSS("#endpoint-form")),
		chromedp.SendKeys(chromedp.CSS("#url"), "ftp://acme.example/hooks"),
		chromedp.Click(chromedp.CSS(`#endpoint-form button[type="submit"]`)),
		chromedp.WaitVisible(chromedp.CSS("#url-error")),
	))
	if msg := text("#url-error"); msg != "Must be an absolute http or https URL." {
		t.Errorf("the refused URL reads %q", msg)
	}
	shot("02-endpoint-form-error")

	// Create: the secret, once.
	step("create the endpoint", chromedp.Do(ctx,
		chromedp.SetValue(chromedp.CSS("#url"), receiver.URL+"/webhooks"),
		chromedp.SendKeys(chromedp.CSS("#description"), "Order fulfilment"),
		chromedp.Click(chromedp.CSS(`#endpoint-form button[type="submit"]`)),
		chromedp.WaitVisible(chromedp.CSS("#secret")),
	))
	secret := text("#secret")
	if !strings.HasPrefix(secret, "whsec_") {
		t.Fatalf("the new endpoint's secret reads %q", secret)
	}
	shot("03-endpoint-created-secret")
	if loc := location(); strings.Contains(loc, "whsec") {
		t.Errorf("the secret is in the URL %s", loc)
	}
	endpointPage := api + "/portal/endpoints/" + text("#endpoint-id")

	// A test event: it arrives signed with that secret, and the delivery's
	// page shows its attempt.
	step("send a test event", chromedp.Do(ctx,
		chromedp.SetValue(chromedp.CSS("#test-type"), "payment_attempt.succeeded"),
		chromedp.Click(chromedp.CSS("#send-test")),
		chromedp.WaitVisible(chromedp.CSS("#attempt-1")),
	))
	select {
	case r := <-got:
		wh, err := standardwebhooks.NewWebhook(secret)
		if err != nil {
			t.Fatal(err)
		}
		if err := wh.Verify(r.body, r.header); err != nil {
			t.Errorf("the test event does not verify with the secret the portal showed: %v", err)
		}
		if !bytes.Contains(r.body, []byte(`"type":"payment_attempt.succeeded"`)) || !bytes.Contains(r.body, []byte(`"example":true`)) {
			t.Errorf("the receiver got %s, want a payment_attempt.succeeded test event", r.body)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the test event did not reach the receiver")
	}
	if status := text("#status"); status != "Succeeded" {
		t.Errorf("the test event's delivery is %q, want Succeeded", status)
	}
	shot("04-delivery-attempt")

	step("retry", chromedp.Do(ctx,
		chromedp.Click(chromedp.CSS("#retry")),
		chromedp.WaitVisible(chromedp.CSS("#attempt-2")),
	))
	select {
	case <-got:
	case <-time.After(30 * time.Second):
		t.Fatal("the retried delivery did not reach the receiver")
	}
	shot("05-delivery-retried")

	// The endpoint's statistics: the two attempts, as charts, once the fold
	// (every second) has counted them. The page is reloaded until then: a
	// navigation to the URL it shows, with its fragment, would only scroll.
	step("open the statistics", chromedp.Do(ctx,
		chromedp.Navigate(endpointPage+"?window=1h#stats"),
		chromedp.WaitVisible(chromedp.CSS("#stats svg")),
	))
	for deadline := time.Now().Add(30 * time.Second); text("#stats-attempts") != "2" && time.Now().Before(deadline); {
		time.Sleep(200 * time.Millisecond)
		step("reload the statistics", chromedp.Do(ctx, chromedp.Reload(), chromedp.WaitVisible(chromedp.CSS("#stats svg"))))
	}
	if attempts, rate := text("#stats-attempts"), text("#stats-success"); attempts != "2" || rate != "100.0 %" {
		t.Errorf("the last hour's statistics read %s attempts, %s success, want 2 and 100.0 %%", attempts, rate)
	}
	shot("05b-endpoint-stats-1h")
	// The portal's CSP (style-src 'self') would block an inline style: the
	// charts must draw without one.
	styled, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll("[style]").length`))
	step("count inline styles", err)
	if styled != 0 {
		t.Errorf("the statistics page has %d elements with an inline style, which its CSP blocks", styled)
	}
	step("change the window", chromedp.Do(ctx,
		chromedp.Click(chromedp.CSS("#window-7d")),
		chromedp.WaitVisible(chromedp.CSS(`#window-7d[aria-current]`)),
	))
	if attempts := text("#stats-attempts"); attempts != "2" {
		t.Errorf("the week's statistics read %s attempts, want 2", attempts)
	}

	// Subscriptions: from the recommended types to two chosen ones.
	step("edit the subscriptions", chromedp.Do(ctx,
		chromedp.Navigate(endpointPage),
		chromedp.Click(chromedp.CSS("#edit")),
		chromedp.WaitVisible(chromedp.CSS("#endpoint-form")),
		chromedp.Click(chromedp.CSS("#subscribe-selected")),
	))
	boxes, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](
		`[...document.querySelectorAll('input[name="events"]:checked')].map(e => e.value)`))
	step("list the ticked types", err)
	for _, v := range boxes {
		if v != "checkout.paid" {
			step("untick "+v, chromedp.Do(ctx, chromedp.Click(chromedp.CSS(`input[name="events"][value="`+v+`"]`))))
		}
	}
	step("save the subscriptions", chromedp.Do(ctx,
		chromedp.Click(chromedp.CSS(`input[name="events"][value="checkout.created"]`)),
		chromedp.Click(chromedp.CSS(`#endpoint-form button[type="submit"]`)),
		chromedp.WaitVisible(chromedp.CSS(".flash")),
	))
	if events := text("#enabled-events"); events != "checkout.created checkout.paid" {
		t.Errorf("after the edit the endpoint listens to %q, want checkout.created checkout.paid", events)
	}
	shot("06-endpoint-edited")

	step("disable", chromedp.Do(ctx, chromedp.Click(chromedp.CSS("#toggle-status")), chromedp.WaitVisible(chromedp.CSS(".badge.off"))))
	if flash := text(".flash"); !strings.HasPrefix(flash, "Endpoint disabled") {
		t.Errorf("after disabling the page says %q", flash)
	}
	shot("07-endpoint-disabled")
	step("enable", chromedp.Do(ctx, chromedp.Click(chromedp.CSS("#toggle-status")), chromedp.WaitVisible(chromedp.CSS(".lead .badge.ok"))))

	step("rotate", chromedp.Do(ctx, chromedp.Click(chromedp.CSS("#rotate")), chromedp.WaitVisible(chromedp.CSS("#secret"))))
	if rotated := text("#secret"); !strings.HasPrefix(rotated, "whsec_") || rotated == secret {
		t.Errorf("the rotated secret reads %q (the first was %q)", rotated, secret)
	}
	shot("08-secret-rotated")

	// As narrow as a frame in a merchant's dashboard may be.
	step("narrow window", chromedp.Do(ctx, chromedp.EmulateViewport(420, 860), chromedp.Navigate(endpointPage),
		chromedp.WaitVisible(chromedp.CSS("#stats svg"))))
	shot("08b-endpoint-narrow")
	step("wide window", chromedp.Do(ctx, chromedp.EmulateViewport(1280, 900)))

	step("browse the catalog", chromedp.Do(ctx,
		chromedp.Click(chromedp.CSS(`nav.tabs a[href="/portal/events"]`)),
		chromedp.WaitVisible(chromedp.CSS(`tr[id="checkout.paid"]`)),
	))
	shot("09-catalog")
	step("open an event type", chromedp.Do(ctx,
		chromedp.Click(chromedp.CSS(`tr[id="checkout.paid"] a`)),
		chromedp.WaitVisible(chromedp.CSS("#example")),
	))
	if example := text("#example"); !strings.Contains(example, `"type": "checkout.paid"`) {
		t.Errorf("the example of checkout.paid reads %q", example)
	}
	shot("10-event-type")

	step("list the deliveries", chromedp.Do(ctx,
		chromedp.Click(chromedp.CSS(`nav.tabs a[href="/portal/deliveries"]`)),
		chromedp.WaitVisible(chromedp.CSS("table.list")),
	))
	shot("11-deliveries")

	step("ask to delete", chromedp.Do(ctx,
		chromedp.Navigate(endpointPage),
		chromedp.Click(chromedp.CSS("#delete")),
		chromedp.WaitVisible(chromedp.CSS("#confirm-delete")),
	))
	shot("12-delete-confirm")
	step("delete", chromedp.Do(ctx,
		chromedp.Click(chromedp.CSS("#confirm-delete")),
		chromedp.WaitVisible(chromedp.CSS(".empty")),
	))
	if flash := text(".flash"); flash != "Endpoint deleted." {
		t.Errorf("after deleting the page says %q", flash)
	}
	shot("13-endpoints-after-delete")

	// The token was spent: the link again is refused.
	step("open the link again", chromedp.Do(ctx, chromedp.Navigate(session.URL), chromedp.WaitVisible(chromedp.CSS(".notice"))))
	if h := text(".notice h1"); h != "This link has already been used" {
		t.Errorf("the link used again says %q", h)
	}
	shot("14-link-used")
	if u, err := url.Parse(location()); err != nil || u.Path != "/portal/start" {
		t.Errorf("the refused link's page is at %s", location())
	}
	// This browser still has its session: the page offers it.
	step("continue to the session", chromedp.Do(ctx, chromedp.Click(chromedp.CSS("#continue")), chromedp.WaitVisible(chromedp.CSS("#add-endpoint"))))

	// Log out: the session ends, and the portal asks for a new link.
	step("log out", chromedp.Do(ctx, chromedp.Click(chromedp.CSS("#logout")), chromedp.WaitVisible(chromedp.CSS(".notice"))))
	if h := text(".notice h1"); h != "You are logged out" {
		t.Errorf("after logging out the page says %q", h)
	}
	shot("15-logged-out")
	step("open the portal again", chromedp.Do(ctx, chromedp.Navigate(api+"/portal/endpoints"), chromedp.WaitVisible(chromedp.CSS(".notice"))))
	if h := text(".notice h1"); h != "Sign in through your application" {
		t.Errorf("the portal after logging out says %q", h)
	}
	t.Logf("screenshots in %s", dir)
}
