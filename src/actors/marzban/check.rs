//! `paid_unprovisioned`: the invariant "what was paid is on the panel" checking itself. Every
//! `PAID_UNPROVISIONED_INTERVAL` it finds paying users whose running subscription the panel does
//! not give — panel user missing, disabled while the subscription is active, or ending earlier
//! than paid — for longer than `PAID_UNPROVISIONED_AFTER`, repairs them by enqueuing `provision`,
//! and exports their number (`vpn_shop_paid_unprovisioned`).
//!
//! Cheap for many users: the suspects come from one query over what the database already knows
//! from the panel's last reports (provisioning, the status and traffic syncs); only those few
//! are read on the panel, one GET each, so stale knowledge never counts as a fault. A suspect the
//! panel turns out to serve has its report refreshed and drops out.

use futures_util::StreamExt;

use super::Shared;
use crate::actors::job_runner::JobError;
use crate::clients::panel::{PanelError, PanelUser};
use crate::db::paid_access::{self, Suspect};
use crate::db::subscriptions::{self, PanelReport};
use crate::domain::{PanelUserStatus, UserId};

/// Job kind and scheduled task name of the check.
pub const PAID_UNPROVISIONED: &str = "paid_unprovisioned";

/// Suspects read on the panel per run (the oldest first; the rest wait for the next run).
const MAX_CHECKED: i64 = 1_000;

/// What the panel says of one suspect.
enum Verdict {
    /// It gives the access paid for; its report, to store.
    Given(Box<PanelUser>),
    /// It does not: why.
    Missing(String),
}

impl Shared {
    /// One run of the check; returns how many paying users lack their access.
    #[tracing::instrument(skip(self))]
    pub(super) async fn check_paid_access(&self) -> Result<i64, JobError> {
        let after = self.settings.paid_unprovisioned_after;
        let suspects = {
            let mut conn = self.pool.get().await?;
            paid_access::suspects(&mut conn, after, MAX_CHECKED).await?
        };
        if let Some(first) = suspects.first()
            && first.total > MAX_CHECKED
        {
            tracing::warn!(
                suspects = first.total,
                checked = MAX_CHECKED,
                "more paid subscriptions look unprovisioned than one run reads"
            );
        }
        let verdicts: Vec<(Suspect, Verdict)> = futures_util::stream::iter(suspects)
            .map(|suspect| async move {
                let verdict = self.verdict(&suspect).await;
                (suspect, verdict)
            })
            .buffer_unordered(self.settings.write_concurrency)
            .collect()
            .await;
        let mut conn = self.pool.get().await?;
        let mut missing: Vec<UserId> = Vec::new();
        for (suspect, verdict) in verdicts {
            match verdict {
                Verdict::Given(user) => {
                    let report = PanelReport {
                        status: user.status,
                        expire: user.expire,
                        used_bytes: user.used_traffic,
                        lifetime_used_bytes: user.lifetime_used_traffic,
                        online_at: user.online_at,
                        subscription_url: None,
                    };
                    subscriptions::record_panel_report(&mut conn, suspect.user_id, &report).await?;
                }
                Verdict::Missing(why) => {
                    let job = super::provision_job(suspect.user_id);
                    let enqueued = crate::db::jobs::enqueue(&mut conn, job, self.max_attempts)
                        .await?
                        .is_some();
                    tracing::warn!(
                        user = %suspect.user_id,
                        username = %suspect.panel_username,
                        problem = %why,
                        enqueued,
                        "paid access missing on the panel; provisioning again"
                    );
                    missing.push(suspect.user_id);
                }
            }
        }
        paid_access::flag(&mut conn, &missing).await?;
        let count = paid_access::flagged(&mut conn).await?;
        self.metrics.paid_unprovisioned.set(count);
        Ok(count)
    }

    /// Reads one suspect on the panel. A panel that cannot be read counts as not giving it (what
    /// the database knows says so, and nothing says otherwise).
    async fn verdict(&self, suspect: &Suspect) -> Verdict {
        let paid_until = suspect.expires_at.timestamp();
        match self.panel.get_user(&suspect.panel_username).await {
            Err(PanelError::NotFound) => Verdict::Missing("no panel user".into()),
            Err(e) => Verdict::Missing(format!("the panel could not be read: {e}")),
            Ok(user) if user.status == PanelUserStatus::Disabled => {
                Verdict::Missing("disabled on the panel".into())
            }
            Ok(user) if user.expire.is_some_and(|e| e < paid_until) => Verdict::Missing(format!(
                "the panel ends it at {}, paid until {paid_until}",
                user.expire.unwrap_or_default()
            )),
            Ok(user) => Verdict::Given(Box::new(user)),
        }
    }
}
