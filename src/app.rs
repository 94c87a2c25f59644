//! Builds the running program: the database (a configured server or the embedded cluster), the
//! supervision tree, the HTTP server; and takes it down gracefully.

use std::net::SocketAddr;
use std::sync::Arc;

use actix_web::web::Data;
use anyhow::Context as _;

use crate::actors::alerts::{ALERTS_CHECK, AlertChecks};
use crate::actors::bot::{BotActor, BotInbox, BotParts};
use crate::actors::job_runner::{JobHandlers, JobRunner};
use crate::actors::maintenance::{
    BACKUP, BackupRecipients, MAINTENANCE, Maintenance, ScheduledBackup,
};
use crate::actors::marzban::{MarzbanSyncer, PanelJobs};
use crate::actors::messages::{Drain, StopScheduling, SyncKind};
use crate::actors::notifier::{Notifier, NotifierJobs, SupportTarget, TelegramSender};
use crate::actors::payments::{PaymentClients, PaymentJobs, PaymentProcessor};
use crate::actors::scheduler::{Scheduler, TaskSpec};
use crate::actors::supervisor::{ActorHandle, ActorRegistry};
use crate::clients::panel::{Panel, PanelError};
use crate::config::TelegramMode;
use crate::config::{PanelSettings, Settings};
use crate::db::embedded::{ClusterLocation, EmbeddedPostgres};
use crate::db::{self, PgPool};
use crate::metrics::Metrics;
use crate::web::{self, WebState, auth::JwtKeys};

/// The database the program uses, and the embedded cluster when it owns one.
pub struct Database {
    pub url: String,
    /// Where the embedded cluster lives (`None` with `DATABASE_URL`).
    pub cluster: Option<ClusterLocation>,
    embedded: Option<EmbeddedPostgres>,
}

impl Database {
    /// `DATABASE_URL` if set, otherwise the embedded cluster of the data directory (in
    /// `DATA_DIR/postgres`, or as root possibly under `EMBEDDED_POSTGRES_FALLBACK_DIR`; initialised
    /// on first use, started now, stopped by [`Database::close`]). With `share_running`, an
    /// embedded cluster that a running `serve` already owns is used as it is (one-off commands).
    pub async fn open(settings: &Settings, share_running: bool) -> anyhow::Result<Database> {
        if let Some(url) = &settings.database_url {
            return Ok(Database {
                url: url.expose().to_owned(),
                cluster: None,
                embedded: None,
            });
        }
        let location = EmbeddedPostgres::locate(
            &settings.data_dir,
            &settings.embedded_postgres_fallback_dir,
        )
        .await
        .context(
            "finding the embedded PostgreSQL cluster (set DATABASE_URL to use an existing server)",
        )?;
        let cluster_dir = &location.dir;
        if let Some(moved) = &location.moved {
            tracing::info!(
                dir = %cluster_dir.display(),
                data_dir = %moved.data_dir.display(),
                reason = %moved.reason,
                "the embedded PostgreSQL cluster lives outside DATA_DIR"
            );
        }
        if share_running
            && let Some(url) = EmbeddedPostgres::url_if_running(cluster_dir, "vpn_shop")
        {
            tracing::info!(dir = %cluster_dir.display(), "using the embedded PostgreSQL of the running server");
            return Ok(Database {
                url,
                cluster: Some(location),
                embedded: None,
            });
        }
        tracing::info!(
            dir = %cluster_dir.display(),
            "DATABASE_URL is not set: using the embedded PostgreSQL"
        );
        let embedded = EmbeddedPostgres::start(cluster_dir, "vpn_shop")
            .await
            .context(
                "starting the embedded PostgreSQL (set DATABASE_URL to use an existing server)",
            )?;
        Ok(Database {
            url: embedded.database_url(),
            cluster: Some(location),
            embedded: Some(embedded),
        })
    }

    /// Stops the embedded cluster, if any.
    pub async fn close(self) {
        if let Some(pg) = self.embedded
            && let Err(e) = pg.stop().await
        {
            tracing::error!(error = %format!("{e:#}"), "stopping the embedded PostgreSQL failed");
        }
    }
}

/// The started program.
pub struct RunningApp {
    pub pool: PgPool,
    pub metrics: Arc<Metrics>,
    pub actors: Arc<ActorRegistry>,
    pub job_runner: ActorHandle<JobRunner>,
    pub scheduler: ActorHandle<Scheduler>,
    /// `None` without a panel URL (`MARZBAN_URL`, `PASARGUARD_URL` or `REMNAWAVE_URL`).
    pub marzban: Option<ActorHandle<MarzbanSyncer>>,
    pub notifier: ActorHandle<Notifier>,
    pub payments: ActorHandle<PaymentProcessor>,
    /// `None` without `TELEGRAM_BOT_TOKEN`.
    pub bot: Option<ActorHandle<BotActor>>,
    server: web::RunningServer,
    watchdog: actix_rt::task::JoinHandle<()>,
    settings: Settings,
}

/// Reads the panel's version where the adapter depends on it (Remnawave 2.8 or 3.x) and refuses
/// to start on one it cannot speak. A panel that cannot be reached now does not stop the shop:
/// the adapter reads the version again before its first call.
async fn check_panel_version(panel: &PanelSettings, metrics: &Arc<Metrics>) -> anyhow::Result<()> {
    let adapter = Panel::new(panel, Arc::clone(metrics))?;
    match adapter.check_version().await {
        Ok(Some(version)) => {
            tracing::info!(kind = adapter.kind().as_str(), %version, "panel version supported");
            Ok(())
        }
        Ok(None) => Ok(()),
        Err(PanelError::Incompatible(why)) => anyhow::bail!("{why}"),
        Err(e) => {
            tracing::warn!(
                kind = adapter.kind().as_str(),
                error = %e,
                "could not read the panel's version at start; it is read again before the first panel call"
            );
            Ok(())
        }
    }
}

/// Migrates the database, starts the actors under supervision and the HTTP server. Must run
/// inside an actix System.
pub async fn start(settings: &Settings, database_url: &str) -> anyhow::Result<RunningApp> {
    let started = std::time::Instant::now();
    let applied = db::run_migrations(database_url).await?;
    if !applied.is_empty() {
        tracing::info!(migrations = ?applied, "database migrated");
    }
    let pool = db::build_pool(
        database_url,
        settings.database_pool_size,
        settings.database_connect_timeout,
    )?;
    let metrics = Arc::new(Metrics::new().context("registering metrics")?);
    metrics
        .support_sla
        .set(settings.bot.support_sla.as_secs() as i64);
    let jwt = JwtKeys::new(&web::auth::resolve_jwt_secret(settings)?, settings.jwt_ttl);
    let actors = ActorRegistry::new(Arc::clone(&metrics));

    let mut handlers = JobHandlers::new();
    handlers.register(
        MAINTENANCE,
        Maintenance {
            pool: pool.clone(),
            job_retention: settings.jobs.retention,
            payment_event_retention: settings.payments.events_retention,
        },
        Some(1),
    );
    handlers.register(
        ALERTS_CHECK,
        AlertChecks {
            pool: pool.clone(),
            settings: settings.alerts.clone(),
            offset: settings.notifications.display_offset,
            max_attempts: settings.jobs.max_attempts,
            sync_kinds: if settings.panel.is_some() {
                SyncKind::ALL.iter().map(|k| k.as_str()).collect()
            } else {
                Vec::new()
            },
        },
        Some(1),
    );
    let mut tasks = vec![
        TaskSpec::new(MAINTENANCE, settings.scheduler.maintenance_interval),
        TaskSpec::new(ALERTS_CHECK, settings.alerts.check_interval),
    ];
    if let Some(interval) = settings.scheduler.backup_interval {
        handlers.register(
            BACKUP,
            ScheduledBackup {
                pool: pool.clone(),
                max_attempts: settings.jobs.max_attempts,
                database_url: database_url.to_owned(),
                dir: settings.data_dir.join("backups"),
                keep: settings.scheduler.backup_keep,
                telegram: backup_recipients(settings)?,
            },
            Some(1),
        );
        tasks.push(TaskSpec::new(BACKUP, interval));
    }
    let marzban_syncer = match &settings.panel {
        Some(panel) => {
            check_panel_version(panel, &metrics).await?;
            let factory = MarzbanSyncer::factory(
                pool.clone(),
                panel.clone(),
                Arc::clone(&metrics),
                settings.jobs.max_attempts,
                settings.alerts.panel_down_after,
            )?;
            let syncer = actors.supervise("marzban", factory);
            PanelJobs::register(&mut handlers, syncer.clone(), panel.write_concurrency);
            tasks.extend(MarzbanSyncer::tasks(panel, settings.alerts.check_interval));
            Some(syncer)
        }
        None => {
            tracing::warn!(
                "the panel's URL is not set (MARZBAN_URL, or PASARGUARD_URL / REMNAWAVE_URL with PANEL_KIND): \
                 panel provisioning and syncs are off (provision jobs wait in the queue)"
            );
            None
        }
    };
    // One Telegram sender for the notifier and the bot: every message under the same budgets.
    let telegram_sender = settings
        .telegram
        .as_ref()
        .map(|t| {
            TelegramSender::new(
                t,
                settings.notifications.broadcast_rate,
                pool.clone(),
                Arc::clone(&metrics),
            )
            .map(Arc::new)
        })
        .transpose()
        .context("building the Telegram sender")?;
    let notifier = actors.supervise(
        "notifier",
        Notifier::factory(
            pool.clone(),
            telegram_sender.clone(),
            settings.notifications.clone(),
            settings.alerts.clone(),
            Arc::clone(&metrics),
            settings.jobs.clone(),
            settings.panel.is_some(),
            SupportTarget::new(
                settings.bot.support_chat_id,
                settings.public_base_url.clone(),
            ),
        )?,
    );
    NotifierJobs::register(&mut handlers, notifier.clone());
    tasks.extend(Notifier::tasks(&settings.notifications));

    let shared_settings = Arc::new(settings.clone());
    let payment_clients = PaymentClients::new(settings, &metrics, telegram_sender.clone())?;
    let payments = actors.supervise(
        "payments",
        PaymentProcessor::factory(
            pool.clone(),
            Arc::clone(&payment_clients),
            Arc::clone(&shared_settings),
            Arc::clone(&metrics),
        ),
    );
    PaymentJobs::register(&mut handlers, payments.clone());
    tasks.extend(PaymentProcessor::tasks(settings));
    // Webhook mode: `POST /webhooks/telegram` hands updates to the bot through this inbox.
    let bot_inbox = match (&settings.telegram, settings.bot.mode) {
        (Some(_), TelegramMode::Webhook) => Some(BotInbox::new(1024)),
        _ => None,
    };
    let bot = match (&settings.telegram, telegram_sender) {
        (Some(telegram), Some(sender)) => Some(actors.supervise(
            "bot",
            BotActor::factory(
                telegram,
                BotParts {
                    pool: pool.clone(),
                    settings: Arc::clone(&shared_settings),
                    payments: payments.clone(),
                    clients: Arc::clone(&payment_clients),
                    metrics: Arc::clone(&metrics),
                    inbox: bot_inbox.clone().unwrap_or_else(|| BotInbox::new(1)),
                    telegram: sender,
                },
            )?,
        )),
        _ => None,
    };
    let handlers = Arc::new(handlers);
    let job_kinds = handlers.kinds();

    let job_runner = {
        let (pool, url, jobs, metrics) = (
            pool.clone(),
            database_url.to_owned(),
            settings.jobs.clone(),
            Arc::clone(&metrics),
        );
        let worker_id = JobRunner::process_worker_id();
        actors.supervise("job_runner", move || {
            JobRunner::new(
                pool.clone(),
                url.clone(),
                jobs.clone(),
                Arc::clone(&handlers),
                worker_id.as_str(),
                Arc::clone(&metrics),
            )
        })
    };
    let scheduler = {
        let (pool, tick, attempts, metrics) = (
            pool.clone(),
            settings.scheduler.tick,
            settings.jobs.max_attempts,
            Arc::clone(&metrics),
        );
        actors.supervise("scheduler", move || {
            Scheduler::new(
                pool.clone(),
                tasks.clone(),
                tick,
                attempts,
                Arc::clone(&metrics),
            )
        })
    };
    let watchdog = actors.spawn_watchdog(settings.watchdog_interval);

    let state = Data::new(WebState {
        settings: shared_settings,
        payments: Some(payments.clone()),
        payment_clients: Some(payment_clients),
        marzban: marzban_syncer.clone(),
        bot_inbox,
        pool: pool.clone(),
        metrics: Arc::clone(&metrics),
        actors: Arc::clone(&actors),
        jwt,
        job_kinds,
        webhook_refusals: settings
            .api
            .webhook_refusals
            .map(|(budget, rate)| web::ratelimit::RateLimiter::new(rate, budget)),
        dashboard: Arc::default(),
        mailer: match &settings.notifications.smtp {
            Some(smtp) => Some(Arc::new(crate::actors::notifier::Mailer::new(
                smtp,
                Arc::clone(&metrics),
            )?)),
            None => None,
        },
    });
    let server = web::start(state, settings.http_bind, settings.shutdown_timeout)?;
    tracing::info!(
        addr = ?server.addrs,
        public_url = %settings.public_base_url,
        startup_ms = started.elapsed().as_millis() as u64,
        "vpn-shop started"
    );
    Ok(RunningApp {
        pool,
        metrics,
        actors,
        job_runner,
        scheduler,
        marzban: marzban_syncer,
        notifier,
        payments,
        bot,
        server,
        watchdog,
        settings: settings.clone(),
    })
}

impl RunningApp {
    /// Where the HTTP server listens (the real port when HTTP_BIND asked for port 0).
    pub fn http_addr(&self) -> SocketAddr {
        self.server.addrs[0]
    }

    /// Graceful shutdown: stop accepting connections and let running requests finish, stop
    /// scheduling, let running jobs finish (bounded by SHUTDOWN_TIMEOUT; the rest go back to
    /// the queue), then stop the actors.
    pub async fn shutdown(self) {
        tracing::info!("shutting down");
        self.server.handle.stop(true).await;
        let _ = self.server.task.await;
        if let Some(bot) = &self.bot {
            let stop = bot.addr().send(crate::actors::bot::StopBot);
            if tokio::time::timeout(self.settings.shutdown_timeout, stop)
                .await
                .is_err()
            {
                tracing::warn!("the Telegram bot did not stop in time");
            }
        }
        let _ = self.scheduler.addr().send(StopScheduling).await;
        self.watchdog.abort();
        let timeout = self.settings.shutdown_timeout;
        match self.job_runner.addr().send(Drain { timeout }).await {
            Ok(0) => {}
            Ok(n) => tracing::warn!(jobs = n, "unfinished jobs were put back in the queue"),
            Err(e) => tracing::warn!(error = %e, "job runner did not answer the drain request"),
        }
        self.pool.close();
        tracing::info!("stopped");
    }
}

/// With `BACKUP_TELEGRAM`, the admins who get each scheduled backup (the settings guarantee a
/// bot token and admins). Sending may take a third of a job's lease, at most 5 minutes, so the
/// backup job always ends well within its lease.
fn backup_recipients(settings: &Settings) -> anyhow::Result<Option<Arc<BackupRecipients>>> {
    let Some(telegram) = settings
        .telegram
        .as_ref()
        .filter(|_| settings.scheduler.backup_telegram)
    else {
        return Ok(None);
    };
    let budget = (settings.jobs.lease / 3).min(std::time::Duration::from_secs(300));
    let recipients = BackupRecipients::new(telegram, settings.bot.admin_ids.clone(), budget)
        .context("building the Telegram client for backups")?;
    Ok(Some(Arc::new(recipients)))
}

/// Resolves when the process gets SIGINT or SIGTERM.
pub async fn shutdown_signal() -> anyhow::Result<&'static str> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    Ok(tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    })
}
