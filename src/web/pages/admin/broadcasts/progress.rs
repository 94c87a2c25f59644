//! One broadcast's page: its message and audience, and its progress (sent / failed / blocked /
//! ETA) as a partial that the page's script polls (`GET …/progress`) until the delivery is over
//! — a reload shows the same numbers — with cancel (the API's [`cancel`]) while it runs.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use chrono::{DateTime, Utc};
use serde::Deserialize;

use super::audience_of;
use crate::db::broadcasts;
use crate::db::models::Broadcast;
use crate::domain::broadcast::preview_html;
use crate::domain::{AdminRole, BroadcastId, BroadcastStatus, Language};
use crate::error::{AppError, AppResult};
use crate::i18n::pages::Tr;
use crate::web::WebState;
use crate::web::auth::role;
use crate::web::broadcasts::cancel;
use crate::web::pages::admin::Layout;
use crate::web::pages::admin::ops::{ConfirmForm, OpsConfirm};
use crate::web::pages::session::{Console, CsrfForm};
use crate::web::pages::{render, see_other};

pub(super) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/broadcasts/{id}").get(show))
        .service(web::resource("/broadcasts/{id}/progress").get(progress))
        .service(web::resource("/broadcasts/{id}/cancel").post(cancel_broadcast));
}

/// A broadcast's progress as the page and its fragment show it.
pub struct Progress {
    pub id: BroadcastId,
    pub status: BroadcastStatus,
    pub total: i32,
    pub sent: i32,
    pub failed: i32,
    pub blocked: i32,
    /// `done` of `total` in whole percent; 100 once completed.
    pub percent: i64,
    /// Time left in words, while queued or running.
    pub eta: Option<String>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    /// Still queued or running, or its last batch still going out: the page keeps polling.
    pub live: bool,
    /// The reader may cancel it (operator or admin).
    pub can_cancel: bool,
    pub csrf: String,
}

impl Progress {
    /// `delivering`: a delivery job of it is still at work (after a cancel, its last batch is
    /// still being sent and counted).
    fn of(
        b: &Broadcast,
        rate: u32,
        tr: Tr,
        delivering: bool,
        can_cancel: bool,
        csrf: &str,
    ) -> Progress {
        let done = i64::from(b.sent) + i64::from(b.failed) + i64::from(b.blocked);
        let running = matches!(b.status, BroadcastStatus::Queued | BroadcastStatus::Running);
        let percent = match (b.status, i64::from(b.total)) {
            (BroadcastStatus::Completed, _) => 100,
            (_, 0) => 0,
            (_, total) => (done * 100 / total).clamp(0, 100),
        };
        Progress {
            id: b.id,
            status: b.status,
            total: b.total,
            sent: b.sent,
            failed: b.failed,
            blocked: b.blocked,
            percent,
            eta: b.eta_seconds(rate).map(|s| eta_text(tr, s)),
            started_at: b.started_at,
            finished_at: b.finished_at,
            live: running || delivering,
            can_cancel: can_cancel && running,
            csrf: csrf.to_owned(),
        }
    }
}

/// Time left in words: seconds under two minutes, else minutes (rounded up).
fn eta_text(tr: Tr, seconds: i64) -> String {
    if seconds < 120 {
        tr.n("eta-seconds", seconds)
    } else {
        tr.n("eta-minutes", (seconds + 59) / 60)
    }
}

#[derive(Template)]
#[template(path = "admin/broadcast.html")]
struct BroadcastPage {
    layout: Layout,
    broadcast: Broadcast,
    preview: String,
    segment: Option<&'static str>,
    language: Option<Language>,
    progress: Progress,
    /// `?done=cancel` after a cancel.
    canceled: bool,
}

#[derive(Template)]
#[template(path = "partials/broadcast_progress.html")]
struct ProgressFragment {
    tr: Tr,
    progress: Progress,
}

#[derive(Deserialize)]
struct ShowQuery {
    done: Option<String>,
}

async fn find(state: &WebState, id: i64) -> AppResult<Broadcast> {
    let id = BroadcastId(id);
    let mut conn = state.pool.get().await?;
    broadcasts::find(&mut conn, id)
        .await?
        .ok_or_else(|| AppError::not_found(format!("broadcast {id}")))
}

/// A broadcast and whether its delivery is still at work.
async fn find_with_delivery(state: &WebState, id: i64) -> AppResult<(Broadcast, bool)> {
    let broadcast = find(state, id).await?;
    let delivering = match broadcast.status {
        BroadcastStatus::Queued | BroadcastStatus::Running => true,
        _ => {
            let mut conn = state.pool.get().await?;
            broadcasts::delivery_active(&mut conn, broadcast.id).await?
        }
    };
    Ok((broadcast, delivering))
}

/// `GET /admin/broadcasts/{id}`: the message, its audience and its progress.
async fn show(
    console: Console<role::Viewer>,
    state: web::Data<WebState>,
    req: HttpRequest,
    id: web::Path<i64>,
    query: web::Query<ShowQuery>,
) -> AppResult<HttpResponse> {
    let (broadcast, delivering) = find_with_delivery(&state, id.into_inner()).await?;
    let audience = audience_of(&broadcast);
    let layout = Layout::of(&req, &console);
    let progress = Progress::of(
        &broadcast,
        state.settings.notifications.broadcast_rate,
        layout.tr,
        delivering,
        console.admin.role.allows(AdminRole::Operator),
        &console.csrf,
    );
    render(
        StatusCode::OK,
        &BroadcastPage {
            layout,
            preview: preview_html(&broadcast.text),
            segment: audience.map(|a| a.segment.as_str()),
            language: audience.and_then(|a| a.language),
            progress,
            canceled: query.done.as_deref() == Some("cancel"),
            broadcast,
        },
    )
}

/// `GET /admin/broadcasts/{id}/progress`: the progress fragment the page polls.
async fn progress(
    console: Console<role::Viewer>,
    state: web::Data<WebState>,
    req: HttpRequest,
    id: web::Path<i64>,
) -> AppResult<HttpResponse> {
    let (broadcast, delivering) = find_with_delivery(&state, id.into_inner()).await?;
    let tr = Layout::of(&req, &console).tr;
    render(
        StatusCode::OK,
        &ProgressFragment {
            tr,
            progress: Progress::of(
                &broadcast,
                state.settings.notifications.broadcast_rate,
                tr,
                delivering,
                console.admin.role.allows(AdminRole::Operator),
                &console.csrf,
            ),
        },
    )
}

/// `POST /admin/broadcasts/{id}/cancel`: without `confirm` a confirmation showing how many have
/// it and how many will not; with it the API's cancel, back to the broadcast's page.
async fn cancel_broadcast(
    console: Console<role::Operator>,
    state: web::Data<WebState>,
    req: HttpRequest,
    id: web::Path<i64>,
    form: CsrfForm<ConfirmForm>,
) -> AppResult<HttpResponse> {
    let id = id.into_inner();
    let CsrfForm(form) = form;
    if form.confirm.is_none() {
        let broadcast = find(&state, id).await?;
        let layout = Layout::of(&req, &console);
        let tr = layout.tr;
        let done = i64::from(broadcast.sent) + i64::from(broadcast.failed);
        let facts = vec![
            (tr.t("bc-handled"), tr.num(done)),
            (tr.t("bc-remaining"), tr.num(broadcast.remaining())),
        ];
        return render(
            StatusCode::OK,
            &OpsConfirm {
                title: tr.t("bc-cancel-title"),
                what: tr.t("bc-cancel-what"),
                facts,
                action: format!("/admin/broadcasts/{id}/cancel"),
                hidden: Vec::new(),
                button: tr.t("bc-cancel-do"),
                danger: true,
                back: format!("/admin/broadcasts/{id}"),
                csrf: console.csrf.clone(),
                layout,
            },
        );
    }
    let remote = crate::web::remote_addr(&req);
    cancel(&state, &console.admin, remote, BroadcastId(id)).await?;
    Ok(see_other(&format!("/admin/broadcasts/{id}?done=cancel")))
}
