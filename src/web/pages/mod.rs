//! Server-rendered web pages: the admin console under `/admin` and the subscriber cabinet
//! under `/app`. What every page shares lives here: the embedded assets, the security
//! headers (a strict Content-Security-Policy, no framing, no caching of pages), errors rendered as
//! HTML pages, and the cookie sessions with their CSRF tokens (`session`). Handlers parse, call
//! the same code as the API route they mirror, and return a typed askama template.

pub mod admin;
pub mod app;
pub mod assets;
pub mod session;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::{StatusCode, header};
use actix_web::middleware::Next;
use actix_web::{HttpMessage as _, HttpResponse, web};
use askama::Template;

use crate::error::{AppError, AppResult};
use crate::i18n::pages::Tr;

/// The Content-Security-Policy of every page: our own scripts, styles and images only, no
/// inline script or style, forms post only to us, no framing.
pub const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                       form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'";

/// Routes of the pages and their assets.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/assets/{name}").get(assets::serve))
        .configure(admin::routes)
        .configure(app::routes);
}

/// An HTML answer of a rendered template.
pub fn render<T: Template>(status: StatusCode, template: &T) -> AppResult<HttpResponse> {
    let html = template
        .render()
        .map_err(|e| AppError::Internal(anyhow::anyhow!("rendering a page failed: {e}")))?;
    Ok(HttpResponse::build(status)
        .content_type("text/html; charset=utf-8")
        .body(html))
}

/// A 303 to `location` (after a form's POST, the browser GETs the result).
pub fn see_other(location: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, location))
        .finish()
}

/// Middleware of the page scopes: security headers on every answer, and errors (401, 403, 404,
/// 422, 5xx…) shown as an HTML page in the reader's language instead of the API's JSON. An
/// `Unauthorized` error (no session, or it ended) sends the browser to the login page.
pub async fn page_guard(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let res = next.call(req).await?;
    let page = res
        .response()
        .error()
        .map(|error| error_page(res.request(), error, res.status()));
    let res = match page {
        Some(page) => {
            let (req, _) = res.into_parts();
            ServiceResponse::new(req, page).map_into_right_body()
        }
        None => res.map_into_left_body(),
    };
    let mut res = res;
    let cabinet = is_cabinet(res.request());
    let headers = res.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        header::HeaderValue::from_static(if cabinet { app::CSP } else { CSP }),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        header::HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        header::HeaderValue::from_static("same-origin"),
    );
    // The cabinet is framed by Telegram's web client (its CSP says by whom; X-Frame-Options
    // cannot name an origin).
    if !cabinet {
        headers.insert(
            header::X_FRAME_OPTIONS,
            header::HeaderValue::from_static("DENY"),
        );
    }
    if !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(
            header::CACHE_CONTROL,
            header::HeaderValue::from_static("no-store"),
        );
    }
    Ok(res)
}

/// Whether a request is one of the subscriber cabinet's.
fn is_cabinet(req: &actix_web::HttpRequest) -> bool {
    req.path() == "/app" || req.path().starts_with("/app/")
}

/// The error page of a failed request.
#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage {
    layout: admin::Layout,
    status: u16,
    title: String,
    message: String,
}

/// The error page of a failed request of the cabinet.
#[derive(Template)]
#[template(path = "app/error.html")]
struct AppErrorPage {
    layout: app::AppLayout,
    status: u16,
    title: String,
    message: String,
}

fn error_page(
    req: &actix_web::HttpRequest,
    error: &actix_web::Error,
    status: StatusCode,
) -> HttpResponse {
    let app_error = error.as_error::<AppError>();
    let cabinet = is_cabinet(req);
    if let Some(AppError::Unauthorized(_)) = app_error {
        return see_other(if cabinet {
            app::SIGN_IN_PATH
        } else {
            admin::LOGIN_PATH
        });
    }
    let tr: Tr = if cabinet {
        app::AppLayout::for_request(req, app::session::current(req).as_ref()).tr
    } else {
        let session = req.extensions().get::<session::Current>().cloned();
        admin::Layout::for_request(req, session.as_ref().and_then(|c| c.0.as_ref())).tr
    };
    let title = match status.as_u16() {
        403 => tr.t("error-forbidden"),
        404 => tr.t("error-not-found"),
        409 => tr.t("error-conflict"),
        400 | 422 => tr.t("error-invalid"),
        429 => tr.t("error-too-many"),
        s if s >= 500 => tr.t("error-server"),
        _ => tr.t("error-other"),
    };
    // The API's message (English) says what exactly; a server error's cause stays in the log.
    let message = match app_error {
        Some(e) if !status.is_server_error() => e.to_string(),
        _ => String::new(),
    };
    let rendered = if cabinet {
        AppErrorPage {
            layout: app::AppLayout::for_request(req, app::session::current(req).as_ref()),
            status: status.as_u16(),
            title,
            message,
        }
        .render()
    } else {
        let session = req.extensions().get::<session::Current>().cloned();
        ErrorPage {
            layout: admin::Layout::for_request(req, session.as_ref().and_then(|c| c.0.as_ref())),
            status: status.as_u16(),
            title,
            message,
        }
        .render()
    };
    match rendered {
        Ok(html) => HttpResponse::build(status)
            .content_type("text/html; charset=utf-8")
            .body(html),
        Err(e) => {
            tracing::error!(error = %e, "rendering the error page failed");
            HttpResponse::build(status)
                .content_type("text/plain; charset=utf-8")
                .body(status.to_string())
        }
    }
}
