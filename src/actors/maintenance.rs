//! The `maintenance` job: keeps the bookkeeping tables small (payment events included). Scheduled by the `maintenance`
//! task every `MAINTENANCE_INTERVAL`. And the `backup` job (`BACKUP_INTERVAL`): a backup in
//! `DATA_DIR/backups`, the oldest beyond `BACKUP_KEEP` deleted, and with `BACKUP_TELEGRAM` sent
//! to the bot's admins.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::LocalBoxFuture;
use teloxide::payloads::SendDocumentSetters;
use teloxide::prelude::Requester;
use teloxide::types::{ChatId, InputFile};
use teloxide::{Bot, RequestError};

use crate::actors::job_runner::{JobError, JobHandler};
use crate::config::TelegramSettings;
use crate::db::models::Job;
use crate::db::{PgPool, admins, alerts, jobs, payments, rate, telegram};
use crate::domain::alerts::{Alert, BACKUP_FAILED_KEY};

/// Job kind (and scheduled task name).
pub const MAINTENANCE: &str = "maintenance";

/// How long handled Telegram update ids are remembered (Telegram redelivers for ~24 h).
const TELEGRAM_UPDATE_RETENTION: Duration = Duration::from_secs(3 * 86_400);

pub struct Maintenance {
    pub pool: PgPool,
    /// Finished jobs older than this are deleted.
    pub job_retention: Duration,
    /// Payment events older than this are deleted (see `payments::prune_events` for which).
    pub payment_event_retention: Duration,
}

impl JobHandler for Maintenance {
    fn run(&self, _job: Job) -> LocalBoxFuture<'static, Result<(), JobError>> {
        let pool = self.pool.clone();
        let retention = self.job_retention;
        let event_retention = self.payment_event_retention;
        Box::pin(async move {
            let mut conn = pool.get().await?;
            let jobs_pruned = jobs::prune_done(&mut conn, retention).await?;
            let auth_pruned = admins::prune_auth_state(&mut conn).await?;
            let updates_pruned =
                telegram::prune_updates(&mut conn, TELEGRAM_UPDATE_RETENTION).await?;
            let budgets_pruned = rate::prune(&mut conn).await?;
            let payment_events_pruned = payments::prune_events(&mut conn, event_retention).await?;
            tracing::info!(
                payment_events_pruned,
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
    pub pool: PgPool,
    /// Attempts of the alert deliveries it enqueues.
    pub max_attempts: i32,
    pub database_url: String,
    /// `DATA_DIR/backups`.
    pub dir: PathBuf,
    pub keep: usize,
    /// `BACKUP_TELEGRAM`: who gets each backup on Telegram.
    pub telegram: Option<Arc<BackupRecipients>>,
}

impl JobHandler for ScheduledBackup {
    fn run(&self, _job: Job) -> LocalBoxFuture<'static, Result<(), JobError>> {
        let (url, dir, keep) = (self.database_url.clone(), self.dir.clone(), self.keep);
        let telegram = self.telegram.clone();
        let (pool, max_attempts) = (self.pool.clone(), self.max_attempts);
        Box::pin(async move {
            let file = dir.join(
                crate::db::backup::default_path(Path::new(""))
                    .file_name()
                    .unwrap_or_default(),
            );
            let written = match crate::db::backup::backup(&url, &file).await {
                Ok(bytes) => prune_backups(&dir, keep)
                    .map(|deleted| (bytes, deleted))
                    .map_err(|e| format!("pruning old backups: {e}")),
                Err(e) => Err(format!("{e:#}")),
            };
            // The admins hear of a failure once, and once of the next backup that works.
            let mut conn = pool.get().await?;
            let (bytes, deleted) = match written {
                Ok(done) => {
                    alerts::resolve(&mut conn, BACKUP_FAILED_KEY, None, max_attempts).await?;
                    done
                }
                Err(error) => {
                    let alert = Alert::BackupFailed {
                        error: error.clone(),
                    };
                    alerts::raise(&mut conn, &alert, max_attempts).await?;
                    return Err(JobError::retryable(error));
                }
            };
            drop(conn);
            tracing::info!(file = %file.display(), bytes, deleted, "backup written");
            if let Some(telegram) = telegram {
                // The backup is done whatever happens here: failures are only logged.
                telegram.send(&file, bytes).await;
            }
            Ok(())
        })
    }
}

/// Telegram's limit on a file a bot uploads through the official Bot API (50 MB).
pub const TELEGRAM_UPLOAD_LIMIT: u64 = 50 * 1000 * 1000;

/// The bot's admins (`ADMIN_TELEGRAM_IDS`), who get each scheduled backup (`BACKUP_TELEGRAM`).
pub struct BackupRecipients {
    bot: Bot,
    admin_ids: Vec<i64>,
    /// Longest time spent sending one backup to everyone, so a slow upload cannot make the
    /// backup job overrun its lease (and be run again).
    budget: Duration,
}

impl BackupRecipients {
    pub fn new(
        settings: &TelegramSettings,
        admin_ids: Vec<i64>,
        budget: Duration,
    ) -> anyhow::Result<Self> {
        // An upload of up to 50 MB needs far longer than TELEGRAM_TIMEOUT allows a message.
        let client = teloxide::net::default_reqwest_settings()
            .timeout(budget)
            .build()?;
        Ok(BackupRecipients {
            bot: Bot::with_client(settings.token.expose(), client)
                .set_api_url(settings.api_url.clone()),
            admin_ids,
            budget,
        })
    }

    /// Sends `file` (`bytes` long) to every admin — or, when it is over Telegram's limit, a
    /// message saying where it is. Logs what fails; never fails itself.
    pub async fn send(&self, file: &Path, bytes: u64) {
        let name = file
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let written = chrono::Utc::now().format("%Y-%m-%d %H:%M UTC");
        let size = human_size(bytes);
        let all = async {
            for &admin in &self.admin_ids {
                let chat = ChatId(admin);
                let result = if bytes <= TELEGRAM_UPLOAD_LIMIT {
                    let caption = format!("vpn-shop backup {name}\n{size}, written {written}");
                    with_one_retry(|| async {
                        self.bot
                            .send_document(chat, InputFile::file(file))
                            .caption(caption.clone())
                            .await
                            .map(|_| ())
                    })
                    .await
                } else {
                    let where_ = std::fs::canonicalize(file).unwrap_or_else(|_| file.to_owned());
                    let text = format!(
                        "vpn-shop backup {name} ({size}, written {written}) is too large to send \
                         on Telegram (bots may upload at most 50 MB). It is on the server: {}",
                        where_.display()
                    );
                    with_one_retry(|| async {
                        self.bot.send_message(chat, text.clone()).await.map(|_| ())
                    })
                    .await
                };
                match result {
                    Ok(()) => tracing::info!(admin, file = %name, bytes, "backup sent on Telegram"),
                    Err(e) => tracing::warn!(
                        admin,
                        file = %name,
                        error = %e,
                        "could not send the backup on Telegram"
                    ),
                }
            }
        };
        if tokio::time::timeout(self.budget, all).await.is_err() {
            tracing::warn!(
                file = %name,
                budget_seconds = self.budget.as_secs(),
                "sending the backup on Telegram took too long; the rest was not sent"
            );
        }
    }
}

/// Runs `send`, and once more after Telegram's `retry_after` when it answers 429.
async fn with_one_retry<F, Fut>(send: F) -> Result<(), RequestError>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<(), RequestError>>,
{
    match send().await {
        Err(RequestError::RetryAfter(wait)) => {
            tokio::time::sleep(wait.duration()).await;
            send().await
        }
        other => other,
    }
}

/// `512 bytes`, `12.3 kB`, `48.1 MB`, `1.2 GB` (decimal units, as Telegram states its limit).
fn human_size(bytes: u64) -> String {
    let b = bytes as f64;
    match bytes {
        0..1_000 => format!("{bytes} bytes"),
        1_000..1_000_000 => format!("{:.1} kB", b / 1e3),
        1_000_000..1_000_000_000 => format!("{:.1} MB", b / 1e6),
        _ => format!("{:.1} GB", b / 1e9),
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
    fn sizes_read_like_telegrams_limit() {
        assert_eq!(human_size(512), "512 bytes");
        assert_eq!(human_size(12_345), "12.3 kB");
        assert_eq!(human_size(TELEGRAM_UPLOAD_LIMIT), "50.0 MB");
        assert_eq!(human_size(1_234_567_890), "1.2 GB");
    }

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
