package traceparent

import (
	"context"
	"encoding/hex"

	"go.opentelemetry.io/otel/trace"
)

// length is the length of a version-00 traceparent:
// 00-<32 hex trace id>-<16 hex span id>-<2 hex flags>.
const length = 55

// Format is the version-00 traceparent of a trace id, a span id and trace
// flags.
func Format(traceID trace.TraceID, spanID trace.SpanID, flags trace.TraceFlags) string {
	var b [length]byte
	b[0], b[1], b[2] = '0', '0', '-'
	hex.Encode(b[3:35], traceID[:])
	b[35] = '-'
	hex.Encode(b[36:52], spanID[:])
	b[52] = '-'
	hex.Encode(b[53:55], []byte{byte(flags)})
	return string(b[:])
}

// FromContext is the traceparent of ctx's span, or "" when ctx carries none
// (tracing is off, or nothing traced the caller).
func FromContext(ctx context.Context) string {
	sc := trace.SpanContextFromContext(ctx)
	if !sc.IsValid() {
		return ""
	}
	return Format(sc.TraceID(), sc.SpanID(), sc.TraceFlags())
}

// Parse reads a version-00 traceparent into a remote span context, which is
// invalid (IsValid false) when s is not one: empty, malformed, or with an
// all-zero trace or span id.
func Parse(s string) trace.SpanContext {
	if len(s) != length || s[0] != '0' || s[1] != '0' || s[2] != '-' || s[35] != '-' || s[52] != '-' {
		return trace.SpanContext{}
	}
	traceID, err := trace.TraceIDFromHex(s[3:35])
	if err != nil {
		return trace.SpanContext{}
	}
	spanID, err := trace.SpanIDFromHex(s[36:52])
	if err != nil {
		return trace.SpanContext{}
	}
	if !isLowerHex(s[53:55]) {
		return trace.SpanContext{}
	}
	var flags [1]byte
	_, _ = hex.Decode(flags[:], []byte(s[53:55])) // lowercase hex: cannot fail
	return trace.NewSpanContext(trace.SpanContextConfig{TraceID: traceID, SpanID: spanID, TraceFlags: trace.TraceFlags(flags[0]), Remote: true})
}

// isLowerHex reports whether s is lowercase hexadecimal, as W3C requires.
func isLowerHex(s string) bool {
	for _, c := range s {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}
