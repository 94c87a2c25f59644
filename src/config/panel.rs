//! Settings of the panel: which one (`PANEL_KIND`), its connection, and what every panel shares —
//! the username prefix, the write limit, the timeout and the scheduled syncs (still named
//! `MARZBAN_*`, as before other panels existed; they apply to every panel).

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
        username_prefix: r.required("MARZBAN_USERNAME_PREFIX", parse_prefix)?,
        write_concurrency: r.required("MARZBAN_WRITE_CONCURRENCY", |v| parse_int(v, 1, 64))?,
        timeout: r.required("MARZBAN_TIMEOUT", parse_duration)?,
        page_size: r.required("MARZBAN_PAGE_SIZE", |v| parse_int(v, 1, 1000))?,
        sync_subscriptions_interval: r
            .required("MARZBAN_SYNC_SUBSCRIPTIONS_INTERVAL", parse_duration)?,
        sync_status_interval: r.required("MARZBAN_SYNC_STATUS_INTERVAL", parse_duration)?,
        sync_traffic_interval: r.required("MARZBAN_SYNC_TRAFFIC_INTERVAL", parse_duration)?,
        stats_interval: r.required("MARZBAN_STATS_INTERVAL", parse_duration)?,
        cleanup_interval: r.required("MARZBAN_CLEANUP_INTERVAL", parse_duration)?,
        cleanup_after_days: r.required("MARZBAN_CLEANUP_AFTER_DAYS", |v| parse_int(v, 1, 3650))?,
        cleanup_action: r.required("MARZBAN_CLEANUP_ACTION", |v| match v {
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
