package portal

import (
	"context"
	"errors"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/hookline/hookline/delivery"
	"github.com/hookline/hookline/events"
	"github.com/hookline/hookline/migrations/dbtest"
)

// TestMain runs the package's tests, then fails the run if a SQL statement of
// the package has no plan test (dbtest.RunWithPlanCoverage).
func TestMain(m *testing.M) {
	os.Exit(dbtest.RunWithPlanCoverage(m, nil))
}

// TestSessionPlansAtScale checks the generic plans of the session's
// statements on the seeded history with 20,000 portal sessions: minting a
// session, exchanging its token (once, then refused), finding the session
// of a cookie and logging it out each read one row, by the token's or the
// cookie's hash or the session's id; once logged out, the cookie finds no
// session.
func TestSessionPlansAtScale(t *testing.T) {
	pool := dbtest.Seeded(t)
	scope := events.Scope{MerchantID: dbtest.SeedMerchant}
	plans := dbtest.CheckPlans(t, pool, delivery.PlannerSettings(), func(ctx context.Context, db events.DB) error {
		if err := dbtest.SeedPortalSessions(ctx, db, 20_000); err != nil {
			return err
		}
		s, err := CreateSession(ctx, db.(pgx.Tx), scope, "https://shop.example.com/")
		if err != nil {
			return err
		}
		cookie, _, err := exchange(ctx, db, s.Token)
		if err != nil {
			return err
		}
		if _, _, err := exchange(ctx, db, s.Token); !errors.Is(err, errLinkUsed) {
			t.Errorf("the token exchanged again: %v, want errLinkUsed", err)
		}
		found, err := lookup(ctx, db, cookie)
		if err != nil {
			return err
		}
		if found.scope != scope {
			t.Errorf("the cookie finds the session of %v, want %v", found.scope, scope)
		}
		if err := logOut(ctx, db, found.id); err != nil {
			return err
		}
		if _, err := lookup(ctx, db, cookie); !errors.Is(err, errSessionEnded) {
			t.Errorf("the cookie of a session logged out finds %v, want errSessionEnded", err)
		}
		return nil
	}, dbtest.Want{})
	dbtest.LogPlans(t, plans)
	want := map[string]string{exchangeToken: "(token_hash = $1)", tokenState: "(token_hash = $1)", findSession: "(session_hash = $1)",
		endSession: "(id = $1)"}
	for _, p := range plans {
		cond, ok := want[p.SQL]
		if ok && !slices.ContainsFunc(p.IndexConds(), func(c string) bool { return strings.Contains(c, cond) }) {
			t.Errorf("%s is not read by %s: index conditions %q", p.SQL, cond, p.IndexConds())
		}
		delete(want, p.SQL)
	}
	for sql := range want {
		t.Errorf("no plan of %s", sql)
	}
}
