package events_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/hookline/hookline/events"
)

// batchAnswer is what one Create answered.
type batchAnswer struct {
	id  string
	err error
}

// createConcurrently creates n checkouts through b from n goroutines, so
// that they form several batches, and returns their answers.
func createConcurrently(t *testing.T, b *events.CheckoutBatcher, scope events.Scope, n int) []batchAnswer {
	t.Helper()
	answers := make([]batchAnswer, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			c, err := b.Create(context.Background(), scope, events.CheckoutParams{Amount: "100", InvoiceCurrency: "usd"})
			answers[i].err = err
			if c != nil {
				answers[i].id = c.ID
			}
		})
	}
	wg.Wait()
	return answers
}

// checkAnswers checks every answer against the database: each checkout
// answered as created exists with its checkout.created event, and nothing
// else exists (a failed answer's checkout must not have been written). It
// returns how many answers failed.
func checkAnswers(t *testing.T, pool *pgxpool.Pool, answers []batchAnswer) int {
	t.Helper()
	var created []string
	failed := 0
	for _, a := range answers {
		switch {
		case a.err == nil:
			created = append(created, a.id)
		case errors.Is(a.err, events.ErrCommitUnknown):
			t.Errorf("answer %v: the outcome should have been read back", a.err)
			failed++
		default:
			failed++
		}
	}
	var checkouts, createdEvents, found int
	err := pool.QueryRow(context.Background(), `select (select count(*) from checkouts),
		(select count(*) from events where type = 'checkout.created'),
		(select count(*) from checkouts where id = any($1))`, created).Scan(&checkouts, &createdEvents, &found)
	if err != nil {
		t.Fatal(err)
	}
	if found != len(created) {
		t.Errorf("%d checkouts answered as created, %d of them exist", len(created), found)
	}
	if checkouts != len(created) || createdEvents != len(created) {
		t.Errorf("%d checkouts and %d checkout.created events exist, want the %d answered as created: a failed answer's checkout was written",
			checkouts, createdEvents, len(created))
	}
	return failed
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// A batch whose backend is terminated just before its COMMIT never commits:
// its callers get the connection's error, and nothing of theirs exists; the
// other batches commit and are answered as created.
func TestBatcherConnectionLostBeforeCommit(t *testing.T) {
	t.Parallel()

	f := setup(t, nil)
	killer, err := pgxpool.New(context.Background(), f.pool.Config().ConnString())
	if err != nil {
		t.Fatal(err)
	}
	defer killer.Close()
	b := events.NewCheckoutBatcher(f.service, f.pool, quietLogger())
	var batches atomic.Int64
	var letThrough atomic.Bool
	events.SetBeforeCommit(b, func(ctx context.Context, tx pgx.Tx) {
		if batches.Add(1)%2 == 0 || letThrough.Load() {
			return // every other batch commits
		}
		var ended bool
		if err := killer.QueryRow(ctx, `select pg_terminate_backend($1, 5000)`, int32(tx.Conn().PgConn().PID())).Scan(&ended); err != nil || !ended {
			t.Errorf("terminate the batch's backend: %v (ended: %v)", err, ended)
		}
	})
	answers := createConcurrently(t, b, f.scope, 40)
	if failed := checkAnswers(t, f.pool, answers); failed == 0 {
		t.Error("no request failed: no batch lost its connection")
	}
	letThrough.Store(true)
	if _, err := b.Create(context.Background(), f.scope, events.CheckoutParams{Amount: "100", InvoiceCurrency: "usd"}); err != nil {
		t.Errorf("a later batch failed: %v", err)
	}
}

// cutConn is a client connection to Postgres that, once cut is set, is lost
// just after the server answers a COMMIT: the transaction committed, and the
// client cannot know it.
type cutConn struct {
	net.Conn
	cut  atomic.Bool
	cuts *atomic.Int64
	tail []byte
}

// commitComplete is the start of the server's CommandComplete of a COMMIT
// ('C', a length of 11, "COMMIT" and its NUL).
var commitComplete = []byte("C\x00\x00\x00\x0bCOMMIT\x00")

func (c *cutConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 && c.cut.Load() {
		seen := append(c.tail, p[:n]...)
		if bytes.Contains(seen, commitComplete) {
			c.cuts.Add(1)
			c.Conn.Close()
			return 0, io.ErrUnexpectedEOF
		}
		c.tail = append(c.tail[:0], seen[max(0, len(seen)-len(commitComplete)):]...)
	}
	return n, err
}

// A batch whose connection is lost after the server committed it but
// before the answer arrives is found committed: every caller gets its
// checkout, and each exists.
func TestBatcherConnectionLostAfterCommit(t *testing.T) {
	t.Parallel()

	f := setup(t, nil)
	var cuts atomic.Int64
	cfg := f.pool.Config().Copy()
	dial := cfg.ConnConfig.DialFunc
	cfg.ConnConfig.DialFunc = func(ctx context.Context, network, addr string) (net.Conn, error) {
		conn, err := dial(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return &cutConn{Conn: conn, cuts: &cuts}, nil
	}
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	b := events.NewCheckoutBatcher(f.service, pool, quietLogger())
	var batches atomic.Int64
	events.SetBeforeCommit(b, func(_ context.Context, tx pgx.Tx) {
		if batches.Add(1)%2 == 1 { // every other batch loses its connection
			tx.Conn().PgConn().Conn().(*cutConn).cut.Store(true)
		}
	})
	answers := createConcurrently(t, b, f.scope, 40)
	if failed := checkAnswers(t, f.pool, answers); failed > 0 {
		t.Errorf("%d requests failed, although every batch committed", failed)
	}
	if n := cuts.Load(); n != (batches.Load()+1)/2 {
		t.Errorf("%d connections lost after a commit in %d batches, want every other one", n, batches.Load())
	}
}

// A panic while writing a batch answers each of its callers with an error
// (the API's 500), writes nothing of theirs, and leaves the batcher working:
// the next batch commits.
func TestBatcherPanic(t *testing.T) {
	t.Parallel()

	f := setup(t, nil)
	b := events.NewCheckoutBatcher(f.service, f.pool, quietLogger())
	var panicking atomic.Bool
	panicking.Store(true)
	events.SetBeforeCommit(b, func(context.Context, pgx.Tx) {
		if panicking.Load() {
			panic("a bug in a batch")
		}
	})
	answers := createConcurrently(t, b, f.scope, 40)
	for _, a := range answers {
		var pgErr *pgconn.PgError
		if a.err == nil || errors.Is(a.err, events.ErrCommitUnknown) || errors.As(a.err, &pgErr) {
			t.Fatalf("a caller of a panicking batch got %v, want the panic's internal error", a.err)
		}
	}
	checkAnswers(t, f.pool, answers)

	panicking.Store(false)
	answers = createConcurrently(t, b, f.scope, 10)
	if failed := checkAnswers(t, f.pool, answers); failed > 0 {
		t.Errorf("after the panic, %d of 10 creates failed", failed)
	}
}
