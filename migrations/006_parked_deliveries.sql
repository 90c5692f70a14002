-- Deliveries that wait on their destination, not on a job (issues 13 and 20).
--
-- A delivery owed to a destination that is paused (failing, rate-limited) or
-- saturated is parked: it holds no River job, and the periodic release job
-- hands it a job again at the rate the destination accepts. A dead endpoint's
-- backlog so costs one probe at a time, not a job run per delivery.

-- Adding a column with a constant default rewrites nothing.
alter table deliveries add column parked boolean not null default false;

-- Parked deliveries by destination (the endpoint, or for a checkout's own
-- webhook_url the URL's digest, as delivery.destinationKey computes it), in
-- creation order. next_attempt_at stays out of every index, so that recording
-- an attempt, which sets it, remains a heap-only (HOT) update.
create index deliveries_parked_idx on deliveries ((coalesce(endpoint_id, 'url:' || md5(url))), id) where parked;

-- The state of each destination that has ever been paused or saturated; a
-- healthy destination has no row, and nothing on the hot path writes one.
create table delivery_destinations (
    key            text primary key,
    -- Nothing is released to the destination before this time.
    paused_until   timestamptz not null default now(),
    -- While the destination fails every attempt, one probe is released every
    -- probe_ms milliseconds, an interval that doubles with each probe.
    probe_ms       integer not null default 1000,
    -- How many parked deliveries one release hands out: doubled after a
    -- release the destination took whole, halved after one it could not.
    release_size   integer not null default 100,
    -- The last time a job found the destination saturated and parked.
    busy_at        timestamptz,
    released_at    timestamptz
);

-- The attempt count a delivery's retry schedule starts from: a recovery gives
-- a failed delivery a fresh schedule without renumbering its attempts.
alter table deliveries add column schedule_base integer not null default 0;

-- Jobs of the earlier shape (one event's deliveries, with the attempt number
-- and attempted_by_job to skip what a crashed run had recorded) are not worked
-- any more: their deliveries are parked, and the release job hands them new
-- jobs. Stop the old processes before migrating.
update deliveries set parked = true, next_attempt_at = coalesce(next_attempt_at, now())
    where status = 'pending' and id in (
        select distinct jsonb_array_elements_text(coalesce(args -> 'delivery_ids', jsonb_build_array(args ->> 'delivery_id')))
        from river_job where kind = 'deliver' and finalized_at is null);
delete from river_job where kind = 'deliver' and finalized_at is null;

alter table deliveries drop column attempted_by_job;

-- A chat webhook answering 401 or 403 (its token revoked) is disabled like
-- one answering 404 or 410 (deleted).
alter table webhook_endpoints drop constraint webhook_endpoints_disabled_reason_check;
alter table webhook_endpoints add constraint webhook_endpoints_disabled_reason_check
    check (disabled_reason in ('gone', 'failing', 'unauthorized'));
