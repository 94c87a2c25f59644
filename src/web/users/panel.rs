//! Panel operations on one user's account: reset the traffic, revoke the subscription link,
//! remove the panel user (the shop keeps the user, the subscription and all history). Each is a
//! job for the MarzbanSyncer, enqueued with its audit row in one transaction.

use actix_web::{HttpRequest, HttpResponse, web};
use diesel_async::AsyncConnection;
use serde::Serialize;
use serde_json::json;
use utoipa::ToSchema;

use crate::actors::marzban::{PANEL_DELETE, PANEL_RESET_TRAFFIC, PANEL_REVOKE_SUB, UserJob};
use crate::db::audit::{self, AuditRecord};
use crate::db::jobs::{self, NewJob};
use crate::db::{subscriptions, users};
use crate::domain::{JobId, UserId};
use crate::error::{AppError, AppResult, ErrorBody};
use crate::web::WebState;
use crate::web::auth::{AuthenticatedAdmin, Require, role};

/// A panel operation waiting in the job queue (see `GET /api/v1/jobs/{id}`).
#[derive(Debug, Serialize, ToSchema)]
pub struct JobAccepted {
    #[schema(value_type = i64)]
    pub job_id: JobId,
    #[schema(example = "panel_reset_traffic")]
    pub kind: String,
}

/// Answers 202 with the job of a panel operation on user `id` (see [`enqueue_panel_job`]).
async fn accept_panel_job(
    state: web::Data<WebState>,
    admin: AuthenticatedAdmin,
    req: HttpRequest,
    id: i64,
    kind: &'static str,
    action: &'static str,
) -> AppResult<HttpResponse> {
    let remote = crate::web::remote_addr(&req);
    let job_id = enqueue_panel_job(&state, &admin, remote, UserId(id), kind, action).await?;
    Ok(HttpResponse::Accepted().json(JobAccepted {
        job_id,
        kind: kind.to_owned(),
    }))
}

/// Enqueues `kind` for the user, with an audit row `action` (the API's panel operations and the
/// console's): 404 for an unknown user, 409 without a panel or a subscription.
pub(crate) async fn enqueue_panel_job(
    state: &WebState,
    admin: &AuthenticatedAdmin,
    remote: Option<String>,
    id: UserId,
    kind: &'static str,
    action: &'static str,
) -> AppResult<JobId> {
    let actor = admin.actor();
    let max_attempts = state.settings.jobs.max_attempts;
    let panel = state.settings.panel.is_some();
    let mut conn = state.pool.get().await?;
    let job_id = conn
        .transaction::<_, AppError, _>(async |conn| {
            users::find(conn, id)
                .await?
                .ok_or_else(|| AppError::not_found(format!("user {id}")))?;
            if !panel {
                return Err(AppError::Conflict(
                    "no panel is configured (MARZBAN_URL, or PASARGUARD_URL with PANEL_KIND=pasarguard)"
                        .into(),
                ));
            }
            let Some((sub, _)) = subscriptions::find_by_user(conn, id).await? else {
                return Err(AppError::Conflict(format!(
                    "user {id} has no subscription, so no panel account"
                )));
            };
            let job_id = jobs::enqueue(
                conn,
                NewJob::new(kind, UserJob { user_id: id }),
                max_attempts,
            )
            .await?
            .ok_or_else(|| {
                AppError::Internal(anyhow::anyhow!("a job without dedup key was not enqueued"))
            })?;
            audit::record(
                conn,
                AuditRecord {
                    admin_id: Some(admin.id),
                    actor,
                    action: action.into(),
                    target_type: Some("user".into()),
                    target_id: Some(id.to_string()),
                    before: Some(json!({
                        "panel_username": sub.panel_username,
                        "subscription_url": sub.subscription_url,
                        "traffic_used_bytes": sub.traffic_used_bytes,
                    })),
                    after: Some(json!({ "job_id": job_id, "kind": kind })),
                    remote_addr: remote,
                },
            )
            .await?;
            Ok(job_id)
        })
        .await?;
    tracing::info!(user = %id, job = %job_id, kind, admin = %admin.username, "panel operation queued");
    Ok(job_id)
}

/// Reset the user's traffic counter on the panel (a `panel_reset_traffic` job). Audit-logged.
#[utoipa::path(
    post,
    path = "/api/v1/users/{id}/reset-traffic",
    tag = "users",
    params(("id" = i64, Path, description = "User id")),
    security(("bearer" = [])),
    responses(
        (status = 202, description = "Queued", body = JobAccepted),
        (status = 401, body = ErrorBody),
        (status = 403, description = "Needs the operator role", body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, description = "No panel is configured, or the user has no subscription", body = ErrorBody),
    )
)]
pub async fn reset_traffic(
    admin: Require<role::Operator>,
    state: web::Data<WebState>,
    req: HttpRequest,
    id: web::Path<i64>,
) -> AppResult<HttpResponse> {
    accept_panel_job(
        state,
        admin.admin,
        req,
        id.into_inner(),
        PANEL_RESET_TRAFFIC,
        "user.reset_traffic",
    )
    .await
}

/// Revoke the subscription link: the panel issues new credentials and the old link stops
/// working; the new link is stored when the job is done (`panel_revoke_sub`). Audit-logged.
#[utoipa::path(
    post,
    path = "/api/v1/users/{id}/revoke-link",
    tag = "users",
    params(("id" = i64, Path, description = "User id")),
    security(("bearer" = [])),
    responses(
        (status = 202, description = "Queued", body = JobAccepted),
        (status = 401, body = ErrorBody),
        (status = 403, description = "Needs the operator role", body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, description = "No panel is configured, or the user has no subscription", body = ErrorBody),
    )
)]
pub async fn revoke_link(
    admin: Require<role::Operator>,
    state: web::Data<WebState>,
    req: HttpRequest,
    id: web::Path<i64>,
) -> AppResult<HttpResponse> {
    accept_panel_job(
        state,
        admin.admin,
        req,
        id.into_inner(),
        PANEL_REVOKE_SUB,
        "user.revoke_link",
    )
    .await
}

/// Remove the user from the panel (`panel_delete`): the panel user goes, the shop keeps the user,
/// the subscription (disabled, so no sync creates the panel user again; an extension or payment
/// brings it back) and all history. Audit-logged.
#[utoipa::path(
    delete,
    path = "/api/v1/users/{id}/panel",
    tag = "users",
    params(("id" = i64, Path, description = "User id")),
    security(("bearer" = [])),
    responses(
        (status = 202, description = "Queued", body = JobAccepted),
        (status = 401, body = ErrorBody),
        (status = 403, description = "Needs the operator role", body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, description = "No panel is configured, or the user has no subscription", body = ErrorBody),
    )
)]
pub async fn remove_from_panel(
    admin: Require<role::Operator>,
    state: web::Data<WebState>,
    req: HttpRequest,
    id: web::Path<i64>,
) -> AppResult<HttpResponse> {
    accept_panel_job(
        state,
        admin.admin,
        req,
        id.into_inner(),
        PANEL_DELETE,
        "user.remove_from_panel",
    )
    .await
}
