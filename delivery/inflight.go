package delivery

import (
	"sync"
	"time"
)

const (
	// jobsPerDestination is how many jobs of one destination a process works
	// at once. Each sends on at most limit/jobsPerDestination lanes, so the
	// destination never has more than limit attempts in flight, and never
	// holds more than jobsPerDestination of the worker pool, waiting included.
	jobsPerDestination = 4
	// slowAfter is the attempt duration past which a destination counts as
	// slow for slowFor: a saturated slow destination parks its deliveries
	// rather than have its jobs come back through the queue.
	slowAfter = time.Second
	slowFor   = 30 * time.Second
)

// limiter caps what one process gives each destination and each merchant:
// jobs under way per destination (and so attempts in flight), and jobs under
// way per merchant, so that no destination and no merchant can take the whole
// worker pool, whatever its backlog or its receivers' speed.
type limiter struct {
	jobs        int // jobs under way per destination
	lanes       int // attempts in flight per job
	perMerchant int
	mu          sync.Mutex
	dests       map[string]int // jobs under way
	merchants   map[string]int
	slow        map[string]time.Time // destination -> slow until
	paused      map[string]time.Time // destination -> paused until
}

// newLimiter caps each destination at perDestination attempts in flight and
// each merchant at perMerchant jobs under way.
func newLimiter(perDestination, perMerchant int) *limiter {
	jobs := max(1, min(jobsPerDestination, perDestination))
	return &limiter{
		jobs:        jobs,
		lanes:       max(1, perDestination/jobs),
		perMerchant: max(1, perMerchant),
		dests:       map[string]int{},
		merchants:   map[string]int{},
		slow:        map[string]time.Time{},
		paused:      map[string]time.Time{},
	}
}

// enter admits a job of merchant to destination, or says it must wait; leave
// ends its turn. It never blocks: a job that is not admitted goes back to the
// queue or parks, and so holds no worker while it waits.
func (l *limiter) enter(destination, merchant string) (leave func(), ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.dests[destination] >= l.jobs || l.merchants[merchant] >= l.perMerchant {
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

// observe notes how long an attempt to destination took.
func (l *limiter) observe(destination string, took time.Duration) {
	if took < slowAfter {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	now := time.Now()
	l.slow[destination] = now.Add(slowFor)
	for key, until := range l.slow { // keep the map to the slow ones
		if until.Before(now) {
			delete(l.slow, key)
		}
	}
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

// isSlow says whether an attempt to destination took over slowAfter lately.
func (l *limiter) isSlow(destination string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return time.Now().Before(l.slow[destination])
}
