// Package delivery takes events to their destinations: webhook endpoints and
// their subscriptions, the fan-out, the River worker that makes the attempts,
// Standard Webhooks signing, the retry schedule, and the outbound HTTP client
// behind its address guard.
//
// The flow: events.Publisher writes an event and calls [Dispatcher.FanOut] in
// the same transaction, which inserts one deliveries row per subscribed
// destination and one River job per event for them all (the same statements
// for one event or a batch of them). The [Worker] loads everything
// the job's attempts need in one query, and makes them side by side: each
// takes a slot of its destination's in-flight cap (waiting briefly, or else
// deferred to a later job without spending an attempt), POSTs the event's
// stored payload (the same bytes every attempt; a rendered chat message for
// Discord and Slack) with fresh webhook-timestamp and webhook-signature
// headers (signing.go: v1 HMAC or v1a Ed25519, by the endpoint's scheme, or
// for a checkout's own webhook_url the account secret of the delivery's
// mode). Then it records every attempt and each delivery's new status: in
// one statement when all were acknowledged, otherwise in one transaction with
// the job of the next attempt (the schedule with jitter, or a later
// Retry-After), until the schedule is spent and the delivery is failed, and
// with the endpoints' health. River completes the job when Work returns; a
// job that runs again after a crash skips the deliveries it had recorded
// (deliveries.attempted_by_job). Every attempt is kept in delivery_attempts,
// because River prunes finished jobs; recovery (RecoverWorker) and retention
// (PruneWorker) are River jobs too.
package delivery
