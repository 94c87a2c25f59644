//! The periodic payment work: asking providers about orders whose webhook never came (and
//! expiring the ones whose link closed), and charging saved cards before subscriptions end.

use chrono::Utc;

use super::fulfil::{Outcome, PaymentUpdate, yookassa_reason};
use super::{CheckoutError, Shared, raw_of};
use crate::actors::job_runner::JobError;
use crate::clients::ProviderError;
use crate::clients::wata;
use crate::clients::yookassa::{Amount, CreatePayment, Status, YooKassaClient};
use crate::db::models::Payment;
use crate::db::payments::{self, NewOrder};
use crate::db::{plans, subscriptions};
use crate::domain::notifications::FailureReason;
use crate::domain::{PaymentKind, PaymentProvider, PaymentStatus, UserId};
use teloxide::prelude::Requester;
use teloxide::types::{
    TelegramTransactionId, TransactionPartner, TransactionPartnerUserKind, UserId as TelegramUserId,
};

/// Orders asked about per provider and run.
const POLL_BATCH: i64 = 200;
/// Stars invoices do not expire; orders for them are given up after this long.
const STARS_ORDER_TTL: chrono::Duration = chrono::Duration::days(1);
/// How long YooKassa answers a repeated `Idempotence-Key` with the first result (24 h), less a
/// margin: after it, a repeat would be a new charge.
const IDEMPOTENCE_WINDOW: chrono::Duration = chrono::Duration::hours(23);

impl Shared {
    pub(super) async fn poll_pending(&self) -> Result<(), JobError> {
        let cutoff = Utc::now()
            - chrono::Duration::from_std(self.settings.payments.poll_after).unwrap_or_default();
        let mut asked = 0;
        for provider in [
            PaymentProvider::Yookassa,
            PaymentProvider::Wata,
            PaymentProvider::Stars,
        ] {
            let orders = {
                let mut conn = self.pool.get().await?;
                payments::pending_of(&mut conn, provider, cutoff, POLL_BATCH).await?
            };
            for order in orders {
                asked += 1;
                if let Err(e) = self.poll_one(&order).await {
                    tracing::warn!(order = %order.id, error = %e.message, "could not ask about a pending order");
                }
            }
        }
        if asked > 0 {
            tracing::info!(orders = asked, "asked providers about pending orders");
        }
        Ok(())
    }

    async fn poll_one(&self, order: &Payment) -> Result<(), JobError> {
        let link_closed = order.link_expires_at.is_some_and(|at| at < Utc::now());
        let update = |outcome, external_id: String, raw| PaymentUpdate {
            provider: order.provider,
            order_id: Some(order.id),
            event_key: format!("poll:{}:{external_id}", order.id),
            external_id,
            event_type: "poll".into(),
            outcome,
            saved_method: None,
            raw,
            remote_addr: None,
        };
        match order.provider {
            PaymentProvider::Yookassa => {
                let Some(client) = &self.clients.yookassa else {
                    return Ok(());
                };
                let Some(external) = &order.external_id else {
                    // An automatic charge whose answer was lost: the same request again, within
                    // YooKassa's 24 h idempotence window, returns that payment.
                    if order.payment_method_id.is_some() {
                        if order.created_at > Utc::now() - IDEMPOTENCE_WINDOW {
                            return self.charge_saved_method(client, order).await;
                        }
                        return self
                            .expire_if(order, true, "YooKassa never answered the charge")
                            .await;
                    }
                    // YooKassa never got the order (the checkout failed before it answered).
                    return self
                        .expire_if(order, link_closed, "no payment was created at YooKassa")
                        .await;
                };
                match client.get_payment(external).await {
                    Ok(p) => {
                        let outcome = match p.status {
                            Status::Succeeded if p.paid => match p.amount.to_money() {
                                Some(amount) => Outcome::Paid { amount },
                                None => return Ok(()),
                            },
                            Status::Canceled => {
                                let reason = p
                                    .cancellation_details
                                    .as_ref()
                                    .map_or("", |c| c.reason.as_str());
                                Outcome::Canceled {
                                    reason: yookassa_reason(reason),
                                    detail: format!("canceled: {reason}"),
                                }
                            }
                            _ => return Ok(()),
                        };
                        let saved = p
                            .payment_method
                            .as_ref()
                            .filter(|m| m.saved)
                            .map(|m| m.id.clone());
                        let mut u = update(outcome, p.id.clone(), raw_of(&p));
                        u.saved_method = saved;
                        self.apply(u).await.map(|_| ())
                    }
                    Err(ProviderError::NotFound) => {
                        self.expire_if(order, true, "unknown to YooKassa").await
                    }
                    Err(e) => Err(JobError::retryable(e)),
                }
            }
            PaymentProvider::Wata => {
                let Some(client) = &self.clients.wata else {
                    return Ok(());
                };
                let transactions = client
                    .transactions_of_order(&order.id.to_string())
                    .await
                    .map_err(JobError::retryable)?;
                if let Some(paid) = transactions.iter().find(|t| t.is_paid_payment()) {
                    let Some(amount) = wata::to_money(paid.amount, &paid.currency) else {
                        return Ok(());
                    };
                    let u = update(
                        Outcome::Paid { amount },
                        paid.transaction_id.clone(),
                        raw_of(paid),
                    );
                    return self.apply(u).await.map(|_| ());
                }
                self.expire_if(order, link_closed, "the payment link closed unpaid")
                    .await
            }
            PaymentProvider::Stars => {
                // A successful_payment the bot could not record: find it among the bot's Star
                // transactions (its id is the charge id).
                if let Some(bot) = &self.clients.stars
                    && let Ok(page) = teloxide::prelude::Requester::get_star_transactions(bot).await
                {
                    let payload = super::stars_payload(order.id);
                    let found = page.transactions.into_iter().find(|t| {
                        matches!(&t.source, Some(TransactionPartner::User(u))
                            if matches!(&u.kind, TransactionPartnerUserKind::InvoicePayment(p)
                                if p.invoice_payload.as_deref() == Some(payload.as_str())))
                    });
                    if let Some(t) = found {
                        let amount = crate::domain::Money::stars(i64::from(t.amount));
                        let u = update(
                            Outcome::Paid { amount },
                            t.id.0.clone(),
                            serde_json::json!({"star_transaction": t.id.0}),
                        );
                        return self.apply(u).await.map(|_| ());
                    }
                }
                let stale = order.created_at < Utc::now() - STARS_ORDER_TTL;
                self.expire_if(order, stale, "the Stars invoice was not paid")
                    .await
            }
            PaymentProvider::Free => Ok(()),
        }
    }

    async fn expire_if(
        &self,
        order: &Payment,
        condition: bool,
        reason: &str,
    ) -> Result<(), JobError> {
        if condition {
            let mut conn = self.pool.get().await?;
            if payments::mark_unpaid(&mut conn, order.id, PaymentStatus::Expired, reason, None)
                .await?
            {
                tracing::info!(order = %order.id, reason, "order expired");
            }
        }
        Ok(())
    }

    /// Charges the saved cards of subscriptions ending within `AUTO_RENEW_DAYS_BEFORE`, once per
    /// subscription period (the order's idempotency key names the period).
    pub(super) async fn auto_renew(&self) -> Result<(), JobError> {
        let Some(client) = &self.clients.yookassa else {
            return Ok(());
        };
        let days = self.settings.payments.auto_renew_days_before;
        let due = {
            let mut conn = self.pool.get().await?;
            subscriptions::due_for_renewal(&mut conn, PaymentProvider::Yookassa, days).await?
        };
        for sub in due {
            let (Some(method), Some(plan_id)) = (&sub.auto_renew_method_id, sub.plan_id) else {
                continue;
            };
            let key = format!("auto_renew:{}:{}", sub.user_id, sub.expires_at.timestamp());
            let order = {
                let mut conn = self.pool.get().await?;
                if payments::find_by_idempotency_key(&mut conn, &key)
                    .await?
                    .is_some()
                {
                    continue;
                }
                let Some(plan) = plans::find(&mut conn, plan_id).await?.filter(|p| p.active) else {
                    tracing::warn!(user = %sub.user_id, "auto-renewal skipped: the plan is no longer on sale");
                    continue;
                };
                let inserted = payments::insert(
                    &mut conn,
                    &NewOrder {
                        user_id: sub.user_id,
                        plan_id: Some(plan.id),
                        provider: PaymentProvider::Yookassa,
                        kind: PaymentKind::AutoRenewal,
                        amount: plan.price(),
                        days: plan.days,
                        promo_code_id: None,
                        discount_minor: 0,
                        bonus_days: 0,
                        save_payment_method: false,
                        link_expires_at: None,
                        idempotency_key: Some(&key),
                        external_id: None,
                        payment_method_id: Some(method),
                    },
                )
                .await;
                match inserted {
                    Ok(order) => order,
                    // Another run created it meanwhile.
                    Err(diesel::result::Error::DatabaseError(
                        diesel::result::DatabaseErrorKind::UniqueViolation,
                        _,
                    )) => continue,
                    Err(e) => return Err(e.into()),
                }
            };
            if let Err(e) = self.charge_saved_method(client, &order).await {
                tracing::warn!(order = %order.id, error = %e.message, "auto-renewal not settled; the poll asks again");
            }
        }
        Ok(())
    }

    /// Charges an automatic renewal's saved method and applies YooKassa's answer. The request
    /// and its `Idempotence-Key` depend on the order only, so asking again (the poll, after an
    /// answer was lost) returns the same payment instead of charging twice.
    async fn charge_saved_method(
        &self,
        client: &YooKassaClient,
        order: &Payment,
    ) -> Result<(), JobError> {
        let Some(method) = &order.payment_method_id else {
            return Ok(());
        };
        let request = CreatePayment {
            amount: Amount::from_money(order.amount()),
            capture: true,
            confirmation: None,
            description: format!("VPN auto-renewal, order {}", order.id),
            metadata: [("order_id".to_owned(), order.id.to_string())].into(),
            save_payment_method: None,
            payment_method_id: Some(method.clone()),
            receipt: None,
        };
        let outcome = match client
            .create_payment(&format!("order-{}", order.id), &request)
            .await
        {
            Ok(p) => {
                let mut conn = self.pool.get().await?;
                payments::set_checkout(&mut conn, order.id, &p.id, None).await?;
                drop(conn);
                let outcome = match p.status {
                    Status::Succeeded => p.amount.to_money().map(|amount| Outcome::Paid { amount }),
                    Status::Canceled => {
                        let reason = p
                            .cancellation_details
                            .as_ref()
                            .map_or("", |c| c.reason.as_str());
                        Some(Outcome::Canceled {
                            reason: yookassa_reason(reason),
                            detail: format!("canceled: {reason}"),
                        })
                    }
                    _ => None,
                };
                outcome.map(|o| (o, p.id.clone(), raw_of(&p)))
            }
            Err(ProviderError::Rejected { message, .. }) => Some((
                Outcome::Canceled {
                    reason: FailureReason::Declined,
                    detail: message.clone(),
                },
                format!("rejected:{}", order.id),
                serde_json::json!({"rejected": message}),
            )),
            // Unknown result: the order stays pending and the poll asks again.
            Err(e) => {
                tracing::warn!(order = %order.id, error = %e, "auto-renewal charge unanswered; will be asked again");
                None
            }
        };
        let label = match &outcome {
            Some((Outcome::Paid { .. }, ..)) => "succeeded",
            Some(_) => "failed",
            None => "pending",
        };
        self.metrics
            .auto_renewals
            .with_label_values(&["yookassa", label])
            .inc();
        if let Some((outcome, external_id, raw)) = outcome {
            self.apply(PaymentUpdate {
                provider: PaymentProvider::Yookassa,
                order_id: Some(order.id),
                event_key: format!("auto_renew:{}", order.id),
                external_id,
                event_type: "auto_renewal".into(),
                outcome,
                saved_method: None,
                raw,
                remote_addr: None,
            })
            .await?;
        }
        Ok(())
    }

    /// Turns automatic renewal off; a Star subscription is canceled with Telegram first (so
    /// that Telegram stops charging), then the subscription forgets the method.
    pub(super) async fn cancel_auto_renew(&self, user_id: UserId) -> Result<bool, CheckoutError> {
        let mut conn = self.pool.get().await?;
        let Some((sub, telegram_id)) = subscriptions::find_by_user(&mut conn, user_id).await?
        else {
            return Ok(false);
        };
        if !sub.auto_renew {
            return Ok(false);
        }
        drop(conn);
        if sub.auto_renew_provider == Some(PaymentProvider::Stars)
            && let Some(charge) = &sub.auto_renew_method_id
        {
            let Some(bot) = &self.clients.stars else {
                return Err(CheckoutError::ProviderOff);
            };
            bot.edit_user_star_subscription(
                TelegramUserId(u64::try_from(telegram_id).unwrap_or_default()),
                TelegramTransactionId(charge.clone()),
                true,
            )
            .await
            .map_err(|e| CheckoutError::Provider(e.to_string()))?;
        }
        let mut conn = self.pool.get().await?;
        subscriptions::set_auto_renew(&mut conn, user_id, None).await?;
        tracing::info!(user = %user_id, provider = ?sub.auto_renew_provider, "automatic renewal turned off");
        Ok(true)
    }
}
