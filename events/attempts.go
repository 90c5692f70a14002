package events

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// Payment attempt statuses.
const (
	AttemptCreated    = "created"
	AttemptProcessing = "processing"
	AttemptSucceeded  = "succeeded"
	AttemptFailed     = "failed"
)

// attemptTransitions is the payment attempt state machine: the statuses each
// status may move to. succeeded and failed are final.
var attemptTransitions = map[string][]string{
	AttemptCreated:    {AttemptProcessing, AttemptSucceeded, AttemptFailed},
	AttemptProcessing: {AttemptSucceeded, AttemptFailed},
}

// CanTransition reports whether a payment attempt in status from may move to to.
func CanTransition(from, to string) bool {
	return slices.Contains(attemptTransitions[from], to)
}

// PaymentAttempt is one try to pay a checkout, in its wire form (the API
// response and the data of payment_attempt.* events). Its transitions stand in
// for the payment processor's.
type PaymentAttempt struct {
	ID             string  `json:"id"`
	Object         string  `json:"object"`
	Livemode       bool    `json:"livemode"`
	Checkout       string  `json:"checkout"`
	Payin          string  `json:"payin"`
	Status         string  `json:"status"`
	Amount         string  `json:"amount"`
	Currency       string  `json:"currency"`
	PaymentMethod  string  `json:"payment_method"`
	FailureCode    *string `json:"failure_code"`
	FailureMessage *string `json:"failure_message"`
	CreatedAt      int64   `json:"created_at"`
}

// AttemptParams are a new payment attempt's fields; an empty Amount or
// Currency means the checkout's.
type AttemptParams struct {
	Amount        string
	Currency      string
	PaymentMethod string
}

const attemptColumns = `select id, livemode, checkout_id, payin, status, amount, currency, payment_method,
	failure_code, failure_message, created_at from payment_attempts`

func scanAttempt(row pgx.Row) (*PaymentAttempt, error) {
	a := &PaymentAttempt{Object: "payment_attempt"}
	var created time.Time
	err := row.Scan(&a.ID, &a.Livemode, &a.Checkout, &a.Payin, &a.Status, &a.Amount, &a.Currency, &a.PaymentMethod,
		&a.FailureCode, &a.FailureMessage, &created)
	a.CreatedAt = created.Unix()
	return a, err
}

// CreateAttempt starts a payment attempt on an open checkout and emits
// payment_attempt.created.
func (s *Service) CreateAttempt(ctx context.Context, tx pgx.Tx, scope Scope, checkoutID string, p AttemptParams) (*PaymentAttempt, error) {
	c, err := lockCheckout(ctx, tx, scope, checkoutID)
	if err != nil {
		return nil, err
	}
	if c.Status != StatusOpen {
		return nil, &StateError{Message: fmt.Sprintf("checkout %s is %s; payment attempts need an open checkout", c.ID, c.Status)}
	}
	// Any case, as the checkout's invoice_currency.
	p.Currency = cmp.Or(strings.ToLower(p.Currency), c.InvoiceCurrency)
	if p.Currency != c.InvoiceCurrency {
		return nil, &InvalidError{Param: "currency", Message: fmt.Sprintf("must be the checkout's invoice_currency, %s", c.InvoiceCurrency)}
	}
	if p.Amount == "" {
		p.Amount = c.Amount
	}
	if p.PaymentMethod == "" {
		p.PaymentMethod = "card"
	}
	now := time.Now().UTC()
	a := &PaymentAttempt{
		ID:            NewID(PrefixPaymentAttempt),
		Object:        "payment_attempt",
		Livemode:      scope.Livemode,
		Checkout:      c.ID,
		Payin:         c.Payin,
		Status:        AttemptCreated,
		Amount:        p.Amount,
		Currency:      p.Currency,
		PaymentMethod: p.PaymentMethod,
		CreatedAt:     now.Unix(),
	}
	_, err = tx.Exec(ctx, `insert into payment_attempts (id, merchant_id, livemode, checkout_id, payin, status,
		amount, currency, payment_method, created_at) values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
		a.ID, scope.MerchantID, a.Livemode, a.Checkout, a.Payin, a.Status, a.Amount, a.Currency, a.PaymentMethod, now)
	if err != nil {
		return nil, fmt.Errorf("insert payment attempt: %w", err)
	}
	if _, err := s.publisher.Publish(ctx, tx, scope, PaymentAttemptCreated, a, deref(c.WebhookURL)); err != nil {
		return nil, err
	}
	return a, nil
}

// GetAttempt returns one of the scope's payment attempts.
func GetAttempt(ctx context.Context, db DB, scope Scope, id string) (*PaymentAttempt, error) {
	a, err := scanAttempt(db.QueryRow(ctx, attemptColumns+` where id = $1 and merchant_id = $2 and livemode = $3`,
		id, scope.MerchantID, scope.Livemode))
	if err != nil {
		return nil, WrapNotFound(err, "get payment attempt")
	}
	return a, nil
}

// Failure is why a payment attempt failed.
type Failure struct {
	Code    string
	Message *string
}

// TransitionAttempt moves a payment attempt to status to (processing,
// succeeded or failed; failure applies to failed) and emits its event. When an
// attempt succeeds and its checkout is still unpaid, the checkout is settled in
// the same transaction: paid if the amounts match, failed if they do not (seed
// 000: a mismatch means the customer must be contacted), each with its event.
func (s *Service) TransitionAttempt(ctx context.Context, tx pgx.Tx, scope Scope, id, to string, failure *Failure) (*PaymentAttempt, error) {
	// Lock the checkout first, then the attempt: every path that touches both
	// takes them in this order, so concurrent calls cannot deadlock.
	var checkoutID string
	err := tx.QueryRow(ctx, `select checkout_id from payment_attempts where id = $1 and merchant_id = $2 and livemode = $3`,
		id, scope.MerchantID, scope.Livemode).Scan(&checkoutID)
	if err != nil {
		return nil, WrapNotFound(err, "find payment attempt")
	}
	c, err := lockCheckout(ctx, tx, scope, checkoutID)
	if err != nil {
		return nil, err
	}
	a, err := scanAttempt(tx.QueryRow(ctx, attemptColumns+` where id = $1 for update`, id))
	if err != nil {
		return nil, WrapNotFound(err, "lock payment attempt")
	}
	if !CanTransition(a.Status, to) {
		return nil, &StateError{Message: fmt.Sprintf("payment attempt %s is %s and cannot become %s", a.ID, a.Status, to)}
	}
	a.Status = to
	if failure != nil {
		a.FailureCode, a.FailureMessage = &failure.Code, failure.Message
	}
	if _, err := tx.Exec(ctx, `update payment_attempts set status = $2, failure_code = $3, failure_message = $4 where id = $1`,
		a.ID, a.Status, a.FailureCode, a.FailureMessage); err != nil {
		return nil, fmt.Errorf("update payment attempt: %w", err)
	}
	attemptEvent := map[string]EventType{
		AttemptProcessing: PaymentAttemptProcessing,
		AttemptSucceeded:  PaymentAttemptSucceeded,
		AttemptFailed:     PaymentAttemptFailed,
	}[to]
	if _, err := s.publisher.Publish(ctx, tx, scope, attemptEvent, a, deref(c.WebhookURL)); err != nil {
		return nil, err
	}
	if to == AttemptSucceeded && c.PaymentStatus == PaymentUnpaid {
		if err := s.settle(ctx, tx, scope, c, a); err != nil {
			return nil, err
		}
	}
	return a, nil
}

// settle records a succeeded attempt on its checkout. An open checkout is
// completed; an expired one stays expired but still records that it was paid
// (a payment that lands after expiry is money received, as in seed 001).
func (s *Service) settle(ctx context.Context, tx pgx.Tx, scope Scope, c *Checkout, a *PaymentAttempt) error {
	evt := CheckoutPaid
	c.PaymentStatus = PaymentPaid
	if a.Amount != c.Amount {
		evt, c.PaymentStatus = CheckoutFailed, PaymentFailed
	}
	if c.Status == StatusOpen {
		c.Status = StatusCompleted
	}
	if _, err := tx.Exec(ctx, `update checkouts set status = $2, payment_status = $3 where id = $1`,
		c.ID, c.Status, c.PaymentStatus); err != nil {
		return fmt.Errorf("settle checkout: %w", err)
	}
	_, err := s.publisher.Publish(ctx, tx, scope, evt, c, deref(c.WebhookURL))
	return err
}
