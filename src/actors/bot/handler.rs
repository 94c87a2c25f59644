//! Every update passes here: de-duplication by `update_id`, the user's registration, the ban,
//! the rate limit, the required channel, then the flow it asks for; each update is logged and
//! measured, and any failure is answered with a short apology (the bot is never silent).

use std::sync::Arc;
use std::time::Instant;

use anyhow::Context as _;
use teloxide::Bot;
use teloxide::prelude::Requester;
use teloxide::types::{
    CallbackQuery, ChatId, ChatMemberUpdated, InlineKeyboardButton, Message, MessageKind,
    Recipient, Update, UpdateKind,
};

use super::callback::Callback;
use super::context::{Ctx, Deps};
use super::storage::DialogueState;
use super::throttle::Verdict;
use super::{admin, flows, payments, support};
use crate::db::telegram;
use crate::db::users::{self, TelegramProfile};
use crate::domain::Language;
use crate::i18n::{self, Args};
use crate::metrics::known::{BOT_UPDATE_KINDS, BOT_UPDATE_OUTCOMES};

/// The kind of an update, for logs and metrics.
fn kind_of(update: &Update) -> &'static str {
    match &update.kind {
        UpdateKind::Message(m) => match &m.kind {
            MessageKind::SuccessfulPayment(_) | MessageKind::RefundedPayment(_) => "payment",
            _ if m.text().is_some_and(|t| t.starts_with('/')) => "command",
            _ => "text",
        },
        UpdateKind::CallbackQuery(_) => "callback",
        UpdateKind::PreCheckoutQuery(_) => "pre_checkout",
        UpdateKind::MyChatMember(_) => "chat_member",
        _ => "other",
    }
}

/// The dispatcher's one endpoint.
pub async fn on_update(
    bot: Bot,
    update: Update,
    deps: Arc<Deps>,
) -> Result<(), std::convert::Infallible> {
    let started = Instant::now();
    let kind = kind_of(&update);
    let from = update.from().map(|u| u.id.0);
    // Telegram waits 10 s at most for a pre-checkout answer: it never queues behind a burst.
    // (The gate is never closed; a closed one would only mean handling without it.)
    let permit = match &update.kind {
        UpdateKind::PreCheckoutQuery(_) => None,
        _ => deps.gate.acquire().await.ok(),
    };
    let result = handle(&bot, &update, &deps).await;
    drop(permit);
    let outcome = match result {
        Ok(outcome) => outcome,
        Err(e) => {
            tracing::error!(update = update.id.0, user = ?from, kind, error = format!("{e:#}"), "a bot handler failed");
            apologise(&deps, &update).await;
            "error"
        }
    };
    let elapsed = started.elapsed();
    debug_assert!(
        BOT_UPDATE_KINDS.contains(&kind) && BOT_UPDATE_OUTCOMES.contains(&outcome),
        "{kind}/{outcome}: add it to metrics::known, which creates the series at start"
    );
    deps.metrics
        .bot_updates
        .with_label_values(&[kind, outcome])
        .inc();
    deps.metrics
        .bot_update_duration
        .with_label_values(&[kind])
        .observe(elapsed.as_secs_f64());
    tracing::info!(
        update = update.id.0,
        user = ?from,
        kind,
        outcome,
        ms = elapsed.as_secs_f64() * 1000.0,
        "bot update"
    );
    Ok(())
}

/// The short apology after a failure (in the user's Telegram language: the database may be the
/// part that failed).
async fn apologise(deps: &Deps, update: &Update) {
    let lang = Language::from_telegram_code(update.from().and_then(|u| u.language_code.as_deref()));
    let text = i18n::message(lang, "error-apology", &Args::new());
    let sent = match &update.kind {
        UpdateKind::CallbackQuery(q) => deps.answer_query(q, Some(text), true).await,
        UpdateKind::Message(m) if m.chat.is_private() => deps.reply(m.chat.id, text).await,
        _ => Ok(()),
    };
    if let Err(e) = sent {
        tracing::warn!(error = %e, "cannot send the apology");
    }
}

async fn handle(bot: &Bot, update: &Update, deps: &Arc<Deps>) -> anyhow::Result<&'static str> {
    {
        let mut conn = deps.pool.get().await?;
        let id = i64::from(update.id.0);
        if !telegram::mark_update(&mut conn, id).await? {
            tracing::debug!(update = id, "update handled before; skipped");
            return Ok("duplicate");
        }
    }
    match &update.kind {
        UpdateKind::PreCheckoutQuery(q) => {
            payments::pre_checkout(&deps.telegram, q, &deps.payments).await?;
            Ok("handled")
        }
        // Recorded before the update was confirmed to Telegram (`payments::payment_of`): by the
        // long poll's listener, or by the webhook before it answered.
        UpdateKind::Message(m)
            if matches!(
                m.kind,
                MessageKind::SuccessfulPayment(_) | MessageKind::RefundedPayment(_)
            ) =>
        {
            Ok("handled")
        }
        UpdateKind::MyChatMember(change) => {
            chat_member(change, deps).await?;
            Ok("handled")
        }
        // The team's support group: answers, /tickets, /close.
        UpdateKind::Message(m) if Some(m.chat.id.0) == deps.settings.bot.support_chat_id => {
            support::team_message(deps, m).await?;
            Ok("handled")
        }
        UpdateKind::Message(m) if m.chat.is_private() => {
            let Some(from) = m.from.as_ref() else {
                return Ok("handled");
            };
            let Some(ctx) = enter(bot, deps, from, m.chat.id, None).await? else {
                return Ok("banned");
            };
            if !admitted(&ctx, None).await? {
                return Ok("throttled");
            }
            if !in_channel(&ctx).await? {
                return Ok("handled");
            }
            on_message(&ctx, m).await?;
            Ok("handled")
        }
        UpdateKind::CallbackQuery(q) => {
            let message = q.regular_message();
            let chat = message.map_or(ChatId(q.from.id.0 as i64), |m| m.chat.id);
            // Only a text message can be edited into the answer (not the QR photo).
            let editable = message.filter(|m| m.text().is_some()).map(|m| m.id);
            let Some(ctx) = enter(bot, deps, &q.from, chat, Some(q)).await? else {
                return Ok("banned");
            };
            if !admitted(&ctx, Some(q)).await? {
                return Ok("throttled");
            }
            let ctx = Ctx { editable, ..ctx };
            on_callback(&ctx, q).await?;
            Ok("handled")
        }
        // Groups and channels the bot was added to, edited messages and the like.
        _ => Ok("handled"),
    }
}

/// Registers the user; `None` when they are banned (told so at most once an hour; a pressed
/// button is always answered).
async fn enter(
    bot: &Bot,
    deps: &Arc<Deps>,
    from: &teloxide::types::User,
    chat: ChatId,
    callback: Option<&CallbackQuery>,
) -> anyhow::Result<Option<Ctx>> {
    let profile = TelegramProfile {
        telegram_id: i64::try_from(from.id.0).context("telegram id out of range")?,
        username: from.username.clone(),
        first_name: Some(from.first_name.clone()),
        last_name: from.last_name.clone(),
        language: Language::from_telegram_code(from.language_code.as_deref()),
    };
    let (user, _) = {
        let mut conn = deps.pool.get().await?;
        users::register(&mut conn, &profile).await?
    };
    if user.banned {
        let text = i18n::message(user.language, "banned", &Args::new());
        if let Some(q) = callback {
            deps.answer_query(q, Some(text), true).await?;
        } else if deps
            .throttle
            .tell_banned(profile.telegram_id, Instant::now())
        {
            deps.reply(chat, text).await?;
        }
        return Ok(None);
    }
    Ok(Some(Ctx {
        bot: bot.clone(),
        deps: Arc::clone(deps),
        user,
        telegram_id: profile.telegram_id,
        chat,
        editable: None,
    }))
}

/// The per-user rate limit: `false` when the update is dropped.
async fn admitted(ctx: &Ctx, callback: Option<&CallbackQuery>) -> anyhow::Result<bool> {
    match ctx.deps.throttle.check(ctx.telegram_id, Instant::now()) {
        Verdict::Allow => Ok(true),
        verdict => {
            if let Some(q) = callback {
                ctx.deps
                    .answer_query(q, Some(ctx.t("too-fast")), false)
                    .await?;
            } else if verdict == Verdict::Warn {
                ctx.deps.reply(ctx.chat, ctx.t("too-fast")).await?;
            }
            Ok(false)
        }
    }
}

/// REQUIRED_CHANNEL: `false` (and the join buttons shown) until the user is a member.
async fn in_channel(ctx: &Ctx) -> anyhow::Result<bool> {
    let Some(channel) = &ctx.deps.settings.bot.required_channel else {
        return Ok(true);
    };
    if ctx.is_admin()
        || ctx
            .deps
            .throttle
            .is_known_member(ctx.telegram_id, Instant::now())
    {
        return Ok(true);
    }
    let recipient = match channel.parse::<i64>() {
        Ok(id) => Recipient::Id(ChatId(id)),
        Err(_) => Recipient::ChannelUsername(channel.clone()),
    };
    let user = teloxide::types::UserId(ctx.telegram_id.unsigned_abs());
    match ctx.bot.get_chat_member(recipient, user).await {
        Ok(member) if member.is_present() => {
            ctx.deps
                .throttle
                .remember_member(ctx.telegram_id, Instant::now());
            Ok(true)
        }
        Ok(_) => {
            let url = match channel.strip_prefix('@') {
                Some(name) => format!("https://t.me/{name}"),
                None => String::new(),
            };
            let mut keyboard = Vec::new();
            if let Ok(url) = reqwest::Url::parse(&url) {
                keyboard.push(vec![InlineKeyboardButton::url(ctx.t("channel-join"), url)]);
            }
            keyboard.push(vec![ctx.button("channel-check", Callback::CheckChannel)]);
            ctx.show(ctx.t("channel-required"), keyboard).await?;
            Ok(false)
        }
        // The bot is not an administrator of the channel, or Telegram is down: let the user
        // in rather than lock everyone out.
        Err(e) => {
            tracing::warn!(%channel, error = %e, "cannot check REQUIRED_CHANNEL membership; letting the user in");
            Ok(true)
        }
    }
}

/// The user blocked (`kicked`) or unblocked the bot in their private chat.
async fn chat_member(change: &ChatMemberUpdated, deps: &Deps) -> anyhow::Result<()> {
    if !change.chat.is_private() {
        return Ok(());
    }
    let blocked = !change.new_chat_member.is_present();
    let telegram_id = i64::try_from(change.from.id.0).context("telegram id out of range")?;
    let mut conn = deps.pool.get().await?;
    users::set_bot_blocked(&mut conn, telegram_id, blocked).await?;
    tracing::info!(
        user = telegram_id,
        blocked,
        "the user changed the bot's chat"
    );
    Ok(())
}

/// A command, or the text a dialogue waits for.
async fn on_message(ctx: &Ctx, m: &Message) -> anyhow::Result<()> {
    // An admin answering a support conversation in their chat with the bot, or /tickets, /close.
    if ctx.is_admin() && support::from_admin(ctx, m).await? {
        return Ok(());
    }
    let takes_questions = ctx.deps.settings.bot.takes_questions();
    let Some(text) = m.text().map(str::trim) else {
        // A photo or a document (a payment screenshot) goes to the team as it is.
        if takes_questions && ctx.state().await? == DialogueState::Idle {
            return support::from_subscriber(ctx, m).await;
        }
        return ctx
            .send(ctx.t("unknown-input"), flows::menu_keyboard(ctx))
            .await;
    };
    if let Some(command) = text.strip_prefix('/') {
        let (name, args) = command
            .split_once(char::is_whitespace)
            .unwrap_or((command, ""));
        // `/buy@my_bot` in a chat with several bots.
        let name = name.split('@').next().unwrap_or(name).to_ascii_lowercase();
        let args = args.trim();
        // A command ends any dialogue.
        if ctx.state().await? != DialogueState::Idle {
            ctx.set_state(DialogueState::Idle).await?;
        }
        return match name.as_str() {
            "start" => flows::start(ctx, args).await,
            "link" => flows::link(ctx, args).await,
            "menu" => flows::menu(ctx).await,
            "trial" => flows::trial(ctx).await,
            "buy" | "renew" => flows::buy(ctx).await,
            "status" => flows::status(ctx).await,
            "referral" | "invite" => flows::referral(ctx).await,
            "promo" => flows::promo(ctx, args).await,
            "settings" => flows::settings(ctx).await,
            "help" => flows::help(ctx).await,
            "paysupport" => flows::paysupport(ctx).await,
            "support" => support::prompt(ctx).await,
            "terms" => flows::terms(ctx).await,
            "cancel" => {
                ctx.send(ctx.t("cancelled"), flows::menu_keyboard(ctx))
                    .await
            }
            "admin" | "stats" | "user" | "grant" | "broadcast" | "alerts" | "tickets" | "close" => {
                if ctx.is_admin() {
                    admin::command(ctx, &name, args).await
                } else {
                    ctx.send(ctx.t("admin-only"), Vec::new()).await
                }
            }
            _ => {
                let command = format!("/{name}");
                ctx.send(
                    ctx.ta("unknown-command", &Args::new().text("command", &command)),
                    flows::menu_keyboard(ctx),
                )
                .await
            }
        };
    }
    match ctx.state().await? {
        // Free text is a question for the team, when someone reads them.
        DialogueState::Idle if takes_questions => support::from_subscriber(ctx, m).await,
        DialogueState::Idle => {
            ctx.send(ctx.t("unknown-input"), flows::menu_keyboard(ctx))
                .await
        }
        DialogueState::PromoCode => flows::apply_promo(ctx, text).await,
        DialogueState::Email => flows::email_entered(ctx, text).await,
        state @ (DialogueState::BroadcastText
        | DialogueState::BroadcastReady { .. }
        | DialogueState::GrantDays { .. }) => {
            if ctx.is_admin() {
                admin::text(ctx, state, text).await
            } else {
                ctx.set_state(DialogueState::Idle).await?;
                ctx.send(ctx.t("unknown-input"), flows::menu_keyboard(ctx))
                    .await
            }
        }
    }
}

async fn on_callback(ctx: &Ctx, q: &CallbackQuery) -> anyhow::Result<()> {
    let Some(callback) = q.data.as_deref().and_then(Callback::parse) else {
        ctx.deps
            .answer_query(q, Some(ctx.t("callback-expired")), false)
            .await?;
        return flows::menu(ctx).await;
    };
    // Answered first: the button stops spinning whatever the flow does next.
    ctx.deps.answer_query(q, None, false).await?;
    if callback != Callback::CheckChannel && !in_channel(ctx).await? {
        return Ok(());
    }
    if !matches!(callback, Callback::Admin(_)) && ctx.state().await? != DialogueState::Idle {
        ctx.set_state(DialogueState::Idle).await?;
    }
    match callback {
        Callback::Menu | Callback::Cancel => flows::menu(ctx).await,
        Callback::Buy => flows::buy(ctx).await,
        Callback::Status => flows::status(ctx).await,
        Callback::Trial => flows::trial(ctx).await,
        Callback::Referral => flows::referral(ctx).await,
        Callback::Promo => flows::promo(ctx, "").await,
        Callback::Settings => flows::settings(ctx).await,
        Callback::Help => flows::help(ctx).await,
        Callback::Support => support::prompt(ctx).await,
        Callback::Connect => flows::connect(ctx).await,
        Callback::Plan(plan) => flows::choose_method(ctx, plan).await,
        Callback::Pay {
            plan,
            provider,
            auto_renew,
        } => flows::pay(ctx, plan, provider, auto_renew).await,
        Callback::Language(language) => flows::set_language(ctx, language).await,
        Callback::Email => flows::ask_email(ctx).await,
        Callback::EmailRemove => flows::remove_email(ctx).await,
        Callback::AutoRenewOff => flows::auto_renew_off(ctx).await,
        Callback::CheckChannel => {
            if in_channel(ctx).await? {
                flows::menu(ctx).await
            } else {
                Ok(())
            }
        }
        Callback::Admin(action) => {
            if ctx.is_admin() {
                admin::action(ctx, action).await
            } else {
                tracing::warn!(
                    user = ctx.telegram_id,
                    ?action,
                    "a non-admin pressed an admin button"
                );
                ctx.send(ctx.t("admin-only"), Vec::new()).await
            }
        }
    }
}
