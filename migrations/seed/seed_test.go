package seed

import "testing"

func TestID(t *testing.T) {
	for _, tt := range []struct {
		name string
		h    History
		n    int
		want string
	}{
		{"digits only", History{}, 37, "dlv_00000000000000000000000037"},
		{"after a ULID's time part", History{IDTime: "01KBE8ZQ00"}, 37, "dlv_01KBE8ZQ000000000000000037"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.h.ID("dlv", tt.n); got != tt.want {
				t.Errorf("ID = %q, want %q", got, tt.want)
			}
		})
	}
}
