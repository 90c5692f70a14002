-- Replay (POST /v1/webhook_endpoints/{id}/replay) and the reconciliation
-- list (GET /v1/events?delivery_success=false).
--
-- Every statement here takes its table's lock for an instant, or (the index
-- builds) for as long as the build lasts: on a large table the indexes are
-- built beforehand with create index concurrently (the README's Deployment
-- section), which these statements then leave as they are. lock_timeout
-- bounds the wait for each lock behind long transactions, during which every
-- write to the table would queue behind this migration: it fails instead,
-- and `hookline migrate` is run again.
set local lock_timeout = '5s';

-- A test event (send_test_event) goes to one endpoint only: addressed_to
-- names it, null on every other event, so that a replay to another endpoint
-- leaves it out. Without a default the column is added without rewriting the
-- table.
alter table events add column if not exists addressed_to text;

-- The reconciliation list lists the events of unsucceeded deliveries by
-- type: event_type is written with every delivery (the fan-out knows its
-- event's type). Older deliveries keep a null, and so do those that
-- processes of an older release still write during a rolling upgrade; the
-- periodic fill (delivery.FillEventTypesArgs) gives the unsucceeded ones
-- their type in short batches, through deliveries_untyped_idx. No backfill
-- runs here: it would hold this table's lock for the whole update.
alter table deliveries add column if not exists event_type text;

-- The one index of the reconciliation list: the deliveries not succeeded, by
-- merchant, mode, type and event. A delivery enters it when it is created
-- (pending) and its next version leaves it when it succeeds, which is what
-- nearly every delivery does, and a delivery never leaves succeeded, so it
-- holds the unsettled and failed deliveries, a few per cent of the table.
create index if not exists deliveries_unsucceeded_idx on deliveries (merchant_id, livemode, event_type, event_id)
    where status <> 'succeeded';

-- The deliveries the fill still has to type. A delivery written with its
-- type never enters it, so it costs the hot path nothing, and it empties as
-- the fill goes.
create index if not exists deliveries_untyped_idx on deliveries (id)
    where event_type is null and status <> 'succeeded';
