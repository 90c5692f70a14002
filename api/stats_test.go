package api_test

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"

	"github.com/hookline/hookline/schema/schematest"
)

// TestEndpointStatsRoute reads an endpoint's statistics through the API
// over a rollup as the fold writes it, and as recordings wrote it before
// migration 018 (two shards of the current minute
// and hour, one row of the previous hour; the worker's own rows are tested
// in package delivery): every window validates against
// objects/webhook_endpoint_stats.json with the sums of the shards; a bad
// window, a window given twice or an unknown parameter is a 400 naming it,
// a missing endpoint a 404 (another merchant's or mode's:
// TestTenantIsolation).
func TestEndpointStatsRoute(t *testing.T) {
	t.Parallel()

	h := newHarness(t)
	ep := decodeEndpoint(t, h.do("POST", "/v1/webhook_endpoints", h.a.TestAPIKey,
		map[string]any{"url": "http://127.0.0.1:9/hooks"}).must(t, http.StatusCreated))
	latency := make([]int32, 68)
	latency[28] = 3 // 3 answers of about 120 ms
	if _, err := h.pool.Exec(context.Background(), `insert into endpoint_stats
		(endpoint_id, span_seconds, bucket, shard, succeeded, http_error, timeout, connection_error, latency)
		select $1, s.span, date_bin(make_interval(secs => s.span), now() - s.ago, timestamptz '2000-01-01 00:00:00+00'), s.shard,
			s.ok, 1, 0, s.conn, $2
		from (values (60, interval '0', 0, 2, 0), (60, interval '0', 1, 0, 1), (3600, interval '0', 0, 2, 0), (3600, interval '0', 1, 0, 1),
			(3600, interval '1 hour', 0, 2, 0)) s (span, ago, shard, ok, conn)`, ep.ID, latency); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		query        string
		window       string
		buckets      int
		ok, httpErrs int
	}{
		{"", "24h", 24, 4, 3},
		{"?window=1h", "1h", 60, 2, 2},
		{"?window=24h", "24h", 24, 4, 3},
		{"?window=7d", "7d", 28, 4, 3},
	} {
		r := h.do("GET", "/v1/webhook_endpoints/"+ep.ID+"/stats"+c.query, h.a.TestAPIKey, nil).must(t, http.StatusOK)
		schematest.Object(t, "webhook_endpoint_stats", r.body)
		var s struct {
			Window   string
			Attempts struct {
				Succeeded       int
				HTTPError       int `json:"http_error"`
				ConnectionError int `json:"connection_error"`
			}
			LatencyMS struct{ P50, P99 *int } `json:"latency_ms"`
			Series    []struct{ Start int64 }
		}
		if err := json.Unmarshal(r.body, &s); err != nil {
			t.Fatal(err)
		}
		// Each of the rows' three answers is of about 120 ms: bucket 28,
		// 2^(27.5/4) = 117 ms.
		if s.Window != c.window || len(s.Series) != c.buckets || s.Attempts.Succeeded != c.ok || s.Attempts.HTTPError != c.httpErrs ||
			s.LatencyMS.P50 == nil || *s.LatencyMS.P50 != 117 {
			t.Errorf("GET stats%s: %s", c.query, r.body)
		}
	}
	for _, c := range []struct{ query, param string }{
		{"?window=2h", "window"}, {"?window=", "window"}, {"?windows=1h", "windows"}, {"?window=1h&limit=3", "limit"},
		{"?window=1h&window=24h", "window"}, {"?window=24h&window=24h", "window"},
	} {
		r := h.do("GET", "/v1/webhook_endpoints/"+ep.ID+"/stats"+c.query, h.a.TestAPIKey, nil).must(t, http.StatusBadRequest)
		schematest.Object(t, "error", r.body)
		if p := r.errorParam(t); p != c.param {
			t.Errorf("GET stats%s: param %q, want %q", c.query, p, c.param)
		}
	}
	r := h.do("GET", "/v1/webhook_endpoints/we_missing/stats", h.a.TestAPIKey, nil).must(t, http.StatusNotFound)
	schematest.Object(t, "error", r.body)
}
