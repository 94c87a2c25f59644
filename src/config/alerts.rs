//! Settings of the admin alerts: who gets them besides `ADMIN_TELEGRAM_IDS`, in which language,
//! and the thresholds of the conditions the shop watches.

use std::time::Duration;

use chrono::NaiveTime;

use super::parse::parse_int;
use super::payments::parse_bool;
use super::{ConfigError, Reader, parse_duration};
use crate::domain::Language;
use crate::domain::email::normalize_email;

#[derive(Debug, Clone)]
pub struct AlertSettings {
    /// `ADMIN_TELEGRAM_IDS`: alerts go to them through the bot.
    pub telegram: Vec<i64>,
    /// `ADMIN_EMAILS`: alerts go to them by email (with `SMTP_URL`).
    pub emails: Vec<String>,
    pub language: Language,
    /// The panel unreachable for this long is an alert.
    pub panel_down_after: Duration,
    /// Interval of `alerts_check` and of the panel's health probe.
    pub check_interval: Duration,
    /// Refused payment webhooks in 5 minutes from which someone is probing.
    pub webhook_failures: i64,
    /// A notice to the admins for every sale.
    pub notify_sales: bool,
    /// Local time (`DISPLAY_UTC_OFFSET`) of the daily digest; `None`: no digest.
    pub digest_at: Option<NaiveTime>,
}

impl AlertSettings {
    /// Whether anyone gets alerts at all.
    pub fn has_recipients(&self) -> bool {
        !self.telegram.is_empty() || !self.emails.is_empty()
    }
}

pub(super) fn read(r: &Reader<'_>, admin_ids: &[i64]) -> Result<AlertSettings, ConfigError> {
    Ok(AlertSettings {
        telegram: admin_ids.to_vec(),
        emails: r
            .optional("ADMIN_EMAILS", parse_emails)?
            .unwrap_or_default(),
        language: r.required("ADMIN_LANGUAGE", |v| {
            v.parse::<Language>().map_err(|e| e.to_string())
        })?,
        panel_down_after: r.required("ALERT_PANEL_DOWN_AFTER", parse_duration)?,
        check_interval: r.required("ALERT_CHECK_INTERVAL", parse_duration)?,
        webhook_failures: r.required("ALERT_WEBHOOK_FAILURES", |v| parse_int(v, 1, 1_000_000))?,
        notify_sales: r.required("ADMIN_NOTIFY_SALES", parse_bool)?,
        digest_at: r.required("ADMIN_DIGEST_AT", parse_digest_at)?,
    })
}

/// Comma-separated addresses, each normalised as the bot does for users.
fn parse_emails(value: &str) -> Result<Vec<String>, String> {
    value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| normalize_email(s).map_err(|e| e.to_string()))
        .collect()
}

/// `HH:MM` (24 h), or `off`.
fn parse_digest_at(value: &str) -> Result<Option<NaiveTime>, String> {
    if value == "off" {
        return Ok(None);
    }
    NaiveTime::parse_from_str(value, "%H:%M")
        .map(Some)
        .map_err(|_| "must be a time of day as HH:MM (24 h), or `off`".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_time_and_addresses() {
        assert_eq!(
            parse_digest_at("09:30"),
            Ok(NaiveTime::from_hms_opt(9, 30, 0))
        );
        assert_eq!(parse_digest_at("off"), Ok(None));
        assert!(parse_digest_at("9am").is_err());
        assert_eq!(
            parse_emails("Ops@Example.com, b@example.org"),
            Ok(vec![
                "ops@example.com".to_owned(),
                "b@example.org".to_owned()
            ])
        );
        assert!(parse_emails("not-an-address").is_err());
    }
}
