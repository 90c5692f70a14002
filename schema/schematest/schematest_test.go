package schematest

import (
	"strings"
	"testing"
)

// TestResponse shows that Response rejects answers the generated client
// would decode without complaint: a missing required field, a null where
// the spec allows none, a status or media type the operation does not have.
// Each valid body passes, so each rejection is the tampering's doing.
func TestResponse(t *testing.T) {
	t.Parallel()

	const failing = `{"id":"we_01ARZ3NDEKTSV4RRFFQ69G5FAV","object":"failing_endpoint","merchant_id":"acct_01ARZ3NDEKTSV4RRFFQ69G5FAV",
		"livemode":false,"url":"https://example.com/hooks","status":"disabled","disabled_reason":"gone","failing_since":null,
		"failed_deliveries":3,"pending_deliveries":0,"last_error":null,"last_status_code":410,"last_attempt_at":1764680000}`
	list := func(fields string) string {
		return `{"object":"list","data":[` + failing + `],` + fields + `}`
	}
	for _, tc := range []struct {
		name        string
		method      string
		path        string
		status      int
		contentType string
		body        string
		wantErr     string // "" for valid
	}{
		{"list", "GET", "/v1/operator/endpoints", 200, "application/json", list(`"has_more":false,"url":"/v1/operator/endpoints"`), ""},
		{"list without has_more", "GET", "/v1/operator/endpoints", 200, "application/json", list(`"url":"/v1/operator/endpoints"`), "has_more"},
		{"list without url", "GET", "/v1/operator/endpoints", 200, "application/json", list(`"has_more":false`), "url"},
		{"null merchant_id", "GET", "/v1/operator/endpoints", 200, "application/json",
			strings.Replace(list(`"has_more":false,"url":"/v1/operator/endpoints"`), `"acct_01ARZ3NDEKTSV4RRFFQ69G5FAV"`, "null", 1), "merchant_id"},
		{"missing failing_since", "GET", "/v1/operator/endpoints", 200, "application/json",
			strings.Replace(list(`"has_more":false,"url":"/v1/operator/endpoints"`), `"failing_since":null,`, "", 1), "failing_since"},
		{"enable", "POST", "/v1/operator/endpoints/we_01ARZ3NDEKTSV4RRFFQ69G5FAV/enable", 200, "application/json",
			`{"id":"we_01ARZ3NDEKTSV4RRFFQ69G5FAV","object":"webhook_endpoint","status":"enabled"}`, ""},
		{"enable without status", "POST", "/v1/operator/endpoints/we_01ARZ3NDEKTSV4RRFFQ69G5FAV/enable", 200, "application/json",
			`{"id":"we_01ARZ3NDEKTSV4RRFFQ69G5FAV","object":"webhook_endpoint"}`, "status"},
		{"error, by its $ref", "GET", "/v1/checkouts/chk_01ARZ3NDEKTSV4RRFFQ69G5FAV", 404, "application/json; charset=utf-8",
			`{"error":{"type":"invalid_request_error","code":"resource_missing","message":"No such checkout.","param":"id"}}`, ""},
		{"error without its body", "GET", "/v1/checkouts/chk_01ARZ3NDEKTSV4RRFFQ69G5FAV", 404, "application/json", `{}`, "error"},
		{"another media type", "GET", "/v1/checkouts", 200, "text/plain", `ok`, "Content-Type"},
		{"stream", "GET", "/v1/events/stream", 200, "text/event-stream", ``, ""},
		{"no such operation", "PUT", "/v1/checkouts", 200, "application/json", `{}`, "no operation"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := Response(tc.method, tc.path, tc.status, tc.contentType, []byte(tc.body))
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("valid body rejected: %v", err)
			case tc.wantErr != "" && err == nil:
				t.Fatalf("accepted, want an error naming %q", tc.wantErr)
			case tc.wantErr != "" && !strings.Contains(err.Error(), tc.wantErr):
				t.Fatalf("error %v does not name %q", err, tc.wantErr)
			}
		})
	}
}
