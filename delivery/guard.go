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

// The guard's tables follow the IANA IPv4 and IPv6 Special-Purpose Address
// Registries: a block the registry marks not globally reachable is refused,
// unless a more specific block inside it is globally reachable (the anycast
// and AS112 services). Blocks whose column is N/A are refused too (the
// deprecated 6to4 relay anycast and ORCHID), except 6to4 and Teredo, which
// are judged by the IPv4 addresses they carry.
var (
	// refused4 is every IPv4 block that is not globally reachable, with
	// multicast, which is never a unicast destination.
	refused4 = prefixes("0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16", "172.16.0.0/12",
		"192.0.0.0/24", "192.0.2.0/24", "192.88.99.0/24", "192.168.0.0/16", "198.18.0.0/15", "198.51.100.0/24",
		"203.0.113.0/24", "224.0.0.0/4", "240.0.0.0/4")
	reachable4 = prefixes("192.0.0.9/32", "192.0.0.10/32")

	// global6 is the only IPv6 space IANA allocates for global unicast;
	// everything outside it (ULA, link-local, site-local, multicast, the
	// discard and dummy prefixes, SRv6 SIDs, unallocated space) is refused,
	// but for the forms that carry an IPv4 address.
	global6    = netip.MustParsePrefix("2000::/3")
	refused6   = prefixes("2001::/23", "2001:db8::/32", "3fff::/20")
	reachable6 = prefixes("2001:1::1/128", "2001:1::2/128", "2001:1::3/128", "2001:3::/32", "2001:4:112::/48",
		"2001:20::/28", "2001:30::/28")

	// Forms whose last 32 bits are an IPv4 address: IPv4-mapped (the
	// dialler connects to that IPv4 address), IPv4-compatible (deprecated),
	// SIIT and well-known NAT64 (a translator forwards to it).
	lastIs4 = prefixes("::ffff:0:0/96", "::/96", "::ffff:0:0:0/96", "64:ff9b::/96")
	// Local-use NAT64 (RFC 8215) may place the IPv4 address anywhere, and is
	// not globally reachable: refused whatever it carries.
	localNAT64 = netip.MustParsePrefix("64:ff9b:1::/48")
	sixToFour  = netip.MustParsePrefix("2002::/16")
	teredo     = netip.MustParsePrefix("2001::/32")
)

func prefixes(s ...string) []netip.Prefix {
	out := make([]netip.Prefix, len(s))
	for i, p := range s {
		out[i] = netip.MustParsePrefix(p)
	}
	return out
}

func containsAny(list []netip.Prefix, a netip.Addr) bool {
	for _, p := range list {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// publicAddr reports whether an address is globally reachable by the IANA
// special-purpose registries, judging the IPv6 forms that carry an IPv4
// address by that address: a translator, tunnel or the dialler itself would
// deliver to it. Teredo carries two (RFC 4380): the server's, and the
// client's, inverted; both must be public, since a relay reaches the client
// through the server's network and the client's NAT. A zone names a link, so
// a zoned address is never public.
func publicAddr(a netip.Addr) bool {
	switch {
	case !a.IsValid() || a.Zone() != "":
		return false
	case a.Is4():
		return public4(a)
	case localNAT64.Contains(a):
		return false
	}
	b := a.As16()
	switch {
	case containsAny(lastIs4, a):
		return public4(netip.AddrFrom4([4]byte(b[12:])))
	case sixToFour.Contains(a):
		return public4(netip.AddrFrom4([4]byte(b[2:6])))
	case teredo.Contains(a):
		client := [4]byte{^b[12], ^b[13], ^b[14], ^b[15]}
		return public4(netip.AddrFrom4([4]byte(b[4:8]))) && public4(netip.AddrFrom4(client))
	case !global6.Contains(a):
		return false
	}
	return containsAny(reachable6, a) || !containsAny(refused6, a)
}

// public4 reports whether an IPv4 address is globally reachable.
func public4(a netip.Addr) bool {
	return containsAny(reachable4, a) || !containsAny(refused4, a)
}
