package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hookline/hookline/api"
	"github.com/hookline/hookline/schema/schematest"
)

func TestCreateCheckout(t *testing.T) {
	t.Parallel()

	h := newHarness(t)
	res := h.do("POST", "/v1/checkouts", h.a.TestAPIKey, map[string]any{
		"amount":           6700, // an integer is accepted and returned as a string
		"invoice_currency": "usd",
		"customer_details": map[string]any{
			"country": "US", "email": "adam@example.com", "name": "Adam Smith",
			"phone": map[string]any{"country_code": "65", "number": "67894321"},
		},
		"transaction_description": "1 x Item",
		"reference_id":            "55679-7657",
		"metadata":                map[string]any{"order": "42"},
		"webhook_url":             "https://merchant.example/hooks",
	}).must(t, http.StatusCreated)
	schematest.Object(t, "checkout", res.body)

	var c struct {
		Amount, Status string
		Livemode       bool
	}
	if err := json.Unmarshal(res.body, &c); err != nil {
		t.Fatal(err)
	}
	if c.Amount != "6700" || c.Status != "open" || c.Livemode {
		t.Fatalf("got amount %q status %q livemode %v: %s", c.Amount, c.Status, c.Livemode, res.body)
	}

	got := h.do("GET", "/v1/checkouts/"+res.field(t, "id"), h.a.TestAPIKey, nil).must(t, http.StatusOK)
	if string(got.body) != string(res.body) {
		t.Fatalf("retrieve differs from create:\n%s\n%s", got.body, res.body)
	}

	evts, _ := h.do("GET", "/v1/events?type=checkout.created", h.a.TestAPIKey, nil).must(t, http.StatusOK).list(t)
	if len(evts) != 1 {
		t.Fatalf("%d checkout.created events, want 1", len(evts))
	}
	schematest.Event(t, "checkout.created", evts[0])
	var evt struct {
		Data json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(evts[0], &evt); err != nil {
		t.Fatal(err)
	}
	if strings.TrimSpace(string(evt.Data)) != strings.TrimSpace(string(res.body)) {
		t.Fatalf("event data is not the checkout as created:\n%s\n%s", evt.Data, res.body)
	}
}

// TestCurrencyInAnyCase: a currency code is taken in any case and stored,
// returned and sent lowercase, as Stripe does; a payment attempt's currency
// too.
func TestCurrencyInAnyCase(t *testing.T) {
	t.Parallel()

	h := newHarness(t)
	res := h.do("POST", "/v1/checkouts", h.a.TestAPIKey, map[string]any{"amount": "6700", "invoice_currency": "USD"}).
		must(t, http.StatusCreated)
	schematest.Object(t, "checkout", res.body)
	id := res.field(t, "id")
	if got := res.field(t, "invoice_currency"); got != "usd" {
		t.Errorf("invoice_currency %q, want usd", got)
	}
	if got := h.do("GET", "/v1/checkouts/"+id, h.a.TestAPIKey, nil).must(t, http.StatusOK).field(t, "invoice_currency"); got != "usd" {
		t.Errorf("retrieved invoice_currency %q, want usd", got)
	}
	evts, _ := h.do("GET", "/v1/events?type=checkout.created", h.a.TestAPIKey, nil).must(t, http.StatusOK).list(t)
	if len(evts) != 1 || !strings.Contains(string(evts[0]), `"invoice_currency":"usd"`) {
		t.Errorf("checkout.created does not carry usd: %s", evts)
	}
	pat := h.do("POST", "/v1/checkouts/"+id+"/payment_attempts", h.a.TestAPIKey, map[string]any{"currency": "Usd"}).
		must(t, http.StatusCreated)
	if got := pat.field(t, "currency"); got != "usd" {
		t.Errorf("payment attempt currency %q, want usd", got)
	}
	unknown := h.do("POST", "/v1/checkouts", h.a.TestAPIKey, map[string]any{"amount": "1", "invoice_currency": "XYZ"}).
		must(t, http.StatusBadRequest)
	var refusal struct {
		Error struct{ Param, Message string }
	}
	if err := json.Unmarshal(unknown.body, &refusal); err != nil {
		t.Fatal(err)
	}
	if msg := refusal.Error.Message; refusal.Error.Param != "invoice_currency" || !strings.Contains(msg, `"xyz"`) || !strings.Contains(msg, "ISO 4217") {
		t.Errorf("an unknown currency answered %s: want param invoice_currency and a message naming it and what is known", unknown.body)
	}
}

func TestCreateCheckoutRefusesBadInput(t *testing.T) {
	t.Parallel()

	h := newHarness(t)
	long := strings.Repeat("x", 41)
	many := map[string]any{}
	for i := range 51 {
		many[fmt.Sprint("k", i)] = "v"
	}
	ok := map[string]any{"amount": "6700", "invoice_currency": "usd"}
	with := func(k string, v any) map[string]any {
		m := map[string]any{}
		for kk, vv := range ok {
			m[kk] = vv
		}
		m[k] = v
		return m
	}
	tests := []struct {
		name      string
		body      any
		wantParam string
	}{
		{"negative amount", with("amount", "-5"), "amount"},
		{"negative integer amount", with("amount", -5), "amount"},
		{"fractional amount", with("amount", "67.5"), "amount"},
		{"fractional integer amount", with("amount", 67.5), "amount"},
		{"exponent amount", with("amount", "1e3"), "amount"},
		{"zero amount", with("amount", "0"), "amount"},
		{"boolean amount", with("amount", true), "amount"},
		{"amount over 40 digits", with("amount", strings.Repeat("9", 41)), "amount"},
		{"missing amount", map[string]any{"invoice_currency": "usd"}, "amount"},
		{"unknown currency", with("invoice_currency", "xyz"), "invoice_currency"},
		{"missing currency", map[string]any{"amount": "1"}, "invoice_currency"},
		{"bad email", with("customer_details", map[string]any{"email": "not-an-email"}), "customer_details.email"},
		{"bad country", with("customer_details", map[string]any{"country": "USA"}), "customer_details.country"},
		{"phone with letters", with("customer_details", map[string]any{"phone": map[string]any{"country_code": "65", "number": "abc4567"}}), "customer_details.phone.number"},
		{"customer_details not an object", with("customer_details", "adam"), "customer_details"},
		{"51 metadata keys", with("metadata", many), "metadata"},
		{"41-character metadata key", with("metadata", map[string]any{long: "v"}), "metadata[" + long + "]"},
		{"501-character metadata value", with("metadata", map[string]any{"k": strings.Repeat("v", 501)}), "metadata[k]"},
		{"metadata value not a string", with("metadata", map[string]any{"k": 5}), "metadata"},
		{"expiry in the past", with("expiry_at", time.Now().Add(-time.Minute).Unix()), "expiry_at"},
		{"expiry over 30 days", with("expiry_at", time.Now().Add(31*24*time.Hour).Unix()), "expiry_at"},
		{"ftp webhook_url", with("webhook_url", "ftp://merchant.example/hooks"), "webhook_url"},
		{"webhook_url not a URL", with("webhook_url", "merchant hooks"), "webhook_url"},
		{"webhook_url over 2048 characters", with("webhook_url", "https://m.example/"+strings.Repeat("a", 2048)), "webhook_url"},
		{"unknown field", with("colour", "red"), "colour"},
		{"NUL in a description", with("transaction_description", "a\x00b"), "transaction_description"},
		{"NUL in a customer's name", with("customer_details", map[string]any{"name": "a\x00b"}), "customer_details.name"},
		{"NUL in a metadata value", with("metadata", map[string]any{"k": "a\x00b"}), "metadata[k]"},
		{"NUL in a metadata key", with("metadata", map[string]any{"k\x00": "v"}), "metadata[k\x00]"},
		{"malformed JSON", `{"amount": "1",`, ""},
		{"an array", `[1, 2]`, ""},
		{"two objects", `{"amount":"1","invoice_currency":"usd"} {}`, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()

			res := h.do("POST", "/v1/checkouts", h.a.TestAPIKey, tt.body).must(t, http.StatusBadRequest)
			schematest.Object(t, "error", res.body)
			if got := res.errorParam(t); got != tt.wantParam {
				t.Errorf("param = %q, want %q: %s", got, tt.wantParam, res.body)
			}
		})
	}
	t.Cleanup(func() {
		for _, table := range []string{"checkouts", "events", "river_job"} {
			if n := h.count(table); n != 0 {
				t.Errorf("%d rows in %s after refused requests, want 0", n, table)
			}
		}
	})
}

func TestRequestRules(t *testing.T) {
	t.Parallel()

	h := newHarness(t)
	tests := []struct {
		name   string
		method string
		path   string
		key    string
		body   any
		header []string
		want   int
	}{
		{"no key", "GET", "/v1/checkouts", "", nil, nil, http.StatusUnauthorized},
		{"unknown key", "GET", "/v1/checkouts", "sk_test_unknown", nil, nil, http.StatusUnauthorized},
		{"not a key", "GET", "/v1/checkouts", "hello", nil, nil, http.StatusUnauthorized},
		{"body over 1 MiB", "POST", "/v1/checkouts", h.a.TestAPIKey,
			`{"amount":"1","invoice_currency":"usd","reference_id":"` + strings.Repeat("x", 1<<20) + `"}`, nil, http.StatusRequestEntityTooLarge},
		{"not JSON", "POST", "/v1/checkouts", h.a.TestAPIKey, `amount=1`, []string{"Content-Type", "application/x-www-form-urlencoded"}, http.StatusUnsupportedMediaType},
		{"wrong method", "DELETE", "/v1/checkouts", h.a.TestAPIKey, nil, nil, http.StatusMethodNotAllowed},
		{"unknown route", "GET", "/v1/nothing", h.a.TestAPIKey, nil, nil, http.StatusNotFound},
		{"limit 0", "GET", "/v1/checkouts?limit=0", h.a.TestAPIKey, nil, nil, http.StatusBadRequest},
		{"limit 101", "GET", "/v1/checkouts?limit=101", h.a.TestAPIKey, nil, nil, http.StatusBadRequest},
		{"both cursors", "GET", "/v1/checkouts?starting_after=a&ending_before=b", h.a.TestAPIKey, nil, nil, http.StatusBadRequest},
		{"unknown query parameter", "GET", "/v1/checkouts?colour=red", h.a.TestAPIKey, nil, nil, http.StatusBadRequest},
		{"unknown event type filter", "GET", "/v1/events?type=checkout.nope", h.a.TestAPIKey, nil, nil, http.StatusBadRequest},
		// Postgres's text refuses NUL and bytes that are not UTF-8: each would
		// have reached a query as a 500.
		{"NUL in an id", "GET", "/v1/checkouts/chk_%00", h.a.TestAPIKey, nil, nil, http.StatusBadRequest},
		{"NUL in a write's id", "POST", "/v1/checkouts/chk_%00/expire", h.a.TestAPIKey, nil, nil, http.StatusBadRequest},
		{"NUL in a cursor", "GET", "/v1/checkouts?starting_after=chk_%00", h.a.TestAPIKey, nil, nil, http.StatusBadRequest},
		{"NUL in an operator's id", "POST", "/v1/operator/deliveries/dlv_%00/retry", "", nil, []string{"Authorization", "Bearer " + operatorToken}, http.StatusBadRequest},
		{"not UTF-8 in an id", "GET", "/v1/webhook_endpoints/we_%FF", h.a.TestAPIKey, nil, nil, http.StatusBadRequest},
		{"not UTF-8 in a write's id", "POST", "/v1/webhook_endpoints/we_%C3/send_test_event", h.a.TestAPIKey, nil, nil, http.StatusBadRequest},
		{"not UTF-8 in a cursor", "GET", "/v1/events?starting_after=evt_%FF", h.a.TestAPIKey, nil, nil, http.StatusBadRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()

			res := h.do(tt.method, tt.path, tt.key, tt.body, tt.header...).must(t, tt.want)
			schematest.Object(t, "error", res.body)
		})
	}
}

func TestListCheckoutsPages(t *testing.T) {
	t.Parallel()

	h := newHarness(t)
	var ids []string // oldest first
	for range 5 {
		ids = append(ids, h.checkout(nil))
	}
	ids1 := func(data []json.RawMessage) []string {
		var out []string
		for _, d := range data {
			var o struct{ ID string }
			if err := json.Unmarshal(d, &o); err != nil {
				t.Fatal(err)
			}
			out = append(out, o.ID)
		}
		return out
	}
	tests := []struct {
		name     string
		query    string
		want     []string
		wantMore bool
	}{
		{"first page, newest first", "limit=2", []string{ids[4], ids[3]}, true},
		{"after a cursor", "limit=2&starting_after=" + ids[3], []string{ids[2], ids[1]}, true},
		{"last page", "limit=2&starting_after=" + ids[1], []string{ids[0]}, false},
		{"before a cursor", "limit=2&ending_before=" + ids[1], []string{ids[3], ids[2]}, true},
		{"everything", "limit=100", []string{ids[4], ids[3], ids[2], ids[1], ids[0]}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()

			data, more := h.do("GET", "/v1/checkouts?"+tt.query, h.a.TestAPIKey, nil).must(t, http.StatusOK).list(t)
			if got := ids1(data); fmt.Sprint(got) != fmt.Sprint(tt.want) || more != tt.wantMore {
				t.Errorf("got %v has_more %v, want %v has_more %v", got, more, tt.want, tt.wantMore)
			}
			for _, d := range data {
				schematest.Object(t, "checkout", d)
			}
		})
	}
}

// TestListEventTypesPages pages through the catalog, whose cursors are event
// types, like every list.
func TestListEventTypesPages(t *testing.T) {
	t.Parallel()

	h := newHarness(t)
	tests := []struct {
		name     string
		query    string
		want     []string
		wantMore bool
	}{
		{"first page", "limit=2", []string{"checkout.created", "checkout.paid"}, true},
		{"after a cursor", "limit=2&starting_after=checkout.paid", []string{"checkout.failed", "checkout.expired"}, true},
		{"last page", "starting_after=payment_attempt.failed", []string{"webhook_endpoint.disabled"}, false},
		{"before a cursor", "limit=2&ending_before=checkout.expired", []string{"checkout.paid", "checkout.failed"}, true},
		{"first page before a cursor", "limit=5&ending_before=checkout.paid", []string{"checkout.created"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()

			data, more := h.do("GET", "/v1/event_types?"+tt.query, h.a.TestAPIKey, nil).must(t, http.StatusOK).list(t)
			var got []string
			for _, d := range data {
				var et struct{ Type string }
				if err := json.Unmarshal(d, &et); err != nil {
					t.Fatal(err)
				}
				got = append(got, et.Type)
			}
			if fmt.Sprint(got) != fmt.Sprint(tt.want) || more != tt.wantMore {
				t.Errorf("got %v has_more %v, want %v has_more %v", got, more, tt.want, tt.wantMore)
			}
		})
	}
	for _, param := range []string{"starting_after", "ending_before"} {
		r := h.do("GET", "/v1/event_types?"+param+"=checkout.nope", h.a.TestAPIKey, nil).must(t, http.StatusBadRequest)
		if r.errorParam(t) != param {
			t.Errorf("unknown %s: error names %q", param, r.errorParam(t))
		}
	}
}

func TestExpireCheckout(t *testing.T) {
	t.Parallel()

	h := newHarness(t)
	id := h.checkout(nil)
	res := h.do("POST", "/v1/checkouts/"+id+"/expire", h.a.TestAPIKey, nil).must(t, http.StatusOK)
	schematest.Object(t, "checkout", res.body)
	if s := res.field(t, "status"); s != "expired" {
		t.Fatalf("status %s, want expired", s)
	}
	h.do("POST", "/v1/checkouts/"+id+"/expire", h.a.TestAPIKey, nil).must(t, http.StatusConflict)
	h.do("POST", "/v1/checkouts/"+id+"/payment_attempts", h.a.TestAPIKey, nil).must(t, http.StatusConflict)
	h.do("POST", "/v1/checkouts/chk_01ARZ3NDEKTSV4RRFFQ69G5FAV/expire", h.a.TestAPIKey, nil).must(t, http.StatusNotFound)

	evts, _ := h.do("GET", "/v1/events?type=checkout.expired", h.a.TestAPIKey, nil).must(t, http.StatusOK).list(t)
	if len(evts) != 1 {
		t.Fatalf("%d checkout.expired events, want 1 (the refused second expiry must emit nothing)", len(evts))
	}
	schematest.Event(t, "checkout.expired", evts[0])
}

// TestPaymentFlows drives attempts through the state machine over the API and
// checks the events each step emits, in order.
func TestPaymentFlows(t *testing.T) {
	t.Parallel()

	tests := []struct {
		name          string
		attempt       map[string]any
		steps         []string // actions: process, succeed, fail
		wantStatus    string   // of the attempt
		wantCheckout  [2]string
		wantEvents    []string // after checkout.created, oldest first
		wantRefusedAt int      // index of a step that must answer 409, or -1
	}{
		{"paid", map[string]any{}, []string{"process", "succeed"}, "succeeded", [2]string{"completed", "paid"},
			[]string{"payment_attempt.created", "payment_attempt.processing", "payment_attempt.succeeded", "checkout.paid"}, -1},
		{"paid without processing", map[string]any{}, []string{"succeed"}, "succeeded", [2]string{"completed", "paid"},
			[]string{"payment_attempt.created", "payment_attempt.succeeded", "checkout.paid"}, -1},
		{"amount mismatch fails the checkout", map[string]any{"amount": "6000"}, []string{"succeed"}, "succeeded", [2]string{"completed", "failed"},
			[]string{"payment_attempt.created", "payment_attempt.succeeded", "checkout.failed"}, -1},
		{"attempt fails", map[string]any{"payment_method": "sol_wallet"}, []string{"process", "fail"}, "failed", [2]string{"open", "unpaid"},
			[]string{"payment_attempt.created", "payment_attempt.processing", "payment_attempt.failed"}, -1},
		{"no processing after success", map[string]any{}, []string{"succeed", "process"}, "succeeded", [2]string{"completed", "paid"},
			[]string{"payment_attempt.created", "payment_attempt.succeeded", "checkout.paid"}, 1},
		{"no success after failure", map[string]any{}, []string{"fail", "succeed"}, "failed", [2]string{"open", "unpaid"},
			[]string{"payment_attempt.created", "payment_attempt.failed"}, 1},
		{"no processing twice", map[string]any{}, []string{"process", "process"}, "processing", [2]string{"open", "unpaid"},
			[]string{"payment_attempt.created", "payment_attempt.processing"}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()

			h := newHarness(t)
			chk := h.checkout(nil)
			pat := h.attempt(chk, tt.attempt)
			for i, step := range tt.steps {
				var body any
				if step == "fail" {
					body = map[string]any{"failure_code": "insufficient_funds", "failure_message": "The wallet is short."}
				}
				want := http.StatusOK
				if i == tt.wantRefusedAt {
					want = http.StatusConflict
				}
				h.do("POST", "/v1/payment_attempts/"+pat+"/"+step, h.a.TestAPIKey, body).must(t, want)
			}
			a := h.do("GET", "/v1/payment_attempts/"+pat, h.a.TestAPIKey, nil).must(t, http.StatusOK)
			schematest.Object(t, "payment_attempt", a.body)
			if s := a.field(t, "status"); s != tt.wantStatus {
				t.Errorf("attempt status %s, want %s", s, tt.wantStatus)
			}
			c := h.do("GET", "/v1/checkouts/"+chk, h.a.TestAPIKey, nil).must(t, http.StatusOK)
			if got := [2]string{c.field(t, "status"), c.field(t, "payment_status")}; got != tt.wantCheckout {
				t.Errorf("checkout %v, want %v", got, tt.wantCheckout)
			}

			data, _ := h.do("GET", "/v1/events?limit=100", h.a.TestAPIKey, nil).must(t, http.StatusOK).list(t)
			var types []string
			for i := len(data) - 1; i >= 0; i-- { // oldest first
				var e struct{ Type string }
				if err := json.Unmarshal(data[i], &e); err != nil {
					t.Fatal(err)
				}
				schematest.Event(t, e.Type, data[i])
				types = append(types, e.Type)
			}
			want := append([]string{"checkout.created"}, tt.wantEvents...)
			if fmt.Sprint(types) != fmt.Sprint(want) {
				t.Errorf("events %v, want %v", types, want)
			}
		})
	}
}

func TestCreateAttemptRefusesBadInput(t *testing.T) {
	t.Parallel()

	h := newHarness(t)
	chk := h.checkout(nil)
	tests := []struct {
		name      string
		body      any
		wantParam string
	}{
		{"other currency", map[string]any{"currency": "eur"}, "currency"},
		{"negative amount", map[string]any{"amount": "-1"}, "amount"},
		{"unknown field", map[string]any{"card": "4242"}, "card"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()

			res := h.do("POST", "/v1/checkouts/"+chk+"/payment_attempts", h.a.TestAPIKey, tt.body).must(t, http.StatusBadRequest)
			if got := res.errorParam(t); got != tt.wantParam {
				t.Errorf("param %q, want %q", got, tt.wantParam)
			}
		})
	}
	t.Run("fail needs a failure_code", func(t *testing.T) {
		t.Parallel()

		pat := h.attempt(chk, map[string]any{})
		res := h.do("POST", "/v1/payment_attempts/"+pat+"/fail", h.a.TestAPIKey, map[string]any{}).must(t, http.StatusBadRequest)
		if got := res.errorParam(t); got != "failure_code" {
			t.Errorf("param %q, want failure_code", got)
		}
	})
}

func TestEventsAndCatalog(t *testing.T) {
	t.Parallel()

	h := newHarness(t)
	h.checkout(nil)
	data, _ := h.do("GET", "/v1/events", h.a.TestAPIKey, nil).must(t, http.StatusOK).list(t)
	if len(data) != 1 {
		t.Fatalf("%d events, want 1", len(data))
	}
	var e struct{ ID string }
	if err := json.Unmarshal(data[0], &e); err != nil {
		t.Fatal(err)
	}
	one := h.do("GET", "/v1/events/"+e.ID, h.a.TestAPIKey, nil).must(t, http.StatusOK)
	schematest.Event(t, "checkout.created", one.body)
	h.do("GET", "/v1/events/evt_01ARZ3NDEKTSV4RRFFQ69G5FAV", h.a.TestAPIKey, nil).must(t, http.StatusNotFound)

	types, more := h.do("GET", "/v1/event_types", h.a.TestAPIKey, nil).must(t, http.StatusOK).list(t)
	if len(types) != 9 || more {
		t.Fatalf("%d event types (has_more %v), want 9", len(types), more)
	}
	for _, raw := range types {
		schematest.Object(t, "event_type", raw)
		var et struct {
			Type   string
			Schema map[string]any
		}
		if err := json.Unmarshal(raw, &et); err != nil {
			t.Fatal(err)
		}
		if et.Schema["title"] != et.Type {
			t.Errorf("%s is served with the schema titled %v", et.Type, et.Schema["title"])
		}
	}
}

func TestAccount(t *testing.T) {
	t.Parallel()

	h := newHarness(t)
	res := h.do("GET", "/v1/account", h.a.LiveAPIKey, nil).must(t, http.StatusOK)
	schematest.Object(t, "account", res.body)
	if res.field(t, "id") != h.a.ID || res.field(t, "webhook_secret") != h.a.WebhookSecret {
		t.Fatalf("account %s is not merchant %s", res.body, h.a.ID)
	}
	// A test key reads the test secret only: test keys go to contractors and
	// CI, and must never obtain what signs live deliveries.
	res = h.do("GET", "/v1/account", h.a.TestAPIKey, nil).must(t, http.StatusOK)
	schematest.Object(t, "account", res.body)
	if got := res.field(t, "webhook_secret"); got != h.a.TestWebhookSecret || got == h.a.WebhookSecret {
		t.Fatal("a test key read a secret other than the account's test secret")
	}
	if strings.Contains(string(res.body), h.a.WebhookSecret) {
		t.Fatal("a test key's account shows the live secret")
	}
}

func TestIdempotencyKey(t *testing.T) {
	t.Parallel()

	h := newHarness(t)
	body := map[string]any{"amount": "100", "invoice_currency": "eur"}
	first := h.do("POST", "/v1/checkouts", h.a.TestAPIKey, body, "Idempotency-Key", "k1").must(t, http.StatusCreated)
	again := h.do("POST", "/v1/checkouts", h.a.TestAPIKey, body, "Idempotency-Key", "k1").must(t, http.StatusCreated)
	if string(again.body) != string(first.body) || again.header.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("replay differs or is unmarked:\n%s\n%s", first.body, again.body)
	}
	if n := h.count("checkouts"); n != 1 {
		t.Fatalf("%d checkouts after a replayed request, want 1", n)
	}
	if n := h.count("events"); n != 1 {
		t.Fatalf("%d events after a replayed request, want 1", n)
	}
	h.do("POST", "/v1/checkouts", h.a.TestAPIKey, map[string]any{"amount": "200", "invoice_currency": "eur"},
		"Idempotency-Key", "k1").must(t, http.StatusConflict)
	h.do("POST", "/v1/checkouts/"+first.field(t, "id")+"/expire", h.a.TestAPIKey, nil,
		"Idempotency-Key", "k1").must(t, http.StatusConflict)
	// Keys are per merchant and mode: the same key elsewhere is a new request.
	h.do("POST", "/v1/checkouts", h.a.LiveAPIKey, body, "Idempotency-Key", "k1").must(t, http.StatusCreated)
	h.do("POST", "/v1/checkouts", h.b.TestAPIKey, body, "Idempotency-Key", "k1").must(t, http.StatusCreated)
	// A refused request stores nothing: the key stays free.
	h.do("POST", "/v1/checkouts", h.a.TestAPIKey, map[string]any{"amount": "-1", "invoice_currency": "eur"},
		"Idempotency-Key", "k2").must(t, http.StatusBadRequest)
	h.do("POST", "/v1/checkouts", h.a.TestAPIKey, body, "Idempotency-Key", "k2").must(t, http.StatusCreated)
}

// TestTenantIsolation walks every route that takes an id with another
// merchant's id, and with the other mode's: each must answer 404, exactly as
// for an id that does not exist.
func TestTenantIsolation(t *testing.T) {
	t.Parallel()

	h := newHarness(t)
	chk := h.checkout(nil)
	pat := h.attempt(chk, map[string]any{})
	data, _ := h.do("GET", "/v1/events", h.a.TestAPIKey, nil).must(t, http.StatusOK).list(t)
	var evt struct{ ID string }
	if err := json.Unmarshal(data[0], &evt); err != nil {
		t.Fatal(err)
	}
	ep := decodeEndpoint(t, h.do("POST", "/v1/webhook_endpoints", h.a.TestAPIKey,
		map[string]any{"url": "http://127.0.0.1:9/hooks"}).must(t, http.StatusCreated))
	h.attempt(chk, map[string]any{}) // a delivery to ep
	dlvs, _ := h.do("GET", "/v1/deliveries", h.a.TestAPIKey, nil).must(t, http.StatusOK).list(t)
	var dlv struct{ ID string }
	if err := json.Unmarshal(dlvs[0], &dlv); err != nil {
		t.Fatal(err)
	}
	routes := []struct {
		method, path string
		body         any
	}{
		{"GET", "/v1/checkouts/" + chk, nil},
		{"POST", "/v1/checkouts/" + chk + "/expire", nil},
		{"POST", "/v1/checkouts/" + chk + "/payment_attempts", nil},
		{"GET", "/v1/payment_attempts/" + pat, nil},
		{"POST", "/v1/payment_attempts/" + pat + "/process", nil},
		{"POST", "/v1/payment_attempts/" + pat + "/succeed", nil},
		{"POST", "/v1/payment_attempts/" + pat + "/fail", map[string]any{"failure_code": "x"}},
		{"GET", "/v1/events/" + evt.ID, nil},
		{"GET", "/v1/webhook_endpoints/" + ep.ID, nil},
		{"GET", "/v1/webhook_endpoints/" + ep.ID + "/stats", nil},
		{"PATCH", "/v1/webhook_endpoints/" + ep.ID, nil},
		{"DELETE", "/v1/webhook_endpoints/" + ep.ID, nil},
		{"POST", "/v1/webhook_endpoints/" + ep.ID + "/rotate_secret", nil},
		{"POST", "/v1/webhook_endpoints/" + ep.ID + "/send_test_event", nil},
		{"GET", "/v1/deliveries/" + dlv.ID, nil},
		{"POST", "/v1/deliveries/" + dlv.ID + "/retry", nil},
		{"POST", "/v1/webhook_endpoints/" + ep.ID + "/recover", map[string]any{"since": time.Now().Add(-time.Hour).Unix()}},
		{"POST", "/v1/webhook_endpoints/" + ep.ID + "/replay", map[string]any{"since": time.Now().Add(-time.Hour).Unix()}},
	}
	keys := map[string]string{"other merchant": h.b.TestAPIKey, "other merchant live": h.b.LiveAPIKey, "same merchant live mode": h.a.LiveAPIKey}
	for name, key := range keys {
		for _, r := range routes {
			t.Run(name+" "+r.method+" "+r.path, func(t *testing.T) {
				t.Parallel()

				h.do(r.method, r.path, key, r.body).must(t, http.StatusNotFound)
			})
		}
		t.Run(name+" lists", func(t *testing.T) {
			t.Parallel()

			for _, path := range []string{"/v1/checkouts", "/v1/events", "/v1/events?delivery_success=false", "/v1/webhook_endpoints", "/v1/deliveries",
				"/v1/deliveries?endpoint=" + ep.ID, "/v1/deliveries?event=" + evt.ID, "/v1/checkouts?starting_after=" + chk} {
				if data, _ := h.do("GET", path, key, nil).must(t, http.StatusOK).list(t); len(data) != 0 {
					t.Errorf("%s lists %d of merchant a's test objects", path, len(data))
				}
			}
		})
	}
	t.Cleanup(func() {
		var status string
		if err := h.pool.QueryRow(context.Background(), "select status from checkouts where id = $1", chk).Scan(&status); err != nil {
			t.Error(err)
		}
		if status != "open" {
			t.Errorf("foreign requests changed the checkout to %s", status)
		}
		var epStatus string
		var deleted bool
		if err := h.pool.QueryRow(context.Background(), "select status, deleted_at is not null from webhook_endpoints where id = $1", ep.ID).
			Scan(&epStatus, &deleted); err != nil {
			t.Error(err)
		}
		if epStatus != "enabled" || deleted {
			t.Errorf("foreign requests changed the endpoint: status %s, deleted %v", epStatus, deleted)
		}
	})
}

func TestHealth(t *testing.T) {
	t.Parallel()

	h := newHarness(t)
	h.do("GET", "/healthz", "", nil).must(t, http.StatusOK)
	h.do("GET", "/readyz", "", nil).must(t, http.StatusOK)
}

func TestRateLimitPerKey(t *testing.T) {
	t.Parallel()

	h := newHarnessWith(t, harnessOptions{token: operatorToken, limit: api.RateLimit{Rate: 0.5, Burst: 3}})
	for range 3 {
		h.do("GET", "/v1/checkouts", h.a.TestAPIKey, nil).must(t, http.StatusOK)
	}
	res := h.do("GET", "/v1/checkouts", h.a.TestAPIKey, nil).must(t, http.StatusTooManyRequests)
	schematest.Object(t, "error", res.body)
	if ra := res.header.Get("Retry-After"); ra != "2" && ra != "1" {
		t.Errorf("Retry-After %q, want the 1–2 s until the next token", ra)
	}
	// Buckets are per key: the other mode's key and another merchant's are untouched.
	h.do("GET", "/v1/checkouts", h.a.LiveAPIKey, nil).must(t, http.StatusOK)
	h.do("GET", "/v1/checkouts", h.b.TestAPIKey, nil).must(t, http.StatusOK)
	// Refused requests took no token and created nothing.
	h.do("POST", "/v1/checkouts", h.a.TestAPIKey, map[string]any{"amount": "1", "invoice_currency": "usd"}).must(t, http.StatusTooManyRequests)
	if n := h.count("checkouts"); n != 0 {
		t.Errorf("%d checkouts created over the limit", n)
	}
	h.do("GET", "/v1/checkouts?"+strings.Repeat("x", 2100), h.b.TestAPIKey, nil).must(t, http.StatusRequestURITooLong)
}
