//! Delivery of `support_deliver` jobs: a subscriber's messages passed on to the team (the
//! `SUPPORT_CHAT_ID` group — one forum topic per conversation when it has topics — or else each
//! of `ADMIN_TELEGRAM_IDS`), with the subscriber's card first; the team's answers and the closing
//! delivered to the subscriber. Every post is a row of `notifications` (sent at most once) under
//! the shared Telegram budget; a subscriber who blocked the bot is marked, as for notifications.

use std::sync::Mutex;

use teloxide::payloads::{CopyMessageSetters, SendMessageSetters};
use teloxide::prelude::Requester;
use teloxide::types::{ChatId, MessageId, ThreadId};

use super::Shared;
use super::deliver::{Outcome, To};
use super::telegram::{Priority, SendError, TelegramSender, classify, html_message};
use crate::actors::job_runner::JobError;
use crate::db::models::User;
use crate::db::notifications::Delivery;
use crate::db::support::{self as db, ConversationRow, SupportMessageRow};
use crate::db::support_posts as posts;
use crate::db::{subscriptions, users};
use crate::domain::support::{Pending, SupportJob, batch};
use crate::domain::{ConversationId, Language, NotificationChannel, SupportMessageId};
use crate::i18n::{Args, escape_html, format_date, format_datetime, format_money, message};

/// `notifications.kind` and the metric label of support deliveries.
pub const SUPPORT_KIND: &str = "support";

/// Where the team reads support conversations.
#[derive(Debug)]
pub struct SupportTarget {
    /// `SUPPORT_CHAT_ID`; `None`: each of `ADMIN_TELEGRAM_IDS`.
    pub chat: Option<i64>,
    /// `PUBLIC_BASE_URL`, for the link to the user in the admin API.
    pub base_url: reqwest::Url,
    /// Whether the group has topics: learnt from the first `createForumTopic`.
    pub forum: Mutex<Option<bool>>,
}

impl SupportTarget {
    pub fn new(chat: Option<i64>, base_url: reqwest::Url) -> SupportTarget {
        SupportTarget {
            chat,
            base_url,
            forum: Mutex::new(None),
        }
    }
}

impl TelegramSender {
    /// Posts `html` in `chat` (in forum topic `thread`): the message's id.
    pub async fn post(
        &self,
        chat: i64,
        thread: Option<i32>,
        html: &str,
        priority: Priority,
    ) -> Result<i32, SendError> {
        self.message(chat, priority, |bot| {
            let request = html_message(bot, chat, html);
            match thread {
                Some(t) => request.message_thread_id(ThreadId(MessageId(t))),
                None => request,
            }
        })
        .await
        .map(|m| m.id.0)
        .map_err(classify)
    }

    /// Copies message `id` of `from` (a photo, a document: caption included) into `chat`.
    pub async fn copy(
        &self,
        chat: i64,
        thread: Option<i32>,
        from: i64,
        id: i32,
        priority: Priority,
    ) -> Result<i32, SendError> {
        self.message(chat, priority, |bot| {
            let request = bot.copy_message(ChatId(chat), ChatId(from), MessageId(id));
            match thread {
                Some(t) => request.message_thread_id(ThreadId(MessageId(t))),
                None => request,
            }
        })
        .await
        .map(|m| m.0)
        .map_err(classify)
    }

    /// Opens a forum topic named `name` in `chat`: its thread id.
    pub async fn create_topic(&self, chat: i64, name: &str) -> Result<i32, SendError> {
        self.message(chat, Priority::Notification, |bot| {
            bot.create_forum_topic(ChatId(chat), name)
        })
        .await
        .map(|topic| topic.thread_id.0.0)
        .map_err(classify)
    }
}

/// How the subscriber is named to the team.
pub fn user_label(user: &User) -> String {
    let name = [user.first_name.as_deref(), user.last_name.as_deref()]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(" ");
    let mut label = if name.is_empty() {
        user.fallback_name()
    } else {
        name
    };
    if let Some(username) = &user.username {
        label.push_str(&format!(" @{username}"));
    }
    label
}

/// The subscriber's chat with the bot (support conversations happen there; a web-only user
/// has none).
fn telegram_chat(user: &User) -> Result<i64, JobError> {
    user.telegram_id
        .ok_or_else(|| JobError::permanent(format!("user {} has no Telegram chat", user.id)))
}

impl Shared {
    /// Whether someone reads support questions (the group, or admins).
    pub(super) fn takes_questions(&self) -> bool {
        self.support.chat.is_some() || !self.alerts.telegram.is_empty()
    }

    #[tracing::instrument(skip(self))]
    pub(super) async fn deliver_support(&self, job: SupportJob) -> Result<(), JobError> {
        match job {
            SupportJob::Forward { conversation_id } => self.forward(conversation_id).await,
            SupportJob::Reply { message_id } => self.answer(message_id).await,
            SupportJob::Closed { conversation_id } => self.closed(conversation_id).await,
        }
    }

    async fn conversation(&self, id: ConversationId) -> Result<(ConversationRow, User), JobError> {
        let mut conn = self.pool.get().await?;
        let conversation = db::find(&mut conn, id)
            .await?
            .ok_or_else(|| JobError::permanent(format!("conversation {id} does not exist")))?;
        let user = users::find(&mut conn, conversation.user_id)
            .await?
            .ok_or_else(|| JobError::permanent("the conversation's user does not exist"))?;
        Ok((conversation, user))
    }

    /// The team's chats, each with the language it reads.
    async fn team_chats(&self) -> Result<Vec<(i64, Language)>, JobError> {
        if let Some(chat) = self.support.chat {
            return Ok(vec![(chat, self.alerts.language)]);
        }
        let mut chats = Vec::new();
        for &admin in &self.alerts.telegram {
            chats.push((admin, self.admin_language(admin).await?));
        }
        Ok(chats)
    }

    /// Passes the subscriber's messages not passed on yet to every team chat, as one batch.
    async fn forward(&self, id: ConversationId) -> Result<(), JobError> {
        let Some(telegram) = &self.telegram else {
            return Err(JobError::permanent("no Telegram bot token"));
        };
        let (mut conversation, user) = self.conversation(id).await?;
        let pending: Vec<SupportMessageRow> = {
            let mut conn = self.pool.get().await?;
            db::undelivered(&mut conn, id).await?
        };
        if pending.is_empty() {
            return Ok(());
        }
        let plan = batch(
            &pending
                .iter()
                .map(|m| Pending {
                    id: m.id,
                    kind: m.kind,
                    body: m.body.clone(),
                    at: m.created_at,
                })
                .collect::<Vec<_>>(),
        );
        let payload = serde_json::json!({ "conversation_id": id });
        let mut transient = Vec::new();
        for (chat, language) in self.team_chats().await? {
            let t = |key: &str, args: &Args| message(language, key, args);
            let mut thread = None;
            if self.support.chat == Some(chat) {
                thread = self.topic_of(telegram, &mut conversation, &user).await?;
            }
            let first_time = {
                let mut conn = self.pool.get().await?;
                !posts::has_posts_in(&mut conn, id, chat).await?
            };
            let header = t(
                "support-header",
                &Args::new()
                    .text("id", &id.to_string())
                    .text("user", &user_label(&user)),
            );
            let mut posts: Vec<(String, Post)> = Vec::new();
            if first_time {
                posts.push((
                    format!("support:card:{id}:{chat}"),
                    Post::Text(self.card(&conversation, &user, language).await?),
                ));
            }
            let left_out = (plan.media_left_out > 0).then(|| {
                t(
                    "support-media-left-out",
                    &Args::new()
                        .number("count", plan.media_left_out as f64)
                        .text("id", &id.to_string()),
                )
            });
            let texts = plan.texts.len();
            for (i, (first, text)) in plan.texts.iter().enumerate() {
                let mut html = format!("{header}\n{}", escape_html(text));
                if i + 1 == texts
                    && let Some(line) = &left_out
                {
                    html.push_str(&format!("\n\n{line}"));
                }
                posts.push((format!("support:in:{first}:{chat}"), Post::Text(html)));
            }
            if texts == 0
                && let Some(line) = &left_out
            {
                posts.push((
                    format!("support:in:{}:{chat}:more", pending[0].id),
                    Post::Text(format!("{header}\n{line}")),
                ));
            }
            for media in &plan.media {
                if let Some(row) = pending.iter().find(|m| m.id == *media)
                    && let (Some(from), Some(message_id)) = (row.chat_id, row.message_id)
                {
                    posts.push((
                        format!("support:in:{media}:{chat}"),
                        Post::Copy(from, message_id),
                    ));
                }
            }
            for (key, post) in posts {
                let posted = Mutex::new(None);
                let d = delivery(&user, &key, &payload);
                let outcome = self
                    .on_channel(&d, To::Admin, async {
                        let sent = match &post {
                            Post::Text(html) => {
                                telegram
                                    .post(chat, thread, html, Priority::Notification)
                                    .await
                            }
                            Post::Copy(from, message_id) => {
                                telegram
                                    .copy(chat, thread, *from, *message_id, Priority::Notification)
                                    .await
                            }
                        }?;
                        if let Ok(mut slot) = posted.lock() {
                            *slot = Some(sent);
                        }
                        Ok(())
                    })
                    .await?;
                if matches!(outcome, Outcome::Sent)
                    && let Some(message_id) = posted.lock().ok().and_then(|s| *s)
                {
                    let mut conn = self.pool.get().await?;
                    posts::record_forward(&mut conn, chat, message_id, id).await?;
                }
                self.tally(SUPPORT_KIND, "telegram", &outcome, &mut transient);
            }
        }
        if !transient.is_empty() {
            return Err(JobError::retryable(transient.join("; ")));
        }
        let ids: Vec<SupportMessageId> = pending.iter().map(|m| m.id).collect();
        let mut conn = self.pool.get().await?;
        db::mark_delivered(&mut conn, &ids).await?;
        tracing::info!(conversation = %id, messages = ids.len(), "support messages passed on to the team");
        Ok(())
    }

    /// The conversation's forum topic in the support group: opened on first use when the group
    /// has topics; `None` in a group without them.
    async fn topic_of(
        &self,
        telegram: &TelegramSender,
        conversation: &mut ConversationRow,
        user: &User,
    ) -> Result<Option<i32>, JobError> {
        if let Some(topic) = conversation.topic_id {
            return Ok(Some(topic));
        }
        let Some(chat) = self.support.chat else {
            return Ok(None);
        };
        if self.support.forum.lock().ok().and_then(|f| *f) == Some(false) {
            return Ok(None);
        }
        let name: String = format!("#{} {}", conversation.id, user_label(user))
            .chars()
            .take(128)
            .collect();
        match telegram.create_topic(chat, &name).await {
            Ok(topic) => {
                if let Ok(mut forum) = self.support.forum.lock() {
                    *forum = Some(true);
                }
                let mut conn = self.pool.get().await?;
                posts::set_topic(&mut conn, conversation.id, topic).await?;
                conversation.topic_id = Some(topic);
                Ok(Some(topic))
            }
            Err(SendError::Refused(e)) if e.to_ascii_lowercase().contains("not a forum") => {
                tracing::info!(
                    chat,
                    "SUPPORT_CHAT_ID has no topics: conversations share the group"
                );
                if let Ok(mut forum) = self.support.forum.lock() {
                    *forum = Some(false);
                }
                Ok(None)
            }
            Err(SendError::Transient(e)) => Err(JobError::retryable(e)),
            Err(e) => {
                tracing::warn!(chat, error = %e, "cannot open a forum topic (is the bot an administrator allowed to manage topics?); posting in the group");
                Ok(None)
            }
        }
    }

    /// The subscriber's card: who, language, subscription, last payment, the admin API link.
    async fn card(
        &self,
        conversation: &ConversationRow,
        user: &User,
        language: Language,
    ) -> Result<String, JobError> {
        let offset = self.settings.display_offset;
        let (sub, payment) = {
            let mut conn = self.pool.get().await?;
            (
                subscriptions::find_by_user(&mut conn, user.id)
                    .await?
                    .map(|(s, _)| s),
                db::last_payment(&mut conn, user.id).await?,
            )
        };
        let none = message(language, "support-card-none", &Args::new());
        let subscription = match &sub {
            Some(s) => message(
                language,
                "support-card-subscription",
                &Args::new()
                    .text("status", s.status.as_str())
                    .text("trial", if s.is_trial { "trial" } else { "paid" })
                    .text("date", &format_datetime(language, s.expires_at, offset)),
            ),
            None => none.clone(),
        };
        let last_payment = match &payment {
            Some((p, plan)) => message(
                language,
                "support-card-payment",
                &Args::new()
                    .text("id", &p.id.to_string())
                    .text("amount", &format_money(language, p.amount()))
                    .text("plan", plan.as_deref().unwrap_or("—"))
                    .text("provider", p.provider.as_str())
                    .text("status", p.status.as_str())
                    .text("date", &format_date(language, p.created_at, offset)),
            ),
            None => none,
        };
        let link = self
            .support
            .base_url
            .join(&format!("api/v1/users/{}", user.id))
            .map(|u| u.to_string())
            .unwrap_or_default();
        Ok(message(
            language,
            "support-card",
            &Args::new()
                .text("id", &conversation.id.to_string())
                .text("user", &user_label(user))
                .text(
                    "telegram_id",
                    &user
                        .telegram_id
                        .map_or_else(|| "—".to_owned(), |id| id.to_string()),
                )
                .text("user_id", &user.id.to_string())
                .text("language", user.language.as_str())
                .html("subscription", subscription)
                .html("payment", last_payment)
                .text("link", &link),
        ))
    }

    /// Delivers the team's answer to the subscriber.
    async fn answer(&self, id: SupportMessageId) -> Result<(), JobError> {
        let Some(telegram) = &self.telegram else {
            return Err(JobError::permanent("no Telegram bot token"));
        };
        let row = {
            let mut conn = self.pool.get().await?;
            db::find_message(&mut conn, id).await?
        }
        .ok_or_else(|| JobError::permanent(format!("support message {id} does not exist")))?;
        let (_, user) = self.conversation(row.conversation_id).await?;
        let chat = telegram_chat(&user)?;
        let html = message(
            user.language,
            "support-answer",
            &Args::new().text("text", row.body.as_deref().unwrap_or_default()),
        );
        let key = format!("support:out:{id}");
        let payload = serde_json::json!({ "conversation_id": row.conversation_id });
        let d = delivery(&user, &key, &payload);
        let media = row
            .kind
            .is_media()
            .then_some(row.chat_id.zip(row.message_id))
            .flatten();
        let outcome = self
            .on_channel(&d, To::User(&user), async {
                match media {
                    Some((from, message_id)) => telegram
                        .copy(chat, None, from, message_id, Priority::Notification)
                        .await
                        .map(|_| ()),
                    None => telegram.send(chat, &html, &[], false).await,
                }
            })
            .await?;
        let mut transient = Vec::new();
        self.tally(SUPPORT_KIND, "telegram", &outcome, &mut transient);
        if !transient.is_empty() {
            return Err(JobError::retryable(transient.join("; ")));
        }
        if matches!(outcome, Outcome::Sent) {
            let mut conn = self.pool.get().await?;
            db::mark_delivered(&mut conn, &[id]).await?;
        }
        Ok(())
    }

    /// Tells the subscriber the conversation was closed.
    async fn closed(&self, id: ConversationId) -> Result<(), JobError> {
        let Some(telegram) = &self.telegram else {
            return Err(JobError::permanent("no Telegram bot token"));
        };
        let (_, user) = self.conversation(id).await?;
        let chat = telegram_chat(&user)?;
        let html = message(user.language, "support-closed", &Args::new());
        let key = format!("support:closed:{id}");
        let payload = serde_json::json!({ "conversation_id": id });
        let d = delivery(&user, &key, &payload);
        let outcome = self
            .on_channel(&d, To::User(&user), async {
                telegram.send(chat, &html, &[], false).await
            })
            .await?;
        let mut transient = Vec::new();
        self.tally(SUPPORT_KIND, "telegram", &outcome, &mut transient);
        if transient.is_empty() {
            Ok(())
        } else {
            Err(JobError::retryable(transient.join("; ")))
        }
    }
}

/// One post to a team chat.
enum Post {
    Text(String),
    /// A copy of the subscriber's message (chat, message id).
    Copy(i64, i32),
}

fn delivery<'a>(user: &User, dedup_key: &'a str, payload: &'a serde_json::Value) -> Delivery<'a> {
    Delivery {
        user_id: Some(user.id),
        kind: SUPPORT_KIND,
        channel: NotificationChannel::Telegram,
        dedup_key,
        payload,
        broadcast_id: None,
        alert_id: None,
    }
}
