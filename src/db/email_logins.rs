//! One-time email links of the cabinet: the SHA-256 of the link's token, the address it was sent
//! to, until when it works and when it was used, and for a link that confirms a new address of
//! an account, that account. Using one is a single statement, so two clicks of the same link
//! count once.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use crate::db::PgConn;
use crate::db::schema::email_logins;
use crate::domain::UserId;

/// A link as stored.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = email_logins, check_for_backend(diesel::pg::Pg))]
pub struct EmailLogin {
    pub token_hash: Vec<u8>,
    pub email: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub used_at: Option<DateTime<Utc>>,
    /// The account whose new address this link confirms; `None` for a sign-in link.
    pub user_id: Option<UserId>,
}

/// A link to `email`: a sign-in link, or with `user` one that confirms it as that account's
/// new address.
pub async fn create(
    conn: &mut PgConn,
    token_hash: &[u8],
    email: &str,
    expires_at: DateTime<Utc>,
    user: Option<UserId>,
) -> QueryResult<()> {
    diesel::insert_into(email_logins::table)
        .values((
            email_logins::token_hash.eq(token_hash),
            email_logins::email.eq(email),
            email_logins::expires_at.eq(expires_at),
            email_logins::user_id.eq(user),
        ))
        .execute(conn)
        .await
        .map(|_| ())
}

/// The link of `token_hash` while it is usable (not used, not expired).
pub async fn usable(conn: &mut PgConn, token_hash: &[u8]) -> QueryResult<Option<EmailLogin>> {
    email_logins::table
        .filter(email_logins::token_hash.eq(token_hash))
        .filter(email_logins::used_at.is_null())
        .filter(email_logins::expires_at.gt(diesel::dsl::now))
        .select(EmailLogin::as_select())
        .first(conn)
        .await
        .optional()
}

/// Uses the link of `token_hash`: its address (and the account it confirms an address of) when
/// it was unused and unexpired, `None` otherwise (used before, expired, or never issued).
pub async fn consume(
    conn: &mut PgConn,
    token_hash: &[u8],
) -> QueryResult<Option<(String, Option<UserId>)>> {
    diesel::update(
        email_logins::table
            .filter(email_logins::token_hash.eq(token_hash))
            .filter(email_logins::used_at.is_null())
            .filter(email_logins::expires_at.gt(diesel::dsl::now)),
    )
    .set(email_logins::used_at.eq(diesel::dsl::now))
    .returning((email_logins::email, email_logins::user_id))
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
