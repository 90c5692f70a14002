package delivery

import (
	"context"
	"testing"
	"time"

	"github.com/hookline/hookline/events"
	"github.com/hookline/hookline/migrations/dbtest"
)

// TestStatsPlansAtScale checks the statistics' statements on the seeded
// history (its rollup holds the busy endpoint's last 7 days by hour and last
// day by minute, its deliveries thousands pending and failed): every window
// reads the endpoint by primary key, its rollup rows by (endpoint, span,
// bucket) and its two counts up to CountCap each, and pruning reads the old
// rows of one span from endpoint_stats_prune_idx.
func TestStatsPlansAtScale(t *testing.T) {
	pool := dbtest.Seeded(t)
	big := events.Scope{MerchantID: dbtest.SeedMerchant}
	busy := dbtest.SeedBusyEndpoint
	for _, window := range []string{StatsWindowHour, StatsWindowDay, StatsWindowWeek} {
		t.Run("stats "+window, func(t *testing.T) {
			var s *Stats
			plans := dbtest.CheckPlans(t, pool, PlannerSettings(), func(ctx context.Context, db events.DB) (err error) {
				s, err = EndpointStats(ctx, db, big, busy, window, time.Now())
				return err
			}, dbtest.Want{Conds: []string{`id = \$1\)`}, MaxRead: 2 * CountCap})
			dbtest.LogPlans(t, plans)
			if s.Attempts.Total() == 0 || s.Pending != CountCap || s.Failed != CountCap {
				t.Errorf("the seed's busy endpoint has %+v attempts, %d pending, %d failed: want some, and both counts at the cap",
					s.Attempts, s.Pending, s.Failed)
			}
		})
	}
	for _, r := range statsRetention {
		t.Run("prune endpoint stats", func(t *testing.T) {
			dbtest.LogPlans(t, dbtest.CheckPlans(t, pool, PlannerSettings(), func(ctx context.Context, db events.DB) error {
				_, err := db.Exec(ctx, pruneStats, r.span, time.Now().Add(-r.keep/2), pruneBatch)
				return err
			}, dbtest.Want{Conds: []string{`\(span_seconds = \$1\) AND \(bucket < \$2\)`}, MaxRead: 2 * pruneBatch}))
		})
	}
}
