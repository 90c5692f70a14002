package events

import (
	"testing"
	"time"
)

// TestFirstIDAtBoundsIDsByTime checks that FirstIDAt splits ids by the time
// they were minted: an id minted before t sorts below FirstIDAt(t), one
// minted at or after it does not.
func TestFirstIDAtBoundsIDsByTime(t *testing.T) {
	before := NewID(PrefixDelivery)
	time.Sleep(2 * time.Millisecond) // ULIDs carry milliseconds: let the clock pass one
	mid := time.Now()
	time.Sleep(2 * time.Millisecond)
	after := NewID(PrefixDelivery)
	bound := FirstIDAt(PrefixDelivery, mid)
	if !(before < bound) {
		t.Errorf("id minted before: %s, not below %s", before, bound)
	}
	if !(after > bound) {
		t.Errorf("id minted after: %s, not above %s", after, bound)
	}
	if got := FirstIDAt(PrefixEvent, time.UnixMilli(0)); got != "evt_00000000000000000000000000" {
		t.Errorf("FirstIDAt(epoch) = %s", got)
	}
}
