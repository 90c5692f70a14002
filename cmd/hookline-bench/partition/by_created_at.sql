-- Why the partition key is the id and not created_at: partitioned by
-- created_at, the primary key must include created_at, so id alone is no
-- longer unique, and a lookup by id (the API's, a job's) probes every
-- partition's index, since nothing in `id = $1` names a partition.
--   psql "$B" -f cmd/hookline-bench/partition/by_created_at.sql
begin;
set local plan_cache_mode = force_generic_plan;
set local enable_seqscan = off;
create temp table deliveries_by_time (id text not null, created_at timestamptz not null, primary key (id, created_at))
	partition by range (created_at);
select format('create temp table deliveries_by_time_%s partition of deliveries_by_time for values from (%L) to (%L)',
	d, current_date - d, current_date - d + 1) from generate_series(0, 29) d \gexec
insert into deliveries_by_time select 'dlv_' || g, now() - g * interval '1 minute' from generate_series(1, 10000) g;
analyze deliveries_by_time;
prepare by_time_id(text) as select id from deliveries_by_time where id = $1;
explain (analyze, costs off, timing off, summary off) execute by_time_id('dlv_42');
rollback;
