-- The Idempotence-Key the shop sends the payment provider (YooKassa) for an order or a refund.
-- It was derived from the row id (order-<id>, refund-<order>-<id>), but ids are not unique
-- beyond one database: after a restore from a backup, or in a second shop on the same YooKassa
-- account, a new order reuses an id, and YooKassa, which keeps a key for 24 h, answers the old
-- payment or "Idempotence key duplicated". A random UUID v4 (36 characters; YooKassa allows 64)
-- is drawn when the row is written and kept, so every retry of the same operation repeats it.

-- Existing rows keep the key they were (or may have been) sent with: a pending order that
-- already called YooKassa must repeat exactly that key.
ALTER TABLE payments ADD COLUMN provider_key text;
UPDATE payments SET provider_key = 'order-' || id;
ALTER TABLE payments
    ALTER COLUMN provider_key SET DEFAULT gen_random_uuid()::text,
    ALTER COLUMN provider_key SET NOT NULL;
CREATE UNIQUE INDEX payments_provider_key ON payments (provider_key);

ALTER TABLE payment_refunds ADD COLUMN provider_key text;
UPDATE payment_refunds SET provider_key = 'refund-' || payment_id || '-' || id;
ALTER TABLE payment_refunds
    ALTER COLUMN provider_key SET DEFAULT gen_random_uuid()::text,
    ALTER COLUMN provider_key SET NOT NULL;
CREATE UNIQUE INDEX payment_refunds_provider_key ON payment_refunds (provider_key);
