// Package seed writes a production-shaped history with generate_series, in
// one transaction: the plan tests' (migrations/dbtest, 1 M deliveries) and
// make bench's history scenario's (10 M), one statement text for both, so
// that what the plan tests check is what the bench measures, at another size.
//
// The n-th event belongs to the large merchant unless n is a multiple of 5,
// whose events are spread over 1,000 others; each event has one delivery per
// endpoint of its merchant (five each); 1 delivery in 37 failed and 1 in 53
// is pending. Pending deliveries to each merchant's first endpoint, and those
// of every third event, are parked (waiting for their destination's
// release): about 5,000 destinations hold parked deliveries, the large
// merchant's first endpoint most. One endpoint in a hundred is failing, one
// in 250 disabled. The last 1,000 checkouts are open, and the last 100 of
// those past their expiry. Events are a second apart, ending now. River's
// table holds the jobs of a backlog: a completed job for each pending
// delivery and the newest tenth of them, and a waiting job for each pending
// delivery but 1 in 20 (which the reconciler should find), each job of one
// destination's deliveries, named in its args as the fan-out names it. The endpoint
// statistics' rollup (endpoint_stats) holds the attempts of the last 7 days
// by hour and of the last 24 hours by minute, as the fold would have
// written it (one shard).
package seed

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// History is the size and shape of a seeded history.
type History struct {
	// Deliveries is how many deliveries (a multiple of 10): events are a
	// fifth of them, checkouts a tenth.
	Deliveries int
	// Attempts is how many attempts each delivery has, the last one the
	// answer that settled it; 0 means one for each delivery not succeeded,
	// none for the others.
	Attempts int
	// Merchant is the large merchant's id; it is created unless it exists.
	// The others are acct_seed0001 to acct_seed1000.
	Merchant string
	// IDTime comes between each seeded id's prefix and its number, in
	// place of as many leading zeros: the time part of a ULID (ten
	// characters) makes the ids read as minted then, which is what
	// retention reads a row's age from. Empty, ids are prefix_ and 26
	// digits, which read as minted in 1970.
	IDTime string
	// Idle leaves a running hookline nothing to act on: no parked delivery
	// (its release would send them), no checkout past its expiry (its sweep
	// would publish events), and no River job.
	Idle bool
}

// ID returns the id of the n-th (from 1) seeded object with a prefix: ids
// sort in creation order, as ULIDs do.
func (h History) ID(prefix string, n int) string {
	return fmt.Sprintf("%s_%s%0*d", prefix, h.IDTime, 26-len(h.IDTime), n)
}

// statements write the history; each is run with History's named arguments.
var statements = []string{`
insert into merchants (id, name, webhook_secret)
	select case when m = 0 then @merchant::text else 'acct_seed' || lpad(m::text, 4, '0') end, 'Seed merchant ' || m, 'whsec_seed'
	from generate_series(0, 1000) m
	on conflict (id) do nothing`, `
insert into webhook_endpoints (id, merchant_id, livemode, type, url, status, disabled_reason, secret, failing_since, created_at)
	select 'we_seed' || lpad(m::text, 4, '0') || '_' || k,
		case when m = 0 then @merchant::text else 'acct_seed' || lpad(m::text, 4, '0') end, false, 'webhook',
		'https://example.com/' || m || '/' || k,
		case when (m * 5 + k) % 250 = 0 then 'disabled' else 'enabled' end,
		case when (m * 5 + k) % 250 = 0 then 'failing' end, 'whsec_seed',
		case when (m * 5 + k) % 100 = 1 or (m = 0 and k = 1) then now() - ((m * 5 + k) || ' minutes')::interval end,
		now() - interval '30 days'
	from generate_series(0, 1000) m, generate_series(1, 5) k`, `
insert into events (id, merchant_id, livemode, type, payload, created_at)
	select 'evt_' || @id_time::text || lpad(g::text, 26 - length(@id_time::text), '0'),
		case when g % 5 = 0 then 'acct_seed' || lpad((1 + g / 5 % 1000)::text, 4, '0') else @merchant::text end,
		false,
		case when g % 1000 = 0 then 'webhook_endpoint.disabled'
			else (array['checkout.created', 'checkout.paid', 'payment_attempt.created', 'payment_attempt.succeeded',
				'checkout.expired', 'payment_attempt.failed', 'payment_attempt.processing', 'checkout.failed'])[1 + g % 8] end,
		'{"object":"event"}'::bytea, now() - ((@events::int - g) || ' seconds')::interval
	from generate_series(1, @events::int) g`, `
insert into deliveries (id, merchant_id, livemode, event_id, event_type, endpoint_id, url, status, attempt_count, last_status_code,
	created_at, updated_at, next_attempt_at, parked)
	select 'dlv_' || @id_time::text || lpad(((e.n - 1) * 5 + k)::text, 26 - length(@id_time::text), '0'), e.merchant_id, false, e.id, e.type,
		'we_seed' || case when e.n % 5 = 0 then lpad((1 + e.n / 5 % 1000)::text, 4, '0') else '0000' end || '_' || k,
		'https://example.com/',
		case when ((e.n - 1) * 5 + k) % 37 = 0 then 'failed' when ((e.n - 1) * 5 + k) % 53 = 0 then 'pending' else 'succeeded' end,
		greatest(@attempts::int, 1), 200, e.created_at, e.created_at,
		case when ((e.n - 1) * 5 + k) % 53 = 0 and ((e.n - 1) * 5 + k) % 37 <> 0 then e.created_at end,
		((e.n - 1) * 5 + k) % 53 = 0 and ((e.n - 1) * 5 + k) % 37 <> 0 and (k = 1 or e.n % 3 = 0) and not @idle::bool
	from (select id, merchant_id, type, created_at, substr(id, 5 + length(@id_time::text))::bigint as n from events) e, generate_series(1, 5) k
	order by 1`, `
insert into delivery_attempts (delivery_id, attempt, started_at, duration_ms, status_code, error)
	select id, a, created_at, 120,
		case when status = 'succeeded' and a = @attempts::int then 200 else 500 end,
		case when status = 'succeeded' and a = @attempts::int then null else 'HTTP 500' end
	from deliveries, generate_series(1, case when @attempts::int = 0 then (status <> 'succeeded')::int else @attempts::int end) a`, `
with a as (
	select d.endpoint_id, s.span, date_bin(make_interval(secs => s.span), a.started_at, timestamptz '2000-01-01 00:00:00+00') as bucket,
		a.status_code, a.error,
		case when a.status_code is null then null when a.duration_ms <= 0 then 0
			else least(67, 1 + floor(4 * log(2, a.duration_ms::numeric))::int) end as lb
	from delivery_attempts a join deliveries d on d.id = a.delivery_id
		cross join (values (60, interval '24 hours'), (3600, interval '7 days')) s (span, keep)
	where d.endpoint_id is not null and a.started_at > now() - s.keep
), h as (
	select endpoint_id, span, bucket, lb, count(*)::int as n from a where lb is not null group by 1, 2, 3, 4
), g as (
	select endpoint_id, span, bucket,
		count(*) filter (where status_code between 200 and 299)::int as succeeded,
		count(*) filter (where status_code is not null and status_code not between 200 and 299)::int as http_error,
		count(*) filter (where status_code is null and error = 'timed out')::int as timeout,
		count(*) filter (where status_code is null and error is distinct from 'timed out')::int as connection_error
	from a group by 1, 2, 3
)
insert into endpoint_stats (endpoint_id, span_seconds, bucket, shard, succeeded, http_error, timeout, connection_error, latency)
	select g.endpoint_id, g.span, g.bucket, 0, g.succeeded, g.http_error, g.timeout, g.connection_error,
		array_agg(coalesce(h.n, 0) order by k)
	from g cross join generate_series(0, 67) k
		left join h on h.endpoint_id = g.endpoint_id and h.span = g.span and h.bucket = g.bucket and h.lb = k
	group by g.endpoint_id, g.span, g.bucket, g.succeeded, g.http_error, g.timeout, g.connection_error`, `
insert into checkouts (id, merchant_id, livemode, payin, status, payment_status, invoice_currency, amount,
	customer_details, metadata, expiry_at, created_at)
	select 'chk_' || @id_time::text || lpad(g::text, 26 - length(@id_time::text), '0'),
		case when g % 5 = 0 then 'acct_seed' || lpad((1 + g / 5 % 1000)::text, 4, '0') else @merchant::text end,
		false, 'pay_' || @id_time::text || lpad(g::text, 26 - length(@id_time::text), '0'),
		case when g > @checkouts::int - 1000 then 'open' else 'completed' end,
		case when g > @checkouts::int - 1000 then 'unpaid' else 'paid' end, 'usd', '6700', '{}', '{}',
		case when g > @checkouts::int - 100 and not @idle::bool then now() - (g || ' seconds')::interval else now() + interval '1 day' end,
		now() - ((@checkouts::int - g) || ' seconds')::interval
	from generate_series(1, @checkouts::int) g`, `
insert into river_job (state, attempt, attempted_at, finalized_at, args, kind, queue)
	select 'completed', 1, now(), now(),
		jsonb_build_object('delivery_ids', jsonb_agg(id order by id), 'counts', jsonb_agg(0), 'destination', dest), 'deliver', 'delivery'
	from (select id, coalesce(endpoint_id, 'url:' || md5(url)) as dest,
			(row_number() over (partition by coalesce(endpoint_id, 'url:' || md5(url)) order by id) - 1) / 5 as g from deliveries
		where (status = 'pending' or substr(id, 5 + length(@id_time::text))::bigint > @deliveries::bigint * 9 / 10)
			and not @idle::bool) d
	group by dest, g`, `
insert into river_job (state, args, kind, queue)
	select 'available', jsonb_build_object('delivery_ids', jsonb_agg(id order by id), 'counts', jsonb_agg(1), 'destination', dest),
		'deliver', 'delivery'
	from (select id, coalesce(endpoint_id, 'url:' || md5(url)) as dest,
			(row_number() over (partition by coalesce(endpoint_id, 'url:' || md5(url)) order by id) - 1) / 10 as g from deliveries
		where status = 'pending' and substr(id, 5 + length(@id_time::text))::bigint % 20 <> 0 and not @idle::bool) d
	group by dest, g`,
}

// Write writes the history in tx. The tables must hold no events or
// deliveries yet: the deliveries and attempts are made from the events and
// deliveries found there.
func (h History) Write(ctx context.Context, tx pgx.Tx) error {
	if h.Deliveries <= 0 || h.Deliveries%10 != 0 {
		return fmt.Errorf("seed: %d deliveries: want a positive multiple of 10", h.Deliveries)
	}
	args := pgx.NamedArgs{"merchant": h.Merchant, "deliveries": h.Deliveries, "events": h.Deliveries / 5, "checkouts": h.Deliveries / 10,
		"attempts": h.Attempts, "id_time": h.IDTime, "idle": h.Idle}
	for _, q := range statements {
		if _, err := tx.Exec(ctx, q, args); err != nil {
			return fmt.Errorf("seed: %w", err)
		}
	}
	return nil
}
