//! The Remnawave adapter (`shared/reference/remnawave-api.md`: 2.8 and 3.x).
//!
//! An API token as a bearer (admin logins are refused on the API), `X-Forwarded-For` and
//! `X-Forwarded-Proto: https` on every call (without them the panel drops the connection) plus
//! the configured extra headers, `{"response": …}` envelopes, `expireAt` datetimes (no "never":
//! a far-future date), `trafficLimitBytes` with the `NO_RESET` strategy, the configured internal
//! squads on create (without them a user cannot connect) and never on modify. The version is read
//! once from `GET /api/system/metadata`: 2.8 addresses users by `uuid`, 3.x by numeric `id` (and
//! answers 204 to a delete); any other version is refused. Enable/disable answer 400 when the
//! user already is in that state, which counts as done.

use std::sync::Arc;

use chrono::{DateTime, SecondsFormat, Utc};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::{Method, Url};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use tokio::sync::OnceCell;

use super::http::{Auth, ErrorShape, PanelHttp, Retry, UserApi};
use super::{Capabilities, NewUser, PanelError, PanelUser, SystemStats, UserQuery, UsersPage};
use crate::config::{PanelSettings, RemnawaveSettings};
use crate::domain::PanelUserStatus;
use crate::domain::panel::{Drift, WantedStatus};
use crate::metrics::Metrics;

/// Remnawave: HWID device limits, internal squads and signed webhooks; usernames are
/// case-sensitive; a traffic reset only re-activates a `LIMITED` user.
pub const CAPABILITIES: Capabilities = Capabilities {
    device_limit: true,
    groups: true,
    webhooks: true,
    case_sensitive_usernames: true,
    reset_keeps_status: true,
    refuses_past_expiry: true,
};

/// The expiry sent for "never" (`expireAt` cannot be null); read back as never.
const NEVER: i64 = 4_102_444_800; // 2100-01-01T00:00:00Z

/// The API generation, from the panel's version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Generation {
    /// 2.8: users addressed by `uuid`.
    V2,
    /// 3.x: users addressed by numeric `id`, no by-telegram-id lookups, 204 on delete.
    V3,
}

/// What the panel said it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Detected {
    pub version: String,
    pub generation: Generation,
}

/// The generation of a `version` (`2.8.1`, `3.3.2`, `v3.0.0-beta.1`), or why it is refused.
pub fn generation_of(version: &str) -> Result<Generation, PanelError> {
    let numbers: Vec<u32> = version
        .trim()
        .trim_start_matches('v')
        .split(['.', '-', '+'])
        .take(2)
        .map_while(|p| p.parse().ok())
        .collect();
    match numbers.as_slice() {
        [2, minor] if *minor >= 8 => Ok(Generation::V2),
        [3, _] => Ok(Generation::V3),
        _ => Err(PanelError::Incompatible(format!(
            "Remnawave {version} is not supported: the shop works with Remnawave 2.8 and 3.x \
             (upgrade the panel to 2.8 or later)"
        ))),
    }
}

/// Every answer: `{"response": …}`.
#[derive(Deserialize)]
pub struct Envelope<T> {
    pub response: T,
}

#[derive(Debug, Deserialize)]
struct Metadata {
    version: String,
}

/// `status` of a user.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Status {
    Active,
    Disabled,
    Limited,
    Expired,
}

impl From<Status> for PanelUserStatus {
    fn from(s: Status) -> Self {
        match s {
            Status::Active => PanelUserStatus::Active,
            Status::Disabled => PanelUserStatus::Disabled,
            Status::Limited => PanelUserStatus::Limited,
            Status::Expired => PanelUserStatus::Expired,
        }
    }
}

/// `userTraffic` (2.3+).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UserTraffic {
    #[serde(default)]
    pub used_traffic_bytes: i64,
    #[serde(default)]
    pub lifetime_used_traffic_bytes: i64,
    #[serde(default)]
    pub online_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Squad {
    pub uuid: String,
}

/// The user object (§4.4; the fields the shop uses). 2.x has `uuid` and `id`, 3.x only `id`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct User {
    #[serde(default)]
    pub uuid: Option<String>,
    #[serde(default)]
    pub id: Option<i64>,
    pub short_uuid: String,
    pub username: String,
    pub status: Status,
    #[serde(default)]
    pub traffic_limit_bytes: i64,
    #[serde(default)]
    pub traffic_limit_strategy: Option<String>,
    pub expire_at: DateTime<Utc>,
    #[serde(default)]
    pub telegram_id: Option<i64>,
    #[serde(default)]
    pub hwid_device_limit: Option<i64>,
    #[serde(default)]
    pub active_internal_squads: Vec<Squad>,
    /// Absolute, `https://`, stable until a revoke.
    pub subscription_url: String,
    #[serde(default)]
    pub user_traffic: Option<UserTraffic>,
    /// 2.0–2.2 kept the traffic at the top level.
    #[serde(default)]
    pub used_traffic_bytes: Option<i64>,
    #[serde(default)]
    pub lifetime_used_traffic_bytes: Option<i64>,
    #[serde(default)]
    pub online_at: Option<DateTime<Utc>>,
}

impl User {
    fn into_shop(self) -> PanelUser {
        let traffic = self.user_traffic.unwrap_or_default();
        let expire = self.expire_at.timestamp();
        PanelUser {
            username: self.username,
            id: self.id,
            uuid: self.uuid,
            status: self.status.into(),
            expire: (expire < NEVER).then_some(expire),
            data_limit: (self.traffic_limit_bytes > 0).then_some(self.traffic_limit_bytes),
            used_traffic: self
                .used_traffic_bytes
                .unwrap_or(traffic.used_traffic_bytes),
            lifetime_used_traffic: self
                .lifetime_used_traffic_bytes
                .unwrap_or(traffic.lifetime_used_traffic_bytes),
            online_at: self.online_at.or(traffic.online_at),
            subscription_url: self.subscription_url,
            next_plan: None,
        }
    }
}

/// `CreateUser` (§4.2).
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct CreateUser {
    pub username: String,
    pub expire_at: String,
    pub status: &'static str,
    /// Bytes; 0 = unlimited.
    pub traffic_limit_bytes: i64,
    pub traffic_limit_strategy: &'static str,
    /// Always sent and never empty: a user without squads cannot connect.
    pub active_internal_squads: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub telegram_id: Option<i64>,
    pub description: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hwid_device_limit: Option<u32>,
}

#[derive(Debug, Deserialize)]
struct UsersPageResponse {
    users: Vec<User>,
    total: u64,
}

/// `GET /api/system/stats` (the parts the shop records).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct Stats {
    cpu: Cpu,
    memory: Memory,
    users: UserCounts,
    online_stats: OnlineStats,
    nodes: Nodes,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Cpu {
    cores: i32,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Memory {
    total: i64,
    used: i64,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct UserCounts {
    status_counts: std::collections::BTreeMap<String, i64>,
    total_users: i64,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct OnlineStats {
    online_now: i64,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct Nodes {
    /// A string (BigInt).
    total_bytes_lifetime: Option<Value>,
}

/// An expiry as Remnawave takes it: UTC with `Z` (an offset-less value would be read in the
/// server's zone); 0 = never, sent as a far-future date.
fn expire_at(unix: i64) -> String {
    let unix = if unix == 0 { NEVER } else { unix };
    DateTime::from_timestamp(unix, 0)
        .unwrap_or(DateTime::UNIX_EPOCH)
        .to_rfc3339_opts(SecondsFormat::Millis, true)
}

pub struct RemnawaveClient {
    http: PanelHttp,
    squads: Vec<String>,
    device_limit: Option<u32>,
    detected: OnceCell<Detected>,
}

impl RemnawaveClient {
    pub fn new(
        panel: &PanelSettings,
        settings: &RemnawaveSettings,
        metrics: Arc<Metrics>,
    ) -> anyhow::Result<Self> {
        let auth = Auth::Bearer {
            token: settings.token.clone(),
            variable: "REMNAWAVE_TOKEN",
        };
        // What the panel's own contract sends to reach it directly (§0); the extra headers may
        // replace them, for a proxy that wants other values.
        let mut headers = HeaderMap::new();
        headers.insert(
            HeaderName::from_static("x-forwarded-for"),
            HeaderValue::from_static("127.0.0.1"),
        );
        headers.insert(
            HeaderName::from_static("x-forwarded-proto"),
            HeaderValue::from_static("https"),
        );
        for (name, value) in &settings.extra_headers.0 {
            headers.insert(name.clone(), value.clone());
        }
        let http = PanelHttp::new(
            settings.url.clone(),
            settings.url.clone(),
            auth,
            panel.timeout,
            panel.write_concurrency,
            metrics,
        )?
        .with_headers(headers)
        .with_error_shape(ErrorShape::Remnawave);
        Ok(RemnawaveClient {
            http,
            squads: settings.squads.iter().map(ToString::to_string).collect(),
            device_limit: settings.device_limit,
            detected: OnceCell::new(),
        })
    }

    pub fn base_url(&self) -> &Url {
        self.http.base()
    }

    /// The panel's version and API generation, read once (`GET /api/system/metadata`, 2.5+);
    /// an unsupported version is an [`PanelError::Incompatible`] on every call.
    pub async fn detect(&self) -> Result<&Detected, PanelError> {
        self.detected
            .get_or_try_init(|| async {
                let metadata = self
                    .http
                    .get::<Envelope<Metadata>>("/api/system/metadata", &[], "metadata")
                    .await;
                let version = match metadata {
                    Ok(m) => m.response.version,
                    Err(PanelError::NotFound) => {
                        return Err(PanelError::Incompatible(
                            "this Remnawave has no /api/system/metadata (older than 2.5) and is \
                             not supported: the shop works with Remnawave 2.8 and 3.x"
                                .into(),
                        ));
                    }
                    Err(e) => return Err(e),
                };
                let generation = generation_of(&version)?;
                tracing::info!(%version, ?generation, "Remnawave panel version");
                Ok(Detected {
                    version,
                    generation,
                })
            })
            .await
    }

    async fn generation(&self) -> Result<Generation, PanelError> {
        Ok(self.detect().await?.generation)
    }

    /// The path segment that names `user` in this generation's routes.
    fn key(generation: Generation, user: &PanelUser) -> Option<String> {
        match generation {
            Generation::V2 => user.uuid.clone(),
            Generation::V3 => user.id.map(|id| id.to_string()),
        }
    }

    /// `user`'s key, looked up by name when the answer it came from lacked it.
    async fn key_of(&self, generation: Generation, user: &PanelUser) -> Result<String, PanelError> {
        if let Some(key) = Self::key(generation, user) {
            return Ok(key);
        }
        let found = self.get_user(&user.username).await?;
        Self::key(generation, &found).ok_or_else(|| {
            PanelError::Decode(format!("a Remnawave user without its {generation:?} key"))
        })
    }

    /// The user named exactly `username` (case-sensitive; kept in 2.8 and 3.x).
    pub async fn get_user(&self, username: &str) -> Result<PanelUser, PanelError> {
        self.generation().await?;
        // Shop usernames are [a-z0-9_]: nothing to escape in a path segment.
        let path = format!("/api/users/by-username/{username}");
        let user: Envelope<User> = self.http.get(&path, &[], "get_user").await?;
        Ok(user.response.into_shop())
    }

    pub fn create_body(&self, user: &NewUser<'_>) -> CreateUser {
        CreateUser {
            username: user.username.to_owned(),
            expire_at: expire_at(user.desired.expire),
            status: "ACTIVE",
            traffic_limit_bytes: user.desired.data_limit.max(0),
            traffic_limit_strategy: "NO_RESET",
            active_internal_squads: self.squads.clone(),
            telegram_id: user.telegram_id,
            description: user.note(),
            hwid_device_limit: self.device_limit,
        }
    }

    /// Creates an active user in the configured squads (201). Not retried: a repeat after a
    /// timeout finds the username taken (A019), `AlreadyExists`.
    pub async fn create_user(&self, user: &NewUser<'_>) -> Result<PanelUser, PanelError> {
        self.generation().await?;
        self.create_with("/api/users", &self.create_body(user))
            .await
    }

    /// `PATCH /api/users` with absolute values (safe to repeat), then the status through its
    /// action: a PATCH's `DISABLED` is ignored on a limited or expired user. Squads are never
    /// sent (a list would replace the user's). Remnawave refuses an expiry in the past, so a
    /// subscription cut short to a past date is disabled instead: its access ends either way.
    pub async fn modify_user(
        &self,
        user: &PanelUser,
        changes: &Drift,
    ) -> Result<PanelUser, PanelError> {
        let generation = self.generation().await?;
        let now = Utc::now().timestamp();
        let past = changes.expire.filter(|e| *e != 0 && *e <= now);
        let mut body = Map::new();
        if let Some(expire) = changes.expire.filter(|_| past.is_none()) {
            body.insert("expireAt".into(), json!(expire_at(expire)));
        }
        if let Some(limit) = changes.data_limit {
            body.insert("trafficLimitBytes".into(), json!(limit.max(0)));
        }
        let mut current = None;
        if !body.is_empty() {
            // Who: 2.8 by `uuid`, 3.x by `id`, by `username` (both) when the answer lacked it.
            let (field, who) = match (generation, &user.uuid, user.id) {
                (Generation::V2, Some(uuid), _) => ("uuid", json!(uuid)),
                (Generation::V3, _, Some(id)) => ("id", json!(id)),
                _ => ("username", json!(user.username)),
            };
            body.insert(field.into(), who);
            let body = Value::Object(body);
            current = Some(
                self.user_call(
                    Method::PATCH,
                    "/api/users",
                    Some(&body),
                    "modify_user",
                    Retry::Idempotent,
                )
                .await?,
            );
        }
        let status = if past.is_some() {
            tracing::info!(
                username = %user.username,
                "Remnawave refuses a past expiry: the user is disabled instead"
            );
            Some(WantedStatus::Disabled)
        } else {
            changes.status
        };
        match status {
            // A PATCH that moved an expired user's date made it active already.
            Some(WantedStatus::Active)
                if current
                    .as_ref()
                    .is_some_and(|c| c.status == PanelUserStatus::Active) =>
            {
                current.ok_or(PanelError::NotFound)
            }
            Some(status) => {
                let target = current.as_ref().unwrap_or(user);
                self.set_status(generation, target, status).await
            }
            None => match current {
                Some(updated) => Ok(updated),
                None => self.get_user(&user.username).await,
            },
        }
    }

    /// `actions/enable` or `actions/disable`; a 400 for a user already in that state counts as
    /// done (the user is read to be sure).
    async fn set_status(
        &self,
        generation: Generation,
        user: &PanelUser,
        status: WantedStatus,
    ) -> Result<PanelUser, PanelError> {
        let (action, endpoint, wanted) = match status {
            WantedStatus::Active => ("enable", "enable_user", PanelUserStatus::Active),
            WantedStatus::Disabled => ("disable", "disable_user", PanelUserStatus::Disabled),
        };
        let key = self.key_of(generation, user).await?;
        let path = format!("/api/users/{key}/actions/{action}");
        match self
            .user_call(Method::POST, &path, None, endpoint, Retry::Idempotent)
            .await
        {
            Err(error @ PanelError::BadRequest(_)) => {
                let now = self.get_user(&user.username).await?;
                if now.status == wanted {
                    Ok(now)
                } else {
                    Err(error)
                }
            }
            other => other,
        }
    }

    /// The user's key by name (`NotFound` when there is no such user).
    async fn lookup(&self, username: &str) -> Result<(Generation, String), PanelError> {
        let generation = self.generation().await?;
        let user = self.get_user(username).await?;
        let key = self.key_of(generation, &user).await?;
        Ok((generation, key))
    }

    /// Deletes a user (2.8: `{"isDeleted": true}`, 3.x: 204); one already gone counts as deleted.
    pub async fn delete_user(&self, username: &str) -> Result<(), PanelError> {
        let key = match self.lookup(username).await {
            Ok((_, key)) => key,
            Err(PanelError::NotFound) => return Ok(()),
            Err(e) => return Err(e),
        };
        match self
            .http
            .call(
                Method::DELETE,
                &format!("/api/users/{key}"),
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

    /// Used traffic to 0; only a `LIMITED` user becomes active, other statuses stay.
    pub async fn reset_usage(&self, username: &str) -> Result<PanelUser, PanelError> {
        let (_, key) = self.lookup(username).await?;
        let path = format!("/api/users/{key}/actions/reset-traffic");
        self.user_call(Method::POST, &path, None, "reset_user", Retry::Once)
            .await
    }

    /// New credentials and short id, so a new subscription URL; the old one stops working.
    pub async fn revoke_subscription(&self, username: &str) -> Result<PanelUser, PanelError> {
        let (_, key) = self.lookup(username).await?;
        let path = format!("/api/users/{key}/actions/revoke");
        self.user_call(Method::POST, &path, None, "revoke_sub", Retry::Once)
            .await
    }

    /// One page of `GET /api/users` (`start`/`size`, newest first: the panel's stable order by
    /// id), the search as a `username` contains-filter.
    pub async fn list_users(
        &self,
        query: &UserQuery<'_>,
        offset: u64,
        limit: u32,
    ) -> Result<UsersPage, PanelError> {
        self.generation().await?;
        let mut filters = Vec::new();
        let mut modes = Map::new();
        if let Some(search) = query.search {
            filters.push(json!({"id": "username", "value": search}));
        }
        if let Some(status) = query.status {
            let status = match status {
                PanelUserStatus::Active => "ACTIVE",
                PanelUserStatus::Disabled => "DISABLED",
                PanelUserStatus::Limited => "LIMITED",
                PanelUserStatus::Expired => "EXPIRED",
                // Remnawave has no on-hold users.
                PanelUserStatus::OnHold => {
                    return Ok(UsersPage {
                        users: Vec::new(),
                        total: 0,
                    });
                }
            };
            filters.push(json!({"id": "status", "value": status}));
            modes.insert("status".into(), json!("equals"));
        }
        let mut params = vec![
            ("start", offset.to_string()),
            ("size", limit.clamp(1, 1000).to_string()),
        ];
        if !filters.is_empty() {
            params.push(("filters", Value::Array(filters).to_string()));
        }
        if !modes.is_empty() {
            params.push(("filterModes", Value::Object(modes).to_string()));
        }
        let page: Envelope<UsersPageResponse> =
            self.http.get("/api/users", &params, "list_users").await?;
        Ok(UsersPage {
            users: page
                .response
                .users
                .into_iter()
                .map(User::into_shop)
                .collect(),
            total: page.response.total,
        })
    }

    /// `GET /api/system/stats` in the shop's terms: no CPU load, no on-hold users, and only the
    /// nodes' lifetime total of traffic (recorded as outgoing).
    pub async fn system(&self) -> Result<SystemStats, PanelError> {
        let version = self.detect().await?.version.clone();
        let s: Envelope<Stats> = self.http.get("/api/system/stats", &[], "system").await?;
        let s = s.response;
        let count = |status: &str| s.users.status_counts.get(status).copied().unwrap_or(0);
        let lifetime = match &s.nodes.total_bytes_lifetime {
            Some(Value::String(text)) => text.parse().unwrap_or(0),
            Some(Value::Number(n)) => n.as_i64().unwrap_or(0),
            _ => 0,
        };
        Ok(SystemStats {
            version: Some(version),
            mem_total: s.memory.total,
            mem_used: s.memory.used,
            cpu_cores: s.cpu.cores,
            cpu_usage: 0.0,
            total_user: s.users.total_users,
            online_users: s.online_stats.online_now,
            users_active: count("ACTIVE"),
            users_on_hold: 0,
            users_disabled: count("DISABLED"),
            users_expired: count("EXPIRED"),
            users_limited: count("LIMITED"),
            incoming_bandwidth: 0,
            outgoing_bandwidth: lifetime,
            incoming_bandwidth_speed: None,
            outgoing_bandwidth_speed: None,
        })
    }

    /// `GET /api/system/metadata` once, not repeated: checks the token, and the version when it
    /// was not read yet.
    pub async fn probe(&self) -> Result<(), PanelError> {
        let response = self
            .http
            .call(
                Method::GET,
                "/api/system/metadata",
                &[],
                None,
                "probe",
                Retry::Once,
            )
            .await?;
        if self.detected.get().is_none() {
            let metadata: Envelope<Metadata> = PanelHttp::json(response).await?;
            let generation = generation_of(&metadata.response.version)?;
            // Another call may have set it meanwhile: the same answer either way.
            let _ = self.detected.set(Detected {
                version: metadata.response.version,
                generation,
            });
        }
        Ok(())
    }
}

impl UserApi for RemnawaveClient {
    type User = Envelope<User>;

    fn http(&self) -> &PanelHttp {
        &self.http
    }

    fn shop_user(&self, user: Envelope<User>) -> PanelUser {
        user.response.into_shop()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_pick_the_generation_or_are_refused() {
        assert_eq!(generation_of("2.8.1").unwrap(), Generation::V2);
        assert_eq!(generation_of("2.8.35").unwrap(), Generation::V2);
        assert_eq!(generation_of("3.3.2").unwrap(), Generation::V3);
        assert_eq!(generation_of("v3.0.0-beta.1").unwrap(), Generation::V3);
        for old in ["2.7.4", "2.0.0", "1.6.18", "4.0.0", "", "dev"] {
            let e = generation_of(old).unwrap_err();
            assert!(matches!(e, PanelError::Incompatible(_)), "{old}");
            assert!(e.to_string().contains("2.8 and 3.x"), "{e}");
            assert!(!e.is_transient());
        }
    }

    /// The user object of the reference (§4.4), and a 3.x one without `uuid`.
    #[test]
    fn the_reference_users_parse() {
        let mut user = json!({"uuid":"9b2d0c5e-1111-4c1e-9a51-6b2c8e4f1a37","id":1042,
            "shortUuid":"x7Kp2mQ9aZr4Tn8w","username":"tg_123456789",
            "status":"ACTIVE","trafficLimitBytes":53687091200i64,"trafficLimitStrategy":"NO_RESET",
            "expireAt":"2026-09-01T00:00:00.000Z","telegramId":123456789,"email":null,
            "description":"order 42","tag":null,"hwidDeviceLimit":3,"externalSquadUuid":null,
            "trojanPassword":"p","vlessUuid":"0f6a","ssPassword":"s","lastTriggeredThreshold":0,
            "subRevokedAt":null,"lastTrafficResetAt":null,
            "createdAt":"2026-08-01T10:00:00.000Z","updatedAt":"2026-08-01T10:00:00.000Z",
            "subscriptionUrl":"https://panel.example.com/api/sub/x7Kp2mQ9aZr4Tn8w",
            "activeInternalSquads":[{"uuid":"3c1e","name":"Default-Squad"}],
            "userTraffic":{"usedTrafficBytes":1048576,"lifetimeUsedTrafficBytes":2097152,
              "onlineAt":null,"firstConnectedAt":null,"lastConnectedNodeUuid":null}});
        let shop = serde_json::from_value::<User>(user.clone())
            .unwrap()
            .into_shop();
        assert_eq!(shop.expire, Some(1_788_220_800));
        assert_eq!(shop.data_limit, Some(53_687_091_200));
        assert_eq!(
            (shop.used_traffic, shop.lifetime_used_traffic),
            (1_048_576, 2_097_152)
        );
        assert_eq!(
            shop.uuid.as_deref(),
            Some("9b2d0c5e-1111-4c1e-9a51-6b2c8e4f1a37")
        );
        assert_eq!(shop.id, Some(1042));
        user.as_object_mut().unwrap().remove("uuid");
        user["expireAt"] = json!(expire_at(0));
        user["trafficLimitBytes"] = json!(0);
        user["status"] = json!("LIMITED");
        let shop = serde_json::from_value::<User>(user).unwrap().into_shop();
        assert_eq!((shop.uuid, shop.id), (None, Some(1042)));
        assert_eq!((shop.expire, shop.data_limit), (None, None));
        assert_eq!(shop.status, PanelUserStatus::Limited);
    }

    #[test]
    fn expiry_is_sent_in_utc_with_z() {
        assert_eq!(expire_at(1_788_220_800), "2026-09-01T00:00:00.000Z");
        assert_eq!(expire_at(0), "2100-01-01T00:00:00.000Z");
    }
}
