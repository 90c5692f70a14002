package api

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/hookline/hookline/events"
)

// idempotencyWindow is how long a key's first response is replayed (Stripe's).
const idempotencyWindow = 24 * time.Hour

type storedResponse struct {
	status int
	body   []byte
}

// requestHash identifies a request's parameters: a key reused with other
// parameters is an error, not a replay.
func requestHash(r *http.Request, body []byte) []byte {
	h := sha256.New()
	fmt.Fprintf(h, "%s %s\n", r.Method, r.URL.Path)
	h.Write(body)
	return h.Sum(nil)
}

// claimIdempotencyKey takes the key for this request inside its transaction,
// or returns the response stored for it. A concurrent request with the same key
// waits on the row until the first commits (then replays it) or rolls back
// (then claims the key itself), so the work is never done twice.
func claimIdempotencyKey(ctx context.Context, tx pgx.Tx, keyring *events.Keyring, scope events.Scope, key string, hash []byte) (*storedResponse, error) {
	if len(key) > 255 {
		return nil, invalid("Idempotency-Key", "The Idempotency-Key header must be at most 255 characters.")
	}
	// A key older than the window is forgotten, then claimed anew.
	if _, err := tx.Exec(ctx, `delete from idempotency_keys where merchant_id = $1 and livemode = $2 and key = $3
		and created_at < now() - $4::interval`, scope.MerchantID, scope.Livemode, key, idempotencyWindow); err != nil {
		return nil, fmt.Errorf("expire idempotency key: %w", err)
	}
	tag, err := tx.Exec(ctx, `insert into idempotency_keys (merchant_id, livemode, key, request_hash, status_code, body)
		values ($1, $2, $3, $4, 0, '') on conflict do nothing`, scope.MerchantID, scope.Livemode, key, hash)
	if err != nil {
		return nil, fmt.Errorf("claim idempotency key: %w", err)
	}
	if tag.RowsAffected() == 1 {
		return nil, nil
	}
	stored := &storedResponse{}
	var storedHash, sealed []byte
	err = tx.QueryRow(ctx, `select request_hash, status_code, body from idempotency_keys
		where merchant_id = $1 and livemode = $2 and key = $3`, scope.MerchantID, scope.Livemode, key).
		Scan(&storedHash, &stored.status, &sealed)
	if errors.Is(err, pgx.ErrNoRows) {
		// Expired and deleted by another request between our statements.
		return nil, &Error{Status: http.StatusConflict, Type: "invalid_request_error", Code: "idempotency_key_in_use",
			Message: "Another request with this Idempotency-Key is in progress; retry it."}
	}
	if err != nil {
		return nil, fmt.Errorf("read idempotency key: %w", err)
	}
	if string(storedHash) != string(hash) {
		return nil, &Error{Status: http.StatusConflict, Type: "invalid_request_error", Code: "idempotency_key_reused",
			Message: "This Idempotency-Key was already used with other parameters or another endpoint."}
	}
	body, err := keyring.Open(idempotencyOwner(scope, key), string(sealed))
	if err != nil {
		return nil, err
	}
	stored.body = []byte(body)
	return stored, nil
}

// idempotencyOwner binds a stored response to its merchant, mode and key.
func idempotencyOwner(scope events.Scope, key string) string {
	return fmt.Sprintf("idempotency %s %v %s", scope.MerchantID, scope.Livemode, key)
}

// storeIdempotentResponse keeps the response for replay, sealed: it may be a
// response that shows a secret (an endpoint's creation or rotation).
func storeIdempotentResponse(ctx context.Context, tx pgx.Tx, keyring *events.Keyring, scope events.Scope, key string, status int, body []byte) error {
	sealed := keyring.Seal(idempotencyOwner(scope, key), string(body))
	_, err := tx.Exec(ctx, `update idempotency_keys set status_code = $4, body = $5
		where merchant_id = $1 and livemode = $2 and key = $3`, scope.MerchantID, scope.Livemode, key, status, []byte(sealed))
	if err != nil {
		return fmt.Errorf("store idempotent response: %w", err)
	}
	return nil
}
