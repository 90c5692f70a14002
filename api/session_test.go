package api

import (
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// TestSessionEndsAfter12Hours checks the session cookie's value, whatever the
// browser keeps: it carries its signed issue time, and the server refuses it
// 12 h after login, or altered, or from another operator token.
func TestSessionEndsAfter12Hours(t *testing.T) {
	t.Parallel()

	s := newServer(Config{OperatorToken: "an-operator-token-of-at-least-32-chars", Metrics: prometheus.NewRegistry()})
	other := newServer(Config{OperatorToken: "another-operator-token-of-32-chars!", Metrics: prometheus.NewRegistry()})
	now := time.Now()
	tests := []struct {
		name  string
		value string
		want  bool
	}{
		{"fresh", s.session(now), true},
		{"11 h old", s.session(now.Add(-11 * time.Hour)), true},
		{"12 h old", s.session(now.Add(-12*time.Hour - time.Second)), false},
		{"issued in the future", s.session(now.Add(time.Hour)), false},
		{"another token's", other.session(now), false},
		{"issue time changed", alter(s.session(now.Add(-13 * time.Hour))), false},
		{"empty", "", false},
		{"garbage", "not.a.session", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()

			r := httptest.NewRequest("GET", "/dashboard", nil)
			r.AddCookie(&http.Cookie{Name: sessionCookie, Value: tt.value})
			if got := s.signedIn(r); got != tt.want {
				t.Errorf("signedIn = %v, want %v", got, tt.want)
			}
		})
	}
}

// alter moves a session's issue time to now, keeping its signature.
func alter(session string) string {
	_, mac, _ := strings.Cut(session, ".")
	return strconv.FormatInt(time.Now().Unix(), 10) + "." + mac
}
