-- The bodies of refused webhooks dropped by up.sql do not come back.
ALTER TABLE payment_events DROP COLUMN body_sha256;
ALTER TABLE payment_events DROP COLUMN body_bytes;
