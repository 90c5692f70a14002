-- Retention reads a row's age from its id (a ULID carries the time it was
-- minted), so the indexes on creation times go: each cost every insert an
-- index entry, and every update that is not HOT (settling a delivery, since
-- status is indexed) another. Recovery reads an endpoint's failed deliveries
-- through (endpoint_id, status, id) and tests created_at row by row.
drop index deliveries_created_idx;
drop index deliveries_endpoint_created_idx;
drop index events_created_idx;
