//! Broadcasts: creation, their audience, progress and cancellation. Deliveries are rows of
//! `notifications` (dedup key `broadcast:<id>:<user>`), from which progress is counted.

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Nullable, Text};
use diesel_async::RunQueryDsl;

use crate::db::PgConn;
use crate::db::jobs::{self, NewJob};
use crate::db::models::Broadcast;
use crate::db::schema::broadcasts;
use crate::domain::broadcast::{Audience, BroadcastMessage};
use crate::domain::{AdminId, BroadcastId, BroadcastStatus, UserId};

/// Job kind of broadcast delivery (payload `{"broadcast_id": N}`).
pub const BROADCAST_JOB: &str = "broadcast_deliver";

/// Who created a broadcast.
#[derive(Debug, Clone, Copy)]
pub enum Author {
    Admin(AdminId),
    Telegram(i64),
}

#[derive(Debug, Clone, Copy, serde::Serialize, serde::Deserialize)]
pub struct BroadcastJob {
    pub broadcast_id: BroadcastId,
}

/// Stores a broadcast and queues its delivery, in the caller's transaction.
pub async fn create_and_queue(
    conn: &mut PgConn,
    message: &BroadcastMessage,
    audience: Audience,
    author: Author,
    max_attempts: i32,
) -> QueryResult<Broadcast> {
    let (admin, telegram) = match author {
        Author::Admin(id) => (Some(id), None),
        Author::Telegram(id) => (None, Some(id)),
    };
    let audience = serde_json::to_value(audience).unwrap_or(serde_json::Value::Null);
    let broadcast: Broadcast = diesel::insert_into(broadcasts::table)
        .values((
            broadcasts::created_by_admin_id.eq(admin),
            broadcasts::created_by_telegram_id.eq(telegram),
            broadcasts::text.eq(&message.html),
            broadcasts::button_text.eq(message.button.as_ref().map(|b| b.0.as_str())),
            broadcasts::button_url.eq(message.button.as_ref().map(|b| b.1.as_str())),
            broadcasts::audience.eq(audience),
            broadcasts::status.eq(BroadcastStatus::Queued),
        ))
        .returning(Broadcast::as_returning())
        .get_result(conn)
        .await?;
    queue_delivery(conn, broadcast.id, max_attempts).await?;
    Ok(broadcast)
}

/// Queues (the next slice of) a broadcast's delivery; a no-op while one is already queued.
pub async fn queue_delivery(
    conn: &mut PgConn,
    id: BroadcastId,
    max_attempts: i32,
) -> QueryResult<()> {
    jobs::enqueue(
        conn,
        NewJob::new(BROADCAST_JOB, BroadcastJob { broadcast_id: id })
            .dedup_key(format!("broadcast:{id}")),
        max_attempts,
    )
    .await
    .map(|_| ())
}

pub async fn find(conn: &mut PgConn, id: BroadcastId) -> QueryResult<Option<Broadcast>> {
    broadcasts::table
        .find(id)
        .select(Broadcast::as_select())
        .first(conn)
        .await
        .optional()
}

/// Broadcasts, newest first.
pub async fn list(conn: &mut PgConn, limit: i64) -> QueryResult<Vec<Broadcast>> {
    broadcasts::table
        .select(Broadcast::as_select())
        .order(broadcasts::id.desc())
        .limit(limit)
        .load(conn)
        .await
}

/// Whether a delivery job of broadcast `id` is still pending or running: after a cancel, the
/// batch in flight is still being sent and counted.
pub async fn delivery_active(conn: &mut PgConn, id: BroadcastId) -> QueryResult<bool> {
    use crate::db::schema::jobs;
    use crate::domain::JobState;
    let n: i64 = jobs::table
        .filter(jobs::kind.eq(BROADCAST_JOB))
        .filter(jobs::state.eq_any([JobState::Pending, JobState::Running]))
        .filter(
            diesel::dsl::sql::<diesel::sql_types::Bool>("payload->>'broadcast_id' = ")
                .bind::<Text, _>(id.0.to_string()),
        )
        .count()
        .get_result(conn)
        .await?;
    Ok(n > 0)
}

/// Cancels a queued or running broadcast; `false` when it had already ended.
pub async fn cancel(conn: &mut PgConn, id: BroadcastId) -> QueryResult<bool> {
    let n =
        diesel::update(broadcasts::table.find(id).filter(
            broadcasts::status.eq_any([BroadcastStatus::Queued, BroadcastStatus::Running]),
        ))
        .set((
            broadcasts::status.eq(BroadcastStatus::Canceled),
            broadcasts::finished_at.eq(diesel::dsl::now),
        ))
        .execute(conn)
        .await?;
    Ok(n == 1)
}

/// The audience filter, shared by the count and the recipient pages. `$1` segment, `$2` language.
/// Telegram users who have not blocked the bot, and subscribers without Telegram (by email).
const AUDIENCE: &str = "FROM users u LEFT JOIN subscriptions s ON s.user_id = u.id \
     WHERE NOT u.banned \
       AND ((u.telegram_id IS NOT NULL AND NOT u.bot_blocked) \
            OR (u.telegram_id IS NULL AND u.email IS NOT NULL)) \
       AND ($2::text IS NULL OR u.language = $2) \
       AND CASE $1 \
           WHEN 'all' THEN true \
           WHEN 'active' THEN s.status <> 'disabled' AND s.expires_at > now() \
           WHEN 'expired' THEN s.expires_at <= now() \
           WHEN 'trial' THEN s.is_trial AND s.expires_at > now() \
           WHEN 'never_paid' THEN NOT EXISTS (SELECT 1 FROM payments p WHERE p.user_id = u.id \
               AND p.status IN ('succeeded', 'refunded')) \
           ELSE false END";

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    count: i64,
}

pub async fn count_audience(conn: &mut PgConn, audience: Audience) -> QueryResult<i64> {
    let row: Count = diesel::sql_query(format!("SELECT count(*) AS count {AUDIENCE}"))
        .bind::<Text, _>(audience.segment.as_str())
        .bind::<Nullable<Text>, _>(audience.language.map(|l| l.as_str()))
        .get_result(conn)
        .await?;
    Ok(row.count)
}

/// A recipient: the Telegram chat, or for a subscriber without Telegram the address (and the
/// language the mail's subject is in).
#[derive(Debug, Clone, QueryableByName)]
pub struct Recipient {
    #[diesel(sql_type = BigInt)]
    pub user_id: UserId,
    #[diesel(sql_type = Nullable<BigInt>)]
    pub telegram_id: Option<i64>,
    #[diesel(sql_type = Nullable<Text>)]
    pub email: Option<String>,
    #[diesel(sql_type = Text)]
    pub language: crate::domain::Language,
}

/// The next recipients after user `after`, in id order.
pub async fn recipients(
    conn: &mut PgConn,
    audience: Audience,
    after: i64,
    limit: i64,
) -> QueryResult<Vec<Recipient>> {
    diesel::sql_query(format!(
        "SELECT u.id AS user_id, u.telegram_id, u.email, u.language {AUDIENCE} AND u.id > $3 \
         ORDER BY u.id LIMIT $4"
    ))
    .bind::<Text, _>(audience.segment.as_str())
    .bind::<Nullable<Text>, _>(audience.language.map(|l| l.as_str()))
    .bind::<BigInt, _>(after)
    .bind::<BigInt, _>(limit)
    .load(conn)
    .await
}

/// Starts a queued broadcast: running, with its audience counted now.
pub async fn start(conn: &mut PgConn, id: BroadcastId, total: i64) -> QueryResult<()> {
    diesel::update(
        broadcasts::table
            .find(id)
            .filter(broadcasts::status.eq(BroadcastStatus::Queued)),
    )
    .set((
        broadcasts::status.eq(BroadcastStatus::Running),
        broadcasts::started_at.eq(diesel::dsl::now),
        broadcasts::total.eq(i32::try_from(total).unwrap_or(i32::MAX)),
    ))
    .execute(conn)
    .await
    .map(|_| ())
}

/// Moves the cursor past `user` and refreshes the counters from the deliveries (so they stay
/// right across restarts): sent, failed, and blocked (skipped: the user blocked the bot).
pub async fn record_progress(
    conn: &mut PgConn,
    id: BroadcastId,
    cursor: i64,
) -> QueryResult<Broadcast> {
    diesel::sql_query(
        "UPDATE broadcasts b SET cursor_user_id = GREATEST(b.cursor_user_id, $2), \
             sent = c.sent, failed = c.failed, blocked = c.blocked \
         FROM (SELECT count(*) FILTER (WHERE status = 'sent') AS sent, \
                      count(*) FILTER (WHERE status = 'failed') AS failed, \
                      count(*) FILTER (WHERE status = 'skipped') AS blocked \
               FROM notifications WHERE broadcast_id = $1) c \
         WHERE b.id = $1",
    )
    .bind::<BigInt, _>(id.0)
    .bind::<BigInt, _>(cursor)
    .execute(conn)
    .await?;
    broadcasts::table
        .find(id)
        .select(Broadcast::as_select())
        .first(conn)
        .await
}

pub async fn complete(conn: &mut PgConn, id: BroadcastId) -> QueryResult<()> {
    diesel::update(
        broadcasts::table
            .find(id)
            .filter(broadcasts::status.eq(BroadcastStatus::Running)),
    )
    .set((
        broadcasts::status.eq(BroadcastStatus::Completed),
        broadcasts::finished_at.eq(diesel::dsl::now),
    ))
    .execute(conn)
    .await
    .map(|_| ())
}
