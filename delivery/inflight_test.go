package delivery

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"
)

func TestLimiterCapsDestinationsAndMerchants(t *testing.T) {
	l := newLimiter(4, 6, 12) // a merchant past 6 only while more than 6 of 12 are free
	var leaves []func()
	for i := range 4 {
		leave, ok := enterNow(l, "we_slow", "acct_a")
		if !ok {
			t.Fatalf("job %d of a destination refused below the cap", i+1)
		}
		leaves = append(leaves, leave)
	}
	if _, ok := enterNow(l, "we_slow", "acct_a"); ok {
		t.Fatal("a destination got more jobs than its cap")
	}
	// The merchant's other destinations share what is left of its share.
	for i := 4; i < 6; i++ {
		leave, ok := enterNow(l, "we_other", "acct_a")
		if !ok {
			t.Fatalf("merchant refused at %d jobs, below its share of 6", i)
		}
		leaves = append(leaves, leave)
	}
	if _, ok := enterNow(l, "we_third", "acct_a"); ok {
		t.Fatal("a merchant past its share took the workers kept for others")
	}
	// Another merchant is not held back by the first one's load.
	leaveB, ok := enterNow(l, "we_b", "acct_h")
	if !ok {
		t.Fatal("merchant b refused while merchant a was at its share")
	}
	leaveB()
	leaves[0]()
	if _, ok := enterNow(l, "we_third", "acct_a"); !ok {
		t.Fatal("a freed place was not given back")
	}
	for _, leave := range leaves[1:] {
		leave()
	}
	if len(l.dests) != 1 || len(l.merchants) != 1 {
		t.Fatalf("idle keys kept: %v %v", l.dests, l.merchants)
	}
}

// One merchant alone may use the pool past its share: shares bind only when
// another merchant needs the workers.
func TestLimiterShareIsWorkConserving(t *testing.T) {
	l := newLimiter(20, 2, 10)
	for i := range 8 { // a share of 2 stays free for others
		if _, ok := enterNow(l, fmt.Sprintf("we_%d", i), "acct_a"); !ok {
			t.Fatalf("a lone merchant refused at %d jobs with the pool free", i)
		}
	}
	if _, ok := enterNow(l, "we_8", "acct_a"); ok {
		t.Fatal("a merchant past its share took the workers kept for others")
	}
	if _, ok := enterNow(l, "we_b", "acct_h"); !ok {
		t.Fatal("another merchant was refused its share")
	}
}

// A destination's admitted jobs share its in-flight cap: a lane past it
// waits inside its job for a slot, and gets the next one freed.
func TestLimiterCapsAttemptsInFlight(t *testing.T) {
	l := newLimiter(3, 100, 100)
	ctx := context.Background()
	leave, ok := enterNow(l, "we_a", "acct_a")
	if !ok {
		t.Fatal("refused below the cap")
	}
	defer leave()
	forever := time.Now().Add(time.Hour)
	var releases []func()
	for range 3 {
		release, ok := l.send(ctx, "we_a", forever)
		if !ok {
			t.Fatal("a slot refused below the cap")
		}
		releases = append(releases, release)
	}
	got := make(chan func())
	go func() {
		release, _ := l.send(ctx, "we_a", forever)
		got <- release
	}()
	select {
	case <-got:
		t.Fatal("a fourth attempt went in flight past the cap of 3")
	case <-time.After(50 * time.Millisecond):
	}
	releases[0]()
	releases[0] = <-got // the waiting lane got the freed slot: 3 in flight again
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if _, ok := l.send(cancelled, "we_a", forever); ok {
		t.Fatal("a slot past the cap was given to a stopping job")
	}
	// A lane waits for a slot no longer than its job's send budget.
	began := time.Now()
	if _, ok := l.send(ctx, "we_a", began.Add(50*time.Millisecond)); ok {
		t.Fatal("a slot past the cap was given after the lane's deadline")
	}
	if waited := time.Since(began); waited < 50*time.Millisecond {
		t.Fatalf("the lane gave up after %v, before its deadline", waited)
	}
	// Waiting lanes get slots in their order of arrival, one for each
	// attempt that ends.
	order := make(chan int, 2)
	for lane := range 2 {
		go func() {
			release, ok := l.send(ctx, "we_a", forever)
			if ok {
				order <- lane
				release()
			}
		}()
		waitForLanes(t, l, "we_a", lane+1)
	}
	releases[0]()
	if first := <-order; first != 0 {
		t.Errorf("lane %d got the first slot freed, before the lane that waited longer", first)
	}
	<-order
	// The slots are all accounted for: as many as the cap go in flight at
	// once again, after lanes gave up and slots were handed on.
	releases = releases[1:]
	for _, release := range releases {
		release()
	}
	for range 3 {
		release, ok := l.send(ctx, "we_a", time.Now())
		if !ok {
			t.Fatal("a slot below the cap was refused after every attempt ended")
		}
		defer release()
	}
}

// waitForLanes waits until n lanes wait for a slot of destination.
func waitForLanes(t *testing.T, l *limiter, destination string, n int) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		l.mu.Lock()
		waiting := len(l.dests[destination].lanes)
		l.mu.Unlock()
		if waiting == n {
			return
		}
	}
	t.Fatalf("%d lanes never waited for a slot of %s", n, destination)
}

func TestLimiterNotesTroubledDestinations(t *testing.T) {
	l := newLimiter(20, 25, 100)
	l.observe("we_fast", 20*time.Millisecond, true)
	l.observe("we_once", 2*time.Second, true) // one slow answer is not a slow receiver
	for range slowToTrouble {
		l.observe("we_slow", 8*time.Second, true)
	}
	if l.isTroubled("we_once") {
		t.Fatal("one slow answer made a destination troubled")
	}
	if l.isTroubled("we_fast") || !l.isTroubled("we_slow") {
		t.Fatalf("troubled: fast=%v slow=%v, want false, true", l.isTroubled("we_fast"), l.isTroubled("we_slow"))
	}
	// A troubled destination's jobs hold their workers long: it gets a fifth
	// as many places as a healthy one.
	for i := range 20 {
		_, okFast := enterNow(l, "we_fast", fmt.Sprintf("acct_%d", i))
		_, okSlow := enterNow(l, "we_slow", fmt.Sprintf("acct_%d", i))
		if !okFast || okSlow != (i < 20/lanesPerJob) {
			t.Fatalf("job %d: fast admitted %v, slow admitted %v; want true, %v", i+1, okFast, okSlow, i < 20/lanesPerJob)
		}
	}
	for i := range failuresToTrouble {
		if l.isFailing("we_dead") {
			t.Fatalf("failing after %d failed attempts, before %d", i, failuresToTrouble)
		}
		l.observe("we_dead", time.Millisecond, false)
	}
	if !l.isFailing("we_dead") || !l.isTroubled("we_dead") {
		t.Fatal("a destination failing every attempt is not seen failing")
	}
	l.observe("we_dead", time.Millisecond, true)
	if l.isFailing("we_dead") {
		t.Fatal("an acknowledged attempt did not end the failure streak")
	}
}

// A job refused only because its healthy destination has all its places
// waits for one: places are handed over first come first as jobs leave, a
// fifth as many jobs as places may wait, a wait ends refused at its deadline
// or when its job stops, a waiting job counts in its merchant's share, a
// troubled, paused or failing destination's jobs never wait, and nothing stays counted once
// every job has left.
func TestLimiterHandsPlacesToWaitingJobs(t *testing.T) {
	l := newLimiter(10, 1, 13) // a merchant past 1 only while 2 of 13 workers stay free; a destination holds at most 12
	ctx := context.Background()
	var leaves []func()
	for range 10 {
		leave, ok := enterNow(l, "we_a", "acct_a")
		if !ok {
			t.Fatal("refused below the cap")
		}
		leaves = append(leaves, leave)
	}
	type entered struct {
		leave func()
		ok    bool
	}
	wait := func(ctx context.Context, merchant string, within time.Duration) chan entered {
		got := make(chan entered, 1)
		go func() {
			leave, ok := l.enter(ctx, "we_a", merchant, time.Now().Add(within))
			got <- entered{leave, ok}
		}()
		return got
	}
	waiting := func(n int) {
		t.Helper()
		for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
			l.mu.Lock()
			got := len(l.dests["we_a"].waiting)
			l.mu.Unlock()
			if got == n {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%d jobs waiting, want %d", got, n)
			}
		}
	}
	refusedAtOnce := func(got chan entered, what string) {
		t.Helper()
		select {
		case e := <-got:
			if e.ok {
				t.Fatalf("%s was admitted past the cap", what)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("%s waited for a place", what)
		}
	}
	first := wait(ctx, "acct_b", time.Hour)
	waiting(1)
	second := wait(ctx, "acct_c", time.Hour)
	waiting(2)
	refusedAtOnce(wait(ctx, "acct_d", time.Hour), "a job past the destination's waiting room")
	// The waiting jobs hold two workers: acct_a, past its share, finds the
	// pool contended.
	if _, ok := enterNow(l, "we_other", "acct_a"); ok {
		t.Fatal("a merchant past its share was admitted while waiting jobs held the other workers")
	}
	leaves[0]()
	got := <-first
	if !got.ok {
		t.Fatal("the first waiting job was refused when a place freed")
	}
	leaves[0] = got.leave
	select {
	case <-second:
		t.Fatal("the second waiting job got a place the first one holds")
	case <-time.After(20 * time.Millisecond):
	}
	leaves[1]()
	if got = <-second; !got.ok {
		t.Fatal("the second waiting job was refused when a job left")
	}
	leaves[1] = got.leave
	// A wait ends at its deadline, refused.
	began := time.Now()
	if got := <-wait(ctx, "acct_e", 30*time.Millisecond); got.ok {
		t.Fatal("a job was admitted past the cap")
	}
	if waited := time.Since(began); waited < 30*time.Millisecond {
		t.Fatalf("the wait ended after %v, before its deadline", waited)
	}
	// A wait ends when its job stops, refused.
	stopping, stop := context.WithCancel(ctx)
	cancelled := wait(stopping, "acct_f", time.Hour)
	waiting(1)
	stop()
	if got := <-cancelled; got.ok {
		t.Fatal("a stopping job was admitted past the cap")
	}
	// A destination paused or failing in this process still has its job
	// admitted while it has a place free (a manual retry is sent; a failing
	// one's job sends its probe): only the wait is refused.
	for what, holdBack := range map[string]func(){
		"paused":  func() { l.paused["we_b"] = time.Now().Add(time.Hour) },
		"failing": func() { l.failures["we_b"] = failuresToTrouble },
	} {
		l.mu.Lock()
		holdBack()
		l.mu.Unlock()
		leave, ok := enterNow(l, "we_b", "acct_h")
		if !ok {
			t.Fatalf("a %s destination's job was refused with a place free", what)
		}
		leave()
		l.mu.Lock()
		delete(l.paused, "we_b")
		delete(l.failures, "we_b")
		l.mu.Unlock()
	}
	// A destination paused in this process (another job's 429), or failing
	// by its count of failures in a row, has its job refused at once.
	l.pause("we_a", time.Now().Add(time.Hour))
	refusedAtOnce(wait(ctx, "acct_g", time.Hour), "a paused destination's job")
	l.mu.Lock()
	delete(l.paused, "we_a")
	l.failures["we_a"] = failuresToTrouble
	l.mu.Unlock()
	refusedAtOnce(wait(ctx, "acct_g", time.Hour), "a failing destination's job")
	l.mu.Lock()
	delete(l.failures, "we_a")
	l.mu.Unlock()
	// A troubled destination's job is refused at once.
	for range slowToTrouble {
		l.observe("we_a", 8*time.Second, true)
	}
	refusedAtOnce(wait(ctx, "acct_g", time.Hour), "a troubled destination's job")
	for _, leave := range leaves {
		leave()
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.total != 0 || len(l.merchants) != 0 || len(l.dests) != 0 {
		t.Fatalf("once every job left: %d jobs counted, merchants %v, %d destinations kept; want none", l.total, l.merchants, len(l.dests))
	}
}

// Jobs entering and leaving at random, with deadlines, stops and the
// destination turning troubled and back, leave nothing counted: a count
// left behind would shrink a merchant's share for the life of the process.
func TestLimiterChurnLeavesNothingCounted(t *testing.T) {
	l := newLimiter(3, 2, 12)
	var wg sync.WaitGroup
	for g := range 12 {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(g), 1))
			for range 400 {
				destination, merchant := fmt.Sprint("we_", r.IntN(2)), fmt.Sprint("acct_", r.IntN(4))
				ctx, cancel := context.WithCancel(context.Background())
				if r.IntN(4) == 0 {
					time.AfterFunc(time.Duration(r.IntN(300))*time.Microsecond, cancel)
				}
				var until time.Time // no wait for one entry in five
				if r.IntN(5) != 0 {
					until = time.Now().Add(time.Duration(r.IntN(2000)) * time.Microsecond)
				}
				leave, ok := l.enter(ctx, destination, merchant, until)
				cancel()
				switch r.IntN(10) {
				case 0:
					for range slowToTrouble {
						l.observe(destination, 2*time.Second, true)
					}
				case 1:
					l.mu.Lock()
					delete(l.troubled, destination)
					l.mu.Unlock()
				}
				if !ok {
					continue
				}
				l.mu.Lock()
				if d := l.dests[destination]; d == nil || d.jobs > l.perDestination {
					t.Errorf("an admitted job's destination: %+v, want kept, at most %d jobs", d, l.perDestination)
				}
				l.mu.Unlock()
				time.Sleep(time.Duration(r.IntN(500)) * time.Microsecond)
				leave()
			}
		})
	}
	wg.Wait()
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.total != 0 || len(l.merchants) != 0 || len(l.dests) != 0 {
		t.Fatalf("after the churn: %d jobs counted, merchants %v, %d destinations kept; want none", l.total, l.merchants, len(l.dests))
	}
}

// enterNow is l.enter without a wait.
func enterNow(l *limiter, destination, merchant string) (leave func(), ok bool) {
	return l.enter(context.Background(), destination, merchant, time.Time{})
}
