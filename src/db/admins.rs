//! Admin API accounts and the failed-login throttle.

use std::time::Duration;

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{Double, Integer, Nullable, Text, Timestamptz};
use diesel_async::RunQueryDsl;

use crate::db::PgConn;
use crate::db::models::Admin;
use crate::db::schema::{admins, login_throttle, revoked_tokens};
use crate::domain::{AdminId, AdminRole};

pub async fn find_by_username(conn: &mut PgConn, username: &str) -> QueryResult<Option<Admin>> {
    admins::table
        .filter(admins::username.eq(username))
        .select(Admin::as_select())
        .first(conn)
        .await
        .optional()
}

pub async fn find(conn: &mut PgConn, id: AdminId) -> QueryResult<Option<Admin>> {
    admins::table
        .find(id)
        .select(Admin::as_select())
        .first(conn)
        .await
        .optional()
}

/// Inserts an account; `Ok(None)` when the username is taken.
pub async fn create(
    conn: &mut PgConn,
    username: &str,
    password_hash: &str,
    role: AdminRole,
) -> QueryResult<Option<Admin>> {
    diesel::insert_into(admins::table)
        .values((
            admins::username.eq(username),
            admins::password_hash.eq(password_hash),
            admins::role.eq(role),
        ))
        .on_conflict(admins::username)
        .do_nothing()
        .returning(Admin::as_returning())
        .get_result(conn)
        .await
        .optional()
}

/// Every account, oldest first.
pub async fn list(conn: &mut PgConn) -> QueryResult<Vec<Admin>> {
    admins::table
        .select(Admin::as_select())
        .order(admins::id)
        .load(conn)
        .await
}

/// The account, its row locked until the caller's transaction ends.
pub async fn lock(conn: &mut PgConn, id: AdminId) -> QueryResult<Option<Admin>> {
    admins::table
        .find(id)
        .select(Admin::as_select())
        .for_update()
        .first(conn)
        .await
        .optional()
}

/// Ids of the active accounts with the admin role, their rows locked until the caller's
/// transaction ends. Every change that may take away an admin takes these locks first (in id
/// order), so two admins demoting each other at once cannot leave the shop without one: the
/// second sees the first's change.
pub async fn lock_active_admins(conn: &mut PgConn) -> QueryResult<Vec<AdminId>> {
    admins::table
        .filter(admins::role.eq(AdminRole::Admin))
        .filter(admins::active.eq(true))
        .select(admins::id)
        .order(admins::id)
        .for_update()
        .load(conn)
        .await
}

/// What an update of an account changes; `None` leaves a column as it is.
#[derive(Debug, Clone, Default, AsChangeset)]
#[diesel(table_name = admins)]
pub struct AdminChanges {
    pub role: Option<AdminRole>,
    pub password_hash: Option<String>,
    pub active: Option<bool>,
    /// Tokens issued before this are refused (see `web::auth`).
    pub tokens_valid_after: Option<DateTime<Utc>>,
}

pub async fn update(conn: &mut PgConn, id: AdminId, changes: &AdminChanges) -> QueryResult<Admin> {
    diesel::update(admins::table.find(id))
        .set(changes)
        .returning(Admin::as_returning())
        .get_result(conn)
        .await
}

/// Replaces the password hash if it is still `expected_hash` (no one changed it since the
/// caller checked the current password) and ends every token issued before `valid_after`.
/// `false` when the hash changed meanwhile.
pub async fn replace_password(
    conn: &mut PgConn,
    id: AdminId,
    expected_hash: &str,
    new_hash: &str,
    valid_after: DateTime<Utc>,
) -> QueryResult<bool> {
    let n = diesel::update(
        admins::table
            .find(id)
            .filter(admins::password_hash.eq(expected_hash)),
    )
    .set((
        admins::password_hash.eq(new_hash),
        admins::tokens_valid_after.eq(valid_after),
    ))
    .execute(conn)
    .await?;
    Ok(n == 1)
}

/// Deletes the account. Its audit rows keep the actor's name (`admin_id` becomes NULL), its
/// broadcasts lose their author, its revoked tokens go with it.
pub async fn delete(conn: &mut PgConn, id: AdminId) -> QueryResult<bool> {
    diesel::delete(admins::table.find(id))
        .execute(conn)
        .await
        .map(|n| n == 1)
}

/// Refuses the token `jti` from now on (logout); kept until the token would have expired anyway.
pub async fn revoke_token(
    conn: &mut PgConn,
    jti: uuid::Uuid,
    admin_id: AdminId,
    expires_at: DateTime<Utc>,
) -> QueryResult<()> {
    diesel::insert_into(revoked_tokens::table)
        .values((
            revoked_tokens::jti.eq(jti),
            revoked_tokens::admin_id.eq(admin_id),
            revoked_tokens::expires_at.eq(expires_at),
        ))
        .on_conflict_do_nothing()
        .execute(conn)
        .await
        .map(|_| ())
}

pub async fn record_login(conn: &mut PgConn, id: AdminId) -> QueryResult<()> {
    diesel::update(admins::table.find(id))
        .set(admins::last_login_at.eq(diesel::dsl::now))
        .execute(conn)
        .await
        .map(|_| ())
}

pub async fn is_token_revoked(conn: &mut PgConn, jti: uuid::Uuid) -> QueryResult<bool> {
    diesel::select(diesel::dsl::exists(
        revoked_tokens::table.filter(revoked_tokens::jti.eq(jti)),
    ))
    .get_result(conn)
    .await
}

/// Failed logins allowed within [`LOCKOUT_WINDOW`] before the username is locked.
pub const MAX_FAILED_LOGINS: i32 = 5;
/// The window in which failures count, and how long a lock lasts.
pub const LOCKOUT_WINDOW: Duration = Duration::from_secs(15 * 60);

/// The throttle's answer to one password attempt for a username.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attempt {
    /// Check the password. `locks_until` is set when this is the window's last allowed
    /// attempt: the username is already locked until then, and only a right password (which
    /// clears the throttle) lifts the lock.
    Allowed { locks_until: Option<DateTime<Utc>> },
    /// Locked until then: refuse without checking the password.
    Locked(DateTime<Utc>),
}

#[derive(QueryableByName)]
struct ThrottleRow {
    #[diesel(sql_type = Integer)]
    failures: i32,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    locked_until: Option<DateTime<Utc>>,
}

/// Counts a password attempt for `username` *before* the password is checked and says whether
/// it may be checked. One atomic upsert (the row lock orders concurrent attempts, on any
/// replica), so however many guesses arrive at once at most [`MAX_FAILED_LOGINS`] per window
/// are checked: reading the lock and writing the failure after the slow Argon2 check let every
/// concurrent guess through. The [`MAX_FAILED_LOGINS`]th attempt locks the username for
/// [`LOCKOUT_WINDOW`] at once; [`clear_failures`] (a right password) lifts it. Attempts on a
/// locked username are counted too (`failures` above the maximum means "refused"); a lock that
/// is over, or a window that is over, starts a fresh window.
pub async fn reserve_attempt(conn: &mut PgConn, username: &str) -> QueryResult<Attempt> {
    let row: ThrottleRow = diesel::sql_query(
        "INSERT INTO login_throttle AS t (username, failures, window_started_at, locked_until) \
         VALUES ($1, 1, now(), CASE WHEN 1 >= $3 THEN now() + make_interval(secs => $2) END) \
         ON CONFLICT (username) DO UPDATE SET \
             failures = CASE \
                 WHEN t.locked_until > now() THEN t.failures + 1 \
                 WHEN t.locked_until IS NOT NULL \
                   OR t.window_started_at < now() - make_interval(secs => $2) THEN 1 \
                 ELSE t.failures + 1 END, \
             window_started_at = CASE \
                 WHEN t.locked_until > now() THEN t.window_started_at \
                 WHEN t.locked_until IS NOT NULL \
                   OR t.window_started_at < now() - make_interval(secs => $2) THEN now() \
                 ELSE t.window_started_at END, \
             locked_until = CASE \
                 WHEN t.locked_until > now() THEN t.locked_until \
                 WHEN t.locked_until IS NOT NULL \
                   OR t.window_started_at < now() - make_interval(secs => $2) \
                     THEN CASE WHEN 1 >= $3 THEN now() + make_interval(secs => $2) END \
                 WHEN t.failures + 1 >= $3 THEN now() + make_interval(secs => $2) \
                 END \
         RETURNING failures, locked_until",
    )
    .bind::<Text, _>(username)
    .bind::<Double, _>(LOCKOUT_WINDOW.as_secs_f64())
    .bind::<Integer, _>(MAX_FAILED_LOGINS)
    .get_result(conn)
    .await?;
    Ok(match row.locked_until {
        Some(until) if row.failures > MAX_FAILED_LOGINS => Attempt::Locked(until),
        locks_until => Attempt::Allowed { locks_until },
    })
}

/// A successful login forgets earlier failures.
pub async fn clear_failures(conn: &mut PgConn, username: &str) -> QueryResult<()> {
    diesel::delete(login_throttle::table.find(username))
        .execute(conn)
        .await
        .map(|_| ())
}

/// Removes throttle rows whose window and lock are over, revoked tokens past their expiry and
/// console sessions past their end (and the cabinet's sessions, sign-in links and Telegram link
/// codes).
pub async fn prune_auth_state(conn: &mut PgConn) -> QueryResult<usize> {
    let throttles = diesel::sql_query(
        "DELETE FROM login_throttle WHERE window_started_at < now() - make_interval(secs => $1) \
           AND (locked_until IS NULL OR locked_until < now())",
    )
    .bind::<Double, _>(LOCKOUT_WINDOW.as_secs_f64())
    .execute(conn)
    .await?;
    let tokens = diesel::delete(
        revoked_tokens::table.filter(revoked_tokens::expires_at.lt(diesel::dsl::now)),
    )
    .execute(conn)
    .await?;
    let sessions = crate::db::admin_sessions::prune_expired(conn).await?;
    // The cabinet's sessions and sign-in links end the same way.
    let subscriber_sessions = crate::db::user_sessions::prune_expired(conn).await?;
    let links = crate::db::email_logins::prune(conn).await?;
    let codes = crate::db::link_codes::prune(conn).await?;
    Ok(throttles + tokens + sessions + subscriber_sessions + links + codes)
}
