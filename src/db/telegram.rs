//! Telegram bookkeeping shared by replicas: handled update ids and dialogue state.

use std::time::Duration;

use diesel::sql_types::Double;
use diesel::upsert::excluded;
use diesel::{ExpressionMethods, OptionalExtension, QueryDsl};
use diesel_async::RunQueryDsl;

use crate::db::PgConn;
use crate::db::schema::{bot_dialogues, telegram_updates};

/// Forgets handled update ids older than `retention`.
pub async fn prune_updates(conn: &mut PgConn, retention: Duration) -> diesel::QueryResult<usize> {
    diesel::sql_query(
        "DELETE FROM telegram_updates WHERE received_at < now() - make_interval(secs => $1)",
    )
    .bind::<Double, _>(retention.as_secs_f64())
    .execute(conn)
    .await
}

/// Records that update `update_id` is being handled. `false`: it was handled before (a webhook
/// redelivery, or another replica got it).
pub async fn mark_update(conn: &mut PgConn, update_id: i64) -> diesel::QueryResult<bool> {
    let inserted = diesel::insert_into(telegram_updates::table)
        .values(telegram_updates::update_id.eq(update_id))
        .on_conflict_do_nothing()
        .execute(conn)
        .await?;
    Ok(inserted == 1)
}

/// The dialogue state of a chat, as stored by the bot.
pub async fn dialogue(
    conn: &mut PgConn,
    chat_id: i64,
) -> diesel::QueryResult<Option<serde_json::Value>> {
    bot_dialogues::table
        .find(chat_id)
        .select(bot_dialogues::state)
        .first(conn)
        .await
        .optional()
}

pub async fn put_dialogue(
    conn: &mut PgConn,
    chat_id: i64,
    state: &serde_json::Value,
) -> diesel::QueryResult<()> {
    diesel::insert_into(bot_dialogues::table)
        .values((
            bot_dialogues::chat_id.eq(chat_id),
            bot_dialogues::state.eq(state),
        ))
        .on_conflict(bot_dialogues::chat_id)
        .do_update()
        .set((
            bot_dialogues::state.eq(excluded(bot_dialogues::state)),
            bot_dialogues::updated_at.eq(diesel::dsl::now),
        ))
        .execute(conn)
        .await
        .map(|_| ())
}

/// `false` when the chat had no dialogue.
pub async fn remove_dialogue(conn: &mut PgConn, chat_id: i64) -> diesel::QueryResult<bool> {
    diesel::delete(bot_dialogues::table.find(chat_id))
        .execute(conn)
        .await
        .map(|n| n == 1)
}
