package migrations_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/hookline/hookline/migrations"
	"github.com/hookline/hookline/migrations/dbtest"
)

// TestUpIsIdempotent runs the migrations twice on one schema: `hookline migrate`
// runs on every `make run`, so a second run must change nothing and fail nothing.
func TestUpIsIdempotent(t *testing.T) {
	t.Parallel()

	ctx := context.Background()
	pool := dbtest.NewPool(t) // first run

	if err := migrations.Up(ctx, pool); err != nil {
		t.Fatalf("second Up: %v", err)
	}
	var tables int
	err := pool.QueryRow(ctx, `select count(*) from information_schema.tables
		where table_schema = current_schema() and table_name in ('river_job', 'merchants', 'events', 'checkouts')`).Scan(&tables)
	if err != nil {
		t.Fatal(err)
	}
	if tables != 4 {
		t.Fatalf("want river_job, merchants, events and checkouts in the schema, found %d of them", tables)
	}
	var version int
	if err := pool.QueryRow(ctx, `select version from hookline_schema_version`).Scan(&version); err != nil {
		t.Fatal(err)
	}
	if version < 1 {
		t.Fatalf("hookline_schema_version = %d, want >= 1", version)
	}
}

// TestPreviousSecretsMigration upgrades endpoints rotated before migration
// 011: a previous secret still in its grace period keeps signing (it moves to
// previous_secrets with its grace's end), one whose grace has ended is not
// carried over.
func TestPreviousSecretsMigration(t *testing.T) {
	t.Parallel()

	ctx := context.Background()
	pool := migratedTo(t, 10)
	merchant := dbtest.Merchant(t, pool, "Rotating merchant")
	graceEnd := time.Now().Add(time.Hour).UTC().Truncate(time.Microsecond)
	if _, err := pool.Exec(ctx, `insert into webhook_endpoints (id, merchant_id, livemode, type, url, status, secret,
		previous_secret, previous_secret_expires_at, created_at) values
		('we_in_grace', $1, false, 'webhook', 'https://m.example/a', 'enabled', 'sealed-new', 'sealed-old', $2, now()),
		('we_grace_over', $1, false, 'webhook', 'https://m.example/b', 'enabled', 'sealed-new', 'sealed-old', now() - interval '1 second', now()),
		('we_never_rotated', $1, false, 'webhook', 'https://m.example/c', 'enabled', 'sealed-new', null, null, now())`,
		merchant.ID, graceEnd); err != nil {
		t.Fatal(err)
	}
	if err := migrations.Up(ctx, pool); err != nil {
		t.Fatal(err)
	}
	for id, want := range map[string]string{
		"we_in_grace":      "[sealed-old] [" + graceEnd.Format(time.RFC3339Nano) + "]",
		"we_grace_over":    "[] []",
		"we_never_rotated": "[] []",
	} {
		var secrets []string
		var expire []time.Time
		if err := pool.QueryRow(ctx, `select previous_secrets, previous_secrets_expire_at from webhook_endpoints where id = $1`,
			id).Scan(&secrets, &expire); err != nil {
			t.Fatal(err)
		}
		var ends []string
		for _, e := range expire {
			ends = append(ends, e.UTC().Format(time.RFC3339Nano))
		}
		if got := fmt.Sprintf("%v [%s]", secrets, strings.Join(ends, " ")); got != want {
			t.Errorf("%s: previous secrets %s, want %s", id, got, want)
		}
	}
}

// TestReconciliationMigration upgrades deliveries and events written before
// migration 016: the migration rewrites no row (no backfill under the
// table's lock), so every delivery keeps a null event_type, which the
// periodic fill (delivery.FillEventTypesArgs) writes later, and every event
// a null addressed_to; the partial index the fill reads holds exactly the
// deliveries not succeeded.
func TestReconciliationMigration(t *testing.T) {
	t.Parallel()

	ctx := context.Background()
	pool := migratedTo(t, 15)
	if _, err := pool.Exec(ctx, `insert into merchants (id, name, webhook_secret) values ('acct_1', 'One', 'whsec_x')`); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `insert into events (id, merchant_id, livemode, type, payload, created_at) values
		('evt_1', 'acct_1', false, 'checkout.paid', '{}', now()), ('evt_2', 'acct_1', false, 'checkout.failed', '{}', now())`); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `insert into deliveries (id, merchant_id, livemode, event_id, url, status, created_at, updated_at) values
		('dlv_1', 'acct_1', false, 'evt_1', 'https://example.com', 'pending', now(), now()),
		('dlv_2', 'acct_1', false, 'evt_1', 'https://example.com', 'succeeded', now(), now()),
		('dlv_3', 'acct_1', false, 'evt_2', 'https://example.com', 'failed', now(), now())`); err != nil {
		t.Fatal(err)
	}
	if err := migrations.Up(ctx, pool); err != nil {
		t.Fatal(err)
	}
	var typed, addressed int
	if err := pool.QueryRow(ctx, `select (select count(event_type) from deliveries), (select count(addressed_to) from events)`).
		Scan(&typed, &addressed); err != nil {
		t.Fatal(err)
	}
	if typed != 0 || addressed != 0 {
		t.Fatalf("%d deliveries with an event_type and %d events with addressed_to after the migration, want none", typed, addressed)
	}
	// The fill's index, read alone: the two deliveries not succeeded.
	var untyped string
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `set local enable_seqscan = off; set local enable_bitmapscan = off`); err != nil {
			return err
		}
		return tx.QueryRow(ctx, `select string_agg(id, ' ' order by id) from deliveries
			where event_type is null and status <> 'succeeded'`).Scan(&untyped)
	})
	if err != nil {
		t.Fatal(err)
	}
	if untyped != "dlv_1 dlv_3" {
		t.Fatalf("untyped deliveries not succeeded: %s, want dlv_1 dlv_3", untyped)
	}
}

// migratedTo is a pool on a fresh schema migrated up to version, for a test
// of what a later migration does to the rows it finds.
func migratedTo(t *testing.T, version int32) *pgxpool.Pool {
	t.Helper()
	ctx := context.Background()
	_, url := dbtest.NewSchema(t)
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	if err := migrations.UpTo(ctx, pool, version); err != nil {
		t.Fatal(err)
	}
	return pool
}
