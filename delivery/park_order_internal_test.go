package delivery

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/hookline/hookline/migrations/dbtest"
)

// TestParkBeforeRecordingAttempts runs record's order on a job that got an
// acknowledgement for dlv_1 and parks dlv_2, while a manual retry of dlv_2
// fails and marks the endpoint failing, in one transaction: the job parks
// first, so the retry waits on dlv_2 alone and both commit. In the other
// order the job held the endpoint (its acknowledgement ends the failure
// streak) when it came to park dlv_2, which the retry held while it waited
// on the endpoint: a deadlock that failed one of them, whose attempts would
// then have been sent again.
func TestParkBeforeRecordingAttempts(t *testing.T) {
	ctx := context.Background()
	pool := dbtest.NewPool(t)
	c1, c2 := lockSetup(t, pool)
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
		done <- pgx.BeginFunc(ctx, c2, func(retry pgx.Tx) error {
			if _, err := w.recordAttempts(ctx, retry, failingEndpointBatch("dlv_2", outcome{statusCode: 500})); err != nil {
				return err
			}
			_, err := w.markFailing(ctx, retry, "we_1", time.Now())
			return err
		})
	}()
	waitForLock(t, pool, c2)
	if _, err := w.recordAttempts(ctx, tx, failingEndpointBatch("dlv_1", outcome{statusCode: 200})); err != nil {
		t.Fatalf("the job's record: %v", err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatalf("the job's commit: %v", err)
	}
	if err := <-done; err != nil {
		t.Errorf("the manual retry: %v", err)
	}
	var failing bool
	if err := pool.QueryRow(ctx, `select failing_since is not null from webhook_endpoints where id = 'we_1'`).Scan(&failing); err != nil || !failing {
		t.Errorf("we_1 failing %v (%v): the retry, last, failed", failing, err)
	}
}
