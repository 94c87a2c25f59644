//! One-time email sign-in links of the cabinet: the SHA-256 of the link's token, the address it
//! was sent to, until when it works and when it was used. Using one is a single statement, so
//! two clicks of the same link sign in once.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use crate::db::PgConn;
use crate::db::schema::email_logins;

/// A link as stored.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = email_logins, check_for_backend(diesel::pg::Pg))]
pub struct EmailLogin {
    pub token_hash: Vec<u8>,
    pub email: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub used_at: Option<DateTime<Utc>>,
}

pub async fn create(
    conn: &mut PgConn,
    token_hash: &[u8],
    email: &str,
    expires_at: DateTime<Utc>,
) -> QueryResult<()> {
    diesel::insert_into(email_logins::table)
        .values((
            email_logins::token_hash.eq(token_hash),
            email_logins::email.eq(email),
            email_logins::expires_at.eq(expires_at),
        ))
        .execute(conn)
        .await
        .map(|_| ())
}

/// Whether the link of `token_hash` is still usable (not used, not expired).
pub async fn is_usable(conn: &mut PgConn, token_hash: &[u8]) -> QueryResult<bool> {
    diesel::select(diesel::dsl::exists(
        email_logins::table
            .filter(email_logins::token_hash.eq(token_hash))
            .filter(email_logins::used_at.is_null())
            .filter(email_logins::expires_at.gt(diesel::dsl::now)),
    ))
    .get_result(conn)
    .await
}

/// Uses the link of `token_hash`: its address when it was unused and unexpired, `None`
/// otherwise (used before, expired, or never issued).
pub async fn consume(conn: &mut PgConn, token_hash: &[u8]) -> QueryResult<Option<String>> {
    diesel::update(
        email_logins::table
            .filter(email_logins::token_hash.eq(token_hash))
            .filter(email_logins::used_at.is_null())
            .filter(email_logins::expires_at.gt(diesel::dsl::now)),
    )
    .set(email_logins::used_at.eq(diesel::dsl::now))
    .returning(email_logins::email)
    .get_result(conn)
    .await
    .optional()
}

/// Removes links that ended more than a day ago.
pub async fn prune(conn: &mut PgConn) -> QueryResult<usize> {
    let cutoff = chrono::Utc::now() - chrono::Duration::days(1);
    diesel::delete(email_logins::table.filter(email_logins::expires_at.lt(cutoff)))
        .execute(conn)
        .await
}
