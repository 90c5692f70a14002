-- Drop the foreign keys from the busiest tables to merchants. Each insert
-- that references a merchant takes a KEY SHARE lock on the merchant's row;
-- under load, many transactions of one merchant share that lock through
-- multixacts, which serializes them. Merchants are never deleted, and every
-- insert's merchant_id comes from an authenticated key, so nothing is lost.

alter table checkouts drop constraint checkouts_merchant_id_fkey;
alter table payment_attempts drop constraint payment_attempts_merchant_id_fkey;
alter table events drop constraint events_merchant_id_fkey;
alter table deliveries drop constraint deliveries_merchant_id_fkey;
alter table idempotency_keys drop constraint idempotency_keys_merchant_id_fkey;
