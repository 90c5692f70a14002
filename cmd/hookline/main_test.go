package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/hookline/hookline/delivery"
	"github.com/hookline/hookline/migrations/dbtest"
)

func TestLoadConfig(t *testing.T) {
	t.Parallel()

	// Without DATABASE_URL, in development, the cluster make run keeps in
	// HOOKLINE_DATA_DIR/pg: through its socket there, on the port .ci/postgres
	// wrote there.
	withCluster, pg := checkout(t, "54331\n")
	badPort, _ := checkout(t, "postgres\n")
	tests := []struct {
		name    string
		env     map[string]string
		wantErr string // a substring naming the variable; "" for success
		check   func(config) bool
	}{
		{"defaults", map[string]string{"DATABASE_URL": "postgres://x"}, "", func(c config) bool {
			return c.Addr == "127.0.0.1:8080" && c.Env == "development" && c.DeliveryTimeout == 15*time.Second &&
				len(c.RetrySchedule) == 12 && c.RetrySchedule[0] == 5*time.Second && c.RateLimit == 100 && c.RateBurst == 200 && c.MaxEndpoints == 50
		}},
		{"no database", map[string]string{"HOOKLINE_DATA_DIR": "/nonexistent/hookline"}, "DATABASE_URL", nil},
		{"short operator token", map[string]string{"DATABASE_URL": "x", "HOOKLINE_OPERATOR_TOKEN": strings.Repeat("t", 31)}, "HOOKLINE_OPERATOR_TOKEN", nil},
		{"operator token of 32 characters", map[string]string{"DATABASE_URL": "x", "HOOKLINE_OPERATOR_TOKEN": strings.Repeat("t", 32)}, "", func(c config) bool {
			return len(c.OperatorToken) == 32
		}},
		{"bad address", map[string]string{"DATABASE_URL": "x", "HOOKLINE_ADDR": "8080"}, "HOOKLINE_ADDR", nil},
		{"bad env", map[string]string{"DATABASE_URL": "x", "HOOKLINE_ENV": "prod"}, "HOOKLINE_ENV", nil},
		{"bad metrics address", map[string]string{"DATABASE_URL": "x", "HOOKLINE_METRICS_ADDR": "9090"}, "HOOKLINE_METRICS_ADDR", nil},
		{"metrics on the API's address", map[string]string{"DATABASE_URL": "x", "HOOKLINE_ADDR": "0.0.0.0:8080",
			"HOOKLINE_METRICS_ADDR": "0.0.0.0:8080"}, "HOOKLINE_METRICS_ADDR", nil},
		{"metrics address", map[string]string{"DATABASE_URL": "x", "HOOKLINE_METRICS_ADDR": "127.0.0.1:9090"}, "", func(c config) bool {
			return c.MetricsAddr == "127.0.0.1:9090"
		}},
		{"bad timeout", map[string]string{"DATABASE_URL": "x", "HOOKLINE_DELIVERY_TIMEOUT": "soon"}, "HOOKLINE_DELIVERY_TIMEOUT", nil},
		{"bad schedule", map[string]string{"DATABASE_URL": "x", "HOOKLINE_RETRY_SCHEDULE": "1s,later"}, "HOOKLINE_RETRY_SCHEDULE", nil},
		{"bad log level", map[string]string{"DATABASE_URL": "x", "HOOKLINE_LOG_LEVEL": "loud"}, "HOOKLINE_LOG_LEVEL", nil},
		{"bad allowlist", map[string]string{"DATABASE_URL": "x", "HOOKLINE_ALLOW_PRIVATE_CIDRS": "10.0.0.0/8,office"}, "HOOKLINE_ALLOW_PRIVATE_CIDRS", nil},
		{"allowlist", map[string]string{"DATABASE_URL": "x", "HOOKLINE_ALLOW_PRIVATE_CIDRS": "10.20.1.1/16, fd00::/8"}, "", func(c config) bool {
			return len(c.AllowPrivate) == 2 && c.AllowPrivate[0].String() == "10.20.0.0/16"
		}},
		{"bad trusted proxies", map[string]string{"DATABASE_URL": "x", "HOOKLINE_TRUSTED_PROXIES": "10.0.0.0/8,load-balancer"}, "HOOKLINE_TRUSTED_PROXIES", nil},
		{"a trusted proxy without its prefix length", map[string]string{"DATABASE_URL": "x", "HOOKLINE_TRUSTED_PROXIES": "10.0.0.7"}, "HOOKLINE_TRUSTED_PROXIES", nil},
		{"an IPv4-mapped trusted proxy range", map[string]string{"DATABASE_URL": "x", "HOOKLINE_TRUSTED_PROXIES": "::ffff:10.0.0.0/104"}, "HOOKLINE_TRUSTED_PROXIES", nil},
		{"an IPv4-mapped allowlist range", map[string]string{"DATABASE_URL": "x", "HOOKLINE_ALLOW_PRIVATE_CIDRS": "::ffff:10.0.0.0/104"}, "HOOKLINE_ALLOW_PRIVATE_CIDRS", nil},
		{"trusted proxies", map[string]string{"DATABASE_URL": "x", "HOOKLINE_TRUSTED_PROXIES": "10.0.3.1/16, 2001:db8::/32"}, "", func(c config) bool {
			return len(c.TrustedProxies) == 2 && c.TrustedProxies[0].String() == "10.0.0.0/16" && c.TrustedProxies[1].String() == "2001:db8::/32"
		}},
		{"frame ancestors", map[string]string{"DATABASE_URL": "x", "HOOKLINE_PORTAL_FRAME_ANCESTORS": " https://dash.example.com  https://*.shop.example:8443 'self'"}, "",
			func(c config) bool {
				return strings.Join(c.PortalFrameAncestors, " ") == "https://dash.example.com https://*.shop.example:8443 'self'"
			}},
		{"a frame ancestor with a path", map[string]string{"DATABASE_URL": "x", "HOOKLINE_PORTAL_FRAME_ANCESTORS": "https://dash.example.com/app"}, "HOOKLINE_PORTAL_FRAME_ANCESTORS", nil},
		{"a frame ancestor adding a directive", map[string]string{"DATABASE_URL": "x", "HOOKLINE_PORTAL_FRAME_ANCESTORS": "https://a.example; script-src *"}, "HOOKLINE_PORTAL_FRAME_ANCESTORS", nil},
		{"a frame ancestor that is a keyword", map[string]string{"DATABASE_URL": "x", "HOOKLINE_PORTAL_FRAME_ANCESTORS": "*"}, "HOOKLINE_PORTAL_FRAME_ANCESTORS", nil},
		{"an http frame ancestor in production", map[string]string{"DATABASE_URL": "x", "HOOKLINE_ENV": "production", "HOOKLINE_ENCRYPTION_KEY": dbtest.KeySpec,
			"HOOKLINE_PORTAL_FRAME_ANCESTORS": "https://dash.example.com http://shop.example"}, "HOOKLINE_PORTAL_FRAME_ANCESTORS", nil},
		{"https frame ancestors in production", map[string]string{"DATABASE_URL": "x", "HOOKLINE_ENV": "production", "HOOKLINE_ENCRYPTION_KEY": dbtest.KeySpec,
			"HOOKLINE_PORTAL_FRAME_ANCESTORS": "https://dash.example.com 'self'"}, "", func(c config) bool {
			return strings.Join(c.PortalFrameAncestors, " ") == "https://dash.example.com 'self'"
		}},
		{"an http frame ancestor in development", map[string]string{"DATABASE_URL": "x", "HOOKLINE_PORTAL_FRAME_ANCESTORS": "http://localhost:3000"}, "", func(c config) bool {
			return strings.Join(c.PortalFrameAncestors, " ") == "http://localhost:3000"
		}},
		{"public URL", map[string]string{"DATABASE_URL": "x", "HOOKLINE_PUBLIC_URL": "https://hooks.example.com/"}, "", func(c config) bool {
			return c.PublicURL == "https://hooks.example.com"
		}},
		{"a public URL with a path", map[string]string{"DATABASE_URL": "x", "HOOKLINE_PUBLIC_URL": "https://hooks.example.com/x"}, "HOOKLINE_PUBLIC_URL", nil},
		{"an http public URL in production", map[string]string{"DATABASE_URL": "x", "HOOKLINE_ENV": "production", "HOOKLINE_ENCRYPTION_KEY": dbtest.KeySpec,
			"HOOKLINE_PUBLIC_URL": "http://hooks.example.com"}, "HOOKLINE_PUBLIC_URL", nil},
		{"retention shorter than the retries", map[string]string{"DATABASE_URL": "x", "HOOKLINE_RETENTION": "24h"}, "HOOKLINE_RETENTION", nil},
		{"bad rate", map[string]string{"DATABASE_URL": "x", "HOOKLINE_RATE_LIMIT": "fast"}, "HOOKLINE_RATE_LIMIT", nil},
		{"bad burst", map[string]string{"DATABASE_URL": "x", "HOOKLINE_RATE_BURST": "0"}, "HOOKLINE_RATE_BURST", nil},
		{"bad endpoint limit", map[string]string{"DATABASE_URL": "x", "HOOKLINE_MAX_ENDPOINTS": "0"}, "HOOKLINE_MAX_ENDPOINTS", nil},
		{"endpoint limit", map[string]string{"DATABASE_URL": "x", "HOOKLINE_MAX_ENDPOINTS": "5"}, "", func(c config) bool {
			return c.MaxEndpoints == 5
		}},
		{"bad endpoint concurrency", map[string]string{"DATABASE_URL": "x", "HOOKLINE_ENDPOINT_CONCURRENCY": "many"}, "HOOKLINE_ENDPOINT_CONCURRENCY", nil},
		{"one connection is too few", map[string]string{"DATABASE_URL": "x", "HOOKLINE_DB_MAX_CONNS": "1"}, "HOOKLINE_DB_MAX_CONNS", nil},
		{"pool and concurrency", map[string]string{"DATABASE_URL": "x", "HOOKLINE_DB_MAX_CONNS": "64", "HOOKLINE_ENDPOINT_CONCURRENCY": "5"}, "", func(c config) bool {
			return c.DBMaxConns == 64 && c.EndpointInFlight == 5
		}},
		{"rate limiting off", map[string]string{"DATABASE_URL": "x", "HOOKLINE_RATE_LIMIT": "0"}, "", func(c config) bool {
			return c.RateLimit == 0 && c.RateBurst == 200
		}},
		{"custom schedule", map[string]string{"DATABASE_URL": "x", "HOOKLINE_RETRY_SCHEDULE": "1s, 2s,3m"}, "", func(c config) bool {
			return len(c.RetrySchedule) == 3 && c.RetrySchedule[2] == 3*time.Minute
		}},
		{"port zero in production", map[string]string{"DATABASE_URL": "x", "HOOKLINE_ADDR": ":0", "HOOKLINE_ENV": "production",
			"HOOKLINE_ENCRYPTION_KEY": dbtest.KeySpec}, "", func(c config) bool {
			return c.Addr == ":0" && c.Env == "production"
		}},
		{"production needs an encryption key", map[string]string{"DATABASE_URL": "x", "HOOKLINE_ENV": "production"}, "HOOKLINE_ENCRYPTION_KEY", nil},
		{"a short encryption key", map[string]string{"DATABASE_URL": "x", "HOOKLINE_ENCRYPTION_KEY": "k1:c2hvcnQ="}, "HOOKLINE_ENCRYPTION_KEY", nil},
		{"no traces by default", map[string]string{"DATABASE_URL": "x", "OTEL_SERVICE_NAME": "h"}, "", func(c config) bool {
			return c.Traces.Endpoint == ""
		}},
		{"traces to a collector", map[string]string{"DATABASE_URL": "x", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, "", func(c config) bool {
			return c.Traces.Endpoint == "http://collector:4318/v1/traces" && !c.Traces.JSON &&
				c.Traces.Sampler.Description() == "ParentBased{root:AlwaysOnSampler,remoteParentSampled:AlwaysOnSampler,remoteParentNotSampled:AlwaysOffSampler,localParentSampled:AlwaysOnSampler,localParentNotSampled:AlwaysOffSampler}"
		}},
		{"traces below a base path", map[string]string{"DATABASE_URL": "x", "OTEL_EXPORTER_OTLP_ENDPOINT": "https://otel.example/base/"}, "", func(c config) bool {
			return c.Traces.Endpoint == "https://otel.example/base/v1/traces"
		}},
		{"a traces endpoint as it is", map[string]string{"DATABASE_URL": "x", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://a:4318",
			"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://b:4318/spans"}, "", func(c config) bool {
			return c.Traces.Endpoint == "http://b:4318/spans"
		}},
		{"traces in JSON", map[string]string{"DATABASE_URL": "x", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://a:4318", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
			"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/json", "OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.25"}, "", func(c config) bool {
			return c.Traces.JSON && c.Traces.Sampler.Description() == "TraceIDRatioBased{0.25}"
		}},
		{"traces over gRPC", map[string]string{"DATABASE_URL": "x", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://a:4317", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"},
			"OTEL_EXPORTER_OTLP_PROTOCOL", nil},
		{"a traces endpoint without a scheme", map[string]string{"DATABASE_URL": "x", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "collector:4318"},
			"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", nil},
		{"the SDK disabled", map[string]string{"DATABASE_URL": "x", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://a:4318", "OTEL_SDK_DISABLED": "TRUE"}, "", func(c config) bool {
			return c.Traces.Endpoint == ""
		}},
		{"no trace exporter", map[string]string{"DATABASE_URL": "x", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://a:4318", "OTEL_TRACES_EXPORTER": "none"}, "", func(c config) bool {
			return c.Traces.Endpoint == ""
		}},
		{"another trace exporter", map[string]string{"DATABASE_URL": "x", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://a:4318", "OTEL_TRACES_EXPORTER": "zipkin"},
			"OTEL_TRACES_EXPORTER", nil},
		{"an unknown sampler", map[string]string{"DATABASE_URL": "x", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://a:4318", "OTEL_TRACES_SAMPLER": "sometimes"},
			"OTEL_TRACES_SAMPLER", nil},
		{"a ratio above 1", map[string]string{"DATABASE_URL": "x", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://a:4318", "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
			"OTEL_TRACES_SAMPLER_ARG": "2"}, "OTEL_TRACES_SAMPLER_ARG", nil},
		{"the checkout's cluster", map[string]string{"HOOKLINE_DATA_DIR": withCluster}, "", connectsTo(pg, 54331, "hookline")},
		{"another database of the checkout's cluster", map[string]string{"HOOKLINE_DATA_DIR": withCluster, "PGDATABASE": "hookline_test"}, "",
			connectsTo(pg, 54331, "hookline_test")},
		{"DATABASE_URL before the checkout's cluster", map[string]string{"HOOKLINE_DATA_DIR": withCluster, "DATABASE_URL": "postgres://u@db.example/app"}, "",
			func(c config) bool { return c.DatabaseURL == "postgres://u@db.example/app" && c.LocalCluster == "" }},
		{"no local cluster in production", map[string]string{"HOOKLINE_DATA_DIR": withCluster, "HOOKLINE_ENV": "production",
			"HOOKLINE_ENCRYPTION_KEY": dbtest.KeySpec}, "DATABASE_URL is required in production", nil},
		{"a local cluster without its port", map[string]string{"HOOKLINE_DATA_DIR": badPort}, "no port number", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()

			cfg, err := loadConfig(func(k string) string { return tt.env[k] })
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want one naming %s", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !tt.check(cfg) {
				t.Fatalf("unexpected config %+v", cfg)
			}
		})
	}
}

// TestServe boots the whole program as `hookline serve` does, on :0 over a
// fresh schema, after migrate and merchant create run through the same
// command-line entry point; boot then shuts it down as SIGTERM does.
func TestServe(t *testing.T) {
	t.Parallel()

	ctx := context.Background()
	_, url := dbtest.NewSchema(t)
	env := map[string]string{"DATABASE_URL": url, "HOOKLINE_ADDR": "127.0.0.1:0", "HOOKLINE_ENCRYPTION_KEY": dbtest.KeySpec}
	getenv := func(k string) string { return env[k] }

	for i := range 2 { // migrate is idempotent
		if err := run(ctx, []string{"migrate"}, getenv, io.Discard, io.Discard); err != nil {
			t.Fatalf("migrate #%d: %v", i+1, err)
		}
	}
	var out bytes.Buffer
	if err := run(ctx, []string{"merchant", "create", "--name", "Coinable"}, getenv, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	var merchant struct {
		ID, Name, TestAPIKey, LiveAPIKey, WebhookSecret, TestWebhookSecret string
	}
	dec := json.NewDecoder(&out)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&struct {
		ID                *string `json:"id"`
		Name              *string `json:"name"`
		TestAPIKey        *string `json:"test_api_key"`
		LiveAPIKey        *string `json:"live_api_key"`
		WebhookSecret     *string `json:"webhook_secret"`
		TestWebhookSecret *string `json:"test_webhook_secret"`
	}{&merchant.ID, &merchant.Name, &merchant.TestAPIKey, &merchant.LiveAPIKey, &merchant.WebhookSecret, &merchant.TestWebhookSecret}); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(merchant.ID, "acct_") || !strings.HasPrefix(merchant.TestAPIKey, "sk_test_") ||
		!strings.HasPrefix(merchant.LiveAPIKey, "sk_live_") || !strings.HasPrefix(merchant.WebhookSecret, "whsec_") ||
		!strings.HasPrefix(merchant.TestWebhookSecret, "whsec_") || merchant.TestWebhookSecret == merchant.WebhookSecret {
		t.Fatalf("merchant create printed %+v", merchant)
	}
	if err := run(ctx, []string{"merchant", "create", "--name", ""}, getenv, io.Discard, io.Discard); err == nil ||
		!strings.Contains(err.Error(), "--name") {
		t.Fatalf("an empty --name gave %v, want an error naming --name", err)
	}

	m := boot(t, env)

	// A process serving both roles has the API's pool and the workers', and
	// every connection of each has the planner settings; only the workers'
	// commits asynchronously.
	if m.pool == m.apiPool || m.apiPool.Config().MaxConns != poolSizes[RoleAPI] || m.pool.Config().MaxConns != poolSizes[RoleWorker] {
		t.Errorf("pools of %d and %d connections, want %d for the API and %d for the workers",
			m.apiPool.Config().MaxConns, m.pool.Config().MaxConns, poolSizes[RoleAPI], poolSizes[RoleWorker])
	}
	for pool, commit := range map[*pgxpool.Pool]string{m.apiPool: "on", m.pool: "off"} {
		settings := delivery.PlannerSettings()
		settings["synchronous_commit"] = commit // the workers' own writes commit asynchronously
		for name, want := range settings {
			var got string
			if err := pool.QueryRow(ctx, "select current_setting($1)", name).Scan(&got); err != nil || got != want {
				t.Errorf("%s = %q (%v), want %q", name, got, err, want)
			}
		}
	}

	// A checkout whose own webhook_url refuses connections, expired: the
	// delivery of checkout.expired fails once and waits, scheduled, for its
	// next attempt.
	post := func(path, body string, want int) []byte {
		t.Helper()
		req, _ := http.NewRequest("POST", "http://"+m.Addr()+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+merchant.TestAPIKey)
		req.Header.Set("Content-Type", "application/json")
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		if res.StatusCode != want {
			t.Fatalf("POST %s: %d %s", path, res.StatusCode, b)
		}
		return b
	}
	var checkout struct{ ID string }
	_ = json.Unmarshal(post("/v1/checkouts", `{"amount":"860000000","invoice_currency":"sol","webhook_url":"http://127.0.0.1:1/hook"}`, 201), &checkout)
	post("/v1/checkouts/"+checkout.ID+"/expire", "", 200)

	wants := []string{
		`hookline_api_requests_total{route="POST /v1/checkouts",status="201"} 1`,
		`hookline_queue_jobs{queue="delivery",state="scheduled"} 1`, // the next attempt
		`hookline_delivery_attempts_total{outcome="connection_error"} 1`,
		`hookline_delivery_latency_seconds_count 0`, // registered; nothing delivered yet
		`go_goroutines`,
	}
	// Bounded wait for the first attempt, not a speed assertion. The worker
	// counts an attempt after committing its record (and the next attempt's
	// job), so the wait is for both.
	var scrape []byte
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		res, err := http.Get("http://" + m.Addr() + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		scrape, _ = io.ReadAll(res.Body)
		res.Body.Close()
		if (bytes.Contains(scrape, []byte(wants[1])) && bytes.Contains(scrape, []byte(wants[2]))) || time.Now().After(deadline) {
			break
		}
	}
	for _, want := range wants {
		if !bytes.Contains(scrape, []byte(want)) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

// TestServeMetricsAddr boots hookline with HOOKLINE_METRICS_ADDR: /metrics
// answers there and not on the API's listener, which serves everything else;
// boot's clean-up checks that Run shuts both down and returns nil.
func TestServeMetricsAddr(t *testing.T) {
	t.Parallel()

	_, url := migratedPool(t)
	m := boot(t, map[string]string{"DATABASE_URL": url, "HOOKLINE_METRICS_ADDR": "127.0.0.1:0"})
	if m.MetricsAddr() == m.Addr() {
		t.Fatalf("/metrics is on the API's listener %s", m.Addr())
	}
	get := func(addr, path string) (int, []byte) {
		t.Helper()
		res, err := http.Get("http://" + addr + path)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, b
	}
	if status, _ := get(m.Addr(), "/healthz"); status != http.StatusOK {
		t.Errorf("GET /healthz on the API's listener: %d, want 200", status)
	}
	status, body := get(m.MetricsAddr(), "/metrics")
	for _, want := range []string{"go_goroutines", "hookline_delivery_latency_seconds_count 0",
		`hookline_api_requests_total{route="GET /healthz",status="200"} 1`} {
		if status != http.StatusOK || !bytes.Contains(body, []byte(want)) {
			t.Errorf("GET %s/metrics: %d, lacking %s", m.MetricsAddr(), status, want)
		}
	}
	if status, body := get(m.Addr(), "/metrics"); status != http.StatusNotFound || !bytes.Contains(body, []byte("route_missing")) {
		t.Errorf("GET /metrics on the API's listener: %d %s, want 404 route_missing", status, body)
	}
	if status, _ := get(m.MetricsAddr(), "/v1/account"); status != http.StatusNotFound {
		t.Errorf("GET /v1/account on the metrics listener: %d, want 404", status)
	}
}

// TestServeTrustedProxies boots hookline behind a "load balancer" on
// 127.0.0.1 (HOOKLINE_TRUSTED_PROXIES), which every test request comes from:
// the failure limit counts the client address the balancer appends to
// X-Forwarded-For, so one client's 20 wrong keys throttle that client, even
// when it writes a fake address of its own in front, and not the next.
func TestServeTrustedProxies(t *testing.T) {
	t.Parallel()

	_, url := migratedPool(t)
	m := boot(t, map[string]string{"DATABASE_URL": url, "HOOKLINE_TRUSTED_PROXIES": "127.0.0.0/8"})
	account := func(forwardedFor string) int {
		t.Helper()
		req, _ := http.NewRequest("GET", "http://"+m.Addr()+"/v1/account", nil)
		req.Header.Set("Authorization", "Bearer sk_test_"+strings.Repeat("x", 32))
		req.Header.Set("X-Forwarded-For", forwardedFor)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res.StatusCode
	}
	for i := range 20 {
		if status := account("198.51.100.1"); status != http.StatusUnauthorized {
			t.Fatalf("failure %d: %d, want 401", i+1, status)
		}
	}
	for _, tt := range []struct {
		forwardedFor string
		want         int
	}{
		{"198.51.100.1", http.StatusTooManyRequests},
		{"203.0.113.50, 198.51.100.1", http.StatusTooManyRequests}, // a fake entry in front changes nothing
		{"198.51.100.1, 203.0.113.9", http.StatusUnauthorized},     // another client, whatever it wrote
	} {
		if status := account(tt.forwardedFor); status != tt.want {
			t.Errorf("X-Forwarded-For %q: %d, want %d", tt.forwardedFor, status, tt.want)
		}
	}
}
