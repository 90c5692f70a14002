package events

import (
	"context"
	"crypto/sha256"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
)

// Merchant is an account: the owner of checkouts, endpoints and events.
// WebhookSecret signs deliveries to checkouts' own webhook_urls.
type Merchant struct {
	ID            string `json:"id"`
	Object        string `json:"object"`
	Name          string `json:"name"`
	WebhookSecret string `json:"webhook_secret"`
}

// NewMerchant is a merchant as created, with the only copy of its API keys
// that will ever exist outside the caller: hookline keeps their hashes.
type NewMerchant struct {
	ID            string `json:"id"`
	Name          string `json:"name"`
	TestAPIKey    string `json:"test_api_key"`
	LiveAPIKey    string `json:"live_api_key"`
	WebhookSecret string `json:"webhook_secret"`
}

// CreateMerchant creates a merchant with a test key, a live key and an account
// webhook secret.
func CreateMerchant(ctx context.Context, tx pgx.Tx, name string) (*NewMerchant, error) {
	name = strings.TrimSpace(name)
	if name == "" || len(name) > 200 {
		return nil, &InvalidError{Param: "name", Message: "must be 1 to 200 characters"}
	}
	m := &NewMerchant{
		ID:            NewID(PrefixAccount),
		Name:          name,
		TestAPIKey:    newAPIKey(false),
		LiveAPIKey:    newAPIKey(true),
		WebhookSecret: NewWebhookSecret(),
	}
	if _, err := tx.Exec(ctx, `insert into merchants (id, name, webhook_secret) values ($1, $2, $3)`,
		m.ID, m.Name, m.WebhookSecret); err != nil {
		return nil, fmt.Errorf("insert merchant: %w", err)
	}
	for _, k := range []struct {
		key      string
		livemode bool
	}{{m.TestAPIKey, false}, {m.LiveAPIKey, true}} {
		if _, err := tx.Exec(ctx, `insert into api_keys (key_hash, merchant_id, livemode) values ($1, $2, $3)`,
			hashKey(k.key), m.ID, k.livemode); err != nil {
			return nil, fmt.Errorf("insert api key: %w", err)
		}
	}
	return m, nil
}

// Authenticate returns the scope an API key grants, or ErrNotFound for a key
// that is malformed or unknown. Keys are looked up by hash; the key itself is
// never stored or logged.
func Authenticate(ctx context.Context, db DB, key string) (Scope, error) {
	if !strings.HasPrefix(key, testKeyPrefix) && !strings.HasPrefix(key, liveKeyPrefix) {
		return Scope{}, ErrNotFound
	}
	var s Scope
	err := db.QueryRow(ctx, `select merchant_id, livemode from api_keys where key_hash = $1`, hashKey(key)).
		Scan(&s.MerchantID, &s.Livemode)
	if err != nil {
		return Scope{}, WrapNotFound(err, "authenticate")
	}
	return s, nil
}

// GetMerchant returns a merchant's account.
func GetMerchant(ctx context.Context, db DB, id string) (*Merchant, error) {
	m := &Merchant{Object: "account"}
	err := db.QueryRow(ctx, `select id, name, webhook_secret from merchants where id = $1`, id).
		Scan(&m.ID, &m.Name, &m.WebhookSecret)
	if err != nil {
		return nil, WrapNotFound(err, "get merchant")
	}
	return m, nil
}

func hashKey(key string) []byte {
	sum := sha256.Sum256([]byte(key))
	return sum[:]
}
