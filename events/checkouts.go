package events

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// Checkout statuses and payment statuses (seed 001).
const (
	StatusOpen      = "open"
	StatusCompleted = "completed"
	StatusExpired   = "expired"

	PaymentUnpaid = "unpaid"
	PaymentPaid   = "paid"
	PaymentFailed = "failed"
)

// Bounds of a checkout's life: Stripe's Checkout Sessions default to 24 hours
// and allow up to 30 days.
const (
	DefaultCheckoutLifetime = 24 * time.Hour
	MaxCheckoutLifetime     = 30 * 24 * time.Hour
)

// Checkout is the object merchants create to be paid, in its wire form: this
// struct is both the API response and the data of checkout.* events.
type Checkout struct {
	ID                     string            `json:"id"`
	Object                 string            `json:"object"`
	Livemode               bool              `json:"livemode"`
	Payin                  string            `json:"payin"`
	CreatedAt              int64             `json:"created_at"`
	ExpiryAt               int64             `json:"expiry_at"`
	Status                 string            `json:"status"`
	PaymentStatus          string            `json:"payment_status"`
	InvoiceCurrency        string            `json:"invoice_currency"`
	Amount                 string            `json:"amount"`
	CustomerDetails        CustomerDetails   `json:"customer_details"`
	TransactionDescription *string           `json:"transaction_description"`
	ReferenceID            *string           `json:"reference_id"`
	Metadata               map[string]string `json:"metadata"`
	WebhookURL             *string           `json:"webhook_url"`
}

// CustomerDetails is who pays; every field is optional.
type CustomerDetails struct {
	Country *string `json:"country"`
	Email   *string `json:"email"`
	Name    *string `json:"name"`
	Phone   *Phone  `json:"phone"`
}

// Phone is a phone number split as the seeds send it.
type Phone struct {
	CountryCode string `json:"country_code"`
	Number      string `json:"number"`
}

// CheckoutParams are a new checkout's fields, already shaped by the API's
// validation. A zero ExpiryAt means the default lifetime.
type CheckoutParams struct {
	Amount                 string
	InvoiceCurrency        string
	CustomerDetails        CustomerDetails
	TransactionDescription *string
	ReferenceID            *string
	Metadata               map[string]string
	WebhookURL             *string
	ExpiryAt               time.Time
}

// Service carries out the domain's state changes. Each write method takes the
// caller's transaction, so that the API can store an idempotent response, and a
// job can complete itself, atomically with the change.
type Service struct {
	publisher *Publisher
}

// NewService returns a Service that publishes through publisher.
func NewService(publisher *Publisher) *Service {
	return &Service{publisher: publisher}
}

// checkoutFields are the columns scanCheckout reads, in its order.
const checkoutFields = `id, livemode, payin, created_at, expiry_at, status, payment_status,
	invoice_currency, amount, customer_details, transaction_description, reference_id, metadata, webhook_url`

const checkoutColumns = `select ` + checkoutFields + ` from checkouts`

// scanCheckout reads checkoutFields from row, and then into extra any
// columns that follow them.
func scanCheckout(row pgx.Row, extra ...any) (*Checkout, error) {
	c := &Checkout{Object: "checkout"}
	var created, expiry time.Time
	err := row.Scan(append([]any{&c.ID, &c.Livemode, &c.Payin, &created, &expiry, &c.Status, &c.PaymentStatus,
		&c.InvoiceCurrency, &c.Amount, &c.CustomerDetails, &c.TransactionDescription, &c.ReferenceID, &c.Metadata, &c.WebhookURL},
		extra...)...)
	c.CreatedAt, c.ExpiryAt = created.Unix(), expiry.Unix()
	return c, err
}

// CreateCheckout creates an open, unpaid checkout and emits checkout.created;
// the expiry sweep (ExpireCheckoutsArgs) expires it at its expiry_at.
func (s *Service) CreateCheckout(ctx context.Context, tx pgx.Tx, scope Scope, p CheckoutParams) (*Checkout, error) {
	c, err := newCheckout(scope, p)
	if err != nil {
		return nil, err
	}
	if err := s.insertCheckouts(ctx, tx, []*newCheckoutRow{c}); err != nil {
		return nil, err
	}
	return c.checkout, nil
}

// newCheckoutRow is a checkout not yet written, with the scope it belongs to.
type newCheckoutRow struct {
	scope    Scope
	checkout *Checkout
	created  time.Time // CreatedAt to the microsecond
	// trace is the traceparent of the request that asked for it, which a
	// batch shares with others (Publication.Trace).
	trace string
}

// newCheckout validates p and makes the checkout it asks for.
func newCheckout(scope Scope, p CheckoutParams) (*newCheckoutRow, error) {
	// Codes are taken in any case and kept lowercase, as Stripe does: "USD"
	// is plainly usd, and refusing it only costs the merchant a round trip.
	p.InvoiceCurrency = strings.ToLower(p.InvoiceCurrency)
	if _, ok := CurrencyDecimals(p.InvoiceCurrency); !ok {
		return nil, &InvalidError{Param: "invoice_currency", Message: fmt.Sprintf(
			"%q is not a currency hookline knows: an ISO 4217 code such as usd or eur, or one of sol, eth, btc, usdc", p.InvoiceCurrency)}
	}
	now := time.Now().UTC()
	expiry := p.ExpiryAt
	switch {
	case expiry.IsZero():
		expiry = now.Add(DefaultCheckoutLifetime)
	case !expiry.After(now):
		return nil, &InvalidError{Param: "expiry_at", Message: "must be in the future"}
	case expiry.After(now.Add(MaxCheckoutLifetime)):
		return nil, &InvalidError{Param: "expiry_at", Message: "must be at most 30 days from now"}
	}
	metadata := p.Metadata
	if metadata == nil {
		metadata = map[string]string{}
	}
	return &newCheckoutRow{scope: scope, created: now, checkout: &Checkout{
		ID:                     NewID(PrefixCheckout),
		Object:                 "checkout",
		Livemode:               scope.Livemode,
		Payin:                  NewID(PrefixPayin),
		CreatedAt:              now.Unix(),
		ExpiryAt:               expiry.Unix(),
		Status:                 StatusOpen,
		PaymentStatus:          PaymentUnpaid,
		InvoiceCurrency:        p.InvoiceCurrency,
		Amount:                 p.Amount,
		CustomerDetails:        p.CustomerDetails,
		TransactionDescription: p.TransactionDescription,
		ReferenceID:            p.ReferenceID,
		Metadata:               metadata,
		WebhookURL:             p.WebhookURL,
	}}, nil
}

// insertCheckouts writes checkouts, of any merchants, and publishes their
// checkout.created, with the same statements whatever their number.
func (s *Service) insertCheckouts(ctx context.Context, tx pgx.Tx, rows []*newCheckoutRow) error {
	n := len(rows)
	ids, merchants, payins, currencies, amounts := make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	statuses, paymentStatuses := make([]string, n), make([]string, n)
	customers, metadata := make([]string, n), make([]string, n)
	descriptions, references, webhookURLs := make([]*string, n), make([]*string, n), make([]*string, n)
	modes := make([]bool, n)
	expiries, created := make([]time.Time, n), make([]time.Time, n)
	pubs := make([]Publication, n)
	for i, r := range rows {
		c := r.checkout
		customer, err := json.Marshal(c.CustomerDetails)
		if err != nil {
			return fmt.Errorf("marshal customer_details: %w", err)
		}
		meta, err := json.Marshal(c.Metadata)
		if err != nil {
			return fmt.Errorf("marshal metadata: %w", err)
		}
		ids[i], merchants[i], modes[i], payins[i], currencies[i], amounts[i] = c.ID, r.scope.MerchantID, c.Livemode, c.Payin, c.InvoiceCurrency, c.Amount
		customers[i], metadata[i], descriptions[i], references[i], webhookURLs[i] = string(customer), string(meta), c.TransactionDescription, c.ReferenceID, c.WebhookURL
		expiries[i], created[i], statuses[i], paymentStatuses[i] = time.Unix(c.ExpiryAt, 0), r.created, c.Status, c.PaymentStatus
		pubs[i] = Publication{Scope: r.scope, Type: CheckoutCreated, Object: c, WebhookURL: deref(c.WebhookURL), Trace: r.trace}
	}
	_, err := tx.Exec(ctx, `insert into checkouts (id, merchant_id, livemode, payin, status, payment_status,
		invoice_currency, amount, customer_details, transaction_description, reference_id, metadata, webhook_url,
		expiry_at, created_at)
		select c.id, c.merchant_id, c.livemode, c.payin, c.status, c.payment_status, c.currency, c.amount, c.customer::jsonb,
			c.description, c.reference, c.metadata::jsonb, c.webhook_url, c.expiry_at, c.created_at
		from unnest($1::text[], $2::text[], $3::bool[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[],
			$9::text[], $10::text[], $11::text[], $12::timestamptz[], $13::timestamptz[], $14::text[], $15::text[])
			as c (id, merchant_id, livemode, payin, currency, amount, customer, description, reference, metadata, webhook_url,
				expiry_at, created_at, status, payment_status)`,
		ids, merchants, modes, payins, currencies, amounts, customers, descriptions, references, metadata, webhookURLs,
		expiries, created, statuses, paymentStatuses)
	if err != nil {
		return fmt.Errorf("insert checkouts: %w", err)
	}
	if _, err := s.publisher.PublishMany(ctx, tx, pubs); err != nil {
		return err
	}
	return nil
}

// GetCheckout returns one of the scope's checkouts.
func GetCheckout(ctx context.Context, db DB, scope Scope, id string) (*Checkout, error) {
	c, err := scanCheckout(db.QueryRow(ctx, checkoutColumns+` where id = $1 and merchant_id = $2 and livemode = $3`,
		id, scope.MerchantID, scope.Livemode))
	if err != nil {
		return nil, WrapNotFound(err, "get checkout")
	}
	return c, nil
}

// ListCheckouts returns a page of the scope's checkouts, newest first.
func ListCheckouts(ctx context.Context, db DB, scope Scope, page Page) (*List[*Checkout], error) {
	return ListPage(ctx, db, page, checkoutColumns+` where merchant_id = $3 and livemode = $4`,
		func(rows pgx.Rows) (*Checkout, error) { return scanCheckout(rows) }, scope.MerchantID, scope.Livemode)
}

// lockCheckout reads a checkout for update, so that concurrent transitions of
// one checkout (an API call and the expiry sweep) happen one after the other.
func lockCheckout(ctx context.Context, tx pgx.Tx, scope Scope, id string) (*Checkout, error) {
	c, err := scanCheckout(tx.QueryRow(ctx, checkoutColumns+` where id = $1 and merchant_id = $2 and livemode = $3 for update`,
		id, scope.MerchantID, scope.Livemode))
	if err != nil {
		return nil, WrapNotFound(err, "lock checkout")
	}
	return c, nil
}

// ExpireCheckout expires an open checkout and emits checkout.expired. Any other
// status is a StateError: only an open checkout can expire.
func (s *Service) ExpireCheckout(ctx context.Context, tx pgx.Tx, scope Scope, id string) (*Checkout, error) {
	c, err := lockCheckout(ctx, tx, scope, id)
	if err != nil {
		return nil, err
	}
	if c.Status != StatusOpen {
		return nil, &StateError{Message: fmt.Sprintf("checkout %s is %s; only an open checkout can expire", c.ID, c.Status)}
	}
	c.Status = StatusExpired
	if _, err := tx.Exec(ctx, `update checkouts set status = $2 where id = $1`, c.ID, c.Status); err != nil {
		return nil, fmt.Errorf("expire checkout: %w", err)
	}
	if _, err := s.publisher.Publish(ctx, tx, scope, CheckoutExpired, c, deref(c.WebhookURL)); err != nil {
		return nil, err
	}
	return c, nil
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
