package delivery

import (
	"context"
	"errors"
	"net/netip"
	"testing"

	"github.com/hookline/hookline/events"
)

func TestPublicAddr(t *testing.T) {
	t.Parallel()

	tests := []struct {
		addr string
		want bool
	}{
		{"93.184.215.14", true},
		{"2606:2800:21f:cb07:6820:80da:af6b:8b2c", true},
		{"127.0.0.1", false},
		{"127.1.2.3", false},
		{"10.0.0.1", false},
		{"172.16.5.4", false},
		{"192.168.1.1", false},
		{"169.254.169.254", false},
		{"100.64.0.1", false},
		{"0.0.0.0", false},
		{"224.0.0.1", false},
		{"255.255.255.255", false},
		{"198.18.0.1", false},
		{"::1", false},
		{"::", false},
		{"fe80::1", false},
		{"fc00::1", false},
		{"fd12:3456::1", false},
		{"::ffff:127.0.0.1", false},
		{"::ffff:10.0.0.1", false},
		{"64:ff9b::a00:1", false},
		{"ff02::1", false},
	}
	for _, tt := range tests {
		t.Run(tt.addr, func(t *testing.T) {
			t.Parallel()

			if got := publicAddr(netip.MustParseAddr(tt.addr)); got != tt.want {
				t.Errorf("publicAddr(%s) = %v, want %v", tt.addr, got, tt.want)
			}
		})
	}
}

func TestCheckURL(t *testing.T) {
	t.Parallel()

	tests := []struct {
		name       string
		production bool
		url        string
		wantErr    bool
	}{
		{"development allows http loopback", false, "http://127.0.0.1:9000/hook", false},
		{"development allows localhost", false, "http://localhost/hook", false},
		{"production allows https public IP", true, "https://93.184.215.14/hook", false},
		{"production refuses http", true, "http://93.184.215.14/hook", true},
		{"production refuses loopback", true, "https://127.0.0.1/hook", true},
		{"production refuses localhost", true, "https://localhost/hook", true},
		{"production refuses localhost with trailing dot", true, "https://localhost./hook", true},
		{"production refuses metadata service", true, "https://169.254.169.254/latest", true},
		{"production refuses private IPv6", true, "https://[fd00::1]/hook", true},
		{"production refuses mapped loopback", true, "https://[::ffff:127.0.0.1]/hook", true},
		{"ftp everywhere", false, "ftp://example.com/x", true},
		{"no host", false, "https:///path", true},
		{"relative", false, "/hook", true},
		{"credentials", false, "https://user:pass@example.com/", true},
		{"production allows a public name", true, "https://example.com/hook", false},
		{"production refuses a name with a private address", true, "https://internal.example.com/hook", true},
		{"production refuses a name that does not resolve", true, "https://nowhere.example.net/hook", true},
		{"decimal spelling of 127.0.0.1", true, "https://2130706433/", true},
		{"hex spelling of 127.0.0.1", true, "https://0x7f000001/", true},
		{"short spelling of 127.0.0.1", true, "https://127.1/", true},
		{"octal spelling of 127.0.0.1", true, "https://0177.0.0.1/", true},
		{"a name of hex letters is a name", true, "https://example.com/cafe", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()

			err := fakeDNS(tt.production).CheckURL(context.Background(), tt.url, "url")
			if (err != nil) != tt.wantErr {
				t.Fatalf("CheckURL(%s) = %v, want error %v", tt.url, err, tt.wantErr)
			}
			var invalid *events.InvalidError
			if err != nil && (!errors.As(err, &invalid) || invalid.Param != "url") {
				t.Fatalf("error %v does not name the url parameter", err)
			}
		})
	}
}

func TestGuardControlRefusesPrivateDials(t *testing.T) {
	t.Parallel()

	prod, dev := NewGuard(true), NewGuard(false)
	allowing := NewGuard(true, netip.MustParsePrefix("10.20.0.0/16"))
	if err := allowing.control("tcp4", "10.20.3.4:443", nil); err != nil {
		t.Errorf("a dial into an allowed range: %v", err)
	}
	if err := allowing.control("tcp4", "10.21.3.4:443", nil); !errors.Is(err, errBlockedAddress) {
		t.Errorf("a dial next to an allowed range: %v, want errBlockedAddress", err)
	}
	if err := allowing.CheckURL(context.Background(), "https://10.20.3.4/hook", "url"); err != nil {
		t.Errorf("registering a URL in an allowed range: %v", err)
	}
	if err := allowing.CheckURL(context.Background(), "https://127.0.0.1/hook", "url"); err == nil {
		t.Error("an allowlist of 10.20/16 let loopback through")
	}
	if err := prod.control("tcp4", "127.0.0.1:443", nil); !errors.Is(err, errBlockedAddress) {
		t.Errorf("production dial to loopback: %v, want errBlockedAddress", err)
	}
	if err := prod.control("tcp4", "93.184.215.14:443", nil); err != nil {
		t.Errorf("production dial to a public address: %v", err)
	}
	if err := dev.control("tcp4", "127.0.0.1:443", nil); err != nil {
		t.Errorf("development dial to loopback: %v", err)
	}
}
