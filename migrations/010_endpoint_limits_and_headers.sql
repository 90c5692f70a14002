-- Endpoint settings of issue 17: a rate limit and custom headers.

-- A merchant's cap on deliveries per second to one endpoint (null: none),
-- and the token bucket that holds every worker process to it: the bucket
-- lives in the destination's row, whose lock serializes the processes that
-- take from it (see delivery/ratelimit.go).
alter table webhook_endpoints add column rate_limit integer check (rate_limit between 1 and 10000);
alter table delivery_destinations add column tokens double precision, add column tokens_at timestamptz;

-- Custom request headers sent with every attempt, as shown (an authorization
-- value masked), and the authorization value sealed like the secrets.
alter table webhook_endpoints add column headers jsonb not null default '{}',
    add column header_authorization text;
