//! PaymentProcessor: checkouts, confirmations, refunds, lost webhooks and auto-renewal, for
//! YooKassa, WATA and Telegram Stars. This is where a shop loses money or trust, so:
//! an order is written before the provider is called; a provider event changes an order only
//! while it is pending, under a row lock, in the same transaction that extends the
//! subscription and enqueues the provisioning and the notification; everything is recorded in
//! `payment_events` with its verdict. Checkouts live in `checkout`, events in `fulfil`, the
//! periodic work in `poll`, refunds in `refund`.

mod checkout;
mod fulfil;
mod poll;
mod refund;

use std::sync::Arc;

use actix::{Actor, Context, Handler, Message, ResponseFuture, Supervised};
use chrono::{DateTime, Utc};
use futures_util::future::LocalBoxFuture;
use serde_json::Value;

pub use checkout::{Checkout, CheckoutError};
pub use fulfil::{Outcome, PaymentUpdate, yookassa_reason};
pub use refund::RefundError;

use crate::actors::job_runner::{JobError, JobHandler, JobHandlers};
use crate::actors::messages::Ping;
use crate::actors::notifier::TelegramSender;
use crate::actors::scheduler::TaskSpec;
use crate::actors::supervisor::{ActorHandle, ActorRegistry};
use crate::clients::wata::WataClient;
use crate::clients::yookassa::YooKassaClient;
use crate::config::Settings;
use crate::db::PgPool;
use crate::db::models::Job;
use crate::domain::alerts::Alert;
use crate::domain::{Money, PaymentEventVerdict, PaymentId, PaymentProvider, PlanId, UserId};
use crate::metrics::Metrics;

/// A payment an admin must look at: flagged, counted and alerted by `Shared::raise`.
pub use crate::domain::alerts::Anomaly;

/// Job kinds and task names of the periodic work.
pub const POLL_JOB: &str = "payments_poll";
pub const AUTO_RENEW_JOB: &str = "payments_auto_renew";

/// The clients of the configured providers, shared by the processor and the webhook handlers
/// (which authenticate with them: YooKassa's API, WATA's public key).
pub struct PaymentClients {
    pub yookassa: Option<YooKassaClient>,
    pub wata: Option<WataClient>,
    /// The bot, for Stars invoice links and refunds (`None` without Stars).
    pub stars: Option<teloxide::Bot>,
    /// The sender of every Telegram message (the Stars invoice is one, a reply to the buyer).
    pub telegram: Option<Arc<TelegramSender>>,
    /// The bot's username once it connected: the payment pages send the payer back to its chat.
    pub bot_username: std::sync::OnceLock<String>,
}

impl PaymentClients {
    pub fn new(
        settings: &Settings,
        metrics: &Arc<Metrics>,
        telegram: Option<Arc<TelegramSender>>,
    ) -> anyhow::Result<Arc<Self>> {
        let p = &settings.payments;
        let timeout = p.provider_timeout;
        let yookassa = p
            .yookassa
            .as_ref()
            .map(|y| YooKassaClient::new(y, timeout, Arc::clone(metrics)))
            .transpose()?;
        let wata = p
            .wata
            .as_ref()
            .map(|w| WataClient::new(w, timeout, Arc::clone(metrics)))
            .transpose()?;
        let stars = match (&settings.telegram, p.stars) {
            (Some(t), true) => {
                let client = teloxide::net::default_reqwest_settings()
                    .timeout(t.timeout)
                    .build()?;
                Some(
                    teloxide::Bot::with_client(t.token.expose(), client)
                        .set_api_url(t.api_url.clone()),
                )
            }
            _ => None,
        };
        Ok(Arc::new(PaymentClients {
            yookassa,
            wata,
            stars,
            telegram,
            bot_username: std::sync::OnceLock::new(),
        }))
    }
}

/// What the processor shares between its handlers.
pub(crate) struct Shared {
    pool: PgPool,
    clients: Arc<PaymentClients>,
    settings: Arc<Settings>,
    metrics: Arc<Metrics>,
}

impl Shared {
    fn max_attempts(&self) -> i32 {
        self.settings.jobs.max_attempts
    }

    fn panel_prefix(&self) -> &str {
        self.settings.panel_username_prefix()
    }

    /// Raises `anomaly` about `order` (inside the caller's transaction): flagged with `detail`,
    /// logged, counted, and the admins alerted (until one marks it reviewed).
    pub(crate) async fn raise(
        &self,
        conn: &mut crate::db::PgConn,
        order: PaymentId,
        anomaly: Anomaly,
        detail: &str,
    ) -> diesel::QueryResult<()> {
        crate::db::payments::flag(conn, order, detail).await?;
        if let Some(payment) = crate::db::payments::find(conn, order).await? {
            let telegram_id = crate::db::users::find(conn, payment.user_id)
                .await?
                .and_then(|u| u.telegram_id);
            let alert = Alert::PaymentFlagged {
                anomaly,
                order: Some(order),
                user: Some(payment.user_id),
                telegram_id,
                amount: payment.amount(),
                provider: payment.provider,
                detail: detail.to_owned(),
            };
            crate::db::alerts::raise(conn, &alert, self.max_attempts()).await?;
        }
        self.count_anomaly(anomaly);
        tracing::error!(order = %order, kind = anomaly.as_str(), detail, "payment anomaly: an admin must look at this order");
        Ok(())
    }

    /// A genuine charge that names no order of the shop: nothing to flag, the admins alerted.
    pub(crate) async fn raise_orphan_charge(
        &self,
        conn: &mut crate::db::PgConn,
        provider: PaymentProvider,
        amount: Money,
        external_id: &str,
    ) -> diesel::QueryResult<()> {
        let anomaly = Anomaly::ChargeWithoutOrder;
        let detail = format!(
            "charge {external_id} of {amount} names no order of the shop: refund it or find its payer"
        );
        let alert = Alert::PaymentFlagged {
            anomaly,
            order: None,
            user: None,
            telegram_id: None,
            amount,
            provider,
            detail: detail.clone(),
        };
        // Its key names the charge: a provider's repeated notice of it is not counted again.
        if crate::db::alerts::raise(conn, &alert, self.max_attempts())
            .await?
            .is_some()
        {
            self.count_anomaly(anomaly);
            tracing::error!(%provider, external_id, %amount, "payment anomaly: a charge with no order");
        }
        Ok(())
    }

    fn count_anomaly(&self, anomaly: Anomaly) {
        self.metrics
            .payment_anomalies
            .with_label_values(&[anomaly.as_str()])
            .inc();
    }

    pub fn providers(&self) -> Vec<PaymentProvider> {
        self.clients.providers()
    }
}

impl PaymentClients {
    /// The providers offered, in the order the bot shows them.
    pub fn providers(&self) -> Vec<PaymentProvider> {
        let mut offered = Vec::new();
        if self.yookassa.is_some() {
            offered.push(PaymentProvider::Yookassa);
        }
        if self.wata.is_some() {
            offered.push(PaymentProvider::Wata);
        }
        if self.stars.is_some() {
            offered.push(PaymentProvider::Stars);
        }
        offered
    }
}

pub struct PaymentProcessor {
    shared: Arc<Shared>,
}

impl PaymentProcessor {
    /// A factory of processors for the supervisor (instances share the clients). Says once
    /// which providers are offered and which variables turn the others on.
    pub fn factory(
        pool: PgPool,
        clients: Arc<PaymentClients>,
        settings: Arc<Settings>,
        metrics: Arc<Metrics>,
    ) -> impl Fn() -> PaymentProcessor + Send + Sync + 'static {
        let shared = Arc::new(Shared {
            pool,
            clients,
            settings,
            metrics,
        });
        let offered = shared.providers();
        if offered.is_empty() {
            tracing::warn!(
                "no payment provider is configured: nothing can be bought (set YOOKASSA_SHOP_ID and \
                 YOOKASSA_SECRET_KEY, WATA_TOKEN, or STARS_ENABLED=true with a bot)"
            );
        } else {
            tracing::info!(providers = ?offered, "payment providers offered");
        }
        for anomaly in Anomaly::ALL {
            shared
                .metrics
                .payment_anomalies
                .with_label_values(&[anomaly.as_str()]);
        }
        for provider in PaymentProvider::ALL {
            for verdict in PaymentEventVerdict::ALL {
                shared
                    .metrics
                    .payment_events
                    .with_label_values(&[provider.as_str(), verdict.as_str()]);
            }
        }
        move || PaymentProcessor {
            shared: Arc::clone(&shared),
        }
    }

    /// The periodic work of the configured providers: polling lost confirmations when any is
    /// offered, automatic renewal with YooKassa's saved cards.
    pub fn tasks(settings: &Settings) -> Vec<TaskSpec> {
        let p = &settings.payments;
        let any =
            p.yookassa.is_some() || p.wata.is_some() || (p.stars && settings.telegram.is_some());
        let mut tasks = Vec::new();
        if any {
            tasks.push(TaskSpec::new(POLL_JOB, p.poll_interval));
        }
        if p.yookassa.is_some() {
            tasks.push(TaskSpec::new(AUTO_RENEW_JOB, p.auto_renew_interval));
        }
        tasks
    }
}

impl Actor for PaymentProcessor {
    type Context = Context<Self>;
}

impl Supervised for PaymentProcessor {
    fn restarting(&mut self, _: &mut Context<Self>) {
        ActorRegistry::count_restart(&self.shared.metrics, "payments");
    }
}

impl Handler<Ping> for PaymentProcessor {
    type Result = Result<(), String>;
    fn handle(&mut self, _: Ping, _: &mut Context<Self>) -> Self::Result {
        Ok(())
    }
}

/// Start a purchase: writes the order, then asks the provider for a payment page (YooKassa,
/// WATA), sends a Stars invoice, or — for a 100 % promo code — gives the period at once.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<Checkout, CheckoutError>")]
pub struct CreateCheckout {
    pub user_id: UserId,
    pub plan_id: PlanId,
    pub provider: PaymentProvider,
    /// A code typed at checkout; without it the user's remembered code (if any) applies.
    pub promo_code: Option<String>,
    /// YooKassa: save the card for automatic renewal; Stars: a monthly Star subscription.
    pub auto_renew: bool,
    /// Where the payment page sends the payer back.
    pub return_to: ReturnTo,
}

/// Where a provider's payment page sends the payer back when they are done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReturnTo {
    /// `PAYMENT_RETURN_URL`, else the bot's chat.
    Bot,
    /// The cabinet's page of the order (`/app/payments/<id>`), which shows how it went.
    Cabinet,
}

/// What a provider told us about a payment, authenticated by the caller (webhook handler, bot,
/// poll). The answer says what was made of it; `Err` means it could not be recorded (answer 5xx
/// so the provider sends it again).
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<PaymentEventVerdict, JobError>")]
pub struct ProviderUpdate(pub PaymentUpdate);

/// Refund a payment (all of it, or `amount`) through its provider and take the paid days back.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<RefundResult, RefundError>")]
pub struct Refund {
    pub payment_id: PaymentId,
    pub amount: Option<Money>,
    pub reason: String,
    /// Who asked, for the audit log ("admin:alice", "telegram:…").
    pub actor: String,
    pub admin_id: Option<crate::domain::AdminId>,
    /// Where the request came from (the admin's address), for the audit log.
    pub remote_addr: Option<String>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct RefundResult {
    pub refunded: Money,
    pub days_taken_back: i32,
    pub new_end: Option<DateTime<Utc>>,
}

/// Turn automatic renewal off for a user: forgets the saved YooKassa card, or cancels the Star
/// subscription with Telegram (`editUserStarSubscription`). Answers whether it was on.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<bool, CheckoutError>")]
pub struct CancelAutoRenew {
    pub user_id: UserId,
}

/// Is this Stars order payable now (the pre-checkout check: cheap, answered within 10 s)?
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<(), String>")]
pub struct CheckStarsOrder {
    pub payload: String,
    pub telegram_id: i64,
    pub amount: Money,
}

impl Handler<CreateCheckout> for PaymentProcessor {
    type Result = ResponseFuture<Result<Checkout, CheckoutError>>;
    fn handle(&mut self, msg: CreateCheckout, _: &mut Context<Self>) -> Self::Result {
        let shared = Arc::clone(&self.shared);
        Box::pin(async move { shared.create_checkout(msg).await })
    }
}

impl Handler<ProviderUpdate> for PaymentProcessor {
    type Result = ResponseFuture<Result<PaymentEventVerdict, JobError>>;
    fn handle(&mut self, msg: ProviderUpdate, _: &mut Context<Self>) -> Self::Result {
        let shared = Arc::clone(&self.shared);
        Box::pin(async move { shared.apply(msg.0).await })
    }
}

impl Handler<Refund> for PaymentProcessor {
    type Result = ResponseFuture<Result<RefundResult, RefundError>>;
    fn handle(&mut self, msg: Refund, _: &mut Context<Self>) -> Self::Result {
        let shared = Arc::clone(&self.shared);
        Box::pin(async move { shared.refund(msg).await })
    }
}

impl Handler<CheckStarsOrder> for PaymentProcessor {
    type Result = ResponseFuture<Result<(), String>>;
    fn handle(&mut self, msg: CheckStarsOrder, _: &mut Context<Self>) -> Self::Result {
        let shared = Arc::clone(&self.shared);
        Box::pin(async move { shared.check_stars_order(msg).await })
    }
}

impl Handler<CancelAutoRenew> for PaymentProcessor {
    type Result = ResponseFuture<Result<bool, CheckoutError>>;
    fn handle(&mut self, msg: CancelAutoRenew, _: &mut Context<Self>) -> Self::Result {
        let shared = Arc::clone(&self.shared);
        Box::pin(async move { shared.cancel_auto_renew(msg.user_id).await })
    }
}

/// The job handler of the periodic payment work.
#[derive(Clone)]
pub struct PaymentJobs {
    processor: ActorHandle<PaymentProcessor>,
}

#[derive(Debug, Message)]
#[rtype(result = "Result<(), JobError>")]
struct RunPeriodic(&'static str);

impl Handler<RunPeriodic> for PaymentProcessor {
    type Result = ResponseFuture<Result<(), JobError>>;
    fn handle(&mut self, msg: RunPeriodic, _: &mut Context<Self>) -> Self::Result {
        let shared = Arc::clone(&self.shared);
        Box::pin(async move {
            match msg.0 {
                POLL_JOB => shared.poll_pending().await,
                _ => shared.auto_renew().await,
            }
        })
    }
}

impl PaymentJobs {
    pub fn register(handlers: &mut JobHandlers, processor: ActorHandle<PaymentProcessor>) {
        let jobs = PaymentJobs { processor };
        handlers.register(POLL_JOB, jobs.clone(), Some(1));
        handlers.register(AUTO_RENEW_JOB, jobs, Some(1));
    }
}

impl JobHandler for PaymentJobs {
    fn run(&self, job: Job) -> LocalBoxFuture<'static, Result<(), JobError>> {
        let addr = self.processor.addr();
        Box::pin(async move {
            let kind = match job.kind.as_str() {
                POLL_JOB => POLL_JOB,
                AUTO_RENEW_JOB => AUTO_RENEW_JOB,
                other => return Err(JobError::permanent(format!("not a payment job: {other}"))),
            };
            addr.send(RunPeriodic(kind))
                .await
                .map_err(|e| JobError::retryable(format!("payment processor unavailable: {e}")))?
        })
    }
}

/// The order id of a Stars invoice payload (`order:<id>`).
pub fn stars_payload(order: PaymentId) -> String {
    format!("order:{order}")
}

pub fn parse_stars_payload(payload: &str) -> Option<PaymentId> {
    payload.strip_prefix("order:")?.parse().ok()
}

/// The raw form of an update, for `payment_events.payload`.
pub(crate) fn raw_of<T: serde::Serialize>(value: &T) -> Value {
    storable(serde_json::to_value(value).unwrap_or(Value::Null))
}

/// `value` as a `jsonb` column takes it: PostgreSQL refuses the NUL character (`\u0000`) in
/// strings and keys, so each becomes U+FFFD (a webhook body with one was a 500, sent again
/// forever).
pub(crate) fn storable(value: Value) -> Value {
    const NUL: char = '\u{0}';
    let clean = |s: String| {
        if s.contains(NUL) {
            s.replace(NUL, "\u{fffd}")
        } else {
            s
        }
    };
    match value {
        Value::String(s) => Value::String(clean(s)),
        Value::Array(items) => Value::Array(items.into_iter().map(storable).collect()),
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| (clean(k), storable(v)))
                .collect(),
        ),
        other => other,
    }
}
