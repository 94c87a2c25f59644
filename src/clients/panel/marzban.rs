//! The Marzban 0.8.4 adapter (see `shared/reference/marzban-api.md`).
//!
//! Logs in with the admin form (the shared [`PanelHttp`] caches the token and re-fetches it once
//! on a 401, retries idempotent calls and bounds writes by `PANEL_WRITE_CONCURRENCY`). Panel
//! quirks handled here: `inbounds` is always sent on create, a PUT re-sends an existing
//! `next_plan` (a PUT without it deletes it), relative subscription URLs are made absolute, and a
//! DELETE that answers 500 but left the user gone counts as done.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::NaiveDateTime;
use reqwest::{Method, Url};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::http::{Auth, PanelHttp, Retry, UserApi, UserModify};
use super::{Capabilities, NewUser, PanelError, PanelUser, SystemStats, UserQuery, UsersPage};
use crate::config::{MarzbanSettings, PanelSettings};
use crate::domain::PanelUserStatus;
use crate::domain::panel::Drift;
use crate::metrics::Metrics;

/// Marzban 0.8.4: no device limits, groups or webhooks; names ignore case; a reset activates.
pub const CAPABILITIES: Capabilities = Capabilities {
    device_limit: false,
    groups: false,
    webhooks: false,
    case_sensitive_usernames: false,
    reset_keeps_status: false,
    refuses_past_expiry: false,
};

/// `UserResponse` (the fields the shop uses; the panel sends more).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
pub struct UserResponse {
    pub username: String,
    pub status: PanelUserStatus,
    #[serde(default)]
    pub proxies: Map<String, Value>,
    #[serde(default)]
    pub inbounds: BTreeMap<String, Vec<String>>,
    pub expire: Option<i64>,
    pub data_limit: Option<i64>,
    #[serde(default)]
    pub data_limit_reset_strategy: Option<String>,
    #[serde(default)]
    pub used_traffic: i64,
    #[serde(default)]
    pub lifetime_used_traffic: i64,
    pub created_at: Option<NaiveDateTime>,
    pub note: Option<String>,
    pub online_at: Option<NaiveDateTime>,
    pub next_plan: Option<Value>,
    #[serde(default)]
    pub links: Vec<String>,
    /// As the panel sends it: often relative, regenerated on every response.
    pub subscription_url: String,
}

/// `UserCreate`.
#[derive(Debug, Clone, Serialize)]
pub struct UserCreate {
    pub username: String,
    pub proxies: Map<String, Value>,
    /// Always sent: without the key the panel stores the user with every inbound excluded.
    pub inbounds: BTreeMap<String, Vec<String>>,
    /// Unix seconds; 0 = never.
    pub expire: i64,
    /// Bytes; 0 = unlimited.
    pub data_limit: i64,
    pub data_limit_reset_strategy: &'static str,
    pub status: &'static str,
    pub note: String,
}

/// A page of `GET /api/users`.
#[derive(Debug, Clone, Deserialize)]
struct MarzbanUsersPage {
    pub users: Vec<UserResponse>,
    pub total: u64,
}

/// One inbound of `GET /api/inbounds`.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
pub struct Inbound {
    pub tag: String,
    pub protocol: String,
    #[serde(default)]
    pub network: Option<String>,
    #[serde(default)]
    pub tls: Option<String>,
    #[serde(default)]
    pub port: Option<Value>,
}

/// The Marzban client: the shared HTTP plumbing plus what new users get.
pub struct MarzbanClient {
    http: PanelHttp,
    /// Protocol → proxy settings of new users.
    proxies: Map<String, Value>,
    /// Protocol → inbound tags of new users (a protocol not listed: all its inbounds).
    inbounds: BTreeMap<String, Vec<String>>,
}

impl MarzbanClient {
    pub fn new(
        panel: &PanelSettings,
        settings: &MarzbanSettings,
        metrics: Arc<Metrics>,
    ) -> anyhow::Result<Self> {
        let auth = Auth::login(
            settings.username.clone(),
            settings.password.clone(),
            "MARZBAN_USERNAME and MARZBAN_PASSWORD",
        );
        Ok(MarzbanClient {
            http: PanelHttp::new(
                settings.url.clone(),
                settings.subscription_base_url.clone(),
                auth,
                panel.timeout,
                panel.write_concurrency,
                metrics,
            )?,
            proxies: settings.proxies.clone(),
            inbounds: settings.inbounds.clone(),
        })
    }

    pub fn base_url(&self) -> &Url {
        self.http.base()
    }

    fn user_path(username: &str, suffix: &str) -> String {
        // Panel usernames are [a-z0-9_@.-]: nothing to escape in a path segment.
        format!("/api/user/{username}{suffix}")
    }

    pub async fn get_user(&self, username: &str) -> Result<PanelUser, PanelError> {
        let path = Self::user_path(username, "");
        let user: UserResponse = self.http.get(&path, &[], "get_user").await?;
        Ok(self.shop_user(user))
    }

    /// The `UserCreate` of a new shop user. Every protocol is listed in `inbounds`: an empty list
    /// means all of its inbounds, and leaving the key out would create a user with every inbound
    /// excluded.
    pub fn user_create(&self, user: &NewUser<'_>) -> UserCreate {
        let inbounds: BTreeMap<String, Vec<String>> = self
            .proxies
            .keys()
            .map(|protocol| {
                let tags = self.inbounds.get(protocol).cloned().unwrap_or_default();
                (protocol.clone(), tags)
            })
            .collect();
        UserCreate {
            username: user.username.to_owned(),
            proxies: self.proxies.clone(),
            inbounds,
            expire: user.desired.expire,
            data_limit: user.desired.data_limit,
            data_limit_reset_strategy: "no_reset",
            status: "active",
            note: user.note(),
        }
    }

    /// Creates an active user. Not retried: after a timeout the user may exist, which the caller finds
    /// out from the 409 of its next attempt.
    pub async fn create_user(&self, user: &NewUser<'_>) -> Result<PanelUser, PanelError> {
        self.create_with("/api/user", &self.user_create(user)).await
    }

    /// Modifies a user with absolute values: safe to repeat.
    pub async fn modify_user(
        &self,
        user: &PanelUser,
        changes: &Drift,
    ) -> Result<PanelUser, PanelError> {
        let body = serde_json::to_value(UserModify::from_drift(changes, user, |unix| unix))
            .map_err(|e| PanelError::Decode(e.to_string()))?;
        let path = Self::user_path(&user.username, "");
        self.user_call(
            Method::PUT,
            &path,
            Some(&body),
            "modify_user",
            Retry::Idempotent,
        )
        .await
    }

    /// Deletes a user; a user that is already gone counts as deleted.
    pub async fn delete_user(&self, username: &str) -> Result<(), PanelError> {
        let path = Self::user_path(username, "");
        match self
            .http
            .call(
                Method::DELETE,
                &path,
                &[],
                None,
                "delete_user",
                Retry::IdempotentUnless500,
            )
            .await
        {
            Ok(_) | Err(PanelError::NotFound) => Ok(()),
            // 0.8.4 answers 500 for users created by an env-file sudoer although it deleted them,
            // every time: asking is cheaper and clearer than repeating the DELETE.
            Err(error @ PanelError::Server { status: 500, .. }) => {
                match self.get_user(username).await {
                    Err(PanelError::NotFound) => {
                        tracing::info!(
                            username,
                            "panel answered 500 to DELETE but the user is gone"
                        );
                        Ok(())
                    }
                    _ => Err(error),
                }
            }
            Err(error) => Err(error),
        }
    }

    /// Resets the user's traffic. Note the 0.8.4 quirk: this also makes a disabled or on-hold
    /// user active (callers re-apply the status they want).
    pub async fn reset_usage(&self, username: &str) -> Result<PanelUser, PanelError> {
        let path = Self::user_path(username, "/reset");
        self.user_call(Method::POST, &path, None, "reset_user", Retry::Once)
            .await
    }

    /// New credentials and subscription URL; every earlier link stops working.
    pub async fn revoke_subscription(&self, username: &str) -> Result<PanelUser, PanelError> {
        let path = Self::user_path(username, "/revoke_sub");
        self.user_call(Method::POST, &path, None, "revoke_sub", Retry::Once)
            .await
    }

    /// One page of users; `total` counts every match before paging.
    pub async fn list_users(
        &self,
        query: &UserQuery<'_>,
        offset: u64,
        limit: u32,
    ) -> Result<UsersPage, PanelError> {
        let page: MarzbanUsersPage = self
            .http
            .get("/api/users", &query.params(offset, limit), "list_users")
            .await?;
        Ok(UsersPage {
            users: page.users.into_iter().map(|u| self.shop_user(u)).collect(),
            total: page.total,
        })
    }

    /// `GET /api/system`: its names are the shop's.
    pub async fn system(&self) -> Result<SystemStats, PanelError> {
        self.http.get("/api/system", &[], "system").await
    }

    /// One `GET /api/system`, not repeated, counted apart (endpoint `probe`).
    pub async fn probe(&self) -> Result<(), PanelError> {
        self.http
            .call(Method::GET, "/api/system", &[], None, "probe", Retry::Once)
            .await
            .map(drop)
    }

    pub async fn inbounds(&self) -> Result<BTreeMap<String, Vec<Inbound>>, PanelError> {
        self.http.get("/api/inbounds", &[], "inbounds").await
    }
}

impl UserApi for MarzbanClient {
    type User = UserResponse;

    fn http(&self) -> &PanelHttp {
        &self.http
    }

    /// The shop's view of a panel answer, with an absolute subscription URL.
    fn shop_user(&self, user: UserResponse) -> PanelUser {
        PanelUser {
            subscription_url: self.http.absolute_subscription_url(&user.subscription_url),
            username: user.username,
            id: None,
            uuid: None,
            status: user.status,
            expire: user.expire,
            data_limit: user.data_limit,
            used_traffic: user.used_traffic,
            lifetime_used_traffic: user.lifetime_used_traffic,
            online_at: user.online_at.map(|t| t.and_utc()),
            next_plan: user.next_plan.filter(|p| !p.is_null()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::PanelConnection;
    use crate::domain::panel::PanelState;

    /// Marzban 0.8.4's answers as `shared/reference/marzban-api.md` quotes them.
    #[test]
    fn recorded_panel_answers_parse() {
        let user: UserResponse = serde_json::from_str(include_str!(
            "../../../tests/it/fixtures/marzban-0.8.4-user.json"
        ))
        .expect("UserResponse");
        assert_eq!(user.username, "tg_123456789");
        assert_eq!(user.inbounds["vless"], ["VLESS TCP REALITY"]);
        assert_eq!(
            user.created_at,
            NaiveDateTime::parse_from_str("2025-01-10T08:00:00", "%Y-%m-%dT%H:%M:%S").ok()
        );
        let c = client("https://panel.example.com", "https://sub.example.com");
        let user = c.shop_user(user);
        assert_eq!(
            user.state(),
            PanelState {
                expire: Some(1_767_225_600),
                data_limit: Some(53_687_091_200),
                status: PanelUserStatus::Active,
            }
        );
        assert_eq!(user.used_traffic, 1_048_576);
        assert!(user.subscription_url.starts_with("https://"));
        let inbounds: BTreeMap<String, Vec<Inbound>> = serde_json::from_str(include_str!(
            "../../../tests/it/fixtures/marzban-0.8.4-inbounds.json"
        ))
        .expect("inbounds");
        assert_eq!(inbounds["vless"].len(), 1);
    }

    fn client(base: &str, sub: &str) -> MarzbanClient {
        let raw = crate::config::RawConfig::layered(
            None,
            None,
            [
                ("MARZBAN_URL", base),
                ("MARZBAN_USERNAME", "a"),
                ("MARZBAN_PASSWORD", "b"),
                ("MARZBAN_SUBSCRIPTION_BASE_URL", sub),
            ]
            .map(|(k, v)| (k.to_owned(), v.to_owned())),
        )
        .unwrap();
        let panel = crate::config::Settings::from_raw(&raw)
            .unwrap()
            .panel
            .unwrap();
        let PanelConnection::Marzban(marzban) = &panel.connection else {
            panic!("not Marzban");
        };
        MarzbanClient::new(&panel, marzban, Arc::new(Metrics::new().unwrap())).unwrap()
    }

    #[test]
    fn subscription_urls_are_made_absolute() {
        let c = client("https://panel.example.com:8000", "https://sub.example.com/");
        assert_eq!(
            c.http.absolute_subscription_url("/sub/abc"),
            "https://sub.example.com/sub/abc"
        );
        assert_eq!(
            c.http
                .absolute_subscription_url("https://x.example.com/sub/abc"),
            "https://x.example.com/sub/abc"
        );
        assert_eq!(
            c.http.url("/api/user/u").as_str(),
            "https://panel.example.com:8000/api/user/u"
        );
        let c = client("https://example.com/panel/", "https://example.com/panel");
        assert_eq!(
            c.http.url("/api/users").as_str(),
            "https://example.com/panel/api/users"
        );
        assert_eq!(
            c.http.absolute_subscription_url("/sub/abc"),
            "https://example.com/panel/sub/abc"
        );
    }

    #[test]
    fn a_put_keeps_the_next_plan_and_sends_only_changes() {
        let current: UserResponse = serde_json::from_value(serde_json::json!({
            "username": "vpnshop_1", "status": "active", "expire": 10, "data_limit": null,
            "used_traffic": 0, "lifetime_used_traffic": 0, "created_at": "2025-01-10T08:00:00",
            "note": null, "online_at": null, "next_plan": {"data_limit": 0, "expire": null},
            "links": [], "subscription_url": "/sub/x"
        }))
        .unwrap();
        let current = client("https://p.example.com", "https://p.example.com").shop_user(current);
        let drift = Drift {
            expire: Some(20),
            data_limit: None,
            status: None,
        };
        let body =
            serde_json::to_value(UserModify::from_drift(&drift, &current, |unix| unix)).unwrap();
        assert_eq!(
            body,
            serde_json::json!({"expire": 20, "next_plan": {"data_limit": 0, "expire": null}})
        );
    }
}
