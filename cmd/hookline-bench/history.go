package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/oklog/ulid/v2"

	"github.com/hookline/hookline/migrations/seed"
)

// The history scenario's targets (issue 15).
const (
	pageTarget      = 20 * time.Millisecond // every list page, p99
	statsTarget     = 20 * time.Millisecond // an endpoint's statistics, every window, p99
	dashboardTarget = 50 * time.Millisecond // the operator's views, p99
	// historyDepth is how far down a list its deep pages are read: the
	// cursor is the id this many rows below the list's newest.
	historyDepth = 100_000
	// historySamples is how many timed requests each page shape gets, after
	// historyWarmup untimed ones (each of hookline's connections plans a
	// statement on its first use).
	historySamples = 200
	historyWarmup  = 10
)

// seededHistory: a production-sized history (package seed's shape: 80 % of it the
// bench merchant's, the rest spread over 1,000 others; deliveries of 2
// attempts each, events a fifth of the deliveries, checkouts a tenth),
// seeded with generate_series in one transaction after hookline serve
// started on its schema, then read through the API as a merchant and an
// operator would: every list at its first page and 100,000 rows down in both
// directions with each filter, the dashboard and the operator views; then a
// recovery of 10,000 and of 100,000 failed deliveries of one endpoint, which
// hookline delivers to the receiver (200). Between the pages and the
// operator views it times the busiest endpoint's statistics over each window.
func seededHistory(bin, dbURL string, deliveries int) (*result, error) {
	operatorToken := randomHex(24)
	s, err := newStack(bin, dbURL, "bench_history", "HOOKLINE_OPERATOR_TOKEN="+operatorToken)
	if err != nil {
		return nil, err
	}
	defer s.close()
	h, endpointID, windows, err := s.seedHistory(deliveries)
	if err != nil {
		return nil, err
	}
	pages, err := s.measurePages(h)
	if err != nil {
		return nil, err
	}
	stats, err := s.measureStats()
	if err != nil {
		return nil, err
	}
	views, err := s.measureOperatorViews(operatorToken)
	if err != nil {
		return nil, err
	}
	report := append(append(pages.lines, stats.lines...), views.lines...)
	var rates []float64
	for _, w := range windows {
		line, rate, err := s.recoverWindow(endpointID, w)
		if err != nil {
			return nil, err
		}
		report = append(report, line)
		rates = append(rates, rate)
	}
	// Linear: a recovery ten times the size takes at most twice as long per
	// delivery.
	linear := rates[1] >= rates[0]/2
	verdict := func(ok bool) string {
		if ok {
			return "met"
		}
		return "NOT met"
	}
	report = append(report, fmt.Sprintf("targets: pages %s (worst p99 %s), stats %s (worst p99 %s), dashboard %s (worst p99 %s), recovery linear %s (%.0f and %.0f deliveries/s)",
		verdict(pages.met), ms(pages.worst), verdict(stats.met), ms(stats.worst), verdict(views.met), ms(views.worst), verdict(linear), rates[0], rates[1]))
	r := &result{
		name: fmt.Sprintf("history (%d deliveries, %d events, %d attempts, %d checkouts; 80 %% one merchant's, the rest over 1,000 others)",
			deliveries, deliveries/5, deliveries*2, deliveries/10),
		report: report, peakRSSKiB: s.peakRSS(), cpuSec: s.cpu(), tables: s.tables("checkouts"),
		target: "every page p99 < 20 ms, an endpoint's stats p99 < 20 ms, the dashboard's views p99 < 50 ms, recovery in time linear in its size (100,000 at least half the rate of 10,000)",
		met:    pages.met && stats.met && views.met && linear,
	}
	r.brief = fmt.Sprintf("history: page p99 worst %s, stats p99 worst %s, dashboard p99 worst %s, recovery %.0f/s at 10,000 and %.0f/s at 100,000, RSS %d MiB (%s)",
		ms(pages.worst), ms(stats.worst), ms(views.worst), rates[0], rates[1], r.peakRSSKiB/1024, verdict(r.met))
	return r, nil
}

// seedHistory writes the history (package seed) into the stack's schema, in
// one transaction, then an endpoint of the bench merchant's that is the
// receiver, with the failed deliveries of the two recoveries in windows of
// their own, then vacuums and analyzes, as autovacuum leaves tables that
// have been this size for a while.
func (s *stack) seedHistory(deliveries int) (seed.History, string, []recoveryWindow, error) {
	ctx := context.Background()
	var h seed.History
	var merchant string
	if err := s.pool.QueryRow(ctx, `select id from merchants`).Scan(&merchant); err != nil {
		return h, "", nil, err
	}
	// The seeded ids read as minted a day ago: inside retention, which reads
	// a row's age from its id, so that hookline's pruning leaves them be.
	var idTime ulid.ULID
	if err := idTime.SetTime(ulid.Timestamp(time.Now().Add(-24 * time.Hour))); err != nil {
		return h, "", nil, err
	}
	h = seed.History{Deliveries: deliveries, Attempts: 2, Merchant: merchant, IDTime: idTime.String()[:10], Idle: true}
	start := time.Now()
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "set local synchronous_commit = off; set local work_mem = '256MB'"); err != nil {
			return err
		}
		return h.Write(ctx, tx)
	})
	if err != nil {
		return h, "", nil, err
	}
	fmt.Fprintf(os.Stderr, "history: %d deliveries, %d events, %d attempts, %d checkouts written in %s\n",
		deliveries, deliveries/5, deliveries*2, deliveries/10, time.Since(start).Round(time.Second))

	code, body, err := s.post("/v1/webhook_endpoints", `{"url":"`+s.recv.url+`/recover","enabled_events":["checkout.created"]}`)
	if err != nil || code != 201 {
		return h, "", nil, fmt.Errorf("register endpoint: %d %s %v", code, body, err)
	}
	var endpoint struct{ ID string }
	if err := json.Unmarshal(body, &endpoint); err != nil {
		return h, "", nil, err
	}
	now := time.Now()
	windows := []recoveryWindow{
		{size: 10_000, since: now.Add(-10 * 24 * time.Hour)},
		{size: 100_000, since: now.Add(-8 * 24 * time.Hour)},
	}
	first := deliveries + 1 // numbers after the seed's
	for i := range windows {
		windows[i].first = first
		first += windows[i].size
		if err := s.seedFailed(h, merchant, endpoint.ID, windows[i]); err != nil {
			return h, "", nil, err
		}
	}
	if _, err := s.pool.Exec(ctx, `vacuum analyze merchants, webhook_endpoints, events, deliveries, delivery_attempts, checkouts, endpoint_stats`); err != nil {
		return h, "", nil, err
	}
	if _, err := s.pool.Exec(ctx, `checkpoint`); err != nil {
		return h, "", nil, err
	}
	fmt.Fprintf(os.Stderr, "history: seeded, vacuumed and analyzed after %s\n", time.Since(start).Round(time.Second))
	return h, endpoint.ID, windows, nil
}

// measured is what one part of the scenario printed, its worst p99, and
// whether that met its target.
type measured struct {
	lines []string
	worst time.Duration
	met   bool
}

// judge counts one request's latencies against target: their p99 joins m's
// worst and, at or past target, marks m not met. It answers the p50 and p99
// to print, and the mark (" (NOT met)" or "").
func (m *measured) judge(lat []time.Duration, target time.Duration) (p50, p99, mark string) {
	worst := percentile(lat, .99)
	m.worst = max(m.worst, worst)
	if worst >= target {
		m.met, mark = false, " (NOT met)"
	}
	return ms(percentile(lat, .5)), ms(worst), mark
}

// measurePages times every list shape (listShapes) as the bench merchant.
func (s *stack) measurePages(h seed.History) (*measured, error) {
	shapes, err := s.listShapes(h)
	if err != nil {
		return nil, err
	}
	m := &measured{met: true,
		lines: []string{fmt.Sprintf("list pages (%d timed requests each, one at a time, 10 items): p50 / p99", historySamples)}}
	for _, sh := range shapes {
		line := fmt.Sprintf("  %-58s", sh.label)
		for _, p := range sh.pages {
			lat, err := s.measure(s.key, p.path)
			if err != nil {
				return nil, err
			}
			p50, p99, mark := m.judge(lat, pageTarget)
			line += fmt.Sprintf(" | %s %s / %s%s", p.name, p50, p99, mark)
		}
		m.lines = append(m.lines, line)
	}
	return m, nil
}

// measureStats times GET /v1/webhook_endpoints/{id}/stats of the seed's
// busiest endpoint (a fifth of the large merchant's deliveries, its rollup
// seeded from its attempts: package seed) over each window, as the merchant.
func (s *stack) measureStats() (*measured, error) {
	const busy = "we_seed0000_1"
	m := &measured{met: true, lines: []string{fmt.Sprintf("endpoint stats of %s (%d timed requests each, one at a time): p50 / p99", busy, historySamples)}}
	for _, window := range []string{"1h", "24h", "7d"} {
		path := "/v1/webhook_endpoints/" + busy + "/stats?window=" + window
		lat, err := s.measure(s.key, path)
		if err != nil {
			return nil, err
		}
		p50, p99, mark := m.judge(lat, statsTarget)
		m.lines = append(m.lines, fmt.Sprintf("  GET %-54s %s / %s%s", path, p50, p99, mark))
	}
	return m, nil
}

// measureOperatorViews times the dashboard and the operator API's views; the
// target is the dashboard's (its page, and the two views it shows).
func (s *stack) measureOperatorViews(token string) (*measured, error) {
	m := &measured{met: true, lines: []string{"operator views (operator token):"}}
	for _, v := range []struct {
		path      string
		dashboard bool
	}{
		{"/dashboard", true}, // failing endpoints and failed deliveries, 100 each
		{"/v1/operator/endpoints?failing=true&limit=100", true},
		{"/v1/operator/deliveries?status=failed&limit=100", true},
		{"/v1/operator/deliveries?status=pending&limit=100", false},
		{"/v1/operator/deliveries?status=succeeded&limit=100", false},
		{"/v1/operator/deliveries?limit=100", false},
	} {
		lat, err := s.measure(token, v.path)
		if err != nil {
			return nil, err
		}
		p50, p99, mark := ms(percentile(lat, .5)), ms(percentile(lat, .99)), ""
		if v.dashboard {
			if p50, p99, mark = m.judge(lat, dashboardTarget); mark == "" {
				mark = " (dashboard)"
			}
		}
		m.lines = append(m.lines, fmt.Sprintf("  GET %-54s p50 %s p99 %s%s", v.path, p50, p99, mark))
	}
	return m, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d.Microseconds())/1000) }

// recoveryWindow is a recovery's failed deliveries: size of them, numbered
// from first, created a millisecond apart from since.
type recoveryWindow struct {
	size  int
	first int
	since time.Time
}

func (w recoveryWindow) until() time.Time {
	return w.since.Add(time.Duration(w.size)*time.Millisecond + time.Second)
}

// seedFailed commits a window's failed deliveries to endpointID, each with its
// event and two failed attempts, as the worker leaves a delivery it gave up on.
func (s *stack) seedFailed(h seed.History, merchant, endpointID string, w recoveryWindow) error {
	ctx := context.Background()
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		// Ids as h.ID makes them (prefix, id time, the number in digits),
		// but read as minted at the window's start, when the rows were
		// created: a recovery finds its window's deliveries by their ids'
		// time (windowIDs).
		var idTime ulid.ULID
		if err := idTime.SetTime(ulid.Timestamp(w.since)); err != nil {
			return err
		}
		at := idTime.String()[:len(h.IDTime)]
		args := pgx.NamedArgs{"merchant": merchant, "endpoint": endpointID, "first": w.first, "n": w.size, "since": w.since,
			"payload": seededPayload, "evt": "evt_" + at, "dlv": "dlv_" + at, "digits": 26 - len(at)}
		for _, q := range []string{
			`insert into events (id, merchant_id, livemode, type, payload, created_at)
				select @evt::text || lpad((@first::int + g)::text, @digits::int, '0'), @merchant::text, false, 'checkout.created',
					convert_to(@payload::text, 'UTF8'), @since::timestamptz + g * interval '1 ms'
				from generate_series(0, @n::int - 1) g`,
			`insert into deliveries (id, merchant_id, livemode, event_id, event_type, endpoint_id, url, status, attempt_count, last_status_code,
					created_at, updated_at)
				select @dlv::text || lpad((@first::int + g)::text, @digits::int, '0'), @merchant::text, false,
					@evt::text || lpad((@first::int + g)::text, @digits::int, '0'), 'checkout.created', @endpoint::text, 'http://127.0.0.1/unused',
					'failed', 2, 500, @since::timestamptz + g * interval '1 ms', @since::timestamptz + g * interval '1 ms'
				from generate_series(0, @n::int - 1) g`,
			`insert into delivery_attempts (delivery_id, attempt, started_at, duration_ms, status_code, error)
				select @dlv::text || lpad((@first::int + g)::text, @digits::int, '0'), a, @since::timestamptz, 120, 500, 'HTTP 500'
				from generate_series(0, @n::int - 1) g, generate_series(1, 2) a`,
		} {
			if _, err := tx.Exec(ctx, q, args); err != nil {
				return fmt.Errorf("seed failed deliveries: %w", err)
			}
		}
		return nil
	})
}

// pageShape is one list read three ways.
type pageShape struct {
	label string
	pages []struct{ name, path string }
}

// listShapes lists every list endpoint with each filter, as the large
// merchant reads it, its cursor the id historyDepth rows below its newest (or
// halfway down a shorter list), read from the database.
func (s *stack) listShapes(h seed.History) ([]pageShape, error) {
	merchant := h.Merchant
	busy := "we_seed0000_1"             // a fifth of the large merchant's deliveries
	evt := h.ID("evt", 1)               // one of its events, with five deliveries
	rare := "webhook_endpoint.disabled" // one event in a thousand
	type list struct {
		label, path string
		query       url.Values
		table       string
		where       string
		args        []any
	}
	q := func(kv ...string) url.Values {
		v := url.Values{}
		for i := 0; i < len(kv); i += 2 {
			v.Set(kv[i], kv[i+1])
		}
		return v
	}
	own := `merchant_id = $1 and livemode = false`
	lists := []list{
		{"deliveries", "/v1/deliveries", q(), "deliveries", own, nil},
		{"events", "/v1/events", q(), "events", own, nil},
		{"events ?type=checkout.paid", "/v1/events", q("type", "checkout.paid"), "events", own + ` and type = $2`, []any{"checkout.paid"}},
		{"events ?type=" + rare, "/v1/events", q("type", rare), "events", own + ` and type = $2`, []any{rare}},
		{"checkouts", "/v1/checkouts", q(), "checkouts", own, nil},
		{"webhook_endpoints", "/v1/webhook_endpoints", q(), "webhook_endpoints", own + ` and deleted_at is null`, nil},
	}
	for _, status := range []string{"pending", "succeeded", "failed"} {
		lists = append(lists,
			list{"deliveries ?status=" + status, "/v1/deliveries", q("status", status), "deliveries", own + ` and status = $2`, []any{status}},
			list{"deliveries ?endpoint&status=" + status, "/v1/deliveries", q("endpoint", busy, "status", status), "deliveries",
				own + ` and endpoint_id = $2 and status = $3`, []any{busy, status}})
	}
	lists = append(lists,
		list{"deliveries ?endpoint", "/v1/deliveries", q("endpoint", busy), "deliveries", own + ` and endpoint_id = $2`, []any{busy}},
		list{"deliveries ?event", "/v1/deliveries", q("event", evt), "deliveries", own + ` and event_id = $2`, []any{evt}},
		list{"deliveries ?event&endpoint", "/v1/deliveries", q("event", evt, "endpoint", busy), "deliveries",
			own + ` and event_id = $2 and endpoint_id = $3`, []any{evt, busy}},
		list{"deliveries ?event&status=succeeded", "/v1/deliveries", q("event", evt, "status", "succeeded"), "deliveries",
			own + ` and event_id = $2 and status = $3`, []any{evt, "succeeded"}},
		list{"deliveries ?event&endpoint&status=succeeded", "/v1/deliveries", q("event", evt, "endpoint", busy, "status", "succeeded"),
			"deliveries", own + ` and event_id = $2 and endpoint_id = $3 and status = $4`, []any{evt, busy, "succeeded"}},
	)
	ctx := context.Background()
	var shapes []pageShape
	cursors := map[string]string{} // each table's unfiltered list's, listed first
	for _, l := range lists {
		args := append([]any{merchant}, l.args...)
		var total int
		if err := s.pool.QueryRow(ctx, `select count(*) from (select 1 from `+l.table+` where `+l.where+
			fmt.Sprintf(` limit %d) n`, 2*historyDepth+1), args...).Scan(&total); err != nil {
			return nil, fmt.Errorf("count %s: %w", l.label, err)
		}
		depth := min(historyDepth, total/2)
		label := fmt.Sprintf("GET %s (depth %d)", l.label, depth)
		cursor, ok := cursors[l.table]
		if total == 0 {
			// The merchant has none (the seed's rare type is the small
			// merchants'): the cursor of the table's whole list.
			label = fmt.Sprintf("GET %s (none of the merchant's)", l.label)
		} else if err := s.pool.QueryRow(ctx, `select id from `+l.table+` where `+l.where+
			fmt.Sprintf(` order by id desc offset %d limit 1`, depth), args...).Scan(&cursor); err != nil {
			return nil, fmt.Errorf("cursor of %s: %w", l.label, err)
		}
		if !ok {
			cursors[l.table] = cursor
		}
		shapes = append(shapes, threeWays(label, l.path, l.query, cursor))
	}
	// The catalog of event types: its cursors are types.
	shapes = append(shapes, threeWays("GET event_types (cursor checkout.expired)", "/v1/event_types", q(), "checkout.expired"))
	return shapes, nil
}

// threeWays is a list's first page and its pages after and before cursor.
func threeWays(label, path string, query url.Values, cursor string) pageShape {
	sh := pageShape{label: label}
	for _, p := range []struct{ name, param string }{{"first", ""}, {"starting_after", "starting_after"}, {"ending_before", "ending_before"}} {
		v := url.Values{}
		for k, vs := range query {
			v[k] = vs
		}
		if p.param != "" {
			v.Set(p.param, cursor)
		}
		u := path
		if len(v) > 0 {
			u += "?" + v.Encode()
		}
		sh.pages = append(sh.pages, struct{ name, path string }{p.name, u})
	}
	return sh
}

// measure times historySamples GETs of path with a bearer token, one at a
// time, after historyWarmup untimed ones; any answer but 200 is an error.
func (s *stack) measure(token, path string) ([]time.Duration, error) {
	var lat []time.Duration
	for i := range historyWarmup + historySamples {
		req, _ := http.NewRequest("GET", "http://"+s.addr+path, nil)
		req.Header.Set("Authorization", "Bearer "+token)
		start := time.Now()
		res, err := client.Do(req)
		if err != nil {
			return nil, err
		}
		body, err := io.ReadAll(res.Body)
		res.Body.Close()
		took := time.Since(start)
		if err != nil {
			return nil, err
		}
		if res.StatusCode != 200 {
			return nil, fmt.Errorf("GET %s: %d %s", path, res.StatusCode, body)
		}
		if i >= historyWarmup {
			lat = append(lat, took)
		}
	}
	return lat, nil
}

// recoverWindow asks the merchant API to recover a window's failed
// deliveries, and measures two times from the request: until the recovery
// jobs have reset every one of them to pending with its delivery job (no
// recover_deliveries job left unfinished, none left failed), and until the
// receiver has had every one of them. It returns the report's line and the
// reset rate.
func (s *stack) recoverWindow(endpointID string, w recoveryWindow) (string, float64, error) {
	ctx := context.Background()
	before := s.recv.count.Load()
	start := time.Now()
	code, body, err := s.post("/v1/webhook_endpoints/"+endpointID+"/recover",
		fmt.Sprintf(`{"since":%d,"until":%d}`, w.since.Unix(), w.until().Unix()))
	if err != nil || code != 202 {
		return "", 0, fmt.Errorf("recover: %d %s %v", code, body, err)
	}
	var rec struct{ Matched, Retried int }
	if err := json.Unmarshal(body, &rec); err != nil {
		return "", 0, err
	}
	if rec.Matched != w.size {
		return "", 0, fmt.Errorf("recover matched %d deliveries, want %d", rec.Matched, w.size)
	}
	var reset time.Duration
	for deadline := start.Add(30 * time.Minute); ; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			return "", 0, fmt.Errorf("recovery of %d not reset after 30 minutes", w.size)
		}
		var open int
		if err := s.pool.QueryRow(ctx, `select count(*) from river_job where kind = 'recover_deliveries'
			and state not in ('completed', 'cancelled', 'discarded')`).Scan(&open); err != nil {
			return "", 0, err
		}
		if open == 0 {
			reset = time.Since(start)
			break
		}
	}
	var failed int
	if err := s.pool.QueryRow(ctx, `select count(*) from deliveries where endpoint_id = $1 and status = 'failed'
		and created_at >= $2 and created_at < $3`, endpointID, w.since, w.until()).Scan(&failed); err != nil {
		return "", 0, err
	}
	if failed != 0 {
		return "", 0, fmt.Errorf("recovery of %d: %d still failed after its jobs finished", w.size, failed)
	}
	if err := s.recv.wait(before+int64(w.size), 30*time.Minute); err != nil {
		return "", 0, err
	}
	delivered := time.Unix(0, s.recv.lastSeen.Load()).Sub(start)
	rate := float64(w.size) / reset.Seconds()
	line := fmt.Sprintf("recovery of %d failed deliveries (POST /v1/webhook_endpoints/{id}/recover): all reset to pending with their jobs in %.2fs = %.0f/s; all delivered (receiver 200) in %.2fs = %.0f/s",
		w.size, reset.Seconds(), rate, delivered.Seconds(), float64(w.size)/delivered.Seconds())
	return line, rate, nil
}
