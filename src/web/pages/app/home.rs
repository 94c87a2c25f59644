//! The cabinet's home page: the subscription's state, end and traffic, its link with a copy
//! button, QR code and one-tap import into the common apps per platform, the payment history,
//! the referral link, and the trial when it can still be taken. What it shows comes from the
//! same queries and rules as the bot's `/status` and `/referral`.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use base64::Engine as _;
use chrono::Utc;
use serde::Deserialize;

use super::AppLayout;
use super::session::Subscriber;
use crate::db::models::Subscription;
use crate::db::users::{PaymentBrief, ReferralSummary};
use crate::db::{plans, subscriptions, users};
use crate::domain::import_links::{self, Platform};
use crate::domain::pricing;
use crate::domain::qr;
use crate::error::AppResult;
use crate::subscribers::{self, TrialOutcome};
use crate::web::WebState;
use crate::web::pages::session::{CsrfForm, EmptyForm};
use crate::web::pages::{render, see_other};

/// Payments listed on the page.
const PAYMENTS_SHOWN: i64 = 20;

/// One platform's import buttons and how to connect there.
pub struct ImportGroup {
    pub platform: &'static str,
    pub apps: Vec<(&'static str, String)>,
    /// The steps from installing an app to a running VPN, in the reader's language.
    pub steps: Vec<String>,
}

/// Steps of the connect instructions per platform (`app-howto-<platform>-<n>`).
const HOWTO_STEPS: u32 = 3;

/// The subscription as the page shows it.
pub struct SubscriptionView {
    pub sub: Subscription,
    /// The plan's name in the reader's language.
    pub plan: Option<String>,
    /// `active`, `limited`, `expired` or `disabled`.
    pub state: &'static str,
    pub days_left: i64,
    /// The QR code of the link, as a `data:` URL of an SVG.
    pub qr: Option<String>,
    pub imports: Vec<ImportGroup>,
}

#[derive(Template)]
#[template(path = "app/home.html")]
struct HomePage {
    layout: AppLayout,
    name: String,
    email: Option<String>,
    /// The address signs in (a mailed link to it was used).
    email_verified: bool,
    /// The shop sends mail: the address can be changed here.
    mail_on: bool,
    /// The account is linked to a Telegram user.
    telegram: bool,
    /// A web-only account can link Telegram here (the shop has a bot).
    can_link_telegram: bool,
    /// The subscription renews itself (a saved card or Star subscription).
    auto_renew: bool,
    subscription: Option<SubscriptionView>,
    payments: Vec<PaymentBrief>,
    referral: ReferralSummary,
    referral_link: Option<String>,
    invitee_days: u32,
    inviter_days: u32,
    trial_days: u32,
    trial: bool,
    /// What was just done (`?done=trial`, `?done=auto-renew-off`), or why not
    /// (`?done=trial-used`).
    done: Option<String>,
}

#[derive(Deserialize)]
pub struct HomeQuery {
    done: Option<String>,
}

/// The QR code of `link` as a `data:` URL (an `<img>`, so the page needs no inline markup of
/// ours marked safe).
fn qr_data_url(link: &str) -> Option<String> {
    let svg = qr::svg(link)?;
    Some(format!(
        "data:image/svg+xml;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(svg)
    ))
}

/// `GET /app/`: the home page of a signed-in subscriber.
pub async fn show(
    subscriber: Subscriber,
    state: web::Data<WebState>,
    req: HttpRequest,
    query: web::Query<HomeQuery>,
) -> AppResult<HttpResponse> {
    let user = &subscriber.user;
    let mut conn = state.pool.get().await?;
    let sub = subscriptions::find_by_user(&mut conn, user.id)
        .await?
        .map(|(s, _)| s);
    let plan = match sub.as_ref().and_then(|s| s.plan_id) {
        Some(id) => plans::find(&mut conn, id).await?,
        None => None,
    };
    let payments = users::recent_payments(&mut conn, user.id, PAYMENTS_SHOWN).await?;
    let referral = users::referral_summary(&mut conn, user.id).await?;
    drop(conn);
    let now = Utc::now();
    let shop_name = state.bot_username().unwrap_or("VPN").to_owned();
    let layout = AppLayout::for_request(&req, Some(&subscriber));
    let subscription = sub.map(|sub| {
        let link = sub.subscription_url.clone();
        SubscriptionView {
            state: subscribers::access_state(&sub, now),
            days_left: pricing::days_left(sub.expires_at, now),
            qr: link.as_deref().and_then(qr_data_url),
            imports: link
                .as_deref()
                .map(|link| {
                    Platform::ALL
                        .iter()
                        .map(|p| ImportGroup {
                            platform: p.as_str(),
                            apps: import_links::for_platform(*p, link, &shop_name),
                            steps: (1..=HOWTO_STEPS)
                                .map(|n| layout.tr.t(&format!("app-howto-{}-{n}", p.as_str())))
                                .collect(),
                        })
                        .collect()
                })
                .unwrap_or_default(),
            plan: plan.map(|p| p.name_in(user.language).to_owned()),
            sub,
        }
    });
    let referral_link = state
        .bot_username()
        .map(|bot| subscribers::referral_link(bot, &user.referral_code));
    let name = user
        .first_name
        .clone()
        .or_else(|| user.username.clone())
        .unwrap_or_else(|| user.fallback_name());
    let payments_settings = &state.settings.payments;
    let page = HomePage {
        layout,
        name,
        email: user.email.clone(),
        email_verified: user.email_verified_at.is_some(),
        mail_on: state.mailer.is_some(),
        telegram: user.telegram_id.is_some(),
        can_link_telegram: user.telegram_id.is_none() && state.settings.telegram.is_some(),
        auto_renew: subscription.as_ref().is_some_and(|s| s.sub.auto_renew),
        subscription,
        payments,
        referral,
        referral_link,
        invitee_days: payments_settings.referral_invitee_days,
        inviter_days: payments_settings.referral_inviter_days,
        trial_days: state.settings.bot.trial_days,
        trial: subscribers::trial_available(&state.settings, user),
        done: query
            .into_inner()
            .done
            .filter(|d| ["trial", "trial-used", "auto-renew-off", "email"].contains(&d.as_str())),
    };
    render(StatusCode::OK, &page)
}

/// `POST /app/trial`: the bot's trial ([`subscribers::start_trial`]), then back home.
pub async fn trial(
    subscriber: Subscriber,
    state: web::Data<WebState>,
    _form: CsrfForm<EmptyForm>,
) -> AppResult<HttpResponse> {
    let outcome = {
        let mut conn = state.pool.get().await?;
        subscribers::start_trial(&mut conn, &state.settings, &subscriber.user).await?
    };
    Ok(see_other(match outcome {
        TrialOutcome::Started { .. } => "/app/?done=trial",
        TrialOutcome::Used { .. } | TrialOutcome::Off => "/app/?done=trial-used",
    }))
}
