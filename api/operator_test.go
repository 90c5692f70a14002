package api_test

import (
	"encoding/json"
	"net/http"
	"testing"
	"time"
)

func TestRecoverEndpoint(t *testing.T) {
	t.Parallel()

	h := newHarness(t)
	ep := decodeEndpoint(t, h.do("POST", "/v1/webhook_endpoints", h.a.TestAPIKey,
		map[string]any{"url": "http://127.0.0.1:9/hooks"}).must(t, http.StatusCreated))
	path := "/v1/webhook_endpoints/" + ep.ID + "/recover"
	now := time.Now().Unix()

	res := h.do("POST", path, h.a.TestAPIKey, map[string]any{"since": now - 3600, "until": now}).must(t, http.StatusAccepted)
	if string(res.body) != `{"matched":0,"retried":0}`+"\n" {
		t.Fatalf("recover answered %s", res.body)
	}
	tests := []struct {
		name      string
		body      any
		wantParam string
	}{
		{"missing since", map[string]any{}, "since"},
		{"window over 14 days", map[string]any{"since": now - 15*86400}, "since"},
		{"until before since", map[string]any{"since": now, "until": now - 60}, "until"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()

			if got := h.do("POST", path, h.a.TestAPIKey, tt.body).must(t, http.StatusBadRequest).errorParam(t); got != tt.wantParam {
				t.Errorf("param %q, want %q", got, tt.wantParam)
			}
		})
	}
	t.Run("another merchant's endpoint", func(t *testing.T) {
		t.Parallel()

		h.do("POST", path, h.b.TestAPIKey, map[string]any{"since": now - 60}).must(t, http.StatusNotFound)
	})
}

func TestOperatorAPI(t *testing.T) {
	t.Parallel()

	h := newHarness(t)
	ep := decodeEndpoint(t, h.do("POST", "/v1/webhook_endpoints", h.b.LiveAPIKey,
		map[string]any{"url": "http://127.0.0.1:9/hooks"}).must(t, http.StatusCreated))
	chk := h.do("POST", "/v1/checkouts", h.b.LiveAPIKey, map[string]any{"amount": "1", "invoice_currency": "usd"}).
		must(t, http.StatusCreated).field(t, "id")
	h.do("POST", "/v1/checkouts/"+chk+"/expire", h.b.LiveAPIKey, nil).must(t, http.StatusOK) // a delivery to ep
	if _, err := h.pool.Exec(t.Context(), `update webhook_endpoints set status = 'disabled', disabled_reason = 'gone',
		failing_since = now() where id = $1`, ep.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := h.pool.Exec(t.Context(), `update deliveries set status = 'failed'`); err != nil {
		t.Fatal(err)
	}

	var failing struct {
		Data []struct {
			ID         string `json:"id"`
			MerchantID string `json:"merchant_id"`
		} `json:"data"`
	}
	res := h.do("GET", "/v1/operator/endpoints?failing=true", operatorToken, nil).must(t, http.StatusOK)
	if err := json.Unmarshal(res.body, &failing); err != nil || len(failing.Data) != 1 ||
		failing.Data[0].ID != ep.ID || failing.Data[0].MerchantID != h.b.ID {
		t.Fatalf("failing endpoints %s (%v)", res.body, err)
	}
	var deliveries struct {
		Data []struct {
			ID        string `json:"id"`
			EventType string `json:"event_type"`
		} `json:"data"`
	}
	res = h.do("GET", "/v1/operator/deliveries?status=failed", operatorToken, nil).must(t, http.StatusOK)
	if err := json.Unmarshal(res.body, &deliveries); err != nil || len(deliveries.Data) != 1 || deliveries.Data[0].EventType != "checkout.expired" {
		t.Fatalf("failed deliveries %s (%v)", res.body, err)
	}

	jobs := h.count("river_job")
	h.do("POST", "/v1/operator/deliveries/"+deliveries.Data[0].ID+"/retry", operatorToken, nil).must(t, http.StatusAccepted)
	if got := h.count("river_job"); got != jobs+1 {
		t.Fatalf("operator retry enqueued %d jobs, want 1", got-jobs)
	}
	recoverBody := map[string]any{"since": time.Now().Add(-time.Hour).Unix(), "dry_run": true}
	h.do("POST", "/v1/operator/endpoints/"+ep.ID+"/recover", operatorToken, recoverBody).must(t, http.StatusConflict) // disabled
	h.do("POST", "/v1/operator/endpoints/"+ep.ID+"/enable", operatorToken, nil).must(t, http.StatusOK)
	res = h.do("POST", "/v1/operator/endpoints/"+ep.ID+"/recover", operatorToken, recoverBody).must(t, http.StatusAccepted)
	if string(res.body) != `{"matched":1,"retried":0}`+"\n" {
		t.Fatalf("dry-run recovery answered %s", res.body)
	}
	got := decodeEndpoint(t, h.do("GET", "/v1/webhook_endpoints/"+ep.ID, h.b.LiveAPIKey, nil).must(t, http.StatusOK))
	if got.Status != "enabled" || got.DisabledReason != nil {
		t.Fatalf("after the operator enabled it: %+v", got)
	}

	for _, tt := range []struct {
		name string
		key  string
		want int
	}{
		{"no token", "", http.StatusUnauthorized},
		{"wrong token", "op-token-for-tests-not", http.StatusUnauthorized},
		{"a merchant's key", h.a.LiveAPIKey, http.StatusUnauthorized},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()

			h.do("GET", "/v1/operator/deliveries", tt.key, nil).must(t, tt.want)
			h.do("POST", "/v1/operator/endpoints/"+ep.ID+"/enable", tt.key, nil).must(t, tt.want)
		})
	}
	for _, q := range []string{"?status=lost", "?limit=0", "?limit=501", "?colour=red"} {
		h.do("GET", "/v1/operator/deliveries"+q, operatorToken, nil).must(t, http.StatusBadRequest)
	}
	h.do("GET", "/v1/operator/endpoints", operatorToken, nil).must(t, http.StatusBadRequest)
	h.do("POST", "/v1/operator/deliveries/dlv_01ARZ3NDEKTSV4RRFFQ69G5FAV/retry", operatorToken, nil).must(t, http.StatusNotFound)
	h.do("POST", "/v1/operator/endpoints/we_01ARZ3NDEKTSV4RRFFQ69G5FAV/enable", operatorToken, nil).must(t, http.StatusNotFound)
}

func TestOperatorAPIIsOffWithoutToken(t *testing.T) {
	t.Parallel()

	h := newHarnessWith(t, harnessOptions{})
	for _, path := range []string{"/v1/operator/deliveries", "/v1/operator/endpoints?failing=true"} {
		for _, key := range []string{"", "anything", h.a.TestAPIKey} {
			if res := h.do("GET", path, key, nil); res.status != http.StatusNotFound {
				t.Errorf("GET %s with %q: %d, want 404 while the operator API is off", path, key, res.status)
			}
		}
	}
}
