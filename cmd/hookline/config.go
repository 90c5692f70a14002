package main

import (
	"cmp"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/hookline/hookline/events"

	"github.com/hookline/hookline/delivery"
)

// config is everything hookline reads from its environment, read once at start.
type config struct {
	Addr             string
	AllowPrivate     []netip.Prefix
	DataDir          string
	DatabaseURL      string
	DBMaxConns       int32
	DeliveryTimeout  time.Duration
	EncryptionKey    string
	EndpointInFlight int
	Env              string
	LogLevel         slog.Level
	MaxEndpoints     int
	MetricsAddr      string
	OperatorToken    string
	// PortalFrameAncestors are the origins that may frame the merchant
	// portal; PublicURL is where browsers reach hookline.
	PortalFrameAncestors []string
	PublicURL            string
	RateBurst            int
	Retention            time.Duration
	RateLimit            float64
	RetrySchedule        delivery.Schedule
	Traces               tracesConfig
	TrustedProxies       []netip.Prefix

	// LocalCluster is the directory of the development cluster DatabaseURL
	// names when DATABASE_URL is unset (localCluster), else "".
	LocalCluster string
}

// minOperatorTokenLength is the shortest operator token accepted: one that
// cannot be guessed even at the failure limit's 20 tries a minute per address.
const minOperatorTokenLength = 32

// defaultRetrySchedule is the delays before each retry (contract §4): twelve
// retries over about three days, like Stripe.
var defaultRetrySchedule = delivery.Schedule{
	5 * time.Second, 30 * time.Second, 2 * time.Minute, 10 * time.Minute, 30 * time.Minute, time.Hour,
	2 * time.Hour, 4 * time.Hour, 8 * time.Hour, 12 * time.Hour, 24 * time.Hour, 24 * time.Hour,
}

// loadConfig reads and validates the environment; every error names the
// variable at fault.
func loadConfig(getenv func(string) string) (config, error) {
	cfg := config{
		Addr:             cmp.Or(getenv("HOOKLINE_ADDR"), "127.0.0.1:8080"),
		DataDir:          cmp.Or(getenv("HOOKLINE_DATA_DIR"), ".hookline"),
		DatabaseURL:      getenv("DATABASE_URL"),
		DeliveryTimeout:  15 * time.Second,
		EndpointInFlight: 50,
		EncryptionKey:    getenv("HOOKLINE_ENCRYPTION_KEY"),
		Env:              cmp.Or(getenv("HOOKLINE_ENV"), "development"),
		MaxEndpoints:     50,
		OperatorToken:    getenv("HOOKLINE_OPERATOR_TOKEN"),
		RateBurst:        200,
		Retention:        30 * 24 * time.Hour,
		RateLimit:        100,
		RetrySchedule:    defaultRetrySchedule,
	}
	if cfg.OperatorToken != "" && len(cfg.OperatorToken) < minOperatorTokenLength {
		return cfg, fmt.Errorf("HOOKLINE_OPERATOR_TOKEN must be at least %d characters (it guards the operator API and dashboard; generate one with `openssl rand -base64 32`), or unset to turn them off", minOperatorTokenLength)
	}
	if _, _, err := net.SplitHostPort(cfg.Addr); err != nil {
		return cfg, fmt.Errorf("HOOKLINE_ADDR %q is not host:port: %w", cfg.Addr, err)
	}
	if cfg.MetricsAddr = getenv("HOOKLINE_METRICS_ADDR"); cfg.MetricsAddr != "" {
		_, port, err := net.SplitHostPort(cfg.MetricsAddr)
		if err != nil {
			return cfg, fmt.Errorf("HOOKLINE_METRICS_ADDR %q is not host:port: %w", cfg.MetricsAddr, err)
		}
		if cfg.MetricsAddr == cfg.Addr && port != "0" {
			return cfg, fmt.Errorf("HOOKLINE_METRICS_ADDR %q must differ from HOOKLINE_ADDR: it takes /metrics off the API's listener", cfg.MetricsAddr)
		}
	}
	if cfg.Env != "development" && cfg.Env != "production" {
		return cfg, fmt.Errorf("HOOKLINE_ENV must be development or production, not %q", cfg.Env)
	}
	if cfg.DatabaseURL == "" {
		var err error
		if cfg.DatabaseURL, cfg.LocalCluster, err = localCluster(cfg.DataDir, cfg.Env, getenv); err != nil {
			return cfg, err
		}
	}
	if cfg.EncryptionKey == "" && cfg.Env == "production" {
		return cfg, fmt.Errorf("HOOKLINE_ENCRYPTION_KEY is required in production: generate one with `hookline keys generate`")
	}
	if cfg.EncryptionKey != "" {
		if _, err := events.ParseKeyring(cfg.EncryptionKey); err != nil {
			return cfg, fmt.Errorf("HOOKLINE_ENCRYPTION_KEY: %w", err)
		}
	}
	if v := getenv("HOOKLINE_DELIVERY_TIMEOUT"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 || d > 5*time.Minute {
			return cfg, fmt.Errorf("HOOKLINE_DELIVERY_TIMEOUT must be a Go duration from 1ns to 5m, such as 15s, not %q", v)
		}
		cfg.DeliveryTimeout = d
	}
	if v := getenv("HOOKLINE_RETRY_SCHEDULE"); v != "" {
		cfg.RetrySchedule = nil
		for _, part := range strings.Split(v, ",") {
			d, err := time.ParseDuration(strings.TrimSpace(part))
			if err != nil || d < 0 || d > 7*24*time.Hour {
				return cfg, fmt.Errorf("HOOKLINE_RETRY_SCHEDULE must be comma-separated Go durations from 0s to 168h, such as 5s,30s,2m; %q is not", part)
			}
			cfg.RetrySchedule = append(cfg.RetrySchedule, d)
		}
	}
	if v := getenv("HOOKLINE_RATE_LIMIT"); v != "" {
		r, err := strconv.ParseFloat(v, 64)
		if err != nil || r < 0 || r > 1e6 {
			return cfg, fmt.Errorf("HOOKLINE_RATE_LIMIT must be requests per second per API key, from 0 (off) to 1000000, not %q", v)
		}
		cfg.RateLimit = r
	}
	if err := intVar(getenv, "HOOKLINE_RATE_BURST", "requests", 1, 1_000_000, &cfg.RateBurst); err != nil {
		return cfg, err
	}
	if err := prefixesVar(getenv, "HOOKLINE_ALLOW_PRIVATE_CIDRS", "10.20.0.0/16", &cfg.AllowPrivate); err != nil {
		return cfg, err
	}
	if err := prefixesVar(getenv, "HOOKLINE_TRUSTED_PROXIES", "10.0.0.0/8,fd00::/8", &cfg.TrustedProxies); err != nil {
		return cfg, err
	}
	if err := frameAncestorsVar(getenv, cfg.Env, &cfg.PortalFrameAncestors); err != nil {
		return cfg, err
	}
	if err := publicURLVar(getenv, cfg.Env, &cfg.PublicURL); err != nil {
		return cfg, err
	}
	if v := getenv("HOOKLINE_RETENTION"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < 96*time.Hour {
			return cfg, fmt.Errorf("HOOKLINE_RETENTION must be a Go duration of at least 96h (longer than the retry schedule), such as 720h, not %q", v)
		}
		cfg.Retention = d
	}
	if err := intVar(getenv, "HOOKLINE_MAX_ENDPOINTS", "endpoints", 1, 10_000, &cfg.MaxEndpoints); err != nil {
		return cfg, err
	}
	if err := intVar(getenv, "HOOKLINE_ENDPOINT_CONCURRENCY", "attempts", 1, 1000, &cfg.EndpointInFlight); err != nil {
		return cfg, err
	}
	var maxConns int
	if err := intVar(getenv, "HOOKLINE_DB_MAX_CONNS", "connections", 2, 1000, &maxConns); err != nil {
		return cfg, err
	}
	cfg.DBMaxConns = int32(maxConns)
	if v := getenv("HOOKLINE_LOG_LEVEL"); v != "" {
		if err := cfg.LogLevel.UnmarshalText([]byte(v)); err != nil {
			return cfg, fmt.Errorf("HOOKLINE_LOG_LEVEL must be debug, info, warn or error, not %q", v)
		}
	}
	var err error
	if cfg.Traces, err = loadTracesConfig(getenv); err != nil {
		return cfg, err
	}
	return cfg, nil
}

// localCluster is the connection string of the Postgres cluster `make run`
// starts for this checkout, and its directory: what the commands use when
// DATABASE_URL is unset, so that an operator's `hookline deliveries list` works
// beside `make run` with nothing to export. Only in development, and only
// where HOOKLINE_DATA_DIR/pg holds such a cluster: .ci/postgres keeps its Unix
// socket there, and its port in the file port. The URL is the one
// .ci/postgres prints, for the database hookline (PGDATABASE names another, as
// for psql).
func localCluster(dataDir, env string, getenv func(string) string) (dsn, dir string, err error) {
	if env == "production" {
		return "", "", errors.New("DATABASE_URL is required in production (a Postgres connection string)")
	}
	if dir, err = filepath.Abs(filepath.Join(dataDir, "pg")); err != nil {
		return "", "", fmt.Errorf("HOOKLINE_DATA_DIR %s: %w", dataDir, err)
	}
	b, err := os.ReadFile(filepath.Join(dir, "port"))
	if errors.Is(err, fs.ErrNotExist) {
		return "", "", fmt.Errorf("DATABASE_URL is required (a Postgres connection string); in development, without it, hookline uses the cluster `make run` starts in %s, and there is none: run hookline from the checkout where `make run` runs (or set HOOKLINE_DATA_DIR to its .hookline)", dir)
	}
	if err != nil {
		return "", "", fmt.Errorf("read the local cluster's port: %w", err)
	}
	port, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || port < 1 || port > 65535 {
		return "", "", fmt.Errorf("%s holds no port number: set DATABASE_URL", filepath.Join(dir, "port"))
	}
	u := url.URL{Scheme: "postgres", User: url.User("hookline"), Path: "/" + cmp.Or(getenv("PGDATABASE"), "hookline"),
		RawQuery: url.Values{"host": {dir}, "port": {strconv.Itoa(port)}, "sslmode": {"disable"}}.Encode()}
	return u.String(), dir, nil
}

// intVar reads a whole-number variable into dst when it is set, refusing
// values outside [lo, hi] with a message naming the variable and the unit.
func intVar(getenv func(string) string, name, unit string, lo, hi int, dst *int) error {
	v := getenv(name)
	if v == "" {
		return nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < lo || n > hi {
		return fmt.Errorf("%s must be a whole number of %s from %d to %d, not %q", name, unit, lo, hi, v)
	}
	*dst = n
	return nil
}

// prefixesVar reads a variable of comma-separated CIDR ranges into dst when
// it is set. A bare address is refused rather than read as a single-address
// range, so that a range written without its length is not silently narrowed
// to one address; IPv4-mapped ranges are refused because addresses are
// compared as IPv4, which they never contain.
func prefixesVar(getenv func(string) string, name, example string, dst *[]netip.Prefix) error {
	v := getenv(name)
	if v == "" {
		return nil
	}
	for _, part := range strings.Split(v, ",") {
		p, err := netip.ParsePrefix(strings.TrimSpace(part))
		if err != nil || p.Addr().Is4In6() {
			return fmt.Errorf("%s must be comma-separated CIDR ranges, IPv4 ones in IPv4 form, such as %s; %q is not", name, example, part)
		}
		*dst = append(*dst, p.Masked())
	}
	return nil
}

// frameAncestor is one source of HOOKLINE_PORTAL_FRAME_ANCESTORS: an
// origin (a host may start with *. for its subdomains), or 'self'. Nothing
// else passes, so that no value can add a directive to the portal's CSP.
var frameAncestor = regexp.MustCompile(`^(https?://(\*\.)?[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*(:[0-9]{1,5})?|'self')$`)

// frameAncestorsVar reads HOOKLINE_PORTAL_FRAME_ANCESTORS, the space-separated
// origins that may show the merchant portal in a frame (its CSP's
// frame-ancestors); unset, none may. In production they must be https: a
// page served over plain http could be altered on the way to frame the
// portal.
func frameAncestorsVar(getenv func(string) string, env string, dst *[]string) error {
	for _, origin := range strings.Fields(getenv("HOOKLINE_PORTAL_FRAME_ANCESTORS")) {
		if !frameAncestor.MatchString(origin) {
			return fmt.Errorf("HOOKLINE_PORTAL_FRAME_ANCESTORS must be space-separated origins such as https://dashboard.example.com https://*.example.com (scheme, host and port only), or 'self'; %q is not", origin)
		}
		if env == "production" && strings.HasPrefix(origin, "http://") {
			return fmt.Errorf("HOOKLINE_PORTAL_FRAME_ANCESTORS must be https origins in production, not %q", origin)
		}
		*dst = append(*dst, origin)
	}
	return nil
}

// publicURLVar reads HOOKLINE_PUBLIC_URL, where browsers reach hookline
// (the base of portal links): an absolute URL with no path, query or
// fragment; https in production.
func publicURLVar(getenv func(string) string, env string, dst *string) error {
	v := getenv("HOOKLINE_PUBLIC_URL")
	if v == "" {
		return nil
	}
	u, err := url.Parse(v)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || strings.Trim(u.Path, "/") != "" ||
		u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return fmt.Errorf("HOOKLINE_PUBLIC_URL must be the origin browsers reach hookline at, such as https://hooks.example.com, not %q", v)
	}
	if env == "production" && u.Scheme != "https" {
		return fmt.Errorf("HOOKLINE_PUBLIC_URL must be https in production, not %q", v)
	}
	*dst = strings.TrimSuffix(v, "/")
	return nil
}

// keyring returns the keyring of HOOKLINE_ENCRYPTION_KEY. In development,
// without it, a key is generated once into the data directory (mode 0600) and
// read from there afterwards, so that `make run` needs no set-up.
func (c config) keyring() (*events.Keyring, error) {
	if c.EncryptionKey != "" {
		return events.ParseKeyring(c.EncryptionKey)
	}
	path := filepath.Join(c.DataDir, "encryption-key")
	spec, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		spec = []byte(events.NewKeySpec("dev1"))
		if err := os.MkdirAll(c.DataDir, 0o700); err != nil {
			return nil, fmt.Errorf("create HOOKLINE_DATA_DIR %s: %w", c.DataDir, err)
		}
		if err := os.WriteFile(path, spec, 0o600); err != nil {
			return nil, fmt.Errorf("write development encryption key: %w", err)
		}
	} else if err != nil {
		return nil, fmt.Errorf("read development encryption key: %w", err)
	}
	k, err := events.ParseKeyring(strings.TrimSpace(string(spec)))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return k, nil
}
