package api_test

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hookline/hookline/schema/schematest"
)

// sseMessage is one Server-Sent Events message, or a comment.
type sseMessage struct {
	event, id, data, comment string
}

// sseClient reads an open event stream.
type sseClient struct {
	t        *testing.T
	res      *http.Response
	messages chan sseMessage
	close    context.CancelFunc
}

// stream opens GET /v1/events/stream?query with key, and Last-Event-ID when
// lastID is set. A response other than 200 is returned as it is, with a nil
// client.
func (h *harness) stream(key, query, lastID string) (*sseClient, response) {
	h.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, "GET", h.url+"/v1/events/stream"+query, nil)
	if err != nil {
		h.t.Fatal(err)
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	if res.StatusCode != http.StatusOK {
		defer cancel()
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return nil, response{status: res.StatusCode, header: res.Header, body: b}
	}
	c := &sseClient{t: h.t, res: res, messages: make(chan sseMessage, 100), close: cancel}
	h.t.Cleanup(c.Close)
	go func() {
		defer close(c.messages)
		sc := bufio.NewScanner(res.Body)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		var m sseMessage
		for sc.Scan() {
			line := sc.Text()
			field, value, _ := strings.Cut(line, ":")
			value = strings.TrimPrefix(value, " ")
			switch {
			case line == "":
				if m != (sseMessage{}) {
					c.messages <- m
				}
				m = sseMessage{}
			case field == "":
				m.comment = value
			case field == "event":
				m.event = value
			case field == "id":
				m.id = value
			case field == "data":
				m.data += value
			}
		}
	}()
	return c, response{status: res.StatusCode, header: res.Header}
}

// Close ends the stream, as a client that goes away does.
func (c *sseClient) Close() {
	c.close()
	c.res.Body.Close()
}

// next returns the next event message, skipping the others, within 30 s (a
// bounded wait, not a speed assertion: the horizon waits for other tests'
// transactions too).
func (c *sseClient) next() sseMessage {
	c.t.Helper()
	for {
		select {
		case m, ok := <-c.messages:
			if !ok {
				c.t.Fatal("the stream ended")
			}
			if m.event == "" {
				continue // a comment, or an id alone
			}
			schematest.Event(c.t, m.event, []byte(m.data))
			var env struct {
				ID   string `json:"id"`
				Type string `json:"type"`
			}
			if err := json.Unmarshal([]byte(m.data), &env); err != nil || env.ID != m.id || env.Type != m.event {
				c.t.Fatalf("message %+v: its data does not match its id and event (%v)", m, err)
			}
			return m
		case <-time.After(30 * time.Second):
			c.t.Fatal("no event within 30 s")
		}
	}
}

// expect reads the next messages and checks their types, returning them.
func (c *sseClient) expect(types ...string) []sseMessage {
	c.t.Helper()
	var got []sseMessage
	for _, want := range types {
		m := c.next()
		if m.event != want {
			c.t.Fatalf("event %s (%s) after %v, want %s", m.event, m.id, got, want)
		}
		got = append(got, m)
	}
	return got
}

// TestEventStream follows a merchant's test-mode events as they happen: in
// order, as valid envelopes of their types, none of another merchant or of
// the live mode; a stream of some types gets only those; a test event shows
// as one; and a stream resumed with Last-Event-ID gets what it missed first,
// then what comes.
func TestEventStream(t *testing.T) {
	t.Parallel()

	h := newHarness(t)
	all, res := h.stream(h.a.TestAPIKey, "", "")
	if ct := res.header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("Content-Type %q", ct)
	}
	some, _ := h.stream(h.a.TestAPIKey, "?types=payment_attempt.created,%20checkout.paid", "")

	h.do("POST", "/v1/checkouts", h.b.TestAPIKey, map[string]any{"amount": "100", "invoice_currency": "usd"}).must(t, http.StatusCreated)
	h.do("POST", "/v1/checkouts", h.a.LiveAPIKey, map[string]any{"amount": "100", "invoice_currency": "usd"}).must(t, http.StatusCreated)
	chk := h.checkout(nil)
	pat := h.attempt(chk, map[string]any{})
	h.do("POST", "/v1/payment_attempts/"+pat+"/succeed", h.a.TestAPIKey, nil).must(t, http.StatusOK)

	got := all.expect("checkout.created", "payment_attempt.created", "payment_attempt.succeeded", "checkout.paid")
	for _, m := range got {
		if !strings.Contains(m.data, `"livemode":false`) {
			t.Errorf("a test key's stream sent %s", m.data)
		}
	}
	some.expect("payment_attempt.created", "checkout.paid")

	// Gone after two events; two more, and a new checkout, while away.
	all.Close()
	h.checkout(nil)
	resumed, _ := h.stream(h.a.TestAPIKey, "", got[1].id)
	again := resumed.expect("payment_attempt.succeeded", "checkout.paid", "checkout.created")
	if again[0].id != got[2].id || again[1].id != got[3].id {
		t.Errorf("resumed with %s, then %s, want %s, %s", again[0].id, again[1].id, got[2].id, got[3].id)
	}

	ep := h.do("POST", "/v1/webhook_endpoints", h.a.TestAPIKey, map[string]any{"url": "http://127.0.0.1:9/hooks"}).
		must(t, http.StatusCreated).field(t, "id")
	h.do("POST", "/v1/webhook_endpoints/"+ep+"/send_test_event", h.a.TestAPIKey, map[string]any{"type": "checkout.expired"}).
		must(t, http.StatusAccepted)
	if m := resumed.expect("checkout.expired")[0]; !strings.Contains(m.data, `"example":true`) {
		t.Errorf("the test event streamed as %s", m.data)
	}
	// Nothing of its types meanwhile: the next event it gets is this one.
	h.attempt(h.checkout(nil), map[string]any{})
	last := some.expect("payment_attempt.created")[0]

	// A new stream's first message is the id of the last event before it,
	// alone: a client that drops before its first event resumes from there.
	fresh, _ := h.stream(h.a.TestAPIKey, "", "")
	select {
	case m := <-fresh.messages:
		if m != (sseMessage{id: last.id}) {
			t.Errorf("a new stream began with %+v, want the id %s alone", m, last.id)
		}
	case <-time.After(30 * time.Second):
		t.Error("a new stream sent nothing")
	}
}

// TestEventStreamKeepAlive: an idle stream sends comments.
func TestEventStreamKeepAlive(t *testing.T) {
	t.Parallel()

	h := newHarnessWith(t, harnessOptions{keepAlive: 50 * time.Millisecond})
	s, _ := h.stream(h.a.TestAPIKey, "", "")
	select {
	case m := <-s.messages:
		if m.comment != "keep-alive" || m.event != "" {
			t.Fatalf("an idle stream sent %+v", m)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("no keep-alive comment")
	}
}

// TestEventStreamRefusals: bad parameters and a Last-Event-ID that is not
// the key's are 400s naming them, a missing key a 401.
func TestEventStreamRefusals(t *testing.T) {
	t.Parallel()

	h := newHarness(t)
	h.do("POST", "/v1/checkouts", h.b.TestAPIKey, map[string]any{"amount": "100", "invoice_currency": "usd"}).must(t, http.StatusCreated)
	list, _ := h.do("GET", "/v1/events", h.b.TestAPIKey, nil).must(t, http.StatusOK).list(t)
	var foreign struct{ ID string }
	if err := json.Unmarshal(list[0], &foreign); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, key, query, lastID string
		status                   int
		param                    string
	}{
		{"unknown type", h.a.TestAPIKey, "?types=checkout.paid,checkout.refunded", "", http.StatusBadRequest, "types"},
		{"empty type", h.a.TestAPIKey, "?types=checkout.paid,", "", http.StatusBadRequest, "types"},
		{"unknown parameter", h.a.TestAPIKey, "?type=checkout.paid", "", http.StatusBadRequest, "type"},
		{"another merchant's event", h.a.TestAPIKey, "", foreign.ID, http.StatusBadRequest, "Last-Event-ID"},
		{"the other mode's event", h.b.LiveAPIKey, "", foreign.ID, http.StatusBadRequest, "Last-Event-ID"},
		{"not an event id", h.a.TestAPIKey, "", "42", http.StatusBadRequest, "Last-Event-ID"},
		{"not UTF-8", h.a.TestAPIKey, "", "evt_\xff", http.StatusBadRequest, "Last-Event-ID"},
		{"no key", "", "", "", http.StatusUnauthorized, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()

			c, res := h.stream(tt.key, tt.query, tt.lastID)
			if c != nil {
				t.Fatal("the stream opened")
			}
			res.must(t, tt.status)
			schematest.Object(t, "error", res.body)
			if got := res.errorParam(t); got != tt.param {
				t.Errorf("param %q, want %q: %s", got, tt.param, res.body)
			}
		})
	}
	if n := h.count("event_streams"); n != 0 {
		t.Errorf("refused streams left %d leases", n)
	}
}

// TestEventStreamLimit opens the most streams a key may have: one more is a
// 429 naming the limit, the other mode's key is not affected, and a stream
// that ends gives its place back.
func TestEventStreamLimit(t *testing.T) {
	t.Parallel()

	h := newHarness(t)
	var open []*sseClient
	for range 5 {
		s, res := h.stream(h.a.TestAPIKey, "", "")
		res.must(t, http.StatusOK)
		open = append(open, s)
	}
	_, res := h.stream(h.a.TestAPIKey, "", "")
	res.must(t, http.StatusTooManyRequests)
	schematest.Object(t, "error", res.body)
	if res.errorParam(t) != "max_event_streams" || res.header.Get("Retry-After") == "" {
		t.Errorf("the sixth stream: %s (Retry-After %q)", res.body, res.header.Get("Retry-After"))
	}
	_, res = h.stream(h.a.LiveAPIKey, "", "")
	res.must(t, http.StatusOK)

	open[0].Close()
	// The server sees the client go, then gives the place back: a bounded
	// wait.
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		s, res := h.stream(h.a.TestAPIKey, "", "")
		if s != nil {
			break
		}
		if res.status != http.StatusTooManyRequests || time.Now().After(deadline) {
			t.Fatalf("after a stream ended: %d %s", res.status, res.body)
		}
	}
}
