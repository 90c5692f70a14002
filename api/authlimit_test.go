package api_test

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
)

// TestFailedAuthenticationsAreThrottled sends 20 wrong credentials of each
// kind from one address (the test's loopback client): each is a 401; the
// next request from that address is a 429 with Retry-After, even with a good
// credential, and answers without the database (the pool is closed by then:
// a query would be a 500).
func TestFailedAuthenticationsAreThrottled(t *testing.T) {
	t.Parallel()

	tests := []struct {
		name string
		fail func(h *harness) int
		good func(h *harness) int
	}{
		{"API keys", func(h *harness) int {
			return h.do("GET", "/v1/account", "sk_test_"+strings.Repeat("x", 32), nil).status
		}, func(h *harness) int {
			return h.do("GET", "/v1/account", h.a.TestAPIKey, nil).status
		}},
		{"operator token", func(h *harness) int {
			return h.do("GET", "/v1/operator/endpoints?failing=true", "not-the-operator-token", nil).status
		}, func(h *harness) int {
			return h.do("GET", "/v1/operator/endpoints?failing=true", operatorToken, nil).status
		}},
		{"dashboard login", func(h *harness) int {
			return postForm(t, h.url+"/dashboard/login", url.Values{"token": {"not-the-operator-token"}}).StatusCode
		}, func(h *harness) int {
			return postForm(t, h.url+"/dashboard/login", url.Values{"token": {operatorToken}}).StatusCode
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()

			h := newHarness(t)
			for i := range 20 {
				if status := tt.fail(h); status != http.StatusUnauthorized {
					t.Fatalf("failure %d: %d, want 401", i+1, status)
				}
			}
			h.pool.Close()
			res := h.do("GET", "/v1/account", "sk_test_"+strings.Repeat("y", 32), nil).must(t, http.StatusTooManyRequests)
			if after, err := strconv.Atoi(res.header.Get("Retry-After")); err != nil || after < 1 || after > 60 {
				t.Errorf("Retry-After %q, want 1 to 60 seconds", res.header.Get("Retry-After"))
			}
			if status := tt.good(h); status != http.StatusTooManyRequests {
				t.Errorf("a good credential from the throttled address: %d, want 429", status)
			}
			if status := tt.fail(h); status != http.StatusTooManyRequests {
				t.Errorf("one more failure: %d, want 429", status)
			}
		})
	}
}

// postForm posts a form without following the redirect.
func postForm(t *testing.T, to string, form url.Values) *http.Response {
	t.Helper()
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	res, err := client.PostForm(to, form)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	return res
}
