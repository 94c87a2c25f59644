//! The HTTP plumbing the panel adapters share: authentication (the admin login form with a cached
//! token re-fetched once on a 401, a static API key or a static bearer token), headers sent on
//! every call, a timeout on every call, retries with backoff for idempotent calls, the write
//! semaphore, request metrics and the mapping of the panels' error bodies (Marzban's and its fork
//! PasarGuard's `{"detail": …}`, Remnawave's `{"message", "errorCode"}`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode, Url};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::{Mutex, Semaphore};

use super::PanelUser;
use crate::config::Secret;
use crate::domain::panel::{Drift, WantedStatus};
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
    /// The panel's version is one the adapter does not speak.
    #[error("{0}")]
    Incompatible(String),
    /// The shop asked for something this panel does not have (see `Capabilities`).
    #[error("{panel} does not support {feature}")]
    Unsupported {
        panel: &'static str,
        feature: &'static str,
    },
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

/// How the adapter proves who it is.
pub(crate) enum Auth {
    /// `POST /api/admin/token` (form), the token cached and fetched again once on a 401.
    Login {
        username: String,
        password: Secret,
        /// The variables to check, named in the error of a refused login.
        variables: &'static str,
        token: Mutex<Option<String>>,
    },
    /// A static key sent as `X-Api-Key` (PasarGuard 5.1+); a 401 is final.
    ApiKey { key: Secret, variable: &'static str },
    /// A static token sent as `Authorization: Bearer` (Remnawave's API tokens); a 401 is final.
    Bearer {
        token: Secret,
        variable: &'static str,
    },
}

impl Auth {
    /// The settings that hold the credentials.
    fn variables(&self) -> &'static str {
        match self {
            Auth::Login { variables, .. } => variables,
            Auth::ApiKey { variable, .. } | Auth::Bearer { variable, .. } => variable,
        }
    }

    pub(crate) fn login(username: String, password: Secret, variables: &'static str) -> Auth {
        Auth::Login {
            username,
            password,
            variables,
            token: Mutex::new(None),
        }
    }
}

/// `UserModify` of Marzban and PasarGuard: only the fields to change (absent ones stay as they
/// are), with the user's next plan re-sent (a PUT without it deletes it). `E` is how the panel
/// takes an expiry (Marzban: unix seconds; PasarGuard: a datetime).
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct UserModify<E> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expire: Option<E>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_limit: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_plan: Option<Value>,
}

impl<E> UserModify<E> {
    /// The PUT that applies `drift` to `current` without losing its next plan.
    pub fn from_drift(drift: &Drift, current: &PanelUser, expire: impl Fn(i64) -> E) -> Self {
        UserModify {
            expire: drift.expire.map(expire),
            data_limit: drift.data_limit,
            status: drift.status.map(WantedStatus::as_str),
            next_plan: current.next_plan.clone(),
        }
    }
}

/// What the adapters share above the HTTP calls: an answer of one user, in the panel's own shape
/// (`User`), becomes the shop's [`PanelUser`] through the adapter's `shop_user`.
pub(crate) trait UserApi {
    type User: DeserializeOwned;

    fn http(&self) -> &PanelHttp;

    fn shop_user(&self, user: Self::User) -> PanelUser;

    /// A call answered by one user.
    async fn user_call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        endpoint: &'static str,
        retry: Retry,
    ) -> Result<PanelUser, PanelError> {
        let user: Self::User = self
            .http()
            .send(method, path, body, endpoint, retry)
            .await?;
        Ok(self.shop_user(user))
    }

    /// `POST path` with the panel's create body. Not retried: after a timeout the user may
    /// exist, which the caller finds out from the `AlreadyExists` of its next attempt.
    async fn create_with(
        &self,
        path: &str,
        body: &impl Serialize,
    ) -> Result<PanelUser, PanelError> {
        let body = serde_json::to_value(body).map_err(|e| PanelError::Decode(e.to_string()))?;
        self.user_call(Method::POST, path, Some(&body), "create_user", Retry::Once)
            .await
    }
}

/// How a call may be repeated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Retry {
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

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
}

/// How a panel words its errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ErrorShape {
    /// FastAPI's `{"detail": "…"}`, `{"detail": {"<field>": "…"}}` on 422 (Marzban, PasarGuard).
    Detail,
    /// NestJS: `{"message", "errorCode"}`, zod's `{"message", "errors": [{"path", "message"}]}`.
    Remnawave,
}

/// One panel's HTTP connection: base URL, credentials, limits, metrics.
pub(crate) struct PanelHttp {
    http: reqwest::Client,
    base: Url,
    subscription_base: Url,
    auth: Auth,
    /// Sent on every call.
    headers: HeaderMap,
    errors: ErrorShape,
    writes: Semaphore,
    metrics: Arc<Metrics>,
}

impl PanelHttp {
    pub(crate) fn new(
        base: Url,
        subscription_base: Url,
        auth: Auth,
        timeout: Duration,
        write_concurrency: usize,
        metrics: Arc<Metrics>,
    ) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .user_agent(concat!("vpn-shop/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(PanelHttp {
            http,
            base,
            subscription_base,
            auth,
            headers: HeaderMap::new(),
            errors: ErrorShape::Detail,
            writes: Semaphore::new(write_concurrency),
            metrics,
        })
    }

    /// Sends `headers` on every call.
    pub(crate) fn with_headers(mut self, headers: HeaderMap) -> Self {
        self.headers = headers;
        self
    }

    pub(crate) fn with_error_shape(mut self, errors: ErrorShape) -> Self {
        self.errors = errors;
        self
    }

    pub(crate) fn base(&self) -> &Url {
        &self.base
    }

    pub(crate) fn url(&self, path: &str) -> Url {
        let mut url = self.base.clone();
        let base_path = url.path().trim_end_matches('/').to_owned();
        url.set_path(&format!("{base_path}{path}"));
        url
    }

    /// The subscription URL as users need it: absolute, prefixed with the configured
    /// subscription base when the panel answered a relative one (its URL prefix is empty).
    pub(crate) fn absolute_subscription_url(&self, url: &str) -> String {
        if url.is_empty() || url.starts_with("http://") || url.starts_with("https://") {
            return url.to_owned();
        }
        let base = self.subscription_base.as_str().trim_end_matches('/');
        format!("{base}/{}", url.trim_start_matches('/'))
    }

    async fn login(
        &self,
        username: &str,
        password: &Secret,
        variables: &str,
    ) -> Result<String, PanelError> {
        let started = Instant::now();
        let result = self
            .http
            .post(self.url("/api/admin/token"))
            .form(&[
                ("grant_type", "password"),
                ("username", username),
                ("password", password.expose()),
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
                tracing::info!(admin = %username, "logged in to the panel");
                Ok(token.access_token)
            }
            status => match error_of(self.errors, status, response).await {
                PanelError::Unauthorized(detail) => Err(PanelError::Unauthorized(format!(
                    "{detail} (check {variables})"
                ))),
                other => Err(other),
            },
        }
    }

    /// The credential to send: the cached token (logging in when there is none) or the key.
    async fn credential(&self) -> Result<String, PanelError> {
        match &self.auth {
            Auth::ApiKey { key, .. } => Ok(key.expose().to_owned()),
            Auth::Bearer { token, .. } => Ok(token.expose().to_owned()),
            Auth::Login {
                username,
                password,
                variables,
                token,
            } => {
                let mut cached = token.lock().await;
                if let Some(token) = cached.as_ref() {
                    return Ok(token.clone());
                }
                let fresh = self.login(username, password, variables).await?;
                *cached = Some(fresh.clone());
                Ok(fresh)
            }
        }
    }

    /// Forgets `stale` (unless another call already replaced it) and logs in again; `None` for
    /// an API key or token, which cannot be renewed.
    async fn refresh(&self, stale: &str) -> Result<Option<String>, PanelError> {
        let Auth::Login {
            username,
            password,
            variables,
            token,
        } = &self.auth
        else {
            return Ok(None);
        };
        let mut cached = token.lock().await;
        if let Some(current) = cached.as_ref()
            && current != stale
        {
            return Ok(Some(current.clone()));
        }
        *cached = None;
        let fresh = self.login(username, password, variables).await?;
        *cached = Some(fresh.clone());
        Ok(Some(fresh))
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
    pub(crate) async fn call(
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
        let mut credential = self.credential().await?;
        let mut relogged = false;
        let mut attempt = 1;
        loop {
            let mut request = self
                .http
                .request(method.clone(), self.url(path))
                .headers(self.headers.clone())
                .query(query);
            request = match &self.auth {
                Auth::Login { .. } | Auth::Bearer { .. } => request.bearer_auth(&credential),
                Auth::ApiKey { .. } => request.header("X-Api-Key", &credential),
            };
            if let Some(body) = body {
                request = request.json(body);
            }
            let started = Instant::now();
            let result = self.observe(endpoint, started, request.send().await);
            let error = match result {
                Ok(response) if response.status().is_success() => return Ok(response),
                Ok(response) if response.status() == StatusCode::UNAUTHORIZED && !relogged => {
                    // Expired or revoked token (the panels have no refresh): log in once more.
                    relogged = true;
                    match self.refresh(&credential).await? {
                        Some(fresh) => {
                            credential = fresh;
                            continue;
                        }
                        None => match error_of(self.errors, response.status(), response).await {
                            PanelError::Unauthorized(detail) => PanelError::Unauthorized(format!(
                                "{detail} (check {})",
                                self.auth.variables()
                            )),
                            other => other,
                        },
                    }
                }
                Ok(response) => error_of(self.errors, response.status(), response).await,
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

    /// A read (`GET`, idempotent) and its JSON answer.
    pub(crate) async fn get<T: DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, String)],
        endpoint: &'static str,
    ) -> Result<T, PanelError> {
        let response = self
            .call(Method::GET, path, query, None, endpoint, Retry::Idempotent)
            .await?;
        Self::json(response).await
    }

    /// A write and its JSON answer.
    pub(crate) async fn send<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        endpoint: &'static str,
        retry: Retry,
    ) -> Result<T, PanelError> {
        let response = self.call(method, path, &[], body, endpoint, retry).await?;
        Self::json(response).await
    }

    pub(crate) async fn json<T: DeserializeOwned>(
        response: reqwest::Response,
    ) -> Result<T, PanelError> {
        let bytes = response
            .bytes()
            .await
            .map_err(|e| PanelError::Transport(e.to_string()))?;
        serde_json::from_slice(&bytes).map_err(|e| PanelError::Decode(e.to_string()))
    }
}

/// Maps a non-success answer to a [`PanelError`], reading the panel's error body.
async fn error_of(
    shape: ErrorShape,
    status: StatusCode,
    response: reqwest::Response,
) -> PanelError {
    let body: Value = response.json().await.unwrap_or(Value::Null);
    match shape {
        ErrorShape::Detail => detail_error(status, &body),
        ErrorShape::Remnawave => remnawave_error(status, &body),
    }
}

/// Remnawave: business errors carry an `errorCode` (A019/A020: the username or short id is
/// taken); zod's validation errors an `errors` list; 401/403/404 Nest's defaults.
pub(crate) fn remnawave_error(status: StatusCode, body: &Value) -> PanelError {
    let message = match &body["message"] {
        Value::String(s) => s.clone(),
        Value::Null => status.canonical_reason().unwrap_or("").to_owned(),
        other => other.to_string(),
    };
    let code = body["errorCode"].as_str().unwrap_or("");
    let described = if code.is_empty() {
        message.clone()
    } else {
        format!("{message} ({code})")
    };
    match status.as_u16() {
        404 => PanelError::NotFound,
        401 => PanelError::Unauthorized(described),
        403 => PanelError::Forbidden(described),
        400 if matches!(code, "A019" | "A020") => PanelError::AlreadyExists,
        400 => match body["errors"].as_array().and_then(|e| e.first()) {
            Some(first) => PanelError::Validation {
                field: first["path"]
                    .as_array()
                    .map(|p| {
                        p.iter()
                            .map(|s| s.as_str().map_or_else(|| s.to_string(), str::to_owned))
                            .collect::<Vec<_>>()
                            .join(".")
                    })
                    .filter(|p| !p.is_empty())
                    .unwrap_or_else(|| "body".to_owned()),
                message: first["message"].as_str().unwrap_or(&message).to_owned(),
            },
            None => PanelError::BadRequest(described),
        },
        s if s >= 500 => PanelError::Server {
            status: s,
            detail: described,
        },
        _ => PanelError::BadRequest(described),
    }
}

/// Marzban and PasarGuard: `{"detail": "…"}`, or `{"detail": {"<field>": "…"}}` on 422.
fn detail_error(status: StatusCode, body: &Value) -> PanelError {
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
