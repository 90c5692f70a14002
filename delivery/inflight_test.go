package delivery

import (
	"context"
	"fmt"
	"testing"
	"time"
)

func TestLimiterCapsDestinationsAndMerchants(t *testing.T) {
	l := newLimiter(20, 6, 12)
	running := 20 / lanesPerJob // at most 20 attempts in flight
	if l.running != running || l.lanes != lanesPerJob {
		t.Fatalf("%d jobs of %d lanes, want %d of %d", l.running, l.lanes, running, lanesPerJob)
	}
	var leaves []func()
	for i := range running {
		leave, ok := l.enter(context.Background(), "we_slow", "acct_a", false)
		if !ok {
			t.Fatalf("job %d of a destination refused below the cap", i+1)
		}
		leaves = append(leaves, leave)
	}
	if _, ok := l.enter(context.Background(), "we_slow", "acct_a", false); ok {
		t.Fatalf("a destination got more than %d jobs", running)
	}
	// The merchant's other destinations share what is left of its share.
	for i := running; i < 6; i++ {
		leave, ok := l.enter(context.Background(), "we_other", "acct_a", false)
		if !ok {
			t.Fatalf("merchant refused at %d jobs, below its share of 6", i)
		}
		leaves = append(leaves, leave)
	}
	if _, ok := l.enter(context.Background(), "we_third", "acct_a", false); ok {
		t.Fatal("a merchant got more than its share of jobs")
	}
	// Another merchant is not held back by the first one's load.
	leaveB, ok := l.enter(context.Background(), "we_b", "acct_b", false)
	if !ok {
		t.Fatal("merchant b refused while merchant a was at its share")
	}
	leaveB()
	leaves[0]()
	if _, ok := l.enter(context.Background(), "we_third", "acct_a", false); !ok {
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
	ctx := context.Background()
	for i := range 8 { // 8 of 10 workers: a share of 2 stays free for others
		if _, ok := l.enter(ctx, fmt.Sprintf("we_%d", i), "acct_a", false); !ok {
			t.Fatalf("a lone merchant refused at %d jobs with the pool free", i)
		}
	}
	if _, ok := l.enter(ctx, "we_9", "acct_a", false); ok {
		t.Fatal("a merchant past its share took the workers kept for others")
	}
	if _, ok := l.enter(ctx, "we_b", "acct_b", false); !ok {
		t.Fatal("another merchant was refused its share")
	}
}

// A job may wait for a running place at a healthy destination; waiting holds
// a worker, so the waiting room is what is left of the destination's cap.
func TestLimiterWaitsWithinTheCap(t *testing.T) {
	l := newLimiter(10, 100, 100) // 2 jobs of 5 lanes; 8 may wait
	ctx := context.Background()
	var leaves []func()
	for range 2 {
		leave, ok := l.enter(ctx, "we_a", "acct_a", true)
		if !ok {
			t.Fatal("a running place refused below the cap")
		}
		leaves = append(leaves, leave)
	}
	// The 8 of the waiting room wait; the 9th is refused at once.
	admitted := make(chan func(), 8)
	for range 8 {
		go func() {
			if leave, ok := l.enter(ctx, "we_a", "acct_a", true); ok {
				admitted <- leave
			} else {
				admitted <- nil
			}
		}()
	}
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
		l.mu.Lock()
		waiting := l.dests["we_a"].waiting
		l.mu.Unlock()
		if waiting == 8 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d waiting, want 8", waiting)
		}
	}
	if _, ok := l.enter(ctx, "we_a", "acct_a", true); ok {
		t.Fatal("a job beyond the waiting room was admitted: the destination would hold more than its cap of workers")
	}
	leaves[0]() // a place frees: one waiter takes it
	if leave := <-admitted; leave == nil {
		t.Fatal("the freed place went to no waiter")
	} else {
		leave()
	}
	leaves[1]()
	for range 7 { // the others get places or time out, never hang
		if leave := <-admitted; leave != nil {
			leave()
		}
	}
}

func TestLimiterNotesTroubledDestinations(t *testing.T) {
	l := newLimiter(20, 25, 100)
	l.observe("we_fast", 20*time.Millisecond, true)
	l.observe("we_slow", 8*time.Second, true)
	if l.isTroubled("we_fast") || !l.isTroubled("we_slow") {
		t.Fatalf("troubled: fast=%v slow=%v, want false, true", l.isTroubled("we_fast"), l.isTroubled("we_slow"))
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
