package delivery

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/hookline/hookline/migrations/dbtest"
)

// fakeDNS is a guard whose resolver knows a few public names and one that
// points inside, as a rebinding attacker's would.
func fakeDNS(production bool) *Guard {
	g := NewGuard(production)
	g.Lookup = func(_ context.Context, host string) ([]netip.Addr, error) {
		switch host {
		case "discord.com", "discordapp.com", "ptb.discord.com", "canary.discord.com", "hooks.slack.com", "example.com",
			"discord.com.evil.example", "slack.example.com":
			return []netip.Addr{netip.MustParseAddr("162.159.135.232")}, nil
		case "internal.example.com":
			return []netip.Addr{netip.MustParseAddr("162.159.135.232"), netip.MustParseAddr("10.0.0.7")}, nil
		}
		return nil, errors.New("no such host")
	}
	return g
}

func TestChatURLs(t *testing.T) {
	t.Parallel()

	tests := []struct {
		name       string
		production bool
		typ        string
		url        string
		wantErr    bool
	}{
		{"discord", true, TypeDiscord, "https://discord.com/api/webhooks/123/abc", false},
		{"discordapp", true, TypeDiscord, "https://discordapp.com/api/webhooks/123/abc", false},
		{"ptb", true, TypeDiscord, "https://ptb.discord.com/api/webhooks/123/abc", false},
		{"canary", true, TypeDiscord, "https://canary.discord.com/api/webhooks/123/abc", false},
		{"discord elsewhere", true, TypeDiscord, "https://example.com/api/webhooks/123/abc", true},
		{"discord, other path", true, TypeDiscord, "https://discord.com/channels/123", true},
		{"discord look-alike", true, TypeDiscord, "https://discord.com.evil.example/api/webhooks/1/a", true},
		{"slack", true, TypeSlack, "https://hooks.slack.com/services/T0/B0/x", false},
		{"slack elsewhere", true, TypeSlack, "https://slack.example.com/services/T0/B0/x", true},
		{"development: any URL", false, TypeDiscord, "http://127.0.0.1:9000/fake-discord", false},
		{"unknown type", false, "teams", "http://127.0.0.1:9000/", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()

			err := NewEndpoints(fakeDNS(tt.production), nil, 50).checkURL(context.Background(), tt.typ, tt.url)
			if (err != nil) != tt.wantErr {
				t.Fatalf("checkURL(%s, %s) = %v, want error %v", tt.typ, tt.url, err, tt.wantErr)
			}
		})
	}
}

// The endpoint limit's count walks the scope's entries of
// webhook_endpoints_merchant_idx, never the table, on the connection settings
// of hookline's pools and with the table analyzed.
func TestEndpointLimitCountUsesTheMerchantIndex(t *testing.T) {
	t.Parallel()

	pool := dbtest.NewPool(t)
	ctx := context.Background()
	for i := range 20 {
		m := dbtest.Merchant(t, pool, fmt.Sprintf("Merchant %d", i))
		if _, err := pool.Exec(ctx, `insert into webhook_endpoints (id, merchant_id, livemode, type, url, status, secret, created_at, deleted_at)
			select 'we_' || $1 || '_' || g, $1, g % 2 = 0, 'webhook', 'https://example.com', 'enabled', 'sealed', now(),
				case when g % 3 = 0 then now() end
			from generate_series(1, 60) g`, m.ID); err != nil {
			t.Fatal(err)
		}
	}
	conn, err := pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	for name, value := range PlannerSettings() {
		if _, err := conn.Exec(ctx, "select set_config($1, $2, false)", name, value); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := conn.Exec(ctx, "analyze webhook_endpoints"); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, "prepare countScopeEndpoints as "+countScopeEndpoints); err != nil {
		t.Fatal(err)
	}
	rows, err := conn.Query(ctx, "explain execute countScopeEndpoints('acct_x', false, 50)")
	if err != nil {
		t.Fatal(err)
	}
	lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	plan := strings.Join(lines, "\n")
	if strings.Contains(plan, "Seq Scan") || !strings.Contains(plan, "webhook_endpoints_merchant_idx") {
		t.Errorf("the endpoint count does not walk webhook_endpoints_merchant_idx:\n%s", plan)
	}
}
