package delivery

import (
	"testing"
	"time"
)

func TestLimiterCapsDestinationsAndMerchants(t *testing.T) {
	const perDestination = 4
	l := newLimiter(perDestination, 6)
	var leaves []func()
	for i := range perDestination {
		leave, ok := l.enter("we_slow", "acct_a")
		if !ok {
			t.Fatalf("job %d of a destination refused below the cap", i+1)
		}
		leaves = append(leaves, leave)
	}
	if _, ok := l.enter("we_slow", "acct_a"); ok {
		t.Fatalf("a destination got more than %d jobs", perDestination)
	}
	// The merchant's other destinations share what is left of its share.
	for i := perDestination; i < 6; i++ {
		leave, ok := l.enter("we_other", "acct_a")
		if !ok {
			t.Fatalf("merchant refused at %d jobs, below its share of 6", i)
		}
		leaves = append(leaves, leave)
	}
	if _, ok := l.enter("we_third", "acct_a"); ok {
		t.Fatal("a merchant got more than its share of jobs")
	}
	// Another merchant is not held back by the first one's load.
	leaveB, ok := l.enter("we_b", "acct_b")
	if !ok {
		t.Fatal("merchant b refused while merchant a was at its share")
	}
	leaveB()
	leaves[0]()
	if _, ok := l.enter("we_third", "acct_a"); !ok {
		t.Fatal("a freed place was not given back")
	}
	for _, leave := range leaves[1:] {
		leave()
	}
	if len(l.dests) != 1 || len(l.merchants) != 1 {
		t.Fatalf("idle keys kept: %v %v", l.dests, l.merchants)
	}
}

func TestLimiterNotesTroubledDestinations(t *testing.T) {
	l := newLimiter(20, 25)
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
