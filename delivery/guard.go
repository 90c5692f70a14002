package delivery

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strings"
	"syscall"
	"time"

	"github.com/hookline/hookline/events"
)

// Guard decides which URLs hookline may send to. In production only https URLs
// whose host resolves to public addresses pass, checked when a URL is
// registered and again on every connection, on the address actually dialled
// (so a name that later resolves to a private address is still refused). In
// development anything http(s) goes, so that local receivers work.
type Guard struct {
	Production bool
	// Allow opens ranges the guard would refuse (HOOKLINE_ALLOW_PRIVATE_CIDRS):
	// a payment platform's own services on a private network.
	Allow []netip.Prefix
	// Lookup resolves a host name (NewGuard: the system resolver). Tests
	// replace it: a sandbox without DNS cannot resolve, and the API's tests
	// check that no request resolves while it holds a connection or a lock.
	Lookup func(ctx context.Context, host string) ([]netip.Addr, error)
}

// NewGuard returns the guard for an environment, with the ranges allow opens.
func NewGuard(production bool, allow ...netip.Prefix) *Guard {
	return &Guard{Production: production, Allow: allow, Lookup: func(ctx context.Context, host string) ([]netip.Addr, error) {
		return net.DefaultResolver.LookupNetIP(ctx, "ip", host)
	}}
}

// CheckURL validates a destination URL at registration; param names the
// field in the error. In production it resolves the URL's host, which may
// take seconds: call it before taking a transaction, a connection or a lock.
func (g *Guard) CheckURL(ctx context.Context, raw, param string) error {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Hostname() == "" {
		return &events.InvalidError{Param: param, Message: "must be an absolute http or https URL"}
	}
	if len(raw) > 2048 {
		return &events.InvalidError{Param: param, Message: "must be at most 2048 characters"}
	}
	if u.User != nil {
		return &events.InvalidError{Param: param, Message: "must not carry credentials"}
	}
	if !g.Production {
		return nil
	}
	if u.Scheme != "https" {
		return &events.InvalidError{Param: param, Message: "must be an https URL"}
	}
	host := strings.TrimSuffix(u.Hostname(), ".")
	if oddNumericHost(host) {
		// 2130706433, 0x7f000001, 127.1, 0177.0.0.1: resolvers that follow
		// inet_aton read these as addresses; refuse them whatever they mean.
		return &events.InvalidError{Param: param, Message: "must not be an IP address in an unusual notation"}
	}
	if addr, err := netip.ParseAddr(host); err == nil {
		if !g.allowed(addr) {
			return &events.InvalidError{Param: param, Message: "must not point at a private, loopback or reserved address"}
		}
		return nil
	}
	lookupCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	addrs, err := g.Lookup(lookupCtx, host)
	if err != nil || len(addrs) == 0 {
		return &events.InvalidError{Param: param, Message: "has a host that does not resolve"}
	}
	for _, a := range addrs {
		if !g.allowed(a) {
			return &events.InvalidError{Param: param, Message: "resolves to a private, loopback or reserved address"}
		}
	}
	return nil
}

// oddNumericHost reports whether a host is made of digits, dots and hex
// notation only without being a plain dotted-quad IPv4 address.
func oddNumericHost(host string) bool {
	if host == "" || strings.Trim(strings.ToLower(host), "0123456789abcdefx.") != "" || !strings.ContainsAny(host, "0123456789") {
		return false
	}
	if strings.ContainsAny(strings.ToLower(host), "abcdef") && !strings.Contains(strings.ToLower(host), "0x") {
		return false // a name such as "cafe.be" or "dead.beef"
	}
	addr, err := netip.ParseAddr(host)
	return err != nil || !addr.Is4()
}

// errBlockedAddress is the error of a connection the guard refused.
var errBlockedAddress = errors.New("destination address is not public")

// control is the dialer hook that enforces the guard on the resolved address
// of every connection, after DNS and before connect.
func (g *Guard) control(_, address string, _ syscall.RawConn) error {
	if !g.Production {
		return nil
	}
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("%w: %s", errBlockedAddress, address)
	}
	if !g.allowed(ap.Addr()) {
		return fmt.Errorf("%w: %s", errBlockedAddress, ap.Addr())
	}
	return nil
}

// allowed reports whether the guard lets a connection reach addr.
func (g *Guard) allowed(addr netip.Addr) bool {
	if publicAddr(addr) {
		return true
	}
	addr = addr.Unmap()
	for _, p := range g.Allow {
		if p.Contains(addr) {
			return true
		}
	}
	return false
}

// nonPublic lists the ranges no production delivery may reach, besides what
// netip's predicates cover: CGNAT, benchmarking, documentation, reserved,
// NAT64 and the IPv6 discard and documentation ranges.
var nonPublic = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),
	netip.MustParsePrefix("100.64.0.0/10"),
	netip.MustParsePrefix("192.0.0.0/24"),
	netip.MustParsePrefix("192.0.2.0/24"),
	netip.MustParsePrefix("198.18.0.0/15"),
	netip.MustParsePrefix("198.51.100.0/24"),
	netip.MustParsePrefix("203.0.113.0/24"),
	netip.MustParsePrefix("240.0.0.0/4"),
	netip.MustParsePrefix("64:ff9b::/96"),
	netip.MustParsePrefix("64:ff9b:1::/48"),
	netip.MustParsePrefix("100::/64"),
	netip.MustParsePrefix("2001:db8::/32"),
}

// publicAddr reports whether an address is a public unicast one. IPv4-mapped
// IPv6 addresses are judged as the IPv4 address they carry.
func publicAddr(a netip.Addr) bool {
	a = a.Unmap()
	if !a.IsValid() || a.IsLoopback() || a.IsPrivate() || a.IsLinkLocalUnicast() || a.IsLinkLocalMulticast() ||
		a.IsInterfaceLocalMulticast() || a.IsMulticast() || a.IsUnspecified() || !a.IsGlobalUnicast() {
		return false
	}
	for _, p := range nonPublic {
		if p.Contains(a) {
			return false
		}
	}
	return true
}
