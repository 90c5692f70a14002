package events

import (
	"context"
	"crypto/sha256"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
)

// Merchant is an account as one mode's key sees it: the owner of checkouts,
// endpoints and events. WebhookSecret is that mode's secret, which signs
// deliveries of that mode to checkouts' own webhook_urls; a test key never
// sees the live one.
type Merchant struct {
	ID            string `json:"id"`
	Object        string `json:"object"`
	Name          string `json:"name"`
	WebhookSecret string `json:"webhook_secret"`
}

// NewMerchant is a merchant as created, with the only copy of its API keys
// that will ever exist outside the caller: hookline keeps their hashes.
// WebhookSecret is the live account secret, TestWebhookSecret the test one.
type NewMerchant struct {
	ID                string `json:"id"`
	Name              string `json:"name"`
	TestAPIKey        string `json:"test_api_key"`
	LiveAPIKey        string `json:"live_api_key"`
	WebhookSecret     string `json:"webhook_secret"`
	TestWebhookSecret string `json:"test_webhook_secret"`
}

// CreateMerchant creates a merchant with a test key, a live key and an account
// webhook secret for each mode, sealed with keyring.
func CreateMerchant(ctx context.Context, tx pgx.Tx, keyring *Keyring, name string) (*NewMerchant, error) {
	name = strings.TrimSpace(name)
	if name == "" || len(name) > 200 {
		return nil, &InvalidError{Param: "name", Message: "must be 1 to 200 characters"}
	}
	m := &NewMerchant{
		ID:                NewID(PrefixAccount),
		Name:              name,
		TestAPIKey:        newAPIKey(false),
		LiveAPIKey:        newAPIKey(true),
		WebhookSecret:     NewWebhookSecret(),
		TestWebhookSecret: NewWebhookSecret(),
	}
	if _, err := tx.Exec(ctx, `insert into merchants (id, name, webhook_secret, test_webhook_secret) values ($1, $2, $3, $4)`,
		m.ID, m.Name, keyring.Seal(AccountSecretOwner(m.ID, true), m.WebhookSecret),
		keyring.Seal(AccountSecretOwner(m.ID, false), m.TestWebhookSecret)); err != nil {
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

// GetMerchant returns a merchant's account as the scope's mode sees it, with
// that mode's secret opened with keyring.
func GetMerchant(ctx context.Context, db DB, keyring *Keyring, scope Scope) (*Merchant, error) {
	m := &Merchant{Object: "account"}
	var sealed *string
	err := db.QueryRow(ctx, `select id, name, case when $2 then webhook_secret else test_webhook_secret end
		from merchants where id = $1`, scope.MerchantID, scope.Livemode).Scan(&m.ID, &m.Name, &sealed)
	if err != nil {
		return nil, WrapNotFound(err, "get merchant")
	}
	if m.WebhookSecret, err = OpenAccountSecret(ctx, db, keyring, scope, sealed); err != nil {
		return nil, err
	}
	return m, nil
}

// AccountSecretOwner is what an account secret is sealed for: the merchant's
// id for the live secret (as it was before modes had their own), with
// "/test" for the test one, so that a sealed value copied from one column
// to the other does not open.
func AccountSecretOwner(merchantID string, livemode bool) string {
	if livemode {
		return merchantID
	}
	return merchantID + "/test"
}

// OpenAccountSecret opens the scope's account secret as stored (sealed), and
// makes the test secret of a merchant created before modes had their own
// (sealed is nil). Migration 008 cannot make it, since SQL cannot seal, so
// it is made here on first use: one statement writes a new secret unless a
// concurrent caller's is already there, and every caller gets whichever won.
func OpenAccountSecret(ctx context.Context, db DB, keyring *Keyring, scope Scope, sealed *string) (string, error) {
	owner := AccountSecretOwner(scope.MerchantID, scope.Livemode)
	if sealed == nil {
		if scope.Livemode {
			return "", fmt.Errorf("merchant %s has no live webhook secret", scope.MerchantID)
		}
		sealed = new(string)
		err := db.QueryRow(ctx, `update merchants set test_webhook_secret = coalesce(test_webhook_secret, $2)
			where id = $1 returning test_webhook_secret`, scope.MerchantID, keyring.Seal(owner, NewWebhookSecret())).Scan(sealed)
		if err != nil {
			return "", WrapNotFound(err, "make test webhook secret")
		}
	}
	return keyring.Open(owner, *sealed)
}

// ReencryptMerchants seals again, with the sealing key, every account secret
// (live and test) sealed with another key or not at all, and reports how many
// merchants it changed.
func ReencryptMerchants(ctx context.Context, tx pgx.Tx, keyring *Keyring) (int, error) {
	rows, err := tx.Query(ctx, `select id, webhook_secret, test_webhook_secret from merchants for update`)
	if err != nil {
		return 0, fmt.Errorf("read account secrets: %w", err)
	}
	type row struct {
		id, live string
		test     *string
	}
	all, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (row, error) {
		var x row
		return x, r.Scan(&x.id, &x.live, &x.test)
	})
	if err != nil {
		return 0, fmt.Errorf("read account secrets: %w", err)
	}
	reseal := func(owner, stored string) (string, error) {
		if keyring.Current(stored) {
			return stored, nil
		}
		plain, err := keyring.Open(owner, stored)
		if err != nil {
			return "", err
		}
		return keyring.Seal(owner, plain), nil
	}
	n := 0
	for _, r := range all {
		live, err := reseal(AccountSecretOwner(r.id, true), r.live)
		if err != nil {
			return n, err
		}
		test := r.test
		if test != nil {
			t, err := reseal(AccountSecretOwner(r.id, false), *test)
			if err != nil {
				return n, err
			}
			test = &t
		}
		if live == r.live && (test == nil || *test == *r.test) {
			continue
		}
		if _, err := tx.Exec(ctx, `update merchants set webhook_secret = $2, test_webhook_secret = $3 where id = $1`,
			r.id, live, test); err != nil {
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
