-- Indexes that let every list and operator view read only the rows it
-- returns, at any depth of history (issue #15). Each list is a few fixed
-- statements, one per filter shape and page direction, whose merchant, filter
-- and cursor are all index conditions of a generic plan.

-- A merchant's deliveries by status, newest first: GET /v1/deliveries?status=.
-- The unfiltered list reads it too, as three ranges (pending, succeeded,
-- failed) merged by id, so it replaces the (merchant_id, livemode, id) index
-- rather than sitting beside it. Putting status in an index makes the update
-- that changes a delivery's status non-HOT (see the README, Performance).
drop index deliveries_merchant_idx;
create index deliveries_merchant_status_idx on deliveries (merchant_id, livemode, status, id);

-- One endpoint's deliveries by status, newest first: ?endpoint= with or
-- without ?status=, and the failing-endpoints view's counts and last errors.
create index deliveries_endpoint_status_idx on deliveries (endpoint_id, status, id);

-- One event's deliveries, newest first (?event=): the id lets a cursor be an
-- index condition. It still serves lookups by event_id alone (retention).
drop index deliveries_event_idx;
create index deliveries_event_idx on deliveries (event_id, id);

-- Every merchant's deliveries that are not settled as succeeded, newest
-- first: the operator's recent failed (or pending) deliveries. Small: the
-- rows that succeeded, nearly all of them, are not in it.
create index deliveries_unsettled_idx on deliveries (status, id) where status <> 'succeeded';

-- Endpoints in trouble, most recently failing first: the failing-endpoints
-- view reads only the rows it shows.
create index webhook_endpoints_trouble_idx on webhook_endpoints ((coalesce(failing_since, created_at)) desc)
    where deleted_at is null and (failing_since is not null or disabled_reason is not null);
