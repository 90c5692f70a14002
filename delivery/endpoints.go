package delivery

import (
	"context"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/hookline/hookline/events"
)

// Endpoint types and statuses.
const (
	TypeWebhook = "webhook"

	EndpointEnabled  = "enabled"
	EndpointDisabled = "disabled"

	DisabledGone    = "gone"
	DisabledFailing = "failing"
	// DisabledUnauthorized is a chat webhook whose token no longer works
	// (401 or 403): every later attempt would be refused too.
	DisabledUnauthorized = "unauthorized"

	// AllEvents in enabled_events subscribes to every type, present and future.
	AllEvents = "*"
)

// Endpoint is a merchant's webhook endpoint in its wire form. Secret (HMAC)
// or PublicKey (Ed25519) is set only on the responses that create or rotate
// it; an Ed25519 private key is never shown.
type Endpoint struct {
	ID              string   `json:"id"`
	Object          string   `json:"object"`
	Livemode        bool     `json:"livemode"`
	Type            string   `json:"type"`
	URL             string   `json:"url"`
	EnabledEvents   []string `json:"enabled_events"`
	Status          string   `json:"status"`
	DisabledReason  *string  `json:"disabled_reason"`
	Description     *string  `json:"description"`
	DisplayName     *string  `json:"display_name"`
	CreatedAt       int64    `json:"created_at"`
	SignatureScheme string   `json:"signature_scheme"`
	RateLimit       *int     `json:"rate_limit"`
	// Headers are sent with every attempt; an authorization value is
	// shown masked.
	Headers   map[string]string `json:"headers"`
	Secret    string            `json:"secret,omitempty"`
	PublicKey string            `json:"public_key,omitempty"`
}

// EndpointParams are a new endpoint's fields. A nil EnabledEvents subscribes
// to the catalog's default-on types, following the catalog as it changes.
type EndpointParams struct {
	Type          string
	URL           string
	EnabledEvents []string
	Description   *string
	DisplayName   *string
	// SignatureScheme is SchemeHMAC (the default) or SchemeEd25519; chat
	// endpoints are not signed, and take neither.
	SignatureScheme string
	// RateLimit caps deliveries per second to the endpoint; nil is none.
	RateLimit *int
	// Headers are custom request headers, for webhook endpoints.
	Headers map[string]string
}

// EndpointUpdate is a partial update: nil fields stay as they are.
type EndpointUpdate struct {
	URL           *string
	EnabledEvents []string
	Description   *string
	DisplayName   *string
	Status        *string
	// SetRateLimit says to set RateLimit, which nil removes.
	SetRateLimit bool
	RateLimit    *int
	// Headers replace the custom headers when not nil (empty: none).
	Headers map[string]string
}

// Endpoints manages webhook endpoints.
type Endpoints struct {
	guard        *Guard
	keyring      *events.Keyring
	maxEndpoints int
}

// NewEndpoints returns the endpoint manager, checking URLs with guard,
// sealing secrets with keyring, and allowing each merchant maxEndpoints
// endpoints per mode (HOOKLINE_MAX_ENDPOINTS): every endpoint an event
// subscribes to costs that event a request and a signature, so the limit
// bounds one event's fan-out.
func NewEndpoints(guard *Guard, keyring *events.Keyring, maxEndpoints int) *Endpoints {
	return &Endpoints{guard: guard, keyring: keyring, maxEndpoints: maxEndpoints}
}

// limitMaxEndpoints is the name (an error's param) of the limit on endpoints
// per merchant and mode.
const limitMaxEndpoints = "max_endpoints"

// lockScopeEndpoints takes, until tx ends, a lock of the scope's endpoints
// (its merchant and mode): two creates at the limit would otherwise each
// count the endpoints before the other's insert commits, and both insert.
// It is an advisory lock on a hash of the scope rather than `for update` of
// the merchant's row, which would make checkouts' inserts (their foreign key
// takes a key-share lock of that row) and key re-encryption wait behind
// endpoint creates, and would join both modes. A hash shared by chance with
// another scope only makes the two wait for each other.
const lockScopeEndpoints = `select pg_advisory_xact_lock(hashtextextended('webhook_endpoints/' || $1 || '/' || $2::boolean::text, 0))`

// countScopeEndpoints counts the scope's endpoints that are not deleted
// (disabled ones count: they can be enabled again), up to $3, over
// webhook_endpoints_merchant_idx.
const countScopeEndpoints = `select count(*) from (select from webhook_endpoints
	where merchant_id = $1 and livemode = $2 and deleted_at is null limit $3) scope_endpoints`

// checkLimit locks the scope's endpoints for tx and refuses one more when it
// already has the most allowed.
func (m *Endpoints) checkLimit(ctx context.Context, tx pgx.Tx, scope events.Scope) error {
	if _, err := tx.Exec(ctx, lockScopeEndpoints, scope.MerchantID, scope.Livemode); err != nil {
		return fmt.Errorf("lock endpoints: %w", err)
	}
	var n int
	if err := tx.QueryRow(ctx, countScopeEndpoints, scope.MerchantID, scope.Livemode, m.maxEndpoints).Scan(&n); err != nil {
		return fmt.Errorf("count endpoints: %w", err)
	}
	if n < m.maxEndpoints {
		return nil
	}
	mode := "test"
	if scope.Livemode {
		mode = "live"
	}
	return &events.LimitError{Limit: limitMaxEndpoints, Message: fmt.Sprintf(
		"This account has reached its limit of %d webhook endpoints in %s mode (max_endpoints). Delete one to create another.", m.maxEndpoints, mode)}
}

const endpointColumns = `select id, livemode, type, url, enabled_events, status, disabled_reason, description,
	display_name, created_at, signature_scheme, rate_limit, headers from webhook_endpoints`

func scanEndpoint(row pgx.Row) (*Endpoint, error) {
	e := &Endpoint{Object: "webhook_endpoint"}
	var created time.Time
	err := row.Scan(&e.ID, &e.Livemode, &e.Type, &e.URL, &e.EnabledEvents, &e.Status, &e.DisabledReason,
		&e.Description, &e.DisplayName, &created, &e.SignatureScheme, &e.RateLimit, &e.Headers)
	e.CreatedAt = created.Unix()
	if e.EnabledEvents == nil {
		for _, t := range events.DefaultEnabledTypes() {
			e.EnabledEvents = append(e.EnabledEvents, string(t))
		}
	}
	return e, err
}

// checkEnabledEvents refuses unknown types and returns the list without
// duplicates.
func checkEnabledEvents(list []string) ([]string, error) {
	if len(list) == 0 {
		return nil, &events.InvalidError{Param: "enabled_events", Message: "must list at least one event type, or \"*\""}
	}
	var out []string
	for i, t := range list {
		if _, ok := events.Lookup(events.EventType(t)); !ok && t != AllEvents {
			return nil, &events.InvalidError{Param: fmt.Sprintf("enabled_events[%d]", i),
				Message: fmt.Sprintf("%q is not an event type of GET /v1/event_types", t)}
		}
		if !slices.Contains(out, t) {
			out = append(out, t)
		}
	}
	return out, nil
}

// MaxRateLimit is the highest rate_limit, in deliveries per second.
const MaxRateLimit = 10_000

// checkRateLimit refuses a rate limit out of 1..MaxRateLimit (nil is none).
func checkRateLimit(limit *int) error {
	if limit != nil && (*limit < 1 || *limit > MaxRateLimit) {
		return &events.InvalidError{Param: "rate_limit", Message: "must be from 1 to 10000 deliveries per second, or null for none"}
	}
	return nil
}

// CheckedEndpoint is a new endpoint's parameters once Check has passed them.
// Only Check makes one, so no endpoint is created with a URL the guard has not
// seen.
type CheckedEndpoint struct {
	p EndpointParams
}

// Check validates a new endpoint's parameters, resolving its URL's host in
// production. It takes no transaction: call it before opening one, so that a
// slow DNS server holds no connection and no lock.
func (m *Endpoints) Check(ctx context.Context, p EndpointParams) (*CheckedEndpoint, error) {
	if p.Type == "" {
		p.Type = TypeWebhook
	}
	if err := m.checkURL(ctx, p.Type, p.URL); err != nil {
		return nil, err
	}
	switch {
	case p.Type != TypeWebhook && p.SignatureScheme != "":
		return nil, &events.InvalidError{Param: "signature_scheme", Message: "applies to webhook endpoints only: chat messages are not signed"}
	case p.SignatureScheme == "":
		p.SignatureScheme = SchemeHMAC
	case p.SignatureScheme != SchemeHMAC && p.SignatureScheme != SchemeEd25519:
		return nil, &events.InvalidError{Param: "signature_scheme", Message: "must be hmac or ed25519"}
	}
	if p.EnabledEvents != nil {
		var err error
		if p.EnabledEvents, err = checkEnabledEvents(p.EnabledEvents); err != nil {
			return nil, err
		}
	}
	if err := checkRateLimit(p.RateLimit); err != nil {
		return nil, err
	}
	if p.Headers != nil {
		if p.Type != TypeWebhook {
			return nil, &events.InvalidError{Param: "headers", Message: "applies to webhook endpoints only: chat webhooks take none"}
		}
		if err := checkHeaders(p.Headers); err != nil {
			return nil, err
		}
	}
	return &CheckedEndpoint{p: p}, nil
}

// Create registers a checked endpoint with a new signing secret, unless the
// scope already has the most endpoints allowed (a LimitError). The limit's
// lock is taken after the merchant's name is read, in the transaction's last
// few statements.
func (m *Endpoints) Create(ctx context.Context, tx pgx.Tx, scope events.Scope, c *CheckedEndpoint) (*Endpoint, error) {
	p := c.p
	if p.DisplayName == nil {
		var name string
		if err := tx.QueryRow(ctx, `select name from merchants where id = $1`, scope.MerchantID).Scan(&name); err != nil {
			return nil, fmt.Errorf("read merchant name: %w", err)
		}
		p.DisplayName = &name
	}
	if err := m.checkLimit(ctx, tx, scope); err != nil {
		return nil, err
	}
	id := events.NewID(events.PrefixEndpoint)
	stored, secret, publicKey := newSigningKey(p.SignatureScheme)
	headers, authorization := m.storedHeaders(id, p.Headers, nil, nil)
	_, err := tx.Exec(ctx, `insert into webhook_endpoints (id, merchant_id, livemode, type, url, enabled_events, status,
		description, display_name, secret, signature_scheme, rate_limit, headers, header_authorization, created_at)
		values ($1, $2, $3, $4, $5, $6, 'enabled', $7, $8, $9, $10, $11, $12, $13, now())`,
		id, scope.MerchantID, scope.Livemode, p.Type, p.URL, p.EnabledEvents, p.Description, p.DisplayName,
		m.keyring.Seal(id, stored), p.SignatureScheme, p.RateLimit, headers, authorization)
	if err != nil {
		return nil, fmt.Errorf("insert endpoint: %w", err)
	}
	e, err := Get(ctx, tx, scope, id)
	if err != nil {
		return nil, err
	}
	e.Secret, e.PublicKey = secret, publicKey
	return e, nil
}

// chatHosts are the hosts a production chat endpoint may post to, with the
// path its webhook URLs start with.
var chatHosts = map[string]struct {
	hosts []string
	path  string
}{
	TypeDiscord: {[]string{"discord.com", "discordapp.com", "ptb.discord.com", "canary.discord.com",
		"ptb.discordapp.com", "canary.discordapp.com"}, "/api/webhooks/"},
	TypeSlack: {[]string{"hooks.slack.com"}, "/"},
}

// checkURL validates an endpoint's type and URL: the guard's rules for
// every type (in production, a DNS lookup), then checkChatURL's.
func (m *Endpoints) checkURL(ctx context.Context, typ, raw string) error {
	if typ != TypeWebhook && typ != TypeDiscord && typ != TypeSlack {
		return &events.InvalidError{Param: "type", Message: "must be webhook, discord or slack"}
	}
	if err := m.guard.CheckURL(ctx, raw, "url"); err != nil {
		return err
	}
	return m.checkChatURL(typ, raw)
}

// checkChatURL requires, in production, a Discord or Slack webhook URL for
// chat endpoints (in development any URL, for local test receivers). It
// resolves nothing, so an update can apply it in its transaction, once it has
// read the endpoint's type.
func (m *Endpoints) checkChatURL(typ, raw string) error {
	chat, ok := chatHosts[typ]
	if !ok || !m.guard.Production {
		return nil
	}
	u, err := url.Parse(raw)
	if err != nil || !slices.Contains(chat.hosts, strings.ToLower(u.Hostname())) || !strings.HasPrefix(u.Path, chat.path) {
		return &events.InvalidError{Param: "url", Message: fmt.Sprintf("must be a %s webhook URL (https://%s%s…)", typ, chat.hosts[0], chat.path)}
	}
	return nil
}

// Get returns one of the scope's endpoints.
func Get(ctx context.Context, db events.DB, scope events.Scope, id string) (*Endpoint, error) {
	e, err := scanEndpoint(db.QueryRow(ctx, endpointColumns+` where id = $1 and merchant_id = $2 and livemode = $3
		and deleted_at is null`, id, scope.MerchantID, scope.Livemode))
	if err != nil {
		return nil, events.WrapNotFound(err, "get endpoint")
	}
	return e, nil
}

// List returns a page of the scope's endpoints, newest first.
func List(ctx context.Context, db events.DB, scope events.Scope, page events.Page) (*events.List[*Endpoint], error) {
	return events.ListPage(ctx, db, page, endpointColumns+` where merchant_id = $3 and livemode = $4 and deleted_at is null`,
		func(rows pgx.Rows) (*Endpoint, error) { return scanEndpoint(rows) }, scope.MerchantID, scope.Livemode)
}

// CheckedUpdate is an endpoint update once CheckUpdate has passed it.
type CheckedUpdate struct {
	u EndpointUpdate
}

// CheckUpdate validates an update, resolving a new URL's host in production.
// Like Check, it takes no transaction and must run before one is opened.
func (m *Endpoints) CheckUpdate(ctx context.Context, u EndpointUpdate) (*CheckedUpdate, error) {
	if u.URL != nil {
		if err := m.guard.CheckURL(ctx, *u.URL, "url"); err != nil {
			return nil, err
		}
	}
	if u.EnabledEvents != nil {
		var err error
		if u.EnabledEvents, err = checkEnabledEvents(u.EnabledEvents); err != nil {
			return nil, err
		}
	}
	if u.Status != nil && *u.Status != EndpointEnabled && *u.Status != EndpointDisabled {
		return nil, &events.InvalidError{Param: "status", Message: "must be enabled or disabled"}
	}
	if err := checkRateLimit(u.RateLimit); err != nil {
		return nil, err
	}
	if u.Headers != nil {
		if err := checkHeaders(u.Headers); err != nil {
			return nil, err
		}
	}
	return &CheckedUpdate{u: u}, nil
}

// Update changes an endpoint. Enabling a disabled endpoint clears why it was
// disabled and its failure streak; deliveries it missed meanwhile are
// recovered on request, not automatically.
func (m *Endpoints) Update(ctx context.Context, tx pgx.Tx, scope events.Scope, id string, c *CheckedUpdate) (*Endpoint, error) {
	u := c.u
	current, err := Get(ctx, tx, scope, id)
	if err != nil {
		return nil, err
	}
	if u.URL != nil {
		if err := m.checkChatURL(current.Type, *u.URL); err != nil {
			return nil, err
		}
	}
	if u.Headers != nil {
		if len(u.Headers) > 0 && current.Type != TypeWebhook {
			return nil, &events.InvalidError{Param: "headers", Message: "applies to webhook endpoints only: chat webhooks take none"}
		}
		var kept *string
		if err := tx.QueryRow(ctx, `select header_authorization from webhook_endpoints where id = $1 for update`, id).Scan(&kept); err != nil {
			return nil, fmt.Errorf("read endpoint headers: %w", err)
		}
		headers, authorization := m.storedHeaders(id, u.Headers, current.Headers, kept)
		if _, err := tx.Exec(ctx, `update webhook_endpoints set headers = $2, header_authorization = $3 where id = $1`,
			id, headers, authorization); err != nil {
			return nil, fmt.Errorf("update endpoint headers: %w", err)
		}
	}
	_, err = tx.Exec(ctx, `update webhook_endpoints set
		url = coalesce($2, url),
		enabled_events = case when $3::text[] is null then enabled_events else $3 end,
		description = coalesce($4, description),
		display_name = coalesce($5, display_name),
		status = coalesce($6, status),
		disabled_reason = case when $6 is null then disabled_reason else null end,
		failing_since = case when $6 = 'enabled' then null else failing_since end,
		rate_limit = case when $7 then $8 else rate_limit end
		where id = $1`, id, u.URL, u.EnabledEvents, u.Description, u.DisplayName, u.Status, u.SetRateLimit, u.RateLimit)
	if err != nil {
		return nil, fmt.Errorf("update endpoint: %w", err)
	}
	return Get(ctx, tx, scope, id)
}

// Delete removes an endpoint: it gets no new deliveries and pending ones stop.
// The row stays, marked deleted, so that its deliveries' history still names it.
func Delete(ctx context.Context, tx pgx.Tx, scope events.Scope, id string) error {
	tag, err := tx.Exec(ctx, `update webhook_endpoints set deleted_at = now(), status = 'disabled'
		where id = $1 and merchant_id = $2 and livemode = $3 and deleted_at is null`, id, scope.MerchantID, scope.Livemode)
	if err != nil {
		return fmt.Errorf("delete endpoint: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return events.ErrNotFound
	}
	return nil
}

// DefaultGracePeriod is how long a rotated-out secret keeps signing (Stripe's
// default), and MaxGracePeriod the longest allowed.
const (
	DefaultGracePeriod = 24 * time.Hour
	MaxGracePeriod     = 7 * 24 * time.Hour
)

// MaxPreviousSecrets is how many rotated-out secrets an endpoint keeps
// signing with during their grace periods: a rotation past it ends the grace
// of the oldest at once. Each costs every delivery a signature, and a
// receiver needs only the one it has.
const MaxPreviousSecrets = 5

// RotateSecret gives an endpoint a new secret, or a new key pair for
// Ed25519. The secret it replaces keeps signing, beside the new one, until
// grace has passed, and so does every earlier one whose own grace has not
// ended (up to MaxPreviousSecrets), so a receiver can switch without dropping
// a delivery however often the secret is rotated.
func (m *Endpoints) RotateSecret(ctx context.Context, tx pgx.Tx, scope events.Scope, id string, grace time.Duration) (*Endpoint, error) {
	if grace < 0 || grace > MaxGracePeriod {
		return nil, &events.InvalidError{Param: "grace_period_seconds", Message: "must be from 0 to 604800 (7 days)"}
	}
	e, err := Get(ctx, tx, scope, id)
	if err != nil {
		return nil, err
	}
	var current string
	var previous []string
	var expire []time.Time
	var now time.Time
	// Locked: a concurrent rotation waits, then keeps this one's secret too.
	if err := tx.QueryRow(ctx, `select secret, previous_secrets, previous_secrets_expire_at, now() from webhook_endpoints
		where id = $1 and deleted_at is null for update`, id).Scan(&current, &previous, &expire, &now); err != nil {
		return nil, events.WrapNotFound(err, "rotate secret")
	}
	previous, expire = keepPrevious(current, now.Add(grace), previous, expire, now)
	stored, secret, publicKey := newSigningKey(e.SignatureScheme)
	if _, err := tx.Exec(ctx, `update webhook_endpoints set secret = $2, previous_secrets = $3, previous_secrets_expire_at = $4
		where id = $1`, id, m.keyring.Seal(id, stored), previous, expire); err != nil {
		return nil, fmt.Errorf("rotate secret: %w", err)
	}
	e.Secret, e.PublicKey = secret, publicKey
	return e, nil
}

// keepPrevious is the previous secrets once current is rotated out, to sign
// until until: current first, then those of previous (newest first) whose
// grace ends after now, at most MaxPreviousSecrets in all. A secret rotated
// out with no grace is not kept.
func keepPrevious(current string, until time.Time, previous []string, expire []time.Time, now time.Time) ([]string, []time.Time) {
	kept, keptExpire := []string{}, []time.Time{}
	keep := func(secret string, end time.Time) {
		if end.After(now) && len(kept) < MaxPreviousSecrets {
			kept, keptExpire = append(kept, secret), append(keptExpire, end)
		}
	}
	keep(current, until)
	for i, secret := range previous {
		if i < len(expire) { // written together: always
			keep(secret, expire[i])
		}
	}
	return kept, keptExpire
}

// ReencryptEndpoints seals again, with the sealing key, every endpoint secret
// (current and previous) sealed with another key or not at all, and reports
// how many endpoints it changed.
func ReencryptEndpoints(ctx context.Context, tx pgx.Tx, keyring *events.Keyring) (int, error) {
	rows, err := tx.Query(ctx, `select id, secret, previous_secrets, header_authorization from webhook_endpoints for update`)
	if err != nil {
		return 0, fmt.Errorf("read endpoint secrets: %w", err)
	}
	type row struct {
		id, secret    string
		previous      []string
		authorization *string
	}
	all, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (row, error) {
		var x row
		return x, r.Scan(&x.id, &x.secret, &x.previous, &x.authorization)
	})
	if err != nil {
		return 0, fmt.Errorf("read endpoint secrets: %w", err)
	}
	reseal := func(id, stored string) (string, error) {
		if keyring.Current(stored) {
			return stored, nil
		}
		plain, err := keyring.Open(id, stored)
		if err != nil {
			return "", err
		}
		return keyring.Seal(id, plain), nil
	}
	n := 0
	for _, r := range all {
		secret, err := reseal(r.id, r.secret)
		if err != nil {
			return n, err
		}
		previous := make([]string, len(r.previous))
		for i, p := range r.previous {
			if previous[i], err = reseal(r.id, p); err != nil {
				return n, err
			}
		}
		authorization := r.authorization
		if authorization != nil {
			a, err := reseal(r.id, *authorization)
			if err != nil {
				return n, err
			}
			authorization = &a
		}
		if secret == r.secret && slices.Equal(previous, r.previous) && (authorization == nil || *authorization == *r.authorization) {
			continue
		}
		if _, err := tx.Exec(ctx, `update webhook_endpoints set secret = $2, previous_secrets = $3, header_authorization = $4 where id = $1`,
			r.id, secret, previous, authorization); err != nil {
			return n, fmt.Errorf("reseal endpoint secret: %w", err)
		}
		n++
	}
	return n, nil
}
