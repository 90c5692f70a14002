package events_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"

	"github.com/hookline/hookline/events"
	"github.com/hookline/hookline/migrations/dbtest"
	"github.com/hookline/hookline/schema/schematest"
)

func TestCanTransition(t *testing.T) {
	t.Parallel()

	statuses := []string{events.AttemptCreated, events.AttemptProcessing, events.AttemptSucceeded, events.AttemptFailed}
	allowed := map[[2]string]bool{
		{events.AttemptCreated, events.AttemptProcessing}:   true,
		{events.AttemptCreated, events.AttemptSucceeded}:    true,
		{events.AttemptCreated, events.AttemptFailed}:       true,
		{events.AttemptProcessing, events.AttemptSucceeded}: true,
		{events.AttemptProcessing, events.AttemptFailed}:    true,
	}
	// Every pair, so that a transition added or removed by mistake shows here.
	for _, from := range statuses {
		for _, to := range statuses {
			if got, want := events.CanTransition(from, to), allowed[[2]string{from, to}]; got != want {
				t.Errorf("CanTransition(%s, %s) = %v, want %v", from, to, got, want)
			}
		}
	}
}

func TestFormatMajor(t *testing.T) {
	t.Parallel()

	tests := []struct {
		name     string
		minor    string
		currency string
		want     string
	}{
		{"seed 000: sol has 9 decimals", "860000000", "sol", "0.86"},
		{"whole dollars drop the decimals", "6700", "usd", "67"},
		{"cents kept", "6705", "usd", "67.05"},
		{"zero-decimal currency", "500", "jpy", "500"},
		{"three decimals", "1005", "kwd", "1.005"},
		{"less than one minor unit of a major", "1", "eth", "0.000000000000000001"},
		{"huge ether amount", "123456789000000000000000", "eth", "123456.789"},
		{"zero", "0", "usd", "0"},
		{"satoshis", "150000000", "btc", "1.5"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()

			decimals, ok := events.CurrencyDecimals(tt.currency)
			if !ok {
				t.Fatalf("currency %s unknown", tt.currency)
			}
			if got := events.FormatMajor(tt.minor, decimals); got != tt.want {
				t.Errorf("FormatMajor(%s, %d) = %s, want %s", tt.minor, decimals, got, tt.want)
			}
		})
	}
}

func TestCatalogDefaults(t *testing.T) {
	t.Parallel()

	// The seeds' defaults: only checkout.created is off.
	for _, e := range events.Catalog {
		if want := e.Type != events.CheckoutCreated; e.DefaultEnabled != want {
			t.Errorf("%s default_enabled = %v, want %v", e.Type, e.DefaultEnabled, want)
		}
	}
	if n := len(events.DefaultEnabledTypes()); n != len(events.Catalog)-1 {
		t.Errorf("DefaultEnabledTypes has %d types, want %d", n, len(events.Catalog)-1)
	}
}

type fixture struct {
	pool    *pgxpool.Pool
	scope   events.Scope
	service *events.Service
}

func setup(t *testing.T, fanout events.Fanout) *fixture {
	t.Helper()
	pool := dbtest.NewPool(t)
	m := dbtest.Merchant(t, pool, "Test merchant")
	return &fixture{pool: pool, scope: events.Scope{MerchantID: m.ID}, service: events.NewService(events.NewPublisher(fanout))}
}

// count returns the rows of table that db (the pool, or a transaction) sees.
func count(t *testing.T, db events.DB, table string) int {
	t.Helper()
	var n int
	if err := db.QueryRow(context.Background(), "select count(*) from "+table).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestRolledBackChangeLeavesNoEvent(t *testing.T) {
	t.Parallel()

	ctx := context.Background()
	f := setup(t, nil)

	tx, err := f.pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck // rolled back explicitly below; this only frees the connection on failure
	if _, err := f.service.CreateCheckout(ctx, tx, f.scope, events.CheckoutParams{Amount: "100", InvoiceCurrency: "usd"}); err != nil {
		t.Fatal(err)
	}
	if n := count(t, tx, "events"); n != 1 {
		t.Fatalf("inside the transaction: %d events, want 1", n)
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	for _, table := range []string{"checkouts", "events"} {
		if n := count(t, f.pool, table); n != 0 {
			t.Errorf("after rollback: %d rows in %s, want 0", n, table)
		}
	}
}

// The workers' connections commit asynchronously; a transaction that writes
// an event must commit durably all the same, and leave the session as it was.
func TestEventsCommitDurably(t *testing.T) {
	t.Parallel()

	ctx := context.Background()
	f := setup(t, nil)
	conn, err := f.pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	setting := func(db events.DB) string {
		t.Helper()
		var v string
		if err := db.QueryRow(ctx, "select current_setting('synchronous_commit')").Scan(&v); err != nil {
			t.Fatal(err)
		}
		return v
	}
	if _, err := conn.Exec(ctx, "set synchronous_commit = off"); err != nil {
		t.Fatal(err)
	}
	if err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		if _, err := f.service.CreateCheckout(ctx, tx, f.scope, events.CheckoutParams{Amount: "100", InvoiceCurrency: "usd"}); err != nil {
			return err
		}
		if v := setting(tx); v != "on" {
			t.Errorf("synchronous_commit = %s in the transaction that wrote an event, want on", v)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if v := setting(conn); v != "off" {
		t.Errorf("synchronous_commit = %s after the transaction, want the session's off", v)
	}
}

type failingFanout struct{}

func (failingFanout) FanOut(context.Context, pgx.Tx, []*events.Event) error {
	return errors.New("fan-out refused")
}

func TestFailedFanoutFailsTheChange(t *testing.T) {
	t.Parallel()

	ctx := context.Background()
	f := setup(t, failingFanout{})

	err := pgx.BeginFunc(ctx, f.pool, func(tx pgx.Tx) error {
		_, err := f.service.CreateCheckout(ctx, tx, f.scope, events.CheckoutParams{Amount: "100", InvoiceCurrency: "usd"})
		return err
	})
	if err == nil {
		t.Fatal("CreateCheckout succeeded although its deliveries could not be enqueued")
	}
	for _, table := range []string{"checkouts", "events"} {
		if n := count(t, f.pool, table); n != 0 {
			t.Errorf("%d rows in %s, want 0: a change must not outlive its event's deliveries", n, table)
		}
	}
}

func TestCheckoutExpiresByItself(t *testing.T) {
	t.Parallel()

	ctx := context.Background()
	f := setup(t, nil)

	workers := river.NewWorkers()
	river.AddWorker(workers, events.NewExpireCheckoutsWorker(f.pool, f.service))
	client, err := river.NewClient(riverpgxv5.New(f.pool), &river.Config{
		Queues:            map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: 2}},
		Workers:           workers,
		FetchPollInterval: 50 * time.Millisecond,
		FetchCooldown:     10 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	done, cancel := client.Subscribe(river.EventKindJobCompleted, river.EventKindJobFailed, river.EventKindJobCancelled)
	defer cancel()
	if err := client.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = client.Stop(context.Background()) })

	create := func(expiry time.Time) *events.Checkout {
		t.Helper()
		var c *events.Checkout
		if err := pgx.BeginFunc(ctx, f.pool, func(tx pgx.Tx) error {
			c, err = f.service.CreateCheckout(ctx, tx, f.scope, events.CheckoutParams{Amount: "100", InvoiceCurrency: "usd", ExpiryAt: expiry})
			return err
		}); err != nil {
			t.Fatal(err)
		}
		return c
	}
	// 150 due checkouts span two of the sweep's batches; one not yet due
	// stays open.
	var due []*events.Checkout
	for range 150 {
		due = append(due, create(time.Now().Add(time.Second)))
	}
	later := create(time.Now().Add(time.Hour))
	time.Sleep(time.Until(time.Unix(due[len(due)-1].ExpiryAt+1, 0)))

	sweep := func() {
		t.Helper()
		if _, err := client.Insert(ctx, events.ExpireCheckoutsArgs{}, nil); err != nil {
			t.Fatal(err)
		}
		select {
		case e := <-done:
			if e.Kind != river.EventKindJobCompleted {
				t.Fatalf("the sweep ended as %s: %v", e.Kind, e.Job.Errors)
			}
		case <-time.After(30 * time.Second):
			t.Fatal("the sweep did not finish within 30s")
		}
	}
	sweep()
	sweep() // a second sweep finds nothing more to expire
	for _, c := range append(due, later) {
		got, err := events.GetCheckout(ctx, f.pool, f.scope, c.ID)
		if err != nil {
			t.Fatal(err)
		}
		want := events.StatusExpired
		if c == later {
			want = events.StatusOpen
		}
		if got.Status != want {
			t.Fatalf("checkout expiring at %d: status = %s, want %s", c.ExpiryAt, got.Status, want)
		}
	}
	list, err := events.ListEvents(ctx, f.pool, f.scope, events.CheckoutExpired, events.Page{Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	if n := count(t, f.pool, "events where type = 'checkout.expired'"); n != len(due) {
		t.Fatalf("%d checkout.expired events, want %d: one per expired checkout", n, len(due))
	}
	schematest.Event(t, "checkout.expired", list.Data[0].Payload)
	for _, evt := range list.Data {
		var e struct{ Data events.Checkout }
		if err := json.Unmarshal(evt.Payload, &e); err != nil {
			t.Fatal(err)
		}
		if e.Data.Status != events.StatusExpired || e.Data.ID == later.ID {
			t.Fatalf("checkout.expired of %s with status %s", e.Data.ID, e.Data.Status)
		}
	}
}

// TestTestWebhookSecretOfAnEarlierMerchant starts from a merchant as the
// per-mode migration leaves one created before it (its secret is the live
// one, the test one not yet made): the first reads make one test secret, the
// same for every concurrent reader, and the live secret stays.
func TestTestWebhookSecretOfAnEarlierMerchant(t *testing.T) {
	t.Parallel()

	ctx := context.Background()
	pool := dbtest.NewPool(t)
	m := dbtest.Merchant(t, pool, "Earlier merchant")
	if _, err := pool.Exec(ctx, `update merchants set test_webhook_secret = null where id = $1`, m.ID); err != nil {
		t.Fatal(err)
	}
	test := events.Scope{MerchantID: m.ID}
	got := make([]string, 8)
	var wg sync.WaitGroup
	for i := range got {
		wg.Go(func() {
			a, err := events.GetMerchant(ctx, pool, dbtest.Keyring(t), test)
			if err != nil {
				t.Error(err)
				return
			}
			got[i] = a.WebhookSecret
		})
	}
	wg.Wait()
	for _, s := range got {
		if s != got[0] || !strings.HasPrefix(s, "whsec_") || s == m.WebhookSecret {
			t.Fatalf("test secrets read %q: want one whsec_ secret, not the live one", got)
		}
	}
	live, err := events.GetMerchant(ctx, pool, dbtest.Keyring(t), events.Scope{MerchantID: m.ID, Livemode: true})
	if err != nil {
		t.Fatal(err)
	}
	if live.WebhookSecret != m.WebhookSecret {
		t.Fatal("the live secret changed")
	}
}
