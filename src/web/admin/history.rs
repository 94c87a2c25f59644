//! What happened: the audit log (who changed what) and the deliveries of notifications to users,
//! both filtered and paginated, newest first.

use actix_web::web;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::db::audit::{self, ActionFilter, AuditFilter};
use crate::db::models::{AuditEntry, Notification};
use crate::db::notifications::{self, NotificationFilter};
use crate::domain::notifications::KINDS;
use crate::domain::{AdminId, NotificationChannel, NotificationStatus, UserId};
use crate::error::{AppError, AppResult, ErrorBody};
use crate::web::WebState;
use crate::web::auth::{Require, role};
use crate::web::jobs::pagination;
use crate::web::time_range;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// Entries of this admin account.
    pub admin_id: Option<i64>,
    /// One action (`admin.update`), or every action under a prefix ending in a dot (`user.`,
    /// also written `user.*`).
    pub action: Option<String>,
    /// e.g. `admin`, `user`, `job`, `broadcast`.
    pub target_type: Option<String>,
    pub target_id: Option<String>,
    /// Entries at or after this RFC 3339 instant.
    pub from: Option<String>,
    /// Entries before this RFC 3339 instant.
    pub to: Option<String>,
    /// 1-based page number (default 1).
    pub page: Option<i64>,
    /// Items per page, 1 to 200 (default 50).
    pub per_page: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AuditPage {
    pub items: Vec<AuditEntry>,
    /// Entries that match the filter, on all pages.
    pub total: i64,
    pub page: i64,
    pub per_page: i64,
}

/// `user.ban` → exact; `user.` or `user.*` → prefix `user.`.
pub(crate) fn action_filter(text: &str) -> AppResult<Option<ActionFilter>> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    if text.len() > 64 {
        return Err(AppError::validation("action", "at most 64 characters"));
    }
    let prefix = text.strip_suffix('*').unwrap_or(text);
    Ok(Some(if prefix.ends_with('.') {
        ActionFilter::Prefix(prefix.to_owned())
    } else if prefix.len() != text.len() {
        return Err(AppError::validation(
            "action",
            "a prefix ends with a dot, e.g. user. or user.*",
        ));
    } else {
        ActionFilter::Exact(text.to_owned())
    }))
}

/// The audit log, newest first.
#[utoipa::path(
    get,
    path = "/api/v1/audit",
    tag = "audit",
    params(AuditQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, body = AuditPage),
        (status = 401, body = ErrorBody),
        (status = 403, description = "Needs the admin role", body = ErrorBody),
        (status = 422, description = "Bad filter or pagination (the field is named)", body = ErrorBody),
    )
)]
pub async fn list_audit(
    _admin: Require<role::Admin>,
    state: web::Data<WebState>,
    query: web::Query<AuditQuery>,
) -> AppResult<web::Json<AuditPage>> {
    let (page, per_page) = pagination(query.page, query.per_page)?;
    let (from, to) = time_range(("from", query.from.as_deref()), ("to", query.to.as_deref()))?;
    let filter = AuditFilter {
        admin_id: query.admin_id.map(AdminId),
        action: query
            .action
            .as_deref()
            .map(action_filter)
            .transpose()?
            .flatten(),
        target_type: query.target_type.clone(),
        target_id: query.target_id.clone(),
        from,
        to,
    };
    let mut conn = state.pool.get().await?;
    let (items, total) = audit::list(&mut conn, &filter, page, per_page).await?;
    Ok(web::Json(AuditPage {
        items,
        total,
        page,
        per_page,
    }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct NotificationQuery {
    /// The notification type, e.g. `payment_succeeded`, `subscription_expiring`, `broadcast`.
    pub kind: Option<String>,
    /// `telegram` or `email`.
    pub channel: Option<String>,
    /// `pending`, `sent`, `failed` or `skipped`.
    pub status: Option<String>,
    pub user_id: Option<i64>,
    /// Deliveries created at or after this RFC 3339 instant.
    pub from: Option<String>,
    /// Deliveries created before this RFC 3339 instant.
    pub to: Option<String>,
    /// 1-based page number (default 1).
    pub page: Option<i64>,
    /// Items per page, 1 to 200 (default 50).
    pub per_page: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct NotificationPage {
    pub items: Vec<Notification>,
    /// Deliveries that match the filter, on all pages.
    pub total: i64,
    pub page: i64,
    pub per_page: i64,
}

/// Deliveries of notifications (one per notification and channel), newest first.
#[utoipa::path(
    get,
    path = "/api/v1/notifications",
    tag = "notifications",
    params(NotificationQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, body = NotificationPage),
        (status = 401, body = ErrorBody),
        (status = 422, description = "Bad filter or pagination (the field is named)", body = ErrorBody),
    )
)]
pub async fn list_notifications(
    _admin: Require<role::Viewer>,
    state: web::Data<WebState>,
    query: web::Query<NotificationQuery>,
) -> AppResult<web::Json<NotificationPage>> {
    let (page, per_page) = pagination(query.page, query.per_page)?;
    let (from, to) = time_range(("from", query.from.as_deref()), ("to", query.to.as_deref()))?;
    if let Some(kind) = &query.kind
        && !KINDS.contains(&kind.as_str())
    {
        return Err(AppError::validation(
            "kind",
            format!(
                "'{kind}' is not a notification type; expected one of: {}",
                KINDS.join(", ")
            ),
        ));
    }
    let channel = query
        .channel
        .as_deref()
        .map(str::parse::<NotificationChannel>)
        .transpose()
        .map_err(|e| AppError::validation("channel", e.to_string()))?;
    let status = query
        .status
        .as_deref()
        .map(str::parse::<NotificationStatus>)
        .transpose()
        .map_err(|e| AppError::validation("status", e.to_string()))?;
    let filter = NotificationFilter {
        kind: query.kind.clone(),
        channel,
        status,
        user_id: query.user_id.map(UserId),
        from,
        to,
    };
    let mut conn = state.pool.get().await?;
    let (items, total) = notifications::list(&mut conn, &filter, page, per_page).await?;
    Ok(web::Json(NotificationPage {
        items,
        total,
        page,
        per_page,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_are_exact_or_a_prefix_ending_in_a_dot() {
        let exact = |s: &str| Some(ActionFilter::Exact(s.into()));
        let prefix = |s: &str| Some(ActionFilter::Prefix(s.into()));
        assert_eq!(
            action_filter("admin.update").unwrap(),
            exact("admin.update")
        );
        assert_eq!(action_filter(" user. ").unwrap(), prefix("user."));
        assert_eq!(action_filter("user.*").unwrap(), prefix("user."));
        assert_eq!(action_filter("").unwrap(), None);
        assert!(action_filter("user*").is_err());
        assert!(action_filter(&"a".repeat(65)).is_err());
    }
}
