//! Settings of the panel: which one (`PANEL_KIND`), its connection, and what every panel shares —
//! the username prefix, the write limit, the timeout and the scheduled syncs (`PANEL_*`; their
//! old `MARZBAN_*` names are still accepted, see `vars::RENAMED`).

use std::time::Duration;

use super::marzban::{self, MarzbanSettings};
use super::parse::parse_int;
use super::pasarguard::{self, PasarGuardSettings};
use super::remnawave::{self, RemnawaveSettings};
use super::{ConfigError, Reader, parse_duration};

/// What `panel_cleanup` does to long-expired users.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CleanupAction {
    Disable,
    Delete,
}

/// `PANEL_KIND`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PanelKindSetting {
    Marzban,
    PasarGuard,
    Remnawave,
}

/// The connection to the configured panel.
#[derive(Debug, Clone)]
pub enum PanelConnection {
    Marzban(MarzbanSettings),
    PasarGuard(PasarGuardSettings),
    Remnawave(RemnawaveSettings),
}

#[derive(Debug, Clone)]
pub struct PanelSettings {
    pub connection: PanelConnection,
    pub username_prefix: String,
    pub write_concurrency: usize,
    pub timeout: Duration,
    pub page_size: u32,
    pub sync_subscriptions_interval: Duration,
    pub sync_status_interval: Duration,
    pub sync_traffic_interval: Duration,
    pub stats_interval: Duration,
    pub cleanup_interval: Duration,
    pub cleanup_after_days: u32,
    pub cleanup_action: CleanupAction,
    /// How long paid access may be missing on the panel before `paid_unprovisioned` counts it.
    pub paid_unprovisioned_after: Duration,
    pub paid_unprovisioned_interval: Duration,
}

/// `None` when the chosen panel's URL is unset; then its other variables are not read.
pub(super) fn read(r: &Reader<'_>) -> Result<Option<PanelSettings>, ConfigError> {
    let kind = r.required("PANEL_KIND", |v| match v {
        "marzban" => Ok(PanelKindSetting::Marzban),
        "pasarguard" => Ok(PanelKindSetting::PasarGuard),
        "remnawave" => Ok(PanelKindSetting::Remnawave),
        _ => Err("must be `marzban`, `pasarguard` or `remnawave`".to_owned()),
    })?;
    let connection = match kind {
        PanelKindSetting::Marzban => marzban::read(r)?.map(PanelConnection::Marzban),
        PanelKindSetting::PasarGuard => pasarguard::read(r)?.map(PanelConnection::PasarGuard),
        PanelKindSetting::Remnawave => remnawave::read(r)?.map(PanelConnection::Remnawave),
    };
    let Some(connection) = connection else {
        return Ok(None);
    };
    Ok(Some(PanelSettings {
        connection,
        username_prefix: r.required("PANEL_USERNAME_PREFIX", parse_prefix)?,
        write_concurrency: r.required("PANEL_WRITE_CONCURRENCY", |v| parse_int(v, 1, 64))?,
        timeout: r.required("PANEL_TIMEOUT", parse_duration)?,
        page_size: r.required("PANEL_PAGE_SIZE", |v| parse_int(v, 1, 1000))?,
        sync_subscriptions_interval: r
            .required("PANEL_SYNC_SUBSCRIPTIONS_INTERVAL", parse_duration)?,
        sync_status_interval: r.required("PANEL_SYNC_STATUS_INTERVAL", parse_duration)?,
        sync_traffic_interval: r.required("PANEL_SYNC_TRAFFIC_INTERVAL", parse_duration)?,
        stats_interval: r.required("PANEL_STATS_INTERVAL", parse_duration)?,
        cleanup_interval: r.required("PANEL_CLEANUP_INTERVAL", parse_duration)?,
        cleanup_after_days: r.required("PANEL_CLEANUP_AFTER_DAYS", |v| parse_int(v, 1, 3650))?,
        cleanup_action: r.required("PANEL_CLEANUP_ACTION", |v| match v {
            "disable" => Ok(CleanupAction::Disable),
            "delete" => Ok(CleanupAction::Delete),
            _ => Err("must be `disable` or `delete`".to_owned()),
        })?,
        paid_unprovisioned_after: r.required("PAID_UNPROVISIONED_AFTER", parse_duration)?,
        paid_unprovisioned_interval: r.required("PAID_UNPROVISIONED_INTERVAL", parse_duration)?,
    }))
}

/// The prefix plus a Telegram id (at most 16 digits) must stay within the panels' username rules
/// (Marzban: 32 characters of `[a-z0-9_]`; Remnawave: 36).
fn parse_prefix(value: &str) -> Result<String, String> {
    let valid = (1..=16).contains(&value.len())
        && value
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if valid {
        Ok(value.to_owned())
    } else {
        Err("use 1 to 16 characters of a-z, 0-9 and _".into())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use crate::config::{ConfigError, RENAMED, RawConfig, Settings, VARS, describe};

    fn raw(pairs: &[(&str, &str)]) -> Result<RawConfig, ConfigError> {
        let env = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string()));
        RawConfig::layered(None, None, env)
    }

    const URL: (&str, &str) = ("MARZBAN_URL", "https://panel.example.com");
    const USER: (&str, &str) = ("MARZBAN_USERNAME", "admin");
    const PASSWORD: (&str, &str) = ("MARZBAN_PASSWORD", "secret");

    fn panel(pairs: &[(&str, &str)]) -> Result<super::PanelSettings, ConfigError> {
        let all: Vec<_> = [URL, USER, PASSWORD].iter().chain(pairs).copied().collect();
        Ok(Settings::from_raw(&raw(&all)?)?.panel.expect("a panel"))
    }

    #[test]
    fn every_renamed_setting_is_declared_under_its_new_name_only() {
        for (old, new) in RENAMED {
            assert!(VARS.iter().any(|v| v.name == *new), "{new} is not in VARS");
            assert!(
                VARS.iter().all(|v| v.name != *old),
                "{old} is still in VARS"
            );
            assert!(new.starts_with("PANEL_"), "{new}");
        }
    }

    #[test]
    fn the_shared_panel_settings_take_their_new_and_their_old_names() {
        let new = panel(&[("PANEL_TIMEOUT", "3s"), ("PANEL_USERNAME_PREFIX", "shop_")]).unwrap();
        let old = panel(&[
            ("MARZBAN_TIMEOUT", "3s"),
            ("MARZBAN_USERNAME_PREFIX", "shop_"),
        ])
        .unwrap();
        for p in [&new, &old] {
            assert_eq!(p.timeout, Duration::from_secs(3));
            assert_eq!(p.username_prefix, "shop_");
        }
        // Every old name reaches its setting: the interval of the traffic sync, for one.
        let old = panel(&[("MARZBAN_SYNC_TRAFFIC_INTERVAL", "7m")]).unwrap();
        assert_eq!(old.sync_traffic_interval, Duration::from_secs(420));
        // Both names with the same value: no conflict.
        let both = panel(&[("PANEL_PAGE_SIZE", "50"), ("MARZBAN_PAGE_SIZE", "50")]).unwrap();
        assert_eq!(both.page_size, 50);
    }

    #[test]
    fn both_names_with_different_values_are_refused_naming_both() {
        let err = raw(&[("MARZBAN_PAGE_SIZE", "50"), ("PANEL_PAGE_SIZE", "60")]).unwrap_err();
        assert_eq!(
            err,
            ConfigError::Renamed {
                old: "MARZBAN_PAGE_SIZE",
                new: "PANEL_PAGE_SIZE"
            }
        );
        assert_eq!(
            err.to_string(),
            "MARZBAN_PAGE_SIZE and PANEL_PAGE_SIZE are both set, to different values: \
             MARZBAN_PAGE_SIZE is the deprecated name of PANEL_PAGE_SIZE; keep only PANEL_PAGE_SIZE"
        );
        // Across sources too: a new name in the file, the old one in the environment.
        let toml = "PANEL_CLEANUP_ACTION = \"delete\"\n";
        let env = [("MARZBAN_CLEANUP_ACTION".to_owned(), "disable".to_owned())];
        let err = RawConfig::layered(Some((std::path::Path::new("shop.toml"), toml)), None, env)
            .unwrap_err();
        assert!(matches!(err, ConfigError::Renamed { .. }), "{err}");
    }

    #[test]
    fn a_value_under_the_old_name_is_reported_under_it() {
        let err = panel(&[("MARZBAN_PAGE_SIZE", "0")])
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("invalid MARZBAN_PAGE_SIZE='0'"), "{err}");
        let raw = raw(&[URL, USER, PASSWORD, ("MARZBAN_TIMEOUT", "4s")]).unwrap();
        assert_eq!(
            raw.deprecated_names(),
            [("MARZBAN_TIMEOUT", "PANEL_TIMEOUT")]
        );
        let settings = Settings::from_raw(&raw).unwrap();
        let report = describe(&raw, &settings);
        let line = report
            .lines()
            .find(|l| l.starts_with("PANEL_TIMEOUT "))
            .expect("a line for PANEL_TIMEOUT");
        assert!(
            line.ends_with("4s (environment, as MARZBAN_TIMEOUT, deprecated)"),
            "{line}"
        );
        assert!(!report.contains("\nMARZBAN_TIMEOUT "), "{report}");
    }
}
