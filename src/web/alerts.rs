//! Admin endpoints of the alerts: their history (`GET /alerts`), which kinds are muted
//! (`GET/PATCH /alerts/settings`, the change audit-logged), and the review of a flagged payment
//! (`POST /alerts/{id}/review`, as the button under its message in the bot).

use std::collections::BTreeMap;

use actix_web::{HttpRequest, web};
use diesel_async::AsyncConnection;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::{IntoParams, OpenApi, ToSchema};

use crate::db::alerts;
use crate::db::audit::{self, AuditRecord};
use crate::db::models::AlertRow;
use crate::domain::AlertId;
use crate::domain::alerts::{AlertKind, AlertState};
use crate::error::{AppError, AppResult, ErrorBody};
use crate::web::WebState;
use crate::web::auth::{Require, role};
use crate::web::jobs::pagination;

/// The routes of this module, under `/api/v1`.
pub fn routes(cfg: &mut web::ServiceConfig) {
    // Before `/alerts/{id}/…`: `settings` is never an id.
    cfg.service(web::resource("/alerts").get(list_alerts))
        .service(
            web::resource("/alerts/settings")
                .get(get_settings)
                .patch(update_settings),
        )
        .service(web::resource("/alerts/{id}/review").post(review));
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AlertListQuery {
    /// An alert kind, e.g. `payment_flagged`, `panel_down`.
    pub kind: Option<String>,
    /// `firing`, `resolved` or `notice`.
    pub state: Option<String>,
    /// 1-based page number (default 1).
    pub page: Option<i64>,
    /// Items per page, 1 to 200 (default 50).
    pub per_page: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AlertPage {
    pub items: Vec<AlertRow>,
    pub total: i64,
    pub page: i64,
    pub per_page: i64,
}

/// Alerts raised for the admins, newest first — muted ones too.
#[utoipa::path(
    get,
    path = "/api/v1/alerts",
    tag = "alerts",
    params(AlertListQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, body = AlertPage),
        (status = 401, body = ErrorBody),
        (status = 422, description = "Bad filter or pagination", body = ErrorBody),
    )
)]
pub async fn list_alerts(
    _admin: Require<role::Viewer>,
    state: web::Data<WebState>,
    query: web::Query<AlertListQuery>,
) -> AppResult<web::Json<AlertPage>> {
    let (page, per_page) = pagination(query.page, query.per_page)?;
    let kind = query
        .kind
        .as_deref()
        .map(str::parse::<AlertKind>)
        .transpose()
        .map_err(|e| AppError::validation("kind", e.to_string()))?;
    let alert_state = query
        .state
        .as_deref()
        .map(str::parse::<AlertState>)
        .transpose()
        .map_err(|e| AppError::validation("state", e.to_string()))?;
    let mut conn = state.pool.get().await?;
    let (items, total) = alerts::list(&mut conn, kind, alert_state, page, per_page).await?;
    Ok(web::Json(AlertPage {
        items,
        total,
        page,
        per_page,
    }))
}

/// Which kinds are muted, and who gets the alerts.
#[derive(Debug, Serialize, ToSchema)]
pub struct AlertSettingsView {
    /// Every kind, `true` when muted (recorded, not sent).
    #[schema(value_type = BTreeMap<String, bool>, example = json!({"sale": true, "panel_down": false}))]
    pub muted: BTreeMap<&'static str, bool>,
    /// `ADMIN_TELEGRAM_IDS`.
    pub telegram: Vec<i64>,
    /// `ADMIN_EMAILS` (sent only with `SMTP_URL`).
    pub emails: Vec<String>,
    /// `ADMIN_LANGUAGE`.
    #[schema(example = "ru")]
    pub language: String,
}

async fn settings_view(
    state: &WebState,
    conn: &mut crate::db::PgConn,
) -> AppResult<AlertSettingsView> {
    let muted = alerts::muted_kinds(conn).await?;
    let s = &state.settings.alerts;
    Ok(AlertSettingsView {
        muted: AlertKind::ALL
            .iter()
            .map(|k| (k.as_str(), muted.contains(k)))
            .collect(),
        telegram: s.telegram.clone(),
        emails: s.emails.clone(),
        language: s.language.to_string(),
    })
}

/// The alert settings.
#[utoipa::path(
    get,
    path = "/api/v1/alerts/settings",
    tag = "alerts",
    security(("bearer" = [])),
    responses((status = 200, body = AlertSettingsView), (status = 401, body = ErrorBody))
)]
pub async fn get_settings(
    _admin: Require<role::Viewer>,
    state: web::Data<WebState>,
) -> AppResult<web::Json<AlertSettingsView>> {
    let mut conn = state.pool.get().await?;
    Ok(web::Json(settings_view(&state, &mut conn).await?))
}

/// Kinds to mute (`true`) or unmute (`false`); kinds left out stay as they are.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AlertSettingsUpdate {
    #[schema(value_type = BTreeMap<String, bool>, example = json!({"sale": true}))]
    pub muted: BTreeMap<String, bool>,
}

/// Mute or unmute kinds of alerts. A muted kind is still recorded (`GET /api/v1/alerts`).
/// Audit-logged.
#[utoipa::path(
    patch,
    path = "/api/v1/alerts/settings",
    tag = "alerts",
    request_body = AlertSettingsUpdate,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The settings now", body = AlertSettingsView),
        (status = 401, body = ErrorBody),
        (status = 403, description = "Needs the admin role", body = ErrorBody),
        (status = 422, description = "An unknown kind", body = ErrorBody),
    )
)]
pub async fn update_settings(
    admin: Require<role::Admin>,
    state: web::Data<WebState>,
    req: HttpRequest,
    body: web::Json<AlertSettingsUpdate>,
) -> AppResult<web::Json<AlertSettingsView>> {
    let mut changes = Vec::with_capacity(body.muted.len());
    for (kind, muted) in &body.muted {
        let kind = kind
            .parse::<AlertKind>()
            .map_err(|e| AppError::validation(format!("muted.{kind}"), e.to_string()))?;
        changes.push((kind, *muted));
    }
    let remote = crate::web::remote_addr(&req);
    let actor = admin.actor();
    let mut conn = state.pool.get().await?;
    let view = conn
        .transaction::<_, AppError, _>(async |conn| {
            let before = alerts::muted_kinds(conn).await?;
            for (kind, muted) in &changes {
                alerts::set_muted(conn, *kind, *muted).await?;
            }
            let view = settings_view(&state, conn).await?;
            let after = alerts::muted_kinds(conn).await?;
            audit::record(
                conn,
                AuditRecord {
                    admin_id: Some(admin.id),
                    actor,
                    action: "alerts.settings".into(),
                    target_type: Some("alert_settings".into()),
                    target_id: None,
                    before: Some(json!({ "muted": before })),
                    after: Some(json!({ "muted": after })),
                    remote_addr: remote,
                },
            )
            .await?;
            Ok(view)
        })
        .await?;
    tracing::info!(admin = %admin.username, ?changes, "alert kinds muted or unmuted");
    Ok(web::Json(view))
}

/// Mark the flagged payment of alert `id` reviewed: the alert ends, and the admins are told who
/// reviewed it. Audit-logged.
#[utoipa::path(
    post,
    path = "/api/v1/alerts/{id}/review",
    tag = "alerts",
    params(("id" = i64, Path, description = "Alert id")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The alert, resolved", body = AlertRow),
        (status = 401, body = ErrorBody),
        (status = 403, description = "Needs the operator role", body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, description = "Not a flagged payment waiting for review", body = ErrorBody),
    )
)]
pub async fn review(
    admin: Require<role::Operator>,
    state: web::Data<WebState>,
    req: HttpRequest,
    id: web::Path<i64>,
) -> AppResult<web::Json<AlertRow>> {
    let id = AlertId(id.into_inner());
    let remote = crate::web::remote_addr(&req);
    let actor = admin.actor();
    let attempts = state.settings.jobs.max_attempts;
    let mut conn = state.pool.get().await?;
    let row = conn
        .transaction::<_, AppError, _>(async |conn| {
            let Some(before) = alerts::mark_reviewed(conn, id, &actor, attempts).await? else {
                return Err(match alerts::find(conn, id).await? {
                    None => AppError::not_found(format!("alert {id}")),
                    Some(row) => AppError::Conflict(format!(
                        "alert {id} is a {} alert, {}: only a firing payment_flagged alert is reviewed",
                        row.kind, row.state
                    )),
                });
            };
            audit::record(
                conn,
                AuditRecord {
                    admin_id: Some(admin.id),
                    actor: actor.clone(),
                    action: "payment.reviewed".into(),
                    target_type: Some("alert".into()),
                    target_id: Some(id.to_string()),
                    before: Some(before.payload),
                    after: Some(json!({ "reviewed_by": actor })),
                    remote_addr: remote,
                },
            )
            .await?;
            alerts::find(conn, id)
                .await?
                .ok_or_else(|| AppError::not_found(format!("alert {id}")))
        })
        .await?;
    Ok(web::Json(row))
}

/// This module's part of the OpenAPI document.
#[derive(OpenApi)]
#[openapi(
    paths(list_alerts, get_settings, update_settings, review),
    components(schemas(AlertRow)),
    tags((name = "alerts", description = "What the shop told its admins, and which kinds are muted"))
)]
pub struct Api;
