package traceparent

import (
	"context"
	"testing"

	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// valid is the example of the W3C recommendation.
const valid = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

func TestParse(t *testing.T) {
	t.Parallel()

	tests := []struct {
		name, in string
		ok       bool
	}{
		{"the W3C example", valid, true},
		{"not sampled", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00", true},
		{"empty", "", false},
		{"uppercase hex", "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01", false},
		{"uppercase flags", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0A", false},
		{"a zero trace id", "00-00000000000000000000000000000000-00f067aa0ba902b7-01", false},
		{"a zero span id", "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01", false},
		{"another version", "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", false},
		{"too long", valid + "-", false},
		{"a separator missing", "00-4bf92f3577b34da6a3ce929d0e0e4736x00f067aa0ba902b7-01", false},
		{"not hex", "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()

			sc := Parse(tt.in)
			if sc.IsValid() != tt.ok {
				t.Fatalf("Parse(%q) valid = %v, want %v", tt.in, sc.IsValid(), tt.ok)
			}
			if tt.ok && (!sc.IsRemote() || Format(sc.TraceID(), sc.SpanID(), sc.TraceFlags()) != tt.in) {
				t.Fatalf("Parse(%q) = %v, which formats back as %q", tt.in, sc, Format(sc.TraceID(), sc.SpanID(), sc.TraceFlags()))
			}
		})
	}
}

// TestFormatAgreesWithThePropagator checks Format and FromContext against
// OpenTelemetry's own W3C propagator, which receivers use to read the header.
func TestFormatAgreesWithThePropagator(t *testing.T) {
	t.Parallel()

	if FromContext(context.Background()) != "" {
		t.Fatal("a context without a span has a traceparent")
	}
	for _, flags := range []trace.TraceFlags{0, trace.FlagsSampled} {
		sc := trace.NewSpanContext(trace.SpanContextConfig{
			TraceID: trace.TraceID{0x4b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6, 0xa3, 0xce, 0x92, 0x9d, 0x0e, 0x0e, 0x47, 0x36},
			SpanID:  trace.SpanID{0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7}, TraceFlags: flags,
		})
		ctx := trace.ContextWithSpanContext(context.Background(), sc)
		carrier := propagation.MapCarrier{}
		propagation.TraceContext{}.Inject(ctx, carrier)
		if got := FromContext(ctx); got != carrier.Get("traceparent") {
			t.Errorf("FromContext = %q, the propagator writes %q", got, carrier.Get("traceparent"))
		}
		read := trace.SpanContextFromContext(propagation.TraceContext{}.Extract(context.Background(), carrier))
		if !Parse(carrier.Get("traceparent")).Equal(read) {
			t.Errorf("Parse = %v, the propagator reads %v", Parse(carrier.Get("traceparent")), read)
		}
	}
}
