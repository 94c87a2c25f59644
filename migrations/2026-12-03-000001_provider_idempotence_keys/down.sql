DROP INDEX IF EXISTS payment_refunds_provider_key;
ALTER TABLE payment_refunds DROP COLUMN IF EXISTS provider_key;
DROP INDEX IF EXISTS payments_provider_key;
ALTER TABLE payments DROP COLUMN IF EXISTS provider_key;
