package delivery

import (
	"context"
	"testing"
	"time"
)

func TestInflight(t *testing.T) {
	t.Parallel()

	ctx := context.Background()
	f := newInflight(2)
	r1, _, ok1 := f.acquire(ctx, "we_a", false)
	r2, _, ok2 := f.acquire(ctx, "we_a", false)
	_, snooze, ok3 := f.acquire(ctx, "we_a", false)
	if !ok1 || !ok2 || ok3 || snooze < busySnooze || snooze >= 2*busySnooze {
		t.Fatalf("cap of 2: %v %v %v, snooze %s", ok1, ok2, ok3, snooze)
	}
	if _, _, ok := f.acquire(ctx, "we_b", false); !ok {
		t.Fatal("another destination is held by we_a's cap")
	}
	r1()
	if _, _, ok := f.acquire(ctx, "we_a", false); !ok {
		t.Fatal("a released slot is not free")
	}
	r2()

	// An open circuit lets one probe through, and snoozes the rest longer.
	p, _, ok := f.acquire(ctx, "we_c", true)
	_, snooze, again := f.acquire(ctx, "we_c", true)
	if !ok || again || snooze < circuitSnooze {
		t.Fatalf("open circuit: probe %v, second %v, snooze %s", ok, again, snooze)
	}
	p()
	if _, _, ok := f.acquire(ctx, "we_c", true); !ok {
		t.Fatal("the probe's slot is not free after it ended")
	}
}

// A busy healthy destination makes an attempt wait for a slot rather than go
// back to the queue; only waitingRoom per slot wait, the rest are deferred.
func TestInflightWaitsForASlot(t *testing.T) {
	t.Parallel()

	ctx := context.Background()
	f := newInflight(1)
	held, _, _ := f.acquire(ctx, "we_a", false)
	got := make(chan bool, waitingRoom)
	for range waitingRoom {
		go func() {
			release, _, ok := f.acquire(ctx, "we_a", false)
			if ok {
				release()
			}
			got <- ok
		}()
	}
	// Wait until the waiting room is full, then one more caller is deferred.
	for {
		f.mu.Lock()
		waiting := f.dests["we_a"].waiting
		f.mu.Unlock()
		if waiting == waitingRoom {
			break
		}
		time.Sleep(time.Millisecond)
	}
	if _, snooze, ok := f.acquire(ctx, "we_a", false); ok || snooze < busySnooze {
		t.Fatalf("with one holder and a full waiting room, another acquire got ok=%v snooze %s, want deferred", ok, snooze)
	}
	held()
	for range waitingRoom {
		if !<-got {
			t.Fatal("a waiter did not get a slot: the holder released it, and each waiter releases its own")
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.dests) != 0 {
		t.Fatalf("idle destinations kept: %v", f.dests)
	}
}
