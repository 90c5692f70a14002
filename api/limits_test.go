package api_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/hookline/hookline/schema/schematest"
)

// refusedForLimit checks that r is contract §9's answer to a create past the
// endpoint limit: 400, limit_reached, param naming the limit, a message.
func refusedForLimit(t *testing.T, r response) {
	t.Helper()
	r.must(t, http.StatusBadRequest)
	schematest.Object(t, "error", r.body)
	var e struct {
		Error struct{ Type, Code, Message, Param string } `json:"error"`
	}
	if err := json.Unmarshal(r.body, &e); err != nil {
		t.Fatal(err)
	}
	if e.Error.Type != "invalid_request_error" || e.Error.Code != "limit_reached" || e.Error.Param != "max_endpoints" ||
		!strings.Contains(e.Error.Message, "3 webhook endpoints") {
		t.Fatalf("refused with %+v, want invalid_request_error limit_reached naming max_endpoints and its value", e.Error)
	}
}

// TestEndpointLimit: with HOOKLINE_MAX_ENDPOINTS at 3, a merchant's fourth
// endpoint in a mode is a 400 limit_reached that writes nothing; disabled
// endpoints count, deleted ones do not, and the other mode and the other
// merchant have places of their own.
func TestEndpointLimit(t *testing.T) {
	t.Parallel()

	h := newHarnessWith(t, harnessOptions{token: operatorToken, maxEndpoints: 3})
	create := func(key string) response {
		t.Helper()
		return h.do("POST", "/v1/webhook_endpoints", key, map[string]any{"url": "http://127.0.0.1:9/hooks"})
	}
	var ids []string
	for range 3 {
		ids = append(ids, decodeEndpoint(t, create(h.a.TestAPIKey).must(t, http.StatusCreated)).ID)
	}
	h.do("PATCH", "/v1/webhook_endpoints/"+ids[0], h.a.TestAPIKey, map[string]any{"status": "disabled"}).must(t, http.StatusOK)

	rows := h.count("webhook_endpoints")
	refusedForLimit(t, create(h.a.TestAPIKey))
	// Under an Idempotency-Key too, and the refusal is what a retry replays.
	refusedForLimit(t, h.do("POST", "/v1/webhook_endpoints", h.a.TestAPIKey, map[string]any{"url": "http://127.0.0.1:9/hooks"},
		"Idempotency-Key", "limit-1"))
	if got := h.count("webhook_endpoints"); got != rows {
		t.Fatalf("refused creates left %d endpoint rows, want %d", got, rows)
	}

	create(h.a.LiveAPIKey).must(t, http.StatusCreated)
	create(h.b.TestAPIKey).must(t, http.StatusCreated)

	h.do("DELETE", "/v1/webhook_endpoints/"+ids[1], h.a.TestAPIKey, nil).must(t, http.StatusOK)
	create(h.a.TestAPIKey).must(t, http.StatusCreated)
	refusedForLimit(t, create(h.a.TestAPIKey))
}

// TestEndpointLimitUnderConcurrentCreates sends more creates at once than the
// limit allows: exactly the limit's worth succeed, whatever their order, and
// the rest are refused.
func TestEndpointLimitUnderConcurrentCreates(t *testing.T) {
	t.Parallel()

	h := newHarnessWith(t, harnessOptions{token: operatorToken, maxEndpoints: 3})
	h.do("POST", "/v1/webhook_endpoints", h.a.TestAPIKey, map[string]any{"url": "http://127.0.0.1:9/hooks"}).must(t, http.StatusCreated)

	const creates = 12
	statuses := make(chan int, creates)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for range creates {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, _ := http.NewRequest("POST", h.url+"/v1/webhook_endpoints", strings.NewReader(`{"url":"http://127.0.0.1:9/hooks"}`))
			req.Header.Set("Authorization", "Bearer "+h.a.TestAPIKey)
			req.Header.Set("Content-Type", "application/json")
			<-start
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Error(err)
				return
			}
			res.Body.Close()
			statuses <- res.StatusCode
		}()
	}
	close(start)
	wg.Wait()
	close(statuses)
	counts := map[int]int{}
	for s := range statuses {
		counts[s]++
	}
	if counts[http.StatusCreated] != 2 || counts[http.StatusBadRequest] != creates-2 {
		t.Errorf("answers %v, want 2 × 201 (the places left) and %d × 400", counts, creates-2)
	}
	if got := h.count("webhook_endpoints where merchant_id = '" + h.a.ID + "' and not livemode and deleted_at is null"); got != 3 {
		t.Errorf("%d endpoints after the concurrent creates, want the limit, 3", got)
	}
}
