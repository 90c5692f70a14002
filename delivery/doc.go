// Package delivery takes events to their destinations: webhook endpoints and
// their subscriptions, the fan-out, the River worker that makes each attempt,
// Standard Webhooks signing, the retry schedule, and the outbound HTTP client
// behind its address guard.
//
// The flow: events.Publisher writes an event and calls [Dispatcher.FanOut] in
// the same transaction, which inserts one deliveries row and one River job per
// subscribed destination. The [Worker] loads everything an attempt needs in one
// query, POSTs the event's stored payload (the same bytes every attempt) with
// fresh webhook-timestamp and webhook-signature headers, then records the
// attempt, the delivery's new status and the endpoint's health in one
// transaction. A 2xx completes the job in that transaction; anything else
// returns an error and River runs the next attempt at the time Work chose
// (the schedule with jitter, or a later Retry-After) until the schedule is
// spent and the delivery is failed. Every attempt is kept in
// delivery_attempts, because River prunes finished jobs.
package delivery
