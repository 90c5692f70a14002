package delivery

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/hookline/hookline/events"
)

// Limits of an endpoint's custom headers (contract §6).
const (
	maxHeaders         = 20
	maxHeaderNameLen   = 64
	maxHeaderValueLen  = 1024
	authorizationField = "authorization"
)

// reservedHeaders are the names a merchant may not set: hookline's own
// (the signature, the body's type and length, who sends it, the W3C trace
// context every delivery carries) and the hop-by-hop ones, which belong to
// the connection, not the request.
var reservedHeaders = map[string]bool{
	"content-type": true, "content-length": true, "host": true, "user-agent": true, "connection": true,
	"transfer-encoding": true, "te": true, "upgrade": true, "keep-alive": true, "trailer": true,
	"traceparent": true, "tracestate": true,
}

// reserved says whether a merchant may not set the header name: one of
// reservedHeaders, or a webhook-* or proxy-* name.
func reserved(name string) bool {
	lower := strings.ToLower(name)
	return reservedHeaders[lower] || strings.HasPrefix(lower, "webhook-") || strings.HasPrefix(lower, "proxy-")
}

// checkHeaders refuses a custom header set that breaks contract §6's rules,
// naming the header.
func checkHeaders(headers map[string]string) error {
	if len(headers) > maxHeaders {
		return &events.InvalidError{Param: "headers", Message: fmt.Sprintf("at most %d headers", maxHeaders)}
	}
	seen := map[string]string{}
	for _, name := range slices.Sorted(maps.Keys(headers)) {
		param := "headers." + name
		lower := strings.ToLower(name)
		switch {
		case len(name) > maxHeaderNameLen || !IsToken(name):
			return &events.InvalidError{Param: param, Message: fmt.Sprintf("a header name is 1 to %d letters, digits or !#$%%&'*+-.^_`|~", maxHeaderNameLen)}
		case reserved(name):
			return &events.InvalidError{Param: param, Message: name + " is set by hookline or by the connection, not by an endpoint"}
		case seen[lower] != "":
			return &events.InvalidError{Param: param, Message: "the same header as " + seen[lower] + " (names are case-insensitive)"}
		case len(headers[name]) > maxHeaderValueLen || !isPrintable(headers[name]):
			return &events.InvalidError{Param: param, Message: fmt.Sprintf("a header value is at most %d printable ASCII characters", maxHeaderValueLen)}
		}
		seen[lower] = name
	}
	return nil
}

// IsToken says whether s is an HTTP token (RFC 9110, 5.6.2), as a header's
// name must be: custom headers here, OTEL_EXPORTER_OTLP_HEADERS in cmd.
func IsToken(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune("!#$%&'*+-.^_`|~", c)) {
			return false
		}
	}
	return true
}

func isPrintable(s string) bool {
	for _, c := range s {
		if c < 0x20 || c > 0x7e {
			return false
		}
	}
	return true
}

// maskedHeaders is headers with every value hidden: what an event that
// describes an endpoint carries.
func maskedHeaders(headers map[string]string) map[string]string {
	out := make(map[string]string, len(headers))
	for name := range headers {
		out[name] = "****"
	}
	return out
}

// maskAuthorization is how an authorization header is shown once stored:
// its scheme and, for a token long enough that they give little away, its
// last four characters ("Bearer ****abcd"). A Basic credential shows none:
// it is base64, whose last characters are the password's.
func maskAuthorization(value string) string {
	scheme, credential, ok := strings.Cut(value, " ")
	if !ok {
		scheme, credential = "", value
	}
	mask := "****"
	if len(credential) >= 16 && !strings.EqualFold(scheme, "basic") {
		mask += credential[len(credential)-4:]
	}
	if scheme == "" {
		return mask
	}
	return scheme + " " + mask
}

// storedHeaders splits a custom header set as it is stored: the headers as
// shown (an authorization value masked), and the authorization value,
// sealed for the endpoint, or nil. keep is the sealed value already stored:
// an authorization that comes back as its own mask (a client sending back
// what it read) keeps it.
func (m *Endpoints) storedHeaders(endpointID string, headers map[string]string, shown map[string]string, keep *string) (map[string]string, *string) {
	out := make(map[string]string, len(headers))
	var sealed *string
	for name, value := range headers {
		switch {
		case strings.ToLower(name) != authorizationField:
			out[name] = value
		case keep != nil && shownAuthorization(shown) == value:
			out[name], sealed = value, keep
		default:
			s := m.keyring.Seal(endpointID, value)
			out[name], sealed = maskAuthorization(value), &s
		}
	}
	return out, sealed
}

// shownAuthorization is the masked authorization among headers as shown,
// whatever the case of its name, or "".
func shownAuthorization(shown map[string]string) string {
	for name, value := range shown {
		if strings.ToLower(name) == authorizationField {
			return value
		}
	}
	return ""
}
