package main

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/hookline/hookline/delivery"
)

const dashboardToken = "operator-token-for-the-browser-test"

// browser starts Debian's headless Chromium for a test and returns its
// context, which ends with the test or after 90 s, and a step function that
// fails the test on a browser error.
func browser(t *testing.T) (context.Context, func(what string, err error)) {
	t.Helper()
	path, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatal("chromium is not installed: `make test` installs Debian's chromium package")
	}
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path), chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true), chromedp.Flag("disable-quic", true))...)
	t.Cleanup(cancelAlloc)
	ctx, cancelBrowser := chromedp.NewContext(alloc)
	t.Cleanup(cancelBrowser)
	ctx, cancelTimeout := context.WithTimeout(ctx, 90*time.Second)
	t.Cleanup(cancelTimeout)
	return ctx, func(what string, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("browser: %s: %v", what, err)
		}
	}
}

// dashboardURL is the dashboard of m on localhost, a secure context, where
// the browser keeps the Secure session cookie.
func dashboardURL(m *Main) string {
	_, port, _ := net.SplitHostPort(m.Addr())
	return "http://localhost:" + port + "/dashboard"
}

// logIn signs the browser in to the dashboard and waits for what.
func logIn(ctx context.Context, step func(string, error), dashboard string, what chromedp.CSS) {
	step("log in", chromedp.Do(ctx,
		chromedp.Navigate(dashboard),
		chromedp.WaitVisible(chromedp.CSS(`input[name="token"]`)),
		chromedp.SendKeys(chromedp.CSS(`input[name="token"]`), dashboardToken),
		chromedp.Click(chromedp.CSS(`button[type="submit"]`)),
		chromedp.WaitVisible(what),
	))
}

// TestDashboardRetryInChromium is the operator's path through the dashboard
// in a real browser: a wrong token is refused with a message, the failing
// endpoint's last error reads once, the failed delivery's attempts are shown
// as text, and after Retry the page shows the new attempt by itself.
func TestDashboardRetryInChromium(t *testing.T) {
	t.Parallel()

	ctx := context.Background()
	pool, url := migratedPool(t)

	var up atomic.Bool
	release := make(chan struct{}) // the retried attempt waits for it
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if up.Load() {
			select {
			case <-release:
			case <-time.After(60 * time.Second):
			}
			w.WriteHeader(http.StatusNoContent)
			return
		}
		w.WriteHeader(http.StatusInternalServerError)
		_, _ = w.Write([]byte(`<script>document.title="pwned"</script>boom`))
	}))
	defer receiver.Close()
	defer close(release) // before the receiver closes: it waits for its handlers
	// The process's schedule: one retry after 50ms, then failed.
	_, endpointID := seedDelivery(t, pool, receiver.URL, delivery.Schedule{50 * time.Millisecond})

	m := boot(t, map[string]string{
		"DATABASE_URL": url, "HOOKLINE_OPERATOR_TOKEN": dashboardToken, "HOOKLINE_RETRY_SCHEDULE": "50ms",
	})

	var deliveryID string
	deadline := time.Now().Add(60 * time.Second)
	for deliveryID == "" {
		_ = pool.QueryRow(ctx, `select id from deliveries where status = 'failed'`).Scan(&deliveryID)
		if time.Now().After(deadline) {
			t.Fatal("the seeded delivery did not fail within 60s")
		}
		time.Sleep(50 * time.Millisecond)
	}
	up.Store(true)

	browserCtx, step := browser(t)
	dashboard := dashboardURL(m)

	// A wrong token: the login form again, saying why.
	step("log in with a wrong token", chromedp.Do(browserCtx,
		chromedp.Navigate(dashboard),
		chromedp.WaitVisible(chromedp.CSS(`input[name="token"]`)),
		chromedp.SendKeys(chromedp.CSS(`input[name="token"]`), "not-the-operator-token"),
		chromedp.Click(chromedp.CSS(`button[type="submit"]`)),
		chromedp.WaitVisible(chromedp.CSS(`.flash`)),
	))
	refused, err := chromedp.Run(browserCtx, chromedp.Text(chromedp.CSS(`.flash`)))
	step("read the refusal", err)
	if refused != "That is not the operator token." {
		t.Errorf("a wrong token shows %q, want the refusal", refused)
	}

	row := chromedp.CSS(`tr[id="` + deliveryID + `"]`)
	logIn(browserCtx, step, dashboard, row)
	overview, err := chromedp.Run(browserCtx, chromedp.Text(chromedp.CSS("body")))
	step("read the overview", err)
	if !strings.Contains(overview, "checkout.created") {
		t.Errorf("the overview does not show the failed delivery's event type:\n%s", overview)
	}
	lastError, err := chromedp.Run(browserCtx, chromedp.Text(chromedp.CSS(`tr[id="`+endpointID+`"] .last-error`)))
	step("read the endpoint's last error", err)
	if lastError != "HTTP 500" {
		t.Errorf("the failing endpoint's last error reads %q, want HTTP 500 once", lastError)
	}

	step("open the delivery", chromedp.Do(browserCtx,
		chromedp.Click(chromedp.CSS(`tr[id="`+deliveryID+`"] a`)),
		chromedp.WaitVisible(chromedp.CSS(`#status`)),
	))
	excerpt, err := chromedp.Run(browserCtx, chromedp.Text(chromedp.CSS(`pre`)))
	step("read the response excerpt", err)
	scripts, err := chromedp.Run(browserCtx, chromedp.Evaluate[int](`document.querySelectorAll("pre script").length`))
	step("count scripts", err)
	title, err := chromedp.Run(browserCtx, chromedp.Title())
	step("read the title", err)
	if !strings.Contains(excerpt, `<script>document.title="pwned"</script>boom`) || scripts != 0 || strings.Contains(title, "pwned") {
		t.Errorf("the response excerpt is not shown as escaped text: %q, %d script elements, title %q", excerpt, scripts, title)
	}

	// Retry: the attempt is under way (the receiver holds it), and the page
	// says it waits for it; once it is recorded the page shows it, with no
	// reload from the operator.
	step("click retry", chromedp.Do(browserCtx,
		chromedp.Click(chromedp.CSS(`#retry`)),
		chromedp.WaitVisible(chromedp.CSS(`#waiting`)),
	))
	flash, err := chromedp.Run(browserCtx, chromedp.Text(chromedp.CSS(`.flash`)))
	step("read the flash", err)
	if !strings.Contains(flash, "Retry queued for "+deliveryID) {
		t.Errorf("after clicking retry the page says %q", flash)
	}
	release <- struct{}{}
	step("see the new attempt", chromedp.Do(browserCtx, chromedp.WaitVisible(chromedp.CSS(`#attempt-3`))))
	status, err := chromedp.Run(browserCtx, chromedp.Text(chromedp.CSS(`#status`)))
	step("read the status", err)
	waiting, err := chromedp.Run(browserCtx, chromedp.Evaluate[int](`document.querySelectorAll("#waiting").length`))
	step("look for the waiting note", err)
	if status != "succeeded" || waiting != 0 {
		t.Errorf("with attempt 3 shown the delivery is %q and the page still waits (%d): want succeeded, done", status, waiting)
	}

	// The endpoint's page: its figures and both charts, drawn from the
	// three attempts recorded (two 500s, then the retry's 204). The
	// statistics count an attempt once the fold (every second) has added
	// it: the page is opened again until the retry's is counted, for up to
	// 10 s.
	var words string
	for deadline := time.Now().Add(10 * time.Second); ; {
		step("open the endpoint", chromedp.Do(browserCtx,
			chromedp.Navigate(dashboard+"/endpoints/"+endpointID+"?window=1h"),
			chromedp.WaitVisible(chromedp.CSS(`#outcomes-chart svg`)),
			chromedp.WaitVisible(chromedp.CSS(`#latency-chart svg`)),
		))
		figures, err := chromedp.Run(browserCtx, chromedp.Text(chromedp.CSS(`#figures`)))
		step("read the figures", err)
		words = strings.Join(strings.Fields(figures), " ")
		if strings.Contains(words, "Succeeded 1") || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	for _, want := range []string{"Succeeded 1 HTTP errors 2 Timeouts 0 Connection errors 0", "Success rate 33.3 %"} {
		if !strings.Contains(words, want) {
			t.Errorf("the endpoint's figures do not say %q: %s", want, words)
		}
	}
	drawn, err := chromedp.Run(browserCtx, chromedp.Evaluate[[]float64](`[
		document.querySelectorAll("#outcomes-chart rect.succeeded").length,
		document.querySelectorAll("#outcomes-chart rect.failed").length,
		document.querySelectorAll("#latency-chart polyline, #latency-chart circle").length,
		document.querySelector("#outcomes-chart svg").getBoundingClientRect().width,
		document.querySelector("#outcomes-chart rect.failed").getBoundingClientRect().height]`))
	step("measure the charts", err)
	chartTitle, err := chromedp.Run(browserCtx, chromedp.Evaluate[string](`document.querySelector("#outcomes-chart svg > title").textContent`))
	step("read the chart's title", err)
	if len(drawn) != 5 || drawn[0] < 1 || drawn[1] < 1 || drawn[2] < 1 || drawn[3] < 300 || drawn[4] <= 0 ||
		chartTitle != "Attempts per minute over the last 1h: 1 succeeded, 2 failed." {
		t.Errorf("charts drawn as %v (succeeded bars, failed bars, latency marks, width, a failed bar's height), titled %q", drawn, chartTitle)
	}
	screenshot(t, browserCtx, step, "dashboard-endpoint-stats.png")

	// Logging out ends the session: the dashboard asks for the token again.
	step("log out", chromedp.Do(browserCtx,
		chromedp.Navigate(dashboard),
		chromedp.Click(chromedp.CSS(`header button`)),
		chromedp.WaitVisible(chromedp.CSS(`input[name="token"]`)),
	))
}

// TestDashboardDryRunInChromium counts a recovery in a real browser beside
// an endpoint whose deliveries are all still pending: the dry run's 0 says
// why, and once one has failed, the dry run counts what Recover then retries.
func TestDashboardDryRunInChromium(t *testing.T) {
	t.Parallel()

	ctx := context.Background()
	pool, url := migratedPool(t)
	// Seven deliveries waiting for their next attempt, an hour away, to an
	// endpoint that has been failing for an hour.
	_, endpointID := seedDeliveries(t, pool, "http://127.0.0.1:9/down", 7)
	for _, statement := range []string{
		`update river_job set state = 'scheduled', scheduled_at = now() + interval '1 hour' where kind = 'deliver'`,
		`update deliveries set next_attempt_at = now() + interval '1 hour'`,
		`update webhook_endpoints set failing_since = now() - interval '1 hour'`,
	} {
		if _, err := pool.Exec(ctx, statement); err != nil {
			t.Fatal(err)
		}
	}
	m := boot(t, map[string]string{"DATABASE_URL": url, "HOOKLINE_OPERATOR_TOKEN": dashboardToken})

	browserCtx, step := browser(t)
	endpoint := `tr[id="` + endpointID + `"]`
	click := func(what, button string) string {
		t.Helper()
		step(what, chromedp.Do(browserCtx,
			chromedp.Navigate(dashboardURL(m)),
			chromedp.Click(chromedp.CSS(endpoint+` button[value="`+button+`"]`)),
			chromedp.WaitVisible(chromedp.CSS(`.flash`)),
		))
		flash, err := chromedp.Run(browserCtx, chromedp.Text(chromedp.CSS(`.flash`)))
		step("read the flash", err)
		return flash
	}
	logIn(browserCtx, step, dashboardURL(m), chromedp.CSS(endpoint))

	want := "Dry run: no failed delivery to " + endpointID + " was created in the last 24 h, so Recover would retry none. " +
		"7 pending deliveries are still being retried automatically; recovery retries failed ones."
	if got := click("count with every delivery pending", "true"); got != want {
		t.Errorf("the dry run says %q, want %q", got, want)
	}

	if _, err := pool.Exec(ctx, `update deliveries set status = 'failed', next_attempt_at = null
		where id = (select min(id) from deliveries)`); err != nil {
		t.Fatal(err)
	}
	want = "Dry run: 1 failed delivery to " + endpointID + " created in the last 24 h would be retried. " +
		"6 pending deliveries are still being retried automatically; recovery retries failed ones."
	if got := click("count with one failed", "true"); got != want {
		t.Errorf("the dry run says %q, want %q", got, want)
	}
	want = "Recovery queued: 1 delivery to " + endpointID + " will be retried."
	if got := click("recover", "false"); got != want {
		t.Errorf("the recovery says %q, want %q", got, want)
	}
}

// screenshot saves the browser's page as name under HOOKLINE_TEST_ARTIFACTS,
// when it is set, for a person to look at.
func screenshot(t *testing.T, ctx context.Context, step func(string, error), name string) {
	t.Helper()
	dir := os.Getenv("HOOKLINE_TEST_ARTIFACTS")
	if dir == "" {
		return
	}
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	step("take a screenshot", err)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name), png, 0o644); err != nil {
		t.Fatal(err)
	}
}
