package delivery

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/hookline/hookline/events"
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
	conn := plannerConn(t, pool)
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

func TestKeepPrevious(t *testing.T) {
	t.Parallel()

	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	hour := func(n int) time.Time { return now.Add(time.Duration(n) * time.Hour) }
	tests := []struct {
		name       string
		until      time.Time // the grace of the secret rotated out now ("cur")
		previous   []string
		expire     []time.Time
		want       []string
		wantExpire []time.Time
	}{
		{"first rotation", hour(1), nil, nil, []string{"cur"}, []time.Time{hour(1)}},
		{"no grace", now, nil, nil, []string{}, []time.Time{}},
		{"a second rotation in the first one's grace", hour(1), []string{"p1"}, []time.Time{hour(1)},
			[]string{"cur", "p1"}, []time.Time{hour(1), hour(1)}},
		{"no grace keeps the earlier ones in theirs", now, []string{"p1"}, []time.Time{hour(1)}, []string{"p1"}, []time.Time{hour(1)}},
		{"a grace that has ended", hour(24), []string{"p1", "p2"}, []time.Time{hour(2), now.Add(-time.Second)},
			[]string{"cur", "p1"}, []time.Time{hour(24), hour(2)}},
		{"the cap drops the oldest", hour(1), []string{"p1", "p2", "p3", "p4", "p5"}, []time.Time{hour(1), hour(1), hour(1), hour(1), hour(1)},
			[]string{"cur", "p1", "p2", "p3", "p4"}, []time.Time{hour(1), hour(1), hour(1), hour(1), hour(1)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()

			got, gotExpire := keepPrevious("cur", tt.until, tt.previous, tt.expire, now)
			if fmt.Sprint(got, gotExpire) != fmt.Sprint(tt.want, tt.wantExpire) {
				t.Errorf("kept %v until %v, want %v until %v", got, gotExpire, tt.want, tt.wantExpire)
			}
		})
	}
}

// TestReencryptEndpoints reseals an endpoint's current and previous secrets
// and its authorization header, sealed under a key that is leaving, with the new sealing key: each opens to
// the same secret, and a second run has nothing left to do.
func TestReencryptEndpoints(t *testing.T) {
	t.Parallel()

	ctx := context.Background()
	pool := dbtest.NewPool(t)
	scope := events.Scope{MerchantID: dbtest.Merchant(t, pool, "Rotating merchant").ID}
	old := dbtest.Keyring(t)
	endpoints := NewEndpoints(NewGuard(false), old, 50)
	checked, err := endpoints.Check(ctx, EndpointParams{URL: "http://127.0.0.1:9/hooks",
		Headers: map[string]string{"Authorization": "Bearer 0123456789abcdefwxyz"}})
	if err != nil {
		t.Fatal(err)
	}
	var ep *Endpoint
	inTx := func(f func(tx pgx.Tx) error) {
		t.Helper()
		if err := pgx.BeginFunc(ctx, pool, f); err != nil {
			t.Fatal(err)
		}
	}
	inTx(func(tx pgx.Tx) (err error) {
		if ep, err = endpoints.Create(ctx, tx, scope, checked); err != nil {
			return err
		}
		for range 2 {
			if _, err := endpoints.RotateSecret(ctx, tx, scope, ep.ID, time.Hour); err != nil {
				return err
			}
		}
		return nil
	})
	stored := func() []string {
		t.Helper()
		var current, authorization string
		var previous []string
		if err := pool.QueryRow(ctx, `select secret, previous_secrets, header_authorization from webhook_endpoints where id = $1`, ep.ID).
			Scan(&current, &previous, &authorization); err != nil {
			t.Fatal(err)
		}
		return append(append([]string{current}, previous...), authorization)
	}
	opened := func(k *events.Keyring, sealed []string) []string {
		t.Helper()
		var out []string
		for _, s := range sealed {
			plain, err := k.Open(ep.ID, s)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, plain)
		}
		return out
	}
	before := stored()
	if len(before) != 4 {
		t.Fatalf("%d stored secrets after two rotations, with the header, want 4", len(before))
	}

	both, err := events.ParseKeyring(events.NewKeySpec("next") + "," + dbtest.KeySpec)
	if err != nil {
		t.Fatal(err)
	}
	for run, want := range []int{1, 0} {
		inTx(func(tx pgx.Tx) error {
			n, err := ReencryptEndpoints(ctx, tx, both)
			if err == nil && n != want {
				err = fmt.Errorf("run %d resealed %d endpoints, want %d", run+1, n, want)
			}
			return err
		})
	}
	after := stored()
	for i, s := range after {
		if !both.Current(s) {
			t.Errorf("secret %d is not sealed with the new key", i)
		}
	}
	if fmt.Sprint(opened(both, after)) != fmt.Sprint(opened(old, before)) {
		t.Error("resealing changed a secret")
	}
}
