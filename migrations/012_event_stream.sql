-- GET /v1/events/stream serves each merchant's events in the order their
-- transactions became final, without gaps: events.txid is the id of the
-- transaction that wrote the event, and a stream reads only the events of
-- transactions older than every transaction still running (the snapshot's
-- xmin), in (txid, id) order, so that no transaction can still commit an
-- event below a reader's cursor (see events/stream.go).
--
-- The column is added without a default first, so that existing rows are not
-- rewritten (a volatile default would rewrite the table under its lock); rows
-- written before this migration keep a null txid and are never streamed. The
-- default then applies to every new event: the publishing transaction's id,
-- which it has anyway once it writes.
alter table events add column if not exists txid xid8;
alter table events alter column txid set default pg_current_xact_id();

-- The one index a stream reads: a merchant and mode's events in stream order,
-- from a cursor. It costs every event insert one more index entry (about 60
-- bytes); the column costs 8 bytes a row. Building it blocks event writes;
-- on a large table, build it beforehand with create index concurrently (the
-- README's Deployment section), which this statement then leaves as it is.
create index if not exists events_stream_idx on events (merchant_id, livemode, txid, id);

-- Open event streams, for the limit of streams per API key across every API
-- process: each stream holds a lease that its process renews while it is
-- open and deletes when it ends; a process that dies leaves leases that
-- expire.
create table event_streams (
    id          text primary key,
    merchant_id text not null,
    livemode    boolean not null,
    expires_at  timestamptz not null
);
create index event_streams_scope_idx on event_streams (merchant_id, livemode);
