package delivery

import "testing"

// Postgres text cannot hold NUL or invalid UTF-8, and receivers' bodies and
// error texts (an x509 error quotes a certificate's names raw) may carry
// either: an attempt whose error could not be stored would fail its whole
// job, and its event's other deliveries with it.
func TestCleanText(t *testing.T) {
	for _, c := range []struct{ name, in, want string }{
		{"plain", "HTTP 500", "HTTP 500"},
		{"NUL", "x509: certificate is valid for a\x00b, not c", "x509: certificate is valid for ab, not c"},
		{"invalid UTF-8", "bad \xff byte", "bad \uFFFD byte"},
	} {
		if got := cleanText(c.in); got != c.want {
			t.Errorf("%s: cleanText(%q) = %q, want %q", c.name, c.in, got, c.want)
		}
	}
}
