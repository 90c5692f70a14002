package delivery

import (
	"context"
	"errors"
	"net/netip"
	"net/url"
	"strings"
	"testing"

	"github.com/hookline/hookline/events"
)

// FuzzCheckURL feeds any string to the production guard, with a resolver that
// knows no name: whatever it accepts must be https to an IP literal that the
// registries' table (registry_test.go) does not refuse, nor any IPv4 address
// it carries. The oracle is that table, not the guard's own code.
func FuzzCheckURL(f *testing.F) {
	for _, seed := range []string{
		"https://93.184.215.14/hook", "https://127.0.0.1/", "https://2130706433/", "https://0x7f000001/",
		"https://127.1/", "https://0177.0.0.1/", "https://[::ffff:10.0.0.1]/", "https://[fe80::1%25eth0]/",
		"https://localhost./", "https://169.254.169.254/latest/meta-data", "http://93.184.215.14/", "https:///x",
		"https://user@93.184.215.14/", "https://93.184.215.14:99999/", "HTTPS://93.184.215.14/",
		"https://[::7f00:1]/", "https://[::ffff:0:7f00:1]/", "https://[2002:a9fe:a9fe::]/", "https://[2001:0::]/",
		"https://[fec0::1]/", "https://[64:ff9b::5db8:d70e]/", "https://[2001:0:5db8:d70e:0:fbaa:f5ff:fffe]/",
	} {
		f.Add(seed)
	}
	g := NewGuard(true)
	g.Lookup = func(context.Context, string) ([]netip.Addr, error) { return nil, errors.New("no such host") }
	f.Fuzz(func(t *testing.T, raw string) {
		err := g.CheckURL(context.Background(), raw, "url")
		var invalid *events.InvalidError
		if err != nil {
			if !errors.As(err, &invalid) || invalid.Param != "url" {
				t.Fatalf("CheckURL(%q) = %v: not an InvalidError naming url", raw, err)
			}
			return
		}
		u, perr := url.Parse(raw)
		if perr != nil || u.Scheme != "https" {
			t.Fatalf("accepted %q, which is not https", raw)
		}
		// A trailing dot ends a fully qualified name: "10.0.0.1." is the
		// address too, for resolvers.
		addr, aerr := netip.ParseAddr(strings.TrimSuffix(u.Hostname(), "."))
		if aerr != nil {
			t.Fatalf("accepted %q, whose host %q is not an IP literal", raw, u.Hostname())
		}
		if why := registryRefuses(addr); why != "" {
			t.Fatalf("accepted %q: %s", raw, why)
		}
	})
}

// registryRefuses says why the registries' table refuses an address, or ""
// when it does not. The most specific block holding the address decides; an
// IPv6 address outside 2000::/3 passes only as a form that carries an IPv4
// address; every IPv4 address carried must pass too, and alone decides for
// Teredo and 6to4.
func registryRefuses(a netip.Addr) string {
	if a.Zone() != "" {
		return "it has a zone"
	}
	bits, refused, block := -1, false, ""
	// Teredo and 6to4 are N/A in the registry: what they carry decides.
	teredoOr6to4 := netip.MustParsePrefix("2001::/32").Contains(a) || netip.MustParsePrefix("2002::/16").Contains(a)
	for _, row := range specialPurpose {
		if teredoOr6to4 {
			break
		}
		p, err := netip.ParsePrefix(strings.Fields(row.block)[0])
		if err == nil && p.Contains(a) && p.Bits() > bits {
			bits, refused, block = p.Bits(), !row.want, row.block
		}
	}
	if refused {
		return "it is in " + block
	}
	carried := carriedIPv4(a)
	if a.Is6() && len(carried) == 0 && !netip.MustParsePrefix("2000::/3").Contains(a) {
		return "it is IPv6 outside 2000::/3"
	}
	for _, v4 := range carried {
		if why := registryRefuses(v4); why != "" {
			return "it carries " + v4.String() + ", and " + why
		}
	}
	return ""
}

// carriedIPv4 is the IPv4 addresses an IPv6 address carries, read as each
// form's RFC lays it out: the last 32 bits of IPv4-mapped, IPv4-compatible,
// SIIT and NAT64 addresses, bits 16 to 47 of 6to4, and Teredo's server (bits
// 32 to 63) and client (the last 32 bits, inverted).
func carriedIPv4(a netip.Addr) []netip.Addr {
	if !a.Is6() {
		return nil
	}
	b := a.As16()
	last := netip.AddrFrom4([4]byte(b[12:]))
	for _, form := range []string{"::ffff:0:0/96", "::/96", "::ffff:0:0:0/96", "64:ff9b::/96"} {
		if netip.MustParsePrefix(form).Contains(a) {
			return []netip.Addr{last}
		}
	}
	switch {
	case netip.MustParsePrefix("2002::/16").Contains(a):
		return []netip.Addr{netip.AddrFrom4([4]byte(b[2:6]))}
	case netip.MustParsePrefix("2001::/32").Contains(a):
		client := [4]byte{^b[12], ^b[13], ^b[14], ^b[15]}
		return []netip.Addr{netip.AddrFrom4([4]byte(b[4:8])), netip.AddrFrom4(client)}
	}
	return nil
}

// TestRegistryOracle checks the fuzz oracle on the tables it is built from,
// so that a mistake in it cannot hide a guard that lets too much through.
func TestRegistryOracle(t *testing.T) {
	t.Parallel()

	for _, row := range specialPurpose {
		if got := registryRefuses(netip.MustParseAddr(row.addr)) == ""; got != row.want {
			t.Errorf("oracle on %s (%s): accepted %v, want %v", row.addr, row.block, got, row.want)
		}
	}
	for _, row := range embeddedForms {
		if got := registryRefuses(netip.MustParseAddr(row.addr)) == ""; got != row.want {
			t.Errorf("oracle on %s (%s): accepted %v, want %v", row.addr, row.name, got, row.want)
		}
	}
}
