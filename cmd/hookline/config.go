package main

import (
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/hookline/hookline/delivery"
)

// config is everything hookline reads from its environment, read once at start.
type config struct {
	Addr            string
	DatabaseURL     string
	DeliveryTimeout time.Duration
	Env             string
	LogLevel        slog.Level
	OperatorToken   string
	RateBurst       int
	RateLimit       float64
	RetrySchedule   delivery.Schedule
}

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
		Addr:            or(getenv("HOOKLINE_ADDR"), "127.0.0.1:8080"),
		DatabaseURL:     getenv("DATABASE_URL"),
		DeliveryTimeout: 15 * time.Second,
		Env:             or(getenv("HOOKLINE_ENV"), "development"),
		OperatorToken:   getenv("HOOKLINE_OPERATOR_TOKEN"),
		RateBurst:       200,
		RateLimit:       100,
		RetrySchedule:   defaultRetrySchedule,
	}
	if cfg.DatabaseURL == "" {
		return cfg, fmt.Errorf("DATABASE_URL is required (a Postgres connection string; `make run` starts a local one)")
	}
	if _, _, err := net.SplitHostPort(cfg.Addr); err != nil {
		return cfg, fmt.Errorf("HOOKLINE_ADDR %q is not host:port: %w", cfg.Addr, err)
	}
	if cfg.Env != "development" && cfg.Env != "production" {
		return cfg, fmt.Errorf("HOOKLINE_ENV must be development or production, not %q", cfg.Env)
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
	if v := getenv("HOOKLINE_RATE_BURST"); v != "" {
		b, err := strconv.Atoi(v)
		if err != nil || b < 1 || b > 1e6 {
			return cfg, fmt.Errorf("HOOKLINE_RATE_BURST must be a whole number of requests from 1 to 1000000, not %q", v)
		}
		cfg.RateBurst = b
	}
	if v := getenv("HOOKLINE_LOG_LEVEL"); v != "" {
		if err := cfg.LogLevel.UnmarshalText([]byte(v)); err != nil {
			return cfg, fmt.Errorf("HOOKLINE_LOG_LEVEL must be debug, info, warn or error, not %q", v)
		}
	}
	return cfg, nil
}

func or(v, fallback string) string {
	if v == "" {
		return fallback
	}
	return v
}
