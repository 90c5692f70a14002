package delivery

import (
	"context"

	"github.com/jackc/pgx/v5"

	"github.com/hookline/hookline/events"
)

// ListUndelivered returns a page of the scope's events that have at least
// one delivery not succeeded (pending or failed), newest first, optionally
// of one type: Stripe's reconciliation list (delivery_success=false). Each
// filter is its own statement, and each reads a partial index of the
// deliveries not succeeded (migration 016) from the cursor, the type an
// index condition however rare: a page costs its rows (and an event's other
// unsucceeded deliveries, which the distinct skips), however deep in a large
// merchant's history.
func ListUndelivered(ctx context.Context, db events.DB, scope events.Scope, t events.EventType, page events.Page) (*events.List[*events.Event], error) {
	const (
		all    = `select distinct event_id from deliveries where merchant_id = $3 and livemode = $4 and status <> 'succeeded'`
		ofType = all + ` and event_type = $5`
		join   = `) u join events on events.id = u.event_id`
	)
	query, args := all, []any{scope.MerchantID, scope.Livemode}
	if t != "" {
		query, args = ofType, append(args, string(t))
	}
	return events.ListKeyedPage(ctx, db, page, "event_id", `select `+events.EventColumns+` from (`+query, join,
		func(rows pgx.Rows) (*events.Event, error) { return events.ScanEvent(rows) }, args...)
}
