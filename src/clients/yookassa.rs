//! Typed client of the YooKassa API v3 (see `shared/reference/yookassa-api.md`): payments with an
//! `Idempotence-Key` stored with the order (a retry never creates a second payment; a random
//! UUID, so an order id reused by another database never meets an old key), payment lookups
//! (every webhook is confirmed by one), refunds.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode, Url};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::ProviderError;
use crate::config::{Secret, YooKassaSettings};
use crate::domain::{Currency, Money};
use crate::metrics::Metrics;

/// A POST is repeated with the same key on a 500 (the result is unknown) this many times.
const ATTEMPTS: u32 = 3;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Amount {
    /// Decimal string with a dot: "199.00".
    pub value: String,
    pub currency: String,
}

impl Amount {
    pub fn from_money(money: Money) -> Amount {
        Amount {
            value: money.to_decimal_string(),
            currency: money.currency.to_string(),
        }
    }

    /// The amount in minor units; `None` for a currency or a value the shop does not use.
    pub fn to_money(&self) -> Option<Money> {
        let currency = match self.currency.as_str() {
            "RUB" => Currency::Rub,
            _ => return None,
        };
        Money::parse_decimal(&self.value, currency).ok()
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Confirmation {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub return_url: String,
}

/// A 54-FZ receipt of one service.
#[derive(Debug, Clone, Serialize)]
pub struct Receipt {
    pub customer: ReceiptCustomer,
    pub items: Vec<ReceiptItem>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ReceiptCustomer {
    pub email: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct ReceiptItem {
    pub description: String,
    pub quantity: String,
    pub amount: Amount,
    pub vat_code: u8,
    pub payment_mode: &'static str,
    pub payment_subject: &'static str,
}

#[derive(Debug, Clone, Serialize)]
pub struct CreatePayment {
    pub amount: Amount,
    pub capture: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub confirmation: Option<Confirmation>,
    pub description: String,
    pub metadata: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub save_payment_method: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payment_method_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub receipt: Option<Receipt>,
}

/// Payment statuses (`waiting_for_capture` is not used by the shop: it captures at once).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Pending,
    WaitingForCapture,
    Succeeded,
    Canceled,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct ConfirmationUrl {
    #[serde(default)]
    pub confirmation_url: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct PaymentMethod {
    pub id: String,
    #[serde(default)]
    pub saved: bool,
    #[serde(rename = "type", default)]
    pub kind: Option<String>,
    #[serde(default)]
    pub title: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Cancellation {
    pub party: String,
    pub reason: String,
}

/// The payment object (the fields the shop uses).
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Payment {
    pub id: String,
    pub status: Status,
    #[serde(default)]
    pub paid: bool,
    pub amount: Amount,
    #[serde(default)]
    pub confirmation: Option<ConfirmationUrl>,
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
    #[serde(default)]
    pub payment_method: Option<PaymentMethod>,
    #[serde(default)]
    pub cancellation_details: Option<Cancellation>,
    #[serde(default)]
    pub test: bool,
    /// How much of the payment was refunded (absent before any refund).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refunded_amount: Option<Amount>,
}

#[derive(Debug, Clone, Serialize)]
struct CreateRefund<'a> {
    payment_id: &'a str,
    amount: Amount,
    description: &'a str,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Refund {
    pub id: String,
    pub payment_id: String,
    pub status: String,
    pub amount: Amount,
}

/// A page of a list (`GET /v3/refunds?...`).
#[derive(Debug, Deserialize)]
struct RefundList {
    #[serde(default)]
    items: Vec<Refund>,
    #[serde(default)]
    next_cursor: Option<String>,
}

#[derive(Deserialize)]
struct ErrorBody {
    #[serde(default)]
    code: String,
    #[serde(default)]
    description: String,
}

pub struct YooKassaClient {
    http: reqwest::Client,
    base: Url,
    shop_id: String,
    secret_key: Secret,
    metrics: Arc<Metrics>,
}

impl YooKassaClient {
    pub fn new(
        settings: &YooKassaSettings,
        timeout: Duration,
        metrics: Arc<Metrics>,
    ) -> anyhow::Result<Self> {
        Ok(YooKassaClient {
            http: reqwest::Client::builder()
                .timeout(timeout)
                .user_agent(concat!("vpn-shop/", env!("CARGO_PKG_VERSION")))
                .build()?,
            base: settings.api_url.clone(),
            shop_id: settings.shop_id.clone(),
            secret_key: settings.secret_key.clone(),
            metrics,
        })
    }

    /// `path` may carry a query (`/refunds?payment_id=…`), already encoded.
    fn url(&self, path: &str) -> Url {
        let mut url = self.base.clone();
        let base = url.path().trim_end_matches('/').to_owned();
        let (path, query) = match path.split_once('?') {
            Some((path, query)) => (path, Some(query)),
            None => (path, None),
        };
        url.set_path(&format!("{base}{path}"));
        url.set_query(query);
        url
    }

    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        endpoint: &'static str,
        idempotence_key: Option<&str>,
        body: Option<&serde_json::Value>,
    ) -> Result<T, ProviderError> {
        let mut attempt = 1;
        loop {
            let mut request = self
                .http
                .request(method.clone(), self.url(path))
                .basic_auth(&self.shop_id, Some(self.secret_key.expose()));
            if let Some(key) = idempotence_key {
                request = request.header("Idempotence-Key", key);
            }
            if let Some(body) = body {
                request = request.json(body);
            }
            let started = Instant::now();
            let result = request.send().await;
            super::observe(&self.metrics, "yookassa", endpoint, started, &result);
            let error = match result {
                Ok(response) if response.status().is_success() => {
                    return response
                        .json()
                        .await
                        .map_err(|e| ProviderError::Decode(e.to_string()));
                }
                Ok(response) => {
                    let status = response.status();
                    let body: Option<ErrorBody> = response.json().await.ok();
                    let (code, description) =
                        body.map(|b| (b.code, b.description)).unwrap_or_default();
                    match status {
                        StatusCode::NOT_FOUND => ProviderError::NotFound,
                        StatusCode::UNAUTHORIZED => ProviderError::Unauthorized(format!(
                            "{description} (check YOOKASSA_SHOP_ID and YOOKASSA_SECRET_KEY)"
                        )),
                        s if s.is_server_error() || s == StatusCode::TOO_MANY_REQUESTS => {
                            ProviderError::Unavailable(format!("{s}: {code} {description}"))
                        }
                        _ => ProviderError::Rejected {
                            code,
                            message: description,
                        },
                    }
                }
                Err(e) => ProviderError::Unavailable(super::describe(&e)),
            };
            // GETs are safe to repeat; POSTs only with their Idempotence-Key (the docs' advice
            // when the result of a 500 is unknown).
            let repeatable = method == Method::GET || idempotence_key.is_some();
            if !(repeatable && matches!(error, ProviderError::Unavailable(_)))
                || attempt >= ATTEMPTS
            {
                return Err(error);
            }
            tokio::time::sleep(Duration::from_millis(300 * u64::from(attempt))).await;
            attempt += 1;
        }
    }

    /// Creates a payment; `idempotence_key` names the order, so a repeat returns the same payment.
    pub async fn create_payment(
        &self,
        idempotence_key: &str,
        payment: &CreatePayment,
    ) -> Result<Payment, ProviderError> {
        let body =
            serde_json::to_value(payment).map_err(|e| ProviderError::Decode(e.to_string()))?;
        self.call(
            Method::POST,
            "/payments",
            "create_payment",
            Some(idempotence_key),
            Some(&body),
        )
        .await
    }

    pub async fn get_payment(&self, id: &str) -> Result<Payment, ProviderError> {
        if id.is_empty() || !id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
            return Err(ProviderError::NotFound);
        }
        self.call(
            Method::GET,
            &format!("/payments/{id}"),
            "get_payment",
            None,
            None,
        )
        .await
    }

    /// A refund by id (to confirm a `refund.succeeded` notification).
    pub async fn get_refund(&self, id: &str) -> Result<Refund, ProviderError> {
        if id.is_empty() || !id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
            return Err(ProviderError::NotFound);
        }
        self.call(
            Method::GET,
            &format!("/refunds/{id}"),
            "get_refund",
            None,
            None,
        )
        .await
    }

    /// Every refund of a payment (all pages).
    pub async fn list_refunds(&self, payment_id: &str) -> Result<Vec<Refund>, ProviderError> {
        if payment_id.is_empty()
            || !payment_id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        {
            return Err(ProviderError::NotFound);
        }
        let mut refunds = Vec::new();
        let mut cursor: Option<String> = None;
        // A payment has a handful of refunds; the bound only stops a provider that loops.
        for _ in 0..100 {
            let mut path = format!("/refunds?payment_id={payment_id}&limit=100");
            if let Some(cursor) = &cursor {
                path.push_str("&cursor=");
                for b in cursor.bytes() {
                    if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
                        path.push(char::from(b));
                    } else {
                        path.push_str(&format!("%{b:02X}"));
                    }
                }
            }
            let page: RefundList = self
                .call(Method::GET, &path, "list_refunds", None, None)
                .await?;
            refunds.extend(page.items);
            match page.next_cursor {
                Some(next) if !next.is_empty() => cursor = Some(next),
                _ => break,
            }
        }
        Ok(refunds)
    }

    pub async fn create_refund(
        &self,
        idempotence_key: &str,
        payment_id: &str,
        amount: Money,
        description: &str,
    ) -> Result<Refund, ProviderError> {
        let body = serde_json::to_value(CreateRefund {
            payment_id,
            amount: Amount::from_money(amount),
            description,
        })
        .map_err(|e| ProviderError::Decode(e.to_string()))?;
        self.call(
            Method::POST,
            "/refunds",
            "create_refund",
            Some(idempotence_key),
            Some(&body),
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// YooKassa's answers as `shared/reference/yookassa-api.md` quotes them.
    #[test]
    fn recorded_yookassa_answers_parse() {
        let payment: Payment = serde_json::from_str(include_str!(
            "../../tests/it/fixtures/yookassa-payment-pending.json"
        ))
        .expect("payment");
        assert_eq!(payment.status, Status::Pending);
        assert!(!payment.paid);
        assert_eq!(payment.amount.to_money(), Some(Money::rub_kopecks(19_900)));
        assert_eq!(payment.metadata["order_id"], "42");
        assert!(
            payment
                .confirmation
                .and_then(|c| c.confirmation_url)
                .is_some()
        );

        let notification: serde_json::Value = serde_json::from_str(include_str!(
            "../../tests/it/fixtures/yookassa-notification-payment-succeeded.json"
        ))
        .expect("notification");
        let paid: Payment = serde_json::from_value(notification["object"].clone()).expect("object");
        assert_eq!((paid.status, paid.paid), (Status::Succeeded, true));
        let method = paid.payment_method.expect("payment_method");
        assert_eq!(
            (method.kind.as_deref(), method.saved),
            (Some("bank_card"), false)
        );
        assert_eq!(
            paid.refunded_amount.and_then(|a| a.to_money()),
            Some(Money::rub_kopecks(0))
        );

        let refund: Refund =
            serde_json::from_str(include_str!("../../tests/it/fixtures/yookassa-refund.json"))
                .expect("refund");
        assert_eq!(refund.status, "succeeded");
        assert_eq!(refund.amount.to_money(), Some(Money::rub_kopecks(19_900)));

        let error: ErrorBody = serde_json::from_str(include_str!(
            "../../tests/it/fixtures/yookassa-error-key-duplicated.json"
        ))
        .expect("error body");
        assert_eq!(
            (error.code.as_str(), error.description.as_str()),
            ("invalid_request", "Idempotence key duplicated")
        );
    }

    #[test]
    fn amounts_are_decimal_strings() {
        let a = Amount::from_money(Money::rub_kopecks(19_950));
        assert_eq!((a.value.as_str(), a.currency.as_str()), ("199.50", "RUB"));
        assert_eq!(a.to_money(), Some(Money::rub_kopecks(19_950)));
        let usd = Amount {
            value: "1.00".into(),
            currency: "USD".into(),
        };
        assert_eq!(usd.to_money(), None);
    }
}
