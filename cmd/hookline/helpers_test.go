package main

import (
	"context"
	"io"
	"log/slog"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/hookline/hookline/migrations"
	"github.com/hookline/hookline/migrations/dbtest"
)

// migratedPool returns a pool on a fresh, migrated schema, and the schema's
// connection string for DATABASE_URL.
func migratedPool(t *testing.T) (*pgxpool.Pool, string) {
	t.Helper()
	_, url := dbtest.NewSchema(t)
	pool, err := pgxpool.New(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	if err := migrations.Up(context.Background(), pool); err != nil {
		t.Fatal(err)
	}
	return pool, url
}

// boot runs hookline as `hookline serve` does, on 127.0.0.1:0 with env as its
// environment. When the test ends it is shut down as SIGTERM does, and must
// return nil (exit 0) in time.
func boot(t *testing.T, env map[string]string) *Main {
	t.Helper()
	return bootLogging(t, env, slog.New(slog.NewTextHandler(io.Discard, nil)))
}

// bootLogging is boot with hookline's log going to logger.
func bootLogging(t *testing.T, env map[string]string, logger *slog.Logger) *Main {
	t.Helper()
	m, stop := launch(t, env, logger)
	t.Cleanup(stop)
	return m
}

// launch runs hookline as boot does, and returns with it the function that
// shuts it down as SIGTERM does (a test stops it mid-way; the caller makes
// sure it is called), failing the test unless Run returns nil (exit 0) in
// time.
func launch(t *testing.T, env map[string]string, logger *slog.Logger) (*Main, func()) {
	t.Helper()
	return launchAs(t, RoleAll, env, logger)
}

// launchAs is launch with a role other than all (RoleAPI: a process that
// delivers nothing).
func launchAs(t *testing.T, role string, env map[string]string, logger *slog.Logger) (*Main, func()) {
	t.Helper()
	env["HOOKLINE_ADDR"] = "127.0.0.1:0"
	env["HOOKLINE_ENCRYPTION_KEY"] = dbtest.KeySpec
	cfg, err := loadConfig(func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	m, err := New(context.Background(), cfg, role, dbtest.Keyring(t), logger)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	var once sync.Once
	return m, func() {
		once.Do(func() {
			defer m.Close()
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Run returned %v after shutdown, want nil (exit 0)", err)
				}
			case <-time.After(shutdownTimeout + traceFlushTimeout + 5*time.Second):
				t.Error("Run did not return after its context ended")
			}
		})
	}
}

// TestMain runs hookline's main instead of the tests when
// HOOKLINE_TEST_RUN_MAIN is 1: a test starts the test binary itself as a
// hookline process (`hookline listen`), with the program's arguments.
func TestMain(m *testing.M) {
	if os.Getenv("HOOKLINE_TEST_RUN_MAIN") == "1" {
		main()
		os.Exit(0)
	}
	code := m.Run()
	for _, f := range afterTests {
		f()
	}
	os.Exit(code)
}

// afterTests run once the tests have, failed or not.
var afterTests []func()
