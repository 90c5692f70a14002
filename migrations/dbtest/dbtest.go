// Package dbtest gives each test its own freshly migrated Postgres schema,
// and plan tests a seeded, production-sized history (Seeded) with the check
// of a statement's generic plan (CheckPlans).
//
// hookline's tests run against a real Postgres (TEST_DATABASE_URL, which
// `make test` starts and sets). A schema per test, rather than a rolled-back
// transaction, lets a running River client and the HTTP handlers see each
// other's commits while tests still run in parallel without sharing rows.
package dbtest

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/oklog/ulid/v2"

	"github.com/hookline/hookline/events"
	"github.com/hookline/hookline/migrations"
)

// URL returns TEST_DATABASE_URL, failing the test when it is unset: a database
// test that silently skips would pass without checking anything.
func URL(tb testing.TB) string {
	tb.Helper()
	url := os.Getenv("TEST_DATABASE_URL")
	if url == "" {
		tb.Fatal("TEST_DATABASE_URL is not set: run the tests with `make test`, which starts Postgres")
	}
	return url
}

// NewSchema creates an empty schema that is dropped when the test ends, and
// returns its name with a connection string whose search_path selects it.
func NewSchema(tb testing.TB) (schema, url string) {
	tb.Helper()
	ctx := context.Background()
	base := URL(tb)

	schema = "test_" + strings.ToLower(ulid.Make().String())
	admin, err := pgxpool.New(ctx, base)
	if err != nil {
		tb.Fatalf("connect: %v", err)
	}
	defer admin.Close()
	if _, err := admin.Exec(ctx, "create schema "+schema); err != nil {
		tb.Fatalf("create schema: %v", err)
	}
	tb.Cleanup(func() {
		admin, err := pgxpool.New(context.Background(), base)
		if err != nil {
			tb.Errorf("connect for cleanup: %v", err)
			return
		}
		defer admin.Close()
		if _, err := admin.Exec(context.Background(), "drop schema "+schema+" cascade"); err != nil {
			tb.Errorf("drop schema: %v", err)
		}
	})

	sep := "?"
	if strings.Contains(base, "?") {
		sep = "&"
	}
	return schema, base + sep + "search_path=" + schema
}

// NewPool returns a pool on a fresh, fully migrated schema (River's tables and
// hookline's), closed and dropped when the test ends.
func NewPool(tb testing.TB) *pgxpool.Pool {
	tb.Helper()
	_, url := NewSchema(tb)
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		tb.Fatalf("parse url: %v", err)
	}
	cfg.MaxConns = 8
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		tb.Fatalf("connect: %v", err)
	}
	tb.Cleanup(pool.Close)
	if err := migrations.Up(context.Background(), pool); err != nil {
		tb.Fatalf("%v", fmt.Errorf("migrate test schema: %w", err))
	}
	return pool
}

// KeySpec is the HOOKLINE_ENCRYPTION_KEY of every test: tests need secrets
// sealed as production seals them, not a secret key.
const KeySpec = "test:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="

// Keyring returns the tests' keyring.
func Keyring(tb testing.TB) *events.Keyring {
	tb.Helper()
	k, err := events.ParseKeyring(KeySpec)
	if err != nil {
		tb.Fatal(err)
	}
	return k
}

// Merchant creates a merchant in pool, its secret sealed with Keyring, and
// returns it with its keys.
func Merchant(tb testing.TB, pool *pgxpool.Pool, name string) *events.NewMerchant {
	tb.Helper()
	var m *events.NewMerchant
	err := pgx.BeginFunc(context.Background(), pool, func(tx pgx.Tx) error {
		var err error
		m, err = events.CreateMerchant(context.Background(), tx, Keyring(tb), name)
		return err
	})
	if err != nil {
		tb.Fatalf("create merchant: %v", err)
	}
	return m
}

// AwaitBlocked waits until some session waits for a lock that holder's
// session holds, and fails tb with failure if none does within 30 s: a test
// holds a row or table to catch another statement where it waits for it.
func AwaitBlocked(tb testing.TB, pool *pgxpool.Pool, holder pgx.Tx, failure string) {
	tb.Helper()
	pid := int32(holder.Conn().PgConn().PID())
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		var waiting bool
		if err := pool.QueryRow(context.Background(), `select exists (select 1 from pg_stat_activity
			where $1 = any(pg_blocking_pids(pid)))`, pid).Scan(&waiting); err != nil {
			tb.Fatal(err)
		}
		if waiting {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatal(failure)
		}
	}
}
