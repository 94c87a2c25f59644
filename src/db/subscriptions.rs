//! Subscriptions: what each user has paid for (the source of truth the panel is made to match)
//! and what the panel last reported about it.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{Array, BigInt, Nullable, Text, Timestamptz};
use diesel_async::RunQueryDsl;

use crate::db::PgConn;
use crate::db::models::Subscription;
use crate::db::schema::{plans, subscriptions, users};
use crate::domain::{PanelUserStatus, SubscriptionStatus, UserId};

/// A user's subscription and Telegram id.
pub async fn find_by_user(
    conn: &mut PgConn,
    user_id: UserId,
) -> QueryResult<Option<(Subscription, Option<i64>)>> {
    subscriptions::table
        .inner_join(users::table)
        .filter(subscriptions::user_id.eq(user_id))
        .select((Subscription::as_select(), users::telegram_id))
        .first(conn)
        .await
        .optional()
}

/// Every subscription with its user's Telegram id (the syncs compare them with the panel).
pub async fn all(conn: &mut PgConn) -> QueryResult<Vec<(Subscription, Option<i64>)>> {
    subscriptions::table
        .inner_join(users::table)
        .select((Subscription::as_select(), users::telegram_id))
        .order(subscriptions::id)
        .load(conn)
        .await
}

/// What the panel reported for one user after a write.
#[derive(Debug, Clone)]
pub struct PanelReport<'a> {
    pub status: PanelUserStatus,
    /// The panel's `expire` (unix seconds; `None`: never).
    pub expire: Option<i64>,
    pub used_bytes: i64,
    pub lifetime_used_bytes: i64,
    pub online_at: Option<DateTime<Utc>>,
    /// Stored when given (a new user or a revoked link); the panel mints a new URL on every
    /// answer and all stay valid, so an unchanged link is not rewritten.
    pub subscription_url: Option<&'a str>,
}

pub async fn record_panel_report(
    conn: &mut PgConn,
    user_id: UserId,
    report: &PanelReport<'_>,
) -> QueryResult<()> {
    let target = subscriptions::table.filter(subscriptions::user_id.eq(user_id));
    let changes = (
        subscriptions::panel_status.eq(Some(report.status)),
        subscriptions::panel_expire.eq(Some(report.expire.unwrap_or(0))),
        subscriptions::traffic_used_bytes.eq(report.used_bytes.max(0)),
        subscriptions::lifetime_used_bytes.eq(report.lifetime_used_bytes.max(0)),
        subscriptions::online_at.eq(report.online_at),
        subscriptions::last_synced_at.eq(diesel::dsl::now),
    );
    match report.subscription_url {
        Some(url) => {
            diesel::update(target)
                .set((changes, subscriptions::subscription_url.eq(url)))
                .execute(conn)
                .await
        }
        None => diesel::update(target).set(changes).execute(conn).await,
    }
    .map(|_| ())
}

/// Stores the link when none is stored yet (e.g. the user was created by an earlier run).
pub async fn fill_missing_subscription_url(
    conn: &mut PgConn,
    user_id: UserId,
    url: &str,
) -> QueryResult<()> {
    diesel::update(
        subscriptions::table
            .filter(subscriptions::user_id.eq(user_id))
            .filter(subscriptions::subscription_url.is_null()),
    )
    .set(subscriptions::subscription_url.eq(url))
    .execute(conn)
    .await
    .map(|_| ())
}

/// The user no longer exists on the panel: no link, no panel status, and the subscription is
/// disabled so that no sync creates the user again (a renewal enables it).
pub async fn mark_removed_from_panel(conn: &mut PgConn, user_id: UserId) -> QueryResult<()> {
    diesel::update(subscriptions::table.filter(subscriptions::user_id.eq(user_id)))
        .set((
            subscriptions::status.eq(SubscriptionStatus::Disabled),
            subscriptions::panel_status.eq(None::<PanelUserStatus>),
            subscriptions::panel_expire.eq(None::<i64>),
            subscriptions::subscription_url.eq(None::<String>),
            subscriptions::last_synced_at.eq(diesel::dsl::now),
        ))
        .execute(conn)
        .await
        .map(|_| ())
}

/// Sets the status the panel is made to match. Enabling a subscription whose time is up makes
/// it `expired`, not `active`.
pub async fn set_enabled(conn: &mut PgConn, user_id: UserId, enabled: bool) -> QueryResult<bool> {
    let target = subscriptions::table.filter(subscriptions::user_id.eq(user_id));
    let n = if enabled {
        diesel::sql_query(
            "UPDATE subscriptions SET status = CASE WHEN expires_at > now() THEN 'active' ELSE 'expired' END \
             WHERE user_id = $1",
        )
        .bind::<BigInt, _>(user_id.0)
        .execute(conn)
        .await?
    } else {
        diesel::update(target)
            .set(subscriptions::status.eq(SubscriptionStatus::Disabled))
            .execute(conn)
            .await?
    };
    Ok(n == 1)
}

/// Traffic counters and status of many users at once (one statement per page of the panel).
#[derive(Debug, Clone, Default)]
pub struct UsageBatch {
    pub usernames: Vec<String>,
    pub statuses: Vec<String>,
    /// The panel's `expire`, 0 for never.
    pub expires: Vec<i64>,
    pub online_at: Vec<Option<DateTime<Utc>>>,
    pub used: Vec<i64>,
    pub lifetime: Vec<i64>,
}

impl UsageBatch {
    pub fn push(
        &mut self,
        username: &str,
        status: PanelUserStatus,
        expire: Option<i64>,
        online_at: Option<DateTime<Utc>>,
        used: i64,
        lifetime: i64,
    ) {
        self.usernames.push(username.to_owned());
        self.statuses.push(status.as_str().to_owned());
        self.expires.push(expire.unwrap_or(0));
        self.online_at.push(online_at);
        self.used.push(used.max(0));
        self.lifetime.push(lifetime.max(0));
    }

    pub fn is_empty(&self) -> bool {
        self.usernames.is_empty()
    }
}

/// Writes a batch; returns how many subscriptions matched.
pub async fn record_usage(conn: &mut PgConn, batch: &UsageBatch) -> QueryResult<usize> {
    if batch.is_empty() {
        return Ok(0);
    }
    diesel::sql_query(
        "UPDATE subscriptions s SET panel_status = v.status, panel_expire = v.expire, \
             online_at = v.online_at, traffic_used_bytes = v.used, lifetime_used_bytes = v.lifetime, \
             last_synced_at = now() \
         FROM unnest($1::text[], $2::text[], $3::timestamptz[], $4::bigint[], $5::bigint[], \
                     $6::bigint[]) \
             AS v(username, status, online_at, used, lifetime, expire) \
         WHERE s.panel_username = v.username",
    )
    .bind::<Array<Text>, _>(&batch.usernames)
    .bind::<Array<Text>, _>(&batch.statuses)
    .bind::<Array<Nullable<Timestamptz>>, _>(&batch.online_at)
    .bind::<Array<BigInt>, _>(&batch.used)
    .bind::<Array<BigInt>, _>(&batch.lifetime)
    .bind::<Array<BigInt>, _>(&batch.expires)
    .execute(conn)
    .await
}

/// Subscriptions expired before `cutoff` whose panel user is still there and not yet dealt
/// with (for a `disable` cleanup: not yet disabled in the database).
pub async fn expired_before(
    conn: &mut PgConn,
    cutoff: DateTime<Utc>,
) -> QueryResult<Vec<Subscription>> {
    subscriptions::table
        .filter(subscriptions::expires_at.lt(cutoff))
        .filter(subscriptions::status.ne(SubscriptionStatus::Disabled))
        .select(Subscription::as_select())
        .order(subscriptions::id)
        .load(conn)
        .await
}

/// The cleanup's decision, taken again in the write itself: disables the subscription only if
/// it is still expired before `cutoff` and not disabled yet. `false`: a payment (or an admin)
/// changed it since the cleanup read it, and the cleanup leaves it alone.
pub async fn disable_if_expired_before(
    conn: &mut PgConn,
    user_id: UserId,
    cutoff: DateTime<Utc>,
) -> QueryResult<bool> {
    let n = diesel::update(
        subscriptions::table
            .filter(subscriptions::user_id.eq(user_id))
            .filter(subscriptions::expires_at.lt(cutoff))
            .filter(subscriptions::status.ne(SubscriptionStatus::Disabled)),
    )
    .set(subscriptions::status.eq(SubscriptionStatus::Disabled))
    .execute(conn)
    .await?;
    Ok(n == 1)
}

/// The panel user was deleted: no link, no panel status (the subscription's status is left as
/// it is — the cleanup set it before the delete, and a payment since then wins).
pub async fn forget_panel_user(conn: &mut PgConn, user_id: UserId) -> QueryResult<()> {
    diesel::update(subscriptions::table.filter(subscriptions::user_id.eq(user_id)))
        .set((
            subscriptions::panel_status.eq(None::<PanelUserStatus>),
            subscriptions::panel_expire.eq(None::<i64>),
            subscriptions::subscription_url.eq(None::<String>),
            subscriptions::last_synced_at.eq(diesel::dsl::now),
        ))
        .execute(conn)
        .await
        .map(|_| ())
}

/// After a complete listing of the panel that began at `listed_from` (database time): the
/// subscriptions it did not report (nor anything else since) have no panel user — no panel
/// status, no panel expiry. Returns how many. (A user the listing missed because another was
/// deleted under its pages is read again by `paid_unprovisioned` before anything is done.)
pub async fn mark_missing_on_panel(
    conn: &mut PgConn,
    listed_from: DateTime<Utc>,
) -> QueryResult<usize> {
    diesel::update(
        subscriptions::table
            .filter(
                subscriptions::last_synced_at
                    .is_null()
                    .or(subscriptions::last_synced_at.lt(listed_from)),
            )
            .filter(
                subscriptions::panel_status
                    .is_not_null()
                    .or(subscriptions::panel_expire.is_not_null()),
            ),
    )
    .set((
        subscriptions::panel_status.eq(None::<PanelUserStatus>),
        subscriptions::panel_expire.eq(None::<i64>),
    ))
    .execute(conn)
    .await
}

/// The database's clock (listings compare with timestamps the database wrote).
pub async fn database_now(conn: &mut PgConn) -> QueryResult<DateTime<Utc>> {
    diesel::select(diesel::dsl::now.into_sql::<Timestamptz>())
        .get_result::<DateTime<Utc>>(conn)
        .await
}

/// A subscription about to end or just ended: whose, when, and whether it is a trial.
#[derive(Debug, Clone, Copy, QueryableByName)]
pub struct Ending {
    #[diesel(sql_type = BigInt)]
    pub user_id: UserId,
    #[diesel(sql_type = Timestamptz)]
    pub expires_at: DateTime<Utc>,
    #[diesel(sql_type = diesel::sql_types::Bool)]
    pub is_trial: bool,
}

/// Running subscriptions that end within `within` from now.
pub async fn ending_within(
    conn: &mut PgConn,
    within: std::time::Duration,
) -> QueryResult<Vec<Ending>> {
    diesel::sql_query(
        "SELECT user_id, expires_at, is_trial FROM subscriptions \
         WHERE status = 'active' AND expires_at > now() \
           AND expires_at <= now() + make_interval(secs => $1) \
         ORDER BY user_id",
    )
    .bind::<diesel::sql_types::Double, _>(within.as_secs_f64())
    .load(conn)
    .await
}

/// Marks running subscriptions whose time is up as expired and returns them.
pub async fn expire_ended(conn: &mut PgConn) -> QueryResult<Vec<Ending>> {
    diesel::sql_query(
        "UPDATE subscriptions SET status = 'expired' \
         WHERE status = 'active' AND expires_at <= now() \
         RETURNING user_id, expires_at, is_trial",
    )
    .load(conn)
    .await
}

/// What a grant of days is, which decides the traffic limit the subscription gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grant {
    /// A paid period of a plan: the subscription takes the plan's traffic limit (a plan without
    /// one makes it unlimited). A plan with a limit sells an allowance per period, so the period
    /// also owes a reset of the panel's traffic counter (`traffic_period` counts up; the
    /// provision job resets and records it in `traffic_reset_period`).
    Plan(crate::domain::PlanId),
    /// The free trial, limited to `traffic_limit_bytes` (TRIAL_TRAFFIC_LIMIT; `None`:
    /// unlimited). Only a subscription the trial creates is a trial: days added to an existing
    /// one are [`Grant::Days`].
    Trial { traffic_limit_bytes: Option<i64> },
    /// Days without a plan (a promo code's bonus, a referral, an admin's grant): the limit stays
    /// as it is (a new subscription has none).
    Days,
}

/// Gives a user `days` more: paid time is added to what remains (an ended subscription starts
/// again from now); creates the subscription on the first purchase. The subscription becomes
/// active — unless the user is banned: then it stays disabled (a payment that was under way when
/// an admin banned the user buys time, not a way around the ban). `grant` decides the traffic
/// limit (see [`Grant`]). The row is locked for the caller's transaction. Returns the new end.
pub async fn extend(
    conn: &mut PgConn,
    user_id: UserId,
    panel_username: &str,
    days: i32,
    grant: Grant,
) -> QueryResult<DateTime<Utc>> {
    let now = Utc::now();
    let current: Option<DateTime<Utc>> = subscriptions::table
        .filter(subscriptions::user_id.eq(user_id))
        .select(subscriptions::expires_at)
        .for_update()
        .first(conn)
        .await
        .optional()?;
    let end = crate::domain::pricing::extend(current, now, days);
    let banned: bool = users::table
        .find(user_id)
        .select(users::banned)
        .first(conn)
        .await
        .optional()?
        .unwrap_or(false);
    let status = if banned {
        SubscriptionStatus::Disabled
    } else {
        SubscriptionStatus::Active
    };
    // The plan's limit as it is now (a plan that orders name is never deleted, only deactivated).
    let plan_limit = match grant {
        Grant::Plan(plan) => plans::table
            .find(plan)
            .select(plans::traffic_limit_bytes)
            .first::<Option<i64>>(conn)
            .await
            .optional()?
            .flatten(),
        Grant::Trial { .. } | Grant::Days => None,
    };
    if current.is_some() {
        let target = subscriptions::table.filter(subscriptions::user_id.eq(user_id));
        match grant {
            Grant::Plan(plan) => {
                let owed = i32::from(plan_limit.is_some());
                diesel::update(target)
                    .set((
                        subscriptions::expires_at.eq(end),
                        subscriptions::status.eq(status),
                        subscriptions::is_trial.eq(false),
                        subscriptions::plan_id.eq(plan),
                        subscriptions::traffic_limit_bytes.eq(plan_limit),
                        subscriptions::traffic_period.eq(subscriptions::traffic_period + owed),
                    ))
                    .execute(conn)
                    .await?
            }
            Grant::Trial { .. } | Grant::Days => {
                diesel::update(target)
                    .set((
                        subscriptions::expires_at.eq(end),
                        subscriptions::status.eq(status),
                    ))
                    .execute(conn)
                    .await?
            }
        };
    } else {
        // A new panel user starts at 0 bytes used: no reset is owed for the first period.
        let (plan_id, is_trial, limit) = match grant {
            Grant::Plan(plan) => (Some(plan), false, plan_limit),
            Grant::Trial {
                traffic_limit_bytes,
            } => (None, true, traffic_limit_bytes),
            Grant::Days => (None, false, None),
        };
        diesel::insert_into(subscriptions::table)
            .values((
                subscriptions::user_id.eq(user_id),
                subscriptions::panel_username.eq(panel_username),
                subscriptions::expires_at.eq(end),
                subscriptions::status.eq(status),
                subscriptions::is_trial.eq(is_trial),
                subscriptions::plan_id.eq(plan_id),
                subscriptions::traffic_limit_bytes.eq(limit),
            ))
            .execute(conn)
            .await?;
    }
    Ok(end)
}

/// Records that the panel's traffic counter was reset for `period` (never moves back, so a
/// slower run of an older period cannot undo a newer record).
pub async fn record_traffic_reset(
    conn: &mut PgConn,
    user_id: UserId,
    period: i32,
) -> QueryResult<()> {
    diesel::update(
        subscriptions::table
            .filter(subscriptions::user_id.eq(user_id))
            .filter(subscriptions::traffic_reset_period.lt(period)),
    )
    .set(subscriptions::traffic_reset_period.eq(period))
    .execute(conn)
    .await
    .map(|_| ())
}

/// Takes `days` back (a refund); the subscription may end at once. A disabled subscription (a
/// ban, an admin's disable, the cleanup) stays disabled, and so does a banned user's: a refund
/// moves the end, never the access decision. Returns the new end.
pub async fn shorten(
    conn: &mut PgConn,
    user_id: UserId,
    days: i32,
) -> QueryResult<Option<DateTime<Utc>>> {
    let current: Option<(DateTime<Utc>, SubscriptionStatus)> = subscriptions::table
        .filter(subscriptions::user_id.eq(user_id))
        .select((subscriptions::expires_at, subscriptions::status))
        .for_update()
        .first(conn)
        .await
        .optional()?;
    let Some((current, status)) = current else {
        return Ok(None);
    };
    let banned: bool = users::table
        .find(user_id)
        .select(users::banned)
        .first(conn)
        .await
        .optional()?
        .unwrap_or(false);
    let end = crate::domain::pricing::take_back(current, days);
    let status = if banned || status == SubscriptionStatus::Disabled {
        SubscriptionStatus::Disabled
    } else if end > Utc::now() {
        SubscriptionStatus::Active
    } else {
        SubscriptionStatus::Expired
    };
    diesel::update(subscriptions::table.filter(subscriptions::user_id.eq(user_id)))
        .set((
            subscriptions::expires_at.eq(end),
            subscriptions::status.eq(status),
        ))
        .execute(conn)
        .await?;
    Ok(Some(end))
}

/// Turns automatic renewal on (with the saved payment method or Star subscription) or off.
pub async fn set_auto_renew(
    conn: &mut PgConn,
    user_id: UserId,
    method: Option<(crate::domain::PaymentProvider, &str)>,
) -> QueryResult<()> {
    let target = subscriptions::table.filter(subscriptions::user_id.eq(user_id));
    match method {
        Some((provider, id)) => {
            diesel::update(target)
                .set((
                    subscriptions::auto_renew.eq(true),
                    subscriptions::auto_renew_provider.eq(provider),
                    subscriptions::auto_renew_method_id.eq(id),
                ))
                .execute(conn)
                .await
        }
        None => {
            diesel::update(target)
                .set((
                    subscriptions::auto_renew.eq(false),
                    subscriptions::auto_renew_provider.eq(None::<crate::domain::PaymentProvider>),
                    subscriptions::auto_renew_method_id.eq(None::<String>),
                ))
                .execute(conn)
                .await
        }
    }
    .map(|_| ())
}

/// Subscriptions renewing automatically through `provider` that end within `days` days (or ended
/// in the last day, so that a run missed during downtime still charges).
pub async fn due_for_renewal(
    conn: &mut PgConn,
    provider: crate::domain::PaymentProvider,
    days: u32,
) -> QueryResult<Vec<Subscription>> {
    let now = Utc::now();
    subscriptions::table
        .filter(subscriptions::auto_renew.eq(true))
        .filter(subscriptions::auto_renew_provider.eq(provider))
        .filter(subscriptions::status.ne(SubscriptionStatus::Disabled))
        .filter(subscriptions::expires_at.le(now + chrono::Duration::days(i64::from(days))))
        .filter(subscriptions::expires_at.gt(now - chrono::Duration::days(1)))
        .select(Subscription::as_select())
        .order(subscriptions::expires_at)
        .load(conn)
        .await
}

/// A user's subscription, locked for the caller's transaction.
pub async fn lock_by_user(conn: &mut PgConn, user_id: UserId) -> QueryResult<Option<Subscription>> {
    subscriptions::table
        .filter(subscriptions::user_id.eq(user_id))
        .select(Subscription::as_select())
        .for_update()
        .first(conn)
        .await
        .optional()
}

/// Which subscriptions the admin list shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListState {
    /// Not disabled and not ended.
    Active,
    /// Active and ending within this many days.
    Expiring { within_days: i64 },
    /// Ended (whatever the status).
    Expired,
}

/// The subscriptions in `state` (and of trials or not), as of `now`.
fn filtered(
    state: Option<ListState>,
    trial: Option<bool>,
    now: DateTime<Utc>,
) -> subscriptions::BoxedQuery<'static, diesel::pg::Pg> {
    let mut q = subscriptions::table.into_boxed();
    match state {
        None => {}
        Some(ListState::Active) => {
            q = q
                .filter(subscriptions::status.ne(SubscriptionStatus::Disabled))
                .filter(subscriptions::expires_at.gt(now));
        }
        Some(ListState::Expiring { within_days }) => {
            q = q
                .filter(subscriptions::status.ne(SubscriptionStatus::Disabled))
                .filter(subscriptions::expires_at.gt(now))
                .filter(subscriptions::expires_at.le(now + chrono::Duration::days(within_days)));
        }
        Some(ListState::Expired) => q = q.filter(subscriptions::expires_at.le(now)),
    }
    if let Some(trial) = trial {
        q = q.filter(subscriptions::is_trial.eq(trial));
    }
    q
}

/// How many subscriptions [`list`] would list in all (one count, no page).
pub async fn count(
    conn: &mut PgConn,
    state: Option<ListState>,
    trial: Option<bool>,
) -> QueryResult<i64> {
    filtered(state, trial, Utc::now())
        .count()
        .get_result(conn)
        .await
}

/// A page of subscriptions with their users' id, Telegram id and username, soonest end first,
/// and how many match in all. The count reads `subscriptions` alone (every row has its user).
pub async fn list(
    conn: &mut PgConn,
    state: Option<ListState>,
    trial: Option<bool>,
    page: i64,
    per_page: i64,
) -> QueryResult<(
    Vec<(Subscription, (UserId, Option<i64>, Option<String>))>,
    i64,
)> {
    let now = Utc::now();
    let filtered = || filtered(state, trial, now);
    let total = filtered().count().get_result(conn).await?;
    let page_rows: Vec<Subscription> = filtered()
        .select(Subscription::as_select())
        .order((subscriptions::expires_at.asc(), subscriptions::id.asc()))
        .limit(per_page)
        .offset((page - 1).saturating_mul(per_page))
        .load(conn)
        .await?;
    let owners: std::collections::HashMap<UserId, (UserId, Option<i64>, Option<String>)> =
        users::table
            .filter(users::id.eq_any(page_rows.iter().map(|s| s.user_id).collect::<Vec<_>>()))
            .select((users::id, users::telegram_id, users::username))
            .load::<(UserId, Option<i64>, Option<String>)>(conn)
            .await?
            .into_iter()
            .map(|u| (u.0, u))
            .collect();
    let items = page_rows
        .into_iter()
        .filter_map(|s| owners.get(&s.user_id).cloned().map(|u| (s, u)))
        .collect();
    Ok((items, total))
}
