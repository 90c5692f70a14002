package api

import (
	"context"
	"errors"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/hookline/hookline/delivery"
	"github.com/hookline/hookline/events"
	"github.com/hookline/hookline/migrations/dbtest"
)

// TestIdempotencyPlansAtScale checks the generic plans of the idempotency
// key's statements on the seeded history: a request claims its key (expiring
// an old one first), stores its response, and a retry of it reads the
// response back, each by the key's primary key, never a scan of the table.
func TestIdempotencyPlansAtScale(t *testing.T) {
	pool := dbtest.Seeded(t)
	keyring := dbtest.Keyring(t)
	scope := events.Scope{MerchantID: dbtest.SeedMerchant}
	plans := dbtest.CheckPlans(t, pool, delivery.PlannerSettings(), func(ctx context.Context, db events.DB) error {
		tx := db.(pgx.Tx)
		hash := []byte("plan test")
		if _, err := claimIdempotencyKey(ctx, tx, keyring, scope, "plan-test", hash); err != nil {
			return err
		}
		if err := storeIdempotentResponse(ctx, tx, keyring, scope, "plan-test", 201, []byte(`{}`)); err != nil {
			return err
		}
		stored, err := claimIdempotencyKey(ctx, tx, keyring, scope, "plan-test", hash)
		if err == nil && stored == nil {
			err = errors.New("the retry claimed the key again instead of replaying its response")
		}
		return err
	}, dbtest.Want{})
	dbtest.LogPlans(t, plans)
}
