//! `/plans`: the tariff plans the bot sells. A plan's price respects the minimum of every
//! configured provider; a plan that orders or subscriptions name is deactivated, not deleted.
//! Names and descriptions per language, and their checks, are in `plan_input`.

use std::collections::BTreeMap;

use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{DateTime, Utc};
use diesel_async::AsyncConnection;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::plan_input::{NewPlan, PlanPatch, min_price_kopecks};
use super::{Auditor, Removal, json_of, parse_flag};
use crate::db::models::Plan;
use crate::db::plans::{self, PlanValues};
use crate::domain::{Currency, PlanId};
use crate::error::{AppError, AppResult, ErrorBody};
use crate::web::WebState;
use crate::web::auth::{Require, role};

/// A tariff plan.
#[derive(Debug, Serialize, ToSchema)]
pub struct PlanView {
    #[schema(value_type = i64)]
    pub id: PlanId,
    /// The default name: what subscribers see when their language has none in `names`.
    #[schema(example = "1 month")]
    pub name: String,
    /// The name per language (`ru`, `en`).
    #[schema(example = json!({"ru": "1 месяц", "en": "1 month"}))]
    pub names: BTreeMap<String, String>,
    /// A short description per language; a subscriber whose language has none sees none.
    #[schema(example = json!({"ru": "Для одного устройства", "en": "For one device"}))]
    pub descriptions: BTreeMap<String, String>,
    pub days: i32,
    /// Price in kopecks of `currency`.
    #[schema(example = 29900)]
    pub price_minor: i64,
    /// Always `RUB`.
    #[schema(value_type = String, example = "RUB")]
    pub currency: Currency,
    /// Price in Telegram Stars; `null`: not sold for Stars.
    pub price_stars: Option<i64>,
    /// Traffic per paid period in bytes; `null`: unlimited. A purchase sets it as the panel
    /// user's `data_limit`; each renewal with this plan resets the panel's traffic counter.
    pub traffic_limit_bytes: Option<i64>,
    /// Offered in the bot.
    pub active: bool,
    /// Display order in the bot (ascending).
    pub sort_order: i32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<Plan> for PlanView {
    fn from(p: Plan) -> Self {
        PlanView {
            id: p.id,
            names: p.names.to_map(),
            descriptions: p.descriptions.to_map(),
            name: p.name,
            days: p.days,
            price_minor: p.price_minor,
            currency: p.currency,
            price_stars: p.price_stars,
            traffic_limit_bytes: p.traffic_limit_bytes,
            active: p.active,
            sort_order: p.sort_order,
            created_at: p.created_at,
            updated_at: p.updated_at,
        }
    }
}

fn min_price(state: &WebState) -> i64 {
    let providers = state
        .payment_clients
        .as_ref()
        .map(|c| c.providers())
        .unwrap_or_default();
    min_price_kopecks(&providers)
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PlanListQuery {
    /// Also list plans not offered in the bot (default false).
    #[param(value_type = Option<bool>)]
    pub include_inactive: Option<String>,
}

/// Plans in their display order; only active ones unless `include_inactive=true`.
#[utoipa::path(
    get,
    path = "/api/v1/plans",
    tag = "plans",
    params(PlanListQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, body = Vec<PlanView>),
        (status = 401, body = ErrorBody),
        (status = 422, description = "Bad `include_inactive`", body = ErrorBody),
    )
)]
pub async fn list_plans(
    _admin: Require<role::Viewer>,
    state: web::Data<WebState>,
    query: web::Query<PlanListQuery>,
) -> AppResult<web::Json<Vec<PlanView>>> {
    let include_inactive = parse_flag("include_inactive", query.include_inactive.as_deref())?;
    let mut conn = state.pool.get().await?;
    let found = if include_inactive.unwrap_or(false) {
        plans::all(&mut conn).await?
    } else {
        plans::active(&mut conn).await?
    };
    Ok(web::Json(found.into_iter().map(PlanView::from).collect()))
}

/// One plan.
#[utoipa::path(
    get,
    path = "/api/v1/plans/{id}",
    tag = "plans",
    params(("id" = i64, Path, description = "Plan id")),
    security(("bearer" = [])),
    responses((status = 200, body = PlanView), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody))
)]
pub async fn get_plan(
    _admin: Require<role::Viewer>,
    state: web::Data<WebState>,
    id: web::Path<i64>,
) -> AppResult<web::Json<PlanView>> {
    let id = PlanId(id.into_inner());
    let mut conn = state.pool.get().await?;
    plans::find(&mut conn, id)
        .await?
        .map(|p| web::Json(p.into()))
        .ok_or_else(|| AppError::not_found(format!("plan {id}")))
}

/// Create a plan. Audit-logged (`plan.create`).
#[utoipa::path(
    post,
    path = "/api/v1/plans",
    tag = "plans",
    request_body = NewPlan,
    security(("bearer" = [])),
    responses(
        (status = 201, body = PlanView),
        (status = 401, body = ErrorBody),
        (status = 403, description = "Needs the admin role", body = ErrorBody),
        (status = 422, description = "Invalid field (named), e.g. a price below a configured provider's minimum", body = ErrorBody),
    )
)]
pub async fn create_plan(
    admin: Require<role::Admin>,
    state: web::Data<WebState>,
    req: HttpRequest,
    body: web::Json<NewPlan>,
) -> AppResult<HttpResponse> {
    let plan = create(&state, &Auditor::new(&admin, &req), body.into_inner()).await?;
    Ok(HttpResponse::Created().json(PlanView::from(plan)))
}

/// A new plan, checked, inserted and audit-logged in one transaction (the API's and the
/// console's).
pub(crate) async fn create(
    state: &WebState,
    auditor: &Auditor<'_>,
    new: NewPlan,
) -> AppResult<Plan> {
    let values = new.check(min_price(state))?;
    let mut conn = state.pool.get().await?;
    let plan = conn
        .transaction::<_, AppError, _>(async |conn| {
            let plan = plans::insert(conn, &values).await?;
            auditor
                .record(
                    conn,
                    "plan.create",
                    ("plan", plan.id.to_string()),
                    None,
                    json_of(&plan),
                )
                .await?;
            Ok(plan)
        })
        .await?;
    tracing::info!(plan = %plan.id, admin = %auditor.admin.username, "plan created");
    Ok(plan)
}

/// Change a plan: only the fields given. Orders already made keep their price and days.
/// Audit-logged (`plan.update`).
#[utoipa::path(
    patch,
    path = "/api/v1/plans/{id}",
    tag = "plans",
    params(("id" = i64, Path, description = "Plan id")),
    request_body = PlanPatch,
    security(("bearer" = [])),
    responses(
        (status = 200, body = PlanView),
        (status = 401, body = ErrorBody),
        (status = 403, description = "Needs the admin role", body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 422, description = "Invalid field (named), or nothing to change", body = ErrorBody),
    )
)]
pub async fn update_plan(
    admin: Require<role::Admin>,
    state: web::Data<WebState>,
    req: HttpRequest,
    id: web::Path<i64>,
    body: web::Json<PlanPatch>,
) -> AppResult<web::Json<PlanView>> {
    let id = PlanId(id.into_inner());
    let plan = update(&state, &Auditor::new(&admin, &req), id, body.into_inner()).await?;
    Ok(web::Json(plan.into()))
}

/// A plan changed by `patch`, checked as a whole, under the plan's lock, audit-logged (the
/// API's and the console's).
pub(crate) async fn update(
    state: &WebState,
    auditor: &Auditor<'_>,
    id: PlanId,
    patch: PlanPatch,
) -> AppResult<Plan> {
    if patch.is_empty() {
        return Err(AppError::validation("body", "no field to change"));
    }
    let min_price = min_price(state);
    let mut conn = state.pool.get().await?;
    let plan = conn
        .transaction::<_, AppError, _>(async |conn| {
            let before = plans::lock(conn, id)
                .await?
                .ok_or_else(|| AppError::not_found(format!("plan {id}")))?;
            let values = patch.apply(&before).check(min_price)?;
            let plan = plans::update(conn, id, &values)
                .await?
                .ok_or_else(|| AppError::not_found(format!("plan {id}")))?;
            auditor
                .record(
                    conn,
                    "plan.update",
                    ("plan", id.to_string()),
                    json_of(&before),
                    json_of(&plan),
                )
                .await?;
            Ok(plan)
        })
        .await?;
    tracing::info!(plan = %id, admin = %auditor.admin.username, "plan updated");
    Ok(plan)
}

/// Delete a plan; one that orders or subscriptions name is deactivated instead (no longer
/// offered, kept for history). Audit-logged (`plan.delete` or `plan.deactivate`).
#[utoipa::path(
    delete,
    path = "/api/v1/plans/{id}",
    tag = "plans",
    params(("id" = i64, Path, description = "Plan id")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "`{\"deleted\": true}` or `{\"deactivated\": true}`", body = Removal),
        (status = 401, body = ErrorBody),
        (status = 403, description = "Needs the admin role", body = ErrorBody),
        (status = 404, body = ErrorBody),
    )
)]
pub async fn delete_plan(
    admin: Require<role::Admin>,
    state: web::Data<WebState>,
    req: HttpRequest,
    id: web::Path<i64>,
) -> AppResult<web::Json<Removal>> {
    let id = PlanId(id.into_inner());
    let auditor = Auditor::new(&admin, &req);
    let mut conn = state.pool.get().await?;
    let removal = conn
        .transaction::<_, AppError, _>(async |conn| {
            // Locked first: no order of it can start between the check and the delete.
            let before = plans::lock(conn, id)
                .await?
                .ok_or_else(|| AppError::not_found(format!("plan {id}")))?;
            let target = ("plan", id.to_string());
            if !plans::is_referenced(conn, id).await? {
                plans::delete(conn, id).await?;
                auditor
                    .record(conn, "plan.delete", target, json_of(&before), None)
                    .await?;
                return Ok(Removal::deleted());
            }
            let values = PlanValues {
                active: false,
                ..PlanValues::from(&before)
            };
            let after = plans::update(conn, id, &values).await?;
            auditor
                .record(
                    conn,
                    "plan.deactivate",
                    target,
                    json_of(&before),
                    json_of(&after),
                )
                .await?;
            Ok(Removal::deactivated())
        })
        .await?;
    tracing::info!(plan = %id, admin = %admin.username, ?removal, "plan removed");
    Ok(web::Json(removal))
}
