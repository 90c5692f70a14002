package api

import (
	"context"
	"encoding/json"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/hookline/hookline/delivery"
	"github.com/hookline/hookline/events"
)

type endpointRequest struct {
	URL           string   `json:"url" validate:"required,max=2048"`
	Type          string   `json:"type" validate:"omitempty,oneof=webhook discord slack"`
	EnabledEvents []string `json:"enabled_events" validate:"omitempty,max=50"`
	Description   *string  `json:"description" validate:"omitempty,max=500"`
	DisplayName   *string  `json:"display_name" validate:"omitempty,max=80"`
	// SignatureScheme is checked by delivery.Endpoints.Create, which also
	// refuses it on chat endpoints.
	SignatureScheme string `json:"signature_scheme" validate:"max=20"`
	// RateLimit and Headers are checked by delivery.Endpoints.Check.
	RateLimit *int              `json:"rate_limit"`
	Headers   map[string]string `json:"headers"`
}

type endpointUpdateRequest struct {
	URL           *string  `json:"url" validate:"omitempty,max=2048"`
	EnabledEvents []string `json:"enabled_events" validate:"omitempty,max=50"`
	Description   *string  `json:"description" validate:"omitempty,max=500"`
	DisplayName   *string  `json:"display_name" validate:"omitempty,max=80"`
	Status        *string  `json:"status" validate:"omitempty,oneof=enabled disabled"`
	// RateLimit is raw so that null (remove the limit) differs from absent
	// (keep it).
	RateLimit json.RawMessage `json:"rate_limit"`
	// Headers replace the endpoint's custom headers; {} removes them.
	Headers map[string]string `json:"headers"`
}

type testEventRequest struct {
	// Type is checked against the catalog by delivery.SendTestEvent.
	Type *string `json:"type" validate:"omitempty,max=100"`
}

type rotateRequest struct {
	GracePeriodSeconds *int64 `json:"grace_period_seconds"`
}

// createEndpoint checks the endpoint, DNS included, before the transaction.
func (s *Server) createEndpoint(ctx context.Context, c *call) (txFunc, error) {
	var req endpointRequest
	if err := s.decode(c.body, &req); err != nil {
		return nil, err
	}
	checked, err := s.endpoints.Check(ctx, delivery.EndpointParams{
		Type: req.Type, URL: req.URL, EnabledEvents: req.EnabledEvents, Description: req.Description, DisplayName: req.DisplayName,
		SignatureScheme: req.SignatureScheme, RateLimit: req.RateLimit, Headers: req.Headers,
	})
	if err != nil {
		return nil, err
	}
	return func(ctx context.Context, tx pgx.Tx) (any, error) {
		return s.endpoints.Create(ctx, tx, c.scope, checked)
	}, nil
}

func (s *Server) getEndpoint(ctx context.Context, c *call) (any, error) {
	return withNotFound(delivery.Get(ctx, s.pool, c.scope, c.id()))("webhook_endpoint", c.id())
}

// endpointStats answers the endpoint's statistics over ?window= (1h, 24h
// or 7d; 24h when absent), read from the rollup (delivery.EndpointStats).
// A window given twice is refused, not read as its first: the caller asked
// for two, and one answer would be for a window it may not have meant.
func (s *Server) endpointStats(ctx context.Context, c *call) (any, error) {
	q := c.r.URL.Query()
	for name := range q {
		if name != "window" {
			return nil, invalid(name, "Received unknown parameter: "+name)
		}
	}
	if len(q["window"]) > 1 {
		return nil, invalid("window", "window must be given once: 1h, 24h or 7d")
	}
	window := q.Get("window")
	if q.Has("window") && window == "" {
		return nil, invalid("window", "window must be 1h, 24h or 7d")
	}
	return withNotFound(delivery.EndpointStats(ctx, s.pool, c.scope, c.id(), window, time.Now()))("webhook_endpoint", c.id())
}

func (s *Server) listEndpoints(ctx context.Context, c *call) (any, error) {
	page, err := pageParams(c.r)
	if err != nil {
		return nil, err
	}
	list, err := delivery.List(ctx, s.pool, c.scope, page)
	if err != nil {
		return nil, err
	}
	return newList(c.r, list), nil
}

// updateEndpoint checks the update, a new URL's DNS included, before the
// transaction.
func (s *Server) updateEndpoint(ctx context.Context, c *call) (txFunc, error) {
	var req endpointUpdateRequest
	if err := s.decode(c.body, &req); err != nil {
		return nil, err
	}
	if req.EnabledEvents != nil && len(req.EnabledEvents) == 0 {
		return nil, invalid("enabled_events", "enabled_events must list at least one event type, or \"*\"")
	}
	update := delivery.EndpointUpdate{
		URL: req.URL, EnabledEvents: req.EnabledEvents, Description: req.Description, DisplayName: req.DisplayName, Status: req.Status,
		SetRateLimit: req.RateLimit != nil, Headers: req.Headers,
	}
	if update.SetRateLimit && json.Unmarshal(req.RateLimit, &update.RateLimit) != nil {
		return nil, invalid("rate_limit", "rate_limit must be an integer from 1 to 10000 deliveries per second, or null for none")
	}
	checked, err := s.endpoints.CheckUpdate(ctx, update)
	if err != nil {
		return nil, err
	}
	return func(ctx context.Context, tx pgx.Tx) (any, error) {
		return withNotFound(s.endpoints.Update(ctx, tx, c.scope, c.id(), checked))("webhook_endpoint", c.id())
	}, nil
}

type deletedBody struct {
	ID      string `json:"id"`
	Object  string `json:"object"`
	Deleted bool   `json:"deleted"`
}

func (s *Server) deleteEndpoint(ctx context.Context, c *call, tx pgx.Tx) (any, error) {
	err := delivery.Delete(ctx, tx, c.scope, c.id())
	return withNotFound(deletedBody{ID: c.id(), Object: "webhook_endpoint", Deleted: true}, err)("webhook_endpoint", c.id())
}

// sendTestEvent sends the endpoint a test event made from its type's schema
// example (checkout.paid unless the body names another type).
func (s *Server) sendTestEvent(ctx context.Context, c *call, tx pgx.Tx) (any, error) {
	var req testEventRequest
	if err := s.decode(c.body, &req); err != nil {
		return nil, err
	}
	t := delivery.DefaultTestEventType
	if req.Type != nil {
		t = events.EventType(*req.Type)
	}
	return withNotFound(s.dispatcher.SendTestEvent(ctx, tx, s.service, c.scope, c.id(), t))("webhook_endpoint", c.id())
}

type replayRequest struct {
	Since  *int64   `json:"since" validate:"required"`
	Until  *int64   `json:"until"`
	Types  []string `json:"types"`
	DryRun bool     `json:"dry_run"`
}

// maxUnixTime is the last second of year 9999: a later time has no
// RFC 3339 form, in which the replay's job stores its window.
const maxUnixTime = 253402300799

// replayEndpoint gives the endpoint a new delivery of each event of a
// window (delivery.PlanReplay, then delivery.StartReplay). The window is
// counted before the request's transaction, on the pool, holding no lock;
// a refusal of the count is answered from the transaction, after the
// Idempotency-Key's stored response if there is one, so that a retry of an
// accepted replay gets that response even once its window has moved past
// 30 days or its endpoint changed.
func (s *Server) replayEndpoint(ctx context.Context, c *call) (txFunc, error) {
	var req replayRequest
	if err := s.decode(c.body, &req); err != nil {
		return nil, err
	}
	if *req.Since > maxUnixTime {
		return nil, invalid("since", "since must be a Unix time before the year 10000")
	}
	p := delivery.ReplayParams{Since: time.Unix(*req.Since, 0), Until: time.Now(), Types: req.Types, DryRun: req.DryRun}
	if req.Until != nil {
		if *req.Until > maxUnixTime {
			return nil, invalid("until", "until must be a Unix time before the year 10000 (a later until counts as now: leave it out)")
		}
		p.Until = time.Unix(*req.Until, 0)
	}
	plan, planErr := s.dispatcher.PlanReplay(ctx, s.pool, c.scope, c.id(), p)
	return func(ctx context.Context, tx pgx.Tx) (any, error) {
		if planErr != nil {
			return nil, named(planErr, "webhook_endpoint", c.id())
		}
		return withNotFound(s.dispatcher.StartReplay(ctx, tx, plan))("webhook_endpoint", c.id())
	}, nil
}

func (s *Server) rotateSecret(ctx context.Context, c *call, tx pgx.Tx) (any, error) {
	var req rotateRequest
	if err := s.decode(c.body, &req); err != nil {
		return nil, err
	}
	grace := delivery.DefaultGracePeriod
	if req.GracePeriodSeconds != nil {
		grace = time.Duration(*req.GracePeriodSeconds) * time.Second
		if *req.GracePeriodSeconds < 0 || *req.GracePeriodSeconds > int64(delivery.MaxGracePeriod/time.Second) {
			return nil, invalid("grace_period_seconds", "grace_period_seconds must be from 0 to 604800 (7 days)")
		}
	}
	return withNotFound(s.endpoints.RotateSecret(ctx, tx, c.scope, c.id(), grace))("webhook_endpoint", c.id())
}
