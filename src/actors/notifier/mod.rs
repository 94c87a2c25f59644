//! Notifier: delivers `notify` jobs on Telegram and by email, runs admin broadcasts, and the
//! `notifications_scan` task that finds who must be warned before losing access.
//!
//! Every delivery is a row of `notifications` (one per notification per channel, sent at most
//! once); Telegram messages of all replicas share one rate budget in the database.

mod alerts;
mod broadcast;
mod deliver;
mod email;
mod scan;
mod support;
mod telegram;

use std::sync::Arc;

use actix::{Actor, Context, Handler, Message, ResponseFuture, Supervised};
use futures_util::future::LocalBoxFuture;

pub use alerts::ALERT_KIND;
pub use email::{MailError, Mailer};
pub use scan::ScanReport;
pub use support::{SUPPORT_KIND, SupportTarget};
pub use telegram::{MessageButton, Priority, SendError, TelegramSender};

use crate::actors::job_runner::{JobError, JobHandler, JobHandlers};
use crate::actors::messages::Ping;
use crate::actors::scheduler::TaskSpec;
use crate::actors::supervisor::{ActorHandle, ActorRegistry};
use crate::config::{AlertSettings, JobSettings, NotificationSettings};
use crate::db::PgPool;
use crate::db::broadcasts::{BROADCAST_JOB, BroadcastJob};
use crate::db::models::Job;
use crate::domain::BroadcastId;
use crate::domain::alerts::{ALERT_JOB, AlertJob};
use crate::domain::notifications::{KINDS, NOTIFY_JOB, NotifyJob};
use crate::domain::support::{SUPPORT_JOB, SupportJob};
use crate::metrics::Metrics;

/// Job kind and task name of the scan.
pub const SCAN_JOB: &str = "notifications_scan";

pub(crate) struct Shared {
    pool: PgPool,
    telegram: Option<Arc<TelegramSender>>,
    mailer: Option<Mailer>,
    settings: NotificationSettings,
    /// Who gets the admin alerts, and in which language.
    alerts: AlertSettings,
    metrics: Arc<Metrics>,
    /// Attempts of the jobs it enqueues; the lease after which a claimed delivery is stale.
    jobs: JobSettings,
    /// A panel issues links: notifications that carry one wait a little for it.
    waits_for_links: bool,
    /// Where support conversations are passed on.
    support: SupportTarget,
}

pub struct Notifier {
    shared: Arc<Shared>,
}

impl Notifier {
    /// A factory of notifiers for the supervisor (instances share the senders; the Telegram one
    /// is the bot's too). Says once which channels are off and why.
    // Each dependency by value for the one call site (app.rs); a struct for it would only move
    // the list.
    #[allow(clippy::too_many_arguments)]
    pub fn factory(
        pool: PgPool,
        telegram: Option<Arc<TelegramSender>>,
        settings: NotificationSettings,
        alerts: AlertSettings,
        metrics: Arc<Metrics>,
        jobs: JobSettings,
        waits_for_links: bool,
        support: SupportTarget,
    ) -> anyhow::Result<impl Fn() -> Notifier + Send + Sync + 'static> {
        let telegram = match telegram {
            Some(sender) => Some(sender),
            None => {
                tracing::warn!(
                    "TELEGRAM_BOT_TOKEN is not set: Telegram notifications and broadcasts are off"
                );
                None
            }
        };
        let mailer = match &settings.smtp {
            Some(smtp) => Some(Mailer::new(smtp, Arc::clone(&metrics))?),
            None => {
                tracing::warn!(
                    "SMTP_URL is not set: email notifications are off (set SMTP_URL and SMTP_FROM)"
                );
                None
            }
        };
        if !alerts.emails.is_empty() && mailer.is_none() {
            tracing::warn!("ADMIN_EMAILS is set but SMTP_URL is not: alerts go only to Telegram");
        }
        if !alerts.has_recipients() {
            tracing::warn!(
                "neither ADMIN_TELEGRAM_IDS nor ADMIN_EMAILS is set: admin alerts are only recorded \
                 (GET /api/v1/alerts)"
            );
        }
        for kind in KINDS.into_iter().chain([ALERT_KIND, SUPPORT_KIND]) {
            for channel in ["telegram", "email"] {
                for outcome in ["sent", "failed", "skipped"] {
                    metrics
                        .notifications
                        .with_label_values(&[kind, channel, outcome]);
                }
            }
        }
        for outcome in ["sent", "failed", "blocked"] {
            metrics.broadcast_messages.with_label_values(&[outcome]);
        }
        let shared = Arc::new(Shared {
            pool,
            telegram,
            mailer,
            settings,
            alerts,
            metrics,
            jobs,
            waits_for_links,
            support,
        });
        Ok(move || Notifier {
            shared: Arc::clone(&shared),
        })
    }

    /// The scan task with its configured interval.
    pub fn tasks(settings: &NotificationSettings) -> Vec<TaskSpec> {
        vec![TaskSpec::new(SCAN_JOB, settings.scan_interval)]
    }
}

impl Actor for Notifier {
    type Context = Context<Self>;
}

impl Supervised for Notifier {
    fn restarting(&mut self, _: &mut Context<Self>) {
        ActorRegistry::count_restart(&self.shared.metrics, "notifier");
    }
}

impl Handler<Ping> for Notifier {
    type Result = Result<(), String>;
    fn handle(&mut self, _: Ping, _: &mut Context<Self>) -> Self::Result {
        Ok(())
    }
}

/// Deliver one `notify` job (`attempt` counts from 1).
#[derive(Debug, Message)]
#[rtype(result = "Result<(), JobError>")]
pub struct Deliver {
    pub job: NotifyJob,
    pub attempt: i32,
}

/// Run (a slice of) a broadcast.
#[derive(Debug, Message)]
#[rtype(result = "Result<(), JobError>")]
pub struct DeliverBroadcast(pub BroadcastId);

/// Tell the admins of an alert (raised or ended).
#[derive(Debug, Message)]
#[rtype(result = "Result<(), JobError>")]
pub struct DeliverAlert(pub AlertJob);

/// Deliver a support message (to the team or to the subscriber).
#[derive(Debug, Message)]
#[rtype(result = "Result<(), JobError>")]
pub struct DeliverSupport(pub SupportJob);

/// Find who must be warned now.
#[derive(Debug, Message)]
#[rtype(result = "Result<ScanReport, JobError>")]
pub struct Scan;

impl Handler<Deliver> for Notifier {
    type Result = ResponseFuture<Result<(), JobError>>;
    fn handle(&mut self, msg: Deliver, _: &mut Context<Self>) -> Self::Result {
        let shared = Arc::clone(&self.shared);
        Box::pin(async move { shared.deliver(msg.job, msg.attempt).await })
    }
}

impl Handler<DeliverBroadcast> for Notifier {
    type Result = ResponseFuture<Result<(), JobError>>;
    fn handle(&mut self, msg: DeliverBroadcast, _: &mut Context<Self>) -> Self::Result {
        let shared = Arc::clone(&self.shared);
        Box::pin(async move { shared.deliver_broadcast(msg.0).await })
    }
}

impl Handler<DeliverAlert> for Notifier {
    type Result = ResponseFuture<Result<(), JobError>>;
    fn handle(&mut self, msg: DeliverAlert, _: &mut Context<Self>) -> Self::Result {
        let shared = Arc::clone(&self.shared);
        Box::pin(async move { shared.deliver_alert(msg.0).await })
    }
}

impl Handler<DeliverSupport> for Notifier {
    type Result = ResponseFuture<Result<(), JobError>>;
    fn handle(&mut self, msg: DeliverSupport, _: &mut Context<Self>) -> Self::Result {
        let shared = Arc::clone(&self.shared);
        Box::pin(async move { shared.deliver_support(msg.0).await })
    }
}

impl Handler<Scan> for Notifier {
    type Result = ResponseFuture<Result<ScanReport, JobError>>;
    fn handle(&mut self, _: Scan, _: &mut Context<Self>) -> Self::Result {
        let shared = Arc::clone(&self.shared);
        Box::pin(async move { shared.scan().await })
    }
}

/// The job handler of `notify`, `alert_deliver`, `support_deliver`, `broadcast_deliver` and
/// `notifications_scan` jobs.
#[derive(Clone)]
pub struct NotifierJobs {
    notifier: ActorHandle<Notifier>,
}

impl NotifierJobs {
    pub fn register(handlers: &mut JobHandlers, notifier: ActorHandle<Notifier>) {
        let jobs = NotifierJobs { notifier };
        handlers.register(NOTIFY_JOB, jobs.clone(), None);
        handlers.register(ALERT_JOB, jobs.clone(), None);
        handlers.register(SUPPORT_JOB, jobs.clone(), None);
        // One broadcast slice at a time per replica: the budget is shared anyway.
        handlers.register(BROADCAST_JOB, jobs.clone(), Some(1));
        handlers.register(SCAN_JOB, jobs, Some(1));
    }
}

impl JobHandler for NotifierJobs {
    fn run(&self, job: Job) -> LocalBoxFuture<'static, Result<(), JobError>> {
        let addr = self.notifier.addr();
        Box::pin(async move {
            let unavailable =
                |e: actix::MailboxError| JobError::retryable(format!("notifier unavailable: {e}"));
            let bad_payload =
                |e: serde_json::Error| JobError::permanent(format!("bad payload: {e}"));
            match job.kind.as_str() {
                NOTIFY_JOB => {
                    let payload: NotifyJob =
                        serde_json::from_value(job.payload).map_err(bad_payload)?;
                    addr.send(Deliver {
                        job: payload,
                        attempt: job.attempts,
                    })
                    .await
                    .map_err(unavailable)?
                }
                ALERT_JOB => {
                    let payload: AlertJob =
                        serde_json::from_value(job.payload).map_err(bad_payload)?;
                    addr.send(DeliverAlert(payload))
                        .await
                        .map_err(unavailable)?
                }
                SUPPORT_JOB => {
                    let payload: SupportJob =
                        serde_json::from_value(job.payload).map_err(bad_payload)?;
                    addr.send(DeliverSupport(payload))
                        .await
                        .map_err(unavailable)?
                }
                BROADCAST_JOB => {
                    let payload: BroadcastJob =
                        serde_json::from_value(job.payload).map_err(bad_payload)?;
                    addr.send(DeliverBroadcast(payload.broadcast_id))
                        .await
                        .map_err(unavailable)?
                }
                SCAN_JOB => addr.send(Scan).await.map_err(unavailable)?.map(|_| ()),
                other => Err(JobError::permanent(format!("not a notifier job: {other}"))),
            }
        })
    }
}
