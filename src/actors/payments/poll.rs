//! The periodic payment work: asking providers about orders whose webhook never came (and
//! expiring the ones whose link closed), settling refund requests whose answer was lost, and
//! charging saved cards before subscriptions end. An order is expired only after its provider
//! was asked and answered that it was not paid.

use std::collections::HashMap;

use chrono::{DateTime, Utc};

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
use diesel_async::AsyncConnection;
use teloxide::payloads::GetStarTransactionsSetters;
use teloxide::prelude::Requester;
use teloxide::types::{
    StarTransaction, TelegramTransactionId, TransactionPartner, TransactionPartnerUserKind,
    UserId as TelegramUserId,
};

/// Orders asked about per provider and run.
const POLL_BATCH: i64 = 200;
/// Stars invoices do not expire; orders for them are given up after this long.
const STARS_ORDER_TTL: chrono::Duration = chrono::Duration::days(1);
/// How long YooKassa answers a repeated `Idempotence-Key` with the first result (24 h), less a
/// margin: after it, a repeat would be a new charge.
const IDEMPOTENCE_WINDOW: chrono::Duration = chrono::Duration::hours(23);
/// A refund request whose answer was lost is asked about after this long…
const REFUND_ASK_AFTER: chrono::Duration = chrono::Duration::minutes(1);
/// … and, when the provider lists no such refund after this long, it was never made.
const REFUND_GIVE_UP_AFTER: chrono::Duration = chrono::Duration::hours(1);
/// Star transactions per `getStarTransactions` page (Telegram's maximum).
const STAR_PAGE: u8 = 100;
/// At most this many `getStarTransactions` calls per poll run.
const STAR_CALLS: usize = 200;

/// The bot's Stars invoice payments, by invoice payload: charge id and Stars.
type StarPayments = HashMap<String, (String, i64)>;

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
            // Telegram has no lookup by order: the bot's Star transactions are read once per
            // run, back to the oldest order asked about. `None` when they could not be read:
            // then no Stars order is expired this run.
            let stars = match orders.iter().map(|o| o.created_at).min() {
                Some(oldest) if provider == PaymentProvider::Stars => {
                    self.star_payments_since(oldest).await
                }
                _ => None,
            };
            for order in orders {
                asked += 1;
                if let Err(e) = self.poll_one(&order, stars.as_ref()).await {
                    tracing::warn!(order = %order.id, error = %e.message, "could not ask about a pending order");
                }
            }
        }
        if asked > 0 {
            tracing::info!(orders = asked, "asked providers about pending orders");
        }
        self.settle_refund_requests().await
    }

    async fn poll_one(
        &self,
        order: &Payment,
        stars: Option<&StarPayments>,
    ) -> Result<(), JobError> {
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
                        let refunded = p
                            .refunded_amount
                            .as_ref()
                            .and_then(|a| a.to_money())
                            .is_some_and(|m| m.minor > 0);
                        let mut u = update(outcome, p.id.clone(), raw_of(&p));
                        u.saved_method = saved;
                        self.apply(u).await?;
                        if refunded {
                            // Refunded before the shop heard of the payment: its refunds too.
                            self.yookassa_refunds_of(client, order, &p.id).await?;
                        }
                        Ok(())
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
                    self.apply(u).await?;
                    // Refunded before the shop heard of the payment: its refunds too.
                    return self.wata_refunds(order, &transactions).await;
                }
                self.expire_if(order, link_closed, "the payment link closed unpaid")
                    .await
            }
            PaymentProvider::Stars => {
                // A successful_payment the bot could not record: found among the bot's Star
                // transactions (its id is the charge id).
                let Some(stars) = stars else {
                    // Telegram could not be asked: an order is never expired unasked.
                    return Ok(());
                };
                if let Some((charge, amount)) = stars.get(&super::stars_payload(order.id)) {
                    let u = update(
                        Outcome::Paid {
                            amount: crate::domain::Money::stars(*amount),
                        },
                        charge.clone(),
                        serde_json::json!({"star_transaction": charge}),
                    );
                    return self.apply(u).await.map(|_| ());
                }
                let stale = order.created_at < Utc::now() - STARS_ORDER_TTL;
                self.expire_if(order, stale, "the Stars invoice was not paid")
                    .await
            }
            PaymentProvider::Free => Ok(()),
        }
    }

    /// The bot's Stars invoice payments made since `since`, by payload; `None` when Telegram
    /// could not be read. `getStarTransactions` pages by offset, in chronological order as its
    /// documentation says (oldest first): the end is found by probing (a doubling, then a
    /// bisection, ~2·log₂ n calls), then pages are read from the newest back to `since`. Should
    /// Telegram answer newest first, the pages are read from the start back to `since`.
    async fn star_payments_since(&self, since: DateTime<Utc>) -> Option<StarPayments> {
        let bot = self.clients.stars.as_ref()?;
        // A payment is made after its order: a minute of margin for the clocks.
        let since = since - chrono::Duration::minutes(1);
        let mut calls = 0usize;
        let mut page = async |offset: u32, limit: u8| -> Option<Vec<StarTransaction>> {
            calls += 1;
            if calls > STAR_CALLS {
                tracing::warn!(
                    calls,
                    "too many getStarTransactions calls in one run; the rest waits for the next"
                );
                return None;
            }
            match bot
                .get_star_transactions()
                .offset(offset)
                .limit(limit)
                .await
            {
                Ok(page) => Some(page.transactions),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read the bot's Star transactions");
                    None
                }
            }
        };
        let mut found = StarPayments::new();
        let mut collect = |transactions: &[StarTransaction]| {
            for t in transactions {
                if let Some(TransactionPartner::User(u)) = &t.source
                    && let TransactionPartnerUserKind::InvoicePayment(p) = &u.kind
                    && let Some(payload) = &p.invoice_payload
                {
                    found.insert(payload.clone(), (t.id.0.clone(), i64::from(t.amount)));
                }
            }
        };
        let first = page(0, STAR_PAGE).await?;
        collect(&first);
        let full = |p: &[StarTransaction]| p.len() >= usize::from(STAR_PAGE);
        let newest_first =
            first.len() >= 2 && first.first().map(|t| t.date) > first.last().map(|t| t.date);
        if newest_first {
            let mut offset = first.len();
            let mut last = first;
            while full(&last) && last.last().is_some_and(|t| t.date >= since) {
                last = page(u32::try_from(offset).ok()?, STAR_PAGE).await?;
                collect(&last);
                offset += last.len();
            }
            return Some(found);
        }
        if !full(&first) {
            return Some(found);
        }
        // Chronological: find how many there are (offset `lo` exists, `hi` does not) …
        let mut lo: u32 = u32::from(STAR_PAGE) - 1;
        let mut hi: u32 = u32::from(STAR_PAGE) * 2;
        while !page(hi, 1).await?.is_empty() {
            lo = hi;
            hi = hi.checked_mul(2)?;
        }
        while hi - lo > 1 {
            let mid = lo + (hi - lo) / 2;
            if page(mid, 1).await?.is_empty() {
                hi = mid;
            } else {
                lo = mid;
            }
        }
        // … then read from the newest back to `since`.
        let mut end = hi;
        while end > u32::from(STAR_PAGE) {
            let start = end.saturating_sub(u32::from(STAR_PAGE));
            let transactions = page(start, STAR_PAGE).await?;
            collect(&transactions);
            if transactions.first().is_none_or(|t| t.date < since) {
                break;
            }
            end = start;
        }
        Some(found)
    }

    /// The refunds YooKassa made of the order's payment, each counted once.
    async fn yookassa_refunds_of(
        &self,
        client: &YooKassaClient,
        order: &Payment,
        payment_id: &str,
    ) -> Result<(), JobError> {
        let refunds = client
            .list_refunds(payment_id)
            .await
            .map_err(JobError::retryable)?;
        for refund in refunds.iter().filter(|r| r.status == "succeeded") {
            let Some(amount) = refund.amount.to_money() else {
                continue;
            };
            self.apply(PaymentUpdate {
                provider: PaymentProvider::Yookassa,
                order_id: Some(order.id),
                external_id: payment_id.to_owned(),
                event_key: format!("poll:{}:{}", refund.id, refund.status),
                event_type: "poll".into(),
                outcome: Outcome::Refunded {
                    amount,
                    refund_id: refund.id.clone(),
                },
                saved_method: None,
                raw: raw_of(refund),
                remote_addr: None,
            })
            .await?;
        }
        Ok(())
    }

    /// The refunds among an order's WATA transactions, each counted once.
    async fn wata_refunds(
        &self,
        order: &Payment,
        transactions: &[wata::Transaction],
    ) -> Result<(), JobError> {
        for refund in transactions
            .iter()
            .filter(|t| t.kind.as_deref() == Some("Refund") && t.transaction_status == "Paid")
        {
            let (Some(amount), Some(original)) = (
                wata::to_money(refund.amount, &refund.currency),
                refund.original_transaction_id.clone(),
            ) else {
                continue;
            };
            self.apply(PaymentUpdate {
                provider: PaymentProvider::Wata,
                order_id: Some(order.id),
                external_id: original,
                event_key: format!("poll:{}:Paid", refund.transaction_id),
                event_type: "poll".into(),
                outcome: Outcome::Refunded {
                    amount,
                    refund_id: refund.transaction_id.clone(),
                },
                saved_method: None,
                raw: raw_of(refund),
                remote_addr: None,
            })
            .await?;
        }
        Ok(())
    }

    /// Refund requests whose answer was lost: the provider is asked which refunds it made (each
    /// is counted once, settling the request); a request it shows no refund for after
    /// [`REFUND_GIVE_UP_AFTER`] was never made. Stars requests are settled by Telegram's
    /// `refunded_payment` (and stop blocking after `REFUND_REQUEST_STALE_AFTER`).
    async fn settle_refund_requests(&self) -> Result<(), JobError> {
        let orders = {
            let mut conn = self.pool.get().await?;
            payments::orders_with_open_refund_requests(
                &mut conn,
                Utc::now() - REFUND_ASK_AFTER,
                POLL_BATCH,
            )
            .await?
        };
        for order in orders {
            let external = order.external_id.clone().unwrap_or_default();
            let asked = match order.provider {
                PaymentProvider::Yookassa => match &self.clients.yookassa {
                    Some(client) => self.yookassa_refunds_of(client, &order, &external).await,
                    None => continue,
                },
                PaymentProvider::Wata => match &self.clients.wata {
                    Some(client) => match client.transactions_of_order(&order.id.to_string()).await
                    {
                        Ok(transactions) => self.wata_refunds(&order, &transactions).await,
                        Err(e) => Err(JobError::retryable(e)),
                    },
                    None => continue,
                },
                PaymentProvider::Stars | PaymentProvider::Free => continue,
            };
            if let Err(e) = asked {
                tracing::warn!(order = %order.id, error = %e.message, "could not ask about a refund request");
                continue;
            }
            // What is still open after the provider's answer was not made.
            let mut conn = self.pool.get().await?;
            let open = payments::refunds_in_state(
                &mut conn,
                order.id,
                crate::domain::RefundState::Requested,
            )
            .await?;
            for request in open
                .iter()
                .filter(|r| r.created_at < Utc::now() - REFUND_GIVE_UP_AFTER)
            {
                payments::settle_refund(
                    &mut conn,
                    request.id,
                    crate::domain::RefundState::Failed,
                    None,
                    0,
                )
                .await?;
                tracing::warn!(order = %order.id, request = request.id, "a refund request the provider never made is closed");
            }
        }
        Ok(())
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
                conn.transaction::<_, diesel::result::Error, _>(async |conn| {
                    // Locked: one run (on any replica) decides for this subscription at a time.
                    subscriptions::lock_by_user(conn, sub.user_id).await?;
                    if payments::find_by_idempotency_key(conn, &key)
                        .await?
                        .is_some()
                    {
                        return Ok(None);
                    }
                    // A charge still under way (its end may have moved since it was made, e.g.
                    // an admin gave days): no second one; the poll settles the first.
                    if let Some(pending) = payments::pending_auto_renewal(conn, sub.user_id).await?
                    {
                        tracing::info!(user = %sub.user_id, order = %pending.id, "auto-renewal skipped: a charge is still pending");
                        return Ok(None);
                    }
                    let Some(plan) = plans::find(conn, plan_id).await?.filter(|p| p.active) else {
                        tracing::warn!(user = %sub.user_id, "auto-renewal skipped: the plan is no longer on sale");
                        return Ok(None);
                    };
                    payments::insert(
                        conn,
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
                    .await
                    .map(Some)
                })
                .await?
            };
            let Some(order) = order else { continue };
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
        let outcome = match client.create_payment(&order.provider_key, &request).await {
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
                // Only a Telegram user can have paid in Stars.
                TelegramUserId(
                    telegram_id
                        .and_then(|id| u64::try_from(id).ok())
                        .unwrap_or_default(),
                ),
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
