-- GET /v1/events?delivery_success=false lists a merchant's events that have
-- a delivery not succeeded, newest first, a page at a time. Two partial
-- indexes of deliveries serve it: a delivery enters them when it is created
-- (pending) and its next version leaves them when it succeeds, which is what
-- nearly every delivery does, so they hold the unsettled deliveries and the
-- failed ones, a few per cent of the table. A delivery never goes back from
-- succeeded (the worker keeps that status), so nothing re-enters them.
--
-- The type filter needs the event's type beside the delivery: event_type is
-- written with every delivery (the fan-out knows its event's type) and, here,
-- for the deliveries already in the indexes; older succeeded deliveries keep
-- a null, which no list reads. Without a default the column is added without
-- rewriting the table.
alter table deliveries add column if not exists event_type text;
update deliveries d set event_type = e.type from events e
    where e.id = d.event_id and d.status <> 'succeeded' and d.event_type is null;

-- Building them blocks delivery writes; on a large table, build them
-- beforehand with create index concurrently (the README's Deployment
-- section), which these statements then leave as they are.
create index if not exists deliveries_unsucceeded_event_idx on deliveries (merchant_id, livemode, event_id)
    where status <> 'succeeded';
create index if not exists deliveries_unsucceeded_type_idx on deliveries (merchant_id, livemode, event_type, event_id)
    where status <> 'succeeded';
