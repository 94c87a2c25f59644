//! `/payments`: orders with their provider events and refunds, and refunds through the
//! PaymentProcessor (which refunds at the provider, takes the days back, re-provisions and
//! writes the audit row itself).

use actix_web::{HttpRequest, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

use super::{Page, parse_variant, trimmed};
use crate::actors::payments::{Refund, RefundError};
use crate::db::models::{Payment, PaymentEvent, PaymentRefund};
use crate::db::payments::{self, OrderFilter};
use crate::db::subscriptions;
use crate::domain::pricing;
use crate::domain::{
    Currency, Money, PaymentEventVerdict, PaymentId, PaymentKind, PaymentProvider, PaymentStatus,
    PlanId, PromoCodeId, UserId,
};
use crate::error::{AppError, AppResult, ErrorBody};
use crate::web::WebState;
use crate::web::auth::{AuthenticatedAdmin, Require, role};
use crate::web::jobs::pagination;
use crate::web::time_range;

/// Longest refund reason (the audit log keeps all of it; YooKassa is sent the first 250).
const MAX_REASON_CHARS: usize = 500;

/// An order.
#[derive(Debug, Serialize, ToSchema)]
pub struct PaymentView {
    #[schema(value_type = i64)]
    pub id: PaymentId,
    #[schema(value_type = i64)]
    pub user_id: UserId,
    #[schema(value_type = Option<i64>)]
    pub plan_id: Option<PlanId>,
    /// `yookassa`, `wata`, `stars` or `free`.
    #[schema(value_type = String, example = "yookassa")]
    pub provider: PaymentProvider,
    /// `checkout`, `auto_renewal` or `stars_renewal`.
    #[schema(value_type = String, example = "checkout")]
    pub kind: PaymentKind,
    /// `pending`, `succeeded`, `canceled`, `expired` or `refunded`.
    #[schema(value_type = String, example = "succeeded")]
    pub status: PaymentStatus,
    /// Kopecks (RUB) or Stars (XTR).
    pub amount_minor: i64,
    #[schema(value_type = String, example = "RUB")]
    pub currency: Currency,
    pub days: i32,
    #[schema(value_type = Option<i64>)]
    pub promo_code_id: Option<PromoCodeId>,
    pub discount_minor: i64,
    pub bonus_days: i32,
    /// The provider's id of the payment.
    pub external_id: Option<String>,
    pub confirmation_url: Option<String>,
    pub save_payment_method: bool,
    pub refunded_minor: i64,
    /// Why it failed, or why it was flagged for an admin.
    pub failure_reason: Option<String>,
    pub link_expires_at: Option<DateTime<Utc>>,
    pub paid_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub idempotency_key: Option<String>,
    pub payment_method_id: Option<String>,
}

/// The order without its raw provider answer (that is in [`PaymentDetail`] only).
impl From<Payment> for PaymentView {
    fn from(p: Payment) -> Self {
        PaymentView {
            id: p.id,
            user_id: p.user_id,
            plan_id: p.plan_id,
            provider: p.provider,
            kind: p.kind,
            status: p.status,
            amount_minor: p.amount_minor,
            currency: p.currency,
            days: p.days,
            promo_code_id: p.promo_code_id,
            discount_minor: p.discount_minor,
            bonus_days: p.bonus_days,
            external_id: p.external_id,
            confirmation_url: p.confirmation_url,
            save_payment_method: p.save_payment_method,
            refunded_minor: p.refunded_minor,
            failure_reason: p.failure_reason,
            link_expires_at: p.link_expires_at,
            paid_at: p.paid_at,
            created_at: p.created_at,
            updated_at: p.updated_at,
            idempotency_key: p.idempotency_key,
            payment_method_id: p.payment_method_id,
        }
    }
}

/// A webhook or update received about the order, with what was made of it.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventView {
    pub id: i64,
    #[schema(value_type = String, example = "yookassa")]
    pub provider: PaymentProvider,
    pub event_key: String,
    #[schema(example = "payment.succeeded")]
    pub event_type: String,
    /// `accepted`, `duplicate`, `forged`, `mismatched`, `ignored` or `invalid`.
    #[schema(value_type = String, example = "accepted")]
    pub verdict: PaymentEventVerdict,
    pub detail: Option<String>,
    pub remote_addr: Option<String>,
    /// The raw event.
    #[schema(value_type = Option<Object>)]
    pub payload: Option<Value>,
    pub received_at: DateTime<Utc>,
}

impl From<PaymentEvent> for EventView {
    fn from(e: PaymentEvent) -> Self {
        EventView {
            id: e.id,
            provider: e.provider,
            event_key: e.event_key,
            event_type: e.event_type,
            verdict: e.verdict,
            detail: e.detail,
            remote_addr: e.remote_addr,
            payload: e.payload,
            received_at: e.received_at,
        }
    }
}

/// A refund at the provider, counted once.
#[derive(Debug, Serialize, ToSchema)]
pub struct RefundView {
    pub id: i64,
    /// The provider's id of the refund (`null` while a request's outcome is unknown).
    pub external_id: Option<String>,
    pub amount_minor: i64,
    pub days_taken_back: i32,
    /// `applied` (counted), `requested` (asked of the provider, outcome not known yet),
    /// `early` (reported before the payment was recorded; applied when it is) or `failed`.
    #[schema(value_type = String, example = "applied")]
    pub state: crate::domain::RefundState,
    pub created_at: DateTime<Utc>,
}

impl From<PaymentRefund> for RefundView {
    fn from(r: PaymentRefund) -> Self {
        RefundView {
            id: r.id,
            external_id: r.external_id,
            amount_minor: r.amount_minor,
            days_taken_back: r.days_taken_back,
            state: r.state,
            created_at: r.created_at,
        }
    }
}

/// An order with everything known about it.
#[derive(Debug, Serialize, ToSchema)]
pub struct PaymentDetail {
    #[serde(flatten)]
    pub payment: PaymentView,
    /// The provider's last answer about the payment.
    #[schema(value_type = Option<Object>)]
    pub raw_payload: Option<Value>,
    /// Oldest first.
    pub events: Vec<EventView>,
    /// Oldest first.
    pub refunds: Vec<RefundView>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PaymentListQuery {
    /// `yookassa`, `wata`, `stars` or `free`.
    pub provider: Option<String>,
    /// `pending`, `succeeded`, `canceled`, `expired` or `refunded`.
    pub status: Option<String>,
    #[param(value_type = Option<i64>)]
    pub user_id: Option<String>,
    /// Created at or after this RFC 3339 time.
    pub from: Option<String>,
    /// Created before this RFC 3339 time.
    pub to: Option<String>,
    /// 1-based page number (default 1).
    pub page: Option<i64>,
    /// Items per page, 1 to 200 (default 50).
    pub per_page: Option<i64>,
}

impl PaymentListQuery {
    pub(crate) fn filter(&self) -> AppResult<OrderFilter> {
        let (from, to) = time_range(("from", self.from.as_deref()), ("to", self.to.as_deref()))?;
        let filter = OrderFilter {
            provider: self
                .provider
                .as_deref()
                .map(|t| parse_variant("provider", t))
                .transpose()?,
            status: self
                .status
                .as_deref()
                .map(|t| parse_variant("status", t))
                .transpose()?,
            user_id: self
                .user_id
                .as_deref()
                .map(|t| {
                    t.trim().parse().map(UserId).map_err(|_| {
                        AppError::validation("user_id", format!("'{t}' is not a user id"))
                    })
                })
                .transpose()?,
            from,
            to,
        };
        Ok(filter)
    }
}

/// Orders, newest first.
#[utoipa::path(
    get,
    path = "/api/v1/payments",
    tag = "payments",
    params(PaymentListQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, body = Page<PaymentView>),
        (status = 401, body = ErrorBody),
        (status = 422, description = "Bad filter (named) or pagination", body = ErrorBody),
    )
)]
pub async fn list_payments(
    _admin: Require<role::Viewer>,
    state: web::Data<WebState>,
    query: web::Query<PaymentListQuery>,
) -> AppResult<web::Json<Page<PaymentView>>> {
    let (page, per_page) = pagination(query.page, query.per_page)?;
    let filter = query.filter()?;
    let mut conn = state.pool.get().await?;
    let (items, total) = payments::list(&mut conn, &filter, page, per_page).await?;
    Ok(web::Json(Page {
        items: items.into_iter().map(PaymentView::from).collect(),
        total,
        page,
        per_page,
    }))
}

/// An order with its raw provider answer, every event received about it and its refunds.
#[utoipa::path(
    get,
    path = "/api/v1/payments/{id}",
    tag = "payments",
    params(("id" = i64, Path, description = "Order id")),
    security(("bearer" = [])),
    responses((status = 200, body = PaymentDetail), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody))
)]
pub async fn get_payment(
    _admin: Require<role::Viewer>,
    state: web::Data<WebState>,
    id: web::Path<i64>,
) -> AppResult<web::Json<PaymentDetail>> {
    let mut conn = state.pool.get().await?;
    let detail = payment_detail(&mut conn, PaymentId(id.into_inner())).await?;
    Ok(web::Json(detail))
}

/// An order with its raw provider answer, events and refunds (the API's and the console's).
pub(crate) async fn payment_detail(
    conn: &mut crate::db::PgConn,
    id: PaymentId,
) -> AppResult<PaymentDetail> {
    let mut order = payments::find(conn, id)
        .await?
        .ok_or_else(|| AppError::not_found(format!("payment {id}")))?;
    let events = payments::events_of(conn, id).await?;
    let refunds = payments::refunds_of(conn, id).await?;
    Ok(PaymentDetail {
        raw_payload: order.raw_payload.take(),
        payment: order.into(),
        events: events.into_iter().map(EventView::from).collect(),
        refunds: refunds.into_iter().map(RefundView::from).collect(),
    })
}

/// A refund to make.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefundRequest {
    /// Minor units of the order's currency, 1 to the order's amount (and at most what was not
    /// refunded yet); absent: all that remains.
    pub amount_minor: Option<i64>,
    /// Why (1 to 500 characters); sent to the provider and kept in the audit log.
    #[schema(example = "the user could not connect")]
    pub reason: String,
}

/// What a refund did.
#[derive(Debug, Serialize, ToSchema)]
pub struct RefundDone {
    /// Minor units refunded by this request.
    pub refunded_minor: i64,
    #[schema(value_type = String, example = "RUB")]
    pub currency: Currency,
    /// Days taken back from the subscription (in proportion for a partial refund).
    pub days_taken_back: i32,
    /// The subscription's new end; `null` without a subscription.
    pub new_end: Option<DateTime<Utc>>,
    /// The order after the refund.
    pub payment: PaymentView,
}

fn refund_error(e: RefundError) -> AppError {
    match e {
        RefundError::NotFound(id) => AppError::not_found(format!("payment {id}")),
        RefundError::NotPaid(..)
        | RefundError::Provider(_)
        | RefundError::InProgress(_)
        | RefundError::Unknown(_) => AppError::Conflict(e.to_string()),
        RefundError::Invalid(message) => AppError::validation("amount_minor", message),
        RefundError::Internal(cause) => AppError::Internal(anyhow::anyhow!("refund: {cause}")),
    }
}

/// Refund a paid order, all of it or `amount_minor`, through its provider. The days paid are
/// taken back (in proportion for a partial refund), the panel user is updated, and the audit log
/// records `payment.refund`.
#[utoipa::path(
    post,
    path = "/api/v1/payments/{id}/refund",
    tag = "payments",
    params(("id" = i64, Path, description = "Order id")),
    request_body = RefundRequest,
    security(("bearer" = [])),
    responses(
        (status = 200, body = RefundDone),
        (status = 401, body = ErrorBody),
        (status = 403, description = "Needs the admin role", body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, description = "The order was not paid; no payment provider is configured; or the provider refused or failed the refund (its message is given)", body = ErrorBody),
        (status = 422, description = "`amount_minor` out of range (or more than remains to refund), or a bad `reason`", body = ErrorBody),
    )
)]
pub async fn refund_payment(
    admin: Require<role::Admin>,
    state: web::Data<WebState>,
    req: HttpRequest,
    id: web::Path<i64>,
    body: web::Json<RefundRequest>,
) -> AppResult<web::Json<RefundDone>> {
    let body = body.into_inner();
    let done = refund(
        &state,
        &admin,
        crate::web::remote_addr(&req),
        PaymentId(id.into_inner()),
        body.amount_minor,
        &body.reason,
    )
    .await?;
    Ok(web::Json(done))
}

/// An admin's refund (the API's and the console's): the reason and the amount checked, then
/// the PaymentProcessor refunds at the provider, takes the days back and writes the audit row.
pub(crate) async fn refund(
    state: &WebState,
    admin: &AuthenticatedAdmin,
    remote_addr: Option<String>,
    id: PaymentId,
    amount_minor: Option<i64>,
    reason: &str,
) -> AppResult<RefundDone> {
    let reason = trimmed("reason", reason, 1, MAX_REASON_CHARS)?;
    let order = {
        let mut conn = state.pool.get().await?;
        payments::find(&mut conn, id)
            .await?
            .ok_or_else(|| AppError::not_found(format!("payment {id}")))?
    };
    check_amount(&order, amount_minor)?;
    let processor = state.payments.as_ref().ok_or_else(|| {
        AppError::Conflict("no payment provider is configured: nothing can be refunded".into())
    })?;
    let result = processor
        .addr()
        .send(Refund {
            payment_id: id,
            amount: amount_minor.map(|m| Money::new(m, order.currency)),
            reason,
            actor: admin.actor(),
            admin_id: Some(admin.id),
            remote_addr,
        })
        .await
        .map_err(|e| AppError::Unavailable(format!("the payment processor did not answer: {e}")))?
        .map_err(refund_error)?;
    let mut conn = state.pool.get().await?;
    let order = payments::find(&mut conn, id)
        .await?
        .ok_or_else(|| AppError::not_found(format!("payment {id}")))?;
    tracing::info!(order = %id, refunded = %result.refunded, admin = %admin.username, "refund by an admin");
    Ok(RefundDone {
        refunded_minor: result.refunded.minor,
        currency: result.refunded.currency,
        days_taken_back: result.days_taken_back,
        new_end: result.new_end,
        payment: order.into(),
    })
}

/// The API's bounds of an asked amount: 1 to the order's amount.
fn check_amount(order: &Payment, amount_minor: Option<i64>) -> AppResult<()> {
    match amount_minor {
        Some(amount) if !(1..=order.amount_minor).contains(&amount) => Err(AppError::validation(
            "amount_minor",
            format!(
                "must be between 1 and {} (the order's amount)",
                order.amount_minor
            ),
        )),
        _ => Ok(()),
    }
}

/// What a refund would do, before it is asked: the amount (all that remains when none is
/// given), the days taken back and the subscription's end before and after. The checks and the
/// computation are the refund's own (`pricing::refund_amount`, `pricing::refund_days`).
#[derive(Debug)]
pub(crate) struct RefundPreview {
    pub amount: Money,
    pub days_taken_back: i32,
    pub current_end: Option<DateTime<Utc>>,
    pub new_end: Option<DateTime<Utc>>,
}

pub(crate) async fn refund_preview(
    conn: &mut crate::db::PgConn,
    id: PaymentId,
    amount_minor: Option<i64>,
    reason: &str,
) -> AppResult<RefundPreview> {
    trimmed("reason", reason, 1, MAX_REASON_CHARS)?;
    let order = payments::find(conn, id)
        .await?
        .ok_or_else(|| AppError::not_found(format!("payment {id}")))?;
    if !matches!(
        order.status,
        PaymentStatus::Succeeded | PaymentStatus::Refunded
    ) {
        return Err(refund_error(RefundError::NotPaid(order.id, order.status)));
    }
    check_amount(&order, amount_minor)?;
    let amount = pricing::refund_amount(
        Money::new(order.amount_minor, order.currency),
        order.refunded_minor,
        amount_minor.map(|m| Money::new(m, order.currency)),
    )
    .map_err(|m| refund_error(RefundError::Invalid(m)))?;
    let days_taken_back = pricing::refund_days(
        order.days + order.bonus_days,
        order.amount_minor,
        order.refunded_minor,
        amount.minor,
    );
    let current_end = subscriptions::find_by_user(conn, order.user_id)
        .await?
        .map(|(s, _)| s.expires_at);
    Ok(RefundPreview {
        amount,
        days_taken_back,
        current_end,
        new_end: current_end.map(|end| pricing::take_back(end, days_taken_back)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refund_errors_map_to_statuses() {
        use actix_web::ResponseError;
        let status = |e| refund_error(e).status_code().as_u16();
        assert_eq!(status(RefundError::NotFound(PaymentId(1))), 404);
        assert_eq!(
            status(RefundError::NotPaid(PaymentId(1), PaymentStatus::Pending)),
            409
        );
        assert_eq!(status(RefundError::Provider("declined".into())), 409);
        assert_eq!(status(RefundError::Invalid("too much".into())), 422);
        assert_eq!(status(RefundError::Internal("db".into())), 500);
        match refund_error(RefundError::Invalid("too much".into())) {
            AppError::Validation { field, .. } => assert_eq!(field, "amount_minor"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn list_filters_are_parsed_and_errors_name_the_parameter() {
        let query = |provider: Option<&str>, status: Option<&str>, from, to| PaymentListQuery {
            provider: provider.map(str::to_owned),
            status: status.map(str::to_owned),
            user_id: Some("7".into()),
            from,
            to,
            page: None,
            per_page: None,
        };
        let f = query(Some("wata"), Some("refunded"), None, None)
            .filter()
            .unwrap();
        assert_eq!(
            (f.provider, f.status, f.user_id),
            (
                Some(PaymentProvider::Wata),
                Some(PaymentStatus::Refunded),
                Some(UserId(7))
            )
        );
        let field = |q: PaymentListQuery| match q.filter() {
            Err(AppError::Validation { field, .. }) => field,
            other => panic!("{other:?}"),
        };
        assert_eq!(field(query(Some("paypal"), None, None, None)), "provider");
        assert_eq!(field(query(None, Some("paid"), None, None)), "status");
        let mut bad_user = query(None, None, None, None);
        bad_user.user_id = Some("bob".into());
        assert_eq!(field(bad_user), "user_id");
        assert_eq!(
            field(query(None, None, Some("yesterday".into()), None)),
            "from"
        );
        assert_eq!(
            field(query(
                None,
                None,
                Some("2026-12-01T00:00:00Z".into()),
                Some("2026-11-01T00:00:00Z".into())
            )),
            "to"
        );
    }
}
