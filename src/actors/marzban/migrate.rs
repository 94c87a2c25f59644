//! `vpn-shop panel migrate --to KIND`: gives every subscription with access a user on another
//! panel, with the same username, expiry, data limit and status, through that panel's adapter.
//! The database says what each user has, as for provisioning; every write is absolute, so a run
//! can be repeated (a second run finds the users in line and changes nothing). With
//! `record_links` the new panel's subscription links replace the stored ones: the last step,
//! right before the shop is started with the new `PANEL_KIND`.

use chrono::Utc;
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use crate::clients::panel::{NewUser, Panel, PanelError, PanelUser};
use crate::db::schema::subscriptions;
use crate::domain::UserId;
use crate::domain::panel::DesiredUser;

/// What a run did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct MigrationReport {
    /// Created on the new panel.
    pub created: usize,
    /// Were there, and were brought in line.
    pub updated: usize,
    /// Were there already as they should be.
    pub unchanged: usize,
    /// Subscriptions without access (disabled or ended): no user needed.
    pub skipped: usize,
    /// Links of the new panel written to the database.
    pub links_recorded: usize,
    /// Usernames the new panel refused, with why.
    pub failed: Vec<(String, String)>,
}

impl std::fmt::Display for MigrationReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "created {}, updated {}, already in line {}, skipped (no access) {}, failed {}",
            self.created,
            self.updated,
            self.unchanged,
            self.skipped,
            self.failed.len()
        )?;
        if self.links_recorded > 0 {
            write!(f, "; {} links recorded", self.links_recorded)?;
        }
        Ok(())
    }
}

enum Outcome {
    Created(PanelUser),
    Updated(PanelUser),
    Unchanged(PanelUser),
}

/// Copies every subscription with access to `target`; one user's failure is reported and the
/// others go on.
pub async fn migrate(
    conn: &mut AsyncPgConnection,
    target: &Panel,
    record_links: bool,
) -> anyhow::Result<MigrationReport> {
    let mut report = MigrationReport::default();
    let now = Utc::now();
    for (sub, telegram_id) in crate::db::subscriptions::all(conn).await? {
        let desired = DesiredUser::new(sub.status, sub.expires_at, sub.traffic_limit_bytes);
        if !desired.needs_panel_user(now) {
            report.skipped += 1;
            continue;
        }
        let name = sub.panel_username.as_str();
        let user = match copy_one(target, name, telegram_id, &desired).await {
            Ok(Outcome::Created(user)) => {
                report.created += 1;
                user
            }
            Ok(Outcome::Updated(user)) => {
                report.updated += 1;
                user
            }
            Ok(Outcome::Unchanged(user)) => {
                report.unchanged += 1;
                user
            }
            Err(e) => {
                tracing::warn!(username = name, error = %e, "not migrated");
                report.failed.push((name.to_owned(), e.to_string()));
                continue;
            }
        };
        if record_links && !user.subscription_url.is_empty() {
            record_link(conn, sub.user_id, &user.subscription_url).await?;
            report.links_recorded += 1;
        }
    }
    Ok(report)
}

async fn copy_one(
    target: &Panel,
    name: &str,
    telegram_id: Option<i64>,
    desired: &DesiredUser,
) -> Result<Outcome, PanelError> {
    let existing = match target.get_user(name).await {
        Ok(user) => user,
        Err(PanelError::NotFound) => {
            let new = NewUser {
                username: name,
                telegram_id,
                desired,
            };
            match target.create_user(&new).await {
                Ok(user) => return Ok(Outcome::Created(user)),
                // An earlier, interrupted run created it.
                Err(PanelError::AlreadyExists) => target.get_user(name).await?,
                Err(e) => return Err(e),
            }
        }
        Err(e) => return Err(e),
    };
    let changes = target.drift(desired, &existing);
    if changes.is_empty() {
        return Ok(Outcome::Unchanged(existing));
    }
    Ok(Outcome::Updated(
        target.modify_user(&existing, &changes).await?,
    ))
}

/// Replaces the stored link (the old panel's) with the new panel's.
async fn record_link(conn: &mut AsyncPgConnection, user_id: UserId, url: &str) -> QueryResult<()> {
    diesel::update(subscriptions::table.filter(subscriptions::user_id.eq(user_id)))
        .set(subscriptions::subscription_url.eq(url))
        .execute(conn)
        .await
        .map(|_| ())
}
