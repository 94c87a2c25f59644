//! `/promo-codes`: percent off, an amount off, or bonus days, with the limits of
//! [`PromoRules`](crate::domain::pricing::PromoRules); and who redeemed them. A code that was
//! redeemed (or priced an order) is deactivated, not deleted.

use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{DateTime, Utc};
use diesel_async::AsyncConnection;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{Auditor, Page, Removal, json_of, nullable, parse_time, trimmed};
use crate::db::models::{PromoCode, PromoRedemption};
use crate::db::promo::{self, PromoValues, normalise};
use crate::db::{PgConn, plans};
use crate::domain::{AdminRole, PaymentId, PlanId, PromoCodeId, PromoKind, UserId};
use crate::error::{AppError, AppResult, ErrorBody};
use crate::web::WebState;
use crate::web::auth::AuthenticatedAdmin;
use crate::web::jobs::pagination;

/// Most bonus days a code may give.
const MAX_BONUS_DAYS: i64 = 3650;
/// Longest note on a code.
const MAX_NOTE_CHARS: usize = 500;

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
    pub uses_count: i32,
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

fn yes() -> bool {
    true
}

/// A new promo code.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewPromo {
    /// 3 to 32 of `A`–`Z`, `0`–`9`, `-`, `_`; stored upper case (users may type any case).
    #[schema(example = "winter-25")]
    pub code: String,
    /// `percent`, `fixed` (an amount off, in kopecks) or `bonus_days`.
    #[schema(example = "percent")]
    pub kind: String,
    /// Percent 1–100; kopecks 1 or more; days 1–3650.
    #[schema(example = 25)]
    pub value: i64,
    /// Total uses allowed (1 or more); absent or `null`: unlimited.
    pub max_uses: Option<i64>,
    /// Each user may use it once (default true).
    #[serde(default = "yes")]
    pub once_per_user: bool,
    /// Only users who never paid may use it (default false).
    #[serde(default)]
    pub new_users_only: bool,
    /// RFC 3339; usable from then on.
    #[schema(example = "2026-12-01T00:00:00Z")]
    pub valid_from: Option<String>,
    /// RFC 3339, after `valid_from`; usable until then (exclusive).
    #[schema(example = "2027-01-01T00:00:00Z")]
    pub valid_until: Option<String>,
    /// Only with plans at least as long as this plan (stored as its number of days).
    pub min_plan_id: Option<i64>,
    /// Can be used (default true).
    #[serde(default = "yes")]
    pub active: bool,
    /// For admins, at most 500 characters.
    pub note: Option<String>,
}

/// Changes to a promo code: only the fields given change; `null` clears `max_uses`,
/// `valid_from`, `valid_until`, `min_plan_id` or `note`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PromoPatch {
    pub code: Option<String>,
    pub kind: Option<String>,
    pub value: Option<i64>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<i64>, nullable)]
    pub max_uses: Option<Option<i64>>,
    pub once_per_user: Option<bool>,
    pub new_users_only: Option<bool>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>, nullable)]
    pub valid_from: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>, nullable)]
    pub valid_until: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<i64>, nullable)]
    pub min_plan_id: Option<Option<i64>>,
    pub active: Option<bool>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>, nullable)]
    pub note: Option<Option<String>>,
}

impl PromoPatch {
    fn is_empty(&self) -> bool {
        self.code.is_none()
            && self.kind.is_none()
            && self.value.is_none()
            && self.max_uses.is_none()
            && self.once_per_user.is_none()
            && self.new_users_only.is_none()
            && self.valid_from.is_none()
            && self.valid_until.is_none()
            && self.min_plan_id.is_none()
            && self.active.is_none()
            && self.note.is_none()
    }
}

/// A normalised code, or 422 naming `code`.
pub(super) fn check_code(code: &str) -> AppResult<String> {
    let code = normalise(code);
    let len = code.chars().count();
    if !(3..=32).contains(&len) {
        return Err(AppError::validation("code", "must be 3 to 32 characters"));
    }
    if !code
        .chars()
        .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '-' || c == '_')
    {
        return Err(AppError::validation(
            "code",
            "may hold only the letters A-Z, digits, '-' and '_'",
        ));
    }
    Ok(code)
}

/// The value of a code of `kind`, or 422 naming `value`.
pub(super) fn check_value(kind: PromoKind, value: i64) -> AppResult<i64> {
    let (range, unit) = match kind {
        PromoKind::Percent => (1..=100, "percent"),
        PromoKind::Fixed => (1..=i64::MAX, "kopecks"),
        PromoKind::BonusDays => (1..=MAX_BONUS_DAYS, "days"),
    };
    if range.contains(&value) {
        Ok(value)
    } else if *range.end() == i64::MAX {
        Err(AppError::validation(
            "value",
            format!("must be 1 or more ({unit} off)"),
        ))
    } else {
        Err(AppError::validation(
            "value",
            format!(
                "a {kind} code's value must be between {} and {} ({unit})",
                range.start(),
                range.end()
            ),
        ))
    }
}

/// A promo code's columns as the admin wants them, before the checks that need the database.
struct PromoDraft {
    code: String,
    kind: String,
    value: i64,
    max_uses: Option<i64>,
    once_per_user: bool,
    new_users_only: bool,
    valid_from: Option<DateTime<Utc>>,
    valid_until: Option<DateTime<Utc>>,
    min_plan: MinPlan,
    active: bool,
    note: Option<String>,
}

/// The minimum plan: the stored number of days (a PATCH that does not touch it), or a plan id
/// to look up (`None`: no minimum).
enum MinPlan {
    Keep(Option<i32>),
    Plan(Option<i64>),
}

impl PromoDraft {
    /// The checked columns; `uses_count` is how often the code was used already.
    async fn check(self, conn: &mut PgConn, uses_count: i32) -> AppResult<PromoValues> {
        let code = check_code(&self.code)?;
        let kind: PromoKind =
            self.kind
                .trim()
                .parse()
                .map_err(|e: crate::domain::UnknownVariant| {
                    AppError::validation("kind", e.to_string())
                })?;
        let value = check_value(kind, self.value)?;
        let max_uses = self
            .max_uses
            .map(|max| {
                i32::try_from(max)
                    .ok()
                    .filter(|m| *m >= 1)
                    .ok_or_else(|| {
                        AppError::validation("max_uses", "must be 1 or more, or null for no limit")
                    })
                    .and_then(|m| {
                        if m < uses_count {
                            Err(AppError::validation(
                                "max_uses",
                                format!("the code was used {uses_count} times already"),
                            ))
                        } else {
                            Ok(m)
                        }
                    })
            })
            .transpose()?;
        if let (Some(from), Some(until)) = (self.valid_from, self.valid_until)
            && until <= from
        {
            return Err(AppError::validation(
                "valid_until",
                "must be after valid_from",
            ));
        }
        let min_plan_days = match self.min_plan {
            MinPlan::Keep(days) => days,
            MinPlan::Plan(None) => None,
            MinPlan::Plan(Some(id)) => {
                let plan = plans::find(conn, PlanId(id)).await?.ok_or_else(|| {
                    AppError::validation("min_plan_id", format!("plan {id} not found"))
                })?;
                Some(plan.days)
            }
        };
        let note = self
            .note
            .map(|n| trimmed("note", &n, 0, MAX_NOTE_CHARS))
            .transpose()?
            .filter(|n| !n.is_empty());
        Ok(PromoValues {
            code,
            kind,
            value,
            max_uses,
            once_per_user: self.once_per_user,
            new_users_only: self.new_users_only,
            min_plan_days,
            valid_from: self.valid_from,
            valid_until: self.valid_until,
            active: self.active,
            note,
        })
    }
}

fn optional_time(field: &str, text: Option<&str>) -> AppResult<Option<DateTime<Utc>>> {
    text.map(|t| parse_time(field, t)).transpose()
}

impl NewPromo {
    fn draft(self) -> AppResult<PromoDraft> {
        Ok(PromoDraft {
            valid_from: optional_time("valid_from", self.valid_from.as_deref())?,
            valid_until: optional_time("valid_until", self.valid_until.as_deref())?,
            code: self.code,
            kind: self.kind,
            value: self.value,
            max_uses: self.max_uses,
            once_per_user: self.once_per_user,
            new_users_only: self.new_users_only,
            min_plan: MinPlan::Plan(self.min_plan_id),
            active: self.active,
            note: self.note,
        })
    }
}

impl PromoPatch {
    /// The whole code as it would be after this change.
    fn draft(self, before: &PromoCode) -> AppResult<PromoDraft> {
        let time = |field: &str, change: Option<Option<String>>, current| match change {
            None => Ok(current),
            Some(text) => optional_time(field, text.as_deref()),
        };
        Ok(PromoDraft {
            valid_from: time("valid_from", self.valid_from, before.valid_from)?,
            valid_until: time("valid_until", self.valid_until, before.valid_until)?,
            code: self.code.unwrap_or_else(|| before.code.clone()),
            kind: self.kind.unwrap_or_else(|| before.kind.to_string()),
            value: self.value.unwrap_or(before.value),
            max_uses: self.max_uses.unwrap_or(before.max_uses.map(i64::from)),
            once_per_user: self.once_per_user.unwrap_or(before.once_per_user),
            new_users_only: self.new_users_only.unwrap_or(before.new_users_only),
            min_plan: match self.min_plan_id {
                None => MinPlan::Keep(before.min_plan_days),
                Some(plan) => MinPlan::Plan(plan),
            },
            active: self.active.unwrap_or(before.active),
            note: self.note.unwrap_or_else(|| before.note.clone()),
        })
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
    pub active: Option<bool>,
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
    state: web::Data<WebState>,
    admin: AuthenticatedAdmin,
    query: web::Query<PromoListQuery>,
) -> AppResult<web::Json<Page<PromoView>>> {
    admin.require(AdminRole::Viewer)?;
    let (page, per_page) = pagination(query.page, query.per_page)?;
    let prefix = query.q.as_deref().map(str::trim).filter(|q| !q.is_empty());
    let mut conn = state.pool.get().await?;
    let (items, total) = promo::list(&mut conn, query.active, prefix, page, per_page).await?;
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
    state: web::Data<WebState>,
    admin: AuthenticatedAdmin,
    id: web::Path<i64>,
) -> AppResult<web::Json<PromoView>> {
    admin.require(AdminRole::Viewer)?;
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
    state: web::Data<WebState>,
    admin: AuthenticatedAdmin,
    req: HttpRequest,
    body: web::Json<NewPromo>,
) -> AppResult<HttpResponse> {
    admin.require(AdminRole::Operator)?;
    let draft = body.into_inner().draft()?;
    let auditor = Auditor::new(&admin, &req);
    let mut conn = state.pool.get().await?;
    let promo = conn
        .transaction::<_, AppError, _>(async |conn| {
            let values = draft.check(conn, 0).await?;
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
    tracing::info!(promo = %promo.id, code = %promo.code, admin = %admin.username, "promo code created");
    Ok(HttpResponse::Created().json(PromoView::from(promo)))
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
    state: web::Data<WebState>,
    admin: AuthenticatedAdmin,
    req: HttpRequest,
    id: web::Path<i64>,
    body: web::Json<PromoPatch>,
) -> AppResult<web::Json<PromoView>> {
    admin.require(AdminRole::Operator)?;
    let id = PromoCodeId(id.into_inner());
    let patch = body.into_inner();
    if patch.is_empty() {
        return Err(AppError::validation("body", "no field to change"));
    }
    let auditor = Auditor::new(&admin, &req);
    let mut conn = state.pool.get().await?;
    let promo = conn
        .transaction::<_, AppError, _>(async |conn| {
            let before = promo::lock(conn, id)
                .await?
                .ok_or_else(|| AppError::not_found(format!("promo code {id}")))?;
            let values = patch.draft(&before)?.check(conn, before.uses_count).await?;
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
    tracing::info!(promo = %id, admin = %admin.username, "promo code updated");
    Ok(web::Json(promo.into()))
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
    state: web::Data<WebState>,
    admin: AuthenticatedAdmin,
    req: HttpRequest,
    id: web::Path<i64>,
) -> AppResult<web::Json<Removal>> {
    admin.require(AdminRole::Operator)?;
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
    pub telegram_id: i64,
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
    fn new((r, telegram_id, username): (PromoRedemption, i64, Option<String>)) -> Self {
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

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// 1-based page number (default 1).
    pub page: Option<i64>,
    /// Items per page, 1 to 200 (default 50).
    pub per_page: Option<i64>,
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
    state: web::Data<WebState>,
    admin: AuthenticatedAdmin,
    id: web::Path<i64>,
    query: web::Query<PageQuery>,
) -> AppResult<web::Json<Page<RedemptionView>>> {
    admin.require(AdminRole::Viewer)?;
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

#[cfg(test)]
mod tests {
    use super::*;

    fn field<T: std::fmt::Debug>(r: AppResult<T>) -> String {
        match r {
            Err(AppError::Validation { field, .. }) => field,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn codes_are_normalised_and_checked() {
        assert_eq!(check_code(" winter-25 ").unwrap(), "WINTER-25");
        assert_eq!(check_code("a_b").unwrap(), "A_B");
        assert_eq!(field(check_code("ab")), "code");
        assert_eq!(field(check_code(&"A".repeat(33))), "code");
        assert!(check_code(&"A".repeat(32)).is_ok());
        for bad in ["WIN TER", "ЗИМА25", "50%OFF", "a.b"] {
            assert_eq!(field(check_code(bad)), "code", "{bad}");
        }
    }

    #[test]
    fn values_are_checked_by_kind() {
        assert!(check_value(PromoKind::Percent, 100).is_ok());
        assert_eq!(field(check_value(PromoKind::Percent, 101)), "value");
        assert_eq!(field(check_value(PromoKind::Percent, 0)), "value");
        assert!(check_value(PromoKind::Fixed, 1).is_ok());
        assert!(check_value(PromoKind::Fixed, 10_000_000).is_ok());
        assert_eq!(field(check_value(PromoKind::Fixed, 0)), "value");
        assert!(check_value(PromoKind::BonusDays, 3650).is_ok());
        assert_eq!(field(check_value(PromoKind::BonusDays, 3651)), "value");
        assert_eq!(field(check_value(PromoKind::BonusDays, -1)), "value");
    }
}
