//! Checkouts: the order is priced and written first, then the provider is asked for a payment
//! page (YooKassa with an `Idempotence-Key` naming the order, WATA with our order id), a Stars
//! invoice is sent, or a free period (100 % promo code) is given at once.

use std::collections::BTreeMap;

use chrono::Utc;
use diesel_async::AsyncConnection;
use teloxide::payloads::{CreateInvoiceLinkSetters, SendInvoiceSetters};
use teloxide::prelude::Requester;
use teloxide::types::{ChatId, LabeledPrice};

use super::fulfil::{Outcome, PaymentUpdate};
use super::{
    CheckStarsOrder, CreateCheckout, ReturnTo, Shared, parse_stars_payload, stars_payload,
};
use crate::actors::notifier::Priority;
use crate::clients::wata::CreateLink;
use crate::clients::yookassa::{
    Amount, Confirmation, CreatePayment, Receipt, ReceiptCustomer, ReceiptItem,
};
use crate::db::models::Payment;
use crate::db::payments::{self, NewOrder};
use crate::db::{plans, promo, users};
use crate::domain::pricing::{self, Customer, PlanPrice, PromoRefusal, QuoteError};
use crate::domain::{
    Language, Money, PaymentId, PaymentKind, PaymentProvider, PaymentStatus, PromoCodeId,
};
use crate::i18n::checkout::{self, PlanText};

/// The one allowed period of a Star subscription (30 days).
const STAR_SUBSCRIPTION_PERIOD: u32 = 2_592_000;

/// What the bot shows after a checkout.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Checkout {
    /// Open this page to pay (YooKassa, WATA, or a Star subscription link).
    Redirect {
        order_id: PaymentId,
        url: String,
        amount: Money,
    },
    /// A Stars invoice was sent to the user's chat.
    StarsInvoice { order_id: PaymentId, amount: Money },
    /// A 100 % promo code: the period was given without a payment.
    Free {
        order_id: PaymentId,
        expires_at: chrono::DateTime<Utc>,
    },
}

/// Why there is no checkout, for the bot to explain.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckoutError {
    #[error("this payment method is not available")]
    ProviderOff,
    #[error("this plan is not on sale")]
    UnknownPlan,
    #[error("this plan is not sold for Telegram Stars")]
    NotForStars,
    #[error("promo code: {0}")]
    Promo(PromoRefusal),
    #[error("you are banned")]
    Banned,
    /// The provider could not be reached or refused: try again or use another method.
    #[error("the payment provider is unavailable: {0}")]
    Provider(String),
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<diesel::result::Error> for CheckoutError {
    fn from(e: diesel::result::Error) -> Self {
        CheckoutError::Internal(e.to_string())
    }
}

impl From<crate::db::PoolError> for CheckoutError {
    fn from(e: crate::db::PoolError) -> Self {
        CheckoutError::Internal(e.to_string())
    }
}

/// YooKassa's limit on a payment's `description` and on a receipt item's `description`; WATA's
/// reference names none for a link's `description`: the same is kept there.
const MAX_PAYMENT_DESCRIPTION: usize = 128;
/// Telegram's limits on an invoice's title and description.
const MAX_INVOICE_TITLE: usize = 32;
const MAX_INVOICE_DESCRIPTION: usize = 255;

/// How a Stars order is paid: in which chat, whether it renews as a Star subscription, and
/// whether an invoice link is wanted (the cabinet) rather than an invoice message.
struct StarsCheckout {
    days: i32,
    telegram_id: i64,
    subscription: bool,
    return_to: ReturnTo,
}

/// The buyer's language and the plan as they read it.
struct Payer<'a> {
    language: Language,
    plan: PlanText<'a>,
}

/// The first `max` characters of `text`.
fn cut(text: String, max: usize) -> String {
    text.chars().take(max).collect()
}

impl Shared {
    pub(super) async fn create_checkout(
        &self,
        msg: CreateCheckout,
    ) -> Result<Checkout, CheckoutError> {
        if !self.providers().contains(&msg.provider) {
            return Err(CheckoutError::ProviderOff);
        }
        let mut conn = self.pool.get().await?;
        let user = users::find(&mut conn, msg.user_id).await?.ok_or_else(|| {
            CheckoutError::Internal(format!("user {} does not exist", msg.user_id))
        })?;
        if user.banned {
            return Err(CheckoutError::Banned);
        }
        // Stars are paid inside Telegram: a web-only user has no chat to pay in.
        let stars_chat = user.telegram_id;
        if msg.provider == PaymentProvider::Stars && stars_chat.is_none() {
            return Err(CheckoutError::ProviderOff);
        }
        let plan = plans::find(&mut conn, msg.plan_id)
            .await?
            .filter(|p| p.active)
            .ok_or(CheckoutError::UnknownPlan)?;
        // The code typed now, or the one the user applied earlier in the bot.
        let code_id: Option<PromoCodeId> = match &msg.promo_code {
            Some(code) => Some(
                promo::find_by_code(&mut conn, code)
                    .await?
                    .ok_or(CheckoutError::Promo(PromoRefusal::Unknown))?
                    .id,
            ),
            None => user.pending_promo_id,
        };
        let price = PlanPrice {
            days: plan.days,
            rub: plan.price(),
            stars: plan.price_in_stars(),
        };
        let link_ttl =
            chrono::Duration::from_std(self.settings.payments.link_ttl).unwrap_or_default();
        // Priced and written with the code's row locked: the order takes one of the code's uses
        // (held until it is paid or ends unpaid), so a limited code discounts no more orders
        // than it has uses, however many checkouts are opened at once.
        let (order, quote) = conn
            .transaction::<_, CheckoutError, _>(async |conn| {
                let code = match code_id {
                    Some(id) => promo::lock(conn, id).await?,
                    None => None,
                };
                if msg.promo_code.is_some() && code.is_none() {
                    return Err(CheckoutError::Promo(PromoRefusal::Unknown));
                }
                let rules = match &code {
                    Some(code) => {
                        let customer = Customer {
                            has_paid: payments::has_paid(conn, user.id).await?,
                            used_this_code: promo::used_by(conn, code.id, user.id).await?,
                        };
                        let rules = pricing::PromoRules::from(code);
                        pricing::check_promo(&rules, customer, Some(plan.days), Utc::now())
                            .map_err(CheckoutError::Promo)?;
                        Some(rules)
                    }
                    None => None,
                };
                let quote =
                    pricing::quote(&price, msg.provider, rules.as_ref()).map_err(|e| match e {
                        QuoteError::NotForStars => CheckoutError::NotForStars,
                        QuoteError::Promo(refusal) => CheckoutError::Promo(refusal),
                    })?;
                let new = NewOrder {
                    user_id: user.id,
                    plan_id: Some(plan.id),
                    provider: if quote.free {
                        PaymentProvider::Free
                    } else {
                        msg.provider
                    },
                    kind: PaymentKind::Checkout,
                    amount: quote.amount,
                    days: plan.days,
                    promo_code_id: code.as_ref().map(|c| c.id),
                    discount_minor: quote.discount,
                    bonus_days: quote.bonus_days,
                    save_payment_method: msg.auto_renew && !quote.free,
                    link_expires_at: (!quote.free && msg.provider != PaymentProvider::Stars)
                        .then(|| Utc::now() + link_ttl),
                    idempotency_key: None,
                    external_id: None,
                    payment_method_id: None,
                };
                let order = payments::insert(conn, &new).await?;
                if let Some(code) = &code {
                    promo::reserve(conn, code, user.id, order.id).await?;
                }
                Ok((order, quote))
            })
            .await?;
        drop(conn);
        self.metrics
            .checkouts
            .with_label_values(&[order.provider.as_str()])
            .inc();
        tracing::info!(order = %order.id, user = %user.id, provider = %order.provider, amount = %order.amount(), "order created");

        if quote.free {
            return self.give_free(&order).await;
        }
        // What the payer reads at the provider: the plan in their language.
        let payer = Payer {
            language: user.language,
            plan: PlanText {
                name: plan.name_in(user.language),
                description: plan.description_in(user.language),
                days: plan.days,
            },
        };
        match msg.provider {
            PaymentProvider::Yookassa => {
                self.yookassa_checkout(&order, &payer, user.email.as_deref(), msg.return_to)
                    .await
            }
            PaymentProvider::Wata => self.wata_checkout(&order, &payer, msg.return_to).await,
            PaymentProvider::Stars => {
                let Some(telegram_id) = stars_chat else {
                    return Err(CheckoutError::ProviderOff);
                };
                let stars = StarsCheckout {
                    days: plan.days,
                    telegram_id,
                    subscription: msg.auto_renew,
                    return_to: msg.return_to,
                };
                self.stars_checkout(&order, &payer, stars).await
            }
            PaymentProvider::Free => Err(CheckoutError::ProviderOff),
        }
    }

    /// A 100 % promo code: the order is fulfilled at once, through the same path as a payment.
    async fn give_free(&self, order: &Payment) -> Result<Checkout, CheckoutError> {
        let update = PaymentUpdate {
            provider: PaymentProvider::Free,
            order_id: Some(order.id),
            external_id: format!("free:{}", order.id),
            event_key: format!("free:{}", order.id),
            event_type: "free_checkout".into(),
            outcome: Outcome::Paid {
                amount: order.amount(),
            },
            saved_method: None,
            raw: serde_json::json!({"free": true}),
            remote_addr: None,
        };
        self.apply(update)
            .await
            .map_err(|e| CheckoutError::Internal(e.message))?;
        let mut conn = self.pool.get().await?;
        let end = crate::db::subscriptions::find_by_user(&mut conn, order.user_id)
            .await?
            .map(|(s, _)| s.expires_at)
            .unwrap_or_else(Utc::now);
        Ok(Checkout::Free {
            order_id: order.id,
            expires_at: end,
        })
    }

    /// Records why a checkout could not be started: the order is canceled (nothing was paid).
    async fn abandon(&self, order: &Payment, reason: &str) {
        if let Ok(mut conn) = self.pool.get().await {
            let _ =
                payments::mark_unpaid(&mut conn, order.id, PaymentStatus::Canceled, reason, None)
                    .await;
        }
        tracing::warn!(order = %order.id, reason, "checkout failed");
    }

    /// Where the payment page sends the payer back: the cabinet's page of the order for an
    /// order made there; else `PAYMENT_RETURN_URL`, else the bot's chat.
    fn return_url(&self, order: &Payment, to: ReturnTo) -> Option<String> {
        if to == ReturnTo::Cabinet {
            return self
                .settings
                .public_base_url
                .join(&format!("app/payments/{}", order.id))
                .ok()
                .map(String::from);
        }
        match &self.settings.payments.return_url {
            Some(url) => Some(url.to_string()),
            None => self
                .clients
                .bot_username
                .get()
                .map(|name| format!("https://t.me/{name}")),
        }
    }

    async fn yookassa_checkout(
        &self,
        order: &Payment,
        payer: &Payer<'_>,
        email: Option<&str>,
        return_to: ReturnTo,
    ) -> Result<Checkout, CheckoutError> {
        let (Some(client), Some(settings)) =
            (&self.clients.yookassa, &self.settings.payments.yookassa)
        else {
            return Err(CheckoutError::ProviderOff);
        };
        let amount = Amount::from_money(order.amount());
        let receipt = match (settings.receipts, email) {
            (true, Some(email)) => Some(Receipt {
                customer: ReceiptCustomer {
                    email: email.to_owned(),
                },
                items: vec![ReceiptItem {
                    description: cut(
                        checkout::payment_description(payer.language, payer.plan),
                        MAX_PAYMENT_DESCRIPTION,
                    ),
                    quantity: "1.00".into(),
                    amount: amount.clone(),
                    vat_code: settings.vat_code,
                    payment_mode: "full_payment",
                    payment_subject: "service",
                }],
            }),
            _ => None,
        };
        let request = CreatePayment {
            amount,
            capture: true,
            confirmation: Some(Confirmation {
                kind: "redirect",
                return_url: self
                    .return_url(order, return_to)
                    .unwrap_or_else(|| "https://t.me".into()),
            }),
            description: cut(
                checkout::order_description(payer.language, payer.plan, &order.id.to_string()),
                MAX_PAYMENT_DESCRIPTION,
            ),
            metadata: BTreeMap::from([
                ("order_id".to_owned(), order.id.to_string()),
                ("user_id".to_owned(), order.user_id.to_string()),
            ]),
            save_payment_method: order.save_payment_method.then_some(true),
            payment_method_id: None,
            receipt,
        };
        // The order's own key (random, stored with it): a repeat of this call returns the same
        // payment, and no other database's order with the same id can get it.
        match client.create_payment(&order.provider_key, &request).await {
            Ok(payment) => {
                let url = payment
                    .confirmation
                    .and_then(|c| c.confirmation_url)
                    .ok_or_else(|| {
                        CheckoutError::Provider("no confirmation URL in YooKassa's answer".into())
                    })?;
                let mut conn = self.pool.get().await?;
                payments::set_checkout(&mut conn, order.id, &payment.id, Some(&url)).await?;
                Ok(Checkout::Redirect {
                    order_id: order.id,
                    url,
                    amount: order.amount(),
                })
            }
            Err(e) => {
                self.abandon(order, &e.to_string()).await;
                Err(CheckoutError::Provider(e.to_string()))
            }
        }
    }

    async fn wata_checkout(
        &self,
        order: &Payment,
        payer: &Payer<'_>,
        return_to: ReturnTo,
    ) -> Result<Checkout, CheckoutError> {
        let Some(client) = &self.clients.wata else {
            return Err(CheckoutError::ProviderOff);
        };
        let expires = order
            .link_expires_at
            .unwrap_or_else(|| Utc::now() + chrono::Duration::hours(1));
        let link = CreateLink::new(
            order.amount(),
            cut(
                checkout::payment_description(payer.language, payer.plan),
                MAX_PAYMENT_DESCRIPTION,
            ),
            order.id.to_string(),
            self.return_url(order, return_to),
            expires,
        );
        // Never repeated: WATA has no idempotency, a repeat could open a second link.
        match client.create_link(&link).await {
            Ok(created) => {
                let mut conn = self.pool.get().await?;
                payments::set_checkout(&mut conn, order.id, &created.id, Some(&created.url))
                    .await?;
                Ok(Checkout::Redirect {
                    order_id: order.id,
                    url: created.url,
                    amount: order.amount(),
                })
            }
            Err(e) => {
                self.abandon(order, &e.to_string()).await;
                Err(CheckoutError::Provider(e.to_string()))
            }
        }
    }

    async fn stars_checkout(
        &self,
        order: &Payment,
        payer: &Payer<'_>,
        how: StarsCheckout,
    ) -> Result<Checkout, CheckoutError> {
        let StarsCheckout {
            days,
            telegram_id,
            subscription,
            return_to,
        } = how;
        let (Some(bot), Some(telegram)) = (&self.clients.stars, &self.clients.telegram) else {
            return Err(CheckoutError::ProviderOff);
        };
        let stars = u32::try_from(order.amount_minor).unwrap_or(u32::MAX);
        let title = cut(
            checkout::invoice_title(payer.language, payer.plan),
            MAX_INVOICE_TITLE,
        );
        let text = cut(
            checkout::invoice_description(payer.language, payer.plan),
            MAX_INVOICE_DESCRIPTION,
        );
        let price = [LabeledPrice::new(title.clone(), stars)];
        let payload = stars_payload(order.id);
        // A Star subscription renews every 30 days: only for 30-day plans. It is paid through an
        // invoice link, as is an order from the cabinet (the Mini App opens the link).
        let renews = subscription && days == 30;
        if renews || return_to == ReturnTo::Cabinet {
            let request = bot.create_invoice_link(title, text, payload, "XTR", price);
            let link = if renews {
                request
                    .subscription_period(teloxide::types::Seconds::from_seconds(
                        STAR_SUBSCRIPTION_PERIOD,
                    ))
                    .await
            } else {
                request.await
            };
            return match link {
                Ok(url) => {
                    let mut conn = self.pool.get().await?;
                    payments::set_confirmation_url(&mut conn, order.id, &url).await?;
                    Ok(Checkout::Redirect {
                        order_id: order.id,
                        url,
                        amount: order.amount(),
                    })
                }
                Err(e) => {
                    self.abandon(order, &e.to_string()).await;
                    Err(CheckoutError::Provider(e.to_string()))
                }
            };
        }
        // A message in the buyer's chat: within the chat's and the shared budget, as a reply.
        let sent = telegram
            .message(telegram_id, Priority::Reply, |bot| {
                bot.send_invoice(
                    ChatId(telegram_id),
                    title.clone(),
                    text.clone(),
                    payload.clone(),
                    "XTR",
                    price.clone(),
                )
                .provider_token("")
            })
            .await;
        match sent {
            Ok(_) => Ok(Checkout::StarsInvoice {
                order_id: order.id,
                amount: order.amount(),
            }),
            Err(e) => {
                self.abandon(order, &e.to_string()).await;
                Err(CheckoutError::Provider(e.to_string()))
            }
        }
    }

    /// The pre-checkout check of a Stars payment: the order exists, belongs to this user, is
    /// still pending and costs what Telegram is about to charge. Cheap: one indexed read.
    pub(super) async fn check_stars_order(&self, msg: CheckStarsOrder) -> Result<(), String> {
        let sorry = "This order can no longer be paid. Please start again with /buy.";
        let Some(id) = parse_stars_payload(&msg.payload) else {
            return Err(sorry.into());
        };
        let mut conn = self
            .pool
            .get()
            .await
            .map_err(|_| "Please try again in a minute.".to_owned())?;
        let order = conn
            .transaction::<_, diesel::result::Error, _>(async |conn| {
                let order = payments::find(conn, id).await?;
                let owner = match &order {
                    Some(o) => users::find(conn, o.user_id).await?.map(|u| u.telegram_id),
                    // (`Some(None)`: an owner without Telegram, who never matches below.)
                    None => None,
                };
                Ok(order.zip(owner))
            })
            .await
            .map_err(|_| "Please try again in a minute.".to_owned())?;
        match order {
            Some((order, owner))
                if order.provider == PaymentProvider::Stars
                    && order.status == PaymentStatus::Pending
                    && owner == Some(msg.telegram_id)
                    && order.amount() == msg.amount =>
            {
                Ok(())
            }
            _ => Err(sorry.into()),
        }
    }
}
