//! Refunds: through the order's provider, then — in one transaction — the order is marked
//! refunded, the paid days are taken back from the subscription (in proportion for a partial
//! refund), the panel is re-provisioned and the audit log records who did it.

use diesel_async::AsyncConnection;
use teloxide::prelude::Requester;
use teloxide::types::{TelegramTransactionId, UserId as TelegramUserId};

use super::{Refund, RefundResult, Shared};
use crate::clients::ProviderError;
use crate::db::audit::{self, AuditRecord};
use crate::db::models::Payment;
use crate::db::{PgConn, payments, subscriptions, users};
use crate::domain::{Money, PaymentProvider, PaymentStatus};

/// The longest refund `description` sent to YooKassa. Its reference names no limit; the fake in
/// `tests/support` refuses more than 250 characters, and a refund must not fail over its note.
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

/// The days a refund of `amount` of `order` takes back: all its days for the whole amount,
/// in proportion (rounded to the nearest day) for part of it.
pub fn days_for(order: &Payment, amount: Money) -> i32 {
    let total_days = i64::from(order.days + order.bonus_days);
    if order.amount_minor <= 0 {
        return total_days as i32;
    }
    let days = (total_days * amount.minor * 2 + order.amount_minor) / (order.amount_minor * 2);
    days.clamp(0, total_days) as i32
}

impl Shared {
    pub(super) async fn refund(&self, msg: Refund) -> Result<RefundResult, RefundError> {
        let mut conn = self.pool.get().await?;
        let order = payments::find(&mut conn, msg.payment_id)
            .await?
            .ok_or(RefundError::NotFound(msg.payment_id))?;
        if !matches!(
            order.status,
            PaymentStatus::Succeeded | PaymentStatus::Refunded
        ) {
            return Err(RefundError::NotPaid(order.id, order.status));
        }
        let remaining = order.amount_minor - order.refunded_minor;
        let amount = msg.amount.unwrap_or(Money::new(remaining, order.currency));
        if amount.currency != order.currency {
            return Err(RefundError::Invalid(format!(
                "the payment is in {}",
                order.currency
            )));
        }
        if amount.minor <= 0 || amount.minor > remaining {
            return Err(RefundError::Invalid(format!(
                "the amount must be more than 0 and at most {}",
                Money::new(remaining, order.currency)
            )));
        }
        let external = order.external_id.clone().unwrap_or_default();
        // The provider's id of this refund: what makes it count once.
        let refund_id = match order.provider {
            PaymentProvider::Yookassa => {
                let client = self
                    .clients
                    .yookassa
                    .as_ref()
                    .ok_or(RefundError::Provider("YooKassa is not configured".into()))?;
                // The key names this refund: a repeat after a timeout does not refund twice.
                let key = format!("refund-{}-{}", order.id, order.refunded_minor);
                // The audit log keeps the whole reason; YooKassa gets what its field holds.
                let description: String = msg.reason.chars().take(MAX_REFUND_DESCRIPTION).collect();
                let refund = client
                    .create_refund(&key, &external, amount, &description)
                    .await
                    .map_err(provider_error)?;
                if refund.status == "canceled" {
                    return Err(RefundError::Provider("YooKassa canceled the refund".into()));
                }
                refund.id
            }
            PaymentProvider::Wata => {
                let client = self
                    .clients
                    .wata
                    .as_ref()
                    .ok_or(RefundError::Provider("WATA is not configured".into()))?;
                let result = client
                    .refund(&external, amount)
                    .await
                    .map_err(provider_error)?;
                if result.transaction_status == "Declined" {
                    return Err(RefundError::Provider(
                        result
                            .error_description
                            .unwrap_or_else(|| "declined".into()),
                    ));
                }
                result.transaction_id
            }
            PaymentProvider::Stars => {
                let bot = self
                    .clients
                    .stars
                    .as_ref()
                    .ok_or(RefundError::Provider("Stars are not configured".into()))?;
                if amount.minor != remaining {
                    return Err(RefundError::Invalid(
                        "Stars payments are refunded in full only".into(),
                    ));
                }
                let user = users::find(&mut conn, order.user_id)
                    .await?
                    .ok_or_else(|| RefundError::Internal("the user is gone".into()))?;
                bot.refund_star_payment(
                    TelegramUserId(u64::try_from(user.telegram_id).unwrap_or_default()),
                    TelegramTransactionId(external.clone()),
                )
                .await
                .map_err(|e| RefundError::Provider(e.to_string()))?;
                // A Stars payment is refunded once, in full: the charge names the refund.
                external
            }
            PaymentProvider::Free => format!("free:{}", order.id),
        };
        self.metrics
            .refunds
            .with_label_values(&[order.provider.as_str()])
            .inc();
        let result = conn
            .transaction::<_, diesel::result::Error, _>(async |conn| {
                let (result, _) = self.take_back(conn, &order, amount, &refund_id).await?;
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

    /// Counts the provider's refund `refund_id` of `amount` of `order` once: marks it refunded
    /// and takes its days back (re-provisioning the panel). The order's row lock serialises the
    /// admin's request and the provider's notice of the same refund; the second finds the first's
    /// record and changes nothing (`false`).
    pub(super) async fn take_back(
        &self,
        conn: &mut PgConn,
        order: &Payment,
        amount: Money,
        refund_id: &str,
    ) -> diesel::QueryResult<(RefundResult, bool)> {
        let order = payments::lock(conn, order.id)
            .await?
            .ok_or(diesel::result::Error::NotFound)?;
        let current_end = async |conn: &mut PgConn| {
            subscriptions::find_by_user(conn, order.user_id)
                .await
                .map(|found| found.map(|(s, _)| s.expires_at))
        };
        if let Some(known) = payments::find_refund(conn, order.provider, refund_id).await? {
            let result = RefundResult {
                refunded: Money::new(known.amount_minor, order.currency),
                days_taken_back: known.days_taken_back,
                new_end: current_end(conn).await?,
            };
            return Ok((result, false));
        }
        if !payments::mark_refunded(conn, order.id, amount.minor).await? {
            let detail =
                format!("refund {refund_id} of {amount} is more than what remains of the payment");
            tracing::error!(order = %order.id, %detail, "refund not counted");
            payments::flag(conn, order.id, &detail).await?;
            let result = RefundResult {
                refunded: Money::new(0, amount.currency),
                days_taken_back: 0,
                new_end: current_end(conn).await?,
            };
            return Ok((result, false));
        }
        let days = days_for(&order, amount);
        payments::record_refund(conn, &order, refund_id, amount.minor, days).await?;
        let new_end = subscriptions::shorten(conn, order.user_id, days).await?;
        self.provision(conn, order.user_id).await?;
        Ok((
            RefundResult {
                refunded: amount,
                days_taken_back: days,
                new_end,
            },
            true,
        ))
    }
}

fn provider_error(e: ProviderError) -> RefundError {
    RefundError::Provider(e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::*;

    fn order(amount: i64, days: i32, bonus: i32) -> Payment {
        Payment {
            id: PaymentId(1),
            user_id: UserId(1),
            plan_id: None,
            provider: PaymentProvider::Yookassa,
            kind: PaymentKind::Checkout,
            status: PaymentStatus::Succeeded,
            amount_minor: amount,
            currency: Currency::Rub,
            days,
            promo_code_id: None,
            discount_minor: 0,
            bonus_days: bonus,
            external_id: None,
            confirmation_url: None,
            save_payment_method: false,
            refunded_minor: 0,
            failure_reason: None,
            raw_payload: None,
            link_expires_at: None,
            paid_at: None,
            created_at: chrono::Utc::now(),
            updated_at: chrono::Utc::now(),
            idempotency_key: None,
            payment_method_id: None,
        }
    }

    #[test]
    fn refunds_take_back_days_in_proportion() {
        let o = order(30_000, 30, 0);
        assert_eq!(days_for(&o, Money::rub_kopecks(30_000)), 30);
        assert_eq!(days_for(&o, Money::rub_kopecks(15_000)), 15);
        assert_eq!(days_for(&o, Money::rub_kopecks(100)), 0);
        assert_eq!(
            days_for(&order(30_000, 30, 7), Money::rub_kopecks(30_000)),
            37
        );
        assert_eq!(
            days_for(&order(0, 30, 0), Money::rub_kopecks(0)),
            30,
            "a free order"
        );
    }
}
