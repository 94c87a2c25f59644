//! What a subscriber does and sees, whether in the bot or in the web cabinet: taking the trial,
//! the state of their access, their referral link. The bot's flows and the cabinet's pages
//! both call these, so a rule lives once.

use chrono::{DateTime, Utc};
use diesel_async::AsyncConnection;

use crate::actors::marzban::provision_job;
use crate::config::Settings;
use crate::db::models::{Subscription, User};
use crate::db::subscriptions::{self, Grant};
use crate::db::{PgConn, jobs, notifications, users};
use crate::domain::notifications::{Notification, NotifyJob};
use crate::domain::{SubscriptionStatus, UserId};

/// What asking for the trial did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrialOutcome {
    /// The trial runs until then; the panel account and the "trial started" message follow.
    Started { days: i32, ends_at: DateTime<Utc> },
    /// Already taken (then).
    Used { at: DateTime<Utc> },
    /// TRIAL_DAYS=0.
    Off,
}

/// Whether `user` may still take the trial.
pub fn trial_available(settings: &Settings, user: &User) -> bool {
    settings.bot.trial_days > 0 && user.trial_used_at.is_none()
}

/// Starts TRIAL_DAYS of access for `user`, once per account: the subscription, its provisioning
/// job and the "trial started" message commit together.
pub async fn start_trial(
    conn: &mut PgConn,
    settings: &Settings,
    user: &User,
) -> diesel::QueryResult<TrialOutcome> {
    let days = settings.bot.trial_days;
    if days == 0 {
        return Ok(TrialOutcome::Off);
    }
    let days = i32::try_from(days).unwrap_or(7);
    let id = user.id;
    let name = user.panel_username(settings.panel_username_prefix());
    let attempts = settings.jobs.max_attempts;
    let trial = Grant::Trial {
        traffic_limit_bytes: settings.bot.trial_traffic_limit,
    };
    let taken = conn
        .transaction::<_, diesel::result::Error, _>(async |conn| {
            if !users::take_trial(conn, id).await? {
                return Ok(None);
            }
            let end = subscriptions::extend(conn, id, &name, days, trial).await?;
            jobs::enqueue(conn, provision_job(id), attempts).await?;
            notify(
                conn,
                id,
                format!("trial:{id}"),
                Notification::TrialStarted {
                    days: u32::try_from(days).unwrap_or(0),
                    expires_at: end,
                },
                attempts,
            )
            .await?;
            Ok(Some(end))
        })
        .await?;
    match taken {
        Some(ends_at) => {
            tracing::info!(user = %id, days, "trial started");
            Ok(TrialOutcome::Started { days, ends_at })
        }
        None => {
            let at = users::find(conn, id)
                .await?
                .and_then(|u| u.trial_used_at)
                .unwrap_or_else(Utc::now);
            Ok(TrialOutcome::Used { at })
        }
    }
}

/// Enqueues `notification` for `user` once per `key` (inside the caller's transaction).
pub async fn notify(
    conn: &mut PgConn,
    user: UserId,
    key: String,
    notification: Notification,
    max_attempts: i32,
) -> diesel::QueryResult<()> {
    let job = NotifyJob {
        user_id: user,
        notification,
        dedup_key: key,
    };
    notifications::enqueue_once(conn, &job, max_attempts)
        .await
        .map(|_| ())
}

/// Where a subscription stands for the person using it: `active`, `limited` (traffic used up),
/// `expired` or `disabled`, as the bot's /status and the cabinet show it (`state-<slug>`).
pub fn access_state(sub: &Subscription, now: DateTime<Utc>) -> &'static str {
    let limited = sub
        .traffic_limit_bytes
        .is_some_and(|limit| sub.traffic_used_bytes >= limit);
    match sub.status {
        SubscriptionStatus::Active if sub.expires_at <= now => "expired",
        SubscriptionStatus::Active if limited => "limited",
        SubscriptionStatus::Active => "active",
        SubscriptionStatus::Expired => "expired",
        SubscriptionStatus::Disabled => "disabled",
    }
}

/// The user's invitation link: the bot's `/start ref_<code>`.
pub fn referral_link(bot_username: &str, referral_code: &str) -> String {
    format!("https://t.me/{bot_username}?start=ref_{referral_code}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn referral_links_start_the_bot_with_the_code() {
        assert_eq!(
            referral_link("shop_bot", "AbC123"),
            "https://t.me/shop_bot?start=ref_AbC123"
        );
    }
}
