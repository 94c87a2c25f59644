//! Notifications other parts of the shop ask the Notifier to deliver, as payloads of `notify`
//! jobs. Each carries its dedup key: one logical notification is delivered at most once per
//! channel. The texts are in `locales/*/notifications.ftl`, rendered by `i18n::notifications`.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::domain::{BroadcastId, Money, UserId};

/// Job kind of a notification delivery.
pub const NOTIFY_JOB: &str = "notify";

/// Why a payment failed, in terms users understand (providers' codes map onto these).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureReason {
    InsufficientFunds,
    CardExpired,
    Declined,
    Canceled,
    PermissionRevoked,
    ThreeDSecure,
    FraudSuspected,
    Other,
}

impl FailureReason {
    pub const fn as_str(self) -> &'static str {
        match self {
            FailureReason::InsufficientFunds => "insufficient_funds",
            FailureReason::CardExpired => "card_expired",
            FailureReason::Declined => "declined",
            FailureReason::Canceled => "canceled",
            FailureReason::PermissionRevoked => "permission_revoked",
            FailureReason::ThreeDSecure => "three_d_secure",
            FailureReason::FraudSuspected => "fraud_suspected",
            FailureReason::Other => "other",
        }
    }
}

/// What a promo code did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum PromoEffect {
    /// Days added to the subscription at once.
    Days {
        days: u32,
        expires_at: DateTime<Utc>,
    },
    /// Percent off the next payment.
    Percent { percent: u8 },
    /// An amount off the next payment.
    Amount { amount: Money },
}

/// What to tell the user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Notification {
    TrialStarted {
        days: u32,
        expires_at: DateTime<Utc>,
    },
    TrialEnding {
        expires_at: DateTime<Utc>,
    },
    SubscriptionExpiring {
        days_left: u32,
        expires_at: DateTime<Utc>,
    },
    SubscriptionExpired {
        expired_at: DateTime<Utc>,
    },
    PaymentSucceeded {
        plan: String,
        amount: Money,
        days: u32,
        expires_at: DateTime<Utc>,
    },
    PaymentFailed {
        plan: String,
        amount: Money,
        reason: FailureReason,
    },
    AutoRenewalSucceeded {
        plan: String,
        amount: Money,
        expires_at: DateTime<Utc>,
    },
    AutoRenewalFailed {
        amount: Money,
        reason: FailureReason,
    },
    /// To the inviter: someone joined through their link.
    ReferralJoined {
        friend: String,
        bonus_days: u32,
    },
    /// To the invited user: joining through a friend's link gave them days.
    ReferralWelcome {
        days: u32,
        expires_at: DateTime<Utc>,
    },
    /// To the inviter: the friend's first payment earned them days.
    ReferralBonus {
        days: u32,
        expires_at: DateTime<Utc>,
    },
    PromoApplied {
        code: String,
        effect: PromoEffect,
    },
    /// Traffic reached `percent` (80 or 100) of the limit in the current period.
    TrafficThreshold {
        percent: u8,
        used_bytes: i64,
        limit_bytes: i64,
    },
    /// The subscription link, once the panel has issued it, to a user whose earlier message
    /// (payment received, trial started, …) had to go without it ("being prepared").
    LinkReady {},
    /// An admin broadcast; the text is in the `broadcasts` row.
    Broadcast {
        broadcast_id: BroadcastId,
    },
}

impl Notification {
    /// The type: metric label, `notifications.kind`, and the prefix of its texts.
    pub const fn kind(&self) -> &'static str {
        match self {
            Notification::TrialStarted { .. } => "trial_started",
            Notification::TrialEnding { .. } => "trial_ending",
            Notification::SubscriptionExpiring { .. } => "subscription_expiring",
            Notification::SubscriptionExpired { .. } => "subscription_expired",
            Notification::PaymentSucceeded { .. } => "payment_succeeded",
            Notification::PaymentFailed { .. } => "payment_failed",
            Notification::AutoRenewalSucceeded { .. } => "auto_renewal_succeeded",
            Notification::AutoRenewalFailed { .. } => "auto_renewal_failed",
            Notification::ReferralJoined { .. } => "referral_joined",
            Notification::ReferralWelcome { .. } => "referral_welcome",
            Notification::ReferralBonus { .. } => "referral_bonus",
            Notification::PromoApplied { .. } => "promo_applied",
            Notification::TrafficThreshold { .. } => "traffic_threshold",
            Notification::LinkReady {} => "link_ready",
            Notification::Broadcast { .. } => "broadcast",
        }
    }

    /// Worth an email too (to users who gave one): money and the end of access.
    pub const fn by_email(&self) -> bool {
        matches!(
            self,
            Notification::TrialEnding { .. }
                | Notification::SubscriptionExpiring { .. }
                | Notification::SubscriptionExpired { .. }
                | Notification::PaymentSucceeded { .. }
                | Notification::PaymentFailed { .. }
                | Notification::AutoRenewalSucceeded { .. }
                | Notification::AutoRenewalFailed { .. }
                | Notification::LinkReady {}
        )
    }

    /// Carries a "write to support" button (when someone reads support questions): a payment
    /// that did not go through.
    pub const fn offers_support(&self) -> bool {
        matches!(
            self,
            Notification::PaymentFailed { .. } | Notification::AutoRenewalFailed { .. }
        )
    }

    /// Ends with the subscription link (the user needs it now).
    pub const fn with_link(&self) -> bool {
        matches!(
            self,
            Notification::TrialStarted { .. }
                | Notification::LinkReady {}
                | Notification::PaymentSucceeded { .. }
                | Notification::AutoRenewalSucceeded { .. }
                | Notification::ReferralBonus { .. }
                | Notification::ReferralWelcome { .. }
                | Notification::PromoApplied {
                    effect: PromoEffect::Days { .. },
                    ..
                }
        )
    }
}

/// Payload of a `notify` job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotifyJob {
    pub user_id: UserId,
    pub notification: Notification,
    /// Identity of the logical notification, e.g. `expiry:3d:<user>:<expires_at>`.
    pub dedup_key: String,
}

/// Every kind, for metrics and for tests that render all of them.
pub const KINDS: [&str; 15] = [
    "trial_started",
    "trial_ending",
    "subscription_expiring",
    "subscription_expired",
    "payment_succeeded",
    "payment_failed",
    "auto_renewal_succeeded",
    "auto_renewal_failed",
    "referral_joined",
    "referral_bonus",
    "referral_welcome",
    "promo_applied",
    "traffic_threshold",
    "link_ready",
    "broadcast",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_are_tagged_json() {
        let n = Notification::TrafficThreshold {
            percent: 80,
            used_bytes: 1,
            limit_bytes: 2,
        };
        let json = serde_json::to_value(&n).unwrap();
        assert_eq!(json["type"], "traffic_threshold");
        assert_eq!(serde_json::from_value::<Notification>(json).unwrap(), n);
        assert!(KINDS.contains(&n.kind()));
    }
}
