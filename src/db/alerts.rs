//! Admin alerts (`alerts`), the kinds admins muted (`alert_settings`) and conditions watched
//! before they count (`alert_watches`). Raising and resolving run in the caller's transaction
//! and enqueue the delivery (`alert_deliver`) with it.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Bool, Jsonb, Nullable, Text, Timestamptz};
use diesel_async::RunQueryDsl;
use serde_json::Value;

use crate::db::PgConn;
use crate::db::jobs::{self, NewJob};
use crate::db::models::AlertRow;
use crate::db::schema::{alert_settings, alert_watches, alerts};
use crate::domain::alerts::{ALERT_JOB, Alert, AlertJob, AlertKind, AlertState};
use crate::domain::{AlertId, JobId, UserId};

#[derive(QueryableByName)]
struct Opened {
    #[diesel(sql_type = BigInt)]
    id: AlertId,
    #[diesel(sql_type = Bool)]
    muted: bool,
}

/// Enqueues the delivery of alert `id` in `state` to every admin.
async fn enqueue_delivery(
    conn: &mut PgConn,
    id: AlertId,
    state: AlertState,
    max_attempts: i32,
) -> QueryResult<Option<JobId>> {
    jobs::enqueue(
        conn,
        NewJob::new(
            ALERT_JOB,
            AlertJob {
                alert_id: id,
                state,
            },
        )
        .dedup_key(format!("alert:{id}:{state}")),
        max_attempts,
    )
    .await
}

/// Raises `alert` unless one with its key is open (a condition firing, or the same notice):
/// `Some(id)` when raised now. A muted kind is recorded and not delivered.
pub async fn raise(
    conn: &mut PgConn,
    alert: &Alert,
    max_attempts: i32,
) -> QueryResult<Option<AlertId>> {
    let kind = alert.kind();
    let state = if kind.is_condition() {
        AlertState::Firing
    } else {
        AlertState::Notice
    };
    // Serialising our own payload types cannot fail (no maps with non-string keys).
    let payload = serde_json::to_value(alert).unwrap_or(Value::Null);
    // Raw SQL: ON CONFLICT on a partial unique index needs its predicate spelled out.
    let opened: Option<Opened> = diesel::sql_query(
        "INSERT INTO alerts (key, kind, state, payload, muted) \
         VALUES ($1, $2, $3, $4, \
                 COALESCE((SELECT muted FROM alert_settings WHERE kind = $2), false)) \
         ON CONFLICT (key) WHERE state <> 'resolved' DO NOTHING \
         RETURNING id, muted",
    )
    .bind::<Text, _>(alert.key())
    .bind::<Text, _>(kind.as_str())
    .bind::<Text, _>(state.as_str())
    .bind::<Jsonb, _>(&payload)
    .get_result(conn)
    .await
    .optional()?;
    let Some(opened) = opened else {
        return Ok(None);
    };
    if opened.muted {
        tracing::info!(kind = %kind, alert = %opened.id, "alert raised (muted: not delivered)");
    } else {
        tracing::warn!(kind = %kind, alert = %opened.id, "alert raised");
        enqueue_delivery(conn, opened.id, state, max_attempts).await?;
    }
    Ok(Some(opened.id))
}

/// Resolves the firing alert with `key`, if any: `Some(id)` when it ended now. Its end is told
/// to the admins unless the alert was muted.
pub async fn resolve(
    conn: &mut PgConn,
    key: &str,
    resolution: Option<&Value>,
    max_attempts: i32,
) -> QueryResult<Option<AlertId>> {
    let closed: Option<Opened> = diesel::sql_query(
        "UPDATE alerts SET state = 'resolved', resolved_at = now(), resolution = $2 \
         WHERE key = $1 AND state = 'firing' RETURNING id, muted",
    )
    .bind::<Text, _>(key)
    .bind::<Nullable<Jsonb>, _>(resolution)
    .get_result(conn)
    .await
    .optional()?;
    let Some(closed) = closed else {
        return Ok(None);
    };
    tracing::info!(key, alert = %closed.id, "alert resolved");
    if !closed.muted {
        enqueue_delivery(conn, closed.id, AlertState::Resolved, max_attempts).await?;
    }
    Ok(Some(closed.id))
}

/// Ends firing alert `id` of a flagged payment: an admin (`by`) reviewed it. The alert as it
/// was, when it ended now.
pub async fn mark_reviewed(
    conn: &mut PgConn,
    id: AlertId,
    by: &str,
    max_attempts: i32,
) -> QueryResult<Option<AlertRow>> {
    let Some(row) = find(conn, id).await? else {
        return Ok(None);
    };
    if row.kind != AlertKind::PaymentFlagged || row.state != AlertState::Firing {
        return Ok(None);
    }
    let resolution = serde_json::json!({ "reviewed_by": by });
    Ok(resolve(conn, &row.key, Some(&resolution), max_attempts)
        .await?
        .map(|_| row))
}

/// Whether any alert, open or ended, has `key`.
pub async fn exists(conn: &mut PgConn, key: &str) -> QueryResult<bool> {
    diesel::select(diesel::dsl::exists(
        alerts::table.filter(alerts::key.eq(key)),
    ))
    .get_result(conn)
    .await
}

pub async fn find(conn: &mut PgConn, id: AlertId) -> QueryResult<Option<AlertRow>> {
    alerts::table
        .find(id)
        .select(AlertRow::as_select())
        .first(conn)
        .await
        .optional()
}

/// The firing alerts, newest first.
pub async fn firing(conn: &mut PgConn) -> QueryResult<Vec<AlertRow>> {
    alerts::table
        .filter(alerts::state.eq(AlertState::Firing))
        .select(AlertRow::as_select())
        .order(alerts::id.desc())
        .load(conn)
        .await
}

/// A page of alerts, newest first, with the total that matches.
pub async fn list(
    conn: &mut PgConn,
    kind: Option<AlertKind>,
    state: Option<AlertState>,
    page: i64,
    per_page: i64,
) -> QueryResult<(Vec<AlertRow>, i64)> {
    let filtered = || {
        let mut q = alerts::table.into_boxed();
        if let Some(kind) = kind {
            q = q.filter(alerts::kind.eq(kind));
        }
        if let Some(state) = state {
            q = q.filter(alerts::state.eq(state));
        }
        q
    };
    let total = filtered().count().get_result(conn).await?;
    let items = filtered()
        .select(AlertRow::as_select())
        .order(alerts::id.desc())
        .limit(per_page)
        .offset((page - 1).saturating_mul(per_page))
        .load(conn)
        .await?;
    Ok((items, total))
}

/// The kinds admins muted.
pub async fn muted_kinds(conn: &mut PgConn) -> QueryResult<Vec<AlertKind>> {
    alert_settings::table
        .filter(alert_settings::muted.eq(true))
        .select(alert_settings::kind)
        .order(alert_settings::kind)
        .load(conn)
        .await
}

/// Mutes or unmutes `kind`.
pub async fn set_muted(conn: &mut PgConn, kind: AlertKind, muted: bool) -> QueryResult<()> {
    diesel::insert_into(alert_settings::table)
        .values((
            alert_settings::kind.eq(kind),
            alert_settings::muted.eq(muted),
        ))
        .on_conflict(alert_settings::kind)
        .do_update()
        .set((
            alert_settings::muted.eq(muted),
            alert_settings::updated_at.eq(diesel::dsl::now),
        ))
        .execute(conn)
        .await
        .map(|_| ())
}

/// Notes that condition `key` holds (with `detail`): since when it has held without a break.
pub async fn watch(conn: &mut PgConn, key: &str, detail: &str) -> QueryResult<DateTime<Utc>> {
    diesel::insert_into(alert_watches::table)
        .values((alert_watches::key.eq(key), alert_watches::detail.eq(detail)))
        .on_conflict(alert_watches::key)
        .do_update()
        .set(alert_watches::detail.eq(detail))
        .returning(alert_watches::since)
        .get_result(conn)
        .await
}

/// Notes that condition `key` does not hold (any more).
pub async fn unwatch(conn: &mut PgConn, key: &str) -> QueryResult<()> {
    diesel::delete(alert_watches::table.find(key))
        .execute(conn)
        .await
        .map(|_| ())
}

/// Dead jobs of one kind not told yet.
#[derive(Debug, Clone, QueryableByName)]
pub struct DeadJobs {
    #[diesel(sql_type = Text)]
    pub kind: String,
    #[diesel(sql_type = BigInt)]
    pub count: i64,
    /// The newest of them.
    #[diesel(sql_type = BigInt)]
    pub job: JobId,
    #[diesel(sql_type = Nullable<Text>)]
    pub last_error: Option<String>,
    #[diesel(sql_type = Nullable<BigInt>)]
    pub user_id: Option<UserId>,
    #[diesel(sql_type = Timestamptz)]
    pub until: DateTime<Utc>,
}

/// Per job kind, the jobs that died after the last `job_dead` alert of the kind counted, for the
/// kinds whose last alert is older than `quiet` (or that had none). Deaths of the alert
/// deliveries themselves are left out: telling of them would need the same channel.
pub async fn dead_jobs_to_tell(
    conn: &mut PgConn,
    quiet: std::time::Duration,
) -> QueryResult<Vec<DeadJobs>> {
    diesel::sql_query(
        "WITH told AS ( \
             SELECT payload->>'job_kind' AS kind, \
                    max((payload->>'until')::timestamptz) AS until, max(raised_at) AS raised \
             FROM alerts WHERE kind = 'job_dead' GROUP BY 1) \
         SELECT j.kind, count(*) AS count, \
                (array_agg(j.id ORDER BY j.finished_at DESC, j.id DESC))[1] AS job, \
                (array_agg(j.last_error ORDER BY j.finished_at DESC, j.id DESC))[1] AS last_error, \
                (array_agg(j.payload->>'user_id' ORDER BY j.finished_at DESC, j.id DESC))[1]::bigint \
                    AS user_id, \
                max(j.finished_at) AS until \
         FROM jobs j LEFT JOIN told ON told.kind = j.kind \
         WHERE j.state = 'dead' AND j.kind <> $1 AND j.finished_at IS NOT NULL \
           AND j.finished_at > COALESCE(told.until, '-infinity') \
           AND COALESCE(told.raised, '-infinity') < now() - make_interval(secs => $2) \
         GROUP BY j.kind ORDER BY j.kind",
    )
    .bind::<Text, _>(ALERT_JOB)
    .bind::<diesel::sql_types::Double, _>(quiet.as_secs_f64())
    .load(conn)
    .await
}

/// Refused (forged) payment webhooks since `since`, and the address that sent most of them.
#[derive(Debug, Clone, QueryableByName)]
pub struct Refusals {
    #[diesel(sql_type = BigInt)]
    pub count: i64,
    #[diesel(sql_type = Nullable<Text>)]
    pub top_address: Option<String>,
}

pub async fn webhook_refusals(conn: &mut PgConn, since: DateTime<Utc>) -> QueryResult<Refusals> {
    diesel::sql_query(
        "SELECT count(*) AS count, mode() WITHIN GROUP (ORDER BY remote_addr) AS top_address \
         FROM payment_events WHERE verdict = 'forged' AND received_at >= $1",
    )
    .bind::<Timestamptz, _>(since)
    .get_result(conn)
    .await
}

/// Paying users whose access has been missing on the panel since a change older than `after`.
#[derive(Debug, Clone, QueryableByName)]
pub struct Unprovisioned {
    #[diesel(sql_type = BigInt)]
    pub users: i64,
    #[diesel(sql_type = Nullable<BigInt>)]
    pub oldest: Option<UserId>,
}

pub async fn unprovisioned(
    conn: &mut PgConn,
    after: std::time::Duration,
) -> QueryResult<Unprovisioned> {
    diesel::sql_query(
        "SELECT count(*) AS users, \
                (array_agg(user_id ORDER BY access_changed_at, user_id))[1] AS oldest \
         FROM subscriptions WHERE unprovisioned_since IS NOT NULL \
           AND access_changed_at < now() - make_interval(secs => $1)",
    )
    .bind::<diesel::sql_types::Double, _>(after.as_secs_f64())
    .get_result(conn)
    .await
}

/// The last two finished runs of each sync kind: `(kind, last error, the run before failed too)`.
#[derive(Debug, Clone, QueryableByName)]
pub struct SyncStreak {
    #[diesel(sql_type = Text)]
    pub kind: String,
    /// The newest run's error; `None` when it succeeded.
    #[diesel(sql_type = Nullable<Text>)]
    pub error: Option<String>,
    /// The newest run and the one before it both failed.
    #[diesel(sql_type = Bool)]
    pub failed_twice: bool,
}

/// The streaks of `kinds` (one index range of `sync_runs_kind_idx` each).
pub async fn sync_streaks(conn: &mut PgConn, kinds: &[&str]) -> QueryResult<Vec<SyncStreak>> {
    diesel::sql_query(
        "SELECT k.kind, (array_agg(r.error ORDER BY r.started_at DESC))[1] AS error, \
                count(*) FILTER (WHERE r.status = 'failed') = 2 AS failed_twice \
         FROM unnest($1::text[]) AS k(kind) \
         CROSS JOIN LATERAL (SELECT status, error, started_at FROM sync_runs s \
               WHERE s.kind = k.kind AND s.status <> 'running' \
               ORDER BY s.started_at DESC LIMIT 2) r \
         GROUP BY k.kind ORDER BY k.kind",
    )
    .bind::<diesel::sql_types::Array<Text>, _>(kinds)
    .load(conn)
    .await
}
