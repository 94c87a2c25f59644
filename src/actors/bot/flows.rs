//! The subscriber flows: start (deep links), menu, trial, buying, status, referrals, promo
//! codes, settings, linking a web account and the help texts. Each is reachable by a command and by a menu button.

use chrono::Utc;
use diesel_async::AsyncConnection;
use teloxide::types::InlineKeyboardButton;

use super::callback::Callback;
use super::context::{Ctx, Keyboard};
use super::storage::DialogueState;
use crate::actors::marzban::provision_job;
use crate::actors::payments::{Checkout, CheckoutError, CreateCheckout, ReturnTo};
use crate::db::models::{Plan, User};
use crate::db::subscriptions::Grant;
use crate::db::{jobs, payments, plans, promo, referrals, subscriptions, users};
use crate::domain::email::normalize_email;
use crate::domain::notifications::{Notification, PromoEffect};
use crate::domain::pricing::{self, Customer, PromoRefusal, PromoRules};
use crate::domain::qr;
use crate::domain::{Currency, Language, Money, PaymentProvider, PlanId, PromoKind};
use crate::i18n::{self, Args, escape_html, format_bytes, format_datetime, format_money};
use crate::subscribers::{self, LinkOutcome, TrialOutcome, notify};

fn days_text(lang: Language, days: i64) -> String {
    i18n::message(lang, "days", &Args::new().number("days", days as f64))
}

pub fn menu_keyboard(ctx: &Ctx) -> Keyboard {
    let mut rows = vec![vec![
        ctx.button("menu-button-buy", Callback::Buy),
        ctx.button("menu-button-status", Callback::Status),
    ]];
    if ctx.deps.settings.bot.trial_days > 0 && ctx.user.trial_used_at.is_none() {
        rows.push(vec![ctx.button("menu-button-trial", Callback::Trial)]);
    }
    if let Some(cabinet) = super::cabinet_web_app(&ctx.deps.settings) {
        rows.push(vec![InlineKeyboardButton::web_app(
            ctx.t("menu-button-cabinet"),
            cabinet,
        )]);
    }
    rows.push(vec![
        ctx.button("menu-button-referral", Callback::Referral),
        ctx.button("menu-button-promo", Callback::Promo),
    ]);
    rows.push(vec![
        ctx.button("menu-button-settings", Callback::Settings),
        ctx.button("menu-button-help", Callback::Help),
    ]);
    rows
}

fn back(ctx: &Ctx, to: Callback) -> Vec<InlineKeyboardButton> {
    let label = if to == Callback::Menu {
        "button-to-menu"
    } else {
        "button-back"
    };
    vec![ctx.button(label, to)]
}

fn name_of(user: &User) -> String {
    user.first_name
        .clone()
        .or_else(|| user.username.clone())
        .unwrap_or_else(|| user.fallback_name())
}

fn offset(ctx: &Ctx) -> chrono::FixedOffset {
    ctx.deps.settings.notifications.display_offset
}

fn date(ctx: &Ctx, at: chrono::DateTime<Utc>) -> String {
    format_datetime(ctx.lang(), at, offset(ctx))
}

fn max_attempts(ctx: &Ctx) -> i32 {
    ctx.deps.settings.jobs.max_attempts
}

/// `/start [ref_<code> | promo_<CODE> | link_<CODE>]`.
pub async fn start(ctx: &Ctx, payload: &str) -> anyhow::Result<()> {
    if let Some(code) = payload.strip_prefix("link_") {
        return link(ctx, code).await;
    }
    let new = ctx.user.last_seen_at == Some(ctx.user.created_at);
    let mut lines = vec![ctx.ta(
        if new { "welcome" } else { "welcome-back" },
        &Args::new().text("name", &name_of(&ctx.user)),
    )];
    if let Some(code) = payload.strip_prefix("ref_") {
        if new {
            if let Some(days) = join_by_referral(ctx, code).await? {
                lines.push(ctx.ta(
                    "referral-welcome",
                    &Args::new().text("days_text", &days_text(ctx.lang(), days.into())),
                ));
            }
        } else {
            lines.push(ctx.t("referral-not-new"));
        }
    }
    lines.push(ctx.t("menu-text"));
    ctx.send(lines.join("\n\n"), menu_keyboard(ctx)).await?;
    if let Some(code) = payload.strip_prefix("promo_") {
        apply_promo(ctx, code).await?;
    }
    Ok(())
}

/// A new user came through `code`'s link: the referral is recorded, the invitee's bonus days
/// given (and provisioned), the inviter told. `Some(days)` when the invitee got days.
async fn join_by_referral(ctx: &Ctx, code: &str) -> anyhow::Result<Option<i32>> {
    let settings = &ctx.deps.settings;
    let invitee_days = i32::try_from(settings.payments.referral_invitee_days).unwrap_or(0);
    let inviter_days = i32::try_from(settings.payments.referral_inviter_days).unwrap_or(0);
    let prefix = settings.panel_username_prefix().to_owned();
    let attempts = max_attempts(ctx);
    let user = &ctx.user;
    let mut conn = ctx.deps.pool.get().await?;
    let Some(inviter) = users::find_by_referral_code(&mut conn, code).await? else {
        tracing::info!(user = %user.id, code, "unknown referral code in /start");
        return Ok(None);
    };
    if inviter.id == user.id {
        return Ok(None);
    }
    let given = conn
        .transaction::<_, diesel::result::Error, _>(async |conn| {
            let Some(referral) =
                referrals::create(conn, inviter.id, user.id, invitee_days, inviter_days).await?
            else {
                return Ok(None);
            };
            notify(
                conn,
                inviter.id,
                format!("referral_joined:{}", referral.id),
                Notification::ReferralJoined {
                    friend: user
                        .first_name
                        .clone()
                        .unwrap_or_else(|| user.fallback_name()),
                    bonus_days: u32::try_from(inviter_days).unwrap_or(0),
                },
                attempts,
            )
            .await?;
            if invitee_days == 0 {
                return Ok(None);
            }
            let name = user.panel_username(&prefix);
            let end =
                subscriptions::extend(conn, user.id, &name, invitee_days, Grant::Days).await?;
            jobs::enqueue(conn, provision_job(user.id), attempts).await?;
            notify(
                conn,
                user.id,
                format!("referral_welcome:{}", referral.id),
                Notification::ReferralWelcome {
                    days: u32::try_from(invitee_days).unwrap_or(0),
                    expires_at: end,
                },
                attempts,
            )
            .await?;
            Ok(Some(invitee_days))
        })
        .await?;
    tracing::info!(invitee = %user.id, inviter = %inviter.id, days = ?given, "joined through a referral link");
    Ok(given)
}

pub async fn menu(ctx: &Ctx) -> anyhow::Result<()> {
    ctx.show(ctx.t("menu-text"), menu_keyboard(ctx)).await
}

/// `/link CODE` (or the cabinet's `/start link_CODE` button): this Telegram account joins the
/// web-only account that showed the code ([`subscribers::link_telegram`]).
pub async fn link(ctx: &Ctx, code: &str) -> anyhow::Result<()> {
    if code.trim().is_empty() {
        return ctx.send(ctx.t("link-usage"), menu_keyboard(ctx)).await;
    }
    let who = users::TelegramProfile {
        telegram_id: ctx.telegram_id,
        username: ctx.user.username.clone(),
        first_name: ctx.user.first_name.clone(),
        last_name: ctx.user.last_name.clone(),
        language: ctx.user.language,
    };
    let outcome = {
        let mut conn = ctx.deps.pool.get().await?;
        subscribers::link_telegram(&mut conn, code, ctx.user.id, &who).await?
    };
    match outcome {
        LinkOutcome::Linked(user) => {
            let email = user.email.clone().unwrap_or_default();
            let ctx = Ctx {
                user: *user,
                ..ctx.clone()
            };
            ctx.send(
                ctx.ta(
                    "link-done",
                    &Args::new().text("email", &escape_html(&email)),
                ),
                menu_keyboard(&ctx),
            )
            .await
        }
        LinkOutcome::UnknownCode => ctx.send(ctx.t("link-unknown"), Vec::new()).await,
        LinkOutcome::TelegramHasHistory => {
            ctx.send(ctx.t("link-has-history"), menu_keyboard(ctx))
                .await
        }
        LinkOutcome::AlreadyLinked => ctx.send(ctx.t("link-already"), Vec::new()).await,
    }
}

/// `/trial`: TRIAL_DAYS once per account ([`subscribers::start_trial`]); the link follows when
/// the panel confirms.
pub async fn trial(ctx: &Ctx) -> anyhow::Result<()> {
    let outcome = {
        let mut conn = ctx.deps.pool.get().await?;
        subscribers::start_trial(&mut conn, &ctx.deps.settings, &ctx.user).await?
    };
    match outcome {
        TrialOutcome::Off => {
            ctx.show(ctx.t("trial-off"), vec![back(ctx, Callback::Menu)])
                .await
        }
        TrialOutcome::Started { days, .. } => {
            ctx.show(
                ctx.ta(
                    "trial-starting",
                    &Args::new().text("days_text", &days_text(ctx.lang(), days.into())),
                ),
                vec![vec![ctx.button("menu-button-status", Callback::Status)]],
            )
            .await
        }
        TrialOutcome::Used { at } => {
            ctx.show(
                ctx.ta("trial-used", &Args::new().text("date", &date(ctx, at))),
                vec![
                    vec![ctx.button("menu-button-buy", Callback::Buy)],
                    back(ctx, Callback::Menu),
                ],
            )
            .await
        }
    }
}

fn stars_enabled(ctx: &Ctx) -> bool {
    ctx.deps
        .clients
        .providers()
        .contains(&PaymentProvider::Stars)
}

/// `/buy`: the plans on sale.
pub async fn buy(ctx: &Ctx) -> anyhow::Result<()> {
    if ctx.deps.clients.providers().is_empty() {
        return ctx
            .show(ctx.t("buy-no-providers"), vec![back(ctx, Callback::Menu)])
            .await;
    }
    let mut conn = ctx.deps.pool.get().await?;
    let plans = plans::active(&mut conn).await?;
    if plans.is_empty() {
        return ctx
            .show(ctx.t("buy-no-plans"), vec![back(ctx, Callback::Menu)])
            .await;
    }
    let lang = ctx.lang();
    let mut lines = vec![ctx.t("buy-choose-plan")];
    let mut keyboard = Vec::new();
    for plan in &plans {
        lines.push(plan_line(ctx, plan));
        if let Some(description) = plan_description(ctx, plan) {
            lines.push(description);
        }
        keyboard.push(vec![InlineKeyboardButton::callback(
            ctx.ta(
                "buy-plan-button",
                &Args::new()
                    .text("name", plan.name_in(lang))
                    .text("price", &format_money(lang, plan.price())),
            ),
            Callback::Plan(plan.id).encode(),
        )]);
    }
    if let Some(promo_id) = ctx.user.pending_promo_id
        && let Some(code) = promo::find(&mut conn, promo_id).await?
    {
        lines.push(ctx.ta("buy-promo-pending", &Args::new().text("code", &code.code)));
    }
    if let Some((sub, _)) = subscriptions::find_by_user(&mut conn, ctx.user.id).await?
        && sub.expires_at > Utc::now()
    {
        lines.push(ctx.ta(
            "buy-renewal-note",
            &Args::new().text("date", &date(ctx, sub.expires_at)),
        ));
    }
    keyboard.push(back(ctx, Callback::Menu));
    ctx.show(lines.join("\n"), keyboard).await
}

fn plan_line(ctx: &Ctx, plan: &Plan) -> String {
    let lang = ctx.lang();
    let mut price = format_money(lang, plan.price());
    if stars_enabled(ctx)
        && let Some(stars) = plan.price_stars
    {
        price.push_str(&ctx.ta("buy-plan-stars", &Args::new().number("stars", stars as f64)));
    }
    let traffic = match plan.traffic_limit_bytes {
        Some(limit) => ctx.ta(
            "buy-plan-traffic",
            &Args::new().text("limit", &format_bytes(lang, limit)),
        ),
        None => String::new(),
    };
    ctx.ta(
        "buy-plan-line",
        &Args::new()
            .text("name", plan.name_in(lang))
            .text("days_text", &days_text(lang, plan.days.into()))
            .text("price", &price)
            .text("traffic", &traffic),
    )
}

/// The plan's description in the user's language, as a line of its own; `None` when it has none
/// in that language.
fn plan_description(ctx: &Ctx, plan: &Plan) -> Option<String> {
    plan.description_in(ctx.lang()).map(|description| {
        ctx.ta(
            "buy-plan-description",
            &Args::new().text("description", description),
        )
    })
}

/// A plan was chosen: the payment methods for it.
pub async fn choose_method(ctx: &Ctx, plan_id: PlanId) -> anyhow::Result<()> {
    let plan = {
        let mut conn = ctx.deps.pool.get().await?;
        plans::find(&mut conn, plan_id).await?.filter(|p| p.active)
    };
    let Some(plan) = plan else {
        return ctx
            .show(
                ctx.t("checkout-error-unknown-plan"),
                vec![back(ctx, Callback::Buy)],
            )
            .await;
    };
    let lang = ctx.lang();
    let pay = |provider, auto_renew| Callback::Pay {
        plan: plan.id,
        provider,
        auto_renew,
    };
    let mut keyboard = Vec::new();
    for provider in ctx.deps.clients.providers() {
        match provider {
            PaymentProvider::Yookassa => {
                keyboard.push(vec![ctx.button("pay-yookassa", pay(provider, false))]);
                keyboard.push(vec![ctx.button("pay-yookassa-auto", pay(provider, true))]);
            }
            PaymentProvider::Wata => {
                keyboard.push(vec![ctx.button("pay-wata", pay(provider, false))]);
            }
            PaymentProvider::Stars => {
                if let Some(stars) = plan.price_in_stars() {
                    keyboard.push(vec![InlineKeyboardButton::callback(
                        ctx.ta(
                            "pay-stars",
                            &Args::new().text("stars", &format_money(lang, stars)),
                        ),
                        pay(provider, false).encode(),
                    )]);
                }
            }
            PaymentProvider::Free => {}
        }
    }
    keyboard.push(back(ctx, Callback::Buy));
    let description = plan_description(ctx, &plan)
        .map(|line| format!("\n{line}"))
        .unwrap_or_default();
    let text = ctx.ta(
        "buy-choose-method",
        &Args::new()
            .text("plan", plan.name_in(lang))
            .html("description", description)
            .text("days_text", &days_text(lang, plan.days.into()))
            .text("price", &format_money(lang, plan.price())),
    );
    ctx.show(text, keyboard).await
}

/// A payment method was chosen: the PaymentProcessor writes the order and gets the checkout.
pub async fn pay(
    ctx: &Ctx,
    plan: PlanId,
    provider: PaymentProvider,
    auto_renew: bool,
) -> anyhow::Result<()> {
    let request = CreateCheckout {
        user_id: ctx.user.id,
        plan_id: plan,
        provider,
        promo_code: None,
        auto_renew,
        return_to: ReturnTo::Bot,
    };
    let answer = ctx.deps.payments.addr().send(request).await?;
    let lang = ctx.lang();
    let retry = vec![back(ctx, Callback::Plan(plan))];
    match answer {
        Ok(Checkout::Redirect {
            order_id,
            url,
            amount,
        }) => {
            let money = format_money(lang, amount);
            let minutes = ctx.deps.settings.payments.link_ttl.as_secs() / 60;
            let text = ctx.ta(
                "checkout-redirect",
                &Args::new()
                    .text("order", &order_id.to_string())
                    .text("amount", &money)
                    .number("minutes", minutes as f64),
            );
            let mut keyboard = Vec::new();
            if let Ok(url) = reqwest::Url::parse(&url) {
                keyboard.push(vec![InlineKeyboardButton::url(
                    ctx.ta("checkout-pay-button", &Args::new().text("amount", &money)),
                    url,
                )]);
            }
            keyboard.push(back(ctx, Callback::Menu));
            ctx.show(text, keyboard).await
        }
        Ok(Checkout::StarsInvoice { amount, .. }) => {
            ctx.show(
                ctx.ta(
                    "checkout-stars",
                    &Args::new().text("amount", &format_money(lang, amount)),
                ),
                vec![back(ctx, Callback::Menu)],
            )
            .await
        }
        Ok(Checkout::Free { expires_at, .. }) => {
            ctx.show(
                ctx.ta(
                    "checkout-free",
                    &Args::new().text("date", &date(ctx, expires_at)),
                ),
                vec![vec![ctx.button("menu-button-status", Callback::Status)]],
            )
            .await
        }
        Err(e) => {
            let text = match &e {
                CheckoutError::ProviderOff => ctx.t("checkout-error-provider-off"),
                CheckoutError::UnknownPlan => ctx.t("checkout-error-unknown-plan"),
                CheckoutError::NotForStars => ctx.t("checkout-error-not-for-stars"),
                CheckoutError::Banned => ctx.t("checkout-error-banned"),
                CheckoutError::Provider(_) => ctx.t("checkout-error-provider"),
                CheckoutError::Promo(refusal) => ctx.ta(
                    "checkout-error-promo",
                    &Args::new().text("reason", &refusal_text(ctx, *refusal)),
                ),
                CheckoutError::Internal(cause) => {
                    anyhow::bail!("checkout failed: {cause}")
                }
            };
            tracing::info!(user = %ctx.user.id, plan = %plan, provider = provider.as_str(), error = %e, "no checkout");
            ctx.show(text, retry).await
        }
    }
}

fn refusal_text(ctx: &Ctx, refusal: PromoRefusal) -> String {
    let args = match refusal {
        PromoRefusal::PlanTooShort { min_days } => {
            Args::new().text("days_text", &days_text(ctx.lang(), min_days.into()))
        }
        _ => Args::new(),
    };
    ctx.ta(&format!("promo-reason-{}", refusal.code()), &args)
}

/// `/status`: the subscription, its link and QR code, and how to connect.
pub async fn status(ctx: &Ctx) -> anyhow::Result<()> {
    let (sub, plan) = {
        let mut conn = ctx.deps.pool.get().await?;
        let sub = subscriptions::find_by_user(&mut conn, ctx.user.id)
            .await?
            .map(|(s, _)| s);
        let plan = match sub.as_ref().and_then(|s| s.plan_id) {
            Some(id) => plans::find(&mut conn, id).await?,
            None => None,
        };
        (sub, plan)
    };
    let Some(sub) = sub else {
        let mut keyboard = Vec::new();
        if subscribers::trial_available(&ctx.deps.settings, &ctx.user) {
            keyboard.push(vec![ctx.button("menu-button-trial", Callback::Trial)]);
        }
        keyboard.push(vec![ctx.button("menu-button-buy", Callback::Buy)]);
        keyboard.push(back(ctx, Callback::Menu));
        return ctx.show(ctx.t("status-none"), keyboard).await;
    };
    let lang = ctx.lang();
    let now = Utc::now();
    let mut lines = vec![ctx.t("status-title")];
    lines.push(match &plan {
        Some(plan) if !sub.is_trial => {
            ctx.ta("status-plan", &Args::new().text("plan", plan.name_in(lang)))
        }
        _ if sub.is_trial => ctx.t("status-plan-trial"),
        _ => ctx.ta("status-plan", &Args::new().text("plan", "—")),
    });
    let state = ctx.t(&format!("state-{}", subscribers::access_state(&sub, now)));
    lines.push(ctx.ta("status-state", &Args::new().text("state", &state)));
    if sub.expires_at > now {
        lines.push(ctx.ta(
            "status-expires",
            &Args::new().text("date", &date(ctx, sub.expires_at)).text(
                "days_text",
                &days_text(lang, pricing::days_left(sub.expires_at, now)),
            ),
        ));
    } else {
        lines.push(ctx.ta(
            "status-expired-at",
            &Args::new().text("date", &date(ctx, sub.expires_at)),
        ));
    }
    let used = format_bytes(lang, sub.traffic_used_bytes);
    lines.push(match sub.traffic_limit_bytes {
        Some(limit) => ctx.ta(
            "status-traffic",
            &Args::new()
                .text("used", &used)
                .text("limit", &format_bytes(lang, limit)),
        ),
        None => ctx.ta("status-traffic-unlimited", &Args::new().text("used", &used)),
    });
    if sub.auto_renew {
        lines.push(ctx.t("status-auto-renew-on"));
    }
    let keyboard = vec![
        vec![
            ctx.button("button-renew-plan", Callback::Buy),
            ctx.button("button-connect", Callback::Connect),
        ],
        back(ctx, Callback::Menu),
    ];
    match &sub.subscription_url {
        Some(link) => {
            lines.push(ctx.ta("status-link", &Args::new().text("link", link)));
            let text = lines.join("\n");
            match qr::png(link) {
                // A photo caption holds 1,024 characters.
                Some(png) if text.chars().count() <= 1000 => {
                    ctx.send_photo(png, text, keyboard).await
                }
                _ => ctx.show(text, keyboard).await,
            }
        }
        None => {
            lines.push(ctx.t("status-link-pending"));
            ctx.show(lines.join("\n"), keyboard).await
        }
    }
}

/// "How to connect": the configured client apps per platform.
pub async fn connect(ctx: &Ctx) -> anyhow::Result<()> {
    let mut lines = vec![ctx.t("status-connect")];
    for app in &ctx.deps.settings.bot.client_apps {
        lines.push(
            ctx.ta(
                "status-app",
                &Args::new()
                    .text("platform", &app.platform)
                    .text("app", &app.name)
                    .text("url", app.url.as_str()),
            ),
        );
    }
    ctx.send(
        lines.join("\n"),
        vec![vec![ctx.button("menu-button-status", Callback::Status)]],
    )
    .await
}

/// `/referral`: the user's link and what it earned.
pub async fn referral(ctx: &Ctx) -> anyhow::Result<()> {
    let summary = {
        let mut conn = ctx.deps.pool.get().await?;
        users::referral_summary(&mut conn, ctx.user.id).await?
    };
    let bot = ctx
        .deps
        .clients
        .bot_username
        .get()
        .cloned()
        .unwrap_or_default();
    let link = subscribers::referral_link(&bot, &ctx.user.referral_code);
    let lang = ctx.lang();
    let p = &ctx.deps.settings.payments;
    let text = ctx.ta(
        "referral-text",
        &Args::new()
            .text("link", &link)
            .text(
                "invitee_days_text",
                &days_text(lang, p.referral_invitee_days.into()),
            )
            .text(
                "inviter_days_text",
                &days_text(lang, p.referral_inviter_days.into()),
            )
            .number("invited", summary.invited as f64)
            .number("paid", summary.invited_paid as f64)
            .number("earned", summary.bonus_days_earned as f64),
    );
    let mut keyboard = Vec::new();
    if let Ok(share) = reqwest::Url::parse_with_params("https://t.me/share/url", [("url", &link)]) {
        keyboard.push(vec![InlineKeyboardButton::url(
            ctx.t("referral-share"),
            share,
        )]);
    }
    keyboard.push(back(ctx, Callback::Menu));
    ctx.show(text, keyboard).await
}

/// `/promo [CODE]`: without a code, the next text is the code.
pub async fn promo(ctx: &Ctx, code: &str) -> anyhow::Result<()> {
    if code.is_empty() {
        ctx.set_state(DialogueState::PromoCode).await?;
        return ctx
            .show(
                ctx.t("promo-ask"),
                vec![vec![ctx.button("button-cancel", Callback::Cancel)]],
            )
            .await;
    }
    apply_promo(ctx, code).await
}

/// Bonus days are given at once; a discount is remembered for the next checkout.
pub async fn apply_promo(ctx: &Ctx, typed: &str) -> anyhow::Result<()> {
    ctx.set_state(DialogueState::Idle).await?;
    let code_text = promo::normalise(typed);
    let user = ctx.user.id;
    let attempts = max_attempts(ctx);
    let name = ctx
        .user
        .panel_username(ctx.deps.settings.panel_username_prefix());
    let mut conn = ctx.deps.pool.get().await?;
    let outcome = conn
        .transaction::<_, diesel::result::Error, _>(async |conn| {
            let Some(found) = promo::find_by_code(conn, typed).await? else {
                return Ok(Err(PromoRefusal::Unknown));
            };
            // Locked: the last use of a limited code goes to one user.
            let Some(code) = promo::lock(conn, found.id).await? else {
                return Ok(Err(PromoRefusal::Unknown));
            };
            let customer = Customer {
                has_paid: payments::has_paid(conn, user).await?,
                used_this_code: promo::used_by(conn, code.id, user).await?,
            };
            if let Err(refusal) =
                pricing::check_promo(&PromoRules::from(&code), customer, None, Utc::now())
            {
                return Ok(Err(refusal));
            }
            match code.kind {
                PromoKind::BonusDays => {
                    let days = i32::try_from(code.value).unwrap_or(0);
                    if let promo::Redemption::OverUse(refusal) =
                        promo::redeem_days(conn, &code, user, days).await?
                    {
                        return Ok(Err(refusal));
                    }
                    let end = subscriptions::extend(conn, user, &name, days, Grant::Days).await?;
                    jobs::enqueue(conn, provision_job(user), attempts).await?;
                    let effect = PromoEffect::Days {
                        days: u32::try_from(days).unwrap_or(0),
                        expires_at: end,
                    };
                    notify(
                        conn,
                        user,
                        format!("promo:{}:{user}", code.id),
                        Notification::PromoApplied {
                            code: code.code.clone(),
                            effect,
                        },
                        attempts,
                    )
                    .await?;
                    Ok(Ok(effect))
                }
                PromoKind::Percent | PromoKind::Fixed => {
                    users::set_pending_promo(conn, user, code.id).await?;
                    Ok(Ok(if code.kind == PromoKind::Percent {
                        PromoEffect::Percent {
                            percent: u8::try_from(code.value).unwrap_or(100),
                        }
                    } else {
                        PromoEffect::Amount {
                            amount: Money::new(code.value, Currency::Rub),
                        }
                    }))
                }
            }
        })
        .await?;
    let lang = ctx.lang();
    let keyboard = vec![
        vec![ctx.button("menu-button-buy", Callback::Buy)],
        back(ctx, Callback::Menu),
    ];
    match outcome {
        Ok(PromoEffect::Days { days, expires_at }) => {
            tracing::info!(user = %user, code = %code_text, days, "promo code applied (days)");
            ctx.show(
                ctx.ta(
                    "promo-applied-days",
                    &Args::new()
                        .text("code", &code_text)
                        .text("days_text", &days_text(lang, days.into()))
                        .text("date", &date(ctx, expires_at)),
                ),
                vec![vec![ctx.button("menu-button-status", Callback::Status)]],
            )
            .await
        }
        Ok(discount) => {
            let discount = match discount {
                PromoEffect::Percent { percent } => format!("{percent}%"),
                PromoEffect::Amount { amount } => format_money(lang, amount),
                PromoEffect::Days { .. } => String::new(),
            };
            tracing::info!(user = %user, code = %code_text, %discount, "promo code remembered for the next checkout");
            ctx.show(
                ctx.ta(
                    "promo-applied-discount",
                    &Args::new()
                        .text("code", &code_text)
                        .text("discount", &discount),
                ),
                keyboard,
            )
            .await
        }
        Err(refusal) => {
            tracing::info!(user = %user, code = %code_text, reason = refusal.code(), "promo code refused");
            ctx.show(
                ctx.ta(
                    "promo-refused",
                    &Args::new()
                        .text("code", &code_text)
                        .text("reason", &refusal_text(ctx, refusal)),
                ),
                keyboard,
            )
            .await
        }
    }
}

/// `/settings`: language, email, auto-renewal.
pub async fn settings(ctx: &Ctx) -> anyhow::Result<()> {
    let auto_renew = {
        let mut conn = ctx.deps.pool.get().await?;
        subscriptions::find_by_user(&mut conn, ctx.user.id)
            .await?
            .is_some_and(|(s, _)| s.auto_renew)
    };
    settings_view(ctx, &ctx.user, auto_renew).await
}

async fn settings_view(ctx: &Ctx, user: &User, auto_renew: bool) -> anyhow::Result<()> {
    let t = |id: &str| i18n::message(user.language, id, &Args::new());
    let text = i18n::message(
        user.language,
        "settings-text",
        &Args::new()
            .text(
                "language",
                match user.language {
                    Language::En => "English",
                    Language::Ru => "Русский",
                },
            )
            .text(
                "email",
                &user
                    .email
                    .as_deref()
                    .map_or_else(|| t("settings-email-none"), str::to_owned),
            )
            .text(
                "auto_renew",
                &t(if auto_renew {
                    "settings-auto-on"
                } else {
                    "settings-auto-off"
                }),
            ),
    );
    let other = match user.language {
        Language::En => Language::Ru,
        Language::Ru => Language::En,
    };
    let button = |id: &str, cb: Callback| InlineKeyboardButton::callback(t(id), cb.encode());
    let mut keyboard = vec![vec![button(
        "settings-language-button",
        Callback::Language(other),
    )]];
    let mut email_row = vec![button("settings-email-button", Callback::Email)];
    if user.email.is_some() {
        email_row.push(button("settings-email-remove", Callback::EmailRemove));
    }
    keyboard.push(email_row);
    if auto_renew {
        keyboard.push(vec![button(
            "settings-auto-off-button",
            Callback::AutoRenewOff,
        )]);
    }
    keyboard.push(vec![button("button-to-menu", Callback::Menu)]);
    ctx.show(text, keyboard).await
}

pub async fn set_language(ctx: &Ctx, language: Language) -> anyhow::Result<()> {
    let (user, auto_renew) = {
        let mut conn = ctx.deps.pool.get().await?;
        users::set_language(&mut conn, ctx.user.id, language).await?;
        let auto_renew = subscriptions::find_by_user(&mut conn, ctx.user.id)
            .await?
            .is_some_and(|(s, _)| s.auto_renew);
        (
            User {
                language,
                ..ctx.user.clone()
            },
            auto_renew,
        )
    };
    tracing::info!(user = %user.id, language = language.as_str(), "language changed");
    settings_view(ctx, &user, auto_renew).await
}

pub async fn ask_email(ctx: &Ctx) -> anyhow::Result<()> {
    ctx.set_state(DialogueState::Email).await?;
    ctx.show(
        ctx.t("email-ask"),
        vec![vec![ctx.button("button-cancel", Callback::Cancel)]],
    )
    .await
}

pub async fn email_entered(ctx: &Ctx, text: &str) -> anyhow::Result<()> {
    match normalize_email(text) {
        Ok(email) => {
            {
                let mut conn = ctx.deps.pool.get().await?;
                users::set_email(&mut conn, ctx.user.id, Some(&email)).await?;
            }
            ctx.set_state(DialogueState::Idle).await?;
            tracing::info!(user = %ctx.user.id, "email set");
            ctx.send(
                ctx.ta("email-saved", &Args::new().text("email", &email)),
                vec![vec![ctx.button("menu-button-settings", Callback::Settings)]],
            )
            .await
        }
        // The dialogue goes on: the next text is tried again.
        Err(problem) => {
            ctx.send(
                ctx.ta(
                    "email-invalid",
                    &Args::new().text("problem", &problem.to_string()),
                ),
                vec![vec![ctx.button("button-cancel", Callback::Cancel)]],
            )
            .await
        }
    }
}

pub async fn remove_email(ctx: &Ctx) -> anyhow::Result<()> {
    {
        let mut conn = ctx.deps.pool.get().await?;
        users::set_email(&mut conn, ctx.user.id, None).await?;
    }
    ctx.send(
        ctx.t("email-removed"),
        vec![vec![ctx.button("menu-button-settings", Callback::Settings)]],
    )
    .await
}

pub async fn auto_renew_off(ctx: &Ctx) -> anyhow::Result<()> {
    let end = {
        let mut conn = ctx.deps.pool.get().await?;
        subscriptions::set_auto_renew(&mut conn, ctx.user.id, None).await?;
        subscriptions::find_by_user(&mut conn, ctx.user.id)
            .await?
            .map(|(s, _)| s.expires_at)
    };
    tracing::info!(user = %ctx.user.id, "auto-renewal turned off in the bot");
    ctx.show(
        ctx.ta(
            "auto-renew-turned-off",
            &Args::new().text("date", &end.map_or_else(String::new, |e| date(ctx, e))),
        ),
        vec![vec![ctx.button("menu-button-settings", Callback::Settings)]],
    )
    .await
}

/// How to reach the shop: write here when someone reads it (support conversations), the
/// `SUPPORT_CONTACT` when set; nothing is promised when neither is.
fn support_lines(ctx: &Ctx) -> Vec<String> {
    let mut lines = Vec::new();
    if ctx.deps.settings.bot.takes_questions() {
        lines.push(ctx.t("help-write-here"));
    }
    if let Some(contact) = &ctx.deps.settings.bot.support_contact {
        lines.push(ctx.ta("help-support", &Args::new().text("contact", contact)));
    }
    lines
}

/// The text with the support lines under it, and the keyboard: "write to support" when
/// someone reads questions, then `last`.
fn with_support(ctx: &Ctx, text: String, last: Vec<InlineKeyboardButton>) -> (String, Keyboard) {
    let lines = support_lines(ctx);
    let text = if lines.is_empty() {
        text
    } else {
        format!("{text}\n\n{}", lines.join("\n"))
    };
    let mut keyboard = Vec::new();
    if ctx.deps.settings.bot.takes_questions() {
        keyboard.push(vec![ctx.button("button-support", Callback::Support)]);
    }
    keyboard.push(last);
    (text, keyboard)
}

pub async fn help(ctx: &Ctx) -> anyhow::Result<()> {
    let (text, keyboard) = with_support(ctx, ctx.t("help-text"), back(ctx, Callback::Menu));
    ctx.show(text, keyboard).await
}

pub async fn paysupport(ctx: &Ctx) -> anyhow::Result<()> {
    let (text, keyboard) = with_support(ctx, ctx.t("paysupport-text"), back(ctx, Callback::Menu));
    ctx.send(text, keyboard).await
}

pub async fn terms(ctx: &Ctx) -> anyhow::Result<()> {
    let text = match &ctx.deps.settings.bot.terms_text {
        Some(text) => escape_html(text),
        None => ctx.t("terms-default"),
    };
    ctx.send(text, vec![back(ctx, Callback::Menu)]).await
}
