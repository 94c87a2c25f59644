// @generated automatically by Diesel CLI.

diesel::table! {
    admin_sessions (token_hash) {
        token_hash -> Bytea,
        admin_id -> Int8,
        csrf_token -> Text,
        language -> Text,
        created_at -> Timestamptz,
        last_seen_at -> Timestamptz,
        expires_at -> Timestamptz,
        remote_addr -> Nullable<Text>,
    }
}

diesel::table! {
    admins (id) {
        id -> Int8,
        username -> Text,
        password_hash -> Text,
        role -> Text,
        active -> Bool,
        tokens_valid_after -> Timestamptz,
        last_login_at -> Nullable<Timestamptz>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    alert_settings (kind) {
        kind -> Text,
        muted -> Bool,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    alert_watches (key) {
        key -> Text,
        since -> Timestamptz,
        detail -> Nullable<Text>,
    }
}

diesel::table! {
    alerts (id) {
        id -> Int8,
        key -> Text,
        kind -> Text,
        state -> Text,
        payload -> Jsonb,
        muted -> Bool,
        raised_at -> Timestamptz,
        resolved_at -> Nullable<Timestamptz>,
        resolution -> Nullable<Jsonb>,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    audit_log (id) {
        id -> Int8,
        admin_id -> Nullable<Int8>,
        actor -> Text,
        action -> Text,
        target_type -> Nullable<Text>,
        target_id -> Nullable<Text>,
        before -> Nullable<Jsonb>,
        after -> Nullable<Jsonb>,
        remote_addr -> Nullable<Text>,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    bot_dialogues (chat_id) {
        chat_id -> Int8,
        state -> Jsonb,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    broadcasts (id) {
        id -> Int8,
        created_by_admin_id -> Nullable<Int8>,
        created_by_telegram_id -> Nullable<Int8>,
        text -> Text,
        button_text -> Nullable<Text>,
        button_url -> Nullable<Text>,
        audience -> Jsonb,
        status -> Text,
        total -> Int4,
        sent -> Int4,
        failed -> Int4,
        blocked -> Int4,
        cursor_user_id -> Int8,
        created_at -> Timestamptz,
        started_at -> Nullable<Timestamptz>,
        finished_at -> Nullable<Timestamptz>,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    email_logins (token_hash) {
        token_hash -> Bytea,
        email -> Text,
        created_at -> Timestamptz,
        expires_at -> Timestamptz,
        used_at -> Nullable<Timestamptz>,
        user_id -> Nullable<Int8>,
    }
}

diesel::table! {
    jobs (id) {
        id -> Int8,
        kind -> Text,
        payload -> Jsonb,
        state -> Text,
        attempts -> Int4,
        max_attempts -> Int4,
        run_at -> Timestamptz,
        dedup_key -> Nullable<Text>,
        locked_by -> Nullable<Text>,
        locked_at -> Nullable<Timestamptz>,
        last_error -> Nullable<Text>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        finished_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    login_throttle (username) {
        username -> Text,
        failures -> Int4,
        window_started_at -> Timestamptz,
        locked_until -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    notification_keys (dedup_key) {
        dedup_key -> Text,
        user_id -> Int8,
        kind -> Text,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    notifications (id) {
        id -> Int8,
        user_id -> Nullable<Int8>,
        kind -> Text,
        channel -> Text,
        status -> Text,
        dedup_key -> Text,
        payload -> Jsonb,
        broadcast_id -> Nullable<Int8>,
        attempts -> Int4,
        last_error -> Nullable<Text>,
        sent_at -> Nullable<Timestamptz>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        alert_id -> Nullable<Int8>,
    }
}

diesel::table! {
    panel_stats (id) {
        id -> Int8,
        collected_at -> Timestamptz,
        version -> Nullable<Text>,
        mem_total -> Int8,
        mem_used -> Int8,
        cpu_cores -> Int4,
        cpu_usage -> Float8,
        total_user -> Int8,
        online_users -> Int8,
        users_active -> Int8,
        users_on_hold -> Int8,
        users_disabled -> Int8,
        users_expired -> Int8,
        users_limited -> Int8,
        incoming_bandwidth -> Int8,
        outgoing_bandwidth -> Int8,
        incoming_bandwidth_speed -> Int8,
        outgoing_bandwidth_speed -> Int8,
    }
}

diesel::table! {
    payment_events (id) {
        id -> Int8,
        provider -> Text,
        event_key -> Text,
        event_type -> Text,
        payment_id -> Nullable<Int8>,
        verdict -> Text,
        detail -> Nullable<Text>,
        remote_addr -> Nullable<Text>,
        payload -> Nullable<Jsonb>,
        received_at -> Timestamptz,
        body_bytes -> Nullable<Int4>,
        body_sha256 -> Nullable<Text>,
    }
}

diesel::table! {
    payment_refunds (id) {
        id -> Int8,
        payment_id -> Int8,
        provider -> Text,
        external_id -> Nullable<Text>,
        amount_minor -> Int8,
        days_taken_back -> Int4,
        created_at -> Timestamptz,
        state -> Text,
        provider_key -> Text,
    }
}

diesel::table! {
    payments (id) {
        id -> Int8,
        user_id -> Int8,
        plan_id -> Nullable<Int8>,
        provider -> Text,
        kind -> Text,
        status -> Text,
        amount_minor -> Int8,
        currency -> Text,
        days -> Int4,
        promo_code_id -> Nullable<Int8>,
        discount_minor -> Int8,
        bonus_days -> Int4,
        external_id -> Nullable<Text>,
        confirmation_url -> Nullable<Text>,
        save_payment_method -> Bool,
        refunded_minor -> Int8,
        failure_reason -> Nullable<Text>,
        raw_payload -> Nullable<Jsonb>,
        link_expires_at -> Nullable<Timestamptz>,
        paid_at -> Nullable<Timestamptz>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        idempotency_key -> Nullable<Text>,
        payment_method_id -> Nullable<Text>,
        provider_key -> Text,
    }
}

diesel::table! {
    plans (id) {
        id -> Int8,
        name -> Text,
        days -> Int4,
        price_minor -> Int8,
        currency -> Text,
        price_stars -> Nullable<Int8>,
        traffic_limit_bytes -> Nullable<Int8>,
        active -> Bool,
        sort_order -> Int4,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        names -> Jsonb,
        descriptions -> Jsonb,
    }
}

diesel::table! {
    promo_codes (id) {
        id -> Int8,
        code -> Text,
        kind -> Text,
        value -> Int8,
        max_uses -> Nullable<Int4>,
        uses_count -> Int4,
        once_per_user -> Bool,
        new_users_only -> Bool,
        min_plan_days -> Nullable<Int4>,
        valid_from -> Nullable<Timestamptz>,
        valid_until -> Nullable<Timestamptz>,
        active -> Bool,
        note -> Nullable<Text>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        reserved_count -> Int4,
    }
}

diesel::table! {
    promo_redemptions (id) {
        id -> Int8,
        promo_code_id -> Int8,
        user_id -> Int8,
        payment_id -> Nullable<Int8>,
        discount_minor -> Int8,
        bonus_days -> Int4,
        redeemed_at -> Timestamptz,
        once_per_user -> Bool,
    }
}

diesel::table! {
    promo_reservations (payment_id) {
        payment_id -> Int8,
        promo_code_id -> Int8,
        user_id -> Int8,
        once_per_user -> Bool,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    rate_slots (key) {
        key -> Text,
        next_at -> Timestamptz,
    }
}

diesel::table! {
    referrals (id) {
        id -> Int8,
        inviter_id -> Int8,
        invitee_id -> Int8,
        invitee_bonus_days -> Int4,
        inviter_bonus_days -> Int4,
        rewarded_payment_id -> Nullable<Int8>,
        inviter_rewarded_at -> Nullable<Timestamptz>,
        created_at -> Timestamptz,
        inviter_bonus_revoked_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    revoked_tokens (jti) {
        jti -> Uuid,
        admin_id -> Int8,
        expires_at -> Timestamptz,
    }
}

diesel::table! {
    row_counts (table_name) {
        table_name -> Text,
        n -> Int8,
    }
}

diesel::table! {
    scheduled_tasks (name) {
        name -> Text,
        interval_secs -> Int4,
        enabled -> Bool,
        next_run_at -> Timestamptz,
        last_run_at -> Nullable<Timestamptz>,
        last_job_id -> Nullable<Int8>,
        last_result -> Nullable<Text>,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    subscriptions (id) {
        id -> Int8,
        user_id -> Int8,
        plan_id -> Nullable<Int8>,
        panel_username -> Text,
        status -> Text,
        is_trial -> Bool,
        expires_at -> Timestamptz,
        traffic_limit_bytes -> Nullable<Int8>,
        traffic_used_bytes -> Int8,
        lifetime_used_bytes -> Int8,
        panel_status -> Nullable<Text>,
        online_at -> Nullable<Timestamptz>,
        subscription_url -> Nullable<Text>,
        auto_renew -> Bool,
        auto_renew_provider -> Nullable<Text>,
        auto_renew_method_id -> Nullable<Text>,
        last_synced_at -> Nullable<Timestamptz>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        traffic_period -> Int4,
        traffic_reset_period -> Int4,
        panel_expire -> Nullable<Int8>,
        access_changed_at -> Timestamptz,
        unprovisioned_since -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    support_conversations (id) {
        id -> Int8,
        user_id -> Int8,
        state -> Text,
        topic_id -> Nullable<Int4>,
        opened_at -> Timestamptz,
        waiting_since -> Nullable<Timestamptz>,
        last_message_at -> Timestamptz,
        first_response_at -> Nullable<Timestamptz>,
        answered_at -> Nullable<Timestamptz>,
        answered_by -> Nullable<Text>,
        closed_at -> Nullable<Timestamptz>,
        closed_by -> Nullable<Text>,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    support_forwards (chat_id, message_id) {
        chat_id -> Int8,
        message_id -> Int4,
        conversation_id -> Int8,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    support_messages (id) {
        id -> Int8,
        conversation_id -> Int8,
        direction -> Text,
        author -> Nullable<Text>,
        kind -> Text,
        body -> Nullable<Text>,
        chat_id -> Nullable<Int8>,
        message_id -> Nullable<Int4>,
        created_at -> Timestamptz,
        delivered_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    sync_runs (id) {
        id -> Int8,
        kind -> Text,
        status -> Text,
        started_at -> Timestamptz,
        finished_at -> Nullable<Timestamptz>,
        checked -> Int4,
        created -> Int4,
        updated -> Int4,
        failed -> Int4,
        error -> Nullable<Text>,
    }
}

diesel::table! {
    telegram_updates (update_id) {
        update_id -> Int8,
        received_at -> Timestamptz,
    }
}

diesel::table! {
    user_sessions (token_hash) {
        token_hash -> Bytea,
        user_id -> Int8,
        csrf_token -> Text,
        created_at -> Timestamptz,
        last_seen_at -> Timestamptz,
        expires_at -> Timestamptz,
        remote_addr -> Nullable<Text>,
    }
}

diesel::table! {
    telegram_link_codes (code_hash) {
        code_hash -> Bytea,
        user_id -> Int8,
        created_at -> Timestamptz,
        expires_at -> Timestamptz,
    }
}

diesel::table! {
    users (id) {
        id -> Int8,
        telegram_id -> Nullable<Int8>,
        username -> Nullable<Text>,
        first_name -> Nullable<Text>,
        last_name -> Nullable<Text>,
        language -> Text,
        email -> Nullable<Text>,
        referral_code -> Text,
        referred_by -> Nullable<Int8>,
        pending_promo_id -> Nullable<Int8>,
        trial_used_at -> Nullable<Timestamptz>,
        banned -> Bool,
        bot_blocked -> Bool,
        note -> Nullable<Text>,
        last_seen_at -> Nullable<Timestamptz>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        email_verified_at -> Nullable<Timestamptz>,
    }
}

diesel::joinable!(admin_sessions -> admins (admin_id));
diesel::joinable!(audit_log -> admins (admin_id));
diesel::joinable!(broadcasts -> admins (created_by_admin_id));
diesel::joinable!(email_logins -> users (user_id));
diesel::joinable!(notification_keys -> users (user_id));
diesel::joinable!(telegram_link_codes -> users (user_id));
diesel::joinable!(user_sessions -> users (user_id));
diesel::joinable!(notifications -> alerts (alert_id));
diesel::joinable!(notifications -> broadcasts (broadcast_id));
diesel::joinable!(notifications -> users (user_id));
diesel::joinable!(payment_events -> payments (payment_id));
diesel::joinable!(payment_refunds -> payments (payment_id));
diesel::joinable!(payments -> plans (plan_id));
diesel::joinable!(payments -> promo_codes (promo_code_id));
diesel::joinable!(payments -> users (user_id));
diesel::joinable!(promo_redemptions -> payments (payment_id));
diesel::joinable!(promo_redemptions -> promo_codes (promo_code_id));
diesel::joinable!(promo_redemptions -> users (user_id));
diesel::joinable!(promo_reservations -> payments (payment_id));
diesel::joinable!(promo_reservations -> promo_codes (promo_code_id));
diesel::joinable!(promo_reservations -> users (user_id));
diesel::joinable!(referrals -> payments (rewarded_payment_id));
diesel::joinable!(revoked_tokens -> admins (admin_id));
diesel::joinable!(scheduled_tasks -> jobs (last_job_id));
diesel::joinable!(subscriptions -> plans (plan_id));
diesel::joinable!(subscriptions -> users (user_id));
diesel::joinable!(support_conversations -> users (user_id));
diesel::joinable!(support_forwards -> support_conversations (conversation_id));
diesel::joinable!(support_messages -> support_conversations (conversation_id));
diesel::joinable!(users -> promo_codes (pending_promo_id));

diesel::allow_tables_to_appear_in_same_query!(
    admin_sessions,
    admins,
    alert_settings,
    alert_watches,
    alerts,
    audit_log,
    bot_dialogues,
    broadcasts,
    email_logins,
    jobs,
    login_throttle,
    notification_keys,
    notifications,
    panel_stats,
    payment_events,
    payment_refunds,
    payments,
    plans,
    promo_codes,
    promo_redemptions,
    promo_reservations,
    rate_slots,
    referrals,
    revoked_tokens,
    row_counts,
    scheduled_tasks,
    subscriptions,
    support_conversations,
    support_forwards,
    support_messages,
    sync_runs,
    telegram_link_codes,
    telegram_updates,
    user_sessions,
    users,
);
