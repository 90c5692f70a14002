package api

import (
	"context"
	"math"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"
)

const (
	// maxAuthFailures is how many failed authentications one client address
	// may make in authFailureWindow; past it, its requests answer 429 until
	// the window ends, before any credential is looked up.
	maxAuthFailures   = 20
	authFailureWindow = time.Minute
	// maxFailingClients bounds the failure table: at about 100 bytes an
	// entry, a few MiB however many addresses an attacker uses.
	maxFailingClients = 65536
)

// authFailures counts failed authentications (API keys, the operator token,
// dashboard logins) per client address, so that guessing costs the guesser
// and not the database: once an address is over the limit, its requests are
// refused before any credential is looked up.
//
// The limit holds under concurrency: an authentication takes a place (begin)
// before its credential is looked up, and an address has maxAuthFailures
// places less its failures in the window. A failed authentication keeps its
// place as a failure; a successful one gives it back. So however many wrong
// keys arrive at once, at most maxAuthFailures are ever looked up, where
// checking the count and counting a failure apart would let every request
// that arrived before the first failure was counted through. A request that
// finds no place free waits for one, for as long as one authentication
// takes, rather than being refused: it may be a good one, and only failures,
// never authentications under way, make an address answer 429. Good traffic
// from an address with no failures runs maxAuthFailures authentications at a
// time, and from one at the limit less one, a single one.
type authFailures struct {
	mu      sync.Mutex
	clients map[netip.Addr]*clientAuth
	swept   time.Time
	now     func() time.Time // time.Now; tests set the clock
}

// clientAuth is one address's authentications: its failures since start,
// and those under way. An address has an entry while it has either.
type clientAuth struct {
	start    time.Time
	failures int
	pending  int
	// freed, made by the first request that waits, is closed when an
	// authentication under way ends: it wakes the requests waiting for a place.
	freed chan struct{}
}

func newAuthFailures() *authFailures {
	return &authFailures{clients: map[netip.Addr]*clientAuth{}, now: time.Now}
}

// authAttempt is one authentication that holds a place of its address; it
// must end with done.
type authAttempt struct {
	f    *authFailures
	addr netip.Addr
	c    *clientAuth
}

// clientAddr is who a failure is counted against. Without trusted proxies
// it is the TCP peer, never a header the client writes (X-Forwarded-For would
// let a guesser pick a new address per request).
//
// Behind a load balancer every peer is the balancer, whose failures would
// throttle every client: when the peer is in trusted
// (HOOKLINE_TRUSTED_PROXIES), the client is the right-most X-Forwarded-For
// address that is not itself a trusted proxy. Each proxy appends the address
// it got the request from, so read from the right the entries are written by
// trusted proxies up to the first that is not one: the client, as the
// outermost trusted proxy saw it. Whatever the client wrote lies to its left
// and is never read. When every entry is a trusted proxy (a request from
// inside), the right-most is the client: the one the last proxy wrote, where
// any further left could be the client's own choice. A malformed entry where the client's
// address should be names nobody: every such request shares one entry, as
// unparsable peers do, so garbage cannot buy a fresh address per request.
//
// IPv6 clients count per /64, the block one host or site usually holds, so
// that rotating through it buys nothing.
func clientAddr(r *http.Request, trusted []netip.Prefix) netip.Addr {
	addr := parseAddr(r.RemoteAddr)
	if isTrusted(addr, trusted) {
		lines := r.Header.Values("X-Forwarded-For")
		nearest, found := addr, false
	walk:
		for i := len(lines) - 1; i >= 0; i-- {
			entries := strings.Split(lines[i], ",")
			for j := len(entries) - 1; j >= 0; j-- {
				entry := parseAddr(strings.TrimSpace(entries[j]))
				if i == len(lines)-1 && j == len(entries)-1 {
					nearest = entry
				}
				if !isTrusted(entry, trusted) {
					addr, found = entry, true
					break walk
				}
			}
		}
		if !found {
			addr = nearest
		}
	}
	if addr.Is6() {
		addr = netip.PrefixFrom(addr, 64).Masked().Addr()
	}
	return addr
}

// parseAddr reads an address with or without a port (a peer has one, an
// X-Forwarded-For entry may), IPv4-mapped ones as IPv4, without zone; the
// zero Addr when s is neither.
func parseAddr(s string) netip.Addr {
	addr, err := netip.ParseAddr(s)
	if err != nil {
		ap, err := netip.ParseAddrPort(s)
		if err != nil {
			return netip.Addr{}
		}
		addr = ap.Addr()
	}
	return addr.Unmap().WithZone("")
}

func isTrusted(addr netip.Addr, trusted []netip.Prefix) bool {
	for _, p := range trusted {
		if p.Contains(addr) {
			return true
		}
	}
	return false
}

// begin takes a place for an authentication from addr, waiting while every
// place is held by authentications under way. It answers how long addr must
// wait instead when it is over the limit, or ctx's error when the request
// ends while waiting.
func (f *authFailures) begin(ctx context.Context, addr netip.Addr) (*authAttempt, time.Duration, error) {
	for {
		f.mu.Lock()
		now := f.now()
		c := f.clients[addr]
		if c == nil {
			if len(f.clients) >= maxFailingClients {
				f.evict(now)
			}
			c = &clientAuth{}
			f.clients[addr] = c
		}
		if c.failures > 0 && now.Sub(c.start) >= authFailureWindow {
			c.failures = 0
		}
		if c.failures >= maxAuthFailures {
			f.mu.Unlock()
			return nil, c.start.Add(authFailureWindow).Sub(now), nil
		}
		if c.failures+c.pending < maxAuthFailures {
			c.pending++
			f.mu.Unlock()
			return &authAttempt{f: f, addr: addr, c: c}, 0, nil
		}
		if c.freed == nil {
			c.freed = make(chan struct{})
		}
		freed := c.freed
		f.mu.Unlock()
		select {
		case <-freed:
		case <-ctx.Done():
			return nil, 0, ctx.Err()
		}
	}
}

// done ends the authentication, counting it as a failure when it failed, and
// wakes the requests waiting for its place. An address with neither failures
// in the window nor authentications under way leaves the table.
func (a *authAttempt) done(failed bool) {
	f := a.f
	f.mu.Lock()
	defer f.mu.Unlock()
	now, c := f.now(), a.c
	c.pending--
	if c.freed != nil {
		close(c.freed)
		c.freed = nil
	}
	if failed {
		if c.failures == 0 || now.Sub(c.start) >= authFailureWindow {
			c.start, c.failures = now, 0
		}
		c.failures++
	}
	if c.pending == 0 && (c.failures == 0 || now.Sub(c.start) >= authFailureWindow) && f.clients[a.addr] == c {
		delete(f.clients, a.addr)
	}
}

// evict makes room in a full table. It first drops the entries whose window
// has ended and that have nothing under way (at most once a second: a full
// scan per request would let a flood of addresses cost every request the
// whole table), then, if still full, entries at random (map order): memory
// stays bounded, and only an attacker holding more addresses than the table
// can evict its own entries, which per-address counting could not stop
// anyway. An evicted entry's authentications under way still end on it, but
// count nowhere.
func (f *authFailures) evict(now time.Time) {
	if now.Sub(f.swept) >= time.Second {
		f.swept = now
		for a, c := range f.clients {
			if c.pending == 0 && now.Sub(c.start) >= authFailureWindow {
				delete(f.clients, a)
			}
		}
	}
	for a := range f.clients {
		if len(f.clients) < maxFailingClients {
			return
		}
		delete(f.clients, a)
	}
}

// tooManyFailures is the 429 of an address over the failure limit.
func tooManyFailures(w http.ResponseWriter, wait time.Duration) *Error {
	w.Header().Set("Retry-After", strconv.Itoa(max(1, int(math.Ceil(wait.Seconds())))))
	return &Error{Status: http.StatusTooManyRequests, Type: "rate_limit_error", Code: "too_many_failed_authentications",
		Message: "Too many failed authentications from this address; retry after the number of seconds in Retry-After."}
}
