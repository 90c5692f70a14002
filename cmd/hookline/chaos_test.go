//go:build chaos

package main

// The fault tests (make chaos): real hookline processes, built from this
// tree, killed, stopped and run side by side over one Postgres, with
// loopback receivers counting what arrives. Losses fail a test; duplicates,
// which at-least-once delivery allows, are reported.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/hookline/hookline/migrations"
	"github.com/hookline/hookline/migrations/dbtest"
)

// buildDir holds the hookline binary the fault tests run, built once per run
// (go build takes seconds) and removed when the tests are done (afterTests):
// each run used to leave its 28 MB build in /tmp.
var buildDir = sync.OnceValues(func() (string, error) { return os.MkdirTemp("", "hookline-chaos") })

var buildOnce = sync.OnceValues(func() (string, error) {
	dir, err := buildDir()
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "hookline")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go build: %v: %s", err, out)
	}
	return bin, nil
})

// The fault tests' build is removed once they have run, failed or not.
func init() {
	afterTests = append(afterTests, func() {
		if dir, err := buildDir(); err == nil {
			_ = os.RemoveAll(dir)
		}
	})
}

// proc is one running `hookline serve`.
type proc struct {
	cmd    *exec.Cmd
	addr   string
	done   chan error
	stderr *bytes.Buffer
}

// start runs `hookline serve` with env and args and waits until it listens.
func start(t *testing.T, env map[string]string, args ...string) *proc {
	t.Helper()
	bin, err := buildOnce()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, append([]string{"serve"}, args...)...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOOKLINE_ADDR=127.0.0.1:0", "HOOKLINE_ENCRYPTION_KEY=" + dbtest.KeySpec,
		"HOOKLINE_RATE_LIMIT=0"}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	pipe, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &proc{cmd: cmd, done: make(chan error, 1), stderr: &bytes.Buffer{}}
	listening := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(pipe)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			line := sc.Bytes()
			p.stderr.Write(append(line, '\n'))
			var l struct{ Msg, Addr string }
			if json.Unmarshal(line, &l) == nil && l.Msg == "hookline serving" {
				listening <- l.Addr
			}
		}
		p.done <- cmd.Wait()
	}()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
		}
	})
	select {
	case p.addr = <-listening:
		return p
	case err := <-p.done:
		t.Fatalf("hookline exited before listening: %v\n%s", err, p.stderr)
	case <-time.After(30 * time.Second):
		t.Fatalf("hookline did not listen within 30s\n%s", p.stderr)
	}
	return nil
}

// counter is a receiver that counts deliveries per (event, endpoint path),
// only those whose sender was still there to read the 2xx.
type counter struct {
	srv      *httptest.Server
	mu       sync.Mutex
	seen     map[string]int
	total    atomic.Int64
	gone     atomic.Int64 // requests whose sender left before the answer
	inFlight int          // under mu
	peak     int          // under mu: the most requests at once
}

func newCounter(t *testing.T, delay time.Duration) *counter {
	c := &counter{seen: map[string]int{}}
	c.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		c.mu.Lock()
		c.inFlight++
		c.peak = max(c.peak, c.inFlight)
		c.mu.Unlock()
		time.Sleep(delay)
		c.mu.Lock()
		defer c.mu.Unlock()
		c.inFlight--
		if r.Context().Err() != nil {
			c.gone.Add(1)
			return // the sender is gone: its attempt was never acknowledged
		}
		c.seen[r.Header.Get("webhook-id")+" "+r.URL.Path]++
		c.total.Add(1)
	}))
	t.Cleanup(c.srv.Close)
	return c
}

// received is a copy of what was received so far: how many times each
// (event, endpoint path) pair arrived.
func (c *counter) received() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return maps.Clone(c.seen)
}

// missing lists the (event, endpoint) pairs not yet received, and counts
// the duplicates received.
func (c *counter) missing(want []string) (missing []string, duplicates int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, k := range want {
		switch n := c.seen[k]; {
		case n == 0:
			missing = append(missing, k)
		case n > 1:
			duplicates += n - 1
		}
	}
	return missing, duplicates
}

type chaosEnv struct {
	t    *testing.T
	pool *pgxpool.Pool
	url  string
	key  string
}

func newChaosEnv(t *testing.T) *chaosEnv {
	pool, url := migratedPool(t)
	m := dbtest.Merchant(t, pool, "Chaos")
	return &chaosEnv{t: t, pool: pool, url: url, key: m.TestAPIKey}
}

func (e *chaosEnv) post(addr, path, body string) (int, []byte) {
	e.t.Helper()
	req, _ := http.NewRequest("POST", "http://"+addr+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+e.key)
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, b
}

// endpoints registers n endpoints at c, each subscribed to everything, and
// returns their paths.
func (e *chaosEnv) endpoints(addr string, c *counter, n int) []string {
	var paths []string
	for i := range n {
		path := fmt.Sprintf("/ep%d", i)
		if code, body := e.post(addr, "/v1/webhook_endpoints", `{"url":"`+c.srv.URL+path+`","enabled_events":["*"]}`); code != 201 {
			e.t.Fatalf("register endpoint: %d %s", code, body)
		}
		paths = append(paths, path)
	}
	return paths
}

// checkouts creates n checkouts with 8 concurrent clients and returns the
// event ids of those the API acknowledged with a 201.
func (e *chaosEnv) checkouts(addr string, n int) []string {
	e.t.Helper()
	var mu sync.Mutex
	var ids []string
	var wg sync.WaitGroup
	next := atomic.Int64{}
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(n) {
				if code, body := e.post(addr, "/v1/checkouts", `{"amount":"100","invoice_currency":"usd"}`); code == 201 {
					var c struct{ ID string }
					_ = json.Unmarshal(body, &c)
					mu.Lock()
					ids = append(ids, c.ID)
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	return e.createdEvents(ids)
}

// createdEvents returns the checkout.created events of the checkouts the API
// acknowledged, failing the test unless each has exactly its one event: a
// 201 whose change or event went missing is a loss.
func (e *chaosEnv) createdEvents(checkouts []string) []string {
	e.t.Helper()
	rows, err := e.pool.Query(context.Background(), `select id from events where type = 'checkout.created'
		and convert_from(payload, 'UTF8')::jsonb->'data'->>'id' = any($1)`, checkouts)
	if err != nil {
		e.t.Fatal(err)
	}
	events, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		e.t.Fatal(err)
	}
	if len(events) != len(checkouts) {
		e.t.Fatalf("%d checkouts answered 201 but %d checkout.created events exist", len(checkouts), len(events))
	}
	return events
}

func pairs(events, paths []string) []string {
	var out []string
	for _, e := range events {
		for _, p := range paths {
			out = append(out, e+" "+p)
		}
	}
	return out
}

// await waits until every pair has arrived, failing after limit.
func await(t *testing.T, c *counter, want []string, limit time.Duration) int {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		missing, dups := c.missing(want)
		if len(missing) == 0 {
			return dups
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d deliveries never arrived (first: %s)", len(missing), len(want), missing[0])
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestChaosKill9 kills hookline with SIGKILL while 1,500 deliveries are in
// flight; a restarted process must deliver every acknowledged event.
func TestChaosKill9(t *testing.T) {
	e := newChaosEnv(t)
	// A receiver slow enough that deliveries lag far behind the API: when the
	// 300 checkouts (1,500 deliveries) are acknowledged, most are in flight.
	// At 300 ms a request, 259 to 528 were made before the kill (CI runs of
	// 2026-12-03), too close to the check below on a faster machine or a
	// faster engine (844 in one run of a limiter variant); at 600 ms (not
	// slow yet: slowAfter is 1 s), 81 to 115. A precondition that does not
	// hang on speed (the receiver holding requests until the kill) would be
	// better.
	c := newCounter(t, 600*time.Millisecond)
	env := map[string]string{"DATABASE_URL": e.url}
	a := start(t, env)
	paths := e.endpoints(a.addr, c, 5)
	events := e.checkouts(a.addr, 300)
	want := pairs(events, paths)
	if err := a.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-a.done
	before := c.total.Load()
	t.Logf("killed with %d of %d deliveries made, %d in flight or queued", before, len(want), int64(len(want))-before)
	if before > int64(len(want))/2 {
		t.Fatal("most deliveries were made before the kill: the test proved little")
	}

	b := start(t, env)
	dups := await(t, c, want, 3*time.Minute)
	t.Logf("all %d deliveries arrived after the restart; %d duplicates (allowed: at least once)", len(want), dups)
	stop(t, b)
}

// TestChaosScaleOut runs an API node and two worker nodes on one database:
// the workers share the deliveries and lose none.
func TestChaosScaleOut(t *testing.T) {
	e := newChaosEnv(t)
	c := newCounter(t, 5*time.Millisecond)
	env := map[string]string{"DATABASE_URL": e.url}
	apiNode := start(t, env, "--role", "api")
	w1, w2 := start(t, env, "--role", "worker"), start(t, env, "--role", "worker")
	paths := e.endpoints(apiNode.addr, c, 3)
	events := e.checkouts(apiNode.addr, 200)
	dups := await(t, c, pairs(events, paths), 2*time.Minute)
	var clients int
	if err := e.pool.QueryRow(context.Background(), `select count(distinct attempted_by[1]) from river_job
		where kind = 'deliver'`).Scan(&clients); err != nil {
		t.Fatal(err)
	}
	if clients < 2 {
		t.Fatalf("deliveries were worked by %d process(es), want both workers", clients)
	}
	t.Logf("%d deliveries by %d workers, %d duplicates", len(events)*len(paths), clients, dups)
	for _, p := range []*proc{apiNode, w1, w2} {
		stop(t, p)
	}
}

// TestChaosSIGTERM stops hookline while slow attempts run and a slow API
// request is in flight (its insert waits on a lock the test holds for 3s
// after the signal). The process stops fetching jobs at once, not after the
// request has drained; the attempts in flight finish, their 2xx recorded
// (each succeeded with exactly one attempt), and are never sent again; the
// request gets its 201; the process exits 0 within 30s; and what it had not
// delivered a new process delivers.
func TestChaosSIGTERM(t *testing.T) {
	ctx := context.Background()
	e := newChaosEnv(t)
	c := newCounter(t, 2*time.Second)
	env := map[string]string{"DATABASE_URL": e.url}
	a := start(t, env)
	paths := e.endpoints(a.addr, c, 2)
	events := e.checkouts(a.addr, 30)
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		c.mu.Lock()
		inFlight := c.inFlight
		c.mu.Unlock()
		if inFlight > 0 {
			break // attempts are under way
		}
		if time.Now().After(deadline) {
			t.Fatal("no attempt under way 30s after the checkouts")
		}
	}

	// A request that will still be in flight when the signal comes.
	lock, err := e.pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Rollback(ctx) //nolint:errcheck // rolled back below; this only frees the connection on failure
	if _, err := lock.Exec(ctx, `lock table checkouts in share mode`); err != nil {
		t.Fatal(err)
	}
	slow := make(chan int, 1)
	go func() {
		code, _ := e.post(a.addr, "/v1/checkouts", `{"amount":"100","invoice_currency":"usd"}`)
		slow <- code
	}()
	dbtest.AwaitBlocked(t, e.pool, lock, "the API request never waited for the lock")

	var signalled time.Time
	if err := e.pool.QueryRow(ctx, `select now()`).Scan(&signalled); err != nil {
		t.Fatal(err)
	}
	sent := sendSignal(t, a, syscall.SIGTERM)
	time.Sleep(3 * time.Second) // the request drains for this long
	if err := lock.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	if code := <-slow; code != http.StatusCreated {
		t.Errorf("the request in flight at SIGTERM got %d, want 201", code)
	}
	exited(t, a, sent)

	// Nothing was fetched after the signal (a second's grace for a fetch
	// already under way), and no attempt's sender left before its answer.
	var late int
	if err := e.pool.QueryRow(ctx, `select count(*) from river_job where attempted_at > $1::timestamptz + interval '1 second'`,
		signalled).Scan(&late); err != nil {
		t.Fatal(err)
	}
	if late > 0 {
		t.Errorf("%d jobs were fetched after SIGTERM", late)
	}
	if n := c.gone.Load(); n > 0 {
		t.Errorf("%d attempts were cut off by SIGTERM, want every attempt in flight to finish", n)
	}
	// What the receiver acknowledged is recorded: succeeded, one attempt.
	before := c.received()
	rows, err := e.pool.Query(ctx, `select e.id || ' ' || substring(w.url from '/ep[0-9]+$'), d.status, d.attempt_count,
			(select count(*) from delivery_attempts a where a.delivery_id = d.id)
		from deliveries d join events e on e.id = d.event_id join webhook_endpoints w on w.id = d.endpoint_id`)
	if err != nil {
		t.Fatal(err)
	}
	recorded := map[string]string{}
	var key, status string
	var count, attempts int
	if _, err := pgx.ForEachRow(rows, []any{&key, &status, &count, &attempts}, func() error {
		recorded[key] = fmt.Sprintf("%s, %d attempts, %d recorded", status, count, attempts)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	for key, n := range before {
		if got := recorded[key]; n != 1 || got != "succeeded, 1 attempts, 1 recorded" {
			t.Errorf("%s: received %d times before the restart; in the database %q, want once and succeeded, 1 attempts, 1 recorded", key, n, got)
		}
	}
	t.Logf("%d deliveries acknowledged before the process stopped, each recorded once", len(before))

	b := start(t, env)
	dups := await(t, c, pairs(events, paths), 2*time.Minute)
	for key := range before {
		if n := c.received()[key]; n != 1 {
			t.Errorf("%s: sent again after the restart (%d times in all)", key, n)
		}
	}
	t.Logf("all %d deliveries arrived; %d duplicates", len(events)*len(paths), dups)
	stop(t, b)
}

// stop sends SIGTERM and requires exit status 0 within 30s.
func stop(t *testing.T, p *proc) {
	t.Helper()
	exited(t, p, sendSignal(t, p, syscall.SIGTERM))
}

// sendSignal sends sig to p and returns when.
func sendSignal(t *testing.T, p *proc, sig syscall.Signal) time.Time {
	t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
	return time.Now()
}

// exited requires p to exit with status 0 within 30s of sent.
func exited(t *testing.T, p *proc, sent time.Time) {
	t.Helper()
	select {
	case err := <-p.done:
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v\n%s", err, p.stderr)
		}
	case <-time.After(time.Until(sent.Add(30 * time.Second))):
		t.Fatalf("still running 30s after SIGTERM\n%s", p.stderr)
	}
}

// cluster is a throwaway Postgres of the test's own, which it may stop.
type cluster struct {
	t    *testing.T
	bin  string
	data string
	url  string
}

func newCluster(t *testing.T) *cluster {
	t.Helper()
	bins, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	if len(bins) == 0 {
		t.Fatal("no Postgres under /usr/lib/postgresql: make test installs it")
	}
	dir, err := os.MkdirTemp("", "hookline-pg")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	c := &cluster{t: t, bin: bins[len(bins)-1], data: filepath.Join(dir, "data"),
		url: fmt.Sprintf("postgres://hookline@127.0.0.1:%d/postgres?sslmode=disable", port)}
	if os.Geteuid() == 0 {
		if out, err := exec.Command("chown", "postgres", dir).CombinedOutput(); err != nil {
			t.Fatalf("chown: %v %s", err, out)
		}
	}
	c.run("initdb", "-D", c.data, "-U", "hookline", "--auth=trust", "-E", "UTF8")
	conf := fmt.Sprintf("\nport = %d\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '%s'\n", port, dir)
	c.run("sh", "-c", "cat >> "+filepath.Join(c.data, "postgresql.conf")+" <<'EOF'"+conf+"EOF")
	c.start()
	t.Cleanup(func() { c.run("pg_ctl", "-D", c.data, "-m", "immediate", "stop") })
	return c
}

// run runs a Postgres tool (or sh) as the postgres user when root.
func (c *cluster) run(tool string, args ...string) {
	c.t.Helper()
	if tool != "sh" {
		tool = filepath.Join(c.bin, tool)
	}
	cmd := exec.Command(tool, args...)
	if os.Geteuid() == 0 {
		cmd = exec.Command("runuser", append([]string{"-u", "postgres", "--", tool}, args...)...)
	}
	cmd.Dir = "/"
	if out, err := cmd.CombinedOutput(); err != nil {
		c.t.Fatalf("%s %v: %v\n%s", tool, args, err, out)
	}
}

func (c *cluster) start() { c.run("pg_ctl", "-D", c.data, "-w", "-l", c.data+"/log", "start") }

// crash stops Postgres as a crash would: no checkpoint, and the WAL of
// asynchronous commits (the workers') not yet on disk is lost.
func (c *cluster) crash() { c.run("pg_ctl", "-D", c.data, "-m", "immediate", "-w", "stop") }

// TestChaosPostgresOutage crashes Postgres for 5s under API load: writes
// answer 503 at once (never a hang, a 500, or a 201 that is later missing),
// /readyz reports the outage, hookline recovers by itself, and every
// acknowledged event is delivered, although the crash undid the workers'
// latest (asynchronous) commits.
func TestChaosPostgresOutage(t *testing.T) {
	db := newCluster(t)
	pool, err := pgxpool.New(context.Background(), db.url)
	if err != nil {
		t.Fatal(err)
	}
	if err := migrations.Up(context.Background(), pool); err != nil {
		t.Fatal(err)
	}
	m := dbtest.Merchant(t, pool, "Outage")
	pool.Close()
	e := &chaosEnv{t: t, url: db.url, key: m.TestAPIKey}
	c := newCounter(t, 0)
	p := start(t, map[string]string{"DATABASE_URL": db.url})
	paths := e.endpoints(p.addr, c, 2)

	client := &http.Client{Timeout: 10 * time.Second} // a hang fails the request
	var mu sync.Mutex
	statuses := map[int]int{}
	var acked []string
	loadCtx, stopLoad := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for loadCtx.Err() == nil {
				req, _ := http.NewRequest("POST", "http://"+p.addr+"/v1/checkouts", strings.NewReader(`{"amount":"1","invoice_currency":"usd"}`))
				req.Header.Set("Authorization", "Bearer "+e.key)
				req.Header.Set("Content-Type", "application/json")
				res, err := client.Do(req)
				mu.Lock()
				if err != nil {
					statuses[-1]++
				} else {
					body, _ := io.ReadAll(res.Body)
					res.Body.Close()
					statuses[res.StatusCode]++
					if res.StatusCode == 201 {
						var chk struct{ ID string }
						_ = json.Unmarshal(body, &chk)
						acked = append(acked, chk.ID)
					}
				}
				mu.Unlock()
				time.Sleep(20 * time.Millisecond)
			}
		}()
	}
	readyz := func() int {
		res, err := client.Get("http://" + p.addr + "/readyz")
		if err != nil {
			return -1
		}
		res.Body.Close()
		return res.StatusCode
	}

	time.Sleep(time.Second)
	db.crash()
	time.Sleep(time.Second)
	if code := readyz(); code != http.StatusServiceUnavailable {
		t.Errorf("/readyz during the outage: %d, want 503", code)
	}
	time.Sleep(4 * time.Second)
	db.start()
	deadline := time.Now().Add(60 * time.Second)
	for readyz() != http.StatusOK {
		if time.Now().After(deadline) {
			t.Fatal("/readyz did not recover within 60s of Postgres coming back")
		}
		time.Sleep(200 * time.Millisecond)
	}
	time.Sleep(2 * time.Second) // load after recovery
	stopLoad()
	wg.Wait()

	t.Logf("API answers under the outage: %v", statuses)
	for code, n := range statuses {
		if code != http.StatusCreated && code != http.StatusServiceUnavailable {
			t.Errorf("%d answers with status %d: want only 201 and 503", n, code)
		}
	}
	if statuses[http.StatusServiceUnavailable] == 0 || statuses[http.StatusCreated] == 0 {
		t.Fatalf("answers %v: the outage was not seen, or nothing succeeded", statuses)
	}

	pool, err = pgxpool.New(context.Background(), db.url)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	e.pool = pool
	events := e.createdEvents(acked)
	dups := await(t, c, pairs(events, paths), 2*time.Minute)
	t.Logf("all %d acknowledged events delivered to both endpoints; %d duplicates", len(events), dups)
	stop(t, p)
}

// TestChaosReceiverDownThenUp keeps a receiver down (connection refused) for
// a while, then brings it up on the same address: every delivery arrives, no
// attempt came before its place in the retry schedule, and none took more
// attempts than the schedule allows. Attempts may come later than the
// schedule: once the endpoint has failed every attempt for a few seconds, its
// deliveries park and only probes reach it, until one is acknowledged.
func TestChaosReceiverDownThenUp(t *testing.T) {
	e := newChaosEnv(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // down: nothing listens there yet
	p := start(t, map[string]string{"DATABASE_URL": e.url, "HOOKLINE_RETRY_SCHEDULE": "2s,4s,8s,16s,32s"})
	if code, body := e.post(p.addr, "/v1/webhook_endpoints", `{"url":"http://`+addr+`/down","enabled_events":["*"]}`); code != 201 {
		t.Fatalf("register endpoint: %d %s", code, body)
	}
	events := e.checkouts(p.addr, 20)
	time.Sleep(10 * time.Second) // attempts 1 to 3 fail: at 0s, ~2s, ~6s

	c := &counter{seen: map[string]int{}}
	c.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c.mu.Lock()
		c.seen[r.Header.Get("webhook-id")+" "+r.URL.Path]++
		c.mu.Unlock()
	}))
	if c.srv.Listener, err = net.Listen("tcp", addr); err != nil {
		t.Fatal(err)
	}
	c.srv.Start()
	defer c.srv.Close()
	await(t, c, pairs(events, []string{"/down"}), 2*time.Minute)

	// The gaps between a delivery's failed attempts follow the schedule
	// (2s, 4s, 8s, ... with ±20 % jitter).
	rows, err := e.pool.Query(context.Background(), `select delivery_id, attempt, started_at from delivery_attempts order by delivery_id, attempt`)
	if err != nil {
		t.Fatal(err)
	}
	prev := map[string]time.Time{}
	var checked int
	for rows.Next() {
		var id string
		var attempt int
		var at time.Time
		if err := rows.Scan(&id, &attempt, &at); err != nil {
			t.Fatal(err)
		}
		if attempt > 6 {
			t.Errorf("%s: attempt %d, more than the schedule of 5 retries allows", id, attempt)
		}
		if before, ok := prev[id]; ok {
			want := time.Duration(1<<(attempt-1)) * time.Second // 2s before attempt 2, 4s before 3, ...
			if gap := at.Sub(before); gap < want*8/10-100*time.Millisecond {
				t.Errorf("%s attempt %d came %s after the previous, before the schedule's %s -20%%", id, attempt, gap, want)
			}
			checked++
		}
		prev[id] = at
	}
	if checked == 0 {
		t.Fatal("no delivery was retried: the receiver was never seen down")
	}
	stop(t, p)
}

// TestChaosSlowReceiver puts an endpoint that takes 8s per request next to a
// fast one, with more slow deliveries than the 100 workers. The slow one may
// hold only its cap of 20 workers: the fast endpoint's deliveries all arrive
// before the first slow request even ends (without the cap, every worker
// would be waiting on the slow receiver for those 8s).
func TestChaosSlowReceiver(t *testing.T) {
	e := newChaosEnv(t)
	slow, quick := newCounter(t, 8*time.Second), newCounter(t, 0)
	p := start(t, map[string]string{"DATABASE_URL": e.url, "HOOKLINE_ENDPOINT_CONCURRENCY": "20"})
	for _, c := range []*counter{slow, quick} {
		if code, body := e.post(p.addr, "/v1/webhook_endpoints", `{"url":"`+c.srv.URL+`/x","enabled_events":["checkout.created"]}`); code != 201 {
			t.Fatalf("register endpoint: %d %s", code, body)
		}
	}
	events := e.checkouts(p.addr, 150) // 150 slow deliveries: more than the 100 workers
	await(t, quick, pairs(events, []string{"/x"}), time.Minute)
	if n := slow.total.Load(); n > 0 {
		t.Fatalf("%d slow requests had already ended when the fast deliveries were done: the slow endpoint held them up", n)
	}
	slow.mu.Lock()
	peak := slow.peak
	slow.mu.Unlock()
	if peak > 20 {
		t.Fatalf("the slow receiver had %d requests at once, over the cap of 20", peak)
	}
	t.Logf("all %d fast deliveries arrived before any slow one ended; the slow receiver peaked at %d at once", len(events), peak)
	stop(t, p)
}

// TestChaosKillDuringOutage kills hookline (-9) while its receiver answers
// every attempt with a 500, restarts it, and ends the outage: every delivery
// ends succeeded, none took more attempts than the retry schedule allows,
// and each has exactly as many attempts recorded as its attempt_count. A
// job that recorded its attempts and the next attempts' jobs, and whose
// process died before River completed it, runs again when River rescues it:
// it must find its attempts recorded and send nothing, or a second retry
// chain would run beside the first.
func TestChaosKillDuringOutage(t *testing.T) {
	ctx := context.Background()
	e := newChaosEnv(t)
	const schedule = "1s,2s,4s,8s,16s,32s,64s"
	const maxAttempts = 8 // the first and seven retries
	var down atomic.Bool
	down.Store(true)
	var requests atomic.Int64
	// A failing answer takes 200 ms, so that jobs are under way when the
	// process is killed.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		_, _ = io.Copy(io.Discard, r.Body)
		if down.Load() {
			time.Sleep(200 * time.Millisecond)
			w.WriteHeader(http.StatusInternalServerError)
		}
	}))
	defer srv.Close()
	// A short delivery timeout makes the job timeout, after which River
	// rescues a dead process's jobs, 14 s.
	env := map[string]string{"DATABASE_URL": e.url, "HOOKLINE_RETRY_SCHEDULE": schedule, "HOOKLINE_DELIVERY_TIMEOUT": "2s"}
	a := start(t, env)
	for _, path := range []string{"/a", "/b"} {
		if code, body := e.post(a.addr, "/v1/webhook_endpoints", `{"url":"`+srv.URL+path+`","enabled_events":["*"]}`); code != 201 {
			t.Fatalf("register endpoint: %d %s", code, body)
		}
	}
	e.checkouts(a.addr, 40)
	// Kill once retries are under way: some deliveries have failed twice.
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(50 * time.Millisecond) {
		var retried int
		if err := e.pool.QueryRow(ctx, `select count(*) from deliveries where attempt_count >= 2`).Scan(&retried); err != nil {
			t.Fatal(err)
		}
		if retried > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no delivery was retried within a minute")
		}
	}
	sendSignal(t, a, syscall.SIGKILL)
	<-a.done
	killedAt := requests.Load()
	var running int
	if err := e.pool.QueryRow(ctx, `select count(*) from river_job where kind = 'deliver' and state = 'running'`).Scan(&running); err != nil {
		t.Fatal(err)
	}

	// The outage goes on after the restart for longer than River takes to
	// rescue the dead process's jobs (the job timeout, 5 s, and up to 30 s
	// for the rescuer's next pass), well inside the schedule's 127 s.
	b := start(t, env)
	time.Sleep(40 * time.Second)
	down.Store(false)
	t.Logf("killed after %d requests, with %d delivery jobs running; the outage ended after %d requests", killedAt, running, requests.Load())

	type row struct {
		id, status       string
		count, attempts  int
		first, last, gap int
	}
	var rows []row
	for deadline := time.Now().Add(4 * time.Minute); ; time.Sleep(200 * time.Millisecond) {
		r, err := e.pool.Query(ctx, `select d.id, d.status, d.attempt_count, count(a.attempt),
				coalesce(min(a.attempt), 0), coalesce(max(a.attempt), 0), count(distinct a.attempt)
			from deliveries d left join delivery_attempts a on a.delivery_id = d.id group by d.id`)
		if err != nil {
			t.Fatal(err)
		}
		rows, err = pgx.CollectRows(r, func(r pgx.CollectableRow) (row, error) {
			var x row
			return x, r.Scan(&x.id, &x.status, &x.count, &x.attempts, &x.first, &x.last, &x.gap)
		})
		if err != nil {
			t.Fatal(err)
		}
		settled := 0
		for _, x := range rows {
			if x.status != "pending" {
				settled++
			}
		}
		if settled == len(rows) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d deliveries still pending after 4 minutes", len(rows)-settled, len(rows))
		}
	}
	most := 0
	for _, x := range rows {
		most = max(most, x.count)
		if x.status != "succeeded" {
			t.Errorf("%s: %s after %d attempts, want succeeded", x.id, x.status, x.count)
		}
		if x.count > maxAttempts {
			t.Errorf("%s: %d attempts, more than the schedule's %d", x.id, x.count, maxAttempts)
		}
		// Attempts 1 to attempt_count, each recorded once.
		if x.attempts != x.count || x.gap != x.count || x.first != 1 || x.last != x.count {
			t.Errorf("%s: attempt_count %d, but %d attempts recorded (numbers %d to %d, %d distinct)",
				x.id, x.count, x.attempts, x.first, x.last, x.gap)
		}
	}
	var rerun int
	if err := e.pool.QueryRow(ctx, `select count(*) from river_job where kind = 'deliver' and attempt > 1`).Scan(&rerun); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d deliveries succeeded, at most %d attempts each; the receiver got %d requests; %d delivery jobs ran again after the kill",
		len(rows), most, requests.Load(), rerun)
	stop(t, b)
}
