//! Settings of the Remnawave connection (`PANEL_KIND=remnawave`).

use reqwest::Url;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};

use super::parse::{parse_base_url, parse_int};
use super::{ConfigError, Reader, Secret};

#[derive(Debug, Clone)]
pub struct RemnawaveSettings {
    pub url: Url,
    /// An API token made in the panel's "API Tokens" page (admin logins are refused on the API).
    pub token: Secret,
    /// Internal squads of new users (at least one: a user without squads cannot connect).
    pub squads: Vec<uuid::Uuid>,
    /// Headers sent on every call, for a proxy that guards the panel (`X-Api-Key`, a cookie).
    pub extra_headers: ExtraHeaders,
    /// `hwidDeviceLimit` of new users; `None`: the panel's fallback limit.
    pub device_limit: Option<u32>,
    /// The panel's `WEBHOOK_SECRET_HEADER`: when set, `POST /webhooks/panel` takes its signed
    /// user events.
    pub webhook_secret: Option<Secret>,
}

/// Parsed once at start; `Debug` does not show the values (they are often credentials).
#[derive(Clone, Default)]
pub struct ExtraHeaders(pub HeaderMap);

impl std::fmt::Debug for ExtraHeaders {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.0.keys().map(|k| format!("{k}: ***")))
            .finish()
    }
}

/// `None` without `REMNAWAVE_URL`.
pub(super) fn read(r: &Reader<'_>) -> Result<Option<RemnawaveSettings>, ConfigError> {
    let Some(url) = r.optional("REMNAWAVE_URL", parse_base_url)? else {
        return Ok(None);
    };
    Ok(Some(RemnawaveSettings {
        token: r.required_because(
            "REMNAWAVE_TOKEN",
            "required when REMNAWAVE_URL is set (an API token from the panel's API Tokens page)",
            |v| Ok(Secret::new(v)),
        )?,
        squads: r.required_because(
            "REMNAWAVE_SQUADS",
            "required when REMNAWAVE_URL is set (a user without internal squads cannot connect)",
            parse_squads,
        )?,
        extra_headers: r
            .optional("REMNAWAVE_EXTRA_HEADERS", parse_extra_headers)?
            .unwrap_or_default(),
        device_limit: r.optional("REMNAWAVE_DEVICE_LIMIT", |v| parse_int(v, 0, 1000))?,
        webhook_secret: r.optional("REMNAWAVE_WEBHOOK_SECRET", parse_webhook_secret)?,
        url,
    }))
}

/// `uuid` or `uuid,uuid`: the internal squads of `GET /api/internal-squads`.
fn parse_squads(value: &str) -> Result<Vec<uuid::Uuid>, String> {
    let squads = value
        .split(',')
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(|v| {
            uuid::Uuid::parse_str(v)
                .map_err(|_| format!("`{v}` is not a squad uuid (see GET /api/internal-squads)"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    if squads.is_empty() {
        return Err("at least one internal squad is needed".into());
    }
    Ok(squads)
}

/// As the panel requires of `WEBHOOK_SECRET_HEADER`: at least 32 of `a-zA-Z0-9`.
fn parse_webhook_secret(value: &str) -> Result<Secret, String> {
    if value.len() >= 32 && value.bytes().all(|b| b.is_ascii_alphanumeric()) {
        Ok(Secret::new(value))
    } else {
        Err("use the panel's WEBHOOK_SECRET_HEADER: at least 32 letters and digits".into())
    }
}

/// Headers the adapter sets itself; another value would break the calls.
const OWN_HEADERS: [&str; 4] = ["authorization", "content-type", "content-length", "host"];

/// A JSON object of header names and values: `{"X-Api-Key": "…", "Cookie": "gate=…"}`.
fn parse_extra_headers(value: &str) -> Result<ExtraHeaders, String> {
    let object: serde_json::Map<String, serde_json::Value> = serde_json::from_str(value)
        .map_err(|_| "not a JSON object of header names and values".to_owned())?;
    let mut headers = HeaderMap::new();
    for (name, value) in object {
        let header = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| format!("`{name}` is not a header name"))?;
        if OWN_HEADERS.contains(&header.as_str()) {
            return Err(format!("`{name}` is set by the shop itself"));
        }
        let text = value
            .as_str()
            .ok_or_else(|| format!("the value of `{name}` must be a string"))?;
        let mut value = HeaderValue::from_str(text)
            .map_err(|_| format!("the value of `{name}` is not a valid header value"))?;
        value.set_sensitive(true);
        headers.insert(header, value);
    }
    Ok(ExtraHeaders(headers))
}

#[cfg(test)]
mod tests {
    use crate::config::{PanelConnection, RawConfig, Settings};

    fn settings(pairs: &[(&str, &str)]) -> Result<Settings, String> {
        let env = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string()));
        Settings::from_raw(&RawConfig::layered(None, None, env).map_err(|e| e.to_string())?)
            .map_err(|e| e.to_string())
    }

    const KIND: (&str, &str) = ("PANEL_KIND", "remnawave");
    const URL: (&str, &str) = ("REMNAWAVE_URL", "https://rw.example.com");
    const TOKEN: (&str, &str) = ("REMNAWAVE_TOKEN", "eyJhbGciOiJIUzI1NiJ9.e30.sig");
    const SQUAD: &str = "3c1e8a4b-2f6d-4e8a-9b1c-7d2e5f6a8b9c";

    #[test]
    fn a_token_squads_and_extra_headers() {
        let s = settings(&[
            KIND,
            URL,
            TOKEN,
            ("REMNAWAVE_SQUADS", SQUAD),
            (
                "REMNAWAVE_EXTRA_HEADERS",
                r#"{"X-Api-Key": "caddy-key", "Cookie": "gate=1; b=2"}"#,
            ),
            ("REMNAWAVE_DEVICE_LIMIT", "3"),
        ])
        .unwrap();
        let PanelConnection::Remnawave(rw) = s.panel.unwrap().connection else {
            panic!("not Remnawave");
        };
        assert_eq!(rw.squads.len(), 1);
        assert_eq!(rw.extra_headers.0["x-api-key"], "caddy-key");
        assert_eq!(rw.extra_headers.0["cookie"], "gate=1; b=2");
        assert_eq!(rw.device_limit, Some(3));
        assert!(!format!("{rw:?}").contains("caddy-key"), "{rw:?}");
        assert!(!format!("{rw:?}").contains("eyJ"), "{rw:?}");

        let e = settings(&[KIND, URL, ("REMNAWAVE_SQUADS", SQUAD)]).unwrap_err();
        assert!(
            e.contains("REMNAWAVE_TOKEN") && e.contains("API token"),
            "{e}"
        );
        let e = settings(&[KIND, URL, TOKEN]).unwrap_err();
        assert!(
            e.contains("REMNAWAVE_SQUADS") && e.contains("cannot connect"),
            "{e}"
        );
        for bad in ["1", "default", ","] {
            let e = settings(&[KIND, URL, TOKEN, ("REMNAWAVE_SQUADS", bad)]).unwrap_err();
            assert!(e.contains("REMNAWAVE_SQUADS"), "{bad}: {e}");
        }
        for bad in [
            "X-Api-Key: k",
            r#"{"Authorization": "Bearer x"}"#,
            r#"{"X-Api-Key": 1}"#,
            r#"{"bad name": "x"}"#,
        ] {
            let e = settings(&[
                KIND,
                URL,
                TOKEN,
                ("REMNAWAVE_SQUADS", SQUAD),
                ("REMNAWAVE_EXTRA_HEADERS", bad),
            ])
            .unwrap_err();
            assert!(e.contains("REMNAWAVE_EXTRA_HEADERS"), "{bad}: {e}");
            assert!(!e.contains(bad), "the value is masked: {e}");
        }
        assert!(settings(&[KIND]).unwrap().panel.is_none());
    }
}
