-- The merchant portal's sessions (POST /v1/portal_sessions, api/portal). A
-- session is minted with a link token that the merchant's browser exchanges,
-- once, for a session cookie; both are stored only as their SHA-256, so a
-- copy of this table opens no portal. A session ends at expires_at (an hour
-- after it was minted), whether or not its link was used.
create table portal_sessions (
    id           text primary key,
    merchant_id  text not null references merchants (id),
    livemode     boolean not null,
    -- sha256 of the link's token: the exchange finds the session by it.
    token_hash   bytea not null unique,
    -- sha256 of the session cookie's value, set by the exchange: every
    -- portal request finds its session by it.
    session_hash bytea unique,
    -- When the link was exchanged: a link works once.
    used_at      timestamptz,
    return_url   text,
    expires_at   timestamptz not null
);
-- Retention (delivery's prune job) reads a session's age from its id, a
-- ULID, like the events' and deliveries': no index on a time.
