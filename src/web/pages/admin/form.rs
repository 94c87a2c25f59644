//! What the console's edit forms share: an error the admin can fix, shown on the form (with the
//! input kept) instead of an error page, and the reading of form text into the API's fields.
//! The rules and their messages stay the API's; only "is this a number" is asked here, because
//! a JSON client cannot send a number that is not one.

use chrono::{DateTime, Utc};

use crate::domain::{Currency, Money};
use crate::error::{AppError, AppResult};

/// An error shown on a form: the API's field name (`price_minor`, `names.ru`…; empty when it is
/// about no one field) and its message.
#[derive(Debug, Clone)]
pub struct FormError {
    pub field: String,
    pub message: String,
}

impl FormError {
    /// Whether the error is about `field` (the input gets `aria-invalid`).
    pub fn at(&self, field: &str) -> bool {
        self.field == field
    }
}

/// A form as the admin filled it (or as the stored row fills it), with the error to show.
#[derive(Debug, Clone)]
pub struct Filled<F> {
    pub values: F,
    pub error: Option<FormError>,
}

impl<F> Filled<F> {
    pub fn new(values: F) -> Self {
        Filled {
            values,
            error: None,
        }
    }

    /// Whether the error is about `field`.
    pub fn invalid(&self, field: &str) -> bool {
        self.error.as_ref().is_some_and(|e| e.at(field))
    }
}

/// The errors a form shows (invalid input, a conflict such as a code that exists, a provider
/// refusing); any other error goes on to the error page.
pub fn on_form(error: AppError) -> AppResult<FormError> {
    match error {
        AppError::Validation { field, message } => Ok(FormError { field, message }),
        AppError::Conflict(message) => Ok(FormError {
            field: String::new(),
            message,
        }),
        other => Err(other),
    }
}

/// A whole number given in `field`; empty is `None`.
pub fn optional_whole(field: &str, text: &str) -> AppResult<Option<i64>> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    text.parse::<i64>()
        .map(Some)
        .map_err(|_| AppError::validation(field, format!("'{text}' is not a whole number")))
}

/// A whole number given in `field`, required.
pub fn whole(field: &str, text: &str) -> AppResult<i64> {
    optional_whole(field, text)?.ok_or_else(|| AppError::validation(field, "give a whole number"))
}

/// An amount of `currency` given as a decimal ("299", "149.50") in `field`; empty is `None`.
pub fn optional_money(field: &str, text: &str, currency: Currency) -> AppResult<Option<Money>> {
    let text = text.trim().replace(',', ".");
    if text.is_empty() {
        return Ok(None);
    }
    Money::parse_decimal(&text, currency)
        .map(Some)
        .map_err(|e| AppError::validation(field, e.to_string()))
}

/// A time of a `datetime-local` input (`2026-12-01T10:30`, read as UTC), a date, or an RFC 3339
/// time, as the RFC 3339 text the API parses; empty is `None`.
pub fn rfc3339_of_input(text: &str) -> Option<String> {
    let text = text.trim();
    match text.len() {
        0 => None,
        10 => Some(format!("{text}T00:00:00Z")),
        16 => Some(format!("{text}:00Z")),
        _ => Some(text.to_owned()),
    }
}

/// A stored time as a `datetime-local` input shows it (UTC, to the minute).
pub fn input_of_time(at: Option<DateTime<Utc>>) -> String {
    at.map(|t| t.format("%Y-%m-%dT%H:%M").to_string())
        .unwrap_or_default()
}

/// An HTML checkbox: present (`on`) when ticked, absent otherwise.
pub fn ticked(value: &Option<String>) -> bool {
    value.as_deref().is_some_and(|v| !v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_text_becomes_the_api_fields() {
        assert_eq!(optional_whole("days", " 30 ").unwrap(), Some(30));
        assert_eq!(optional_whole("days", "").unwrap(), None);
        match whole("days", "thirty") {
            Err(AppError::Validation { field, message }) => {
                assert_eq!(field, "days");
                assert!(message.contains("thirty"), "{message}");
            }
            other => panic!("{other:?}"),
        }
        assert!(whole("days", " ").is_err());
        assert_eq!(
            optional_money("price_minor", "149,5", Currency::Rub).unwrap(),
            Some(Money::rub_kopecks(14_950))
        );
        assert!(optional_money("price_minor", "1.234", Currency::Rub).is_err());
        assert!(optional_money("amount_minor", "1.5", Currency::Xtr).is_err());
        assert_eq!(
            rfc3339_of_input("2026-12-01T10:30").as_deref(),
            Some("2026-12-01T10:30:00Z")
        );
        assert_eq!(
            rfc3339_of_input("2026-12-01").as_deref(),
            Some("2026-12-01T00:00:00Z")
        );
        assert_eq!(rfc3339_of_input("  "), None);
        let at = "2026-12-01T10:30:00Z".parse().ok();
        assert_eq!(input_of_time(at), "2026-12-01T10:30");
        assert!(ticked(&Some("on".into())) && !ticked(&None));
    }

    #[test]
    fn only_fixable_errors_stay_on_the_form() {
        let e = on_form(AppError::validation("days", "must be between 1 and 3650")).unwrap();
        assert!(e.at("days") && !e.at("name"));
        assert!(on_form(AppError::Conflict("exists".into())).is_ok());
        assert!(on_form(AppError::not_found("plan 1")).is_err());
    }
}
