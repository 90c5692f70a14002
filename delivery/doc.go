// Package delivery takes events to their destinations: webhook endpoints and
// their subscriptions, the fan-out, the River worker that makes the attempts,
// the parking and release of what a destination cannot take yet, Standard
// Webhooks signing, the retry schedule, and the outbound HTTP client behind
// its address guard.
//
// The flow: events.Publisher writes an event and calls [Dispatcher.FanOut] in
// the same transaction, which inserts one deliveries row per subscribed
// destination and River jobs by destination: one job carries up to jobSize
// deliveries of one destination across the transaction's events (a batch of
// checkouts shares its transaction), each with the attempt count it was made
// for. The [Worker] loads everything its attempts need in one query, and
// makes them one after another within a send budget, POSTing the event's
// stored payload (a rendered chat message for Discord and Slack) with fresh
// webhook-timestamp and webhook-signature headers (signing.go: v1 HMAC or
// v1a Ed25519, by the endpoint's scheme, or for a checkout's own webhook_url
// the account secret of the delivery's mode). Then it records every
// attempt where the delivery's count is still the job's (a compare-and-set:
// each attempt number is recorded once, whichever job makes it, and a
// succeeded delivery never goes back), in one statement when all were
// acknowledged, otherwise in one transaction with the jobs of the next
// attempts (the schedule with jitter, or a later Retry-After), until the
// schedule is spent and the delivery is failed, and with the endpoints'
// health. The same statement tallies the attempts it recorded, and a
// periodic fold ([FoldStats]) adds the tallies to the endpoints' statistics
// (endpoint_stats, a rollup per endpoint and minute or hour with a latency
// histogram), which [EndpointStats] reads without touching
// delivery_attempts.
//
// Isolation: a process's limiter admits at most HOOKLINE_ENDPOINT_CONCURRENCY
// jobs of one destination, sharing as many in-flight slots, and holds a
// merchant to a share of the workers while the pool is contended. A job it
// does not admit (a healthy destination's job waits up to placeWait for a
// place first) parks its deliveries: they stay rows (deliveries.parked),
// with no job, and cost the queue nothing; the destination's admitted jobs
// then work them (Worker.drain), claimed with a lease. So are the deliveries
// of a destination that is paused (it answered 429 or 503 with Retry-After,
// or its probes fail), which the fan-out parks at once, and of the jobs
// still queued for a destination a job found failing: it withdraws
// them from the queue (withdraw.go), so that a tenant's burst to a dead
// endpoint does not stand in front of the others' jobs. The periodic
// [ReleaseWorker] hands parked deliveries new jobs, destination by
// destination: one probe per probe interval (doubling up to five minutes) to
// a destination that fails every attempt, and to the others a batch that
// doubles while the destination keeps up and halves when it was found
// saturated. Recovery (RecoverWorker) and retention (PruneWorker) are River
// jobs too, and so is the reconciler (ReconcileWorker), which gives a job to
// any pending delivery that a fault left without one.
//
// Traces (trace.go): every attempt sends a W3C traceparent. With tracing on
// (a tracer given to NewDispatcher and the Worker), the fan-out makes a span
// per event and each attempt a client span, both children of the span whose
// context the event kept (the API request that wrote it), read with the
// attempt's other data by the same query; off, no span is made, and the
// header is formatted from the event alone.
//
// A test event ([Dispatcher.SendTestEvent]) takes the same path: it is
// published (events.Service.PublishExample) addressed to one endpoint, and
// the fan-out gives it that endpoint as its only destination.
//
// A replay ([Dispatcher.PlanReplay] counts it, [Dispatcher.StartReplay]
// starts it) takes it as well: it gives a window of a merchant's events new
// deliveries to one endpoint, a batch of 1,000 events per transaction
// ([ReplayWorker] works the batches after the request's first), through the
// fan-out's own enqueue; another endpoint's test events are left out.
// [ListUndelivered] lists the events with a delivery not succeeded (GET
// /v1/events?delivery_success=false) over deliveries_unsucceeded_idx
// (migration 016), whose deliveries carry their event's type; the periodic
// fill ([FillEventTypesWorker]) types those written without it.
package delivery
