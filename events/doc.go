// Package events is hookline's domain: merchants and their keys, checkouts,
// payment attempts and their state machines, and the event log that every state
// change writes to.
//
// The flow every write follows: the caller (the API, or a River job such as
// checkout expiry) opens a pgx.Tx; a Service method changes an object and calls
// [Publisher.Publish] in that same transaction, which writes the evt_ row and
// hands it to the [Fanout] (the delivery package) to enqueue its deliveries,
// still in that transaction. Commit makes the change, its event and its
// deliveries visible together; a rollback leaves none of them. The event row
// keeps the W3C trace context of the span that caused it (Event.Trace, the
// traceparent package), so that its deliveries' spans descend from it.
//
// Creating checkouts, the API's busiest write, can also go through a
// [CheckoutBatcher], which writes the checkouts of concurrent requests in one
// transaction ([Publisher.PublishMany] for their events): the same flow, with
// one statement per table for the whole batch.
//
// Two more ways out of the log: a test event (Service.PublishExample) is
// made from its type's schema example and addressed to one endpoint; and the
// event stream reads the log in stream order (stream.go), each event once
// every transaction that began before its own has ended.
package events
