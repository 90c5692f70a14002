package delivery

import (
	"encoding/json"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// maxRetryAfter caps how far a receiver's Retry-After can push the next attempt.
const maxRetryAfter = 24 * time.Hour

// Schedule is the delays before each retry; its length is the number of
// retries, so a delivery makes len(Schedule)+1 attempts at most.
type Schedule []time.Duration

// MaxAttempts is the number of attempts a delivery makes before it fails.
func (s Schedule) MaxAttempts() int { return len(s) + 1 }

// Next returns when the attempt after failed attempt number attempt (1-based)
// should run: the schedule's delay with ±20 % jitter, so that retries of many
// deliveries that failed together do not all return at the same instant, and
// never before notBefore (a receiver's Retry-After).
func (s Schedule) Next(now time.Time, attempt int, notBefore time.Time) time.Time {
	var delay time.Duration
	if attempt >= 1 && attempt <= len(s) {
		delay = s[attempt-1]
	} else if len(s) > 0 {
		delay = s[len(s)-1]
	}
	jitter := 0.8 + 0.4*rand.Float64() //nolint:gosec // jitter needs no cryptographic randomness
	next := now.Add(time.Duration(float64(delay) * jitter))
	if notBefore.After(next) {
		return notBefore
	}
	return next
}

// retryAfter reads a 429 or 503 response's Retry-After (seconds or an HTTP
// date) as the earliest time of the next attempt, capped at 24 hours. Any
// other response, or an unreadable header, gives the zero time.
func retryAfter(status int, header http.Header, now time.Time) time.Time {
	if status != http.StatusTooManyRequests && status != http.StatusServiceUnavailable {
		return time.Time{}
	}
	v := strings.TrimSpace(header.Get("Retry-After"))
	if v == "" {
		return time.Time{}
	}
	var at time.Time
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		if secs < 0 {
			return time.Time{}
		}
		at = now.Add(time.Duration(min(secs, int64(maxRetryAfter/time.Second))) * time.Second)
	} else if t, err := http.ParseTime(v); err == nil {
		at = t
	} else {
		return time.Time{}
	}
	return minTime(at, now.Add(maxRetryAfter))
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// discordRetryAfter reads the retry_after (seconds, fractional) of a Discord
// 429 body, which Discord sends besides its headers, capped at 24 hours.
func discordRetryAfter(status int, body string, now time.Time) time.Time {
	if status != http.StatusTooManyRequests {
		return time.Time{}
	}
	var b struct {
		RetryAfter float64 `json:"retry_after"`
	}
	if err := json.Unmarshal([]byte(body), &b); err != nil || b.RetryAfter <= 0 {
		return time.Time{}
	}
	return minTime(now.Add(time.Duration(b.RetryAfter*float64(time.Second))), now.Add(maxRetryAfter))
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
