package migrations_test

import (
	"context"
	"testing"

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
