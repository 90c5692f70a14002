package delivery

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"go.opentelemetry.io/otel/trace"

	"github.com/hookline/hookline/events"
)

// QueueDelivery is the River queue of delivery jobs, apart from the default
// queue so that a backlog of deliveries never delays checkout expiry.
const QueueDelivery = "delivery"

// DeliverArgs is the River job of a batch of deliveries to one destination:
// one attempt of each. The fan-out enqueues one job per destination of each
// transaction's events (a checkout batch's events share it), the release job
// one per batch of parked deliveries, and a job whose attempts fail enqueues
// the next attempts itself (see Worker.record). River's own retries of the
// job are only for failures to load or record, such as the database being
// away.
type DeliverArgs struct {
	DeliveryIDs []string `json:"delivery_ids"`
	// Counts is, for each delivery, the attempt_count it had when the job was
	// made: the job makes attempt Counts[i]+1, and only if no other job made
	// it first (the record is a compare-and-set on attempt_count). A job that
	// runs again after its process died so skips what it had recorded.
	Counts []int `json:"counts"`
	// Manual marks an operator's or merchant's retry: exactly one attempt,
	// whatever the delivery's status, outside the schedule.
	Manual bool `json:"manual,omitempty"`
	// Probe marks the release of one delivery to a destination that fails
	// every attempt: it is sent although the destination is paused (the
	// release paused it so that no other probe follows before this one's
	// interval).
	Probe bool `json:"probe,omitempty"`
	// Destination is the deliveries' destination (destinationKey): the
	// first job that finds a destination failing finds its other queued
	// jobs by it and withdraws them (withdraw.go), so that they do not hold
	// up other tenants' jobs behind them in the queue. Manual retries leave
	// it out: they are never withdrawn.
	Destination string `json:"destination,omitempty"`
}

// jobSize is the most deliveries one job carries. It makes their attempts one
// after another (see limiter), so a job of a slow destination ends within
// its send budget and parks what it did not send.
const jobSize = 50

// deliverJobs is the jobs of ids, deliveries to destination whose attempt
// counts are counts, due at at (the zero time: now).
func deliverJobs(destination string, ids []string, counts []int, manual bool, at time.Time) []river.InsertManyParams {
	return jobsOf(destination, ids, counts, manual, at, jobSize)
}

// jobsOf is deliverJobs with jobs of size deliveries.
func jobsOf(destination string, ids []string, counts []int, manual bool, at time.Time, size int) []river.InsertManyParams {
	if manual {
		destination = ""
	}
	var jobs []river.InsertManyParams
	for i := 0; i < len(ids); i += size {
		j := min(i+size, len(ids))
		jobs = append(jobs, river.InsertManyParams{
			Args:       DeliverArgs{DeliveryIDs: ids[i:j], Counts: counts[i:j], Manual: manual, Destination: destination},
			InsertOpts: &river.InsertOpts{Queue: QueueDelivery, ScheduledAt: at},
		})
	}
	return jobs
}

// destinationKey names a delivery's destination, the unit of the in-flight
// caps, of pausing and of parking: its endpoint, or for a checkout's own
// webhook_url the URL's digest (deliveries_parked_idx computes the same in
// SQL).
func destinationKey(endpointID *string, url string) string {
	if endpointID != nil && *endpointID != "" {
		return *endpointID
	}
	sum := md5.Sum([]byte(url)) //nolint:gosec // a key, not a security measure
	return "url:" + hex.EncodeToString(sum[:])
}

// Kind is the job's River kind.
func (DeliverArgs) Kind() string { return "deliver" }

// Dispatcher fans events out to their destinations: it implements
// events.Fanout.
type Dispatcher struct {
	river  *river.Client[pgx.Tx]
	tracer trace.Tracer // nil: tracing off
	// countTimeout bounds a replay request's count (replayCountTimeout;
	// tests make it shorter).
	countTimeout time.Duration
}

// NewDispatcher returns a Dispatcher that enqueues with riverClient (an
// insert-only client is enough) and records each event's fan-out as a span of
// tracer, or, with a nil tracer (tracing off), none.
func NewDispatcher(riverClient *river.Client[pgx.Tx], tracer trace.Tracer) *Dispatcher {
	return &Dispatcher{river: riverClient, tracer: tracer, countTimeout: replayCountTimeout}
}

// destination is one place an event goes: an endpoint, or (endpointID "")
// a checkout's own webhook_url.
type destination struct {
	endpointID, url string
	// paused: the destination's pause has not ended, so the delivery is
	// parked at once, behind its backlog (a job would only park it).
	paused bool
	// manual: one attempt now, outside the schedule and whatever the
	// endpoint's status (a test event to a disabled endpoint).
	manual bool
}

// FanOut writes one delivery row for each destination of each event, and
// River jobs for them by destination (see deliverJobs), in the events' own
// transaction: every enabled endpoint of the event's merchant and mode
// subscribed to its type, and the object's webhook_url for default-on types;
// or, for an event addressed to one endpoint (a test event), that endpoint
// alone. The statements are the same whatever the number of events.
func (d *Dispatcher) FanOut(ctx context.Context, tx pgx.Tx, evts []*events.Event) error {
	if d.tracer == nil {
		_, err := d.fanOut(ctx, tx, evts)
		return err
	}
	start := time.Now()
	byEvent, err := d.fanOut(ctx, tx, evts)
	d.traceFanOut(ctx, evts, byEvent, start, err)
	return err
}

// fanOut is FanOut, answering each event's destinations (nil if it fails
// before finding them).
func (d *Dispatcher) fanOut(ctx context.Context, tx pgx.Tx, evts []*events.Event) ([][]destination, error) {
	byEvent, err := subscribed(ctx, tx, evts)
	if err != nil {
		return nil, err
	}
	if err := addressed(ctx, tx, evts, byEvent); err != nil {
		return nil, err
	}
	return byEvent, d.enqueue(ctx, tx, evts, byEvent, time.Time{})
}

// subscribed returns, for each event not addressed to one endpoint, its
// merchant's enabled endpoints subscribed to its type, in the order they were
// created, then the object's own webhook_url for a default-on type.
func subscribed(ctx context.Context, tx pgx.Tx, evts []*events.Event) ([][]destination, error) {
	byEvent := make([][]destination, len(evts))
	var merchants, types []string
	var modes, defaults []bool
	var index []int // the position in evts of each event queried
	for i, evt := range evts {
		if evt.Endpoint != "" {
			continue
		}
		entry, _ := events.Lookup(evt.Type)
		merchants, modes, types, defaults = append(merchants, evt.MerchantID), append(modes, evt.Livemode), append(types, string(evt.Type)), append(defaults, entry.DefaultEnabled)
		index = append(index, i)
	}
	if len(index) == 0 {
		return byEvent, nil
	}
	rows, err := tx.Query(ctx, `select e.n, w.id, w.url, coalesce(s.paused_until > now(), false)
		from unnest($1::text[], $2::bool[], $3::text[], $4::bool[]) with ordinality as e (merchant_id, livemode, type, default_on, n)
		join webhook_endpoints w on w.merchant_id = e.merchant_id and w.livemode = e.livemode
			and w.status = 'enabled' and w.deleted_at is null
			and case when w.enabled_events is null then e.default_on else e.type = any(w.enabled_events) or '*' = any(w.enabled_events) end
		left join delivery_destinations s on s.key = w.id
		order by e.n, w.id`, merchants, modes, types, defaults)
	if err != nil {
		return nil, fmt.Errorf("find subscribed endpoints: %w", err)
	}
	var n int
	var dst destination
	_, err = pgx.ForEachRow(rows, []any{&n, &dst.endpointID, &dst.url, &dst.paused}, func() error {
		byEvent[index[n-1]] = append(byEvent[index[n-1]], dst)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("find subscribed endpoints: %w", err)
	}
	for j, i := range index {
		if evts[i].WebhookURL != "" && defaults[j] {
			byEvent[i] = append(byEvent[i], destination{url: evts[i].WebhookURL})
		}
	}
	return byEvent, nil
}

// addressed sets the destination of each event addressed to one endpoint:
// that endpoint, unless it was deleted, whether or not it subscribes to the
// type. A disabled endpoint gets one attempt now (manual), as a manual retry
// would; its automatic retries then stop until it is enabled again, like
// every delivery of a disabled endpoint.
func addressed(ctx context.Context, tx pgx.Tx, evts []*events.Event, byEvent [][]destination) error {
	var ids []string
	for _, evt := range evts {
		if evt.Endpoint != "" {
			ids = append(ids, evt.Endpoint)
		}
	}
	if len(ids) == 0 {
		return nil
	}
	rows, err := tx.Query(ctx, `select w.id, w.url, coalesce(s.paused_until > now(), false), w.status <> 'enabled'
		from webhook_endpoints w left join delivery_destinations s on s.key = w.id
		where w.id = any($1) and w.deleted_at is null`, ids)
	if err != nil {
		return fmt.Errorf("find addressed endpoints: %w", err)
	}
	found := map[string]destination{}
	var dst destination
	_, err = pgx.ForEachRow(rows, []any{&dst.endpointID, &dst.url, &dst.paused, &dst.manual}, func() error {
		dst.paused = dst.paused && !dst.manual // a manual attempt does not wait for the pause
		found[dst.endpointID] = dst
		return nil
	})
	if err != nil {
		return fmt.Errorf("find addressed endpoints: %w", err)
	}
	for i, evt := range evts {
		if evt.Endpoint == "" {
			continue
		}
		dst, ok := found[evt.Endpoint]
		if !ok {
			return fmt.Errorf("event %s is addressed to endpoint %s: %w", evt.ID, evt.Endpoint, events.ErrNotFound)
		}
		byEvent[i] = []destination{dst}
	}
	return nil
}

// enqueue writes the deliveries of evts to their destinations (byEvent[i]
// for evts[i]) and their River jobs: one destination's deliveries go in the
// same jobs, in event order, except those parked for a paused destination,
// which get none. The deliveries are created at their event's time, or at
// at unless it is zero (a replay's, made long after its events).
func (d *Dispatcher) enqueue(ctx context.Context, tx pgx.Tx, evts []*events.Event, byEvent [][]destination, at time.Time) error {
	var ids, endpointIDs, urls, merchantIDs, eventIDs, types []string
	var livemodes, parked []bool
	var created []time.Time
	type jobKey struct {
		destination string
		manual      bool
	}
	byJob := map[jobKey][]string{}
	var order []jobKey
	for i, evt := range evts {
		for _, dst := range byEvent[i] {
			id := events.NewID(events.PrefixDelivery)
			if !dst.paused {
				key := jobKey{destinationKey(&dst.endpointID, dst.url), dst.manual}
				if byJob[key] == nil {
					order = append(order, key)
				}
				byJob[key] = append(byJob[key], id)
			}
			ids, endpointIDs, urls, parked = append(ids, id), append(endpointIDs, dst.endpointID), append(urls, dst.url), append(parked, dst.paused)
			createdAt := evt.CreatedAt
			if !at.IsZero() {
				createdAt = at
			}
			merchantIDs, livemodes, eventIDs, created = append(merchantIDs, evt.MerchantID), append(livemodes, evt.Livemode), append(eventIDs, evt.ID), append(created, createdAt)
			types = append(types, string(evt.Type))
		}
	}
	if len(ids) == 0 {
		return nil
	}
	var jobs []river.InsertManyParams
	for _, key := range order {
		jobs = append(jobs, deliverJobs(key.destination, byJob[key], make([]int, len(byJob[key])), key.manual, time.Time{})...)
	}
	_, err := tx.Exec(ctx, `insert into deliveries (id, merchant_id, livemode, event_id, event_type, endpoint_id, url, status,
		next_attempt_at, created_at, updated_at, parked)
		select d.id, d.merchant_id, d.livemode, d.event_id, d.event_type, nullif(d.endpoint_id, ''), d.url, 'pending', d.created_at, d.created_at, d.created_at, d.parked
		from unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bool[], $6::text[], $7::timestamptz[], $8::bool[], $9::text[])
			as d (id, endpoint_id, url, merchant_id, livemode, event_id, created_at, parked, event_type)`,
		ids, endpointIDs, urls, merchantIDs, livemodes, eventIDs, created, parked, types)
	if err != nil {
		return fmt.Errorf("insert deliveries: %w", err)
	}
	if len(jobs) == 0 {
		return nil
	}
	if _, err := d.river.InsertManyTx(ctx, tx, jobs); err != nil {
		return fmt.Errorf("enqueue deliveries: %w", err)
	}
	return nil
}

// scanIDsAndCounts reads rows of (delivery id, attempt_count), what a
// statement that hands deliveries to new jobs returns.
func scanIDsAndCounts(rows pgx.Rows) ([]string, []int, error) {
	var ids []string
	var counts []int
	var id string
	var count int
	_, err := pgx.ForEachRow(rows, []any{&id, &count}, func() error {
		ids, counts = append(ids, id), append(counts, count)
		return nil
	})
	return ids, counts, err
}
