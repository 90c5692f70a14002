package api

import (
	"math"
	"net"
	"net/http"
	"net/netip"
	"strconv"
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
type authFailures struct {
	mu      sync.Mutex
	clients map[netip.Addr]*failureWindow
	swept   time.Time
}

// failureWindow is one address's failures since start.
type failureWindow struct {
	start time.Time
	count int
}

func newAuthFailures() *authFailures {
	return &authFailures{clients: map[netip.Addr]*failureWindow{}}
}

// clientAddr is who a failure is counted against: the TCP peer, never a
// header the client writes (X-Forwarded-For would let a guesser pick a new
// address per request). IPv6 peers count per /64, the block one host or
// site usually holds, so that rotating through it buys nothing.
func clientAddr(r *http.Request) netip.Addr {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	addr, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Addr{} // every unparsable peer shares one entry
	}
	addr = addr.Unmap().WithZone("")
	if addr.Is6() {
		addr = netip.PrefixFrom(addr, 64).Masked().Addr()
	}
	return addr
}

// blocked says how long addr must wait before it may authenticate again, or
// zero when it may now.
func (f *authFailures) blocked(addr netip.Addr, now time.Time) time.Duration {
	f.mu.Lock()
	defer f.mu.Unlock()
	w := f.clients[addr]
	if w == nil || w.count < maxAuthFailures {
		return 0
	}
	return max(0, w.start.Add(authFailureWindow).Sub(now))
}

// fail counts a failed authentication from addr. A full table first drops
// the windows that have ended (at most once a second: a full scan per request
// would let a flood of addresses cost every request the whole table), then,
// if still full, entries at random (map order): memory stays bounded, and
// only an attacker holding more addresses than the table can evict its own
// entries, which per-address counting could not stop anyway.
func (f *authFailures) fail(addr netip.Addr, now time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	w := f.clients[addr]
	if w != nil && now.Sub(w.start) >= authFailureWindow {
		w.start, w.count = now, 0
	}
	if w == nil {
		if len(f.clients) >= maxFailingClients {
			f.evict(now)
		}
		w = &failureWindow{start: now}
		f.clients[addr] = w
	}
	w.count++
}

func (f *authFailures) evict(now time.Time) {
	if now.Sub(f.swept) >= time.Second {
		f.swept = now
		for a, w := range f.clients {
			if now.Sub(w.start) >= authFailureWindow {
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
