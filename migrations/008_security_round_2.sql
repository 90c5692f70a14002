-- Security round 2 (issue 16).

-- Test and live modes get separate account webhook secrets: a test key must
-- never obtain what signs a live delivery. The existing webhook_secret stays
-- each merchant's live secret. The test secret must be sealed with
-- HOOKLINE_ENCRYPTION_KEY, which SQL cannot do, so existing merchants start
-- without one; hookline makes it, sealed, the first time it is needed
-- (GET /v1/account with a test key, or a test-mode delivery to a checkout's
-- webhook_url), in one statement that keeps whichever concurrent reader's
-- secret wrote first. Merchants created from now on get both at once.
alter table merchants add column test_webhook_secret text;

-- Each endpoint's signature scheme: Standard Webhooks v1 (HMAC-SHA256, the
-- default) or v1a (Ed25519). For ed25519 the secret columns hold the sealed
-- private key (its seed) instead of a shared secret.
alter table webhook_endpoints add column signature_scheme text not null default 'hmac'
    check (signature_scheme in ('hmac', 'ed25519'));
