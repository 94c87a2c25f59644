//! The console's panel syncs: the last run of each kind with "run now" for operators, and the
//! history of runs, 25 a page, filtered by kind. "Run now" calls the API's [`run_now`] (the
//! MarzbanSyncer runs it and the page waits for it; the `sync.run` audit row either way).

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use serde::Deserialize;

use super::Layout;
use crate::actors::messages::SyncKind;
use crate::db::models::SyncRun;
use crate::db::sync;
use crate::domain::AdminRole;
use crate::error::{AppError, AppResult};
use crate::web::WebState;
use crate::web::admin::panel::{run_now, sync_kind};
use crate::web::auth::role;
use crate::web::jobs::pagination;
use crate::web::pages::session::{Console, CsrfForm, EmptyForm};
use crate::web::pages::{render, see_other};

/// Runs per page of the history.
const PER_PAGE: i64 = 25;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/syncs").get(list))
        .service(web::resource("/syncs/{kind}").post(run));
}

#[derive(Deserialize)]
struct ListQuery {
    kind: Option<String>,
    page: Option<i64>,
    /// The kind just run, and how it ended.
    done: Option<String>,
    failed: Option<String>,
}

/// A kind with its last run.
struct KindLine {
    kind: &'static str,
    last: Option<SyncRun>,
}

#[derive(Template)]
#[template(path = "admin/syncs.html")]
struct SyncsPage {
    layout: Layout,
    kinds: Vec<KindLine>,
    runs: Vec<SyncRun>,
    page: i64,
    pages: i64,
    pager_href: String,
    /// The history's filter as given (empty: every kind).
    kind: String,
    panel_configured: bool,
    can_run: bool,
    csrf: String,
    /// The kind just run successfully, or that failed.
    done: Option<&'static str>,
    failed: Option<&'static str>,
}

/// `GET /admin/syncs?kind=&page=`: the last runs and the history.
async fn list(
    console: Console<role::Viewer>,
    state: web::Data<WebState>,
    req: HttpRequest,
    query: web::Query<ListQuery>,
) -> AppResult<HttpResponse> {
    let (page, per_page) = pagination(query.page, Some(PER_PAGE))?;
    let kind = query.kind.clone().unwrap_or_default();
    let filter = match kind.as_str() {
        "" => None,
        k => Some(sync_kind("kind", k)?),
    };
    let mut conn = state.pool.get().await?;
    let mut kinds = Vec::new();
    for k in SyncKind::ALL {
        let last = sync::recent_runs(&mut conn, k.as_str(), 1)
            .await?
            .into_iter()
            .next();
        kinds.push(KindLine {
            kind: k.as_str(),
            last,
        });
    }
    let (runs, total) =
        sync::list_runs(&mut conn, filter.map(SyncKind::as_str), page, per_page).await?;
    let named = |text: &Option<String>| {
        text.as_deref()
            .and_then(|t| SyncKind::ALL.into_iter().find(|k| k.as_str() == t))
            .map(SyncKind::as_str)
    };
    render(
        StatusCode::OK,
        &SyncsPage {
            layout: Layout::of(&req, &console),
            kinds,
            runs,
            page,
            pages: ((total + per_page - 1) / per_page).max(1),
            pager_href: format!(
                "/admin/syncs?{}",
                serde_urlencoded::to_string([("kind", kind.as_str())]).unwrap_or_default()
            ),
            kind,
            panel_configured: state.settings.panel.is_some() && state.marzban.is_some(),
            can_run: console.admin.role.allows(AdminRole::Operator),
            csrf: console.csrf.clone(),
            done: named(&query.done),
            failed: named(&query.failed),
        },
    )
}

/// `POST /admin/syncs/{kind}`: runs the sync now and waits (the API's `POST /sync/{kind}`);
/// back to the page, which says how it ended. A run that failed is in the history with its
/// error; no panel, or a run of the kind in progress, is shown as the API's 409.
async fn run(
    console: Console<role::Operator>,
    state: web::Data<WebState>,
    req: HttpRequest,
    kind: web::Path<String>,
    _form: CsrfForm<EmptyForm>,
) -> AppResult<HttpResponse> {
    let kind = sync_kind("kind", &kind)?;
    let remote = crate::web::remote_addr(&req);
    match run_now(&state, &console.admin, remote, kind).await {
        Ok(_) => Ok(see_other(&format!("/admin/syncs?done={}", kind.as_str()))),
        Err(AppError::Unavailable(_)) => {
            Ok(see_other(&format!("/admin/syncs?failed={}", kind.as_str())))
        }
        Err(e) => Err(e),
    }
}
