//! `/plans`: the tariff plans the bot sells. A plan's price respects the minimum of every
//! configured provider; a plan that orders or subscriptions name is deactivated, not deleted.

use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{DateTime, Utc};
use diesel_async::AsyncConnection;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{Auditor, Removal, json_of, nullable, parse_flag, trimmed, yes};
use crate::db::models::Plan;
use crate::db::plans::{self, PlanValues};
use crate::domain::pricing::{provider_currency, provider_minimum};
use crate::domain::{Currency, PaymentProvider, PlanId};
use crate::error::{AppError, AppResult, ErrorBody};
use crate::web::WebState;
use crate::web::auth::{Require, role};

/// Longest plan, in days.
const MAX_DAYS: i32 = 3650;
/// The least a plan may cost in RUB whatever the providers: 1 ₽.
const MIN_PRICE_KOPECKS: i64 = 100;

/// A tariff plan.
#[derive(Debug, Serialize, ToSchema)]
pub struct PlanView {
    #[schema(value_type = i64)]
    pub id: PlanId,
    pub name: String,
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

/// A new plan.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewPlan {
    /// 1 to 64 characters.
    #[schema(example = "1 month")]
    pub name: String,
    /// 1 to 3650.
    #[schema(example = 30)]
    pub days: i64,
    /// RUB kopecks: at least 100 (1 ₽), and at least the minimum of every configured provider
    /// (WATA: 1000 = 10 ₽).
    #[schema(example = 29900)]
    pub price_minor: i64,
    /// Price in Stars (1 or more); absent or `null`: not sold for Stars.
    pub price_stars: Option<i64>,
    /// Traffic per paid period in bytes (more than 0), the panel user's `data_limit` after a
    /// purchase (renewals start a fresh allowance); absent or `null`: unlimited.
    pub traffic_limit_bytes: Option<i64>,
    /// Display order (default 0).
    #[serde(default)]
    pub sort_order: i32,
    /// Offered in the bot (default true).
    #[serde(default = "yes")]
    pub active: bool,
}

/// Changes to a plan: only the fields given change; `null` clears `price_stars` or
/// `traffic_limit_bytes`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PlanPatch {
    pub name: Option<String>,
    pub days: Option<i64>,
    pub price_minor: Option<i64>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<i64>, nullable)]
    pub price_stars: Option<Option<i64>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<i64>, nullable)]
    pub traffic_limit_bytes: Option<Option<i64>>,
    pub sort_order: Option<i32>,
    pub active: Option<bool>,
}

impl PlanPatch {
    fn is_empty(&self) -> bool {
        self.name.is_none()
            && self.days.is_none()
            && self.price_minor.is_none()
            && self.price_stars.is_none()
            && self.traffic_limit_bytes.is_none()
            && self.sort_order.is_none()
            && self.active.is_none()
    }
}

/// The smallest RUB price a plan may have with these providers configured.
fn min_price_kopecks(providers: &[PaymentProvider]) -> i64 {
    providers
        .iter()
        .filter(|p| provider_currency(**p) == Currency::Rub)
        .map(|p| provider_minimum(*p).minor)
        .fold(MIN_PRICE_KOPECKS, i64::max)
}

impl NewPlan {
    /// The plan's columns, checked; `min_price` in kopecks.
    fn check(self, min_price: i64) -> AppResult<PlanValues> {
        let name = trimmed("name", &self.name, 1, 64)?;
        let days = i32::try_from(self.days)
            .ok()
            .filter(|d| (1..=MAX_DAYS).contains(d))
            .ok_or_else(|| {
                AppError::validation("days", format!("must be between 1 and {MAX_DAYS}"))
            })?;
        if self.price_minor < min_price {
            return Err(AppError::validation(
                "price_minor",
                format!(
                    "must be at least {min_price} kopecks ({} ₽): the least the configured payment providers accept",
                    crate::domain::Money::rub_kopecks(min_price).to_decimal_string()
                ),
            ));
        }
        let min_stars = provider_minimum(PaymentProvider::Stars).minor;
        if self.price_stars.is_some_and(|s| s < min_stars) {
            return Err(AppError::validation(
                "price_stars",
                format!("must be at least {min_stars} Star, or null"),
            ));
        }
        if self.traffic_limit_bytes.is_some_and(|b| b <= 0) {
            return Err(AppError::validation(
                "traffic_limit_bytes",
                "must be more than 0, or null for unlimited traffic",
            ));
        }
        Ok(PlanValues {
            name,
            days,
            price_minor: self.price_minor,
            price_stars: self.price_stars,
            traffic_limit_bytes: self.traffic_limit_bytes,
            active: self.active,
            sort_order: self.sort_order,
        })
    }
}

impl PlanPatch {
    /// The whole plan as it would be after this change.
    fn apply(self, before: &Plan) -> NewPlan {
        NewPlan {
            name: self.name.unwrap_or_else(|| before.name.clone()),
            days: self.days.unwrap_or(i64::from(before.days)),
            price_minor: self.price_minor.unwrap_or(before.price_minor),
            price_stars: self.price_stars.unwrap_or(before.price_stars),
            traffic_limit_bytes: self
                .traffic_limit_bytes
                .unwrap_or(before.traffic_limit_bytes),
            sort_order: self.sort_order.unwrap_or(before.sort_order),
            active: self.active.unwrap_or(before.active),
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
    let values = body.into_inner().check(min_price(&state))?;
    let auditor = Auditor::new(&admin, &req);
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
    tracing::info!(plan = %plan.id, admin = %admin.username, "plan created");
    Ok(HttpResponse::Created().json(PlanView::from(plan)))
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
    let patch = body.into_inner();
    if patch.is_empty() {
        return Err(AppError::validation("body", "no field to change"));
    }
    let min_price = min_price(&state);
    let auditor = Auditor::new(&admin, &req);
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
    tracing::info!(plan = %id, admin = %admin.username, "plan updated");
    Ok(web::Json(plan.into()))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_minimum_price_is_the_highest_of_the_configured_rub_providers() {
        assert_eq!(min_price_kopecks(&[]), 100);
        assert_eq!(min_price_kopecks(&[PaymentProvider::Yookassa]), 100);
        assert_eq!(
            min_price_kopecks(&[PaymentProvider::Yookassa, PaymentProvider::Wata]),
            1_000
        );
        // Stars are priced separately.
        assert_eq!(min_price_kopecks(&[PaymentProvider::Stars]), 100);
    }

    #[test]
    fn plan_fields_are_checked_and_errors_name_them() {
        let ok = |name: &str, days, price_minor, price_stars, traffic_limit_bytes| {
            NewPlan {
                name: name.to_owned(),
                days,
                price_minor,
                price_stars,
                traffic_limit_bytes,
                sort_order: 0,
                active: true,
            }
            .check(1_000)
        };
        let v = ok(" Month ", 30, 29_900, Some(150), Some(1 << 30)).unwrap();
        assert_eq!((v.name.as_str(), v.days), ("Month", 30));
        let field = |r: AppResult<PlanValues>| match r {
            Err(AppError::Validation { field, .. }) => field,
            other => panic!("{other:?}"),
        };
        assert_eq!(field(ok("", 30, 29_900, None, None)), "name");
        assert_eq!(field(ok("x", 0, 29_900, None, None)), "days");
        assert_eq!(field(ok("x", 3651, 29_900, None, None)), "days");
        assert!(ok("x", 3650, 29_900, None, None).is_ok());
        assert_eq!(field(ok("x", 30, 999, None, None)), "price_minor");
        assert!(ok("x", 30, 1_000, None, None).is_ok());
        assert_eq!(field(ok("x", 30, 29_900, Some(0), None)), "price_stars");
        assert_eq!(
            field(ok("x", 30, 29_900, None, Some(0))),
            "traffic_limit_bytes"
        );
    }
}
