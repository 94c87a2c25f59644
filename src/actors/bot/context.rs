//! What every part of the bot works with: the dependencies the handlers share ([`Deps`]), one
//! update's context ([`Ctx`]: who, in which chat, in which language) and the ways to answer —
//! a message, an edit, a photo, the answer to a pressed button — all through the one Telegram
//! sender, as replies to a person who is waiting. The handler and the flows depend on this
//! module; it depends on neither.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use teloxide::dispatching::dialogue::Storage;
use teloxide::payloads::{
    AnswerCallbackQuerySetters, EditMessageTextSetters, SendMessageSetters, SendPhotoSetters,
};
use teloxide::prelude::Requester;
use teloxide::types::{
    CallbackQuery, ChatId, InlineKeyboardButton, InlineKeyboardMarkup, InputFile, MessageId,
    ParseMode,
};
use teloxide::{ApiError, Bot, RequestError};

use super::callback::Callback;
use super::storage::{DialogueState, PgStorage};
use super::throttle::Throttle;
use crate::actors::notifier::{Priority, TelegramSender};
use crate::actors::payments::{PaymentClients, PaymentProcessor};
use crate::actors::supervisor::ActorHandle;
use crate::config::Settings;
use crate::db::PgPool;
use crate::db::models::User;
use crate::domain::Language;
use crate::i18n::{self, Args};
use crate::metrics::Metrics;

/// How long the answer to a pressed button may take, 429s waited out included: Telegram drops
/// a callback query that is not answered within seconds (its spinner stops by itself).
pub const CALLBACK_DEADLINE: Duration = Duration::from_secs(10);

/// What the handlers share.
pub struct Deps {
    pub pool: PgPool,
    pub settings: Arc<Settings>,
    pub payments: ActorHandle<PaymentProcessor>,
    pub clients: Arc<PaymentClients>,
    pub metrics: Arc<Metrics>,
    pub throttle: Throttle,
    pub storage: Arc<PgStorage>,
    /// Every message the bot sends goes through it (shared with the notifier).
    pub telegram: Arc<TelegramSender>,
    /// Updates handled at once. A burst (thousands of chats at the same moment) waits here
    /// rather than in the database pool, whose wait has a timeout and which the job runner and
    /// the API need too.
    pub gate: tokio::sync::Semaphore,
}

impl Deps {
    /// A plain-text reply in `chat` (a refusal, an apology).
    pub async fn reply(&self, chat: ChatId, text: String) -> Result<(), RequestError> {
        self.telegram
            .message(chat.0, Priority::Reply, |bot| {
                bot.send_message(chat, text.clone())
            })
            .await
            .map(|_| ())
    }

    /// Answers a callback query: stops the button's spinner, with `text` as a toast (or an
    /// `alert`). Telegram refuses to answer a query that is older than a few seconds or was
    /// answered already ("query is too old … or query ID is invalid" — after a restart, or
    /// behind a burst): the spinner has stopped by then, so that is logged and the flow goes on;
    /// other errors are errors.
    pub async fn answer_query(
        &self,
        q: &CallbackQuery,
        text: Option<String>,
        alert: bool,
    ) -> Result<(), RequestError> {
        let answered = self
            .telegram
            .answer(CALLBACK_DEADLINE, |bot| {
                let mut request = bot.answer_callback_query(q.id.clone());
                if let Some(text) = &text {
                    request = request.text(text.clone());
                }
                if alert {
                    request = request.show_alert(true);
                }
                request
            })
            .await;
        match answered {
            Ok(_) => Ok(()),
            Err(e) if query_too_old(&e) => {
                tracing::info!(query = %q.id, "callback query too old to answer; going on");
                Ok(())
            }
            Err(e) => Err(e),
        }
    }
}

/// Telegram's answer to a callback query it no longer takes (teloxide knows the text with a
/// lower-case "id"; Telegram writes "ID").
fn query_too_old(error: &RequestError) -> bool {
    match error {
        RequestError::Api(ApiError::InvalidQueryId) => true,
        RequestError::Api(ApiError::Unknown(message)) => {
            message.to_ascii_lowercase().contains("query is too old")
        }
        _ => false,
    }
}

/// One update's context: who, in which chat, in which language, and where the answer goes.
#[derive(Clone)]
pub struct Ctx {
    /// For the requests that are no messages (e.g. `getChatMember`).
    pub bot: Bot,
    pub deps: Arc<Deps>,
    pub user: User,
    /// The Telegram id of the person writing (always there: `user.telegram_id` is `Some` of it).
    pub telegram_id: i64,
    pub chat: ChatId,
    /// The message whose button was pressed, when it can be edited into the answer.
    pub editable: Option<MessageId>,
}

pub type Keyboard = Vec<Vec<InlineKeyboardButton>>;

impl Ctx {
    pub fn lang(&self) -> Language {
        self.user.language
    }

    /// A text in the user's language.
    pub fn t(&self, id: &str) -> String {
        i18n::message(self.lang(), id, &Args::new())
    }

    pub fn ta(&self, id: &str, args: &Args) -> String {
        i18n::message(self.lang(), id, args)
    }

    pub fn button(&self, id: &str, cb: Callback) -> InlineKeyboardButton {
        InlineKeyboardButton::callback(self.t(id), cb.encode())
    }

    pub fn is_admin(&self) -> bool {
        self.deps.settings.bot.is_admin(self.telegram_id)
    }

    /// A new message.
    pub async fn send(&self, html: String, keyboard: Keyboard) -> anyhow::Result<()> {
        let markup = (!keyboard.is_empty()).then(|| InlineKeyboardMarkup::new(keyboard));
        self.deps
            .telegram
            .message(self.chat.0, Priority::Reply, |bot| {
                let request = bot
                    .send_message(self.chat, html.clone())
                    .parse_mode(ParseMode::Html);
                match &markup {
                    Some(markup) => request.reply_markup(markup.clone()),
                    None => request,
                }
            })
            .await
            .context("sendMessage")?;
        Ok(())
    }

    /// The answer to a button edits the message that carried it; otherwise a new message.
    pub async fn show(&self, html: String, keyboard: Keyboard) -> anyhow::Result<()> {
        if let Some(id) = self.editable {
            let markup = InlineKeyboardMarkup::new(keyboard.clone());
            let edited = self
                .deps
                .telegram
                .message(self.chat.0, Priority::Reply, |bot| {
                    bot.edit_message_text(self.chat, id, html.clone())
                        .parse_mode(ParseMode::Html)
                        .reply_markup(markup.clone())
                })
                .await;
            match edited {
                Ok(_) => return Ok(()),
                // Pressed twice: the message already says this.
                Err(e) if e.to_string().contains("message is not modified") => return Ok(()),
                Err(e) => tracing::debug!(error = %e, "cannot edit the message; sending a new one"),
            }
        }
        self.send(html, keyboard).await
    }

    pub async fn send_photo(
        &self,
        png: Vec<u8>,
        caption: String,
        keyboard: Keyboard,
    ) -> anyhow::Result<()> {
        let markup = InlineKeyboardMarkup::new(keyboard);
        self.deps
            .telegram
            .message(self.chat.0, Priority::Reply, |bot| {
                bot.send_photo(
                    self.chat,
                    InputFile::memory(png.clone()).file_name("subscription-qr.png"),
                )
                .caption(caption.clone())
                .parse_mode(ParseMode::Html)
                .reply_markup(markup.clone())
            })
            .await
            .context("sendPhoto")?;
        Ok(())
    }

    pub async fn state(&self) -> anyhow::Result<DialogueState> {
        Ok(Arc::clone(&self.deps.storage)
            .get_dialogue(self.chat)
            .await?
            .unwrap_or_default())
    }

    pub async fn set_state(&self, state: DialogueState) -> anyhow::Result<()> {
        let storage = Arc::clone(&self.deps.storage);
        if state == DialogueState::Idle {
            <PgStorage as Storage<DialogueState>>::remove_dialogue(storage, self.chat).await?;
        } else {
            storage.update_dialogue(self.chat, state).await?;
        }
        Ok(())
    }
}
