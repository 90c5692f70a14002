package delivery

import (
	"context"
	"slices"
	"sync"
	"time"
)

const (
	// slowAfter is the attempt duration past which an attempt is slow; a
	// destination counts as troubled for troubledFor after slowToTrouble
	// slow attempts in a row (one slow answer on a busy machine is not a
	// slow receiver), as does one after failuresToTrouble failed attempts in
	// a row: a saturated troubled destination parks its
	// deliveries rather than have its jobs come back through the queue, and
	// one failing in a row is probed as if its circuit were open, without
	// waiting for the database's failure streak to reach circuitAfter.
	slowAfter         = time.Second
	slowToTrouble     = 3
	troubledFor       = 30 * time.Second
	failuresToTrouble = 10
)

// lanesPerJob is how many attempts one job makes side by side, within its
// destination's in-flight cap.
const lanesPerJob = 5

// limiter caps what one process gives each destination and each merchant. A
// destination gets at most perDestination jobs under way, and so workers
// (and more waiting for a place, up to all but one share of the workers: see
// enter), a fifth as many while it is troubled (slow or failing, so that its
// jobs, which hold their workers long, hold few), and at most perDestination
// attempts in flight across them (a job's lanes wait for a slot inside the
// job). A merchant gets at most perMerchant workers while the others need
// theirs: past its share only while more than a share of the workers stays
// free, so that a merchant alone may use the pool but a share is always kept
// for the others (and a troubled destination, whose jobs hold workers long,
// gets few places to begin with). A job that gets no place parks its
// deliveries, which the destination's admitted jobs then work (see
// Worker.drain), after waiting a moment for one if its destination is
// healthy (see enter), counted in its merchant's share while it waits; a
// manual retry comes back instead. So no destination and no merchant can
// take the whole worker pool, whatever its backlog or its receivers' speed.
type limiter struct {
	lanes          int
	perDestination int
	perMerchant    int
	workers        int // the delivery queue's workers
	mu             sync.Mutex
	total          int // jobs under way
	dests          map[string]*destinationPlaces
	merchants      map[string]int
	troubled       map[string]time.Time // destination -> troubled until
	failures       map[string]int       // destination -> failed attempts in a row
	slow           map[string]int       // destination -> slow attempts in a row
	paused         map[string]time.Time // destination -> paused until
	parked         map[string]bool      // destinations this process parked deliveries of for lack of room
	withdrawn      map[string]time.Time // destination -> when this process last withdrew its queued jobs
	parking        bool                 // a withdrawal of this process is parking deliveries
}

// destinationPlaces is one destination's jobs under way and attempts in
// flight, the jobs waiting for a place and the lanes waiting for a slot, each
// first come first.
type destinationPlaces struct {
	jobs, sending int
	waiting       []*placeWaiter
	lanes         []*placeWaiter
}

// newLimiter caps each destination at perDestination jobs and attempts in
// flight, and each merchant at perMerchant of the workers when contended.
func newLimiter(perDestination, perMerchant, workers int) *limiter {
	perDestination = max(1, perDestination)
	return &limiter{
		lanes:          min(lanesPerJob, perDestination),
		perDestination: perDestination,
		perMerchant:    max(1, perMerchant),
		workers:        workers,
		dests:          map[string]*destinationPlaces{},
		merchants:      map[string]int{},
		troubled:       map[string]time.Time{},
		failures:       map[string]int{},
		slow:           map[string]int{},
		paused:         map[string]time.Time{},
		parked:         map[string]bool{},
		withdrawn:      map[string]time.Time{},
	}
}

// enter admits a job of merchant to destination, or refuses it; leave ends
// its turn. A job refused only because its destination has all its places
// waits for one until until (the zero time: no wait), unless the
// destination is troubled, paused or failing in this process (holdsBack):
// a fast destination's jobs leave one after
// another, and a job that waits for a place costs the database nothing,
// where a refused job parks its deliveries and an admitted job claims them
// back (two more writes of each row). Waiting jobs get places in their order
// of arrival, each handed over by a job that leaves. A waiting job holds its
// worker, so it counts in its merchant's share as an admitted one does (a
// merchant past its share while the pool is contended is refused at once),
// and a destination's jobs, admitted and waiting, hold no more workers than
// a merchant alone may: all but one share (75 of 100), whatever the number
// of merchants that share it (a webhook_url).
func (l *limiter) enter(ctx context.Context, destination, merchant string, until time.Time) (leave func(), ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	d := l.dests[destination]
	if d == nil {
		d = &destinationPlaces{}
		l.dests[destination] = d
	}
	leave = func() {
		l.mu.Lock()
		defer l.mu.Unlock()
		d.jobs--
		l.unhold(merchant)
		for len(d.waiting) > 0 && d.jobs < l.places(destination) {
			next := d.waiting[0]
			d.waiting = d.waiting[1:]
			next.admitted = true
			d.jobs++
			close(next.handed)
		}
		l.forget(destination, d)
	}
	switch {
	case l.merchants[merchant] >= l.perMerchant && l.total >= l.workers-l.perMerchant:
		// Past its share while the pool is contended: refused.
	case d.jobs < l.places(destination) && len(d.waiting) == 0:
		d.jobs++
		l.hold(merchant)
		return leave, true
	case l.isTroubledLocked(destination) || l.holdsBackLocked(destination) || !time.Now().Before(until) ||
		d.jobs+len(d.waiting) >= l.workers-l.perMerchant:
		// No wait for it: refused.
	default:
		me := &placeWaiter{handed: make(chan struct{})}
		d.waiting = append(d.waiting, me)
		l.hold(merchant)
		l.mu.Unlock()
		waitFor(ctx, me.handed, until)
		l.mu.Lock()
		if me.admitted { // handed a place, perhaps as the wait ended: it is the job's
			return leave, true
		}
		d.waiting = slices.DeleteFunc(d.waiting, func(w *placeWaiter) bool { return w == me })
		l.unhold(merchant)
	}
	l.forget(destination, d)
	return nil, false
}

// hold counts a worker taken by a job of merchant, admitted or waiting;
// unhold gives it back. The caller holds l.mu.
func (l *limiter) hold(merchant string) {
	l.merchants[merchant]++
	l.total++
}

func (l *limiter) unhold(merchant string) {
	decrement(l.merchants, merchant)
	l.total--
}

// waitFor waits until ch is closed, ctx is done or until passes.
func waitFor(ctx context.Context, ch <-chan struct{}, until time.Time) {
	timer := time.NewTimer(time.Until(until))
	defer timer.Stop()
	select {
	case <-ch:
	case <-ctx.Done():
	case <-timer.C:
	}
}

// placeWaiter is a job waiting for one of its destination's places (a job
// that leaves sets admitted and closes handed), or a lane waiting for one of
// its in-flight slots (handed over the same way by an attempt that ends).
type placeWaiter struct {
	admitted bool
	handed   chan struct{}
}

// places is how many jobs of destination may be under way. The caller holds
// l.mu.
func (l *limiter) places(destination string) int {
	if l.isTroubledLocked(destination) {
		// A slow or failing destination's jobs hold their workers long:
		// it gets a fifth as many, whose lanes still fill its in-flight cap.
		return max(1, l.perDestination/l.lanes)
	}
	return l.perDestination
}

// send takes one of destination's in-flight slots for an admitted job,
// waiting for one until until; release gives it back. It fails when ctx is
// done or until passes first: a job's lanes wait for a slot no longer than
// its send budget. Waiting lanes get slots in their order of arrival, each
// handed over by the attempt that ends: a broadcast woke every waiting lane
// of the destination for each slot (in make bench's single drain about 200
// lanes for each of 5,000 attempts a second), for one of them to take it.
func (l *limiter) send(ctx context.Context, destination string, until time.Time) (release func(), ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	d := l.dests[destination] // the job's admission keeps it in the map
	release = func() {
		l.mu.Lock()
		defer l.mu.Unlock()
		l.handOn(d)
	}
	if d.sending < l.perDestination && len(d.lanes) == 0 {
		d.sending++
		return release, true
	}
	me := &placeWaiter{handed: make(chan struct{})}
	d.lanes = append(d.lanes, me)
	l.mu.Unlock()
	waitFor(ctx, me.handed, until)
	l.mu.Lock()
	if !me.admitted {
		d.lanes = slices.DeleteFunc(d.lanes, func(w *placeWaiter) bool { return w == me })
		return nil, false
	}
	if ctx.Err() != nil || !time.Now().Before(until) {
		l.handOn(d) // handed a slot as the wait ended: the next lane's
		return nil, false
	}
	return release, true
}

// handOn gives an in-flight slot that ends to the first waiting lane, or
// back to the destination. The caller holds l.mu.
func (l *limiter) handOn(d *destinationPlaces) {
	if len(d.lanes) > 0 {
		next := d.lanes[0]
		d.lanes = d.lanes[1:]
		next.admitted = true
		close(next.handed)
		return
	}
	d.sending--
}

// forget drops an idle destination, so the map holds only busy ones. The
// caller holds l.mu.
func (l *limiter) forget(destination string, d *destinationPlaces) {
	if d.jobs == 0 && len(d.waiting) == 0 && d.sending == 0 && len(d.lanes) == 0 {
		delete(l.dests, destination)
	}
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
	if took >= slowAfter {
		l.slow[destination]++
	} else {
		delete(l.slow, destination)
	}
	if l.slow[destination] >= slowToTrouble || l.failures[destination] >= failuresToTrouble {
		l.troubled[destination] = now.Add(troubledFor)
	}
	for key, until := range l.troubled { // keep the maps to the troubled ones
		if until.Before(now) {
			delete(l.troubled, key)
			delete(l.failures, key)
			delete(l.slow, key)
		}
	}
	for key, at := range l.withdrawn {
		if now.Sub(at) > withdrawEvery {
			delete(l.withdrawn, key)
		}
	}
	for key, until := range l.paused {
		if until.Before(now) {
			delete(l.paused, key)
		}
	}
}

// isTroubled says whether destination was slow or kept failing lately.
func (l *limiter) isTroubled(destination string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.isTroubledLocked(destination)
}

// isTroubledLocked is isTroubled for a caller that holds l.mu.
func (l *limiter) isTroubledLocked(destination string) bool {
	return time.Now().Before(l.troubled[destination])
}

// isFailing says whether destination failed its last failuresToTrouble
// attempts or more.
func (l *limiter) isFailing(destination string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.isFailingLocked(destination)
}

// isFailingLocked is isFailing for a caller that holds l.mu.
func (l *limiter) isFailingLocked(destination string) bool {
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
	return l.isPausedLocked(destination)
}

// holdsBack says whether this process holds destination back: paused, or
// failing. One look at the limiter for a job's lane before each attempt (a
// failing destination's job, its probe, has a single attempt and never
// asks).
func (l *limiter) holdsBack(destination string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.holdsBackLocked(destination)
}

// holdsBackLocked is holdsBack for a caller that holds l.mu.
func (l *limiter) holdsBackLocked(destination string) bool {
	return l.isPausedLocked(destination) || l.isFailingLocked(destination)
}

// isPausedLocked is isPaused for a caller that holds l.mu; it forgets a
// pause that has ended.
func (l *limiter) isPausedLocked(destination string) bool {
	until, ok := l.paused[destination]
	if ok && !time.Now().Before(until) {
		delete(l.paused, destination)
		return false
	}
	return ok
}

// withdrawDue says whether a job that found destination failing
// should withdraw its queued jobs now: not while this process withdraws
// them, nor for withdrawEvery after it did. An answer of true starts a
// withdrawal, which withdrew ends.
func (l *limiter) withdrawDue(destination string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := time.Now()
	if at, ok := l.withdrawn[destination]; ok && now.Sub(at) < withdrawEvery {
		return false
	}
	l.withdrawn[destination] = now.Add(time.Hour) // under way until withdrew
	return true
}

// withdrew notes that a withdrawal of destination's queued jobs ended.
func (l *limiter) withdrew(destination string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.withdrawn[destination] = time.Now()
}

// startParking says whether a withdrawal may park its deliveries now: one
// at a time in a process, each holding one of the workers' few
// connections throughout; stopParking ends its turn.
func (l *limiter) startParking() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.parking {
		return false
	}
	l.parking = true
	return true
}

func (l *limiter) stopParking() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.parking = false
}

// parkedHere notes that this process parked deliveries of destination for
// lack of room: its admitted jobs then work them (Worker.drain).
func (l *limiter) parkedHere(destination string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.parked[destination] = true
}

// hasParked says whether this process parked deliveries of destination that
// its jobs have not drained yet.
func (l *limiter) hasParked(destination string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.parked[destination]
}

// drained notes that destination's parked deliveries are all taken.
func (l *limiter) drained(destination string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.parked, destination)
}
