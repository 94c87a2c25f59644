//! `GET /subscriptions`: active, expiring and expired subscriptions, soonest end first.

use actix_web::web;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{UserRefView, parse_bool};
use crate::db::subscriptions::{self, ListState};
use crate::domain::pricing::days_left;
use crate::domain::{PanelUserStatus, PlanId, SubscriptionId, SubscriptionStatus};
use crate::error::{AppError, AppResult, ErrorBody};
use crate::web::WebState;
use crate::web::auth::{Require, role};
use crate::web::jobs::pagination;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SubscriptionListQuery {
    /// `active` (not disabled, not ended), `expiring` (active and ending within `within_days`)
    /// or `expired` (ended, whatever the status); all subscriptions when left out.
    pub state: Option<String>,
    /// With `state=expiring`: the window in days, 1 to 365 (default 3).
    pub within_days: Option<String>,
    /// `true`: trials only; `false`: no trials.
    pub trial: Option<String>,
    /// 1-based page number (default 1).
    pub page: Option<i64>,
    /// Items per page, 1 to 200 (default 50).
    pub per_page: Option<i64>,
}

impl SubscriptionListQuery {
    fn state(&self) -> AppResult<Option<ListState>> {
        let within_days = match self.within_days.as_deref() {
            None => None,
            Some(s) => Some(
                s.parse::<i64>()
                    .ok()
                    .filter(|d| (1..=365).contains(d))
                    .ok_or_else(|| {
                        AppError::validation("within_days", "must be between 1 and 365")
                    })?,
            ),
        };
        let state = match self.state.as_deref() {
            None => None,
            Some("active") => Some(ListState::Active),
            Some("expiring") => Some(ListState::Expiring {
                within_days: within_days.unwrap_or(3),
            }),
            Some("expired") => Some(ListState::Expired),
            Some(other) => {
                return Err(AppError::validation(
                    "state",
                    format!("'{other}' is not a state; expected one of: active, expiring, expired"),
                ));
            }
        };
        if within_days.is_some() && !matches!(state, Some(ListState::Expiring { .. })) {
            return Err(AppError::validation(
                "within_days",
                "only applies to state=expiring",
            ));
        }
        Ok(state)
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SubscriptionItem {
    #[schema(value_type = i64)]
    pub id: SubscriptionId,
    pub user: UserRefView,
    #[schema(value_type = String, example = "active")]
    pub status: SubscriptionStatus,
    pub is_trial: bool,
    #[schema(value_type = Option<i64>)]
    pub plan_id: Option<PlanId>,
    pub expires_at: DateTime<Utc>,
    /// Days of access left, a started day counted whole; 0 once ended.
    pub days_left: i64,
    pub traffic_used_bytes: i64,
    pub traffic_limit_bytes: Option<i64>,
    #[schema(value_type = Option<String>, example = "active")]
    pub panel_status: Option<PanelUserStatus>,
    pub auto_renew: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SubscriptionPage {
    pub items: Vec<SubscriptionItem>,
    pub total: i64,
    pub page: i64,
    pub per_page: i64,
}

/// Subscriptions by state, soonest end first, with their users.
#[utoipa::path(
    get,
    path = "/api/v1/subscriptions",
    tag = "users",
    params(SubscriptionListQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, body = SubscriptionPage),
        (status = 401, body = ErrorBody),
        (status = 422, description = "A bad state, window, trial or pagination (the parameter is named)", body = ErrorBody),
    )
)]
pub async fn list_subscriptions(
    _admin: Require<role::Viewer>,
    state: web::Data<WebState>,
    query: web::Query<SubscriptionListQuery>,
) -> AppResult<web::Json<SubscriptionPage>> {
    let (page, per_page) = pagination(query.page, query.per_page)?;
    let list_state = query.state()?;
    let trial = parse_bool("trial", query.trial.as_deref())?;
    let mut conn = state.pool.get().await?;
    let (rows, total) = subscriptions::list(&mut conn, list_state, trial, page, per_page).await?;
    let now = Utc::now();
    Ok(web::Json(SubscriptionPage {
        items: rows
            .into_iter()
            .map(|(s, (id, telegram_id, username))| SubscriptionItem {
                id: s.id,
                user: UserRefView {
                    id,
                    telegram_id,
                    username,
                },
                status: s.status,
                is_trial: s.is_trial,
                plan_id: s.plan_id,
                expires_at: s.expires_at,
                days_left: days_left(s.expires_at, now),
                traffic_used_bytes: s.traffic_used_bytes,
                traffic_limit_bytes: s.traffic_limit_bytes,
                panel_status: s.panel_status,
                auto_renew: s.auto_renew,
            })
            .collect(),
        total,
        page,
        per_page,
    }))
}
