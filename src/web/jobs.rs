//! Admin endpoints of the durable job queue and the scheduler: see what is pending or dead,
//! retry or discard a dead job (the console's buttons call the same [`retry`] and [`discard`]).

use actix_web::{HttpRequest, web};
use diesel_async::AsyncConnection;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::db::audit::{self, AuditRecord};
use crate::db::jobs::{self, DiscardError, RetryError};
use crate::db::models::{Job, ScheduledTask};
use crate::db::scheduler;
use crate::domain::{JobId, JobState};
use crate::error::{AppError, AppResult, ErrorBody};
use crate::web::WebState;
use crate::web::auth::{AuthenticatedAdmin, Require, role};

/// Largest page a list endpoint returns.
pub const MAX_PER_PAGE: i64 = 200;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct JobListQuery {
    /// `pending`, `running`, `done` or `dead`.
    pub state: Option<String>,
    /// Job kind, e.g. `provision`, `notify`, `maintenance`.
    pub kind: Option<String>,
    /// 1-based page number (default 1).
    pub page: Option<i64>,
    /// Items per page, 1 to 200 (default 50).
    pub per_page: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct JobPage {
    pub items: Vec<Job>,
    pub total: i64,
    pub page: i64,
    pub per_page: i64,
}

/// Validated `page` / `per_page`.
pub fn pagination(page: Option<i64>, per_page: Option<i64>) -> AppResult<(i64, i64)> {
    let page = page.unwrap_or(1);
    if page < 1 {
        return Err(AppError::validation("page", "must be 1 or more"));
    }
    let per_page = per_page.unwrap_or(50);
    if !(1..=MAX_PER_PAGE).contains(&per_page) {
        return Err(AppError::validation(
            "per_page",
            format!("must be between 1 and {MAX_PER_PAGE}"),
        ));
    }
    Ok((page, per_page))
}

/// Jobs of the durable queue, newest first.
#[utoipa::path(
    get,
    path = "/api/v1/jobs",
    tag = "jobs",
    params(JobListQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, body = JobPage),
        (status = 401, body = ErrorBody),
        (status = 422, description = "Bad filter or pagination", body = ErrorBody),
    )
)]
pub async fn list_jobs(
    _admin: Require<role::Viewer>,
    state: web::Data<WebState>,
    query: web::Query<JobListQuery>,
) -> AppResult<web::Json<JobPage>> {
    let (page, per_page) = pagination(query.page, query.per_page)?;
    let job_state = query
        .state
        .as_deref()
        .map(|s| s.parse::<JobState>())
        .transpose()
        .map_err(|e| AppError::validation("state", e.to_string()))?;
    let mut conn = state.pool.get().await?;
    let (items, total) =
        jobs::list(&mut conn, job_state, query.kind.as_deref(), page, per_page).await?;
    Ok(web::Json(JobPage {
        items,
        total,
        page,
        per_page,
    }))
}

fn job_json(job: &Job) -> serde_json::Value {
    serde_json::to_value(job).unwrap_or(serde_json::Value::Null)
}

/// One job.
#[utoipa::path(
    get,
    path = "/api/v1/jobs/{id}",
    tag = "jobs",
    params(("id" = i64, Path, description = "Job id")),
    security(("bearer" = [])),
    responses((status = 200, body = Job), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody))
)]
pub async fn get_job(
    _admin: Require<role::Viewer>,
    state: web::Data<WebState>,
    id: web::Path<i64>,
) -> AppResult<web::Json<Job>> {
    let id = JobId(id.into_inner());
    let mut conn = state.pool.get().await?;
    jobs::find(&mut conn, id)
        .await?
        .map(web::Json)
        .ok_or_else(|| AppError::not_found(format!("job {id}")))
}

/// Retry a dead job: it becomes pending at once with a fresh set of attempts. Audit-logged.
#[utoipa::path(
    post,
    path = "/api/v1/jobs/{id}/retry",
    tag = "jobs",
    params(("id" = i64, Path, description = "Job id")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The job, pending again", body = Job),
        (status = 401, body = ErrorBody),
        (status = 403, description = "Needs the operator role", body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, description = "The job is not dead, or an identical job is pending", body = ErrorBody),
    )
)]
pub async fn retry_job(
    admin: Require<role::Operator>,
    state: web::Data<WebState>,
    req: HttpRequest,
    id: web::Path<i64>,
) -> AppResult<web::Json<Job>> {
    let remote = crate::web::remote_addr(&req);
    let job = retry(&state, &admin, remote, JobId(id.into_inner())).await?;
    Ok(web::Json(job))
}

/// Retries dead job `id` (the API's `POST /jobs/{id}/retry` and the console's retry button):
/// pending now with a fresh set of attempts, with the `job.retry` audit row in the same
/// transaction. The job as it is after.
pub(crate) async fn retry(
    state: &WebState,
    admin: &AuthenticatedAdmin,
    remote: Option<String>,
    id: JobId,
) -> AppResult<Job> {
    let mut conn = state.pool.get().await?;
    let actor = admin.actor();
    let job = conn
        .transaction::<_, AppError, _>(async |conn| {
            let before = jobs::find(conn, id).await?;
            let job = jobs::retry_dead(conn, id).await.map_err(|e| match e {
                RetryError::NotFound(_) => AppError::not_found(format!("job {id}")),
                RetryError::NotDead(..) | RetryError::TwinPending => {
                    AppError::Conflict(e.to_string())
                }
                RetryError::Db(e) => e.into(),
            })?;
            audit::record(
                conn,
                AuditRecord {
                    admin_id: Some(admin.id),
                    actor,
                    action: "job.retry".into(),
                    target_type: Some("job".into()),
                    target_id: Some(id.to_string()),
                    before: before.as_ref().map(job_json),
                    after: Some(job_json(&job)),
                    remote_addr: remote,
                },
            )
            .await?;
            Ok(job)
        })
        .await?;
    tracing::info!(job = %id, kind = %job.kind, admin = %admin.username, "dead job retried");
    Ok(job)
}

/// Discard a dead job: it is deleted and its work given up (the audit entry keeps the job as
/// it was). Audit-logged.
#[utoipa::path(
    post,
    path = "/api/v1/jobs/{id}/discard",
    tag = "jobs",
    params(("id" = i64, Path, description = "Job id")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The job as it was before it was discarded", body = Job),
        (status = 401, body = ErrorBody),
        (status = 403, description = "Needs the operator role", body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, description = "The job is not dead", body = ErrorBody),
    )
)]
pub async fn discard_job(
    admin: Require<role::Operator>,
    state: web::Data<WebState>,
    req: HttpRequest,
    id: web::Path<i64>,
) -> AppResult<web::Json<Job>> {
    let remote = crate::web::remote_addr(&req);
    let job = discard(&state, &admin, remote, JobId(id.into_inner())).await?;
    Ok(web::Json(job))
}

/// Discards dead job `id` (the API's `POST /jobs/{id}/discard` and the console's discard
/// button): deleted, with the `job.discard` audit row (holding the job) in the same
/// transaction. The job as it was.
pub(crate) async fn discard(
    state: &WebState,
    admin: &AuthenticatedAdmin,
    remote: Option<String>,
    id: JobId,
) -> AppResult<Job> {
    let mut conn = state.pool.get().await?;
    let actor = admin.actor();
    let job = conn
        .transaction::<_, AppError, _>(async |conn| {
            let job = jobs::discard_dead(conn, id).await.map_err(|e| match e {
                DiscardError::NotFound(_) => AppError::not_found(format!("job {id}")),
                DiscardError::NotDead(..) => AppError::Conflict(e.to_string()),
                DiscardError::Db(e) => e.into(),
            })?;
            audit::record(
                conn,
                AuditRecord {
                    admin_id: Some(admin.id),
                    actor,
                    action: "job.discard".into(),
                    target_type: Some("job".into()),
                    target_id: Some(id.to_string()),
                    before: Some(job_json(&job)),
                    remote_addr: remote,
                    ..Default::default()
                },
            )
            .await?;
            Ok(job)
        })
        .await?;
    tracing::info!(job = %id, kind = %job.kind, admin = %admin.username, "dead job discarded");
    Ok(job)
}

/// The scheduler's periodic tasks with their next run and last result.
#[utoipa::path(
    get,
    path = "/api/v1/scheduler/tasks",
    tag = "jobs",
    security(("bearer" = [])),
    responses((status = 200, body = Vec<ScheduledTask>), (status = 401, body = ErrorBody))
)]
pub async fn list_tasks(
    _admin: Require<role::Viewer>,
    state: web::Data<WebState>,
) -> AppResult<web::Json<Vec<ScheduledTask>>> {
    let mut conn = state.pool.get().await?;
    Ok(web::Json(scheduler::list(&mut conn).await?))
}
