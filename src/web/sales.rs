//! Admin endpoints of plans, promo codes, payments and refunds, referrals (`/plans`, `/promo-codes`, `/payments`, `/referrals`).

use actix_web::web;
use utoipa::OpenApi;

/// The routes of this module, under `/api/v1`.
pub fn routes(_cfg: &mut web::ServiceConfig) {}

/// This module's part of the OpenAPI document.
#[derive(OpenApi)]
#[openapi()]
pub struct Api;
