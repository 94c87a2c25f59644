//! MarzbanSyncer: provisioning and the scheduled syncs with the panel (Marzban or another, through
//! the panel interface `clients::panel::Panel`).
//!
//! The database says what each user has paid for; this actor makes the panel match it. It drains
//! `provision` and `panel_*` jobs (through [`PanelJobs`], registered with the job runner) and runs
//! the scheduled syncs; every panel write uses absolute values, so a retried job can never add
//! time twice, and runs under the user's panel-write lock (`db::panel_lock`) with the
//! subscription read after taking it, so writes of one user never overtake each other with
//! stale values. Per-user work lives in `provision`, the syncs in `sync`.

mod check;
mod health;
pub mod migrate;
mod provision;
mod sync;

pub use check::PAID_UNPROVISIONED;
pub use health::PROBE_PANEL;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use actix::fut::wrap_future;
use actix::{
    Actor, ActorFutureExt, Context, Handler, ResponseActFuture, ResponseFuture, Supervised,
};
use futures_util::future::LocalBoxFuture;
use serde::{Deserialize, Serialize};

use crate::actors::job_runner::{JobError, JobHandler, JobHandlers};
use crate::actors::messages::{
    CheckPaidAccess, PanelOp, Ping, ProbePanel, RunPanelOp, RunSync, SyncKind,
};
use crate::actors::scheduler::TaskSpec;
use crate::actors::supervisor::{ActorHandle, ActorRegistry};
use crate::clients::panel::{Panel, PanelError};
use crate::config::PanelSettings;
use crate::db::PgPool;
use crate::db::models::Job;
use crate::domain::UserId;
use crate::metrics::Metrics;

/// Job kinds of per-user panel operations (payload [`UserJob`]).
pub const PROVISION: &str = "provision";
pub const PANEL_DISABLE: &str = "panel_disable";
pub const PANEL_ENABLE: &str = "panel_enable";
pub const PANEL_RESET_TRAFFIC: &str = "panel_reset_traffic";
pub const PANEL_REVOKE_SUB: &str = "panel_revoke_sub";
pub const PANEL_DELETE: &str = "panel_delete";

const USER_OPS: [(&str, PanelOp); 6] = [
    (PROVISION, PanelOp::Provision),
    (PANEL_DISABLE, PanelOp::Disable),
    (PANEL_ENABLE, PanelOp::Enable),
    (PANEL_RESET_TRAFFIC, PanelOp::ResetTraffic),
    (PANEL_REVOKE_SUB, PanelOp::RevokeSubscription),
    (PANEL_DELETE, PanelOp::Delete),
];

impl SyncKind {
    pub const ALL: [SyncKind; 5] = [
        SyncKind::Subscriptions,
        SyncKind::Status,
        SyncKind::Traffic,
        SyncKind::Stats,
        SyncKind::Cleanup,
    ];

    /// The job kind and scheduled task name.
    pub const fn job_kind(self) -> &'static str {
        match self {
            SyncKind::Subscriptions => "panel_sync_subscriptions",
            SyncKind::Status => "panel_sync_status",
            SyncKind::Traffic => "panel_sync_traffic",
            SyncKind::Stats => "panel_stats",
            SyncKind::Cleanup => "panel_cleanup",
        }
    }

    /// The `kind` of its `sync_runs` rows and metric labels.
    pub const fn as_str(self) -> &'static str {
        match self {
            SyncKind::Subscriptions => "subscriptions",
            SyncKind::Status => "status",
            SyncKind::Traffic => "traffic",
            SyncKind::Stats => "stats",
            SyncKind::Cleanup => "cleanup",
        }
    }

    fn interval(self, settings: &PanelSettings) -> Duration {
        match self {
            SyncKind::Subscriptions => settings.sync_subscriptions_interval,
            SyncKind::Status => settings.sync_status_interval,
            SyncKind::Traffic => settings.sync_traffic_interval,
            SyncKind::Stats => settings.stats_interval,
            SyncKind::Cleanup => settings.cleanup_interval,
        }
    }
}

/// Payload of the per-user panel jobs.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct UserJob {
    pub user_id: UserId,
}

/// The job that makes a user's panel account match the database (status, expiry, limits).
/// One pending per user: a change made while one waits is picked up when it runs, so changes
/// in quick succession (ban, unban, extend) cannot be applied in the wrong order.
pub fn provision_job(user_id: UserId) -> crate::db::jobs::NewJob {
    crate::db::jobs::NewJob::new(PROVISION, UserJob { user_id })
        .dedup_key(format!("provision:{user_id}"))
}

/// What the per-user operations and the syncs share.
pub(crate) struct Shared {
    pool: PgPool,
    panel: Panel,
    settings: PanelSettings,
    metrics: Arc<Metrics>,
    /// Attempts of the jobs this actor enqueues (notifications).
    max_attempts: i32,
    /// `ALERT_PANEL_DOWN_AFTER`.
    panel_down_after: Duration,
}

pub struct MarzbanSyncer {
    shared: Arc<Shared>,
    running: HashSet<SyncKind>,
}

impl MarzbanSyncer {
    /// A factory of syncers for the supervisor: every instance (a restarted one too) shares the
    /// panel adapter and its cached panel token.
    pub fn factory(
        pool: PgPool,
        settings: PanelSettings,
        metrics: Arc<Metrics>,
        max_attempts: i32,
        panel_down_after: Duration,
    ) -> anyhow::Result<impl Fn() -> MarzbanSyncer + Send + Sync + 'static> {
        let panel = Panel::new(&settings, Arc::clone(&metrics))?;
        let shared = Arc::new(Shared {
            pool,
            panel,
            settings,
            metrics,
            max_attempts,
            panel_down_after,
        });
        Ok(move || MarzbanSyncer {
            shared: Arc::clone(&shared),
            running: HashSet::new(),
        })
    }

    /// The periodic tasks of the syncs, of the `paid_unprovisioned` check and of the panel's
    /// health probe (every `health_interval`), with their configured intervals.
    pub fn tasks(settings: &PanelSettings, health_interval: Duration) -> Vec<TaskSpec> {
        SyncKind::ALL
            .iter()
            .map(|kind| TaskSpec::new(kind.job_kind(), kind.interval(settings)))
            .chain([
                TaskSpec::new(PAID_UNPROVISIONED, settings.paid_unprovisioned_interval),
                TaskSpec::new(PROBE_PANEL, health_interval),
            ])
            .collect()
    }
}

/// Maps a panel failure to a job outcome: what a retry may fix is retried, the rest is dead
/// at once (an admin looks at it).
pub(crate) fn job_error(context: &str, error: PanelError) -> JobError {
    let message = format!("{context}: {error}");
    match error {
        PanelError::Validation { .. }
        | PanelError::BadRequest(_)
        | PanelError::Forbidden(_)
        | PanelError::Unsupported { .. }
        | PanelError::Incompatible(_) => JobError::permanent(message),
        _ => JobError::retryable(message),
    }
}

impl Actor for MarzbanSyncer {
    type Context = Context<Self>;

    fn started(&mut self, _: &mut Context<Self>) {
        tracing::info!(
            panel = %self.shared.panel.url(),
            kind = self.shared.panel.kind().as_str(),
            "panel syncer started"
        );
    }
}

impl Supervised for MarzbanSyncer {
    fn restarting(&mut self, _: &mut Context<Self>) {
        self.running.clear();
        ActorRegistry::count_restart(&self.shared.metrics, "marzban");
    }
}

impl Handler<Ping> for MarzbanSyncer {
    type Result = Result<(), String>;
    fn handle(&mut self, _: Ping, _: &mut Context<Self>) -> Self::Result {
        Ok(())
    }
}

impl Handler<RunPanelOp> for MarzbanSyncer {
    type Result = ResponseFuture<Result<(), JobError>>;

    fn handle(&mut self, msg: RunPanelOp, _: &mut Context<Self>) -> Self::Result {
        let shared = Arc::clone(&self.shared);
        Box::pin(async move { shared.apply(msg.user_id, msg.op).await })
    }
}

impl Handler<CheckPaidAccess> for MarzbanSyncer {
    type Result = ResponseFuture<Result<i64, JobError>>;

    fn handle(&mut self, _: CheckPaidAccess, _: &mut Context<Self>) -> Self::Result {
        let shared = Arc::clone(&self.shared);
        Box::pin(async move { shared.check_paid_access().await })
    }
}

impl Handler<ProbePanel> for MarzbanSyncer {
    type Result = ResponseFuture<Result<bool, JobError>>;

    fn handle(&mut self, _: ProbePanel, _: &mut Context<Self>) -> Self::Result {
        let shared = Arc::clone(&self.shared);
        Box::pin(async move { shared.probe_panel().await })
    }
}

impl Handler<RunSync> for MarzbanSyncer {
    type Result = ResponseActFuture<Self, Result<Option<crate::db::sync::SyncCounts>, JobError>>;

    fn handle(&mut self, msg: RunSync, _: &mut Context<Self>) -> Self::Result {
        if !self.running.insert(msg.kind) {
            tracing::info!(
                kind = msg.kind.as_str(),
                "sync already running; this run is skipped"
            );
            self.shared
                .metrics
                .sync_runs
                .with_label_values(&[msg.kind.as_str(), "skipped"])
                .inc();
            return Box::pin(actix::fut::ready(Ok(None)));
        }
        let shared = Arc::clone(&self.shared);
        let kind = msg.kind;
        Box::pin(
            wrap_future::<_, Self>(async move { shared.run_sync(kind).await }).map(
                move |result, act, _| {
                    act.running.remove(&kind);
                    result.map(Some)
                },
            ),
        )
    }
}

/// The job handler of every `provision`, `panel_*` and sync job: hands the job to the actor.
#[derive(Clone)]
pub struct PanelJobs {
    syncer: ActorHandle<MarzbanSyncer>,
}

impl PanelJobs {
    /// Registers every panel job kind: per-user operations limited to `PANEL_WRITE_CONCURRENCY`
    /// at a time, each sync and the `paid_unprovisioned` check to one at a time.
    pub fn register(handlers: &mut JobHandlers, syncer: ActorHandle<MarzbanSyncer>, writes: usize) {
        let jobs = PanelJobs { syncer };
        for (kind, _) in USER_OPS {
            handlers.register(kind, jobs.clone(), Some(writes));
        }
        for kind in SyncKind::ALL {
            handlers.register(kind.job_kind(), jobs.clone(), Some(1));
        }
        handlers.register(PAID_UNPROVISIONED, jobs.clone(), Some(1));
        handlers.register(PROBE_PANEL, jobs.clone(), Some(1));
    }
}

impl JobHandler for PanelJobs {
    fn run(&self, job: Job) -> LocalBoxFuture<'static, Result<(), JobError>> {
        let addr = self.syncer.addr();
        Box::pin(async move {
            if let Some((_, op)) = USER_OPS.iter().find(|(kind, _)| *kind == job.kind) {
                let payload: UserJob = serde_json::from_value(job.payload)
                    .map_err(|e| JobError::permanent(format!("bad payload: {e}")))?;
                return addr
                    .send(RunPanelOp {
                        user_id: payload.user_id,
                        op: *op,
                    })
                    .await
                    .map_err(|e| JobError::retryable(format!("panel syncer unavailable: {e}")))?;
            }
            if job.kind == PROBE_PANEL {
                return addr
                    .send(ProbePanel)
                    .await
                    .map_err(|e| JobError::retryable(format!("panel syncer unavailable: {e}")))?
                    .map(drop);
            }
            if job.kind == PAID_UNPROVISIONED {
                return addr
                    .send(CheckPaidAccess)
                    .await
                    .map_err(|e| JobError::retryable(format!("panel syncer unavailable: {e}")))?
                    .map(drop);
            }
            let kind = SyncKind::ALL
                .into_iter()
                .find(|k| k.job_kind() == job.kind)
                .ok_or_else(|| JobError::permanent(format!("not a panel job: {}", job.kind)))?;
            addr.send(RunSync { kind })
                .await
                .map_err(|e| JobError::retryable(format!("panel syncer unavailable: {e}")))?
                .map(|_| ())
        })
    }
}
