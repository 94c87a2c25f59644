//! The bot's posts of support conversations in the team's chats (`support_forwards`) and their
//! forum topics: which conversation a reply or a message in a topic answers.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use crate::db::PgConn;
use crate::db::schema::{support_conversations, support_forwards};
use crate::domain::ConversationId;

/// A post of the bot in a team chat that belongs to a conversation.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = support_forwards, check_for_backend(diesel::pg::Pg))]
pub struct SupportForward {
    pub chat_id: i64,
    pub message_id: i32,
    pub conversation_id: ConversationId,
    pub created_at: DateTime<Utc>,
}

/// Remembers a post of the bot in a team chat for `conversation`.
pub async fn record_forward(
    conn: &mut PgConn,
    chat_id: i64,
    message_id: i32,
    conversation: ConversationId,
) -> QueryResult<()> {
    diesel::insert_into(support_forwards::table)
        .values((
            support_forwards::chat_id.eq(chat_id),
            support_forwards::message_id.eq(message_id),
            support_forwards::conversation_id.eq(conversation),
        ))
        .on_conflict_do_nothing()
        .execute(conn)
        .await
        .map(|_| ())
}

/// The conversation a post of the bot in a team chat belongs to.
pub async fn conversation_of_post(
    conn: &mut PgConn,
    chat_id: i64,
    message_id: i32,
) -> QueryResult<Option<ConversationId>> {
    support_forwards::table
        .find((chat_id, message_id))
        .select(support_forwards::conversation_id)
        .first(conn)
        .await
        .optional()
}

/// Whether the team chat has seen the conversation's card.
pub async fn has_posts_in(
    conn: &mut PgConn,
    conversation: ConversationId,
    chat_id: i64,
) -> QueryResult<bool> {
    diesel::select(diesel::dsl::exists(
        support_forwards::table
            .filter(support_forwards::conversation_id.eq(conversation))
            .filter(support_forwards::chat_id.eq(chat_id)),
    ))
    .get_result(conn)
    .await
}

/// The newest conversation of a forum topic (topics are one per conversation).
pub async fn conversation_of_topic(
    conn: &mut PgConn,
    topic_id: i32,
) -> QueryResult<Option<ConversationId>> {
    support_conversations::table
        .filter(support_conversations::topic_id.eq(topic_id))
        .order(support_conversations::id.desc())
        .select(support_conversations::id)
        .first(conn)
        .await
        .optional()
}

pub async fn set_topic(conn: &mut PgConn, id: ConversationId, topic_id: i32) -> QueryResult<()> {
    diesel::update(support_conversations::table.find(id))
        .set(support_conversations::topic_id.eq(topic_id))
        .execute(conn)
        .await
        .map(|_| ())
}
