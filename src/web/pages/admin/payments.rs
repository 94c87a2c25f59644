//! The console's payments: the list filtered by provider, status, user and period (the API's
//! `GET /payments` filter, parsed by the same code), a payment's page with its refunds and
//! every event received about it (the API's `GET /payments/{id}`), and the refund (the API's
//! `POST /payments/{id}/refund`, admin only): a confirmation showing the amount and the days
//! taken back, then the API's own refund; a refused amount or a provider's refusal is shown on
//! the form.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, ResponseError as _, web};
use askama::Template;
use serde::Deserialize;

use super::Layout;
use super::form::{FormError, on_form, optional_money};
use crate::db::{PgConn, payments};
use crate::domain::{AdminRole, PaymentId, PaymentProvider, PaymentStatus};
use crate::error::{AppError, AppResult};
use crate::web::WebState;
use crate::web::auth::role;
use crate::web::jobs::pagination;
use crate::web::pages::session::{Console, ConsoleSession, CsrfForm};
use crate::web::pages::{render, see_other};
use crate::web::sales::payments::{
    PaymentDetail, PaymentListQuery, PaymentView, RefundPreview, payment_detail, refund_preview,
};

/// Payments per page.
const PER_PAGE: i64 = 25;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/payments").get(list))
        .service(web::resource("/payments/{id}").get(show))
        .service(web::resource("/payments/{id}/refund").post(refund));
}

#[derive(Template)]
#[template(path = "admin/payments.html")]
struct PaymentsPage {
    layout: Layout,
    items: Vec<PaymentView>,
    total: i64,
    page: i64,
    pages: i64,
    /// The filter as given, to fill the form again.
    provider: String,
    status: String,
    user_id: String,
    /// The period's first and last day (`YYYY-MM-DD`, the console's time zone), as given.
    from: String,
    to: String,
    /// The filter's address, for the pager's links.
    pager_href: String,
    providers: &'static [PaymentProvider],
    statuses: &'static [PaymentStatus],
}

/// `GET /admin/payments?provider=…&status=…&user_id=…&from=…&to=…&page=…`: the orders, newest
/// first. `from` and `to` are days of the console's time zone (`DISPLAY_UTC_OFFSET`), both
/// included; an RFC 3339 time is taken as the API takes it.
pub async fn list(
    console: Console<role::Viewer>,
    state: web::Data<WebState>,
    req: HttpRequest,
    query: web::Query<PaymentListQuery>,
) -> AppResult<HttpResponse> {
    // An empty field of the form means "any".
    let offset = state.settings.notifications.display_offset;
    let from_day = query.from.clone().unwrap_or_default();
    let to_day = query.to.clone().unwrap_or_default();
    let query = PaymentListQuery {
        provider: query.provider.clone().filter(|v| !v.is_empty()),
        status: query.status.clone().filter(|v| !v.is_empty()),
        user_id: query.user_id.clone().filter(|v| !v.trim().is_empty()),
        from: query
            .from
            .as_deref()
            .filter(|v| !v.is_empty())
            .map(|v| day_start(v, offset, 0)),
        to: query
            .to
            .as_deref()
            .filter(|v| !v.is_empty())
            .map(|v| day_start(v, offset, 1)),
        page: query.page,
        per_page: Some(PER_PAGE),
    };
    let (page, per_page) = pagination(query.page, query.per_page)?;
    let filter = query.filter()?;
    let mut conn = state.pool.get().await?;
    let (items, total) = payments::list(&mut conn, &filter, page, per_page).await?;
    let provider = query.provider.clone().unwrap_or_default();
    let status = query.status.clone().unwrap_or_default();
    let user_id = query.user_id.clone().unwrap_or_default();
    let pager_href = format!(
        "/admin/payments?{}",
        serde_urlencoded::to_string([
            ("provider", provider.as_str()),
            ("status", status.as_str()),
            ("user_id", user_id.as_str()),
            ("from", from_day.as_str()),
            ("to", to_day.as_str()),
        ])
        .unwrap_or_default()
    );
    render(
        StatusCode::OK,
        &PaymentsPage {
            layout: Layout::of(&req, &console),
            items: items.into_iter().map(PaymentView::from).collect(),
            total,
            page,
            pages: ((total + per_page - 1) / per_page).max(1),
            provider,
            status,
            user_id,
            from: from_day,
            to: to_day,
            pager_href,
            providers: PaymentProvider::ALL,
            statuses: PaymentStatus::ALL,
        },
    )
}

/// The start of the day `after` days after the date `value` (`YYYY-MM-DD`) at `offset`, as RFC
/// 3339; anything else is handed on unchanged, for the API's parser to name.
fn day_start(value: &str, offset: chrono::FixedOffset, after: u64) -> String {
    chrono::NaiveDate::parse_from_str(value.trim(), "%Y-%m-%d")
        .ok()
        .and_then(|day| day.checked_add_days(chrono::Days::new(after)))
        .and_then(|day| {
            day.and_time(chrono::NaiveTime::MIN)
                .and_local_timezone(offset)
                .single()
        })
        .map_or_else(|| value.to_owned(), |start| start.to_rfc3339())
}

#[derive(Template)]
#[template(path = "admin/payment.html")]
struct PaymentPage {
    layout: Layout,
    detail: PaymentDetail,
    /// The admin may refund (the admin role) and something of a paid order remains.
    can_refund: bool,
    /// Minor units not refunded yet.
    refundable_minor: i64,
    csrf: String,
    /// The refund form as the admin filled it.
    amount: String,
    reason: String,
    error: Option<FormError>,
    /// A refund was just made (`?done=refund`).
    done: bool,
}

#[derive(Deserialize)]
pub struct ShowQuery {
    done: Option<String>,
}

/// The refund form as given.
#[derive(Debug, Default, Deserialize)]
pub struct RefundForm {
    /// Present on the second POST: the admin confirmed.
    confirm: Option<String>,
    /// A decimal in the order's currency; empty: all that remains.
    #[serde(default)]
    amount: String,
    #[serde(default)]
    reason: String,
}

async fn payment_page(
    conn: &mut PgConn,
    req: &HttpRequest,
    session: &ConsoleSession,
    id: PaymentId,
    form: RefundForm,
    error: Option<FormError>,
    done: bool,
) -> AppResult<PaymentPage> {
    let detail = payment_detail(conn, id).await?;
    let p = &detail.payment;
    let refundable_minor = p.amount_minor - p.refunded_minor;
    let paid = matches!(p.status, PaymentStatus::Succeeded | PaymentStatus::Refunded);
    Ok(PaymentPage {
        layout: Layout::of(req, session),
        can_refund: session.admin.role.allows(AdminRole::Admin) && paid && refundable_minor > 0,
        refundable_minor,
        csrf: session.csrf.clone(),
        amount: form.amount,
        reason: form.reason,
        error,
        done,
        detail,
    })
}

/// `GET /admin/payments/{id}`: one order, its refunds and its events, and the refund form for
/// an admin.
pub async fn show(
    console: Console<role::Viewer>,
    state: web::Data<WebState>,
    req: HttpRequest,
    id: web::Path<i64>,
    query: web::Query<ShowQuery>,
) -> AppResult<HttpResponse> {
    let mut conn = state.pool.get().await?;
    let done = query.done.as_deref() == Some("refund");
    let page = payment_page(
        &mut conn,
        &req,
        &console,
        PaymentId(id.into_inner()),
        RefundForm::default(),
        None,
        done,
    )
    .await?;
    render(StatusCode::OK, &page)
}

#[derive(Template)]
#[template(path = "admin/refund_confirm.html")]
struct RefundConfirmPage {
    layout: Layout,
    payment: PaymentView,
    preview: RefundPreview,
    csrf: String,
    /// The form's fields, sent again with the confirmation.
    amount: String,
    reason: String,
}

/// `POST /admin/payments/{id}/refund`: without `confirm`, what the refund will do; with it, the
/// API's refund and back to the payment. What the admin can fix is shown on the form.
pub async fn refund(
    console: Console<role::Admin>,
    state: web::Data<WebState>,
    req: HttpRequest,
    id: web::Path<i64>,
    form: CsrfForm<RefundForm>,
) -> AppResult<HttpResponse> {
    let id = PaymentId(id.into_inner());
    let CsrfForm(form) = form;
    let mut conn = state.pool.get().await?;
    let order = payments::find(&mut conn, id)
        .await?
        .ok_or_else(|| AppError::not_found(format!("payment {id}")))?;
    let attempt: AppResult<HttpResponse> = async {
        let asked = optional_money("amount_minor", &form.amount, order.currency)?.map(|m| m.minor);
        if form.confirm.is_none() {
            let preview = refund_preview(&mut conn, id, asked, &form.reason).await?;
            // The confirmation asks for exactly the amount it shows, not "what remains then".
            let amount = preview.amount.to_decimal_string();
            return render(
                StatusCode::OK,
                &RefundConfirmPage {
                    layout: Layout::of(&req, &console),
                    payment: order.clone().into(),
                    preview,
                    csrf: console.csrf.clone(),
                    amount,
                    reason: form.reason.clone(),
                },
            );
        }
        let remote = crate::web::remote_addr(&req);
        crate::web::sales::payments::refund(
            &state,
            &console.admin,
            remote,
            id,
            asked,
            &form.reason,
        )
        .await?;
        Ok(see_other(&format!("/admin/payments/{id}?done=refund")))
    }
    .await;
    match attempt {
        Ok(answer) => Ok(answer),
        Err(e) => {
            let status = e.status_code();
            let error = on_form(e)?;
            let page =
                payment_page(&mut conn, &req, &console, id, form, Some(error), false).await?;
            render(status, &page)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::day_start;

    #[test]
    fn a_day_of_the_console_is_its_start_at_the_display_offset() {
        let moscow = chrono::FixedOffset::east_opt(3 * 3600).unwrap();
        assert_eq!(
            day_start("2026-12-01", moscow, 0),
            "2026-12-01T00:00:00+03:00"
        );
        assert_eq!(
            day_start("2026-12-31", moscow, 1),
            "2027-01-01T00:00:00+03:00"
        );
        assert_eq!(
            day_start("2026-12-01T10:00:00Z", moscow, 1),
            "2026-12-01T10:00:00Z"
        );
        assert_eq!(day_start("yesterday", moscow, 0), "yesterday");
    }
}
