//! Per-user panel operations: provision (create or reconcile), disable, enable, reset traffic,
//! revoke the link, delete. Each ends only when the panel answered the final state.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDateTime, Utc};

use super::{Shared, job_error};
use crate::actors::job_runner::JobError;
use crate::actors::messages::PanelOp;
use crate::clients::marzban::{PanelError, UserCreate, UserModify, UserResponse};
use crate::db::models::Subscription;
use crate::db::subscriptions::{self, PanelReport};
use crate::domain::UserId;
use crate::domain::panel::{DesiredUser, drift};

/// The panel's naive UTC timestamps as UTC.
pub(super) fn utc(t: Option<NaiveDateTime>) -> Option<DateTime<Utc>> {
    t.map(|t| t.and_utc())
}

impl Shared {
    pub(super) async fn subscription(
        &self,
        user_id: UserId,
    ) -> Result<(Subscription, i64), JobError> {
        let mut conn = self.pool.get().await?;
        subscriptions::find_by_user(&mut conn, user_id)
            .await?
            .ok_or_else(|| JobError::permanent(format!("user {user_id} has no subscription")))
    }

    /// Runs one operation for a user.
    #[tracing::instrument(skip(self), fields(user = %user_id))]
    pub(super) async fn apply(&self, user_id: UserId, op: PanelOp) -> Result<(), JobError> {
        match op {
            PanelOp::Provision => {
                let (sub, telegram_id) = self.subscription(user_id).await?;
                self.provision(&sub, telegram_id).await
            }
            PanelOp::Disable | PanelOp::Enable => {
                let mut conn = self.pool.get().await?;
                if !subscriptions::set_enabled(&mut conn, user_id, op == PanelOp::Enable).await? {
                    return Err(JobError::permanent(format!(
                        "user {user_id} has no subscription"
                    )));
                }
                drop(conn);
                let (sub, telegram_id) = self.subscription(user_id).await?;
                self.provision(&sub, telegram_id).await
            }
            PanelOp::ResetTraffic => {
                let (sub, telegram_id) = self.subscription(user_id).await?;
                match self.client.reset_usage(&sub.panel_username).await {
                    // Nothing to reset on a user the panel does not have; provision creates it.
                    Ok(_) | Err(PanelError::NotFound) => {}
                    Err(e) => return Err(job_error("resetting traffic", e)),
                }
                // The reset also made a disabled user active (0.8.4): re-apply the status.
                self.provision(&sub, telegram_id).await
            }
            PanelOp::RevokeSubscription => {
                let (sub, telegram_id) = self.subscription(user_id).await?;
                let user = match self.client.revoke_subscription(&sub.panel_username).await {
                    Ok(user) => user,
                    // A user created now gets fresh credentials anyway.
                    Err(PanelError::NotFound) => return self.provision(&sub, telegram_id).await,
                    Err(e) => return Err(job_error("revoking the subscription", e)),
                };
                let url = self
                    .client
                    .absolute_subscription_url(&user.subscription_url);
                self.record(user_id, &user, Some(&url)).await?;
                tracing::info!("subscription link revoked; new link stored");
                Ok(())
            }
            PanelOp::Delete => {
                let (sub, _) = self.subscription(user_id).await?;
                self.client
                    .delete_user(&sub.panel_username)
                    .await
                    .map_err(|e| job_error("deleting the panel user", e))?;
                let mut conn = self.pool.get().await?;
                subscriptions::mark_removed_from_panel(&mut conn, user_id).await?;
                tracing::info!(username = %sub.panel_username, "panel user deleted");
                Ok(())
            }
        }
    }

    /// Makes the panel user match the subscription: creates it when missing (a 409 means an
    /// earlier attempt created it: read and reconcile), otherwise resets the traffic counter
    /// when a new period of a traffic plan owes it and PUTs the absolute expiry, data limit and
    /// status that differ. Done only when the panel's answer shows the wanted state.
    pub(super) async fn provision(
        &self,
        sub: &Subscription,
        telegram_id: i64,
    ) -> Result<(), JobError> {
        let desired = DesiredUser::new(sub.status, sub.expires_at, sub.traffic_limit_bytes);
        let name = sub.panel_username.as_str();
        let (user, created) = match self.client.get_user(name).await {
            Ok(user) => {
                let user = self.reset_owed_traffic(sub, &desired, user).await?;
                (self.reconcile(&desired, user).await?, false)
            }
            Err(PanelError::NotFound) if !desired.needs_panel_user(Utc::now()) => {
                // A disabled or expired subscription needs no panel user.
                return Ok(());
            }
            Err(PanelError::NotFound) => {
                match self
                    .client
                    .create_user(&self.new_user(name, telegram_id, &desired))
                    .await
                {
                    Ok(user) => {
                        tracing::info!(
                            username = name,
                            expire = desired.expire,
                            "panel user created"
                        );
                        (user, true)
                    }
                    Err(PanelError::AlreadyExists) => {
                        let user = self
                            .client
                            .get_user(name)
                            .await
                            .map_err(|e| job_error("reading the existing panel user", e))?;
                        let user = self.reset_owed_traffic(sub, &desired, user).await?;
                        (self.reconcile(&desired, user).await?, false)
                    }
                    Err(e) => return Err(job_error("creating the panel user", e)),
                }
            }
            Err(e) => return Err(job_error("reading the panel user", e)),
        };
        if created && sub.traffic_reset_period < sub.traffic_period {
            // A user created now starts at 0 bytes: the owed reset is done.
            let mut conn = self.pool.get().await?;
            subscriptions::record_traffic_reset(&mut conn, sub.user_id, sub.traffic_period).await?;
        }
        let left = drift(&desired, &user.state());
        if !left.is_empty() {
            return Err(JobError::retryable(format!(
                "the panel did not apply the wanted state: still differs in {left:?}"
            )));
        }
        let url = self
            .client
            .absolute_subscription_url(&user.subscription_url);
        if created || sub.subscription_url.is_none() {
            self.record(sub.user_id, &user, Some(&url)).await?;
        } else {
            self.record(sub.user_id, &user, None).await?;
        }
        Ok(())
    }

    /// A new paid period of a traffic plan starts with a fresh allowance: resets the panel's
    /// counter once per period (`traffic_period` ahead of `traffic_reset_period`), recorded right
    /// after the panel answered, so a retry of a later step does not reset again. A user the
    /// database wants disabled keeps the reset owed until it is enabled (in 0.8.4 a reset makes a
    /// disabled user active). Returns the panel's state after it.
    async fn reset_owed_traffic(
        &self,
        sub: &Subscription,
        desired: &DesiredUser,
        user: UserResponse,
    ) -> Result<UserResponse, JobError> {
        if sub.traffic_reset_period >= sub.traffic_period
            || desired.status == crate::domain::panel::WantedStatus::Disabled
        {
            return Ok(user);
        }
        let reset = self
            .client
            .reset_usage(&user.username)
            .await
            .map_err(|e| job_error("resetting traffic for the new period", e))?;
        let mut conn = self.pool.get().await?;
        subscriptions::record_traffic_reset(&mut conn, sub.user_id, sub.traffic_period).await?;
        tracing::info!(username = %user.username, period = sub.traffic_period, "traffic counter reset for the new paid period");
        Ok(reset)
    }

    /// PUTs what differs between `user` and `desired`; returns the panel's new state.
    pub(super) async fn reconcile(
        &self,
        desired: &DesiredUser,
        user: UserResponse,
    ) -> Result<UserResponse, JobError> {
        let changes = drift(desired, &user.state());
        if changes.is_empty() {
            return Ok(user);
        }
        let body = UserModify::from_drift(&changes, &user);
        let updated = self
            .client
            .modify_user(&user.username, &body)
            .await
            .map_err(|e| job_error("modifying the panel user", e))?;
        tracing::info!(username = %user.username, ?changes, "panel user brought in line with the database");
        Ok(updated)
    }

    fn new_user(&self, name: &str, telegram_id: i64, desired: &DesiredUser) -> UserCreate {
        // Every protocol is listed: an empty list means all of its inbounds, and leaving the key
        // out would create a user with every inbound excluded.
        let inbounds: BTreeMap<String, Vec<String>> = self
            .settings
            .proxies
            .keys()
            .map(|protocol| {
                let tags = self
                    .settings
                    .inbounds
                    .get(protocol)
                    .cloned()
                    .unwrap_or_default();
                (protocol.clone(), tags)
            })
            .collect();
        UserCreate {
            username: name.to_owned(),
            proxies: self.settings.proxies.clone(),
            inbounds,
            expire: desired.expire,
            data_limit: desired.data_limit,
            data_limit_reset_strategy: "no_reset",
            status: "active",
            note: format!("vpn-shop: telegram {telegram_id}"),
        }
    }

    async fn record(
        &self,
        user_id: UserId,
        user: &UserResponse,
        subscription_url: Option<&str>,
    ) -> Result<(), JobError> {
        let mut conn = self.pool.get().await?;
        subscriptions::record_panel_report(
            &mut conn,
            user_id,
            &PanelReport {
                status: user.status,
                used_bytes: user.used_traffic,
                lifetime_used_bytes: user.lifetime_used_traffic,
                online_at: utc(user.online_at),
                subscription_url,
            },
        )
        .await?;
        if subscription_url.is_some() {
            // A notification waiting for the link (trial started, payment received) goes now,
            // not after its retry delay.
            crate::db::jobs::hurry(&mut conn, crate::domain::notifications::NOTIFY_JOB, user_id)
                .await?;
        }
        Ok(())
    }
}
