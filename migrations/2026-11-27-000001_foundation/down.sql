DROP TABLE IF EXISTS scheduled_tasks, telegram_updates, bot_dialogues, audit_log, revoked_tokens,
    login_throttle, panel_stats, sync_runs, notifications, broadcasts, jobs, referrals,
    promo_redemptions, payment_events, payments, subscriptions, users, promo_codes, plans, admins CASCADE;
DROP FUNCTION IF EXISTS vpn_shop_touch_updated_at();
