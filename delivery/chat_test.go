package delivery

import (
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"
)

// payload builds a stored event envelope of type t with data.
func payload(t *testing.T, typ string, data map[string]any) []byte {
	t.Helper()
	b, err := json.Marshal(map[string]any{"id": "evt_1", "object": "event", "type": typ, "created_at": 1, "livemode": true, "data": data})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func checkout(amount, currency, description string) map[string]any {
	return map[string]any{"id": "chk_1", "object": "checkout", "amount": amount, "invoice_currency": currency,
		"transaction_description": description, "reference_id": "55679-7657",
		"customer_details": map[string]any{"name": "Adam Smith", "email": "adam@example.com"}}
}

func attempt(amount, currency string) map[string]any {
	return map[string]any{"id": "pat_1", "object": "payment_attempt", "checkout": "chk_1", "amount": amount, "currency": currency,
		"payment_method": "sol_wallet", "failure_code": "insufficient_funds", "failure_message": "The wallet is short."}
}

func TestChatMessages(t *testing.T) {
	t.Parallel()

	tests := []struct {
		name     string
		typ      string
		data     map[string]any
		sentence string
		colour   int
	}{
		{"seed 000: checkout.paid in SOL", "checkout.paid", checkout("860000000", "sol", "simple test product"),
			"[New project]: New successful payment for 0.86 SOL for simple test product.", colourSuccess},
		{"checkout.paid in USD", "checkout.paid", checkout("6700", "usd", "1 x Item"),
			"[New project]: New successful payment for 67 USD for 1 x Item.", colourSuccess},
		{"checkout.paid in JPY (0 decimals)", "checkout.paid", checkout("5000", "jpy", "tea"),
			"[New project]: New successful payment for 5000 JPY for tea.", colourSuccess},
		{"checkout.paid in ETH (18 decimals)", "checkout.paid", checkout("1500000000000000000", "eth", "NFT"),
			"[New project]: New successful payment for 1.5 ETH for NFT.", colourSuccess},
		{"huge ETH amount", "checkout.paid", checkout("123456789012345678901234567890", "eth", "a whale"),
			"[New project]: New successful payment for 123456789012.34567890123456789 ETH for a whale.", colourSuccess},
		{"a checkout without description names its reference", "checkout.paid", checkout("6705", "usd", ""),
			"[New project]: New successful payment for 67.05 USD for 55679-7657.", colourSuccess},
		{"checkout.failed", "checkout.failed", checkout("6700", "usd", "1 x Item"),
			"[New project]: Payment for 1 x Item did not match the checkout's 67 USD: contact the customer.", colourFailure},
		{"checkout.created", "checkout.created", checkout("6700", "usd", "1 x Item"),
			"[New project]: New checkout for 67 USD for 1 x Item.", colourNeutral},
		{"checkout.expired", "checkout.expired", checkout("1005", "kwd", "dates"),
			"[New project]: Checkout for 1.005 KWD for dates expired unpaid.", colourNeutral},
		{"payment_attempt.created", "payment_attempt.created", attempt("150000000", "btc"),
			"[New project]: Payment attempt of 1.5 BTC started.", colourNeutral},
		{"payment_attempt.processing", "payment_attempt.processing", attempt("2500000", "usdc"),
			"[New project]: Payment attempt of 2.5 USDC is processing.", colourNeutral},
		{"payment_attempt.succeeded", "payment_attempt.succeeded", attempt("860000000", "sol"),
			"[New project]: Payment attempt of 0.86 SOL succeeded.", colourSuccess},
		{"payment_attempt.failed", "payment_attempt.failed", attempt("860000000", "sol"),
			"[New project]: Payment attempt of 0.86 SOL failed: The wallet is short.", colourFailure},
		{"webhook_endpoint.disabled names the host, not the URL", "webhook_endpoint.disabled",
			map[string]any{"id": "we_1", "object": "webhook_endpoint", "url": "https://discord.com/api/webhooks/1/SECRET-TOKEN", "disabled_reason": "gone"},
			"[New project]: Webhook endpoint we_1 (discord.com) was disabled: gone.", colourFailure},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()

			p := payload(t, tt.typ, tt.data)
			d := decodeDiscord(t, p, "New project")
			if d.Content != tt.sentence || d.Embeds[0].Color != tt.colour {
				t.Errorf("discord content %q colour %#x, want %q %#x", d.Content, d.Embeds[0].Color, tt.sentence, tt.colour)
			}
			if strings.Contains(d.raw, "SECRET-TOKEN") {
				t.Error("a chat message carries an endpoint URL's token")
			}
			s := decodeSlack(t, p, "New project")
			if s.Text != tt.sentence {
				t.Errorf("slack text %q, want %q", s.Text, tt.sentence)
			}
		})
	}
}

func TestChatMessagesStayWithinLimits(t *testing.T) {
	t.Parallel()

	long := strings.Repeat("é", 9000) // multi-byte: limits count characters
	data := checkout(strings.Repeat("9", 40), "eth", long)
	data["reference_id"] = long
	data["customer_details"] = map[string]any{"name": long, "email": long}
	for _, typ := range []string{"checkout.paid", "checkout.failed", "checkout.created", "checkout.expired"} {
		p := payload(t, typ, data)
		decodeDiscord(t, p, long) // checks every Discord limit
		decodeSlack(t, p, long)   // and every Slack one
	}
}

func TestChatMessagesCannotMention(t *testing.T) {
	t.Parallel()

	p := payload(t, "checkout.paid", checkout("100", "usd", "@everyone <!channel> <https://evil.example|click>"))
	d := decodeDiscord(t, p, "Shop")
	if !strings.Contains(d.raw, `"allowed_mentions":{"parse":[]}`) {
		t.Errorf("discord body does not turn mentions off: %s", d.raw)
	}
	s := decodeSlack(t, p, "Shop")
	if strings.Contains(s.raw, "<!channel>") || strings.Contains(s.raw, "<https://") {
		t.Errorf("slack body lets text mention or link: %s", s.raw)
	}
}

type discordDecoded struct {
	raw     string
	Content string `json:"content"`
	Embeds  []struct {
		Title       string `json:"title"`
		Description string `json:"description"`
		Color       int    `json:"color"`
		Fields      []struct {
			Name  string `json:"name"`
			Value string `json:"value"`
		} `json:"fields"`
		Footer struct {
			Text string `json:"text"`
		} `json:"footer"`
	} `json:"embeds"`
}

// decodeDiscord renders p for Discord and fails the test on any broken limit.
func decodeDiscord(t *testing.T, p []byte, name string) discordDecoded {
	t.Helper()
	b, err := renderDiscord(name, p)
	if err != nil {
		t.Fatal(err)
	}
	var d discordDecoded
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatal(err)
	}
	d.raw = string(b)
	n := utf8.RuneCountInString
	if n(d.Content) > 2000 || len(d.Embeds) == 0 || len(d.Embeds) > 10 {
		t.Fatalf("content of %d characters, %d embeds", n(d.Content), len(d.Embeds))
	}
	for _, e := range d.Embeds {
		total := n(e.Title) + n(e.Description) + n(e.Footer.Text)
		if n(e.Title) > 256 || n(e.Description) > 4096 || len(e.Fields) > 25 || n(e.Footer.Text) > 2048 {
			t.Fatalf("embed over a limit: title %d, description %d, %d fields, footer %d", n(e.Title), n(e.Description), len(e.Fields), n(e.Footer.Text))
		}
		for _, f := range e.Fields {
			if n(f.Name) > 256 || n(f.Value) > 1024 || f.Value == "" {
				t.Fatalf("field %q of %d characters", f.Name, n(f.Value))
			}
			total += n(f.Name) + n(f.Value)
		}
		if total > 6000 {
			t.Fatalf("embed of %d characters in all, over 6000", total)
		}
	}
	return d
}

type slackDecoded struct {
	raw    string
	Text   string `json:"text"`
	Blocks []struct {
		Type string `json:"type"`
		Text *struct {
			Text string `json:"text"`
		} `json:"text"`
		Fields []struct {
			Text string `json:"text"`
		} `json:"fields"`
	} `json:"blocks"`
}

// decodeSlack renders p for Slack and fails the test on any broken limit.
func decodeSlack(t *testing.T, p []byte, name string) slackDecoded {
	t.Helper()
	b, err := renderSlack(name, p)
	if err != nil {
		t.Fatal(err)
	}
	var s slackDecoded
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatal(err)
	}
	s.raw = string(b)
	n := utf8.RuneCountInString
	if n(s.Text) > 3000 || len(s.Blocks) == 0 {
		t.Fatalf("text of %d characters, %d blocks", n(s.Text), len(s.Blocks))
	}
	for _, b := range s.Blocks {
		if b.Text != nil && n(b.Text.Text) > 3000 {
			t.Fatalf("block text of %d characters", n(b.Text.Text))
		}
		if len(b.Fields) > 10 {
			t.Fatalf("%d fields in a block", len(b.Fields))
		}
		for _, f := range b.Fields {
			if n(f.Text) > 2000 {
				t.Fatalf("field of %d characters", n(f.Text))
			}
		}
	}
	return s
}
