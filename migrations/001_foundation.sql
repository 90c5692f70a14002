-- Merchants, their API keys, checkouts, payment attempts, the event log and
-- stored idempotent responses.

create table merchants (
    id             text primary key,
    name           text not null,
    webhook_secret text not null,
    created_at     timestamptz not null default now()
);

-- API keys are stored as SHA-256 hashes only: a key is 32 random bytes, so a
-- fast hash is enough and lets the key be looked up by its hash.
create table api_keys (
    key_hash    bytea primary key,
    merchant_id text not null references merchants (id),
    livemode    boolean not null,
    created_at  timestamptz not null default now()
);

create table checkouts (
    id                      text primary key,
    merchant_id             text not null references merchants (id),
    livemode                boolean not null,
    payin                   text not null,
    status                  text not null check (status in ('open', 'completed', 'expired')),
    payment_status          text not null check (payment_status in ('unpaid', 'paid', 'failed')),
    invoice_currency        text not null,
    amount                  text not null check (amount ~ '^(0|[1-9][0-9]*)$'),
    customer_details        jsonb not null,
    transaction_description text,
    reference_id            text,
    metadata                jsonb not null,
    webhook_url             text,
    expiry_at               timestamptz not null,
    created_at              timestamptz not null
);

create index checkouts_merchant_idx on checkouts (merchant_id, livemode, id);

create table payment_attempts (
    id              text primary key,
    merchant_id     text not null references merchants (id),
    livemode        boolean not null,
    checkout_id     text not null references checkouts (id),
    payin           text not null,
    status          text not null check (status in ('created', 'processing', 'succeeded', 'failed')),
    amount          text not null check (amount ~ '^(0|[1-9][0-9]*)$'),
    currency        text not null,
    payment_method  text not null,
    failure_code    text,
    failure_message text,
    created_at      timestamptz not null
);

create index payment_attempts_checkout_idx on payment_attempts (checkout_id);

-- payload is the serialized envelope, written once, so that every delivery
-- attempt sends exactly the same bytes.
create table events (
    id          text primary key,
    merchant_id text not null references merchants (id),
    livemode    boolean not null,
    type        text not null,
    payload     bytea not null,
    created_at  timestamptz not null
);

create index events_merchant_idx on events (merchant_id, livemode, id);
create index events_merchant_type_idx on events (merchant_id, livemode, type, id);

-- The response of the first request with a key, replayed for 24 hours. It is
-- written in the same transaction as the work the request did.
create table idempotency_keys (
    merchant_id  text not null references merchants (id),
    livemode     boolean not null,
    key          text not null,
    request_hash bytea not null,
    status_code  integer not null,
    body         bytea not null,
    created_at   timestamptz not null default now(),
    primary key (merchant_id, livemode, key)
);
