//! Typed client of the Marzban 0.8.4 REST API (see `shared/reference/marzban-api.md`).
//!
//! Logs in with the admin form and caches the token (re-fetched once on a 401); every call has a
//! timeout; idempotent calls (GET, PUT with absolute values, DELETE) are retried with backoff on
//! transport errors and 5xx, other calls never; writes are bounded by a semaphore
//! (`MARZBAN_WRITE_CONCURRENCY`). Panel quirks handled here: `inbounds` is always sent on create,
//! a PUT re-sends an existing `next_plan` (a PUT without it deletes it), relative subscription
//! URLs are made absolute, and a DELETE that answers 500 but left the user gone counts as done.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::NaiveDateTime;
use reqwest::{Method, StatusCode, Url};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tokio::sync::{Mutex, Semaphore};

use crate::config::{MarzbanSettings, Secret};
use crate::domain::PanelUserStatus;
use crate::domain::panel::{Drift, PanelState, WantedStatus};
use crate::metrics::Metrics;

/// What went wrong talking to the panel, in terms a caller can act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PanelError {
    #[error("user not found on the panel")]
    NotFound,
    #[error("user already exists on the panel")]
    AlreadyExists,
    #[error("the panel rejected {field}: {message}")]
    Validation { field: String, message: String },
    #[error("the panel refused the request: {0}")]
    BadRequest(String),
    #[error("the panel admin may not do this: {0}")]
    Forbidden(String),
    #[error("the panel refused the credentials: {0}")]
    Unauthorized(String),
    #[error("the panel failed with {status}: {detail}")]
    Server { status: u16, detail: String },
    #[error("the panel could not be reached: {0}")]
    Transport(String),
    #[error("unexpected answer from the panel: {0}")]
    Decode(String),
}

impl PanelError {
    /// Worth retrying later: the panel may be back, or may have finished the work.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            PanelError::Server { .. } | PanelError::Transport(_) | PanelError::Unauthorized(_)
        )
    }
}

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

impl UserResponse {
    pub fn state(&self) -> PanelState {
        PanelState {
            expire: self.expire,
            data_limit: self.data_limit,
            status: self.status,
        }
    }
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

/// `UserModify`: only the fields to change; absent fields stay as they are.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct UserModify {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expire: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_limit: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<&'static str>,
    /// Re-sent as the panel has it, or the PUT deletes it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_plan: Option<Value>,
}

impl UserModify {
    /// The PUT that applies `drift` to `current` without losing its next plan.
    pub fn from_drift(drift: &Drift, current: &UserResponse) -> Self {
        UserModify {
            expire: drift.expire,
            data_limit: drift.data_limit,
            status: drift.status.map(WantedStatus::as_str),
            next_plan: current.next_plan.clone().filter(|p| !p.is_null()),
        }
    }
}

/// A page of `GET /api/users`.
#[derive(Debug, Clone, Deserialize)]
pub struct UsersPage {
    pub users: Vec<UserResponse>,
    pub total: u64,
}

/// `GET /api/system`.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
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
    pub incoming_bandwidth_speed: i64,
    pub outgoing_bandwidth_speed: i64,
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

/// Filters of `GET /api/users`.
#[derive(Debug, Clone, Default)]
pub struct UserQuery<'a> {
    pub search: Option<&'a str>,
    pub status: Option<PanelUserStatus>,
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
}

/// How a call may be repeated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Retry {
    /// Same request, same result: retried on transport errors and 5xx.
    Idempotent,
    /// Like `Idempotent`, but a 500 is returned at once: the caller knows what it means.
    IdempotentUnless500,
    /// Could act twice: never repeated here (the job is retried as a whole instead).
    Once,
}

/// Attempts of an idempotent call (the first included).
const ATTEMPTS: u32 = 3;
const RETRY_BASE: Duration = Duration::from_millis(250);

pub struct MarzbanClient {
    http: reqwest::Client,
    base: Url,
    subscription_base: Url,
    username: String,
    password: Secret,
    token: Mutex<Option<String>>,
    writes: Semaphore,
    metrics: Arc<Metrics>,
}

impl MarzbanClient {
    pub fn new(settings: &MarzbanSettings, metrics: Arc<Metrics>) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(settings.timeout)
            .connect_timeout(settings.timeout)
            .user_agent(concat!("vpn-shop/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(MarzbanClient {
            http,
            base: settings.url.clone(),
            subscription_base: settings.subscription_base_url.clone(),
            username: settings.username.clone(),
            password: settings.password.clone(),
            token: Mutex::new(None),
            writes: Semaphore::new(settings.write_concurrency),
            metrics,
        })
    }

    fn url(&self, path: &str) -> Url {
        let mut url = self.base.clone();
        let base_path = url.path().trim_end_matches('/').to_owned();
        url.set_path(&format!("{base_path}{path}"));
        url
    }

    /// The subscription URL as users need it: absolute, prefixed with
    /// `MARZBAN_SUBSCRIPTION_BASE_URL` when the panel answered a relative one.
    pub fn absolute_subscription_url(&self, url: &str) -> String {
        if url.starts_with("http://") || url.starts_with("https://") {
            return url.to_owned();
        }
        let base = self.subscription_base.as_str().trim_end_matches('/');
        format!("{base}/{}", url.trim_start_matches('/'))
    }

    async fn login(&self) -> Result<String, PanelError> {
        let started = Instant::now();
        let result = self
            .http
            .post(self.url("/api/admin/token"))
            .form(&[
                ("grant_type", "password"),
                ("username", self.username.as_str()),
                ("password", self.password.expose()),
            ])
            .send()
            .await;
        let response = self.observe("login", started, result)?;
        match response.status() {
            StatusCode::OK => {
                let token: TokenResponse = response
                    .json()
                    .await
                    .map_err(|e| PanelError::Decode(e.to_string()))?;
                tracing::info!(admin = %self.username, "logged in to the panel");
                Ok(token.access_token)
            }
            status => match error_of(status, response).await {
                PanelError::Unauthorized(detail) => Err(PanelError::Unauthorized(format!(
                    "{detail} (check MARZBAN_USERNAME and MARZBAN_PASSWORD)"
                ))),
                other => Err(other),
            },
        }
    }

    /// The cached token, logging in when there is none.
    async fn token(&self) -> Result<String, PanelError> {
        let mut cached = self.token.lock().await;
        if let Some(token) = cached.as_ref() {
            return Ok(token.clone());
        }
        let token = self.login().await?;
        *cached = Some(token.clone());
        Ok(token)
    }

    /// Forgets `stale` (unless another call already replaced it) and logs in again.
    async fn refresh_token(&self, stale: &str) -> Result<String, PanelError> {
        let mut cached = self.token.lock().await;
        if let Some(current) = cached.as_ref()
            && current != stale
        {
            return Ok(current.clone());
        }
        *cached = None;
        let token = self.login().await?;
        *cached = Some(token.clone());
        Ok(token)
    }

    fn observe(
        &self,
        endpoint: &'static str,
        started: Instant,
        result: reqwest::Result<reqwest::Response>,
    ) -> Result<reqwest::Response, PanelError> {
        debug_assert!(
            crate::metrics::known::PANEL_ENDPOINTS.contains(&endpoint),
            "{endpoint}: add it to metrics::known::PANEL_ENDPOINTS"
        );
        let status = match &result {
            Ok(response) => response.status().as_u16().to_string(),
            Err(e) if e.is_timeout() => "timeout".to_owned(),
            Err(_) => "error".to_owned(),
        };
        self.metrics
            .panel_requests
            .with_label_values(&[endpoint, &status])
            .inc();
        self.metrics
            .panel_duration
            .with_label_values(&[endpoint])
            .observe(started.elapsed().as_secs_f64());
        result.map_err(|e| {
            PanelError::Transport(if e.is_timeout() {
                "timed out".to_owned()
            } else {
                // Without the URL: it is ours, and the source chain says what failed.
                let e = e.without_url();
                let mut text = e.to_string();
                let mut source = std::error::Error::source(&e);
                while let Some(s) = source {
                    text.push_str(": ");
                    text.push_str(&s.to_string());
                    source = s.source();
                }
                text
            })
        })
    }

    /// One API call with authentication, the re-login on 401 and, for idempotent calls,
    /// retries on transport errors and 5xx. Returns the successful response.
    async fn call(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&Value>,
        endpoint: &'static str,
        retry: Retry,
    ) -> Result<reqwest::Response, PanelError> {
        let _permit = if method == Method::GET {
            None
        } else {
            // The semaphore is never closed, so acquiring cannot fail.
            self.writes.acquire().await.ok()
        };
        let mut token = self.token().await?;
        let mut relogged = false;
        let mut attempt = 1;
        loop {
            let mut request = self
                .http
                .request(method.clone(), self.url(path))
                .bearer_auth(&token)
                .query(query);
            if let Some(body) = body {
                request = request.json(body);
            }
            let started = Instant::now();
            let result = self.observe(endpoint, started, request.send().await);
            let error = match result {
                Ok(response) if response.status().is_success() => return Ok(response),
                Ok(response) if response.status() == StatusCode::UNAUTHORIZED && !relogged => {
                    // Expired or revoked token (the panel has no refresh): log in once more.
                    relogged = true;
                    token = self.refresh_token(&token).await?;
                    continue;
                }
                Ok(response) => error_of(response.status(), response).await,
                Err(e) => e,
            };
            let retryable = match error {
                PanelError::Server { status: 500, .. } => retry == Retry::Idempotent,
                PanelError::Server { .. } | PanelError::Transport(_) => true,
                _ => false,
            };
            if retry == Retry::Once || !retryable || attempt >= ATTEMPTS {
                return Err(error);
            }
            let delay = RETRY_BASE * 2u32.pow(attempt - 1);
            let delay = delay.mul_f64(0.5 + rand::random::<f64>() / 2.0);
            tracing::debug!(endpoint, attempt, error = %error, delay_ms = delay.as_millis() as u64, "retrying a panel call");
            tokio::time::sleep(delay).await;
            attempt += 1;
        }
    }

    async fn json<T: DeserializeOwned>(response: reqwest::Response) -> Result<T, PanelError> {
        let bytes = response
            .bytes()
            .await
            .map_err(|e| PanelError::Transport(e.to_string()))?;
        serde_json::from_slice(&bytes).map_err(|e| PanelError::Decode(e.to_string()))
    }

    fn user_path(username: &str, suffix: &str) -> String {
        // Panel usernames are [a-z0-9_@.-]: nothing to escape in a path segment.
        format!("/api/user/{username}{suffix}")
    }

    pub async fn get_user(&self, username: &str) -> Result<UserResponse, PanelError> {
        let path = Self::user_path(username, "");
        let response = self
            .call(Method::GET, &path, &[], None, "get_user", Retry::Idempotent)
            .await?;
        Self::json(response).await
    }

    /// Creates a user. Not retried: after a timeout the user may exist, which the caller finds
    /// out from the 409 of its next attempt.
    pub async fn create_user(&self, user: &UserCreate) -> Result<UserResponse, PanelError> {
        let body = serde_json::to_value(user).map_err(|e| PanelError::Decode(e.to_string()))?;
        let response = self
            .call(
                Method::POST,
                "/api/user",
                &[],
                Some(&body),
                "create_user",
                Retry::Once,
            )
            .await?;
        Self::json(response).await
    }

    /// Modifies a user with absolute values: safe to repeat.
    pub async fn modify_user(
        &self,
        username: &str,
        changes: &UserModify,
    ) -> Result<UserResponse, PanelError> {
        let body = serde_json::to_value(changes).map_err(|e| PanelError::Decode(e.to_string()))?;
        let path = Self::user_path(username, "");
        let response = self
            .call(
                Method::PUT,
                &path,
                &[],
                Some(&body),
                "modify_user",
                Retry::Idempotent,
            )
            .await?;
        Self::json(response).await
    }

    /// Deletes a user; a user that is already gone counts as deleted.
    pub async fn delete_user(&self, username: &str) -> Result<(), PanelError> {
        let path = Self::user_path(username, "");
        match self
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
    pub async fn reset_usage(&self, username: &str) -> Result<UserResponse, PanelError> {
        let path = Self::user_path(username, "/reset");
        let response = self
            .call(Method::POST, &path, &[], None, "reset_user", Retry::Once)
            .await?;
        Self::json(response).await
    }

    /// New credentials and subscription URL; every earlier link stops working.
    pub async fn revoke_subscription(&self, username: &str) -> Result<UserResponse, PanelError> {
        let path = Self::user_path(username, "/revoke_sub");
        let response = self
            .call(Method::POST, &path, &[], None, "revoke_sub", Retry::Once)
            .await?;
        Self::json(response).await
    }

    /// One page of users; `total` counts every match before paging.
    pub async fn list_users(
        &self,
        query: &UserQuery<'_>,
        offset: u64,
        limit: u32,
    ) -> Result<UsersPage, PanelError> {
        let mut params = vec![("offset", offset.to_string()), ("limit", limit.to_string())];
        if let Some(search) = query.search {
            params.push(("search", search.to_owned()));
        }
        if let Some(status) = query.status {
            params.push(("status", status.as_str().to_owned()));
        }
        let response = self
            .call(
                Method::GET,
                "/api/users",
                &params,
                None,
                "list_users",
                Retry::Idempotent,
            )
            .await?;
        Self::json(response).await
    }

    pub async fn system(&self) -> Result<SystemStats, PanelError> {
        let response = self
            .call(
                Method::GET,
                "/api/system",
                &[],
                None,
                "system",
                Retry::Idempotent,
            )
            .await?;
        Self::json(response).await
    }

    /// One `GET /api/system`, not repeated, counted apart (endpoint `probe`): is the panel
    /// reachable and does it take our credentials?
    pub async fn probe(&self) -> Result<(), PanelError> {
        self.call(Method::GET, "/api/system", &[], None, "probe", Retry::Once)
            .await
            .map(drop)
    }

    pub async fn inbounds(&self) -> Result<BTreeMap<String, Vec<Inbound>>, PanelError> {
        let response = self
            .call(
                Method::GET,
                "/api/inbounds",
                &[],
                None,
                "inbounds",
                Retry::Idempotent,
            )
            .await?;
        Self::json(response).await
    }
}

/// Maps a non-success answer to a [`PanelError`], reading the panel's `{"detail": …}` body.
async fn error_of(status: StatusCode, response: reqwest::Response) -> PanelError {
    let body: Value = response.json().await.unwrap_or(Value::Null);
    let detail = match &body["detail"] {
        Value::String(s) => s.clone(),
        Value::Null => status.canonical_reason().unwrap_or("").to_owned(),
        other => other.to_string(),
    };
    match status.as_u16() {
        404 => PanelError::NotFound,
        409 => PanelError::AlreadyExists,
        401 => PanelError::Unauthorized(detail),
        403 => PanelError::Forbidden(detail),
        422 => {
            // {"detail": {"<field>": "<message>"}}
            let (field, message) = body["detail"]
                .as_object()
                .and_then(|m| m.iter().next())
                .map(|(f, m)| {
                    (
                        f.clone(),
                        m.as_str().map_or_else(|| m.to_string(), str::to_owned),
                    )
                })
                .unwrap_or_else(|| ("body".to_owned(), detail.clone()));
            PanelError::Validation { field, message }
        }
        s if s >= 500 => PanelError::Server { status: s, detail },
        _ => PanelError::BadRequest(detail),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Marzban 0.8.4's answers as `shared/reference/marzban-api.md` quotes them.
    #[test]
    fn recorded_panel_answers_parse() {
        let user: UserResponse = serde_json::from_str(include_str!(
            "../../tests/it/fixtures/marzban-0.8.4-user.json"
        ))
        .expect("UserResponse");
        assert_eq!(user.username, "tg_123456789");
        assert_eq!(
            user.state(),
            PanelState {
                expire: Some(1_767_225_600),
                data_limit: Some(53_687_091_200),
                status: PanelUserStatus::Active,
            }
        );
        assert_eq!(user.used_traffic, 1_048_576);
        assert_eq!(user.inbounds["vless"], ["VLESS TCP REALITY"]);
        assert_eq!(
            user.created_at,
            NaiveDateTime::parse_from_str("2025-01-10T08:00:00", "%Y-%m-%dT%H:%M:%S").ok()
        );
        let inbounds: BTreeMap<String, Vec<Inbound>> = serde_json::from_str(include_str!(
            "../../tests/it/fixtures/marzban-0.8.4-inbounds.json"
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
        let settings = crate::config::Settings::from_raw(&raw).unwrap();
        MarzbanClient::new(
            &settings.marzban.unwrap(),
            Arc::new(Metrics::new().unwrap()),
        )
        .unwrap()
    }

    #[test]
    fn subscription_urls_are_made_absolute() {
        let c = client("https://panel.example.com:8000", "https://sub.example.com/");
        assert_eq!(
            c.absolute_subscription_url("/sub/abc"),
            "https://sub.example.com/sub/abc"
        );
        assert_eq!(
            c.absolute_subscription_url("https://x.example.com/sub/abc"),
            "https://x.example.com/sub/abc"
        );
        assert_eq!(
            c.url("/api/user/u").as_str(),
            "https://panel.example.com:8000/api/user/u"
        );
        let c = client("https://example.com/panel/", "https://example.com/panel");
        assert_eq!(
            c.url("/api/users").as_str(),
            "https://example.com/panel/api/users"
        );
        assert_eq!(
            c.absolute_subscription_url("/sub/abc"),
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
        let drift = Drift {
            expire: Some(20),
            data_limit: None,
            status: None,
        };
        let body = serde_json::to_value(UserModify::from_drift(&drift, &current)).unwrap();
        assert_eq!(
            body,
            serde_json::json!({"expire": 20, "next_plan": {"data_limit": 0, "expire": null}})
        );
    }
}
