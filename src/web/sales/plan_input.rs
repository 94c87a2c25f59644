//! What an admin sends to create or change a plan, and its checks: the default name and the
//! name and description per language, days, prices against the configured providers' minimums,
//! the traffic limit.

use std::collections::BTreeMap;

use serde::Deserialize;
use utoipa::ToSchema;

use super::{nullable, parse_variant, trimmed, yes};
use crate::db::models::Plan;
use crate::db::plans::PlanValues;
use crate::domain::pricing::{provider_currency, provider_minimum};
use crate::domain::{Currency, Language, Localized, PaymentProvider};
use crate::error::{AppError, AppResult};

/// Longest plan, in days.
const MAX_DAYS: i32 = 3650;
/// The least a plan may cost in RUB whatever the providers: 1 ₽.
const MIN_PRICE_KOPECKS: i64 = 100;
/// Longest plan name (default or per language), in characters: it heads invoices whose title
/// Telegram cuts at 32.
pub(super) const MAX_NAME_CHARS: usize = 64;
/// Longest description per language, in characters: it is the Stars invoice's description
/// (Telegram's limit: 255) and a line under the plan in the bot.
pub(super) const MAX_DESCRIPTION_CHARS: usize = 200;

/// A new plan.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewPlan {
    /// The default name, 1 to 64 characters: shown to subscribers whose language has none in
    /// `names`. May be left out when `names` is given: then the name of the first language in
    /// `names`, in the order ru, en.
    #[schema(example = "1 month")]
    pub name: Option<String>,
    /// The name per language (`ru`, `en`), 1 to 64 characters each.
    #[schema(value_type = Option<BTreeMap<String, String>>, example = json!({"ru": "1 месяц", "en": "1 month"}))]
    pub names: Option<BTreeMap<String, String>>,
    /// A short description per language (`ru`, `en`), 1 to 200 characters each; a subscriber
    /// whose language has none sees no description.
    #[schema(value_type = Option<BTreeMap<String, String>>, example = json!({"ru": "Для одного устройства", "en": "For one device"}))]
    pub descriptions: Option<BTreeMap<String, String>>,
    /// 1 to 3650.
    #[schema(example = 30)]
    pub days: i64,
    /// RUB kopecks: at least 100 (1 ₽), and at least the minimum of every configured provider
    /// (WATA: 1000 = 10 ₽).
    #[schema(example = 29900)]
    pub price_minor: i64,
    /// Price in Stars (1 or more); absent or `null`: not sold for Stars.
    pub price_stars: Option<i64>,
    /// Traffic per paid period in bytes (more than 0), the panel user's `data_limit` after a
    /// purchase (renewals start a fresh allowance); absent or `null`: unlimited.
    pub traffic_limit_bytes: Option<i64>,
    /// Display order (default 0).
    #[serde(default)]
    pub sort_order: i32,
    /// Offered in the bot (default true).
    #[serde(default = "yes")]
    pub active: bool,
}

/// Changes to a plan: only the fields given change; `null` clears `price_stars` or
/// `traffic_limit_bytes`. `names` and `descriptions` replace the plan's whole set (`{}` removes
/// them all: every subscriber then sees the default name and no description).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PlanPatch {
    /// The default name.
    pub name: Option<String>,
    #[schema(value_type = Option<BTreeMap<String, String>>)]
    pub names: Option<BTreeMap<String, String>>,
    #[schema(value_type = Option<BTreeMap<String, String>>)]
    pub descriptions: Option<BTreeMap<String, String>>,
    pub days: Option<i64>,
    pub price_minor: Option<i64>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<i64>, nullable)]
    pub price_stars: Option<Option<i64>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<i64>, nullable)]
    pub traffic_limit_bytes: Option<Option<i64>>,
    pub sort_order: Option<i32>,
    pub active: Option<bool>,
}

impl PlanPatch {
    pub(super) fn is_empty(&self) -> bool {
        self.name.is_none()
            && self.names.is_none()
            && self.descriptions.is_none()
            && self.days.is_none()
            && self.price_minor.is_none()
            && self.price_stars.is_none()
            && self.traffic_limit_bytes.is_none()
            && self.sort_order.is_none()
            && self.active.is_none()
    }

    /// The whole plan as it would be after this change.
    pub(super) fn apply(self, before: &Plan) -> NewPlan {
        NewPlan {
            name: Some(self.name.unwrap_or_else(|| before.name.clone())),
            names: Some(self.names.unwrap_or_else(|| before.names.to_map())),
            descriptions: Some(
                self.descriptions
                    .unwrap_or_else(|| before.descriptions.to_map()),
            ),
            days: self.days.unwrap_or(i64::from(before.days)),
            price_minor: self.price_minor.unwrap_or(before.price_minor),
            price_stars: self.price_stars.unwrap_or(before.price_stars),
            traffic_limit_bytes: self
                .traffic_limit_bytes
                .unwrap_or(before.traffic_limit_bytes),
            sort_order: self.sort_order.unwrap_or(before.sort_order),
            active: self.active.unwrap_or(before.active),
        }
    }
}

/// The smallest RUB price a plan may have with these providers configured.
pub(super) fn min_price_kopecks(providers: &[PaymentProvider]) -> i64 {
    providers
        .iter()
        .filter(|p| provider_currency(**p) == Currency::Rub)
        .map(|p| provider_minimum(*p).minor)
        .fold(MIN_PRICE_KOPECKS, i64::max)
}

/// Texts per language given in `field` (`names`, `descriptions`): each key a language this shop
/// speaks, each text trimmed and `1..=max` characters. Errors name `field.<language>`.
fn localized(
    field: &str,
    given: Option<BTreeMap<String, String>>,
    max: usize,
) -> AppResult<Localized> {
    let mut texts = Localized::new();
    for (code, text) in given.unwrap_or_default() {
        let at = format!("{field}.{code}");
        let language: Language = parse_variant(&at, &code)?;
        texts.insert(language, trimmed(&at, &text, 1, max)?);
    }
    Ok(texts)
}

impl NewPlan {
    /// The plan's columns, checked; `min_price` in kopecks.
    pub(super) fn check(self, min_price: i64) -> AppResult<PlanValues> {
        let names = localized("names", self.names, MAX_NAME_CHARS)?;
        let descriptions = localized("descriptions", self.descriptions, MAX_DESCRIPTION_CHARS)?;
        let name = match &self.name {
            Some(name) => trimmed("name", name, 1, MAX_NAME_CHARS)?,
            None => names
                .iter()
                .next()
                .map(|(_, name)| name.to_owned())
                .ok_or_else(|| {
                    AppError::validation("name", "give a default name, or names per language")
                })?,
        };
        let days = i32::try_from(self.days)
            .ok()
            .filter(|d| (1..=MAX_DAYS).contains(d))
            .ok_or_else(|| {
                AppError::validation("days", format!("must be between 1 and {MAX_DAYS}"))
            })?;
        if self.price_minor < min_price {
            return Err(AppError::validation(
                "price_minor",
                format!(
                    "must be at least {min_price} kopecks ({} ₽): the least the configured payment providers accept",
                    crate::domain::Money::rub_kopecks(min_price).to_decimal_string()
                ),
            ));
        }
        let min_stars = provider_minimum(PaymentProvider::Stars).minor;
        if self.price_stars.is_some_and(|s| s < min_stars) {
            return Err(AppError::validation(
                "price_stars",
                format!("must be at least {min_stars} Star, or null"),
            ));
        }
        if self.traffic_limit_bytes.is_some_and(|b| b <= 0) {
            return Err(AppError::validation(
                "traffic_limit_bytes",
                "must be more than 0, or null for unlimited traffic",
            ));
        }
        Ok(PlanValues {
            name,
            names,
            descriptions,
            days,
            price_minor: self.price_minor,
            price_stars: self.price_stars,
            traffic_limit_bytes: self.traffic_limit_bytes,
            active: self.active,
            sort_order: self.sort_order,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_minimum_price_is_the_highest_of_the_configured_rub_providers() {
        assert_eq!(min_price_kopecks(&[]), 100);
        assert_eq!(min_price_kopecks(&[PaymentProvider::Yookassa]), 100);
        assert_eq!(
            min_price_kopecks(&[PaymentProvider::Yookassa, PaymentProvider::Wata]),
            1_000
        );
        // Stars are priced separately.
        assert_eq!(min_price_kopecks(&[PaymentProvider::Stars]), 100);
    }

    fn plan(name: Option<&str>, names: &[(&str, &str)]) -> NewPlan {
        NewPlan {
            name: name.map(str::to_owned),
            names: (!names.is_empty()).then(|| {
                names
                    .iter()
                    .map(|(l, n)| ((*l).to_owned(), (*n).to_owned()))
                    .collect()
            }),
            descriptions: None,
            days: 30,
            price_minor: 29_900,
            price_stars: None,
            traffic_limit_bytes: None,
            sort_order: 0,
            active: true,
        }
    }

    fn field(r: AppResult<PlanValues>) -> String {
        match r {
            Err(AppError::Validation { field, .. }) => field,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn plan_fields_are_checked_and_errors_name_them() {
        let ok = |name: &str, days, price_minor, price_stars, traffic_limit_bytes| {
            NewPlan {
                days,
                price_minor,
                price_stars,
                traffic_limit_bytes,
                ..plan(Some(name), &[])
            }
            .check(1_000)
        };
        let v = ok(" Month ", 30, 29_900, Some(150), Some(1 << 30)).unwrap();
        assert_eq!((v.name.as_str(), v.days), ("Month", 30));
        assert!(v.names.is_empty());
        assert_eq!(field(ok("", 30, 29_900, None, None)), "name");
        assert_eq!(field(ok("x", 0, 29_900, None, None)), "days");
        assert_eq!(field(ok("x", 3651, 29_900, None, None)), "days");
        assert!(ok("x", 3650, 29_900, None, None).is_ok());
        assert_eq!(field(ok("x", 30, 999, None, None)), "price_minor");
        assert!(ok("x", 30, 1_000, None, None).is_ok());
        assert_eq!(field(ok("x", 30, 29_900, Some(0), None)), "price_stars");
        assert_eq!(
            field(ok("x", 30, 29_900, None, Some(0))),
            "traffic_limit_bytes"
        );
    }

    #[test]
    fn names_per_language_are_checked_and_give_the_default_name() {
        let v = plan(None, &[("en", " 1 month "), ("ru", "1 месяц")])
            .check(100)
            .unwrap();
        // No default given: the first language in the order ru, en.
        assert_eq!(v.name, "1 месяц");
        assert_eq!(v.names.get(Language::En), Some("1 month"));
        let v = plan(Some("Monthly"), &[("en", "1 month")])
            .check(100)
            .unwrap();
        assert_eq!(v.name, "Monthly");
        assert_eq!(field(plan(None, &[]).check(100)), "name");
        assert_eq!(
            field(plan(None, &[("de", "1 Monat")]).check(100)),
            "names.de"
        );
        assert_eq!(field(plan(None, &[("ru", "  ")]).check(100)), "names.ru");
        let long = "м".repeat(MAX_NAME_CHARS + 1);
        assert_eq!(field(plan(None, &[("ru", &long)]).check(100)), "names.ru");
        let descriptions = |d: &str| NewPlan {
            descriptions: Some([("en".to_owned(), d.to_owned())].into()),
            ..plan(Some("x"), &[])
        };
        assert_eq!(field(descriptions("").check(100)), "descriptions.en");
        let long = "d".repeat(MAX_DESCRIPTION_CHARS + 1);
        assert_eq!(field(descriptions(&long).check(100)), "descriptions.en");
        let v = descriptions(" For one device ").check(100).unwrap();
        assert_eq!(v.descriptions.get(Language::En), Some("For one device"));
    }
}
