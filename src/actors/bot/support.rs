//! Support conversations in the bot. A subscriber's free text, photo or document (and `/support`,
//! and the "write to support" buttons) opens or continues their conversation; it is recorded and
//! passed on to the team by the Notifier. The team answers by replying to one of the bot's posts
//! (in `SUPPORT_CHAT_ID`, or in an admin's own chat with the bot) or by writing in the
//! conversation's forum topic; `/tickets` lists what is open and `/close` ends a conversation.

use anyhow::Context as _;
use diesel_async::AsyncConnection;
use serde_json::json;
use teloxide::payloads::SendMessageSetters;
use teloxide::types::{Message, MessageId, ParseMode, ThreadId};

use super::callback::Callback;
use super::context::{Ctx, Deps};
use crate::actors::notifier::Priority;
use crate::db::PgConn;
use crate::db::audit::{self, AuditRecord};
use crate::db::support::{self as db, Answered, NewSupportMessage};
use crate::db::support_posts as posts;
use crate::domain::support::{ConversationState, SupportMessageKind};
use crate::domain::{ConversationId, Language};
use crate::i18n::{self, Args};

/// Conversations `/tickets` lists.
const MAX_LISTED: i64 = 30;

/// What a Telegram message holds, as a support message.
fn content(m: &Message) -> (SupportMessageKind, Option<&str>) {
    if let Some(text) = m.text() {
        (SupportMessageKind::Text, Some(text))
    } else if m.photo().is_some() {
        (SupportMessageKind::Photo, m.caption())
    } else if m.document().is_some() {
        (SupportMessageKind::Document, m.caption())
    } else {
        (SupportMessageKind::Other, m.caption())
    }
}

/// `/support` and the "write to support" buttons: how to write to the team.
pub async fn prompt(ctx: &Ctx) -> anyhow::Result<()> {
    if ctx.deps.settings.bot.takes_questions() {
        return ctx.send(ctx.t("support-prompt"), Vec::new()).await;
    }
    let text = match &ctx.deps.settings.bot.support_contact {
        Some(contact) => ctx.ta("help-support", &Args::new().text("contact", contact)),
        None => ctx.t("support-unavailable"),
    };
    ctx.send(text, vec![vec![ctx.button("button-menu", Callback::Menu)]])
        .await
}

/// A subscriber's message outside any dialogue: recorded in their conversation and passed on;
/// the first message of a conversation is acknowledged.
pub async fn from_subscriber(ctx: &Ctx, m: &Message) -> anyhow::Result<()> {
    let (kind, body) = content(m);
    let message = NewSupportMessage {
        kind,
        body,
        telegram: Some((m.chat.id.0, m.id.0)),
    };
    let attempts = ctx.deps.settings.jobs.max_attempts;
    let user = ctx.user.id;
    let incoming = {
        let mut conn = ctx.deps.pool.get().await?;
        conn.transaction::<_, diesel::result::Error, _>(async |conn| {
            db::record_incoming(conn, user, &message, attempts).await
        })
        .await?
    };
    tracing::info!(user = %user, conversation = %incoming.conversation, kind = %kind, opened = incoming.opened, "support message received");
    if incoming.opened {
        ctx.send(ctx.t("support-received"), Vec::new()).await?;
    }
    Ok(())
}

/// The conversation a message of the team is about: a reply to one of the bot's posts, else
/// the forum topic it was written in.
async fn conversation_of(
    conn: &mut PgConn,
    m: &Message,
    in_group: bool,
) -> anyhow::Result<Option<ConversationId>> {
    if let Some(reply) = m.reply_to_message()
        && let Some(id) = posts::conversation_of_post(conn, m.chat.id.0, reply.id.0).await?
    {
        return Ok(Some(id));
    }
    if in_group && let Some(ThreadId(MessageId(topic))) = m.thread_id {
        return Ok(posts::conversation_of_topic(conn, topic).await?);
    }
    Ok(None)
}

/// Says `html` in a team chat (in the message's topic).
async fn say(deps: &Deps, m: &Message, html: String) -> anyhow::Result<()> {
    let chat = m.chat.id;
    let thread = m.thread_id.filter(|_| m.is_topic_message);
    deps.telegram
        .message(chat.0, Priority::Reply, |bot| {
            let request = teloxide::prelude::Requester::send_message(bot, chat, html.clone())
                .parse_mode(ParseMode::Html);
            match thread {
                Some(t) => request.message_thread_id(t),
                None => request,
            }
        })
        .await
        .context("sendMessage")?;
    Ok(())
}

/// A message in the support group (`SUPPORT_CHAT_ID`): an answer, `/tickets` or `/close`;
/// anything else is the team talking among themselves.
pub async fn team_message(deps: &Deps, m: &Message) -> anyhow::Result<()> {
    let Some(from) = m.from.as_ref().filter(|u| !u.is_bot) else {
        return Ok(());
    };
    let author = format!("telegram:{}", from.id.0);
    let language = deps.settings.alerts.language;
    team(deps, m, &author, language, true).await
}

/// An admin's message in their own chat with the bot: `true` when it was about support (an
/// answer by reply, `/tickets`, `/close`).
pub async fn from_admin(ctx: &Ctx, m: &Message) -> anyhow::Result<bool> {
    let text = m.text().map(str::trim).unwrap_or_default();
    let command = command_name(text);
    let is_reply = {
        let mut conn = ctx.deps.pool.get().await?;
        conversation_of(&mut conn, m, false).await?.is_some()
    };
    if !is_reply && !matches!(command.as_deref(), Some("tickets" | "close")) {
        return Ok(false);
    }
    let author = format!("telegram:{}", ctx.telegram_id);
    team(&ctx.deps, m, &author, ctx.lang(), false).await?;
    Ok(true)
}

/// `/name@bot args` → `name`.
fn command_name(text: &str) -> Option<String> {
    let command = text.strip_prefix('/')?;
    let name = command.split_whitespace().next().unwrap_or(command);
    Some(name.split('@').next().unwrap_or(name).to_ascii_lowercase())
}

async fn team(
    deps: &Deps,
    m: &Message,
    author: &str,
    language: Language,
    in_group: bool,
) -> anyhow::Result<()> {
    let t = |key: &str, args: &Args| i18n::message(language, key, args);
    let text = m.text().map(str::trim).unwrap_or_default();
    let conversation = {
        let mut conn = deps.pool.get().await?;
        conversation_of(&mut conn, m, in_group).await?
    };
    match command_name(text).as_deref() {
        Some("tickets") => return say(deps, m, tickets(deps, language).await?).await,
        Some("close") => {
            let arg = text.split_whitespace().nth(1);
            let target = match arg {
                Some(arg) => arg.trim_start_matches('#').parse().ok().map(ConversationId),
                None => conversation,
            };
            let Some(id) = target else {
                return say(deps, m, t("support-close-usage", &Args::new())).await;
            };
            return close(deps, m, id, author, language).await;
        }
        Some(_) => return Ok(()),
        None => {}
    }
    let Some(id) = conversation else {
        return Ok(());
    };
    let (kind, body) = content(m);
    let message = NewSupportMessage {
        kind,
        body,
        telegram: Some((m.chat.id.0, m.id.0)),
    };
    let attempts = deps.settings.jobs.max_attempts;
    let answered = {
        let mut conn = deps.pool.get().await?;
        conn.transaction::<_, diesel::result::Error, _>(async |conn| {
            db::record_answer(conn, id, author, &message, attempts).await
        })
        .await?
    };
    match answered {
        Answered::Recorded {
            first_response,
            message,
        } => {
            if let Some(waited) = first_response {
                deps.metrics
                    .support_first_response
                    .observe(waited.num_milliseconds() as f64 / 1000.0);
            }
            tracing::info!(conversation = %id, message = %message, author, "support answer recorded");
            Ok(())
        }
        Answered::Closed => {
            say(
                deps,
                m,
                t(
                    "support-already-closed",
                    &Args::new().text("id", &id.to_string()),
                ),
            )
            .await
        }
        Answered::NotFound => Ok(()),
    }
}

/// Closes conversation `id` (audit-logged), and says so in the team chat.
async fn close(
    deps: &Deps,
    m: &Message,
    id: ConversationId,
    author: &str,
    language: Language,
) -> anyhow::Result<()> {
    let attempts = deps.settings.jobs.max_attempts;
    let closed = {
        let mut conn = deps.pool.get().await?;
        conn.transaction::<_, diesel::result::Error, _>(async |conn| {
            let before = db::close(conn, id, author, attempts).await?;
            if let Some(before) = &before {
                audit::record(
                    conn,
                    AuditRecord {
                        admin_id: None,
                        actor: author.to_owned(),
                        action: "support.close".into(),
                        target_type: Some("support_conversation".into()),
                        target_id: Some(id.to_string()),
                        before: Some(json!({ "state": before.state })),
                        after: Some(json!({ "state": ConversationState::Closed })),
                        remote_addr: None,
                    },
                )
                .await?;
            }
            Ok(before)
        })
        .await?
    };
    let key = if closed.is_some() {
        tracing::info!(conversation = %id, by = author, "support conversation closed from the bot");
        "support-closed-by-team"
    } else {
        "support-not-open"
    };
    say(
        deps,
        m,
        i18n::message(language, key, &Args::new().text("id", &id.to_string())),
    )
    .await
}

/// `/tickets`: the conversations not closed, the longest waiting first.
async fn tickets(deps: &Deps, language: Language) -> anyhow::Result<String> {
    let offset = deps.settings.notifications.display_offset;
    let open = {
        let mut conn = deps.pool.get().await?;
        db::not_closed(&mut conn, MAX_LISTED).await?
    };
    if open.is_empty() {
        return Ok(i18n::message(
            language,
            "support-tickets-none",
            &Args::new(),
        ));
    }
    let lines = open
        .iter()
        .map(|c| {
            let who = match (&c.username, &c.first_name) {
                (Some(u), _) => format!("@{u}"),
                (None, Some(f)) => f.clone(),
                (None, None) => c.telegram_id.map_or_else(String::new, |id| id.to_string()),
            };
            let waiting = c
                .conversation
                .waiting_since
                .map(|at| {
                    i18n::message(
                        language,
                        "support-tickets-waiting",
                        &Args::new().text("since", &i18n::format_datetime(language, at, offset)),
                    )
                })
                .unwrap_or_default();
            let state = i18n::message(
                language,
                &format!("support-state-{}", c.conversation.state),
                &Args::new(),
            );
            i18n::message(
                language,
                "support-tickets-line",
                &Args::new()
                    .text("id", &c.conversation.id.to_string())
                    .text("user", &who)
                    .text("state", &state)
                    .text("waiting", &waiting)
                    .number("messages", c.messages as f64),
            )
        })
        .collect::<Vec<_>>()
        .join("\n");
    Ok(i18n::message(
        language,
        "support-tickets",
        &Args::new()
            .number("count", open.len() as f64)
            .html("list", lines),
    ))
}
