-- Endpoint statistics (GET /v1/webhook_endpoints/{id}/stats): a rollup of
-- the attempts made to each endpoint, written by the statement that records
-- the attempts (delivery/worker.go, recordAttempts), so that a stats call
-- reads a few hundred rows whatever the size of delivery_attempts, and an
-- attempt is counted exactly when it is recorded.
--
-- One row per endpoint, span (60: a minute, 3600: an hour), bucket start and
-- shard. The shard is the recording connection's backend pid modulo 4:
-- concurrent batches of one busy endpoint mostly update different rows
-- instead of queueing on one row's lock; a reader sums the shards. latency
-- is a histogram of the attempts' durations in log-spaced buckets (see
-- delivery/stats.go, latencyBucket), summed element by element.
--
-- Minute rows serve the 1h window and are kept 2 hours, hour rows serve the
-- 24h and 7d windows and are kept 7 days (the prune job deletes the rest, by
-- endpoint_stats_prune_idx, in batches).
create table endpoint_stats (
    endpoint_id      text not null,
    span_seconds     int not null check (span_seconds in (60, 3600)),
    bucket           timestamptz not null,
    shard            smallint not null,
    succeeded        int not null,
    http_error       int not null,
    timeout          int not null,
    connection_error int not null,
    latency          int[] not null,
    primary key (endpoint_id, span_seconds, bucket, shard)
) with (fillfactor = 80); -- room for the updates of a bucket's row to stay HOT

create index endpoint_stats_prune_idx on endpoint_stats (span_seconds, bucket);
