package delivery

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/hookline/hookline/migrations/dbtest"
)

// TestMarkBusyOncePerRelease checks that markBusy marks a destination found
// saturated once between two releases: a new destination gets its row, a
// destination marked since its last release is left alone without waiting
// for its row's lock (the refused jobs of a saturated destination each mark
// it, and once queued on that lock one behind the other), and one released
// since its mark is marked again.
func TestMarkBusyOncePerRelease(t *testing.T) {
	ctx := context.Background()
	pool := dbtest.NewPool(t)
	busyAt := func() (busy, released *time.Time) {
		t.Helper()
		if err := pool.QueryRow(ctx, `select busy_at, released_at from delivery_destinations where key = 'we_busy'`).
			Scan(&busy, &released); err != nil {
			t.Fatal(err)
		}
		return busy, released
	}

	if _, err := pool.Exec(ctx, markBusy, []string{"we_busy"}); err != nil {
		t.Fatal(err)
	}
	first, _ := busyAt()
	if first == nil {
		t.Fatal("a new destination's mark left busy_at null")
	}

	// Marked, not yet released: another mark changes nothing and does not
	// wait for a transaction that holds the row.
	holder, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = holder.Rollback(ctx) }()
	if _, err := holder.Exec(ctx, `select from delivery_destinations where key = 'we_busy' for update`); err != nil {
		t.Fatal(err)
	}
	if err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `set local lock_timeout = '500ms'`); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, markBusy, []string{"we_busy"})
		return err
	}); err != nil {
		t.Fatalf("marking a destination already marked since its release: %v (it waited for the row's lock)", err)
	}
	if err := holder.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	if again, _ := busyAt(); again == nil || !again.Equal(*first) {
		t.Errorf("busy_at %v after a second mark, want it left at %v", again, first)
	}

	// Released since: marked again, later than the release.
	if _, err := pool.Exec(ctx, `update delivery_destinations set released_at = clock_timestamp() where key = 'we_busy'`); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, markBusy, []string{"we_busy"}); err != nil {
		t.Fatal(err)
	}
	if busy, released := busyAt(); busy == nil || released == nil || !busy.After(*released) {
		t.Errorf("busy_at %v, released_at %v after a mark that follows a release: want busy_at later", busy, released)
	}
}
