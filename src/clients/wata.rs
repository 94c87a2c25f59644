//! Typed client of the WATA H2H API (see `shared/reference/wata-api.md`): payment links with our
//! order id, transaction lookups (lost webhooks), refunds, and verification of the webhooks'
//! `X-Signature` (RSA PKCS#1 v1.5 with SHA-512 over the raw body) with the public key the API
//! serves, cached and fetched again once when a signature does not verify.

use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use chrono::{DateTime, Utc};
use reqwest::{Method, StatusCode, Url};
use rsa::RsaPublicKey;
use rsa::pkcs1::DecodeRsaPublicKey;
use rsa::pkcs1v15::{Signature, VerifyingKey};
use rsa::pkcs8::DecodePublicKey;
use rsa::signature::Verifier;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio::sync::{Mutex, RwLock};

use super::ProviderError;
use crate::config::{Secret, WataSettings};
use crate::domain::{Currency, Money};
use crate::metrics::Metrics;

/// Amounts are JSON numbers with at most two decimals.
fn to_number(money: Money) -> f64 {
    money.minor as f64 / 100.0
}

/// The amount of a WATA number in kopecks.
pub fn to_money(amount: f64, currency: &str) -> Option<Money> {
    let currency = match currency {
        "RUB" => Currency::Rub,
        _ => return None,
    };
    if !amount.is_finite() || !(0.0..=1e12).contains(&amount) {
        return None;
    }
    Some(Money::new((amount * 100.0).round() as i64, currency))
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateLink {
    pub amount: f64,
    pub currency: String,
    pub description: String,
    pub order_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub success_redirect_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fail_redirect_url: Option<String>,
    pub expiration_date_time: DateTime<Utc>,
}

impl CreateLink {
    pub fn new(
        amount: Money,
        description: String,
        order_id: String,
        return_url: Option<String>,
        expires_at: DateTime<Utc>,
    ) -> Self {
        CreateLink {
            amount: to_number(amount),
            currency: amount.currency.to_string(),
            description,
            order_id,
            success_redirect_url: return_url.clone(),
            fail_redirect_url: return_url,
            expiration_date_time: expires_at,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Link {
    pub id: String,
    pub url: String,
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub order_id: Option<String>,
}

/// A transaction, as webhooks and lookups describe it.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Transaction {
    #[serde(alias = "id")]
    pub transaction_id: String,
    #[serde(default)]
    pub kind: Option<String>,
    /// `status` in some of WATA's lookup answers, `transactionStatus` in webhooks.
    #[serde(alias = "status")]
    pub transaction_status: String,
    pub amount: f64,
    pub currency: String,
    #[serde(default)]
    pub order_id: Option<String>,
    #[serde(default)]
    pub error_code: Option<String>,
    #[serde(default)]
    pub error_description: Option<String>,
    #[serde(default)]
    pub payment_link_id: Option<String>,
    #[serde(default)]
    pub original_transaction_id: Option<String>,
}

impl Transaction {
    /// A successful payment (not a refund).
    pub fn is_paid_payment(&self) -> bool {
        self.transaction_status == "Paid" && self.kind.as_deref().is_none_or(|k| k == "Payment")
    }
}

#[derive(Debug, Deserialize)]
struct TransactionPage {
    #[serde(default)]
    items: Vec<Transaction>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct CreateRefund<'a> {
    original_transaction_id: &'a str,
    amount: f64,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RefundResult {
    pub transaction_id: String,
    pub transaction_status: String,
    #[serde(default)]
    pub error_description: Option<String>,
}

#[derive(Deserialize)]
struct PublicKey {
    value: String,
}

#[derive(Deserialize)]
struct ErrorEnvelope {
    error: ErrorDetail,
}

#[derive(Deserialize)]
struct ErrorDetail {
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    details: Option<String>,
}

pub struct WataClient {
    http: reqwest::Client,
    base: Url,
    token: Secret,
    metrics: Arc<Metrics>,
    public_key: RwLock<Option<Arc<RsaPublicKey>>>,
    /// Held while the key is fetched (one fetch at a time, the others wait for its result);
    /// holds when a failed signature last made us fetch the key again.
    refetched: Mutex<Option<Instant>>,
}

/// A signature that does not verify makes us fetch WATA's key again (it may have been rotated),
/// but not more often than this: forged requests must not turn into a flood of requests to WATA.
const KEY_REFETCH_INTERVAL: Duration = Duration::from_secs(30);

impl WataClient {
    pub fn new(
        settings: &WataSettings,
        timeout: Duration,
        metrics: Arc<Metrics>,
    ) -> anyhow::Result<Self> {
        Ok(WataClient {
            http: reqwest::Client::builder()
                .timeout(timeout)
                .user_agent(concat!("vpn-shop/", env!("CARGO_PKG_VERSION")))
                .build()?,
            base: settings.api_url.clone(),
            token: settings.token.clone(),
            metrics,
            public_key: RwLock::new(None),
            refetched: Mutex::new(None),
        })
    }

    fn url(&self, path: &str) -> Url {
        let mut url = self.base.clone();
        let base = url.path().trim_end_matches('/').to_owned();
        url.set_path(&format!("{base}{path}"));
        url
    }

    /// One call; GETs are repeated on transport errors and 5xx, POSTs never (WATA documents no
    /// idempotency: a repeat could create a second link or refund).
    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        endpoint: &'static str,
        body: Option<&serde_json::Value>,
    ) -> Result<T, ProviderError> {
        let attempts: u32 = if method == Method::GET { 3 } else { 1 };
        let mut attempt: u32 = 1;
        loop {
            let mut request = self
                .http
                .request(method.clone(), self.url(path))
                .bearer_auth(self.token.expose())
                .query(query);
            if let Some(body) = body {
                request = request.json(body);
            }
            let started = Instant::now();
            let result = request.send().await;
            super::observe(&self.metrics, "wata", endpoint, started, &result);
            let error = match result {
                Ok(response) if response.status().is_success() => {
                    return response
                        .json()
                        .await
                        .map_err(|e| ProviderError::Decode(e.to_string()));
                }
                Ok(response) => {
                    let status = response.status();
                    let detail = response.json::<ErrorEnvelope>().await.ok().map(|e| e.error);
                    let code = detail
                        .as_ref()
                        .and_then(|d| d.code.clone())
                        .unwrap_or_default();
                    let message = detail
                        .map(|d| {
                            [d.message, d.details]
                                .into_iter()
                                .flatten()
                                .collect::<Vec<_>>()
                                .join(" ")
                        })
                        .unwrap_or_else(|| status.to_string());
                    match status {
                        StatusCode::NOT_FOUND => ProviderError::NotFound,
                        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                            ProviderError::Unauthorized(format!(
                                "{message} (check WATA_TOKEN: tokens expire)"
                            ))
                        }
                        s if s.is_server_error() || s == StatusCode::TOO_MANY_REQUESTS => {
                            ProviderError::Unavailable(format!("{s}: {message}"))
                        }
                        _ => ProviderError::Rejected { code, message },
                    }
                }
                Err(e) => ProviderError::Unavailable(super::describe(&e)),
            };
            if !matches!(error, ProviderError::Unavailable(_)) || attempt >= attempts {
                return Err(error);
            }
            tokio::time::sleep(Duration::from_millis(300 * u64::from(attempt))).await;
            attempt += 1;
        }
    }

    pub async fn create_link(&self, link: &CreateLink) -> Result<Link, ProviderError> {
        let body = serde_json::to_value(link).map_err(|e| ProviderError::Decode(e.to_string()))?;
        self.call(Method::POST, "/links", &[], "create_link", Some(&body))
            .await
    }

    /// The transactions of one of our orders (any status).
    pub async fn transactions_of_order(
        &self,
        order_id: &str,
    ) -> Result<Vec<Transaction>, ProviderError> {
        let page: TransactionPage = self
            .call(
                Method::GET,
                "/v2/transactions",
                &[
                    ("OrderId", order_id.to_owned()),
                    ("MaxResultCount", "100".to_owned()),
                ],
                "find_transactions",
                None,
            )
            .await?;
        Ok(page.items)
    }

    pub async fn refund(
        &self,
        transaction_id: &str,
        amount: Money,
    ) -> Result<RefundResult, ProviderError> {
        let body = serde_json::to_value(CreateRefund {
            original_transaction_id: transaction_id,
            amount: to_number(amount),
        })
        .map_err(|e| ProviderError::Decode(e.to_string()))?;
        self.call(
            Method::POST,
            "/transactions/refunds",
            &[],
            "refund",
            Some(&body),
        )
        .await
    }

    async fn fetch_public_key(&self) -> Result<RsaPublicKey, ProviderError> {
        let started = Instant::now();
        let result = self.http.get(self.url("/public-key")).send().await;
        super::observe(&self.metrics, "wata", "public_key", started, &result);
        let response = result.map_err(|e| ProviderError::Unavailable(super::describe(&e)))?;
        if !response.status().is_success() {
            return Err(ProviderError::Unavailable(format!(
                "public key: {}",
                response.status()
            )));
        }
        let pem = response
            .json::<PublicKey>()
            .await
            .map_err(|e| ProviderError::Decode(e.to_string()))?
            .value;
        RsaPublicKey::from_public_key_pem(&pem)
            .or_else(|_| RsaPublicKey::from_pkcs1_pem(&pem))
            .map_err(|e| ProviderError::Decode(format!("WATA's public key: {e}")))
    }

    /// Whether `signature_b64` is WATA's signature of exactly `body`. Uses the cached key; when
    /// the signature does not verify, the key is fetched again (WATA may have rotated it) — one
    /// fetch at a time, and at most once per [`KEY_REFETCH_INTERVAL`], so forgeries cannot make
    /// us hammer WATA. `Err` only when no key can be obtained (the caller answers 5xx, WATA
    /// retries).
    pub async fn verify(&self, body: &[u8], signature_b64: &str) -> Result<bool, ProviderError> {
        let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(signature_b64.trim())
        else {
            return Ok(false);
        };
        let Ok(signature) = Signature::try_from(bytes.as_slice()) else {
            return Ok(false);
        };
        let check = |key: &RsaPublicKey| {
            VerifyingKey::<sha2::Sha512>::new(key.clone())
                .verify(body, &signature)
                .is_ok()
        };
        let tried = self.public_key.read().await.clone();
        if let Some(key) = &tried
            && check(key)
        {
            return Ok(true);
        }
        let mut refetched = self.refetched.lock().await;
        let current = self.public_key.read().await.clone();
        match (&tried, &current) {
            // Fetched by another request while we waited: that key is as fresh as it gets.
            (_, Some(key)) if !tried.as_ref().is_some_and(|t| Arc::ptr_eq(t, key)) => {
                return Ok(check(key));
            }
            // The key we tried is the latest one and was fetched again only just now.
            (Some(_), Some(_))
                if refetched.is_some_and(|at| at.elapsed() < KEY_REFETCH_INTERVAL) =>
            {
                return Ok(false);
            }
            _ => {}
        }
        let fresh = Arc::new(self.fetch_public_key().await?);
        if current.is_some() {
            *refetched = Some(Instant::now());
        }
        let valid = check(&fresh);
        *self.public_key.write().await = Some(fresh);
        Ok(valid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// WATA's answers as `shared/reference/wata-api.md` quotes them.
    #[test]
    fn recorded_wata_answers_parse() {
        let link: Link =
            serde_json::from_str(include_str!("../../tests/it/fixtures/wata-link.json"))
                .expect("link");
        assert_eq!(link.id, "5b1d7c3e-9f2a-4e61-8c0d-2a4f6e8b1c93");
        assert_eq!(
            (link.status.as_deref(), link.order_id.as_deref()),
            (Some("Opened"), Some("42"))
        );
        let webhook: Transaction = serde_json::from_str(include_str!(
            "../../tests/it/fixtures/wata-webhook-payment.json"
        ))
        .expect("webhook");
        assert!(webhook.is_paid_payment());
        assert_eq!(
            to_money(webhook.amount, &webhook.currency),
            Some(Money::rub_kopecks(19_900))
        );
        assert_eq!(webhook.order_id.as_deref(), Some("42"));
        let key: PublicKey =
            serde_json::from_str(include_str!("../../tests/it/fixtures/wata-public-key.json"))
                .expect("public key answer");
        assert!(key.value.starts_with("-----BEGIN PUBLIC KEY-----"));
    }

    #[test]
    fn amounts_convert_without_loss() {
        assert_eq!(to_money(199.99, "RUB"), Some(Money::rub_kopecks(19_999)));
        assert_eq!(to_money(10.0, "RUB"), Some(Money::rub_kopecks(1_000)));
        assert_eq!(to_money(0.1 + 0.2, "RUB"), Some(Money::rub_kopecks(30)));
        assert_eq!(to_money(1.0, "USD"), None);
        assert_eq!(to_money(f64::NAN, "RUB"), None);
        assert_eq!(to_money(-1.0, "RUB"), None);
        assert_eq!(to_number(Money::rub_kopecks(19_999)), 199.99);
    }
}
