//! Admin API accounts: list, create, change, delete.
//!
//! A change of role or password, and disabling, ends the account's tokens
//! (`admins.tokens_valid_after`, checked by `web::auth`). No one can demote, disable or delete
//! themselves, and the last active admin stays one. Every change is audit-logged without the
//! password or its hash.

use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{DateTime, Utc};
use diesel_async::AsyncConnection;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::db::PgConn;
use crate::db::admins::{self, AdminChanges};
use crate::db::audit::{self, AuditRecord};
use crate::db::models::Admin;
use crate::domain::{AdminId, AdminRole, password, roles};
use crate::error::{AppError, AppResult, ErrorBody};
use crate::web::WebState;
use crate::web::auth::{AuthenticatedAdmin, Require, role};

/// An admin account as the API shows it (never the password hash).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AdminView {
    #[schema(value_type = i64)]
    pub id: AdminId,
    #[schema(example = "alice")]
    pub username: String,
    /// `admin`, `operator` or `viewer`.
    #[schema(value_type = String, example = "operator")]
    pub role: AdminRole,
    /// A disabled account cannot log in and its tokens are refused.
    pub active: bool,
    pub last_login_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

impl From<&Admin> for AdminView {
    fn from(a: &Admin) -> Self {
        AdminView {
            id: a.id,
            username: a.username.clone(),
            role: a.role,
            active: a.active,
            last_login_at: a.last_login_at,
            created_at: a.created_at,
        }
    }
}

/// What the audit log keeps of an account.
fn audit_view(a: &Admin) -> serde_json::Value {
    serde_json::json!({"username": a.username, "role": a.role, "active": a.active})
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewAdmin {
    /// 3 to 64 characters of `a-z`, `0-9`, `_`, `.`, `-` (stored lowercased; logins are
    /// case-insensitive).
    #[schema(example = "alice")]
    pub username: String,
    /// At least 12 characters, no leading or trailing whitespace.
    #[schema(example = "a long passphrase")]
    pub password: String,
    /// `admin`, `operator` or `viewer`.
    #[schema(example = "operator")]
    pub role: String,
}

/// A change of an account; at least one field.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AdminUpdate {
    /// `admin`, `operator` or `viewer`. A different role ends the account's tokens.
    #[schema(example = "viewer")]
    pub role: Option<String>,
    /// A new password (at least 12 characters); ends the account's tokens.
    pub password: Option<String>,
    /// `false` disables the account (its tokens end); `true` enables it again.
    pub active: Option<bool>,
}

fn parse_role(text: &str) -> AppResult<AdminRole> {
    text.parse()
        .map_err(|e: crate::domain::UnknownVariant| AppError::validation("role", e.to_string()))
}

/// Argon2id on a blocking thread (it takes tens of milliseconds of CPU on purpose).
pub(super) async fn hash_password(plain: String) -> AppResult<String> {
    web::block(move || password::hash(&plain))
        .await
        .map_err(|e| AppError::Internal(anyhow::anyhow!("password hashing aborted: {e}")))?
        .map_err(|e| AppError::Internal(anyhow::anyhow!(e)))
}

/// Admin accounts, oldest first.
#[utoipa::path(
    get,
    path = "/api/v1/admins",
    tag = "admins",
    security(("bearer" = [])),
    responses(
        (status = 200, body = Vec<AdminView>),
        (status = 401, body = ErrorBody),
        (status = 403, description = "Needs the admin role", body = ErrorBody),
    )
)]
pub async fn list_admins(
    _admin: Require<role::Admin>,
    state: web::Data<WebState>,
) -> AppResult<web::Json<Vec<AdminView>>> {
    let mut conn = state.pool.get().await?;
    let accounts = admins::list(&mut conn).await?;
    Ok(web::Json(accounts.iter().map(AdminView::from).collect()))
}

fn username_taken(username: &str) -> AppError {
    AppError::Conflict(format!("an admin named '{username}' already exists"))
}

/// Create an admin account (the same rules as `vpn-shop admin create`). Audit-logged.
#[utoipa::path(
    post,
    path = "/api/v1/admins",
    tag = "admins",
    request_body = NewAdmin,
    security(("bearer" = [])),
    responses(
        (status = 201, description = "Created", body = AdminView),
        (status = 401, body = ErrorBody),
        (status = 403, description = "Needs the admin role", body = ErrorBody),
        (status = 409, description = "The username is taken", body = ErrorBody),
        (status = 422, description = "Invalid username, password or role (the field is named)", body = ErrorBody),
    )
)]
#[tracing::instrument(skip_all, fields(admin = %admin.username))]
pub async fn create_admin(
    admin: Require<role::Admin>,
    state: web::Data<WebState>,
    req: HttpRequest,
    body: web::Json<NewAdmin>,
) -> AppResult<HttpResponse> {
    let remote = crate::web::remote_addr(&req);
    let created = create(&state, &admin, remote, body.into_inner()).await?;
    Ok(HttpResponse::Created().json(AdminView::from(&created)))
}

/// Creates an admin account (the API's `POST /admins` and the console's form): the username,
/// password policy and role checked, the `admin.create` audit row in the same transaction.
pub(crate) async fn create(
    state: &WebState,
    admin: &AuthenticatedAdmin,
    remote: Option<String>,
    new: NewAdmin,
) -> AppResult<Admin> {
    let NewAdmin {
        username,
        password: plain,
        role,
    } = new;
    let username =
        roles::normalize_username(&username).map_err(|m| AppError::validation("username", m))?;
    password::check_policy(&plain).map_err(|m| AppError::validation("password", m))?;
    let role = parse_role(&role)?;
    // Spare the hashing when the answer is known; the insert below still decides.
    if admins::find_by_username(&mut *state.pool.get().await?, &username)
        .await?
        .is_some()
    {
        return Err(username_taken(&username));
    }
    let hash = hash_password(plain).await?;
    let actor = admin.actor();
    let mut conn = state.pool.get().await?;
    let created = conn
        .transaction::<_, AppError, _>(async |conn| {
            let created = admins::create(conn, &username, &hash, role)
                .await?
                .ok_or_else(|| username_taken(&username))?;
            audit::record(
                conn,
                AuditRecord {
                    admin_id: Some(admin.id),
                    actor,
                    action: "admin.create".into(),
                    target_type: Some("admin".into()),
                    target_id: Some(created.id.to_string()),
                    after: Some(audit_view(&created)),
                    remote_addr: remote,
                    ..Default::default()
                },
            )
            .await?;
            Ok(created)
        })
        .await?;
    tracing::info!(admin = %admin.username, created = %created.username, role = %created.role, "admin account created");
    Ok(created)
}

/// What a change does to the set of active admins.
enum Change {
    Update {
        role: Option<AdminRole>,
        active: Option<bool>,
    },
    Delete,
}

/// Locks the active admins and the target (in that order, see [`admins::lock_active_admins`])
/// and refuses a change that would demote, disable or delete the caller, or leave no active
/// admin. Returns the target as it was.
async fn lock_for_change(
    conn: &mut PgConn,
    caller: &AuthenticatedAdmin,
    target_id: AdminId,
    change: &Change,
) -> AppResult<Admin> {
    let active_admins = admins::lock_active_admins(conn).await?;
    if !active_admins.contains(&caller.id) {
        // Demoted or disabled a moment ago, by someone else.
        return Err(AppError::Forbidden(
            "your account is no longer an active admin".into(),
        ));
    }
    let target = admins::lock(conn, target_id)
        .await?
        .ok_or_else(|| AppError::not_found(format!("admin {target_id}")))?;
    // What the change takes away from an admin, in words; `None` when nothing.
    let takes_away = match change {
        Change::Update { role, active } => {
            let demotes = role.is_some_and(|r| r != AdminRole::Admin);
            let disables = *active == Some(false);
            match (demotes, disables) {
                (true, true) => Some("demote and disable"),
                (true, false) => Some("demote"),
                (false, true) => Some("disable"),
                (false, false) => None,
            }
        }
        Change::Delete => Some("delete"),
    };
    let Some(what) = takes_away else {
        return Ok(target);
    };
    if target.id == caller.id {
        return Err(AppError::Conflict(format!(
            "you cannot {what} your own account; another admin has to do it"
        )));
    }
    let is_active_admin = active_admins.contains(&target.id);
    if is_active_admin && active_admins.len() <= 1 {
        return Err(AppError::Conflict(format!(
            "'{}' is the last active admin and cannot be {}: make another account an active admin first",
            target.username,
            match change {
                Change::Delete => "deleted",
                Change::Update { .. } => "demoted or disabled",
            }
        )));
    }
    Ok(target)
}

/// Change an account's role, password or active flag. A new role, a new password or disabling
/// ends the account's tokens (it logs in again). Audit-logged without the password.
#[utoipa::path(
    patch,
    path = "/api/v1/admins/{id}",
    tag = "admins",
    params(("id" = i64, Path, description = "Admin id")),
    request_body = AdminUpdate,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The account as changed", body = AdminView),
        (status = 401, body = ErrorBody),
        (status = 403, description = "Needs the admin role", body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, description = "You cannot demote or disable yourself; the last active admin cannot be demoted or disabled", body = ErrorBody),
        (status = 422, description = "Invalid role or password, or nothing to change", body = ErrorBody),
    )
)]
#[tracing::instrument(skip_all, fields(admin = %admin.username, target = %id))]
pub async fn update_admin(
    admin: Require<role::Admin>,
    state: web::Data<WebState>,
    req: HttpRequest,
    id: web::Path<i64>,
    body: web::Json<AdminUpdate>,
) -> AppResult<web::Json<AdminView>> {
    let remote = crate::web::remote_addr(&req);
    let updated = update(
        &state,
        &admin,
        remote,
        AdminId(id.into_inner()),
        body.into_inner(),
    )
    .await?;
    Ok(web::Json(AdminView::from(&updated)))
}

/// Changes account `target_id` (the API's `PATCH /admins/{id}` and the console's role, password
/// and enable/disable forms): the same checks (not yourself, never the last active admin), the
/// end of its tokens and sessions where the change calls for it, the `admin.update` audit row.
pub(crate) async fn update(
    state: &WebState,
    admin: &AuthenticatedAdmin,
    remote: Option<String>,
    target_id: AdminId,
    change: AdminUpdate,
) -> AppResult<Admin> {
    let AdminUpdate {
        role,
        password: plain,
        active,
    } = change;
    if role.is_none() && plain.is_none() && active.is_none() {
        return Err(AppError::validation(
            "body",
            "nothing to change: give role, password or active",
        ));
    }
    let role = role.as_deref().map(parse_role).transpose()?;
    if let Some(plain) = &plain {
        password::check_policy(plain).map_err(|m| AppError::validation("password", m))?;
    }
    let new_hash = match plain {
        Some(plain) => Some(hash_password(plain).await?),
        None => None,
    };
    let actor = admin.actor();
    let mut conn = state.pool.get().await?;
    let updated = conn
        .transaction::<_, AppError, _>(async |conn| {
            let before =
                lock_for_change(conn, admin, target_id, &Change::Update { role, active }).await?;
            let role_changed = role.is_some_and(|r| r != before.role);
            let disabling = active == Some(false) && before.active;
            let ends_tokens = role_changed || new_hash.is_some() || disabling;
            let changes = AdminChanges {
                role,
                password_hash: new_hash.clone(),
                active,
                tokens_valid_after: ends_tokens.then(Utc::now),
            };
            let after = admins::update(conn, target_id, &changes).await?;
            let mut after_json = audit_view(&after);
            if new_hash.is_some() {
                after_json["password_changed"] = true.into();
            }
            audit::record(
                conn,
                AuditRecord {
                    admin_id: Some(admin.id),
                    actor,
                    action: "admin.update".into(),
                    target_type: Some("admin".into()),
                    target_id: Some(target_id.to_string()),
                    before: Some(audit_view(&before)),
                    after: Some(after_json),
                    remote_addr: remote,
                },
            )
            .await?;
            Ok(after)
        })
        .await?;
    tracing::info!(admin = %admin.username, target = %updated.username, role = %updated.role, active = updated.active, "admin account changed");
    Ok(updated)
}

/// Delete an account. The audit log keeps its entries under its name. Audit-logged.
#[utoipa::path(
    delete,
    path = "/api/v1/admins/{id}",
    tag = "admins",
    params(("id" = i64, Path, description = "Admin id")),
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, body = ErrorBody),
        (status = 403, description = "Needs the admin role", body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, description = "You cannot delete yourself; the last active admin cannot be deleted", body = ErrorBody),
    )
)]
#[tracing::instrument(skip_all, fields(admin = %admin.username, target = %id))]
pub async fn delete_admin(
    admin: Require<role::Admin>,
    state: web::Data<WebState>,
    req: HttpRequest,
    id: web::Path<i64>,
) -> AppResult<HttpResponse> {
    let remote = crate::web::remote_addr(&req);
    delete(&state, &admin, remote, AdminId(id.into_inner())).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Deletes account `target_id` (the API's `DELETE /admins/{id}` and the console's delete): not
/// yourself, never the last active admin; the `admin.delete` audit row. The account as it was.
pub(crate) async fn delete(
    state: &WebState,
    admin: &AuthenticatedAdmin,
    remote: Option<String>,
    target_id: AdminId,
) -> AppResult<Admin> {
    let actor = admin.actor();
    let mut conn = state.pool.get().await?;
    let deleted = conn
        .transaction::<_, AppError, _>(async |conn| {
            let before = lock_for_change(conn, admin, target_id, &Change::Delete).await?;
            admins::delete(conn, target_id).await?;
            audit::record(
                conn,
                AuditRecord {
                    admin_id: Some(admin.id),
                    actor,
                    action: "admin.delete".into(),
                    target_type: Some("admin".into()),
                    target_id: Some(target_id.to_string()),
                    before: Some(audit_view(&before)),
                    remote_addr: remote,
                    ..Default::default()
                },
            )
            .await?;
            Ok(before)
        })
        .await?;
    tracing::info!(admin = %admin.username, target = %deleted.username, "admin account deleted");
    Ok(deleted)
}
