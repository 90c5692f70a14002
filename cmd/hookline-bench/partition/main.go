// Command partition measures issue 15's last question: the history tables
// (events, deliveries, delivery_attempts) partitioned by day on their ids,
// retention dropping whole partitions, against today's plain tables pruned by
// batched deletes.
//
// Two databases hold the same seeded history, A in today's layout (all
// migrations) and B partitioned (partitioned.sql, one partition a day of each
// table). `setup` makes one of them; `run` then measures both, interleaved
// A, B, A, B, … so that the load of a shared machine falls on both alike:
//
//   - insert: the publishing transaction's statements as events.Publisher and
//     delivery.Dispatcher issue them (10 events and their 50 deliveries per
//     transaction, synchronous commit), from 8 connections;
//   - settle: the drain of those deliveries as delivery.Worker does it, a job
//     of 50 at a time (loadTargets, then recordAttempts with every attempt
//     acknowledged, asynchronous commit), from 12 connections;
//   - retention: the oldest day pruned, in A by delivery.PruneWorker's batched
//     deletes (then the VACUUM those deletes leave to autovacuum, timed
//     apart), in B by detaching and dropping that day's partitions.
//
// River's tables, the checkout rows and the HTTP sends are left out: neither
// layout changes them. The statements are copies of hookline's (the
// constants are unexported); they must be kept in step when these change.
//
//	go build -o /tmp/partition ./cmd/hookline-bench/partition
//	/tmp/partition setup -db "$A" -layout plain
//	/tmp/partition setup -db "$B" -layout partitioned
//	/tmp/partition run -a "$A" -b "$B" -rounds 3
package main

import (
	"context"
	_ "embed"
	"errors"
	"flag"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/hookline/hookline/delivery"
	"github.com/hookline/hookline/events"
	"github.com/hookline/hookline/migrations"
)

//go:embed partitioned.sql
var partitionedSchema string

// merchant is the seeded merchant whose events the runs publish.
const merchant = "acct_part"

// tables are the partitioned tables with the prefix of their partition key.
var tables = []struct{ name, prefix string }{
	{"events", events.PrefixEvent}, {"deliveries", events.PrefixDelivery}, {"delivery_attempts", events.PrefixDelivery},
}

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: partition setup|run [flags]")
		os.Exit(2)
	}
	ctx := context.Background()
	var err error
	switch os.Args[1] {
	case "setup":
		fs := flag.NewFlagSet("setup", flag.ExitOnError)
		db := fs.String("db", "", "the database's URL")
		layout := fs.String("layout", "plain", "plain (today's tables) or partitioned")
		deliveries := fs.Int("deliveries", 10_000_000, "seeded deliveries (2 attempts each, an event per 5)")
		days := fs.Int("days", 20, "days of history the seed spans, ending at today's midnight (UTC)")
		width := fs.Int("partition-days", 1, "days each partition spans (partitioned layout)")
		_ = fs.Parse(os.Args[2:])
		err = setup(ctx, *db, *layout, *deliveries, *days, *width)
	case "run":
		fs := flag.NewFlagSet("run", flag.ExitOnError)
		a := fs.String("a", "", "the URL of the plain database")
		b := fs.String("b", "", "the URL of the partitioned database")
		rounds := fs.Int("rounds", 3, "rounds, each measuring A then B")
		n := fs.Int("n", 100_000, "deliveries inserted, then settled, per run")
		what := fs.String("measure", "insert,retention", "insert (insert then settle), retention")
		load := fs.String("load", "any", "the settle's load statements, each measured in every round: any (hookline's, where d.id = any($1)), join (ids joined from unnest($1), which prunes partitions id by id)")
		bPlans := fs.String("b-plans", "", "plan_cache_mode of B's connections in place of hookline's force_generic_plan (such as force_custom_plan)")
		_ = fs.Parse(os.Args[2:])
		err = run(ctx, *a, *b, *rounds, *n, strings.Split(*what, ","), strings.Split(*load, ","), *bPlans)
	default:
		err = fmt.Errorf("unknown command %q", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "partition:", err)
		os.Exit(1)
	}
}

// connect opens a pool with hookline's planner settings and extra.
func connect(ctx context.Context, url string, size int32, extra map[string]string) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, err
	}
	cfg.MaxConns = size
	for k, v := range delivery.PlannerSettings() {
		if _, set := cfg.ConnConfig.RuntimeParams[k]; !set {
			cfg.ConnConfig.RuntimeParams[k] = v
		}
	}
	for k, v := range extra {
		cfg.ConnConfig.RuntimeParams[k] = v
	}
	return pgxpool.NewWithConfig(ctx, cfg)
}

// day returns the midnight (UTC) d days from today's.
func day(d int) time.Time {
	return time.Now().UTC().Truncate(24*time.Hour).AddDate(0, 0, d)
}

// setup migrates the database, partitions it if asked, and seeds it: days of
// history before today, then a pending delivery in 53 of the last day.
func setup(ctx context.Context, url, layout string, deliveries, days, width int) error {
	pool, err := connect(ctx, url, 4, nil)
	if err != nil {
		return err
	}
	defer pool.Close()
	if err := migrations.Up(ctx, pool); err != nil {
		return err
	}
	if layout == "partitioned" {
		if _, err := pool.Exec(ctx, partitionedSchema); err != nil {
			return fmt.Errorf("partition: %w", err)
		}
		for d := -days; d <= 2; d += width {
			if err := createPartitions(ctx, pool, day(d), width); err != nil {
				return err
			}
		}
	} else if layout != "plain" {
		return fmt.Errorf("unknown layout %q", layout)
	}
	start := time.Now()
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return err
	}
	defer conn.Release()
	args := pgx.NamedArgs{"merchant": merchant, "events": deliveries / 5, "start_ms": day(-days).UnixMilli(),
		"span_ms": int64(days) * 86_400_000, "last_day": events.FirstIDAt(events.PrefixEvent, day(-1))}
	for _, q := range seed {
		if _, err := conn.Exec(ctx, q, args); err != nil {
			return fmt.Errorf("seed: %w", err)
		}
	}
	fmt.Printf("%s: seeded %d deliveries over %d days in %s\n", layout, deliveries, days, time.Since(start).Round(time.Second))
	// Old history is vacuumed (all-visible, hint bits set) when retention
	// reaches it; autovacuum stays off so that no run pays for another's rows:
	// the VACUUM that the batched deletes need is timed after each of them.
	start = time.Now()
	for _, t := range tables {
		if _, err := conn.Exec(ctx, "vacuum (analyze) "+t.name); err != nil {
			return err
		}
	}
	fmt.Printf("%s: vacuumed and analyzed in %s\n", layout, time.Since(start).Round(time.Second))
	if _, err := conn.Exec(ctx, `do $$ declare r record; begin
		for r in select c.oid::regclass as t from pg_class c where c.relkind = 'r' and (c.relname in ('events', 'deliveries', 'delivery_attempts')
			or c.relispartition) loop execute format('alter table %s set (autovacuum_enabled = false)', r.t); end loop; end $$`); err != nil {
		return err
	}
	return printSizes(ctx, pool, layout)
}

// createPartitions makes the partitions of the days that start at t, as the
// maintenance job would, ahead of them: ranges of ids minted those days.
func createPartitions(ctx context.Context, pool *pgxpool.Pool, t time.Time, days int) error {
	for _, tb := range tables {
		with := ""
		if tb.name == "deliveries" {
			with = " with (fillfactor = 70)" // as migration 005 sets for the plain table
		}
		q := fmt.Sprintf(`create table if not exists %s partition of %s for values from ('%s') to ('%s')%s`,
			partition(tb.name, t), tb.name, events.FirstIDAt(tb.prefix, t), events.FirstIDAt(tb.prefix, t.AddDate(0, 0, days)), with)
		if _, err := pool.Exec(ctx, q); err != nil {
			return fmt.Errorf("create partition: %w", err)
		}
	}
	return nil
}

// partition names a table's partition starting at t.
func partition(table string, t time.Time) string {
	return table + "_" + t.Format("20060102")
}

// seed writes the history: ids are prefix, the ULID time of their event
// (spread evenly over the span) and a number, so that they sort by time, as
// ULIDs do, and retention reads the same age from them. The large merchant
// has 4 events in 5, the rest go to 1,000 others; 1 delivery in 37 failed,
// and 1 in 53 of the last day is pending; each delivery has 2 attempts.
var seed = []string{`
create function pg_temp.ulid_time(ms bigint) returns text language sql immutable as $$
	select string_agg(substr('0123456789ABCDEFGHJKMNPQRSTVWXYZ', ((ms >> (45 - 5 * i)) & 31)::int + 1, 1), '' order by i)
	from generate_series(0, 9) i $$`, `
insert into merchants (id, name, webhook_secret) values (@merchant, 'Partition bench', 'whsec_bench') on conflict do nothing`, `
insert into webhook_endpoints (id, merchant_id, livemode, type, url, status, secret, created_at)
	select 'we_part_' || k, @merchant, false, 'webhook', 'https://example.com/' || k, 'enabled', 'whsec_bench', now()
	from generate_series(1, 5) k on conflict do nothing`, `
insert into events (id, merchant_id, livemode, type, payload, created_at)
	select 'evt_' || pg_temp.ulid_time(t) || lpad(g::text, 16, '0'),
		case when g % 5 = 0 then 'acct_o' || lpad((g / 5 % 1000)::text, 4, '0') else @merchant::text end, false,
		(array['checkout.created', 'checkout.paid', 'payment_attempt.created', 'payment_attempt.succeeded'])[1 + g % 4],
		convert_to(rpad('{"object":"event","data":', 500, 'x') || '}', 'UTF8'), to_timestamp(t / 1000.0)
	from generate_series(1, @events::bigint) g, lateral (select @start_ms::bigint + (g - 1) * @span_ms::bigint / @events::bigint as t) s`, `
insert into deliveries (id, merchant_id, livemode, event_id, endpoint_id, url, status, attempt_count, last_status_code,
	next_attempt_at, created_at, updated_at)
	select 'dlv_' || substr(e.id, 5, 10) || lpad(n::text, 16, '0'), e.merchant_id, false, e.id,
		case when e.merchant_id = @merchant::text then 'we_part_' || k else 'we_o' || substr(e.merchant_id, 7) || '_' || k end,
		'https://example.com/', s.status, 2, case when s.status = 'succeeded' then 200 else 500 end,
		case when s.status = 'pending' then e.created_at end, e.created_at, e.created_at
	from (select id, merchant_id, created_at, substr(id, 15)::bigint as g from events) e, generate_series(1, 5) k,
		lateral (select (e.g - 1) * 5 + k as n) n,
		lateral (select case when n % 37 = 0 then 'failed' when n % 53 = 0 and e.id >= @last_day then 'pending' else 'succeeded' end as status) s
	order by 1`, `
insert into delivery_attempts (delivery_id, attempt, started_at, duration_ms, status_code, error)
	select id, a, created_at, 120, case when a = 2 and status = 'succeeded' then 200 else 500 end,
		case when a = 2 and status = 'succeeded' then null else 'HTTP 500' end
	from deliveries, generate_series(1, 2) a order by 1, 2`,
}

// printSizes prints the rows and total size of each history table.
func printSizes(ctx context.Context, pool *pgxpool.Pool, label string) error {
	rows, err := pool.Query(ctx, leaves+`select t, count(*), sum(c.reltuples)::bigint, pg_size_pretty(sum(pg_total_relation_size(relid)))
		from leaves l join pg_class c on c.oid = l.relid group by t order by t`)
	if err != nil {
		return err
	}
	var t, size string
	var parts, n int64
	_, err = pgx.ForEachRow(rows, []any{&t, &parts, &n, &size}, func() error {
		fmt.Printf("%s: %s: %d rows (estimate), %s in %d relation(s)\n", label, t, n, size, parts)
		return nil
	})
	return err
}

// run measures A and B interleaved.
func run(ctx context.Context, a, b string, rounds, n int, what, loads []string, bPlans string) error {
	dbs := []struct{ label, url string }{{"A plain", a}, {"B partitioned", b}}
	if bPlans != "" {
		// A runtime parameter in the URL, which connect's settings do not
		// override.
		dbs[1].url += "&plan_cache_mode=" + bPlans
		dbs[1].label += " (" + bPlans + ")"
	}
	results := map[string][]float64{}
	note := func(key string, v float64) { results[key] = append(results[key], v) }
	if slices.Contains(what, "insert") {
		for r := range rounds {
			for _, load := range loads {
				stmt, ok := map[string]string{"any": loadTargets, "join": loadTargetsJoin}[load]
				if !ok {
					return fmt.Errorf("unknown load statement %q", load)
				}
				for _, db := range dbs {
					ins, set, err := insertThenSettle(ctx, db.url, n, stmt)
					if err != nil {
						return fmt.Errorf("%s: %w", db.label, err)
					}
					fmt.Printf("round %d %s (load %s): insert %.0f deliveries/s, settle %.0f deliveries/s\n", r+1, db.label, load, ins, set)
					note(db.label+" insert deliveries/s", ins)
					note(db.label+" settle (load "+load+") deliveries/s", set)
				}
			}
		}
	}
	if slices.Contains(what, "retention") {
		// Retention rounds reach the oldest remaining day first; the dead rows
		// of the settle runs are vacuumed away before, untimed.
		for _, db := range dbs {
			if err := vacuum(ctx, db.url); err != nil {
				return err
			}
		}
		for r := range rounds {
			for i, db := range dbs {
				res, err := retention(ctx, db.url, i == 1)
				if err != nil {
					return fmt.Errorf("%s: %w", db.label, err)
				}
				fmt.Printf("round %d %s: %s\n", r+1, db.label, res)
				note(db.label+" retention s", res.seconds)
				note(db.label+" retention WAL MB", float64(res.wal)/1e6)
				note(db.label+" retention dead tuples", float64(res.dead))
				note(db.label+" vacuum after s", res.vacuumSeconds)
				note(db.label+" vacuum WAL MB", float64(res.vacuumWAL)/1e6)
			}
		}
	}
	keys := make([]string, 0, len(results))
	for k := range results {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		v := slices.Sorted(slices.Values(results[k]))
		fmt.Printf("summary %s: median %.2f (min %.2f, max %.2f, %d runs)\n", k, v[len(v)/2], v[0], v[len(v)-1], len(v))
	}
	return nil
}

// publishEvents is events.Publisher's insert; publishDeliveries the
// Dispatcher's.
const (
	publishEvents = `insert into events (id, merchant_id, livemode, type, payload, created_at)
		select * from unnest($1::text[], $2::text[], $3::bool[], $4::text[], $5::bytea[], $6::timestamptz[])`
	publishDeliveries = `insert into deliveries (id, merchant_id, livemode, event_id, endpoint_id, url, status,
		next_attempt_at, created_at, updated_at, parked)
		select d.id, d.merchant_id, d.livemode, d.event_id, nullif(d.endpoint_id, ''), d.url, 'pending', d.created_at, d.created_at, d.created_at, d.parked
		from unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bool[], $6::text[], $7::timestamptz[], $8::bool[])
			as d (id, endpoint_id, url, merchant_id, livemode, event_id, created_at, parked)`
)

// loadTargets and recordAttempts are delivery.Worker's.
const (
	loadTargets = `select d.id, d.status, d.attempt_count, d.schedule_base, d.parked, coalesce(w.url, d.url),
		coalesce(d.endpoint_id, 'url:' || md5(d.url)), coalesce(s.paused_until > now(), false), e.id, e.created_at, e.payload,
		d.merchant_id, d.livemode, w.id, coalesce(w.type, 'webhook'), coalesce(w.display_name, m.name), w.status,
		coalesce(w.failing_since < now() - $2::interval, false), w.deleted_at is not null, coalesce(w.signature_scheme, 'hmac'), w.rate_limit, w.headers, w.header_authorization, w.secret, w.previous_secrets, w.previous_secrets_expire_at,
		case when d.livemode then m.webhook_secret else m.test_webhook_secret end
		from deliveries d
		join events e on e.id = d.event_id
		join merchants m on m.id = d.merchant_id
		left join webhook_endpoints w on w.id = d.endpoint_id
		left join delivery_destinations s on s.key = coalesce(d.endpoint_id, 'url:' || md5(d.url))
		where d.id = any($1)`
	// loadTargetsJoin is loadTargets with its ids joined from unnest: an
	// array parameter (= any($1)) prunes no partition, a join prunes each
	// id's lookup to its partition at run time.
	loadTargetsJoin = `select d.id, d.status, d.attempt_count, d.schedule_base, d.parked, coalesce(w.url, d.url),
		coalesce(d.endpoint_id, 'url:' || md5(d.url)), coalesce(s.paused_until > now(), false), e.id, e.created_at, e.payload,
		d.merchant_id, d.livemode, w.id, coalesce(w.type, 'webhook'), coalesce(w.display_name, m.name), w.status,
		coalesce(w.failing_since < now() - $2::interval, false), w.deleted_at is not null, coalesce(w.signature_scheme, 'hmac'), w.rate_limit, w.headers, w.header_authorization, w.secret, w.previous_secrets, w.previous_secrets_expire_at,
		case when d.livemode then m.webhook_secret else m.test_webhook_secret end
		from unnest($1::text[]) as k (id)
		join deliveries d on d.id = k.id
		join events e on e.id = d.event_id
		join merchants m on m.id = d.merchant_id
		left join webhook_endpoints w on w.id = d.endpoint_id
		left join delivery_destinations s on s.key = coalesce(d.endpoint_id, 'url:' || md5(d.url))`
	recordAttempts = `with i as (
		select * from unnest($1::text[], $2::int[], $3::text[], $4::int[], $5::timestamptz[], $6::text[], $7::timestamptz[],
			$8::int[], $9::text[], $10::text[])
			as i (id, expected, status, status_code, next_attempt_at, url, started_at, duration_ms, error, response_body)
	), d as (
		update deliveries d set attempt_count = d.attempt_count + 1,
			status = case when d.status = 'succeeded' then d.status else i.status end,
			next_attempt_at = case when d.status = 'succeeded' then null else i.next_attempt_at end,
			last_status_code = i.status_code, url = i.url, parked = false, updated_at = now()
		from i where d.id = i.id and d.attempt_count = i.expected
		returning d.id, d.attempt_count
	), a as (
		insert into delivery_attempts (delivery_id, attempt, started_at, duration_ms, status_code, error, response_body)
		select d.id, d.attempt_count, i.started_at, i.duration_ms, i.status_code, i.error, i.response_body
		from d join i on i.id = d.id
	), e as (
		update webhook_endpoints set failing_since = null where id = any($11) and failing_since is not null
	), s as (
		update delivery_destinations set probe_ms = 1000, paused_until = now()
		where key = any($11) and probe_ms > 1000
	)
	select id from d`
)

// insertThenSettle publishes n deliveries (n/5 events) from 8 connections,
// 10 events a transaction, then settles them from 12 connections, 50 a job,
// and answers each phase's deliveries per second.
func insertThenSettle(ctx context.Context, url string, n int, load string) (float64, float64, error) {
	api, err := connect(ctx, url, 8, nil)
	if err != nil {
		return 0, 0, err
	}
	defer api.Close()
	const eventsPerTx, perEvent = 10, 5
	txs := n / (eventsPerTx * perEvent)
	payload := []byte(`{"object":"event","data":` + strings.Repeat("x", 474) + `}`)
	var next atomic.Int64
	var ids [][]string = make([][]string, txs)
	start := time.Now()
	err = parallel(8, func() error {
		for i := int(next.Add(1)) - 1; i < txs; i = int(next.Add(1)) - 1 {
			var eids, merchants, types []string
			var modes []bool
			var payloads [][]byte
			var created []time.Time
			var dids, endpoints, urls, dmerchants, devents []string
			var dmodes, parked []bool
			var dcreated []time.Time
			for range eventsPerTx {
				id, now := events.NewID(events.PrefixEvent), time.Now().UTC().Truncate(time.Microsecond)
				eids, merchants, modes, types = append(eids, id), append(merchants, merchant), append(modes, false), append(types, "checkout.paid")
				payloads, created = append(payloads, payload), append(created, now)
				for k := 1; k <= perEvent; k++ {
					dids, endpoints, urls = append(dids, events.NewID(events.PrefixDelivery)), append(endpoints, fmt.Sprintf("we_part_%d", k)), append(urls, "https://example.com/")
					dmerchants, dmodes, devents, dcreated, parked = append(dmerchants, merchant), append(dmodes, false), append(devents, id), append(dcreated, now), append(parked, false)
				}
			}
			err := pgx.BeginFunc(ctx, api, func(tx pgx.Tx) error {
				if _, err := tx.Exec(ctx, "set local synchronous_commit = on"); err != nil {
					return err
				}
				if _, err := tx.Exec(ctx, publishEvents, eids, merchants, modes, types, payloads, created); err != nil {
					return fmt.Errorf("insert events: %w", err)
				}
				_, err := tx.Exec(ctx, publishDeliveries, dids, endpoints, urls, dmerchants, dmodes, devents, dcreated, parked)
				return err
			})
			if err != nil {
				return fmt.Errorf("insert deliveries: %w", err)
			}
			ids[i] = dids
		}
		return nil
	})
	insertRate := float64(txs*eventsPerTx*perEvent) / time.Since(start).Seconds()
	if err != nil {
		return 0, 0, err
	}
	workers, err := connect(ctx, url, 12, map[string]string{"synchronous_commit": "off"})
	if err != nil {
		return 0, 0, err
	}
	defer workers.Close()
	// Jobs of 50 deliveries of one endpoint, in id order, as the drain of a
	// destination's parked deliveries claims them (jobSize).
	var merged [][]string
	for k := range perEvent {
		var all []string
		for _, tx := range ids {
			for e := range eventsPerTx {
				all = append(all, tx[e*perEvent+k])
			}
		}
		for i := 0; i < len(all); i += 50 {
			merged = append(merged, all[i:min(i+50, len(all))])
		}
	}
	next.Store(0)
	var settled, loadNs, recordNs atomic.Int64
	start = time.Now()
	err = parallel(12, func() error {
		for i := int(next.Add(1)) - 1; i < len(merged); i = int(next.Add(1)) - 1 {
			job := merged[i]
			t0 := time.Now()
			rows, err := workers.Query(ctx, load, job, 72*time.Hour)
			if err != nil {
				return fmt.Errorf("load: %w", err)
			}
			if _, err := pgx.CollectRows(rows, func(pgx.CollectableRow) (struct{}, error) { return struct{}{}, nil }); err != nil {
				return fmt.Errorf("load: %w", err)
			}
			t1 := time.Now()
			loadNs.Add(int64(t1.Sub(t0)))
			m := len(job)
			now := time.Now()
			expected, statuses, codes, urls := make([]int32, m), make([]string, m), make([]int32, m), make([]string, m)
			nexts, started, durations, errs, bodies := make([]*time.Time, m), make([]time.Time, m), make([]int32, m), make([]*string, m), make([]*string, m)
			ok := "ok"
			for j := range job {
				statuses[j], codes[j], urls[j], started[j], durations[j], bodies[j] = "succeeded", 200, "https://example.com/", now, 12, &ok
			}
			rows, err = workers.Query(ctx, recordAttempts, job, expected, statuses, codes, nexts, urls, started, durations, errs, bodies,
				[]string{"we_part_1", "we_part_2", "we_part_3", "we_part_4", "we_part_5"})
			if err != nil {
				return fmt.Errorf("record: %w", err)
			}
			recorded, err := pgx.CollectRows(rows, pgx.RowTo[string])
			if err != nil {
				return fmt.Errorf("record: %w", err)
			}
			recordNs.Add(int64(time.Since(t1)))
			settled.Add(int64(len(recorded)))
		}
		return nil
	})
	settleRate := float64(settled.Load()) / time.Since(start).Seconds()
	fmt.Printf("  settle: %d jobs, mean load %.2f ms, mean record %.2f ms (each on one of 12 connections)\n", len(merged),
		float64(loadNs.Load())/1e6/float64(len(merged)), float64(recordNs.Load())/1e6/float64(len(merged)))
	if err == nil && settled.Load() != int64(n) {
		err = fmt.Errorf("settled %d of %d deliveries", settled.Load(), n)
	}
	return insertRate, settleRate, err
}

// parallel runs f on k goroutines and answers their errors.
func parallel(k int, f func() error) error {
	var wg sync.WaitGroup
	errs := make([]error, k)
	for i := range k {
		wg.Go(func() { errs[i] = f() })
	}
	wg.Wait()
	return errors.Join(errs...)
}

// vacuum vacuums the history tables, untimed.
func vacuum(ctx context.Context, url string) error {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	for _, t := range tables {
		if _, err := conn.Exec(ctx, "vacuum "+t.name); err != nil {
			return err
		}
	}
	return nil
}

// retentionResult is what pruning one day cost.
type retentionResult struct {
	day                   time.Time
	deliveries, evts      int64
	seconds               float64
	wal                   int64 // bytes, cluster-wide (other sessions' WAL included)
	dead                  int64 // dead tuples left in the three tables
	vacuumSeconds         float64
	vacuumWAL             int64
	sizeBefore, sizeAfter int64
}

func (r retentionResult) String() string {
	return fmt.Sprintf("day %s: %d deliveries, %d events in %.2f s, WAL %.1f MB, dead tuples %d; then VACUUM %.2f s, WAL %.1f MB; history %d -> %d MB",
		r.day.Format("2006-01-02"), r.deliveries, r.evts, r.seconds, float64(r.wal)/1e6, r.dead, r.vacuumSeconds, float64(r.vacuumWAL)/1e6,
		r.sizeBefore>>20, r.sizeAfter>>20)
}

// historySize is the three tables' total size, partitions included.
const historySize = leaves + `select sum(pg_total_relation_size(relid))::bigint from leaves`

// leaves is the relations that hold the three tables' rows: their
// partitions, or the tables themselves.
const leaves = `with leaves as (select t, p.relid from unnest(array['events', 'deliveries', 'delivery_attempts']) t,
	lateral (select relid from pg_partition_tree(t::regclass) where isleaf
		union all select t::regclass where not exists (select from pg_partition_tree(t::regclass))) p) `

// deadTuples is the dead tuples of the three tables (stats of this session
// flushed first).
const deadTuples = leaves + `select coalesce(sum(s.n_dead_tup), 0)::bigint
	from leaves l join pg_stat_user_tables s on s.relid = l.relid`

// retention prunes the oldest day that remains: the batched deletes of
// delivery.PruneWorker (plain), or its partitions detached and dropped
// (partitioned). A checkpoint first makes both pay their full-page writes.
func retention(ctx context.Context, url string, partitioned bool) (retentionResult, error) {
	var r retentionResult
	pool, err := connect(ctx, url, 2, map[string]string{"synchronous_commit": "off"})
	if err != nil {
		return r, err
	}
	defer pool.Close()
	var oldest string
	if err := pool.QueryRow(ctx, `select min(id) from deliveries`).Scan(&oldest); err != nil {
		return r, err
	}
	// The oldest delivery's day, from its id's ULID time.
	ms := int64(0)
	for _, c := range oldest[4:14] {
		ms = ms<<5 | int64(strings.IndexRune("0123456789ABCDEFGHJKMNPQRSTVWXYZ", c))
	}
	r.day = time.UnixMilli(ms).UTC().Truncate(24 * time.Hour)
	cutoff := r.day.AddDate(0, 0, 1)
	if err := pool.QueryRow(ctx, historySize).Scan(&r.sizeBefore); err != nil {
		return r, err
	}
	if _, err := pool.Exec(ctx, "checkpoint"); err != nil {
		return r, err
	}
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return r, err
	}
	defer conn.Release()
	var lsn0, lsn1 string
	if err := conn.QueryRow(ctx, "select pg_current_wal_lsn()::text").Scan(&lsn0); err != nil {
		return r, err
	}
	var dead0 int64
	if err := conn.QueryRow(ctx, deadTuples).Scan(&dead0); err != nil {
		return r, err
	}
	if partitioned { // counted untimed: dropping needs no count
		if err := conn.QueryRow(ctx, fmt.Sprintf(`select (select count(*) from %s), (select count(*) from %s)`,
			partition("deliveries", r.day), partition("events", r.day))).Scan(&r.deliveries, &r.evts); err != nil {
			return r, err
		}
	}
	start := time.Now()
	if partitioned {
		err = dropDay(ctx, conn.Conn(), r.day, &r)
	} else {
		err = prune(ctx, conn.Conn(), cutoff, &r)
	}
	if err != nil {
		return r, err
	}
	r.seconds = time.Since(start).Seconds()
	if err := conn.QueryRow(ctx, "select pg_current_wal_lsn()::text, pg_wal_lsn_diff(pg_current_wal_lsn(), $1)::bigint", lsn0).Scan(&lsn1, &r.wal); err != nil {
		return r, err
	}
	if _, err := conn.Exec(ctx, "select pg_stat_force_next_flush()"); err != nil {
		return r, err
	}
	time.Sleep(1500 * time.Millisecond)
	if err := conn.QueryRow(ctx, deadTuples).Scan(&r.dead); err != nil {
		return r, err
	}
	r.dead -= dead0
	if !partitioned {
		// What autovacuum would then do: the dead rows' heap pages and
		// every index of the three tables.
		start = time.Now()
		for _, t := range tables {
			if _, err := conn.Exec(ctx, "vacuum "+t.name); err != nil {
				return r, err
			}
		}
		r.vacuumSeconds = time.Since(start).Seconds()
		if err := conn.QueryRow(ctx, "select pg_wal_lsn_diff(pg_current_wal_lsn(), $1)::bigint", lsn1).Scan(&r.vacuumWAL); err != nil {
			return r, err
		}
	}
	err = conn.QueryRow(ctx, historySize).Scan(&r.sizeAfter)
	return r, err
}

// prunableDeliveries and pruneEvents are delivery.PruneWorker's, as is the
// loop of prune.
const (
	prunableDeliveries = `select id from deliveries where id < $1 and id > $3 and status <> 'pending'
	order by id limit $2 for update skip locked`
	pruneEvents = `delete from events where id in (select e.id from events e
	where e.id < $1 and e.id > $3 and not exists (select 1 from deliveries d where d.event_id = e.id)
	order by e.id limit $2)
	returning id`
	pruneBatch = 5000
)

func prune(ctx context.Context, conn *pgx.Conn, cutoff time.Time, r *retentionResult) error {
	last := ""
	for {
		var n int64
		err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			rows, err := tx.Query(ctx, prunableDeliveries, events.FirstIDAt(events.PrefixDelivery, cutoff), pruneBatch, last)
			if err != nil {
				return err
			}
			ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
			if err != nil {
				return err
			}
			n = int64(len(ids))
			if n > 0 {
				last = ids[n-1]
			}
			if _, err := tx.Exec(ctx, `delete from delivery_attempts where delivery_id = any($1)`, ids); err != nil {
				return err
			}
			_, err = tx.Exec(ctx, `delete from deliveries where id = any($1)`, ids)
			return err
		})
		if err != nil {
			return fmt.Errorf("prune deliveries: %w", err)
		}
		r.deliveries += n
		if n < pruneBatch {
			break
		}
	}
	for last = ""; ; {
		rows, err := conn.Query(ctx, pruneEvents, events.FirstIDAt(events.PrefixEvent, cutoff), pruneBatch, last)
		if err != nil {
			return fmt.Errorf("prune events: %w", err)
		}
		ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return fmt.Errorf("prune events: %w", err)
		}
		r.evts += int64(len(ids))
		if len(ids) < pruneBatch {
			return nil
		}
		last = slices.Max(ids)
	}
}

// dropDay is the partition-maintenance job's retention: a day whose
// deliveries are all settled has its partitions detached (concurrently: no
// lock that blocks the hot path's reads and writes of the parent) and
// dropped. A day still holding a pending delivery is kept (retention never
// deletes a pending delivery) and would be pruned by the batched deletes.
func dropDay(ctx context.Context, conn *pgx.Conn, t time.Time, r *retentionResult) error {
	var pending bool
	if err := conn.QueryRow(ctx, fmt.Sprintf(`select exists (select 1 from %s where status = 'pending')`, partition("deliveries", t))).Scan(&pending); err != nil {
		return err
	}
	if pending {
		return fmt.Errorf("day %s still holds a pending delivery", t.Format("2006-01-02"))
	}
	for _, tb := range []string{"delivery_attempts", "deliveries", "events"} {
		p := partition(tb, t)
		if _, err := conn.Exec(ctx, fmt.Sprintf("alter table %s detach partition %s concurrently", tb, p)); err != nil {
			return fmt.Errorf("detach %s: %w", p, err)
		}
		if _, err := conn.Exec(ctx, "drop table "+p); err != nil {
			return fmt.Errorf("drop %s: %w", p, err)
		}
	}
	return nil
}
