package api

import (
	"context"
	"encoding/json"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/hookline/hookline/events"
)

type checkoutRequest struct {
	Amount                 json.RawMessage   `json:"amount" validate:"required"`
	InvoiceCurrency        string            `json:"invoice_currency" validate:"required,max=8"`
	CustomerDetails        *customerRequest  `json:"customer_details"`
	TransactionDescription *string           `json:"transaction_description" validate:"omitempty,max=500"`
	ReferenceID            *string           `json:"reference_id" validate:"omitempty,max=200"`
	Metadata               map[string]string `json:"metadata" validate:"omitempty,max=50,dive,keys,min=1,max=40,endkeys,max=500"`
	WebhookURL             *string           `json:"webhook_url" validate:"omitempty,max=2048,http_url"`
	ExpiryAt               *int64            `json:"expiry_at"`
}

type customerRequest struct {
	Country *string       `json:"country" validate:"omitempty,iso3166_1_alpha2"`
	Email   *string       `json:"email" validate:"omitempty,max=254,email"`
	Name    *string       `json:"name" validate:"omitempty,max=200"`
	Phone   *phoneRequest `json:"phone"`
}

type phoneRequest struct {
	CountryCode string `json:"country_code" validate:"required,max=4,numeric"`
	Number      string `json:"number" validate:"required,min=4,max=15,numeric"`
}

// createCheckout checks a checkout request (its webhook_url's DNS included)
// before the transaction, then creates the checkout in the request's
// transaction: a request with an Idempotency-Key, whose record commits with
// it.
func (s *Server) createCheckout(ctx context.Context, c *call) (txFunc, error) {
	p, err := s.checkoutParams(ctx, c)
	if err != nil {
		return nil, err
	}
	return func(ctx context.Context, tx pgx.Tx) (any, error) {
		return s.service.CreateCheckout(ctx, tx, c.scope, p)
	}, nil
}

// createCheckoutBatched creates a checkout in a transaction shared with other
// requests (events.CheckoutBatcher): the API's busiest write.
func (s *Server) createCheckoutBatched(ctx context.Context, c *call) (any, error) {
	p, err := s.checkoutParams(ctx, c)
	if err != nil {
		return nil, err
	}
	return s.checkouts.Create(ctx, c.scope, p)
}

// checkoutParams decodes and checks a checkout request, resolving its
// webhook_url's host in production: callers run it before any transaction.
func (s *Server) checkoutParams(ctx context.Context, c *call) (events.CheckoutParams, error) {
	var req checkoutRequest
	if err := s.decode(c.body, &req); err != nil {
		return events.CheckoutParams{}, err
	}
	amount, err := parseAmount(req.Amount, "amount")
	if err != nil {
		return events.CheckoutParams{}, err
	}
	if amount == "0" {
		return events.CheckoutParams{}, invalid("amount", "amount must be greater than 0")
	}
	if req.WebhookURL != nil {
		if err := s.guard.CheckURL(ctx, *req.WebhookURL, "webhook_url"); err != nil {
			return events.CheckoutParams{}, err
		}
	}
	p := events.CheckoutParams{
		Amount:                 amount,
		InvoiceCurrency:        req.InvoiceCurrency,
		TransactionDescription: req.TransactionDescription,
		ReferenceID:            req.ReferenceID,
		Metadata:               req.Metadata,
		WebhookURL:             req.WebhookURL,
	}
	if req.ExpiryAt != nil {
		p.ExpiryAt = time.Unix(*req.ExpiryAt, 0)
	}
	if cd := req.CustomerDetails; cd != nil {
		p.CustomerDetails = events.CustomerDetails{Country: cd.Country, Email: cd.Email, Name: cd.Name}
		if cd.Phone != nil {
			p.CustomerDetails.Phone = &events.Phone{CountryCode: cd.Phone.CountryCode, Number: cd.Phone.Number}
		}
	}
	return p, nil
}

func (s *Server) getCheckout(ctx context.Context, c *call) (any, error) {
	return withNotFound(events.GetCheckout(ctx, s.pool, c.scope, c.id()))("checkout", c.id())
}

func (s *Server) listCheckouts(ctx context.Context, c *call) (any, error) {
	page, err := pageParams(c.r)
	if err != nil {
		return nil, err
	}
	list, err := events.ListCheckouts(ctx, s.pool, c.scope, page)
	if err != nil {
		return nil, err
	}
	return newList(c.r, list), nil
}

func (s *Server) expireCheckout(ctx context.Context, c *call, tx pgx.Tx) (any, error) {
	if err := s.decode(c.body, &struct{}{}); err != nil {
		return nil, err
	}
	return withNotFound(s.service.ExpireCheckout(ctx, tx, c.scope, c.id()))("checkout", c.id())
}

// withNotFound names the missing object in a not-found error, Stripe's way.
func withNotFound[T any](v T, err error) func(what, id string) (any, error) {
	return func(what, id string) (any, error) {
		if err != nil {
			return nil, named(err, what, id)
		}
		return v, nil
	}
}
