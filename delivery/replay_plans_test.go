package delivery

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/hookline/hookline/events"
	"github.com/hookline/hookline/migrations/dbtest"
)

// TestReconciliationPlansAtScale checks the generic plans of the list of
// events with a delivery not succeeded (delivery_success=false) on the seeded
// history (1 M deliveries, 1 in 37 failed and 1 in 53 pending, 80 % of them
// the large merchant's), with a type (one range of deliveries_unsucceeded_idx)
// and without (one range per catalog type, merged), on the first page and
// from a cursor halfway down the large merchant's history in both
// directions: merchant, type and cursor are index conditions of
// deliveries_unsucceeded_idx, and a page reads at most a page of events from
// each range.
func TestReconciliationPlansAtScale(t *testing.T) {
	pool := dbtest.Seeded(t)
	cursor := dbtest.SeedID("evt", dbtest.SeedEvents/2+1) // the large merchant's
	ranges := `\(merchant_id = \$3\) AND \(livemode = \$4\) AND \(event_type = t\.each_type\)`
	for _, s := range []struct {
		name  string
		scope events.Scope
	}{{"large merchant", events.Scope{MerchantID: dbtest.SeedMerchant}}, {"small merchant", events.Scope{MerchantID: dbtest.SeedSmallMerchant}}} {
		for _, l := range []struct {
			name string
			t    events.EventType
			// types is how many ranges the list merges.
			types int
		}{
			{"every type", "", len(events.Catalog)},
			{"a common type", events.CheckoutPaid, 1},
			{"a rare type", dbtest.SeedRareType, 1},
		} {
			for _, p := range dbtest.PageShapes(cursor) {
				t.Run(s.name+" "+l.name+"/"+p.Name, func(t *testing.T) {
					conds := []string{ranges}
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
					}, dbtest.Want{Conds: conds,
						// A page of keys from each range (an event's other
						// unsucceeded deliveries are rare), and the page's events.
						MaxRead: float64(l.types*(p.Page.Limit+1))*1.5 + float64(p.Page.Limit+1)})
					wantIndexes(t, plans, "deliveries", "deliveries_unsucceeded_idx")
					dbtest.LogPlans(t, plans)
				})
			}
		}
	}
}

// wantIndexes fails t unless every scan of table in plans reads index.
func wantIndexes(t *testing.T, plans []dbtest.Plan, table, index string) {
	t.Helper()
	var walk func(n *dbtest.PlanNode)
	walk = func(n *dbtest.PlanNode) {
		if strings.HasSuffix(n.NodeType, "Scan") && n.RelationName == table && n.IndexName != index {
			t.Errorf("a scan of %s reads %q, want %s", table, n.IndexName, index)
		}
		for i := range n.Plans {
			walk(&n.Plans[i])
		}
	}
	for _, p := range plans {
		walk(&p.Root)
	}
}

// hasIndexCond is whether some index condition of the plan below n matches
// re.
func hasIndexCond(n dbtest.PlanNode, re *regexp.Regexp) bool {
	if re.MatchString(n.IndexCond) {
		return true
	}
	for _, c := range n.Plans {
		if hasIndexCond(c, re) {
			return true
		}
	}
	return false
}

// replayWindow is the window the replay plan tests replay: 6,000 events of
// a merchant created (and their ids minted) an hour ago, a quarter
// checkout.paid, a quarter checkout.failed, half payment_attempt.created,
// with ids windowID(1) to windowID(6000), the paid ones those of multiples of
// 4.
type replayWindow struct {
	merchant string
	minted   string
}

// replayWindowSize is how many events of each of the two types replayed
// (checkout.paid and checkout.failed) a replayWindow holds.
const replayWindowSize = 1500

func newReplayWindow(merchant string, until time.Time) replayWindow {
	return replayWindow{merchant: merchant, minted: events.FirstIDAt(events.PrefixEvent, until.Add(-time.Hour))[:len("evt_")+10]}
}

// id is the window's n-th event's id.
func (w replayWindow) id(n int) string { return w.minted + fmt.Sprintf("%016d", n) }

// insert writes the window's events.
func (w replayWindow) insert(ctx context.Context, db events.DB) error {
	_, err := db.Exec(ctx, `insert into events (id, merchant_id, livemode, type, payload, created_at)
		select $1 || lpad(g::text, 16, '0'), $2, false,
			case when g % 4 = 0 then 'checkout.paid' when g % 4 = 1 then 'checkout.failed' else 'payment_attempt.created' end,
			'{}'::bytea, now() - interval '1 hour'
		from generate_series(1, $3::int) g`, w.minted, w.merchant, 4*replayWindowSize)
	return err
}

// checkReplayPlans checks a replay's statements for w's merchant, with the
// window's events written by setup in each check's transaction (or already
// there when setup is nil): the count of two types reads the window's events
// of those types and of no other, the count of a type of no event in the
// window (but many before it) reads nothing, and a batch reads its events,
// from the window's start or from a cursor deep in it, all through
// events_merchant_type_idx, whatever the statistics of merchants.
func checkReplayPlans(t *testing.T, pool *pgxpool.Pool, w replayWindow, setup func(ctx context.Context, db events.DB) error) {
	until := time.Now()
	since := until.Add(-2 * time.Hour)
	lo, hi := windowIDs(events.PrefixEvent, since, until)
	types := []string{"checkout.failed", "checkout.paid"}
	with := func(run func(ctx context.Context, db events.DB) error) func(ctx context.Context, db events.DB) error {
		return func(ctx context.Context, db events.DB) error {
			if setup != nil {
				if err := setup(ctx, db); err != nil {
					return err
				}
			}
			return run(ctx, db)
		}
	}
	count := func(types []string, want int) func(ctx context.Context, db events.DB) error {
		return with(func(ctx context.Context, db events.DB) error {
			var n int
			err := db.QueryRow(ctx, countWindow, w.merchant, false, types, since, until, lo, hi, "we_none").Scan(&n)
			if err == nil && n != want {
				t.Errorf("counted %d events of %v, want %d", n, types, want)
			}
			return err
		})
	}
	batch := func(after string, want int) func(ctx context.Context, db events.DB) error {
		return with(func(ctx context.Context, db events.DB) error {
			rows, err := db.Query(ctx, windowEvents, w.merchant, false, "checkout.paid", after, since, until, hi, "we_none", replayBatch)
			if err != nil {
				return err
			}
			n := 0
			for rows.Next() {
				n++
			}
			if rows.Err() == nil && n != want {
				t.Errorf("read %d events, want %d", n, want)
			}
			return rows.Err()
		})
	}
	// The scan starts and stops at the row comparisons, the index
	// condition's only conditions beside merchant and mode: CheckPlans counts
	// the rows an index scan returns, not the index entries it walks past
	// before its start, which a scan started at the type's first event
	// would (a type equality beside the row comparisons did so).
	const (
		countRange = `^\(\(merchant_id = \$1\) AND \(livemode = \$2\) AND \(ROW\(type, id\) >= ROW\(t\.type, \$6\)\) AND \(ROW\(type, id\) < ROW\(t\.type, \$7\)\)\)$`
		batchRange = `^\(\(merchant_id = \$1\) AND \(livemode = \$2\) AND \(ROW\(type, id\) > ROW\(\$3, \$4\)\) AND \(ROW\(type, id\) < ROW\(\$3, \$7\)\)\)$`
	)
	for _, s := range []struct {
		name string
		run  func(ctx context.Context, db events.DB) error
		want dbtest.Want
	}{
		{"count of two types", count(types, 2*replayWindowSize), dbtest.Want{MaxRead: 1.5 * 2 * replayWindowSize}},
		{"count of a type of no event in the window", count([]string{"checkout.expired"}, 0), dbtest.Want{}},
		{"first batch", batch(lo, replayBatch), dbtest.Want{MaxRead: 1.5 * replayBatch}},
		// After the 250th paid event of the window: 1,250 remain.
		{"batch after a deep cursor", batch(w.id(1000), replayBatch), dbtest.Want{MaxRead: 1.5 * replayBatch}},
		{"last batch", batch(w.id(4*(replayWindowSize-10)), 10), dbtest.Want{}},
	} {
		t.Run(s.name, func(t *testing.T) {
			plans := dbtest.CheckPlans(t, pool, PlannerSettings(), s.run, s.want)
			wantIndexes(t, plans, "events", "events_merchant_type_idx")
			for _, p := range plans {
				want := map[string]string{countWindow: countRange, windowEvents: batchRange}[p.SQL]
				if want != "" && !hasIndexCond(p.Root, regexp.MustCompile(want)) {
					t.Errorf("no index condition of %s matches %s", p.SQL, want)
				}
			}
			dbtest.LogPlans(t, plans)
		})
	}
}

// TestReplayPlansAtScale checks a replay's statements on the seeded
// history, with a window of 6,000 events of the large merchant beside its
// 160,000 seeded ones, older (checkReplayPlans), and a whole dry run and a
// batch's endpoint.
func TestReplayPlansAtScale(t *testing.T) {
	pool := dbtest.Seeded(t)
	w := newReplayWindow(dbtest.SeedMerchant, time.Now())
	checkReplayPlans(t, pool, w, w.insert)
	until := time.Now()
	since := until.Add(-2 * time.Hour)
	for _, s := range []struct {
		name string
		run  func(ctx context.Context, db events.DB) error
		want dbtest.Want
	}{
		{"dry run", func(ctx context.Context, db events.DB) error {
			if err := w.insert(ctx, db); err != nil {
				return err
			}
			plan, err := NewDispatcher(nil, nil).PlanReplay(ctx, db.(pgx.Tx), events.Scope{MerchantID: dbtest.SeedMerchant}, dbtest.SeedBusyEndpoint,
				ReplayParams{Since: since, Until: until, Types: []string{"checkout.failed", "checkout.paid"}, DryRun: true})
			if err == nil && plan.args.Matched != 2*replayWindowSize {
				t.Errorf("the dry run matched %d, want the window's %d", plan.args.Matched, 2*replayWindowSize)
			}
			return err
		}, dbtest.Want{MaxRead: 1.5 * 2 * replayWindowSize}},
		{"a batch's endpoint", func(ctx context.Context, db events.DB) error {
			var url, status string
			var deleted, paused bool
			return db.QueryRow(ctx, replayDestination, dbtest.SeedBusyEndpoint).Scan(&url, &status, &deleted, &paused)
		}, dbtest.Want{}},
	} {
		t.Run(s.name, func(t *testing.T) {
			dbtest.LogPlans(t, dbtest.CheckPlans(t, pool, PlannerSettings(), s.run, s.want))
		})
	}
}

// TestReplayPlansWithOneMerchant checks a replay's statements where one
// merchant owns nearly every event (a fresh schema: 200,000 events, all but
// 194 the one merchant's, written in id order as the log grows, analyzed).
// With plain equalities and id bounds, such statistics made the generic plans
// read events_pkey through the window's id range, every type of it, for each
// type counted or read (this test fails so on that form).
func TestReplayPlansWithOneMerchant(t *testing.T) {
	pool := dbtest.NewPool(t)
	ctx := context.Background()
	big, small := dbtest.Merchant(t, pool, "Dominant"), dbtest.Merchant(t, pool, "Other")
	w := newReplayWindow(big.ID, time.Now())
	older := events.FirstIDAt(events.PrefixEvent, time.Now().Add(-48*time.Hour))[:len("evt_")+10]
	if _, err := pool.Exec(ctx, `insert into events (id, merchant_id, livemode, type, payload, created_at)
		select $1 || lpad(g::text, 16, '0'), case when g % 1000 = 0 then $3 else $2 end, false,
			(array['checkout.created', 'checkout.paid', 'checkout.failed', 'checkout.expired', 'payment_attempt.created',
				'payment_attempt.processing', 'payment_attempt.succeeded', 'payment_attempt.failed'])[1 + g % 8],
			'{}'::bytea, now() - interval '48 hours' + g * interval '1 ms'
		from generate_series(1, 194000) g`, older, big.ID, small.ID); err != nil {
		t.Fatal(err)
	}
	if err := w.insert(ctx, pool); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `vacuum analyze events`); err != nil {
		t.Fatal(err)
	}
	checkReplayPlans(t, pool, w, nil)
}

// TestFillEventTypesPlan checks the fill of event types on the seeded
// history, where 1,000 failed deliveries have lost their type: a batch reads them through deliveries_untyped_idx, and
// their events by primary key, none of the 45,000 other unsucceeded
// deliveries nor the typed ones.
func TestFillEventTypesPlan(t *testing.T) {
	pool := dbtest.Seeded(t)
	const untyped = 1000
	plans := dbtest.CheckPlans(t, pool, PlannerSettings(), func(ctx context.Context, db events.DB) error {
		if _, err := db.Exec(ctx, `update deliveries set event_type = null where id in (select id from deliveries
			where status = 'failed' order by id limit $1)`, untyped); err != nil {
			return err
		}
		var seen, typed int
		var last string
		err := db.QueryRow(ctx, fillEventTypes, "", fillBatch).Scan(&seen, &last, &typed)
		if err == nil && (seen != untyped || typed != untyped) {
			t.Errorf("the fill saw %d deliveries and typed %d, want %d and %d", seen, typed, untyped, untyped)
		}
		return err
	}, dbtest.Want{MaxRead: 6 * untyped})
	var fill []dbtest.Plan
	for _, p := range plans {
		if p.SQL == fillEventTypes {
			fill = append(fill, p)
		}
	}
	if len(fill) != 1 {
		t.Fatalf("%d plans of the fill, want 1", len(fill))
	}
	var walk func(n *dbtest.PlanNode) bool
	walk = func(n *dbtest.PlanNode) bool {
		if n.IndexName == "deliveries_untyped_idx" {
			return true
		}
		for i := range n.Plans {
			if walk(&n.Plans[i]) {
				return true
			}
		}
		return false
	}
	if !walk(&fill[0].Root) {
		t.Error("the fill does not read deliveries_untyped_idx")
	}
	dbtest.LogPlans(t, fill)
}
