// Package stream keeps a process's open event streams (GET
// /v1/events/stream, which `hookline listen` reads): a lease per stream in
// Postgres, so that an API key has at most MaxPerKey streams across every API
// process, and one poller per process that wakes the streams whose
// merchant and mode have new events.
//
// The flow: the API authenticates a stream request and opens a [Stream]
// ([Hub.Open]: the lease, or ErrTooMany), takes its cursor (the
// Last-Event-ID's place in the log, or now: events.StreamStart) and reads the
// events after it (events.ReadStream) until none is left; then it waits, with
// no database connection, for the hub's wake-up, a keep-alive tick or the
// end. The hub, meanwhile, reads the head of every scope with a stream in
// one statement per PollInterval (events.StreamHeads) and wakes the streams
// of each scope whose head moved. Reading from the stream's own cursor, in
// the log's commit-safe order (see events.StreamCursor), is what makes a
// stream gap-free and repeat-free; the hub only says when to read.
package stream
