package delivery

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/hookline/hookline/events"
)

// Endpoint types that post chat messages instead of signed event envelopes.
const (
	TypeDiscord = "discord"
	TypeSlack   = "slack"
)

// Embed colours by outcome, as seed 003's bot colours its embeds.
const (
	colourSuccess = 0x00FF00
	colourFailure = 0xFF0000
	colourNeutral = 0x0000FF
)

// Discord's limits on an "execute webhook" body.
const (
	discordContent     = 2000
	discordTitle       = 256
	discordDescription = 4096
	discordFields      = 25
	discordFieldName   = 256
	discordFieldValue  = 1024
	discordFooter      = 2048
	discordEmbedTotal  = 6000
)

// Slack's limits on a section block.
const (
	slackTextLimit  = 3000
	slackFields     = 10
	slackFieldValue = 2000
)

// message is what one event says in a chat: a sentence, and the details
// that embeds and blocks show.
type message struct {
	sentence    string
	title       string
	description string
	colour      int
	fields      []field
	footer      string
}

type field struct{ name, value string }

// eventEnvelope is the part of a stored event payload a message needs.
type eventEnvelope struct {
	ID       string          `json:"id"`
	Type     string          `json:"type"`
	Livemode bool            `json:"livemode"`
	Example  bool            `json:"example"`
	Data     json.RawMessage `json:"data"`
}

// chatObject holds the fields of the objects events carry that messages use.
type chatObject struct {
	ID                     string `json:"id"`
	Amount                 string `json:"amount"`
	InvoiceCurrency        string `json:"invoice_currency"`
	Currency               string `json:"currency"`
	TransactionDescription string `json:"transaction_description"`
	ReferenceID            string `json:"reference_id"`
	CustomerDetails        struct {
		Name  string `json:"name"`
		Email string `json:"email"`
	} `json:"customer_details"`
	Checkout       string `json:"checkout"`
	PaymentMethod  string `json:"payment_method"`
	FailureCode    string `json:"failure_code"`
	FailureMessage string `json:"failure_message"`
	URL            string `json:"url"`
	DisabledReason string `json:"disabled_reason"`
}

// money renders minor units in major units: "860000000" sol → "0.86 SOL".
func money(amount, currency string) string {
	decimals, ok := events.CurrencyDecimals(currency)
	if !ok || amount == "" {
		return strings.TrimSpace(amount + " " + strings.ToUpper(currency))
	}
	return events.FormatMajor(amount, decimals) + " " + strings.ToUpper(currency)
}

// compose turns an event into its message. displayName titles it, as the
// seeds' merchants name their bots.
func compose(displayName string, payload []byte) (*message, error) {
	m, err := composeMessage(displayName, payload)
	if err != nil {
		return nil, err
	}
	// Descriptions and failure messages often end with their own full stop.
	m.sentence = strings.TrimRight(m.sentence, ".") + "."
	return m, nil
}

func composeMessage(displayName string, payload []byte) (*message, error) {
	var env eventEnvelope
	if err := json.Unmarshal(payload, &env); err != nil {
		return nil, fmt.Errorf("read event payload: %w", err)
	}
	var o chatObject
	if err := json.Unmarshal(env.Data, &o); err != nil {
		return nil, fmt.Errorf("read event data: %w", err)
	}
	currency := o.InvoiceCurrency
	if currency == "" {
		currency = o.Currency
	}
	amount := money(o.Amount, currency)
	what := o.TransactionDescription
	if what == "" {
		what = o.ReferenceID
	}
	if what == "" {
		what = "checkout " + o.ID
	}
	prefix := "[" + displayName + "]: "
	m := &message{colour: colourNeutral, footer: env.Type + " · " + env.ID}
	if !env.Livemode {
		m.footer += " · test mode"
	}
	if env.Example {
		m.footer += " · test event"
	}
	switch events.EventType(env.Type) {
	case events.CheckoutPaid:
		m.sentence = prefix + "New successful payment for " + amount + " for " + what + "."
		m.title, m.colour = "Payment received", colourSuccess
	case events.CheckoutFailed:
		m.sentence = prefix + "Payment for " + what + " did not match the checkout's " + amount + ": contact the customer."
		m.title, m.colour = "Payment amount mismatch", colourFailure
	case events.CheckoutCreated:
		m.sentence = prefix + "New checkout for " + amount + " for " + what + "."
		m.title = "Checkout created"
	case events.CheckoutExpired:
		m.sentence = prefix + "Checkout for " + amount + " for " + what + " expired unpaid."
		m.title = "Checkout expired"
	case events.PaymentAttemptCreated:
		m.sentence = prefix + "Payment attempt of " + amount + " started."
		m.title = "Payment attempt started"
	case events.PaymentAttemptProcessing:
		m.sentence = prefix + "Payment attempt of " + amount + " is processing."
		m.title = "Payment attempt processing"
	case events.PaymentAttemptSucceeded:
		m.sentence = prefix + "Payment attempt of " + amount + " succeeded."
		m.title, m.colour = "Payment attempt succeeded", colourSuccess
	case events.PaymentAttemptFailed:
		reason := o.FailureMessage
		if reason == "" {
			reason = o.FailureCode
		}
		m.sentence = prefix + "Payment attempt of " + amount + " failed: " + reason + "."
		m.title, m.colour = "Payment attempt failed", colourFailure
	case events.WebhookEndpointDisabled:
		// Name the endpoint by id and host only: its URL may carry a token.
		host := o.URL
		if u, err := url.Parse(o.URL); err == nil {
			host = u.Host
		}
		m.sentence = prefix + "Webhook endpoint " + o.ID + " (" + host + ") was disabled: " + o.DisabledReason + "."
		m.title, m.colour = "Webhook endpoint disabled", colourFailure
		return m, nil
	default:
		m.sentence = prefix + env.Type + "."
		m.title = env.Type
		return m, nil
	}
	m.description = what
	if o.Amount != "" {
		m.fields = append(m.fields, field{"Amount", amount})
	}
	if o.ReferenceID != "" {
		m.fields = append(m.fields, field{"Reference", o.ReferenceID})
	}
	if c := strings.TrimSpace(o.CustomerDetails.Name + " " + o.CustomerDetails.Email); c != "" {
		m.fields = append(m.fields, field{"Customer", c})
	}
	if o.PaymentMethod != "" {
		m.fields = append(m.fields, field{"Payment method", o.PaymentMethod})
	}
	if o.FailureCode != "" {
		m.fields = append(m.fields, field{"Failure", o.FailureCode})
	}
	checkout := o.ID
	if o.Checkout != "" {
		checkout = o.Checkout
	}
	m.fields = append(m.fields, field{"Checkout", checkout})
	return m, nil
}

// truncate cuts s to at most n characters, ending with "…" when it cut.
func truncate(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n-1]) + "…"
}

type discordEmbed struct {
	Title       string              `json:"title"`
	Description string              `json:"description,omitempty"`
	Color       int                 `json:"color"`
	Fields      []discordEmbedField `json:"fields,omitempty"`
	Footer      *discordFooterText  `json:"footer,omitempty"`
}

type discordEmbedField struct {
	Name   string `json:"name"`
	Value  string `json:"value"`
	Inline bool   `json:"inline"`
}

type discordFooterText struct {
	Text string `json:"text"`
}

type discordBody struct {
	Content         string         `json:"content"`
	Embeds          []discordEmbed `json:"embeds"`
	AllowedMentions struct {
		Parse []string `json:"parse"`
	} `json:"allowed_mentions"`
}

// renderDiscord is an event as a Discord "execute webhook" body, within all of
// Discord's limits: anything longer is cut, never refused. Mentions are off,
// so a customer's name cannot ping a channel.
func renderDiscord(displayName string, payload []byte) ([]byte, error) {
	m, err := compose(displayName, payload)
	if err != nil {
		return nil, err
	}
	e := discordEmbed{
		Title:       truncate(m.title, discordTitle),
		Description: truncate(m.description, discordDescription),
		Color:       m.colour,
		Footer:      &discordFooterText{Text: truncate(m.footer, discordFooter)},
	}
	for i, f := range m.fields {
		if i == discordFields {
			break
		}
		e.Fields = append(e.Fields, discordEmbedField{Name: truncate(f.name, discordFieldName), Value: truncate(f.value, discordFieldValue), Inline: true})
	}
	// The total of an embed's texts is capped too: shorten the description,
	// the only field that can take most of it.
	if over := embedLength(e) - discordEmbedTotal; over > 0 {
		e.Description = truncate(e.Description, max(1, utf8.RuneCountInString(e.Description)-over))
	}
	body := discordBody{Content: truncate(m.sentence, discordContent), Embeds: []discordEmbed{e}}
	body.AllowedMentions.Parse = []string{}
	return json.Marshal(body)
}

func embedLength(e discordEmbed) int {
	n := utf8.RuneCountInString(e.Title) + utf8.RuneCountInString(e.Description)
	if e.Footer != nil {
		n += utf8.RuneCountInString(e.Footer.Text)
	}
	for _, f := range e.Fields {
		n += utf8.RuneCountInString(f.Name) + utf8.RuneCountInString(f.Value)
	}
	return n
}

type slackText struct {
	Type string `json:"type"`
	Text string `json:"text"`
}

type slackBlock struct {
	Type     string      `json:"type"`
	Text     *slackText  `json:"text,omitempty"`
	Fields   []slackText `json:"fields,omitempty"`
	Elements []slackText `json:"elements,omitempty"`
}

// renderSlack is an event as a Slack incoming-webhook body: the sentence as
// text (what notifications show) and Block Kit blocks with the details.
func renderSlack(displayName string, payload []byte) ([]byte, error) {
	m, err := compose(displayName, payload)
	if err != nil {
		return nil, err
	}
	blocks := []slackBlock{{Type: "section", Text: &slackText{Type: "mrkdwn", Text: truncate("*"+slackEscape(m.title)+"*\n"+slackEscape(m.sentence), slackTextLimit)}}}
	if len(m.fields) > 0 {
		b := slackBlock{Type: "section"}
		for i, f := range m.fields {
			if i == slackFields {
				break
			}
			b.Fields = append(b.Fields, slackText{Type: "mrkdwn", Text: truncate("*"+slackEscape(f.name)+"*\n"+slackEscape(f.value), slackFieldValue)})
		}
		blocks = append(blocks, b)
	}
	blocks = append(blocks, slackBlock{Type: "context", Elements: []slackText{{Type: "mrkdwn", Text: truncate(slackEscape(m.footer), slackTextLimit)}}})
	return json.Marshal(struct {
		Text   string       `json:"text"`
		Blocks []slackBlock `json:"blocks"`
	}{Text: truncate(slackEscape(m.sentence), slackTextLimit), Blocks: blocks})
}

// slackEscape escapes the three characters Slack's mrkdwn treats as control
// characters, so that text can neither mention nor link.
func slackEscape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(s)
}

// chatDisableReason is why a chat webhook's answer disables it: Discord and
// Slack answer 404 for a deleted webhook and 401 or 403 for a revoked token,
// and every later attempt would get the same answer.
func chatDisableReason(endpointType string, status int) string {
	if endpointType != TypeDiscord && endpointType != TypeSlack {
		return ""
	}
	switch status {
	case http.StatusNotFound:
		return DisabledGone
	case http.StatusUnauthorized, http.StatusForbidden:
		return DisabledUnauthorized
	}
	return ""
}

// pauseUntil is when a destination asked to hear from hookline again: a 429's
// or 503's Retry-After, and for Discord a 429 body's retry_after or an
// exhausted rate-limit bucket's X-RateLimit-Reset-After (sent with any
// status). The zero time: it did not ask.
func pauseUntil(t *target, o *outcome, now time.Time) time.Time {
	at := retryAfter(o.statusCode, o.header, now)
	if t.endpointType != TypeDiscord {
		return at
	}
	at = maxTime(at, discordRetryAfter(o.statusCode, o.body, now))
	if o.header.Get("X-RateLimit-Remaining") == "0" {
		if secs, err := strconv.ParseFloat(o.header.Get("X-RateLimit-Reset-After"), 64); err == nil && secs > 0 {
			at = maxTime(at, minTime(now.Add(time.Duration(secs*float64(time.Second))), now.Add(maxRetryAfter)))
		}
	}
	return at
}

// Discord bans an IP address for a while after 10,000 invalid requests (401,
// 403 or 429) in 10 minutes, which would cut every merchant's Discord
// endpoints off at once. Each process keeps below discordInvalidLimit.
const (
	discordInvalidLimit  = 9000
	discordInvalidWindow = 10 * time.Minute
)

// invalidBudget counts a process's invalid Discord requests per minute over
// the last discordInvalidWindow.
type invalidBudget struct {
	mu      sync.Mutex
	minutes [10]struct {
		minute int64
		n      int
	}
}

// note counts an answer of status from Discord.
func (b *invalidBudget) note(status int, now time.Time) {
	if status != http.StatusUnauthorized && status != http.StatusForbidden && status != http.StatusTooManyRequests {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	minute := now.Unix() / 60
	m := &b.minutes[minute%int64(len(b.minutes))]
	if m.minute != minute {
		m.minute, m.n = minute, 0
	}
	m.n++
}

// blockedUntil is when Discord sends may resume, or the zero time if they
// may go now: once the window holds discordInvalidLimit invalid requests,
// until its oldest minute leaves it.
func (b *invalidBudget) blockedUntil(now time.Time) time.Time {
	b.mu.Lock()
	defer b.mu.Unlock()
	minute := now.Unix() / 60
	total, oldest := 0, minute
	for _, m := range b.minutes {
		if m.minute > minute-int64(len(b.minutes)) && m.n > 0 {
			total += m.n
			oldest = min(oldest, m.minute)
		}
	}
	if total < discordInvalidLimit {
		return time.Time{}
	}
	return time.Unix((oldest+int64(len(b.minutes)))*60, 0)
}
