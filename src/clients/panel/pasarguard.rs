//! The PasarGuard adapter (the Marzban fork; `shared/reference/pasarguard-api.md`, v5.2).
//!
//! Same shape as Marzban, with its differences: access through `group_ids` (always sent on create:
//! without them the user has no access; never sent on modify, where `[]` would remove every group),
//! a datetime `expire`, an API key (`X-Api-Key`) or the admin login, by-id routes (a username is
//! looked up with `GET /api/users?username=`, as v6 will require), 201/204 answers, relative
//! subscription URLs made absolute, case-sensitive usernames, no bandwidth speeds in the stats.

use std::sync::Arc;

use chrono::{DateTime, NaiveDateTime, SecondsFormat, Utc};
use reqwest::{Method, Url};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

use super::http::{Auth, PanelHttp, Retry, UserApi, UserModify};
use super::{Capabilities, NewUser, PanelError, PanelUser, SystemStats, UserQuery, UsersPage};
use crate::config::{PanelSettings, PasarGuardAuth, PasarGuardSettings};
use crate::domain::PanelUserStatus;
use crate::domain::panel::Drift;
use crate::metrics::Metrics;

/// PasarGuard 5.2: HWID device limits, groups and webhooks; usernames are case-sensitive; a
/// traffic reset makes only a `limited` user active.
pub const CAPABILITIES: Capabilities = Capabilities {
    device_limit: true,
    groups: true,
    webhooks: true,
    case_sensitive_usernames: true,
    reset_keeps_status: true,
    refuses_past_expiry: false,
};

/// An aware ISO-8601 datetime (`…Z` or `…+00:00`), or a naive one read as UTC.
fn datetime<'de, D: Deserializer<'de>>(d: D) -> Result<Option<DateTime<Utc>>, D::Error> {
    let Some(text) = Option::<String>::deserialize(d)? else {
        return Ok(None);
    };
    if let Ok(t) = DateTime::parse_from_rfc3339(&text) {
        return Ok(Some(t.with_timezone(&Utc)));
    }
    NaiveDateTime::parse_from_str(&text, "%Y-%m-%dT%H:%M:%S%.f")
        .map(|t| Some(t.and_utc()))
        .map_err(serde::de::Error::custom)
}

/// Unix seconds as the datetime PasarGuard takes; 0 = never (`null`).
fn expire_value(unix: i64) -> Value {
    if unix == 0 {
        return Value::Null;
    }
    DateTime::from_timestamp(unix, 0).map_or(Value::Null, |t| {
        Value::String(t.to_rfc3339_opts(SecondsFormat::Secs, true))
    })
}

/// `UserResponse` (the fields the shop uses).
#[derive(Debug, Clone, Deserialize)]
pub struct UserResponse {
    pub id: i64,
    pub username: String,
    pub status: PanelUserStatus,
    #[serde(default, deserialize_with = "datetime")]
    pub expire: Option<DateTime<Utc>>,
    pub data_limit: Option<i64>,
    #[serde(default)]
    pub used_traffic: i64,
    #[serde(default)]
    pub lifetime_used_traffic: i64,
    #[serde(default, deserialize_with = "datetime")]
    pub online_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub next_plan: Option<Value>,
    #[serde(default)]
    pub group_ids: Vec<i64>,
    /// Relative unless the panel has a URL prefix; `""` in lists without `load_sub`.
    #[serde(default)]
    pub subscription_url: String,
}

/// `UserCreate`.
#[derive(Debug, Clone, Serialize)]
pub struct UserCreate {
    pub username: String,
    /// Always sent and never empty: a user created without groups has no access.
    pub group_ids: Vec<i64>,
    pub expire: Value,
    /// Bytes; 0 = unlimited.
    pub data_limit: i64,
    pub data_limit_reset_strategy: &'static str,
    pub status: &'static str,
    pub note: String,
}

#[derive(Debug, Deserialize)]
struct UsersResponse {
    users: Vec<UserResponse>,
    total: u64,
}

/// `GET /api/system` (renamed counters, no speeds).
#[derive(Debug, Deserialize)]
struct System {
    version: Option<String>,
    #[serde(default)]
    mem_total: i64,
    #[serde(default)]
    mem_used: i64,
    #[serde(default)]
    cpu_cores: i32,
    #[serde(default)]
    cpu_usage: f64,
    #[serde(default)]
    total_user: i64,
    #[serde(default)]
    online_users: i64,
    #[serde(default)]
    active_users: i64,
    #[serde(default)]
    on_hold_users: i64,
    #[serde(default)]
    disabled_users: i64,
    #[serde(default)]
    expired_users: i64,
    #[serde(default)]
    limited_users: i64,
    #[serde(default)]
    incoming_bandwidth: i64,
    #[serde(default)]
    outgoing_bandwidth: i64,
}

pub struct PasarGuardClient {
    http: PanelHttp,
    group_ids: Vec<i64>,
}

impl PasarGuardClient {
    pub fn new(
        panel: &PanelSettings,
        settings: &PasarGuardSettings,
        metrics: Arc<Metrics>,
    ) -> anyhow::Result<Self> {
        let auth = match &settings.auth {
            PasarGuardAuth::ApiKey(key) => Auth::ApiKey {
                key: key.clone(),
                variable: "PASARGUARD_API_KEY",
            },
            PasarGuardAuth::Login { username, password } => Auth::login(
                username.clone(),
                password.clone(),
                "PASARGUARD_USERNAME and PASARGUARD_PASSWORD",
            ),
        };
        Ok(PasarGuardClient {
            http: PanelHttp::new(
                settings.url.clone(),
                settings.subscription_base_url.clone(),
                auth,
                panel.timeout,
                panel.write_concurrency,
                metrics,
            )?,
            group_ids: settings.group_ids.clone(),
        })
    }

    pub fn base_url(&self) -> &Url {
        self.http.base()
    }

    fn by_id(id: i64, suffix: &str) -> String {
        format!("/api/user/by-id/{id}{suffix}")
    }

    /// The user named exactly `username` (case-sensitive), with its subscription URL.
    pub async fn get_user(&self, username: &str) -> Result<PanelUser, PanelError> {
        let query = [
            ("username", username.to_owned()),
            ("load_sub", "true".to_owned()),
        ];
        let page: UsersResponse = self.http.get("/api/users", &query, "get_user").await?;
        page.users
            .into_iter()
            .find(|u| u.username == username)
            .map(|u| self.shop_user(u))
            .ok_or(PanelError::NotFound)
    }

    async fn id_of(&self, username: &str) -> Result<i64, PanelError> {
        let user = self.get_user(username).await?;
        user.id
            .ok_or_else(|| PanelError::Decode("a PasarGuard user without an id".into()))
    }

    pub fn user_create(&self, user: &NewUser<'_>) -> UserCreate {
        UserCreate {
            username: user.username.to_owned(),
            group_ids: self.group_ids.clone(),
            expire: expire_value(user.desired.expire),
            data_limit: user.desired.data_limit,
            data_limit_reset_strategy: "no_reset",
            status: "active",
            note: user.note(),
        }
    }

    /// Creates an active user in the configured groups (201). Not retried.
    pub async fn create_user(&self, user: &NewUser<'_>) -> Result<PanelUser, PanelError> {
        self.create_with("/api/user", &self.user_create(user)).await
    }

    /// Modifies a user by id with absolute values: safe to repeat.
    pub async fn modify_user(
        &self,
        user: &PanelUser,
        changes: &Drift,
    ) -> Result<PanelUser, PanelError> {
        let id = match user.id {
            Some(id) => id,
            None => self.id_of(&user.username).await?,
        };
        let body = serde_json::to_value(UserModify::from_drift(changes, user, expire_value))
            .map_err(|e| PanelError::Decode(e.to_string()))?;
        let mut updated = self
            .user_call(
                Method::PUT,
                &Self::by_id(id, ""),
                Some(&body),
                "modify_user",
                Retry::Idempotent,
            )
            .await?;
        if updated.subscription_url.is_empty() {
            updated.subscription_url = user.subscription_url.clone();
        }
        Ok(updated)
    }

    /// Deletes a user (204); a user that is already gone counts as deleted.
    pub async fn delete_user(&self, username: &str) -> Result<(), PanelError> {
        let id = match self.id_of(username).await {
            Ok(id) => id,
            Err(PanelError::NotFound) => return Ok(()),
            Err(e) => return Err(e),
        };
        match self
            .http
            .call(
                Method::DELETE,
                &Self::by_id(id, ""),
                &[],
                None,
                "delete_user",
                Retry::Idempotent,
            )
            .await
        {
            Ok(_) | Err(PanelError::NotFound) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Used traffic to 0; only a `limited` user becomes active, other statuses stay.
    pub async fn reset_usage(&self, username: &str) -> Result<PanelUser, PanelError> {
        let id = self.id_of(username).await?;
        self.user_call(
            Method::POST,
            &Self::by_id(id, "/reset"),
            None,
            "reset_user",
            Retry::Once,
        )
        .await
    }

    /// New credentials and subscription URL; every earlier link stops working.
    pub async fn revoke_subscription(&self, username: &str) -> Result<PanelUser, PanelError> {
        let id = self.id_of(username).await?;
        self.user_call(
            Method::POST,
            &Self::by_id(id, "/revoke_sub"),
            None,
            "revoke_sub",
            Retry::Once,
        )
        .await
    }

    /// One page, sorted by creation then name (the panel has no default order).
    pub async fn list_users(
        &self,
        query: &UserQuery<'_>,
        offset: u64,
        limit: u32,
    ) -> Result<UsersPage, PanelError> {
        let mut params = query.params(offset, limit);
        params.push(("sort", "created_at,username".to_owned()));
        let page: UsersResponse = self.http.get("/api/users", &params, "list_users").await?;
        Ok(UsersPage {
            users: page.users.into_iter().map(|u| self.shop_user(u)).collect(),
            total: page.total,
        })
    }

    pub async fn system(&self) -> Result<SystemStats, PanelError> {
        let s: System = self.http.get("/api/system", &[], "system").await?;
        Ok(SystemStats {
            version: s.version,
            mem_total: s.mem_total,
            mem_used: s.mem_used,
            cpu_cores: s.cpu_cores,
            cpu_usage: s.cpu_usage,
            total_user: s.total_user,
            online_users: s.online_users,
            users_active: s.active_users,
            users_on_hold: s.on_hold_users,
            users_disabled: s.disabled_users,
            users_expired: s.expired_users,
            users_limited: s.limited_users,
            incoming_bandwidth: s.incoming_bandwidth,
            outgoing_bandwidth: s.outgoing_bandwidth,
            incoming_bandwidth_speed: None,
            outgoing_bandwidth_speed: None,
        })
    }

    /// `GET /api/admin`: answers any admin or API key, so it checks the credentials alone.
    pub async fn probe(&self) -> Result<(), PanelError> {
        self.http
            .call(Method::GET, "/api/admin", &[], None, "probe", Retry::Once)
            .await
            .map(drop)
    }
}

impl UserApi for PasarGuardClient {
    type User = UserResponse;

    fn http(&self) -> &PanelHttp {
        &self.http
    }

    fn shop_user(&self, user: UserResponse) -> PanelUser {
        PanelUser {
            subscription_url: self.http.absolute_subscription_url(&user.subscription_url),
            username: user.username,
            id: Some(user.id),
            uuid: None,
            status: user.status,
            expire: user.expire.map(|t| t.timestamp()),
            // 0 (how a create stores "unlimited") and null both mean unlimited.
            data_limit: user.data_limit.filter(|l| *l > 0),
            used_traffic: user.used_traffic,
            lifetime_used_traffic: user.lifetime_used_traffic,
            online_at: user.online_at,
            next_plan: user.next_plan.filter(|p| !p.is_null()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::panel::WantedStatus;

    /// The `UserResponse` of the reference (§3.3).
    #[test]
    fn the_reference_user_parses() {
        let user: UserResponse = serde_json::from_value(serde_json::json!({
            "id": 42, "username": "tg_123456789", "status": "active",
            "proxy_settings": {"vless": {"id": "x"}},
            "expire": "2026-09-01T00:00:00Z", "data_limit": 53_687_091_200i64,
            "data_limit_reset_strategy": "no_reset", "note": "order 42",
            "group_ids": [1], "hwid_limit": 3, "next_plan": null,
            "used_traffic": 1048576, "lifetime_used_traffic": 1048576,
            "created_at": "2026-08-01T10:00:00Z", "edit_at": null, "online_at": "2026-08-02T10:00:00",
            "subscription_url": "https://sub.example.com/sub/djMsNDIs",
            "admin": {"id": 1, "username": "reseller1"}
        }))
        .unwrap();
        assert_eq!(user.id, 42);
        assert_eq!(user.expire.map(|t| t.timestamp()), Some(1_788_220_800));
        assert_eq!(user.online_at.map(|t| t.timestamp()), Some(1_785_664_800));
        assert_eq!(user.group_ids, [1]);
    }

    #[test]
    fn expiry_is_sent_as_a_utc_datetime_and_groups_never_on_modify() {
        assert_eq!(expire_value(1_788_220_800), "2026-09-01T00:00:00Z");
        assert_eq!(expire_value(0), Value::Null);
        let current = PanelUser {
            username: "vpnshop_1".into(),
            id: Some(7),
            uuid: None,
            status: PanelUserStatus::Active,
            expire: Some(10),
            data_limit: None,
            used_traffic: 0,
            lifetime_used_traffic: 0,
            online_at: None,
            subscription_url: String::new(),
            next_plan: Some(serde_json::json!({"expire": 3600})),
        };
        let drift = Drift {
            expire: Some(1_788_220_800),
            data_limit: None,
            status: Some(WantedStatus::Disabled),
        };
        let body =
            serde_json::to_value(UserModify::from_drift(&drift, &current, expire_value)).unwrap();
        assert_eq!(
            body,
            serde_json::json!({"expire": "2026-09-01T00:00:00Z", "status": "disabled",
                "next_plan": {"expire": 3600}})
        );
    }
}
