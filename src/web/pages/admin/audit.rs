//! The console's audit log (admin only, as `GET /audit`): who changed what, newest first, 25 a
//! page, filtered by admin account and by action (`user.ban`, or a prefix `user.` — the API's
//! parser).

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use serde::Deserialize;

use super::Layout;
use crate::db::admins;
use crate::db::audit::{self, AuditFilter};
use crate::db::models::{Admin, AuditEntry};
use crate::domain::AdminId;
use crate::error::{AppError, AppResult};
use crate::web::WebState;
use crate::web::admin::history::action_filter;
use crate::web::auth::role;
use crate::web::jobs::pagination;
use crate::web::pages::render;
use crate::web::pages::session::Console;

/// Entries per page.
const PER_PAGE: i64 = 25;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/audit").get(list));
}

#[derive(Deserialize)]
struct ListQuery {
    admin_id: Option<String>,
    action: Option<String>,
    page: Option<i64>,
}

struct EntryLine {
    entry: AuditEntry,
    before: Option<String>,
    after: Option<String>,
}

#[derive(Template)]
#[template(path = "admin/audit.html")]
struct AuditPage {
    layout: Layout,
    items: Vec<EntryLine>,
    total: i64,
    page: i64,
    pages: i64,
    pager_href: String,
    admins: Vec<Admin>,
    /// The filter as given.
    admin_id: String,
    action: String,
}

/// `GET /admin/audit?admin_id=&action=&page=`.
async fn list(
    console: Console<role::Admin>,
    state: web::Data<WebState>,
    req: HttpRequest,
    query: web::Query<ListQuery>,
) -> AppResult<HttpResponse> {
    let (page, per_page) = pagination(query.page, Some(PER_PAGE))?;
    let admin_text = query.admin_id.clone().unwrap_or_default();
    let admin_id = match admin_text.trim() {
        "" => None,
        t => Some(AdminId(t.parse::<i64>().map_err(|_| {
            AppError::validation("admin_id", format!("'{t}' is not an account id"))
        })?)),
    };
    let action = query.action.clone().unwrap_or_default();
    let filter = AuditFilter {
        admin_id,
        action: action_filter(&action)?,
        ..AuditFilter::default()
    };
    let mut conn = state.pool.get().await?;
    let (entries, total) = audit::list(&mut conn, &filter, page, per_page).await?;
    let admins = admins::list(&mut conn).await?;
    let pretty = |v: &Option<serde_json::Value>| {
        v.as_ref()
            .map(|v| serde_json::to_string_pretty(v).unwrap_or_default())
    };
    render(
        StatusCode::OK,
        &AuditPage {
            layout: Layout::of(&req, &console),
            items: entries
                .into_iter()
                .map(|entry| EntryLine {
                    before: pretty(&entry.before),
                    after: pretty(&entry.after),
                    entry,
                })
                .collect(),
            total,
            page,
            pages: ((total + per_page - 1) / per_page).max(1),
            pager_href: format!(
                "/admin/audit?{}",
                serde_urlencoded::to_string([
                    ("admin_id", admin_text.as_str()),
                    ("action", action.as_str())
                ])
                .unwrap_or_default()
            ),
            admins,
            admin_id: admin_text,
            action,
        },
    )
}
