//! Telegram subscribers.

use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use crate::db::PgConn;
use crate::db::models::User;
use crate::db::schema::users;
use crate::domain::UserId;

pub async fn find(conn: &mut PgConn, id: UserId) -> QueryResult<Option<User>> {
    users::table
        .find(id)
        .select(User::as_select())
        .first(conn)
        .await
        .optional()
}

/// The user blocked the bot (or is gone): no more Telegram messages until they come back.
pub async fn mark_bot_blocked(conn: &mut PgConn, id: UserId) -> QueryResult<()> {
    diesel::update(users::table.find(id))
        .set(users::bot_blocked.eq(true))
        .execute(conn)
        .await
        .map(|_| ())
}

/// The remembered promo code was used (or refused for good).
pub async fn clear_pending_promo(conn: &mut PgConn, id: UserId) -> QueryResult<()> {
    diesel::update(users::table.find(id))
        .set(users::pending_promo_id.eq(None::<crate::domain::PromoCodeId>))
        .execute(conn)
        .await
        .map(|_| ())
}
