package events_test

import (
	"context"
	"testing"

	"github.com/hookline/hookline/delivery"
	"github.com/hookline/hookline/events"
	"github.com/hookline/hookline/migrations/dbtest"
)

// TestExpirySweepPlanAtScale checks the expiry sweep's generic plan on the
// seeded history (100,000 checkouts, 100 of them open and due): it reads the
// partial index of open checkouts, due first, not the checkouts table. The
// statement writes; CheckPlans rolls it back.
func TestExpirySweepPlanAtScale(t *testing.T) {
	pool := dbtest.Seeded(t)
	plans := dbtest.CheckPlans(t, pool, delivery.PlannerSettings(), func(ctx context.Context, db events.DB) error {
		rows, err := db.Query(ctx, events.ExpireDue, 50)
		if err != nil {
			return err
		}
		n := 0
		for rows.Next() {
			n++
		}
		if rows.Err() == nil && n != 50 {
			t.Errorf("expired %d checkouts, want 50 of the seed's 100 due", n)
		}
		return rows.Err()
	}, dbtest.Want{Conds: []string{`\(expiry_at <= now\(\)\)`}, Writes: true})
	for _, p := range plans {
		t.Logf("%.3f ms, %.0f rows returned, %.0f read", p.ExecutionTime, p.Returned, p.Read)
	}
}
