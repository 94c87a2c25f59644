//! Buying and renewing in the cabinet: the plans on sale, a promo code and the payment method
//! go to the payment processor's checkout — the bot's — which writes the order and asks
//! YooKassa or WATA for a payment page that sends the payer back to the order's page here.
//! Inside Telegram, Stars too: an invoice link the Mini App opens in Telegram's payment sheet.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use serde::Deserialize;

use super::AppLayout;
use super::session::Subscriber;
use crate::actors::payments::{Checkout, CheckoutError, CreateCheckout, ReturnTo};
use crate::db::models::{Payment, Plan, User};
use crate::db::{payments, plans, subscriptions};
use crate::domain::pricing::PromoRefusal;
use crate::domain::{Money, PaymentId, PaymentProvider, PaymentStatus, PlanId};
use crate::error::{AppError, AppResult};
use crate::i18n::{self, Args};
use crate::web::WebState;
use crate::web::pages::session::CsrfForm;
use crate::web::pages::{render, see_other};

#[derive(Template)]
#[template(path = "app/buy.html")]
struct BuyPage {
    layout: AppLayout,
    plans: Vec<PlanChoice>,
    /// The methods, and which one is chosen.
    providers: Vec<(PaymentProvider, bool)>,
    promo: String,
    /// YooKassa is offered: its card can be saved for automatic renewal, as the bot's "Card with
    /// auto-renewal" (WATA saves no card).
    can_auto_renew: bool,
    auto_renew: bool,
    error: Option<String>,
}

/// A plan as the form offers it, in the reader's language.
struct PlanChoice {
    id: PlanId,
    name: String,
    description: Option<String>,
    days: i32,
    traffic_limit_bytes: Option<i64>,
    price: Money,
    checked: bool,
}

#[derive(Template)]
#[template(path = "app/payment.html")]
struct PaymentPage {
    layout: AppLayout,
    order: Payment,
    /// Where the access now ends, once paid.
    expires_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// The providers `user` can pay with here: Stars only for an account with Telegram (paid in
/// Telegram's own payment sheet, which the Mini App opens; the page shows them only inside
/// Telegram).
fn web_providers(state: &WebState, user: &User) -> Vec<PaymentProvider> {
    state
        .payment_clients
        .as_ref()
        .map(|c| c.providers())
        .unwrap_or_default()
        .into_iter()
        .filter(|p| *p != PaymentProvider::Stars || user.telegram_id.is_some())
        .collect()
}

async fn buy_page(
    state: &WebState,
    req: &HttpRequest,
    subscriber: &Subscriber,
    status: StatusCode,
    form: Option<&BuyForm>,
    error: Option<String>,
) -> AppResult<HttpResponse> {
    let plans = {
        let mut conn = state.pool.get().await?;
        plans::active(&mut conn).await?
    };
    let language = subscriber.user.language;
    // The choice sent back, else the first.
    let chosen_plan = form
        .map(|f| PlanId(f.plan))
        .filter(|id| plans.iter().any(|p| p.id == *id))
        .or_else(|| plans.first().map(|p| p.id));
    let providers = web_providers(state, &subscriber.user);
    let chosen_provider = form
        .and_then(|f| f.provider.parse::<PaymentProvider>().ok())
        .filter(|p| providers.contains(p))
        .or_else(|| providers.first().copied());
    let page = BuyPage {
        layout: AppLayout::for_request(req, Some(subscriber)),
        plans: plans
            .iter()
            .map(|p: &Plan| PlanChoice {
                id: p.id,
                name: p.name_in(language).to_owned(),
                description: p.description_in(language).map(str::to_owned),
                days: p.days,
                traffic_limit_bytes: p.traffic_limit_bytes,
                price: p.price(),
                checked: Some(p.id) == chosen_plan,
            })
            .collect(),
        providers: providers
            .iter()
            .copied()
            .map(|p| (p, Some(p) == chosen_provider))
            .collect(),
        promo: form.map(|f| f.promo.clone()).unwrap_or_default(),
        can_auto_renew: providers.contains(&PaymentProvider::Yookassa),
        auto_renew: form.is_some_and(|f| f.auto_renew.is_some()),
        error,
    };
    render(status, &page)
}

/// `GET /app/buy`: the plans on sale, a promo code field and the payment methods.
pub async fn show(
    subscriber: Subscriber,
    state: web::Data<WebState>,
    req: HttpRequest,
) -> AppResult<HttpResponse> {
    buy_page(&state, &req, &subscriber, StatusCode::OK, None, None).await
}

#[derive(Deserialize)]
pub struct BuyForm {
    #[serde(default)]
    plan: i64,
    #[serde(default)]
    provider: String,
    #[serde(default)]
    promo: String,
    /// The checkbox "renew automatically with this card" (present when ticked).
    #[serde(default)]
    auto_renew: Option<String>,
}

/// Why there is no checkout, in the reader's language.
fn refusal(language: crate::domain::Language, error: &CheckoutError) -> String {
    let id = match error {
        CheckoutError::ProviderOff | CheckoutError::NotForStars => "app-buy-error-provider-off",
        CheckoutError::UnknownPlan => "app-buy-error-unknown-plan",
        CheckoutError::Banned => "app-buy-error-banned",
        CheckoutError::Provider(_) | CheckoutError::Internal(_) => "app-buy-error-provider",
        CheckoutError::Promo(reason) => {
            let args = match reason {
                PromoRefusal::PlanTooShort { min_days } => Args::new().text(
                    "days_text",
                    &i18n::message(
                        language,
                        "days",
                        &Args::new().number("days", f64::from(*min_days)),
                    ),
                ),
                _ => Args::new(),
            };
            let why = i18n::message(language, &format!("promo-reason-{}", reason.code()), &args);
            return i18n::message(
                language,
                "app-buy-error-promo",
                &Args::new().text("reason", &why),
            );
        }
    };
    i18n::message(language, id, &Args::new())
}

/// `POST /app/buy`: the bot's checkout for this subscriber; then the order's page, which has
/// the button to the provider's payment page (a form may not redirect to another site).
pub async fn submit(
    subscriber: Subscriber,
    state: web::Data<WebState>,
    req: HttpRequest,
    form: CsrfForm<BuyForm>,
) -> AppResult<HttpResponse> {
    let CsrfForm(form) = form;
    let Some(processor) = &state.payments else {
        return Err(AppError::NotFound("payments".into()));
    };
    let language = subscriber.user.language;
    let provider = form
        .provider
        .parse::<PaymentProvider>()
        .ok()
        .filter(|p| web_providers(&state, &subscriber.user).contains(p));
    let Some(provider) = provider else {
        let error = Some(i18n::message(
            language,
            "app-buy-choose-method",
            &Args::new(),
        ));
        return buy_page(
            &state,
            &req,
            &subscriber,
            StatusCode::UNPROCESSABLE_ENTITY,
            Some(&form),
            error,
        )
        .await;
    };
    let promo = form.promo.trim();
    let request = CreateCheckout {
        user_id: subscriber.user.id,
        plan_id: PlanId(form.plan),
        provider,
        promo_code: (!promo.is_empty()).then(|| promo.to_owned()),
        auto_renew: form.auto_renew.is_some() && provider == PaymentProvider::Yookassa,
        return_to: ReturnTo::Cabinet,
    };
    let answer = processor
        .addr()
        .send(request)
        .await
        .map_err(|e| AppError::Internal(anyhow::anyhow!("payment processor: {e}")))?;
    match answer {
        Ok(Checkout::Redirect { order_id, .. } | Checkout::Free { order_id, .. }) => {
            Ok(see_other(&format!("/app/payments/{order_id}")))
        }
        // The cabinet asks for an invoice link (a `Redirect`); an invoice message would be in
        // the bot's chat.
        Ok(Checkout::StarsInvoice { order_id, .. }) => {
            Ok(see_other(&format!("/app/payments/{order_id}")))
        }
        Err(CheckoutError::Internal(cause)) => Err(AppError::Internal(anyhow::anyhow!(
            "checkout failed: {cause}"
        ))),
        Err(e) => {
            tracing::info!(user = %subscriber.user.id, error = %e, "no checkout in the cabinet");
            let error = Some(refusal(language, &e));
            buy_page(
                &state,
                &req,
                &subscriber,
                StatusCode::UNPROCESSABLE_ENTITY,
                Some(&form),
                error,
            )
            .await
        }
    }
}

/// `GET /app/payments/{id}`: one of the subscriber's orders — the way to pay it while it waits,
/// the new end of access once paid. Where the payment page sends the payer back.
pub async fn payment(
    subscriber: Subscriber,
    state: web::Data<WebState>,
    req: HttpRequest,
    id: web::Path<i64>,
) -> AppResult<HttpResponse> {
    let id = PaymentId(id.into_inner());
    let mut conn = state.pool.get().await?;
    let order = payments::find(&mut conn, id)
        .await?
        .filter(|o| o.user_id == subscriber.user.id)
        .ok_or_else(|| AppError::not_found(format!("order {id}")))?;
    let expires_at = match order.status {
        PaymentStatus::Succeeded => subscriptions::find_by_user(&mut conn, subscriber.user.id)
            .await?
            .map(|(s, _)| s.expires_at),
        _ => None,
    };
    drop(conn);
    let page = PaymentPage {
        layout: AppLayout::for_request(&req, Some(&subscriber)),
        order,
        expires_at,
    };
    render(StatusCode::OK, &page)
}
