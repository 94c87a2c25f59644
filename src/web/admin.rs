//! Admin endpoints of admin accounts, logout and password, audit log, notifications, panel syncs and statistics (`/admins`, `/auth/logout`, `/me/password`, `/audit`, `/notifications`, `/sync`, `/stats`).

use actix_web::web;
use utoipa::OpenApi;

/// The routes of this module, under `/api/v1`.
pub fn routes(_cfg: &mut web::ServiceConfig) {}

/// This module's part of the OpenAPI document.
#[derive(OpenApi)]
#[openapi()]
pub struct Api;
