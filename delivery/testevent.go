package delivery

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/hookline/hookline/events"
)

// DefaultTestEventType is the type of a test event when the request names
// none: the event every integration handles first.
const DefaultTestEventType = events.CheckoutPaid

// SendTestEvent records a test event of type t, made from its schema's
// example, and its one delivery to the scope's endpoint endpointID, in tx
// (service.PublishExample, whose fan-out addresses that endpoint alone): it
// is signed, retried and recorded like any delivery. Any type of the catalog
// may be sent, whether or not the endpoint subscribes to it. A disabled
// endpoint gets one attempt at once, as a manual retry would, so that a
// merchant can check a repaired receiver before enabling it again; its
// retries wait for the endpoint to be enabled, like all its deliveries. A
// deleted or unknown endpoint is ErrNotFound.
func (d *Dispatcher) SendTestEvent(ctx context.Context, tx pgx.Tx, service *events.Service, scope events.Scope, endpointID string, t events.EventType) (*Delivery, error) {
	if _, ok := events.Lookup(t); !ok {
		return nil, &events.InvalidError{Param: "type", Message: fmt.Sprintf("%q is not an event type of GET /v1/event_types", t)}
	}
	// A share lock: a delete of the endpoint waits for this transaction, so
	// the delivery is never made to an endpoint deleted meanwhile.
	var found bool
	err := tx.QueryRow(ctx, `select true from webhook_endpoints where id = $1 and merchant_id = $2 and livemode = $3
		and deleted_at is null for share`, endpointID, scope.MerchantID, scope.Livemode).Scan(&found)
	if err != nil {
		return nil, events.WrapNotFound(err, "find endpoint")
	}
	evt, err := service.PublishExample(ctx, tx, scope, t, endpointID)
	if err != nil {
		return nil, err
	}
	del, err := scanDelivery(tx.QueryRow(ctx, deliveryColumns+` where event_id = $1`, evt.ID))
	if err != nil {
		return nil, fmt.Errorf("read test delivery: %w", err)
	}
	return del, nil
}
