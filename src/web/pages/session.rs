//! Cookie sessions of the web pages, stored server-side (`db::admin_sessions` for the console,
//! `db::user_sessions` for the cabinet, `web::pages::app::session`): the cookie (HttpOnly,
//! SameSite, and `Secure` with the `__Host-` prefix when `PUBLIC_BASE_URL` is https) carries a
//! random token whose SHA-256 finds the row. The cookie, token and CSRF plumbing here serves
//! both. A session ends after
//! [`SESSION_IDLE`] without a request, [`SESSION_LIFETIME`] after login, at logout, or when the
//! account is disabled or its password or role changes — the rules of the API's tokens.
//!
//! Every form carries the session's CSRF token; [`CsrfForm`] refuses a POST without the right
//! one (403), whichever kind of session put its [`FormGuard`] in the request. The login form, before any session, uses a double-submit token in a cookie of its
//! own. Roles are checked by [`Console`], ready at once like the API's `Require`.

use std::future::{Ready, ready};
use std::marker::PhantomData;
use std::time::Duration;

use actix_web::body::MessageBody;
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{FromRequest, HttpMessage as _, HttpRequest, web};
use chrono::Utc;
use futures_util::future::LocalBoxFuture;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};

use crate::db::admin_sessions::{self, AdminSession};
use crate::db::admins;
use crate::domain::{AdminId, Language};
use crate::error::{AppError, AppResult};
use crate::web::WebState;
use crate::web::auth::{AuthenticatedAdmin, role::Role};

/// A session ends after this long without a request.
pub const SESSION_IDLE: Duration = Duration::from_secs(12 * 3600);
/// A session ends this long after login, however busy.
pub const SESSION_LIFETIME: Duration = Duration::from_secs(7 * 24 * 3600);
/// Largest form body the pages accept.
const FORM_LIMIT: usize = 16 * 1024;

/// A live console session: who, in which language, with which CSRF token.
#[derive(Debug, Clone)]
pub struct ConsoleSession {
    pub admin: AuthenticatedAdmin,
    pub csrf: String,
    pub language: Language,
    token_hash: Vec<u8>,
}

impl ConsoleSession {
    pub fn token_hash(&self) -> &[u8] {
        &self.token_hash
    }
}

/// What [`load_session`] found, kept in the request's extensions.
#[derive(Debug, Clone)]
pub struct Current(pub Option<ConsoleSession>);

/// What [`CsrfForm`] checks a form against: the live session's CSRF token, and who it is for
/// the log. Each kind of session (console, cabinet) puts one in the request's extensions.
#[derive(Debug, Clone)]
pub struct FormGuard {
    pub csrf: String,
    pub who: String,
}

/// Whether cookies get `Secure` and the `__Host-` prefix: the shop is reached over https.
pub fn secure(state: &WebState) -> bool {
    state.settings.public_base_url.scheme() == "https"
}

/// The name of a cookie: `__Host-` prefixed over https (the browser then insists on `Secure`,
/// `Path=/` and no `Domain`).
pub fn cookie_name(state: &WebState, base: &str) -> String {
    if secure(state) {
        format!("__Host-{base}")
    } else {
        base.to_owned()
    }
}

/// The session cookie's base name.
pub const SESSION_COOKIE: &str = "vpnshop_admin";
/// The login form's double-submit cookie's base name.
pub const LOGIN_COOKIE: &str = "vpnshop_login";

/// The value of cookie `name` of the request.
pub fn cookie(req: &HttpRequest, name: &str) -> Option<String> {
    req.headers()
        .get_all(actix_web::http::header::COOKIE)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
}

/// The `SameSite` attribute of a cookie.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SameSite {
    /// Never sent on a request another site started: the console's cookies.
    Strict,
    /// Also sent on a top-level GET from another site: the cabinet's, whose sign-in link is
    /// opened from a mail client and whose Mini App is opened by Telegram. Forms are still
    /// guarded by their CSRF token.
    Lax,
}

/// A `Set-Cookie` value: HttpOnly, SameSite=Strict, Path=/, Secure over https; `max_age`
/// `None` deletes the cookie.
pub fn set_cookie(state: &WebState, base: &str, value: &str, max_age: Option<Duration>) -> String {
    set_cookie_with(state, base, value, max_age, SameSite::Strict)
}

/// [`set_cookie`] with the given `SameSite`.
pub fn set_cookie_with(
    state: &WebState,
    base: &str,
    value: &str,
    max_age: Option<Duration>,
    same_site: SameSite,
) -> String {
    let name = cookie_name(state, base);
    let age = max_age.map_or(0, |a| a.as_secs());
    let same_site = match same_site {
        SameSite::Strict => "Strict",
        SameSite::Lax => "Lax",
    };
    let mut out = format!("{name}={value}; Path=/; HttpOnly; SameSite={same_site}; Max-Age={age}");
    if secure(state) {
        out.push_str("; Secure");
    }
    out
}

/// 32 random bytes as hex.
pub fn random_token() -> String {
    let bytes: [u8; 32] = rand::random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The SHA-256 of a token: what the database keeps instead of it.
pub fn hash_token(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

/// A sign-in form's double-submit token (there is no session yet, so no session token): the
/// one in the browser's cookie `base`, or a new one. The page sets it as that cookie again.
pub fn sign_in_token(state: &WebState, req: &HttpRequest, base: &str) -> String {
    cookie(req, &cookie_name(state, base))
        .filter(|t| t.len() == 64 && t.bytes().all(|b| b.is_ascii_hexdigit()))
        .unwrap_or_else(random_token)
}

/// Whether a sign-in form's `csrf` field matches its cookie `base` (a form another site posts
/// cannot know it).
pub fn sign_in_token_matches(state: &WebState, req: &HttpRequest, base: &str, csrf: &str) -> bool {
    let expected = cookie(req, &cookie_name(state, base)).unwrap_or_default();
    !csrf.is_empty() && same_secret(csrf, &expected)
}

/// Compares two secrets in time that does not depend on where they differ.
pub fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// Opens a session for `admin` (after a successful login); the `Set-Cookie` value to send.
pub async fn open(
    state: &WebState,
    admin_id: AdminId,
    language: Language,
    remote: Option<String>,
) -> AppResult<String> {
    let token = random_token();
    let now = Utc::now();
    let lifetime = chrono::Duration::from_std(SESSION_LIFETIME)
        .map_err(|e| AppError::Internal(anyhow::anyhow!("session lifetime: {e}")))?;
    let session = AdminSession {
        token_hash: hash_token(&token),
        admin_id,
        csrf_token: random_token(),
        language,
        created_at: now,
        last_seen_at: now,
        expires_at: now + lifetime,
        remote_addr: remote,
    };
    let mut conn = state.pool.get().await?;
    admin_sessions::create(&mut conn, &session).await?;
    Ok(set_cookie(
        state,
        SESSION_COOKIE,
        &token,
        Some(SESSION_LIFETIME),
    ))
}

/// Middleware of the page scopes: finds the request's live session (if any) and keeps it in
/// the extensions as [`Current`]. A database that cannot be asked answers 503 at once.
pub async fn load_session(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let current = match find_session(req.request()).await {
        Ok(session) => Current(session),
        Err(e) => return Err(e.into()),
    };
    if let Some(session) = &current.0 {
        req.extensions_mut().insert(FormGuard {
            csrf: session.csrf.clone(),
            who: format!("admin {}", session.admin.username),
        });
    }
    req.extensions_mut().insert(current);
    next.call(req).await
}

async fn find_session(req: &HttpRequest) -> AppResult<Option<ConsoleSession>> {
    let state = req
        .app_data::<web::Data<WebState>>()
        .cloned()
        .ok_or_else(|| AppError::Internal(anyhow::anyhow!("web state missing")))?;
    let Some(token) = cookie(req, &cookie_name(&state, SESSION_COOKIE)) else {
        return Ok(None);
    };
    let token_hash = hash_token(&token);
    let mut conn = state.pool.get().await?;
    let Some(session) = admin_sessions::touch_live(&mut conn, &token_hash, SESSION_IDLE).await?
    else {
        return Ok(None);
    };
    let Some(admin) = admins::find(&mut conn, session.admin_id)
        .await?
        .filter(|a| a.active)
    else {
        return Ok(None);
    };
    // A password or role change ends the sessions opened before it, as it ends API tokens.
    if session.created_at < admin.tokens_valid_after {
        admin_sessions::delete(&mut conn, &token_hash).await?;
        return Ok(None);
    }
    // The session's id in the audit log and the logs: the first half of the token's hash.
    let token_id = uuid::Uuid::from_slice(&token_hash[..16]).unwrap_or_default();
    Ok(Some(ConsoleSession {
        admin: AuthenticatedAdmin {
            id: admin.id,
            username: admin.username,
            role: admin.role,
            token_id,
            expires_at: session.expires_at,
        },
        csrf: session.csrf_token,
        language: session.language,
        token_hash,
    }))
}

/// The live session of a request; 401 (shown as the login page) without one.
pub fn session_of(req: &HttpRequest) -> AppResult<ConsoleSession> {
    match req.extensions().get::<Current>() {
        Some(Current(Some(session))) => Ok(session.clone()),
        Some(Current(None)) => Err(AppError::Unauthorized("log in to the console".into())),
        None => Err(AppError::Internal(anyhow::anyhow!(
            "a page outside the load_session middleware"
        ))),
    }
}

/// A console session whose role includes `R`: the login page without a session, 403 with a
/// role below `R`. Ready at once, so as a handler's first argument it answers before the form
/// is read.
pub struct Console<R: Role> {
    pub session: ConsoleSession,
    role: PhantomData<R>,
}

impl<R: Role> std::ops::Deref for Console<R> {
    type Target = ConsoleSession;
    fn deref(&self) -> &ConsoleSession {
        &self.session
    }
}

impl<R: Role> FromRequest for Console<R> {
    type Error = AppError;
    type Future = Ready<AppResult<Self>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(session_of(req).and_then(|session| {
            session.admin.require(R::ROLE)?;
            Ok(Console {
                session,
                role: PhantomData,
            })
        }))
    }
}

#[derive(Deserialize)]
struct CsrfField {
    #[serde(default)]
    csrf: String,
}

/// The fields of a form that is only a button: its CSRF token, which [`CsrfForm`] checks.
#[derive(serde::Deserialize)]
pub struct EmptyForm {}

/// An `application/x-www-form-urlencoded` form of a live session (console or cabinet) whose
/// `csrf` field matches the session's token; 403 otherwise (a forged or stale form), before `T`
/// is looked at; 401 without a session.
pub struct CsrfForm<T>(pub T);

impl<T: DeserializeOwned + 'static> FromRequest for CsrfForm<T> {
    type Error = AppError;
    type Future = LocalBoxFuture<'static, AppResult<Self>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let guard = req
            .extensions()
            .get::<FormGuard>()
            .cloned()
            .ok_or_else(|| AppError::Unauthorized("sign in first".into()));
        let body = web::Bytes::from_request(req, payload);
        Box::pin(async move {
            let session = guard?;
            let body = body
                .await
                .map_err(|e| AppError::BadRequest(format!("reading the form failed: {e}")))?;
            if body.len() > FORM_LIMIT {
                return Err(AppError::BadRequest(format!(
                    "form larger than {FORM_LIMIT} bytes"
                )));
            }
            let CsrfField { csrf } = serde_urlencoded::from_bytes(&body).unwrap_or(CsrfField {
                csrf: String::new(),
            });
            if csrf.is_empty() || !same_secret(&csrf, &session.csrf) {
                tracing::warn!(who = %session.who, "form refused: missing or wrong CSRF token");
                return Err(AppError::Forbidden(
                    "this form's security token is missing or out of date; reload the page and try again"
                        .into(),
                ));
            }
            // PostgreSQL stores no NUL character: refused here rather than failing the write. In
            // a form body it can only come as `%00` (a `%` typed is sent as `%25`) or raw.
            if body.contains(&0) || body.windows(3).any(|w| w == b"%00") {
                return Err(AppError::BadRequest(
                    "text must not contain the NUL character".to_owned(),
                ));
            }
            serde_urlencoded::from_bytes(&body)
                .map(CsrfForm)
                .map_err(|e| AppError::validation("form", e.to_string()))
        })
    }
}
