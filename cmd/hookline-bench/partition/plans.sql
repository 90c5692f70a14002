-- Run-time partition pruning under hookline's planner settings (generic
-- plans), on the partitioned database once seeded:
--   psql "$B" -f cmd/hookline-bench/partition/plans.sql
-- Each statement is a shape hookline runs; "Subplans Removed" and "(never
-- executed)" show the partitions pruned.
set plan_cache_mode = force_generic_plan;
set enable_seqscan = off;
set enable_bitmapscan = off;
set max_parallel_workers_per_gather = 0;
select count(*) as delivery_partitions from pg_inherits where inhparent = 'deliveries'::regclass;
select (select max(id) from deliveries) as newest,
	(select id from deliveries order by id offset (select count(*) / 2 from deliveries) limit 1) as deep,
	(select array_agg(id)::text from (select id from deliveries order by id desc limit 50) x) as batch \gset

-- A lookup by id (GET /v1/deliveries/{id}, and every object by id).
prepare by_id(text) as select id, status from deliveries where id = $1;
explain (analyze, costs off, summary off, timing off) execute by_id(:'newest');

-- A page from a cursor halfway down the history: the cursor prunes the newer partitions, and an
-- ordered Append reads the older ones one after the other, stopping at 10.
prepare page(text, bool, text, text) as select id from deliveries
	where merchant_id = $1 and livemode = $2 and status = $3 and id < $4 order by id desc limit 10;
explain (analyze, costs off, summary off, timing off) execute page('acct_part', false, 'succeeded', :'deep');

-- A job's deliveries by id = any($1) (loadTargets, parkDeliveries, the
-- pruning's deletes): an array parameter prunes nothing, every partition's
-- primary key is probed with the whole array.
prepare by_ids(text[]) as select id from deliveries where id = any($1);
explain (analyze, costs off, summary off, timing off) execute by_ids(:'batch');

-- The same as a join with unnest: each id is pruned to its partition.
prepare by_ids_join(text[]) as select d.id from unnest($1::text[]) k (id) join deliveries d on d.id = k.id;
explain (analyze, costs off, summary off, timing off) execute by_ids_join(:'batch');

-- The event stream reads in (txid, id) order, which is not the partition
-- key's: a Merge Append probes each partition's events_stream_idx once.
prepare stream(text, bool, text, text, int) as select id, type, payload, txid::text as tx from events
	where merchant_id = $1 and livemode = $2 and (txid, id) > ($3::text::xid8, $4)
		and txid < pg_snapshot_xmin(pg_current_snapshot())
	order by txid, id limit $5;
explain (analyze, costs off, summary off, timing off) execute stream('acct_part', false, '0', '', 10);

-- What a generic plan costs before pruning: executing it locks every
-- partition of its tables (Postgres 15), beyond the 16 locks a backend takes
-- on its fast path. On the plain table this is 3 relation locks.
begin;
execute by_id(:'newest');
select count(*) as relation_locks, count(*) filter (where fastpath) as fast_path
	from pg_locks where pid = pg_backend_pid() and locktype = 'relation';
commit;
