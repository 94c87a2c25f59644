//! The typed message catalogue of the actors.

use std::time::Duration;

use actix::Message;

/// Liveness probe: every supervised actor answers it; `/ready` sends it with a timeout. An actor
/// that runs but cannot do its work (e.g. the bot cannot reach Telegram) answers why.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "Result<(), String>")]
pub struct Ping;

/// Something was enqueued (NOTIFY or a local enqueue): look for due jobs now.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "()")]
pub struct WakeUp;

/// Graceful shutdown of the job runner: claim nothing more, wait up to `timeout` for the running
/// jobs, then put back the ones still running. Answers how many were put back.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "usize")]
pub struct Drain {
    pub timeout: Duration,
}

/// Graceful shutdown of the scheduler: no more ticks.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "()")]
pub struct StopScheduling;

/// A per-user panel operation of the MarzbanSyncer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PanelOp {
    /// Make the panel user match the subscription (create it if missing).
    Provision,
    /// Disable the subscription, then provision.
    Disable,
    /// Enable the subscription (active, or expired if its time is up), then provision.
    Enable,
    /// Reset the user's traffic counter on the panel.
    ResetTraffic,
    /// New credentials and subscription link; the old link stops working.
    RevokeSubscription,
    /// Remove the user from the panel; the shop keeps the records.
    Delete,
}

/// Runs `op` for a user; the answer is the job's outcome.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "Result<(), crate::actors::job_runner::JobError>")]
pub struct RunPanelOp {
    pub user_id: crate::domain::UserId,
    pub op: PanelOp,
}

/// The scheduled panel syncs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SyncKind {
    /// Expiry, data limit and status on the panel made to match the database.
    Subscriptions,
    /// Panel status, last online time and traffic of every shop user into the database.
    Status,
    /// Traffic of active users into the database; 80 % / 100 % warnings.
    Traffic,
    /// The panel's system stats.
    Stats,
    /// Long-expired users disabled or deleted on the panel.
    Cleanup,
}

/// Runs the `paid_unprovisioned` check now; answers how many paying users lack the access they
/// paid for on the panel.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "Result<i64, crate::actors::job_runner::JobError>")]
pub struct CheckPaidAccess;

/// Probes the panel now (`probe_panel`); answers whether it answered.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "Result<bool, crate::actors::job_runner::JobError>")]
pub struct ProbePanel;

/// Runs a sync now. `None` when a run of that kind is already in progress (runs never overlap).
#[derive(Debug, Clone, Copy, Message)]
#[rtype(
    result = "Result<Option<crate::db::sync::SyncCounts>, crate::actors::job_runner::JobError>"
)]
pub struct RunSync {
    pub kind: SyncKind,
}
