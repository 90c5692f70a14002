package api_test

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
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

// TestConcurrentFailuresStopAtTheLimit sends 100 wrong API keys at once from
// one address: however they interleave, exactly 20 are looked up (401) and
// every other one answers 429, as does the next request. Checking the limit
// and counting a failure apart would let every request that arrives before
// the first failure is counted past the check.
func TestConcurrentFailuresStopAtTheLimit(t *testing.T) {
	t.Parallel()

	h := newHarness(t)
	statuses := h.concurrently(100, "sk_test_"+strings.Repeat("x", 32))
	if statuses[http.StatusUnauthorized] != 20 || statuses[http.StatusTooManyRequests] != 80 {
		t.Errorf("answers %v, want exactly 20 401s and 80 429s", statuses)
	}
	h.do("GET", "/v1/account", h.a.TestAPIKey, nil).must(t, http.StatusTooManyRequests)
}

// TestConcurrentGoodRequestsAreNotThrottled sends 100 requests with a good
// key at once from one address, with no failure and with 19 failures (one
// short of the limit) behind it: every one is a 200. Authentications under
// way hold the limit's places only while they run: good traffic may wait for
// a place, never be refused for one.
func TestConcurrentGoodRequestsAreNotThrottled(t *testing.T) {
	t.Parallel()

	for _, failures := range []int{0, 19} {
		t.Run(strconv.Itoa(failures)+" failures", func(t *testing.T) {
			t.Parallel()

			h := newHarness(t)
			for range failures {
				h.do("GET", "/v1/account", "sk_test_"+strings.Repeat("x", 32), nil).must(t, http.StatusUnauthorized)
			}
			if statuses := h.concurrently(100, h.a.TestAPIKey); statuses[http.StatusOK] != 100 {
				t.Errorf("answers %v, want 100 200s", statuses)
			}
		})
	}
}

// concurrently sends n GET /v1/account with key at once and counts the
// answers by status (0: no answer).
func (h *harness) concurrently(n int, key string) map[int]int {
	h.t.Helper()
	var (
		mu       sync.Mutex
		statuses = map[int]int{}
		wg       sync.WaitGroup
	)
	for range n {
		wg.Go(func() {
			status := 0
			req, err := http.NewRequest("GET", h.url+"/v1/account", nil)
			if err == nil {
				req.Header.Set("Authorization", "Bearer "+key)
				var res *http.Response
				if res, err = http.DefaultClient.Do(req); err == nil {
					res.Body.Close()
					status = res.StatusCode
				}
			}
			if err != nil {
				h.t.Error(err)
			}
			mu.Lock()
			statuses[status]++
			mu.Unlock()
		})
	}
	wg.Wait()
	return statuses
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
