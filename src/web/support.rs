//! Admin endpoints of the support conversations: the list and one conversation with its
//! messages (viewer), an answer delivered to the subscriber through the bot and the closing
//! (operator, audit-logged) — the same actions as a reply or `/close` in the team's chat.

use actix_web::{HttpRequest, web};
use diesel_async::AsyncConnection;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::{IntoParams, OpenApi, ToSchema};

use crate::db::audit::{self, AuditRecord};
use crate::db::support::{
    self as db, Answered, ConversationRow, ConversationSummary, NewSupportMessage,
    SupportMessageRow,
};
use crate::domain::ConversationId;
use crate::domain::support::{ConversationState, SupportMessageKind};
use crate::error::{AppError, AppResult, ErrorBody};
use crate::web::WebState;
use crate::web::auth::{Require, role};
use crate::web::jobs::pagination;

/// Longest answer (Telegram's message limit, with room for the "Support:" heading).
const MAX_ANSWER: usize = 4000;

/// The routes of this module, under `/api/v1`.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/support/conversations").get(list_conversations))
        .service(web::resource("/support/conversations/{id}").get(get_conversation))
        .service(web::resource("/support/conversations/{id}/reply").post(reply))
        .service(web::resource("/support/conversations/{id}/close").post(close));
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ConversationListQuery {
    /// `open` (waits for an answer), `answered` or `closed`.
    pub state: Option<String>,
    /// 1-based page number (default 1).
    pub page: Option<i64>,
    /// Items per page, 1 to 200 (default 50).
    pub per_page: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ConversationPage {
    pub items: Vec<ConversationSummary>,
    pub total: i64,
    pub page: i64,
    pub per_page: i64,
}

/// A conversation and its messages, oldest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConversationView {
    #[serde(flatten)]
    pub conversation: ConversationSummary,
    pub messages: Vec<SupportMessageRow>,
}

/// Support conversations, newest first.
#[utoipa::path(
    get,
    path = "/api/v1/support/conversations",
    tag = "support",
    params(ConversationListQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, body = ConversationPage),
        (status = 401, body = ErrorBody),
        (status = 422, description = "Bad filter or pagination", body = ErrorBody),
    )
)]
pub async fn list_conversations(
    _admin: Require<role::Viewer>,
    state: web::Data<WebState>,
    query: web::Query<ConversationListQuery>,
) -> AppResult<web::Json<ConversationPage>> {
    let (page, per_page) = pagination(query.page, query.per_page)?;
    let filter = query
        .state
        .as_deref()
        .map(str::parse::<ConversationState>)
        .transpose()
        .map_err(|e| AppError::validation("state", e.to_string()))?;
    let mut conn = state.pool.get().await?;
    let (items, total) = db::list(&mut conn, filter, page, per_page).await?;
    Ok(web::Json(ConversationPage {
        items,
        total,
        page,
        per_page,
    }))
}

async fn view(conn: &mut crate::db::PgConn, id: ConversationId) -> AppResult<ConversationView> {
    let conversation = db::summary(conn, id)
        .await?
        .ok_or_else(|| AppError::not_found(format!("support conversation {id}")))?;
    let messages = db::messages(conn, id).await?;
    Ok(ConversationView {
        conversation,
        messages,
    })
}

/// One conversation with its messages.
#[utoipa::path(
    get,
    path = "/api/v1/support/conversations/{id}",
    tag = "support",
    params(("id" = i64, Path, description = "Conversation id")),
    security(("bearer" = [])),
    responses(
        (status = 200, body = ConversationView),
        (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody),
    )
)]
pub async fn get_conversation(
    _admin: Require<role::Viewer>,
    state: web::Data<WebState>,
    id: web::Path<i64>,
) -> AppResult<web::Json<ConversationView>> {
    let mut conn = state.pool.get().await?;
    Ok(web::Json(
        view(&mut conn, ConversationId(id.into_inner())).await?,
    ))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SupportAnswer {
    /// The answer, plain text (1 to 4000 characters).
    #[schema(example = "Your payment arrived; access is extended until 3 January.")]
    pub text: String,
}

/// Answer the subscriber: delivered in their chat with the bot (under the Telegram rate budget,
/// tracked in `notifications`). Audit-logged.
#[utoipa::path(
    post,
    path = "/api/v1/support/conversations/{id}/reply",
    tag = "support",
    params(("id" = i64, Path, description = "Conversation id")),
    request_body = SupportAnswer,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The conversation with the answer", body = ConversationView),
        (status = 401, body = ErrorBody),
        (status = 403, description = "Needs the operator role", body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, description = "The conversation is closed", body = ErrorBody),
        (status = 422, description = "An empty or too long text", body = ErrorBody),
    )
)]
pub async fn reply(
    admin: Require<role::Operator>,
    state: web::Data<WebState>,
    req: HttpRequest,
    id: web::Path<i64>,
    body: web::Json<SupportAnswer>,
) -> AppResult<web::Json<ConversationView>> {
    let id = ConversationId(id.into_inner());
    let text = body.text.trim();
    if text.is_empty() {
        return Err(AppError::validation("text", "must not be empty"));
    }
    if text.chars().count() > MAX_ANSWER {
        return Err(AppError::validation(
            "text",
            format!("must be at most {MAX_ANSWER} characters"),
        ));
    }
    let remote = crate::web::remote_addr(&req);
    let actor = admin.actor();
    let attempts = state.settings.jobs.max_attempts;
    let message = NewSupportMessage {
        kind: SupportMessageKind::Text,
        body: Some(text),
        telegram: None,
    };
    let mut conn = state.pool.get().await?;
    let (view, first_response) = conn
        .transaction::<_, AppError, _>(async |conn| {
            let (message_id, first_response) =
                match db::record_answer(conn, id, &actor, &message, attempts).await? {
                    Answered::Recorded {
                        message,
                        first_response,
                    } => (message, first_response),
                    Answered::NotFound => {
                        return Err(AppError::not_found(format!("support conversation {id}")));
                    }
                    Answered::Closed => {
                        return Err(AppError::Conflict(format!(
                            "support conversation {id} is closed"
                        )));
                    }
                };
            audit::record(
                conn,
                AuditRecord {
                    admin_id: Some(admin.id),
                    actor: actor.clone(),
                    action: "support.reply".into(),
                    target_type: Some("support_conversation".into()),
                    target_id: Some(id.to_string()),
                    before: None,
                    after: Some(json!({ "message": message_id, "text": text })),
                    remote_addr: remote,
                },
            )
            .await?;
            Ok((view(conn, id).await?, first_response))
        })
        .await?;
    if let Some(waited) = first_response {
        state
            .metrics
            .support_first_response
            .observe(waited.num_milliseconds() as f64 / 1000.0);
    }
    tracing::info!(conversation = %id, admin = %admin.username, "support answer from the admin API");
    Ok(web::Json(view))
}

/// Close the conversation; the subscriber is told (their next message opens a new one).
/// Audit-logged.
#[utoipa::path(
    post,
    path = "/api/v1/support/conversations/{id}/close",
    tag = "support",
    params(("id" = i64, Path, description = "Conversation id")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The conversation, closed", body = ConversationView),
        (status = 401, body = ErrorBody),
        (status = 403, description = "Needs the operator role", body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, description = "Already closed", body = ErrorBody),
    )
)]
pub async fn close(
    admin: Require<role::Operator>,
    state: web::Data<WebState>,
    req: HttpRequest,
    id: web::Path<i64>,
) -> AppResult<web::Json<ConversationView>> {
    let id = ConversationId(id.into_inner());
    let remote = crate::web::remote_addr(&req);
    let actor = admin.actor();
    let attempts = state.settings.jobs.max_attempts;
    let mut conn = state.pool.get().await?;
    let view = conn
        .transaction::<_, AppError, _>(async |conn| {
            let Some(before) = db::close(conn, id, &actor, attempts).await? else {
                return Err(match db::find(conn, id).await? {
                    None => AppError::not_found(format!("support conversation {id}")),
                    Some(_) => {
                        AppError::Conflict(format!("support conversation {id} is already closed"))
                    }
                });
            };
            audit::record(
                conn,
                AuditRecord {
                    admin_id: Some(admin.id),
                    actor: actor.clone(),
                    action: "support.close".into(),
                    target_type: Some("support_conversation".into()),
                    target_id: Some(id.to_string()),
                    before: Some(json!({ "state": before.state })),
                    after: Some(json!({ "state": ConversationState::Closed })),
                    remote_addr: remote,
                },
            )
            .await?;
            view(conn, id).await
        })
        .await?;
    tracing::info!(conversation = %id, admin = %admin.username, "support conversation closed from the admin API");
    Ok(web::Json(view))
}

/// This module's part of the OpenAPI document.
#[derive(OpenApi)]
#[openapi(
    paths(list_conversations, get_conversation, reply, close),
    components(schemas(
        ConversationRow,
        SupportMessageRow,
        ConversationSummary,
        ConversationPage,
        ConversationView,
        SupportAnswer
    )),
    tags((name = "support", description = "Support conversations: what subscribers asked, and the answers"))
)]
pub struct Api;
