package portal

import (
	"testing"

	"github.com/hookline/hookline/events"
)

// TestCursors checks the list pages' links: older and newer cursors by how
// the page was read and whether the list said there is more.
func TestCursors(t *testing.T) {
	t.Parallel()
	ids := []string{"c", "b", "a"} // newest first, as lists are
	for _, tt := range []struct {
		name       string
		page       events.Page
		more       bool
		n          int
		next, prev string
	}{
		{"first page, all of it", events.Page{}, false, 3, "", ""},
		{"first page, more older", events.Page{}, true, 3, "a", ""},
		{"after a cursor, the last page", events.Page{StartingAfter: "d"}, false, 3, "", "c"},
		{"after a cursor, more older", events.Page{StartingAfter: "d"}, true, 3, "a", "c"},
		{"before a cursor, the newest", events.Page{EndingBefore: "z"}, false, 3, "a", ""},
		{"before a cursor, more newer", events.Page{EndingBefore: "z"}, true, 3, "a", "c"},
		{"an empty page", events.Page{StartingAfter: "d"}, false, 0, "", ""},
	} {
		next, prev := cursors(tt.page, tt.more, func(i int) string { return ids[i] }, tt.n)
		if next != tt.next || prev != tt.prev {
			t.Errorf("%s: next %q prev %q, want %q %q", tt.name, next, prev, tt.next, tt.prev)
		}
	}
}

// TestCheckReturnURL checks return_url's rules without a database.
func TestCheckReturnURL(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		url        string
		production bool
		ok         bool
	}{
		{"https://shop.example.com/settings?tab=webhooks", true, true},
		{"http://localhost:3000/", false, true},
		{"http://[::1]:3000/", false, true},
		{"http://127.0.0.1/", false, true},
		{"http://localhost:3000/", true, false},
		{"http://shop.example.com/", false, false},
		{"javascript:alert(1)", false, false},
		{"data:text/html,hi", false, false},
		{"//shop.example.com/", false, false},
		{"https://u:p@shop.example.com/", false, false},
		{"https:///nohost", false, false},
	} {
		err := CheckReturnURL(tt.url, tt.production)
		if (err == nil) != tt.ok {
			t.Errorf("CheckReturnURL(%q, production %v) = %v, want ok %v", tt.url, tt.production, err, tt.ok)
		}
	}
}
