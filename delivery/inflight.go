package delivery

import (
	"context"
	"math/rand/v2"
	"sync"
	"time"
)

// Delays for a delivery that found its destination busy. A deferred delivery
// spends no attempt: it goes back to the queue for later, so a slow or dead
// endpoint's backlog waits without burning its retry schedule.
const (
	busySnooze    = time.Second
	circuitSnooze = 15 * time.Second
	// busyWait is how long an attempt waits for a slot of a healthy
	// destination before it is deferred. A fast receiver frees a slot within
	// milliseconds, and waiting is far cheaper than a round trip through the
	// queue; a slow one keeps its slots, and the wait ends.
	busyWait = 250 * time.Millisecond
	// waitingRoom is how many attempts, per slot of the cap, may wait for
	// one. A job holds one delivery per destination of its event, so a
	// fast destination sees far more callers than slots; a slow one holds
	// at most (1 + waitingRoom) × cap of the worker pool.
	waitingRoom = 4
)

// inflight caps the attempts one process has under way to each destination:
// a slow receiver can hold at most limit of the worker pool's slots (and as
// many waiting for them), never all of them, and a failing one (circuit
// open) only one: a probe.
type inflight struct {
	limit int
	mu    sync.Mutex
	dests map[string]*destination
}

// destination is one key's slots: held and waiting attempts, and a channel
// closed (then replaced) whenever a slot frees, to wake the waiters.
type destination struct {
	held, waiting int
	freed         chan struct{}
}

func newInflight(limit int) *inflight {
	return &inflight{limit: limit, dests: map[string]*destination{}}
}

// acquire takes a slot for key, waiting up to busyWait for one, or reports
// how long to defer the attempt. failing says the destination has failed
// every attempt lately: then one attempt at a time probes it, nothing waits,
// and the circuit closes again with its first 2xx.
func (f *inflight) acquire(ctx context.Context, key string, failing bool) (release func(), snooze time.Duration, ok bool) {
	limit, wait := f.limit, busySnooze
	if failing {
		limit, wait = 1, circuitSnooze
	}
	// Jitter, so the deferred backlog does not come back all at once.
	snooze = wait + time.Duration(rand.Int64N(int64(wait))) //nolint:gosec // jitter
	var deadline <-chan time.Time
	f.mu.Lock()
	defer f.mu.Unlock()
	d := f.dests[key]
	if d == nil {
		d = &destination{freed: make(chan struct{})}
		f.dests[key] = d
	}
	for d.held >= limit {
		if failing || d.waiting >= waitingRoom*limit || ctx.Err() != nil {
			f.forget(key, d)
			return nil, snooze, false
		}
		if deadline == nil {
			timer := time.NewTimer(busyWait)
			defer timer.Stop()
			deadline = timer.C
		}
		d.waiting++
		freed := d.freed
		f.mu.Unlock()
		timedOut := false
		select {
		case <-freed:
		case <-deadline:
			timedOut = true
		case <-ctx.Done():
		}
		f.mu.Lock()
		d.waiting--
		if timedOut && d.held >= limit {
			f.forget(key, d)
			return nil, snooze, false
		}
	}
	d.held++
	return func() {
		f.mu.Lock()
		defer f.mu.Unlock()
		d.held--
		close(d.freed)
		d.freed = make(chan struct{})
		f.forget(key, d)
	}, 0, true
}

// forget drops an idle destination, so the map holds only busy ones. The
// caller holds f.mu.
func (f *inflight) forget(key string, d *destination) {
	if d.held == 0 && d.waiting == 0 {
		delete(f.dests, key)
	}
}
