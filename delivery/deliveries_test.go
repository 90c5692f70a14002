package delivery_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/hookline/hookline/delivery"
)

// TestGetDeliveryReadsOneSnapshot reads a delivery over and over while the
// worker records its attempts, one retry after another: every read shows as
// many attempts as the delivery's count. Read in two statements, a recording
// that committed between them showed an attempt beside the delivery's older
// count and status (the portal showed attempt 1 of a delivery still pending).
func TestGetDeliveryReadsOneSnapshot(t *testing.T) {
	t.Parallel()

	e := newEnv(t, fast, 5*time.Second)
	rcv := newReceiver(t, nil)
	ep := e.endpoint(rcv.srv.URL, []string{"checkout.expired"})
	id := e.sendTestEvent(ep.ID, "checkout.expired").ID
	ctx := context.Background()

	const retries = 40
	var reads, torn int
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-done:
				return
			default:
			}
			d, err := delivery.GetDelivery(ctx, e.pool, &e.scope, id)
			if err != nil {
				t.Error(err)
				return
			}
			reads++
			if len(*d.Attempts) != d.AttemptCount {
				torn++
				if torn == 1 {
					t.Errorf("a read shows %d attempts of a delivery whose count is %d (status %s)", len(*d.Attempts), d.AttemptCount, d.Status)
				}
			}
		}
	}()
	wait := func(attempts int) {
		for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(time.Millisecond) {
			var n int
			if err := e.pool.QueryRow(ctx, `select attempt_count from deliveries where id = $1`, id).Scan(&n); err != nil {
				t.Fatal(err)
			}
			if n >= attempts {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("attempt %d not recorded after 30 s", attempts)
			}
		}
	}
	wait(1)
	for i := 2; i <= retries+1; i++ {
		e.tx(func(tx pgx.Tx) error {
			_, err := e.dispatcher.Retry(ctx, tx, e.scope, id)
			return err
		})
		wait(i)
	}
	close(done)
	wg.Wait()
	if torn > 0 || reads < retries {
		t.Errorf("%d of %d reads were torn across a recording", torn, reads)
	}
	if n := len(rcv.requests()); n != retries+1 {
		t.Errorf("the receiver got %d requests, want %d", n, retries+1)
	}
}
