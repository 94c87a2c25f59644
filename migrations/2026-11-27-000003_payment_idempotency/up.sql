-- An order the shop creates on its own (an automatic renewal for one subscription period) carries
-- a key naming what it is for, e.g. auto_renew:<user>:<end of the period>: a second attempt finds
-- the first order instead of charging twice.
ALTER TABLE payments ADD COLUMN idempotency_key text;
CREATE UNIQUE INDEX payments_idempotency_key ON payments (idempotency_key) WHERE idempotency_key IS NOT NULL;
