-- Retention reads a row's age from its id (a ULID carries the time it was
-- minted) and recovery bounds its window by id as well, so the indexes on
-- creation times go: each cost every insert an index entry, and every update
-- that is not HOT (settling a delivery, since status is indexed) another.
drop index deliveries_created_idx;
drop index deliveries_endpoint_created_idx;
drop index events_created_idx;
