ALTER TABLE email_logins DROP COLUMN user_id;
DROP TABLE telegram_link_codes;
DROP INDEX users_verified_email_key;
CREATE UNIQUE INDEX users_web_email_key ON users (lower(email)) WHERE telegram_id IS NULL;
ALTER TABLE users DROP CONSTRAINT users_web_email_verified;
ALTER TABLE users DROP CONSTRAINT users_verified_email;
ALTER TABLE users DROP COLUMN email_verified_at;
