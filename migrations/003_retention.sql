-- Indexes for pruning by age: retention deletes the oldest rows in batches.

create index deliveries_created_idx on deliveries (created_at);
create index events_created_idx on events (created_at);
create index idempotency_keys_created_idx on idempotency_keys (created_at);
