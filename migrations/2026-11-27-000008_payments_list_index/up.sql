-- The admin API lists orders newest first (optionally for one user, one provider or a period):
-- without this, every page sorted all the orders.
CREATE INDEX payments_created_idx ON payments (created_at DESC, id DESC);
