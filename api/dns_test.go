package api_test

import (
	"context"
	"net/http"
	"net/netip"
	"sync"
	"testing"

	"github.com/hookline/hookline/delivery"
)

// TestURLChecksResolveOutsideTransactions resolves every URL a request
// registers with a resolver that looks at the database while it runs: no
// request may hold a pool connection, an open transaction or its
// Idempotency-Key row during a DNS lookup, which in production can take 5 s
// against a merchant's DNS server.
func TestURLChecksResolveOutsideTransactions(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var lookups []string
	guard := delivery.NewGuard(true)
	o := harnessOptions{token: operatorToken, guard: guard}
	h := newHarnessWith(t, o)
	guard.Lookup = func(ctx context.Context, host string) ([]netip.Addr, error) {
		held := h.pool.Stat().AcquiredConns()
		var locks int
		// A claimed Idempotency-Key, or any write, holds a lock on the table
		// until its transaction ends; this schema is the test's own.
		if err := h.pool.QueryRow(ctx, `select count(*) from pg_locks
			where relation = 'idempotency_keys'::regclass and pid <> pg_backend_pid()`).Scan(&locks); err != nil {
			t.Errorf("read locks: %v", err)
		}
		mu.Lock()
		lookups = append(lookups, host)
		mu.Unlock()
		if held != 0 || locks != 0 {
			t.Errorf("resolving %s while the API holds %d connections and %d idempotency_keys locks", host, held, locks)
		}
		return []netip.Addr{netip.MustParseAddr("93.184.216.34")}, nil
	}

	key := h.a.TestAPIKey
	ep := h.do("POST", "/v1/webhook_endpoints", key, map[string]any{"url": "https://hooks.example.com/a"},
		"Idempotency-Key", "dns-create").must(t, http.StatusCreated).field(t, "id")
	h.do("POST", "/v1/webhook_endpoints", key, map[string]any{"url": "https://hooks.example.com/b"}).must(t, http.StatusCreated)
	h.do("PATCH", "/v1/webhook_endpoints/"+ep, key, map[string]any{"url": "https://hooks.example.com/c"},
		"Idempotency-Key", "dns-patch").must(t, http.StatusOK)
	h.do("PATCH", "/v1/webhook_endpoints/"+ep, key, map[string]any{"url": "https://hooks.example.com/d"}).must(t, http.StatusOK)
	h.do("POST", "/v1/checkouts", key, map[string]any{"amount": "100", "invoice_currency": "usd",
		"webhook_url": "https://shop.example.com/e"}, "Idempotency-Key", "dns-checkout").must(t, http.StatusCreated)
	h.do("POST", "/v1/checkouts", key, map[string]any{"amount": "100", "invoice_currency": "usd",
		"webhook_url": "https://shop.example.com/f"}).must(t, http.StatusCreated)

	mu.Lock()
	defer mu.Unlock()
	if len(lookups) != 6 {
		t.Fatalf("resolved %v, want one lookup per request (6)", lookups)
	}
}
