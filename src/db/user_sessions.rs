//! Sessions of the subscriber cabinet (`/app`): one row per signed-in browser or Mini App,
//! found by the SHA-256 of the cookie's token, with its CSRF token and its idle and absolute
//! ends — as `admin_sessions` for the console.

use std::time::Duration;

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use crate::db::PgConn;
use crate::db::admin_sessions::TOUCH_EVERY;
use crate::db::schema::user_sessions;
use crate::domain::UserId;

/// A session as stored.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = user_sessions, check_for_backend(diesel::pg::Pg))]
pub struct UserSession {
    pub token_hash: Vec<u8>,
    pub user_id: UserId,
    pub csrf_token: String,
    pub created_at: DateTime<Utc>,
    pub last_seen_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub remote_addr: Option<String>,
}

pub async fn create(conn: &mut PgConn, session: &UserSession) -> QueryResult<()> {
    diesel::insert_into(user_sessions::table)
        .values(session)
        .execute(conn)
        .await
        .map(|_| ())
}

/// The session of `token_hash` if it has neither expired nor been idle longer than `idle`;
/// marks it seen now (at most every [`TOUCH_EVERY`]).
pub async fn touch_live(
    conn: &mut PgConn,
    token_hash: &[u8],
    idle: Duration,
) -> QueryResult<Option<UserSession>> {
    let idle = chrono::Duration::from_std(idle).unwrap_or(chrono::Duration::days(1));
    let idle_cutoff = Utc::now() - idle;
    let Some(session) = user_sessions::table
        .filter(user_sessions::token_hash.eq(token_hash))
        .filter(user_sessions::expires_at.gt(diesel::dsl::now))
        .filter(user_sessions::last_seen_at.gt(idle_cutoff))
        .select(UserSession::as_select())
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
    diesel::update(user_sessions::table.find(token_hash))
        .set(user_sessions::last_seen_at.eq(diesel::dsl::now))
        .returning(UserSession::as_returning())
        .get_result(conn)
        .await
        .optional()
}

/// Ends a session (sign out); `false` when there was none.
pub async fn delete(conn: &mut PgConn, token_hash: &[u8]) -> QueryResult<bool> {
    diesel::delete(user_sessions::table.find(token_hash))
        .execute(conn)
        .await
        .map(|n| n > 0)
}

/// Removes sessions past their absolute end.
pub async fn prune_expired(conn: &mut PgConn) -> QueryResult<usize> {
    diesel::delete(user_sessions::table.filter(user_sessions::expires_at.lt(diesel::dsl::now)))
        .execute(conn)
        .await
}
