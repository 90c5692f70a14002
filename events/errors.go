package events

import (
	"errors"
	"strings"
	"unicode/utf8"
)

// ErrNotFound is returned for an object that does not exist or that belongs to
// another merchant or mode: the two must be indistinguishable from outside.
var ErrNotFound = errors.New("not found")

// StateError is returned when an object's current state does not allow the
// requested change (expiring a completed checkout, succeeding a failed attempt).
type StateError struct {
	// Code is the error's code for clients; empty means state_conflict.
	Code    string
	Message string
}

func (e *StateError) Error() string { return e.Message }

// InvalidError is a rule the input breaks that only the domain can check
// (the checkout's currency, a time relative to now). Param names the field.
type InvalidError struct {
	Param   string
	Message string
}

func (e *InvalidError) Error() string { return e.Param + ": " + e.Message }

// LimitError is returned when a change would pass one of the contract's limits
// (§9), and is refused whole: nothing is written. Limit names the limit, so
// that a client can tell which one it met.
type LimitError struct {
	Limit   string
	Message string
}

func (e *LimitError) Error() string { return e.Limit + ": " + e.Message }

// IsText reports whether Postgres's text can hold s: valid UTF-8, without
// NUL. Every adapter (the API's JSON and URLs, the portal's forms) refuses
// other input as a 400 naming its field, before a statement would fail on
// it with a 500.
func IsText(s string) bool {
	return utf8.ValidString(s) && !strings.ContainsRune(s, 0)
}
