package api

import (
	"context"
	"crypto/subtle"
	"net/http"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/hookline/hookline/delivery"
	"github.com/hookline/hookline/events"
)

// errOperatorOff answers every operator route when no token is configured:
// they do not exist then.
var errOperatorOff = &Error{Status: http.StatusNotFound, Type: "invalid_request_error", Code: "route_missing",
	Message: "The operator API is off: set HOOKLINE_OPERATOR_TOKEN to enable it."}

// authenticateOperator accepts the operator token as a bearer token. The
// comparison takes the same time whatever the token sent.
func (s *Server) authenticateOperator(r *http.Request) (events.Scope, error) {
	if s.operatorToken == "" {
		return events.Scope{}, errOperatorOff
	}
	token, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !s.operatorTokenMatches(token) {
		return events.Scope{}, &Error{Status: http.StatusUnauthorized, Type: "authentication_error", Code: "operator_token_invalid",
			Message: "Send the operator token as Authorization: Bearer <HOOKLINE_OPERATOR_TOKEN>."}
	}
	return events.Scope{}, nil
}

func (s *Server) operatorTokenMatches(token string) bool {
	return s.operatorToken != "" && subtle.ConstantTimeCompare([]byte(token), []byte(s.operatorToken)) == 1
}

// recoverRequest is a recovery window in Unix seconds; until defaults to now.
type recoverRequest struct {
	Since  *int64 `json:"since" validate:"required"`
	Until  *int64 `json:"until"`
	DryRun bool   `json:"dry_run"`
}

func (s *Server) recover(ctx context.Context, c *call, tx pgx.Tx, scope *events.Scope) (any, error) {
	var req recoverRequest
	if err := s.decode(c.body, &req); err != nil {
		return nil, err
	}
	until := time.Now()
	if req.Until != nil {
		until = time.Unix(*req.Until, 0)
	}
	return withNotFound(s.dispatcher.Recover(ctx, tx, scope, c.id(), time.Unix(*req.Since, 0), until, req.DryRun))("webhook_endpoint", c.id())
}

// recoverEndpoint is the merchant's recovery of one of its endpoints.
func (s *Server) recoverEndpoint(ctx context.Context, c *call, tx pgx.Tx) (any, error) {
	return s.recover(ctx, c, tx, &c.scope)
}

func (s *Server) operatorRecover(ctx context.Context, c *call, tx pgx.Tx) (any, error) {
	return s.recover(ctx, c, tx, nil)
}

func (s *Server) operatorEnable(ctx context.Context, c *call, tx pgx.Tx) (any, error) {
	if err := s.decode(c.body, &struct{}{}); err != nil {
		return nil, err
	}
	err := delivery.Enable(ctx, tx, c.id())
	return withNotFound(map[string]string{"id": c.id(), "object": "webhook_endpoint", "status": delivery.EndpointEnabled}, err)("webhook_endpoint", c.id())
}

func (s *Server) operatorRetry(ctx context.Context, c *call, tx pgx.Tx) (any, error) {
	if err := s.decode(c.body, &struct{}{}); err != nil {
		return nil, err
	}
	err := s.dispatcher.RetryByID(ctx, tx, c.id())
	return withNotFound(map[string]any{"id": c.id(), "object": "delivery", "retried": true}, err)("delivery", c.id())
}

// failingEndpoint is a row of GET /v1/operator/endpoints: times in Unix
// seconds and an object name, as every other object of the API.
type failingEndpoint struct {
	ID             string  `json:"id"`
	Object         string  `json:"object"`
	MerchantID     string  `json:"merchant_id"`
	Livemode       bool    `json:"livemode"`
	URL            string  `json:"url"`
	Status         string  `json:"status"`
	DisabledReason *string `json:"disabled_reason"`
	FailingSince   *int64  `json:"failing_since"`
	FailedCount    int     `json:"failed_deliveries"`
	PendingCount   int     `json:"pending_deliveries"`
	LastError      *string `json:"last_error"`
	LastStatusCode *int    `json:"last_status_code"`
	LastAttemptAt  *int64  `json:"last_attempt_at"`
}

func newFailingEndpoint(f delivery.FailingEndpoint) failingEndpoint {
	return failingEndpoint{ID: f.ID, Object: "failing_endpoint", MerchantID: f.MerchantID, Livemode: f.Livemode, URL: f.URL,
		Status: f.Status, DisabledReason: f.DisabledReason, FailingSince: unixOrNil(f.FailingSince),
		FailedCount: f.FailedCount, PendingCount: f.PendingCount, LastError: f.LastError,
		LastStatusCode: f.LastStatusCode, LastAttemptAt: unixOrNil(f.LastAttemptAt)}
}

func unixOrNil(t *time.Time) *int64 {
	if t == nil {
		return nil
	}
	u := t.Unix()
	return &u
}

// operatorPage is an operator list: the first limit rows of rows, which was
// read with limit+1 so that has_more can tell whether a larger limit would
// show more (the operator lists take no cursor: they show what is in trouble
// now, newest first).
func operatorPage[T any](r *http.Request, rows []T, limit int) listBody[T] {
	more := len(rows) > limit
	if more {
		rows = rows[:limit]
	}
	return newList(r, &events.List[T]{Data: rows, HasMore: more})
}

func (s *Server) operatorEndpoints(ctx context.Context, c *call) (any, error) {
	limit, err := limitParam(c.r, 50, 500, "failing")
	if err != nil {
		return nil, err
	}
	if c.r.URL.Query().Get("failing") != "true" {
		return nil, invalid("failing", "failing=true is required: operators list the endpoints in trouble")
	}
	list, err := delivery.FailingEndpoints(ctx, s.pool, limit+1)
	if err != nil {
		return nil, err
	}
	rows := make([]failingEndpoint, len(list))
	for i, f := range list {
		rows[i] = newFailingEndpoint(f)
	}
	return operatorPage(c.r, rows, limit), nil
}

func (s *Server) operatorDeliveries(ctx context.Context, c *call) (any, error) {
	limit, err := limitParam(c.r, 50, 500, "status")
	if err != nil {
		return nil, err
	}
	status := c.r.URL.Query().Get("status")
	switch status {
	case "", delivery.StatusPending, delivery.StatusSucceeded, delivery.StatusFailed:
	default:
		return nil, invalid("status", "status must be pending, succeeded or failed")
	}
	list, err := delivery.RecentDeliveries(ctx, s.pool, status, limit+1)
	if err != nil {
		return nil, err
	}
	return operatorPage(c.r, list, limit), nil
}
