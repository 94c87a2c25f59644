//! Admin authentication: login with failed-login lockout, HS256 access tokens, the
//! [`authenticate`] middleware and the extractors that read its verdict: [`AuthenticatedAdmin`]
//! and the role-typed [`Require`].

use std::future::{Ready, ready};
use std::io::Write as _;
use std::marker::PhantomData;
use std::path::Path;
use std::time::Duration;

use actix_web::body::MessageBody;
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{FromRequest, HttpMessage as _, HttpRequest, HttpResponse, web};
use anyhow::Context as _;
use chrono::{DateTime, Utc};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation, errors::ErrorKind};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::config::{Secret, Settings};
use crate::db::models::Admin;
use crate::db::{PgPool, admins};
use crate::domain::{AdminId, AdminRole, password};
use crate::error::{AppError, AppResult, ErrorBody};
use crate::web::WebState;

/// Signing and verification keys of admin tokens.
#[derive(Clone)]
pub struct JwtKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    ttl: Duration,
}

impl JwtKeys {
    pub fn new(secret: &Secret, ttl: Duration) -> Self {
        JwtKeys {
            encoding: EncodingKey::from_secret(secret.expose().as_bytes()),
            decoding: DecodingKey::from_secret(secret.expose().as_bytes()),
            ttl,
        }
    }

    fn validation() -> Validation {
        let mut v = Validation::new(Algorithm::HS256);
        // Tokens are issued and checked by the same clock (one database, synced replicas).
        v.leeway = 0;
        v.set_required_spec_claims(&["exp", "iat", "sub"]);
        v
    }
}

/// The claims of an admin access token.
#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    /// Admin id.
    sub: String,
    name: String,
    role: AdminRole,
    iat: i64,
    exp: i64,
    jti: uuid::Uuid,
    /// When the token was issued, in microseconds since the epoch. `iat` has whole seconds, too
    /// coarse to tell a token issued just before a password or role change from one issued just
    /// after it (the caller logs in again at once). Absent from tokens of older versions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    iat_us: Option<i64>,
}

/// The JWT secret: `JWT_SECRET`, or one generated at first start and kept in
/// `DATA_DIR/jwt_secret` (mode 0600) so tokens survive restarts.
pub fn resolve_jwt_secret(settings: &Settings) -> anyhow::Result<Secret> {
    if let Some(secret) = &settings.jwt_secret {
        return Ok(secret.clone());
    }
    let path = settings.data_dir.join("jwt_secret");
    if path.exists() {
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        let text = text.trim();
        anyhow::ensure!(
            text.len() >= 32,
            "{} holds a JWT secret shorter than 32 characters: delete it to generate a new one, or set JWT_SECRET",
            path.display()
        );
        return Ok(Secret::new(text));
    }
    let secret = generate_secret();
    write_secret_file(&path, &secret)?;
    tracing::warn!(
        path = %path.display(),
        "JWT_SECRET is not set: generated one and stored it; set JWT_SECRET to share it between replicas"
    );
    Ok(secret)
}

fn generate_secret() -> Secret {
    let bytes: [u8; 32] = rand::random();
    Secret::new(bytes.iter().map(|b| format!("{b:02x}")).collect::<String>())
}

fn write_secret_file(path: &Path, secret: &Secret) -> anyhow::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    file.write_all(secret.expose().as_bytes())
        .and_then(|_| file.sync_all())
        .with_context(|| format!("writing {}", path.display()))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct LoginRequest {
    #[schema(example = "alice")]
    pub username: String,
    #[schema(example = "a long password")]
    pub password: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct TokenResponse {
    pub access_token: String,
    /// Always `bearer`.
    #[schema(example = "bearer")]
    pub token_type: String,
    /// Seconds until the token expires.
    pub expires_in: u64,
    #[schema(value_type = String, example = "operator")]
    pub role: AdminRole,
}

/// Log in with an admin account and get an access token.
///
/// Five failed attempts for one username within 15 minutes lock it for 15 minutes (429 with
/// `Retry-After`). Attempts are counted before the password is checked, so concurrent guesses
/// get no more than five checks.
#[utoipa::path(
    post,
    path = "/api/v1/auth/login",
    tag = "auth",
    request_body = LoginRequest,
    responses(
        (status = 200, description = "Logged in", body = TokenResponse),
        (status = 401, description = "Wrong username or password", body = ErrorBody),
        (status = 422, description = "Missing or malformed field", body = ErrorBody),
        (status = 429, description = "Locked after too many failures; see Retry-After", body = ErrorBody),
    )
)]
pub async fn login(
    state: web::Data<WebState>,
    req: HttpRequest,
    body: web::Json<LoginRequest>,
) -> AppResult<HttpResponse> {
    let LoginRequest { username, password } = body.into_inner();
    let remote = crate::web::remote_addr(&req);
    let admin = verify_login(&state.pool, &username, password, remote.as_deref()).await?;
    let now = Utc::now();
    let claims = Claims {
        sub: admin.id.to_string(),
        name: admin.username.clone(),
        role: admin.role,
        iat: now.timestamp(),
        exp: now.timestamp() + state.jwt.ttl.as_secs() as i64,
        jti: uuid::Uuid::new_v4(),
        iat_us: Some(now.timestamp_micros()),
    };
    let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &state.jwt.encoding)
        .map_err(|e| AppError::Internal(anyhow::anyhow!("signing a token failed: {e}")))?;
    tracing::info!(admin = %admin.username, role = %admin.role, remote = ?remote, "admin logged in");
    Ok(HttpResponse::Ok().json(TokenResponse {
        access_token: token,
        token_type: "bearer".into(),
        expires_in: state.jwt.ttl.as_secs(),
        role: admin.role,
    }))
}

/// Checks a username and password the way every admin login does (the API's and the web
/// console's): field limits, the failed-login lockout (five failures in 15 minutes lock the
/// username; 429), a decoy check for unknown names, disabled accounts refused. The account on
/// success, its failures cleared and its login recorded.
pub async fn verify_login(
    pool: &PgPool,
    username: &str,
    password: String,
    remote: Option<&str>,
) -> AppResult<Admin> {
    let username = username.trim().to_lowercase();
    if username.is_empty() || username.chars().count() > 64 {
        return Err(AppError::validation(
            "username",
            "must be 1 to 64 characters",
        ));
    }
    if password.is_empty() || password.chars().count() > password::MAX_PASSWORD_CHARS {
        return Err(AppError::validation(
            "password",
            format!("must be 1 to {} characters", password::MAX_PASSWORD_CHARS),
        ));
    }
    let mut conn = pool.get().await?;
    // Counted before the (slow) check, so concurrent guesses cannot all pass a lock that is
    // only written after it.
    let locks_until = match admins::reserve_attempt(&mut conn, &username).await? {
        admins::Attempt::Locked(until) => return Err(locked(until)),
        admins::Attempt::Allowed { locks_until } => locks_until,
    };
    let admin = admins::find_by_username(&mut conn, &username).await?;
    // Verify against a decoy when the account does not exist: same work, same answer time.
    let hash = admin
        .as_ref()
        .map(|a| a.password_hash.clone())
        .unwrap_or_else(|| password::decoy_hash().to_owned());
    let matches = web::block(move || password::verify(&password, &hash))
        .await
        .map_err(|e| AppError::Internal(anyhow::anyhow!("password check aborted: {e}")))?;
    let admin = match admin {
        Some(admin) if matches && admin.active => admin,
        _ => {
            tracing::warn!(username = %username, remote = ?remote, locked = locks_until.is_some(), "failed admin login");
            return Err(match locks_until {
                Some(until) => locked(until),
                None => AppError::Unauthorized("wrong username or password".into()),
            });
        }
    };
    admins::clear_failures(&mut conn, &username).await?;
    admins::record_login(&mut conn, admin.id).await?;
    Ok(admin)
}

/// 429 with `Retry-After` for a username locked until `until`.
pub(crate) fn locked(until: DateTime<Utc>) -> AppError {
    let left = (until - Utc::now())
        .to_std()
        .unwrap_or(Duration::from_secs(1));
    AppError::TooManyRequests {
        message: format!(
            "too many failed logins for this username; try again in {} minutes",
            left.as_secs().div_ceil(60).max(1)
        ),
        retry_after: left,
    }
}

/// The admin behind a valid access token. [`authenticate`] checks the signature and expiry, that
/// the account still exists and is active, that the token was not revoked and was issued after
/// the last password or role change; a handler takes it (or a [`Require`]) as its FIRST
/// argument.
#[derive(Debug, Clone)]
pub struct AuthenticatedAdmin {
    pub id: AdminId,
    pub username: String,
    pub role: AdminRole,
    pub token_id: uuid::Uuid,
    pub expires_at: DateTime<Utc>,
}

impl AuthenticatedAdmin {
    /// 403 unless this admin's role includes `required`.
    pub fn require(&self, required: AdminRole) -> AppResult<()> {
        if self.role.allows(required) {
            Ok(())
        } else {
            Err(AppError::Forbidden(format!(
                "this action needs the {required} role; you are {}",
                self.role
            )))
        }
    }

    /// How this admin appears in the audit log.
    pub fn actor(&self) -> String {
        format!("admin:{}", self.username)
    }
}

/// What [`authenticate`] found out about the request's bearer token, kept in its extensions.
#[derive(Debug, Clone)]
enum Authentication {
    Missing,
    /// Why the token is refused (answered 401 by the extractors).
    Refused(String),
    Admin(AuthenticatedAdmin),
}

/// Middleware of the `/api/v1` scope: authenticates the bearer token (the database work) before
/// the handler runs and keeps the verdict in the request's extensions. A request without a
/// valid token still goes on (the login needs none); the extractors refuse it.
///
/// Why not an async extractor: actix polls all of a handler's extractors together and answers
/// the first error any of them returns, so an extractor that waits for the database loses to a
/// `Json` or `Query` that fails at once: a viewer posting a malformed plan got 422 instead of
/// 403. Read from the extensions, the role check is ready at the first poll.
pub async fn authenticate(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let authentication = match check_token(req.request()).await {
        Ok(admin) => admin.map_or(Authentication::Missing, Authentication::Admin),
        Err(AppError::Unauthorized(why)) => Authentication::Refused(why),
        // The database could not be asked (503/500): nothing can be answered for sure.
        Err(e) => return Ok(req.error_response(e).map_into_right_body()),
    };
    req.extensions_mut().insert(authentication);
    next.call(req)
        .await
        .map(ServiceResponse::map_into_left_body)
}

/// The admin behind the request's bearer token; `Ok(None)` without one.
async fn check_token(req: &HttpRequest) -> AppResult<Option<AuthenticatedAdmin>> {
    let token = req
        .headers()
        .get(actix_web::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, token) = v.split_once(' ')?;
            scheme
                .eq_ignore_ascii_case("bearer")
                .then(|| token.trim().to_owned())
        });
    let Some(token) = token else {
        return Ok(None);
    };
    let state = req
        .app_data::<web::Data<WebState>>()
        .cloned()
        .ok_or_else(|| AppError::Internal(anyhow::anyhow!("web state missing")))?;
    let claims =
        jsonwebtoken::decode::<Claims>(&token, &state.jwt.decoding, &JwtKeys::validation())
            .map_err(|e| match e.kind() {
                ErrorKind::ExpiredSignature => {
                    AppError::Unauthorized("token expired; log in again".into())
                }
                _ => AppError::Unauthorized("invalid token".into()),
            })?
            .claims;
    let id: AdminId = claims
        .sub
        .parse()
        .map_err(|_| AppError::Unauthorized("invalid token".into()))?;
    let mut conn = state.pool.get().await?;
    let admin = admins::find(&mut conn, id)
        .await?
        .filter(|a| a.active)
        .ok_or_else(|| AppError::Unauthorized("account disabled or deleted".into()))?;
    let issued_us = claims
        .iat_us
        .unwrap_or_else(|| claims.iat.saturating_mul(1_000_000));
    if issued_us < admin.tokens_valid_after.timestamp_micros() {
        return Err(AppError::Unauthorized(
            "token no longer valid (password or role changed); log in again".into(),
        ));
    }
    if admins::is_token_revoked(&mut conn, claims.jti).await? {
        return Err(AppError::Unauthorized("token revoked; log in again".into()));
    }
    Ok(Some(AuthenticatedAdmin {
        id: admin.id,
        username: admin.username,
        role: admin.role,
        token_id: claims.jti,
        expires_at: DateTime::from_timestamp(claims.exp, 0).unwrap_or_default(),
    }))
}

/// The verdict [`authenticate`] left in the request: 401 without a valid token.
fn authenticated(req: &HttpRequest) -> AppResult<AuthenticatedAdmin> {
    match req.extensions().get::<Authentication>() {
        Some(Authentication::Admin(admin)) => Ok(admin.clone()),
        Some(Authentication::Refused(why)) => Err(AppError::Unauthorized(why.clone())),
        Some(Authentication::Missing) => Err(AppError::Unauthorized(
            "missing bearer token (Authorization: Bearer <token>)".into(),
        )),
        None => Err(AppError::Internal(anyhow::anyhow!(
            "an admin route outside the authenticate middleware"
        ))),
    }
}

/// Any authenticated admin. Ready at once (see [`authenticate`]).
impl FromRequest for AuthenticatedAdmin {
    type Error = AppError;
    type Future = Ready<AppResult<Self>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(authenticated(req))
    }
}

/// The roles as types, for [`Require`].
pub mod role {
    use crate::domain::AdminRole;

    /// A role a handler may require.
    pub trait Role {
        const ROLE: AdminRole;
    }

    /// Reads everything.
    pub struct Viewer;
    /// Also manages users, subscriptions, promo codes, broadcasts, syncs and jobs.
    pub struct Operator;
    /// May do everything.
    pub struct Admin;

    impl Role for Viewer {
        const ROLE: AdminRole = AdminRole::Viewer;
    }
    impl Role for Operator {
        const ROLE: AdminRole = AdminRole::Operator;
    }
    impl Role for Admin {
        const ROLE: AdminRole = AdminRole::Admin;
    }
}

/// An authenticated admin whose role includes `R` — 401 without a valid token, 403 with a role
/// below `R`. Ready at once (see [`authenticate`]), so as a handler's FIRST argument it answers
/// before the path, the query or the body is looked at.
pub struct Require<R: role::Role> {
    pub admin: AuthenticatedAdmin,
    role: PhantomData<R>,
}

impl<R: role::Role> std::ops::Deref for Require<R> {
    type Target = AuthenticatedAdmin;
    fn deref(&self) -> &AuthenticatedAdmin {
        &self.admin
    }
}

impl<R: role::Role> FromRequest for Require<R> {
    type Error = AppError;
    type Future = Ready<AppResult<Self>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(authenticated(req).and_then(|admin| {
            admin.require(R::ROLE)?;
            Ok(Require {
                admin,
                role: PhantomData,
            })
        }))
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct MeResponse {
    #[schema(value_type = i64)]
    pub id: AdminId,
    pub username: String,
    #[schema(value_type = String, example = "admin")]
    pub role: AdminRole,
    pub token_expires_at: DateTime<Utc>,
}

/// The account behind the token.
#[utoipa::path(
    get,
    path = "/api/v1/me",
    tag = "auth",
    security(("bearer" = [])),
    responses(
        (status = 200, body = MeResponse),
        (status = 401, description = "Missing, invalid, expired or revoked token", body = ErrorBody),
    )
)]
pub async fn me(admin: AuthenticatedAdmin) -> web::Json<MeResponse> {
    web::Json(MeResponse {
        id: admin.id,
        username: admin.username,
        role: admin.role,
        token_expires_at: admin.expires_at,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_secret_is_kept_private_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let raw = crate::config::RawConfig::layered(
            None,
            None,
            vec![("DATA_DIR".to_owned(), dir.path().display().to_string())],
        )
        .unwrap();
        let settings = Settings::from_raw(&raw).unwrap();
        let first = resolve_jwt_secret(&settings).unwrap();
        let second = resolve_jwt_secret(&settings).unwrap();
        assert_eq!(first, second);
        assert!(first.expose().len() >= 64);
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("jwt_secret"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
