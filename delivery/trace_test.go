package delivery

import (
	"testing"

	"github.com/oklog/ulid/v2"
	"go.opentelemetry.io/otel/trace"

	"github.com/hookline/hookline/events/traceparent"
)

// The traceparent of an attempt made with tracing off: the event's stored
// trace and its flags when it has one (it was written while tracing was on),
// else the event id's ULID as the trace id, sampled (hookline recorded
// nothing: the flag leaves the decision to the receiver's parent-based
// sampler, which would record nothing of a "not sampled" parent); always a new span
// id, so that two attempts never claim one span.
func TestAttemptTraceparentWithTracingOff(t *testing.T) {
	t.Parallel()

	const eventID = "evt_01KBFJ2YQ3B9M6Z6S7T8V9W0XA"
	id := ulid.MustParse(eventID[4:])
	const stored = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	const unsampled = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"
	tests := []struct {
		name, eventID, stored string
		wantTrace             trace.TraceID // zero: any valid one
		wantSampled           bool
	}{
		{"stored context", eventID, stored, traceparent.Parse(stored).TraceID(), true},
		{"stored context, not sampled", eventID, unsampled, traceparent.Parse(unsampled).TraceID(), false},
		{"no stored context", eventID, "", trace.TraceID(id), true},
		{"a stored context that does not parse", eventID, "00-zz", trace.TraceID(id), true},
		{"an event id that is no ULID", "evt_x", "", trace.TraceID{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()

			target := &target{eventID: tt.eventID, traceparent: tt.stored}
			first, second := traceparent.Parse(attemptTraceparent(nil, target)), traceparent.Parse(attemptTraceparent(nil, target))
			if !first.IsValid() || !second.IsValid() {
				t.Fatalf("invalid traceparents %v, %v", first, second)
			}
			if tt.wantTrace.IsValid() && first.TraceID() != tt.wantTrace {
				t.Errorf("trace id %s, want %s", first.TraceID(), tt.wantTrace)
			}
			if first.IsSampled() != tt.wantSampled {
				t.Errorf("sampled %v, want %v", first.IsSampled(), tt.wantSampled)
			}
			if first.SpanID() == second.SpanID() || first.SpanID() == traceparent.Parse(tt.stored).SpanID() {
				t.Errorf("span ids %s and %s: want a new one for each attempt", first.SpanID(), second.SpanID())
			}
		})
	}
}
