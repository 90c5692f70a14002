-- Every secret rotated out keeps signing until its own grace period ends
-- (issue 19): with one previous secret, a second rotation inside the first
-- one's grace period replaced it, and the first grace ended early. The
-- previous secrets (or Ed25519 keys), newest first, sealed as the current one,
-- each with the end of its grace; hookline keeps at most five
-- (delivery.MaxPreviousSecrets).
alter table webhook_endpoints
    add column previous_secrets text[] not null default '{}',
    add column previous_secrets_expire_at timestamptz[] not null default '{}';

update webhook_endpoints
    set previous_secrets = array[previous_secret],
        previous_secrets_expire_at = array[previous_secret_expires_at]
    where previous_secret is not null and previous_secret_expires_at > now();

-- previous_secret and previous_secret_expires_at stay, no longer written: the
-- processes of the previous release read them until they are replaced
-- (`hookline migrate` runs before the new processes start). A later migration
-- drops them.
comment on column webhook_endpoints.previous_secret is 'unused since migration 011: see previous_secrets';
comment on column webhook_endpoints.previous_secret_expires_at is 'unused since migration 011: see previous_secrets_expire_at';
