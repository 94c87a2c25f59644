//! Per-user panel operations: provision (create or reconcile), disable, enable, reset traffic,
//! revoke the link, delete. Each ends only when the panel answered the final state.

use chrono::{DateTime, Utc};

use super::{Shared, job_error};
use crate::actors::job_runner::JobError;
use crate::actors::messages::PanelOp;
use crate::clients::panel::{NewUser, PanelError, PanelUser};
use crate::db::PgConn;
use crate::db::models::Subscription;
use crate::db::panel_lock::PanelWriteLock;
use crate::db::subscriptions::{self, PanelReport};
use crate::domain::UserId;
use crate::domain::panel::DesiredUser;

/// What a provision run did to the panel user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Provisioned {
    /// Created on the panel.
    Created,
    /// Changed (a PUT, or the traffic reset a new period owed).
    Updated,
    /// Already as the database wants it.
    Unchanged,
    /// Missing on the panel, and a disabled or ended subscription needs no panel user.
    NotNeeded,
}

/// The subscription and its user's Telegram id, read on the locked connection.
async fn subscription(
    conn: &mut PgConn,
    user_id: UserId,
) -> Result<(Subscription, Option<i64>), JobError> {
    subscriptions::find_by_user(conn, user_id)
        .await?
        .ok_or_else(|| JobError::permanent(format!("user {user_id} has no subscription")))
}

impl Shared {
    /// Takes the user's panel-write lock ([`PanelWriteLock`]): every write of one user's panel
    /// account runs under it and reads the subscription after taking it, so writes of one user
    /// follow each other and each writes what the database says right before it. A writer waits
    /// at most as long as a holder's few panel calls may take (each retried up to three times
    /// within its timeout).
    pub(super) async fn lock_user(&self, user_id: UserId) -> Result<PanelWriteLock, JobError> {
        let wait = self.settings.timeout.saturating_mul(4 * 3);
        PanelWriteLock::acquire(&self.pool, user_id, wait)
            .await
            .map_err(|e| JobError::retryable(e.to_string()))
    }

    /// Runs one operation for a user, under the user's panel-write lock.
    #[tracing::instrument(skip(self), fields(user = %user_id))]
    pub(super) async fn apply(&self, user_id: UserId, op: PanelOp) -> Result<(), JobError> {
        let mut lock = self.lock_user(user_id).await?;
        let result = self.apply_locked(lock.conn(), user_id, op).await;
        lock.release().await;
        result
    }

    /// Provisions a user from the subscription as it is now, under the user's lock (the syncs'
    /// writes: what they listed earlier only says whom to look at).
    pub(super) async fn provision_now(&self, user_id: UserId) -> Result<Provisioned, JobError> {
        let mut lock = self.lock_user(user_id).await?;
        let result = async {
            let conn = lock.conn();
            let (sub, telegram_id) = subscription(conn, user_id).await?;
            self.provision(conn, &sub, telegram_id).await
        }
        .await;
        lock.release().await;
        result
    }

    async fn apply_locked(
        &self,
        conn: &mut PgConn,
        user_id: UserId,
        op: PanelOp,
    ) -> Result<(), JobError> {
        match op {
            PanelOp::Provision => {
                let (sub, telegram_id) = subscription(conn, user_id).await?;
                self.provision(conn, &sub, telegram_id).await.map(drop)
            }
            PanelOp::Disable | PanelOp::Enable => {
                if !subscriptions::set_enabled(conn, user_id, op == PanelOp::Enable).await? {
                    return Err(JobError::permanent(format!(
                        "user {user_id} has no subscription"
                    )));
                }
                let (sub, telegram_id) = subscription(conn, user_id).await?;
                self.provision(conn, &sub, telegram_id).await.map(drop)
            }
            PanelOp::ResetTraffic => {
                let (sub, telegram_id) = subscription(conn, user_id).await?;
                match self.panel.reset_usage(&sub.panel_username).await {
                    // Nothing to reset on a user the panel does not have; provision creates it.
                    Ok(_) | Err(PanelError::NotFound) => {}
                    Err(e) => return Err(job_error("resetting traffic", e)),
                }
                // A reset may have made a disabled user active (Marzban 0.8.4): re-apply the status.
                self.provision(conn, &sub, telegram_id).await.map(drop)
            }
            PanelOp::RevokeSubscription => {
                let (sub, telegram_id) = subscription(conn, user_id).await?;
                let user = match self.panel.revoke_subscription(&sub.panel_username).await {
                    Ok(user) => user,
                    // A user created now gets fresh credentials anyway.
                    Err(PanelError::NotFound) => {
                        return self.provision(conn, &sub, telegram_id).await.map(drop);
                    }
                    Err(e) => return Err(job_error("revoking the subscription", e)),
                };
                self.record(conn, user_id, &user, Some(&user.subscription_url))
                    .await?;
                tracing::info!("subscription link revoked; new link stored");
                Ok(())
            }
            PanelOp::Delete => {
                let (sub, _) = subscription(conn, user_id).await?;
                self.panel
                    .delete_user(&sub.panel_username)
                    .await
                    .map_err(|e| job_error("deleting the panel user", e))?;
                subscriptions::mark_removed_from_panel(conn, user_id).await?;
                tracing::info!(username = %sub.panel_username, "panel user deleted");
                Ok(())
            }
        }
    }

    /// The cleanup of one long-expired user, under its lock: disables the subscription if it
    /// still is expired before `cutoff` (a conditional update: a payment since the cleanup listed
    /// it wins), then disables or deletes the panel user. `false`: left alone.
    pub(super) async fn clean_up(
        &self,
        user_id: UserId,
        cutoff: DateTime<Utc>,
        delete: bool,
    ) -> Result<bool, JobError> {
        let mut lock = self.lock_user(user_id).await?;
        let result = async {
            let conn = lock.conn();
            if !subscriptions::disable_if_expired_before(conn, user_id, cutoff).await? {
                return Ok(false);
            }
            let (sub, telegram_id) = subscription(conn, user_id).await?;
            if !delete {
                self.provision(conn, &sub, telegram_id).await?;
                return Ok(true);
            }
            if sub.status != crate::domain::SubscriptionStatus::Disabled {
                // Paid between the update and this read: the provision job it enqueued runs
                // after this lock is released.
                return Ok(false);
            }
            self.panel
                .delete_user(&sub.panel_username)
                .await
                .map_err(|e| job_error("deleting the panel user", e))?;
            subscriptions::forget_panel_user(conn, user_id).await?;
            tracing::info!(username = %sub.panel_username, "long-expired panel user deleted");
            Ok(true)
        }
        .await;
        lock.release().await;
        result
    }

    /// Makes the panel user match the subscription: creates it when missing (a 409 means an
    /// earlier attempt created it: read and reconcile), otherwise resets the traffic counter
    /// when a new period of a traffic plan owes it and PUTs the absolute expiry, data limit and
    /// status that differ. Done only when the panel's answer shows the wanted state. The caller
    /// holds the user's lock and read `sub` under it; `conn` is the locked connection.
    pub(super) async fn provision(
        &self,
        conn: &mut PgConn,
        sub: &Subscription,
        telegram_id: Option<i64>,
    ) -> Result<Provisioned, JobError> {
        let desired = DesiredUser::new(sub.status, sub.expires_at, sub.traffic_limit_bytes);
        let name = sub.panel_username.as_str();
        let (user, outcome) = match self.panel.get_user(name).await {
            Ok(user) => self.bring_in_line(conn, sub, &desired, user).await?,
            Err(PanelError::NotFound) if !desired.needs_panel_user(Utc::now()) => {
                // A disabled or expired subscription needs no panel user.
                return Ok(Provisioned::NotNeeded);
            }
            Err(PanelError::NotFound) => {
                let new = NewUser {
                    username: name,
                    telegram_id,
                    desired: &desired,
                };
                match self.panel.create_user(&new).await {
                    Ok(user) => {
                        tracing::info!(
                            username = name,
                            expire = desired.expire,
                            "panel user created"
                        );
                        if sub.traffic_reset_period < sub.traffic_period {
                            // A user created now starts at 0 bytes: the owed reset is done.
                            subscriptions::record_traffic_reset(
                                conn,
                                sub.user_id,
                                sub.traffic_period,
                            )
                            .await?;
                        }
                        (user, Provisioned::Created)
                    }
                    Err(PanelError::AlreadyExists) => {
                        let user = self
                            .panel
                            .get_user(name)
                            .await
                            .map_err(|e| job_error("reading the existing panel user", e))?;
                        self.bring_in_line(conn, sub, &desired, user).await?
                    }
                    Err(e) => return Err(job_error("creating the panel user", e)),
                }
            }
            Err(e) => return Err(job_error("reading the panel user", e)),
        };
        let left = self.panel.drift(&desired, &user);
        if !left.is_empty() {
            return Err(JobError::retryable(format!(
                "the panel did not apply the wanted state: still differs in {left:?}"
            )));
        }
        let link = (outcome == Provisioned::Created || sub.subscription_url.is_none())
            .then_some(user.subscription_url.as_str())
            // PasarGuard leaves it out of some answers: an empty one is no link.
            .filter(|url| !url.is_empty());
        self.record(conn, sub.user_id, &user, link).await?;
        Ok(outcome)
    }

    /// An existing panel user: the owed traffic reset, then the PUT of what differs.
    async fn bring_in_line(
        &self,
        conn: &mut PgConn,
        sub: &Subscription,
        desired: &DesiredUser,
        user: PanelUser,
    ) -> Result<(PanelUser, Provisioned), JobError> {
        let (user, reset) = self.reset_owed_traffic(conn, sub, desired, user).await?;
        let (user, modified) = self.reconcile(desired, user).await?;
        let outcome = if reset || modified {
            Provisioned::Updated
        } else {
            Provisioned::Unchanged
        };
        Ok((user, outcome))
    }

    /// A new paid period of a traffic plan starts with a fresh allowance: resets the panel's
    /// counter once per period (`traffic_period` ahead of `traffic_reset_period`), recorded right
    /// after the panel answered, so a retry of a later step does not reset again. A user the
    /// database wants disabled keeps the reset owed until it is enabled (in Marzban 0.8.4 a reset
    /// makes a disabled user active). Returns the panel's state after it, and whether it reset.
    async fn reset_owed_traffic(
        &self,
        conn: &mut PgConn,
        sub: &Subscription,
        desired: &DesiredUser,
        user: PanelUser,
    ) -> Result<(PanelUser, bool), JobError> {
        if sub.traffic_reset_period >= sub.traffic_period
            || desired.status == crate::domain::panel::WantedStatus::Disabled
        {
            return Ok((user, false));
        }
        let reset = self
            .panel
            .reset_usage(&user.username)
            .await
            .map_err(|e| job_error("resetting traffic for the new period", e))?;
        subscriptions::record_traffic_reset(conn, sub.user_id, sub.traffic_period).await?;
        tracing::info!(username = %user.username, period = sub.traffic_period, "traffic counter reset for the new paid period");
        Ok((reset, true))
    }

    /// PUTs what differs between `user` and `desired`; returns the panel's new state and whether
    /// anything was sent.
    async fn reconcile(
        &self,
        desired: &DesiredUser,
        user: PanelUser,
    ) -> Result<(PanelUser, bool), JobError> {
        let changes = self.panel.drift(desired, &user);
        if changes.is_empty() {
            return Ok((user, false));
        }
        let updated = self
            .panel
            .modify_user(&user, &changes)
            .await
            .map_err(|e| job_error("modifying the panel user", e))?;
        tracing::info!(username = %user.username, ?changes, "panel user brought in line with the database");
        Ok((updated, true))
    }

    async fn record(
        &self,
        conn: &mut PgConn,
        user_id: UserId,
        user: &PanelUser,
        subscription_url: Option<&str>,
    ) -> Result<(), JobError> {
        subscriptions::record_panel_report(
            conn,
            user_id,
            &PanelReport {
                status: user.status,
                expire: user.expire,
                used_bytes: user.used_traffic,
                lifetime_used_bytes: user.lifetime_used_traffic,
                online_at: user.online_at,
                subscription_url,
            },
        )
        .await?;
        if subscription_url.is_some() {
            // A notification waiting for the link (trial started, payment received) goes now,
            // not after its retry delay.
            crate::db::jobs::hurry(conn, crate::domain::notifications::NOTIFY_JOB, user_id).await?;
        }
        Ok(())
    }
}
