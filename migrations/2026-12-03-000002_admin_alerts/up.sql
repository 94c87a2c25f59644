-- Admin alerts (src/domain/alerts.rs): what the shop told its admins, the kinds they muted, and the
-- conditions being watched before they count. Deliveries are rows of `notifications`.

-- One row per alert. A condition (`firing`, later `resolved`) has at most one open row per key, so
-- it alerts once and its end is reported once; a notice (a refund, a sale, a digest) never ends,
-- and its key is unique for good.
CREATE TABLE alerts (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    key          text        NOT NULL,
    kind         text        NOT NULL CHECK (kind IN ('payment_flagged', 'refund_made', 'job_dead',
                                 'panel_down', 'sync_failing', 'backup_failed', 'webhook_probing',
                                 'paid_unprovisioned', 'sale', 'digest')),
    state        text        NOT NULL CHECK (state IN ('firing', 'resolved', 'notice')),
    payload      jsonb       NOT NULL,
    -- The kind was muted when it was raised: recorded, not delivered.
    muted        boolean     NOT NULL DEFAULT false,
    raised_at    timestamptz NOT NULL DEFAULT now(),
    resolved_at  timestamptz,
    -- What ended it (e.g. who marked a flagged payment reviewed).
    resolution   jsonb,
    updated_at   timestamptz NOT NULL DEFAULT now(),
    CHECK ((state = 'resolved') = (resolved_at IS NOT NULL))
);
CREATE UNIQUE INDEX alerts_open_key ON alerts (key) WHERE state <> 'resolved';
CREATE INDEX alerts_kind_idx ON alerts (kind, id DESC);
CREATE TRIGGER alerts_touch BEFORE UPDATE ON alerts FOR EACH ROW EXECUTE FUNCTION vpn_shop_touch_updated_at();

-- Kinds an admin muted (absent: not muted).
CREATE TABLE alert_settings (
    kind        text        PRIMARY KEY CHECK (kind IN ('payment_flagged', 'refund_made', 'job_dead',
                                'panel_down', 'sync_failing', 'backup_failed', 'webhook_probing',
                                'paid_unprovisioned', 'sale', 'digest')),
    muted       boolean     NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- Conditions seen but not alerted yet (e.g. the panel unreachable since `since`, alerted once that
-- is longer ago than ALERT_PANEL_DOWN_AFTER); the row goes when the condition ends.
CREATE TABLE alert_watches (
    key    text        PRIMARY KEY,
    since  timestamptz NOT NULL DEFAULT now(),
    detail text
);

-- The dead jobs `alerts_check` counts every ALERT_CHECK_INTERVAL (they stay until an admin acts).
CREATE INDEX jobs_dead_idx ON jobs (kind, finished_at) WHERE state = 'dead';

-- A delivery is to a user or, for an alert, to an admin (its recipient is in the dedup key).
ALTER TABLE notifications
    ALTER COLUMN user_id DROP NOT NULL,
    ADD COLUMN alert_id bigint REFERENCES alerts (id) ON DELETE CASCADE,
    ADD CONSTRAINT notifications_recipient CHECK (user_id IS NOT NULL OR alert_id IS NOT NULL);
CREATE INDEX notifications_alert_idx ON notifications (alert_id) WHERE alert_id IS NOT NULL;
