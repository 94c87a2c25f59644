//! The durable job queue (outbox) in the `jobs` table.
//!
//! A state change and the jobs it causes commit in one transaction ([`enqueue`] runs on the
//! caller's connection, inside its transaction). Workers claim due jobs with
//! `FOR UPDATE SKIP LOCKED`, so two workers never hold the same job; a worker that dies keeps its
//! jobs only until their lease expires. A failed attempt goes back to `pending` with exponential
//! backoff and jitter; after `max_attempts` the job is `dead` and waits for an admin.

use std::time::Duration;

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{Array, BigInt, Bool, Double, Integer, Jsonb, Nullable, Text, Timestamptz};
use diesel_async::RunQueryDsl;
use serde::Serialize;

use crate::db::PgConn;
use crate::db::models::Job;
use crate::db::schema::jobs;
use crate::domain::{JobId, JobState};

/// Channel of the `NOTIFY` sent when a job is enqueued (delivered at commit, never on rollback).
pub const NOTIFY_CHANNEL: &str = "vpn_shop_jobs";

/// A job to enqueue.
#[derive(Debug, Clone)]
pub struct NewJob {
    pub kind: String,
    pub payload: serde_json::Value,
    pub dedup_key: Option<String>,
    pub run_at: Option<DateTime<Utc>>,
    pub max_attempts: Option<i32>,
}

impl NewJob {
    pub fn new(kind: impl Into<String>, payload: impl Serialize) -> Self {
        NewJob {
            kind: kind.into(),
            // Serialising our own payload types cannot fail (no maps with non-string keys).
            payload: serde_json::to_value(payload).unwrap_or(serde_json::Value::Null),
            dedup_key: None,
            run_at: None,
            max_attempts: None,
        }
    }

    /// While a pending job with this key exists, enqueueing another one is a no-op.
    pub fn dedup_key(mut self, key: impl Into<String>) -> Self {
        self.dedup_key = Some(key.into());
        self
    }

    pub fn run_at(mut self, at: DateTime<Utc>) -> Self {
        self.run_at = Some(at);
        self
    }

    pub fn max_attempts(mut self, attempts: i32) -> Self {
        self.max_attempts = Some(attempts);
        self
    }
}

#[derive(QueryableByName)]
struct IdRow {
    #[diesel(sql_type = BigInt)]
    id: i64,
}

/// Adds a job in the caller's transaction. Returns `None` when a pending job with the same
/// dedup key already exists.
pub async fn enqueue(
    conn: &mut PgConn,
    job: NewJob,
    default_max_attempts: i32,
) -> QueryResult<Option<JobId>> {
    // Raw SQL: ON CONFLICT on a partial unique index needs the index predicate spelled out as
    // literals, which the query builder would send as bind parameters (and PostgreSQL then
    // cannot infer the arbiter index).
    let inserted: Option<IdRow> = diesel::sql_query(
        "INSERT INTO jobs (kind, payload, run_at, max_attempts, dedup_key) \
         VALUES ($1, $2, COALESCE($3, now()), $4, $5) \
         ON CONFLICT (dedup_key) WHERE state = 'pending' AND dedup_key IS NOT NULL DO NOTHING \
         RETURNING id",
    )
    .bind::<Text, _>(&job.kind)
    .bind::<Jsonb, _>(&job.payload)
    .bind::<Nullable<Timestamptz>, _>(job.run_at)
    .bind::<Integer, _>(job.max_attempts.unwrap_or(default_max_attempts))
    .bind::<Nullable<Text>, _>(job.dedup_key.as_deref())
    .get_result(conn)
    .await
    .optional()?;
    let Some(row) = inserted else {
        return Ok(None);
    };
    diesel::sql_query("SELECT pg_notify($1, $2)")
        .bind::<Text, _>(NOTIFY_CHANNEL)
        .bind::<Text, _>(&job.kind)
        .execute(conn)
        .await?;
    Ok(Some(JobId(row.id)))
}

/// Makes the pending `kind` jobs of `user` that wait for a later retry due now (what they
/// waited for has happened, e.g. the panel issued the subscription link a notification needs).
/// Returns how many were woken.
pub async fn hurry(
    conn: &mut PgConn,
    kind: &str,
    user: crate::domain::UserId,
) -> QueryResult<usize> {
    let woken = diesel::sql_query(
        "UPDATE jobs SET run_at = now() \
         WHERE kind = $1 AND state = 'pending' AND run_at > now() AND payload->>'user_id' = $2",
    )
    .bind::<Text, _>(kind)
    .bind::<Text, _>(user.0.to_string())
    .execute(conn)
    .await?;
    if woken > 0 {
        diesel::sql_query("SELECT pg_notify($1, $2)")
            .bind::<Text, _>(NOTIFY_CHANNEL)
            .bind::<Text, _>(kind)
            .execute(conn)
            .await?;
    }
    Ok(woken)
}

/// Claims up to `limit` due jobs of the given kinds for `worker`: pending jobs whose `run_at` has
/// come, and running jobs whose lease expired (their worker died). Each claim counts an attempt.
pub async fn claim(
    conn: &mut PgConn,
    worker: &str,
    kinds: &[&str],
    limit: i64,
    lease: Duration,
) -> QueryResult<Vec<Job>> {
    if kinds.is_empty() || limit <= 0 {
        return Ok(Vec::new());
    }
    diesel::sql_query(
        "UPDATE jobs SET state = 'running', attempts = attempts + 1, locked_by = $1, locked_at = now() \
         WHERE id IN ( \
             SELECT id FROM jobs \
             WHERE kind = ANY($2) \
               AND ((state = 'pending' AND run_at <= now()) \
                 OR (state = 'running' AND locked_at < now() - make_interval(secs => $3) \
                     AND attempts < max_attempts)) \
             ORDER BY run_at, id \
             LIMIT $4 \
             FOR UPDATE SKIP LOCKED) \
         RETURNING *",
    )
    .bind::<Text, _>(worker)
    .bind::<Array<Text>, _>(kinds)
    .bind::<Double, _>(lease.as_secs_f64())
    .bind::<BigInt, _>(limit)
    .load::<JobRow>(conn)
    .await
    .map(|rows| rows.into_iter().map(Job::from).collect())
}

/// Jobs whose worker died during their last allowed attempt: dead, with the reason.
pub async fn bury_expired_leases(conn: &mut PgConn, lease: Duration) -> QueryResult<usize> {
    diesel::sql_query(
        "UPDATE jobs SET state = 'dead', locked_by = NULL, locked_at = NULL, finished_at = now(), \
             last_error = 'worker lost during the last attempt (lease expired)' \
         WHERE state = 'running' AND locked_at < now() - make_interval(secs => $1) \
           AND attempts >= max_attempts",
    )
    .bind::<Double, _>(lease.as_secs_f64())
    .execute(conn)
    .await
}

/// Marks a claimed job done. `false`: this worker no longer held it (its lease expired and
/// another worker took it over).
pub async fn complete(conn: &mut PgConn, id: JobId, worker: &str) -> QueryResult<bool> {
    let n = diesel::update(
        jobs::table
            .filter(jobs::id.eq(id))
            .filter(jobs::state.eq(JobState::Running))
            .filter(jobs::locked_by.eq(worker)),
    )
    .set((
        jobs::state.eq(JobState::Done),
        jobs::finished_at.eq(diesel::dsl::now),
        jobs::locked_by.eq(None::<String>),
        jobs::locked_at.eq(None::<DateTime<Utc>>),
    ))
    .execute(conn)
    .await?;
    Ok(n == 1)
}

/// What became of a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailOutcome {
    /// Back to `pending`, due at the given time.
    Retry(DateTime<Utc>),
    /// No attempts left, or the failure is permanent.
    Dead,
    /// An identical job was enqueued meanwhile and will do the same work: this one is closed.
    Superseded,
    /// This worker no longer held the job.
    Lost,
}

/// Exponential backoff with jitter: `base · 2^(attempt-1)`, capped at `max`, then scaled by a
/// random factor in [0.5, 1.0] so that jobs failing together do not retry together.
pub fn backoff(attempt: i32, base: Duration, max: Duration, jitter: f64) -> Duration {
    let exp = attempt.saturating_sub(1).clamp(0, 30) as u32;
    let raw = base.saturating_mul(1u32 << exp).min(max);
    raw.mul_f64(0.5 + 0.5 * jitter.clamp(0.0, 1.0))
}

#[derive(QueryableByName)]
struct StateRow {
    #[diesel(sql_type = Text)]
    state: String,
    #[diesel(sql_type = Timestamptz)]
    run_at: DateTime<Utc>,
}

/// Records a failed attempt of a claimed job.
pub async fn fail(
    conn: &mut PgConn,
    id: JobId,
    worker: &str,
    error: &str,
    permanent: bool,
    retry_at: DateTime<Utc>,
) -> QueryResult<FailOutcome> {
    // A twin (same dedup key) may have been enqueued while this attempt ran; going back to
    // `pending` would then violate the unique index, and the twin does the same work anyway.
    let sql = "UPDATE jobs j SET \
             state = CASE \
                 WHEN $4 OR j.attempts >= j.max_attempts THEN 'dead' \
                 WHEN j.dedup_key IS NOT NULL AND EXISTS ( \
                     SELECT 1 FROM jobs t WHERE t.dedup_key = j.dedup_key \
                       AND t.state = 'pending' AND t.id <> j.id) THEN 'done' \
                 ELSE 'pending' END, \
             run_at = CASE WHEN $4 OR j.attempts >= j.max_attempts THEN j.run_at ELSE $5 END, \
             last_error = $3, locked_by = NULL, locked_at = NULL, \
             finished_at = CASE WHEN $4 OR j.attempts >= j.max_attempts \
                 OR (j.dedup_key IS NOT NULL AND EXISTS ( \
                     SELECT 1 FROM jobs t WHERE t.dedup_key = j.dedup_key \
                       AND t.state = 'pending' AND t.id <> j.id)) THEN now() END \
         WHERE j.id = $1 AND j.state = 'running' AND j.locked_by = $2 \
         RETURNING j.state, j.run_at";
    let mut attempt = 0;
    loop {
        attempt += 1;
        let result: QueryResult<Option<StateRow>> = diesel::sql_query(sql)
            .bind::<BigInt, _>(id.0)
            .bind::<Text, _>(worker)
            .bind::<Text, _>(truncate(error, 4000))
            .bind::<Bool, _>(permanent)
            .bind::<Timestamptz, _>(retry_at)
            .get_result(conn)
            .await
            .optional();
        return match result {
            Ok(None) => Ok(FailOutcome::Lost),
            Ok(Some(row)) => Ok(match row.state.as_str() {
                "dead" => FailOutcome::Dead,
                "done" => FailOutcome::Superseded,
                _ => FailOutcome::Retry(row.run_at),
            }),
            // The twin appeared between the EXISTS check and the update: run it again.
            Err(diesel::result::Error::DatabaseError(
                diesel::result::DatabaseErrorKind::UniqueViolation,
                _,
            )) if attempt < 3 => continue,
            Err(e) => Err(e),
        };
    }
}

/// Puts back the jobs a worker holds (used on shutdown when they could not finish in time):
/// they become due again at once and the interrupted attempt is not counted.
pub async fn release_held(conn: &mut PgConn, worker: &str) -> QueryResult<usize> {
    diesel::sql_query(
        "UPDATE jobs SET state = 'pending', locked_by = NULL, locked_at = NULL, \
             attempts = GREATEST(attempts - 1, 0), run_at = now() \
         WHERE state = 'running' AND locked_by = $1",
    )
    .bind::<Text, _>(worker)
    .execute(conn)
    .await
}

/// Why a dead job could not be retried.
#[derive(Debug, thiserror::Error)]
pub enum RetryError {
    #[error("job {0} not found")]
    NotFound(JobId),
    #[error("job {0} is {1}; only dead jobs can be retried")]
    NotDead(JobId, JobState),
    #[error("an identical job is already pending")]
    TwinPending,
    #[error(transparent)]
    Db(#[from] diesel::result::Error),
}

/// An admin's retry of a dead job: pending now, with a fresh set of attempts.
pub async fn retry_dead(conn: &mut PgConn, id: JobId) -> Result<Job, RetryError> {
    let updated = diesel::update(
        jobs::table
            .filter(jobs::id.eq(id))
            .filter(jobs::state.eq(JobState::Dead)),
    )
    .set((
        jobs::state.eq(JobState::Pending),
        jobs::attempts.eq(0),
        jobs::run_at.eq(diesel::dsl::now),
        jobs::finished_at.eq(None::<DateTime<Utc>>),
    ))
    .returning(Job::as_returning())
    .get_result(conn)
    .await
    .optional();
    match updated {
        Ok(Some(job)) => {
            diesel::sql_query("SELECT pg_notify($1, $2)")
                .bind::<Text, _>(NOTIFY_CHANNEL)
                .bind::<Text, _>(&job.kind)
                .execute(conn)
                .await?;
            Ok(job)
        }
        Ok(None) => match find(conn, id).await? {
            None => Err(RetryError::NotFound(id)),
            Some(job) => Err(RetryError::NotDead(id, job.state)),
        },
        Err(diesel::result::Error::DatabaseError(
            diesel::result::DatabaseErrorKind::UniqueViolation,
            _,
        )) => Err(RetryError::TwinPending),
        Err(e) => Err(e.into()),
    }
}

/// Why a dead job could not be discarded.
#[derive(Debug, thiserror::Error)]
pub enum DiscardError {
    #[error("job {0} not found")]
    NotFound(JobId),
    #[error("job {0} is {1}; only dead jobs can be discarded")]
    NotDead(JobId, JobState),
    #[error(transparent)]
    Db(#[from] diesel::result::Error),
}

/// An admin's discard of a dead job: the row is deleted (the caller's audit entry keeps what it
/// was); the work it stood for is given up.
pub async fn discard_dead(conn: &mut PgConn, id: JobId) -> Result<Job, DiscardError> {
    let deleted = diesel::delete(
        jobs::table
            .filter(jobs::id.eq(id))
            .filter(jobs::state.eq(JobState::Dead)),
    )
    .returning(Job::as_returning())
    .get_result(conn)
    .await
    .optional()?;
    match deleted {
        Some(job) => Ok(job),
        None => match find(conn, id).await? {
            None => Err(DiscardError::NotFound(id)),
            Some(job) => Err(DiscardError::NotDead(id, job.state)),
        },
    }
}

pub async fn find(conn: &mut PgConn, id: JobId) -> QueryResult<Option<Job>> {
    jobs::table
        .find(id)
        .select(Job::as_select())
        .first(conn)
        .await
        .optional()
}

/// A page of jobs, newest first, with the total that matches the filter.
pub async fn list(
    conn: &mut PgConn,
    state: Option<JobState>,
    kind: Option<&str>,
    page: i64,
    per_page: i64,
) -> QueryResult<(Vec<Job>, i64)> {
    let filtered = || {
        let mut q = jobs::table.into_boxed();
        if let Some(state) = state {
            q = q.filter(jobs::state.eq(state));
        }
        if let Some(kind) = kind {
            q = q.filter(jobs::kind.eq(kind.to_owned()));
        }
        q
    };
    let total = filtered().count().get_result(conn).await?;
    let items = filtered()
        .select(Job::as_select())
        .order(jobs::id.desc())
        .limit(per_page)
        .offset((page - 1).saturating_mul(per_page))
        .load(conn)
        .await?;
    Ok((items, total))
}

#[derive(QueryableByName)]
pub struct KindStateCount {
    #[diesel(sql_type = Text)]
    pub kind: String,
    #[diesel(sql_type = Text)]
    pub state: String,
    #[diesel(sql_type = BigInt)]
    pub count: i64,
    /// Pending rows: how long the oldest one that is due has waited past its `run_at`
    /// (seconds; 0 when none is due).
    #[diesel(sql_type = Double)]
    pub overdue_seconds: f64,
}

/// Number of jobs by kind and state, and how late the pending ones are (for the `vpn_shop_jobs`
/// and `vpn_shop_job_oldest_due_seconds` gauges).
pub async fn counts(conn: &mut PgConn) -> QueryResult<Vec<KindStateCount>> {
    diesel::sql_query(
        "SELECT kind, state, count(*) AS count, \
                coalesce(extract(epoch FROM now() - min(run_at) \
                    FILTER (WHERE state = 'pending' AND run_at <= now())), 0)::float8 \
                    AS overdue_seconds \
         FROM jobs GROUP BY kind, state",
    )
    .load(conn)
    .await
}

/// Jobs that failed for good and wait for an admin (an index-only count of `jobs_dead_idx`).
pub async fn dead_count(conn: &mut PgConn) -> QueryResult<i64> {
    jobs::table
        .filter(jobs::state.eq(JobState::Dead))
        .count()
        .get_result(conn)
        .await
}

/// Deletes finished jobs older than `retention` (dead jobs stay for admins), in batches, and
/// returns how many went. A scheduled task's last job is kept so its result stays readable.
pub async fn prune_done(conn: &mut PgConn, retention: Duration) -> QueryResult<usize> {
    let mut total = 0;
    loop {
        let n = diesel::sql_query(
            "DELETE FROM jobs WHERE id IN ( \
                 SELECT id FROM jobs WHERE state = 'done' \
                   AND finished_at < now() - make_interval(secs => $1) \
                   AND id NOT IN (SELECT last_job_id FROM scheduled_tasks WHERE last_job_id IS NOT NULL) \
                 LIMIT 5000)",
        )
        .bind::<Double, _>(retention.as_secs_f64())
        .execute(conn)
        .await?;
        total += n;
        if n < 5000 {
            return Ok(total);
        }
    }
}

/// A row of `RETURNING *` from raw SQL, converted into the model.
#[derive(QueryableByName)]
#[diesel(table_name = jobs)]
struct JobRow {
    id: JobId,
    kind: String,
    payload: serde_json::Value,
    state: JobState,
    attempts: i32,
    max_attempts: i32,
    run_at: DateTime<Utc>,
    dedup_key: Option<String>,
    locked_by: Option<String>,
    locked_at: Option<DateTime<Utc>>,
    last_error: Option<String>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    finished_at: Option<DateTime<Utc>>,
}

impl From<JobRow> for Job {
    fn from(r: JobRow) -> Job {
        Job {
            id: r.id,
            kind: r.kind,
            payload: r.payload,
            state: r.state,
            attempts: r.attempts,
            max_attempts: r.max_attempts,
            run_at: r.run_at,
            dedup_key: r.dedup_key,
            locked_by: r.locked_by,
            locked_at: r.locked_at,
            last_error: r.last_error,
            created_at: r.created_at,
            updated_at: r.updated_at,
            finished_at: r.finished_at,
        }
    }
}

fn truncate(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((idx, _)) => &s[..idx],
        None => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_caps_and_jitters() {
        let base = Duration::from_secs(5);
        let max = Duration::from_secs(3600);
        assert_eq!(backoff(1, base, max, 1.0), Duration::from_secs(5));
        assert_eq!(backoff(2, base, max, 1.0), Duration::from_secs(10));
        assert_eq!(backoff(4, base, max, 1.0), Duration::from_secs(40));
        assert_eq!(backoff(20, base, max, 1.0), max);
        assert_eq!(backoff(i32::MAX, base, max, 1.0), max);
        assert_eq!(backoff(3, base, max, 0.0), Duration::from_secs(10));
        assert_eq!(backoff(0, base, max, 1.0), base);
    }

    #[test]
    fn truncate_respects_char_boundaries() {
        assert_eq!(truncate("привет", 3), "при");
        assert_eq!(truncate("ok", 10), "ok");
    }
}
