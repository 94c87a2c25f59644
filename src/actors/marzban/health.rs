//! `probe_panel`: is the panel reachable? Every `ALERT_CHECK_INTERVAL` one cheap read
//! (`GET /api/system`); a panel that has failed it without a break for `ALERT_PANEL_DOWN_AFTER`
//! alerts the admins once, and its first answer after that tells them it is back. Since when it
//! has failed is kept in the database (`alert_watches`), so the probes of every replica add up.

use chrono::Utc;
use diesel_async::AsyncConnection;

use super::Shared;
use crate::actors::job_runner::JobError;
use crate::db::alerts;
use crate::domain::alerts::{Alert, PANEL_DOWN_KEY};

/// Job kind and scheduled task name of the probe.
pub const PROBE_PANEL: &str = "probe_panel";

impl Shared {
    /// One probe; `true` when the panel answered.
    #[tracing::instrument(skip(self))]
    pub(super) async fn probe_panel(&self) -> Result<bool, JobError> {
        let answer = self.panel.probe().await;
        let mut conn = self.pool.get().await?;
        let (after, attempts) = (self.panel_down_after, self.max_attempts);
        let up = answer.is_ok();
        conn.transaction::<_, diesel::result::Error, _>(async |conn| match &answer {
            Ok(_) => {
                alerts::unwatch(conn, PANEL_DOWN_KEY).await?;
                alerts::resolve(conn, PANEL_DOWN_KEY, None, attempts).await?;
                Ok(())
            }
            Err(e) => {
                let error = e.to_string();
                let since = alerts::watch(conn, PANEL_DOWN_KEY, &error).await?;
                let down_for = (Utc::now() - since).to_std().unwrap_or_default();
                tracing::warn!(%error, down_s = down_for.as_secs(), "the panel did not answer its health probe");
                if down_for >= after {
                    alerts::raise(conn, &Alert::PanelDown { since, error }, attempts).await?;
                }
                Ok(())
            }
        })
        .await?;
        Ok(up)
    }
}
