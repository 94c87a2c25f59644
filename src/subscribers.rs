//! What a subscriber does and sees, whether in the bot or in the web cabinet: taking the trial,
//! the state of their access, their referral link, linking Telegram to a web-only account. The
//! bot's flows and the cabinet's pages both call these, so a rule lives once.

use chrono::{DateTime, Utc};
use diesel_async::AsyncConnection;

use crate::actors::marzban::provision_job;
use crate::config::Settings;
use crate::db::models::{Subscription, User};
use crate::db::subscriptions::{self, Grant};
use crate::db::users::TelegramProfile;
use crate::db::{PgConn, jobs, link_codes, notifications, users};
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

/// The link that opens the bot with `/start <payload>`.
pub fn bot_start_link(bot_username: &str, payload: &str) -> String {
    format!("https://t.me/{bot_username}?start={payload}")
}

/// The user's invitation link: the bot's `/start ref_<code>`.
pub fn referral_link(bot_username: &str, referral_code: &str) -> String {
    bot_start_link(bot_username, &format!("ref_{referral_code}"))
}

/// How long a Telegram link code works.
pub const LINK_CODE_LIFETIME: chrono::Duration = chrono::Duration::minutes(15);

/// The letters of a link code: no 0/O, 1/I/L or U, so a code read off a phone is typed right.
const LINK_CODE_ALPHABET: &[u8] = b"ABCDEFGHJKMNPQRSTVWXYZ23456789";

/// The form a typed code is compared in: upper case, without spaces and dashes.
fn normalize_link_code(code: &str) -> String {
    code.chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .flat_map(char::to_uppercase)
        .collect()
}

fn link_code_hash(code: &str) -> Vec<u8> {
    use sha2::Digest as _;
    sha2::Sha256::digest(normalize_link_code(code).as_bytes()).to_vec()
}

/// A new code that links a Telegram account to the web-only account `user`, replacing its
/// earlier one, valid [`LINK_CODE_LIFETIME`]. The subscriber sends it to the bot.
pub async fn new_link_code(conn: &mut PgConn, user: UserId) -> diesel::QueryResult<String> {
    let code = crate::domain::random_code::<8>(LINK_CODE_ALPHABET);
    link_codes::replace(
        conn,
        user,
        &link_code_hash(&code),
        Utc::now() + LINK_CODE_LIFETIME,
    )
    .await?;
    Ok(code)
}

/// What sending a link code to the bot did.
#[derive(Debug, Clone)]
pub enum LinkOutcome {
    /// The web-only account now has this Telegram account; the account that Telegram account
    /// had in the shop (only a name: it held nothing) is gone.
    Linked(Box<User>),
    /// No live code like it: mistyped, used, or older than [`LINK_CODE_LIFETIME`].
    UnknownCode,
    /// This Telegram account holds a subscription, payments, the trial or referrals of its own
    /// in the shop; two accounts with history are not merged here (support does it).
    TelegramHasHistory,
    /// The web account has linked another Telegram account meanwhile.
    AlreadyLinked,
}

/// Links the Telegram account `who` (whose shop account, registered when it wrote to the bot,
/// is `telegram_user`) to the web-only account of `code`, in one transaction: the code is
/// used, the Telegram account's empty shop account removed, the web account given the
/// Telegram id. A refusal changes nothing (the code still works).
pub async fn link_telegram(
    conn: &mut PgConn,
    code: &str,
    telegram_user: UserId,
    who: &TelegramProfile,
) -> diesel::QueryResult<LinkOutcome> {
    let hash = link_code_hash(code);
    conn.transaction::<_, diesel::result::Error, _>(async |conn| {
        let Some(web_id) = link_codes::lock_live(conn, &hash).await? else {
            return Ok(LinkOutcome::UnknownCode);
        };
        let Some(web) = users::lock(conn, web_id).await? else {
            return Ok(LinkOutcome::UnknownCode);
        };
        if web.telegram_id.is_some() {
            link_codes::delete_for(conn, web_id).await?;
            return Ok(LinkOutcome::AlreadyLinked);
        }
        // Locked first: a trial or an order of this account waits, then finds it gone.
        if users::lock_to_remove(conn, telegram_user).await?.is_some() {
            if users::has_history(conn, telegram_user).await? {
                return Ok(LinkOutcome::TelegramHasHistory);
            }
            users::delete_empty(conn, telegram_user).await?;
        }
        link_codes::delete_for(conn, web_id).await?;
        let linked = users::attach_telegram(conn, web_id, who).await?;
        Ok(LinkOutcome::Linked(Box::new(linked)))
    })
    .await
    .inspect(|outcome| match outcome {
        LinkOutcome::Linked(user) => {
            tracing::info!(user = %user.id, removed = %telegram_user, "Telegram linked to a web account");
        }
        other => tracing::info!(telegram_user = %telegram_user, ?other, "Telegram link refused"),
    })
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

    #[test]
    fn a_link_code_is_the_same_however_it_is_typed() {
        assert_eq!(normalize_link_code(" abcd-2345 "), "ABCD2345");
        assert_eq!(link_code_hash("abcd 2345"), link_code_hash("ABCD2345"));
        assert_ne!(link_code_hash("ABCD2345"), link_code_hash("ABCD2346"));
    }
}
