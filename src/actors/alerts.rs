//! `alerts_check`: the alert conditions that need a clock, every `ALERT_CHECK_INTERVAL` — dead
//! jobs (at most one alert per job kind per 15 minutes, with the count), a panel sync failing
//! twice in a row, forged payment webhooks above `ALERT_WEBHOOK_FAILURES` in 5 minutes, paid
//! access missing on the panel for over 10 minutes (the `paid_unprovisioned` check's flags), and
//! the daily digest at `ADMIN_DIGEST_AT`. Everything it reads is in the database, so it runs on
//! whichever replica claims the job; the keys of the alerts make a second run change nothing.

use chrono::{Duration, FixedOffset, NaiveTime, TimeZone, Utc};
use diesel_async::AsyncConnection;
use futures_util::future::LocalBoxFuture;

use crate::actors::job_runner::{JobError, JobHandler};
use crate::config::AlertSettings;
use crate::db::models::Job;
use crate::db::{PgConn, PgPool, alerts, stats};
use crate::domain::alerts::{
    Alert, DEAD_JOBS_WINDOW, PAID_UNPROVISIONED_KEY, PROBING_WINDOW, UNPROVISIONED_AFTER,
    WEBHOOK_PROBING_KEY, digest_key, sync_failing_key,
};

/// Job kind and scheduled task name.
pub const ALERTS_CHECK: &str = "alerts_check";

pub struct AlertChecks {
    pub pool: PgPool,
    pub settings: AlertSettings,
    /// `DISPLAY_UTC_OFFSET`: the digest's days are local days.
    pub offset: FixedOffset,
    pub max_attempts: i32,
    /// The panel syncs whose failures count (none without a panel).
    pub sync_kinds: Vec<&'static str>,
}

impl JobHandler for AlertChecks {
    fn run(&self, _job: Job) -> LocalBoxFuture<'static, Result<(), JobError>> {
        let checks = AlertChecks {
            pool: self.pool.clone(),
            settings: self.settings.clone(),
            offset: self.offset,
            max_attempts: self.max_attempts,
            sync_kinds: self.sync_kinds.clone(),
        };
        Box::pin(async move { checks.check().await })
    }
}

/// Raises `alert` (with its delivery) in one transaction.
async fn raise(conn: &mut PgConn, alert: &Alert, attempts: i32) -> Result<(), JobError> {
    conn.transaction::<_, diesel::result::Error, _>(async |conn| {
        alerts::raise(conn, alert, attempts).await.map(drop)
    })
    .await?;
    Ok(())
}

/// Resolves the alert of `key` (with the delivery of its end) in one transaction.
async fn resolve(conn: &mut PgConn, key: &str, attempts: i32) -> Result<(), JobError> {
    conn.transaction::<_, diesel::result::Error, _>(async |conn| {
        alerts::resolve(conn, key, None, attempts).await.map(drop)
    })
    .await?;
    Ok(())
}

impl AlertChecks {
    #[tracing::instrument(skip(self))]
    async fn check(&self) -> Result<(), JobError> {
        let mut conn = self.pool.get().await?;
        let conn = &mut conn;
        let attempts = self.max_attempts;
        let window = DEAD_JOBS_WINDOW.to_std().unwrap_or_default();
        for dead in alerts::dead_jobs_to_tell(conn, window).await? {
            let alert = Alert::JobDead {
                job_kind: dead.kind,
                count: dead.count,
                job: dead.job,
                user: dead.user_id,
                last_error: dead.last_error.unwrap_or_default(),
                until: dead.until,
            };
            raise(conn, &alert, attempts).await?;
        }

        for streak in alerts::sync_streaks(conn, &self.sync_kinds).await? {
            let key = sync_failing_key(&streak.kind);
            match (streak.failed_twice, streak.error) {
                (true, error) => {
                    let alert = Alert::SyncFailing {
                        sync: streak.kind,
                        error: error.unwrap_or_default(),
                    };
                    raise(conn, &alert, attempts).await?;
                }
                (false, None) => resolve(conn, &key, attempts).await?,
                (false, Some(_)) => {}
            }
        }

        let refusals = alerts::webhook_refusals(conn, Utc::now() - PROBING_WINDOW).await?;
        if refusals.count >= self.settings.webhook_failures {
            let alert = Alert::WebhookProbing {
                failures: refusals.count,
                threshold: self.settings.webhook_failures,
                top_address: refusals.top_address,
            };
            raise(conn, &alert, attempts).await?;
        } else if refusals.count == 0 {
            resolve(conn, WEBHOOK_PROBING_KEY, attempts).await?;
        }

        let after = UNPROVISIONED_AFTER.to_std().unwrap_or_default();
        let missing = alerts::unprovisioned(conn, after).await?;
        match missing.oldest {
            Some(oldest) if missing.users > 0 => {
                let alert = Alert::PaidUnprovisioned {
                    users: missing.users,
                    oldest,
                };
                raise(conn, &alert, attempts).await?;
            }
            _ => resolve(conn, PAID_UNPROVISIONED_KEY, attempts).await?,
        }

        if let Some(at) = self.settings.digest_at {
            self.digest(conn, at).await?;
        }
        Ok(())
    }

    /// Once the local time of day has passed `at`, the digest of the day before (once a day).
    async fn digest(&self, conn: &mut PgConn, at: NaiveTime) -> Result<(), JobError> {
        let now = Utc::now().with_timezone(&self.offset);
        if now.time() < at {
            return Ok(());
        }
        let today = now.date_naive();
        let Some(day) = today.pred_opt() else {
            return Ok(());
        };
        let Some(today_start) = self
            .offset
            .from_local_datetime(&today.and_time(NaiveTime::MIN))
            .single()
            .map(|t| t.to_utc())
        else {
            return Ok(());
        };
        if alerts::exists(conn, &digest_key(day)).await? {
            return Ok(());
        }
        let figures = {
            let from = today_start - Duration::days(1);
            stats::digest(conn, from, today_start, today_start + Duration::days(1)).await?
        };
        raise(conn, &Alert::Digest { day, figures }, self.max_attempts).await
    }
}
