package delivery

import (
	"context"
	"regexp"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

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
	conn := plannerConn(t, pool)
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
			{"recordAttempts", recordAttempts, 13, []string{"deliveries_pkey"}},
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

// A backlog builds up faster than autovacuum re-analyzes (an outage, a bulk
// load): the statistics still say pending deliveries are rare. The
// statements that take deliveries by id or by destination must then still
// read the primary key or the parked index, not the pending range of
// deliveries_unsettled_idx or the other partial indexes of deliveries not
// succeeded (migration 016), which their status test, written plainly, would match
// (see parkDeliveries). The plain form is checked too, to show the
// trap is real on this Postgres.
func TestStatementsByIDIgnoreTheStatusIndex(t *testing.T) {
	pool := dbtest.NewPool(t)
	ctx := context.Background()
	conn := plannerConn(t, pool)
	m := dbtest.Merchant(t, pool, "Planner")
	if _, err := conn.Exec(ctx, `insert into deliveries (id, merchant_id, livemode, event_id, endpoint_id, url, status, created_at, updated_at)
		select 'dlv_' || g, $1, false, 'evt_' || g, 'we_1', 'https://example.com', 'succeeded', now(), now()
		from generate_series(1, 5000) g`, m.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, "analyze deliveries"); err != nil {
		t.Fatal(err)
	}
	isTrue := regexp.MustCompile(`\((d\.)?status = 'pending'\) is true`)
	// The partial indexes whose predicate a plain status = 'pending' implies:
	// deliveries_unsettled_idx, and the reconciliation list's and the type
	// fill's (migration 016).
	unsettled := regexp.MustCompile(`deliveries_(unsettled|unsucceeded|untyped)_idx`)
	plain := func(sql string) string { return isTrue.ReplaceAllString(sql, "${1}status = 'pending'") }
	explain := func(name, sql string, params int) string {
		t.Helper()
		if _, err := conn.Exec(ctx, "prepare "+name+" as "+sql); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		nulls := strings.TrimSuffix(strings.Repeat("null, ", params), ", ")
		rows, err := conn.Query(ctx, "explain execute "+name+"("+nulls+")")
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		return strings.Join(lines, "\n")
	}
	for _, s := range []struct {
		name, sql string
		params    int
		index     string
	}{
		{"parkDeliveries", parkDeliveries, 2, "deliveries_pkey"},
		{"claimParked", claimParked, 3, "deliveries_parked_idx"},
		{"releaseParked", releaseParked, 2, "deliveries_parked_idx"},
		{"requeueOwnerless", requeueOwnerless, 2, "deliveries_pkey"},
	} {
		if !isTrue.MatchString(s.sql) {
			t.Errorf("%s tests status plainly", s.name)
		}
		plan := explain(s.name, s.sql, s.params)
		if unsettled.MatchString(plan) || !strings.Contains(plan, s.index) {
			t.Errorf("%s: want %s, not an index of unsettled deliveries:\n%s", s.name, s.index, plan)
		}
		if s.name == "parkDeliveries" {
			if plan := explain(s.name+"_plain", plain(s.sql), s.params); !unsettled.MatchString(plan) {
				t.Errorf("the plain form did not take the trap: the test no longer shows it:\n%s", plan)
			}
		}
	}
	// The statements that read one endpoint's failed or pending deliveries
	// take the status as a parameter instead, which no partial index matches:
	// they must read (endpoint_id, status, id), not every merchant's.
	for _, s := range []struct {
		name, sql string
		params    int
	}{
		{"failingEndpoints", failingEndpoints, 5},
		{"countFailed", countFailed, 6},
		{"resetFailed", resetFailed, 8},
	} {
		if plan := explain(s.name, s.sql, s.params); unsettled.MatchString(plan) ||
			!strings.Contains(plan, "deliveries_endpoint_status_idx") {
			t.Errorf("%s: want deliveries_endpoint_status_idx, not an index of unsettled deliveries:\n%s", s.name, plan)
		}
	}
	literal := strings.ReplaceAll(countFailed, "status = $6", "status = 'failed'")
	if plan := explain("countFailed_literal", literal, 5); !unsettled.MatchString(plan) {
		t.Errorf("the literal form did not take the trap: the test no longer shows it:\n%s", plan)
	}
}

// enable_seqscan=off prices a sequential scan past jit_above_cost (up to
// Postgres 17), so a statement with no index to use (River's leader
// re-election) was compiled on every execution: PlannerSettings turns JIT
// off. With JIT on again, the same statement is compiled, to show the trap
// is real on this Postgres (skipped where it is not: no JIT, or Postgres 18's
// disabled nodes).
func TestSeqScanIsNotCompiled(t *testing.T) {
	pool := dbtest.NewPool(t)
	ctx := context.Background()
	conn := plannerConn(t, pool)
	// EXPLAIN prints its JIT section only with the costs.
	const noIndex = `explain (analyze) update river_leader set expires_at = now() where leader_id = 'nobody'`
	explain := func() string {
		t.Helper()
		rows, err := conn.Query(ctx, noIndex)
		if err != nil {
			t.Fatal(err)
		}
		lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Fatal(err)
		}
		return strings.Join(lines, "\n")
	}
	plan := explain()
	if !strings.Contains(plan, "Seq Scan on river_leader") {
		t.Fatalf("the statement uses an index: it no longer shows the trap:\n%s", plan)
	}
	if strings.Contains(plan, "JIT:") {
		t.Errorf("compiled with PlannerSettings:\n%s", plan)
	}
	if !strings.Contains(plan, "cost=10000000000") {
		// Postgres 18 counts disabled nodes apart instead of adding the
		// disable cost: the scan is no dearer than it is.
		t.Skip("this Postgres does not price a disabled scan at the disable cost: no trap to show")
	}
	if _, err := conn.Exec(ctx, "set jit = on"); err != nil {
		t.Fatal(err)
	}
	var available bool // with jit on, whether this Postgres can compile
	if err := conn.QueryRow(ctx, "select pg_jit_available()").Scan(&available); err != nil {
		t.Fatal(err)
	}
	if !available {
		t.Skip("this Postgres has no JIT: no trap to show")
	}
	if plan := explain(); !strings.Contains(plan, "JIT:") {
		t.Errorf("not compiled with JIT on: the test no longer shows the trap:\n%s", plan)
	}
}

// plannerConn is a connection of pool with the PlannerSettings hookline's
// pools give theirs, released when the test ends.
func plannerConn(t *testing.T, pool *pgxpool.Pool) *pgxpool.Conn {
	t.Helper()
	ctx := context.Background()
	conn, err := pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(conn.Release)
	for name, value := range PlannerSettings() {
		if _, err := conn.Exec(ctx, "select set_config($1, $2, false)", name, value); err != nil {
			t.Fatal(err)
		}
	}
	return conn
}
