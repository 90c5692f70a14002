package events_test

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"

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
	}, dbtest.Want{Conds: []string{`\(expiry_at <= now\(\)\)`}})
	dbtest.LogPlans(t, plans)
}

// TestListPlansAtScale checks the generic plans of the lists of events (of
// every type, and of a type of one event in a thousand) and of checkouts on
// the seeded history, for the large merchant and a small one, on the first
// page and halfway down the history in both directions: merchant, type and
// cursor are index conditions, and a page reads at most ten rows for each it
// returns.
func TestListPlansAtScale(t *testing.T) {
	pool := dbtest.Seeded(t)
	for _, s := range []struct {
		name  string
		scope events.Scope
	}{
		{"large merchant", events.Scope{MerchantID: dbtest.SeedMerchant}},
		{"small merchant", events.Scope{MerchantID: dbtest.SeedSmallMerchant}},
	} {
		for _, l := range []struct {
			name   string
			cursor string
			run    func(ctx context.Context, db events.DB, page events.Page) error
			conds  []string
		}{
			{"events", dbtest.SeedID("evt", dbtest.SeedEvents/2), func(ctx context.Context, db events.DB, page events.Page) error {
				_, err := events.ListEvents(ctx, db, s.scope, "", page)
				return err
			}, []string{`\(merchant_id = \$3\)`}},
			{"events of a rare type", dbtest.SeedID("evt", dbtest.SeedEvents/2), func(ctx context.Context, db events.DB, page events.Page) error {
				_, err := events.ListEvents(ctx, db, s.scope, dbtest.SeedRareType, page)
				return err
			}, []string{`\(merchant_id = \$3\) AND \(livemode = \$4\) AND \(type = \$5\)`}},
			{"checkouts", dbtest.SeedID("chk", dbtest.SeedCheckouts/2), func(ctx context.Context, db events.DB, page events.Page) error {
				_, err := events.ListCheckouts(ctx, db, s.scope, page)
				return err
			}, []string{`\(merchant_id = \$3\)`}},
		} {
			for _, p := range dbtest.PageShapes(l.cursor) {
				t.Run(s.name+" "+l.name+"/"+p.Name, func(t *testing.T) {
					plans := dbtest.CheckPlans(t, pool, delivery.PlannerSettings(), func(ctx context.Context, db events.DB) error {
						return l.run(ctx, db, p.Page)
					}, dbtest.Want{Conds: append(append([]string{}, l.conds...), p.Cursor...)})
					dbtest.LogPlans(t, plans)
				})
			}
		}
	}
}

// TestObjectPlansAtScale checks the generic plans of the statements that read
// or change one object (an event, a checkout, a payment attempt, a merchant,
// an API key) on the seeded history, by running each function that runs them:
// each reads its rows by key, a handful, and no history table sequentially.
// The functions that write run in a transaction CheckPlans rolls back.
func TestObjectPlansAtScale(t *testing.T) {
	pool := dbtest.Seeded(t)
	big := events.Scope{MerchantID: dbtest.SeedMerchant}
	keyring := dbtest.Keyring(t)
	svc := events.NewService(events.NewPublisher(nil))
	// The seed's open checkouts are the last 1,000; the large merchant's are
	// those whose number is not a multiple of 5.
	open := func(n int) string { return dbtest.SeedID("chk", dbtest.SeedCheckouts-1000+n) }
	byID := dbtest.Want{Conds: []string{`\(id = \$1\)`}}
	for _, s := range []struct {
		name string
		run  func(ctx context.Context, tx pgx.Tx) error
		want dbtest.Want
	}{
		{"get an event", func(ctx context.Context, tx pgx.Tx) error {
			_, err := events.GetEvent(ctx, tx, big, dbtest.SeedID("evt", 1))
			return err
		}, byID},
		{"get a checkout", func(ctx context.Context, tx pgx.Tx) error {
			_, err := events.GetCheckout(ctx, tx, big, dbtest.SeedID("chk", 1))
			return err
		}, byID},
		{"create a checkout", func(ctx context.Context, tx pgx.Tx) error {
			_, err := svc.CreateCheckout(ctx, tx, big, events.CheckoutParams{Amount: "6700", InvoiceCurrency: "usd"})
			return err
		}, dbtest.Want{}},
		{"expire a checkout", func(ctx context.Context, tx pgx.Tx) error {
			_, err := svc.ExpireCheckout(ctx, tx, big, open(2))
			return err
		}, dbtest.Want{}},
		{"pay a checkout: create a payment attempt, get it, succeed it", func(ctx context.Context, tx pgx.Tx) error {
			a, err := svc.CreateAttempt(ctx, tx, big, open(1), events.AttemptParams{})
			if err != nil {
				return err
			}
			if _, err := events.GetAttempt(ctx, tx, big, a.ID); err != nil {
				return err
			}
			_, err = svc.TransitionAttempt(ctx, tx, big, a.ID, events.AttemptSucceeded, nil)
			return err
		}, dbtest.Want{}},
		{"create a merchant, authenticate with its key, read its account", func(ctx context.Context, tx pgx.Tx) error {
			m, err := events.CreateMerchant(ctx, tx, keyring, "Plan test")
			if err != nil {
				return err
			}
			scope, err := events.Authenticate(ctx, tx, m.TestAPIKey)
			if err != nil {
				return err
			}
			_, err = events.GetMerchant(ctx, tx, keyring, scope)
			return err
		}, dbtest.Want{}},
		{"read the account of a merchant without a test secret yet", func(ctx context.Context, tx pgx.Tx) error {
			_, err := events.GetMerchant(ctx, tx, keyring, big)
			return err
		}, byID},
	} {
		t.Run(s.name, func(t *testing.T) {
			plans := dbtest.CheckPlans(t, pool, delivery.PlannerSettings(), func(ctx context.Context, db events.DB) error {
				return s.run(ctx, db.(pgx.Tx))
			}, s.want)
			dbtest.LogPlans(t, plans)
		})
	}
}

// TestStreamPlansAtScale checks the event stream's statements on the seeded
// history (200,000 events, 80 % of them one merchant's): reading a page from
// deep in the large merchant's log, reading at the head (nothing new), a
// Last-Event-ID's cursor and the heads of a poll each read only the rows they
// return, over events_stream_idx or the primary key.
func TestStreamPlansAtScale(t *testing.T) {
	pool := dbtest.Seeded(t)
	large, small := events.Scope{MerchantID: dbtest.SeedMerchant}, events.Scope{MerchantID: dbtest.SeedSmallMerchant}
	middle := dbtest.SeedID("evt", dbtest.SeedEvents/2+1) // the large merchant's (not a multiple of 5)
	streamConds := []string{`\(merchant_id = \$1\)`, `ROW\(txid, id\) > ROW`, `\(txid < pg_snapshot_xmin\(pg_current_snapshot\(\)\)\)`}
	cases := []struct {
		name string
		run  func(ctx context.Context, db events.DB) error
		want dbtest.Want
	}{
		{"a page from the middle of the large merchant's log", func(ctx context.Context, db events.DB) error {
			cursor, err := events.StreamCursorAt(ctx, db, large, middle)
			if err != nil {
				return err
			}
			evts, err := events.ReadStream(ctx, db, large, cursor, 100)
			if err == nil && len(evts) != 100 {
				t.Errorf("read %d events from the middle, want 100", len(evts))
			}
			return err
		}, dbtest.Want{}},
		{"a page from the middle, checked", func(ctx context.Context, db events.DB) error {
			_, err := events.ReadStream(ctx, db, large, events.StreamCursor{TxID: 1, ID: middle}, 100)
			return err
		}, dbtest.Want{Conds: streamConds}},
		{"at the head: nothing new", func(ctx context.Context, db events.DB) error {
			start, last, err := events.StreamStart(ctx, db, large)
			if err != nil {
				return err
			}
			if last != dbtest.SeedID("evt", dbtest.SeedEvents-1) {
				t.Errorf("the large merchant's stream starts after %s", last)
			}
			evts, err := events.ReadStream(ctx, db, large, start, 100)
			if err == nil && len(evts) != 0 {
				t.Errorf("read %d events at the head, want none", len(evts))
			}
			return err
		}, dbtest.Want{}},
		{"the heads of a poll", func(ctx context.Context, db events.DB) error {
			heads, err := events.StreamHeads(ctx, db, []events.Scope{large, small, {MerchantID: "acct_none"}})
			if err == nil && len(heads) != 2 {
				t.Errorf("%d heads, want the two seeded merchants'", len(heads))
			}
			return err
		}, dbtest.Want{Conds: []string{`\(merchant_id = s\.merchant_id\)`, `\(txid < pg_snapshot_xmin`}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dbtest.LogPlans(t, dbtest.CheckPlans(t, pool, delivery.PlannerSettings(), c.run, c.want))
		})
	}
}
