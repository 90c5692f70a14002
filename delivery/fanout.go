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

// FanOut writes one delivery row for each destination of each event, and one
// River job per event for them all, in the events' own transaction: every
// enabled endpoint of the event's merchant and mode subscribed to its type,
// and the object's webhook_url for default-on types. The statements are the
// same whatever the number of events.
func (d *Dispatcher) FanOut(ctx context.Context, tx pgx.Tx, evts []*events.Event) error {
	merchants, modes, types, defaults := make([]string, len(evts)), make([]bool, len(evts)), make([]string, len(evts)), make([]bool, len(evts))
	for i, evt := range evts {
		entry, _ := events.Lookup(evt.Type)
		merchants[i], modes[i], types[i], defaults[i] = evt.MerchantID, evt.Livemode, string(evt.Type), entry.DefaultEnabled
	}
	rows, err := tx.Query(ctx, `select e.n, w.id, w.url
		from unnest($1::text[], $2::bool[], $3::text[], $4::bool[]) with ordinality as e (merchant_id, livemode, type, default_on, n)
		join webhook_endpoints w on w.merchant_id = e.merchant_id and w.livemode = e.livemode
			and w.status = 'enabled' and w.deleted_at is null
			and case when w.enabled_events is null then e.default_on else e.type = any(w.enabled_events) or '*' = any(w.enabled_events) end
		order by e.n, w.id`, merchants, modes, types, defaults)
	if err != nil {
		return fmt.Errorf("find subscribed endpoints: %w", err)
	}
	// One event's destinations, in the order the endpoints were created; an
	// empty endpoint id becomes null: the checkout's own webhook_url.
	type destination struct{ endpointID, url string }
	byEvent := make([][]destination, len(evts))
	var n int
	var endpointID, url string
	_, err = pgx.ForEachRow(rows, []any{&n, &endpointID, &url}, func() error {
		byEvent[n-1] = append(byEvent[n-1], destination{endpointID, url})
		return nil
	})
	if err != nil {
		return fmt.Errorf("find subscribed endpoints: %w", err)
	}
	var ids, endpointIDs, urls, merchantIDs, eventIDs []string
	var livemodes []bool
	var created []time.Time
	var jobs []river.InsertManyParams
	for i, evt := range evts {
		if evt.WebhookURL != "" && defaults[i] {
			byEvent[i] = append(byEvent[i], destination{"", evt.WebhookURL})
		}
		if len(byEvent[i]) == 0 {
			continue
		}
		var job []string
		for _, dst := range byEvent[i] {
			id := events.NewID(events.PrefixDelivery)
			job = append(job, id)
			ids, endpointIDs, urls = append(ids, id), append(endpointIDs, dst.endpointID), append(urls, dst.url)
			merchantIDs, livemodes, eventIDs, created = append(merchantIDs, evt.MerchantID), append(livemodes, evt.Livemode), append(eventIDs, evt.ID), append(created, evt.CreatedAt)
		}
		jobs = append(jobs, river.InsertManyParams{Args: DeliverArgs{DeliveryIDs: job, Attempt: 1}, InsertOpts: deliverOpts(time.Time{})})
	}
	if len(jobs) == 0 {
		return nil
	}
	_, err = tx.Exec(ctx, `insert into deliveries (id, merchant_id, livemode, event_id, endpoint_id, url, status,
		next_attempt_at, created_at, updated_at)
		select d.id, d.merchant_id, d.livemode, d.event_id, nullif(d.endpoint_id, ''), d.url, 'pending', d.created_at, d.created_at, d.created_at
		from unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bool[], $6::text[], $7::timestamptz[])
			as d (id, endpoint_id, url, merchant_id, livemode, event_id, created_at)`,
		ids, endpointIDs, urls, merchantIDs, livemodes, eventIDs, created)
	if err != nil {
		return fmt.Errorf("insert deliveries: %w", err)
	}
	if _, err := d.river.InsertManyTx(ctx, tx, jobs); err != nil {
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
