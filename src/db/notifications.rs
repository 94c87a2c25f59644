//! Notifications: the logical ones asked for (`notification_keys`, enqueued once each) and their
//! deliveries per channel (`notifications`: pending, sent, failed, skipped).

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Jsonb, Nullable, Text};
use diesel_async::RunQueryDsl;
use serde_json::Value;

use crate::db::PgConn;
use crate::db::jobs::{self, NewJob};
use crate::db::models::Notification as NotificationRow;
use crate::db::schema::{notification_keys, notifications};
use crate::domain::notifications::{NOTIFY_JOB, NotifyJob};
use crate::domain::{AlertId, BroadcastId, JobId, NotificationChannel, NotificationStatus, UserId};

/// Enqueues the `notify` job of a logical notification unless it was asked for before (its
/// dedup key is kept). Runs in the caller's transaction. `Some(job)` when enqueued now.
pub async fn enqueue_once(
    conn: &mut PgConn,
    job: &NotifyJob,
    max_attempts: i32,
) -> QueryResult<Option<JobId>> {
    let inserted = diesel::insert_into(notification_keys::table)
        .values((
            notification_keys::dedup_key.eq(&job.dedup_key),
            notification_keys::user_id.eq(job.user_id),
            notification_keys::kind.eq(job.notification.kind()),
        ))
        .on_conflict_do_nothing()
        .execute(conn)
        .await?;
    if inserted == 0 {
        return Ok(None);
    }
    jobs::enqueue(
        conn,
        NewJob::new(NOTIFY_JOB, job).dedup_key(format!("notify:{}", job.dedup_key)),
        max_attempts,
    )
    .await
}

/// Which existing deliveries a new attempt may claim.
#[derive(Debug, Clone, Copy)]
pub enum Reclaim {
    /// None: a message whose outcome is unknown is never sent twice (broadcasts).
    Never,
    /// Failed ones at once; pending ones once their claim is older than this — the job lease, which
    /// no attempt outlives (it is cut off at 90 % of it), so such an attempt died while sending.
    FailedOrStaleAfter(std::time::Duration),
}

#[derive(QueryableByName)]
struct Claimed {
    #[diesel(sql_type = BigInt)]
    id: i64,
}

/// A delivery to attempt: to a subscriber (`user_id`) or, for an alert, to an admin named by
/// the dedup key (`alert_id`).
#[derive(Debug, Clone)]
pub struct Delivery<'a> {
    pub user_id: Option<UserId>,
    pub kind: &'a str,
    pub channel: NotificationChannel,
    pub dedup_key: &'a str,
    pub payload: &'a Value,
    pub broadcast_id: Option<BroadcastId>,
    pub alert_id: Option<AlertId>,
}

/// Claims the delivery of one notification on one channel: `Some(id)` when this caller may send
/// now (a new row, or a failed attempt to repeat); `None` when it was sent, skipped, or is being
/// sent by someone else. `reclaim` says which existing rows may be claimed again.
pub async fn claim(
    conn: &mut PgConn,
    delivery: &Delivery<'_>,
    reclaim: Reclaim,
) -> QueryResult<Option<i64>> {
    let sql = match reclaim {
        Reclaim::Never => "INSERT INTO notifications AS n (user_id, kind, channel, dedup_key, payload, broadcast_id, alert_id, attempts) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, 1) \
             ON CONFLICT (dedup_key, channel) DO NOTHING \
             RETURNING id"
            .to_owned(),
        Reclaim::FailedOrStaleAfter(stale) => format!(
            "INSERT INTO notifications AS n (user_id, kind, channel, dedup_key, payload, broadcast_id, alert_id, attempts) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, 1) \
             ON CONFLICT (dedup_key, channel) DO UPDATE SET status = 'pending', \
                 attempts = n.attempts + 1, last_error = NULL \
             WHERE n.status = 'failed' \
                OR (n.status = 'pending' AND n.updated_at < now() - interval '{} milliseconds') \
             RETURNING id",
            stale.as_millis()
        ),
    };
    let row: Option<Claimed> = diesel::sql_query(sql)
        .bind::<Nullable<BigInt>, _>(delivery.user_id.map(|u| u.0))
        .bind::<Text, _>(delivery.kind)
        .bind::<Text, _>(delivery.channel.as_str())
        .bind::<Text, _>(delivery.dedup_key)
        .bind::<Jsonb, _>(delivery.payload)
        .bind::<Nullable<BigInt>, _>(delivery.broadcast_id.map(|b| b.0))
        .bind::<Nullable<BigInt>, _>(delivery.alert_id.map(|a| a.0))
        .get_result(conn)
        .await
        .optional()?;
    Ok(row.map(|r| r.id))
}

/// Whether the delivery of `dedup_key` on `channel` is claimed but not finished: another
/// worker is sending it, or an attempt was cut off (a crash) before its outcome was recorded. Such
/// a row can be claimed again once it is stale ([`Reclaim::FailedOrStaleAfter`]).
pub async fn in_flight(
    conn: &mut PgConn,
    dedup_key: &str,
    channel: NotificationChannel,
) -> QueryResult<bool> {
    diesel::select(diesel::dsl::exists(
        notifications::table
            .filter(notifications::dedup_key.eq(dedup_key))
            .filter(notifications::channel.eq(channel))
            .filter(notifications::status.eq(NotificationStatus::Pending)),
    ))
    .get_result(conn)
    .await
}

/// Records a delivery that is not attempted (e.g. the user blocked the bot), unless one exists.
pub async fn record_skipped(
    conn: &mut PgConn,
    delivery: &Delivery<'_>,
    reason: &str,
) -> QueryResult<bool> {
    let n = diesel::insert_into(notifications::table)
        .values((
            notifications::user_id.eq(delivery.user_id),
            notifications::kind.eq(delivery.kind),
            notifications::channel.eq(delivery.channel),
            notifications::dedup_key.eq(delivery.dedup_key),
            notifications::payload.eq(delivery.payload),
            notifications::broadcast_id.eq(delivery.broadcast_id),
            notifications::alert_id.eq(delivery.alert_id),
            notifications::status.eq(NotificationStatus::Skipped),
            notifications::last_error.eq(reason),
        ))
        .on_conflict_do_nothing()
        .execute(conn)
        .await?;
    Ok(n == 1)
}

pub async fn mark_sent(conn: &mut PgConn, id: i64) -> QueryResult<()> {
    diesel::update(notifications::table.find(id))
        .set((
            notifications::status.eq(NotificationStatus::Sent),
            notifications::sent_at.eq(diesel::dsl::now),
            notifications::last_error.eq(None::<String>),
        ))
        .execute(conn)
        .await
        .map(|_| ())
}

pub async fn mark_failed(conn: &mut PgConn, id: i64, error: &str) -> QueryResult<()> {
    diesel::update(notifications::table.find(id))
        .set((
            notifications::status.eq(NotificationStatus::Failed),
            notifications::last_error.eq(error),
        ))
        .execute(conn)
        .await
        .map(|_| ())
}

/// The recipient cannot be reached on this channel (e.g. blocked the bot): nothing was sent.
pub async fn mark_skipped(conn: &mut PgConn, id: i64, reason: &str) -> QueryResult<()> {
    diesel::update(notifications::table.find(id))
        .set((
            notifications::status.eq(NotificationStatus::Skipped),
            notifications::last_error.eq(reason),
        ))
        .execute(conn)
        .await
        .map(|_| ())
}

/// Deliveries of a user, newest first.
pub async fn for_user(conn: &mut PgConn, user_id: UserId) -> QueryResult<Vec<NotificationRow>> {
    notifications::table
        .filter(notifications::user_id.eq(user_id))
        .select(NotificationRow::as_select())
        .order(notifications::id.desc())
        .load(conn)
        .await
}

/// Broadcast deliveries whose outcome is unknown (their sender stopped mid-way): marked failed,
/// never sent again. Returns how many.
pub async fn fail_interrupted(conn: &mut PgConn, broadcast_id: BroadcastId) -> QueryResult<usize> {
    diesel::update(
        notifications::table
            .filter(notifications::broadcast_id.eq(broadcast_id))
            .filter(notifications::status.eq(NotificationStatus::Pending)),
    )
    .set((
        notifications::status.eq(NotificationStatus::Failed),
        notifications::last_error
            .eq("interrupted while sending (a restart); not sent again to avoid a duplicate"),
    ))
    .execute(conn)
    .await
}

/// What a listing of deliveries is narrowed to; every part is optional.
#[derive(Debug, Clone, Default)]
pub struct NotificationFilter {
    /// A notification type (`domain::notifications::KINDS`).
    pub kind: Option<String>,
    pub channel: Option<NotificationChannel>,
    pub status: Option<NotificationStatus>,
    pub user_id: Option<UserId>,
    /// Deliveries created at or after this moment.
    pub from: Option<DateTime<Utc>>,
    /// Deliveries created before this moment.
    pub to: Option<DateTime<Utc>>,
}

/// A page of deliveries, newest first, with the total that matches the filter.
pub async fn list(
    conn: &mut PgConn,
    filter: &NotificationFilter,
    page: i64,
    per_page: i64,
) -> QueryResult<(Vec<NotificationRow>, i64)> {
    let filtered = || {
        let mut q = notifications::table.into_boxed();
        if let Some(kind) = &filter.kind {
            q = q.filter(notifications::kind.eq(kind.clone()));
        }
        if let Some(channel) = filter.channel {
            q = q.filter(notifications::channel.eq(channel));
        }
        if let Some(status) = filter.status {
            q = q.filter(notifications::status.eq(status));
        }
        if let Some(user_id) = filter.user_id {
            q = q.filter(notifications::user_id.eq(user_id));
        }
        if let Some(from) = filter.from {
            q = q.filter(notifications::created_at.ge(from));
        }
        if let Some(to) = filter.to {
            q = q.filter(notifications::created_at.lt(to));
        }
        q
    };
    let total = filtered().count().get_result(conn).await?;
    let items = filtered()
        .select(NotificationRow::as_select())
        // Ids are handed out as deliveries are created: the primary key orders them without a
        // sort, however many there are.
        .order(notifications::id.desc())
        .limit(per_page)
        .offset((page - 1).saturating_mul(per_page))
        .load(conn)
        .await?;
    Ok((items, total))
}
