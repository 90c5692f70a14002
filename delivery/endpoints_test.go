package delivery

import (
	"context"
	"errors"
	"net/netip"
	"testing"
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

			err := NewEndpoints(fakeDNS(tt.production), nil).checkURL(context.Background(), tt.typ, tt.url)
			if (err != nil) != tt.wantErr {
				t.Fatalf("checkURL(%s, %s) = %v, want error %v", tt.typ, tt.url, err, tt.wantErr)
			}
		})
	}
}
