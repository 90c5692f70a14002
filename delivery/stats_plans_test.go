package delivery

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/hookline/hookline/events"
	"github.com/hookline/hookline/migrations/dbtest"
)

// TestStatsPlansAtScale checks the statistics' statements on the seeded
// history (its rollup holds the busy endpoint's last 7 days by hour and last
// day by minute, its deliveries thousands pending and failed): every window
// reads the endpoint by primary key, its rollup rows by (endpoint, span,
// bucket) and its two counts up to CountCap each; pruning reads the old
// rows of one span from endpoint_stats_prune_idx.
func TestStatsPlansAtScale(t *testing.T) {
	pool := dbtest.Seeded(t)
	big := events.Scope{MerchantID: dbtest.SeedMerchant}
	busy := dbtest.SeedBusyEndpoint
	// The seed's newest minute: the seed is kept and reused, hours after it
	// was written.
	var now time.Time
	if err := pool.QueryRow(context.Background(), `select max(bucket) from endpoint_stats where endpoint_id = $1 and span_seconds = 60`,
		busy).Scan(&now); err != nil {
		t.Fatal(err)
	}
	for _, window := range []string{StatsWindowHour, StatsWindowDay, StatsWindowWeek} {
		t.Run("stats "+window, func(t *testing.T) {
			var s *Stats
			plans := dbtest.CheckPlans(t, pool, PlannerSettings(), func(ctx context.Context, db events.DB) (err error) {
				s, err = EndpointStats(ctx, db, big, busy, window, now)
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

// TestFoldPlans checks a fold's statements where it matters to them: behind
// a backlog of tallies (five batches), over the rollup rows of 2,000
// endpoints (a week of hours and two hours of minutes each, about 580,000
// rows), half of the batch's attempts to endpoints that have rows and half
// to new ones. The tallies come from the low end of their primary key (read
// three times a batch: the pick, the delete's lookups, the deleted rows),
// the rows through endpoint_stats' primary key.
func TestFoldPlans(t *testing.T) {
	pool := dbtest.NewPool(t)
	ctx := context.Background()
	for _, q := range []struct {
		sql  string
		args []any
	}{
		{`insert into endpoint_stats (endpoint_id, span_seconds, bucket, shard, succeeded, http_error, timeout, connection_error, latency)
			select 'we_' || e, s.span, date_bin(make_interval(secs => s.span), now(), timestamptz '2000-01-01') - k * make_interval(secs => s.span),
				0, 1, 0, 0, 0, array_fill(0, array[68])
			from generate_series(1, 2000) e, (values (60, 120), (3600, 168)) s (span, n), generate_series(0, s.n - 1) k`, nil},
		{`insert into attempt_tallies (endpoint_ids, started_at, outcomes, latency_buckets)
			select array['we_' || case when g % 2 = 0 then g % 2000 + 1 else 3000 + g end], array[now()], array['succeeded'], array[20]
			from generate_series(1, 5 * $1::int) g`, []any{foldBatch}},
		{`analyze endpoint_stats, attempt_tallies`, nil},
	} {
		if _, err := pool.Exec(ctx, q.sql, q.args...); err != nil {
			t.Fatal(err)
		}
	}
	dbtest.LogPlans(t, dbtest.CheckPlans(t, pool, PlannerSettings(), func(ctx context.Context, db events.DB) error {
		_, err := db.Exec(ctx, takeTallies, foldBatch)
		return err
	}, dbtest.Want{Conds: []string{`^\(id = ANY`}, MaxRead: 3 * foldBatch}))
	// The whole fold, its upsert too: its only scan is of its arguments
	// (the conflicts it meets are probes of the arbiter index, which a plan
	// does not show), so the check is that it scans no table.
	var tallies, attempts int
	dbtest.LogPlans(t, dbtest.CheckPlans(t, pool, PlannerSettings(), func(ctx context.Context, db events.DB) (err error) {
		var alone bool
		if err := db.QueryRow(ctx, foldLock).Scan(&alone); err != nil {
			return err
		}
		if !alone {
			return fmt.Errorf("the fold's lock is held")
		}
		tallies, attempts, _, err = foldTallies(ctx, db)
		return err
	}, dbtest.Want{MaxRead: 3 * foldBatch}))
	if tallies != foldBatch || attempts != foldBatch {
		t.Errorf("a fold took %d tallies of %d attempts, want %d of one each", tallies, attempts, foldBatch)
	}
}
