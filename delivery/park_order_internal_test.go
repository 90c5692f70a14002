package delivery

import (
	"context"
	"testing"

	"github.com/hookline/hookline/migrations/dbtest"
)

// TestParkBeforeRecordingAttempts runs record's order on a job that sent
// dlv_1 and parks dlv_2 while a manual retry of dlv_2 records, on a
// connection of the same statistics shard: the job parks first, so the
// retry waits on dlv_2 alone and both commit. In the other order the job
// held the statistics' rows when it came to park dlv_2, which the retry held
// while it waited on those rows: a deadlock that failed one of them, whose
// attempts would then have been sent again.
func TestParkBeforeRecordingAttempts(t *testing.T) {
	ctx := context.Background()
	pool := dbtest.NewPool(t)
	c1, c2 := lockSetup(t, pool, true)
	w := &Worker{}
	tx, err := c1.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	if _, err := tx.Exec(ctx, parkDeliveries, []string{"dlv_2"}, []int{0}); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := w.recordAttempts(ctx, c2, failingEndpointBatch("dlv_2", outcome{statusCode: 500}))
		done <- err
	}()
	waitForLock(t, pool, c2)
	if _, err := w.recordAttempts(ctx, tx, failingEndpointBatch("dlv_1", outcome{statusCode: 500})); err != nil {
		t.Fatalf("the job's record: %v", err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatalf("the job's commit: %v", err)
	}
	if err := <-done; err != nil {
		t.Errorf("the manual retry's record: %v", err)
	}
}
