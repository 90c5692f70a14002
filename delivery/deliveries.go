package delivery

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"go.opentelemetry.io/otel/trace"

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

// deliveryFields are the columns scanDelivery reads, in its order.
const deliveryFields = `id, livemode, event_id, endpoint_id, url, status, attempt_count, last_status_code,
	next_attempt_at, created_at`

const deliveryColumns = `select ` + deliveryFields + ` from deliveries`

// byStatus opens a merged list (events.ListMergedPage) of the deliveries in
// each status, which the (…, status, id) indexes serve: the lists without a
// status filter read those indexes as three ranges merged by id, so that they
// need no index of their own.
const byStatus = `select ` + deliveryFields + ` from unnest('{pending,succeeded,failed}'::text[]) as s (each_status)
	cross join lateral (` + deliveryColumns

// Filters by endpoint or event check first that the endpoint or event is
// the scope's: a one-time check, after which the index range (endpoint_id or
// event_id, then id) holds the scope's rows only, since a delivery has its
// endpoint's and its event's merchant and mode. Another merchant's id costs one
// lookup, not that id's history.
const (
	ownEndpoint = ` and exists (select 1 from webhook_endpoints w where w.id = $3 and w.merchant_id = $4 and w.livemode = $5)`
	ownEvent    = ` and exists (select 1 from events e where e.id = $3 and e.merchant_id = $4 and e.livemode = $5)`
)

// scanDelivery reads deliveryFields, in their order, then into
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

// getDelivery reads a delivery with its attempts in one statement, so in
// one snapshot whatever the transaction: read in two, an attempt recorded in
// between showed beside the delivery's older status and count (a portal page
// showed attempt 1 of a delivery still pending).
const getDelivery = `select ` + deliveryFields + `,
		coalesce((select json_agg(json_build_object('attempt', a.attempt, 'started_at', floor(extract(epoch from a.started_at))::bigint,
				'duration_ms', a.duration_ms, 'status_code', a.status_code, 'error', a.error, 'response_body', a.response_body)
				order by a.attempt)
			from delivery_attempts a where a.delivery_id = d.id), '[]')
	from deliveries d where id = $1 and ($2::text is null or (merchant_id = $2 and livemode = $3))`

// GetDelivery returns a delivery with its attempts: one of the scope's, or
// with a nil scope (an operator) any merchant's.
func GetDelivery(ctx context.Context, db events.DB, scope *events.Scope, id string) (*Delivery, error) {
	var attempts []Attempt
	d, err := scanDelivery(db.QueryRow(ctx, getDelivery, id, scopeMerchant(scope), scope != nil && scope.Livemode), &attempts)
	if err != nil {
		return nil, events.WrapNotFound(err, "get delivery")
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
	scan := func(rows pgx.Rows) (*Delivery, error) { return scanDelivery(rows) }
	const scoped = ` where merchant_id = $3 and livemode = $4`
	switch {
	case f.EventID != "" && f.EndpointID != "" && f.Status != "":
		return events.ListPage(ctx, db, page, deliveryColumns+` where event_id = $3 and endpoint_id = $6 and status = $7`+ownEvent,
			scan, f.EventID, scope.MerchantID, scope.Livemode, f.EndpointID, f.Status)
	case f.EventID != "" && f.EndpointID != "":
		return events.ListPage(ctx, db, page, deliveryColumns+` where event_id = $3 and endpoint_id = $6`+ownEvent,
			scan, f.EventID, scope.MerchantID, scope.Livemode, f.EndpointID)
	case f.EventID != "" && f.Status != "":
		return events.ListPage(ctx, db, page, deliveryColumns+` where event_id = $3 and status = $6`+ownEvent,
			scan, f.EventID, scope.MerchantID, scope.Livemode, f.Status)
	case f.EventID != "":
		return events.ListPage(ctx, db, page, deliveryColumns+` where event_id = $3`+ownEvent,
			scan, f.EventID, scope.MerchantID, scope.Livemode)
	case f.EndpointID != "" && f.Status != "":
		return events.ListPage(ctx, db, page, deliveryColumns+` where endpoint_id = $3 and status = $6`+ownEndpoint,
			scan, f.EndpointID, scope.MerchantID, scope.Livemode, f.Status)
	case f.EndpointID != "":
		return events.ListMergedPage(ctx, db, page, byStatus+` where endpoint_id = $3 and status = s.each_status`+ownEndpoint,
			scan, f.EndpointID, scope.MerchantID, scope.Livemode)
	case f.Status != "":
		return events.ListPage(ctx, db, page, deliveryColumns+scoped+` and status = $5`, scan, scope.MerchantID, scope.Livemode, f.Status)
	default:
		return events.ListMergedPage(ctx, db, page, byStatus+scoped+` and status = s.each_status`, scan, scope.MerchantID, scope.Livemode)
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
// retry asked for by a merchant or an operator. The attempt is the delivery's
// next one: if an automatic attempt is made first, the retry is that attempt.
// A delivery whose endpoint was deleted is not sent again.
func (d *Dispatcher) enqueueManual(ctx context.Context, tx pgx.Tx, id string) error {
	var count int
	var deleted bool
	err := tx.QueryRow(ctx, `select d.attempt_count, coalesce(w.deleted_at is not null, false)
		from deliveries d left join webhook_endpoints w on w.id = d.endpoint_id where d.id = $1`, id).Scan(&count, &deleted)
	if err != nil {
		return events.WrapNotFound(err, "find delivery")
	}
	if deleted {
		return &events.StateError{Code: "endpoint_deleted", Message: fmt.Sprintf("the endpoint of delivery %s was deleted: it is not sent again", id)}
	}
	if _, err := d.river.InsertManyTx(ctx, tx, deliverJobs("", []string{id}, []int{count}, true, time.Time{})); err != nil {
		return fmt.Errorf("enqueue retry: %w", err)
	}
	// The attempt's span descends from the event's request, not from this
	// one: the retry's span names it instead (a no-op with tracing off).
	trace.SpanFromContext(ctx).AddEvent("delivery retried", trace.WithAttributes(attrDeliveryID.String(id), attrAttempt.Int(count+1)))
	return nil
}
