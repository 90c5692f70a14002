-- Webhook endpoints, deliveries and their attempts.

create table webhook_endpoints (
    id                         text primary key,
    merchant_id                text not null references merchants (id),
    livemode                   boolean not null,
    type                       text not null check (type in ('webhook', 'discord', 'slack')),
    url                        text not null,
    -- null: the catalog's default-on types, as the catalog is when an event
    -- happens; '*' in the list: every type, present and future.
    enabled_events             text[],
    status                     text not null check (status in ('enabled', 'disabled')),
    disabled_reason            text check (disabled_reason in ('gone', 'failing')),
    description                text,
    display_name               text,
    secret                     text not null,
    -- During a rotation's grace period deliveries are signed with both secrets.
    previous_secret            text,
    previous_secret_expires_at timestamptz,
    -- The first failed attempt since the last acknowledged one: an endpoint
    -- failing for three days is disabled.
    failing_since              timestamptz,
    created_at                 timestamptz not null,
    deleted_at                 timestamptz
);

create index webhook_endpoints_merchant_idx on webhook_endpoints (merchant_id, livemode, id) where deleted_at is null;

-- One row per event and destination: an endpoint, or (endpoint_id null) the
-- checkout's own webhook_url.
create table deliveries (
    id               text primary key,
    merchant_id      text not null references merchants (id),
    livemode         boolean not null,
    event_id         text not null references events (id),
    endpoint_id      text references webhook_endpoints (id),
    url              text not null,
    status           text not null check (status in ('pending', 'succeeded', 'failed')),
    attempt_count    integer not null default 0,
    last_status_code integer,
    next_attempt_at  timestamptz,
    created_at       timestamptz not null,
    updated_at       timestamptz not null
);

create index deliveries_merchant_idx on deliveries (merchant_id, livemode, id);
create index deliveries_event_idx on deliveries (event_id);
create index deliveries_endpoint_idx on deliveries (endpoint_id, status, created_at);

-- Every attempt, kept here because River prunes its finished jobs.
create table delivery_attempts (
    delivery_id   text not null references deliveries (id),
    attempt       integer not null,
    started_at    timestamptz not null,
    duration_ms   integer not null,
    status_code   integer,
    error         text,
    response_body text,
    primary key (delivery_id, attempt)
);
