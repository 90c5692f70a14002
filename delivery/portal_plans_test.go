package delivery

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hookline/hookline/events"
	"github.com/hookline/hookline/migrations/dbtest"
)

// TestPrunePortalSessionsPlanAtScale checks the generic plan of the
// retention's batch of merchant portal sessions on the seeded history with
// 20,000 sessions, all past the retention: one batch reads the sessions it
// deletes, from the low end of the primary key, and no others.
func TestPrunePortalSessionsPlanAtScale(t *testing.T) {
	pool := dbtest.Seeded(t)
	const sessions = 20_000
	cutoff := events.FirstIDAt(events.PrefixPortalSession, time.Now().Add(-30*24*time.Hour))
	plans := dbtest.CheckPlans(t, pool, PlannerSettings(), func(ctx context.Context, db events.DB) error {
		if err := dbtest.SeedPortalSessions(ctx, db, sessions); err != nil {
			return err
		}
		tag, err := db.Exec(ctx, prunePortalSessions, cutoff, pruneBatch)
		if err == nil && tag.RowsAffected() != pruneBatch {
			t.Errorf("the batch deleted %d sessions, want %d", tag.RowsAffected(), pruneBatch)
		}
		return err
		// The batch's ids from the primary key, then each of its rows to
		// delete it: twice the batch, and one row more where the two are
		// merged (the merge reads one past the batch to see it end).
	}, dbtest.Want{MaxRead: 2*pruneBatch + 1})
	dbtest.LogPlans(t, plans)
	prune := plans[len(plans)-1]
	if !slices.ContainsFunc(prune.IndexConds(), func(c string) bool { return strings.Contains(c, "(id < $1)") }) {
		t.Errorf("the batch is not read by id from the primary key: index conditions %q", prune.IndexConds())
	}
}
