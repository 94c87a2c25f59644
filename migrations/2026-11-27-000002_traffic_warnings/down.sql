DROP INDEX IF EXISTS subscriptions_cleanup_idx;
ALTER TABLE subscriptions DROP COLUMN traffic_warned_percent, DROP COLUMN traffic_warned_expires_at;
