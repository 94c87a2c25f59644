-- An address is "verified" once a sign-in link mailed to it was used: the cabinet's email
-- sign-in opens the account of a verified address, whether or not Telegram is linked to it.
-- An address typed into the bot is not verified. Every web-only account's address was verified
-- by the link that created it.
ALTER TABLE users ADD COLUMN email_verified_at timestamptz;
UPDATE users SET email_verified_at = created_at WHERE telegram_id IS NULL;
ALTER TABLE users ADD CONSTRAINT users_verified_email
    CHECK (email_verified_at IS NULL OR email IS NOT NULL);
ALTER TABLE users ADD CONSTRAINT users_web_email_verified
    CHECK (telegram_id IS NOT NULL OR email_verified_at IS NOT NULL);
-- One account per verified address (it was the web-only accounts' address before).
DROP INDEX users_web_email_key;
CREATE UNIQUE INDEX users_verified_email_key ON users (lower(email)) WHERE email_verified_at IS NOT NULL;

-- Codes that link a Telegram account to a web-only account: shown in the cabinet, sent to the
-- bot (`/link CODE`). Only the SHA-256 of the code is stored; one live code per account.
CREATE TABLE telegram_link_codes (
    code_hash   bytea       PRIMARY KEY,
    user_id     bigint      NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL,
    CONSTRAINT telegram_link_codes_user_key UNIQUE (user_id)
);
CREATE INDEX telegram_link_codes_expires_idx ON telegram_link_codes (expires_at);

-- A link mailed to confirm a new address for an existing account (the cabinet's email setting)
-- names that account; a sign-in link names none.
ALTER TABLE email_logins ADD COLUMN user_id bigint REFERENCES users (id) ON DELETE CASCADE;
