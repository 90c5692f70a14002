package api

import (
	"fmt"
	"io"
	"net/http"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/hookline/hookline/events"
)

// The checkout batcher's failures reach the client as what they mean: a
// batch that lost its connection and did not commit is a 503 that changed
// nothing, one whose outcome could not be read back says so (a blind retry
// may create a duplicate), and a panic is a 500.
func TestBatchErrorsAsAPIErrors(t *testing.T) {
	t.Parallel()

	terminated := &pgconn.PgError{Severity: "FATAL", Code: "57P01", Message: "terminating connection due to administrator command"}
	tests := []struct {
		name   string
		err    error
		status int
		code   string
	}{
		{"lost before commit", fmt.Errorf("commit checkout batch: %w", terminated), http.StatusServiceUnavailable, "database_unavailable"},
		{"lost, outcome unknown", fmt.Errorf("%w: commit: %w; lookup: %w", events.ErrCommitUnknown, io.ErrUnexpectedEOF, terminated),
			http.StatusServiceUnavailable, "outcome_unknown"},
		{"panic", fmt.Errorf("write checkout batch: panic: %v", "index out of range"), http.StatusInternalServerError, "internal_error"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()

			if e := asAPIError(tt.err); e.Status != tt.status || e.Code != tt.code {
				t.Errorf("%v: %d %s, want %d %s", tt.err, e.Status, e.Code, tt.status, tt.code)
			}
		})
	}
}
