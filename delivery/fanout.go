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

// DeliverArgs is the River job of a batch of deliveries: one attempt of each.
// The fan-out enqueues one job per event, holding every destination's
// delivery; a job whose attempts fail enqueues the next attempt's job itself
// (see Worker.record). River's own retries of the job are only for failures
// to load or record, such as the database being away.
type DeliverArgs struct {
	DeliveryIDs []string `json:"delivery_ids,omitempty"`
	// Attempt is the number, in the retry schedule, of the automatic attempt
	// this job makes of its deliveries: 1 for a new event's.
	Attempt int `json:"attempt,omitempty"`
	// Manual marks an operator's or merchant's retry: exactly one attempt,
	// whatever the delivery's status, outside the schedule.
	Manual bool `json:"manual,omitempty"`
	// DeliveryID is the single delivery of a job enqueued before jobs held
	// batches; such a job counts its attempts with River's.
	DeliveryID string `json:"delivery_id,omitempty"`
}

// ids is every delivery the job attempts.
func (a DeliverArgs) ids() []string {
	if a.DeliveryID != "" {
		return []string{a.DeliveryID}
	}
	return a.DeliveryIDs
}

// attemptNumber is the schedule's attempt number the job makes.
func (a DeliverArgs) attemptNumber(job *river.Job[DeliverArgs]) int {
	if a.DeliveryID != "" {
		return job.Attempt
	}
	return max(a.Attempt, 1)
}

// Kind is the job's River kind.
func (DeliverArgs) Kind() string { return "deliver" }

// Dispatcher fans events out to their destinations: it implements
// events.Fanout.
type Dispatcher struct {
	river *river.Client[pgx.Tx]
}

// NewDispatcher returns a Dispatcher that enqueues with riverClient (an
// insert-only client is enough).
func NewDispatcher(riverClient *river.Client[pgx.Tx]) *Dispatcher {
	return &Dispatcher{river: riverClient}
}

// FanOut writes one delivery row for each destination of evt, and one River
// job for them all, in the event's own transaction: every enabled endpoint of
// the merchant
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
	if _, err := d.river.InsertTx(ctx, tx, DeliverArgs{DeliveryIDs: ids, Attempt: 1}, deliverOpts(time.Time{})); err != nil {
		return fmt.Errorf("enqueue deliveries: %w", err)
	}
	return nil
}

// deliverOpts are a delivery job's insert options: the delivery queue, River's
// default retries for failures to load or record, and the time it runs (the
// zero time: now).
func deliverOpts(at time.Time) *river.InsertOpts {
	return &river.InsertOpts{Queue: QueueDelivery, ScheduledAt: at}
}
