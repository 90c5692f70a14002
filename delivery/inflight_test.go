package delivery

import "testing"

func TestInflight(t *testing.T) {
	t.Parallel()

	f := newInflight(2)
	r1, _, ok1 := f.acquire("we_a", false)
	r2, _, ok2 := f.acquire("we_a", false)
	_, snooze, ok3 := f.acquire("we_a", false)
	if !ok1 || !ok2 || ok3 || snooze < busySnooze || snooze >= 2*busySnooze {
		t.Fatalf("cap of 2: %v %v %v, snooze %s", ok1, ok2, ok3, snooze)
	}
	if _, _, ok := f.acquire("we_b", false); !ok {
		t.Fatal("another destination is held by we_a's cap")
	}
	r1()
	if _, _, ok := f.acquire("we_a", false); !ok {
		t.Fatal("a released slot is not free")
	}
	r2()

	// An open circuit lets one probe through, and snoozes the rest longer.
	p, _, ok := f.acquire("we_c", true)
	_, snooze, again := f.acquire("we_c", true)
	if !ok || again || snooze < circuitSnooze {
		t.Fatalf("open circuit: probe %v, second %v, snooze %s", ok, again, snooze)
	}
	p()
	if _, _, ok := f.acquire("we_c", true); !ok {
		t.Fatal("the probe's slot is not free after it ended")
	}
}
