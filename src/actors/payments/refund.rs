//! Refunds: through the order's provider, then — in one transaction — the order is marked
//! refunded, the paid days are taken back from the subscription (by the refunded share), the
//! panel is re-provisioned and the audit log records who did it.
//!
//! A refund is written down (`requested`) under the order's lock before the provider is asked,
//! so a second request for the same payment — a double click, a retry after a timeout — finds it
//! and is refused instead of refunding twice. When the provider's answer is lost the request
//! stays open until the provider's notice, or the poll asking the provider, settles it. A refund
//! the provider reports before the shop has recorded the payment (`early`) is kept and applied
//! when the payment lands.

use diesel_async::AsyncConnection;
use teloxide::prelude::Requester;
use teloxide::types::{TelegramTransactionId, UserId as TelegramUserId};

use super::{Anomaly, Refund, RefundResult, Shared};
use crate::clients::ProviderError;
use crate::db::audit::{self, AuditRecord};
use crate::db::models::{Payment, PaymentRefund};
use crate::db::payments::{NewRefund, REFUND_REQUEST_STALE_AFTER};
use crate::db::{PgConn, alerts, payments, referrals, subscriptions, users};
use crate::domain::alerts::{Alert, RefundOrigin};
use crate::domain::pricing::{refund_amount, refund_days};
use crate::domain::{Money, PaymentProvider, PaymentStatus, RefundState};

/// The longest refund `description` sent to YooKassa. Its reference names no limit; the fake in
/// `tests/it/support` refuses more than 250 characters, and a refund must not fail over its note.
const MAX_REFUND_DESCRIPTION: usize = 250;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RefundError {
    #[error("payment {0} not found")]
    NotFound(crate::domain::PaymentId),
    #[error("payment {0} was not paid (it is {1})")]
    NotPaid(crate::domain::PaymentId, PaymentStatus),
    #[error("{0}")]
    Invalid(String),
    #[error("the provider refused the refund: {0}")]
    Provider(String),
    /// A refund of this payment is already under way (requested, outcome not known yet).
    #[error("{0}")]
    InProgress(String),
    /// The provider was asked but its answer was lost: it may have refunded. Nothing is asked
    /// again until its notice (or an answer) settles it.
    #[error("{0}")]
    Unknown(String),
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<diesel::result::Error> for RefundError {
    fn from(e: diesel::result::Error) -> Self {
        RefundError::Internal(e.to_string())
    }
}

impl From<crate::db::PoolError> for RefundError {
    fn from(e: crate::db::PoolError) -> Self {
        RefundError::Internal(e.to_string())
    }
}

/// What the provider said to a refund request.
enum Asked {
    /// Refunded: the provider's id of the refund.
    Refunded(String),
    /// Refused: nothing was refunded.
    Refused(String),
    /// No answer (a timeout, a 5xx): the provider may have refunded.
    Unknown(String),
}

fn asked(result: Result<String, ProviderError>) -> Asked {
    match result {
        Ok(id) => Asked::Refunded(id),
        // Refused before anything was done, or nothing reached the provider.
        Err(
            e @ (ProviderError::NotFound
            | ProviderError::Rejected { .. }
            | ProviderError::Unauthorized(_)),
        ) => Asked::Refused(e.to_string()),
        Err(ProviderError::Unavailable(m)) if m.starts_with("connection failed") => {
            Asked::Refused(format!("the provider is unavailable: {m}"))
        }
        Err(e) => Asked::Unknown(e.to_string()),
    }
}

/// Whether the shop counts `order` as paid (a refund of it can be applied).
fn is_paid(order: &Payment) -> bool {
    matches!(
        order.status,
        PaymentStatus::Succeeded | PaymentStatus::Refunded
    )
}

impl Shared {
    pub(super) async fn refund(&self, msg: Refund) -> Result<RefundResult, RefundError> {
        let mut conn = self.pool.get().await?;
        // Checked and written down under the order's lock, before the provider is asked.
        let (order, amount, request) = conn
            .transaction::<_, RefundError, _>(async |conn| {
                let order = payments::lock(conn, msg.payment_id)
                    .await?
                    .ok_or(RefundError::NotFound(msg.payment_id))?;
                if !is_paid(&order) {
                    return Err(RefundError::NotPaid(order.id, order.status));
                }
                if let Some(open) =
                    payments::refunds_in_state(conn, order.id, RefundState::Requested)
                        .await?
                        .first()
                {
                    return Err(RefundError::InProgress(format!(
                        "a refund of {} was asked of {} at {} and its outcome is not known yet; \
                         it is counted when {} confirms it (at the latest {} after the request)",
                        Money::new(open.amount_minor, order.currency),
                        order.provider,
                        open.created_at.format("%Y-%m-%d %H:%M:%S UTC"),
                        order.provider,
                        humanize_hours(REFUND_REQUEST_STALE_AFTER),
                    )));
                }
                let amount = refund_amount(
                    Money::new(order.amount_minor, order.currency),
                    order.refunded_minor,
                    msg.amount,
                )
                .map_err(RefundError::Invalid)?;
                self.check_refundable(&order, amount)?;
                let request = payments::insert_refund(
                    conn,
                    &order,
                    NewRefund {
                        external_id: None,
                        amount_minor: amount.minor,
                        days_taken_back: 0,
                        state: RefundState::Requested,
                    },
                )
                .await?;
                Ok((order, amount, request))
            })
            .await?;
        drop(conn);
        let refund_id = match self.ask_provider(&order, amount, &request, &msg).await? {
            Asked::Refunded(id) => id,
            Asked::Refused(message) => {
                let mut conn = self.pool.get().await?;
                payments::settle_refund(&mut conn, request.id, RefundState::Failed, None, 0)
                    .await?;
                tracing::warn!(order = %order.id, %message, "the provider refused the refund");
                return Err(RefundError::Provider(message));
            }
            Asked::Unknown(message) => {
                tracing::warn!(order = %order.id, %message, "refund outcome unknown; it is not asked again until the provider settles it");
                return Err(RefundError::Unknown(format!(
                    "{} did not answer ({message}): the refund may have been made. It is not \
                     asked again; it is counted when {} confirms it",
                    order.provider, order.provider
                )));
            }
        };
        self.metrics
            .refunds
            .with_label_values(&[order.provider.as_str()])
            .inc();
        let mut conn = self.pool.get().await?;
        let result = conn
            .transaction::<_, diesel::result::Error, _>(async |conn| {
                let origin = RefundOrigin::Shop {
                    actor: msg.actor.clone(),
                };
                let (result, _) = self
                    .take_back(conn, &order, amount, &refund_id, origin)
                    .await?;
                audit::record(
                    conn,
                    AuditRecord {
                        admin_id: msg.admin_id,
                        actor: msg.actor.clone(),
                        action: "payment.refund".into(),
                        target_type: Some("payment".into()),
                        target_id: Some(order.id.to_string()),
                        before: Some(serde_json::json!({"status": order.status, "refunded_minor": order.refunded_minor})),
                        after: Some(serde_json::json!({
                            "refunded": amount, "refund_id": refund_id,
                            "days_taken_back": result.days_taken_back, "reason": msg.reason,
                        })),
                        remote_addr: msg.remote_addr.clone(),
                    },
                )
                .await?;
                Ok(result)
            })
            .await?;
        tracing::info!(order = %order.id, refunded = %amount, days = result.days_taken_back, actor = %msg.actor, "payment refunded");
        Ok(result)
    }

    /// What the provider allows, checked before anything is written.
    fn check_refundable(&self, order: &Payment, amount: Money) -> Result<(), RefundError> {
        let configured = match order.provider {
            PaymentProvider::Yookassa => self.clients.yookassa.is_some(),
            PaymentProvider::Wata => self.clients.wata.is_some(),
            PaymentProvider::Stars => self.clients.stars.is_some(),
            PaymentProvider::Free => true,
        };
        if !configured {
            return Err(RefundError::Provider(format!(
                "{} is not configured",
                order.provider
            )));
        }
        if order.provider == PaymentProvider::Stars
            && amount.minor != order.amount_minor - order.refunded_minor
        {
            return Err(RefundError::Invalid(
                "Stars payments are refunded in full only".into(),
            ));
        }
        Ok(())
    }

    /// Asks the order's provider for the refund `request` of `amount`.
    async fn ask_provider(
        &self,
        order: &Payment,
        amount: Money,
        request: &PaymentRefund,
        msg: &Refund,
    ) -> Result<Asked, RefundError> {
        let external = order.external_id.clone().unwrap_or_default();
        Ok(match order.provider {
            PaymentProvider::Yookassa => {
                let Some(client) = &self.clients.yookassa else {
                    return Ok(Asked::Refused("YooKassa is not configured".into()));
                };
                // The refund request's own key (random, stored with it): YooKassa answers a repeat
                // with the same refund.
                let key = &request.provider_key;
                // The audit log keeps the whole reason; YooKassa gets what its field holds.
                let description: String = msg.reason.chars().take(MAX_REFUND_DESCRIPTION).collect();
                match client
                    .create_refund(key, &external, amount, &description)
                    .await
                {
                    Ok(refund) if refund.status == "canceled" => {
                        Asked::Refused("YooKassa canceled the refund".into())
                    }
                    other => asked(other.map(|r| r.id)),
                }
            }
            PaymentProvider::Wata => {
                let Some(client) = &self.clients.wata else {
                    return Ok(Asked::Refused("WATA is not configured".into()));
                };
                match client.refund(&external, amount).await {
                    Ok(result) if result.transaction_status == "Declined" => Asked::Refused(
                        result
                            .error_description
                            .unwrap_or_else(|| "declined".into()),
                    ),
                    other => asked(other.map(|r| r.transaction_id)),
                }
            }
            PaymentProvider::Stars => {
                let Some(bot) = &self.clients.stars else {
                    return Ok(Asked::Refused("Stars are not configured".into()));
                };
                let mut conn = self.pool.get().await?;
                let user = users::find(&mut conn, order.user_id)
                    .await?
                    .ok_or_else(|| RefundError::Internal("the user is gone".into()))?;
                drop(conn);
                let refunded = bot
                    .refund_star_payment(
                        // Only a Telegram user can have paid in Stars.
                        TelegramUserId(
                            user.telegram_id
                                .and_then(|id| u64::try_from(id).ok())
                                .unwrap_or_default(),
                        ),
                        TelegramTransactionId(external.clone()),
                    )
                    .await;
                match refunded {
                    // A Stars payment is refunded once, in full: the charge names the refund.
                    Ok(_) => Asked::Refunded(external),
                    Err(teloxide::RequestError::Api(e))
                        if e.to_string().contains("CHARGE_ALREADY_REFUNDED") =>
                    {
                        Asked::Refunded(external)
                    }
                    Err(teloxide::RequestError::Api(e)) => Asked::Refused(e.to_string()),
                    Err(e) => Asked::Unknown(e.to_string()),
                }
            }
            PaymentProvider::Free => Asked::Refunded(format!("free:{}", order.id)),
        })
    }

    /// Counts the provider's refund `refund_id` of `amount` of `order` once: marks it refunded
    /// and takes its days back (re-provisioning the panel). The order's row lock serialises the
    /// admin's request and the provider's notice of the same refund; the second finds the first's
    /// record and changes nothing (`false`). A refund of a payment the shop has not recorded as
    /// paid yet is kept (`early`) and applied when the payment lands ([`Self::apply_early_refunds`]).
    pub(super) async fn take_back(
        &self,
        conn: &mut PgConn,
        order: &Payment,
        amount: Money,
        refund_id: &str,
        mut origin: RefundOrigin,
    ) -> diesel::QueryResult<(RefundResult, bool)> {
        let order = payments::lock(conn, order.id)
            .await?
            .ok_or(diesel::result::Error::NotFound)?;
        let known = payments::find_refund(conn, order.provider, refund_id).await?;
        let row = match known {
            Some(known)
                if known.state == RefundState::Applied
                    || known.state == RefundState::Failed
                    || (known.state == RefundState::Early && !is_paid(&order)) =>
            {
                let result = RefundResult {
                    refunded: Money::new(known.amount_minor, order.currency),
                    days_taken_back: known.days_taken_back,
                    new_end: self.current_end(conn, &order).await?,
                };
                return Ok((result, false));
            }
            Some(known) => {
                if known.state == RefundState::Requested && origin == RefundOrigin::Provider {
                    origin = RefundOrigin::Requested;
                }
                Some(known.id)
            }
            None if !is_paid(&order) => {
                payments::insert_refund(
                    conn,
                    &order,
                    NewRefund {
                        external_id: Some(refund_id),
                        amount_minor: amount.minor,
                        days_taken_back: 0,
                        state: RefundState::Early,
                    },
                )
                .await?;
                tracing::warn!(order = %order.id, refund = refund_id, %amount, status = %order.status, "a refund came before its payment was recorded: kept, applied when the payment lands");
                let result = RefundResult {
                    refunded: amount,
                    days_taken_back: 0,
                    new_end: self.current_end(conn, &order).await?,
                };
                return Ok((result, true));
            }
            // A request of the shop's whose answer was lost, for this amount: this is it.
            None => {
                let request = payments::refunds_in_state(conn, order.id, RefundState::Requested)
                    .await?
                    .into_iter()
                    .find(|r| r.external_id.is_none() && r.amount_minor == amount.minor)
                    .map(|r| r.id);
                if request.is_some() && origin == RefundOrigin::Provider {
                    origin = RefundOrigin::Requested;
                }
                request
            }
        };
        self.apply_refund(conn, &order, row, amount, refund_id, origin)
            .await
    }

    /// Applies a refund to `order` (locked, as it stands): its share of days back, the panel
    /// re-provisioned, and — once the payment is refunded in full — the inviter's bonus back.
    async fn apply_refund(
        &self,
        conn: &mut PgConn,
        order: &Payment,
        row: Option<i64>,
        amount: Money,
        refund_id: &str,
        origin: RefundOrigin,
    ) -> diesel::QueryResult<(RefundResult, bool)> {
        let settle = async |conn: &mut PgConn, state, days| match row {
            Some(id) => payments::settle_refund(conn, id, state, Some(refund_id), days).await,
            None => payments::insert_refund(
                conn,
                order,
                NewRefund {
                    external_id: Some(refund_id),
                    amount_minor: amount.minor,
                    days_taken_back: days,
                    state,
                },
            )
            .await
            .map(|_| ()),
        };
        if !payments::mark_refunded(conn, order.id, amount.minor).await? {
            let detail =
                format!("refund {refund_id} of {amount} is more than what remains of the payment");
            self.raise(conn, order.id, Anomaly::RefundExceedsPayment, &detail)
                .await?;
            settle(conn, RefundState::Failed, 0).await?;
            let result = RefundResult {
                refunded: Money::new(0, amount.currency),
                days_taken_back: 0,
                new_end: self.current_end(conn, order).await?,
            };
            return Ok((result, false));
        }
        let days = refund_days(
            order.days + order.bonus_days,
            order.amount_minor,
            order.refunded_minor,
            amount.minor,
        );
        settle(conn, RefundState::Applied, days).await?;
        let new_end = subscriptions::shorten(conn, order.user_id, days).await?;
        self.provision(conn, order.user_id).await?;
        if let Some(user) = users::find(conn, order.user_id).await? {
            let alert = Alert::RefundMade {
                order: order.id,
                user: user.id,
                telegram_id: user.telegram_id,
                amount,
                provider: order.provider,
                refund_id: refund_id.to_owned(),
                origin,
            };
            alerts::raise(conn, &alert, self.max_attempts()).await?;
        }
        let refunded_in_full =
            order.amount_minor > 0 && order.refunded_minor + amount.minor >= order.amount_minor;
        if refunded_in_full {
            self.revoke_referral_bonus(conn, order).await?;
        }
        Ok((
            RefundResult {
                refunded: amount,
                days_taken_back: days,
                new_end,
            },
            true,
        ))
    }

    /// Refunds the provider reported before the payment was recorded: applied now that it is.
    pub(super) async fn apply_early_refunds(
        &self,
        conn: &mut PgConn,
        order: &Payment,
    ) -> diesel::QueryResult<()> {
        for early in payments::refunds_in_state(conn, order.id, RefundState::Early).await? {
            let Some(refund_id) = early.external_id.as_deref() else {
                continue;
            };
            let current = payments::lock(conn, order.id)
                .await?
                .ok_or(diesel::result::Error::NotFound)?;
            let amount = Money::new(early.amount_minor, current.currency);
            let (result, _) = self
                .apply_refund(
                    conn,
                    &current,
                    Some(early.id),
                    amount,
                    refund_id,
                    RefundOrigin::Provider,
                )
                .await?;
            tracing::info!(order = %order.id, refund = refund_id, days = result.days_taken_back, "a refund that came before its payment is applied");
        }
        Ok(())
    }

    /// The inviter's bonus was given for this payment, now refunded in full: it is taken back,
    /// once. A partial refund leaves it (the invited user stays a paying customer).
    async fn revoke_referral_bonus(
        &self,
        conn: &mut PgConn,
        order: &Payment,
    ) -> diesel::QueryResult<()> {
        let Some(referral) = referrals::revoke_bonus_of_payment(conn, order.id).await? else {
            return Ok(());
        };
        let days = referral.inviter_bonus_days;
        if days > 0 {
            subscriptions::shorten(conn, referral.inviter_id, days).await?;
            self.provision(conn, referral.inviter_id).await?;
        }
        tracing::info!(inviter = %referral.inviter_id, order = %order.id, days, "referral bonus taken back: the invited user's first payment was refunded in full");
        Ok(())
    }

    async fn current_end(
        &self,
        conn: &mut PgConn,
        order: &Payment,
    ) -> diesel::QueryResult<Option<chrono::DateTime<chrono::Utc>>> {
        subscriptions::find_by_user(conn, order.user_id)
            .await
            .map(|found| found.map(|(s, _)| s.expires_at))
    }
}

fn humanize_hours(d: chrono::Duration) -> String {
    format!("{} hours", d.num_hours())
}
