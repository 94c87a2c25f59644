DROP TABLE email_logins;
DROP TABLE user_sessions;
DROP INDEX users_web_email_key;
ALTER TABLE users DROP CONSTRAINT users_reachable;
DELETE FROM users WHERE telegram_id IS NULL;
ALTER TABLE users ALTER COLUMN telegram_id SET NOT NULL;
