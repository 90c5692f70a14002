package events

import (
	"context"

	"github.com/jackc/pgx/v5"
)

// SetBeforeCommit makes b run f in each batch's transaction just before its
// COMMIT: the tests' crash points.
func SetBeforeCommit(b *CheckoutBatcher, f func(ctx context.Context, tx pgx.Tx)) {
	b.beforeCommit = f
}

// ExpireDue is the expiry sweep's statement, for its plan test.
const ExpireDue = expireDue
