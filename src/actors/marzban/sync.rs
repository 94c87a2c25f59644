//! The scheduled syncs. Each run writes a `sync_runs` row and metrics; each write it makes is
//! absolute and independent, so a run that fails half-way leaves a consistent database and the
//! next run picks up where it stopped. Panel users without the shop's prefix are never touched.

use std::collections::HashMap;
use std::time::Instant;

use anyhow::Context as _;
use chrono::{Duration as ChronoDuration, Utc};
use futures_util::StreamExt;

use super::Shared;
use super::provision::Provisioned;
use crate::actors::job_runner::JobError;
use crate::actors::messages::SyncKind;
use crate::clients::panel::{PanelUser, UserQuery};
use crate::config::CleanupAction;
use crate::db::models::{NewPanelStats, Subscription};
use crate::db::notifications;
use crate::db::subscriptions::{self, UsageBatch};
use crate::db::sync::{self as runs, SyncCounts};
use crate::domain::PanelUserStatus;
use crate::domain::notifications::{Notification, NotifyJob};
use crate::domain::panel::{DesiredUser, traffic_level};

impl Shared {
    /// Runs one sync and records it (`sync_runs`, metrics).
    pub(super) async fn run_sync(&self, kind: SyncKind) -> Result<SyncCounts, JobError> {
        let started = Instant::now();
        let run_id = {
            let mut conn = self.pool.get().await?;
            runs::start_run(&mut conn, kind.as_str()).await?
        };
        let result = match kind {
            SyncKind::Subscriptions => self.sync_subscriptions().await,
            SyncKind::Status => self.sync_usage(&[None]).await,
            SyncKind::Traffic => {
                // Limited users just crossed 100 %: they are read too.
                self.sync_usage(&[
                    Some(PanelUserStatus::Active),
                    Some(PanelUserStatus::Limited),
                ])
                .await
            }
            SyncKind::Stats => self.collect_stats().await,
            SyncKind::Cleanup => self.cleanup().await,
        };
        let (counts, error) = match &result {
            Ok(counts) => (*counts, None),
            Err((counts, e)) => (*counts, Some(format!("{e:#}"))),
        };
        let label = kind.as_str();
        let m = &self.metrics;
        m.sync_duration
            .with_label_values(&[label])
            .observe(started.elapsed().as_secs_f64());
        m.sync_runs
            .with_label_values(&[
                label,
                if error.is_some() {
                    "failed"
                } else {
                    "succeeded"
                },
            ])
            .inc();
        for (change, n) in [
            ("checked", counts.checked),
            ("created", counts.created),
            ("updated", counts.updated),
            ("failed", counts.failed),
        ] {
            m.sync_users
                .with_label_values(&[label, change])
                .inc_by(n.max(0) as u64);
        }
        let mut conn = self.pool.get().await?;
        runs::finish_run(&mut conn, run_id, counts, error.as_deref()).await?;
        match error {
            None => {
                tracing::info!(
                    kind = label,
                    ?counts,
                    ms = started.elapsed().as_millis() as u64,
                    "panel sync done"
                );
                Ok(counts)
            }
            Some(error) => {
                tracing::warn!(kind = label, ?counts, %error, "panel sync failed; the next run retries");
                Err(JobError::retryable(error))
            }
        }
    }

    /// A cursor over the pages of the panel's users that carry the shop's prefix.
    fn pages(&self, status: Option<PanelUserStatus>) -> Pages<'_> {
        Pages {
            shared: self,
            status,
            offset: 0,
            done: false,
        }
    }

    /// Compares every shop user on the panel with the database and writes only the drifted
    /// ones; creates the users missing on the panel that should have access. The comparison
    /// uses what was read at the start (the database) and page by page (the panel), minutes
    /// apart for many users: it only picks the users to look at. Each write is a provision run
    /// under the user's lock, from the subscription read right before it and the panel user
    /// read again, so a payment made meanwhile is never written back over.
    async fn sync_subscriptions(&self) -> Result<SyncCounts, (SyncCounts, anyhow::Error)> {
        let mut counts = SyncCounts::default();
        let mut wanted: HashMap<String, (Subscription, Option<i64>)> = match self.pool.get().await {
            Ok(mut conn) => match subscriptions::all(&mut conn).await {
                Ok(all) => all
                    .into_iter()
                    .map(|(sub, tg)| (self.panel.username_key(&sub.panel_username), (sub, tg)))
                    .collect(),
                Err(e) => return Err((counts, e.into())),
            },
            Err(e) => return Err((counts, e.into())),
        };
        let mut unknown = 0u64;
        let mut pages = self.pages(None);
        loop {
            let users = match pages.next().await {
                Ok(Some(users)) => users,
                Ok(None) => break,
                Err(e) => return Err((counts, e)),
            };
            let mut drifted = Vec::new();
            for user in users {
                let Some((sub, _)) = wanted.remove(&self.panel.username_key(&user.username)) else {
                    unknown += 1;
                    continue;
                };
                counts.checked += 1;
                let desired = DesiredUser::new(sub.status, sub.expires_at, sub.traffic_limit_bytes);
                if !self.panel.drift(&desired, &user).is_empty() {
                    drifted.push(sub);
                }
            }
            let results: Vec<_> = futures_util::stream::iter(drifted)
                .map(|sub| async move { (self.provision_now(sub.user_id).await, sub) })
                .buffer_unordered(self.settings.write_concurrency)
                .collect()
                .await;
            for (result, sub) in results {
                match result {
                    Ok(Provisioned::Updated | Provisioned::Created) => {
                        counts.updated += 1;
                        tracing::info!(username = %sub.panel_username, "drift corrected on the panel");
                    }
                    // Already in line by the time the lock was taken (another write did it).
                    Ok(Provisioned::Unchanged | Provisioned::NotNeeded) => {}
                    Err(e) => {
                        counts.failed += 1;
                        tracing::warn!(username = %sub.panel_username, error = %e.message, "could not correct drift");
                    }
                }
            }
        }
        // What is left is missing on the panel: re-create what should have access.
        let now = Utc::now();
        let missing: Vec<Subscription> = wanted
            .into_values()
            .map(|(sub, _)| sub)
            .filter(|sub| {
                DesiredUser::new(sub.status, sub.expires_at, sub.traffic_limit_bytes)
                    .needs_panel_user(now)
            })
            .collect();
        let results: Vec<_> = futures_util::stream::iter(missing)
            .map(|sub| async move { (self.provision_now(sub.user_id).await, sub) })
            .buffer_unordered(self.settings.write_concurrency)
            .collect()
            .await;
        for (result, sub) in results {
            counts.checked += 1;
            match result {
                Ok(Provisioned::Created) => counts.created += 1,
                Ok(Provisioned::Updated) => counts.updated += 1,
                Ok(Provisioned::Unchanged | Provisioned::NotNeeded) => {}
                Err(e) => {
                    counts.failed += 1;
                    tracing::warn!(username = %sub.panel_username, error = %e.message, "could not re-create the panel user");
                }
            }
        }
        if unknown > 0 {
            tracing::info!(
                users = unknown,
                "panel users with the shop's prefix but no subscription were left alone"
            );
        }
        Ok(counts)
    }

    /// Reads status, expiry, last online time and traffic into the database; announces traffic
    /// thresholds crossed in the current period. A complete listing of every status also
    /// records which subscriptions have no panel user (what `paid_unprovisioned` looks at).
    async fn sync_usage(
        &self,
        statuses: &[Option<PanelUserStatus>],
    ) -> Result<SyncCounts, (SyncCounts, anyhow::Error)> {
        let mut counts = SyncCounts::default();
        let read = async {
            let mut conn = self.pool.get().await?;
            let listed_from = subscriptions::database_now(&mut conn).await?;
            let all = subscriptions::all(&mut conn).await?;
            anyhow::Ok((listed_from, all))
        };
        let (listed_from, subs): (_, HashMap<String, Subscription>) = match read.await {
            Ok((listed_from, all)) => (
                listed_from,
                all.into_iter()
                    .map(|(sub, _)| (self.panel.username_key(&sub.panel_username), sub))
                    .collect(),
            ),
            Err(e) => return Err((counts, e)),
        };
        for status in statuses {
            let mut pages = self.pages(*status);
            loop {
                let users = match pages.next().await {
                    Ok(Some(users)) => users,
                    Ok(None) => break,
                    Err(e) => return Err((counts, e)),
                };
                let mut batch = UsageBatch::default();
                let mut crossed = Vec::new();
                for user in &users {
                    let Some(sub) = subs.get(&self.panel.username_key(&user.username)) else {
                        continue;
                    };
                    counts.checked += 1;
                    batch.push(
                        &sub.panel_username,
                        user.status,
                        user.expire,
                        user.online_at,
                        user.used_traffic,
                        user.lifetime_used_traffic,
                    );
                    let level = traffic_level(user.used_traffic, sub.traffic_limit_bytes);
                    if level > 0 {
                        crossed.push((sub, level, user.used_traffic));
                    }
                }
                let written = async {
                    let mut conn = self.pool.get().await?;
                    let updated = subscriptions::record_usage(&mut conn, &batch).await?;
                    for (sub, level, used) in crossed {
                        self.announce_traffic(&mut conn, sub, level, used).await?;
                    }
                    anyhow::Ok(updated)
                };
                match written.await {
                    Ok(updated) => counts.updated += updated as i32,
                    Err(e) => return Err((counts, e)),
                }
            }
        }
        if statuses == [None] {
            let marked = async {
                let mut conn = self.pool.get().await?;
                anyhow::Ok(subscriptions::mark_missing_on_panel(&mut conn, listed_from).await?)
            };
            match marked.await {
                Ok(0) => {}
                Ok(n) => tracing::info!(
                    subscriptions = n,
                    "subscriptions without a panel user noted"
                ),
                Err(e) => return Err((counts, e)),
            }
        }
        Ok(counts)
    }

    /// Enqueues the notification of the highest threshold reached, once per threshold per
    /// subscription period (the period is part of its key), however many runs see it.
    async fn announce_traffic(
        &self,
        conn: &mut crate::db::PgConn,
        sub: &Subscription,
        level: u8,
        used: i64,
    ) -> anyhow::Result<()> {
        let job = NotifyJob {
            user_id: sub.user_id,
            notification: Notification::TrafficThreshold {
                percent: level,
                used_bytes: used,
                limit_bytes: sub.traffic_limit_bytes.unwrap_or(0),
            },
            dedup_key: format!(
                "traffic:{level}:{}:{}",
                sub.user_id,
                sub.expires_at.timestamp()
            ),
        };
        if notifications::enqueue_once(conn, &job, self.max_attempts)
            .await?
            .is_some()
        {
            tracing::info!(user = %sub.user_id, percent = level, "traffic threshold crossed; notification enqueued");
        }
        Ok(())
    }

    /// The panel's system stats into `panel_stats` and the panel gauges.
    async fn collect_stats(&self) -> Result<SyncCounts, (SyncCounts, anyhow::Error)> {
        let counts = SyncCounts::default();
        let stats = match self.panel.system().await {
            Ok(stats) => stats,
            Err(e) => {
                return Err((
                    counts,
                    anyhow::Error::new(e).context("reading the panel's system stats"),
                ));
            }
        };
        let m = &self.metrics;
        for (status, n) in [
            ("active", stats.users_active),
            ("on_hold", stats.users_on_hold),
            ("disabled", stats.users_disabled),
            ("expired", stats.users_expired),
            ("limited", stats.users_limited),
        ] {
            m.panel_users.with_label_values(&[status]).set(n);
        }
        m.panel_online_users.set(stats.online_users);
        m.panel_bandwidth
            .with_label_values(&["incoming"])
            .set(stats.incoming_bandwidth);
        m.panel_bandwidth
            .with_label_values(&["outgoing"])
            .set(stats.outgoing_bandwidth);
        for (direction, speed) in [
            ("incoming", stats.incoming_bandwidth_speed),
            ("outgoing", stats.outgoing_bandwidth_speed),
        ] {
            if let Some(speed) = speed {
                m.panel_bandwidth_speed
                    .with_label_values(&[direction])
                    .set(speed);
            }
        }
        m.panel_cpu_usage.set(stats.cpu_usage);
        m.panel_memory
            .with_label_values(&["total"])
            .set(stats.mem_total);
        m.panel_memory
            .with_label_values(&["used"])
            .set(stats.mem_used);
        let row = NewPanelStats {
            version: stats.version,
            mem_total: stats.mem_total,
            mem_used: stats.mem_used,
            cpu_cores: stats.cpu_cores,
            cpu_usage: stats.cpu_usage,
            total_user: stats.total_user,
            online_users: stats.online_users,
            users_active: stats.users_active,
            users_on_hold: stats.users_on_hold,
            users_disabled: stats.users_disabled,
            users_expired: stats.users_expired,
            users_limited: stats.users_limited,
            incoming_bandwidth: stats.incoming_bandwidth,
            outgoing_bandwidth: stats.outgoing_bandwidth,
            // A panel that does not report speeds (PasarGuard) stores 0 (the columns are NOT NULL).
            incoming_bandwidth_speed: stats.incoming_bandwidth_speed.unwrap_or(0),
            outgoing_bandwidth_speed: stats.outgoing_bandwidth_speed.unwrap_or(0),
        };
        let stored = async {
            let mut conn = self.pool.get().await?;
            runs::record_panel_stats(&mut conn, &row).await?;
            anyhow::Ok(())
        };
        stored.await.map_err(|e| (counts, e))?;
        Ok(counts)
    }

    /// Disables or deletes panel users expired for longer than `PANEL_CLEANUP_AFTER_DAYS`.
    /// The subscription is disabled in the database too, so no sync brings the user back; a
    /// renewal enables it again. The list read at the start is only a list of candidates: each
    /// user's change is decided again by a conditional update under the user's lock, so one who
    /// paid meanwhile is left alone.
    async fn cleanup(&self) -> Result<SyncCounts, (SyncCounts, anyhow::Error)> {
        let mut counts = SyncCounts::default();
        let cutoff = Utc::now() - ChronoDuration::days(i64::from(self.settings.cleanup_after_days));
        let expired = match self.pool.get().await {
            Ok(mut conn) => subscriptions::expired_before(&mut conn, cutoff)
                .await
                .map_err(|e| (counts, e.into()))?,
            Err(e) => return Err((counts, e.into())),
        };
        let delete = self.settings.cleanup_action == CleanupAction::Delete;
        let results: Vec<_> = futures_util::stream::iter(expired)
            .map(|sub| async move { (self.clean_up(sub.user_id, cutoff, delete).await, sub) })
            .buffer_unordered(self.settings.write_concurrency)
            .collect()
            .await;
        for (result, sub) in results {
            counts.checked += 1;
            match result {
                Ok(true) => counts.updated += 1,
                Ok(false) => {
                    tracing::info!(username = %sub.panel_username, "no longer expired: left alone by the cleanup");
                }
                Err(e) => {
                    counts.failed += 1;
                    tracing::warn!(username = %sub.panel_username, error = %e.message, "cleanup failed for a user");
                }
            }
        }
        Ok(counts)
    }
}

/// Pages of `GET /api/users?search=<prefix>`, filtered to the users whose name starts with the
/// prefix (the panel's search also matches inside names and notes).
struct Pages<'a> {
    shared: &'a Shared,
    status: Option<PanelUserStatus>,
    offset: u64,
    done: bool,
}

impl Pages<'_> {
    async fn next(&mut self) -> anyhow::Result<Option<Vec<PanelUser>>> {
        if self.done {
            return Ok(None);
        }
        let prefix = self.shared.settings.username_prefix.as_str();
        let query = UserQuery {
            search: Some(prefix),
            status: self.status,
        };
        let page = self
            .shared
            .panel
            .list_users(&query, self.offset, self.shared.settings.page_size)
            .await
            .context("listing the panel's users")?;
        let received = page.users.len() as u64;
        self.offset += received;
        self.done = received == 0 || self.offset >= page.total;
        Ok(Some(
            page.users
                .into_iter()
                .filter(|u| {
                    self.shared
                        .panel
                        .username_key(&u.username)
                        .starts_with(prefix)
                })
                .collect(),
        ))
    }
}
