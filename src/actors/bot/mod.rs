//! The Telegram bot actor: owns the teloxide dispatcher (long polling). Today it holds the
//! payment handlers — Stars pre-checkout queries, successful and refunded payments — which hand
//! the events to the PaymentProcessor; the subscriber flows are added on the same dispatcher.
//!
//! teloxide's dispatcher panics when `getMe` fails at start; this actor uses the fallible entry
//! point instead and retries with backoff, and `/ready` says the bot is down meanwhile.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use actix::fut::wrap_future;
use actix::{
    Actor, AsyncContext, Context, Handler, Message as ActixMessage, ResponseFuture, Supervised,
};
use teloxide::Bot;
use teloxide::dispatching::{Dispatcher, ShutdownToken, UpdateFilterExt};
use teloxide::dptree;
use teloxide::error_handlers::LoggingErrorHandler;
use teloxide::prelude::Requester;
use teloxide::types::{Message, MessageKind, PreCheckoutQuery, Update};
use teloxide::update_listeners::Polling;

use crate::actors::messages::Ping;
use crate::actors::payments::{
    CheckStarsOrder, Outcome, PaymentClients, PaymentProcessor, PaymentUpdate, ProviderUpdate,
    parse_stars_payload, raw_of,
};
use crate::actors::supervisor::{ActorHandle, ActorRegistry};
use crate::config::TelegramSettings;
use crate::domain::{Money, PaymentProvider};
use crate::metrics::Metrics;

/// How the bot answers when a handler fails (it never stays silent).
type HandlerResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;

pub struct BotActor {
    bot: Bot,
    payments: ActorHandle<PaymentProcessor>,
    /// Told the bot's username once `getMe` answers.
    clients: Arc<PaymentClients>,
    metrics: Arc<Metrics>,
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

impl BotActor {
    pub fn factory(
        settings: &TelegramSettings,
        payments: ActorHandle<PaymentProcessor>,
        clients: Arc<PaymentClients>,
        metrics: Arc<Metrics>,
    ) -> anyhow::Result<impl Fn() -> BotActor + Send + Sync + 'static> {
        // Long polls hold a request open for 10 s; the client waits longer than that.
        let client = teloxide::net::default_reqwest_settings()
            .timeout(settings.timeout.max(Duration::from_secs(25)))
            .build()?;
        let bot =
            Bot::with_client(settings.token.expose(), client).set_api_url(settings.api_url.clone());
        Ok(move || BotActor {
            bot: bot.clone(),
            payments: payments.clone(),
            clients: Arc::clone(&clients),
            metrics: Arc::clone(&metrics),
            connected: Arc::new(AtomicBool::new(false)),
            stopping: Arc::new(AtomicBool::new(false)),
            shutdown: Arc::new(std::sync::Mutex::new(None)),
        })
    }

    fn run_dispatcher(&self, ctx: &mut Context<Self>) {
        let bot = self.bot.clone();
        let payments = self.payments.clone();
        let connected = Arc::clone(&self.connected);
        let clients = Arc::clone(&self.clients);
        let stopping = Arc::clone(&self.stopping);
        let shutdown = Arc::clone(&self.shutdown);
        ctx.spawn(wrap_future(async move {
            let mut delay = Duration::from_secs(1);
            while !stopping.load(Ordering::Relaxed) {
                let handler = dptree::entry()
                    .branch(Update::filter_pre_checkout_query().endpoint(pre_checkout))
                    .branch(Update::filter_message().endpoint(payment_message));
                let mut dispatcher = Dispatcher::builder(bot.clone(), handler)
                    .dependencies(dptree::deps![payments.clone()])
                    .default_handler(|_| async {})
                    .build();
                if let Ok(mut token) = shutdown.lock() {
                    *token = Some(dispatcher.shutdown_token());
                }
                let listener = Polling::builder(bot.clone())
                    .timeout(Duration::from_secs(10))
                    .build();
                // `getMe` first, by hand: the dispatcher would otherwise fail on it.
                match bot.get_me().await {
                    Ok(_) if stopping.load(Ordering::Relaxed) => break,
                    Ok(me) => {
                        connected.store(true, Ordering::Relaxed);
                        let _ = clients.bot_username.set(me.username().to_owned());
                        delay = Duration::from_secs(1);
                        tracing::info!(bot = %me.username(), "Telegram bot connected (long polling)");
                        let errors = LoggingErrorHandler::with_custom_text("Telegram update listener");
                        if let Err(e) = dispatcher.try_dispatch_with_listener(listener, errors).await {
                            tracing::warn!(error = %e, "the Telegram dispatcher stopped");
                        }
                        connected.store(false, Ordering::Relaxed);
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

/// Pre-checkout: answered within Telegram's 10 s with cheap checks only (the order exists, is
/// the user's, is pending, costs what Telegram is about to charge).
async fn pre_checkout(
    bot: Bot,
    query: PreCheckoutQuery,
    payments: ActorHandle<PaymentProcessor>,
) -> HandlerResult {
    let check = CheckStarsOrder {
        payload: query.invoice_payload.clone(),
        telegram_id: i64::try_from(query.from.id.0).unwrap_or(i64::MAX),
        amount: Money::stars(i64::from(query.total_amount)),
    };
    let verdict = if query.currency == "XTR" {
        match tokio::time::timeout(Duration::from_secs(5), payments.addr().send(check)).await {
            Ok(Ok(verdict)) => verdict,
            _ => Err("Please try again in a minute.".to_owned()),
        }
    } else {
        Err("Only Telegram Stars are accepted here.".to_owned())
    };
    match verdict {
        Ok(()) => {
            bot.answer_pre_checkout_query(query.id, true).await?;
        }
        Err(message) => {
            use teloxide::payloads::AnswerPreCheckoutQuerySetters;
            tracing::info!(payload = %query.invoice_payload, %message, "Stars pre-checkout refused");
            bot.answer_pre_checkout_query(query.id, false)
                .error_message(message)
                .await?;
        }
    }
    Ok(())
}

/// Successful and refunded Stars payments; other messages belong to the subscriber flows.
async fn payment_message(msg: Message, payments: ActorHandle<PaymentProcessor>) -> HandlerResult {
    let update = match &msg.kind {
        MessageKind::SuccessfulPayment(paid) => {
            let p = &paid.successful_payment;
            let renewal = p.is_recurring && !p.is_first_recurring;
            let charge = p.telegram_payment_charge_id.0.clone();
            PaymentUpdate {
                provider: PaymentProvider::Stars,
                order_id: parse_stars_payload(&p.invoice_payload),
                external_id: charge.clone(),
                event_key: charge.clone(),
                event_type: if renewal {
                    "stars_renewal"
                } else {
                    "successful_payment"
                }
                .into(),
                outcome: if renewal {
                    Outcome::Renewed {
                        amount: Money::stars(i64::from(p.total_amount)),
                    }
                } else {
                    Outcome::Paid {
                        amount: Money::stars(i64::from(p.total_amount)),
                    }
                },
                // The first payment of a Star subscription: its charge id cancels it later.
                saved_method: p.is_first_recurring.then(|| charge.clone()),
                raw: raw_of(p),
                remote_addr: None,
            }
        }
        MessageKind::RefundedPayment(refunded) => {
            let r = &refunded.refunded_payment;
            PaymentUpdate {
                provider: PaymentProvider::Stars,
                order_id: parse_stars_payload(&r.invoice_payload),
                external_id: r.telegram_payment_charge_id.0.clone(),
                event_key: format!("{}:refunded", r.telegram_payment_charge_id.0),
                event_type: "refunded_payment".into(),
                outcome: Outcome::Refunded {
                    amount: Money::stars(i64::from(r.total_amount)),
                    // Stars are refunded once, in full: the charge names the refund.
                    refund_id: r.telegram_payment_charge_id.0.clone(),
                },
                saved_method: None,
                raw: raw_of(r),
                remote_addr: None,
            }
        }
        _ => return Ok(()),
    };
    // Long polling confirms the update whatever happens here, so a payment that cannot be
    // recorded now (database down) is retried here with backoff; after that, `payments_poll`
    // finds it in the bot's Star transactions.
    let mut delay = Duration::from_secs(1);
    for attempt in 1..=8 {
        match payments.addr().send(ProviderUpdate(update.clone())).await {
            Ok(Ok(_)) => return Ok(()),
            Ok(Err(e)) => {
                tracing::warn!(attempt, error = %e.message, "Stars payment not recorded yet; retrying")
            }
            Err(e) => {
                tracing::warn!(attempt, error = %e, "payment processor unavailable; retrying")
            }
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(30));
    }
    tracing::error!(charge = %update.external_id, "Stars payment not recorded; the payment poll will reconcile it");
    Ok(())
}

impl Actor for BotActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.run_dispatcher(ctx);
    }
}

impl Supervised for BotActor {
    fn restarting(&mut self, _: &mut Context<Self>) {
        ActorRegistry::count_restart(&self.metrics, "bot");
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
