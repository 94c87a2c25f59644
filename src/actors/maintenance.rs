//! The `maintenance` job: keeps the bookkeeping tables small. Scheduled by the `maintenance`
//! task every `MAINTENANCE_INTERVAL`.

use std::time::Duration;

use futures_util::future::LocalBoxFuture;

use crate::actors::job_runner::{JobError, JobHandler};
use crate::db::models::Job;
use crate::db::{PgPool, admins, jobs, rate, telegram};

/// Job kind (and scheduled task name).
pub const MAINTENANCE: &str = "maintenance";

/// How long handled Telegram update ids are remembered (Telegram redelivers for ~24 h).
const TELEGRAM_UPDATE_RETENTION: Duration = Duration::from_secs(3 * 86_400);

pub struct Maintenance {
    pub pool: PgPool,
    /// Finished jobs older than this are deleted.
    pub job_retention: Duration,
}

impl JobHandler for Maintenance {
    fn run(&self, _job: Job) -> LocalBoxFuture<'static, Result<(), JobError>> {
        let pool = self.pool.clone();
        let retention = self.job_retention;
        Box::pin(async move {
            let mut conn = pool.get().await?;
            let jobs_pruned = jobs::prune_done(&mut conn, retention).await?;
            let auth_pruned = admins::prune_auth_state(&mut conn).await?;
            let updates_pruned =
                telegram::prune_updates(&mut conn, TELEGRAM_UPDATE_RETENTION).await?;
            let budgets_pruned = rate::prune(&mut conn).await?;
            tracing::info!(
                jobs_pruned,
                auth_pruned,
                updates_pruned,
                budgets_pruned,
                "maintenance done"
            );
            Ok(())
        })
    }
}
