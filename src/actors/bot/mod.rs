//! The Telegram bot actor: owns the teloxide dispatcher, fed by long polling
//! (`TELEGRAM_MODE=polling`) or by `POST /webhooks/telegram` (`webhook`, through [`BotInbox`]).
//! Every update goes through `handler` (de-duplication, user, ban, rate limit), which dispatches
//! to the flows (`flows`, `admin`); all of them answer through `context` (the update's [`Ctx`],
//! whose messages go out through the shared [`TelegramSender`] as replies, ahead of
//! notifications and broadcasts).
//!
//! [`Ctx`]: context::Ctx
//!
//! teloxide's dispatcher panics when `getMe` fails at start; this actor calls `getMe` itself and
//! retries with backoff, and `/ready` says the bot is down meanwhile.

pub mod admin;
pub mod alerts;
pub mod callback;
pub mod context;
pub mod flows;
pub mod handler;
pub mod payments;
pub mod storage;
pub mod support;
pub mod throttle;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use actix::fut::wrap_future;
use actix::{
    Actor, AsyncContext, Context, Handler, Message as ActixMessage, ResponseFuture, Supervised,
};
use futures_util::StreamExt;
use teloxide::Bot;
use teloxide::dispatching::{Dispatcher, ShutdownToken};
use teloxide::dptree;
use teloxide::error_handlers::LoggingErrorHandler;
use teloxide::payloads::{SetChatMenuButtonSetters, SetMyCommandsSetters, SetWebhookSetters};
use teloxide::prelude::Requester;
use teloxide::stop::{StopToken, mk_stop_token};
use teloxide::types::{AllowedUpdate, BotCommand, MenuButton, Update, WebAppInfo};
use teloxide::update_listeners::{AsUpdateStream, Polling, StatefulListener, UpdateListener};
use tokio::sync::{Mutex as AsyncMutex, mpsc};

use crate::actors::messages::Ping;
use crate::actors::notifier::TelegramSender;
use crate::actors::payments::{PaymentClients, PaymentProcessor};
use crate::actors::supervisor::{ActorHandle, ActorRegistry};
use crate::config::{Settings, TelegramMode, TelegramSettings};
use crate::db::PgPool;
use crate::domain::Language;
use crate::i18n::{self, Args};
use crate::metrics::Metrics;
use context::Deps;
use storage::PgStorage;
use throttle::Throttle;

/// The updates the bot asks Telegram for.
pub fn allowed_updates() -> Vec<AllowedUpdate> {
    vec![
        AllowedUpdate::Message,
        AllowedUpdate::CallbackQuery,
        AllowedUpdate::PreCheckoutQuery,
        AllowedUpdate::MyChatMember,
    ]
}

/// Updates received by `POST /webhooks/telegram`, waiting for the dispatcher. Bounded: when it
/// is full the webhook answers 503 and Telegram delivers the update again later.
pub struct BotInbox {
    sender: mpsc::Sender<Update>,
    receiver: Arc<AsyncMutex<mpsc::Receiver<Update>>>,
}

#[derive(Debug, PartialEq, Eq)]
pub enum InboxError {
    /// Too many updates waiting: Telegram should retry.
    Full,
    /// The bot is stopping.
    Closed,
}

impl BotInbox {
    pub fn new(capacity: usize) -> Arc<BotInbox> {
        let (sender, receiver) = mpsc::channel(capacity);
        Arc::new(BotInbox {
            sender,
            receiver: Arc::new(AsyncMutex::new(receiver)),
        })
    }

    pub fn deliver(&self, update: Update) -> Result<(), InboxError> {
        self.sender.try_send(update).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => InboxError::Full,
            mpsc::error::TrySendError::Closed(_) => InboxError::Closed,
        })
    }
}

pub struct BotActor {
    bot: Bot,
    deps: Arc<Deps>,
    mode: TelegramMode,
    inbox: Arc<BotInbox>,
    /// Whether `getMe` succeeded and updates are being received.
    connected: Arc<AtomicBool>,
    /// Set by [`StopBot`]: no more updates are taken.
    stopping: Arc<AtomicBool>,
    /// The running dispatcher's token, for [`StopBot`].
    shutdown: Arc<std::sync::Mutex<Option<ShutdownToken>>>,
}

/// Stop taking updates (graceful shutdown): the long poll is dropped, the updates received are
/// confirmed to Telegram, and the handlers running (e.g. a payment being recorded) finish.
#[derive(Debug, ActixMessage)]
#[rtype(result = "()")]
pub struct StopBot;

/// What the bot actor needs from the application.
pub struct BotParts {
    pub pool: PgPool,
    pub settings: Arc<Settings>,
    pub payments: ActorHandle<PaymentProcessor>,
    pub clients: Arc<PaymentClients>,
    pub metrics: Arc<Metrics>,
    pub inbox: Arc<BotInbox>,
    /// The sender every message goes through (shared with the notifier).
    pub telegram: Arc<TelegramSender>,
}

impl BotActor {
    pub fn factory(
        telegram: &TelegramSettings,
        parts: BotParts,
    ) -> anyhow::Result<impl Fn() -> BotActor + Send + Sync + 'static> {
        // Long polls hold a request open for 10 s; the client waits longer than that.
        let client = teloxide::net::default_reqwest_settings()
            .timeout(telegram.timeout.max(Duration::from_secs(25)))
            .build()?;
        let bot =
            Bot::with_client(telegram.token.expose(), client).set_api_url(telegram.api_url.clone());
        let (limit, window) = parts.settings.bot.rate_limit;
        let deps = Arc::new(Deps {
            storage: PgStorage::new(parts.pool.clone()),
            pool: parts.pool,
            settings: Arc::clone(&parts.settings),
            payments: parts.payments,
            clients: parts.clients,
            metrics: parts.metrics,
            throttle: Throttle::new(limit, window),
            telegram: parts.telegram,
            gate: tokio::sync::Semaphore::new((parts.settings.database_pool_size / 2).max(2)),
        });
        let mode = parts.settings.bot.mode;
        let inbox = parts.inbox;
        Ok(move || BotActor {
            bot: bot.clone(),
            deps: Arc::clone(&deps),
            mode,
            inbox: Arc::clone(&inbox),
            connected: Arc::new(AtomicBool::new(false)),
            stopping: Arc::new(AtomicBool::new(false)),
            shutdown: Arc::new(std::sync::Mutex::new(None)),
        })
    }

    fn run_dispatcher(&self, ctx: &mut Context<Self>) {
        let bot = self.bot.clone();
        let deps = Arc::clone(&self.deps);
        let mode = self.mode;
        let inbox = Arc::clone(&self.inbox);
        let connected = Arc::clone(&self.connected);
        let stopping = Arc::clone(&self.stopping);
        let shutdown = Arc::clone(&self.shutdown);
        ctx.spawn(wrap_future(async move {
            let mut delay = Duration::from_secs(1);
            while !stopping.load(Ordering::Relaxed) {
                // `getMe` first, by hand: the dispatcher would otherwise fail on it.
                match bot.get_me().await {
                    Ok(_) if stopping.load(Ordering::Relaxed) => break,
                    Ok(me) => {
                        let _ = deps.clients.bot_username.set(me.username().to_owned());
                        if let Err(e) = announce(&bot, &deps, mode).await {
                            tracing::warn!(error = %e, "cannot set up the bot (commands, webhook); retrying");
                        } else {
                            connected.store(true, Ordering::Relaxed);
                            delay = Duration::from_secs(1);
                            tracing::info!(bot = %me.username(), ?mode, "Telegram bot connected");
                            dispatch(&bot, &deps, mode, &inbox, &shutdown, &stopping).await;
                            connected.store(false, Ordering::Relaxed);
                        }
                    }
                    Err(e) => {
                        connected.store(false, Ordering::Relaxed);
                        tracing::warn!(error = %e, retry_in_s = delay.as_secs(), "cannot reach Telegram (getMe); retrying");
                    }
                }
                if stopping.load(Ordering::Relaxed) {
                    break;
                }
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(60));
            }
        }));
    }
}

/// The cabinet as a Mini App (`PUBLIC_BASE_URL/app/`), when WEBAPP_ENABLED.
pub fn cabinet_web_app(settings: &crate::config::Settings) -> Option<WebAppInfo> {
    if !settings.bot.webapp_enabled {
        return None;
    }
    let url = settings.public_base_url.join("app/").ok()?;
    Some(WebAppInfo { url })
}

/// The command menus (English by default, Russian for `ru` users), the menu button that opens
/// the cabinet (WEBAPP_ENABLED) and, in webhook mode, the webhook with its secret.
async fn announce(bot: &Bot, deps: &Deps, mode: TelegramMode) -> anyhow::Result<()> {
    for language in [Language::En, Language::Ru] {
        let commands: Vec<BotCommand> = [
            "start", "buy", "status", "trial", "referral", "promo", "settings", "help", "support",
        ]
        .into_iter()
        // `/support` only where someone reads the questions.
        .filter(|c| *c != "support" || deps.settings.bot.takes_questions())
        .map(|c| {
            BotCommand::new(
                c,
                i18n::message(language, &format!("command-{c}"), &Args::new()),
            )
        })
        .collect();
        let req = bot.set_my_commands(commands);
        match language {
            Language::En => req.await?,
            Language::Ru => req.language_code("ru").await?,
        };
    }
    // The menu button next to the message field opens the cabinet. Without WEBAPP_ENABLED it is
    // left as it is (BotFather may have set one).
    if let Some(cabinet) = cabinet_web_app(&deps.settings) {
        let url = cabinet.url.clone();
        bot.set_chat_menu_button()
            .menu_button(MenuButton::WebApp {
                text: i18n::message(Language::En, "menu-button-cabinet", &Args::new()),
                web_app: cabinet,
            })
            .await?;
        tracing::info!(%url, "the bot's menu button opens the cabinet");
    }
    if mode == TelegramMode::Webhook {
        let url = deps.settings.public_base_url.join("webhooks/telegram")?;
        let secret = deps
            .settings
            .bot
            .webhook_secret
            .as_ref()
            .map(|s| s.expose().to_owned())
            .unwrap_or_default();
        bot.set_webhook(url.clone())
            .secret_token(secret)
            .allowed_updates(allowed_updates())
            .await?;
        tracing::info!(%url, "Telegram webhook set");
    }
    Ok(())
}

/// Runs the dispatcher until it stops (shutdown, or the listener failed).
async fn dispatch(
    bot: &Bot,
    deps: &Arc<Deps>,
    mode: TelegramMode,
    inbox: &Arc<BotInbox>,
    shutdown: &std::sync::Mutex<Option<ShutdownToken>>,
    stopping: &Arc<AtomicBool>,
) {
    let handler = dptree::endpoint(handler::on_update);
    let mut dispatcher = Dispatcher::builder(bot.clone(), handler)
        .dependencies(dptree::deps![Arc::clone(deps)])
        .default_handler(|_| async {})
        .build();
    if let Ok(mut token) = shutdown.lock() {
        *token = Some(dispatcher.shutdown_token());
    }
    let errors = LoggingErrorHandler::with_custom_text("Telegram update listener");
    let result = match mode {
        TelegramMode::Polling => {
            let polling = Polling::builder(bot.clone())
                .timeout(Duration::from_secs(10))
                .allowed_updates(allowed_updates())
                .delete_webhook()
                .await
                .build();
            // A payment is recorded before the stream goes on: the next getUpdates, which
            // confirms the update to Telegram, is sent only after it is committed.
            let listener = StatefulListener::new(
                (polling, deps.payments.clone(), Arc::clone(stopping)),
                recorded_updates,
                |(polling, ..): &mut PollingState| polling.stop_token(),
            );
            dispatcher
                .try_dispatch_with_listener(listener, errors)
                .await
        }
        TelegramMode::Webhook => {
            let (stop_token, _flag) = mk_stop_token();
            let receiver = Arc::clone(&inbox.receiver);
            let listener = StatefulListener::new(
                (receiver, stop_token),
                |state: &mut (Arc<AsyncMutex<mpsc::Receiver<Update>>>, StopToken)| {
                    futures_util::stream::unfold(Arc::clone(&state.0), |rx| async move {
                        let update = rx.lock().await.recv().await?;
                        Some((Ok::<_, std::convert::Infallible>(update), rx))
                    })
                },
                |state: &mut (_, StopToken)| state.1.clone(),
            );
            dispatcher
                .try_dispatch_with_listener(listener, errors)
                .await
        }
    };
    if let Err(e) = result {
        tracing::warn!(error = %e, "the Telegram dispatcher stopped");
    }
}

type PollingState = (Polling<Bot>, ActorHandle<PaymentProcessor>, Arc<AtomicBool>);

/// The long poll's updates, each payment recorded before the next one is taken (see
/// [`payments::record_before_confirming`]).
fn recorded_updates(
    (polling, processor, stopping): &mut PollingState,
) -> impl futures_util::Stream<Item = Result<Update, teloxide::RequestError>> + Send + '_ {
    let (processor, stopping) = (processor.clone(), Arc::clone(stopping));
    polling.as_stream().then(move |item| {
        let (processor, stopping) = (processor.clone(), Arc::clone(&stopping));
        async move {
            if let Ok(update) = &item {
                payments::record_before_confirming(update, &processor, &stopping).await;
            }
            item
        }
    })
}

impl Actor for BotActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.run_dispatcher(ctx);
    }
}

impl Supervised for BotActor {
    fn restarting(&mut self, _: &mut Context<Self>) {
        ActorRegistry::count_restart(&self.deps.metrics, "bot");
    }
}

impl Handler<StopBot> for BotActor {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, _: StopBot, _: &mut Context<Self>) -> Self::Result {
        self.stopping.store(true, Ordering::Relaxed);
        let token = self.shutdown.lock().ok().and_then(|mut t| t.take());
        Box::pin(async move {
            if let Some(token) = token
                && let Ok(stopped) = token.shutdown()
            {
                stopped.await;
                tracing::info!("Telegram bot stopped taking updates");
            }
        })
    }
}

impl Handler<Ping> for BotActor {
    type Result = Result<(), String>;
    fn handle(&mut self, _: Ping, _: &mut Context<Self>) -> Self::Result {
        if self.connected.load(Ordering::Relaxed) {
            Ok(())
        } else {
            Err("cannot reach Telegram (getMe failed); retrying".into())
        }
    }
}
