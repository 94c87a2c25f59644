//! Admin endpoints of users, their subscriptions and panel accounts (`/users`, `/subscriptions`):
//! the searchable user list, a user's profile, profile changes (ban, language, email, note),
//! extending a subscription, and the panel operations (in `panel`). Mutations are audit-logged in
//! the transaction that makes them, together with the jobs they cause.

mod panel;
mod subscriptions;
mod views;

use actix_web::{HttpRequest, web};
use diesel_async::AsyncConnection;
use serde::{Deserialize, Deserializer};
use serde_json::{Map, Value, json};
use utoipa::{IntoParams, OpenApi, ToSchema};

use crate::actors::marzban::provision_job;
use crate::db::audit::{self, AuditRecord};
use crate::db::jobs;
use crate::db::models::User;
use crate::db::subscriptions as subs;
use crate::db::users::{self, ProfileChanges, Search, StatusFilter, UserFilter, UserSort};
use crate::domain::email::normalize_email;
use crate::domain::{Language, SubscriptionStatus, UserId};
use crate::error::{AppError, AppResult, ErrorBody};
use crate::web::auth::{AuthenticatedAdmin, Require, role};
use crate::web::jobs::pagination;
use crate::web::{WebState, time_range};

pub use panel::JobAccepted;
pub(crate) use panel::enqueue_panel_job;
pub use subscriptions::{SubscriptionItem, SubscriptionPage};
pub use views::{
    PaymentItem, ReferralsView, SubscriptionSummary, SubscriptionView, UserDetail, UserListItem,
    UserPage, UserProfile, UserRefView,
};

/// The routes of this module, under `/api/v1`.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/users").get(list_users))
        .service(
            web::resource("/users/{id}")
                .get(get_user)
                .patch(update_user),
        )
        .service(web::resource("/users/{id}/extend").post(extend_subscription))
        .service(web::resource("/users/{id}/reset-traffic").post(panel::reset_traffic))
        .service(web::resource("/users/{id}/revoke-link").post(panel::revoke_link))
        .service(web::resource("/users/{id}/panel").delete(panel::remove_from_panel))
        .service(web::resource("/subscriptions").get(subscriptions::list_subscriptions));
}

/// This module's part of the OpenAPI document.
#[derive(OpenApi)]
#[openapi(
    paths(
        list_users,
        get_user,
        update_user,
        extend_subscription,
        panel::reset_traffic,
        panel::revoke_link,
        panel::remove_from_panel,
        subscriptions::list_subscriptions,
    ),
    components(schemas(
        UserListItem,
        SubscriptionSummary,
        UserPage,
        UserProfile,
        SubscriptionView,
        PaymentItem,
        UserRefView,
        ReferralsView,
        UserDetail,
        UserPatch,
        ExtendRequest,
        JobAccepted,
        SubscriptionItem,
        SubscriptionPage,
    )),
    tags((name = "users", description = "Subscribers, their subscriptions and panel accounts"))
)]
pub struct Api;

/// Most payments a profile lists.
const PROFILE_PAYMENTS: i64 = 20;
/// Longest admin note.
const MAX_NOTE_CHARS: usize = 1000;
/// Most days one extension gives.
pub(crate) const MAX_EXTEND_DAYS: i64 = 3650;
/// Longest reason of an extension.
const MAX_REASON_CHARS: usize = 500;

// ---------------------------------------------------------------------------------------------
// Query parameters, parsed once at the edge.

/// A boolean query parameter: `true`/`false` (or `1`/`0`).
pub(crate) fn parse_bool(field: &str, value: Option<&str>) -> AppResult<Option<bool>> {
    match value {
        None => Ok(None),
        Some("true" | "1") => Ok(Some(true)),
        Some("false" | "0") => Ok(Some(false)),
        Some(other) => Err(AppError::validation(
            field,
            format!("'{other}' is not true or false"),
        )),
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UserListQuery {
    /// Digits: the Telegram id; `@name` or `name`: usernames starting with it (any case); text
    /// with `@` and a dot also matches the email address (any case).
    pub q: Option<String>,
    /// Subscription status: `active`, `expired`, `disabled`, or `none` (no subscription).
    pub status: Option<String>,
    /// `true`: has a succeeded payment; `false`: has none.
    pub has_paid: Option<String>,
    /// `true`: the subscription is a trial; `false`: it is not (or there is none).
    pub trial: Option<String>,
    pub banned: Option<String>,
    /// `ru` or `en`.
    pub language: Option<String>,
    /// Users created at or after this RFC 3339 time.
    pub created_from: Option<String>,
    /// Users created before this RFC 3339 time.
    pub created_to: Option<String>,
    /// `created_at`, `-created_at` (default), `telegram_id`, `-telegram_id`, `expires_at`,
    /// `-expires_at` (users without a subscription last).
    pub sort: Option<String>,
    /// 1-based page number (default 1).
    pub page: Option<i64>,
    /// Items per page, 1 to 200 (default 50).
    pub per_page: Option<i64>,
}

impl UserListQuery {
    fn filter(&self) -> AppResult<(UserFilter, UserSort)> {
        let search = match self.q.as_deref() {
            None => None,
            Some(q) if q.trim().is_empty() => None,
            Some(q) => Some(Search::parse(q).ok_or_else(|| {
                AppError::validation("q", "give a Telegram id, a username or an email address")
            })?),
        };
        let status = match self.status.as_deref() {
            None => None,
            Some("none") => Some(StatusFilter::NoSubscription),
            Some(s) => Some(StatusFilter::Is(
                s.parse::<SubscriptionStatus>()
                    .map_err(|e| AppError::validation("status", format!("{e}, none")))?,
            )),
        };
        let language = self
            .language
            .as_deref()
            .map(str::parse::<Language>)
            .transpose()
            .map_err(|e| AppError::validation("language", e.to_string()))?;
        let (created_from, created_to) = time_range(
            ("created_from", self.created_from.as_deref()),
            ("created_to", self.created_to.as_deref()),
        )?;
        let sort = match self.sort.as_deref() {
            None => UserSort::default(),
            Some(s) => UserSort::parse(s).ok_or_else(|| {
                AppError::validation(
                    "sort",
                    format!(
                        "'{s}' is not a sort; expected one of: {}",
                        UserSort::SPELLINGS.join(", ")
                    ),
                )
            })?,
        };
        Ok((
            UserFilter {
                search,
                status,
                has_paid: parse_bool("has_paid", self.has_paid.as_deref())?,
                trial: parse_bool("trial", self.trial.as_deref())?,
                banned: parse_bool("banned", self.banned.as_deref())?,
                language,
                created_from,
                created_to,
            },
            sort,
        ))
    }
}

// ---------------------------------------------------------------------------------------------
// Handlers.

/// Users, newest first by default, with search, filters and their subscription.
#[utoipa::path(
    get,
    path = "/api/v1/users",
    tag = "users",
    params(UserListQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, body = UserPage),
        (status = 401, body = ErrorBody),
        (status = 422, description = "A bad filter, sort or pagination (the parameter is named)", body = ErrorBody),
    )
)]
pub async fn list_users(
    _admin: Require<role::Viewer>,
    state: web::Data<WebState>,
    query: web::Query<UserListQuery>,
) -> AppResult<web::Json<UserPage>> {
    let (page, per_page) = pagination(query.page, query.per_page)?;
    let (filter, sort) = query.filter()?;
    let mut conn = state.pool.get().await?;
    let (rows, total) = users::list(&mut conn, &filter, sort, page, per_page).await?;
    Ok(web::Json(UserPage {
        items: rows
            .into_iter()
            .map(|(u, s)| UserListItem::new(u, s))
            .collect(),
        total,
        page,
        per_page,
    }))
}

fn user_not_found(id: UserId) -> AppError {
    AppError::not_found(format!("user {id}"))
}

/// A user's profile, subscription, latest payments and referrals.
#[utoipa::path(
    get,
    path = "/api/v1/users/{id}",
    tag = "users",
    params(("id" = i64, Path, description = "User id")),
    security(("bearer" = [])),
    responses((status = 200, body = UserDetail), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody))
)]
pub async fn get_user(
    _admin: Require<role::Viewer>,
    state: web::Data<WebState>,
    id: web::Path<i64>,
) -> AppResult<web::Json<UserDetail>> {
    let mut conn = state.pool.get().await?;
    Ok(web::Json(
        user_detail(&mut conn, UserId(id.into_inner())).await?,
    ))
}

/// A user's profile, subscription, latest payments and referrals (the API's and the console's).
pub(crate) async fn user_detail(conn: &mut crate::db::PgConn, id: UserId) -> AppResult<UserDetail> {
    let user = users::find(conn, id)
        .await?
        .ok_or_else(|| user_not_found(id))?;
    let subscription = SubscriptionView::load(conn, id).await?;
    let payments = users::recent_payments(conn, id, PROFILE_PAYMENTS)
        .await?
        .into_iter()
        .map(|p| PaymentItem {
            id: p.id,
            provider: p.provider,
            status: p.status,
            amount_minor: p.amount_minor,
            currency: p.currency,
            days: p.days,
            created_at: p.created_at,
            paid_at: p.paid_at,
        })
        .collect();
    let r = users::referral_summary(conn, id).await?;
    Ok(UserDetail {
        user: user.into(),
        subscription,
        payments,
        referrals: ReferralsView {
            invited_by: r.invited_by.map(|u| UserRefView {
                id: u.id,
                telegram_id: u.telegram_id,
                username: u.username,
            }),
            bonus_days_received: r.bonus_days_received,
            invited: r.invited,
            invited_paid: r.invited_paid,
            bonus_days_earned: r.bonus_days_earned,
        },
    })
}

/// A field that is in the body, even as `null` (`Some(None)`), unlike one that is left out.
fn present<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

/// Profile changes; fields left out stay as they are.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserPatch {
    /// Banning also disables the panel account; unbanning enables it again.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<bool>)]
    pub banned: Option<Option<bool>>,
    /// `ru` or `en`.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, example = "ru")]
    pub language: Option<Option<String>>,
    /// An address (stored lower-case), or `null` to clear it.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, nullable, example = "ivan@example.com")]
    pub email: Option<Option<String>>,
    /// At most 1000 characters, or `null` (or an empty string) to clear it.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, nullable)]
    pub note: Option<Option<String>>,
}

impl UserPatch {
    /// Reads the body: an empty one, `{}` included, asks for nothing and is refused.
    fn parse(body: &[u8]) -> AppResult<UserPatch> {
        let nothing = || {
            AppError::validation(
                "body",
                "nothing to change: give banned, language, email or note",
            )
        };
        if body.iter().all(u8::is_ascii_whitespace) {
            return Err(nothing());
        }
        let patch: UserPatch = serde_json::from_slice(body).map_err(|e| {
            if e.is_data() {
                AppError::validation("body", e.to_string())
            } else {
                AppError::BadRequest(format!("malformed JSON: {e}"))
            }
        })?;
        if patch.banned.is_none()
            && patch.language.is_none()
            && patch.email.is_none()
            && patch.note.is_none()
        {
            return Err(nothing());
        }
        Ok(patch)
    }

    /// The changes against `user`, validated, with only the fields that differ.
    fn changes(self, user: &User) -> AppResult<ProfileChanges> {
        let mut changes = ProfileChanges::default();
        match self.banned {
            None => {}
            Some(None) => return Err(AppError::validation("banned", "must be true or false")),
            Some(Some(banned)) => changes.banned = (banned != user.banned).then_some(banned),
        }
        match self.language {
            None => {}
            Some(None) => return Err(AppError::validation("language", "must be ru or en")),
            Some(Some(language)) => {
                let language = language
                    .parse::<Language>()
                    .map_err(|e| AppError::validation("language", e.to_string()))?;
                changes.language = (language != user.language).then_some(language);
            }
        }
        if let Some(email) = self.email {
            let email = email
                .map(|e| normalize_email(&e))
                .transpose()
                .map_err(|e| AppError::validation("email", e.to_string()))?;
            if email.is_none() && user.telegram_id.is_none() {
                return Err(AppError::validation(
                    "email",
                    "this subscriber has no Telegram and signs in by email: the address cannot be removed",
                ));
            }
            changes.email = (email != user.email).then_some(email);
        }
        if let Some(note) = self.note {
            let note = note.filter(|n| !n.trim().is_empty());
            if note
                .as_ref()
                .is_some_and(|n| n.chars().count() > MAX_NOTE_CHARS)
            {
                return Err(AppError::validation(
                    "note",
                    format!("at most {MAX_NOTE_CHARS} characters"),
                ));
            }
            changes.note = (note != user.note).then_some(note);
        }
        Ok(changes)
    }
}

/// The changed fields of `changes`, before and after.
fn changed_fields(before: &User, changes: &ProfileChanges) -> (Value, Value) {
    let (mut old, mut new) = (Map::new(), Map::new());
    if let Some(banned) = changes.banned {
        old.insert("banned".into(), json!(before.banned));
        new.insert("banned".into(), json!(banned));
    }
    if let Some(language) = changes.language {
        old.insert("language".into(), json!(before.language));
        new.insert("language".into(), json!(language));
    }
    if let Some(email) = &changes.email {
        old.insert("email".into(), json!(before.email));
        new.insert("email".into(), json!(email));
    }
    if let Some(note) = &changes.note {
        old.insert("note".into(), json!(before.note));
        new.insert("note".into(), json!(note));
    }
    (Value::Object(old), Value::Object(new))
}

/// Change a user's ban, language, email or note. Banning disables the subscription and
/// unbanning enables it; a `provision` job then makes the panel account match (when the user has
/// a subscription). Audit-logged with the changed fields; a body that changes nothing is answered
/// with the profile as it is.
#[utoipa::path(
    patch,
    path = "/api/v1/users/{id}",
    tag = "users",
    params(("id" = i64, Path, description = "User id")),
    request_body = UserPatch,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The profile as stored", body = UserProfile),
        (status = 401, body = ErrorBody),
        (status = 403, description = "Needs the operator role", body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 422, description = "Empty body, unknown field or invalid value (the field is named)", body = ErrorBody),
    )
)]
pub async fn update_user(
    admin: Require<role::Operator>,
    state: web::Data<WebState>,
    req: HttpRequest,
    id: web::Path<i64>,
    body: web::Bytes,
) -> AppResult<web::Json<UserProfile>> {
    let patch = UserPatch::parse(&body)?;
    let remote = crate::web::remote_addr(&req);
    let user = update_profile(&state, &admin, remote, UserId(id.into_inner()), patch).await?;
    Ok(web::Json(user.into()))
}

/// Applies `patch` to user `id` (the API's `PATCH /users/{id}` and the console's profile
/// actions): validated, audit-logged as `user.update`, a ban or unban followed by a `provision`
/// job, all in one transaction. A patch that changes nothing returns the user as it is.
pub(crate) async fn update_profile(
    state: &WebState,
    admin: &AuthenticatedAdmin,
    remote: Option<String>,
    id: UserId,
    patch: UserPatch,
) -> AppResult<User> {
    let actor = admin.actor();
    let max_attempts = state.settings.jobs.max_attempts;
    let mut conn = state.pool.get().await?;
    let user = conn
        .transaction::<_, AppError, _>(async |conn| {
            let before = users::lock(conn, id)
                .await?
                .ok_or_else(|| user_not_found(id))?;
            let changes = patch.changes(&before)?;
            let (old, new) = changed_fields(&before, &changes);
            if new.as_object().is_none_or(Map::is_empty) {
                return Ok(before);
            }
            let user = users::update_profile(conn, id, &changes).await?;
            // The subscription's status changes here, in the transaction; the panel follows
            // the database (a later unban is never undone by an earlier ban's job).
            if let Some(banned) = changes.banned
                && subs::set_enabled(conn, id, !banned).await?
            {
                jobs::enqueue(conn, provision_job(id), max_attempts).await?;
            }
            audit::record(
                conn,
                AuditRecord {
                    admin_id: Some(admin.id),
                    actor,
                    action: "user.update".into(),
                    target_type: Some("user".into()),
                    target_id: Some(id.to_string()),
                    before: Some(old),
                    after: Some(new),
                    remote_addr: remote,
                },
            )
            .await?;
            Ok(user)
        })
        .await?;
    tracing::info!(user = %id, admin = %admin.username, "user updated");
    Ok(user)
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExtendRequest {
    /// Days to add, 1 to 3650.
    #[schema(example = 7)]
    pub days: i64,
    /// Why (1 to 500 characters), kept in the audit log.
    #[schema(example = "compensation for the outage of 2026-11-20")]
    pub reason: String,
}

/// Give a user more days: added to the time left (an ended subscription restarts from now); a
/// user without a subscription gets one. The panel is brought in line by a `provision` job. A
/// banned user's subscription stays disabled until the ban is lifted. Audit-logged with the
/// expiry before and after and the reason.
#[utoipa::path(
    post,
    path = "/api/v1/users/{id}/extend",
    tag = "users",
    params(("id" = i64, Path, description = "User id")),
    request_body = ExtendRequest,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The subscription after the extension", body = SubscriptionView),
        (status = 401, body = ErrorBody),
        (status = 403, description = "Needs the operator role", body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 422, description = "days or reason out of range", body = ErrorBody),
    )
)]
pub async fn extend_subscription(
    admin: Require<role::Operator>,
    state: web::Data<WebState>,
    req: HttpRequest,
    id: web::Path<i64>,
    body: web::Json<ExtendRequest>,
) -> AppResult<web::Json<SubscriptionView>> {
    let remote = crate::web::remote_addr(&req);
    let view = extend(
        &state,
        &admin,
        remote,
        UserId(id.into_inner()),
        body.into_inner(),
    )
    .await?;
    Ok(web::Json(view))
}

/// Gives user `id` more days (the API's `POST /users/{id}/extend` and the console's extend
/// action): validated, added in a transaction with the `provision` job and the `user.extend`
/// audit row. The subscription as stored after it.
pub(crate) async fn extend(
    state: &WebState,
    admin: &AuthenticatedAdmin,
    remote: Option<String>,
    id: UserId,
    request: ExtendRequest,
) -> AppResult<SubscriptionView> {
    let ExtendRequest { days, reason } = request;
    if !(1..=MAX_EXTEND_DAYS).contains(&days) {
        return Err(AppError::validation(
            "days",
            format!("must be between 1 and {MAX_EXTEND_DAYS}"),
        ));
    }
    let reason = reason.trim().to_owned();
    if reason.is_empty() || reason.chars().count() > MAX_REASON_CHARS {
        return Err(AppError::validation(
            "reason",
            format!("must be 1 to {MAX_REASON_CHARS} characters"),
        ));
    }
    // In range by the check above.
    let days = i32::try_from(days).unwrap_or(1);
    // The same fallback as the payments: without a panel the name is kept for when one comes.
    let prefix = state.settings.panel_username_prefix();
    let actor = admin.actor();
    let max_attempts = state.settings.jobs.max_attempts;
    let mut conn = state.pool.get().await?;
    let view = conn
        .transaction::<_, AppError, _>(async |conn| {
            let user = users::find(conn, id)
                .await?
                .ok_or_else(|| user_not_found(id))?;
            let before = subs::lock_by_user(conn, id).await?.map(|s| s.expires_at);
            let name = user.panel_username(prefix);
            // A banned user's subscription gets the days and stays disabled.
            subs::extend(conn, id, &name, days, subs::Grant::Days).await?;
            jobs::enqueue(conn, provision_job(id), max_attempts).await?;
            // What is stored (microseconds), not the end computed in memory.
            let view = SubscriptionView::load(conn, id).await?.ok_or_else(|| {
                AppError::Internal(anyhow::anyhow!("the subscription of user {id} vanished"))
            })?;
            audit::record(
                conn,
                AuditRecord {
                    admin_id: Some(admin.id),
                    actor,
                    action: "user.extend".into(),
                    target_type: Some("user".into()),
                    target_id: Some(id.to_string()),
                    before: Some(json!({ "expires_at": before })),
                    after: Some(
                        json!({ "expires_at": view.expires_at, "days": days, "reason": reason }),
                    ),
                    remote_addr: remote,
                },
            )
            .await?;
            Ok(view)
        })
        .await?;
    tracing::info!(user = %id, days, admin = %admin.username, "subscription extended");
    Ok(view)
}
