package delivery

import (
	"context"
	"errors"
	"net/netip"
	"net/url"
	"testing"

	"github.com/hookline/hookline/events"
)

// FuzzCheckURL feeds any string to the production guard, with a resolver that
// knows no name: whatever it accepts must be https to a public IP literal.
// Odd spellings of private addresses (2130706433, 0x7f000001, 127.1, [::ffff:
// 10.0.0.1]) must never pass.
func FuzzCheckURL(f *testing.F) {
	for _, seed := range []string{
		"https://93.184.215.14/hook", "https://127.0.0.1/", "https://2130706433/", "https://0x7f000001/",
		"https://127.1/", "https://0177.0.0.1/", "https://[::ffff:10.0.0.1]/", "https://[fe80::1%25eth0]/",
		"https://localhost./", "https://169.254.169.254/latest/meta-data", "http://93.184.215.14/", "https:///x",
		"https://user@93.184.215.14/", "https://93.184.215.14:99999/", "HTTPS://93.184.215.14/",
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
		addr, aerr := netip.ParseAddr(u.Hostname())
		if aerr != nil || !publicAddr(addr) {
			t.Fatalf("accepted %q, whose host %q is not a public IP literal", raw, u.Hostname())
		}
	})
}
