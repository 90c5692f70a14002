package delivery

import (
	"context"
	"strings"
	"testing"

	"github.com/hookline/hookline/migrations/dbtest"
)

// hookline's connections plan each statement once (plan_cache_mode is
// force_generic_plan) and keep the plan until autovacuum first analyzes the
// table. A plan made on a fresh, empty schema must still look deliveries and
// events up by primary key: a sequential scan there costs a job more with every
// row the tables gain, which is what a new deployment, or make bench, meets.
func TestHotStatementsUseIndexesOnAFreshSchema(t *testing.T) {
	pool := dbtest.NewPool(t)
	ctx := context.Background()
	conn, err := pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, "set plan_cache_mode = force_generic_plan"); err != nil {
		t.Fatal(err)
	}
	for _, s := range []struct {
		name, sql string
		params    int
		indexes   []string
	}{
		{"loadTargets", loadTargets, 3, []string{"deliveries_pkey", "events_pkey"}},
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
		var plan strings.Builder
		for rows.Next() {
			var line string
			if err := rows.Scan(&line); err != nil {
				t.Fatal(err)
			}
			plan.WriteString(line + "\n")
		}
		if err := rows.Err(); err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		for _, table := range []string{"deliveries", "events"} {
			if strings.Contains(plan.String(), "Seq Scan on "+table) {
				t.Errorf("%s scans %s sequentially:\n%s", s.name, table, plan.String())
			}
		}
		for _, index := range s.indexes {
			if !strings.Contains(plan.String(), index) {
				t.Errorf("%s does not use %s:\n%s", s.name, index, plan.String())
			}
		}
	}
}
