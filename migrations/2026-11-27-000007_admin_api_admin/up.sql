-- Indexes of the admin API's statistics and audit log listing (src/db/stats.rs, src/db/audit.rs).
-- "Paid" below is the predicate `status IN ('succeeded', 'refunded') AND provider <> 'free'` of
-- src/db/stats.rs: the planner uses these partial indexes only for queries that say the same.

-- Paying users and trial conversion: every paid payment in user order, read without the table.
CREATE INDEX payments_paid_user_idx ON payments (user_id, paid_at)
    WHERE status IN ('succeeded', 'refunded') AND provider <> 'free';

-- Revenue by day, provider and currency: a range of paid_at with everything summed, read
-- without the table.
CREATE INDEX payments_revenue_idx ON payments (paid_at)
    INCLUDE (provider, currency, amount_minor, refunded_minor)
    WHERE status IN ('succeeded', 'refunded') AND provider <> 'free';

-- Users who started a trial, in id order (merged with payments_paid_user_idx).
CREATE INDEX users_trial_idx ON users (id) INCLUDE (trial_used_at)
    WHERE trial_used_at IS NOT NULL;

-- The audit log by action, exact (`admin.update`) or by prefix (`user.`), newest first.
-- text_pattern_ops: LIKE 'prefix%' can use a btree only with it (or the C collation).
CREATE INDEX audit_log_action_idx ON audit_log (action text_pattern_ops, created_at DESC);
