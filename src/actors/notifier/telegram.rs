//! The one Telegram sender: every message the program sends (the bot's replies and edits,
//! notifications, broadcasts) goes through it. It keeps every replica together under
//! `TELEGRAM_MAX_RATE` and each chat under one message per second (a group under 20 a minute)
//! through budgets in the database (`db::rate`), hands the global budget out by priority (a reply
//! to a waiting person before notifications, notifications before broadcasts), waits out a 429
//! (its `retry_after` pauses the shared budget) and resends, and tells a blocked chat from a
//! failure.

use std::collections::VecDeque;
use std::future::IntoFuture;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use teloxide::payloads::SendMessageSetters;
use teloxide::prelude::Requester;
use teloxide::types::{
    ChatId, InlineKeyboardButton, InlineKeyboardMarkup, LinkPreviewOptions, ParseMode,
};
use teloxide::{ApiError, Bot, RequestError};
use tokio::sync::{Notify, oneshot};

use crate::config::TelegramSettings;
use crate::db::{PgPool, rate};
use crate::metrics::Metrics;

/// The shared budget of all messages.
const GLOBAL: &str = "telegram";
/// The shared budget of broadcast messages (within the global one).
const BROADCAST: &str = "telegram:broadcast";
/// How far ahead a slot of the broadcast budget may be booked.
const HORIZON: Duration = Duration::from_secs(1);
/// Time between two messages to one private chat: Telegram's one a second, with a margin for
/// the network (two requests sent a second apart may arrive closer together).
const CHAT_SPACING: Duration = Duration::from_millis(1200);
/// Time between two messages to one group (Telegram: 20 a minute), with the same margin.
const GROUP_SPACING: Duration = Duration::from_millis(3100);
/// At most this many 429s are waited out for one message before it counts as failed.
const MAX_FLOODS: u32 = 10;
/// At most this many slots of the global budget are reserved in one statement.
const MAX_BATCH: usize = 100;

/// Who waits for a message: the global budget goes to the first class that has one waiting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Priority {
    /// The bot's answer to a person waiting in the chat.
    Reply = 0,
    /// A notification (payment, expiry, link, …).
    Notification = 1,
    /// One message of an admin broadcast.
    Broadcast = 2,
}

impl Priority {
    /// How far ahead this class may book the global budget. Replicas share the budget through the
    /// database, so a class that may book further ahead comes first everywhere: while replies
    /// keep the budget booked a second ahead, notifications and broadcasts wait.
    fn horizon(self) -> Duration {
        match self {
            Priority::Reply => Duration::from_millis(1000),
            Priority::Notification => Duration::from_millis(500),
            Priority::Broadcast => Duration::from_millis(250),
        }
    }
}

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

/// Senders waiting for a slot of the global budget, by priority.
type Waiting = [VecDeque<oneshot::Sender<DateTime<Utc>>>; 3];

pub struct TelegramSender {
    bot: Bot,
    pool: PgPool,
    rate: u32,
    broadcast_rate: u32,
    metrics: Arc<Metrics>,
    /// This replica's queue for the global budget.
    waiting: Mutex<Waiting>,
    /// Held by the one waiter that reserves slots for the whole queue.
    reserving: tokio::sync::Mutex<()>,
    /// A waiter of a new, higher class arrived: the reserving one looks again.
    arrived: Notify,
    /// Until when a 429 paused the budget (slots handed out before it are void).
    paused_until: Mutex<DateTime<Utc>>,
}

/// `sendMessage` of `html` to `chat`, parsed as HTML, without a link preview: how the notifier
/// writes every text message.
pub(super) fn html_message(
    bot: &Bot,
    chat: i64,
    html: &str,
) -> teloxide::requests::JsonRequest<teloxide::payloads::SendMessage> {
    bot.send_message(ChatId(chat), html)
        .parse_mode(ParseMode::Html)
        .link_preview_options(LinkPreviewOptions {
            is_disabled: true,
            url: None,
            prefer_small_media: false,
            prefer_large_media: false,
            show_above_text: false,
        })
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
            waiting: Mutex::new(Default::default()),
            reserving: tokio::sync::Mutex::new(()),
            arrived: Notify::new(),
            paused_until: Mutex::new(DateTime::<Utc>::MIN_UTC),
        })
    }

    /// Sends a message to `chat` — `request` makes the send* or edit* call, again for each
    /// attempt — when the chat's budget and the global one (in `priority`'s turn) allow; a 429
    /// pauses the global budget for its `retry_after` and the message is sent again.
    pub async fn message<R, T>(
        &self,
        chat: i64,
        priority: Priority,
        request: impl Fn(&Bot) -> R,
    ) -> Result<T, RequestError>
    where
        R: IntoFuture<Output = Result<T, RequestError>>,
    {
        if priority == Priority::Broadcast {
            self.take_slot(BROADCAST, self.broadcast_rate, HORIZON)
                .await?;
        }
        let chat_key = format!("telegram:chat:{chat}");
        let spacing = if chat < 0 {
            GROUP_SPACING
        } else {
            CHAT_SPACING
        };
        let mut floods = 0;
        loop {
            self.take_global(priority).await?;
            // The chat's turn is taken at the moment of sending, so that its messages are spaced
            // by when they really go out. When the chat had one a moment ago, this global slot is
            // given up and the message queues again once the chat is free.
            let chat_free = {
                let mut conn = self.pool.get().await.map_err(budget_error)?;
                rate::reserve(&mut conn, &chat_key, spacing, Duration::ZERO)
                    .await
                    .map_err(budget_error)?
            };
            if let Err(free_at) = chat_free {
                sleep_until(free_at).await;
                continue;
            }
            match request(&self.bot).into_future().await {
                Err(RequestError::RetryAfter(wait)) if floods < MAX_FLOODS => {
                    // Not a failure: everyone waits as long as Telegram asks, then we resend.
                    floods += 1;
                    tracing::warn!(
                        chat,
                        ?priority,
                        wait_s = wait.duration().as_secs(),
                        "Telegram asked us to slow down (429)"
                    );
                    self.pause(wait.duration()).await;
                }
                result => return result,
            }
        }
    }

    /// A request that is no chat message — the answer to a callback or pre-checkout query. It is
    /// outside the message budgets (Telegram's limits count messages) and goes out at once,
    /// ahead of every queue: Telegram waits for it only seconds. A 429 is waited out while
    /// `deadline` allows.
    pub async fn answer<R, T>(
        &self,
        deadline: Duration,
        request: impl Fn(&Bot) -> R,
    ) -> Result<T, RequestError>
    where
        R: IntoFuture<Output = Result<T, RequestError>>,
    {
        let until = Instant::now() + deadline;
        loop {
            match request(&self.bot).into_future().await {
                Err(RequestError::RetryAfter(wait)) if Instant::now() + wait.duration() < until => {
                    tracing::warn!(
                        wait_s = wait.duration().as_secs(),
                        "Telegram asked us to slow down (429) answering a query"
                    );
                    self.pause(wait.duration()).await;
                }
                result => return result,
            }
        }
    }

    /// Sends a notification (or, with `broadcast`, one message of a broadcast, also within
    /// `BROADCAST_RATE`) to `chat_id`, with `buttons` under it, one per row.
    pub async fn send(
        &self,
        chat_id: i64,
        html: &str,
        buttons: &[MessageButton],
        broadcast: bool,
    ) -> Result<(), SendError> {
        let started = Instant::now();
        let mut rows = Vec::with_capacity(buttons.len());
        for button in buttons {
            rows.push(vec![match button {
                MessageButton::Callback { text, data } => {
                    InlineKeyboardButton::callback(text.clone(), data.clone())
                }
                MessageButton::Url { text, url } => match url.parse() {
                    Ok(url) => InlineKeyboardButton::url(text.clone(), url),
                    Err(_) => return Err(SendError::Refused(format!("invalid button URL {url}"))),
                },
            }]);
        }
        let markup = (!rows.is_empty()).then(|| InlineKeyboardMarkup::new(rows));
        let priority = if broadcast {
            Priority::Broadcast
        } else {
            Priority::Notification
        };
        let result = self
            .message(chat_id, priority, |bot| {
                let request = html_message(bot, chat_id, html);
                match &markup {
                    Some(markup) => request.reply_markup(markup.clone()),
                    None => request,
                }
            })
            .await
            .map(|_| ())
            .map_err(classify);
        self.metrics
            .notification_send_duration
            .with_label_values(&["telegram"])
            .observe(started.elapsed().as_secs_f64());
        result
    }

    /// A 429: counted, the global budget paused for `wait` here and for every replica, and
    /// waited out.
    async fn pause(&self, wait: Duration) {
        self.metrics.telegram_flood_waits.inc();
        let until = Utc::now() + chrono::Duration::from_std(wait).unwrap_or_default();
        if let Ok(mut paused) = self.paused_until.lock() {
            *paused = (*paused).max(until);
        }
        if let Ok(mut conn) = self.pool.get().await {
            let _ = rate::pause_until(&mut conn, GLOBAL, until).await;
        }
        tokio::time::sleep(wait).await;
    }

    fn paused(&self) -> Option<DateTime<Utc>> {
        let until = *self.paused_until.lock().ok()?;
        (until > Utc::now()).then_some(until)
    }

    /// Waits for this message's slot of the global budget, in `priority`'s turn. The waiters of
    /// this replica queue here, and one of them at a time reserves slots for the head of the
    /// queue in one statement (`rate::reserve_many`): a burst of replies costs a round trip per
    /// batch, not one per message.
    async fn take_global(&self, priority: Priority) -> Result<(), RequestError> {
        loop {
            let (slot_tx, mut slot_rx) = oneshot::channel();
            let new_head = {
                let mut waiting = self.waiting.lock().map_err(|_| poisoned())?;
                let new_head = waiting[..=priority as usize].iter().all(VecDeque::is_empty);
                waiting[priority as usize].push_back(slot_tx);
                new_head
            };
            if new_head {
                self.arrived.notify_waiters();
            }
            let slot = loop {
                tokio::select! {
                    biased;
                    slot = &mut slot_rx => break slot.ok(),
                    _turn = self.reserving.lock() => self.reserve_for_queue().await?,
                }
            };
            let Some(slot) = slot else { continue };
            sleep_until(slot).await;
            // A 429 since this slot was handed out makes it void: queue again.
            if self.paused().is_none() {
                return Ok(());
            }
        }
    }

    /// Reserves slots for the head of the queue (its first class, as many as wait in it) and
    /// hands them out in order; when the budget is booked up, waits until it frees (or a higher
    /// class arrives).
    async fn reserve_for_queue(&self) -> Result<(), RequestError> {
        let interval = Duration::from_secs_f64(1.0 / f64::from(self.rate.max(1)));
        loop {
            if let Some(until) = self.paused() {
                sleep_until(until).await;
            }
            let arrived = self.arrived.notified();
            let head = {
                let mut waiting = self.waiting.lock().map_err(|_| poisoned())?;
                for class in waiting.iter_mut() {
                    class.retain(|w| !w.is_closed());
                }
                waiting
                    .iter()
                    .position(|class| !class.is_empty())
                    .map(|p| (p, waiting[p].len().min(MAX_BATCH)))
            };
            let Some((class, wanted)) = head else {
                return Ok(());
            };
            let priority = [Priority::Reply, Priority::Notification, Priority::Broadcast][class];
            let reserved = {
                let mut conn = self.pool.get().await.map_err(budget_error)?;
                rate::reserve_many(
                    &mut conn,
                    GLOBAL,
                    interval,
                    priority.horizon(),
                    wanted as u32,
                )
                .await
                .map_err(budget_error)?
            };
            match reserved {
                Ok((first, granted)) => {
                    let mut waiting = self.waiting.lock().map_err(|_| poisoned())?;
                    let step = chrono::Duration::from_std(interval).unwrap_or_default();
                    let (mut slot, mut left) = (first, granted);
                    while left > 0 {
                        let Some(waiter) = waiting.iter_mut().find_map(VecDeque::pop_front) else {
                            break;
                        };
                        // A waiter that gave up leaves its slot to the next.
                        if waiter.send(slot).is_ok() {
                            slot += step;
                            left -= 1;
                        }
                    }
                    return Ok(());
                }
                Err(retry_at) => {
                    tokio::select! {
                        () = sleep_until(retry_at) => {}
                        () = arrived => {}
                    }
                }
            }
        }
    }

    /// Waits until budget `key` has a slot for us.
    async fn take_slot(
        &self,
        key: &str,
        per_second: u32,
        horizon: Duration,
    ) -> Result<(), RequestError> {
        let interval = Duration::from_secs_f64(1.0 / f64::from(per_second.max(1)));
        loop {
            let reserved = {
                let mut conn = self.pool.get().await.map_err(budget_error)?;
                rate::reserve(&mut conn, key, interval, horizon)
                    .await
                    .map_err(budget_error)?
            };
            match reserved {
                Ok(slot) => {
                    sleep_until(slot).await;
                    return Ok(());
                }
                Err(retry_at) => sleep_until(retry_at).await,
            }
        }
    }
}

async fn sleep_until(at: DateTime<Utc>) {
    if let Ok(wait) = (at - Utc::now()).to_std() {
        tokio::time::sleep(wait).await;
    }
}

/// The budgets live in the database: when it cannot be reached, nothing is sent.
fn budget_error(e: impl std::fmt::Display) -> RequestError {
    RequestError::Io(Arc::new(std::io::Error::other(format!(
        "the Telegram send budget is unavailable: {e}"
    ))))
}

fn poisoned() -> RequestError {
    RequestError::Io(Arc::new(std::io::Error::other(
        "the Telegram send queue is poisoned",
    )))
}

pub(super) fn classify(error: RequestError) -> SendError {
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
