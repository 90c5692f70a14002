package api

import (
	"net/http/httptest"
	"net/netip"
	"testing"
	"time"
)

// TestFailureTableIsBounded fails from more addresses than the table holds:
// it stays at its bound, and the newest address is still counted.
func TestFailureTableIsBounded(t *testing.T) {
	t.Parallel()

	f := newAuthFailures()
	now := time.Now()
	base := netip.MustParseAddr("2606:4700::").As16()
	var last netip.Addr
	for i := range maxFailingClients + 1000 {
		b := base
		b[6], b[7] = byte(i>>8), byte(i) // one /64 each
		b[5] = byte(i >> 16)
		last = netip.AddrFrom16(b)
		f.fail(last, now)
	}
	if len(f.clients) > maxFailingClients {
		t.Fatalf("%d entries, want at most %d", len(f.clients), maxFailingClients)
	}
	for range maxAuthFailures - 1 {
		f.fail(last, now)
	}
	if f.blocked(last, now) == 0 {
		t.Fatal("the newest address is not counted")
	}
	if f.blocked(last, now.Add(authFailureWindow)) != 0 {
		t.Fatal("the address is still refused after the window")
	}
}

func TestClientAddr(t *testing.T) {
	t.Parallel()

	tests := []struct{ remote, forwarded, want string }{
		{"203.0.113.7:51234", "", "203.0.113.7"},
		{"[::ffff:203.0.113.7]:51234", "", "203.0.113.7"},
		{"[2001:db8:1:2:aaaa:bbbb:cccc:dddd]:443", "", "2001:db8:1:2::"},
		// A client's header never names who it is.
		{"203.0.113.7:51234", "198.51.100.1", "203.0.113.7"},
	}
	for _, tt := range tests {
		r := httptest.NewRequest("GET", "/v1/account", nil)
		r.RemoteAddr = tt.remote
		if tt.forwarded != "" {
			r.Header.Set("X-Forwarded-For", tt.forwarded)
		}
		if got := clientAddr(r); got != netip.MustParseAddr(tt.want) {
			t.Errorf("clientAddr(%s) = %s, want %s", tt.remote, got, tt.want)
		}
	}
}
