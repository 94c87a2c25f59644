//! Settings of the payment providers (YooKassa, Wata, Telegram Stars), of the shop's own payment
//! rules (auto-renewal, referral bonuses) and of the proxies whose client IPs are trusted.

use std::time::Duration;

use ipnet::IpNet;
use reqwest::Url;

use super::parse::{parse_base_url, parse_int};
use super::{ConfigError, Reader, Secret, parse_duration};

#[derive(Debug, Clone)]
pub struct YooKassaSettings {
    pub shop_id: String,
    pub secret_key: Secret,
    pub api_url: Url,
    /// Accept webhooks only from YooKassa's published address ranges.
    pub check_ip: bool,
    /// Send 54-FZ receipts (to users who gave an email).
    pub receipts: bool,
    pub vat_code: u8,
}

#[derive(Debug, Clone)]
pub struct WataSettings {
    pub token: Secret,
    pub api_url: Url,
}

#[derive(Debug, Clone)]
pub struct PaymentSettings {
    pub yookassa: Option<YooKassaSettings>,
    pub wata: Option<WataSettings>,
    /// Telegram Stars (needs the bot).
    pub stars: bool,
    /// Proxies in front of the shop whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<IpNet>,
    /// Where the payment page sends the payer back (the bot).
    pub return_url: Option<Url>,
    /// How long a payment link stays open.
    pub link_ttl: Duration,
    /// Orders still pending after this long are asked about (lost webhooks).
    pub poll_after: Duration,
    pub poll_interval: Duration,
    /// Timeout of every call to YooKassa and WATA.
    pub provider_timeout: Duration,
    /// Payment events older than this are pruned, except the accepted and mismatched ones.
    pub events_retention: Duration,
    pub auto_renew_days_before: u32,
    pub auto_renew_interval: Duration,
    /// Days the inviter gets when an invited user pays for the first time.
    pub referral_inviter_days: u32,
    /// Days a user invited through a link gets when joining.
    pub referral_invitee_days: u32,
}

pub(super) fn read(r: &Reader<'_>, bot: bool) -> Result<PaymentSettings, ConfigError> {
    let yookassa = match r.optional("YOOKASSA_SHOP_ID", parse_shop_id)? {
        None => None,
        Some(shop_id) => Some(YooKassaSettings {
            shop_id,
            secret_key: r.required_because(
                "YOOKASSA_SECRET_KEY",
                "required when YOOKASSA_SHOP_ID is set",
                |v| Ok(Secret::new(v)),
            )?,
            api_url: r.required("YOOKASSA_API_URL", parse_base_url)?,
            check_ip: r.required("YOOKASSA_CHECK_IP", parse_bool)?,
            receipts: r.required("YOOKASSA_RECEIPTS", parse_bool)?,
            vat_code: r.required("YOOKASSA_VAT_CODE", |v| parse_int(v, 1, 12))?,
        }),
    };
    let wata = match r.optional("WATA_TOKEN", |v| Ok(Secret::new(v)))? {
        None => None,
        Some(token) => Some(WataSettings {
            token,
            api_url: r.required("WATA_API_URL", parse_base_url)?,
        }),
    };
    let stars = r.required("STARS_ENABLED", parse_bool)?;
    if stars && !bot {
        let var = super::Reader::var("STARS_ENABLED");
        return Err(ConfigError::Invalid {
            var: var.name,
            value: "'true'".into(),
            problem: "Telegram Stars need the bot: set TELEGRAM_BOT_TOKEN too".into(),
            example: var.example,
        });
    }
    Ok(PaymentSettings {
        yookassa,
        wata,
        stars,
        trusted_proxies: r
            .optional("TRUSTED_PROXIES", parse_networks)?
            .unwrap_or_default(),
        return_url: r.optional("PAYMENT_RETURN_URL", parse_base_url)?,
        link_ttl: r.required("PAYMENT_LINK_TTL", |v| {
            let d = parse_duration(v)?;
            if d < Duration::from_secs(600) || d > Duration::from_secs(30 * 86_400) {
                return Err("must be between 10m and 30d (the providers' limits)".into());
            }
            Ok(d)
        })?,
        poll_after: r.required("PAYMENT_POLL_AFTER", parse_duration)?,
        poll_interval: r.required("PAYMENT_POLL_INTERVAL", parse_duration)?,
        provider_timeout: r.required("PAYMENT_PROVIDER_TIMEOUT", |v| {
            let d = parse_duration(v)?;
            if d < Duration::from_secs(1) || d > Duration::from_secs(300) {
                return Err("must be between 1s and 5m".into());
            }
            Ok(d)
        })?,
        events_retention: r.required("PAYMENT_EVENTS_RETENTION", |v| {
            let d = parse_duration(v)?;
            if d < Duration::from_secs(86_400) {
                return Err("must be at least 1d".into());
            }
            Ok(d)
        })?,
        auto_renew_days_before: r.required("AUTO_RENEW_DAYS_BEFORE", |v| parse_int(v, 1, 30))?,
        auto_renew_interval: r.required("AUTO_RENEW_INTERVAL", parse_duration)?,
        referral_inviter_days: r.required("REFERRAL_INVITER_DAYS", |v| parse_int(v, 0, 3650))?,
        referral_invitee_days: r.required("REFERRAL_INVITEE_DAYS", |v| parse_int(v, 0, 3650))?,
    })
}

fn parse_shop_id(value: &str) -> Result<String, String> {
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        Ok(value.to_owned())
    } else {
        Err("the shopId is a number, as in the YooKassa dashboard".into())
    }
}

pub(super) fn parse_bool(value: &str) -> Result<bool, String> {
    match value.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        _ => Err("must be true or false".into()),
    }
}

/// `10.0.0.0/8, 192.168.1.10, ::1`.
fn parse_networks(value: &str) -> Result<Vec<IpNet>, String> {
    value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<IpNet>()
                .or_else(|_| s.parse::<std::net::IpAddr>().map(IpNet::from))
                .map_err(|_| format!("'{s}' is not an address or a network like 10.0.0.0/8"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{RawConfig, Settings};

    fn settings(pairs: &[(&str, &str)]) -> Result<Settings, ConfigError> {
        let env = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string()));
        Settings::from_raw(&RawConfig::layered(None, None, env)?)
    }

    #[test]
    fn providers_are_off_without_credentials() {
        let p = settings(&[]).unwrap().payments;
        assert!(p.yookassa.is_none() && p.wata.is_none() && !p.stars);
        assert_eq!(p.referral_inviter_days, 30);
    }

    #[test]
    fn provider_settings() {
        let p = settings(&[
            ("YOOKASSA_SHOP_ID", "506751"),
            ("YOOKASSA_SECRET_KEY", "test_abc"),
            ("WATA_TOKEN", "jwt"),
            ("TRUSTED_PROXIES", "10.0.0.0/8, 127.0.0.1"),
        ])
        .unwrap()
        .payments;
        let y = p.yookassa.unwrap();
        assert_eq!(y.api_url.as_str(), "https://api.yookassa.ru/v3");
        assert!(y.check_ip && !y.receipts);
        assert_eq!(
            p.wata.unwrap().api_url.as_str(),
            "https://api.wata.pro/api/h2h"
        );
        assert_eq!(p.trusted_proxies.len(), 2);
        let err = settings(&[("YOOKASSA_SHOP_ID", "506751")])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("YOOKASSA_SECRET_KEY") && err.contains("required when YOOKASSA_SHOP_ID"),
            "{err}"
        );
        let err = settings(&[("STARS_ENABLED", "true")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("TELEGRAM_BOT_TOKEN"), "{err}");
        let err = settings(&[("TRUSTED_PROXIES", "proxy.local")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("TRUSTED_PROXIES"), "{err}");
        let err = settings(&[("PAYMENT_LINK_TTL", "1m")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("10m and 30d"), "{err}");
    }
}
