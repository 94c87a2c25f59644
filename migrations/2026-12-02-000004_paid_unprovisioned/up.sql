-- The `paid_unprovisioned` check (src/actors/marzban/check.rs): paying users whose running
-- subscription the panel does not give, for longer than PAID_UNPROVISIONED_AFTER.

-- What the panel last reported of the user's expiry: unix seconds, 0 = never expires; NULL = not
-- known (never reported, or the panel user is missing).
ALTER TABLE subscriptions
    ADD COLUMN panel_expire        bigint,
    -- When what the panel must give (end, status, traffic limit) last changed: the grace period
    -- of the check starts here (provisioning takes seconds normally).
    ADD COLUMN access_changed_at   timestamptz NOT NULL DEFAULT now(),
    -- Since when the check has found this paid access missing on the panel; NULL: it is not.
    ADD COLUMN unprovisioned_since timestamptz;

-- Every writer of these columns is covered, including ones written later.
CREATE FUNCTION vpn_shop_touch_access_changed_at() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.access_changed_at := now();
    RETURN NEW;
END $$;
CREATE TRIGGER subscriptions_access_changed BEFORE UPDATE ON subscriptions FOR EACH ROW
    WHEN (OLD.expires_at IS DISTINCT FROM NEW.expires_at
          OR OLD.status IS DISTINCT FROM NEW.status
          OR OLD.traffic_limit_bytes IS DISTINCT FROM NEW.traffic_limit_bytes)
    EXECUTE FUNCTION vpn_shop_touch_access_changed_at();

-- The gauge counts these at every scrape.
CREATE INDEX subscriptions_unprovisioned_idx ON subscriptions (user_id)
    WHERE unprovisioned_since IS NOT NULL;
