package delivery

import (
	"context"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/hookline/hookline/migrations/dbtest"
)

// hookline's connections plan each statement once (plan_cache_mode is
// force_generic_plan) and keep the plan until autovacuum next analyzes the
// table, a minute or more while the table grows from nothing. A plan made on a
// fresh, empty schema must still look deliveries and events up by primary key:
// a sequential scan there costs a job more with every row the tables gain,
// which is what a new deployment, or make bench, meets. The connection has
// the PlannerSettings that hookline's pools give theirs.
func TestHotStatementsUseIndexesOnAFreshSchema(t *testing.T) {
	pool := dbtest.NewPool(t)
	ctx := context.Background()
	conn, err := pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	for name, value := range PlannerSettings() {
		if _, err := conn.Exec(ctx, "select set_config($1, $2, false)", name, value); err != nil {
			t.Fatal(err)
		}
	}
	// Never analyzed (a new deployment), then analyzed while still small, as
	// autovacuum finds a young table: the planner thinks either tiny.
	m := dbtest.Merchant(t, pool, "Planner")
	for _, stats := range []string{"never analyzed", "analyzed at 500 rows"} {
		if stats != "never analyzed" {
			if _, err := conn.Exec(ctx, `insert into events (id, merchant_id, livemode, type, payload, created_at)
				select 'evt_' || g, $1, false, 'checkout.created', '{}', now() from generate_series(1, 500) g`, m.ID); err != nil {
				t.Fatal(err)
			}
			if _, err := conn.Exec(ctx, `insert into deliveries (id, merchant_id, livemode, event_id, url, status, created_at, updated_at)
				select 'dlv_' || g, $1, false, 'evt_' || g, 'https://example.com', 'pending', now(), now()
				from generate_series(1, 500) g`, m.ID); err != nil {
				t.Fatal(err)
			}
			if _, err := conn.Exec(ctx, "analyze; deallocate loadTargets; deallocate recordAttempts"); err != nil {
				t.Fatal(err)
			}
		}
		for _, s := range []struct {
			name, sql string
			params    int
			indexes   []string
		}{
			{"loadTargets", loadTargets, 2, []string{"deliveries_pkey", "events_pkey"}},
			{"recordAttempts", recordAttempts, 11, []string{"deliveries_pkey"}},
		} {
			if _, err := conn.Exec(ctx, "prepare "+s.name+" as "+s.sql); err != nil {
				t.Fatalf("%s: %v", s.name, err)
			}
			nulls := strings.TrimSuffix(strings.Repeat("null, ", s.params), ", ")
			rows, err := conn.Query(ctx, "explain execute "+s.name+"("+nulls+")")
			if err != nil {
				t.Fatalf("%s: %v", s.name, err)
			}
			lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
			if err != nil {
				t.Fatalf("%s: %v", s.name, err)
			}
			plan := strings.Join(lines, "\n")
			for _, table := range []string{"deliveries", "events"} {
				if strings.Contains(plan, "Seq Scan on "+table) {
					t.Errorf("%s, %s: scans %s sequentially:\n%s", stats, s.name, table, plan)
				}
			}
			for _, index := range s.indexes {
				if !strings.Contains(plan, index) {
					t.Errorf("%s, %s: does not use %s:\n%s", stats, s.name, index, plan)
				}
			}
		}
	}
}
