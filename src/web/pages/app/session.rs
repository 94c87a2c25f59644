//! Sessions of the subscriber cabinet: a row of `user_sessions` found by the SHA-256 of the
//! cookie's token (the cookie, token and CSRF plumbing of `pages::session`). The cookie is
//! `SameSite=Lax`, not `Strict` as the console's: the cabinet is reached from other sites — a
//! sign-in link opened from a mail client, the Mini App opened by Telegram, a link in a
//! notification — and a Strict cookie is not sent on that first navigation, so a signed-in
//! subscriber would be shown the sign-in page. Lax cookies still stay off cross-site POSTs, and
//! every form carries the session's CSRF token.

use std::future::{Ready, ready};
use std::time::Duration;

use actix_web::body::MessageBody;
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{FromRequest, HttpMessage as _, HttpRequest, web};
use chrono::Utc;

use crate::db::models::User;
use crate::db::user_sessions::{self, UserSession};
use crate::db::users;
use crate::error::{AppError, AppResult};
use crate::web::WebState;
use crate::web::pages::session::{
    FormGuard, SameSite, cookie, cookie_name, hash_token, random_token, set_cookie_with,
};

/// A session ends after this long without a request.
pub const SESSION_IDLE: Duration = Duration::from_secs(14 * 24 * 3600);
/// A session ends this long after sign-in, however busy.
pub const SESSION_LIFETIME: Duration = Duration::from_secs(60 * 24 * 3600);
/// The session cookie's base name.
pub const SESSION_COOKIE: &str = "vpnshop_app";

/// A signed-in subscriber.
#[derive(Debug, Clone)]
pub struct SubscriberSession {
    pub user: User,
    pub csrf: String,
    token_hash: Vec<u8>,
}

impl SubscriberSession {
    pub fn token_hash(&self) -> &[u8] {
        &self.token_hash
    }
}

/// What [`load`] found, kept in the request's extensions.
#[derive(Debug, Clone)]
struct Current(Option<SubscriberSession>);

/// The session cookie of `token` (`None`: deletes it).
pub fn session_cookie(state: &WebState, token: Option<&str>) -> String {
    match token {
        Some(token) => set_cookie_with(
            state,
            SESSION_COOKIE,
            token,
            Some(SESSION_LIFETIME),
            SameSite::Lax,
        ),
        None => set_cookie_with(state, SESSION_COOKIE, "", None, SameSite::Lax),
    }
}

/// Opens a session for `user` (after a sign-in); the `Set-Cookie` value to send.
pub async fn open(state: &WebState, user: &User, remote: Option<String>) -> AppResult<String> {
    let token = random_token();
    let now = Utc::now();
    let lifetime = chrono::Duration::from_std(SESSION_LIFETIME)
        .map_err(|e| AppError::Internal(anyhow::anyhow!("session lifetime: {e}")))?;
    let session = UserSession {
        token_hash: hash_token(&token),
        user_id: user.id,
        csrf_token: random_token(),
        created_at: now,
        last_seen_at: now,
        expires_at: now + lifetime,
        remote_addr: remote,
    };
    let mut conn = state.pool.get().await?;
    user_sessions::create(&mut conn, &session).await?;
    tracing::info!(user = %user.id, "subscriber signed in to the cabinet");
    Ok(session_cookie(state, Some(&token)))
}

/// Middleware of the cabinet's scope: finds the request's live session (if any).
pub async fn load(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let session = find(req.request()).await?;
    if let Some(session) = &session {
        req.extensions_mut().insert(FormGuard {
            csrf: session.csrf.clone(),
            who: format!("user {}", session.user.id),
        });
    }
    req.extensions_mut().insert(Current(session));
    next.call(req).await
}

async fn find(req: &HttpRequest) -> AppResult<Option<SubscriberSession>> {
    let state = req
        .app_data::<web::Data<WebState>>()
        .cloned()
        .ok_or_else(|| AppError::Internal(anyhow::anyhow!("web state missing")))?;
    let Some(token) = cookie(req, &cookie_name(&state, SESSION_COOKIE)) else {
        return Ok(None);
    };
    let token_hash = hash_token(&token);
    let mut conn = state.pool.get().await?;
    let Some(session) = user_sessions::touch_live(&mut conn, &token_hash, SESSION_IDLE).await?
    else {
        return Ok(None);
    };
    // A banned subscriber is signed out, as the bot stops answering them.
    let Some(user) = users::find(&mut conn, session.user_id)
        .await?
        .filter(|u| !u.banned)
    else {
        return Ok(None);
    };
    Ok(Some(SubscriberSession {
        user,
        csrf: session.csrf_token,
        token_hash,
    }))
}

/// The live session of a request, if any.
pub fn current(req: &HttpRequest) -> Option<SubscriberSession> {
    req.extensions().get::<Current>().and_then(|c| c.0.clone())
}

/// A signed-in subscriber: the sign-in page without a session (401, which the page guard turns
/// into a redirect). Ready at once, so as a handler's first argument it answers before a form
/// is read.
pub struct Subscriber(pub SubscriberSession);

impl std::ops::Deref for Subscriber {
    type Target = SubscriberSession;
    fn deref(&self) -> &SubscriberSession {
        &self.0
    }
}

impl FromRequest for Subscriber {
    type Error = AppError;
    type Future = Ready<AppResult<Self>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(
            current(req)
                .map(Subscriber)
                .ok_or_else(|| AppError::Unauthorized("sign in to the cabinet".into())),
        )
    }
}
