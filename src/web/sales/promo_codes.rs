//! `/promo-codes`: percent off, an amount off, or bonus days, with the limits of
//! [`PromoRules`](crate::domain::pricing::PromoRules) (checked in `promo_input`); and who
//! redeemed them. A code that was redeemed (or priced an order) is deactivated, not deleted.

use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{DateTime, Utc};
use diesel_async::AsyncConnection;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::promo_input::{NewPromo, PromoPatch};
use super::{Auditor, Page, PageQuery, Removal, json_of, parse_flag};
use crate::db::PgConn;
use crate::db::models::{PromoCode, PromoRedemption};
use crate::db::promo::{self, PromoValues};
use crate::domain::{PaymentId, PromoCodeId, PromoKind, UserId};
use crate::error::{AppError, AppResult, ErrorBody};
use crate::web::WebState;
use crate::web::auth::{Require, role};
use crate::web::jobs::pagination;

/// A promo code.
#[derive(Debug, Serialize, ToSchema)]
pub struct PromoView {
    #[schema(value_type = i64)]
    pub id: PromoCodeId,
    /// Upper case: `A`–`Z`, `0`–`9`, `-`, `_`.
    #[schema(example = "WINTER-25")]
    pub code: String,
    /// `percent`, `fixed` (kopecks off) or `bonus_days`.
    #[schema(value_type = String, example = "percent")]
    pub kind: PromoKind,
    /// Percent (1–100), kopecks off, or days added.
    pub value: i64,
    /// Total uses allowed; `null`: unlimited.
    pub max_uses: Option<i32>,
    /// Uses by paid orders (and bonus days given).
    pub uses_count: i32,
    /// Uses held by unpaid orders; they count toward `max_uses` until the order is paid (then
    /// they are in `uses_count`) or ends unpaid (then they are free again).
    pub reserved_count: i32,
    pub once_per_user: bool,
    /// Only for users who never paid.
    pub new_users_only: bool,
    /// Only with plans of this many days or more.
    pub min_plan_days: Option<i32>,
    pub valid_from: Option<DateTime<Utc>>,
    pub valid_until: Option<DateTime<Utc>>,
    pub active: bool,
    pub note: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<PromoCode> for PromoView {
    fn from(p: PromoCode) -> Self {
        PromoView {
            id: p.id,
            code: p.code,
            kind: p.kind,
            value: p.value,
            max_uses: p.max_uses,
            uses_count: p.uses_count,
            reserved_count: p.reserved_count,
            once_per_user: p.once_per_user,
            new_users_only: p.new_users_only,
            min_plan_days: p.min_plan_days,
            valid_from: p.valid_from,
            valid_until: p.valid_until,
            active: p.active,
            note: p.note,
            created_at: p.created_at,
            updated_at: p.updated_at,
        }
    }
}

/// 409 for a code that exists already; other database errors as they are.
fn duplicate_code(e: diesel::result::Error, code: &str) -> AppError {
    use diesel::result::{DatabaseErrorKind, Error};
    match e {
        Error::DatabaseError(DatabaseErrorKind::UniqueViolation, ref info)
            if info.constraint_name() == Some("promo_codes_code_key") =>
        {
            AppError::Conflict(format!("the promo code {code} exists already"))
        }
        other => other.into(),
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PromoListQuery {
    /// Only active (`true`) or inactive (`false`) codes.
    #[param(value_type = Option<bool>)]
    pub active: Option<String>,
    /// Codes starting with this (any case).
    pub q: Option<String>,
    /// 1-based page number (default 1).
    pub page: Option<i64>,
    /// Items per page, 1 to 200 (default 50).
    pub per_page: Option<i64>,
}

/// Promo codes, newest first.
#[utoipa::path(
    get,
    path = "/api/v1/promo-codes",
    tag = "promo-codes",
    params(PromoListQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, body = Page<PromoView>),
        (status = 401, body = ErrorBody),
        (status = 422, description = "Bad filter or pagination", body = ErrorBody),
    )
)]
pub async fn list_promo_codes(
    _admin: Require<role::Viewer>,
    state: web::Data<WebState>,
    query: web::Query<PromoListQuery>,
) -> AppResult<web::Json<Page<PromoView>>> {
    let (page, per_page) = pagination(query.page, query.per_page)?;
    let active = parse_flag("active", query.active.as_deref())?;
    let prefix = query.q.as_deref().map(str::trim).filter(|q| !q.is_empty());
    let mut conn = state.pool.get().await?;
    let (items, total) = promo::list(&mut conn, active, prefix, page, per_page).await?;
    Ok(web::Json(Page {
        items: items.into_iter().map(PromoView::from).collect(),
        total,
        page,
        per_page,
    }))
}

async fn find(conn: &mut PgConn, id: PromoCodeId) -> AppResult<PromoCode> {
    promo::find(conn, id)
        .await?
        .ok_or_else(|| AppError::not_found(format!("promo code {id}")))
}

/// One promo code.
#[utoipa::path(
    get,
    path = "/api/v1/promo-codes/{id}",
    tag = "promo-codes",
    params(("id" = i64, Path, description = "Promo code id")),
    security(("bearer" = [])),
    responses((status = 200, body = PromoView), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody))
)]
pub async fn get_promo_code(
    _admin: Require<role::Viewer>,
    state: web::Data<WebState>,
    id: web::Path<i64>,
) -> AppResult<web::Json<PromoView>> {
    let mut conn = state.pool.get().await?;
    Ok(web::Json(
        find(&mut conn, PromoCodeId(id.into_inner())).await?.into(),
    ))
}

/// Create a promo code. Audit-logged (`promo.create`).
#[utoipa::path(
    post,
    path = "/api/v1/promo-codes",
    tag = "promo-codes",
    request_body = NewPromo,
    security(("bearer" = [])),
    responses(
        (status = 201, body = PromoView),
        (status = 401, body = ErrorBody),
        (status = 403, description = "Needs the operator role", body = ErrorBody),
        (status = 409, description = "The code exists already", body = ErrorBody),
        (status = 422, description = "Invalid field (named); `min_plan_id` of a plan that does not exist", body = ErrorBody),
    )
)]
pub async fn create_promo_code(
    admin: Require<role::Operator>,
    state: web::Data<WebState>,
    req: HttpRequest,
    body: web::Json<NewPromo>,
) -> AppResult<HttpResponse> {
    let promo = create(&state, &Auditor::new(&admin, &req), body.into_inner()).await?;
    Ok(HttpResponse::Created().json(PromoView::from(promo)))
}

/// A new promo code, checked, inserted and audit-logged in one transaction (the API's and the
/// console's).
pub(crate) async fn create(
    state: &WebState,
    auditor: &Auditor<'_>,
    new: NewPromo,
) -> AppResult<PromoCode> {
    let draft = new.draft()?;
    let mut conn = state.pool.get().await?;
    let promo = conn
        .transaction::<_, AppError, _>(async |conn| {
            let values = draft.check(conn, 0, 0).await?;
            let promo = promo::insert(conn, &values)
                .await
                .map_err(|e| duplicate_code(e, &values.code))?;
            auditor
                .record(
                    conn,
                    "promo.create",
                    ("promo_code", promo.id.to_string()),
                    None,
                    json_of(&promo),
                )
                .await?;
            Ok(promo)
        })
        .await?;
    tracing::info!(promo = %promo.id, code = %promo.code, admin = %auditor.admin.username, "promo code created");
    Ok(promo)
}

/// Change a promo code: only the fields given. Audit-logged (`promo.update`).
#[utoipa::path(
    patch,
    path = "/api/v1/promo-codes/{id}",
    tag = "promo-codes",
    params(("id" = i64, Path, description = "Promo code id")),
    request_body = PromoPatch,
    security(("bearer" = [])),
    responses(
        (status = 200, body = PromoView),
        (status = 401, body = ErrorBody),
        (status = 403, description = "Needs the operator role", body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, description = "Another code has this code already", body = ErrorBody),
        (status = 422, description = "Invalid field (named), e.g. `max_uses` below the uses so far, or nothing to change", body = ErrorBody),
    )
)]
pub async fn update_promo_code(
    admin: Require<role::Operator>,
    state: web::Data<WebState>,
    req: HttpRequest,
    id: web::Path<i64>,
    body: web::Json<PromoPatch>,
) -> AppResult<web::Json<PromoView>> {
    let id = PromoCodeId(id.into_inner());
    let promo = update(&state, &Auditor::new(&admin, &req), id, body.into_inner()).await?;
    Ok(web::Json(promo.into()))
}

/// A promo code changed by `patch`, checked as a whole (its uses so far included), under the
/// code's lock, audit-logged (the API's and the console's).
pub(crate) async fn update(
    state: &WebState,
    auditor: &Auditor<'_>,
    id: PromoCodeId,
    patch: PromoPatch,
) -> AppResult<PromoCode> {
    if patch.is_empty() {
        return Err(AppError::validation("body", "no field to change"));
    }
    let mut conn = state.pool.get().await?;
    let promo = conn
        .transaction::<_, AppError, _>(async |conn| {
            let before = promo::lock(conn, id)
                .await?
                .ok_or_else(|| AppError::not_found(format!("promo code {id}")))?;
            let values = patch
                .draft(&before)?
                .check(conn, before.uses_count, before.reserved_count)
                .await?;
            let promo = promo::update(conn, id, &values)
                .await
                .map_err(|e| duplicate_code(e, &values.code))?
                .ok_or_else(|| AppError::not_found(format!("promo code {id}")))?;
            auditor
                .record(
                    conn,
                    "promo.update",
                    ("promo_code", id.to_string()),
                    json_of(&before),
                    json_of(&promo),
                )
                .await?;
            Ok(promo)
        })
        .await?;
    tracing::info!(promo = %id, admin = %auditor.admin.username, "promo code updated");
    Ok(promo)
}

/// Delete a promo code that was never used; one that was redeemed or priced an order is
/// deactivated instead. Audit-logged (`promo.delete` or `promo.deactivate`).
#[utoipa::path(
    delete,
    path = "/api/v1/promo-codes/{id}",
    tag = "promo-codes",
    params(("id" = i64, Path, description = "Promo code id")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "`{\"deleted\": true}` or `{\"deactivated\": true}`", body = Removal),
        (status = 401, body = ErrorBody),
        (status = 403, description = "Needs the operator role", body = ErrorBody),
        (status = 404, body = ErrorBody),
    )
)]
pub async fn delete_promo_code(
    admin: Require<role::Operator>,
    state: web::Data<WebState>,
    req: HttpRequest,
    id: web::Path<i64>,
) -> AppResult<web::Json<Removal>> {
    let id = PromoCodeId(id.into_inner());
    let auditor = Auditor::new(&admin, &req);
    let mut conn = state.pool.get().await?;
    let removal = conn
        .transaction::<_, AppError, _>(async |conn| {
            // Locked first: a redemption counts its use under the same lock.
            let before = promo::lock(conn, id)
                .await?
                .ok_or_else(|| AppError::not_found(format!("promo code {id}")))?;
            let target = ("promo_code", id.to_string());
            if !promo::is_used(conn, id).await? {
                promo::delete(conn, id).await?;
                auditor
                    .record(conn, "promo.delete", target, json_of(&before), None)
                    .await?;
                return Ok(Removal::deleted());
            }
            let values = PromoValues {
                active: false,
                ..PromoValues::from(&before)
            };
            let after = promo::update(conn, id, &values).await?;
            auditor
                .record(
                    conn,
                    "promo.deactivate",
                    target,
                    json_of(&before),
                    json_of(&after),
                )
                .await?;
            Ok(Removal::deactivated())
        })
        .await?;
    tracing::info!(promo = %id, admin = %admin.username, ?removal, "promo code removed");
    Ok(web::Json(removal))
}

/// One use of a promo code.
#[derive(Debug, Serialize, ToSchema)]
pub struct RedemptionView {
    pub id: i64,
    #[schema(value_type = i64)]
    pub user_id: UserId,
    /// `null`: a subscriber who signed up on the web without Telegram.
    pub telegram_id: Option<i64>,
    pub username: Option<String>,
    /// The order it priced; `null` for bonus days applied outside a checkout.
    #[schema(value_type = Option<i64>)]
    pub payment_id: Option<PaymentId>,
    /// Minor units taken off the order.
    pub discount_minor: i64,
    pub bonus_days: i32,
    pub redeemed_at: DateTime<Utc>,
}

impl RedemptionView {
    fn new((r, telegram_id, username): (PromoRedemption, Option<i64>, Option<String>)) -> Self {
        RedemptionView {
            id: r.id,
            user_id: r.user_id,
            telegram_id,
            username,
            payment_id: r.payment_id,
            discount_minor: r.discount_minor,
            bonus_days: r.bonus_days,
            redeemed_at: r.redeemed_at,
        }
    }
}

/// Who used a promo code, newest first.
#[utoipa::path(
    get,
    path = "/api/v1/promo-codes/{id}/redemptions",
    tag = "promo-codes",
    params(("id" = i64, Path, description = "Promo code id"), PageQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, body = Page<RedemptionView>),
        (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 422, description = "Bad pagination", body = ErrorBody),
    )
)]
pub async fn list_redemptions(
    _admin: Require<role::Viewer>,
    state: web::Data<WebState>,
    id: web::Path<i64>,
    query: web::Query<PageQuery>,
) -> AppResult<web::Json<Page<RedemptionView>>> {
    let (page, per_page) = pagination(query.page, query.per_page)?;
    let id = PromoCodeId(id.into_inner());
    let mut conn = state.pool.get().await?;
    find(&mut conn, id).await?;
    let (items, total) = promo::redemptions(&mut conn, id, page, per_page).await?;
    Ok(web::Json(Page {
        items: items.into_iter().map(RedemptionView::new).collect(),
        total,
        page,
        per_page,
    }))
}
