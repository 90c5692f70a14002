package api

import (
	"math"
	"net/http"
	"strconv"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/hookline/hookline/events"
)

// RateLimit is the API's per-key token bucket: Rate requests a second on
// average, Burst at once. A zero Rate turns limiting off.
type RateLimit struct {
	Rate  float64
	Burst int
}

// limiters holds one token bucket per API key (by merchant and mode), made on
// first use and dropped once full and idle, so memory follows the active keys.
type limiters struct {
	limit RateLimit
	mu    sync.Mutex
	byKey map[string]*rate.Limiter
	swept time.Time
}

func newLimiters(limit RateLimit) *limiters {
	return &limiters{limit: limit, byKey: map[string]*rate.Limiter{}}
}

// allow takes a token for key, or says how long until one is free.
func (l *limiters) allow(key string, now time.Time) (bool, time.Duration) {
	if l.limit.Rate <= 0 {
		return true, 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Sub(l.swept) > time.Minute {
		for k, lim := range l.byKey {
			if lim.TokensAt(now) >= float64(l.limit.Burst) {
				delete(l.byKey, k)
			}
		}
		l.swept = now
	}
	lim, ok := l.byKey[key]
	if !ok {
		lim = rate.NewLimiter(rate.Limit(l.limit.Rate), l.limit.Burst)
		l.byKey[key] = lim
	}
	r := lim.ReserveN(now, 1)
	if delay := r.DelayFrom(now); delay > 0 {
		r.CancelAt(now)
		return false, delay
	}
	return true, 0
}

// limiterKey is the bucket of a merchant's API key: one per merchant and
// mode, shared by the API and the portal's forms.
func limiterKey(scope events.Scope) string {
	return scope.MerchantID + "/" + strconv.FormatBool(scope.Livemode)
}

// rateLimited is the 429 of a key over its limit, with the seconds to wait.
func rateLimited(w http.ResponseWriter, wait time.Duration) *Error {
	w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(wait.Seconds()))))
	return &Error{Status: http.StatusTooManyRequests, Type: "rate_limit_error", Code: "rate_limited",
		Message: "Too many requests with this API key; retry after the number of seconds in Retry-After."}
}
