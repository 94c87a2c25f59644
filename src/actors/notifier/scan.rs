//! The `notifications_scan` task: who is about to lose access, or just lost it, and has not been
//! told yet. Each notice is enqueued once (its key includes the subscription's end, so a renewal
//! arms the warnings again), however often the scan runs.

use chrono::{DateTime, Utc};
use diesel_async::AsyncConnection;

use super::Shared;
use crate::actors::job_runner::JobError;
use crate::db::notifications;
use crate::db::subscriptions::{self, Ending};
use crate::domain::notifications::{Notification, NotifyJob};

/// Expired notices only for subscriptions that ended this recently (not for ancient ones the
/// first time the scan runs on an old database).
const EXPIRED_NOTICE_WINDOW: chrono::Duration = chrono::Duration::days(7);
/// Trials are warned this long before their end.
const TRIAL_WARNING: std::time::Duration = std::time::Duration::from_secs(86_400);

/// What one scan enqueued.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct ScanReport {
    pub expiring: usize,
    pub trial_ending: usize,
    pub expired: usize,
}

impl Shared {
    pub(super) async fn scan(&self) -> Result<ScanReport, JobError> {
        let now = Utc::now();
        let mut report = ScanReport::default();
        let mut conn = self.pool.get().await?;
        let days = &self.settings.expiry_warning_days;
        let widest = days.first().copied().unwrap_or(1).max(1);
        let window = std::time::Duration::from_secs(u64::from(widest) * 86_400);
        let mut jobs = Vec::new();
        for ending in subscriptions::ending_within(&mut conn, window).await? {
            let left = ending.expires_at - now;
            if ending.is_trial {
                if left.to_std().unwrap_or_default() <= TRIAL_WARNING {
                    report.trial_ending += 1;
                    jobs.push(notice(
                        &ending,
                        format!("trial_ending:{}", ending.user_id),
                        Notification::TrialEnding {
                            expires_at: ending.expires_at,
                        },
                    ));
                }
                continue;
            }
            // The smallest threshold the remaining time is within: 3 days, then 1 day…
            let Some(threshold) = days
                .iter()
                .rev()
                .copied()
                .find(|d| left <= chrono::Duration::days(i64::from(*d)))
            else {
                continue;
            };
            report.expiring += 1;
            jobs.push(notice(
                &ending,
                format!("expiry:{threshold}d:{}", ending.user_id),
                Notification::SubscriptionExpiring {
                    days_left: threshold,
                    expires_at: ending.expires_at,
                },
            ));
        }
        let max_attempts = self.jobs.max_attempts;
        let enqueued_warnings = enqueue_all(&mut conn, &jobs, max_attempts).await?;
        // Expired subscriptions: the status change and the notices commit together.
        let expired = conn
            .transaction::<_, diesel::result::Error, _>(async |conn| {
                let ended = subscriptions::expire_ended(conn).await?;
                let mut enqueued = 0;
                for ending in ended
                    .iter()
                    .filter(|e| e.expires_at > now - EXPIRED_NOTICE_WINDOW)
                {
                    let job = notice(
                        ending,
                        format!("expired:{}", ending.user_id),
                        Notification::SubscriptionExpired {
                            expired_at: ending.expires_at,
                        },
                    );
                    if notifications::enqueue_once(conn, &job, max_attempts)
                        .await?
                        .is_some()
                    {
                        enqueued += 1;
                    }
                }
                Ok(enqueued)
            })
            .await?;
        report.expired = expired;
        tracing::info!(
            ?report,
            new_warnings = enqueued_warnings,
            "notifications scan done"
        );
        Ok(report)
    }
}

/// A notice keyed by `key` and the end of the subscription it is about.
fn notice(ending: &Ending, key: String, notification: Notification) -> NotifyJob {
    NotifyJob {
        user_id: ending.user_id,
        notification,
        dedup_key: format!("{key}:{}", stamp(ending.expires_at)),
    }
}

fn stamp(at: DateTime<Utc>) -> i64 {
    at.timestamp()
}

/// Enqueues each job once, in chunks (one transaction each).
async fn enqueue_all(
    conn: &mut crate::db::PgConn,
    jobs: &[NotifyJob],
    max_attempts: i32,
) -> Result<usize, JobError> {
    let mut enqueued = 0;
    for chunk in jobs.chunks(500) {
        enqueued += conn
            .transaction::<_, diesel::result::Error, _>(async |conn| {
                let mut n = 0;
                for job in chunk {
                    if notifications::enqueue_once(conn, job, max_attempts)
                        .await?
                        .is_some()
                    {
                        n += 1;
                    }
                }
                Ok(n)
            })
            .await?;
    }
    Ok(enqueued)
}
