//! The console's payments: the list filtered by provider, status and user (the API's
//! `GET /payments` filter, parsed by the same code), and a payment's page with its refunds and
//! every event received about it (the API's `GET /payments/{id}`).

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;

use super::Layout;
use crate::db::payments;
use crate::domain::{PaymentId, PaymentProvider, PaymentStatus};
use crate::error::AppResult;
use crate::web::WebState;
use crate::web::auth::role;
use crate::web::jobs::pagination;
use crate::web::pages::render;
use crate::web::pages::session::Console;
use crate::web::sales::payments::{PaymentDetail, PaymentListQuery, PaymentView, payment_detail};

/// Payments per page.
const PER_PAGE: i64 = 25;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/payments").get(list))
        .service(web::resource("/payments/{id}").get(show));
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
    /// The filter's address, for the pager's links.
    pager_href: String,
    providers: &'static [PaymentProvider],
    statuses: &'static [PaymentStatus],
}

/// `GET /admin/payments?provider=…&status=…&user_id=…&page=…`: the orders, newest first.
pub async fn list(
    console: Console<role::Viewer>,
    state: web::Data<WebState>,
    req: HttpRequest,
    query: web::Query<PaymentListQuery>,
) -> AppResult<HttpResponse> {
    // An empty field of the form means "any".
    let query = PaymentListQuery {
        provider: query.provider.clone().filter(|v| !v.is_empty()),
        status: query.status.clone().filter(|v| !v.is_empty()),
        user_id: query.user_id.clone().filter(|v| !v.trim().is_empty()),
        from: query.from.clone().filter(|v| !v.is_empty()),
        to: query.to.clone().filter(|v| !v.is_empty()),
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
            pager_href,
            providers: PaymentProvider::ALL,
            statuses: PaymentStatus::ALL,
        },
    )
}

#[derive(Template)]
#[template(path = "admin/payment.html")]
struct PaymentPage {
    layout: Layout,
    detail: PaymentDetail,
}

/// `GET /admin/payments/{id}`: one order, its refunds and its events.
pub async fn show(
    console: Console<role::Viewer>,
    state: web::Data<WebState>,
    req: HttpRequest,
    id: web::Path<i64>,
) -> AppResult<HttpResponse> {
    let mut conn = state.pool.get().await?;
    let detail = payment_detail(&mut conn, PaymentId(id.into_inner())).await?;
    render(
        StatusCode::OK,
        &PaymentPage {
            layout: Layout::of(&req, &console),
            detail,
        },
    )
}
