-- The subscriber cabinet (/app). A subscriber may now have no Telegram account: one who signs
-- up by email in a browser has only an email (and can link Telegram later).
ALTER TABLE users ALTER COLUMN telegram_id DROP NOT NULL;
ALTER TABLE users ADD CONSTRAINT users_reachable
    CHECK (telegram_id IS NOT NULL OR email IS NOT NULL);
-- One web-only account per address: two sign-up links of one address opened at once make one
-- user, not two. (Bot users may share an address they typed; they are found by Telegram.)
CREATE UNIQUE INDEX users_web_email_key ON users (lower(email)) WHERE telegram_id IS NULL;

-- Sessions of the cabinet: as admin_sessions, for subscribers. Only the SHA-256 of the
-- cookie's token is stored.
CREATE TABLE user_sessions (
    token_hash   bytea       PRIMARY KEY,
    user_id      bigint      NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    csrf_token   text        NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    last_seen_at timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL,
    remote_addr  text
);
CREATE INDEX user_sessions_user_idx ON user_sessions (user_id);
CREATE INDEX user_sessions_expires_idx ON user_sessions (expires_at);

-- One-time email sign-in links: the SHA-256 of the link's token, the (normalised) address it
-- was sent to, until when it works, and when it was used (once).
CREATE TABLE email_logins (
    token_hash  bytea       PRIMARY KEY,
    email       text        NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL,
    used_at     timestamptz
);
CREATE INDEX email_logins_expires_idx ON email_logins (expires_at);
