package stream

import (
	"context"
	"testing"

	"github.com/hookline/hookline/delivery"
	"github.com/hookline/hookline/events"
	"github.com/hookline/hookline/migrations/dbtest"
)

// TestLeasePlansAtScale checks the generic plans of the lease statements
// among 20,000 leases of 10,000 streaming merchants, one in ten expired since
// the statistics were taken: a
// stream's opening reads its scope's rows, its closing its own lease, and a
// renewal its process's leases and the expired ones, never every stream.
func TestLeasePlansAtScale(t *testing.T) {
	pool := dbtest.NewPool(t)
	ctx := context.Background()
	scope := events.Scope{MerchantID: "mer_lease_7"}
	// Statistics taken while every lease was live, as renewals keep them,
	// then one in ten expired (a process died) before the next analyze: the
	// plans must not follow the statistics to the expiry index, where every
	// scope's expired leases are.
	if _, err := pool.Exec(ctx, `insert into event_streams (id, merchant_id, livemode, expires_at)
		select 'str_' || g, 'mer_lease_' || (g % 10000), false, now() + interval '30 seconds'
		from generate_series(1, 20000) g`); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, "analyze event_streams"); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `update event_streams set expires_at = now() - interval '1 minute'
		where substr(id, 5)::int % 10 = 0`); err != nil {
		t.Fatal(err)
	}
	for _, s := range []struct {
		name string
		run  func(ctx context.Context, db events.DB) error
		want dbtest.Want
	}{
		{"open", func(ctx context.Context, db events.DB) error {
			return takeLease(ctx, db, scope, "str_new")
		}, dbtest.Want{}}, // the lock, the insert, and two statements that may read ten rows: the scope has two
		{"close", func(ctx context.Context, db events.DB) error {
			_, err := db.Exec(ctx, releaseLease, "str_7")
			return err
		}, dbtest.Want{Conds: []string{`\(id = \$1\)`}}},
		{"renew", func(ctx context.Context, db events.DB) error {
			return renew(ctx, db, []string{"str_1", "str_2", "str_3"})
		}, dbtest.Want{Conds: []string{`\(id = ANY \(\$1\)\)`, `\(expires_at < now\(\)\)`}, MaxRead: 3 * sweepBatch}},
	} {
		t.Run(s.name, func(t *testing.T) {
			dbtest.LogPlans(t, dbtest.CheckPlans(t, pool, delivery.PlannerSettings(), s.run, s.want))
		})
	}
}
