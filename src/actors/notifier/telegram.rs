//! The one Telegram sender: keeps every replica together under `TELEGRAM_MAX_RATE` and each
//! chat under one message per second through budgets in the database (`db::rate`), waits out a
//! 429 (its `retry_after` pauses the shared budget) and resends, and tells a blocked chat from a
//! failure.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use teloxide::payloads::SendMessageSetters;
use teloxide::prelude::Requester;
use teloxide::types::{
    ChatId, InlineKeyboardButton, InlineKeyboardMarkup, LinkPreviewOptions, ParseMode,
};
use teloxide::{ApiError, Bot, RequestError};

use crate::config::TelegramSettings;
use crate::db::{PgPool, rate};
use crate::metrics::Metrics;

/// The shared budget of all messages.
const GLOBAL: &str = "telegram";
/// The shared budget of broadcast messages (within the global one).
const BROADCAST: &str = "telegram:broadcast";
/// How far ahead a slot of the global budget may be booked.
const HORIZON: Duration = Duration::from_secs(1);
/// Between two messages to one chat: Telegram's second, and a margin for the requests' unequal
/// way to Telegram (two sent exactly a second apart may arrive closer together).
const CHAT_INTERVAL: Duration = Duration::from_millis(1_200);
/// At most this many 429s are waited out for one message before it counts as failed.
const MAX_FLOODS: u32 = 10;

/// A button under the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MessageButton {
    /// Handled by the bot.
    Callback {
        text: String,
        data: String,
    },
    Url {
        text: String,
        url: String,
    },
}

/// Why a message was not delivered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// The user blocked the bot, deleted the account, or never started it: stop writing to them.
    #[error("the user cannot be reached: {0}")]
    Unreachable(String),
    /// Telegram refused this message; sending it again would not help.
    #[error("Telegram refused the message: {0}")]
    Refused(String),
    /// Network trouble or a Telegram outage: worth trying again later.
    #[error("Telegram could not be reached: {0}")]
    Transient(String),
}

pub struct TelegramSender {
    bot: Bot,
    pool: PgPool,
    rate: u32,
    broadcast_rate: u32,
    metrics: Arc<Metrics>,
}

impl TelegramSender {
    pub fn new(
        settings: &TelegramSettings,
        broadcast_rate: u32,
        pool: PgPool,
        metrics: Arc<Metrics>,
    ) -> anyhow::Result<Self> {
        let client = teloxide::net::default_reqwest_settings()
            .timeout(settings.timeout)
            .build()?;
        let bot =
            Bot::with_client(settings.token.expose(), client).set_api_url(settings.api_url.clone());
        Ok(TelegramSender {
            bot,
            pool,
            rate: settings.max_rate,
            broadcast_rate,
            metrics,
        })
    }

    /// Waits until budget `key` (one slot every `interval`) has a slot for us.
    async fn take_slot(
        &self,
        key: &str,
        interval: Duration,
        horizon: Duration,
    ) -> Result<(), SendError> {
        loop {
            let reserved = {
                let mut conn = self
                    .pool
                    .get()
                    .await
                    .map_err(|e| SendError::Transient(e.to_string()))?;
                rate::reserve(&mut conn, key, interval, horizon)
                    .await
                    .map_err(|e| SendError::Transient(e.to_string()))?
            };
            let at = match reserved {
                Ok(slot) => slot,
                Err(retry_at) => retry_at,
            };
            if let Ok(wait) = (at - Utc::now()).to_std() {
                tokio::time::sleep(wait).await;
            }
            if reserved.is_ok() {
                return Ok(());
            }
        }
    }

    /// Takes the slot of budget `key` if it is free now; otherwise waits until it will be and
    /// answers `false` (nothing booked).
    async fn take_slot_now(&self, key: &str, interval: Duration) -> Result<bool, SendError> {
        let reserved = {
            let mut conn = self
                .pool
                .get()
                .await
                .map_err(|e| SendError::Transient(e.to_string()))?;
            rate::reserve(&mut conn, key, interval, Duration::ZERO)
                .await
                .map_err(|e| SendError::Transient(e.to_string()))?
        };
        match reserved {
            Ok(_) => Ok(true),
            Err(free_at) => {
                if let Ok(wait) = (free_at - Utc::now()).to_std() {
                    tokio::time::sleep(wait).await;
                }
                Ok(false)
            }
        }
    }

    /// Sends `html` to `chat_id` within the budgets; `broadcast` messages also stay within
    /// `BROADCAST_RATE`.
    pub async fn send(
        &self,
        chat_id: i64,
        html: &str,
        button: Option<&MessageButton>,
        broadcast: bool,
    ) -> Result<(), SendError> {
        let started = Instant::now();
        let chat = format!("telegram:chat:{chat_id}");
        if broadcast {
            self.take_slot(BROADCAST, per_second(self.broadcast_rate), HORIZON)
                .await?;
        }
        let mut floods = 0;
        let result = loop {
            self.take_slot(GLOBAL, per_second(self.rate), HORIZON)
                .await?;
            // The chat's slot only when it is free now, right before the send. A chat slot booked
            // ahead and then a wait for the global budget let two messages to one chat leave well
            // under a second apart (both waited for the busy global budget, then went one global
            // slot apart); a global slot kept while waiting for the chat went late and crowded
            // the next second. When the chat is busy, the global slot is given up.
            if !self.take_slot_now(&chat, CHAT_INTERVAL).await? {
                continue;
            }
            let mut request = self
                .bot
                .send_message(ChatId(chat_id), html)
                .parse_mode(ParseMode::Html)
                .link_preview_options(LinkPreviewOptions {
                    is_disabled: true,
                    url: None,
                    prefer_small_media: false,
                    prefer_large_media: false,
                    show_above_text: false,
                });
            if let Some(button) = button {
                let button = match button {
                    MessageButton::Callback { text, data } => {
                        InlineKeyboardButton::callback(text.clone(), data.clone())
                    }
                    MessageButton::Url { text, url } => match url.parse() {
                        Ok(url) => InlineKeyboardButton::url(text.clone(), url),
                        Err(_) => {
                            return Err(SendError::Refused(format!("invalid button URL {url}")));
                        }
                    },
                };
                request = request.reply_markup(InlineKeyboardMarkup::new([[button]]));
            }
            match request.await {
                Ok(_) => break Ok(()),
                Err(RequestError::RetryAfter(wait)) if floods < MAX_FLOODS => {
                    // Not a failure: everyone waits as long as Telegram asks, then we resend.
                    floods += 1;
                    self.metrics.telegram_flood_waits.inc();
                    let wait = wait.duration();
                    tracing::warn!(
                        chat_id,
                        wait_s = wait.as_secs(),
                        "Telegram asked us to slow down (429)"
                    );
                    let until = Utc::now() + chrono::Duration::from_std(wait).unwrap_or_default();
                    if let Ok(mut conn) = self.pool.get().await {
                        let _ = rate::pause_until(&mut conn, GLOBAL, until).await;
                    }
                    tokio::time::sleep(wait).await;
                }
                Err(error) => break Err(classify(error)),
            }
        };
        self.metrics
            .notification_send_duration
            .with_label_values(&["telegram"])
            .observe(started.elapsed().as_secs_f64());
        result
    }
}

/// The interval between the slots of a budget of `n` a second.
fn per_second(n: u32) -> Duration {
    Duration::from_secs_f64(1.0 / f64::from(n.max(1)))
}

fn classify(error: RequestError) -> SendError {
    match error {
        RequestError::Api(
            api @ (ApiError::BotBlocked
            | ApiError::UserDeactivated
            | ApiError::ChatNotFound
            | ApiError::UserNotFound
            | ApiError::CantInitiateConversation
            | ApiError::CantTalkWithBots
            | ApiError::BotKicked
            | ApiError::BotKickedFromSupergroup
            | ApiError::BotKickedFromChannel),
        ) => SendError::Unreachable(api.to_string()),
        RequestError::Api(ApiError::InvalidToken) => {
            SendError::Transient("the bot token was refused (check TELEGRAM_BOT_TOKEN)".into())
        }
        RequestError::Api(api) => SendError::Refused(api.to_string()),
        RequestError::RetryAfter(wait) => SendError::Transient(format!(
            "still rate limited (retry after {:?})",
            wait.duration()
        )),
        RequestError::Network(e) => SendError::Transient(describe_network(&e)),
        other => SendError::Transient(other.to_string()),
    }
}

/// A network error without its URL: the URL holds the bot token.
fn describe_network(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        return "request timed out".into();
    }
    let mut text = if e.is_connect() {
        "connection failed"
    } else {
        "request failed"
    }
    .to_owned();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
