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
