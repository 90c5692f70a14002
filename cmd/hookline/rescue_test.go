package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"

	"github.com/hookline/hookline/delivery"
	"github.com/hookline/hookline/events"
	"github.com/hookline/hookline/migrations/dbtest"
)

// TestCrashedDeliveryIsRescued leaves a delivery's job "running" as a process
// killed mid-attempt would, then starts hookline with its production River
// configuration: the job must be rescued and the event delivered, rather than
// wait for River's default hour.
func TestCrashedDeliveryIsRescued(t *testing.T) {
	t.Parallel()

	ctx := context.Background()
	pool, url := migratedPool(t)
	var received atomic.Int32
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		received.Add(1)
	}))
	defer receiver.Close()

	// The state a crash leaves: a committed event, its delivery, and the job
	// claimed by a process that no longer exists, its attempt started long ago.
	seedDelivery(t, pool, receiver.URL, defaultRetrySchedule)
	tag, err := pool.Exec(ctx, `update river_job set state = 'running', attempt = 1, attempted_at = now() - interval '2 minutes',
		attempted_by = array['a-killed-process'] where kind = 'deliver'`)
	if err != nil || tag.RowsAffected() != 1 {
		t.Fatalf("simulate the crash: %v (%d jobs)", err, tag.RowsAffected())
	}

	boot(t, map[string]string{"DATABASE_URL": url})

	// Bounded wait, not a speed assertion: River's own rescuer runs at start
	// and every 30s thereafter.
	deadline := time.Now().Add(90 * time.Second)
	for received.Load() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the crashed delivery was not rescued and delivered within 90s")
		}
		time.Sleep(50 * time.Millisecond)
	}
	var status string
	for status != delivery.StatusSucceeded && time.Now().Before(deadline) {
		if err := pool.QueryRow(ctx, `select status from deliveries`).Scan(&status); err != nil {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if status != delivery.StatusSucceeded {
		t.Fatalf("delivery %s after the receiver acknowledged it", status)
	}
}

// seedDelivery creates a merchant with an endpoint at url subscribed to
// checkout.created, and one checkout: one delivery, its job available with
// the attempts schedule allows (the schedule of the process that will work it).
func seedDelivery(t *testing.T, pool *pgxpool.Pool, url string, schedule delivery.Schedule) (merchant *events.NewMerchant, endpointID string) {
	t.Helper()
	return seedDeliveries(t, pool, url, 1)
}

// seedDeliveries is seedDelivery with n checkouts, each in its own
// transaction: n deliveries, a job each.
func seedDeliveries(t *testing.T, pool *pgxpool.Pool, url string, n int) (merchant *events.NewMerchant, endpointID string) {
	t.Helper()
	ctx := context.Background()
	merchant = dbtest.Merchant(t, pool, "Seeded merchant")
	scope := events.Scope{MerchantID: merchant.ID}
	inserter, err := river.NewClient(riverpgxv5.New(pool), &river.Config{})
	if err != nil {
		t.Fatal(err)
	}
	service := events.NewService(events.NewPublisher(delivery.NewDispatcher(inserter, nil)))
	endpoints := delivery.NewEndpoints(delivery.NewGuard(false), dbtest.Keyring(t), 50)
	checked, err := endpoints.Check(ctx, delivery.EndpointParams{URL: url, EnabledEvents: []string{"checkout.created"}})
	if err != nil {
		t.Fatal(err)
	}
	err = pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		ep, err := endpoints.Create(ctx, tx, scope, checked)
		if err != nil {
			return err
		}
		endpointID = ep.ID
		return nil
	})
	for range n {
		if err != nil {
			break
		}
		err = pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
			_, err := service.CreateCheckout(ctx, tx, scope, events.CheckoutParams{Amount: "100", InvoiceCurrency: "usd"})
			return err
		})
	}
	if err != nil {
		t.Fatal(err)
	}
	return merchant, endpointID
}
