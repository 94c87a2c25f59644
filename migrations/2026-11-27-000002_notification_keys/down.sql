DROP INDEX IF EXISTS subscriptions_cleanup_idx;
DROP TABLE IF EXISTS rate_slots, notification_keys;
