package api

import (
	"cmp"
	"errors"
	"io"
	"net"
	"strings"

	"log/slog"
	"net/http"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/hookline/hookline/events"
)

// Error is an API error in Stripe's shape. Message and Param are public; cause
// is logged and never sent.
type Error struct {
	Status  int
	Type    string
	Code    string
	Message string
	Param   string
	cause   error
}

func (e *Error) Error() string { return e.Message }

func invalid(param, message string) *Error {
	return &Error{Status: http.StatusBadRequest, Type: "invalid_request_error", Code: "parameter_invalid", Message: message, Param: param}
}

func notFound(what, id string) *Error {
	return &Error{Status: http.StatusNotFound, Type: "invalid_request_error", Code: "resource_missing",
		Message: "No such " + what + ": '" + id + "'", Param: "id"}
}

// errorBody is the JSON of an error response.
type errorBody struct {
	Error struct {
		Type    string  `json:"type"`
		Code    string  `json:"code"`
		Message string  `json:"message"`
		Param   *string `json:"param"`
	} `json:"error"`
}

// asAPIError maps any error a handler returns to the error sent: the domain's
// errors to their 4xx, anything else to a 500 that says nothing of its cause.
func asAPIError(err error) *Error {
	var apiErr *Error
	var stateErr *events.StateError
	var invalidErr *events.InvalidError
	var limitErr *events.LimitError
	switch {
	case errors.As(err, &apiErr):
		return apiErr
	case errors.As(err, &invalidErr):
		return invalid(invalidErr.Param, invalidErr.Param+" "+invalidErr.Message)
	case errors.As(err, &limitErr):
		return &Error{Status: http.StatusBadRequest, Type: "invalid_request_error", Code: "limit_reached", Message: limitErr.Message, Param: limitErr.Limit}
	case errors.As(err, &stateErr):
		return &Error{Status: http.StatusConflict, Type: "invalid_request_error", Code: cmp.Or(stateErr.Code, "state_conflict"), Message: stateErr.Message}
	case errors.Is(err, events.ErrNotFound):
		return &Error{Status: http.StatusNotFound, Type: "invalid_request_error", Code: "resource_missing", Message: "No such object."}
	case errors.Is(err, events.ErrCommitUnknown):
		// Not "nothing was changed": a blind retry may create it twice.
		return &Error{Status: http.StatusServiceUnavailable, Type: "api_error", Code: "outcome_unknown",
			Message: "hookline lost its database connection while committing and could not tell whether the change was made; look for it before retrying.", cause: err}
	case databaseUnavailable(err):
		return &Error{Status: http.StatusServiceUnavailable, Type: "api_error", Code: "database_unavailable",
			Message: "hookline cannot reach its database right now; nothing was changed. Retry shortly.", cause: err}
	default:
		return &Error{Status: http.StatusInternalServerError, Type: "api_error", Code: "internal_error",
			Message: "An internal error occurred. It has been logged; please retry.", cause: err}
	}
}

// databaseUnavailable reports whether err says Postgres is out of reach
// (refused, shutting down, connection lost), as opposed to a bug: the first
// is a 503 worth retrying, the second a 500. Either way the transaction did
// not commit, so nothing acknowledged is lost.
func databaseUnavailable(err error) bool {
	var connectErr *pgconn.ConnectError
	var netErr *net.OpError
	var pgErr *pgconn.PgError
	switch {
	case errors.As(err, &connectErr), errors.As(err, &netErr), errors.Is(err, io.ErrUnexpectedEOF), pgconn.Timeout(err):
		return true
	case errors.As(err, &pgErr):
		// 57P01-03: admin or crash shutdown, cannot connect now; class 08: connection exception.
		return strings.HasPrefix(pgErr.Code, "57P") || strings.HasPrefix(pgErr.Code, "08")
	}
	return strings.Contains(err.Error(), "conn closed") || strings.Contains(err.Error(), "closed pool")
}

// failure is err as the API answers it, having done what every answer of
// it does whatever its form (JSON or the dashboard's page): a 503 asks to
// retry in a second, and a 5xx's cause is logged, never shown.
func (s *Server) failure(w http.ResponseWriter, r *http.Request, err error) *Error {
	e := asAPIError(err)
	if e.Status == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", "1")
	}
	if e.Status >= http.StatusInternalServerError {
		s.logger.ErrorContext(r.Context(), "request failed", slog.String("method", r.Method),
			slog.String("path", r.URL.Path), slog.String("error", err.Error()))
	}
	return e
}

// renderError writes err as the response (failure), in the API's JSON.
func (s *Server) renderError(w http.ResponseWriter, r *http.Request, err error) {
	e := s.failure(w, r, err)
	var body errorBody
	body.Error.Type, body.Error.Code, body.Error.Message = e.Type, e.Code, e.Message
	if e.Param != "" {
		body.Error.Param = &e.Param
	}
	writeJSON(w, e.Status, body)
}
