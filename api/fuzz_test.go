package api

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

// FuzzDecodeRequests feeds any bytes to every request body decoder: each
// must answer with a 400 naming what is wrong, never panic and never let
// an error through that would become a 500.
func FuzzDecodeRequests(f *testing.F) {
	for _, seed := range []string{
		`{"amount":"6700","invoice_currency":"usd","customer_details":{"email":"a@b.co","phone":{"country_code":"1","number":"5555555"}}}`,
		`{"amount":-1}`, `{"amount":1e400}`, `{"metadata":{"":""}}`, `{"url":"http://[::1]:80/"}`,
		`{"enabled_events":["*", null]}`, `{"grace_period_seconds":9223372036854775807}`, `[]`, `null`, `"x"`,
		`{"since":1,"until":-9223372036854775808,"dry_run":true}`, "{\"failure_code\":\"\\u0000\"}", `{"a":{"b":{"c":[[[[]]]]}}}`,
	} {
		f.Add([]byte(seed))
	}
	s := &Server{validate: newValidator()}
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, dst := range []any{&checkoutRequest{}, &attemptRequest{}, &failRequest{}, &endpointRequest{},
			&endpointUpdateRequest{}, &rotateRequest{}, &recoverRequest{}, &replayRequest{}, &struct{}{}} {
			if err := s.decode(body, dst); err != nil {
				if e := asAPIError(err); e.Status != http.StatusBadRequest {
					t.Fatalf("decode into %T: %d %v", dst, e.Status, err)
				}
			}
		}
		amount, err := parseAmount(json.RawMessage(body), "amount")
		switch {
		case err != nil:
			if e := asAPIError(err); e.Status != http.StatusBadRequest || e.Param != "amount" {
				t.Fatalf("parseAmount: %d %q", e.Status, e.Param)
			}
		case amount == "" || strings.TrimLeft(amount, "0123456789") != "" || (len(amount) > 1 && amount[0] == '0'):
			t.Fatalf("parseAmount(%q) = %q: not a canonical string of digits", body, amount)
		}
	})
}
