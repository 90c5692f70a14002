package delivery

import (
	"math/rand/v2"
	"sync"
	"time"
)

// Snooze delays for a delivery that found its destination busy. A snooze
// spends no attempt (River's JobSnooze), so a slow or dead endpoint's
// backlog waits without burning its retry schedule.
const (
	busySnooze    = time.Second
	circuitSnooze = 15 * time.Second
)

// inflight caps the attempts one process has under way to each destination:
// a slow receiver can hold at most limit of the worker pool's slots, never
// all of them, and a failing one (circuit open) only one: a probe.
type inflight struct {
	limit int
	mu    sync.Mutex
	count map[string]int
}

func newInflight(limit int) *inflight {
	return &inflight{limit: limit, count: map[string]int{}}
}

// acquire takes a slot for key, or reports how long to snooze. failing says
// the destination has failed every attempt lately: then one attempt at a time
// probes it, and the circuit closes again with its first 2xx.
func (f *inflight) acquire(key string, failing bool) (release func(), snooze time.Duration, ok bool) {
	limit, wait := f.limit, busySnooze
	if failing {
		limit, wait = 1, circuitSnooze
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.count[key] >= limit {
		// Jitter, so the snoozed backlog does not come back all at once.
		return nil, wait + time.Duration(rand.Int64N(int64(wait))), false //nolint:gosec // jitter
	}
	f.count[key]++
	return func() {
		f.mu.Lock()
		defer f.mu.Unlock()
		if f.count[key]--; f.count[key] == 0 {
			delete(f.count, key)
		}
	}, 0, true
}
