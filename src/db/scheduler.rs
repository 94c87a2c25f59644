//! The `scheduled_tasks` table: periodic tasks, their next due time and last result.

use std::time::Duration;

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Bool, Integer, Text};
use diesel_async::RunQueryDsl;

use crate::db::PgConn;
use crate::db::models::ScheduledTask;
use crate::db::schema::scheduled_tasks;
use crate::domain::JobId;

/// Key of the transaction-level advisory lock the scheduling replica holds during a tick.
const LEADER_LOCK_KEY: i64 = 0x7670_6e5f_7363_6864; // "vpn_schd"

/// Declares a task with its configured interval. A new task is due at once; a shortened interval
/// brings the next run forward.
pub async fn upsert(conn: &mut PgConn, name: &str, interval: Duration) -> QueryResult<()> {
    let secs = i32::try_from(interval.as_secs().max(1)).unwrap_or(i32::MAX);
    diesel::sql_query(
        "INSERT INTO scheduled_tasks (name, interval_secs, next_run_at) VALUES ($1, $2, now()) \
         ON CONFLICT (name) DO UPDATE SET interval_secs = EXCLUDED.interval_secs, enabled = true, \
             next_run_at = LEAST(scheduled_tasks.next_run_at, \
                                 now() + make_interval(secs => EXCLUDED.interval_secs))",
    )
    .bind::<Text, _>(name)
    .bind::<Integer, _>(secs)
    .execute(conn)
    .await
    .map(|_| ())
}

#[derive(QueryableByName)]
struct Locked {
    #[diesel(sql_type = Bool)]
    locked: bool,
}

/// Tries to become the scheduling replica for the current transaction (non-blocking).
pub async fn try_lead(conn: &mut PgConn) -> QueryResult<bool> {
    let row: Locked = diesel::sql_query("SELECT pg_try_advisory_xact_lock($1) AS locked")
        .bind::<BigInt, _>(LEADER_LOCK_KEY)
        .get_result(conn)
        .await?;
    Ok(row.locked)
}

/// The configured tasks that are due, locked for the rest of the transaction.
pub async fn due(conn: &mut PgConn, names: &[&str]) -> QueryResult<Vec<ScheduledTask>> {
    scheduled_tasks::table
        .filter(scheduled_tasks::name.eq_any(names))
        .filter(scheduled_tasks::enabled.eq(true))
        .filter(scheduled_tasks::next_run_at.le(diesel::dsl::now))
        .select(ScheduledTask::as_select())
        .for_update()
        .load(conn)
        .await
}

/// Records a due run that enqueued `job`, and when the task is next due.
pub async fn record_enqueued(
    conn: &mut PgConn,
    name: &str,
    job: JobId,
    next_run_at: DateTime<Utc>,
) -> QueryResult<()> {
    diesel::update(scheduled_tasks::table.find(name))
        .set((
            scheduled_tasks::last_run_at.eq(diesel::dsl::now),
            scheduled_tasks::last_job_id.eq(job),
            scheduled_tasks::last_result.eq("enqueued"),
            scheduled_tasks::next_run_at.eq(next_run_at),
        ))
        .execute(conn)
        .await
        .map(|_| ())
}

/// Records a due run that was skipped and why; `last_job_id` keeps pointing at the run that is
/// still in progress.
pub async fn record_skipped(
    conn: &mut PgConn,
    name: &str,
    reason: &str,
    next_run_at: DateTime<Utc>,
) -> QueryResult<()> {
    diesel::update(scheduled_tasks::table.find(name))
        .set((
            scheduled_tasks::last_result.eq(reason),
            scheduled_tasks::next_run_at.eq(next_run_at),
        ))
        .execute(conn)
        .await
        .map(|_| ())
}

pub async fn list(conn: &mut PgConn) -> QueryResult<Vec<ScheduledTask>> {
    scheduled_tasks::table
        .select(ScheduledTask::as_select())
        .order(scheduled_tasks::name)
        .load(conn)
        .await
}
