package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/hookline/hookline/events"
	"github.com/hookline/hookline/migrations/dbtest"
)

// proxy is a loopback TCP proxy in front of hookline, whose upstream can
// change (a restarted server listens elsewhere) and whose connections can be
// cut at once, as a network drop or a crash would.
type proxy struct {
	ln       net.Listener
	mu       sync.Mutex
	upstream string
	conns    map[net.Conn]bool
}

func newProxy(t *testing.T) *proxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{ln: ln, conns: map[net.Conn]bool{}}
	t.Cleanup(func() { ln.Close(); p.drop() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go p.serve(c)
		}
	}()
	return p
}

func (p *proxy) serve(client net.Conn) {
	p.mu.Lock()
	upstream := p.upstream
	p.mu.Unlock()
	server, err := net.Dial("tcp", upstream)
	if err != nil {
		client.Close()
		return
	}
	p.mu.Lock()
	p.conns[client], p.conns[server] = true, true
	p.mu.Unlock()
	var wg sync.WaitGroup
	for _, pair := range [][2]net.Conn{{client, server}, {server, client}} {
		wg.Go(func() {
			_, _ = io.Copy(pair[0], pair[1])
			pair[0].Close()
			pair[1].Close()
		})
	}
	wg.Wait()
	p.mu.Lock()
	delete(p.conns, client)
	delete(p.conns, server)
	p.mu.Unlock()
}

func (p *proxy) setUpstream(addr string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.upstream = addr
}

// drop cuts every connection through the proxy.
func (p *proxy) drop() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.conns {
		c.Close()
		delete(p.conns, c)
	}
}

// dropLive waits (for up to 30 s) until a connection goes through the proxy,
// then cuts it.
func (p *proxy) dropLive(t *testing.T) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		p.mu.Lock()
		n := len(p.conns)
		p.mu.Unlock()
		if n > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no connection through the proxy to cut")
		}
	}
	time.Sleep(50 * time.Millisecond) // some events on their way
	p.drop()
}

// listenProcess is `hookline listen` running as a process of its own (the
// test binary, which runs main: see TestMain).
type listenProcess struct {
	cmd    *exec.Cmd
	mu     sync.Mutex
	lines  []string
	ready  chan string // the session's secret
	stderr bytes.Buffer
	done   chan error
}

func startListen(t *testing.T, env []string, args ...string) *listenProcess {
	t.Helper()
	cmd := exec.Command(os.Args[0], append([]string{"listen"}, args...)...)
	cmd.Env = append([]string{"HOOKLINE_TEST_RUN_MAIN=1", "PATH=" + os.Getenv("PATH")}, env...)
	l := &listenProcess{cmd: cmd, ready: make(chan string, 1), done: make(chan error, 1)}
	cmd.Stderr = &lockedWriter{mu: &l.mu, w: &l.stderr}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
		}
	})
	readyLine := regexp.MustCompile(`^Ready\. Your webhook signing secret is (whsec_\S+) \(\^C to quit\)$`)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			l.mu.Lock()
			l.lines = append(l.lines, sc.Text())
			l.mu.Unlock()
			if m := readyLine.FindStringSubmatch(sc.Text()); m != nil {
				l.ready <- m[1]
			}
		}
		l.done <- cmd.Wait()
	}()
	return l
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (w *lockedWriter) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.w.Write(b)
}

func (l *listenProcess) output() (stdout []string, stderr string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.lines), l.stderr.String()
}

// TestListen runs `hookline listen` against a served hookline, through a
// proxy, forwarding to a loopback receiver that verifies every request with
// the session's secret. Events keep coming while its connection is cut
// three times, and while the server is stopped (events written to the
// database meanwhile) and started again elsewhere: the receiver gets every
// event of the key's merchant and mode exactly once, in stream order, and
// listen prints each one's two legs. SIGINT ends it with exit 0.
func TestListen(t *testing.T) {
	t.Parallel()

	ctx := context.Background()
	pool, url := migratedPool(t)
	merchant := dbtest.Merchant(t, pool, "Listener")
	other := dbtest.Merchant(t, pool, "Someone else")
	env := map[string]string{"DATABASE_URL": url, "HOOKLINE_RATE_LIMIT": "0"}
	first, stopFirst := launch(t, env, slog.New(slog.NewTextHandler(io.Discard, nil)))
	t.Cleanup(stopFirst)
	px := newProxy(t)
	px.setUpstream(first.Addr())

	var mu sync.Mutex
	var received []string
	var secret string
	var requests int
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		defer mu.Unlock()
		requests++
		wh, err := standardwebhooks.NewWebhook(secret)
		if err != nil {
			t.Errorf("session secret %q: %v", secret, err)
		} else if err := wh.Verify(body, r.Header); err != nil {
			t.Errorf("request for %s does not verify with the session's secret: %v", r.Header.Get("webhook-id"), err)
		}
		received = append(received, r.Header.Get("webhook-id"))
		if requests == 1 {
			w.WriteHeader(http.StatusServiceUnavailable) // shown, not retried
		}
	}))
	defer receiver.Close()

	l := startListen(t, []string{"HOOKLINE_API_KEY=" + merchant.TestAPIKey},
		"--forward-to", receiver.URL+"/hooks", "--api", "http://"+px.ln.Addr().String())
	select {
	case s := <-l.ready:
		mu.Lock()
		secret = s
		mu.Unlock()
	case err := <-l.done:
		_, stderr := l.output()
		t.Fatalf("listen exited: %v\n%s", err, stderr)
	case <-time.After(30 * time.Second):
		t.Fatal("listen printed no Ready line")
	}

	api := first.Addr()
	post := func(key, path, body string) string {
		t.Helper()
		req, _ := http.NewRequest("POST", "http://"+api+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+key)
		req.Header.Set("Content-Type", "application/json")
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Error(err)
			return ""
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		if res.StatusCode >= 300 {
			t.Errorf("POST %s: %d %s", path, res.StatusCode, b)
		}
		id, _, _ := strings.Cut(strings.TrimPrefix(string(b), `{"id":"`), `"`)
		return id
	}
	pay := func() {
		chk := post(merchant.TestAPIKey, "/v1/checkouts", `{"amount":"6700","invoice_currency":"usd"}`)
		pat := post(merchant.TestAPIKey, "/v1/checkouts/"+chk+"/payment_attempts", "")
		post(merchant.TestAPIKey, "/v1/payment_attempts/"+pat+"/succeed", "")
		// Not the listener's: another merchant, the live mode.
		post(other.TestAPIKey, "/v1/checkouts", `{"amount":"100","invoice_currency":"usd"}`)
		post(merchant.LiveAPIKey, "/v1/checkouts", `{"amount":"100","invoice_currency":"usd"}`)
	}
	want := func() []string {
		t.Helper()
		rows, _ := pool.Query(ctx, `select id from events where merchant_id = $1 and not livemode order by txid, id`, merchant.ID)
		ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Fatal(err)
		}
		return ids
	}
	// waitAll waits (bounded, not a speed assertion) until the receiver has
	// as many events as the merchant's test mode has.
	waitAll := func(phase string) {
		t.Helper()
		for deadline := time.Now().Add(90 * time.Second); ; time.Sleep(50 * time.Millisecond) {
			mu.Lock()
			n := len(received)
			mu.Unlock()
			if w := len(want()); n >= w {
				return
			} else if time.Now().After(deadline) {
				stdout, stderr := l.output()
				t.Fatalf("%s: the receiver has %d events of %d after 90 s\n%s\n%s", phase, n, w, strings.Join(stdout, "\n"), stderr)
			}
		}
	}

	// 1. Connected.
	for range 3 {
		pay()
	}
	waitAll("connected")

	// 2. The connection cut three times while events keep coming.
	var producing sync.WaitGroup
	stop := make(chan struct{})
	producing.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
				pay()
				time.Sleep(20 * time.Millisecond)
			}
		}
	})
	for range 3 {
		px.dropLive(t)
	}
	close(stop)
	producing.Wait()
	waitAll("connection cut")

	// 3. The server stopped under it; events written while it is down; a
	// new server elsewhere.
	stopFirst()
	service := events.NewService(events.NewPublisher(nil))
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		for range 4 {
			if _, err := service.CreateCheckout(ctx, tx, events.Scope{MerchantID: merchant.ID}, events.CheckoutParams{Amount: "500", InvoiceCurrency: "eur"}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	second, stopSecond := launch(t, env, slog.New(slog.NewTextHandler(io.Discard, nil)))
	t.Cleanup(stopSecond)
	px.setUpstream(second.Addr())
	api = second.Addr()
	for range 3 {
		pay()
	}
	waitAll("server restarted")

	mu.Lock()
	got := slices.Clone(received)
	mu.Unlock()
	if all := want(); !slices.Equal(got, all) {
		t.Errorf("the receiver got %d events, want the %d of the merchant's test mode once each, in stream order:\n got %v\nwant %v",
			len(got), len(all), got, all)
	}

	if err := l.cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-l.done:
		if err != nil {
			t.Errorf("listen exited with %v on SIGINT, want 0", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("listen did not exit on SIGINT")
	}

	stdout, stderr := l.output()
	text := strings.Join(stdout, "\n")
	stamp := `\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}`
	for i, id := range got {
		status := "200"
		if i == 0 {
			status = "503"
		}
		for _, line := range []string{
			fmt.Sprintf(`(?m)^%s --> [a-z_]+\.[a-z_]+ \[%s\]$`, stamp, id),
			fmt.Sprintf(`(?m)^%s <-- \[%s\] POST %s/hooks \[%s\]$`, stamp, status, regexp.QuoteMeta(receiver.URL), id),
		} {
			if !regexp.MustCompile(line).MatchString(text) {
				t.Errorf("no line matching %s in:\n%s", line, text)
			}
		}
	}
	// Three cuts and a restart: four drops. A cut that lands while listen is
	// still reconnecting (before its new stream answered, on a busy machine)
	// is a failed attempt rather than a reconnection, so at least two.
	if n := strings.Count(stderr, "Reconnected;"); n < 2 {
		t.Errorf("listen reconnected %d times, want at least 2 (three cuts, one restart):\n%s", n, stderr)
	}
}

// TestListenUsage: listen's bad command lines are usage errors (exit 2)
// naming the flag, found before anything connects.
func TestListenUsage(t *testing.T) {
	t.Parallel()

	tests := []struct {
		name string
		args []string
		env  map[string]string
		want string
	}{
		{"no --forward-to", []string{"--api-key", "sk_test_x"}, nil, "--forward-to"},
		{"a --forward-to that is not a URL", []string{"--forward-to", "localhost:3000", "--api-key", "sk_test_x"}, nil, "--forward-to"},
		{"no key", []string{"--forward-to", "http://127.0.0.1:3000/hooks"}, nil, "--api-key"},
		{"not a key", []string{"--forward-to", "http://127.0.0.1:3000/hooks"}, map[string]string{"HOOKLINE_API_KEY": "whsec_x"}, "--api-key"},
		{"an unknown event type", []string{"--forward-to", "http://127.0.0.1:3000/hooks", "--api-key", "sk_test_x", "--events", "checkout.paid,charge.succeeded"}, nil, "--events"},
		{"a bad --api", []string{"--forward-to", "http://127.0.0.1:3000/hooks", "--api-key", "sk_test_x", "--api", "ftp://x"}, nil, "--api"},
		{"an unknown flag", []string{"--forward", "http://127.0.0.1:3000/hooks"}, nil, "forward"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()

			err := run(context.Background(), append([]string{"listen"}, tt.args...), func(k string) string { return tt.env[k] }, io.Discard, io.Discard)
			var usage *usageError
			if !errors.As(err, &usage) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %v, want a usage error naming %s", err, tt.want)
			}
		})
	}
}
