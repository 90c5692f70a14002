package api

import (
	"context"

	"github.com/jackc/pgx/v5"

	"github.com/hookline/hookline/api/portal"
)

type portalSessionRequest struct {
	// ReturnURL is checked by portal.CheckReturnURL.
	ReturnURL *string `json:"return_url" validate:"omitempty,max=2048"`
}

type portalSessionBody struct {
	Object    string `json:"object"`
	URL       string `json:"url"`
	ExpiresAt int64  `json:"expires_at"`
}

// createPortalSession mints a link to the merchant portal for the key's
// merchant and mode (contract §7), valid for an hour and for one use.
func (s *Server) createPortalSession(ctx context.Context, c *call, tx pgx.Tx) (any, error) {
	var req portalSessionRequest
	if err := s.decode(c.body, &req); err != nil {
		return nil, err
	}
	returnURL := ""
	if req.ReturnURL != nil {
		returnURL = *req.ReturnURL
		if err := portal.CheckReturnURL(returnURL, s.guard.Production); err != nil {
			return nil, err
		}
	}
	session, err := portal.CreateSession(ctx, tx, c.scope, returnURL)
	if err != nil {
		return nil, err
	}
	return portalSessionBody{Object: "portal_session", URL: s.portal.Link(c.r, session.Token), ExpiresAt: session.ExpiresAt.Unix()}, nil
}
