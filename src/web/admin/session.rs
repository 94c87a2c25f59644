//! The caller's own session: logging out (this token) and changing one's own password (every
//! token of the account). Both are audit-logged, never with a password.

use actix_web::{HttpRequest, HttpResponse, web};
use chrono::Utc;
use diesel_async::AsyncConnection;
use serde::Deserialize;
use utoipa::ToSchema;

use super::accounts::hash_password;
use crate::db::audit::{self, AuditRecord};
use crate::db::{PgPool, admins};
use crate::domain::password;
use crate::error::{AppError, AppResult, ErrorBody};
use crate::web::WebState;
use crate::web::auth::{AuthenticatedAdmin, locked};

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordChange {
    pub current_password: String,
    /// At least 12 characters, no leading or trailing whitespace, not the current one.
    pub new_password: String,
}

async fn verify_password(plain: String, hash: String) -> AppResult<bool> {
    web::block(move || password::verify(&plain, &hash))
        .await
        .map_err(|e| AppError::Internal(anyhow::anyhow!("password check aborted: {e}")))
}

/// End the presented token: it is refused from now on (other tokens of the account stay
/// valid). Audit-logged.
#[utoipa::path(
    post,
    path = "/api/v1/auth/logout",
    tag = "auth",
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Logged out"),
        (status = 401, body = ErrorBody),
    )
)]
#[tracing::instrument(skip_all, fields(admin = %admin.username))]
pub async fn logout(
    // First: refused (401) before the body is read.
    admin: AuthenticatedAdmin,
    state: web::Data<WebState>,
    req: HttpRequest,
) -> AppResult<HttpResponse> {
    let remote = crate::web::remote_addr(&req);
    let mut conn = state.pool.get().await?;
    conn.transaction::<_, AppError, _>(async |conn| {
        admins::revoke_token(conn, admin.token_id, admin.id, admin.expires_at).await?;
        audit_logout(conn, &admin, remote).await
    })
    .await?;
    tracing::info!("admin logged out");
    Ok(HttpResponse::NoContent().finish())
}

/// The audit row of a logout, from the API or the web console (in the logout's transaction).
pub(crate) async fn audit_logout(
    conn: &mut crate::db::PgConn,
    admin: &AuthenticatedAdmin,
    remote: Option<String>,
) -> AppResult<()> {
    audit::record(
        conn,
        AuditRecord {
            admin_id: Some(admin.id),
            actor: admin.actor(),
            action: "auth.logout".into(),
            target_type: Some("admin".into()),
            target_id: Some(admin.id.to_string()),
            remote_addr: remote,
            ..Default::default()
        },
    )
    .await?;
    Ok(())
}

/// Checks `plain` against the account's current password, counting a wrong one as a failed
/// login of the username (five lock it for 15 minutes, as for `POST /auth/login`). Returns
/// the hash it was checked against.
async fn check_current_password(
    pool: &PgPool,
    admin: &AuthenticatedAdmin,
    plain: String,
) -> AppResult<String> {
    let mut conn = pool.get().await?;
    // Counted before the slow check, as for `POST /auth/login` (see `admins::reserve_attempt`).
    let locks_until = match admins::reserve_attempt(&mut conn, &admin.username).await? {
        admins::Attempt::Locked(until) => return Err(locked(until)),
        admins::Attempt::Allowed { locks_until } => locks_until,
    };
    let account = admins::find(&mut conn, admin.id)
        .await?
        .ok_or_else(|| AppError::Unauthorized("account disabled or deleted".into()))?;
    if verify_password(plain, account.password_hash.clone()).await? {
        admins::clear_failures(&mut conn, &admin.username).await?;
        return Ok(account.password_hash);
    }
    tracing::warn!(admin = %admin.username, locked = locks_until.is_some(), "wrong current password");
    Err(match locks_until {
        Some(until) => locked(until),
        None => AppError::validation("current_password", "the current password is wrong"),
    })
}

/// Change your own password. Every token of the account ends, this one included: log in again.
/// A wrong current password counts as a failed login. Audit-logged without the passwords.
#[utoipa::path(
    post,
    path = "/api/v1/me/password",
    tag = "auth",
    request_body = PasswordChange,
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Changed; log in again"),
        (status = 401, body = ErrorBody),
        (status = 409, description = "The password was changed meanwhile by another request", body = ErrorBody),
        (status = 422, description = "Wrong current password (`current_password`) or a new one that breaks the rules (`new_password`)", body = ErrorBody),
        (status = 429, description = "Too many wrong passwords; see Retry-After", body = ErrorBody),
    )
)]
#[tracing::instrument(skip_all, fields(admin = %admin.username))]
pub async fn change_own_password(
    // First: refused (401) before the body is read.
    admin: AuthenticatedAdmin,
    state: web::Data<WebState>,
    req: HttpRequest,
    body: web::Json<PasswordChange>,
) -> AppResult<HttpResponse> {
    let PasswordChange {
        current_password,
        new_password,
    } = body.into_inner();
    if current_password.is_empty()
        || current_password.chars().count() > password::MAX_PASSWORD_CHARS
    {
        return Err(AppError::validation(
            "current_password",
            format!("must be 1 to {} characters", password::MAX_PASSWORD_CHARS),
        ));
    }
    password::check_policy(&new_password).map_err(|m| AppError::validation("new_password", m))?;
    if new_password == current_password {
        return Err(AppError::validation(
            "new_password",
            "must differ from the current password",
        ));
    }
    let old_hash = check_current_password(&state.pool, &admin, current_password).await?;
    let new_hash = hash_password(new_password).await?;
    let (actor, remote) = (admin.actor(), crate::web::remote_addr(&req));
    let mut conn = state.pool.get().await?;
    conn.transaction::<_, AppError, _>(async |conn| {
        if !admins::replace_password(conn, admin.id, &old_hash, &new_hash, Utc::now()).await? {
            return Err(AppError::Conflict(
                "your password was changed meanwhile; log in with the new one".into(),
            ));
        }
        audit::record(
            conn,
            AuditRecord {
                admin_id: Some(admin.id),
                actor,
                action: "admin.password_change".into(),
                target_type: Some("admin".into()),
                target_id: Some(admin.id.to_string()),
                remote_addr: remote,
                ..Default::default()
            },
        )
        .await?;
        Ok(())
    })
    .await?;
    tracing::info!("admin changed their password; their tokens ended");
    Ok(HttpResponse::NoContent().finish())
}
