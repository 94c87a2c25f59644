//! Settings of the Marzban panel connection (`PANEL_KIND=marzban`, the default).

use std::collections::BTreeMap;

use reqwest::Url;
use serde_json::{Map, Value};

use super::parse::parse_base_url;
use super::{ConfigError, Reader, Secret};

/// Protocols a Marzban 0.8.4 user can have.
const PROTOCOLS: [&str; 4] = ["vmess", "vless", "trojan", "shadowsocks"];

#[derive(Debug, Clone)]
pub struct MarzbanSettings {
    pub url: Url,
    pub username: String,
    pub password: Secret,
    pub subscription_base_url: Url,
    /// Protocol → proxy settings for new users (e.g. `{"vless": {"flow": ""}}`).
    pub proxies: Map<String, Value>,
    /// Protocol → inbound tags for new users; a protocol not listed gets all its inbounds.
    pub inbounds: BTreeMap<String, Vec<String>>,
}

/// `None` without `MARZBAN_URL`; then the other MARZBAN_* connection variables are not read.
pub(super) fn read(r: &Reader<'_>) -> Result<Option<MarzbanSettings>, ConfigError> {
    let Some(url) = r.optional("MARZBAN_URL", parse_base_url)? else {
        return Ok(None);
    };
    const WHY: &str = "required when MARZBAN_URL is set";
    let proxies = r.required("MARZBAN_PROXIES", parse_proxies)?;
    let inbounds = r
        .optional("MARZBAN_INBOUNDS", |v| parse_inbounds(v, &proxies))?
        .unwrap_or_default();
    Ok(Some(MarzbanSettings {
        username: r.required_because("MARZBAN_USERNAME", WHY, |v| Ok(v.to_owned()))?,
        password: r.required_because("MARZBAN_PASSWORD", WHY, |v| Ok(Secret::new(v)))?,
        subscription_base_url: r
            .optional("MARZBAN_SUBSCRIPTION_BASE_URL", parse_base_url)?
            .unwrap_or_else(|| url.clone()),
        url,
        proxies,
        inbounds,
    }))
}

fn check_protocol(protocol: &str) -> Result<(), String> {
    if PROTOCOLS.contains(&protocol) {
        Ok(())
    } else {
        Err(format!(
            "unknown protocol '{protocol}'; Marzban knows {}",
            PROTOCOLS.join(", ")
        ))
    }
}

/// `vless,trojan` or `{"vless": {"flow": "xtls-rprx-vision"}, "trojan": {}}`.
fn parse_proxies(value: &str) -> Result<Map<String, Value>, String> {
    let proxies: Map<String, Value> = if value.starts_with('{') {
        let map: Map<String, Value> =
            serde_json::from_str(value).map_err(|e| format!("not a JSON object: {e}"))?;
        for (protocol, settings) in &map {
            if !settings.is_object() {
                return Err(format!("the settings of '{protocol}' must be an object"));
            }
        }
        map
    } else {
        value
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(|p| (p.to_owned(), Value::Object(Map::new())))
            .collect()
    };
    if proxies.is_empty() {
        return Err("at least one protocol is needed".into());
    }
    proxies.keys().try_for_each(|p| check_protocol(p))?;
    Ok(proxies)
}

/// `{"vless": ["VLESS TCP REALITY"]}`; every protocol must be one of MARZBAN_PROXIES.
fn parse_inbounds(
    value: &str,
    proxies: &Map<String, Value>,
) -> Result<BTreeMap<String, Vec<String>>, String> {
    let inbounds: BTreeMap<String, Vec<String>> =
        serde_json::from_str(value).map_err(|e| format!("not a JSON object of tag lists: {e}"))?;
    for (protocol, tags) in &inbounds {
        if !proxies.contains_key(protocol) {
            return Err(format!("'{protocol}' is not one of MARZBAN_PROXIES"));
        }
        if tags.iter().any(|t| t.trim().is_empty()) {
            return Err(format!("an inbound tag of '{protocol}' is empty"));
        }
    }
    Ok(inbounds)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{CleanupAction, PanelConnection, RawConfig, Settings};
    use std::time::Duration;

    fn settings(pairs: &[(&str, &str)]) -> Result<Settings, ConfigError> {
        let env = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string()));
        Settings::from_raw(&RawConfig::layered(None, None, env)?)
    }

    const BASE: [(&str, &str); 3] = [
        ("MARZBAN_URL", "https://panel.example.com:8000"),
        ("MARZBAN_USERNAME", "admin"),
        ("MARZBAN_PASSWORD", "secret"),
    ];

    fn with(extra: &[(&'static str, &'static str)]) -> Vec<(&'static str, &'static str)> {
        BASE.iter().chain(extra).copied().collect()
    }

    #[test]
    fn off_without_url() {
        assert!(
            settings(&[("MARZBAN_USERNAME", "x")])
                .unwrap()
                .panel
                .is_none()
        );
    }

    #[test]
    fn defaults_with_url() {
        let p = settings(&BASE).unwrap().panel.unwrap();
        let PanelConnection::Marzban(m) = &p.connection else {
            panic!("not Marzban");
        };
        assert_eq!(m.subscription_base_url, m.url);
        assert_eq!(
            Value::Object(m.proxies.clone()),
            serde_json::json!({"vless": {}})
        );
        assert!(m.inbounds.is_empty());
        assert_eq!(p.username_prefix, "vpnshop_");
        assert_eq!((p.write_concurrency, p.page_size), (4, 100));
        assert_eq!(p.sync_traffic_interval, Duration::from_secs(300));
        assert_eq!(p.cleanup_action, CleanupAction::Disable);
    }

    #[test]
    fn credentials_are_required_with_the_url() {
        let err = settings(&[("MARZBAN_URL", "https://p")])
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "invalid MARZBAN_USERNAME='': required when MARZBAN_URL is set (example: MARZBAN_USERNAME=admin)"
        );
        let err = settings(&[("MARZBAN_URL", "https://p"), ("MARZBAN_USERNAME", "a")])
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("invalid MARZBAN_PASSWORD"), "{err}");
    }

    #[test]
    fn proxies_and_inbounds() {
        let m = settings(&with(&[
            (
                "MARZBAN_PROXIES",
                r#"{"vless":{"flow":"xtls-rprx-vision"},"trojan":{}}"#,
            ),
            ("MARZBAN_INBOUNDS", r#"{"vless":["VLESS TCP REALITY"]}"#),
        ]))
        .unwrap()
        .panel
        .unwrap()
        .connection;
        let PanelConnection::Marzban(m) = m else {
            panic!("not Marzban");
        };
        assert_eq!(m.proxies["vless"]["flow"], "xtls-rprx-vision");
        assert_eq!(m.inbounds["vless"], vec!["VLESS TCP REALITY"]);
        let m = settings(&with(&[("MARZBAN_PROXIES", "vless, trojan")]))
            .unwrap()
            .panel
            .unwrap()
            .connection;
        let PanelConnection::Marzban(m) = m else {
            panic!("not Marzban");
        };
        assert_eq!(
            m.proxies.keys().collect::<Vec<_>>(),
            vec!["trojan", "vless"]
        );

        for (var, value, problem) in [
            (
                "MARZBAN_PROXIES",
                "wireguard",
                "unknown protocol 'wireguard'",
            ),
            ("MARZBAN_PROXIES", ",", "at least one protocol"),
            ("MARZBAN_PROXIES", r#"{"vless": 1}"#, "must be an object"),
            (
                "MARZBAN_INBOUNDS",
                r#"{"trojan":["T"]}"#,
                "not one of MARZBAN_PROXIES",
            ),
            ("MARZBAN_INBOUNDS", "[1]", "not a JSON object"),
            ("MARZBAN_USERNAME_PREFIX", "Shop-", "a-z, 0-9 and _"),
            ("MARZBAN_USERNAME_PREFIX", "a_very_long_prefix_", "1 to 16"),
            ("MARZBAN_CLEANUP_ACTION", "archive", "`disable` or `delete`"),
        ] {
            let err = settings(&with(&[(var, value)])).unwrap_err().to_string();
            assert!(
                err.contains(var) && err.contains(problem),
                "{var}={value}: {err}"
            );
        }
    }
}
