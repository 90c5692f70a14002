package dbtest

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/hookline/hookline/migrations"
)

// The seeded history's sizes: production's shape at a modest scale. One large
// merchant owns 80 % of it and SeedMerchants-1 others share the rest, so that
// a plan that reads another merchant's rows, or a whole history, shows.
const (
	SeedMerchants = 1001
	// SeedEndpoints: five per merchant, and one delivery of each event to
	// each endpoint of its merchant.
	SeedEndpoints  = SeedMerchants * 5
	SeedEvents     = 200_000
	SeedDeliveries = SeedEvents * 5
	SeedCheckouts  = 100_000
)

// The seeded objects tests name.
const (
	// SeedMerchant is the large merchant.
	SeedMerchant = "acct_seed0000"
	// SeedSmallMerchant is one of the others.
	SeedSmallMerchant = "acct_seed0007"
	// SeedBusyEndpoint is one of the large merchant's endpoints, which has a
	// fifth of its deliveries (160,000).
	SeedBusyEndpoint = "we_seed0000_1"
	// SeedRareType is an event type of one event in a thousand.
	SeedRareType = "webhook_endpoint.disabled"
)

// SeedID returns the id of the n-th (from 1) seeded object with a prefix:
// ids sort in creation order, as ULIDs do.
func SeedID(prefix string, n int) string {
	return fmt.Sprintf("%s_%026d", prefix, n)
}

// seedVersion changes whenever seedSQL does, so that an older seed is not
// reused.
const seedVersion = 4

// seedSQL writes the history in one transaction, with generate_series. The
// n-th event belongs to the large merchant unless n is a multiple of 5; each
// event has one delivery per endpoint of its merchant; 1 delivery in 37
// failed and 1 in 53 is pending; failed and pending deliveries have one
// attempt each. Pending deliveries to each merchant's first endpoint, and
// those of every third event, are parked (waiting for their destination's
// release): about 5,000 destinations hold parked deliveries, the busy
// endpoint 3,000. One endpoint in a hundred is failing or disabled. The
// last 1,000 checkouts are open, and the last 100 of those past their expiry.
// River's table holds delivery jobs (see below).
const seedSQL = `
insert into merchants (id, name, webhook_secret)
	select 'acct_seed' || lpad(m::text, 4, '0'), 'Seed merchant ' || m, 'whsec_seed' from generate_series(0, 1000) m;

insert into webhook_endpoints (id, merchant_id, livemode, type, url, status, disabled_reason, secret, failing_since, created_at)
	select 'we_seed' || lpad(m::text, 4, '0') || '_' || k, 'acct_seed' || lpad(m::text, 4, '0'), false, 'webhook',
		'https://example.com/' || m || '/' || k,
		case when (m * 5 + k) % 250 = 0 then 'disabled' else 'enabled' end,
		case when (m * 5 + k) % 250 = 0 then 'failing' end, 'whsec_seed',
		case when (m * 5 + k) % 100 = 1 or (m = 0 and k = 1) then now() - ((m * 5 + k) || ' minutes')::interval end,
		now() - interval '30 days'
	from generate_series(0, 1000) m, generate_series(1, 5) k;

insert into events (id, merchant_id, livemode, type, payload, created_at)
	select 'evt_' || lpad(g::text, 26, '0'),
		case when g % 5 = 0 then 'acct_seed' || lpad((1 + g / 5 % 1000)::text, 4, '0') else 'acct_seed0000' end,
		false,
		case when g % 1000 = 0 then 'webhook_endpoint.disabled'
			else (array['checkout.created', 'checkout.paid', 'payment_attempt.created', 'payment_attempt.succeeded',
				'checkout.expired', 'payment_attempt.failed', 'payment_attempt.processing', 'checkout.failed'])[1 + g % 8] end,
		'{"object":"event"}'::bytea, now() - ((200000 - g) || ' seconds')::interval
	from generate_series(1, 200000) g;

insert into deliveries (id, merchant_id, livemode, event_id, endpoint_id, url, status, attempt_count, last_status_code,
	next_attempt_at, created_at, updated_at, parked)
	select 'dlv_' || lpad(((e.n - 1) * 5 + k)::text, 26, '0'), e.merchant_id, false, e.id,
		'we_seed' || substr(e.merchant_id, 10) || '_' || k, 'https://example.com/',
		case when ((e.n - 1) * 5 + k) % 37 = 0 then 'failed' when ((e.n - 1) * 5 + k) % 53 = 0 then 'pending' else 'succeeded' end,
		1, 200,
		case when ((e.n - 1) * 5 + k) % 37 <> 0 and ((e.n - 1) * 5 + k) % 53 = 0 then e.created_at + interval '5 seconds' end,
		e.created_at, e.created_at,
		((e.n - 1) * 5 + k) % 53 = 0 and ((e.n - 1) * 5 + k) % 37 <> 0 and (k = 1 or e.n % 3 = 0)
	from (select id, merchant_id, created_at, substr(id, 5)::int as n from events) e, generate_series(1, 5) k
	order by 1;

-- River's delivery jobs as a backlog leaves them: the completed jobs of the
-- first attempts of every pending delivery and of the 100,000 newest
-- deliveries, 5 to a job; and a job waiting for the next attempt of every
-- pending delivery, 10 to a job, but for 1 in 20 of them, which no job will
-- take (what the reconciler looks for).
insert into river_job (state, attempt, attempted_at, finalized_at, args, kind, queue)
	select 'completed', 1, now(), now(),
		jsonb_build_object('delivery_ids', jsonb_agg(id order by id), 'counts', jsonb_agg(0)), 'deliver', 'delivery'
	from (select id, (row_number() over (order by id) - 1) / 5 as g from deliveries
		where status = 'pending' or id > 'dlv_' || lpad('900000', 26, '0')) d
	group by g;
insert into river_job (state, args, kind, queue)
	select 'available', jsonb_build_object('delivery_ids', jsonb_agg(id order by id), 'counts', jsonb_agg(1)), 'deliver', 'delivery'
	from (select id, (row_number() over (order by id) - 1) / 10 as g from deliveries
		where status = 'pending' and substr(id, 5)::int % 20 <> 0) d
	group by g;

insert into delivery_attempts (delivery_id, attempt, started_at, duration_ms, status_code, error)
	select id, 1, created_at, 120, 500, 'HTTP 500' from deliveries where status <> 'succeeded';

insert into checkouts (id, merchant_id, livemode, payin, status, payment_status, invoice_currency, amount,
	customer_details, metadata, expiry_at, created_at)
	select 'chk_' || lpad(g::text, 26, '0'),
		case when g % 5 = 0 then 'acct_seed' || lpad((1 + g / 5 % 1000)::text, 4, '0') else 'acct_seed0000' end,
		false, 'pay_' || lpad(g::text, 26, '0'), case when g > 99000 then 'open' else 'completed' end,
		case when g > 99000 then 'unpaid' else 'paid' end, 'usd', '6700', '{}', '{}',
		case when g > 99900 then now() - (g || ' seconds')::interval else now() + interval '1 day' end,
		now() - ((100000 - g) || ' seconds')::interval
	from generate_series(1, 100000) g;
`

// Seeded returns a pool on a schema that holds a production-sized history
// (the Seed sizes above), for tests that check how statements scale. The
// schema is built once per database, for a given seed and set of
// migrations, and kept: test binaries that run at the same time wait for one
// another's seed (an advisory lock) and reuse it, as do later runs. It is
// read-only: tests must not write to it.
func Seeded(tb testing.TB) *pgxpool.Pool {
	tb.Helper()
	ctx := context.Background()
	schema := fmt.Sprintf("seed_v%d_%s", seedVersion, migrations.Digest()[:12])
	admin, err := pgx.Connect(ctx, URL(tb))
	if err != nil {
		tb.Fatalf("connect: %v", err)
	}
	// Closing the session releases the lock.
	defer admin.Close(ctx)
	if _, err := admin.Exec(ctx, `select pg_advisory_lock(hashtext('hookline seed'))`); err != nil {
		tb.Fatalf("lock seed: %v", err)
	}

	var done bool
	if err := admin.QueryRow(ctx, `select to_regclass($1) is not null`, schema+".seed_done").Scan(&done); err != nil {
		tb.Fatalf("look for seed: %v", err)
	}
	url := URL(tb)
	sep := "?"
	if strings.Contains(url, "?") {
		sep = "&"
	}
	url += sep + "search_path=" + schema
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		tb.Fatalf("parse url: %v", err)
	}
	cfg.MaxConns = 4
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		tb.Fatalf("connect: %v", err)
	}
	tb.Cleanup(pool.Close)
	if done {
		return pool
	}

	// Another seed (other migrations, a half-built one of a process that
	// died) is of no use now: only this lock's holder builds.
	rows, err := admin.Query(ctx, `select nspname from pg_namespace where nspname like 'seed\_v%'`)
	if err != nil {
		tb.Fatalf("list seeds: %v", err)
	}
	stale, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		tb.Fatalf("list seeds: %v", err)
	}
	for _, s := range stale {
		if _, err := admin.Exec(ctx, "drop schema "+pgx.Identifier{s}.Sanitize()+" cascade"); err != nil {
			tb.Fatalf("drop stale seed: %v", err)
		}
	}
	start := time.Now()
	if _, err := admin.Exec(ctx, "create schema "+schema); err != nil {
		tb.Fatalf("create seed schema: %v", err)
	}
	if err := migrations.Up(ctx, pool); err != nil {
		tb.Fatalf("migrate seed schema: %v", err)
	}
	err = pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "set local synchronous_commit = off"); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, seedSQL)
		return err
	})
	if err != nil {
		tb.Fatalf("seed: %v", err)
	}
	// Statistics and the visibility map, as autovacuum leaves a table that
	// has been this size for a while.
	if _, err := pool.Exec(ctx, "vacuum analyze merchants, webhook_endpoints, events, deliveries, delivery_attempts, checkouts, river_job"); err != nil {
		tb.Fatalf("vacuum seed: %v", err)
	}
	if _, err := pool.Exec(ctx, "create table seed_done (version int not null)"); err != nil {
		tb.Fatalf("mark seed: %v", err)
	}
	tb.Logf("seeded %s in %v: %d events, %d deliveries, %d checkouts, %d endpoints, %d merchants", schema,
		time.Since(start).Round(time.Millisecond), SeedEvents, SeedDeliveries, SeedCheckouts, SeedEndpoints, SeedMerchants)
	return pool
}
