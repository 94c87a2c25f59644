//! Thin typed clients of external APIs: request/response structs that mirror
//! `shared/reference/*.md`, a timeout on every call, retries only where the API makes them safe.

pub mod panel;
pub mod wata;
pub mod yookassa;

use std::time::Instant;

use crate::metrics::Metrics;

/// What went wrong talking to a payment provider, in terms the payment flow acts on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProviderError {
    #[error("not found at the provider")]
    NotFound,
    /// The provider refused the request (4xx): repeating it unchanged will not help.
    #[error("the provider refused the request: {code} {message}")]
    Rejected { code: String, message: String },
    #[error("the provider refused our credentials: {0}")]
    Unauthorized(String),
    /// Down, overloaded, or no answer: the result is unknown, try again later.
    #[error("the provider is unavailable: {0}")]
    Unavailable(String),
    #[error("unexpected answer from the provider: {0}")]
    Decode(String),
}

/// Counts a provider request (`vpn_shop_provider_requests_total`, latency histogram).
pub(crate) fn observe(
    metrics: &Metrics,
    provider: &'static str,
    endpoint: &'static str,
    started: Instant,
    result: &reqwest::Result<reqwest::Response>,
) {
    debug_assert!(
        crate::metrics::known::PROVIDER_ENDPOINTS.contains(&(provider, endpoint)),
        "{provider} {endpoint}: add it to metrics::known::PROVIDER_ENDPOINTS"
    );
    let status = match result {
        Ok(response) => response.status().as_u16().to_string(),
        Err(e) if e.is_timeout() => "timeout".to_owned(),
        Err(_) => "error".to_owned(),
    };
    metrics
        .provider_requests
        .with_label_values(&[provider, endpoint, &status])
        .inc();
    metrics
        .provider_duration
        .with_label_values(&[provider, endpoint])
        .observe(started.elapsed().as_secs_f64());
}

/// A transport error without the URL (ours, and it may carry credentials in a query).
pub(crate) fn describe(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        return "timed out".into();
    }
    let mut text = if e.is_connect() {
        "connection failed"
    } else {
        "request failed"
    }
    .to_owned();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
