-- The whole data model of vpn-shop. Later migrations only add columns where they must.
-- Conventions: ids bigint identity, times timestamptz (UTC), money bigint minor units
-- (kopecks for RUB, whole Stars for XTR), statuses text with CHECK constraints whose spellings
-- match the enums in src/domain/enums.rs.

CREATE FUNCTION vpn_shop_touch_updated_at() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.updated_at := now();
    RETURN NEW;
END;
$$;

-- Tariff plans offered in the bot.
CREATE TABLE plans (
    id                  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name                text        NOT NULL CHECK (length(name) BETWEEN 1 AND 64),
    days                integer     NOT NULL CHECK (days BETWEEN 1 AND 3660),
    price_minor         bigint      NOT NULL CHECK (price_minor >= 0),
    currency            text        NOT NULL DEFAULT 'RUB' CHECK (currency IN ('RUB')),
    price_stars         bigint      CHECK (price_stars IS NULL OR price_stars > 0),
    traffic_limit_bytes bigint      CHECK (traffic_limit_bytes IS NULL OR traffic_limit_bytes > 0),
    active              boolean     NOT NULL DEFAULT true,
    sort_order          integer     NOT NULL DEFAULT 0,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX plans_active_sort_idx ON plans (active, sort_order, id);

-- Promo codes: percent off, fixed amount off, or bonus days, with limits.
CREATE TABLE promo_codes (
    id                bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    code              text        NOT NULL CHECK (code ~ '^[A-Z0-9_-]{3,32}$'),
    kind              text        NOT NULL CHECK (kind IN ('percent', 'fixed', 'bonus_days')),
    -- percent: 1..100; fixed: kopecks; bonus_days: days.
    value             bigint      NOT NULL CHECK (value > 0),
    max_uses          integer     CHECK (max_uses IS NULL OR max_uses > 0),
    uses_count        integer     NOT NULL DEFAULT 0 CHECK (uses_count >= 0),
    once_per_user     boolean     NOT NULL DEFAULT true,
    new_users_only    boolean     NOT NULL DEFAULT false,
    min_plan_days     integer     CHECK (min_plan_days IS NULL OR min_plan_days > 0),
    valid_from        timestamptz,
    valid_until       timestamptz,
    active            boolean     NOT NULL DEFAULT true,
    note              text,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT promo_codes_code_key UNIQUE (code),
    CONSTRAINT promo_codes_percent_range CHECK (kind <> 'percent' OR value <= 100),
    CONSTRAINT promo_codes_validity CHECK (valid_until IS NULL OR valid_from IS NULL OR valid_from < valid_until),
    CONSTRAINT promo_codes_uses_within_limit CHECK (max_uses IS NULL OR uses_count <= max_uses)
);

-- Telegram subscribers.
CREATE TABLE users (
    id                  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    telegram_id         bigint      NOT NULL,
    username            text,
    first_name          text,
    last_name           text,
    language            text        NOT NULL DEFAULT 'en' CHECK (language IN ('ru', 'en')),
    email               text        CHECK (email IS NULL OR email ~ '^[^@[:space:]]+@[^@[:space:]]+$'),
    referral_code       text        NOT NULL CHECK (referral_code ~ '^[A-Za-z0-9_-]{4,32}$'),
    referred_by         bigint      REFERENCES users (id) ON DELETE SET NULL,
    -- A discount promo the user applied in the bot, remembered for the next checkout.
    pending_promo_id    bigint      REFERENCES promo_codes (id) ON DELETE SET NULL,
    trial_used_at       timestamptz,
    banned              boolean     NOT NULL DEFAULT false,
    bot_blocked         boolean     NOT NULL DEFAULT false,
    note                text,
    last_seen_at        timestamptz,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT users_telegram_id_key UNIQUE (telegram_id),
    CONSTRAINT users_referral_code_key UNIQUE (referral_code),
    CONSTRAINT users_not_self_referred CHECK (referred_by IS NULL OR referred_by <> id)
);
CREATE INDEX users_username_idx ON users (lower(username)) WHERE username IS NOT NULL;
CREATE INDEX users_email_idx ON users (lower(email)) WHERE email IS NOT NULL;
CREATE INDEX users_created_at_idx ON users (created_at);
CREATE INDEX users_referred_by_idx ON users (referred_by) WHERE referred_by IS NOT NULL;

-- One subscription per user; the panel user is made to match it.
CREATE TABLE subscriptions (
    id                      bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id                 bigint      NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    plan_id                 bigint      REFERENCES plans (id) ON DELETE SET NULL,
    panel_username          text        NOT NULL CHECK (panel_username ~ '^[a-z0-9_]{3,32}$'),
    status                  text        NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'expired', 'disabled')),
    is_trial                boolean     NOT NULL DEFAULT false,
    expires_at              timestamptz NOT NULL,
    traffic_limit_bytes     bigint      CHECK (traffic_limit_bytes IS NULL OR traffic_limit_bytes > 0),
    traffic_used_bytes      bigint      NOT NULL DEFAULT 0 CHECK (traffic_used_bytes >= 0),
    lifetime_used_bytes     bigint      NOT NULL DEFAULT 0 CHECK (lifetime_used_bytes >= 0),
    panel_status            text        CHECK (panel_status IN ('active', 'disabled', 'limited', 'expired', 'on_hold')),
    online_at               timestamptz,
    subscription_url        text,
    auto_renew              boolean     NOT NULL DEFAULT false,
    auto_renew_provider     text        CHECK (auto_renew_provider IN ('yookassa', 'stars')),
    -- YooKassa saved payment method id, or the Telegram charge id of a Star subscription.
    auto_renew_method_id    text,
    last_synced_at          timestamptz,
    created_at              timestamptz NOT NULL DEFAULT now(),
    updated_at              timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT subscriptions_user_id_key UNIQUE (user_id),
    CONSTRAINT subscriptions_panel_username_key UNIQUE (panel_username),
    CONSTRAINT subscriptions_auto_renew_method CHECK (NOT auto_renew OR auto_renew_provider IS NOT NULL)
);
CREATE INDEX subscriptions_expires_at_idx ON subscriptions (status, expires_at);
CREATE INDEX subscriptions_auto_renew_idx ON subscriptions (expires_at) WHERE auto_renew;

-- Orders. A row is written before the provider is called; `pending` is the only state that may change.
CREATE TABLE payments (
    id                      bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id                 bigint      NOT NULL REFERENCES users (id),
    plan_id                 bigint      REFERENCES plans (id) ON DELETE SET NULL,
    provider                text        NOT NULL CHECK (provider IN ('yookassa', 'wata', 'stars', 'free')),
    kind                    text        NOT NULL DEFAULT 'checkout' CHECK (kind IN ('checkout', 'auto_renewal', 'stars_renewal')),
    status                  text        NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'succeeded', 'canceled', 'expired', 'refunded')),
    amount_minor            bigint      NOT NULL CHECK (amount_minor >= 0),
    currency                text        NOT NULL CHECK (currency IN ('RUB', 'XTR')),
    days                    integer     NOT NULL CHECK (days > 0),
    promo_code_id           bigint      REFERENCES promo_codes (id) ON DELETE SET NULL,
    discount_minor          bigint      NOT NULL DEFAULT 0 CHECK (discount_minor >= 0),
    bonus_days              integer     NOT NULL DEFAULT 0 CHECK (bonus_days >= 0),
    -- The provider's id: YooKassa payment id, WATA link/transaction id, Telegram charge id.
    external_id             text,
    confirmation_url        text,
    save_payment_method     boolean     NOT NULL DEFAULT false,
    refunded_minor          bigint      NOT NULL DEFAULT 0 CHECK (refunded_minor >= 0 AND refunded_minor <= amount_minor),
    failure_reason          text,
    raw_payload             jsonb,
    link_expires_at         timestamptz,
    paid_at                 timestamptz,
    created_at              timestamptz NOT NULL DEFAULT now(),
    updated_at              timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT payments_provider_external_id_key UNIQUE (provider, external_id),
    CONSTRAINT payments_paid_at_when_succeeded CHECK (status NOT IN ('succeeded', 'refunded') OR paid_at IS NOT NULL)
);
CREATE INDEX payments_user_idx ON payments (user_id, created_at DESC);
CREATE INDEX payments_pending_idx ON payments (created_at) WHERE status = 'pending';
CREATE INDEX payments_paid_at_idx ON payments (paid_at) WHERE paid_at IS NOT NULL;
CREATE INDEX payments_status_created_idx ON payments (status, created_at);

-- Every webhook or payment update received, with what we made of it.
CREATE TABLE payment_events (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    provider        text        NOT NULL CHECK (provider IN ('yookassa', 'wata', 'stars', 'free')),
    -- The provider's identity of the event (payment id + status, transaction id, charge id).
    event_key       text        NOT NULL,
    event_type      text        NOT NULL,
    payment_id      bigint      REFERENCES payments (id) ON DELETE SET NULL,
    verdict         text        NOT NULL CHECK (verdict IN ('accepted', 'duplicate', 'forged', 'mismatched', 'ignored', 'invalid')),
    detail          text,
    remote_addr     text,
    payload         jsonb,
    received_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX payment_events_payment_idx ON payment_events (payment_id, received_at);
CREATE INDEX payment_events_key_idx ON payment_events (provider, event_key);
CREATE INDEX payment_events_received_idx ON payment_events (received_at);

CREATE TABLE promo_redemptions (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    promo_code_id   bigint      NOT NULL REFERENCES promo_codes (id) ON DELETE CASCADE,
    user_id         bigint      NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    payment_id      bigint      REFERENCES payments (id) ON DELETE SET NULL,
    discount_minor  bigint      NOT NULL DEFAULT 0 CHECK (discount_minor >= 0),
    bonus_days      integer     NOT NULL DEFAULT 0 CHECK (bonus_days >= 0),
    redeemed_at     timestamptz NOT NULL DEFAULT now(),
    -- One redemption per order; bonus-day codes (no order) are redeemed once per user and code.
    CONSTRAINT promo_redemptions_payment_key UNIQUE (payment_id)
);
CREATE INDEX promo_redemptions_code_idx ON promo_redemptions (promo_code_id, redeemed_at);
CREATE INDEX promo_redemptions_user_idx ON promo_redemptions (user_id, promo_code_id);

-- Who invited whom, and the bonuses granted for it.
CREATE TABLE referrals (
    id                      bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    inviter_id              bigint      NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    invitee_id              bigint      NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    invitee_bonus_days      integer     NOT NULL DEFAULT 0 CHECK (invitee_bonus_days >= 0),
    inviter_bonus_days      integer     NOT NULL DEFAULT 0 CHECK (inviter_bonus_days >= 0),
    -- The invitee's first successful payment, which granted the inviter's bonus.
    rewarded_payment_id     bigint      REFERENCES payments (id) ON DELETE SET NULL,
    inviter_rewarded_at     timestamptz,
    created_at              timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT referrals_invitee_key UNIQUE (invitee_id),
    CONSTRAINT referrals_not_self CHECK (inviter_id <> invitee_id)
);
CREATE INDEX referrals_inviter_idx ON referrals (inviter_id, created_at);

-- The durable job queue (outbox). See src/db/jobs.rs.
CREATE TABLE jobs (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind            text        NOT NULL CHECK (kind ~ '^[a-z][a-z0-9_.]{0,63}$'),
    payload         jsonb       NOT NULL DEFAULT '{}'::jsonb,
    state           text        NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'running', 'done', 'dead')),
    attempts        integer     NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    max_attempts    integer     NOT NULL CHECK (max_attempts > 0),
    run_at          timestamptz NOT NULL DEFAULT now(),
    dedup_key       text,
    locked_by       text,
    locked_at       timestamptz,
    last_error      text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    finished_at     timestamptz,
    CONSTRAINT jobs_lock_consistent CHECK ((state = 'running') = (locked_at IS NOT NULL))
);
-- Claiming: due pending jobs in order; expired leases of running jobs.
CREATE INDEX jobs_due_idx ON jobs (run_at, id) WHERE state = 'pending';
CREATE INDEX jobs_running_idx ON jobs (locked_at) WHERE state = 'running';
CREATE INDEX jobs_kind_state_idx ON jobs (kind, state);
CREATE INDEX jobs_finished_idx ON jobs (finished_at) WHERE state = 'done';
-- An identical job is not enqueued twice while one is waiting.
CREATE UNIQUE INDEX jobs_dedup_pending_key ON jobs (dedup_key) WHERE state = 'pending' AND dedup_key IS NOT NULL;

-- Admin broadcasts; deliveries are rows of `notifications`.
CREATE TABLE broadcasts (
    id                      bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    created_by_admin_id     bigint,
    created_by_telegram_id  bigint,
    text                    text        NOT NULL CHECK (length(text) BETWEEN 1 AND 4096),
    button_text             text,
    button_url              text,
    -- {"segment": "all" | "active" | "expired" | "trial" | "never_paid", "language": "ru" | "en" | null}
    audience                jsonb       NOT NULL DEFAULT '{"segment": "all"}'::jsonb,
    status                  text        NOT NULL DEFAULT 'draft' CHECK (status IN ('draft', 'queued', 'running', 'completed', 'canceled')),
    total                   integer     NOT NULL DEFAULT 0 CHECK (total >= 0),
    sent                    integer     NOT NULL DEFAULT 0 CHECK (sent >= 0),
    failed                  integer     NOT NULL DEFAULT 0 CHECK (failed >= 0),
    blocked                 integer     NOT NULL DEFAULT 0 CHECK (blocked >= 0),
    -- Highest users.id already handed to delivery: a restart resumes after it.
    cursor_user_id          bigint      NOT NULL DEFAULT 0,
    created_at              timestamptz NOT NULL DEFAULT now(),
    started_at              timestamptz,
    finished_at             timestamptz,
    updated_at              timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT broadcasts_button_pair CHECK ((button_text IS NULL) = (button_url IS NULL))
);
CREATE INDEX broadcasts_status_idx ON broadcasts (status, created_at);

-- One row per notification per channel: its delivery outcome.
CREATE TABLE notifications (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id         bigint      NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    kind            text        NOT NULL,
    channel         text        NOT NULL CHECK (channel IN ('telegram', 'email')),
    status          text        NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'sent', 'failed', 'skipped')),
    -- Identity of the logical notification, e.g. expiry:3d:<user>:<expires_at>.
    dedup_key       text        NOT NULL,
    payload         jsonb       NOT NULL DEFAULT '{}'::jsonb,
    broadcast_id    bigint      REFERENCES broadcasts (id) ON DELETE CASCADE,
    attempts        integer     NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    last_error      text,
    sent_at         timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT notifications_dedup_key UNIQUE (dedup_key, channel)
);
CREATE INDEX notifications_user_idx ON notifications (user_id, created_at DESC);
CREATE INDEX notifications_status_idx ON notifications (status, created_at);
CREATE INDEX notifications_broadcast_idx ON notifications (broadcast_id, status) WHERE broadcast_id IS NOT NULL;

-- Panel synchronisation runs.
CREATE TABLE sync_runs (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind            text        NOT NULL,
    status          text        NOT NULL DEFAULT 'running' CHECK (status IN ('running', 'succeeded', 'failed')),
    started_at      timestamptz NOT NULL DEFAULT now(),
    finished_at     timestamptz,
    checked         integer     NOT NULL DEFAULT 0 CHECK (checked >= 0),
    created         integer     NOT NULL DEFAULT 0 CHECK (created >= 0),
    updated         integer     NOT NULL DEFAULT 0 CHECK (updated >= 0),
    failed          integer     NOT NULL DEFAULT 0 CHECK (failed >= 0),
    error           text
);
CREATE INDEX sync_runs_kind_idx ON sync_runs (kind, started_at DESC);

-- Snapshots of the panel's GET /api/system.
CREATE TABLE panel_stats (
    id                          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    collected_at                timestamptz NOT NULL DEFAULT now(),
    version                     text,
    mem_total                   bigint NOT NULL,
    mem_used                    bigint NOT NULL,
    cpu_cores                   integer NOT NULL,
    cpu_usage                   double precision NOT NULL,
    total_user                  bigint NOT NULL,
    online_users                bigint NOT NULL,
    users_active                bigint NOT NULL,
    users_on_hold               bigint NOT NULL,
    users_disabled              bigint NOT NULL,
    users_expired               bigint NOT NULL,
    users_limited               bigint NOT NULL,
    incoming_bandwidth          bigint NOT NULL,
    outgoing_bandwidth          bigint NOT NULL,
    incoming_bandwidth_speed    bigint NOT NULL,
    outgoing_bandwidth_speed    bigint NOT NULL
);
CREATE INDEX panel_stats_collected_idx ON panel_stats (collected_at DESC);

-- Accounts of the admin REST API.
CREATE TABLE admins (
    id                      bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    username                text        NOT NULL CHECK (username ~ '^[a-z0-9_.-]{3,64}$'),
    password_hash           text        NOT NULL,
    role                    text        NOT NULL CHECK (role IN ('admin', 'operator', 'viewer')),
    active                  boolean     NOT NULL DEFAULT true,
    -- Tokens issued before this moment are no longer accepted.
    tokens_valid_after      timestamptz NOT NULL DEFAULT now(),
    last_login_at           timestamptz,
    created_at              timestamptz NOT NULL DEFAULT now(),
    updated_at              timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT admins_username_key UNIQUE (username)
);
ALTER TABLE broadcasts ADD CONSTRAINT broadcasts_admin_fk
    FOREIGN KEY (created_by_admin_id) REFERENCES admins (id) ON DELETE SET NULL;

-- Failed-login accounting per username (also for unknown usernames, so existence is not revealed).
CREATE TABLE login_throttle (
    username            text        PRIMARY KEY,
    failures            integer     NOT NULL CHECK (failures >= 0),
    window_started_at   timestamptz NOT NULL,
    locked_until        timestamptz
);

-- Access tokens revoked before their expiry (logout).
CREATE TABLE revoked_tokens (
    jti         uuid        PRIMARY KEY,
    admin_id    bigint      NOT NULL REFERENCES admins (id) ON DELETE CASCADE,
    expires_at  timestamptz NOT NULL
);
CREATE INDEX revoked_tokens_expires_idx ON revoked_tokens (expires_at);

-- Who changed what: every mutation by an admin (API, bot, CLI) or by the system.
CREATE TABLE audit_log (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    admin_id        bigint      REFERENCES admins (id) ON DELETE SET NULL,
    -- Display form of the actor: "admin:alice", "telegram:123456", "cli", "system".
    actor           text        NOT NULL,
    action          text        NOT NULL,
    target_type     text,
    target_id       text,
    before          jsonb,
    after           jsonb,
    remote_addr     text,
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX audit_log_created_idx ON audit_log (created_at DESC);
CREATE INDEX audit_log_target_idx ON audit_log (target_type, target_id, created_at DESC);
CREATE INDEX audit_log_admin_idx ON audit_log (admin_id, created_at DESC);

-- Telegram dialogue state (teloxide Storage), so any replica continues a conversation.
CREATE TABLE bot_dialogues (
    chat_id     bigint      PRIMARY KEY,
    state       jsonb       NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- Telegram update ids already handled (webhook redeliveries and replicas).
CREATE TABLE telegram_updates (
    update_id       bigint      PRIMARY KEY,
    received_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX telegram_updates_received_idx ON telegram_updates (received_at);

-- Periodic tasks of the Scheduler (see src/actors/scheduler.rs).
CREATE TABLE scheduled_tasks (
    name            text        PRIMARY KEY CHECK (name ~ '^[a-z][a-z0-9_]{0,63}$'),
    interval_secs   integer     NOT NULL CHECK (interval_secs > 0),
    enabled         boolean     NOT NULL DEFAULT true,
    next_run_at     timestamptz NOT NULL,
    last_run_at     timestamptz,
    last_job_id     bigint      REFERENCES jobs (id) ON DELETE SET NULL,
    -- "enqueued", or why the run was skipped (e.g. the previous run is still in progress).
    last_result     text,
    updated_at      timestamptz NOT NULL DEFAULT now()
);

CREATE TRIGGER plans_touch BEFORE UPDATE ON plans FOR EACH ROW EXECUTE FUNCTION vpn_shop_touch_updated_at();
CREATE TRIGGER promo_codes_touch BEFORE UPDATE ON promo_codes FOR EACH ROW EXECUTE FUNCTION vpn_shop_touch_updated_at();
CREATE TRIGGER users_touch BEFORE UPDATE ON users FOR EACH ROW EXECUTE FUNCTION vpn_shop_touch_updated_at();
CREATE TRIGGER subscriptions_touch BEFORE UPDATE ON subscriptions FOR EACH ROW EXECUTE FUNCTION vpn_shop_touch_updated_at();
CREATE TRIGGER payments_touch BEFORE UPDATE ON payments FOR EACH ROW EXECUTE FUNCTION vpn_shop_touch_updated_at();
CREATE TRIGGER jobs_touch BEFORE UPDATE ON jobs FOR EACH ROW EXECUTE FUNCTION vpn_shop_touch_updated_at();
CREATE TRIGGER broadcasts_touch BEFORE UPDATE ON broadcasts FOR EACH ROW EXECUTE FUNCTION vpn_shop_touch_updated_at();
CREATE TRIGGER notifications_touch BEFORE UPDATE ON notifications FOR EACH ROW EXECUTE FUNCTION vpn_shop_touch_updated_at();
CREATE TRIGGER admins_touch BEFORE UPDATE ON admins FOR EACH ROW EXECUTE FUNCTION vpn_shop_touch_updated_at();
CREATE TRIGGER scheduled_tasks_touch BEFORE UPDATE ON scheduled_tasks FOR EACH ROW EXECUTE FUNCTION vpn_shop_touch_updated_at();

-- Default plans; admins change them later. Prices in kopecks and Stars.
INSERT INTO plans (name, days, price_minor, currency, price_stars, traffic_limit_bytes, sort_order) VALUES
    ('1 month',   30,  19900, 'RUB', 150,  NULL, 10),
    ('3 months',  90,  54900, 'RUB', 400,  NULL, 20),
    ('6 months',  180, 99900, 'RUB', 750,  NULL, 30),
    ('12 months', 365, 179900, 'RUB', 1350, NULL, 40);
