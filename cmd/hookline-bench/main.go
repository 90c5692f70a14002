// Command hookline-bench measures hookline as it runs in production: a
// separate `hookline serve` process on its own schema, a loopback receiver
// that answers 200, and a load generator creating checkouts through the REST
// API. It prints, per scenario, deliveries per second, API creates per second,
// the latency from the API's 201 to the receiver's first byte (p50, p90, p99),
// hookline's peak RSS, and the row counts and table sizes after; then one
// summary line. `make bench` runs it.
//
// hookline runs with its production defaults except two: HOOKLINE_ENV is
// development (the receiver is on loopback, which production refuses) and the
// per-key rate limit is off (the load generator is one merchant's key).
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

func main() {
	bin := flag.String("hookline", "./hookline", "the hookline binary")
	scenarios := flag.String("scenarios", "burst,steady", "which scenarios to run: burst, steady")
	flag.Parse()
	url := os.Getenv("DATABASE_URL")
	if url == "" {
		fmt.Fprintln(os.Stderr, "hookline-bench: DATABASE_URL is required (make bench sets it)")
		os.Exit(2)
	}
	var summary []string
	for _, name := range strings.Split(*scenarios, ",") {
		var r *result
		var err error
		switch name {
		case "burst":
			r, err = burst(*bin, url)
		case "steady":
			r, err = steady(*bin, url)
		default:
			err = fmt.Errorf("unknown scenario %q", name)
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "hookline-bench: %s: %v\n", name, err)
			os.Exit(1)
		}
		r.print()
		summary = append(summary, r.summary())
	}
	fmt.Printf("summary: %s\n", strings.Join(summary, "; "))
}

// result is one scenario's figures.
type result struct {
	name        string
	deliveries  int
	deliverySec float64 // first request to last delivery
	creates     int
	createSec   float64
	latencies   []time.Duration
	peakRSSKiB  int64
	cpuSec      float64
	tables      []string
	target      string
	met         bool
}

func (r *result) percentile(p float64) time.Duration {
	if len(r.latencies) == 0 {
		return 0
	}
	slices.Sort(r.latencies)
	return r.latencies[min(len(r.latencies)-1, int(p*float64(len(r.latencies))))]
}

func (r *result) print() {
	fmt.Printf("== %s\n", r.name)
	fmt.Printf("deliveries: %d in %.2fs = %.0f/s\n", r.deliveries, r.deliverySec, float64(r.deliveries)/r.deliverySec)
	fmt.Printf("api creates: %d in %.2fs = %.0f/s\n", r.creates, r.createSec, float64(r.creates)/r.createSec)
	fmt.Printf("latency 201 -> receiver first byte: p50 %s p90 %s p99 %s\n",
		r.percentile(.5).Round(time.Millisecond), r.percentile(.9).Round(time.Millisecond), r.percentile(.99).Round(time.Millisecond))
	fmt.Printf("hookline peak RSS: %d MiB, CPU %.1fs (user+system; the rest of the 2 cores went to Postgres and the load generator)\n",
		r.peakRSSKiB/1024, r.cpuSec)
	for _, t := range r.tables {
		fmt.Println(t)
	}
	verdict := "MET"
	if !r.met {
		verdict = "NOT MET"
	}
	fmt.Printf("target: %s: %s\n\n", r.target, verdict)
}

func (r *result) summary() string {
	return fmt.Sprintf("%s %.0f deliveries/s p99 %s RSS %d MiB", r.name, float64(r.deliveries)/r.deliverySec,
		r.percentile(.99).Round(time.Millisecond), r.peakRSSKiB/1024)
}

// stack is one scenario's hookline process, schema, receiver and merchant.
type stack struct {
	cmd      *exec.Cmd
	addr     string
	key      string
	pool     *pgxpool.Pool
	recv     *receiver
	stderr   *bytes.Buffer
	schema   string
	adminURL string
}

func newStack(bin, url, schema string) (*stack, error) {
	ctx := context.Background()
	admin, err := pgxpool.New(ctx, url)
	if err != nil {
		return nil, err
	}
	defer admin.Close()
	if _, err := admin.Exec(ctx, "drop schema if exists "+schema+" cascade; create schema "+schema); err != nil {
		return nil, err
	}
	sep := "?"
	if strings.Contains(url, "?") {
		sep = "&"
	}
	dbURL := url + sep + "search_path=" + schema
	env := append(os.Environ(), "DATABASE_URL="+dbURL, "HOOKLINE_ADDR=127.0.0.1:0", "HOOKLINE_RATE_LIMIT=0",
		"HOOKLINE_DATA_DIR="+os.TempDir()+"/hookline-bench")
	for _, args := range [][]string{{"migrate"}} {
		c := exec.Command(bin, args...)
		c.Env = env
		if out, err := c.CombinedOutput(); err != nil {
			return nil, fmt.Errorf("hookline %v: %v %s", args, err, out)
		}
	}
	c := exec.Command(bin, "merchant", "create", "--name", "Bench")
	c.Env = env
	out, err := c.Output()
	if err != nil {
		return nil, fmt.Errorf("merchant create: %w", err)
	}
	var m struct {
		TestAPIKey string `json:"test_api_key"`
	}
	if err := json.Unmarshal(out, &m); err != nil {
		return nil, err
	}
	s := &stack{key: m.TestAPIKey, recv: newReceiver(), stderr: &bytes.Buffer{}, schema: schema, adminURL: url}
	s.pool, err = pgxpool.New(ctx, dbURL)
	if err != nil {
		return nil, err
	}
	s.cmd = exec.Command(bin, "serve")
	s.cmd.Env = env
	pipe, _ := s.cmd.StderrPipe()
	if err := s.cmd.Start(); err != nil {
		return nil, err
	}
	listening := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(pipe)
		for sc.Scan() {
			s.stderr.Write(append(sc.Bytes(), '\n'))
			var l struct{ Msg, Addr string }
			if json.Unmarshal(sc.Bytes(), &l) == nil && l.Msg == "hookline serving" {
				listening <- l.Addr
			}
		}
	}()
	select {
	case s.addr = <-listening:
	case <-time.After(30 * time.Second):
		return nil, fmt.Errorf("hookline did not start: %s", s.stderr)
	}
	return s, nil
}

func (s *stack) close() {
	_ = s.cmd.Process.Signal(os.Interrupt)
	_ = s.cmd.Wait()
	s.pool.Close()
	s.recv.srv.Close()
}

// cpu reads hookline's user and system CPU seconds from /proc.
func (s *stack) cpu() float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", s.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	// Fields after the command name, which is in parentheses: utime is the
	// 12th, stime the 13th, in clock ticks of 1/100 s.
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+2:]))
	utime, _ := strconv.ParseFloat(f[11], 64)
	stime, _ := strconv.ParseFloat(f[12], 64)
	return (utime + stime) / 100
}

// peakRSS reads hookline's high-water resident set from /proc.
func (s *stack) peakRSS() int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", s.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "VmHWM:") {
			n, _ := strconv.ParseInt(strings.Fields(line)[1], 10, 64)
			return n
		}
	}
	return 0
}

func (s *stack) tables() []string {
	var out []string
	for _, t := range []string{"events", "deliveries", "delivery_attempts", "river_job"} {
		var n int64
		var size string
		err := s.pool.QueryRow(context.Background(), "select count(*), pg_size_pretty(pg_total_relation_size('"+t+"')) from "+t).Scan(&n, &size)
		if err != nil {
			out = append(out, t+": "+err.Error())
			continue
		}
		out = append(out, fmt.Sprintf("table %s: %d rows, %s", t, n, size))
	}
	return out
}

var client = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 256, MaxConnsPerHost: 256}, Timeout: 30 * time.Second}

func (s *stack) post(path, body string) (int, []byte, error) {
	req, _ := http.NewRequest("POST", "http://"+s.addr+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+s.key)
	req.Header.Set("Content-Type", "application/json")
	res, err := client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	return res.StatusCode, b, err
}

func (s *stack) endpoints(n int, events string) error {
	for i := range n {
		code, body, err := s.post("/v1/webhook_endpoints", fmt.Sprintf(`{"url":"%s/ep%d","enabled_events":%s}`, s.recv.url, i, events))
		if err != nil || code != 201 {
			return fmt.Errorf("register endpoint: %d %s %v", code, body, err)
		}
	}
	return nil
}

// createCheckout creates one checkout and records when its 201 came back.
func (s *stack) createCheckout() error {
	code, body, err := s.post("/v1/checkouts", `{"amount":"6700","invoice_currency":"usd","transaction_description":"bench"}`)
	at := time.Now()
	if err != nil {
		return err
	}
	if code != 201 {
		return fmt.Errorf("create checkout: %d %s", code, body)
	}
	var c struct{ ID string }
	if err := json.Unmarshal(body, &c); err != nil {
		return err
	}
	s.recv.acked(c.ID, at)
	return nil
}

// receiver answers 200 and measures each delivery's latency from its
// checkout's 201, at the first byte of the request.
type receiver struct {
	srv      *http.Server
	url      string
	mu       sync.Mutex
	ackedAt  map[string]time.Time
	early    map[string][]time.Time // deliveries that beat their 201 back
	lat      []time.Duration
	count    atomic.Int64
	lastSeen atomic.Int64
}

func newReceiver() *receiver {
	r := &receiver{ackedAt: map[string]time.Time{}, early: map[string][]time.Time{}}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	r.url = "http://" + l.Addr().String()
	r.srv = &http.Server{Handler: http.HandlerFunc(r.serve)}
	go func() { _ = r.srv.Serve(l) }()
	return r
}

func (r *receiver) serve(w http.ResponseWriter, req *http.Request) {
	at := time.Now()
	body, _ := io.ReadAll(req.Body)
	var e struct {
		Data struct{ ID string } `json:"data"`
	}
	_ = json.Unmarshal(body, &e)
	r.mu.Lock()
	if t, ok := r.ackedAt[e.Data.ID]; ok {
		r.lat = append(r.lat, at.Sub(t))
	} else {
		r.early[e.Data.ID] = append(r.early[e.Data.ID], at)
	}
	r.mu.Unlock()
	r.count.Add(1)
	r.lastSeen.Store(at.UnixNano())
	w.WriteHeader(http.StatusOK)
}

func (r *receiver) acked(id string, at time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ackedAt[id] = at
	for _, d := range r.early[id] { // delivered before the client read its 201
		r.lat = append(r.lat, max(0, d.Sub(at)))
	}
	delete(r.early, id)
}

func (r *receiver) wait(n int64, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for r.count.Load() < n {
		if time.Now().After(deadline) {
			return fmt.Errorf("%d of %d deliveries after %s", r.count.Load(), n, limit)
		}
		time.Sleep(5 * time.Millisecond)
	}
	return nil
}

// burst: 4,000 checkouts as fast as 32 clients can create them, 5 endpoints
// subscribed to everything: 20,000 deliveries.
func burst(bin, url string) (*result, error) {
	s, err := newStack(bin, url, "bench_burst")
	if err != nil {
		return nil, err
	}
	defer s.close()
	const checkouts, endpoints = 4000, 5
	if err := s.endpoints(endpoints, `["*"]`); err != nil {
		return nil, err
	}
	start := time.Now()
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, 32)
	for range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= checkouts {
				if err := s.createCheckout(); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	created := time.Since(start)
	close(errs)
	if err := <-errs; err != nil {
		return nil, err
	}
	if err := s.recv.wait(checkouts*endpoints, 10*time.Minute); err != nil {
		return nil, err
	}
	r := &result{name: "burst (4,000 checkouts x 5 endpoints)", deliveries: checkouts * endpoints,
		deliverySec: time.Unix(0, s.recv.lastSeen.Load()).Sub(start).Seconds(), creates: checkouts, createSec: created.Seconds(),
		latencies: s.recv.lat, peakRSSKiB: s.peakRSS(), cpuSec: s.cpu(), tables: s.tables(), target: ">= 5,000 deliveries/s, RSS < 300 MB"}
	r.met = float64(r.deliveries)/r.deliverySec >= 5000 && r.peakRSSKiB < 300*1024
	return r, nil
}

// steady: 1,000 checkouts a second offered for 10 s to one endpoint.
func steady(bin, url string) (*result, error) {
	s, err := newStack(bin, url, "bench_steady")
	if err != nil {
		return nil, err
	}
	defer s.close()
	const rate, seconds = 1000, 10
	if err := s.endpoints(1, `["checkout.created"]`); err != nil {
		return nil, err
	}
	tokens := make(chan struct{}, rate*seconds)
	var failed atomic.Int64
	var wg sync.WaitGroup
	for range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range tokens {
				if s.createCheckout() != nil {
					failed.Add(1)
				}
			}
		}()
	}
	start := time.Now()
	for i := range rate * seconds {
		time.Sleep(time.Until(start.Add(time.Duration(i) * time.Second / rate)))
		tokens <- struct{}{}
	}
	close(tokens)
	wg.Wait()
	created := time.Since(start)
	if n := failed.Load(); n > 0 {
		return nil, fmt.Errorf("%d checkouts were not acknowledged", n)
	}
	if err := s.recv.wait(rate*seconds, 5*time.Minute); err != nil {
		return nil, err
	}
	r := &result{name: "steady (1,000 checkouts/s offered for 10 s, 1 endpoint)", deliveries: rate * seconds,
		deliverySec: time.Unix(0, s.recv.lastSeen.Load()).Sub(start).Seconds(), creates: rate * seconds, createSec: created.Seconds(),
		latencies: s.recv.lat, peakRSSKiB: s.peakRSS(), cpuSec: s.cpu(), tables: s.tables(), target: "p99 < 250 ms, every checkout acknowledged"}
	r.met = r.percentile(.99) < 250*time.Millisecond
	return r, nil
}
