//! Admin alerts: what the shop tells its admins (`ADMIN_TELEGRAM_IDS`, `ADMIN_EMAILS`) without
//! being asked. Each alert is typed and has a key: a condition (the panel down, a flagged
//! payment) alerts once per key while it lasts and its end is reported once; a notice (a refund,
//! a sale, the daily digest) is told once and has no end. The texts are in
//! `locales/*/alerts.ftl`, rendered by `i18n::alerts`; delivery is the Notifier's.

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use crate::domain::{AlertId, JobId, Money, PaymentId, PaymentProvider, UserId};

/// Job kind of the delivery of an alert (raised or resolved) to every admin.
pub const ALERT_JOB: &str = "alert_deliver";

/// Dead jobs of a kind are told at most once per this window, with their count.
pub const DEAD_JOBS_WINDOW: chrono::Duration = chrono::Duration::minutes(15);

/// Paid access missing on the panel for longer than this (since the payment changed it) alerts.
pub const UNPROVISIONED_AFTER: chrono::Duration = chrono::Duration::minutes(10);

/// The window in which refused (forged) payment webhooks are counted.
pub const PROBING_WINDOW: chrono::Duration = chrono::Duration::minutes(5);

text_enum!(
    /// What an alert is about; muted per kind.
    AlertKind {
        PaymentFlagged => "payment_flagged",
        RefundMade => "refund_made",
        JobDead => "job_dead",
        PanelDown => "panel_down",
        SyncFailing => "sync_failing",
        BackupFailed => "backup_failed",
        WebhookProbing => "webhook_probing",
        PaidUnprovisioned => "paid_unprovisioned",
        Sale => "sale",
        Digest => "digest",
    }
);

impl AlertKind {
    /// A condition lasts until it is resolved; anything else is a notice, told once.
    pub const fn is_condition(self) -> bool {
        matches!(
            self,
            AlertKind::PaymentFlagged
                | AlertKind::PanelDown
                | AlertKind::SyncFailing
                | AlertKind::BackupFailed
                | AlertKind::WebhookProbing
                | AlertKind::PaidUnprovisioned
        )
    }
}

text_enum!(
    /// Where an alert stands (`alerts.state`).
    AlertState {
        /// A condition that holds now.
        Firing => "firing",
        /// A condition that has ended.
        Resolved => "resolved",
        /// A notice: told once, nothing to end.
        Notice => "notice",
    }
);

text_enum!(
    /// A payment an admin must look at. Raising one flags the order (`failure_reason`), counts
    /// `vpn_shop_payment_anomalies_total{kind}` and alerts the admins.
    Anomaly {
        /// Paid with a promo code whose limits were spent meanwhile: the order got what was paid for.
        PromoOveruse => "promo_overuse",
        /// Paid after the shop had expired the order: access was given, the admin should know.
        PaidAfterExpiry => "paid_after_expiry",
        /// Another amount or currency than the order's: nothing was given.
        AmountMismatch => "amount_mismatch",
        /// Money for an order that was closed (paid by another payment, or canceled): no second
        /// period; refund it.
        PaidClosedOrder => "paid_closed_order",
        /// A refund of more than remains of the payment.
        RefundExceedsPayment => "refund_exceeds_payment",
        /// A genuine charge (authenticated with the provider) that names no order of the shop.
        ChargeWithoutOrder => "charge_without_order",
    }
);

/// Who made a refund.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "by", rename_all = "snake_case")]
pub enum RefundOrigin {
    /// An admin through the shop (API or bot): `actor` as in the audit log (`admin:alice`).
    Shop { actor: String },
    /// Asked through the shop; the provider's notice of it came before the shop's own answer.
    Requested,
    /// The provider reported a refund nobody asked the shop for (its dashboard).
    Provider,
}

/// The daily digest's figures for one local day.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DigestFigures {
    /// Paid orders (not free ones).
    pub sales: i64,
    /// Revenue per provider and currency, largest first.
    pub revenue: Vec<ProviderRevenue>,
    pub new_users: i64,
    pub trials: i64,
    /// Of the users whose trial started in the 30 days before the day, how many paid that day.
    pub trial_conversions: i64,
    /// Paid orders of users who had paid before.
    pub renewals: i64,
    pub refunds: i64,
    pub refunded: Vec<Money>,
    /// Active subscriptions that end on the next local day.
    pub expiring_tomorrow: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProviderRevenue {
    pub provider: PaymentProvider,
    pub amount: Money,
    pub payments: i64,
}

/// An alert and what it says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Alert {
    /// A payment was flagged; resolved when an admin marks it reviewed.
    PaymentFlagged {
        anomaly: Anomaly,
        /// `None` for a charge without an order.
        order: Option<PaymentId>,
        user: Option<UserId>,
        telegram_id: Option<i64>,
        amount: Money,
        provider: PaymentProvider,
        detail: String,
    },
    RefundMade {
        order: PaymentId,
        user: UserId,
        telegram_id: Option<i64>,
        amount: Money,
        provider: PaymentProvider,
        refund_id: String,
        origin: RefundOrigin,
    },
    /// `count` jobs of `job_kind` died since the last such alert (the newest is `job`).
    JobDead {
        job_kind: String,
        count: i64,
        job: JobId,
        user: Option<UserId>,
        last_error: String,
        /// The newest death counted here; the next alert counts the ones after it.
        until: DateTime<Utc>,
    },
    PanelDown {
        since: DateTime<Utc>,
        error: String,
    },
    /// A scheduled panel sync failed twice in a row.
    SyncFailing {
        sync: String,
        error: String,
    },
    BackupFailed {
        error: String,
    },
    /// Refused (forged) payment webhooks in the last 5 minutes, at least the threshold.
    WebhookProbing {
        failures: i64,
        threshold: i64,
        top_address: Option<String>,
    },
    /// Paying users whose access is not on the panel for longer than 10 minutes.
    PaidUnprovisioned {
        users: i64,
        oldest: UserId,
    },
    Sale {
        order: PaymentId,
        user: UserId,
        telegram_id: Option<i64>,
        plan: String,
        amount: Money,
        provider: PaymentProvider,
    },
    Digest {
        day: NaiveDate,
        figures: DigestFigures,
    },
}

impl Alert {
    pub const fn kind(&self) -> AlertKind {
        match self {
            Alert::PaymentFlagged { .. } => AlertKind::PaymentFlagged,
            Alert::RefundMade { .. } => AlertKind::RefundMade,
            Alert::JobDead { .. } => AlertKind::JobDead,
            Alert::PanelDown { .. } => AlertKind::PanelDown,
            Alert::SyncFailing { .. } => AlertKind::SyncFailing,
            Alert::BackupFailed { .. } => AlertKind::BackupFailed,
            Alert::WebhookProbing { .. } => AlertKind::WebhookProbing,
            Alert::PaidUnprovisioned { .. } => AlertKind::PaidUnprovisioned,
            Alert::Sale { .. } => AlertKind::Sale,
            Alert::Digest { .. } => AlertKind::Digest,
        }
    }

    /// The identity of the condition or notice: while an alert with this key is open, raising
    /// it again changes nothing.
    pub fn key(&self) -> String {
        match self {
            Alert::PaymentFlagged {
                anomaly,
                order: Some(order),
                ..
            } => format!("payment_flagged:{order}:{anomaly}"),
            Alert::PaymentFlagged {
                anomaly,
                order: None,
                detail,
                provider,
                ..
            } => format!("payment_flagged:{provider}:{detail}:{anomaly}"),
            Alert::RefundMade {
                provider,
                refund_id,
                ..
            } => format!("refund_made:{provider}:{refund_id}"),
            Alert::JobDead {
                job_kind, until, ..
            } => format!("job_dead:{job_kind}:{}", until.timestamp_micros()),
            Alert::PanelDown { .. } => PANEL_DOWN_KEY.to_owned(),
            Alert::SyncFailing { sync, .. } => sync_failing_key(sync),
            Alert::BackupFailed { .. } => BACKUP_FAILED_KEY.to_owned(),
            Alert::WebhookProbing { .. } => WEBHOOK_PROBING_KEY.to_owned(),
            Alert::PaidUnprovisioned { .. } => PAID_UNPROVISIONED_KEY.to_owned(),
            Alert::Sale { order, .. } => format!("sale:{order}"),
            Alert::Digest { day, .. } => digest_key(*day),
        }
    }

    /// The subscriber it is about, for the "open the user" button.
    pub const fn user(&self) -> Option<UserId> {
        match self {
            Alert::PaymentFlagged { user, .. } | Alert::JobDead { user, .. } => *user,
            Alert::RefundMade { user, .. } | Alert::Sale { user, .. } => Some(*user),
            Alert::PaidUnprovisioned { oldest, .. } => Some(*oldest),
            _ => None,
        }
    }
}

/// What an admin can do from an alert message (a button under it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlertAction {
    /// Open the subscriber's profile.
    OpenUser(UserId),
    /// Retry the dead job.
    RetryJob(JobId),
    /// Mark the flagged payment reviewed (resolves this alert).
    MarkReviewed(AlertId),
}

impl Alert {
    /// The buttons of the message that tells alert `id` in `state` (an ended one needs none).
    pub fn actions(&self, id: AlertId, state: AlertState) -> Vec<AlertAction> {
        if state == AlertState::Resolved {
            return Vec::new();
        }
        let mut actions = Vec::new();
        match self {
            Alert::PaymentFlagged { .. } => actions.push(AlertAction::MarkReviewed(id)),
            Alert::JobDead { job, .. } => actions.push(AlertAction::RetryJob(*job)),
            _ => {}
        }
        if let Some(user) = self.user() {
            actions.push(AlertAction::OpenUser(user));
        }
        actions
    }
}

pub const PANEL_DOWN_KEY: &str = "panel_down";
pub const BACKUP_FAILED_KEY: &str = "backup_failed";
pub const WEBHOOK_PROBING_KEY: &str = "webhook_probing";
pub const PAID_UNPROVISIONED_KEY: &str = "paid_unprovisioned";

pub fn sync_failing_key(sync: &str) -> String {
    format!("sync_failing:{sync}")
}

/// The key of the digest of `day`.
pub fn digest_key(day: NaiveDate) -> String {
    format!("digest:{day}")
}

/// The key of a flagged payment's alert.
pub fn payment_flagged_key(order: PaymentId, anomaly: Anomaly) -> String {
    format!("payment_flagged:{order}:{anomaly}")
}

/// Who gets an alert on one channel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "channel", content = "to", rename_all = "snake_case")]
pub enum AlertRecipient {
    Telegram(i64),
    Email(String),
}

impl AlertRecipient {
    /// Identity of the delivery of alert `id` in `state` to this recipient (one per channel and
    /// address, sent at most once).
    pub fn dedup_key(&self, id: AlertId, state: AlertState) -> String {
        match self {
            AlertRecipient::Telegram(chat) => format!("alert:{id}:{state}:tg:{chat}"),
            AlertRecipient::Email(address) => format!("alert:{id}:{state}:mail:{address}"),
        }
    }
}

/// Payload of an `alert_deliver` job: tell every admin that alert `alert_id` fired (`firing`,
/// `notice`) or ended (`resolved`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlertJob {
    pub alert_id: AlertId,
    pub state: AlertState,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_are_tagged_and_keys_name_the_condition() {
        let alert = Alert::PaymentFlagged {
            anomaly: Anomaly::AmountMismatch,
            order: Some(PaymentId(7)),
            user: Some(UserId(3)),
            telegram_id: Some(42),
            amount: Money::rub_kopecks(19_900),
            provider: PaymentProvider::Yookassa,
            detail: "paid 199.00 RUB, the order is for 299.00 RUB".into(),
        };
        let json = serde_json::to_value(&alert).unwrap();
        assert_eq!(json["type"], "payment_flagged");
        assert_eq!(json["anomaly"], "amount_mismatch");
        assert_eq!(serde_json::from_value::<Alert>(json).unwrap(), alert);
        assert_eq!(alert.key(), "payment_flagged:7:amount_mismatch");
        assert_eq!(
            alert.key(),
            payment_flagged_key(PaymentId(7), Anomaly::AmountMismatch)
        );
        assert_eq!(alert.kind(), AlertKind::PaymentFlagged);
        assert!(alert.kind().is_condition());
        assert!(!AlertKind::RefundMade.is_condition());
    }

    #[test]
    fn every_kind_is_spelled_as_the_migration_lists_it() {
        let migration = include_str!("../../migrations/2026-12-03-000002_admin_alerts/up.sql");
        for kind in AlertKind::ALL {
            assert!(
                migration.contains(&format!("'{kind}'")),
                "{kind} is missing from the CHECK of alerts.kind"
            );
        }
    }

    #[test]
    fn each_recipient_has_its_own_delivery() {
        let id = AlertId(5);
        assert_eq!(
            AlertRecipient::Telegram(42).dedup_key(id, AlertState::Firing),
            "alert:5:firing:tg:42"
        );
        assert_ne!(
            AlertRecipient::Email("a@b.c".into()).dedup_key(id, AlertState::Firing),
            AlertRecipient::Email("a@b.c".into()).dedup_key(id, AlertState::Resolved),
        );
    }
}
