package delivery_test

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/hookline/hookline/delivery"
)

func (e *env) chatEndpoint(typ, url string, enabled []string, displayName string) {
	e.t.Helper()
	checked, err := e.endpoints.Check(context.Background(), delivery.EndpointParams{
		Type: typ, URL: url, EnabledEvents: enabled, DisplayName: &displayName,
	})
	if err != nil {
		e.t.Fatal(err)
	}
	e.tx(func(tx pgx.Tx) error {
		_, err := e.endpoints.Create(context.Background(), tx, e.scope, checked)
		return err
	})
}

// TestChatEndpoints delivers to fake Discord and Slack receivers that check
// what the real services would: the body's shape, and no signature headers.
// The Discord one first answers 429 with only a JSON retry_after, as Discord
// does, and must not be retried before it.
func TestChatEndpoints(t *testing.T) {
	t.Parallel()

	e := newEnv(t, fast, 5*time.Second)
	discord := newReceiver(t, func(n int, w http.ResponseWriter) {
		if n == 1 {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusTooManyRequests)
			_, _ = w.Write([]byte(`{"message": "You are being rate limited.", "retry_after": 1.5, "global": false}`))
			return
		}
		w.WriteHeader(http.StatusNoContent) // what Discord answers to execute webhook
	})
	slack := newReceiver(t, nil)
	// Routing per kind, as the seeds' channels: sales to one, the rest to another.
	e.chatEndpoint("discord", discord.srv.URL+"/api/webhooks/1/token", []string{"checkout.paid"}, "New project")
	e.chatEndpoint("slack", slack.srv.URL+"/services/T/B/X", []string{"payment_attempt.created", "payment_attempt.succeeded"}, "New project")
	e.pay(nil)
	deliveries := e.waitDeliveries()
	if len(deliveries) != 3 {
		t.Fatalf("%d deliveries, want 3", len(deliveries))
	}
	for _, d := range deliveries {
		if d.Status != delivery.StatusSucceeded {
			t.Errorf("delivery %s is %s", d.ID, d.Status)
		}
	}

	reqs := discord.requests()
	if len(reqs) != 2 {
		t.Fatalf("discord got %d requests, want 2 (a 429, then the retry)", len(reqs))
	}
	if gap := reqs[1].at.Sub(reqs[0].at); gap < 1500*time.Millisecond {
		t.Errorf("retried %s after Discord's retry_after of 1.5s", gap)
	}
	var body struct {
		Content string            `json:"content"`
		Embeds  []json.RawMessage `json:"embeds"`
	}
	if err := json.Unmarshal(reqs[1].body, &body); err != nil {
		t.Fatal(err)
	}
	if want := "[New project]: New successful payment for 0.86 SOL for checkout "; len(body.Content) < len(want) || body.Content[:len(want)] != want || len(body.Embeds) != 1 {
		t.Errorf("discord body %s", reqs[1].body)
	}
	for _, r := range append(reqs, slack.requests()...) {
		if r.header.Get("webhook-signature") != "" || r.header.Get("webhook-id") != "" {
			t.Errorf("a chat message carries Standard Webhooks headers: %v", r.header)
		}
	}

	var texts []string
	for _, r := range slack.requests() {
		var m struct {
			Text   string            `json:"text"`
			Blocks []json.RawMessage `json:"blocks"`
		}
		if err := json.Unmarshal(r.body, &m); err != nil || len(m.Blocks) == 0 {
			t.Fatalf("slack body %s (%v)", r.body, err)
		}
		texts = append(texts, m.Text)
	}
	want := sorted("[New project]: Payment attempt of 0.86 SOL started.", "[New project]: Payment attempt of 0.86 SOL succeeded.")
	if got := sorted(texts...); len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
		t.Errorf("slack texts %v, want %v", got, want)
	}
}

// TestChatRateLimitsPauseTheEndpoint: a Discord 429 whose rate-limit bucket
// is exhausted pauses the whole endpoint until the bucket resets, not only
// the delivery that got it; a chat webhook answering 404 (deleted) or 403
// (token revoked) is disabled at once, with the reason, and the merchant's
// other endpoints are told.
func TestChatRateLimitsPauseTheEndpoint(t *testing.T) {
	t.Parallel()

	e := newEnvWith(t, envOptions{schedule: fast, timeout: 5 * time.Second, inFlight: 1})
	discord := newReceiver(t, func(n int, w http.ResponseWriter) {
		if n == 1 {
			w.Header().Set("X-RateLimit-Remaining", "0")
			w.Header().Set("X-RateLimit-Reset-After", "2")
			w.WriteHeader(http.StatusTooManyRequests)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	deleted := newReceiver(t, func(_ int, w http.ResponseWriter) { w.WriteHeader(http.StatusNotFound) })
	revoked := newReceiver(t, func(_ int, w http.ResponseWriter) { w.WriteHeader(http.StatusForbidden) })
	told := newReceiver(t, nil)
	e.chatEndpoint("discord", discord.srv.URL+"/api/webhooks/1/token",
		[]string{"checkout.created", "payment_attempt.created", "payment_attempt.succeeded", "checkout.paid"}, "Shop")
	e.chatEndpoint("discord", deleted.srv.URL+"/api/webhooks/2/token", []string{"checkout.paid"}, "Shop")
	e.chatEndpoint("slack", revoked.srv.URL+"/services/T/B/X", []string{"checkout.paid"}, "Shop")
	e.endpoint(told.srv.URL, []string{"webhook_endpoint.disabled"})
	e.pay(nil)
	e.waitDeliveries()

	reqs := discord.requests()
	if len(reqs) != 5 { // four events, one of them twice
		t.Fatalf("discord got %d requests, want 5", len(reqs))
	}
	for i, r := range reqs[1:] {
		if gap := r.at.Sub(reqs[0].at); gap < 2*time.Second {
			t.Errorf("request %d came %s after the 429 that paused the endpoint for 2s", i+2, gap)
		}
	}
	rows, err := e.pool.Query(context.Background(), `select type, disabled_reason from webhook_endpoints where status = 'disabled' order by type`)
	if err != nil {
		t.Fatal(err)
	}
	var disabled []string
	var typ, reason string
	if _, err := pgx.ForEachRow(rows, []any{&typ, &reason}, func() error {
		disabled = append(disabled, typ+" "+reason)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if want := []string{"discord gone", "slack unauthorized"}; len(disabled) != 2 || disabled[0] != want[0] || disabled[1] != want[1] {
		t.Fatalf("disabled endpoints %v, want %v", disabled, want)
	}
	if n := len(deleted.requests()) + len(revoked.requests()); n != 2 {
		t.Errorf("the deleted and revoked webhooks got %d requests, want one each", n)
	}
	if got := told.types(); len(got) != 2 || got[0] != "webhook_endpoint.disabled" || got[1] != "webhook_endpoint.disabled" {
		t.Errorf("the merchant's webhook endpoint was told %v, want two webhook_endpoint.disabled", got)
	}
}
