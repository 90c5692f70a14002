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
// webhook secret, sealed with keyring.
func CreateMerchant(ctx context.Context, tx pgx.Tx, keyring *Keyring, name string) (*NewMerchant, error) {
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
		m.ID, m.Name, keyring.Seal(m.ID, m.WebhookSecret)); err != nil {
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

// GetMerchant returns a merchant's account, its secret opened with keyring.
func GetMerchant(ctx context.Context, db DB, keyring *Keyring, id string) (*Merchant, error) {
	m := &Merchant{Object: "account"}
	var sealed string
	err := db.QueryRow(ctx, `select id, name, webhook_secret from merchants where id = $1`, id).
		Scan(&m.ID, &m.Name, &sealed)
	if err != nil {
		return nil, WrapNotFound(err, "get merchant")
	}
	if m.WebhookSecret, err = keyring.Open(m.ID, sealed); err != nil {
		return nil, err
	}
	return m, nil
}

// ReencryptMerchants seals again, with the sealing key, every account secret
// sealed with another key or not at all, and reports how many it changed.
func ReencryptMerchants(ctx context.Context, tx pgx.Tx, keyring *Keyring) (int, error) {
	rows, err := tx.Query(ctx, `select id, webhook_secret from merchants for update`)
	if err != nil {
		return 0, fmt.Errorf("read account secrets: %w", err)
	}
	type row struct{ id, stored string }
	all, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (row, error) {
		var x row
		return x, r.Scan(&x.id, &x.stored)
	})
	if err != nil {
		return 0, fmt.Errorf("read account secrets: %w", err)
	}
	n := 0
	for _, r := range all {
		if keyring.Current(r.stored) {
			continue
		}
		plain, err := keyring.Open(r.id, r.stored)
		if err != nil {
			return n, err
		}
		if _, err := tx.Exec(ctx, `update merchants set webhook_secret = $2 where id = $1`, r.id, keyring.Seal(r.id, plain)); err != nil {
			return n, fmt.Errorf("reseal account secret: %w", err)
		}
		n++
	}
	return n, nil
}

func hashKey(key string) []byte {
	sum := sha256.Sum256([]byte(key))
	return sum[:]
}
