//! The Marzban panel as the admin API shows it: the sync runs, a sync run on demand (by the
//! MarzbanSyncer actor, which never runs two of one kind at once), and the panel's stats.

use std::time::Instant;

use actix_web::{HttpRequest, web};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::actors::messages::{RunSync, SyncKind};
use crate::db::audit::{self, AuditRecord};
use crate::db::models::{PanelStats, SyncRun};
use crate::db::sync;
use crate::error::{AppError, AppResult, ErrorBody};
use crate::web::WebState;
use crate::web::auth::{AuthenticatedAdmin, Require, role};
use crate::web::jobs::pagination;

pub(crate) fn sync_kind(field: &str, text: &str) -> AppResult<SyncKind> {
    SyncKind::ALL
        .into_iter()
        .find(|k| k.as_str() == text)
        .ok_or_else(|| {
            let kinds: Vec<&str> = SyncKind::ALL.iter().map(|k| k.as_str()).collect();
            AppError::validation(
                field,
                format!(
                    "'{text}' is not a sync kind; expected one of: {}",
                    kinds.join(", ")
                ),
            )
        })
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SyncRunsQuery {
    /// `subscriptions`, `status`, `traffic`, `stats` or `cleanup`.
    pub kind: Option<String>,
    /// 1-based page number (default 1).
    pub page: Option<i64>,
    /// Items per page, 1 to 200 (default 50).
    pub per_page: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SyncRunPage {
    pub items: Vec<SyncRun>,
    /// Runs that match the filter, on all pages.
    pub total: i64,
    pub page: i64,
    pub per_page: i64,
}

/// Runs of the panel syncs, newest first.
#[utoipa::path(
    get,
    path = "/api/v1/sync/runs",
    tag = "sync",
    params(SyncRunsQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, body = SyncRunPage),
        (status = 401, body = ErrorBody),
        (status = 422, description = "Unknown kind or bad pagination", body = ErrorBody),
    )
)]
pub async fn list_sync_runs(
    _admin: Require<role::Viewer>,
    state: web::Data<WebState>,
    query: web::Query<SyncRunsQuery>,
) -> AppResult<web::Json<SyncRunPage>> {
    let (page, per_page) = pagination(query.page, query.per_page)?;
    let kind = query
        .kind
        .as_deref()
        .map(|k| sync_kind("kind", k))
        .transpose()?;
    let mut conn = state.pool.get().await?;
    let (items, total) =
        sync::list_runs(&mut conn, kind.map(SyncKind::as_str), page, per_page).await?;
    Ok(web::Json(SyncRunPage {
        items,
        total,
        page,
        per_page,
    }))
}

/// What a sync run on demand did, counted per user.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SyncResult {
    #[schema(example = "subscriptions")]
    pub kind: String,
    pub checked: i32,
    pub created: i32,
    pub updated: i32,
    pub failed: i32,
    pub duration_ms: u64,
}

/// Run a panel sync now and wait for it (`subscriptions`, `status`, `traffic`, `stats` or
/// `cleanup`). The run is recorded in `/sync/runs` like a scheduled one. Audit-logged.
#[utoipa::path(
    post,
    path = "/api/v1/sync/{kind}",
    tag = "sync",
    params(("kind" = String, Path, description = "subscriptions, status, traffic, stats or cleanup")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The run finished", body = SyncResult),
        (status = 401, body = ErrorBody),
        (status = 403, description = "Needs the operator role", body = ErrorBody),
        (status = 409, description = "No panel is configured, or a run of this kind is in progress", body = ErrorBody),
        (status = 422, description = "Unknown kind", body = ErrorBody),
        (status = 503, description = "The run failed (e.g. the panel did not answer); see /sync/runs", body = ErrorBody),
    )
)]
#[tracing::instrument(skip_all, fields(admin = %admin.username, kind = %kind))]
pub async fn run_sync(
    admin: Require<role::Operator>,
    state: web::Data<WebState>,
    req: HttpRequest,
    kind: web::Path<String>,
) -> AppResult<web::Json<SyncResult>> {
    let kind = sync_kind("kind", &kind)?;
    let remote = crate::web::remote_addr(&req);
    run_now(&state, &admin, remote, kind).await.map(web::Json)
}

/// Runs a `kind` sync now and waits for it (the API's `POST /sync/{kind}` and the console's
/// "run now"): 409 without a panel or while one of the kind runs, 503 when the run failed. The
/// `sync.run` audit row records who asked and how it ended, either way.
pub(crate) async fn run_now(
    state: &WebState,
    admin: &AuthenticatedAdmin,
    remote: Option<String>,
    kind: SyncKind,
) -> AppResult<SyncResult> {
    let syncer = match (&state.settings.panel, &state.marzban) {
        (Some(_), Some(syncer)) => syncer,
        _ => {
            return Err(AppError::Conflict(
                "no panel is configured (MARZBAN_URL, or PASARGUARD_URL with PANEL_KIND=pasarguard): there is nothing to sync with"
                    .into(),
            ));
        }
    };
    let started = Instant::now();
    let outcome = syncer
        .addr()
        .send(RunSync { kind })
        .await
        .map_err(|e| AppError::Unavailable(format!("the panel syncer is not running: {e}")))?;
    let duration_ms = started.elapsed().as_millis() as u64;
    let (result, after) = match outcome {
        Ok(None) => {
            return Err(AppError::Conflict(format!(
                "a {} sync is already running; try again when it ends",
                kind.as_str()
            )));
        }
        Ok(Some(counts)) => (
            Ok(SyncResult {
                kind: kind.as_str().to_owned(),
                checked: counts.checked,
                created: counts.created,
                updated: counts.updated,
                failed: counts.failed,
                duration_ms,
            }),
            serde_json::json!({"kind": kind.as_str(), "outcome": "succeeded", "counts": counts}),
        ),
        Err(e) => (
            Err(AppError::Unavailable(format!(
                "the {} sync failed: {}",
                kind.as_str(),
                e.message
            ))),
            serde_json::json!({"kind": kind.as_str(), "outcome": "failed", "error": e.message}),
        ),
    };
    // The run happened either way: record who asked for it and how it ended.
    let mut conn = state.pool.get().await?;
    audit::record(
        &mut conn,
        AuditRecord {
            admin_id: Some(admin.id),
            actor: admin.actor(),
            action: "sync.run".into(),
            target_type: Some("sync".into()),
            target_id: Some(kind.as_str().to_owned()),
            after: Some(after),
            remote_addr: remote,
            ..Default::default()
        },
    )
    .await?;
    tracing::info!(duration_ms, ok = result.is_ok(), "sync run on demand");
    result
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PanelStatsQuery {
    /// How many snapshots of the history, newest first: 1 to 1000 (default 100).
    pub limit: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PanelStatsView {
    /// The newest snapshot; `null` before the first `stats` sync.
    pub latest: Option<PanelStats>,
    /// The newest `limit` snapshots, newest first (the first is `latest`).
    pub history: Vec<PanelStats>,
}

/// The panel's system stats, as the `stats` sync records them: the latest and the history.
#[utoipa::path(
    get,
    path = "/api/v1/stats/panel",
    tag = "sync",
    params(PanelStatsQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, body = PanelStatsView),
        (status = 401, body = ErrorBody),
        (status = 422, description = "limit out of range", body = ErrorBody),
    )
)]
pub async fn panel_stats(
    _admin: Require<role::Viewer>,
    state: web::Data<WebState>,
    query: web::Query<PanelStatsQuery>,
) -> AppResult<web::Json<PanelStatsView>> {
    let limit = query.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(AppError::validation("limit", "must be between 1 and 1000"));
    }
    let mut conn = state.pool.get().await?;
    let history = sync::panel_stats_history(&mut conn, limit).await?;
    Ok(web::Json(PanelStatsView {
        latest: history.first().cloned(),
        history,
    }))
}
