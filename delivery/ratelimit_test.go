package delivery

import (
	"context"
	"math"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hookline/hookline/migrations/dbtest"
)

// The token bucket starts full (a second's worth), grants no more than it
// holds however many processes take from it at once, and refills at the
// limit's rate.
func TestRateLimitBucket(t *testing.T) {
	t.Parallel()

	pool := dbtest.NewPool(t)
	ctx := context.Background()
	const perSecond = 50

	// Twenty takers at once, each asking for 10, on a new destination: the
	// first makes the row; together they get the full bucket and no more,
	// but for what it refills while they take.
	var granted atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for range 20 {
		wg.Go(func() {
			n, err := take(ctx, pool, "we_limited", perSecond, 10)
			if err != nil {
				t.Error(err)
			}
			granted.Add(int64(n))
		})
	}
	wg.Wait()
	refilled := int64(math.Ceil(time.Since(start).Seconds() * perSecond))
	if got := granted.Load(); got < perSecond || got > perSecond+refilled {
		t.Errorf("20 takers got %d tokens together, want the full bucket of %d and at most the %d it refilled meanwhile",
			got, perSecond, refilled)
	}

	// A second later it holds a second's worth again, and not more however
	// long it waited.
	for _, elapsed := range []string{"1 second", "1 hour"} {
		if _, err := pool.Exec(ctx, `update delivery_destinations set tokens = 0, tokens_at = now() - $1::interval
			where key = 'we_limited'`, elapsed); err != nil {
			t.Fatal(err)
		}
		n, err := take(ctx, pool, "we_limited", perSecond, 1000)
		if err != nil {
			t.Fatal(err)
		}
		if n != perSecond {
			t.Errorf("after %s: granted %d, want %d", elapsed, n, perSecond)
		}
	}

	// A taker whose statement began before the last taker wrote (its now()
	// is earlier than the bucket's clock) gets nothing from negative time,
	// and leaves the clock where it was.
	if _, err := pool.Exec(ctx, `update delivery_destinations set tokens = 0, tokens_at = now() + interval '1 minute'
		where key = 'we_limited'`); err != nil {
		t.Fatal(err)
	}
	if n, err := take(ctx, pool, "we_limited", perSecond, 10); err != nil || n != 0 {
		t.Errorf("take from an empty bucket whose clock is ahead: %d, %v; want 0", n, err)
	}
	var ahead bool
	if err := pool.QueryRow(ctx, `select tokens_at > now() + interval '59 seconds' and tokens = 0 from delivery_destinations
		where key = 'we_limited'`).Scan(&ahead); err != nil || !ahead {
		t.Errorf("the bucket's clock went back, or its tokens changed (%v)", err)
	}

	// A row another path made (a pause) starts with a full bucket.
	if _, err := pool.Exec(ctx, `insert into delivery_destinations (key, paused_until) values ('we_paused', now())`); err != nil {
		t.Fatal(err)
	}
	if n, err := take(ctx, pool, "we_paused", perSecond, 7); err != nil || n != 7 {
		t.Errorf("take 7 of a new bucket: %d, %v", n, err)
	}
}
