//! Admin endpoints of plans, promo codes, payments and refunds, referrals (`/plans`, `/promo-codes`, `/payments`, `/referrals`).
//!
//! One submodule per resource; what they share (pages, removal answers, RFC 3339 parameters,
//! nullable PATCH fields, the audit row) is here.

pub(crate) mod payments;
pub(crate) mod plan_input;
pub(crate) mod plans;
pub(crate) mod promo_codes;
pub(crate) mod promo_input;
mod referrals;

use actix_web::{HttpRequest, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize};
use utoipa::{IntoParams, OpenApi, ToSchema};

use crate::db::PgConn;
use crate::db::audit::{self, AuditRecord};
use crate::error::{AppError, AppResult};
use crate::web::auth::AuthenticatedAdmin;

/// The routes of this module, under `/api/v1`.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/plans")
            .get(plans::list_plans)
            .post(plans::create_plan),
    )
    .service(
        web::resource("/plans/{id}")
            .get(plans::get_plan)
            .patch(plans::update_plan)
            .delete(plans::delete_plan),
    )
    .service(
        web::resource("/promo-codes")
            .get(promo_codes::list_promo_codes)
            .post(promo_codes::create_promo_code),
    )
    .service(
        web::resource("/promo-codes/{id}")
            .get(promo_codes::get_promo_code)
            .patch(promo_codes::update_promo_code)
            .delete(promo_codes::delete_promo_code),
    )
    .service(web::resource("/promo-codes/{id}/redemptions").get(promo_codes::list_redemptions))
    .service(web::resource("/payments").get(payments::list_payments))
    .service(web::resource("/payments/{id}").get(payments::get_payment))
    .service(web::resource("/payments/{id}/refund").post(payments::refund_payment))
    .service(web::resource("/referrals").get(referrals::referral_report));
}

/// This module's part of the OpenAPI document.
#[derive(OpenApi)]
#[openapi(
    paths(
        plans::list_plans,
        plans::get_plan,
        plans::create_plan,
        plans::update_plan,
        plans::delete_plan,
        promo_codes::list_promo_codes,
        promo_codes::get_promo_code,
        promo_codes::create_promo_code,
        promo_codes::update_promo_code,
        promo_codes::delete_promo_code,
        promo_codes::list_redemptions,
        payments::list_payments,
        payments::get_payment,
        payments::refund_payment,
        referrals::referral_report,
    ),
    components(schemas(
        Removal,
        plans::PlanView,
        plan_input::NewPlan,
        plan_input::PlanPatch,
        promo_codes::PromoView,
        promo_input::NewPromo,
        promo_input::PromoPatch,
        promo_codes::RedemptionView,
        payments::PaymentView,
        payments::PaymentDetail,
        payments::EventView,
        payments::RefundView,
        payments::RefundRequest,
        payments::RefundDone,
        referrals::InviterView,
        referrals::ReferralTotalsView,
        referrals::ReferralReport,
    )),
    tags(
        (name = "plans", description = "Tariff plans sold in the bot"),
        (name = "promo-codes", description = "Promo codes and their redemptions"),
        (name = "payments", description = "Orders, their provider events and refunds"),
        (name = "referrals", description = "Who invited whom, and the bonuses it gave"),
    )
)]
pub struct Api;

/// One page of a list.
#[derive(Debug, Serialize, ToSchema)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Items matching the filter, on all pages.
    pub total: i64,
    pub page: i64,
    pub per_page: i64,
}

/// `page` / `per_page` of a list without other parameters.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// 1-based page number (default 1).
    pub page: Option<i64>,
    /// Items per page, 1 to 200 (default 50).
    pub per_page: Option<i64>,
}

/// The default of boolean fields that are on unless said otherwise.
fn yes() -> bool {
    true
}

/// What `DELETE` did: `{"deleted": true}`, or `{"deactivated": true}` when the row is history
/// (referenced by orders, subscriptions or redemptions) and must stay.
#[derive(Debug, Serialize, ToSchema)]
pub struct Removal {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deleted: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deactivated: Option<bool>,
}

impl Removal {
    fn deleted() -> Self {
        Removal {
            deleted: Some(true),
            deactivated: None,
        }
    }

    fn deactivated() -> Self {
        Removal {
            deleted: None,
            deactivated: Some(true),
        }
    }
}

/// For PATCH fields that may be cleared: absent → `None` (unchanged), `null` → `Some(None)`
/// (cleared), a value → `Some(Some(v))`. Use with `#[serde(default)]`.
fn nullable<'de, T, D>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    T: Deserialize<'de>,
    D: Deserializer<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

/// An RFC 3339 time given in `field`.
fn parse_time(field: &str, text: &str) -> AppResult<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text.trim())
        .map(|t| t.to_utc())
        .map_err(|e| {
            AppError::validation(
                field,
                format!("'{text}' is not an RFC 3339 time like 2026-12-01T00:00:00Z ({e})"),
            )
        })
}

/// A variant of a text-backed enum (`PromoKind`, `PaymentStatus`…) given in `field`.
fn parse_variant<T>(field: &str, text: &str) -> AppResult<T>
where
    T: std::str::FromStr<Err = crate::domain::UnknownVariant>,
{
    text.trim()
        .parse()
        .map_err(|e: crate::domain::UnknownVariant| AppError::validation(field, e.to_string()))
}

/// A query flag given in `field`: `true` or `false`.
fn parse_flag(field: &str, text: Option<&str>) -> AppResult<Option<bool>> {
    text.map(|t| match t.trim() {
        "true" => Ok(true),
        "false" => Ok(false),
        other => Err(AppError::validation(
            field,
            format!("'{other}' is neither true nor false"),
        )),
    })
    .transpose()
}

/// A text field, trimmed, whose length in characters must be within `min..=max`.
fn trimmed(field: &str, text: &str, min: usize, max: usize) -> AppResult<String> {
    let text = text.trim();
    let len = text.chars().count();
    if len < min || len > max {
        return Err(AppError::validation(
            field,
            format!("must be {min} to {max} characters"),
        ));
    }
    Ok(text.to_owned())
}

/// Who did it and from where, for the audit rows of one request.
pub(crate) struct Auditor<'a> {
    admin: &'a AuthenticatedAdmin,
    remote_addr: Option<String>,
}

impl<'a> Auditor<'a> {
    pub(crate) fn new(admin: &'a AuthenticatedAdmin, req: &HttpRequest) -> Self {
        Auditor {
            admin,
            remote_addr: crate::web::remote_addr(req),
        }
    }

    /// One audit row, in the caller's transaction.
    async fn record(
        &self,
        conn: &mut PgConn,
        action: &str,
        target: (&str, String),
        before: Option<serde_json::Value>,
        after: Option<serde_json::Value>,
    ) -> AppResult<()> {
        audit::record(
            conn,
            AuditRecord {
                admin_id: Some(self.admin.id),
                actor: self.admin.actor(),
                action: action.to_owned(),
                target_type: Some(target.0.to_owned()),
                target_id: Some(target.1),
                before,
                after,
                remote_addr: self.remote_addr.clone(),
            },
        )
        .await
        .map_err(AppError::from)
    }
}

/// A row as JSON for the audit log.
fn json_of<T: Serialize>(value: &T) -> Option<serde_json::Value> {
    serde_json::to_value(value).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    struct Patch {
        #[serde(default, deserialize_with = "nullable")]
        limit: Option<Option<i64>>,
    }

    #[test]
    fn nullable_fields_tell_absent_from_null() {
        let absent: Patch = serde_json::from_str("{}").unwrap();
        let null: Patch = serde_json::from_str(r#"{"limit": null}"#).unwrap();
        let set: Patch = serde_json::from_str(r#"{"limit": 5}"#).unwrap();
        assert_eq!(
            (absent.limit, null.limit, set.limit),
            (None, Some(None), Some(Some(5)))
        );
    }

    /// Every path of this module is in the document, and every schema it refers to exists
    /// (generic pages included).
    #[test]
    fn the_openapi_document_is_complete() {
        let doc = serde_json::to_value(crate::web::docs::openapi()).unwrap();
        for path in [
            "/api/v1/plans",
            "/api/v1/plans/{id}",
            "/api/v1/promo-codes",
            "/api/v1/promo-codes/{id}",
            "/api/v1/promo-codes/{id}/redemptions",
            "/api/v1/payments",
            "/api/v1/payments/{id}",
            "/api/v1/payments/{id}/refund",
            "/api/v1/referrals",
        ] {
            assert!(doc["paths"][path].is_object(), "{path} is missing");
        }
        assert!(doc["paths"]["/api/v1/plans/{id}"]["delete"].is_object());
        fn refs(value: &serde_json::Value, out: &mut Vec<String>) {
            match value {
                serde_json::Value::Object(map) => {
                    for (key, v) in map {
                        match (key.as_str(), v.as_str()) {
                            ("$ref", Some(r)) => out.push(r.to_owned()),
                            _ => refs(v, out),
                        }
                    }
                }
                serde_json::Value::Array(items) => items.iter().for_each(|v| refs(v, out)),
                _ => {}
            }
        }
        let mut found = Vec::new();
        refs(&doc, &mut found);
        assert!(found.iter().any(|r| r.ends_with("/PlanView")));
        for r in found {
            let name = r.trim_start_matches("#/components/schemas/");
            assert!(
                doc["components"]["schemas"][name].is_object(),
                "{r} does not resolve"
            );
        }
    }

    #[test]
    fn times_are_rfc_3339_and_errors_name_the_field() {
        assert_eq!(
            parse_time("from", "2026-12-01T03:00:00+03:00").unwrap(),
            DateTime::parse_from_rfc3339("2026-12-01T00:00:00Z")
                .unwrap()
                .to_utc()
        );
        match parse_time("valid_until", "tomorrow") {
            Err(AppError::Validation { field, .. }) => assert_eq!(field, "valid_until"),
            other => panic!("{other:?}"),
        }
        assert_eq!(trimmed("name", "  Month ", 1, 64).unwrap(), "Month");
        assert!(trimmed("name", "   ", 1, 64).is_err());
        assert!(trimmed("name", &"я".repeat(65), 1, 64).is_err());
        assert!(trimmed("name", &"я".repeat(64), 1, 64).is_ok());
    }
}
