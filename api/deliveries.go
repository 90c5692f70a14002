package api

import (
	"context"

	"github.com/jackc/pgx/v5"

	"github.com/hookline/hookline/delivery"
)

func (s *Server) listDeliveries(ctx context.Context, c *call) (any, error) {
	page, err := pageParams(c.r, "event", "endpoint", "status")
	if err != nil {
		return nil, err
	}
	q := c.r.URL.Query()
	f := delivery.DeliveryFilter{EventID: q.Get("event"), EndpointID: q.Get("endpoint"), Status: q.Get("status")}
	switch f.Status {
	case "", delivery.StatusPending, delivery.StatusSucceeded, delivery.StatusFailed:
	default:
		return nil, invalid("status", "status must be pending, succeeded or failed")
	}
	list, err := delivery.ListDeliveries(ctx, s.pool, c.scope, f, page)
	if err != nil {
		return nil, err
	}
	return newList(c.r, list), nil
}

func (s *Server) getDelivery(ctx context.Context, c *call) (any, error) {
	return withNotFound(delivery.GetDelivery(ctx, s.pool, &c.scope, c.id()))("delivery", c.id())
}

// retryDelivery answers 202: the attempt is queued, not made, when it returns.
func (s *Server) retryDelivery(ctx context.Context, c *call, tx pgx.Tx) (any, error) {
	if err := s.decode(c.body, &struct{}{}); err != nil {
		return nil, err
	}
	return withNotFound(s.dispatcher.Retry(ctx, tx, c.scope, c.id()))("delivery", c.id())
}
