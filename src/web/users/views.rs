//! What the users endpoints answer: list items, profiles, subscriptions, payments, referrals.

use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use crate::db::models::{Subscription, User};
use crate::db::users::{SubscriptionBrief, UserRow};
use crate::db::{PgConn, plans, subscriptions as subs};
use crate::domain::pricing::days_left;
use crate::domain::{Language, SubscriptionStatus, UserId};
use crate::error::AppResult;

/// The subscription as the user list shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct SubscriptionSummary {
    /// `active`, `expired` or `disabled`.
    #[schema(value_type = String, example = "active")]
    pub status: SubscriptionStatus,
    pub is_trial: bool,
    pub expires_at: DateTime<Utc>,
    #[schema(value_type = Option<i64>)]
    pub plan_id: Option<crate::domain::PlanId>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UserListItem {
    #[schema(value_type = i64)]
    pub id: UserId,
    /// `null`: a subscriber who signed up on the web without Telegram.
    pub telegram_id: Option<i64>,
    pub username: Option<String>,
    pub first_name: Option<String>,
    #[schema(value_type = String, example = "ru")]
    pub language: Language,
    pub email: Option<String>,
    pub banned: bool,
    /// The user blocked the bot: no Telegram messages reach them.
    pub bot_blocked: bool,
    pub created_at: DateTime<Utc>,
    pub last_seen_at: Option<DateTime<Utc>>,
    /// `null`: the user never had a subscription.
    pub subscription: Option<SubscriptionSummary>,
}

impl UserListItem {
    pub(crate) fn new(u: UserRow, s: Option<SubscriptionBrief>) -> Self {
        UserListItem {
            id: u.id,
            telegram_id: u.telegram_id,
            username: u.username,
            first_name: u.first_name,
            language: u.language,
            email: u.email,
            banned: u.banned,
            bot_blocked: u.bot_blocked,
            created_at: u.created_at,
            last_seen_at: u.last_seen_at,
            subscription: s.map(|s| SubscriptionSummary {
                status: s.status,
                is_trial: s.is_trial,
                expires_at: s.expires_at,
                plan_id: s.plan_id,
            }),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UserPage {
    pub items: Vec<UserListItem>,
    pub total: i64,
    pub page: i64,
    pub per_page: i64,
}

/// Every field of a user.
#[derive(Debug, Serialize, ToSchema)]
pub struct UserProfile {
    #[schema(value_type = i64)]
    pub id: UserId,
    /// `null`: a subscriber who signed up on the web without Telegram.
    pub telegram_id: Option<i64>,
    pub username: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    #[schema(value_type = String, example = "ru")]
    pub language: Language,
    pub email: Option<String>,
    /// The code of the user's invitation link.
    pub referral_code: String,
    /// The user who invited this one.
    #[schema(value_type = Option<i64>)]
    pub referred_by: Option<UserId>,
    /// A promo code applied in the bot and kept for the next checkout.
    #[schema(value_type = Option<i64>)]
    pub pending_promo_id: Option<crate::domain::PromoCodeId>,
    pub trial_used_at: Option<DateTime<Utc>>,
    pub banned: bool,
    pub bot_blocked: bool,
    /// Admins' note.
    pub note: Option<String>,
    pub last_seen_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<User> for UserProfile {
    fn from(u: User) -> Self {
        UserProfile {
            id: u.id,
            telegram_id: u.telegram_id,
            username: u.username,
            first_name: u.first_name,
            last_name: u.last_name,
            language: u.language,
            email: u.email,
            referral_code: u.referral_code,
            referred_by: u.referred_by,
            pending_promo_id: u.pending_promo_id,
            trial_used_at: u.trial_used_at,
            banned: u.banned,
            bot_blocked: u.bot_blocked,
            note: u.note,
            last_seen_at: u.last_seen_at,
            created_at: u.created_at,
            updated_at: u.updated_at,
        }
    }
}

/// A subscription with what the panel last reported about it.
#[derive(Debug, Serialize, ToSchema)]
pub struct SubscriptionView {
    #[schema(value_type = i64)]
    pub id: crate::domain::SubscriptionId,
    /// What the database says: `active`, `expired` or `disabled` (the panel is made to match).
    #[schema(value_type = String, example = "active")]
    pub status: SubscriptionStatus,
    pub is_trial: bool,
    #[schema(value_type = Option<i64>)]
    pub plan_id: Option<crate::domain::PlanId>,
    pub plan_name: Option<String>,
    pub expires_at: DateTime<Utc>,
    /// Days of access left, a started day counted whole; 0 once ended.
    pub days_left: i64,
    pub traffic_used_bytes: i64,
    /// `null`: unlimited.
    pub traffic_limit_bytes: Option<i64>,
    pub lifetime_used_bytes: i64,
    pub subscription_url: Option<String>,
    pub auto_renew: bool,
    #[schema(value_type = Option<String>, example = "yookassa")]
    pub auto_renew_provider: Option<crate::domain::PaymentProvider>,
    pub panel_username: String,
    /// The panel's own status: `active`, `disabled`, `limited`, `expired`, `on_hold`.
    #[schema(value_type = Option<String>, example = "active")]
    pub panel_status: Option<crate::domain::PanelUserStatus>,
    pub online_at: Option<DateTime<Utc>>,
    pub last_synced_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl SubscriptionView {
    pub(super) fn new(s: Subscription, plan_name: Option<String>) -> Self {
        SubscriptionView {
            days_left: days_left(s.expires_at, Utc::now()),
            id: s.id,
            status: s.status,
            is_trial: s.is_trial,
            plan_id: s.plan_id,
            plan_name,
            expires_at: s.expires_at,
            traffic_used_bytes: s.traffic_used_bytes,
            traffic_limit_bytes: s.traffic_limit_bytes,
            lifetime_used_bytes: s.lifetime_used_bytes,
            subscription_url: s.subscription_url,
            auto_renew: s.auto_renew,
            auto_renew_provider: s.auto_renew_provider,
            panel_username: s.panel_username,
            panel_status: s.panel_status,
            online_at: s.online_at,
            last_synced_at: s.last_synced_at,
            created_at: s.created_at,
            updated_at: s.updated_at,
        }
    }

    pub(super) async fn load(
        conn: &mut PgConn,
        user: UserId,
    ) -> AppResult<Option<SubscriptionView>> {
        let Some((sub, _)) = subs::find_by_user(conn, user).await? else {
            return Ok(None);
        };
        let plan_name = match sub.plan_id {
            Some(id) => plans::find(conn, id).await?.map(|p| p.name),
            None => None,
        };
        Ok(Some(SubscriptionView::new(sub, plan_name)))
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PaymentItem {
    #[schema(value_type = i64)]
    pub id: crate::domain::PaymentId,
    #[schema(value_type = String, example = "yookassa")]
    pub provider: crate::domain::PaymentProvider,
    #[schema(value_type = String, example = "succeeded")]
    pub status: crate::domain::PaymentStatus,
    /// Kopecks for RUB, whole Stars for XTR.
    pub amount_minor: i64,
    #[schema(value_type = String, example = "RUB")]
    pub currency: crate::domain::Currency,
    pub days: i32,
    pub created_at: DateTime<Utc>,
    pub paid_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UserRefView {
    #[schema(value_type = i64)]
    pub id: UserId,
    /// `null`: a subscriber who signed up on the web without Telegram.
    pub telegram_id: Option<i64>,
    pub username: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ReferralsView {
    /// Who invited this user.
    pub invited_by: Option<UserRefView>,
    /// Days this user got for joining through an invitation.
    pub bonus_days_received: i32,
    /// Users this user invited.
    pub invited: i64,
    /// Of them, those whose first payment earned this user a bonus.
    pub invited_paid: i64,
    /// Bonus days earned for inviting.
    pub bonus_days_earned: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UserDetail {
    pub user: UserProfile,
    /// `null`: the user never had a subscription.
    pub subscription: Option<SubscriptionView>,
    /// The latest 20 orders, newest first.
    pub payments: Vec<PaymentItem>,
    pub referrals: ReferralsView,
}
