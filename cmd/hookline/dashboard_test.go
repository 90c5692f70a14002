package main

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/hookline/hookline/delivery"
)

// TestDashboardRetryInChromium is the operator's path through the dashboard
// in a real browser: log in, find the failed delivery, read its attempts,
// click Retry, and watch it succeed.
func TestDashboardRetryInChromium(t *testing.T) {
	t.Parallel()

	browser, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatal("chromium is not installed: `make test` installs Debian's chromium package")
	}
	ctx := context.Background()
	pool, url := migratedPool(t)

	var up atomic.Bool
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if up.Load() {
			w.WriteHeader(http.StatusNoContent)
			return
		}
		w.WriteHeader(http.StatusInternalServerError)
		_, _ = w.Write([]byte(`<script>document.title="pwned"</script>boom`))
	}))
	defer receiver.Close()
	// The process's schedule: one retry after 50ms, then failed.
	seedDelivery(t, pool, receiver.URL, delivery.Schedule{50 * time.Millisecond})

	const token = "operator-token-for-the-browser-test"
	m := boot(t, map[string]string{
		"DATABASE_URL": url, "HOOKLINE_OPERATOR_TOKEN": token, "HOOKLINE_RETRY_SCHEDULE": "50ms",
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

	_, port, _ := net.SplitHostPort(m.Addr())
	base := "http://localhost:" + port // localhost is a secure context: the Secure cookie is kept
	alloc, cancelAlloc := chromedp.NewExecAllocator(ctx, append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(browser), chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true), chromedp.Flag("disable-quic", true))...)
	defer cancelAlloc()
	browserCtx, cancelBrowser := chromedp.NewContext(alloc)
	defer cancelBrowser()
	browserCtx, cancelTimeout := context.WithTimeout(browserCtx, 90*time.Second)
	defer cancelTimeout()

	row := chromedp.CSS(`tr[id="` + deliveryID + `"]`)
	step := func(what string, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("browser: %s: %v", what, err)
		}
	}
	step("log in", chromedp.Do(browserCtx,
		chromedp.Navigate(base+"/dashboard"),
		chromedp.WaitVisible(chromedp.CSS(`input[name="token"]`)),
		chromedp.SendKeys(chromedp.CSS(`input[name="token"]`), token),
		chromedp.Click(chromedp.CSS(`button[type="submit"]`)),
		chromedp.WaitVisible(row),
	))
	overview, err := chromedp.Run(browserCtx, chromedp.Text(chromedp.CSS("body")))
	step("read the overview", err)
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
	step("click retry", chromedp.Do(browserCtx,
		chromedp.Click(chromedp.CSS(`#retry`)),
		chromedp.WaitVisible(chromedp.CSS(`#status`)),
	))
	if !strings.Contains(overview, "checkout.created") {
		t.Errorf("the overview does not show the failed delivery's event type:\n%s", overview)
	}
	if !strings.Contains(excerpt, `<script>document.title="pwned"</script>boom`) || scripts != 0 || strings.Contains(title, "pwned") {
		t.Errorf("the response excerpt is not shown as escaped text: %q, %d script elements, title %q", excerpt, scripts, title)
	}
	flash, err := chromedp.Run(browserCtx, chromedp.Text(chromedp.CSS(`.flash`)))
	step("read the flash", err)
	if !strings.Contains(flash, "Retry queued for "+deliveryID) {
		t.Errorf("after clicking retry the page says %q", flash)
	}
	for status := ""; status != "succeeded"; {
		step("reload", chromedp.Do(browserCtx, chromedp.Reload(), chromedp.WaitVisible(chromedp.CSS(`#status`))))
		status, err = chromedp.Run(browserCtx, chromedp.Text(chromedp.CSS(`#status`)))
		step("read the status", err)
		time.Sleep(100 * time.Millisecond)
	}

	// Logging out ends the session: the dashboard asks for the token again.
	step("log out", chromedp.Do(browserCtx,
		chromedp.Navigate(base+"/dashboard"),
		chromedp.Click(chromedp.CSS(`header button`)),
		chromedp.WaitVisible(chromedp.CSS(`input[name="token"]`)),
	))
}
