// Package api is hookline's REST API (contract §2): an adapter from HTTP to the
// events and delivery packages.
//
// One route table (server.go) and one file per resource. Handlers return
// (object, error); [Server.renderError] makes an error the response, in
// Stripe's shape (the dashboard's pages, [Server.dashboardError], as an
// error page), both through [Server.failure], which logs the cause of a 5xx
// and never sends it.
// GET handlers read through the pool. Every POST runs in one database
// transaction, opened by the route wrapper, that also claims its
// Idempotency-Key: the state change, its events, their deliveries and the stored
// response commit together or not at all. POST /v1/checkouts without an
// Idempotency-Key shares its transaction with concurrent ones instead
// (events.CheckoutBatcher), with the same all-or-nothing commit.
//
// Authentication (API keys, the operator token, dashboard logins) is refused
// with 429 for a client address (the TCP peer, or behind trusted proxies the
// address they append to X-Forwarded-For) past 20 failures a minute before any
// credential is looked up, and each authentication holds one of its address's
// 20 places while it runs, so that concurrent guesses cannot pass the limit
// (authlimit.go); then each key has a token bucket (ratelimit.go).
//
// GET /v1/events/stream (stream.go) is the one response that lasts: it is
// registered outside the (object, error) wrappers, takes a place among its
// key's streams (the stream package), and writes Server-Sent Events read from
// the log in stream order (events.ReadStream) until the client goes or the
// process stops, each write with a deadline of its own.
//
// With tracing on (Config.Tracer), ServeHTTP makes each request (but the
// probes and /metrics) a server span named by its route, the root of a new
// trace linked to the caller's traceparent if it sent one (the API is a
// public endpoint: callers choose neither hookline's trace ids nor its
// sampling); the events a request writes keep that span's context
// (events.Event.Trace), which their deliveries descend from.
package api
