//! Codes that link a Telegram account to a web-only account: the cabinet shows one, the
//! subscriber sends it to the bot (`/link CODE`). Only the code's SHA-256 is stored, one live
//! code per account (a new one replaces the old), each valid for a few minutes.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::upsert::excluded;
use diesel_async::RunQueryDsl;

use crate::db::PgConn;
use crate::db::schema::telegram_link_codes;
use crate::domain::UserId;

/// A code as stored.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = telegram_link_codes, check_for_backend(diesel::pg::Pg))]
pub struct LinkCode {
    pub code_hash: Vec<u8>,
    pub user_id: UserId,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

/// Stores `code_hash` as the account's code until `expires_at`, replacing an earlier one.
pub async fn replace(
    conn: &mut PgConn,
    user: UserId,
    code_hash: &[u8],
    expires_at: DateTime<Utc>,
) -> QueryResult<()> {
    diesel::insert_into(telegram_link_codes::table)
        .values((
            telegram_link_codes::user_id.eq(user),
            telegram_link_codes::code_hash.eq(code_hash),
            telegram_link_codes::expires_at.eq(expires_at),
        ))
        .on_conflict(telegram_link_codes::user_id)
        .do_update()
        .set((
            telegram_link_codes::code_hash.eq(excluded(telegram_link_codes::code_hash)),
            telegram_link_codes::created_at.eq(diesel::dsl::now),
            telegram_link_codes::expires_at.eq(excluded(telegram_link_codes::expires_at)),
        ))
        .execute(conn)
        .await
        .map(|_| ())
}

/// The account of a live code, its row locked until the transaction ends (two `/link` of one
/// code link once); `None` for a code that expired, was used or never existed.
pub async fn lock_live(conn: &mut PgConn, code_hash: &[u8]) -> QueryResult<Option<UserId>> {
    telegram_link_codes::table
        .filter(telegram_link_codes::code_hash.eq(code_hash))
        .filter(telegram_link_codes::expires_at.gt(diesel::dsl::now))
        .select(telegram_link_codes::user_id)
        .for_update()
        .first(conn)
        .await
        .optional()
}

/// The account's code is used up.
pub async fn delete_for(conn: &mut PgConn, user: UserId) -> QueryResult<()> {
    diesel::delete(telegram_link_codes::table.filter(telegram_link_codes::user_id.eq(user)))
        .execute(conn)
        .await
        .map(|_| ())
}

/// Removes codes that ended.
pub async fn prune(conn: &mut PgConn) -> QueryResult<usize> {
    diesel::delete(
        telegram_link_codes::table.filter(telegram_link_codes::expires_at.lt(diesel::dsl::now)),
    )
    .execute(conn)
    .await
}
