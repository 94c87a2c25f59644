DELETE FROM notifications WHERE user_id IS NULL;
ALTER TABLE notifications
    DROP CONSTRAINT notifications_recipient,
    DROP COLUMN alert_id,
    ALTER COLUMN user_id SET NOT NULL;
DROP INDEX jobs_dead_idx;
DROP TABLE alert_watches;
DROP TABLE alert_settings;
DROP TABLE alerts;
