package api_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"testing"

	"github.com/hookline/hookline/migrations/dbtest"
)

// TestNoSecretAtRestOrInLogs creates every kind of secret hookline keeps,
// then reads the whole database as a dump would and the debug log: neither
// may contain a secret or an API key.
func TestNoSecretAtRestOrInLogs(t *testing.T) {
	t.Parallel()

	var logs dbtest.LogBuffer
	h := newHarnessWith(t, harnessOptions{logger: slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})

	// With idempotency keys: their stored responses show the secrets too.
	body := map[string]any{"url": "http://127.0.0.1:9/hooks"}
	ep := decodeEndpoint(t, h.do("POST", "/v1/webhook_endpoints", h.a.TestAPIKey, body, "Idempotency-Key", "create-1").must(t, http.StatusCreated))
	replayed := decodeEndpoint(t, h.do("POST", "/v1/webhook_endpoints", h.a.TestAPIKey, body, "Idempotency-Key", "create-1").must(t, http.StatusCreated))
	if replayed.Secret != ep.Secret {
		t.Fatal("the replayed creation does not show the endpoint's secret")
	}
	rotated := decodeEndpoint(t, h.do("POST", "/v1/webhook_endpoints/"+ep.ID+"/rotate_secret", h.a.TestAPIKey, nil,
		"Idempotency-Key", "rotate-1").must(t, http.StatusOK))
	account := h.do("GET", "/v1/account", h.a.TestAPIKey, nil).must(t, http.StatusOK)
	h.do("GET", "/v1/account", "sk_test_wrongwrongwrong", nil).must(t, http.StatusUnauthorized)
	if account.field(t, "webhook_secret") != h.a.TestWebhookSecret {
		t.Fatal("the account's secret does not open to what creation returned")
	}

	secrets := map[string]string{
		"endpoint secret": ep.Secret, "rotated secret": rotated.Secret, "account secret": h.a.WebhookSecret, "test account secret": h.a.TestWebhookSecret,
		"test key": h.a.TestAPIKey, "live key": h.a.LiveAPIKey, "wrong key": "sk_test_wrongwrongwrong",
	}
	rows, err := h.pool.Query(context.Background(), `select table_name from information_schema.tables
		where table_schema = current_schema() and table_type = 'BASE TABLE'`)
	if err != nil {
		t.Fatal(err)
	}
	var tables []string
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			t.Fatal(err)
		}
		tables = append(tables, name)
	}
	// Every column of every row, bytes as bytes, as a dump holds them.
	var dump strings.Builder
	for _, table := range tables {
		rows, err := h.pool.Query(context.Background(), `select * from `+table)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			values, err := rows.Values()
			if err != nil {
				t.Fatal(err)
			}
			for _, v := range values {
				if b, ok := v.([]byte); ok {
					dump.Write(b)
				} else {
					fmt.Fprint(&dump, v, " ")
				}
			}
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
	}
	for name, secret := range secrets {
		base := strings.TrimPrefix(strings.TrimPrefix(secret, "whsec_"), "sk_test_")
		if strings.Contains(dump.String(), base) && name != "wrong key" {
			t.Errorf("the database holds the %s in clear", name)
		}
		if strings.Contains(logs.String(), base) {
			t.Errorf("the log holds the %s", name)
		}
	}
	var stored string
	if err := h.pool.QueryRow(context.Background(), `select secret from webhook_endpoints where id = $1`, rotated.ID).Scan(&stored); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(stored, "v1:test:") {
		t.Errorf("endpoint secret stored as %.10s…, want sealed", stored)
	}
	if logs.Len() == 0 {
		t.Fatal("nothing was logged: the check above proved nothing")
	}
}
