package delivery

import (
	"context"

	"github.com/jackc/pgx/v5"

	"github.com/hookline/hookline/events"
)

// ListUndelivered returns a page of the scope's events that have at least
// one delivery not succeeded (pending or failed), newest first, optionally
// of one type: Stripe's reconciliation list (delivery_success=false). One
// statement serves both: it reads deliveries_unsucceeded_idx (merchant_id,
// livemode, event_type, event_id, of the deliveries not succeeded:
// migration 016) from the cursor, one range per type (the type asked, or
// every type of the catalog), at most a page of distinct events from each,
// and merges them (events.ListKeyedPage): a page costs at most (types) ×
// (limit+1) events' entries (and an event's other unsucceeded deliveries,
// which the distinct skips), however deep in a large merchant's history. A
// delivery whose event_type is still null (written before migration 016, or
// by an older process during a rolling upgrade) is in no range until the
// periodic fill types it (FillEventTypesArgs).
func ListUndelivered(ctx context.Context, db events.DB, scope events.Scope, t events.EventType, page events.Page) (*events.List[*events.Event], error) {
	const (
		keys = `select ` + events.EventColumns + ` from (select event_id from unnest($5::text[]) as t (each_type)
			cross join lateral (select distinct event_id from deliveries
			where merchant_id = $3 and livemode = $4 and event_type = t.each_type and status <> 'succeeded'`
		join = `) u join events on events.id = u.event_id`
	)
	types := []string{string(t)}
	if t == "" {
		types = events.TypeNames()
	}
	return events.ListKeyedPage(ctx, db, page, "event_id", keys, join,
		func(rows pgx.Rows) (*events.Event, error) { return events.ScanEvent(rows) }, scope.MerchantID, scope.Livemode, types)
}
