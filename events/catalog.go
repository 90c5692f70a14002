package events

import "slices"

// EventType names a kind of event, as in the seeds: object.happening.
type EventType string

// The event types hookline emits (contract §3).
const (
	CheckoutCreated          EventType = "checkout.created"
	CheckoutPaid             EventType = "checkout.paid"
	CheckoutFailed           EventType = "checkout.failed"
	CheckoutExpired          EventType = "checkout.expired"
	PaymentAttemptCreated    EventType = "payment_attempt.created"
	PaymentAttemptProcessing EventType = "payment_attempt.processing"
	PaymentAttemptSucceeded  EventType = "payment_attempt.succeeded"
	PaymentAttemptFailed     EventType = "payment_attempt.failed"
	WebhookEndpointDisabled  EventType = "webhook_endpoint.disabled"
)

// CatalogEntry describes one event type: what it means and whether endpoints
// that did not choose their events receive it.
type CatalogEntry struct {
	Type           EventType `json:"type"`
	Description    string    `json:"description"`
	DefaultEnabled bool      `json:"default_enabled"`
}

// Catalog lists every event type in a stable order. Default on/off follows the
// seed documents: checkout.created is off because it only echoes the merchant's
// own API call; everything that reports a change the merchant did not make is on.
var Catalog = []CatalogEntry{
	{CheckoutCreated, "A checkout was created.", false},
	{CheckoutPaid, "A checkout's payment_status became paid: a payment attempt succeeded for the checkout's amount.", true},
	{CheckoutFailed, "A checkout's payment_status became failed: a payment attempt succeeded for an amount other than the checkout's. Contact the customer.", true},
	{CheckoutExpired, "An open checkout expired, at its expiry_at or on request.", true},
	{PaymentAttemptCreated, "A payment attempt was created for a checkout. No funds have moved yet.", true},
	{PaymentAttemptProcessing, "A payment attempt moved to processing.", true},
	{PaymentAttemptSucceeded, "A payment attempt succeeded.", true},
	{PaymentAttemptFailed, "A payment attempt failed; failure_code and failure_message say why.", true},
	{WebhookEndpointDisabled, "One of the merchant's webhook endpoints was disabled by hookline (it answered 410 Gone, or failed for 3 days). Sent to the merchant's other endpoints.", true},
}

// Lookup returns the catalog entry of a type, and whether the type exists.
func Lookup(t EventType) (CatalogEntry, bool) {
	for _, e := range Catalog {
		if e.Type == t {
			return e, true
		}
	}
	return CatalogEntry{}, false
}

// DefaultEnabledTypes returns the types an endpoint receives when it did not
// choose: every default-on type of the catalog as it is now.
func DefaultEnabledTypes() []EventType {
	var types []EventType
	for _, e := range Catalog {
		if e.DefaultEnabled {
			types = append(types, e.Type)
		}
	}
	return types
}

// TypeNames returns the names of every type of the catalog, in its order:
// what a statement that reads one index range per type is given.
func TypeNames() []string {
	names := make([]string, len(Catalog))
	for i, e := range Catalog {
		names[i] = string(e.Type)
	}
	return names
}

// CatalogPage returns a page of the catalog, in the catalog's order, whose
// cursors are event types: the same limit, starting_after and ending_before as
// every list. A cursor that is not a type of the catalog is an InvalidError.
func CatalogPage(page Page) (*List[CatalogEntry], error) {
	from, to := 0, len(Catalog)
	if cursor, param := page.StartingAfter, "starting_after"; cursor != "" || page.EndingBefore != "" {
		if cursor == "" {
			cursor, param = page.EndingBefore, "ending_before"
		}
		i := slices.IndexFunc(Catalog, func(e CatalogEntry) bool { return string(e.Type) == cursor })
		if i < 0 {
			return nil, &InvalidError{Param: param, Message: "is not an event type of GET /v1/event_types"}
		}
		if param == "starting_after" {
			from = i + 1
		} else {
			to = i
		}
	}
	list := &List[CatalogEntry]{}
	if page.EndingBefore != "" {
		// The page just before the cursor, still in catalog order.
		from = max(0, to-page.Limit)
		list.HasMore = from > 0
	} else {
		to = min(to, from+page.Limit)
		list.HasMore = to < len(Catalog)
	}
	list.Data = slices.Clone(Catalog[from:to])
	return list, nil
}
