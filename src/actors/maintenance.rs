//! The `maintenance` job: keeps the bookkeeping tables small. Scheduled by the `maintenance`
//! task every `MAINTENANCE_INTERVAL`. And the `backup` job (`BACKUP_INTERVAL`): a backup in
//! `DATA_DIR/backups`, the oldest beyond `BACKUP_KEEP` deleted.

use std::path::{Path, PathBuf};
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

/// Job kind (and scheduled task name) of scheduled backups.
pub const BACKUP: &str = "backup";

pub struct ScheduledBackup {
    pub database_url: String,
    /// `DATA_DIR/backups`.
    pub dir: PathBuf,
    pub keep: usize,
}

impl JobHandler for ScheduledBackup {
    fn run(&self, _job: Job) -> LocalBoxFuture<'static, Result<(), JobError>> {
        let (url, dir, keep) = (self.database_url.clone(), self.dir.clone(), self.keep);
        Box::pin(async move {
            let file = dir.join(
                crate::db::backup::default_path(Path::new(""))
                    .file_name()
                    .unwrap_or_default(),
            );
            let bytes = crate::db::backup::backup(&url, &file)
                .await
                .map_err(|e| JobError::retryable(format!("{e:#}")))?;
            let deleted = prune_backups(&dir, keep)
                .map_err(|e| JobError::retryable(format!("pruning old backups: {e}")))?;
            tracing::info!(file = %file.display(), bytes, deleted, "backup written");
            Ok(())
        })
    }
}

/// Deletes the oldest `vpn-shop-*.dump` files of `dir` beyond the newest `keep` (their names
/// sort by time); returns how many went.
pub fn prune_backups(dir: &Path, keep: usize) -> std::io::Result<usize> {
    let mut backups: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("vpn-shop-") && n.ends_with(".dump"))
        })
        .collect();
    backups.sort();
    let excess = backups.len().saturating_sub(keep);
    for old in &backups[..excess] {
        std::fs::remove_file(old)?;
    }
    Ok(excess)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_newest_backups_are_kept_and_other_files_are_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        for name in [
            "vpn-shop-20261101T000000Z.dump",
            "vpn-shop-20261127T000000Z.dump",
            "vpn-shop-20261015T120000Z.dump",
            "vpn-shop-20261120T000000Z.dump",
            "by-hand.dump",
            "vpn-shop-20261001T000000Z.partial",
        ] {
            std::fs::write(dir.path().join(name), b"x").unwrap();
        }
        assert_eq!(prune_backups(dir.path(), 2).unwrap(), 2);
        let mut left: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        left.sort();
        assert_eq!(
            left,
            [
                "by-hand.dump",
                "vpn-shop-20261001T000000Z.partial",
                "vpn-shop-20261120T000000Z.dump",
                "vpn-shop-20261127T000000Z.dump",
            ]
        );
    }
}
