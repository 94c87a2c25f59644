//! Admin endpoints of admin accounts, logout and password, audit log, notifications, panel syncs and statistics (`/admins`, `/auth/logout`, `/me/password`, `/audit`, `/notifications`, `/sync`, `/stats`).
//!
//! One submodule per concern: `accounts` (admin accounts), `session` (logout, own password),
//! `history` (audit log, notification deliveries), `panel` (sync runs, syncs on demand, panel
//! stats), `stats` (the business overview).

pub(crate) mod accounts;
pub(crate) mod history;
pub(crate) mod panel;
pub(crate) mod session;
pub(crate) mod stats;

use actix_web::web;
use utoipa::OpenApi;

/// The routes of this module, under `/api/v1`.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/admins")
            .get(accounts::list_admins)
            .post(accounts::create_admin),
    )
    .service(
        web::resource("/admins/{id}")
            .patch(accounts::update_admin)
            .delete(accounts::delete_admin),
    )
    .service(web::resource("/auth/logout").post(session::logout))
    .service(web::resource("/me/password").post(session::change_own_password))
    .service(web::resource("/audit").get(history::list_audit))
    .service(web::resource("/notifications").get(history::list_notifications))
    // Before `/sync/{kind}`: a resource that matches the path answers, so `runs` is never a kind.
    .service(web::resource("/sync/runs").get(panel::list_sync_runs))
    .service(web::resource("/sync/{kind}").post(panel::run_sync))
    .service(web::resource("/stats/overview").get(stats::overview))
    .service(web::resource("/stats/panel").get(panel::panel_stats));
}

/// This module's part of the OpenAPI document.
#[derive(OpenApi)]
#[openapi(
    paths(
        accounts::list_admins,
        accounts::create_admin,
        accounts::update_admin,
        accounts::delete_admin,
        session::logout,
        session::change_own_password,
        history::list_audit,
        history::list_notifications,
        panel::list_sync_runs,
        panel::run_sync,
        panel::panel_stats,
        stats::overview,
    ),
    tags(
        (name = "admins", description = "Admin accounts, logout and your own password"),
        (name = "audit", description = "Who changed what"),
        (name = "notifications", description = "Deliveries of notifications to users"),
        (name = "sync", description = "Syncs with the Marzban panel and its stats"),
        (name = "stats", description = "The shop in numbers"),
    )
)]
pub struct Api;
