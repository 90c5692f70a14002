package delivery

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"

	"github.com/hookline/hookline/events"
	"github.com/hookline/hookline/migrations/dbtest"
)

// TestObjectPlansAtScale checks the generic plans of the statements that read
// or change a few rows by key (a delivery and its attempts, an endpoint, a
// job's deliveries, a destination) on the seeded history, by running each
// function that runs them, or the statement itself where its function works
// on a pool of its own: each reads the rows it is about, and no history table
// sequentially. River's insert of the jobs that come with them is checked
// with them. The functions that write run in a transaction CheckPlans rolls
// back.
func TestObjectPlansAtScale(t *testing.T) {
	pool := dbtest.Seeded(t)
	inserter, err := river.NewClient(riverpgxv5.New(pool), &river.Config{})
	if err != nil {
		t.Fatal(err)
	}
	dispatcher := NewDispatcher(inserter, nil)
	keyring := dbtest.Keyring(t)
	endpoints := NewEndpoints(NewGuard(false), keyring, 20)
	worker := &Worker{publisher: events.NewPublisher(dispatcher), logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	big := events.Scope{MerchantID: dbtest.SeedMerchant}
	small := events.Scope{MerchantID: dbtest.SeedSmallMerchant}
	busy := dbtest.SeedBusyEndpoint
	// Deliveries of the large merchant: the 37th failed (one attempt), the
	// 53rd and 106th are pending with one attempt made.
	failed, pending := dbtest.SeedID("dlv", 37), []string{dbtest.SeedID("dlv", 53), dbtest.SeedID("dlv", 106)}
	byKey := func(conds ...string) dbtest.Want { return dbtest.Want{Conds: conds} }
	for _, s := range []struct {
		name string
		run  func(ctx context.Context, tx pgx.Tx) error
		want dbtest.Want
	}{
		{"get a delivery with its attempts", func(ctx context.Context, tx pgx.Tx) error {
			_, err := GetDelivery(ctx, tx, &big, failed)
			return err
		}, byKey(`\((delivery_)?id = \$1\)`)},
		{"operator: get any merchant's delivery", func(ctx context.Context, tx pgx.Tx) error {
			_, err := GetDelivery(ctx, tx, nil, failed)
			return err
		}, byKey(`\((delivery_)?id = \$1\)`)},
		{"retry a delivery", func(ctx context.Context, tx pgx.Tx) error {
			_, err := dispatcher.Retry(ctx, tx, big, failed)
			return err
		}, dbtest.Want{}},
		{"operator: retry a delivery", func(ctx context.Context, tx pgx.Tx) error {
			return dispatcher.RetryByID(ctx, tx, failed)
		}, dbtest.Want{}},
		{"fan out an event of the large merchant", func(ctx context.Context, tx pgx.Tx) error {
			return dispatcher.FanOut(ctx, tx, []*events.Event{{ID: events.NewID(events.PrefixEvent), MerchantID: big.MerchantID,
				Type: events.CheckoutCreated, CreatedAt: time.Now()}})
		}, dbtest.Want{}},
		{"fan out events of two merchants", func(ctx context.Context, tx pgx.Tx) error {
			return dispatcher.FanOut(ctx, tx, []*events.Event{
				{ID: events.NewID(events.PrefixEvent), MerchantID: small.MerchantID, Type: events.CheckoutCreated, CreatedAt: time.Now()},
				{ID: events.NewID(events.PrefixEvent), MerchantID: big.MerchantID, Type: events.WebhookEndpointDisabled, CreatedAt: time.Now()},
			})
		}, dbtest.Want{}},
		{"create an endpoint", func(ctx context.Context, tx pgx.Tx) error {
			c, err := endpoints.Check(ctx, EndpointParams{URL: "https://example.com/plan", EnabledEvents: []string{"*"}})
			if err != nil {
				return err
			}
			_, err = endpoints.Create(ctx, tx, big, c)
			return err
		}, dbtest.Want{}},
		{"update an endpoint", func(ctx context.Context, tx pgx.Tx) error {
			description := "plan test"
			c, err := endpoints.CheckUpdate(ctx, EndpointUpdate{Description: &description})
			if err != nil {
				return err
			}
			_, err = endpoints.Update(ctx, tx, big, busy, c)
			return err
		}, byKey(`\(id = \$1\)`)},
		{"rotate an endpoint's secret", func(ctx context.Context, tx pgx.Tx) error {
			_, err := endpoints.RotateSecret(ctx, tx, big, busy, time.Hour)
			return err
		}, byKey(`\(id = \$1\)`)},
		{"delete an endpoint", func(ctx context.Context, tx pgx.Tx) error {
			return Delete(ctx, tx, big, busy)
		}, byKey(`\(id = \$1\)`)},
		{"operator: enable an endpoint", func(ctx context.Context, tx pgx.Tx) error {
			return Enable(ctx, tx, "we_seed0049_5")
		}, byKey(`\(id = \$1\)`)},
		{"load a job's deliveries", func(ctx context.Context, tx pgx.Tx) error {
			rows, err := tx.Query(ctx, loadTargets, append([]string{failed}, pending...), circuitAfter)
			if err != nil {
				return err
			}
			rows.Close()
			return rows.Err()
		}, dbtest.Want{}},
		{"record a job's attempts", func(ctx context.Context, tx pgx.Tx) error {
			var rb recordBatch
			for _, id := range pending {
				rb.add(&target{deliveryID: id, expected: 1, url: "https://example.com/"}, StatusSucceeded, nil,
					&outcome{started: time.Now(), duration: 40 * time.Millisecond, statusCode: 200})
			}
			_, err := worker.recordAttempts(ctx, tx, rb.args([]string{busy}))
			return err
		}, dbtest.Want{}},
		{"park a job's deliveries", func(ctx context.Context, tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, parkDeliveries, pending, []int{1, 1}); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, markBusy, []string{busy})
			return err
		}, dbtest.Want{}},
		{"pause a destination", func(ctx context.Context, tx pgx.Tx) error {
			_, err := tx.Exec(ctx, pauseDestination, busy, time.Now().Add(time.Minute))
			return err
		}, dbtest.Want{}},
		{"pause probed destinations", func(ctx context.Context, tx pgx.Tx) error {
			_, err := tx.Exec(ctx, pauseProbed, []string{busy, "we_seed0007_1"}, maxProbeInterval.Milliseconds())
			return err
		}, dbtest.Want{}},
		{"mark an endpoint failing, then disable it", func(ctx context.Context, tx pgx.Tx) error {
			if _, err := worker.markFailing(ctx, tx, busy, time.Now()); err != nil {
				return err
			}
			_, err := worker.disable(ctx, tx, big, busy, DisabledFailing)
			return err
		}, dbtest.Want{}},
	} {
		t.Run(s.name, func(t *testing.T) {
			plans := dbtest.CheckPlans(t, pool, PlannerSettings(), func(ctx context.Context, db events.DB) error {
				return s.run(ctx, db.(pgx.Tx))
			}, s.want)
			dbtest.LogPlans(t, plans)
		})
	}
}
