//! The console's admin accounts (admin only, as `/admins` of the API): the list, a new account,
//! a change of role, password or enabled state, and delete after a confirmation. Each form
//! calls the API's function ([`create`], [`update`], [`delete`]): the same username and
//! password rules, the same refusals (not yourself, never the last active admin), the same
//! audit rows. A refusal is shown on the page with what was typed kept (but the password).

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use serde::Deserialize;

use super::Layout;
use super::ops::OpsConfirm;
use crate::db::admins;
use crate::db::models::Admin;
use crate::domain::{AdminId, AdminRole};
use crate::error::{AppError, AppResult};
use crate::web::WebState;
use crate::web::admin::accounts::{AdminUpdate, NewAdmin, create, delete, update};
use crate::web::auth::role;
use crate::web::pages::session::{Console, CsrfForm};
use crate::web::pages::{render, see_other};

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/admins").get(list).post(create_account))
        .service(web::resource("/admins/{id}/{change}").post(change));
}

#[derive(Template)]
#[template(path = "admin/admins.html")]
struct AdminsPage {
    layout: Layout,
    accounts: Vec<Admin>,
    me: AdminId,
    roles: &'static [AdminRole],
    csrf: String,
    /// What was just done (message id) and to whom.
    done: Option<(&'static str, String)>,
    /// Why the last form was refused.
    error: Option<String>,
    /// The new-account form as typed (after a refusal).
    new_username: String,
    new_role: String,
}

#[derive(Deserialize)]
struct ListQuery {
    done: Option<String>,
    who: Option<String>,
}

/// The message of `?done=`.
fn done_message(done: &str) -> Option<&'static str> {
    Some(match done {
        "created" => "admins-done-created",
        "role" => "admins-done-role",
        "active" => "admins-done-active",
        "password" => "admins-done-password",
        "deleted" => "admins-done-deleted",
        _ => return None,
    })
}

async fn page(
    state: &WebState,
    req: &HttpRequest,
    console: &Console<role::Admin>,
    status: StatusCode,
    done: Option<(&'static str, String)>,
    error: Option<String>,
    typed: (String, String),
) -> AppResult<HttpResponse> {
    let mut conn = state.pool.get().await?;
    let accounts = admins::list(&mut conn).await?;
    render(
        status,
        &AdminsPage {
            layout: Layout::of(req, console),
            accounts,
            me: console.admin.id,
            roles: AdminRole::ALL,
            csrf: console.csrf.clone(),
            done,
            error,
            new_username: typed.0,
            new_role: typed.1,
        },
    )
}

/// `GET /admin/admins`: the accounts and the forms.
async fn list(
    console: Console<role::Admin>,
    state: web::Data<WebState>,
    req: HttpRequest,
    query: web::Query<ListQuery>,
) -> AppResult<HttpResponse> {
    let done = query
        .done
        .as_deref()
        .and_then(done_message)
        .map(|m| (m, query.who.clone().unwrap_or_default()));
    page(
        &state,
        &req,
        &console,
        StatusCode::OK,
        done,
        None,
        (String::new(), AdminRole::Viewer.as_str().to_owned()),
    )
    .await
}

/// A refusal the admin can act on: shown on the page, with the status the API would answer.
fn refusal(e: AppError) -> Result<(StatusCode, String), AppError> {
    match e {
        AppError::Validation { .. } | AppError::Conflict(_) | AppError::NotFound(_) => {
            Ok((actix_web::ResponseError::status_code(&e), e.to_string()))
        }
        other => Err(other),
    }
}

#[derive(Deserialize)]
struct CreateForm {
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    role: String,
}

/// `POST /admin/admins`: a new account (the API's create).
async fn create_account(
    console: Console<role::Admin>,
    state: web::Data<WebState>,
    req: HttpRequest,
    form: CsrfForm<CreateForm>,
) -> AppResult<HttpResponse> {
    let CsrfForm(form) = form;
    let typed = (form.username.clone(), form.role.clone());
    let new = NewAdmin {
        username: form.username,
        password: form.password,
        role: form.role,
    };
    let remote = crate::web::remote_addr(&req);
    match create(&state, &console.admin, remote, new).await {
        Ok(created) => Ok(see_other(&format!(
            "/admin/admins?done=created&who={}",
            created.username
        ))),
        Err(e) => {
            let (status, message) = refusal(e)?;
            page(&state, &req, &console, status, None, Some(message), typed).await
        }
    }
}

#[derive(Deserialize)]
struct ChangeForm {
    role: Option<String>,
    password: Option<String>,
    active: Option<String>,
    confirm: Option<String>,
}

/// `POST /admin/admins/{id}/{role|password|active|delete}`: one change of an account (the API's
/// update or delete); delete asks for a confirmation first.
async fn change(
    console: Console<role::Admin>,
    state: web::Data<WebState>,
    req: HttpRequest,
    path: web::Path<(i64, String)>,
    form: CsrfForm<ChangeForm>,
) -> AppResult<HttpResponse> {
    let (id, what) = path.into_inner();
    let target = AdminId(id);
    let CsrfForm(form) = form;
    let remote = crate::web::remote_addr(&req);
    let change = match what.as_str() {
        "role" => AdminUpdate {
            role: Some(form.role.unwrap_or_default()),
            password: None,
            active: None,
        },
        "password" => AdminUpdate {
            role: None,
            password: Some(form.password.unwrap_or_default()),
            active: None,
        },
        "active" => AdminUpdate {
            role: None,
            password: None,
            active: Some(form.active.as_deref() == Some("true")),
        },
        "delete" => {
            if form.confirm.is_none() {
                let mut conn = state.pool.get().await?;
                let account = admins::find(&mut conn, target)
                    .await?
                    .ok_or_else(|| AppError::not_found(format!("admin {target}")))?;
                let layout = Layout::of(&req, &console);
                let tr = layout.tr;
                return render(
                    StatusCode::OK,
                    &OpsConfirm {
                        title: tr.t("admins-delete-title"),
                        what: tr.t("admins-delete-what"),
                        facts: vec![
                            (tr.t("login-username"), account.username.clone()),
                            (tr.t("admins-role"), tr.tk("role", account.role.as_str())),
                        ],
                        action: format!("/admin/admins/{id}/delete"),
                        hidden: Vec::new(),
                        button: tr.t("admins-delete-do"),
                        danger: true,
                        back: "/admin/admins".to_owned(),
                        csrf: console.csrf.clone(),
                        layout,
                    },
                );
            }
            return match delete(&state, &console.admin, remote, target).await {
                Ok(gone) => Ok(see_other(&format!(
                    "/admin/admins?done=deleted&who={}",
                    gone.username
                ))),
                Err(e) => {
                    let (status, message) = refusal(e)?;
                    page(&state, &req, &console, status, None, Some(message), blank()).await
                }
            };
        }
        other => return Err(AppError::not_found(format!("change {other}"))),
    };
    match update(&state, &console.admin, remote, target, change).await {
        Ok(changed) => Ok(see_other(&format!(
            "/admin/admins?done={what}&who={}",
            changed.username
        ))),
        Err(e) => {
            let (status, message) = refusal(e)?;
            page(&state, &req, &console, status, None, Some(message), blank()).await
        }
    }
}

fn blank() -> (String, String) {
    (String::new(), AdminRole::Viewer.as_str().to_owned())
}
