//! Telegram Stars in the bot: pre-checkout queries, and successful and refunded payments handed
//! to the PaymentProcessor before Telegram is told the update arrived (the long poll's next
//! offset, or the webhook's answer).

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use teloxide::payloads::AnswerPreCheckoutQuerySetters;
use teloxide::prelude::Requester;

use teloxide::types::{Message, MessageKind, PreCheckoutQuery, Update, UpdateKind};

use crate::actors::notifier::TelegramSender;
use crate::actors::payments::{
    CheckStarsOrder, Outcome, PaymentProcessor, PaymentUpdate, ProviderUpdate, parse_stars_payload,
    raw_of,
};
use crate::actors::supervisor::ActorHandle;
use crate::domain::{Money, PaymentProvider};

/// Telegram waits this long for the answer to a pre-checkout query.
const PRE_CHECKOUT_DEADLINE: Duration = Duration::from_secs(10);

/// Pre-checkout: answered within Telegram's 10 s with cheap checks only (the order exists, is
/// the user's, is pending, costs what Telegram is about to charge).
pub async fn pre_checkout(
    telegram: &TelegramSender,
    query: &PreCheckoutQuery,
    payments: &ActorHandle<PaymentProcessor>,
) -> anyhow::Result<()> {
    let received = Instant::now();
    let check = CheckStarsOrder {
        payload: query.invoice_payload.clone(),
        telegram_id: i64::try_from(query.from.id.0).unwrap_or(i64::MAX),
        amount: Money::stars(i64::from(query.total_amount)),
    };
    let verdict = if query.currency == "XTR" {
        match tokio::time::timeout(Duration::from_secs(5), payments.addr().send(check)).await {
            Ok(Ok(verdict)) => verdict,
            _ => Err("Please try again in a minute.".to_owned()),
        }
    } else {
        Err("Only Telegram Stars are accepted here.".to_owned())
    };
    // Not a message: it goes out at once, a 429 waited out only within Telegram's 10 s.
    let deadline = PRE_CHECKOUT_DEADLINE.saturating_sub(received.elapsed());
    match verdict {
        Ok(()) => {
            telegram
                .answer(deadline, |bot| {
                    bot.answer_pre_checkout_query(query.id.clone(), true)
                })
                .await?;
        }
        Err(message) => {
            tracing::info!(payload = %query.invoice_payload, %message, "Stars pre-checkout refused");
            telegram
                .answer(deadline, |bot| {
                    bot.answer_pre_checkout_query(query.id.clone(), false)
                        .error_message(message.clone())
                })
                .await?;
        }
    }
    Ok(())
}

/// The payment a message carries — a Stars `successful_payment` or `refunded_payment` — as the
/// PaymentProcessor takes it; `None` for any other message.
pub fn payment_update(msg: &Message) -> Option<PaymentUpdate> {
    Some(match &msg.kind {
        MessageKind::SuccessfulPayment(paid) => {
            let p = &paid.successful_payment;
            let renewal = p.is_recurring && !p.is_first_recurring;
            let charge = p.telegram_payment_charge_id.0.clone();
            PaymentUpdate {
                provider: PaymentProvider::Stars,
                order_id: parse_stars_payload(&p.invoice_payload),
                external_id: charge.clone(),
                event_key: charge.clone(),
                event_type: if renewal {
                    "stars_renewal"
                } else {
                    "successful_payment"
                }
                .into(),
                outcome: if renewal {
                    Outcome::Renewed {
                        amount: Money::stars(i64::from(p.total_amount)),
                    }
                } else {
                    Outcome::Paid {
                        amount: Money::stars(i64::from(p.total_amount)),
                    }
                },
                // The first payment of a Star subscription: its charge id cancels it later.
                saved_method: p.is_first_recurring.then(|| charge.clone()),
                raw: raw_of(p),
                remote_addr: None,
            }
        }
        MessageKind::RefundedPayment(refunded) => {
            let r = &refunded.refunded_payment;
            PaymentUpdate {
                provider: PaymentProvider::Stars,
                order_id: parse_stars_payload(&r.invoice_payload),
                external_id: r.telegram_payment_charge_id.0.clone(),
                event_key: format!("{}:refunded", r.telegram_payment_charge_id.0),
                event_type: "refunded_payment".into(),
                outcome: Outcome::Refunded {
                    amount: Money::stars(i64::from(r.total_amount)),
                    // Stars are refunded once, in full: the charge names the refund.
                    refund_id: r.telegram_payment_charge_id.0.clone(),
                },
                saved_method: None,
                raw: raw_of(r),
                remote_addr: None,
            }
        }
        _ => return None,
    })
}

/// The payment an update carries, if any.
pub fn payment_of(update: &Update) -> Option<PaymentUpdate> {
    match &update.kind {
        UpdateKind::Message(m) => payment_update(m),
        _ => None,
    }
}

/// Long polling: records the payment `update` carries before the update is let through to the
/// dispatcher. Telegram learns that an update was received only from the next `getUpdates`
/// (its offset), which the listener sends once this returns: a payment is committed before
/// Telegram forgets it, so a crash, a restart or a database outage cannot lose it. Retries with
/// backoff (1 s doubling to 30 s) until it is committed; when the bot stops first it never
/// returns, so the update is not confirmed and Telegram delivers it again after the restart.
pub async fn record_before_confirming(
    update: &Update,
    payments: &ActorHandle<PaymentProcessor>,
    stopping: &AtomicBool,
) {
    let Some(payment) = payment_of(update) else {
        return;
    };
    let mut delay = Duration::from_secs(1);
    for attempt in 1u32.. {
        match payments.addr().send(ProviderUpdate(payment.clone())).await {
            Ok(Ok(_)) => return,
            Ok(Err(e)) => {
                tracing::warn!(attempt, update = update.id.0, error = %e.message, "Stars payment not recorded yet; it is not confirmed to Telegram until it is")
            }
            Err(e) => {
                tracing::warn!(attempt, update = update.id.0, error = %e, "payment processor unavailable; the Stars payment is not confirmed to Telegram until it is recorded")
            }
        }
        if stopping.load(Ordering::Relaxed) {
            tracing::error!(update = update.id.0, charge = %payment.external_id, "stopping with a Stars payment not recorded: it is not confirmed, Telegram delivers it again after the restart");
            std::future::pending::<()>().await;
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(30));
    }
}
