//! The console's jobs: the queue filtered by state (the dead ones first) and kind, 25 a page,
//! with retry and discard on a dead job for operators. Both buttons call the API's functions
//! ([`retry`], [`discard`]): same rules, same transaction, same audit rows (`job.retry`,
//! `job.discard`). Discarding asks for a confirmation first.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use serde::Deserialize;

use super::Layout;
use super::ops::OpsConfirm;
use crate::db::jobs;
use crate::db::models::Job;
use crate::domain::{AdminRole, JobId, JobState};
use crate::error::{AppError, AppResult};
use crate::web::WebState;
use crate::web::auth::role;
use crate::web::jobs::{discard, pagination, retry};
use crate::web::pages::session::{Console, CsrfForm};
use crate::web::pages::{render, see_other};

/// Jobs per page.
const PER_PAGE: i64 = 25;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/jobs").get(list))
        .service(web::resource("/jobs/{id}/retry").post(retry_job))
        .service(web::resource("/jobs/{id}/discard").post(discard_job));
}

#[derive(Deserialize)]
struct ListQuery {
    /// `dead` (the default), `pending`, `running`, `done`, or `any`.
    state: Option<String>,
    kind: Option<String>,
    page: Option<i64>,
    /// `retry` or `discard` after an action on job `job`.
    done: Option<String>,
    job: Option<i64>,
}

struct JobLine {
    job: Job,
    /// The payload as compact JSON.
    payload: String,
}

#[derive(Template)]
#[template(path = "admin/jobs.html")]
struct JobsPage {
    layout: Layout,
    items: Vec<JobLine>,
    total: i64,
    page: i64,
    pages: i64,
    pager_href: String,
    /// The filter as given.
    state: String,
    kind: String,
    states: &'static [JobState],
    can_act: bool,
    csrf: String,
    /// The toast after an action: its message id and the job.
    done: Option<(&'static str, i64)>,
}

/// `GET /admin/jobs?state=dead&kind=&page=`: the queue, newest first.
async fn list(
    console: Console<role::Viewer>,
    state: web::Data<WebState>,
    req: HttpRequest,
    query: web::Query<ListQuery>,
) -> AppResult<HttpResponse> {
    let (page, per_page) = pagination(query.page, Some(PER_PAGE))?;
    let state_text = query.state.clone().unwrap_or_else(|| "dead".to_owned());
    let job_state = match state_text.as_str() {
        "any" | "" => None,
        s => Some(
            s.parse::<JobState>()
                .map_err(|e| AppError::validation("state", e.to_string()))?,
        ),
    };
    let kind = query.kind.clone().unwrap_or_default().trim().to_owned();
    let mut conn = state.pool.get().await?;
    let (items, total) = jobs::list(
        &mut conn,
        job_state,
        Some(kind.as_str()).filter(|k| !k.is_empty()),
        page,
        per_page,
    )
    .await?;
    let pager_href = format!(
        "/admin/jobs?{}",
        serde_urlencoded::to_string([("state", state_text.as_str()), ("kind", kind.as_str())])
            .unwrap_or_default()
    );
    let done = match (query.done.as_deref(), query.job) {
        (Some("retry"), Some(id)) => Some(("jobs-done-retry", id)),
        (Some("discard"), Some(id)) => Some(("jobs-done-discard", id)),
        _ => None,
    };
    render(
        StatusCode::OK,
        &JobsPage {
            layout: Layout::of(&req, &console),
            items: items
                .into_iter()
                .map(|job| JobLine {
                    payload: job.payload.to_string(),
                    job,
                })
                .collect(),
            total,
            page,
            pages: ((total + per_page - 1) / per_page).max(1),
            pager_href,
            state: state_text,
            kind,
            states: JobState::ALL,
            can_act: console.admin.role.allows(AdminRole::Operator),
            csrf: console.csrf.clone(),
            done,
        },
    )
}

#[derive(Deserialize)]
struct ActionForm {
    confirm: Option<String>,
    /// The list's address to go back to (a console path).
    back: Option<String>,
}

/// Where to go after an action: the list the admin came from, with the toast.
fn back_to(back: Option<String>, action: &str, id: i64) -> String {
    let list = back
        .filter(|b| b.starts_with("/admin/jobs") && !b.contains("//") && !b.contains('\\'))
        .unwrap_or_else(|| "/admin/jobs".to_owned());
    // The toast of an earlier action is not carried over.
    let (path, query) = list.split_once('?').unwrap_or((&list, ""));
    let kept: Vec<(String, String)> = serde_urlencoded::from_str::<Vec<(String, String)>>(query)
        .unwrap_or_default()
        .into_iter()
        .filter(|(k, _)| k != "done" && k != "job")
        .chain([
            ("done".to_owned(), action.to_owned()),
            ("job".to_owned(), id.to_string()),
        ])
        .collect();
    format!(
        "{path}?{}",
        serde_urlencoded::to_string(kept).unwrap_or_default()
    )
}

/// `POST /admin/jobs/{id}/retry`: the dead job is pending again (the API's retry).
async fn retry_job(
    console: Console<role::Operator>,
    state: web::Data<WebState>,
    req: HttpRequest,
    id: web::Path<i64>,
    form: CsrfForm<ActionForm>,
) -> AppResult<HttpResponse> {
    let id = id.into_inner();
    let CsrfForm(form) = form;
    let remote = crate::web::remote_addr(&req);
    retry(&state, &console.admin, remote, JobId(id)).await?;
    Ok(see_other(&back_to(form.back, "retry", id)))
}

/// `POST /admin/jobs/{id}/discard`: without `confirm` what will be given up; with it the API's
/// discard.
async fn discard_job(
    console: Console<role::Operator>,
    state: web::Data<WebState>,
    req: HttpRequest,
    id: web::Path<i64>,
    form: CsrfForm<ActionForm>,
) -> AppResult<HttpResponse> {
    let id = id.into_inner();
    let CsrfForm(form) = form;
    if form.confirm.is_none() {
        let mut conn = state.pool.get().await?;
        let job = jobs::find(&mut conn, JobId(id))
            .await?
            .ok_or_else(|| AppError::not_found(format!("job {id}")))?;
        let layout = Layout::of(&req, &console);
        let tr = layout.tr;
        let mut facts = vec![
            (tr.t("jobs-kind"), job.kind.clone()),
            (
                tr.t("jobs-attempts"),
                format!("{} / {}", job.attempts, job.max_attempts),
            ),
            (tr.t("jobs-payload"), job.payload.to_string()),
        ];
        if let Some(error) = &job.last_error {
            facts.push((tr.t("jobs-error"), error.clone()));
        }
        let back = form
            .back
            .clone()
            .filter(|b| b.starts_with("/admin/jobs"))
            .unwrap_or_else(|| "/admin/jobs".to_owned());
        return render(
            StatusCode::OK,
            &OpsConfirm {
                title: format!("{} #{id}", tr.t("jobs-discard-title")),
                what: tr.t("jobs-discard-what"),
                facts,
                action: format!("/admin/jobs/{id}/discard"),
                hidden: vec![("back".to_owned(), back.clone())],
                button: tr.t("jobs-discard-do"),
                danger: true,
                back,
                csrf: console.csrf.clone(),
                layout,
            },
        );
    }
    let remote = crate::web::remote_addr(&req);
    discard(&state, &console.admin, remote, JobId(id)).await?;
    Ok(see_other(&back_to(form.back, "discard", id)))
}
