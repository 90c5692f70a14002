package dbtest

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/hookline/hookline/migrations"
	"github.com/hookline/hookline/migrations/seed"
)

// The seeded history's sizes: production's shape at a modest scale. One large
// merchant owns 80 % of it and SeedMerchants-1 others share the rest, so that
// a plan that reads another merchant's rows, or a whole history, shows.
const (
	SeedMerchants = 1001
	// SeedEndpoints: five per merchant, and one delivery of each event to
	// each endpoint of its merchant.
	SeedEndpoints  = SeedMerchants * 5
	SeedEvents     = 200_000
	SeedDeliveries = SeedEvents * 5
	SeedCheckouts  = 100_000
)

// The seeded objects tests name.
const (
	// SeedMerchant is the large merchant.
	SeedMerchant = "acct_seed0000"
	// SeedSmallMerchant is one of the others.
	SeedSmallMerchant = "acct_seed0007"
	// SeedBusyEndpoint is one of the large merchant's endpoints, which has a
	// fifth of its deliveries (160,000).
	SeedBusyEndpoint = "we_seed0000_1"
	// SeedRareType is an event type of one event in a thousand.
	SeedRareType = "webhook_endpoint.disabled"
)

// seedHistory is the plan tests' history (see package seed for its shape).
var seedHistory = seed.History{Deliveries: SeedDeliveries, Merchant: SeedMerchant}

// SeedID returns the id of the n-th (from 1) seeded object with a prefix:
// ids sort in creation order, as ULIDs do.
func SeedID(prefix string, n int) string {
	return seedHistory.ID(prefix, n)
}

// seedVersion changes whenever the seed's statements do (package seed), so
// that an older seed is not reused.
const seedVersion = 7

// Seeded returns a pool on a schema that holds a production-sized history
// (the Seed sizes above), for tests that check how statements scale. The
// schema is built once per database, for a given seed and set of
// migrations, and kept: test binaries that run at the same time wait for one
// another's seed (an advisory lock) and reuse it, as do later runs. It is
// read-only: tests must not write to it.
func Seeded(tb testing.TB) *pgxpool.Pool {
	tb.Helper()
	ctx := context.Background()
	schema := fmt.Sprintf("seed_v%d_%s", seedVersion, migrations.Digest()[:12])
	admin, err := pgx.Connect(ctx, URL(tb))
	if err != nil {
		tb.Fatalf("connect: %v", err)
	}
	// Closing the session releases the lock.
	defer admin.Close(ctx)
	if _, err := admin.Exec(ctx, `select pg_advisory_lock(hashtext('hookline seed'))`); err != nil {
		tb.Fatalf("lock seed: %v", err)
	}

	var done bool
	if err := admin.QueryRow(ctx, `select to_regclass($1) is not null`, schema+".seed_done").Scan(&done); err != nil {
		tb.Fatalf("look for seed: %v", err)
	}
	url := URL(tb)
	sep := "?"
	if strings.Contains(url, "?") {
		sep = "&"
	}
	url += sep + "search_path=" + schema
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		tb.Fatalf("parse url: %v", err)
	}
	cfg.MaxConns = 4
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		tb.Fatalf("connect: %v", err)
	}
	tb.Cleanup(pool.Close)
	if done {
		return pool
	}

	// Another seed (other migrations, a half-built one of a process that
	// died) is of no use now: only this lock's holder builds.
	rows, err := admin.Query(ctx, `select nspname from pg_namespace where nspname like 'seed\_v%'`)
	if err != nil {
		tb.Fatalf("list seeds: %v", err)
	}
	stale, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		tb.Fatalf("list seeds: %v", err)
	}
	for _, s := range stale {
		if _, err := admin.Exec(ctx, "drop schema "+pgx.Identifier{s}.Sanitize()+" cascade"); err != nil {
			tb.Fatalf("drop stale seed: %v", err)
		}
	}
	start := time.Now()
	if _, err := admin.Exec(ctx, "create schema "+schema); err != nil {
		tb.Fatalf("create seed schema: %v", err)
	}
	if err := migrations.Up(ctx, pool); err != nil {
		tb.Fatalf("migrate seed schema: %v", err)
	}
	err = pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "set local synchronous_commit = off"); err != nil {
			return err
		}
		return seedHistory.Write(ctx, tx)
	})
	if err != nil {
		tb.Fatalf("seed: %v", err)
	}
	// Statistics and the visibility map, as autovacuum leaves a table that
	// has been this size for a while.
	if _, err := pool.Exec(ctx, "vacuum analyze merchants, webhook_endpoints, events, deliveries, delivery_attempts, checkouts, endpoint_stats"); err != nil {
		tb.Fatalf("vacuum seed: %v", err)
	}
	if _, err := pool.Exec(ctx, "create table seed_done (version int not null)"); err != nil {
		tb.Fatalf("mark seed: %v", err)
	}
	tb.Logf("seeded %s in %v: %d events, %d deliveries, %d checkouts, %d endpoints, %d merchants", schema,
		time.Since(start).Round(time.Millisecond), SeedEvents, SeedDeliveries, SeedCheckouts, SeedEndpoints, SeedMerchants)
	return pool
}
