package api

import (
	"context"
	"errors"
	"fmt"
	"net/http/httptest"
	"net/netip"
	"runtime"
	"testing"
	"time"
)

// TestFailureTableIsBounded fails from more addresses than the table holds:
// it stays at its bound, and the newest address is still counted.
func TestFailureTableIsBounded(t *testing.T) {
	t.Parallel()

	f, now := clockedFailures()
	base := netip.MustParseAddr("2606:4700::").As16()
	var last netip.Addr
	for i := range maxFailingClients + 1000 {
		b := base
		b[6], b[7] = byte(i>>8), byte(i) // one /64 each
		b[5] = byte(i >> 16)
		last = netip.AddrFrom16(b)
		fail(t, f, last)
	}
	if len(f.clients) > maxFailingClients {
		t.Fatalf("%d entries, want at most %d", len(f.clients), maxFailingClients)
	}
	for range maxAuthFailures - 1 {
		fail(t, f, last)
	}
	if a, wait, _ := f.begin(t.Context(), last); a != nil || wait != authFailureWindow {
		t.Fatalf("the newest address is not counted: %v, %v", a, wait)
	}
	*now = now.Add(authFailureWindow)
	if a, _, _ := f.begin(t.Context(), last); a == nil {
		t.Fatal("the address is still refused after the window")
	}
}

// TestAuthPlaces walks one address through the limit's places without
// goroutines: a request that must wait for a place shows it by returning its
// context's error (the context is cancelled already).
func TestAuthPlaces(t *testing.T) {
	t.Parallel()

	f, now := clockedFailures()
	addr := netip.MustParseAddr("203.0.113.7")
	cancelled, cancel := context.WithCancel(t.Context())
	cancel()

	var under []*authAttempt
	for i := range maxAuthFailures {
		a, wait, err := f.begin(cancelled, addr)
		if a == nil {
			t.Fatalf("authentication %d of an address without failures: %v, %v, want a place", i+1, wait, err)
		}
		under = append(under, a)
	}
	if a, wait, err := f.begin(cancelled, addr); a != nil || wait != 0 || !errors.Is(err, context.Canceled) {
		t.Fatalf("with every place under way: %v, %v, %v; want to wait", a, wait, err)
	}
	under[0].done(false) // a success gives its place back
	a, _, _ := f.begin(cancelled, addr)
	if a == nil {
		t.Fatal("no place after a success")
	}
	under[0] = a
	for _, a := range under[1:] {
		a.done(true)
	}
	// 19 failures, one under way: still a wait, not a refusal, as it may
	// succeed.
	if a, wait, err := f.begin(cancelled, addr); a != nil || wait != 0 || !errors.Is(err, context.Canceled) {
		t.Fatalf("19 failures and one under way: %v, %v, %v; want to wait", a, wait, err)
	}
	*now = now.Add(time.Second)
	under[0].done(true)
	if a, wait, err := f.begin(cancelled, addr); a != nil || wait != authFailureWindow-time.Second || err != nil {
		t.Fatalf("at the limit: %v, %v, %v; want a refusal for the rest of the window", a, wait, err)
	}
	*now = now.Add(authFailureWindow)
	a, _, _ = f.begin(cancelled, addr)
	if a == nil {
		t.Fatal("no place after the window")
	}
	a.done(false)
	if len(f.clients) != 0 {
		t.Errorf("%d entries left, want none: nothing under way, no failure in the window", len(f.clients))
	}
}

// TestWaitingForAPlace has a request wait for a place (the test sees it
// waiting in the table before going on): the place it waited for ending in
// success gives it the place, in failure at the limit a refusal.
func TestWaitingForAPlace(t *testing.T) {
	t.Parallel()

	for _, failed := range []bool{false, true} {
		t.Run(fmt.Sprintf("failed %v", failed), func(t *testing.T) {
			t.Parallel()

			f, _ := clockedFailures()
			addr := netip.MustParseAddr("203.0.113.7")
			for range maxAuthFailures - 1 {
				fail(t, f, addr)
			}
			held, _, _ := f.begin(t.Context(), addr)
			type result struct {
				a    *authAttempt
				wait time.Duration
			}
			got := make(chan result)
			go func() {
				a, wait, _ := f.begin(t.Context(), addr)
				got <- result{a, wait}
			}()
			for waiting := false; !waiting; runtime.Gosched() {
				f.mu.Lock()
				waiting = f.clients[addr].freed != nil
				f.mu.Unlock()
			}
			held.done(failed)
			r := <-got
			if failed && (r.a != nil || r.wait <= 0) || !failed && r.a == nil {
				t.Fatalf("the waiting request got %v, %v", r.a, r.wait)
			}
		})
	}
}

// clockedFailures returns a failure table on a clock that moves only when the
// test moves it.
func clockedFailures() (*authFailures, *time.Time) {
	f := newAuthFailures()
	now := time.Now()
	f.now = func() time.Time { return now }
	return f, &now
}

// fail records one failed authentication from addr.
func fail(t *testing.T, f *authFailures, addr netip.Addr) {
	t.Helper()
	a, wait, err := f.begin(t.Context(), addr)
	if a == nil {
		t.Fatalf("no place for %s: %v, %v", addr, wait, err)
	}
	a.done(true)
}

// TestClientAddr chooses who a request's failures count against, with the
// load balancer of 10.0.0.0/8 and fd00::/8 as trusted proxies or none: the
// right-most X-Forwarded-For address that is not a trusted proxy, when the
// peer is one; otherwise the peer.
func TestClientAddr(t *testing.T) {
	t.Parallel()

	proxies := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("fd00::/8")}
	tests := []struct {
		name      string
		trusted   []netip.Prefix
		remote    string
		forwarded []string // one X-Forwarded-For line each
		want      string   // "": the one entry of every unreadable address
	}{
		{"peer", nil, "203.0.113.7:51234", nil, "203.0.113.7"},
		{"IPv4-mapped peer", nil, "[::ffff:203.0.113.7]:51234", nil, "203.0.113.7"},
		{"IPv6 peer per /64", nil, "[2001:db8:1:2:aaaa:bbbb:cccc:dddd]:443", nil, "2001:db8:1:2::"},
		{"unparsable peer", nil, "pipe", nil, ""},
		{"no trusted proxies: the header names nobody", nil, "203.0.113.7:51234", []string{"198.51.100.1"}, "203.0.113.7"},
		{"an untrusted peer's header names nobody", proxies, "203.0.113.7:51234", []string{"198.51.100.1"}, "203.0.113.7"},
		{"a trusted peer without the header", proxies, "10.0.0.1:51234", nil, "10.0.0.1"},
		{"the client the balancer appended", proxies, "10.0.0.1:51234", []string{"198.51.100.1"}, "198.51.100.1"},
		{"spoofed entries in front", proxies, "10.0.0.1:51234", []string{"203.0.113.50, 192.0.2.1,198.51.100.1"}, "198.51.100.1"},
		{"a spoofed proxy address in front", proxies, "10.0.0.1:51234", []string{"10.9.9.9, 198.51.100.1"}, "198.51.100.1"},
		{"through two trusted proxies", proxies, "10.0.0.1:51234", []string{"203.0.113.50, 198.51.100.1, 10.0.0.2"}, "198.51.100.1"},
		{"over several header lines", proxies, "10.0.0.1:51234", []string{"203.0.113.50", "198.51.100.1, 10.0.0.2"}, "198.51.100.1"},
		{"the last line is the nearest", proxies, "10.0.0.1:51234", []string{"198.51.100.1", "203.0.113.50"}, "203.0.113.50"},
		{"every entry a trusted proxy: the right-most, which the last proxy wrote", proxies, "10.0.0.1:51234", []string{"10.0.0.5, 10.0.0.2"}, "10.0.0.2"},
		{"a trusted client cannot pick its address", proxies, "10.0.0.1:51234", []string{"10.9.9.9, 10.0.0.5, 10.0.0.2"}, "10.0.0.2"},
		{"an entry with a port", proxies, "10.0.0.1:51234", []string{"198.51.100.1:4711"}, "198.51.100.1"},
		{"an IPv4-mapped entry", proxies, "10.0.0.1:51234", []string{"::ffff:198.51.100.1"}, "198.51.100.1"},
		{"an IPv6 client per /64", proxies, "10.0.0.1:51234", []string{"2001:db8:1:2:aaaa:bbbb:cccc:dddd"}, "2001:db8:1:2::"},
		{"an IPv6 client with a port", proxies, "10.0.0.1:51234", []string{"[2001:db8:1:2::7]:443"}, "2001:db8:1:2::"},
		{"an IPv6 proxy", proxies, "[fd00::1]:443", []string{"2001:db8:5:6::7, fd00::2"}, "2001:db8:5:6::"},
		{"garbage in front is never read", proxies, "10.0.0.1:51234", []string{"not-an-address, 198.51.100.1"}, "198.51.100.1"},
		{"garbage where the client should be", proxies, "10.0.0.1:51234", []string{"198.51.100.1, unknown"}, ""},
		{"an empty entry where the client should be", proxies, "10.0.0.1:51234", []string{"198.51.100.1,"}, ""},
		{"an empty header", proxies, "10.0.0.1:51234", []string{""}, ""},
		{"a CIDR is not an address", proxies, "10.0.0.1:51234", []string{"198.51.100.0/24"}, ""},
	}
	for _, tt := range tests {
		r := httptest.NewRequest("GET", "/v1/account", nil)
		r.RemoteAddr = tt.remote
		for _, f := range tt.forwarded {
			r.Header.Add("X-Forwarded-For", f)
		}
		var want netip.Addr
		if tt.want != "" {
			want = netip.MustParseAddr(tt.want)
		}
		if got := clientAddr(r, tt.trusted); got != want {
			t.Errorf("%s: clientAddr(%s, %q) = %s, want %s", tt.name, tt.remote, tt.forwarded, got, want)
		}
	}
}
