//! Settings of the PasarGuard connection (`PANEL_KIND=pasarguard`).

use reqwest::Url;

use super::parse::parse_base_url;
use super::{ConfigError, Reader, Secret};

/// How the shop signs in to PasarGuard.
#[derive(Debug, Clone)]
pub enum PasarGuardAuth {
    /// `X-Api-Key` (PasarGuard 5.1+), preferred.
    ApiKey(Secret),
    /// The admin login form (a database admin: env admins are refused in production).
    Login { username: String, password: Secret },
}

#[derive(Debug, Clone)]
pub struct PasarGuardSettings {
    pub url: Url,
    pub auth: PasarGuardAuth,
    /// Prefix of the relative subscription URLs the panel returns.
    pub subscription_base_url: Url,
    /// Groups of new users (at least one: a user without groups cannot connect).
    pub group_ids: Vec<i64>,
}

/// `None` without `PASARGUARD_URL`.
pub(super) fn read(r: &Reader<'_>) -> Result<Option<PasarGuardSettings>, ConfigError> {
    let Some(url) = r.optional("PASARGUARD_URL", parse_base_url)? else {
        return Ok(None);
    };
    const WHY: &str = "required when PASARGUARD_URL is set and PASARGUARD_API_KEY is not";
    // The key wins: with it, PASARGUARD_USERNAME and PASARGUARD_PASSWORD are not read.
    let auth = match r.optional("PASARGUARD_API_KEY", |v| Ok(Secret::new(v)))? {
        Some(key) => PasarGuardAuth::ApiKey(key),
        None => PasarGuardAuth::Login {
            username: r.required_because("PASARGUARD_USERNAME", WHY, |v| Ok(v.to_owned()))?,
            password: r.required_because("PASARGUARD_PASSWORD", WHY, |v| Ok(Secret::new(v)))?,
        },
    };
    Ok(Some(PasarGuardSettings {
        subscription_base_url: r
            .optional("PASARGUARD_SUBSCRIPTION_BASE_URL", parse_base_url)?
            .unwrap_or_else(|| url.clone()),
        group_ids: r.required_because(
            "PASARGUARD_GROUP_IDS",
            "required when PASARGUARD_URL is set (a user without groups has no access)",
            parse_group_ids,
        )?,
        url,
        auth,
    }))
}

/// `1` or `1,3`: the ids of `GET /api/groups`.
fn parse_group_ids(value: &str) -> Result<Vec<i64>, String> {
    let ids = value
        .split(',')
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(|v| {
            v.parse::<i64>()
                .ok()
                .filter(|id| *id > 0)
                .ok_or_else(|| format!("`{v}` is not a group id (a positive whole number)"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    if ids.is_empty() {
        return Err("at least one group id is needed".into());
    }
    Ok(ids)
}

#[cfg(test)]
mod tests {
    use crate::config::{PanelConnection, PasarGuardAuth, RawConfig, Settings};

    fn settings(pairs: &[(&str, &str)]) -> Result<Settings, String> {
        let env = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string()));
        Settings::from_raw(&RawConfig::layered(None, None, env).map_err(|e| e.to_string())?)
            .map_err(|e| e.to_string())
    }

    const KIND: (&str, &str) = ("PANEL_KIND", "pasarguard");
    const URL: (&str, &str) = ("PASARGUARD_URL", "https://pg.example.com");

    #[test]
    fn an_api_key_or_a_login_and_groups() {
        let s = settings(&[
            KIND,
            URL,
            ("PASARGUARD_API_KEY", "pg_key_1"),
            ("PASARGUARD_GROUP_IDS", "1, 3"),
        ])
        .unwrap();
        let PanelConnection::PasarGuard(pg) = s.panel.unwrap().connection else {
            panic!("not PasarGuard");
        };
        assert!(matches!(pg.auth, PasarGuardAuth::ApiKey(_)));
        assert_eq!(pg.group_ids, [1, 3]);
        assert_eq!(pg.subscription_base_url, pg.url);

        let e = settings(&[KIND, URL, ("PASARGUARD_GROUP_IDS", "1")]).unwrap_err();
        assert!(e.starts_with("invalid PASARGUARD_USERNAME=''"), "{e}");
        let e = settings(&[KIND, URL, ("PASARGUARD_API_KEY", "k")]).unwrap_err();
        assert!(
            e.contains("PASARGUARD_GROUP_IDS") && e.contains("no access"),
            "{e}"
        );
        for bad in ["0", "a", ","] {
            let e = settings(&[
                KIND,
                URL,
                ("PASARGUARD_API_KEY", "k"),
                ("PASARGUARD_GROUP_IDS", bad),
            ])
            .unwrap_err();
            assert!(e.contains("PASARGUARD_GROUP_IDS"), "{bad}: {e}");
        }
        let s = settings(&[
            KIND,
            URL,
            ("PASARGUARD_USERNAME", "u"),
            ("PASARGUARD_PASSWORD", "p"),
            ("PASARGUARD_GROUP_IDS", "1"),
        ])
        .unwrap();
        let PanelConnection::PasarGuard(pg) = s.panel.unwrap().connection else {
            panic!("not PasarGuard");
        };
        assert!(matches!(pg.auth, PasarGuardAuth::Login { ref username, .. } if username == "u"));
    }

    #[test]
    fn the_kind_picks_the_panel() {
        assert!(settings(&[KIND]).unwrap().panel.is_none());
        // Marzban's settings do not turn a PasarGuard shop's panel on.
        let marzban = [
            ("MARZBAN_URL", "https://m.example.com"),
            ("MARZBAN_USERNAME", "a"),
            ("MARZBAN_PASSWORD", "b"),
        ];
        assert!(
            settings(&[&[KIND][..], &marzban[..]].concat())
                .unwrap()
                .panel
                .is_none()
        );
        assert!(settings(&marzban).unwrap().panel.is_some());
        assert!(
            settings(&[("PANEL_KIND", "remnawave")])
                .unwrap()
                .panel
                .is_none()
        );
        let e = settings(&[("PANEL_KIND", "xui")]).unwrap_err();
        assert!(e.contains("`marzban`, `pasarguard` or `remnawave`"), "{e}");
    }
}
