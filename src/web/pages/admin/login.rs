//! Logging in and out of the console. The password check is the API's
//! ([`crate::web::auth::verify_login`]: same lockout, same decoy); the login form carries a
//! double-submit CSRF token (a cookie and a field that must match) because there is no session
//! yet; logout ends the server-side session and is audit-logged like the API's.

use std::time::Duration;

use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use diesel_async::AsyncConnection;
use serde::Deserialize;

use super::Layout;
use crate::db::admin_sessions;
use crate::domain::Language;
use crate::error::{AppError, AppResult};
use crate::web::WebState;
use crate::web::auth::{role, verify_login};
use crate::web::pages::session::{
    self, Console, CsrfForm, EmptyForm, LOGIN_COOKIE, SESSION_COOKIE, set_cookie,
};
use crate::web::pages::{render, see_other};

/// How long a login form stays usable.
const LOGIN_FORM_LIFETIME: Duration = Duration::from_secs(3600);

#[derive(Template)]
#[template(path = "admin/login.html")]
struct LoginPage {
    layout: Layout,
    csrf: String,
    username: String,
    /// Why the last attempt failed, in the reader's language.
    error: Option<String>,
}

fn login_page(
    state: &WebState,
    req: &HttpRequest,
    status: StatusCode,
    username: String,
    error: Option<String>,
) -> AppResult<HttpResponse> {
    let csrf = session::sign_in_token(state, req, LOGIN_COOKIE);
    let page = LoginPage {
        layout: Layout::for_request(req, None),
        csrf: csrf.clone(),
        username,
        error,
    };
    let mut response = render(status, &page)?;
    let cookie = set_cookie(state, LOGIN_COOKIE, &csrf, Some(LOGIN_FORM_LIFETIME));
    response.headers_mut().append(
        header::SET_COOKIE,
        header::HeaderValue::from_str(&cookie)
            .map_err(|e| AppError::Internal(anyhow::anyhow!("cookie header: {e}")))?,
    );
    Ok(response)
}

/// `GET /admin/login`: the form; a browser with a live session goes to the dashboard.
pub async fn show(state: web::Data<WebState>, req: HttpRequest) -> AppResult<HttpResponse> {
    if session::session_of(&req).is_ok() {
        return Ok(see_other("/admin/"));
    }
    login_page(&state, &req, StatusCode::OK, String::new(), None)
}

#[derive(Deserialize)]
pub struct LoginForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
    lang: Option<String>,
}

/// `POST /admin/login`: checks the form's token against its cookie (403 when they differ), then
/// the password as the API does; a wrong one shows the form again with why.
pub async fn submit(
    state: web::Data<WebState>,
    req: HttpRequest,
    form: web::Form<LoginForm>,
) -> AppResult<HttpResponse> {
    let LoginForm {
        csrf,
        username,
        password,
        lang,
    } = form.into_inner();
    if !session::sign_in_token_matches(&state, &req, LOGIN_COOKIE, &csrf) {
        return Err(AppError::Forbidden(
            "the login form's security token is missing or out of date; reload the page".into(),
        ));
    }
    let remote = crate::web::remote_addr(&req);
    let tr = Layout::for_request(&req, None).tr;
    let admin = match verify_login(&state.pool, &username, password, remote.as_deref()).await {
        Ok(admin) => admin,
        Err(AppError::Unauthorized(_)) => {
            let error = Some(tr.t("login-wrong"));
            return login_page(&state, &req, StatusCode::UNAUTHORIZED, username, error);
        }
        Err(AppError::Validation { .. }) => {
            let error = Some(tr.t("login-missing"));
            return login_page(
                &state,
                &req,
                StatusCode::UNPROCESSABLE_ENTITY,
                username,
                error,
            );
        }
        Err(AppError::TooManyRequests { retry_after, .. }) => {
            let minutes = retry_after.as_secs().div_ceil(60).max(1) as i64;
            let error = Some(tr.n("login-locked", minutes));
            return login_page(&state, &req, StatusCode::TOO_MANY_REQUESTS, username, error);
        }
        Err(e) => return Err(e),
    };
    let language = lang
        .and_then(|l| l.parse::<Language>().ok())
        .unwrap_or(tr.language);
    let session_cookie = session::open(&state, admin.id, language, remote.clone()).await?;
    tracing::info!(admin = %admin.username, role = %admin.role, remote = ?remote, "admin logged in to the console");
    Ok(HttpResponse::SeeOther()
        .insert_header((header::LOCATION, "/admin/"))
        .append_header((header::SET_COOKIE, session_cookie))
        .append_header((
            header::SET_COOKIE,
            set_cookie(&state, LOGIN_COOKIE, "", None),
        ))
        .finish())
}

/// `POST /admin/logout`: ends this session (other sessions and API tokens stay), audit-logged
/// as the API's logout is.
pub async fn logout(
    console: Console<role::Viewer>,
    state: web::Data<WebState>,
    req: HttpRequest,
    _form: CsrfForm<EmptyForm>,
) -> AppResult<HttpResponse> {
    let remote = crate::web::remote_addr(&req);
    let admin = &console.admin;
    let mut conn = state.pool.get().await?;
    conn.transaction::<_, AppError, _>(async |conn| {
        admin_sessions::delete(conn, console.token_hash()).await?;
        crate::web::admin::session::audit_logout(conn, admin, remote).await
    })
    .await?;
    tracing::info!(admin = %admin.username, "admin logged out of the console");
    Ok(HttpResponse::SeeOther()
        .insert_header((header::LOCATION, super::LOGIN_PATH))
        .append_header((
            header::SET_COOKIE,
            set_cookie(&state, SESSION_COOKIE, "", None),
        ))
        .finish())
}
