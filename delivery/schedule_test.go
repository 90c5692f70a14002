package delivery

import (
	"net/http"
	"testing"
	"time"
)

func TestScheduleNext(t *testing.T) {
	t.Parallel()

	now := time.Unix(1_800_000_000, 0)
	s := Schedule{5 * time.Second, 30 * time.Second, 2 * time.Minute}
	tests := []struct {
		name      string
		attempt   int
		notBefore time.Time
		min, max  time.Duration // from now
	}{
		{"after attempt 1: 5s ±20%", 1, time.Time{}, 4 * time.Second, 6 * time.Second},
		{"after attempt 2: 30s ±20%", 2, time.Time{}, 24 * time.Second, 36 * time.Second},
		{"after attempt 3: 2m ±20%", 3, time.Time{}, 96 * time.Second, 144 * time.Second},
		{"Retry-After later than the schedule wins", 1, now.Add(time.Hour), time.Hour, time.Hour},
		{"Retry-After earlier than the schedule is ignored", 2, now.Add(time.Second), 24 * time.Second, 36 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()

			for range 200 { // jitter is random: the bounds must hold every time
				got := s.Next(now, tt.attempt, tt.notBefore).Sub(now)
				if got < tt.min || got > tt.max {
					t.Fatalf("Next = now+%s, want within [%s, %s]", got, tt.min, tt.max)
				}
			}
		})
	}
	if got := s.MaxAttempts(); got != 4 {
		t.Errorf("MaxAttempts = %d, want 4 (one attempt plus three retries)", got)
	}
}

func TestRetryAfter(t *testing.T) {
	t.Parallel()

	now := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name   string
		status int
		value  string
		want   time.Time
	}{
		{"429 seconds", 429, "120", now.Add(2 * time.Minute)},
		{"503 seconds", 503, "7", now.Add(7 * time.Second)},
		{"HTTP date", 429, now.Add(time.Hour).Format(http.TimeFormat), now.Add(time.Hour)},
		{"capped at 24h (seconds)", 429, "999999999", now.Add(24 * time.Hour)},
		{"capped at 24h (date)", 503, now.Add(100 * time.Hour).Format(http.TimeFormat), now.Add(24 * time.Hour)},
		{"ignored on 500", 500, "120", time.Time{}},
		{"ignored on 200", 200, "120", time.Time{}},
		{"garbage", 429, "soon", time.Time{}},
		{"negative", 429, "-5", time.Time{}},
		{"absent", 429, "", time.Time{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()

			h := http.Header{}
			if tt.value != "" {
				h.Set("Retry-After", tt.value)
			}
			if got := retryAfter(tt.status, h, now); !got.Equal(tt.want) {
				t.Errorf("retryAfter = %v, want %v", got, tt.want)
			}
		})
	}
}
