package delivery

import (
	"context"
	"encoding/binary"
	"math/rand/v2"
	"net/url"
	"strings"
	"time"

	"github.com/oklog/ulid/v2"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/hookline/hookline/events"
	"github.com/hookline/hookline/events/traceparent"
)

// Span names and attributes of the fan-out and of delivery attempts (README,
// "Traces"). Spans are made only when tracing is on (a non-nil tracer): off,
// the hot path makes none, and sends a traceparent all the same.
const (
	spanFanOut  = "fan-out"
	spanAttempt = "delivery attempt"

	attrEventID    = attribute.Key("hookline.event.id")
	attrEventType  = attribute.Key("hookline.event.type")
	attrEndpointID = attribute.Key("hookline.endpoint.id")
	attrDeliveryID = attribute.Key("hookline.delivery.id")
	attrAttempt    = attribute.Key("hookline.attempt")
	attrOutcome    = attribute.Key("hookline.outcome")
	attrDeliveries = attribute.Key("hookline.deliveries")
)

// parentOf is ctx with, as its span, the span that caused the event whose
// stored traceparent is tp, in whatever process it ran; or, when the event
// has none, with no span, so that the span started from it is a new trace's
// root, never a child of whatever ctx carried (the request that led a batch
// of others' checkouts, say).
func parentOf(ctx context.Context, tp string) context.Context {
	return trace.ContextWithRemoteSpanContext(ctx, traceparent.Parse(tp))
}

// traceFanOut records one span per event of a fan-out that ran from start
// until now, with the number of deliveries it made for it (byEvent, nil when
// the fan-out failed before finding them). The events share the statements,
// so their spans share the time; each is a child of its own event's cause,
// which in a checkout batch is a different request for each.
func (d *Dispatcher) traceFanOut(ctx context.Context, evts []*events.Event, byEvent [][]destination, start time.Time, err error) {
	end := time.Now()
	for i, evt := range evts {
		attrs := []attribute.KeyValue{attrEventID.String(evt.ID), attrEventType.String(string(evt.Type))}
		if byEvent != nil {
			attrs = append(attrs, attrDeliveries.Int(len(byEvent[i])))
		}
		_, span := d.tracer.Start(parentOf(ctx, evt.Trace), spanFanOut, trace.WithTimestamp(start), trace.WithAttributes(attrs...))
		if err != nil {
			span.SetStatus(codes.Error, err.Error())
		}
		span.End(trace.WithTimestamp(end))
	}
}

// startAttempt starts the client span of t's attempt, a child of the span
// that caused its event.
func (w *Worker) startAttempt(ctx context.Context, t *target) trace.Span {
	attrs := []attribute.KeyValue{
		attrEventID.String(t.eventID), attrEventType.String(t.eventType), attrDeliveryID.String(t.deliveryID),
		attrAttempt.Int(t.attemptCount + 1), semconv.HTTPRequestMethodPost,
	}
	if t.endpointID != nil {
		attrs = append(attrs, attrEndpointID.String(*t.endpointID))
	}
	// The host only: a chat webhook's path is its credential.
	if u, err := url.Parse(t.url); err == nil {
		attrs = append(attrs, semconv.ServerAddress(u.Hostname()))
	}
	_, span := w.tracer.Start(parentOf(ctx, t.traceparent), spanAttempt, trace.WithSpanKind(trace.SpanKindClient), trace.WithAttributes(attrs...))
	return span
}

// endAttempt ends an attempt's span with what the attempt produced.
func endAttempt(span trace.Span, o *outcome) {
	kind := o.class()
	span.SetAttributes(attrOutcome.String(kind))
	if o.statusCode != 0 {
		span.SetAttributes(semconv.HTTPResponseStatusCode(o.statusCode))
	}
	if kind != outcomeSucceeded {
		span.SetAttributes(semconv.ErrorTypeKey.String(kind))
		span.SetStatus(codes.Error, o.err)
	}
	span.End()
}

// attemptTraceparent is the traceparent header of t's attempt. Tracing on,
// it is the attempt span's context, so that the receiver's spans are its
// children. Off, no span exists: the header carries the trace of the
// event's stored context (when tracing was on as the event was written)
// or, without one, a trace id that is the event id's 128 bits (a ULID), so
// that every attempt of an event shares one trace id either way, with a new
// span id and, without a stored context, the flag "sampled". hookline
// recorded nothing, but "not sampled" would tell a receiver's parent-based
// sampler (OpenTelemetry's default) to record nothing of its handler: with
// "sampled", the receiver's own tracing works as if hookline sent nothing.
func attemptTraceparent(span trace.Span, t *target) string {
	if span != nil {
		sc := span.SpanContext()
		return traceparent.Format(sc.TraceID(), sc.SpanID(), sc.TraceFlags())
	}
	if parent := traceparent.Parse(t.traceparent); parent.IsValid() {
		return traceparent.Format(parent.TraceID(), randomSpanID(), parent.TraceFlags())
	}
	return traceparent.Format(eventTraceID(t.eventID), randomSpanID(), trace.FlagsSampled)
}

// eventTraceID is the trace id of an event's attempts when it has no stored
// context: its id's ULID, or (an id that is not one) a random id.
func eventTraceID(eventID string) trace.TraceID {
	_, s, _ := strings.Cut(eventID, "_")
	id, err := ulid.ParseStrict(s)
	for err != nil || id == (ulid.ULID{}) {
		binary.BigEndian.PutUint64(id[:8], rand.Uint64()) //nolint:gosec // an identifier, not a secret
		binary.BigEndian.PutUint64(id[8:], rand.Uint64()) //nolint:gosec // an identifier, not a secret
		err = nil
	}
	return trace.TraceID(id)
}

// randomSpanID is a span id for an attempt that no span records.
func randomSpanID() trace.SpanID {
	var id trace.SpanID
	for id == (trace.SpanID{}) {
		binary.BigEndian.PutUint64(id[:], rand.Uint64()) //nolint:gosec // an identifier, not a secret
	}
	return id
}
