//! Admin endpoints of broadcasts: create (validated Telegram HTML, optional URL button, an
//! audience), list, progress with an ETA, cancel. Mutations are audit-logged.

use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::db::audit::{self, AuditRecord};
use crate::db::broadcasts::{self, Author};
use crate::db::models::Broadcast;
use crate::domain::BroadcastId;
use crate::domain::broadcast::{Audience, validate};
use crate::error::{AppError, AppResult, ErrorBody};
use crate::web::WebState;
use crate::web::auth::{AuthenticatedAdmin, Require, role};

#[derive(Debug, Deserialize, ToSchema)]
pub struct NewBroadcast {
    /// Telegram HTML: `<b> <i> <u> <s> <a href> <code> <pre> <blockquote> <tg-spoiler>`, at most
    /// 4096 characters of text.
    #[schema(example = "<b>New servers</b> in Amsterdam and Tokyo!")]
    pub text: String,
    /// Label of an optional URL button (1–64 characters); needs `button_url`.
    pub button_text: Option<String>,
    /// `http(s)://` or `tg://` URL of the button; needs `button_text`.
    pub button_url: Option<String>,
    pub audience: Audience,
}

/// A broadcast and its progress.
#[derive(Debug, Serialize, ToSchema)]
pub struct BroadcastView {
    #[schema(value_type = i64)]
    pub id: BroadcastId,
    /// `queued`, `running`, `completed` or `canceled`.
    #[schema(example = "running")]
    pub status: String,
    pub text: String,
    pub button_text: Option<String>,
    pub button_url: Option<String>,
    #[schema(value_type = Object)]
    pub audience: serde_json::Value,
    /// Recipients counted when delivery started.
    pub total: i32,
    pub sent: i32,
    pub failed: i32,
    /// Recipients who blocked the bot.
    pub blocked: i32,
    pub remaining: i64,
    /// Seconds until done at BROADCAST_RATE, while queued or running.
    pub eta_seconds: Option<i64>,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
}

pub(crate) fn view(b: Broadcast, rate: u32) -> BroadcastView {
    BroadcastView {
        remaining: b.remaining(),
        eta_seconds: b.eta_seconds(rate),
        id: b.id,
        status: b.status.as_str().to_owned(),
        text: b.text,
        button_text: b.button_text,
        button_url: b.button_url,
        audience: b.audience,
        total: b.total,
        sent: b.sent,
        failed: b.failed,
        blocked: b.blocked,
        created_at: b.created_at,
        started_at: b.started_at,
        finished_at: b.finished_at,
    }
}

/// Create a broadcast; its delivery starts at once.
#[utoipa::path(
    post,
    path = "/api/v1/broadcasts",
    tag = "broadcasts",
    request_body = NewBroadcast,
    security(("bearer" = [])),
    responses(
        (status = 201, body = BroadcastView),
        (status = 401, body = ErrorBody),
        (status = 403, description = "Needs the operator role", body = ErrorBody),
        (status = 409, description = "No Telegram bot is configured", body = ErrorBody),
        (status = 422, description = "Invalid text, button or audience (the field is named)", body = ErrorBody),
    )
)]
pub async fn create_broadcast(
    admin: Require<role::Operator>,
    state: web::Data<WebState>,
    req: HttpRequest,
    body: web::Json<NewBroadcast>,
) -> AppResult<HttpResponse> {
    let remote = crate::web::remote_addr(&req);
    let broadcast = create(&state, &admin, remote, body.into_inner()).await?;
    Ok(HttpResponse::Created().json(view(broadcast, state.settings.notifications.broadcast_rate)))
}

/// Creates a broadcast and queues its delivery (the API's `POST /broadcasts` and the console's
/// send): validated, stored with the `broadcast.create` audit row in one transaction.
pub(crate) async fn create(
    state: &WebState,
    admin: &AuthenticatedAdmin,
    remote: Option<String>,
    body: NewBroadcast,
) -> AppResult<Broadcast> {
    let message = validate(
        &body.text,
        body.button_text.as_deref(),
        body.button_url.as_deref(),
    )
    .map_err(|e| AppError::validation(e.field, e.message))?;
    if state.settings.telegram.is_none() {
        return Err(AppError::Conflict(
            "no Telegram bot is configured (TELEGRAM_BOT_TOKEN): a broadcast could not be delivered".into(),
        ));
    }
    let max_attempts = state.settings.jobs.max_attempts;
    let actor = admin.actor();
    let mut conn = state.pool.get().await?;
    let broadcast =
        diesel_async::AsyncConnection::transaction::<_, AppError, _>(&mut *conn, async |conn| {
            let broadcast = broadcasts::create_and_queue(
                conn,
                &message,
                body.audience,
                Author::Admin(admin.id),
                max_attempts,
            )
            .await?;
            audit::record(
                conn,
                AuditRecord {
                    admin_id: Some(admin.id),
                    actor,
                    action: "broadcast.create".into(),
                    target_type: Some("broadcast".into()),
                    target_id: Some(broadcast.id.to_string()),
                    after: serde_json::to_value(&broadcast).ok(),
                    remote_addr: remote,
                    ..Default::default()
                },
            )
            .await?;
            Ok(broadcast)
        })
        .await?;
    tracing::info!(broadcast = %broadcast.id, admin = %admin.username, "broadcast created");
    Ok(broadcast)
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// At most this many, newest first (1–200, default 50).
    pub limit: Option<i64>,
}

/// Broadcasts, newest first.
#[utoipa::path(
    get,
    path = "/api/v1/broadcasts",
    tag = "broadcasts",
    params(ListQuery),
    security(("bearer" = [])),
    responses((status = 200, body = Vec<BroadcastView>), (status = 401, body = ErrorBody), (status = 422, body = ErrorBody))
)]
pub async fn list_broadcasts(
    _admin: Require<role::Viewer>,
    state: web::Data<WebState>,
    query: web::Query<ListQuery>,
) -> AppResult<web::Json<Vec<BroadcastView>>> {
    let limit = query.limit.unwrap_or(50);
    if !(1..=200).contains(&limit) {
        return Err(AppError::validation("limit", "must be between 1 and 200"));
    }
    let mut conn = state.pool.get().await?;
    let rate = state.settings.notifications.broadcast_rate;
    Ok(web::Json(
        broadcasts::list(&mut conn, limit)
            .await?
            .into_iter()
            .map(|b| view(b, rate))
            .collect(),
    ))
}

/// A broadcast with its progress (total, sent, failed, blocked, remaining, ETA).
#[utoipa::path(
    get,
    path = "/api/v1/broadcasts/{id}",
    tag = "broadcasts",
    params(("id" = i64, Path, description = "Broadcast id")),
    security(("bearer" = [])),
    responses((status = 200, body = BroadcastView), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody))
)]
pub async fn get_broadcast(
    _admin: Require<role::Viewer>,
    state: web::Data<WebState>,
    id: web::Path<i64>,
) -> AppResult<web::Json<BroadcastView>> {
    let id = BroadcastId(id.into_inner());
    let mut conn = state.pool.get().await?;
    let broadcast = broadcasts::find(&mut conn, id)
        .await?
        .ok_or_else(|| AppError::not_found(format!("broadcast {id}")))?;
    Ok(web::Json(view(
        broadcast,
        state.settings.notifications.broadcast_rate,
    )))
}

/// Cancel a queued or running broadcast: delivery stops within a batch.
#[utoipa::path(
    post,
    path = "/api/v1/broadcasts/{id}/cancel",
    tag = "broadcasts",
    params(("id" = i64, Path, description = "Broadcast id")),
    security(("bearer" = [])),
    responses(
        (status = 200, body = BroadcastView),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, description = "Already completed or canceled", body = ErrorBody),
    )
)]
pub async fn cancel_broadcast(
    admin: Require<role::Operator>,
    state: web::Data<WebState>,
    req: HttpRequest,
    id: web::Path<i64>,
) -> AppResult<web::Json<BroadcastView>> {
    let remote = crate::web::remote_addr(&req);
    let broadcast = cancel(&state, &admin, remote, BroadcastId(id.into_inner())).await?;
    Ok(web::Json(view(
        broadcast,
        state.settings.notifications.broadcast_rate,
    )))
}

/// Cancels broadcast `id` (the API's `POST /broadcasts/{id}/cancel` and the console's cancel):
/// 409 when it already ended; the `broadcast.cancel` audit row in the same transaction.
pub(crate) async fn cancel(
    state: &WebState,
    admin: &AuthenticatedAdmin,
    remote: Option<String>,
    id: BroadcastId,
) -> AppResult<Broadcast> {
    let actor = admin.actor();
    let mut conn = state.pool.get().await?;
    let broadcast =
        diesel_async::AsyncConnection::transaction::<_, AppError, _>(&mut *conn, async |conn| {
            let before = broadcasts::find(conn, id)
                .await?
                .ok_or_else(|| AppError::not_found(format!("broadcast {id}")))?;
            if !broadcasts::cancel(conn, id).await? {
                return Err(AppError::Conflict(format!(
                    "broadcast {id} is already {}",
                    before.status
                )));
            }
            let after = broadcasts::find(conn, id)
                .await?
                .ok_or_else(|| AppError::not_found(format!("broadcast {id}")))?;
            audit::record(
                conn,
                AuditRecord {
                    admin_id: Some(admin.id),
                    actor,
                    action: "broadcast.cancel".into(),
                    target_type: Some("broadcast".into()),
                    target_id: Some(id.to_string()),
                    before: Some(serde_json::json!({"status": before.status})),
                    after: Some(serde_json::json!({"status": after.status})),
                    remote_addr: remote,
                },
            )
            .await?;
            Ok(after)
        })
        .await?;
    tracing::info!(broadcast = %id, admin = %admin.username, "broadcast canceled");
    Ok(broadcast)
}
