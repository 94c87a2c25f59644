//! The console's users: search (user id, Telegram id, username, email), a user's page, and the
//! actions extend / ban / unban / reset traffic / revoke link / set email / note. An action is two
//! POSTs: the first shows what will happen and asks to confirm, the second (with `confirm`)
//! calls the very function the API route calls — same validation, same transaction, same
//! audit row — and goes back to the user's page.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use chrono::{DateTime, Utc};
use serde::Deserialize;

use super::Layout;
use crate::actors::marzban::{PANEL_RESET_TRAFFIC, PANEL_REVOKE_SUB};
use crate::db::models::Notification;
use crate::db::users::{self, Search, UserFilter, UserSort};
use crate::db::{PgConn, notifications};
use crate::domain::pricing;
use crate::domain::{AdminRole, UserId};
use crate::error::{AppError, AppResult};
use crate::web::WebState;
use crate::web::auth::role;
use crate::web::jobs::pagination;
use crate::web::pages::session::{Console, CsrfForm};
use crate::web::pages::{render, see_other};
use crate::web::users::{
    ExtendRequest, UserDetail, UserListItem, UserPatch, UserRefView, enqueue_panel_job, extend,
    update_profile, user_detail,
};

/// Users per page of the search.
const PER_PAGE: i64 = 25;
/// Deliveries the user's page lists.
const NOTIFICATIONS_SHOWN: usize = 20;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/users").get(list))
        .service(web::resource("/users/{id}").get(show))
        .service(web::resource("/users/{id}/{action}").post(act));
}

#[derive(Template)]
#[template(path = "admin/users.html")]
struct UsersPage {
    layout: Layout,
    q: String,
    items: Vec<UserListItem>,
    total: i64,
    /// The user whose id the digits searched for are, when that is not among `items`.
    id_match: Option<UserRefView>,
    page: i64,
    pages: i64,
    /// The search's address, for the pager's links.
    pager_href: String,
}

#[derive(Deserialize)]
pub struct ListQuery {
    q: Option<String>,
    page: Option<i64>,
}

/// What the search box understands: digits are a Telegram id and a user id, `#12` a user id,
/// anything else a username prefix or an email address (the API's `q`).
enum Query {
    All,
    UserId(UserId),
    Digits(i64),
    Api(Search),
}

fn parse_query(q: &str) -> AppResult<Query> {
    let q = q.trim();
    if q.is_empty() {
        return Ok(Query::All);
    }
    if let Some(id) = q.strip_prefix('#').and_then(|d| d.parse::<i64>().ok()) {
        return Ok(Query::UserId(UserId(id)));
    }
    if let Ok(n) = q.parse::<i64>() {
        return Ok(Query::Digits(n));
    }
    Search::parse(q).map(Query::Api).ok_or_else(|| {
        AppError::validation(
            "q",
            "give a user id, a Telegram id, a username or an email address",
        )
    })
}

/// `GET /admin/users?q=…&page=…`: the search.
pub async fn list(
    console: Console<role::Viewer>,
    state: web::Data<WebState>,
    req: HttpRequest,
    query: web::Query<ListQuery>,
) -> AppResult<HttpResponse> {
    let (page, per_page) = pagination(query.page, Some(PER_PAGE))?;
    let q = query.q.clone().unwrap_or_default();
    let mut conn = state.pool.get().await?;
    let (search_for, id) = match parse_query(&q)? {
        Query::All => (None, None),
        Query::Api(s) => (Some(s), None),
        Query::UserId(id) => {
            if users::find(&mut conn, id).await?.is_some() {
                return Ok(see_other(&format!("/admin/users/{id}")));
            }
            (None, Some(id))
        }
        Query::Digits(n) => (Some(Search::TelegramId(n)), Some(UserId(n))),
    };
    // A `#id` of no user finds nothing (rather than everyone).
    let (items, total) = match (&search_for, id) {
        (None, Some(_)) => (Vec::new(), 0),
        _ => search(&mut conn, search_for, page, per_page).await?,
    };
    // Digits are also a user id: that user is offered apart from the Telegram id matches.
    let id_match = match id {
        Some(id) if matches!(parse_query(&q)?, Query::Digits(_)) => users::find(&mut conn, id)
            .await?
            .map(|u| UserRefView {
                id: u.id,
                telegram_id: u.telegram_id,
                username: u.username,
            })
            .filter(|u| !items.iter().any(|i| i.id == u.id)),
        _ => None,
    };
    let pager_href = format!(
        "/admin/users?{}",
        serde_urlencoded::to_string([("q", q.as_str())]).unwrap_or_default()
    );
    let pages = ((total + per_page - 1) / per_page).max(1);
    render(
        StatusCode::OK,
        &UsersPage {
            layout: Layout::of(&req, &console),
            q,
            items,
            total,
            id_match,
            page,
            pages,
            pager_href,
        },
    )
}

async fn search(
    conn: &mut PgConn,
    search: Option<Search>,
    page: i64,
    per_page: i64,
) -> AppResult<(Vec<UserListItem>, i64)> {
    let filter = UserFilter {
        search,
        ..UserFilter::default()
    };
    let (rows, total) = users::list(conn, &filter, UserSort::default(), page, per_page).await?;
    Ok((
        rows.into_iter()
            .map(|(u, s)| UserListItem::new(u, s))
            .collect(),
        total,
    ))
}

#[derive(Template)]
#[template(path = "admin/user.html")]
struct UserPageTemplate {
    layout: Layout,
    detail: UserDetail,
    notifications: Vec<Notification>,
    /// The admin may act (operator or admin): the action forms are shown.
    can_act: bool,
    csrf: String,
    /// The action just done (`?done=extend`), for the confirmation banner.
    done: Option<Action>,
}

#[derive(Deserialize)]
pub struct ShowQuery {
    done: Option<String>,
}

/// `GET /admin/users/{id}`: everything about one user, and the actions the role allows.
pub async fn show(
    console: Console<role::Viewer>,
    state: web::Data<WebState>,
    req: HttpRequest,
    id: web::Path<i64>,
    query: web::Query<ShowQuery>,
) -> AppResult<HttpResponse> {
    let id = UserId(id.into_inner());
    let mut conn = state.pool.get().await?;
    let detail = user_detail(&mut conn, id).await?;
    let mut notifications = notifications::for_user(&mut conn, id).await?;
    notifications.truncate(NOTIFICATIONS_SHOWN);
    render(
        StatusCode::OK,
        &UserPageTemplate {
            layout: Layout::of(&req, &console),
            detail,
            notifications,
            can_act: console.admin.role.allows(AdminRole::Operator),
            csrf: console.csrf.clone(),
            done: query.done.as_deref().and_then(Action::parse),
        },
    )
}

/// The actions of a user's page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Extend,
    Ban,
    Unban,
    ResetTraffic,
    RevokeLink,
    SetEmail,
    /// The admins' own note on the user (the API's `note`), never shown to the user.
    SetNote,
}

impl Action {
    pub const ALL: [Action; 7] = [
        Action::Extend,
        Action::Ban,
        Action::Unban,
        Action::ResetTraffic,
        Action::RevokeLink,
        Action::SetEmail,
        Action::SetNote,
    ];

    fn parse(text: &str) -> Option<Action> {
        Action::ALL.into_iter().find(|a| a.slug() == text)
    }

    /// Its path segment.
    pub fn slug(&self) -> &'static str {
        match self {
            Action::Extend => "extend",
            Action::Ban => "ban",
            Action::Unban => "unban",
            Action::ResetTraffic => "reset-traffic",
            Action::RevokeLink => "revoke-link",
            Action::SetEmail => "email",
            Action::SetNote => "note",
        }
    }

    /// Whether it cannot be undone by its opposite (shown in the danger colour).
    pub fn destructive(&self) -> bool {
        matches!(
            self,
            Action::Ban | Action::RevokeLink | Action::ResetTraffic
        )
    }
}

/// The fields of every action form; each action reads its own.
#[derive(Debug, Deserialize)]
pub struct ActionForm {
    /// Present on the second POST: the admin confirmed.
    confirm: Option<String>,
    days: Option<String>,
    reason: Option<String>,
    email: Option<String>,
    note: Option<String>,
}

#[derive(Template)]
#[template(path = "admin/confirm.html")]
struct ConfirmPage {
    layout: Layout,
    detail: UserDetail,
    action: Action,
    csrf: String,
    days: String,
    reason: String,
    email: String,
    note: String,
    /// The expiry after an extension, for `extend`.
    new_expiry: Option<DateTime<Utc>>,
}

/// `POST /admin/users/{id}/{action}`: without `confirm`, the confirmation page; with it, the
/// action (the API's function) and back to the user's page.
pub async fn act(
    console: Console<role::Operator>,
    state: web::Data<WebState>,
    req: HttpRequest,
    path: web::Path<(i64, String)>,
    form: CsrfForm<ActionForm>,
) -> AppResult<HttpResponse> {
    let (id, action) = path.into_inner();
    let id = UserId(id);
    let action =
        Action::parse(&action).ok_or_else(|| AppError::not_found(format!("action {action}")))?;
    let CsrfForm(form) = form;
    let days_text = form.days.clone().unwrap_or_default();
    let reason = form.reason.clone().unwrap_or_default();
    let email = form.email.clone().unwrap_or_default();
    let note = form.note.clone().unwrap_or_default();
    let days = || -> AppResult<i64> {
        days_text.trim().parse::<i64>().map_err(|_| {
            AppError::validation(
                "days",
                format!(
                    "'{days_text}' is not a whole number of days (1 to {})",
                    crate::web::users::MAX_EXTEND_DAYS
                ),
            )
        })
    };
    if form.confirm.is_none() {
        let mut conn = state.pool.get().await?;
        let detail = user_detail(&mut conn, id).await?;
        let new_expiry = match action {
            Action::Extend => {
                let days = i32::try_from(days()?).unwrap_or(i32::MAX);
                let current = detail.subscription.as_ref().map(|s| s.expires_at);
                Some(pricing::extend(current, Utc::now(), days.clamp(0, 3650)))
            }
            _ => None,
        };
        return render(
            StatusCode::OK,
            &ConfirmPage {
                layout: Layout::of(&req, &console),
                detail,
                action,
                csrf: console.csrf.clone(),
                days: days_text,
                reason,
                email,
                note,
                new_expiry,
            },
        );
    }
    let remote = crate::web::remote_addr(&req);
    let admin = &console.admin;
    match action {
        Action::Extend => {
            let request = ExtendRequest {
                days: days()?,
                reason,
            };
            extend(&state, admin, remote, id, request).await?;
        }
        Action::Ban | Action::Unban => {
            let patch = UserPatch {
                banned: Some(Some(action == Action::Ban)),
                ..UserPatch::default()
            };
            update_profile(&state, admin, remote, id, patch).await?;
        }
        Action::SetEmail => {
            let email = Some(email.trim().to_owned()).filter(|e| !e.is_empty());
            let patch = UserPatch {
                email: Some(email),
                ..UserPatch::default()
            };
            update_profile(&state, admin, remote, id, patch).await?;
        }
        Action::SetNote => {
            // Empty removes it, as in the API.
            let patch = UserPatch {
                note: Some(Some(note)),
                ..UserPatch::default()
            };
            update_profile(&state, admin, remote, id, patch).await?;
        }
        Action::ResetTraffic => {
            enqueue_panel_job(
                &state,
                admin,
                remote,
                id,
                PANEL_RESET_TRAFFIC,
                "user.reset_traffic",
            )
            .await?;
        }
        Action::RevokeLink => {
            enqueue_panel_job(
                &state,
                admin,
                remote,
                id,
                PANEL_REVOKE_SUB,
                "user.revoke_link",
            )
            .await?;
        }
    }
    Ok(see_other(&format!(
        "/admin/users/{id}?done={}",
        action.slug()
    )))
}
