//! Admin endpoints of admin accounts, logout and password, audit log, notifications, panel syncs and statistics (`/admins`, `/auth/logout`, `/me/password`, `/audit`, `/notifications`, `/sync`, `/stats`).
//!
//! One submodule per concern: `accounts` (admin accounts), `session` (logout, own password),
//! `history` (audit log, notification deliveries), `panel` (sync runs, syncs on demand, panel
//! stats), `stats` (the business overview).

mod accounts;
mod history;
mod panel;
mod session;
mod stats;

use actix_web::{HttpRequest, web};
use chrono::{DateTime, Utc};
use utoipa::OpenApi;

use crate::error::{AppError, AppResult};

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

/// The client's address, for the audit log.
fn remote(req: &HttpRequest) -> Option<String> {
    req.peer_addr().map(|a| a.ip().to_string())
}

/// An RFC 3339 instant of a query parameter (`2026-11-27T10:00:00Z`, `…+03:00`). A `+` that
/// was not percent-encoded arrives as a space; it is read as the `+` it was meant to be.
fn parse_instant(field: &str, value: &str) -> AppResult<DateTime<Utc>> {
    let value = value.trim();
    DateTime::parse_from_rfc3339(value)
        .or_else(|e| match value.rsplit_once(' ') {
            Some((time, offset)) => DateTime::parse_from_rfc3339(&format!("{time}+{offset}")),
            None => Err(e),
        })
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| {
            AppError::validation(
                field,
                format!("'{value}' is not an RFC 3339 date-time like 2026-11-27T10:00:00Z ({e})"),
            )
        })
}

/// A listing's period: from (inclusive), to (exclusive); either end may be open.
type TimeRange = (Option<DateTime<Utc>>, Option<DateTime<Utc>>);

/// The `from` and `to` query parameters of a listing.
fn time_range(from: Option<&str>, to: Option<&str>) -> AppResult<TimeRange> {
    let from = from.map(|v| parse_instant("from", v)).transpose()?;
    let to = to.map(|v| parse_instant("to", v)).transpose()?;
    if let (Some(from), Some(to)) = (from, to)
        && from >= to
    {
        return Err(AppError::validation("to", "must be later than from"));
    }
    Ok((from, to))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instants_are_rfc3339_with_any_offset() {
        let t = parse_instant("from", "2026-11-27T10:00:00+03:00").unwrap();
        assert_eq!(t.to_rfc3339(), "2026-11-27T07:00:00+00:00");
        // An unencoded `+` in a query string decodes to a space.
        assert_eq!(
            parse_instant("from", "2026-11-27T10:00:00 03:00").unwrap(),
            t
        );
        assert_eq!(
            parse_instant("to", "2026-11-27T07:00:00Z").unwrap(),
            t,
            "Z is UTC"
        );
        for bad in ["", "2026-11-27", "yesterday", "2026-13-01T00:00:00Z"] {
            match parse_instant("from", bad) {
                Err(AppError::Validation { field, .. }) => assert_eq!(field, "from"),
                other => panic!("{bad:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn a_range_must_not_be_empty_or_reversed() {
        assert!(time_range(None, None).unwrap() == (None, None));
        assert!(time_range(Some("2026-01-01T00:00:00Z"), Some("2026-01-02T00:00:00Z")).is_ok());
        match time_range(Some("2026-01-02T00:00:00Z"), Some("2026-01-01T00:00:00Z")) {
            Err(AppError::Validation { field, .. }) => assert_eq!(field, "to"),
            other => panic!("{other:?}"),
        }
    }
}
