//! `/referrals`: the inviters who brought the most users, and the programme's totals.

use actix_web::web;
use serde::Serialize;
use utoipa::ToSchema;

use super::PageQuery;
use crate::db::referrals::{self, InviterStats, ReferralTotals};
use crate::domain::UserId;
use crate::error::{AppResult, ErrorBody};
use crate::web::WebState;
use crate::web::auth::{Require, role};
use crate::web::jobs::pagination;

/// An inviter.
#[derive(Debug, Serialize, ToSchema)]
pub struct InviterView {
    #[schema(value_type = i64)]
    pub user_id: UserId,
    /// `null`: a subscriber who signed up on the web without Telegram.
    pub telegram_id: Option<i64>,
    pub username: Option<String>,
    /// Users who joined through the inviter's link.
    pub invited: i64,
    /// Of those, the ones who paid at least once (a refunded payment counts).
    pub paying_invited: i64,
    /// Days the inviter was given for invited users' first payments.
    pub bonus_days: i64,
}

impl From<InviterStats> for InviterView {
    fn from(s: InviterStats) -> Self {
        InviterView {
            user_id: s.user_id,
            telegram_id: s.telegram_id,
            username: s.username,
            invited: s.invited,
            paying_invited: s.paying_invited,
            bonus_days: s.bonus_days,
        }
    }
}

/// The referral programme as a whole.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReferralTotalsView {
    /// Users who joined through someone's link.
    pub referrals: i64,
    /// Bonuses granted: to inviters for a first payment plus to invited users for joining.
    pub bonuses_granted: i64,
    pub inviter_bonuses: i64,
    pub invitee_bonuses: i64,
    /// Days those bonuses gave, in all.
    pub days_granted: i64,
    pub inviter_days: i64,
    pub invitee_days: i64,
}

impl From<ReferralTotals> for ReferralTotalsView {
    fn from(t: ReferralTotals) -> Self {
        ReferralTotalsView {
            referrals: t.referrals,
            bonuses_granted: t.inviter_bonuses + t.invitee_bonuses,
            inviter_bonuses: t.inviter_bonuses,
            invitee_bonuses: t.invitee_bonuses,
            days_granted: t.inviter_days + t.invitee_days,
            inviter_days: t.inviter_days,
            invitee_days: t.invitee_days,
        }
    }
}

/// Top inviters (one page) and the totals.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReferralReport {
    /// Most invited users first.
    pub items: Vec<InviterView>,
    /// Inviters, on all pages.
    pub total: i64,
    pub page: i64,
    pub per_page: i64,
    pub totals: ReferralTotalsView,
}

/// The inviters who brought the most users, with how many of those paid and the bonus days
/// earned; and the totals of the programme.
#[utoipa::path(
    get,
    path = "/api/v1/referrals",
    tag = "referrals",
    params(PageQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, body = ReferralReport),
        (status = 401, body = ErrorBody),
        (status = 422, description = "Bad pagination", body = ErrorBody),
    )
)]
pub async fn referral_report(
    _admin: Require<role::Viewer>,
    state: web::Data<WebState>,
    query: web::Query<PageQuery>,
) -> AppResult<web::Json<ReferralReport>> {
    let (page, per_page) = pagination(query.page, query.per_page)?;
    let mut conn = state.pool.get().await?;
    let (items, total) = referrals::top_inviters(&mut conn, page, per_page).await?;
    let totals = referrals::totals(&mut conn).await?;
    Ok(web::Json(ReferralReport {
        items: items.into_iter().map(InviterView::from).collect(),
        total,
        page,
        per_page,
        totals: totals.into(),
    }))
}
