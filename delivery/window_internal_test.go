package delivery

import (
	"errors"
	"testing"
	"time"

	"github.com/hookline/hookline/events"
)

// TestCheckWindow shows the words of the recovery's and the replay's window
// rule, as a merchant or operator reads them in a 400.
func TestCheckWindow(t *testing.T) {
	now := time.Now()
	for _, c := range []struct {
		name         string
		since, until time.Time
		limit        time.Duration
		what         string
		param, msg   string
	}{
		{"empty", now, now, MaxRecoveryWindow, "recovery", "until", "must be after since"},
		{"a recovery too long", now.Add(-MaxRecoveryWindow - time.Second), now, MaxRecoveryWindow, "recovery",
			"since", "must be at most 14 days before until; split a longer recovery"},
		{"a replay too long", now.Add(-MaxReplayWindow - time.Second), now, MaxReplayWindow, "replay",
			"since", "must be at most 30 days before until; split a longer replay"},
	} {
		var invalid *events.InvalidError
		if err := checkWindow(c.since, c.until, c.limit, c.what); !errors.As(err, &invalid) || invalid.Param != c.param || invalid.Message != c.msg {
			t.Errorf("%s: %v, want %s: %s", c.name, err, c.param, c.msg)
		}
	}
	if err := checkWindow(now.Add(-MaxReplayWindow), now, MaxReplayWindow, "replay"); err != nil {
		t.Errorf("a window of exactly the limit: %v", err)
	}
}
