//! Provider events in one transaction each: the order is locked; only a pending order changes;
//! the amount and currency must equal the order's; a payment extends the subscription (paid time
//! is added to what remains), records the promo redemption, grants the inviter's bonus on the
//! first payment, and enqueues `provision` and `notify` — all committed together, then the
//! provider is answered. Every event is recorded in `payment_events` with its verdict.

use std::time::Instant;

use diesel_async::AsyncConnection;
use serde_json::Value;

use super::{Anomaly, Shared};
use crate::actors::job_runner::JobError;
use crate::actors::marzban::provision_job;
use crate::db::jobs;
use crate::db::models::Payment;
use crate::db::payments::{self, NewEvent, NewOrder};
use crate::db::subscriptions::Grant;
use crate::db::{PgConn, notifications, plans, promo, referrals, subscriptions, users};
use crate::domain::alerts::{Alert, RefundOrigin};
use crate::domain::notifications::{FailureReason, Notification, NotifyJob};
use crate::domain::{
    Language, Money, PaymentEventVerdict, PaymentId, PaymentKind, PaymentProvider, PaymentStatus,
    UserId,
};

/// What the provider says happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Paid this amount.
    Paid { amount: Money },
    /// Will not be paid.
    Canceled {
        reason: FailureReason,
        detail: String,
    },
    /// Not decided yet.
    Pending,
    /// A renewal of a Star subscription: a new payment for the period of the original order.
    Renewed { amount: Money },
    /// Money went back to the payer (a refund notice; `refund_id` is the provider's id of the
    /// refund): the paid days are taken back, once per refund.
    Refunded { amount: Money, refund_id: String },
}

/// An authenticated provider event.
#[derive(Debug, Clone)]
pub struct PaymentUpdate {
    pub provider: PaymentProvider,
    /// Our order, when the provider echoes it (metadata, orderId, invoice payload).
    pub order_id: Option<PaymentId>,
    /// The provider's id of the payment (YooKassa payment, WATA transaction, Telegram charge).
    pub external_id: String,
    /// Identity of the event, for `payment_events` (e.g. `<payment id>:succeeded`).
    pub event_key: String,
    pub event_type: String,
    pub outcome: Outcome,
    /// A payment method saved for automatic renewal (YooKassa).
    pub saved_method: Option<String>,
    pub raw: Value,
    pub remote_addr: Option<String>,
}

impl Shared {
    /// Applies an event; `Err` only when it could not be recorded (the caller answers 5xx).
    pub(super) async fn apply(
        &self,
        update: PaymentUpdate,
    ) -> Result<PaymentEventVerdict, JobError> {
        let started = Instant::now();
        let mut conn = self.pool.get().await?;
        let verdict = conn
            .transaction::<_, diesel::result::Error, _>(async |conn| {
                self.apply_in(conn, &update).await
            })
            .await?;
        self.metrics
            .payment_events
            .with_label_values(&[update.provider.as_str(), verdict.as_str()])
            .inc();
        self.metrics
            .webhook_duration
            .with_label_values(&[update.provider.as_str()])
            .observe(started.elapsed().as_secs_f64());
        tracing::info!(
            provider = %update.provider,
            order = ?update.order_id,
            event = %update.event_type,
            verdict = %verdict,
            "payment event"
        );
        Ok(verdict)
    }

    async fn apply_in(
        &self,
        conn: &mut PgConn,
        update: &PaymentUpdate,
    ) -> diesel::QueryResult<PaymentEventVerdict> {
        // A refund names the refunded payment (a Star subscription's renewals share the first
        // order's payload); everything else names the order when the provider echoes it.
        let by_external = match update.outcome {
            Outcome::Refunded { .. } => {
                payments::find_by_external(conn, update.provider, &update.external_id).await?
            }
            _ => None,
        };
        let order = match (by_external, update.order_id) {
            (Some(order), _) => payments::lock(conn, order.id).await?,
            (None, Some(id)) => payments::lock(conn, id).await?,
            (None, None) => {
                match payments::find_by_external(conn, update.provider, &update.external_id).await?
                {
                    Some(order) => payments::lock(conn, order.id).await?,
                    None => None,
                }
            }
        };
        let (verdict, detail, order_id) = match order {
            None => {
                // The event is authenticated (re-read from the provider, signed, or Telegram's
                // own): money arrived that no order asked for.
                if let Outcome::Paid { amount } | Outcome::Renewed { amount } = update.outcome {
                    self.raise_orphan_charge(conn, update.provider, amount, &update.external_id)
                        .await?;
                }
                (
                    PaymentEventVerdict::Forged,
                    Some("no such order".to_owned()),
                    None,
                )
            }
            Some(order) => {
                let (verdict, detail) = self.judge(conn, &order, update).await?;
                (verdict, detail, Some(order.id))
            }
        };
        payments::record_event(
            conn,
            &NewEvent {
                provider: update.provider,
                event_key: &update.event_key,
                event_type: &update.event_type,
                payment_id: order_id,
                verdict,
                detail: detail.as_deref(),
                remote_addr: update.remote_addr.as_deref(),
                payload: Some(&update.raw),
                body: None,
            },
        )
        .await?;
        Ok(verdict)
    }

    /// Decides what an event means for a locked order, and applies it.
    async fn judge(
        &self,
        conn: &mut PgConn,
        order: &Payment,
        update: &PaymentUpdate,
    ) -> diesel::QueryResult<(PaymentEventVerdict, Option<String>)> {
        if order.provider != update.provider {
            return Ok((
                PaymentEventVerdict::Forged,
                Some(format!("the order is paid through {}", order.provider)),
            ));
        }
        match &update.outcome {
            Outcome::Pending => Ok((PaymentEventVerdict::Ignored, Some("still pending".into()))),
            Outcome::Renewed { amount } => {
                self.renew_star_subscription(conn, order, update, *amount)
                    .await
            }
            Outcome::Refunded { amount, refund_id } => {
                let paid = matches!(
                    order.status,
                    PaymentStatus::Succeeded | PaymentStatus::Refunded
                );
                let (taken, new) = self
                    .take_back(conn, order, *amount, refund_id, RefundOrigin::Provider)
                    .await?;
                Ok(if new && !paid {
                    (
                        PaymentEventVerdict::Accepted,
                        Some(format!(
                            "the order is {}: the refund is applied when its payment lands",
                            order.status
                        )),
                    )
                } else if new {
                    (
                        PaymentEventVerdict::Accepted,
                        Some(format!("{} days taken back", taken.days_taken_back)),
                    )
                } else {
                    (
                        PaymentEventVerdict::Duplicate,
                        Some(format!("refund {refund_id} already counted")),
                    )
                })
            }
            Outcome::Paid { amount } => {
                // `expired` is only our bookkeeping (the link's time ran out while the payer
                // was paying, or before the late webhook came): a genuine payment still counts.
                if !matches!(
                    order.status,
                    PaymentStatus::Pending | PaymentStatus::Expired
                ) {
                    let same = order.external_id.as_deref() == Some(update.external_id.as_str());
                    if same {
                        return Ok((
                            PaymentEventVerdict::Duplicate,
                            Some(format!("the order is already {}", order.status)),
                        ));
                    }
                    // Money for an order that is closed (paid by another payment, canceled or
                    // expired): no second period; an admin refunds it.
                    let detail = format!(
                        "payment {} of {amount} arrived for an order already {}: refund it",
                        update.external_id, order.status
                    );
                    self.raise(conn, order.id, Anomaly::PaidClosedOrder, &detail)
                        .await?;
                    return Ok((PaymentEventVerdict::Mismatched, Some(detail)));
                }
                if order.provider == PaymentProvider::Yookassa
                    && order
                        .external_id
                        .as_deref()
                        .is_some_and(|own| own != update.external_id)
                {
                    return Ok((
                        PaymentEventVerdict::Forged,
                        Some("another YooKassa payment than the order's".into()),
                    ));
                }
                if *amount != order.amount() {
                    let detail = format!("paid {amount}, the order is for {}", order.amount());
                    self.raise(
                        conn,
                        order.id,
                        Anomaly::AmountMismatch,
                        &format!("amount mismatch: {detail}"),
                    )
                    .await?;
                    return Ok((PaymentEventVerdict::Mismatched, Some(detail)));
                }
                // A free order is only what its code gives: no use left, nothing given.
                if order.provider == PaymentProvider::Free
                    && let Some(refusal) = self.redeem_promo(conn, order).await?
                {
                    let detail = format!("promo code: {refusal}; nothing was given");
                    payments::mark_unpaid(
                        conn,
                        order.id,
                        PaymentStatus::Canceled,
                        &detail,
                        Some(&update.raw),
                    )
                    .await?;
                    return Ok((PaymentEventVerdict::Mismatched, Some(detail)));
                }
                let was_expired = order.status == PaymentStatus::Expired;
                if !payments::mark_succeeded(conn, order.id, &update.external_id, &update.raw)
                    .await?
                {
                    return Ok((PaymentEventVerdict::Duplicate, None));
                }
                if was_expired {
                    let detail = format!(
                        "paid after the order had expired ({}): access was given",
                        order
                            .failure_reason
                            .as_deref()
                            .unwrap_or("no reason recorded")
                    );
                    self.raise(conn, order.id, Anomaly::PaidAfterExpiry, &detail)
                        .await?;
                }
                self.grant(conn, order, update.saved_method.as_deref())
                    .await?;
                Ok((PaymentEventVerdict::Accepted, None))
            }
            Outcome::Canceled { reason, detail } => {
                if order.status != PaymentStatus::Pending {
                    // E.g. a `canceled` arriving after `succeeded`: nothing changes.
                    return Ok((
                        PaymentEventVerdict::Ignored,
                        Some(format!("the order is already {}", order.status)),
                    ));
                }
                payments::mark_unpaid(
                    conn,
                    order.id,
                    PaymentStatus::Canceled,
                    detail,
                    Some(&update.raw),
                )
                .await?;
                self.after_cancel(conn, order, *reason).await?;
                Ok((PaymentEventVerdict::Accepted, Some(detail.clone())))
            }
        }
    }

    /// What a paid order gives: the days (plus promo bonus days) on the subscription, the promo
    /// redemption, the inviter's bonus on a first payment, a saved card for auto-renewal, and the
    /// jobs that put it on the panel and tell the user.
    pub(super) async fn grant(
        &self,
        conn: &mut PgConn,
        order: &Payment,
        saved_method: Option<&str>,
    ) -> diesel::QueryResult<()> {
        let user = users::find(conn, order.user_id)
            .await?
            .ok_or(diesel::result::Error::NotFound)?;
        let name = user.panel_username(self.panel_prefix());
        let end = subscriptions::extend(
            conn,
            user.id,
            &name,
            order.days + order.bonus_days,
            order.plan_id.map_or(Grant::Days, Grant::Plan),
        )
        .await?;
        if order.promo_code_id.is_some() {
            // A free order's code was redeemed before it was marked paid.
            if order.provider != PaymentProvider::Free
                && let Some(refusal) = self.redeem_promo(conn, order).await?
            {
                let detail = format!(
                    "promo code over-use ({refusal}): the order was priced with a code whose \
                     limits were spent meanwhile; the payer got what was paid for"
                );
                self.raise(conn, order.id, Anomaly::PromoOveruse, &detail)
                    .await?;
            }
            users::clear_pending_promo(conn, user.id).await?;
        }
        if order.save_payment_method
            && let Some(method) = saved_method
        {
            // A saved YooKassa card, or the charge of a Star subscription's first payment.
            subscriptions::set_auto_renew(conn, user.id, Some((order.provider, method))).await?;
        }
        self.reward_inviter(conn, order).await?;
        self.provision(conn, user.id).await?;
        let plan = match order.plan_id {
            Some(id) => plans::find(conn, id).await?,
            None => None,
        };
        // The subscriber reads the plan in their language; the admins' sale alert names it by
        // its default name, as the admin API does.
        let plan_name = plan.as_ref().map(|p| p.name.clone()).unwrap_or_default();
        let plan = plan
            .map(|p| p.name_in(user.language).to_owned())
            .unwrap_or_default();
        let notification = match order.kind {
            PaymentKind::AutoRenewal | PaymentKind::StarsRenewal => {
                Notification::AutoRenewalSucceeded {
                    plan,
                    amount: order.amount(),
                    expires_at: end,
                }
            }
            PaymentKind::Checkout => Notification::PaymentSucceeded {
                plan,
                amount: order.amount(),
                days: u32::try_from(order.days + order.bonus_days).unwrap_or(0),
                expires_at: end,
            },
        };
        self.notify(conn, user.id, format!("payment:{}", order.id), notification)
            .await?;
        if self.settings.alerts.notify_sales && order.provider != PaymentProvider::Free {
            let sale = Alert::Sale {
                order: order.id,
                user: user.id,
                telegram_id: user.telegram_id,
                plan: plan_name,
                amount: order.amount(),
                provider: order.provider,
            };
            crate::db::alerts::raise(conn, &sale, self.max_attempts()).await?;
        }
        self.apply_early_refunds(conn, order).await
    }

    /// Redeems the order's promo code (the use it holds, or a free one); the refusal when no use
    /// was left for it.
    async fn redeem_promo(
        &self,
        conn: &mut PgConn,
        order: &Payment,
    ) -> diesel::QueryResult<Option<crate::domain::pricing::PromoRefusal>> {
        let Some(code) = order.promo_code_id else {
            return Ok(None);
        };
        Ok(
            match promo::redeem_for_order(
                conn,
                code,
                order.user_id,
                order.id,
                order.discount_minor,
                order.bonus_days,
            )
            .await?
            {
                promo::Redemption::Redeemed => None,
                promo::Redemption::OverUse(refusal) => Some(refusal),
            },
        )
    }

    /// The inviter's bonus, once, when the invited user pays for the first time.
    async fn reward_inviter(&self, conn: &mut PgConn, order: &Payment) -> diesel::QueryResult<()> {
        let days = i32::try_from(self.settings.payments.referral_inviter_days).unwrap_or(0);
        if days == 0 || order.provider == PaymentProvider::Free {
            return Ok(());
        }
        let Some(referral) = referrals::of_invitee(conn, order.user_id).await? else {
            return Ok(());
        };
        if referral.inviter_rewarded_at.is_some()
            || !payments::is_first_payment(conn, order.user_id, order.id).await?
        {
            return Ok(());
        }
        if !referrals::reward_inviter(conn, referral.id, order.id, days).await? {
            return Ok(());
        }
        let Some(inviter) = users::find(conn, referral.inviter_id).await? else {
            return Ok(());
        };
        let name = inviter.panel_username(self.panel_prefix());
        let end = subscriptions::extend(conn, inviter.id, &name, days, Grant::Days).await?;
        self.provision(conn, inviter.id).await?;
        self.notify(
            conn,
            inviter.id,
            format!("referral_bonus:{}", referral.id),
            Notification::ReferralBonus {
                days: u32::try_from(days).unwrap_or(0),
                expires_at: end,
            },
        )
        .await?;
        tracing::info!(inviter = %inviter.id, invitee = %order.user_id, days, "referral bonus granted");
        Ok(())
    }

    async fn after_cancel(
        &self,
        conn: &mut PgConn,
        order: &Payment,
        reason: FailureReason,
    ) -> diesel::QueryResult<()> {
        let language = users::find(conn, order.user_id)
            .await?
            .map_or(Language::En, |u| u.language);
        let plan = match order.plan_id {
            Some(id) => plans::find(conn, id)
                .await?
                .map(|p| p.name_in(language).to_owned()),
            None => None,
        }
        .unwrap_or_default();
        let notification = match order.kind {
            PaymentKind::AutoRenewal => {
                if reason == FailureReason::PermissionRevoked {
                    subscriptions::set_auto_renew(conn, order.user_id, None).await?;
                    tracing::info!(user = %order.user_id, "automatic renewal turned off: the card's permission was revoked");
                }
                Notification::AutoRenewalFailed {
                    amount: order.amount(),
                    reason,
                }
            }
            _ => Notification::PaymentFailed {
                plan,
                amount: order.amount(),
                reason,
            },
        };
        self.notify(
            conn,
            order.user_id,
            format!("payment_failed:{}", order.id),
            notification,
        )
        .await
    }

    /// A Star subscription renewed itself: a new order for the next 30 days, born paid, keyed by
    /// Telegram's charge id (a redelivery finds it and changes nothing).
    async fn renew_star_subscription(
        &self,
        conn: &mut PgConn,
        first: &Payment,
        update: &PaymentUpdate,
        amount: Money,
    ) -> diesel::QueryResult<(PaymentEventVerdict, Option<String>)> {
        let key = format!("stars_charge:{}", update.external_id);
        if payments::find_by_idempotency_key(conn, &key)
            .await?
            .is_some()
            || payments::find_by_external(conn, PaymentProvider::Stars, &update.external_id)
                .await?
                .is_some()
        {
            return Ok((PaymentEventVerdict::Duplicate, None));
        }
        if amount != first.amount() {
            let detail = format!(
                "renewal paid {amount}, the subscription costs {}",
                first.amount()
            );
            return Ok((PaymentEventVerdict::Mismatched, Some(detail)));
        }
        let renewal = payments::insert(
            conn,
            &NewOrder {
                user_id: first.user_id,
                plan_id: first.plan_id,
                provider: PaymentProvider::Stars,
                kind: PaymentKind::StarsRenewal,
                amount,
                days: first.days,
                promo_code_id: None,
                discount_minor: 0,
                bonus_days: 0,
                save_payment_method: false,
                link_expires_at: None,
                idempotency_key: Some(&key),
                external_id: None,
                payment_method_id: None,
            },
        )
        .await?;
        payments::mark_succeeded(conn, renewal.id, &update.external_id, &update.raw).await?;
        self.grant(conn, &renewal, None).await?;
        Ok((
            PaymentEventVerdict::Accepted,
            Some(format!("renewal order {}", renewal.id)),
        ))
    }

    pub(super) async fn provision(
        &self,
        conn: &mut PgConn,
        user: UserId,
    ) -> diesel::QueryResult<()> {
        jobs::enqueue(conn, provision_job(user), self.max_attempts())
            .await
            .map(|_| ())
    }

    pub(super) async fn notify(
        &self,
        conn: &mut PgConn,
        user: UserId,
        dedup_key: String,
        notification: Notification,
    ) -> diesel::QueryResult<()> {
        let job = NotifyJob {
            user_id: user,
            notification,
            dedup_key,
        };
        notifications::enqueue_once(conn, &job, self.max_attempts())
            .await
            .map(|_| ())
    }
}

/// YooKassa's cancellation reasons in the shop's words.
pub fn yookassa_reason(reason: &str) -> FailureReason {
    match reason {
        "insufficient_funds" | "payment_method_limit_exceeded" => FailureReason::InsufficientFunds,
        "card_expired" => FailureReason::CardExpired,
        "permission_revoked" => FailureReason::PermissionRevoked,
        "3d_secure_failed" => FailureReason::ThreeDSecure,
        "fraud_suspected" => FailureReason::FraudSuspected,
        "expired_on_confirmation" | "canceled_by_merchant" | "expired_on_capture" => {
            FailureReason::Canceled
        }
        "call_issuer"
        | "general_decline"
        | "invalid_card_number"
        | "invalid_csc"
        | "issuer_unavailable"
        | "payment_method_restricted"
        | "country_forbidden"
        | "identification_required" => FailureReason::Declined,
        _ => FailureReason::Other,
    }
}
