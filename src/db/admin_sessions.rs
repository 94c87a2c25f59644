//! Sessions of the admin web console: one row per logged-in browser, found by the SHA-256 of
//! the cookie's token, with its CSRF token, the console language and its idle and absolute ends.

use std::time::Duration;

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::Double;
use diesel_async::RunQueryDsl;

use crate::db::PgConn;
use crate::db::schema::admin_sessions;
use crate::domain::{AdminId, Language};

/// A session as stored.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = admin_sessions, check_for_backend(diesel::pg::Pg))]
pub struct AdminSession {
    pub token_hash: Vec<u8>,
    pub admin_id: AdminId,
    pub csrf_token: String,
    pub language: Language,
    pub created_at: DateTime<Utc>,
    pub last_seen_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub remote_addr: Option<String>,
}

pub async fn create(conn: &mut PgConn, session: &AdminSession) -> QueryResult<()> {
    diesel::insert_into(admin_sessions::table)
        .values(session)
        .execute(conn)
        .await
        .map(|_| ())
}

/// How stale `last_seen_at` may get before a request writes it again: an idle limit of hours
/// does not need it to the second, and a write per page view would cost every page a commit
/// (a flush to disk).
pub const TOUCH_EVERY: Duration = Duration::from_secs(60);

/// The session of `token_hash` if it has neither expired nor been idle longer than `idle`;
/// marks it seen now (at most every [`TOUCH_EVERY`]: it may count as idle that much early).
pub async fn touch_live(
    conn: &mut PgConn,
    token_hash: &[u8],
    idle: Duration,
) -> QueryResult<Option<AdminSession>> {
    let idle_cutoff =
        diesel::dsl::sql::<diesel::sql_types::Timestamptz>("now() - make_interval(secs => ")
            .bind::<Double, _>(idle.as_secs_f64())
            .sql(")");
    let Some(session) = admin_sessions::table
        .filter(admin_sessions::token_hash.eq(token_hash))
        .filter(admin_sessions::expires_at.gt(diesel::dsl::now))
        .filter(admin_sessions::last_seen_at.gt(idle_cutoff))
        .select(AdminSession::as_select())
        .first(conn)
        .await
        .optional()?
    else {
        return Ok(None);
    };
    let every = chrono::Duration::from_std(TOUCH_EVERY).unwrap_or(chrono::Duration::MAX);
    if session.last_seen_at > Utc::now() - every {
        return Ok(Some(session));
    }
    diesel::update(admin_sessions::table.filter(admin_sessions::token_hash.eq(token_hash)))
        .set(admin_sessions::last_seen_at.eq(diesel::dsl::now))
        .returning(AdminSession::as_returning())
        .get_result(conn)
        .await
        .optional()
}

pub async fn set_language(
    conn: &mut PgConn,
    token_hash: &[u8],
    language: Language,
) -> QueryResult<()> {
    diesel::update(admin_sessions::table.find(token_hash))
        .set(admin_sessions::language.eq(language))
        .execute(conn)
        .await
        .map(|_| ())
}

/// Ends a session (logout); `false` when there was none.
pub async fn delete(conn: &mut PgConn, token_hash: &[u8]) -> QueryResult<bool> {
    diesel::delete(admin_sessions::table.find(token_hash))
        .execute(conn)
        .await
        .map(|n| n > 0)
}

/// Removes sessions past their absolute end.
pub async fn prune_expired(conn: &mut PgConn) -> QueryResult<usize> {
    diesel::delete(admin_sessions::table.filter(admin_sessions::expires_at.lt(diesel::dsl::now)))
        .execute(conn)
        .await
}
