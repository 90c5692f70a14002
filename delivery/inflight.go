package delivery

import (
	"sync"
	"time"
)

const (
	// slowAfter is the attempt duration past which a destination counts as
	// troubled for troubledFor, as does one after failuresToTrouble failed
	// attempts in a row: a saturated troubled destination parks its
	// deliveries rather than have its jobs come back through the queue, and
	// one failing in a row is probed as if its circuit were open, without
	// waiting for the database's failure streak to reach circuitAfter.
	slowAfter         = time.Second
	troubledFor       = 30 * time.Second
	failuresToTrouble = 10
)

// limiter caps what one process gives each destination and each merchant:
// jobs under way per destination, and so attempts in flight (a job makes its
// attempts one after another), and jobs under way per merchant, so that no
// destination and no merchant can take the whole worker pool, whatever its
// backlog or its receivers' speed. A job that is not admitted never waits
// holding a worker: it goes back to the queue or parks.
type limiter struct {
	perDestination int
	perMerchant    int
	mu             sync.Mutex
	dests          map[string]int // jobs under way
	merchants      map[string]int
	troubled       map[string]time.Time // destination -> troubled until
	failures       map[string]int       // destination -> failed attempts in a row
	paused         map[string]time.Time // destination -> paused until
}

// newLimiter caps each destination at perDestination attempts in flight and
// each merchant at perMerchant jobs under way.
func newLimiter(perDestination, perMerchant int) *limiter {
	return &limiter{
		perDestination: max(1, perDestination),
		perMerchant:    max(1, perMerchant),
		dests:          map[string]int{},
		merchants:      map[string]int{},
		troubled:       map[string]time.Time{},
		failures:       map[string]int{},
		paused:         map[string]time.Time{},
	}
}

// enter admits a job of merchant to destination, or says it must wait; leave
// ends its turn.
func (l *limiter) enter(destination, merchant string) (leave func(), ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.dests[destination] >= l.perDestination || l.merchants[merchant] >= l.perMerchant {
		return nil, false
	}
	l.dests[destination]++
	l.merchants[merchant]++
	return func() {
		l.mu.Lock()
		defer l.mu.Unlock()
		decrement(l.dests, destination)
		decrement(l.merchants, merchant)
	}, true
}

// decrement lowers m[key], dropping it at zero so the maps hold only what is
// under way.
func decrement(m map[string]int, key string) {
	if m[key] <= 1 {
		delete(m, key)
		return
	}
	m[key]--
}

// observe notes how an attempt to destination went.
func (l *limiter) observe(destination string, took time.Duration, acknowledged bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := time.Now()
	if acknowledged {
		delete(l.failures, destination)
	} else {
		l.failures[destination]++
	}
	if took >= slowAfter || l.failures[destination] >= failuresToTrouble {
		l.troubled[destination] = now.Add(troubledFor)
	}
	for key, until := range l.troubled { // keep the map to the troubled ones
		if until.Before(now) {
			delete(l.troubled, key)
		}
	}
}

// isTroubled says whether destination was slow or kept failing lately.
func (l *limiter) isTroubled(destination string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return time.Now().Before(l.troubled[destination])
}

// isFailing says whether destination failed its last failuresToTrouble
// attempts or more.
func (l *limiter) isFailing(destination string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.failures[destination] >= failuresToTrouble
}

// pause holds destination back until until in this process at once: the
// database's pause reaches jobs loaded after it commits, this one those
// already loaded.
func (l *limiter) pause(destination string, until time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.paused[destination] = until
}

// isPaused says whether destination is paused in this process.
func (l *limiter) isPaused(destination string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	until, ok := l.paused[destination]
	if ok && !time.Now().Before(until) {
		delete(l.paused, destination)
		return false
	}
	return ok
}
