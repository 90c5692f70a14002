package delivery

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"

	"github.com/hookline/hookline/events"
)

// QueueDelivery is the River queue of delivery jobs, apart from the default
// queue so that a backlog of deliveries never delays checkout expiry.
const QueueDelivery = "delivery"

// DeliverArgs is the River job of one delivery. An automatic job makes every
// attempt of the retry schedule; a Manual one (an operator's or merchant's
// retry) makes exactly one attempt, whatever the delivery's status.
type DeliverArgs struct {
	DeliveryID string `json:"delivery_id"`
	Manual     bool   `json:"manual,omitempty"`

	// nextRetry carries the time Work chose for the next attempt to NextRetry,
	// which River calls on the same *Job right after Work fails. It is not
	// serialized: a job rescued after a crash falls back to River's policy.
	nextRetry time.Time
}

// Kind is the job's River kind.
func (DeliverArgs) Kind() string { return "deliver" }

// Dispatcher fans events out to their destinations: it implements
// events.Fanout.
type Dispatcher struct {
	river    *river.Client[pgx.Tx]
	schedule Schedule
}

// NewDispatcher returns a Dispatcher that enqueues with riverClient (an
// insert-only client is enough) and gives jobs as many attempts as schedule
// allows.
func NewDispatcher(riverClient *river.Client[pgx.Tx], schedule Schedule) *Dispatcher {
	return &Dispatcher{river: riverClient, schedule: schedule}
}

// FanOut writes one delivery row and one River job for each destination of
// evt, in the event's own transaction: every enabled endpoint of the merchant
// and mode subscribed to the type, and the object's webhook_url for default-on
// types.
func (d *Dispatcher) FanOut(ctx context.Context, tx pgx.Tx, evt *events.Event) error {
	entry, _ := events.Lookup(evt.Type)
	rows, err := tx.Query(ctx, `select id, url from webhook_endpoints
		where merchant_id = $1 and livemode = $2 and status = 'enabled' and deleted_at is null
		and case when enabled_events is null then $4 else $3 = any(enabled_events) or '*' = any(enabled_events) end`,
		evt.MerchantID, evt.Livemode, string(evt.Type), entry.DefaultEnabled)
	if err != nil {
		return fmt.Errorf("find subscribed endpoints: %w", err)
	}
	var ids, endpointIDs, urls []string
	var endpointID, url string
	_, err = pgx.ForEachRow(rows, []any{&endpointID, &url}, func() error {
		ids, endpointIDs, urls = append(ids, events.NewID(events.PrefixDelivery)), append(endpointIDs, endpointID), append(urls, url)
		return nil
	})
	if err != nil {
		return fmt.Errorf("find subscribed endpoints: %w", err)
	}
	if evt.WebhookURL != "" && entry.DefaultEnabled {
		// An empty endpoint id becomes null: the checkout's own destination.
		ids, endpointIDs, urls = append(ids, events.NewID(events.PrefixDelivery)), append(endpointIDs, ""), append(urls, evt.WebhookURL)
	}
	if len(ids) == 0 {
		return nil
	}
	_, err = tx.Exec(ctx, `insert into deliveries (id, merchant_id, livemode, event_id, endpoint_id, url, status,
		next_attempt_at, created_at, updated_at)
		select d.id, $4, $5, $6, nullif(d.endpoint_id, ''), d.url, 'pending', $7, $7, $7
		from unnest($1::text[], $2::text[], $3::text[]) as d (id, endpoint_id, url)`,
		ids, endpointIDs, urls, evt.MerchantID, evt.Livemode, evt.ID, evt.CreatedAt)
	if err != nil {
		return fmt.Errorf("insert deliveries: %w", err)
	}
	jobs := make([]river.InsertManyParams, len(ids))
	for i, id := range ids {
		jobs[i] = river.InsertManyParams{Args: DeliverArgs{DeliveryID: id}, InsertOpts: d.insertOpts(false)}
	}
	if _, err := d.river.InsertManyTx(ctx, tx, jobs); err != nil {
		return fmt.Errorf("enqueue deliveries: %w", err)
	}
	return nil
}

func (d *Dispatcher) insertOpts(manual bool) *river.InsertOpts {
	attempts := d.schedule.MaxAttempts()
	if manual {
		attempts = 1
	}
	return &river.InsertOpts{Queue: QueueDelivery, MaxAttempts: attempts}
}
