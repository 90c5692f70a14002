package delivery

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/hookline/hookline/events"
	"github.com/hookline/hookline/migrations/dbtest"
)

// TestReconciliationPlansAtScale checks the generic plans of the list of
// events with a delivery not succeeded (delivery_success=false) on the seeded
// history (1 M deliveries, 1 in 37 failed and 1 in 53 pending, 80 % of them
// the large merchant's), with and without a type, on the first page and from
// a cursor halfway down the large merchant's history in both directions:
// merchant, type and cursor are index conditions of the partial indexes of
// migration 016, and a page reads at most ten rows for each it returns.
func TestReconciliationPlansAtScale(t *testing.T) {
	pool := dbtest.Seeded(t)
	cursor := dbtest.SeedID("evt", dbtest.SeedEvents/2+1) // the large merchant's
	merchant := `\(merchant_id = \$3\) AND \(livemode = \$4\)`
	for _, s := range []struct {
		name  string
		scope events.Scope
	}{{"large merchant", events.Scope{MerchantID: dbtest.SeedMerchant}}, {"small merchant", events.Scope{MerchantID: dbtest.SeedSmallMerchant}}} {
		for _, l := range []struct {
			name  string
			t     events.EventType
			conds []string
		}{
			{"every type", "", []string{merchant, `\(event_id [<>] \$1\)|\(\$1 IS NULL\)|^\(\(merchant_id = \$3\) AND \(livemode = \$4\)\)$`}},
			{"a common type", events.CheckoutPaid, []string{merchant + ` AND \(event_type = \$5\)`}},
			{"a rare type", dbtest.SeedRareType, []string{merchant + ` AND \(event_type = \$5\)`}},
		} {
			for _, p := range dbtest.PageShapes(cursor) {
				t.Run(s.name+" "+l.name+"/"+p.Name, func(t *testing.T) {
					conds := append([]string{}, l.conds...)
					if p.Page.StartingAfter != "" {
						conds = append(conds, `\(event_id < \$1\)`)
					} else if p.Page.EndingBefore != "" {
						conds = append(conds, `\(event_id > \$1\)`)
					}
					plans := dbtest.CheckPlans(t, pool, PlannerSettings(), func(ctx context.Context, db events.DB) error {
						list, err := ListUndelivered(ctx, db, s.scope, l.t, p.Page)
						if err == nil && s.name == "large merchant" && l.t != dbtest.SeedRareType && len(list.Data) != p.Page.Limit {
							t.Errorf("%d events on the page, want %d", len(list.Data), p.Page.Limit)
						}
						return err
					}, dbtest.Want{Conds: conds})
					dbtest.LogPlans(t, plans)
				})
			}
		}
	}
}

// TestReplayPlansAtScale checks a replay's statements on the seeded history,
// with 6,000 events of the large merchant created (and their ids minted) an
// hour ago beside its 160,000 seeded ones, older, half of them of the two
// types replayed: the dry run's count reads the window's events of those
// types through (merchant_id, livemode, type, id), and a batch reads its
// events and the endpoint by key, neither the merchant's older events nor
// those of other types.
func TestReplayPlansAtScale(t *testing.T) {
	pool := dbtest.Seeded(t)
	busy := dbtest.SeedBusyEndpoint
	until := time.Now()
	since := until.Add(-2 * time.Hour)
	const inWindow = 3000 // 1,500 of each of the two types replayed
	minted := events.FirstIDAt(events.PrefixEvent, until.Add(-time.Hour))[:len("evt_")+10]
	window := func(ctx context.Context, db events.DB) error {
		_, err := db.Exec(ctx, `insert into events (id, merchant_id, livemode, type, payload, created_at)
			select $1 || lpad(g::text, 16, '0'), $2, false,
				case when g % 4 = 0 then 'checkout.paid' when g % 4 = 1 then 'checkout.failed' else 'payment_attempt.created' end,
				'{}'::bytea, now() - interval '1 hour'
			from generate_series(1, $3::int) g`, minted, dbtest.SeedMerchant, 2*inWindow)
		return err
	}
	big := events.Scope{MerchantID: dbtest.SeedMerchant}
	types := []string{"checkout.failed", "checkout.paid"}
	for _, s := range []struct {
		name string
		run  func(ctx context.Context, db events.DB) error
		want dbtest.Want
	}{
		{"dry run", func(ctx context.Context, db events.DB) error {
			if err := window(ctx, db); err != nil {
				return err
			}
			r, err := NewDispatcher(nil).Replay(ctx, db.(pgx.Tx), big, busy, ReplayParams{Since: since, Until: until, Types: types, DryRun: true})
			if err == nil && r.Matched != inWindow {
				t.Errorf("the dry run matched %d, want the window's %d", r.Matched, inWindow)
			}
			return err
		}, dbtest.Want{MaxRead: 1.5 * inWindow}},
		{"a batch's endpoint and events", func(ctx context.Context, db events.DB) error {
			if err := window(ctx, db); err != nil {
				return err
			}
			var url string
			var paused bool
			if err := db.QueryRow(ctx, replayDestination, busy).Scan(&url, &paused); err != nil {
				return err
			}
			lo, hi := eventWindowIDs(since, until)
			rows, err := db.Query(ctx, windowEvents, dbtest.SeedMerchant, false, "checkout.paid", "", since, until, lo, hi, replayBatch)
			if err != nil {
				return err
			}
			n := 0
			for rows.Next() {
				n++
			}
			if rows.Err() == nil && n != replayBatch {
				t.Errorf("read %d events, want a whole batch of %d", n, replayBatch)
			}
			return rows.Err()
		}, dbtest.Want{MaxRead: 1.5 * replayBatch}},
	} {
		t.Run(s.name, func(t *testing.T) {
			dbtest.LogPlans(t, dbtest.CheckPlans(t, pool, PlannerSettings(), s.run, s.want))
		})
	}
}
