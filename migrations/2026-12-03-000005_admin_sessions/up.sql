-- Sessions of the admin web console (/admin). The cookie carries a random token; only its
-- SHA-256 is stored here, so a copy of this table lets no one in. A session ends at
-- `expires_at` (absolute lifetime), after an idle time since `last_seen_at`, at logout, or when
-- the account's password or role changes (`admins.tokens_valid_after`, as for API tokens).
CREATE TABLE admin_sessions (
    token_hash   bytea       PRIMARY KEY,
    admin_id     bigint      NOT NULL REFERENCES admins (id) ON DELETE CASCADE,
    -- The CSRF token every form of this session carries.
    csrf_token   text        NOT NULL,
    -- The language the admin chose for the console.
    language     text        NOT NULL CHECK (language IN ('ru', 'en')),
    created_at   timestamptz NOT NULL DEFAULT now(),
    last_seen_at timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL,
    remote_addr  text
);
CREATE INDEX admin_sessions_admin_idx ON admin_sessions (admin_id);
CREATE INDEX admin_sessions_expires_idx ON admin_sessions (expires_at);
