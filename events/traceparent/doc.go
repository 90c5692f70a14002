// Package traceparent reads and writes W3C Trace Context's traceparent
// (https://www.w3.org/TR/trace-context/#traceparent-header): the form in
// which an event keeps the trace context of the span that caused it (the
// events.traceparent column), and the header every delivery sends.
//
// It is written by hand rather than through the OpenTelemetry propagator,
// which works on a context and a carrier: the delivery worker formats one
// header per attempt whether or not tracing is on, and this does it with one
// allocation.
package traceparent
