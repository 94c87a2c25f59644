//! Admin endpoints of users, their subscriptions and panel accounts (`/users`, `/subscriptions`).

use actix_web::web;
use utoipa::OpenApi;

/// The routes of this module, under `/api/v1`.
pub fn routes(_cfg: &mut web::ServiceConfig) {}

/// This module's part of the OpenAPI document.
#[derive(OpenApi)]
#[openapi()]
pub struct Api;
