-- Batched delivery and swept checkout expiry (issue #7).

-- Each delivery insert used to take a KEY SHARE lock on its endpoint's row
-- through this foreign key; every delivery of a busy endpoint shares that
-- lock through multixacts, which serializes fan-out. Endpoints are never
-- deleted (deleted_at marks them), so nothing can dangle.
alter table deliveries drop constraint deliveries_endpoint_id_fkey;

-- Likewise deliveries' foreign key to events: the event is written in the
-- same transaction, and retention deletes an event only once no delivery
-- names it.
alter table deliveries drop constraint deliveries_event_id_fkey;

-- delivery_attempts' foreign key to deliveries cost every recorded attempt a
-- trigger and a row lock; retention deletes a delivery's attempts with it,
-- in one transaction, and nothing else deletes deliveries.
alter table delivery_attempts drop constraint delivery_attempts_delivery_id_fkey;

-- Recording an attempt updates its delivery's status. With status in an
-- index, every such update wrote a new entry into each of the table's
-- indexes; without it, and with room left on each page, the update is HOT
-- (heap-only). Recovery (within its window of at most 14 days) and the
-- failing-endpoints view (within retention) still find an endpoint's
-- deliveries by this index, and filter their status from the rows.
drop index deliveries_endpoint_idx;
create index deliveries_endpoint_created_idx on deliveries (endpoint_id, created_at);
alter table deliveries set (fillfactor = 70);

-- The delivery job that last recorded an attempt of the delivery. A job
-- carries several deliveries; if its process dies after recording them and
-- River runs the job again, the deliveries it already recorded are skipped
-- instead of being sent and counted twice.
alter table deliveries add column attempted_by_job bigint;

-- Open checkouts by expiry, for the periodic sweep that expires them (it
-- replaces one scheduled River job per checkout).
create index checkouts_open_expiry_idx on checkouts (expiry_at) where status = 'open';

-- Jobs of the per-checkout expiry are no longer worked: the sweep expires
-- those checkouts at their expiry_at.
delete from river_job where kind = 'expire_checkout' and finalized_at is null;
