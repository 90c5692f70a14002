package delivery

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/hookline/hookline/events"
)

// Delivery statuses.
const (
	StatusPending   = "pending"
	StatusSucceeded = "succeeded"
	StatusFailed    = "failed"
)

// Delivery is one event on its way to one destination, in its wire form.
// Attempts is set on retrieve only.
type Delivery struct {
	ID             string     `json:"id"`
	Object         string     `json:"object"`
	Livemode       bool       `json:"livemode"`
	Event          string     `json:"event"`
	Endpoint       *string    `json:"endpoint"`
	URL            string     `json:"url"`
	Status         string     `json:"status"`
	AttemptCount   int        `json:"attempt_count"`
	LastStatusCode *int       `json:"last_status_code"`
	NextAttemptAt  *int64     `json:"next_attempt_at"`
	CreatedAt      int64      `json:"created_at"`
	Attempts       *[]Attempt `json:"attempts,omitempty"`
}

// Attempt is one recorded attempt of a delivery.
type Attempt struct {
	Attempt      int     `json:"attempt"`
	StartedAt    int64   `json:"started_at"`
	DurationMS   int     `json:"duration_ms"`
	StatusCode   *int    `json:"status_code"`
	Error        *string `json:"error"`
	ResponseBody *string `json:"response_body"`
}

const deliveryColumns = `select id, livemode, event_id, endpoint_id, url, status, attempt_count, last_status_code,
	next_attempt_at, created_at from deliveries`

// deliveriesByStatus is the deliveries table read as three id ranges, one per
// status, that a page merges by id (a Merge Append of three index scans, each
// stopping at the page's limit): how the lists without a status filter read
// the (…, status, id) indexes, which also serve the status filter.
const deliveriesByStatus = `select id, livemode, event_id, endpoint_id, url, status, attempt_count, last_status_code,
	next_attempt_at, created_at from (
		select * from deliveries where status = 'pending'
		union all select * from deliveries where status = 'succeeded'
		union all select * from deliveries where status = 'failed') deliveries`

// Filters by endpoint or event first check that the endpoint or event is the
// scope's: a one-time check, after which the index range holds the scope's
// rows only, so another merchant's id costs one lookup, not that id's
// history.
const (
	ownEndpoint = ` and exists (select 1 from webhook_endpoints w where w.id = $5 and w.merchant_id = $3 and w.livemode = $4)`
	ownEvent    = ` and exists (select 1 from events e where e.id = $5 and e.merchant_id = $3 and e.livemode = $4)`
)

// scanDelivery reads deliveryColumns' columns, in their order, then into
// extra any columns a query selects after them.
func scanDelivery(row pgx.Row, extra ...any) (*Delivery, error) {
	d := &Delivery{Object: "delivery"}
	var next *time.Time
	var created time.Time
	err := row.Scan(append([]any{&d.ID, &d.Livemode, &d.Event, &d.Endpoint, &d.URL, &d.Status, &d.AttemptCount,
		&d.LastStatusCode, &next, &created}, extra...)...)
	d.CreatedAt = created.Unix()
	if next != nil {
		n := next.Unix()
		d.NextAttemptAt = &n
	}
	return d, err
}

// GetDelivery returns a delivery with its attempts: one of the scope's, or
// with a nil scope (an operator) any merchant's.
func GetDelivery(ctx context.Context, db events.DB, scope *events.Scope, id string) (*Delivery, error) {
	d, err := scanDelivery(db.QueryRow(ctx, deliveryColumns+` where id = $1
		and ($2::text is null or (merchant_id = $2 and livemode = $3))`, id, scopeMerchant(scope), scope != nil && scope.Livemode))
	if err != nil {
		return nil, events.WrapNotFound(err, "get delivery")
	}
	attempts, err := Attempts(ctx, db, id)
	if err != nil {
		return nil, err
	}
	d.Attempts = &attempts
	return d, nil
}

// DeliveryFilter narrows a list of deliveries; empty fields do not filter.
type DeliveryFilter struct {
	EventID    string
	EndpointID string
	Status     string
}

// ListDeliveries returns a page of the scope's deliveries, newest first. Each
// combination of filters is one fixed statement whose merchant (or endpoint or
// event), filter and cursor are index conditions, so that a page costs the
// same at any depth: an event has a few deliveries, read by
// deliveries_event_idx, and the other filters read the (…, status, id)
// indexes.
func ListDeliveries(ctx context.Context, db events.DB, scope events.Scope, f DeliveryFilter, page events.Page) (*events.List[*Delivery], error) {
	query, args := deliveryListQuery(f)
	return events.ListPage(ctx, db, page, query, func(rows pgx.Rows) (*Delivery, error) { return scanDelivery(rows) },
		append([]any{scope.MerchantID, scope.Livemode}, args...)...)
}

// deliveryListQuery returns the statement of a filter combination and its
// filters' arguments, $5 on.
func deliveryListQuery(f DeliveryFilter) (string, []any) {
	const scoped = ` where merchant_id = $3 and livemode = $4`
	switch {
	case f.EventID != "" && f.EndpointID != "" && f.Status != "":
		return deliveryColumns + scoped + ` and event_id = $5 and endpoint_id = $6 and status = $7` + ownEvent,
			[]any{f.EventID, f.EndpointID, f.Status}
	case f.EventID != "" && f.EndpointID != "":
		return deliveryColumns + scoped + ` and event_id = $5 and endpoint_id = $6` + ownEvent, []any{f.EventID, f.EndpointID}
	case f.EventID != "" && f.Status != "":
		return deliveryColumns + scoped + ` and event_id = $5 and status = $6` + ownEvent, []any{f.EventID, f.Status}
	case f.EventID != "":
		return deliveryColumns + scoped + ` and event_id = $5` + ownEvent, []any{f.EventID}
	case f.EndpointID != "" && f.Status != "":
		return deliveryColumns + scoped + ` and endpoint_id = $5 and status = $6` + ownEndpoint, []any{f.EndpointID, f.Status}
	case f.EndpointID != "":
		return deliveriesByStatus + scoped + ` and endpoint_id = $5` + ownEndpoint, []any{f.EndpointID}
	case f.Status != "":
		return deliveryColumns + scoped + ` and status = $5`, []any{f.Status}
	default:
		return deliveriesByStatus + scoped, nil
	}
}

// Retry schedules one immediate attempt of a delivery, whatever its status.
func (d *Dispatcher) Retry(ctx context.Context, tx pgx.Tx, scope events.Scope, id string) (*Delivery, error) {
	del, err := scanDelivery(tx.QueryRow(ctx, deliveryColumns+` where id = $1 and merchant_id = $2 and livemode = $3`,
		id, scope.MerchantID, scope.Livemode))
	if err != nil {
		return nil, events.WrapNotFound(err, "find delivery")
	}
	if err := d.enqueueManual(ctx, tx, id); err != nil {
		return nil, err
	}
	return del, nil
}

// enqueueManual queues one immediate attempt of a delivery: the job of every
// retry asked for by a merchant or an operator.
func (d *Dispatcher) enqueueManual(ctx context.Context, tx pgx.Tx, id string) error {
	if _, err := d.river.InsertTx(ctx, tx, DeliverArgs{DeliveryIDs: []string{id}, Manual: true}, deliverOpts(time.Time{})); err != nil {
		return fmt.Errorf("enqueue retry: %w", err)
	}
	return nil
}
