// Package delivery takes events to their destinations: webhook endpoints and
// their subscriptions, the fan-out, the River worker that makes each attempt,
// Standard Webhooks signing, the retry schedule, and the outbound HTTP client
// behind its address guard.
//
// The flow: events.Publisher writes an event and calls [Dispatcher.FanOut] in
// the same transaction, which inserts one deliveries row and one River job per
// subscribed destination. The [Worker] loads everything an attempt needs in one
// query, takes a slot of its destination's in-flight cap (or snoozes without
// spending an attempt), POSTs the event's stored payload (the same bytes every
// attempt; a rendered chat message for Discord and Slack) with fresh
// webhook-timestamp and webhook-signature headers, then records the attempt
// and the delivery's new status, in one statement, or in one transaction with
// the endpoint's health when that changes. A 2xx returns nil and River
// completes the job; anything else returns an error and River runs the next
// attempt at the time Work chose (the schedule with jitter, or a later
// Retry-After) until the schedule is spent and the delivery is failed. Every
// attempt is kept in delivery_attempts, because River prunes finished jobs;
// recovery (RecoverWorker) and retention (PruneWorker) are River jobs too.
package delivery
