-- The history tables partitioned by day on their ids (ULIDs carry the time
-- they were minted), as the partitioning measurement's layout B. The columns,
-- constraints and indexes are those of migrations 001-012; the partition key
-- is the id (delivery_id for attempts, so that a delivery's attempts live in
-- its delivery's day and are dropped with it), which keeps every primary key
-- legal: a unique index of a partitioned table must contain the partition key.
-- There are no foreign keys between these tables (migrations 004 and 005).
-- Partitions are made by the program (createPartitions), with the
-- fillfactor of deliveries, which a partitioned table cannot carry itself.

drop table delivery_attempts;
drop table deliveries;
drop table events;

create table events (
    id          text not null,
    merchant_id text not null,
    livemode    boolean not null,
    type        text not null,
    payload     bytea not null,
    created_at  timestamptz not null,
    txid        xid8 default pg_current_xact_id(),
    primary key (id)
) partition by range (id);

create index events_merchant_idx on events (merchant_id, livemode, id);
create index events_merchant_type_idx on events (merchant_id, livemode, type, id);
create index events_stream_idx on events (merchant_id, livemode, txid, id);

create table deliveries (
    id               text not null,
    merchant_id      text not null,
    livemode         boolean not null,
    event_id         text not null,
    endpoint_id      text,
    url              text not null,
    status           text not null check (status in ('pending', 'succeeded', 'failed')),
    attempt_count    integer not null default 0,
    last_status_code integer,
    next_attempt_at  timestamptz,
    created_at       timestamptz not null,
    updated_at       timestamptz not null,
    parked           boolean not null default false,
    schedule_base    integer not null default 0,
    primary key (id)
) partition by range (id);

create index deliveries_merchant_status_idx on deliveries (merchant_id, livemode, status, id);
create index deliveries_endpoint_status_idx on deliveries (endpoint_id, status, id);
create index deliveries_event_idx on deliveries (event_id, id);
create index deliveries_unsettled_idx on deliveries (status, id) where status <> 'succeeded';
create index deliveries_parked_idx on deliveries ((coalesce(endpoint_id, 'url:' || md5(url))), id) where parked;

create table delivery_attempts (
    delivery_id   text not null,
    attempt       integer not null,
    started_at    timestamptz not null,
    duration_ms   integer not null,
    status_code   integer,
    error         text,
    response_body text,
    primary key (delivery_id, attempt)
) partition by range (delivery_id);
