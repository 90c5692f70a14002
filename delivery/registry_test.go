package delivery

import (
	"context"
	"net/netip"
	"testing"
)

// specialPurpose is the IANA IPv4 and IPv6 Special-Purpose Address Registries
// (iana-ipv4-special-registry, iana-ipv6-special-registry, as of 2025-10),
// copied by hand from the registries, one address in each block, with the
// registry's "Globally Reachable" column as want. It is written apart from
// guard.go on purpose: the guard is judged against the registries, not
// against itself. Blocks whose column is N/A (6to4, Teredo) are in
// embeddedForms below, judged by the IPv4 address they carry; where the
// guard is stricter than the column the row says why.
var specialPurpose = []struct {
	block, addr string
	want        bool
}{
	// IPv4.
	{"0.0.0.0/8 this network", "0.1.2.3", false},
	{"0.0.0.0/32 this host on this network", "0.0.0.0", false},
	{"10.0.0.0/8 private-use", "10.200.3.4", false},
	{"100.64.0.0/10 shared address space", "100.127.255.254", false},
	{"127.0.0.0/8 loopback", "127.10.0.1", false},
	{"169.254.0.0/16 link local", "169.254.169.254", false},
	{"172.16.0.0/12 private-use", "172.31.255.1", false},
	{"192.0.0.0/24 IETF protocol assignments", "192.0.0.100", false},
	{"192.0.0.0/29 IPv4 service continuity prefix", "192.0.0.1", false},
	{"192.0.0.8/32 IPv4 dummy address", "192.0.0.8", false},
	{"192.0.0.9/32 port control protocol anycast", "192.0.0.9", true},
	{"192.0.0.10/32 TURN anycast", "192.0.0.10", true},
	{"192.0.0.170/32 NAT64/DNS64 discovery", "192.0.0.170", false},
	{"192.0.0.171/32 NAT64/DNS64 discovery", "192.0.0.171", false},
	{"192.0.2.0/24 documentation (TEST-NET-1)", "192.0.2.55", false},
	{"192.31.196.0/24 AS112-v4", "192.31.196.1", true},
	{"192.52.193.0/24 AMT", "192.52.193.1", true},
	// N/A in the registry (deprecated 6to4 relay anycast, RFC 7526): refused,
	// no receiver lives there.
	{"192.88.99.0/24 deprecated 6to4 relay anycast", "192.88.99.1", false},
	{"192.168.0.0/16 private-use", "192.168.1.1", false},
	{"192.175.48.0/24 direct delegation AS112 service", "192.175.48.6", true},
	{"198.18.0.0/15 benchmarking", "198.19.255.1", false},
	{"198.51.100.0/24 documentation (TEST-NET-2)", "198.51.100.7", false},
	{"203.0.113.0/24 documentation (TEST-NET-3)", "203.0.113.9", false},
	{"240.0.0.0/4 reserved", "250.1.2.3", false},
	{"255.255.255.255/32 limited broadcast", "255.255.255.255", false},
	// Not in the special-purpose registry, but never a unicast destination.
	{"224.0.0.0/4 multicast", "239.1.2.3", false},

	// IPv6.
	{"::1/128 loopback", "::1", false},
	{"::/128 unspecified", "::", false},
	{"100::/64 discard-only", "100::1", false},
	{"100:0:0:1::/64 dummy IPv6 prefix", "100:0:0:1::1", false},
	{"2001::/23 IETF protocol assignments", "2001:1ff::1", false},
	{"2001:1::1/128 port control protocol anycast", "2001:1::1", true},
	{"2001:1::2/128 TURN anycast", "2001:1::2", true},
	{"2001:1::3/128 DNS-SD service registration protocol anycast", "2001:1::3", true},
	{"2001:2::/48 benchmarking", "2001:2::1", false},
	{"2001:3::/32 AMT", "2001:3::1", true},
	{"2001:4:112::/48 AS112-v6", "2001:4:112::1", true},
	// N/A in the registry (deprecated ORCHID, RFC 4843): refused.
	{"2001:10::/28 deprecated ORCHID", "2001:10::1", false},
	{"2001:20::/28 ORCHIDv2", "2001:20::1", true},
	{"2001:30::/28 drone remote ID protocol entity tags", "2001:30::1", true},
	{"2001:db8::/32 documentation", "2001:db8::1", false},
	{"2620:4f:8000::/48 direct delegation AS112 service", "2620:4f:8000::1", true},
	{"3fff::/20 documentation", "3fff:fff::1", false},
	{"5f00::/16 segment routing (SRv6) SIDs", "5f00::1", false},
	{"fc00::/7 unique-local", "fd12:3456::1", false},
	{"fe80::/10 link-local unicast", "fe80::1", false},
	// Not in the registry: deprecated site-local (RFC 3879), multicast, and
	// address space IANA has not allocated for global unicast (outside
	// 2000::/3).
	{"fec0::/10 site-local", "fec0::1", false},
	{"ff00::/8 multicast", "ff02::1", false},
	{"4000::/3 unallocated", "4000::1", false},

	// Ordinary public addresses.
	{"public IPv4", "93.184.215.14", true},
	{"public IPv6", "2606:2800:21f:cb07:6820:80da:af6b:8b2c", true},
}

// embeddedForms are IPv6 addresses that carry an IPv4 address, each spelt
// out by hand from its RFC, judged by the IPv4 address they carry (for
// Teredo, by both the server's and the client's).
var embeddedForms = []struct {
	name, addr string
	want       bool
}{
	{"IPv4-mapped 127.0.0.1 (RFC 4291)", "::ffff:127.0.0.1", false},
	{"IPv4-mapped 10.0.0.1", "::ffff:a00:1", false},
	{"IPv4-mapped public", "::ffff:93.184.215.14", true},
	{"IPv4-compatible 127.0.0.1 (RFC 4291, deprecated)", "::7f00:1", false},
	{"IPv4-compatible 169.254.169.254", "::a9fe:a9fe", false},
	{"IPv4-compatible public", "::5db8:d70e", true},
	{"SIIT 127.0.0.1 (RFC 2765)", "::ffff:0:7f00:1", false},
	{"SIIT 192.168.0.1", "::ffff:0:c0a8:1", false},
	{"SIIT public", "::ffff:0:5db8:d70e", true},
	{"6to4 of 169.254.169.254 (RFC 3056)", "2002:a9fe:a9fe::", false},
	{"6to4 of 10.1.2.3", "2002:a01:203:1::1", false},
	{"6to4 of a public address", "2002:5db8:d70e::1", true},
	{"NAT64 of 10.0.0.1 (RFC 6052)", "64:ff9b::a00:1", false},
	{"NAT64 of 127.0.0.1", "64:ff9b::7f00:1", false},
	{"NAT64 of a public address", "64:ff9b::5db8:d70e", true},
	// Local-use NAT64 (RFC 8215) is not globally reachable, whatever it carries.
	{"local-use NAT64 of a public address", "64:ff9b:1::5db8:d70e", false},
	{"local-use NAT64 of 10.0.0.1", "64:ff9b:1:a00:100::", false},
	// Teredo (RFC 4380): 2001:0:<server>:<flags>:<port ^ ffff>:<client ^ ffffffff>.
	{"Teredo, public server, public client", "2001:0:5db8:d70e:0:fbaa:a247:28f1", true},
	{"Teredo, server 127.0.0.1", "2001:0:7f00:1:0:fbaa:a247:28f1", false},
	{"Teredo, client 10.0.0.1", "2001:0:5db8:d70e:0:fbaa:f5ff:fffe", false},
	{"Teredo, client 192.168.1.1", "2001:0:5db8:d70e:8000:fbaa:3f57:fefe", false},
	{"Teredo, the issue's example", "2001:0::", false},
}

func TestGuardFollowsTheRegistries(t *testing.T) {
	t.Parallel()

	g := NewGuard(true)
	for _, tt := range specialPurpose {
		t.Run(tt.block, func(t *testing.T) {
			t.Parallel()

			if got := g.allowed(netip.MustParseAddr(tt.addr)); got != tt.want {
				t.Errorf("allowed(%s) = %v, want %v", tt.addr, got, tt.want)
			}
		})
	}
	for _, tt := range embeddedForms {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()

			addr := netip.MustParseAddr(tt.addr)
			if got := g.allowed(addr); got != tt.want {
				t.Errorf("allowed(%s) = %v, want %v", tt.addr, got, tt.want)
			}
			err := fakeDNS(true).CheckURL(context.Background(), "https://["+tt.addr+"]/hook", "url")
			if (err == nil) != tt.want {
				t.Errorf("CheckURL(https://[%s]/hook) = %v, want accepted %v", tt.addr, err, tt.want)
			}
		})
	}
}

func TestGuardRefusesZonedAddresses(t *testing.T) {
	t.Parallel()

	for _, a := range []string{"fe80::1%eth0", "2606:2800:21f:cb07:6820:80da:af6b:8b2c%eth0"} {
		if NewGuard(true).allowed(netip.MustParseAddr(a)) {
			t.Errorf("allowed(%s): a zone names a link, never a public destination", a)
		}
	}
}
