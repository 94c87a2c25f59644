DROP INDEX subscriptions_unprovisioned_idx;
DROP TRIGGER subscriptions_access_changed ON subscriptions;
DROP FUNCTION vpn_shop_touch_access_changed_at();
ALTER TABLE subscriptions
    DROP COLUMN unprovisioned_since,
    DROP COLUMN access_changed_at,
    DROP COLUMN panel_expire;
