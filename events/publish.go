package events

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/hookline/hookline/events/traceparent"
)

// DB is what reads need: a pool or a transaction.
type DB interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// Scope is whose objects a request may touch: one merchant, in one mode. Every
// query of the domain filters by both, so another merchant's ids, or the other
// mode's, are not found.
type Scope struct {
	MerchantID string
	Livemode   bool
}

// Event is one row of the event log. Payload is the serialized envelope: it is
// what every delivery of the event sends, byte for byte.
type Event struct {
	ID         string
	MerchantID string
	Livemode   bool
	Type       EventType
	Payload    json.RawMessage
	CreatedAt  time.Time
	// WebhookURL is the object's own webhook_url (a checkout's), which receives
	// the object's default-on events besides the merchant's endpoints. Not stored:
	// the fan-out reads it in the publishing transaction.
	WebhookURL string
	// Endpoint, when set, is the only endpoint the event goes to, whatever
	// the endpoint subscribes to and whatever the merchant's other endpoints
	// do: a test event's (Service.PublishExample). Stored as the event's
	// addressed_to, so that a replay to another endpoint leaves it out.
	Endpoint string
	// Trace is the W3C traceparent of the span that caused the event (the
	// API request's), or "" (tracing off, or no span): stored with the event
	// so that its fan-out and every delivery attempt, whenever and wherever
	// they run, are that span's children.
	Trace string
}

// envelope is the wire form of an event (contract §3, seed 001).
type envelope struct {
	ID        string    `json:"id"`
	Object    string    `json:"object"`
	Type      EventType `json:"type"`
	CreatedAt int64     `json:"created_at"`
	Livemode  bool      `json:"livemode"`
	// Example is true on a test event only, and absent (never false) on
	// every real event.
	Example bool `json:"example,omitempty"`
	Data    any  `json:"data"`
}

// Fanout enqueues the deliveries of new events in the transaction that wrote
// them. The delivery package implements it; it is an interface only because
// delivery imports events, not the other way round.
type Fanout interface {
	FanOut(ctx context.Context, tx pgx.Tx, evts []*Event) error
}

// Publisher writes events. It is the only way an event enters the log.
type Publisher struct {
	fanout Fanout
}

// NewPublisher returns a Publisher that hands every event to fanout; a nil
// fanout records events without delivering them (tools that only read).
func NewPublisher(fanout Fanout) *Publisher {
	return &Publisher{fanout: fanout}
}

// Publication is an event to publish: its type, the object it is about as the
// object is now (its data), and the object's own webhook_url, or "".
type Publication struct {
	Scope      Scope
	Type       EventType
	Object     any
	WebhookURL string
	// Example marks a test event made from its type's schema example: its
	// envelope carries "example": true.
	Example bool
	// Endpoint sends the event to that endpoint alone (see Event.Endpoint).
	Endpoint string
	// Trace is the traceparent of the span that caused the event (see
	// Event.Trace); "" takes the span of PublishMany's ctx, if any. A batch
	// that serves several requests sets each one's.
	Trace string
}

// Publish records an event of type t whose data is object, as it is now, and
// enqueues its deliveries, all in tx. webhookURL is the object's own webhook_url,
// or "".
func (p *Publisher) Publish(ctx context.Context, tx pgx.Tx, scope Scope, t EventType, object any, webhookURL string) (*Event, error) {
	evts, err := p.PublishMany(ctx, tx, []Publication{{Scope: scope, Type: t, Object: object, WebhookURL: webhookURL}})
	if err != nil {
		return nil, err
	}
	return evts[0], nil
}

// PublishMany records events and enqueues their deliveries, all in tx, with
// the same statements whatever their number: the API's batched checkout
// creation publishes a batch's events at once.
func (p *Publisher) PublishMany(ctx context.Context, tx pgx.Tx, pubs []Publication) ([]*Event, error) {
	evts := make([]*Event, len(pubs))
	callerTrace := traceparent.FromContext(ctx)
	var ids, merchants, types, traces, addressed []string
	var modes []bool
	var payloads [][]byte
	var created []time.Time
	for i, pub := range pubs {
		if _, ok := Lookup(pub.Type); !ok {
			return nil, fmt.Errorf("publish: event type %q is not in the catalog", pub.Type)
		}
		evt := &Event{
			ID:         NewID(PrefixEvent),
			MerchantID: pub.Scope.MerchantID,
			Livemode:   pub.Scope.Livemode,
			Type:       pub.Type,
			CreatedAt:  time.Now().UTC().Truncate(time.Microsecond),
			WebhookURL: pub.WebhookURL,
			Endpoint:   pub.Endpoint,
			Trace:      cmp.Or(pub.Trace, callerTrace),
		}
		payload, err := json.Marshal(envelope{
			ID: evt.ID, Object: "event", Type: evt.Type, CreatedAt: evt.CreatedAt.Unix(), Livemode: evt.Livemode, Example: pub.Example, Data: pub.Object,
		})
		if err != nil {
			return nil, fmt.Errorf("marshal event: %w", err)
		}
		evt.Payload = payload
		evts[i] = evt
		ids, merchants, modes, types = append(ids, evt.ID), append(merchants, evt.MerchantID), append(modes, evt.Livemode), append(types, string(evt.Type))
		addressed = append(addressed, evt.Endpoint)
		payloads, created, traces = append(payloads, payload), append(created, evt.CreatedAt), append(traces, evt.Trace)
	}
	// An event is a fact the merchant may hear of at once: its transaction
	// commits durably even on a connection that commits its own bookkeeping
	// asynchronously (the workers'), so that a Postgres crash cannot undo an
	// event already delivered.
	if _, err := tx.Exec(ctx, "set local synchronous_commit = on"); err != nil {
		return nil, fmt.Errorf("publish: %w", err)
	}
	_, err := tx.Exec(ctx, `insert into events (id, merchant_id, livemode, type, payload, created_at, traceparent, addressed_to)
		select e.id, e.merchant_id, e.livemode, e.type, e.payload, e.created_at, nullif(e.traceparent, ''), nullif(e.addressed_to, '')
		from unnest($1::text[], $2::text[], $3::bool[], $4::text[], $5::bytea[], $6::timestamptz[], $7::text[], $8::text[])
			as e (id, merchant_id, livemode, type, payload, created_at, traceparent, addressed_to)`,
		ids, merchants, modes, types, payloads, created, traces, addressed)
	if err != nil {
		return nil, fmt.Errorf("insert events: %w", err)
	}
	if p.fanout != nil {
		if err := p.fanout.FanOut(ctx, tx, evts); err != nil {
			return nil, fmt.Errorf("fan out: %w", err)
		}
	}
	return evts, nil
}

// GetEvent returns one of the scope's events.
func GetEvent(ctx context.Context, db DB, scope Scope, id string) (*Event, error) {
	evt, err := ScanEvent(db.QueryRow(ctx, `select `+EventColumns+` from events
		where id = $1 and merchant_id = $2 and livemode = $3`, id, scope.MerchantID, scope.Livemode))
	if err != nil {
		return nil, WrapNotFound(err, "get event")
	}
	return evt, nil
}

// EventColumns are the columns of an event that ScanEvent reads, in its
// order, for the lists of events other packages select (delivery's list of
// events not delivered).
const EventColumns = `id, merchant_id, livemode, type, payload, created_at`

// ScanEvent reads a row of EventColumns.
func ScanEvent(row pgx.Row) (*Event, error) {
	evt := &Event{}
	err := row.Scan(&evt.ID, &evt.MerchantID, &evt.Livemode, &evt.Type, &evt.Payload, &evt.CreatedAt)
	return evt, err
}

// ListEvents returns a page of the scope's events, newest first, optionally of
// one type. Each filter is its own statement: the type is an index condition
// (events_merchant_type_idx), however rare the type.
func ListEvents(ctx context.Context, db DB, scope Scope, t EventType, page Page) (*List[*Event], error) {
	const cols = `select ` + EventColumns + ` from events where merchant_id = $3 and livemode = $4`
	query, args := cols, []any{scope.MerchantID, scope.Livemode}
	if t != "" {
		query, args = cols+` and type = $5`, append(args, string(t))
	}
	return ListPage(ctx, db, page, query, func(rows pgx.Rows) (*Event, error) { return ScanEvent(rows) }, args...)
}
