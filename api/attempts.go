package api

import (
	"context"
	"encoding/json"

	"github.com/jackc/pgx/v5"

	"github.com/hookline/hookline/events"
)

type attemptRequest struct {
	Amount        json.RawMessage `json:"amount"`
	Currency      string          `json:"currency" validate:"omitempty,max=8"`
	PaymentMethod string          `json:"payment_method" validate:"omitempty,max=64,printascii"`
}

type failRequest struct {
	FailureCode    string  `json:"failure_code" validate:"required,max=64,printascii"`
	FailureMessage *string `json:"failure_message" validate:"omitempty,max=500"`
}

func (s *Server) createAttempt(ctx context.Context, c *call, tx pgx.Tx) (any, error) {
	var req attemptRequest
	if err := s.decode(c.body, &req); err != nil {
		return nil, err
	}
	p := events.AttemptParams{Currency: req.Currency, PaymentMethod: req.PaymentMethod}
	if len(req.Amount) > 0 && string(req.Amount) != "null" {
		amount, err := parseAmount(req.Amount, "amount")
		if err != nil {
			return nil, err
		}
		p.Amount = amount
	}
	return withNotFound(s.service.CreateAttempt(ctx, tx, c.scope, c.id(), p))("checkout", c.id())
}

func (s *Server) getAttempt(ctx context.Context, c *call) (any, error) {
	return withNotFound(events.GetAttempt(ctx, s.pool, c.scope, c.id()))("payment_attempt", c.id())
}

// transitionAttempt handles process and succeed, whose bodies are empty.
func (s *Server) transitionAttempt(to string) func(ctx context.Context, c *call, tx pgx.Tx) (any, error) {
	return func(ctx context.Context, c *call, tx pgx.Tx) (any, error) {
		if err := s.decode(c.body, &struct{}{}); err != nil {
			return nil, err
		}
		return withNotFound(s.service.TransitionAttempt(ctx, tx, c.scope, c.id(), to, nil))("payment_attempt", c.id())
	}
}

func (s *Server) failAttempt(ctx context.Context, c *call, tx pgx.Tx) (any, error) {
	var req failRequest
	if err := s.decode(c.body, &req); err != nil {
		return nil, err
	}
	failure := &events.Failure{Code: req.FailureCode, Message: req.FailureMessage}
	return withNotFound(s.service.TransitionAttempt(ctx, tx, c.scope, c.id(), events.AttemptFailed, failure))("payment_attempt", c.id())
}
