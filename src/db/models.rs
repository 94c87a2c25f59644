//! Row types of every table, with the domain types (ids, enums) they hold. Queries live in the
//! aggregate modules; a test loads each table through its row type to catch drift between the
//! migrations, `schema.rs` and these structs.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use serde::Serialize;
use serde_json::Value;

use crate::db::schema::*;
use crate::domain::alerts::{AlertKind, AlertState};
use crate::domain::{
    AdminId, AdminRole, AlertId, BroadcastId, BroadcastStatus, Currency, JobId, JobState, Language,
    Localized, Money, NotificationChannel, NotificationStatus, PanelUserStatus,
    PaymentEventVerdict, PaymentId, PaymentKind, PaymentProvider, PaymentStatus, PlanId,
    PromoCodeId, PromoKind, RefundState, SubscriptionId, SubscriptionStatus, SyncRunStatus, UserId,
};

#[derive(Debug, Clone, Queryable, Selectable, Serialize)]
#[diesel(table_name = plans, check_for_backend(diesel::pg::Pg))]
pub struct Plan {
    pub id: PlanId,
    /// The default name: shown where the reader's language has none in `names`.
    pub name: String,
    pub days: i32,
    pub price_minor: i64,
    pub currency: Currency,
    pub price_stars: Option<i64>,
    pub traffic_limit_bytes: Option<i64>,
    pub active: bool,
    pub sort_order: i32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// The name per language.
    pub names: Localized,
    /// A short description per language; none in a language: none shown to its readers.
    pub descriptions: Localized,
}

impl Plan {
    pub fn price(&self) -> Money {
        Money::new(self.price_minor, self.currency)
    }

    /// The name a reader of `language` sees: theirs, else the default name.
    pub fn name_in(&self, language: Language) -> &str {
        self.names.get_or(language, &self.name)
    }

    /// The description a reader of `language` sees, if the plan has one in their language (a
    /// description in another language would mix languages on one screen).
    pub fn description_in(&self, language: Language) -> Option<&str> {
        self.descriptions.get(language)
    }

    pub fn price_in_stars(&self) -> Option<Money> {
        self.price_stars.map(Money::stars)
    }
}

#[derive(Debug, Clone, Queryable, Selectable, Serialize)]
#[diesel(table_name = promo_codes, check_for_backend(diesel::pg::Pg))]
pub struct PromoCode {
    pub id: PromoCodeId,
    pub code: String,
    pub kind: PromoKind,
    pub value: i64,
    pub max_uses: Option<i32>,
    pub uses_count: i32,
    pub once_per_user: bool,
    pub new_users_only: bool,
    pub min_plan_days: Option<i32>,
    pub valid_from: Option<DateTime<Utc>>,
    pub valid_until: Option<DateTime<Utc>>,
    pub active: bool,
    pub note: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Uses held by unpaid orders (they count toward `max_uses`).
    pub reserved_count: i32,
}

#[derive(Debug, Clone, Queryable, Selectable, Serialize)]
#[diesel(table_name = users, check_for_backend(diesel::pg::Pg))]
pub struct User {
    pub id: UserId,
    /// `None`: a subscriber who signed up on the web by email and has not linked Telegram.
    pub telegram_id: Option<i64>,
    pub username: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub language: Language,
    pub email: Option<String>,
    pub referral_code: String,
    pub referred_by: Option<UserId>,
    pub pending_promo_id: Option<PromoCodeId>,
    pub trial_used_at: Option<DateTime<Utc>>,
    pub banned: bool,
    pub bot_blocked: bool,
    pub note: Option<String>,
    pub last_seen_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// When a sign-in link mailed to `email` was used: the cabinet's email sign-in opens this
    /// account. `None` for an address typed into the bot.
    pub email_verified_at: Option<DateTime<Utc>>,
}

impl User {
    /// The panel username a new subscription of this user gets
    /// ([`crate::domain::panel::panel_username`]).
    pub fn panel_username(&self, prefix: &str) -> String {
        crate::domain::panel::panel_username(prefix, self.id, self.telegram_id)
    }

    /// How the user is named to the team when there is no name: the Telegram id, or the email
    /// of a web-only user.
    pub fn fallback_name(&self) -> String {
        match (self.telegram_id, &self.email) {
            (Some(id), _) => id.to_string(),
            (None, Some(email)) => email.clone(),
            (None, None) => format!("user {}", self.id),
        }
    }
}

#[derive(Debug, Clone, Queryable, Selectable, Serialize)]
#[diesel(table_name = subscriptions, check_for_backend(diesel::pg::Pg))]
pub struct Subscription {
    pub id: SubscriptionId,
    pub user_id: UserId,
    pub plan_id: Option<PlanId>,
    pub panel_username: String,
    pub status: SubscriptionStatus,
    pub is_trial: bool,
    pub expires_at: DateTime<Utc>,
    pub traffic_limit_bytes: Option<i64>,
    pub traffic_used_bytes: i64,
    pub lifetime_used_bytes: i64,
    pub panel_status: Option<PanelUserStatus>,
    pub online_at: Option<DateTime<Utc>>,
    pub subscription_url: Option<String>,
    pub auto_renew: bool,
    pub auto_renew_provider: Option<PaymentProvider>,
    pub auto_renew_method_id: Option<String>,
    pub last_synced_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Paid periods of traffic plans so far (each one owes a fresh allowance).
    pub traffic_period: i32,
    /// The period the panel's traffic counter was last reset for; behind `traffic_period`
    /// means the provision job still owes that reset.
    pub traffic_reset_period: i32,
    /// The panel's expiry as last reported: unix seconds, 0 = never; `None`: not known.
    pub panel_expire: Option<i64>,
    /// When the end, status or traffic limit last changed (a trigger keeps it).
    pub access_changed_at: DateTime<Utc>,
    /// Since when the `paid_unprovisioned` check finds this paid access missing on the panel.
    pub unprovisioned_since: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Queryable, Selectable, Serialize)]
#[diesel(table_name = payments, check_for_backend(diesel::pg::Pg))]
pub struct Payment {
    pub id: PaymentId,
    pub user_id: UserId,
    pub plan_id: Option<PlanId>,
    pub provider: PaymentProvider,
    pub kind: PaymentKind,
    pub status: PaymentStatus,
    pub amount_minor: i64,
    pub currency: Currency,
    pub days: i32,
    pub promo_code_id: Option<PromoCodeId>,
    pub discount_minor: i64,
    pub bonus_days: i32,
    pub external_id: Option<String>,
    pub confirmation_url: Option<String>,
    pub save_payment_method: bool,
    pub refunded_minor: i64,
    pub failure_reason: Option<String>,
    pub raw_payload: Option<Value>,
    pub link_expires_at: Option<DateTime<Utc>>,
    pub paid_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// What a shop-initiated order is for (e.g. `auto_renew:<user>:<period end>`); unique.
    pub idempotency_key: Option<String>,
    /// The saved payment method an automatic renewal charges.
    pub payment_method_id: Option<String>,
    /// The `Idempotence-Key` of every request that creates this order's payment at the provider:
    /// a random UUID drawn when the order is written (`order-<id>` for orders written before
    /// keys were stored), so it is unique across databases and the same on every retry.
    pub provider_key: String,
}

impl Payment {
    pub fn amount(&self) -> Money {
        Money::new(self.amount_minor, self.currency)
    }
}

#[derive(Debug, Clone, Queryable, Selectable, Serialize)]
#[diesel(table_name = payment_events, check_for_backend(diesel::pg::Pg))]
pub struct PaymentEvent {
    pub id: i64,
    pub provider: PaymentProvider,
    pub event_key: String,
    pub event_type: String,
    pub payment_id: Option<PaymentId>,
    pub verdict: PaymentEventVerdict,
    pub detail: Option<String>,
    pub remote_addr: Option<String>,
    pub payload: Option<Value>,
    pub received_at: DateTime<Utc>,
    /// Size and SHA-256 (hex) of the body of a webhook refused at the edge, which is not kept.
    pub body_bytes: Option<i32>,
    pub body_sha256: Option<String>,
}

/// A refund at the provider, counted once (see `payments::record_refund`).
#[derive(Debug, Clone, Queryable, Selectable, Serialize)]
#[diesel(table_name = payment_refunds, check_for_backend(diesel::pg::Pg))]
pub struct PaymentRefund {
    pub id: i64,
    pub payment_id: PaymentId,
    pub provider: PaymentProvider,
    /// The provider's id of the refund; unknown while a request's outcome is.
    pub external_id: Option<String>,
    pub amount_minor: i64,
    pub days_taken_back: i32,
    pub created_at: DateTime<Utc>,
    pub state: RefundState,
    /// The `Idempotence-Key` of the refund request, drawn like [`Payment::provider_key`].
    pub provider_key: String,
}

#[derive(Debug, Clone, Queryable, Selectable, Serialize)]
#[diesel(table_name = promo_redemptions, check_for_backend(diesel::pg::Pg))]
pub struct PromoRedemption {
    pub id: i64,
    pub promo_code_id: PromoCodeId,
    pub user_id: UserId,
    pub payment_id: Option<PaymentId>,
    pub discount_minor: i64,
    pub bonus_days: i32,
    pub redeemed_at: DateTime<Utc>,
    pub once_per_user: bool,
}

/// A use of a promo code held by an unpaid order (see `db::promo`).
#[derive(Debug, Clone, Queryable, Selectable, Serialize)]
#[diesel(table_name = promo_reservations, check_for_backend(diesel::pg::Pg))]
pub struct PromoReservation {
    pub payment_id: PaymentId,
    pub promo_code_id: PromoCodeId,
    pub user_id: UserId,
    pub once_per_user: bool,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Queryable, Selectable, Serialize)]
#[diesel(table_name = referrals, check_for_backend(diesel::pg::Pg))]
pub struct Referral {
    pub id: i64,
    pub inviter_id: UserId,
    pub invitee_id: UserId,
    pub invitee_bonus_days: i32,
    pub inviter_bonus_days: i32,
    pub rewarded_payment_id: Option<PaymentId>,
    pub inviter_rewarded_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub inviter_bonus_revoked_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Queryable, Selectable, Serialize, utoipa::ToSchema)]
#[diesel(table_name = jobs, check_for_backend(diesel::pg::Pg))]
pub struct Job {
    #[schema(value_type = i64)]
    pub id: JobId,
    pub kind: String,
    pub payload: Value,
    #[schema(value_type = String, example = "pending")]
    pub state: JobState,
    /// Attempts started so far (including a running one).
    pub attempts: i32,
    pub max_attempts: i32,
    /// When a pending job becomes due.
    pub run_at: DateTime<Utc>,
    pub dedup_key: Option<String>,
    pub locked_by: Option<String>,
    pub locked_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Queryable, Selectable, Serialize)]
#[diesel(table_name = broadcasts, check_for_backend(diesel::pg::Pg))]
pub struct Broadcast {
    pub id: BroadcastId,
    pub created_by_admin_id: Option<AdminId>,
    pub created_by_telegram_id: Option<i64>,
    pub text: String,
    pub button_text: Option<String>,
    pub button_url: Option<String>,
    pub audience: Value,
    pub status: BroadcastStatus,
    pub total: i32,
    pub sent: i32,
    pub failed: i32,
    pub blocked: i32,
    pub cursor_user_id: i64,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub updated_at: DateTime<Utc>,
}

impl Broadcast {
    /// Recipients not handled yet.
    pub fn remaining(&self) -> i64 {
        (i64::from(self.total) - i64::from(self.sent + self.failed + self.blocked)).max(0)
    }

    /// Seconds until a running broadcast is done at `rate` messages per second.
    pub fn eta_seconds(&self, rate: u32) -> Option<i64> {
        matches!(
            self.status,
            BroadcastStatus::Queued | BroadcastStatus::Running
        )
        .then(|| self.remaining().div_euclid(i64::from(rate.max(1))) + 1)
    }
}

/// One delivery of a notification on one channel.
#[derive(Debug, Clone, Queryable, Selectable, Serialize, utoipa::ToSchema)]
#[diesel(table_name = notifications, check_for_backend(diesel::pg::Pg))]
pub struct Notification {
    pub id: i64,
    /// The subscriber told; `None` for an alert to the admins.
    #[schema(value_type = Option<i64>)]
    pub user_id: Option<UserId>,
    /// The notification type, e.g. `payment_succeeded`, `subscription_expiring`, `broadcast`.
    #[schema(example = "payment_succeeded")]
    pub kind: String,
    /// `telegram` or `email`.
    #[schema(value_type = String, example = "telegram")]
    pub channel: NotificationChannel,
    /// `pending`, `sent`, `failed` or `skipped`.
    #[schema(value_type = String, example = "sent")]
    pub status: NotificationStatus,
    /// Identity of the logical notification (one delivery per channel).
    pub dedup_key: String,
    #[schema(value_type = Object)]
    pub payload: Value,
    #[schema(value_type = Option<i64>)]
    pub broadcast_id: Option<BroadcastId>,
    pub attempts: i32,
    pub last_error: Option<String>,
    pub sent_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// The admin alert this delivers (`GET /api/v1/alerts`); its recipient is in `dedup_key`.
    #[schema(value_type = Option<i64>)]
    pub alert_id: Option<AlertId>,
}

/// An alert the shop raised for its admins (`domain::alerts`).
#[derive(Debug, Clone, Queryable, Selectable, Serialize, utoipa::ToSchema)]
#[diesel(table_name = alerts, check_for_backend(diesel::pg::Pg))]
pub struct AlertRow {
    #[schema(value_type = i64)]
    pub id: AlertId,
    /// Identity of the condition: one open alert per key.
    #[schema(example = "panel_down")]
    pub key: String,
    /// `payment_flagged`, `refund_made`, `job_dead`, `panel_down`, `sync_failing`,
    /// `backup_failed`, `webhook_probing`, `paid_unprovisioned`, `sale` or `digest`.
    #[schema(value_type = String, example = "panel_down")]
    pub kind: AlertKind,
    /// `firing`, `resolved`, or `notice` (told once, nothing to end).
    #[schema(value_type = String, example = "firing")]
    pub state: AlertState,
    /// What it says (tagged by `type`, the kind).
    #[schema(value_type = Object)]
    pub payload: Value,
    /// The kind was muted when it was raised: recorded, not delivered.
    pub muted: bool,
    pub raised_at: DateTime<Utc>,
    pub resolved_at: Option<DateTime<Utc>>,
    /// What ended it, e.g. `{"reviewed_by": "telegram:42"}`.
    #[schema(value_type = Option<Object>)]
    pub resolution: Option<Value>,
    pub updated_at: DateTime<Utc>,
}

/// Whether admins muted a kind of alert (a kind without a row is not muted).
#[derive(Debug, Clone, Queryable, Selectable, Serialize)]
#[diesel(table_name = alert_settings, check_for_backend(diesel::pg::Pg))]
pub struct AlertSetting {
    pub kind: AlertKind,
    pub muted: bool,
    pub updated_at: DateTime<Utc>,
}

/// A condition seen but not alerted yet (e.g. the panel unreachable since `since`).
#[derive(Debug, Clone, Queryable, Selectable, Serialize)]
#[diesel(table_name = alert_watches, check_for_backend(diesel::pg::Pg))]
pub struct AlertWatch {
    pub key: String,
    pub since: DateTime<Utc>,
    pub detail: Option<String>,
}

/// One run of a panel sync and what it did, counted per user.
#[derive(Debug, Clone, Queryable, Selectable, Serialize, utoipa::ToSchema)]
#[diesel(table_name = sync_runs, check_for_backend(diesel::pg::Pg))]
pub struct SyncRun {
    pub id: i64,
    /// `subscriptions`, `status`, `traffic`, `stats` or `cleanup`.
    #[schema(example = "subscriptions")]
    pub kind: String,
    /// `running`, `succeeded` or `failed`.
    #[schema(value_type = String, example = "succeeded")]
    pub status: SyncRunStatus,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub checked: i32,
    pub created: i32,
    pub updated: i32,
    pub failed: i32,
    pub error: Option<String>,
}

/// A `panel_stats` row to insert: one snapshot of the panel's `GET /api/system`.
#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = panel_stats)]
pub struct NewPanelStats {
    pub version: Option<String>,
    pub mem_total: i64,
    pub mem_used: i64,
    pub cpu_cores: i32,
    pub cpu_usage: f64,
    pub total_user: i64,
    pub online_users: i64,
    pub users_active: i64,
    pub users_on_hold: i64,
    pub users_disabled: i64,
    pub users_expired: i64,
    pub users_limited: i64,
    pub incoming_bandwidth: i64,
    pub outgoing_bandwidth: i64,
    pub incoming_bandwidth_speed: i64,
    pub outgoing_bandwidth_speed: i64,
}

/// A snapshot of the panel's `GET /api/system`: memory and bandwidth in bytes, speeds in bytes
/// per second, users by panel status.
#[derive(Debug, Clone, Queryable, Selectable, Serialize, utoipa::ToSchema)]
#[diesel(table_name = panel_stats, check_for_backend(diesel::pg::Pg))]
pub struct PanelStats {
    pub id: i64,
    pub collected_at: DateTime<Utc>,
    pub version: Option<String>,
    pub mem_total: i64,
    pub mem_used: i64,
    pub cpu_cores: i32,
    pub cpu_usage: f64,
    pub total_user: i64,
    pub online_users: i64,
    pub users_active: i64,
    pub users_on_hold: i64,
    pub users_disabled: i64,
    pub users_expired: i64,
    pub users_limited: i64,
    pub incoming_bandwidth: i64,
    pub outgoing_bandwidth: i64,
    pub incoming_bandwidth_speed: i64,
    pub outgoing_bandwidth_speed: i64,
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = admins, check_for_backend(diesel::pg::Pg))]
pub struct Admin {
    pub id: AdminId,
    pub username: String,
    /// Argon2id PHC string; never serialised.
    pub password_hash: String,
    pub role: AdminRole,
    pub active: bool,
    pub tokens_valid_after: DateTime<Utc>,
    pub last_login_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = login_throttle, check_for_backend(diesel::pg::Pg))]
pub struct LoginThrottle {
    pub username: String,
    pub failures: i32,
    pub window_started_at: DateTime<Utc>,
    pub locked_until: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = revoked_tokens, check_for_backend(diesel::pg::Pg))]
pub struct RevokedToken {
    pub jti: uuid::Uuid,
    pub admin_id: AdminId,
    pub expires_at: DateTime<Utc>,
}

/// One change recorded in the audit log.
#[derive(Debug, Clone, Queryable, Selectable, Serialize, utoipa::ToSchema)]
#[diesel(table_name = audit_log, check_for_backend(diesel::pg::Pg))]
pub struct AuditEntry {
    pub id: i64,
    /// The admin account that made the change; `null` for the bot, the CLI, the system, or an
    /// account deleted since (`actor` still names it).
    #[schema(value_type = Option<i64>)]
    pub admin_id: Option<AdminId>,
    /// `admin:<username>`, `telegram:<id>`, `cli` or `system`.
    #[schema(example = "admin:alice")]
    pub actor: String,
    #[schema(example = "admin.update")]
    pub action: String,
    #[schema(example = "admin")]
    pub target_type: Option<String>,
    pub target_id: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub before: Option<Value>,
    #[schema(value_type = Option<Object>)]
    pub after: Option<Value>,
    pub remote_addr: Option<String>,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = notification_keys, check_for_backend(diesel::pg::Pg))]
pub struct NotificationKey {
    pub dedup_key: String,
    pub user_id: UserId,
    pub kind: String,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = rate_slots, check_for_backend(diesel::pg::Pg))]
pub struct RateSlot {
    pub key: String,
    pub next_at: DateTime<Utc>,
}

/// The row count of a table, kept by triggers (see `db::users::count_all`).
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = row_counts, check_for_backend(diesel::pg::Pg))]
pub struct RowCount {
    pub table_name: String,
    pub n: i64,
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = bot_dialogues, check_for_backend(diesel::pg::Pg))]
pub struct BotDialogue {
    pub chat_id: i64,
    pub state: Value,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = telegram_updates, check_for_backend(diesel::pg::Pg))]
pub struct TelegramUpdate {
    pub update_id: i64,
    pub received_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Queryable, Selectable, Serialize, utoipa::ToSchema)]
#[diesel(table_name = scheduled_tasks, check_for_backend(diesel::pg::Pg))]
pub struct ScheduledTask {
    pub name: String,
    pub interval_secs: i32,
    pub enabled: bool,
    pub next_run_at: DateTime<Utc>,
    pub last_run_at: Option<DateTime<Utc>>,
    #[schema(value_type = Option<i64>)]
    pub last_job_id: Option<JobId>,
    /// `enqueued`, or why the last due run was skipped.
    pub last_result: Option<String>,
    pub updated_at: DateTime<Utc>,
}
