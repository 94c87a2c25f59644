-- Traffic warnings are sent once per threshold (80 %, 100 %) per subscription period: the
-- highest threshold already announced, and the period (its expiry) it was announced for.
ALTER TABLE subscriptions
    ADD COLUMN traffic_warned_percent smallint NOT NULL DEFAULT 0
        CHECK (traffic_warned_percent IN (0, 80, 100)),
    ADD COLUMN traffic_warned_expires_at timestamptz;

-- The syncs look panel users up by name (unique already) and list long-expired ones.
CREATE INDEX subscriptions_cleanup_idx ON subscriptions (expires_at) WHERE status <> 'disabled';
