//! Support conversations (`support_conversations`), their messages (`support_messages`) and the
//! bot's posts of them in the team's chats (`db::support_posts`). Recording a message runs in the
//! caller's transaction and enqueues its delivery (`support_deliver`) with it.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Nullable, Timestamptz};
use diesel_async::RunQueryDsl;
use serde::Serialize;

use crate::db::PgConn;
use crate::db::jobs::{self, NewJob};
use crate::db::schema::{support_conversations, support_messages, users};
use crate::domain::support::{
    BATCH_DELAY, ConversationState, Direction, SUPPORT_JOB, SupportJob, SupportMessageKind,
};
use crate::domain::{ConversationId, Language, SupportMessageId, UserId};

/// A conversation.
#[derive(Debug, Clone, Queryable, Selectable, Serialize, utoipa::ToSchema)]
#[diesel(table_name = support_conversations, check_for_backend(diesel::pg::Pg))]
pub struct ConversationRow {
    #[schema(value_type = i64)]
    pub id: ConversationId,
    #[schema(value_type = i64)]
    pub user_id: UserId,
    /// `open` (waits for an answer), `answered` or `closed`.
    #[schema(value_type = String, example = "open")]
    pub state: ConversationState,
    /// Its forum topic in `SUPPORT_CHAT_ID`, when the group has topics.
    pub topic_id: Option<i32>,
    pub opened_at: DateTime<Utc>,
    /// The subscriber's oldest message not answered yet.
    pub waiting_since: Option<DateTime<Utc>>,
    pub last_message_at: DateTime<Utc>,
    pub first_response_at: Option<DateTime<Utc>>,
    pub answered_at: Option<DateTime<Utc>>,
    /// `telegram:<id>` or `admin:<username>`.
    pub answered_by: Option<String>,
    pub closed_at: Option<DateTime<Utc>>,
    pub closed_by: Option<String>,
    pub updated_at: DateTime<Utc>,
}

/// A message of a conversation.
#[derive(Debug, Clone, Queryable, Selectable, Serialize, utoipa::ToSchema)]
#[diesel(table_name = support_messages, check_for_backend(diesel::pg::Pg))]
pub struct SupportMessageRow {
    #[schema(value_type = i64)]
    pub id: SupportMessageId,
    #[schema(value_type = i64)]
    pub conversation_id: ConversationId,
    /// `in` (from the subscriber) or `out` (the team's answer).
    #[schema(value_type = String, example = "in")]
    pub direction: Direction,
    /// Who answered (`out`).
    pub author: Option<String>,
    /// `text`, `photo`, `document` or `other`.
    #[schema(value_type = String, example = "text")]
    pub kind: SupportMessageKind,
    /// The text or caption.
    pub body: Option<String>,
    /// The Telegram chat and message it was written as.
    pub chat_id: Option<i64>,
    pub message_id: Option<i32>,
    pub created_at: DateTime<Utc>,
    /// Passed on to the team (`in`) or delivered to the subscriber (`out`).
    pub delivered_at: Option<DateTime<Utc>>,
}

/// A conversation with who it is with, as lists show it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ConversationSummary {
    #[serde(flatten)]
    pub conversation: ConversationRow,
    pub telegram_id: Option<i64>,
    pub username: Option<String>,
    pub first_name: Option<String>,
    #[schema(value_type = String, example = "ru")]
    pub language: Language,
    /// Messages in both directions.
    pub messages: i64,
}

/// A message as written, to record.
#[derive(Debug, Clone)]
pub struct NewSupportMessage<'a> {
    pub kind: SupportMessageKind,
    pub body: Option<&'a str>,
    /// The Telegram message (to copy media on); `None` for an answer typed in the API.
    pub telegram: Option<(i64, i32)>,
}

/// What recording a subscriber's message did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Incoming {
    pub conversation: ConversationId,
    /// A new conversation (the subscriber is told it reached the team).
    pub opened: bool,
}

#[derive(QueryableByName)]
struct Id {
    #[diesel(sql_type = BigInt)]
    id: i64,
}

async fn enqueue(conn: &mut PgConn, job: SupportJob, max_attempts: i32) -> QueryResult<()> {
    let run_at = match job {
        SupportJob::Forward { .. } => Utc::now() + BATCH_DELAY,
        _ => Utc::now(),
    };
    jobs::enqueue(
        conn,
        NewJob::new(SUPPORT_JOB, job)
            .dedup_key(job.dedup_key())
            .run_at(run_at),
        max_attempts,
    )
    .await
    .map(|_| ())
}

/// Records a subscriber's message in their open conversation (opened now if there is none) and
/// schedules its passing on: one pending job per conversation, so a run of messages goes as one
/// batch.
pub async fn record_incoming(
    conn: &mut PgConn,
    user: UserId,
    message: &NewSupportMessage<'_>,
    max_attempts: i32,
) -> QueryResult<Incoming> {
    // Raw SQL: ON CONFLICT on a partial unique index needs its predicate spelled out.
    let opened: Option<Id> = diesel::sql_query(
        "INSERT INTO support_conversations (user_id, waiting_since) VALUES ($1, now()) \
         ON CONFLICT (user_id) WHERE state <> 'closed' DO NOTHING RETURNING id",
    )
    .bind::<BigInt, _>(user.0)
    .get_result(conn)
    .await
    .optional()?;
    let (conversation, is_new) = match opened {
        Some(row) => (ConversationId(row.id), true),
        None => {
            let id: ConversationId = diesel::update(
                support_conversations::table
                    .filter(support_conversations::user_id.eq(user))
                    .filter(support_conversations::state.ne(ConversationState::Closed)),
            )
            .set((
                support_conversations::state.eq(ConversationState::Open),
                support_conversations::waiting_since.eq(diesel::dsl::sql::<Nullable<Timestamptz>>(
                    "COALESCE(waiting_since, now())",
                )),
                support_conversations::last_message_at.eq(diesel::dsl::now),
            ))
            .returning(support_conversations::id)
            .get_result(conn)
            .await?;
            (id, false)
        }
    };
    insert_message(conn, conversation, Direction::In, None, message).await?;
    enqueue(
        conn,
        SupportJob::Forward {
            conversation_id: conversation,
        },
        max_attempts,
    )
    .await?;
    Ok(Incoming {
        conversation,
        opened: is_new,
    })
}

async fn insert_message(
    conn: &mut PgConn,
    conversation: ConversationId,
    direction: Direction,
    author: Option<&str>,
    message: &NewSupportMessage<'_>,
) -> QueryResult<SupportMessageId> {
    diesel::insert_into(support_messages::table)
        .values((
            support_messages::conversation_id.eq(conversation),
            support_messages::direction.eq(direction),
            support_messages::author.eq(author),
            support_messages::kind.eq(message.kind),
            support_messages::body.eq(message.body),
            support_messages::chat_id.eq(message.telegram.map(|t| t.0)),
            support_messages::message_id.eq(message.telegram.map(|t| t.1)),
        ))
        .returning(support_messages::id)
        .get_result(conn)
        .await
}

/// What recording an answer did.
#[derive(Debug, Clone)]
pub enum Answered {
    /// Recorded and queued for delivery; `first_response` is the time the subscriber waited for
    /// the conversation's first answer (when this is it).
    Recorded {
        message: SupportMessageId,
        first_response: Option<chrono::Duration>,
    },
    NotFound,
    Closed,
}

/// Records the team's answer (`author` as in the audit log) and queues its delivery.
pub async fn record_answer(
    conn: &mut PgConn,
    conversation: ConversationId,
    author: &str,
    message: &NewSupportMessage<'_>,
    max_attempts: i32,
) -> QueryResult<Answered> {
    let Some(before) = lock(conn, conversation).await? else {
        return Ok(Answered::NotFound);
    };
    if before.state == ConversationState::Closed {
        return Ok(Answered::Closed);
    }
    let id = insert_message(conn, conversation, Direction::Out, Some(author), message).await?;
    let now = Utc::now();
    diesel::update(support_conversations::table.find(conversation))
        .set((
            support_conversations::state.eq(ConversationState::Answered),
            support_conversations::waiting_since.eq(None::<DateTime<Utc>>),
            support_conversations::answered_at.eq(now),
            support_conversations::answered_by.eq(author),
            support_conversations::first_response_at.eq(before.first_response_at.unwrap_or(now)),
        ))
        .execute(conn)
        .await?;
    enqueue(conn, SupportJob::Reply { message_id: id }, max_attempts).await?;
    Ok(Answered::Recorded {
        message: id,
        first_response: before
            .first_response_at
            .is_none()
            .then(|| now - before.opened_at),
    })
}

/// Closes the conversation (`by` as in the audit log) and queues telling the subscriber: the
/// conversation as it was, when it was closed now.
pub async fn close(
    conn: &mut PgConn,
    conversation: ConversationId,
    by: &str,
    max_attempts: i32,
) -> QueryResult<Option<ConversationRow>> {
    let Some(before) = lock(conn, conversation).await? else {
        return Ok(None);
    };
    if before.state == ConversationState::Closed {
        return Ok(None);
    }
    diesel::update(support_conversations::table.find(conversation))
        .set((
            support_conversations::state.eq(ConversationState::Closed),
            support_conversations::waiting_since.eq(None::<DateTime<Utc>>),
            support_conversations::closed_at.eq(diesel::dsl::now),
            support_conversations::closed_by.eq(by),
        ))
        .execute(conn)
        .await?;
    enqueue(
        conn,
        SupportJob::Closed {
            conversation_id: conversation,
        },
        max_attempts,
    )
    .await?;
    Ok(Some(before))
}

async fn lock(conn: &mut PgConn, id: ConversationId) -> QueryResult<Option<ConversationRow>> {
    support_conversations::table
        .find(id)
        .select(ConversationRow::as_select())
        .for_update()
        .first(conn)
        .await
        .optional()
}

pub async fn find(conn: &mut PgConn, id: ConversationId) -> QueryResult<Option<ConversationRow>> {
    support_conversations::table
        .find(id)
        .select(ConversationRow::as_select())
        .first(conn)
        .await
        .optional()
}

/// The messages of a conversation, oldest first.
pub async fn messages(
    conn: &mut PgConn,
    id: ConversationId,
) -> QueryResult<Vec<SupportMessageRow>> {
    support_messages::table
        .filter(support_messages::conversation_id.eq(id))
        .order(support_messages::id.asc())
        .select(SupportMessageRow::as_select())
        .load(conn)
        .await
}

pub async fn find_message(
    conn: &mut PgConn,
    id: SupportMessageId,
) -> QueryResult<Option<SupportMessageRow>> {
    support_messages::table
        .find(id)
        .select(SupportMessageRow::as_select())
        .first(conn)
        .await
        .optional()
}

/// The subscriber's messages not passed on yet, oldest first.
pub async fn undelivered(
    conn: &mut PgConn,
    id: ConversationId,
) -> QueryResult<Vec<SupportMessageRow>> {
    support_messages::table
        .filter(support_messages::conversation_id.eq(id))
        .filter(support_messages::direction.eq(Direction::In))
        .filter(support_messages::delivered_at.is_null())
        .order(support_messages::id.asc())
        .select(SupportMessageRow::as_select())
        .load(conn)
        .await
}

pub async fn mark_delivered(conn: &mut PgConn, ids: &[SupportMessageId]) -> QueryResult<usize> {
    diesel::update(support_messages::table.filter(support_messages::id.eq_any(ids)))
        .set(support_messages::delivered_at.eq(diesel::dsl::now))
        .execute(conn)
        .await
}

/// Newest first, a page (1-based) of `per_page`; `state` filters. With the total count.
pub async fn list(
    conn: &mut PgConn,
    state: Option<ConversationState>,
    page: i64,
    per_page: i64,
) -> QueryResult<(Vec<ConversationSummary>, i64)> {
    let filtered = || {
        let mut query = support_conversations::table.into_boxed();
        if let Some(state) = state {
            query = query.filter(support_conversations::state.eq(state));
        }
        query
    };
    let total: i64 = filtered().count().get_result(conn).await?;
    let ids: Vec<ConversationId> = filtered()
        .order(support_conversations::id.desc())
        .offset((page - 1).saturating_mul(per_page))
        .limit(per_page)
        .select(support_conversations::id)
        .load(conn)
        .await?;
    Ok((summaries(conn, &ids).await?, total))
}

/// A conversation, the user's telegram id, username, first name, language, and its messages.
type SummaryRow = (
    ConversationRow,
    Option<i64>,
    Option<String>,
    Option<String>,
    Language,
    i64,
);

/// The conversations `ids` with who they are with, in the order of `ids`.
async fn summaries(
    conn: &mut PgConn,
    ids: &[ConversationId],
) -> QueryResult<Vec<ConversationSummary>> {
    let rows: Vec<SummaryRow> = support_conversations::table
        .inner_join(users::table)
        .filter(support_conversations::id.eq_any(ids))
        .select((
            ConversationRow::as_select(),
            users::telegram_id,
            users::username,
            users::first_name,
            users::language,
            diesel::dsl::sql::<BigInt>(
                "(SELECT count(*) FROM support_messages m \
                      WHERE m.conversation_id = support_conversations.id)",
            ),
        ))
        .load(conn)
        .await?;
    let mut out: Vec<ConversationSummary> = rows
        .into_iter()
        .map(
            |(conversation, telegram_id, username, first_name, language, messages)| {
                ConversationSummary {
                    conversation,
                    telegram_id,
                    username,
                    first_name,
                    language,
                    messages,
                }
            },
        )
        .collect();
    out.sort_by_key(|c| ids.iter().position(|id| *id == c.conversation.id));
    Ok(out)
}

/// One conversation with who it is with.
pub async fn summary(
    conn: &mut PgConn,
    id: ConversationId,
) -> QueryResult<Option<ConversationSummary>> {
    Ok(summaries(conn, &[id]).await?.pop())
}

/// The conversations not closed, the longest waiting first, then the latest answered (`/tickets`).
pub async fn not_closed(conn: &mut PgConn, limit: i64) -> QueryResult<Vec<ConversationSummary>> {
    let ids: Vec<ConversationId> = support_conversations::table
        .filter(support_conversations::state.ne(ConversationState::Closed))
        .order((
            support_conversations::waiting_since.asc().nulls_last(),
            support_conversations::last_message_at.desc(),
        ))
        .limit(limit)
        .select(support_conversations::id)
        .load(conn)
        .await?;
    summaries(conn, &ids).await
}

/// What the support gauges show.
#[derive(Debug, Clone, Copy, Default, QueryableByName)]
pub struct SupportCounts {
    #[diesel(sql_type = BigInt)]
    pub open: i64,
    #[diesel(sql_type = BigInt)]
    pub answered: i64,
    /// Seconds the longest-waiting subscriber has waited (0 when nobody waits).
    #[diesel(sql_type = BigInt)]
    pub oldest_waiting_seconds: i64,
}

pub async fn counts(conn: &mut PgConn) -> QueryResult<SupportCounts> {
    diesel::sql_query(
        "SELECT count(*) FILTER (WHERE state = 'open') AS open, \
                count(*) FILTER (WHERE state = 'answered') AS answered, \
                COALESCE(EXTRACT(EPOCH FROM now() - min(waiting_since)), 0)::bigint \
                    AS oldest_waiting_seconds \
         FROM support_conversations WHERE state <> 'closed'",
    )
    .get_result(conn)
    .await
}

/// The user's newest order (any status) and its plan's name, for the team's card.
pub async fn last_payment(
    conn: &mut PgConn,
    user: UserId,
) -> QueryResult<Option<(crate::db::models::Payment, Option<String>)>> {
    use crate::db::schema::{payments, plans};
    payments::table
        .left_join(plans::table)
        .filter(payments::user_id.eq(user))
        .order(payments::created_at.desc())
        .select((
            crate::db::models::Payment::as_select(),
            plans::name.nullable(),
        ))
        .first(conn)
        .await
        .optional()
}
