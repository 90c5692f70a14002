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
			for _, p := range dbtest.CheckPlans(t, pool, delivery.PlannerSettings(), c.run, c.want) {
				t.Logf("%.3f ms, %.0f rows returned, %.0f read: %.60s", p.ExecutionTime, p.Returned, p.Read, p.SQL)
			}
		})
	}
}
