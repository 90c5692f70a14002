-- The attempts the workers recorded and the endpoint statistics have not
-- counted yet. The statement that records a job's attempts (delivery/
-- worker.go, recordAttempts) inserts one row here, holding those attempts'
-- endpoints, starts, outcomes and latency buckets as arrays; a periodic job
-- (delivery/stats.go, FoldStats) deletes a batch of rows and adds them to
-- endpoint_stats in one transaction, so that an attempt is counted exactly
-- once, whatever crashes.
--
-- Why not upsert endpoint_stats in the recording statement, as 013 did:
-- every job then updated two rows per endpoint (its minute and its hour),
-- the same rows as every other job of that endpoint, and the recording
-- statement, timed alone from 8 connections on 5 endpoints, ran at half the
-- rate. An insert of one row per statement costs about as little as not
-- counting at all; the fold does the updates once per endpoint and bucket
-- for thousands of attempts.
--
-- Rows live about a second (the fold's interval). Their id orders the fold
-- and is the only index, so an insert writes one heap tuple and one index
-- entry at the right end of the primary key. The table is a queue: the fold
-- deletes from the left end of that key and its pick walks the dead entries
-- there until a vacuum removes them, so autovacuum is told to come after a
-- few thousand dead rows, not a fifth of the table, and without pausing.
create table attempt_tallies (
    id              bigint generated always as identity primary key,
    endpoint_ids    text[] not null,
    started_at      timestamptz[] not null,
    outcomes        text[] not null,
    latency_buckets int[] not null
) with (autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 5000, autovacuum_vacuum_cost_delay = 0);
