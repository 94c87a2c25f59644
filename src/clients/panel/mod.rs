//! The panel interface: what the shop asks of a VPN panel, in the shop's terms, whichever panel it
//! is. The provisioning jobs, the syncs, the health probe and the paid-access check talk only to
//! [`Panel`]; each adapter (`marzban`, …) maps it to its panel's REST API and quirks, and says
//! through [`Capabilities`] what its panel lacks, so such a request is refused by name.

mod http;
pub mod marzban;
pub mod pasarguard;
pub mod remnawave;

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde_json::Value;

pub use http::PanelError;
pub use marzban::MarzbanClient;
pub use pasarguard::PasarGuardClient;
pub use remnawave::RemnawaveClient;

use crate::config::{PanelConnection, PanelSettings};
use crate::domain::PanelUserStatus;
use crate::domain::panel::{DesiredUser, Drift, PanelState, WantedStatus, drift_on};
use crate::metrics::Metrics;

/// A panel user as the shop sees it, whichever panel reported it.
#[derive(Debug, Clone, PartialEq)]
pub struct PanelUser {
    pub username: String,
    /// The panel's own numeric id, when it has one (PasarGuard, Remnawave).
    pub id: Option<i64>,
    /// The panel's own uuid, when it has one (Remnawave 2.x addresses users by it).
    pub uuid: Option<String>,
    pub status: PanelUserStatus,
    /// Unix seconds; `None`: never expires.
    pub expire: Option<i64>,
    /// Bytes; `None`: unlimited.
    pub data_limit: Option<i64>,
    /// Bytes since the last reset.
    pub used_traffic: i64,
    pub lifetime_used_traffic: i64,
    pub online_at: Option<DateTime<Utc>>,
    /// Absolute, ready for the user; empty when the panel left it out (PasarGuard's lists).
    pub subscription_url: String,
    /// The user's next plan as the panel has it: a modify re-sends it, or the panel deletes it.
    pub next_plan: Option<Value>,
}

impl PanelUser {
    pub fn state(&self) -> PanelState {
        PanelState {
            expire: self.expire,
            data_limit: self.data_limit,
            status: self.status,
        }
    }
}

/// A user the shop creates: its name, whose it is and what it should have.
#[derive(Debug, Clone, Copy)]
pub struct NewUser<'a> {
    pub username: &'a str,
    /// `None`: a subscriber who signed up on the web without Telegram.
    pub telegram_id: Option<i64>,
    pub desired: &'a DesiredUser,
}

impl NewUser<'_> {
    /// The note the shop leaves on its users.
    pub fn note(&self) -> String {
        match self.telegram_id {
            Some(id) => format!("vpn-shop: telegram {id}"),
            None => "vpn-shop: web".to_owned(),
        }
    }
}

/// A page of the shop's users; `total` counts every match before paging.
#[derive(Debug, Clone)]
pub struct UsersPage {
    pub users: Vec<PanelUser>,
    pub total: u64,
}

/// Filters of a user listing.
#[derive(Debug, Clone, Default)]
pub struct UserQuery<'a> {
    /// Substring of the username (the panels also match it in notes).
    pub search: Option<&'a str>,
    pub status: Option<PanelUserStatus>,
}

impl UserQuery<'_> {
    /// The query of `GET /api/users` (the same names on Marzban and PasarGuard).
    fn params(&self, offset: u64, limit: u32) -> Vec<(&'static str, String)> {
        let mut params = vec![("offset", offset.to_string()), ("limit", limit.to_string())];
        if let Some(search) = self.search {
            params.push(("search", search.to_owned()));
        }
        if let Some(status) = self.status {
            params.push(("status", status.as_str().to_owned()));
        }
        params
    }
}

/// The panel's host and user numbers (Marzban's `GET /api/system` names).
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
pub struct SystemStats {
    pub version: Option<String>,
    pub mem_total: i64,
    pub mem_used: i64,
    pub cpu_cores: i32,
    pub cpu_usage: f64,
    pub total_user: i64,
    pub online_users: i64,
    pub users_active: i64,
    pub users_on_hold: i64,
    pub users_disabled: i64,
    pub users_expired: i64,
    pub users_limited: i64,
    pub incoming_bandwidth: i64,
    pub outgoing_bandwidth: i64,
    /// Bytes per second; `None` where the panel does not report it (PasarGuard).
    pub incoming_bandwidth_speed: Option<i64>,
    pub outgoing_bandwidth_speed: Option<i64>,
}

/// What a panel can do beyond the operations every panel has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capabilities {
    /// A per-user limit of devices (HWID).
    pub device_limit: bool,
    /// Access through groups or squads the shop names (rather than protocols and inbounds).
    pub groups: bool,
    /// The panel posts user events to the shop.
    pub webhooks: bool,
    /// Usernames differ by case (`Shop_1` and `shop_1` are two users).
    pub case_sensitive_usernames: bool,
    /// A traffic reset keeps a disabled user disabled (Marzban 0.8.4 makes it active).
    pub reset_keeps_status: bool,
    /// The panel refuses an expiry in the past (Remnawave): an ended access is a disabled user.
    pub refuses_past_expiry: bool,
}

/// Which panel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PanelKind {
    Marzban,
    PasarGuard,
    Remnawave,
}

impl PanelKind {
    pub const fn as_str(self) -> &'static str {
        match self {
            PanelKind::Marzban => "marzban",
            PanelKind::PasarGuard => "pasarguard",
            PanelKind::Remnawave => "remnawave",
        }
    }

    /// How the panel is called in messages.
    pub const fn name(self) -> &'static str {
        match self {
            PanelKind::Marzban => "Marzban",
            PanelKind::PasarGuard => "PasarGuard",
            PanelKind::Remnawave => "Remnawave",
        }
    }

    pub const fn capabilities(self) -> Capabilities {
        match self {
            PanelKind::Marzban => marzban::CAPABILITIES,
            PanelKind::PasarGuard => pasarguard::CAPABILITIES,
            PanelKind::Remnawave => remnawave::CAPABILITIES,
        }
    }

    /// Refuses, by name, a `feature` this panel cannot do (`has` picks its capability).
    pub fn require(
        self,
        feature: &'static str,
        has: impl Fn(&Capabilities) -> bool,
    ) -> Result<(), PanelError> {
        if has(&self.capabilities()) {
            Ok(())
        } else {
            Err(PanelError::Unsupported {
                panel: self.name(),
                feature,
            })
        }
    }
}

/// The configured panel, behind one interface.
pub enum Panel {
    Marzban(MarzbanClient),
    PasarGuard(PasarGuardClient),
    Remnawave(RemnawaveClient),
}

/// Calls the same method on whichever adapter it is.
macro_rules! dispatch {
    ($panel:expr, $client:ident => $call:expr) => {
        match $panel {
            Panel::Marzban($client) => $call,
            Panel::PasarGuard($client) => $call,
            Panel::Remnawave($client) => $call,
        }
    };
}

impl Panel {
    pub fn new(settings: &PanelSettings, metrics: Arc<Metrics>) -> anyhow::Result<Panel> {
        Ok(match &settings.connection {
            PanelConnection::Marzban(m) => {
                Panel::Marzban(MarzbanClient::new(settings, m, metrics)?)
            }
            PanelConnection::PasarGuard(p) => {
                Panel::PasarGuard(PasarGuardClient::new(settings, p, metrics)?)
            }
            PanelConnection::Remnawave(r) => {
                Panel::Remnawave(RemnawaveClient::new(settings, r, metrics)?)
            }
        })
    }

    pub fn kind(&self) -> PanelKind {
        match self {
            Panel::Marzban(_) => PanelKind::Marzban,
            Panel::PasarGuard(_) => PanelKind::PasarGuard,
            Panel::Remnawave(_) => PanelKind::Remnawave,
        }
    }

    pub fn capabilities(&self) -> Capabilities {
        self.kind().capabilities()
    }

    /// What must change on the panel for `user` to be `desired`, by this panel's rules
    /// ([`drift_on`]).
    pub fn drift(&self, desired: &DesiredUser, user: &PanelUser) -> Drift {
        drift_on(
            desired,
            &user.state(),
            self.capabilities().refuses_past_expiry,
            Utc::now().timestamp(),
        )
    }

    /// The panel's base URL (for logs).
    pub fn url(&self) -> &reqwest::Url {
        dispatch!(self, c => c.base_url())
    }

    /// The key under which the panel tells usernames apart: lowercase where it ignores case.
    pub fn username_key(&self, username: &str) -> String {
        if self.capabilities().case_sensitive_usernames {
            username.to_owned()
        } else {
            username.to_ascii_lowercase()
        }
    }

    /// Refuses, by name, what this panel cannot do.
    pub fn require(
        &self,
        feature: &'static str,
        has: impl Fn(&Capabilities) -> bool,
    ) -> Result<(), PanelError> {
        self.kind().require(feature, has)
    }

    pub async fn get_user(&self, username: &str) -> Result<PanelUser, PanelError> {
        dispatch!(self, c => c.get_user(username).await)
    }

    /// Creates a user with the wanted expiry, limit and status. Not retried: after a timeout the
    /// user may exist, which the caller finds out from the `AlreadyExists` of its next attempt.
    pub async fn create_user(&self, user: &NewUser<'_>) -> Result<PanelUser, PanelError> {
        dispatch!(self, c => c.create_user(user).await)
    }

    /// Writes the absolute values of `changes` to `user` (safe to repeat); keeps what the shop
    /// does not manage (its next plan, its access).
    pub async fn modify_user(
        &self,
        user: &PanelUser,
        changes: &Drift,
    ) -> Result<PanelUser, PanelError> {
        dispatch!(self, c => c.modify_user(user, changes).await)
    }

    /// Enables or disables a user (a modify of its status only).
    pub async fn set_enabled(
        &self,
        user: &PanelUser,
        enabled: bool,
    ) -> Result<PanelUser, PanelError> {
        let status = if enabled {
            WantedStatus::Active
        } else {
            WantedStatus::Disabled
        };
        let changes = Drift {
            status: Some(status),
            ..Drift::default()
        };
        self.modify_user(user, &changes).await
    }

    /// Deletes a user; a user that is already gone counts as deleted.
    pub async fn delete_user(&self, username: &str) -> Result<(), PanelError> {
        dispatch!(self, c => c.delete_user(username).await)
    }

    /// Sets the user's used traffic to 0 (see [`Capabilities::reset_keeps_status`]).
    pub async fn reset_usage(&self, username: &str) -> Result<PanelUser, PanelError> {
        dispatch!(self, c => c.reset_usage(username).await)
    }

    /// New credentials and subscription URL; every earlier link stops working.
    pub async fn revoke_subscription(&self, username: &str) -> Result<PanelUser, PanelError> {
        dispatch!(self, c => c.revoke_subscription(username).await)
    }

    /// One page of users, in a stable order; `total` counts every match before paging.
    pub async fn list_users(
        &self,
        query: &UserQuery<'_>,
        offset: u64,
        limit: u32,
    ) -> Result<UsersPage, PanelError> {
        dispatch!(self, c => c.list_users(query, offset, limit).await)
    }

    pub async fn system(&self) -> Result<SystemStats, PanelError> {
        dispatch!(self, c => c.system().await)
    }

    /// At start: the panel's version where the adapter depends on it (Remnawave), `None` for
    /// the others. `Incompatible`: a version the adapter cannot speak; the shop must not start.
    pub async fn check_version(&self) -> Result<Option<String>, PanelError> {
        match self {
            Panel::Remnawave(c) => Ok(Some(c.detect().await?.version.clone())),
            Panel::Marzban(_) | Panel::PasarGuard(_) => Ok(None),
        }
    }

    /// One cheap authenticated read, not repeated, counted apart (endpoint `probe`): is the
    /// panel reachable and does it take our credentials?
    pub async fn probe(&self) -> Result<(), PanelError> {
        dispatch!(self, c => c.probe().await)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_capability_is_refused_by_name() {
        let e = PanelKind::Marzban
            .require("device limits", |c| c.device_limit)
            .unwrap_err();
        assert_eq!(e.to_string(), "Marzban does not support device limits");
        assert!(!e.is_transient());
        assert!(
            PanelKind::PasarGuard
                .require("device limits", |c| c.device_limit)
                .is_ok()
        );
        assert!(
            PanelKind::PasarGuard
                .capabilities()
                .case_sensitive_usernames
        );
        assert!(!PanelKind::Marzban.capabilities().reset_keeps_status);
    }
}
