package delivery

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/hookline/hookline/events"
)

// FailingEndpoint is an endpoint in trouble as operators see it, across
// merchants: disabled by hookline, or failing right now.
type FailingEndpoint struct {
	ID             string
	MerchantID     string
	Livemode       bool
	URL            string
	Status         string
	DisabledReason *string
	FailingSince   *time.Time
	FailedCount    int
	PendingCount   int
	LastError      *string
	LastStatusCode *int
	LastAttemptAt  *time.Time
}

// CountCap bounds the counts of one endpoint's pending or failed deliveries
// that its statistics and a recovery's dry run show beside it: each count
// reads at most this many index entries. A count at the cap means "at least
// that many"; a recovery's dry run gives the exact figure.
const CountCap = 1000

// failingCountCap bounds the failed and pending counts of the
// failing-endpoints view, which shows up to a hundred endpoints at once: at
// CountCap the view read 200,000 index entries (28 ms at p50 on make bench's
// history), at this cap 20,000. Enough to tell a trickle from a flood; the
// endpoint's own statistics and a dry run count further.
const failingCountCap = 100

// lastErrorWindow is how many of an endpoint's newest pending and newest
// failed deliveries the view reads for the endpoint's last error.
const lastErrorWindow = 10

// FailingEndpoints lists the endpoints that are failing or that hookline
// disabled, most recently failing first, with their last attempt's error.
// It reads only the rows it shows: the endpoints through
// webhook_endpoints_trouble_idx, their counts up to failingCountCap, and their last
// error among their lastErrorWindow newest pending and failed deliveries
// (deliveries_endpoint_status_idx), rather than every delivery the
// endpoint ever had. The statuses are parameters so that no plan can take
// them to deliveries_unsettled_idx and read every merchant's failed or
// pending deliveries, as a literal would whenever the statistics predate a
// backlog (see PendingDeliveries).
func FailingEndpoints(ctx context.Context, db events.DB, limit int) ([]FailingEndpoint, error) {
	rows, err := db.Query(ctx, failingEndpoints, limit, failingCountCap, lastErrorWindow, StatusFailed, StatusPending)
	if err != nil {
		return nil, fmt.Errorf("list failing endpoints: %w", err)
	}
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (FailingEndpoint, error) {
		var f FailingEndpoint
		err := row.Scan(&f.ID, &f.MerchantID, &f.Livemode, &f.URL, &f.Status, &f.DisabledReason, &f.FailingSince,
			&f.FailedCount, &f.PendingCount, &f.LastError, &f.LastStatusCode, &f.LastAttemptAt)
		return f, err
	})
}

const failingEndpoints = `select w.id, w.merchant_id, w.livemode, w.url, w.status, w.disabled_reason, w.failing_since,
	(select count(*) from (select 1 from deliveries d where d.endpoint_id = w.id and d.status = $4 limit $2) c),
	(select count(*) from (select 1 from deliveries d where d.endpoint_id = w.id and d.status = $5 limit $2) c),
	last.error, last.status_code, last.started_at
	from webhook_endpoints w
	left join lateral (select a.error, a.status_code, a.started_at
		from ((select d.id from deliveries d where d.endpoint_id = w.id and d.status = $5 order by d.id desc limit $3)
			union all (select d.id from deliveries d where d.endpoint_id = w.id and d.status = $4 order by d.id desc limit $3)) d
		cross join lateral (select a.error, a.status_code, a.started_at from delivery_attempts a
			where a.delivery_id = d.id order by a.attempt desc limit 1) a
		order by a.started_at desc limit 1) last on true
	where w.deleted_at is null and (w.failing_since is not null or w.disabled_reason is not null)
	order by coalesce(w.failing_since, w.created_at) desc limit $1`

// PendingDeliveries counts an endpoint's pending deliveries, up to CountCap
// (through deliveries_endpoint_status_idx, whatever its backlog). A recovery
// retries only failed deliveries: the pending ones are still on their retry
// schedule, which is what a dry run that matches none says with this count.
func PendingDeliveries(ctx context.Context, db events.DB, endpointID string) (int, error) {
	var n int
	// The status is a parameter: a generic plan cannot match it to
	// deliveries_unsettled_idx, whose pending range it would otherwise read
	// whole, filtering on the endpoint, whenever the statistics predate a
	// backlog (see parkDeliveries); it reads (endpoint_id, status, id).
	if err := db.QueryRow(ctx, `select count(*) from (select 1 from deliveries
		where endpoint_id = $1 and status = $3 limit $2) c`, endpointID, CountCap, StatusPending).Scan(&n); err != nil {
		return 0, fmt.Errorf("count pending deliveries: %w", err)
	}
	return n, nil
}

// Failed renders the failed count for people: "100+" at failingCountCap.
func (f FailingEndpoint) Failed() string { return capped(f.FailedCount, failingCountCap) }

// Pending renders the pending count for people: "100+" at failingCountCap.
func (f FailingEndpoint) Pending() string { return capped(f.PendingCount, failingCountCap) }

// Capped renders a count that stops at CountCap for people: "1000+" at the
// cap.
func Capped(n int) string { return capped(n, CountCap) }

// capped renders a count that stops at limit: "<limit>+" there.
func capped(n, limit int) string {
	if n >= limit {
		return strconv.Itoa(limit) + "+"
	}
	return strconv.Itoa(n)
}

// OperatorDelivery is a delivery as operators see it, across merchants.
type OperatorDelivery struct {
	Delivery
	MerchantID string `json:"merchant_id"`
	EventType  string `json:"event_type"`
}

// RecentDeliveries lists the newest deliveries of any merchant in a status
// ("" for any), with their event's type. Newest means created last: id order,
// which an index serves (updated_at changes on every attempt, and an index on
// it would cost every attempt's update its HOT path). Pending and failed
// deliveries are read from deliveries_unsettled_idx, succeeded ones (nearly
// all) and any status from the primary key backwards.
func RecentDeliveries(ctx context.Context, db events.DB, status string, limit int) ([]OperatorDelivery, error) {
	const query = `select d.id, d.livemode, d.event_id, d.endpoint_id, d.url, d.status, d.attempt_count,
		d.last_status_code, d.next_attempt_at, d.created_at, d.merchant_id, e.type
		from deliveries d join events e on e.id = d.event_id`
	var rows pgx.Rows
	var err error
	switch status {
	case "":
		rows, err = db.Query(ctx, query+` order by d.id desc limit $1`, limit)
	case StatusSucceeded:
		rows, err = db.Query(ctx, query+` where d.status = 'succeeded' order by d.id desc limit $1`, limit)
	default:
		rows, err = db.Query(ctx, query+` where d.status = $2 and d.status <> 'succeeded' order by d.id desc limit $1`, limit, status)
	}
	if err != nil {
		return nil, fmt.Errorf("list deliveries: %w", err)
	}
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (OperatorDelivery, error) {
		var o OperatorDelivery
		d, err := scanDelivery(row, &o.MerchantID, &o.EventType)
		if d != nil {
			o.Delivery = *d
		}
		return o, err
	})
}

// Enable turns an endpoint of any merchant back on (the operator's action),
// clearing why it was disabled and its failure streak.
func Enable(ctx context.Context, tx pgx.Tx, endpointID string) error {
	tag, err := tx.Exec(ctx, `update webhook_endpoints set status = 'enabled', disabled_reason = null, failing_since = null
		where id = $1 and deleted_at is null`, endpointID)
	if err != nil {
		return fmt.Errorf("enable endpoint: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return events.ErrNotFound
	}
	return nil
}

// EndpointScope returns the merchant and mode of an endpoint of any
// merchant (the operator's views), ErrNotFound for an unknown or deleted one.
func EndpointScope(ctx context.Context, db events.DB, endpointID string) (events.Scope, error) {
	var scope events.Scope
	err := db.QueryRow(ctx, `select merchant_id, livemode from webhook_endpoints where id = $1 and deleted_at is null`, endpointID).
		Scan(&scope.MerchantID, &scope.Livemode)
	if err != nil {
		return events.Scope{}, events.WrapNotFound(err, "find endpoint")
	}
	return scope, nil
}
