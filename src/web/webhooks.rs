//! Payment webhooks. Nothing a stranger sends may give access, so each is authenticated before
//! anything else: YooKassa's by asking YooKassa's API about the payment (and, optionally, by its
//! sender's address), WATA's by the RSA signature over the raw body. The PaymentProcessor then
//! applies the event in one transaction; the provider gets 200 once it is committed, 5xx when it
//! could not be (so it sends it again), and every verdict is recorded. A refused request keeps
//! only its body's size and hash, and an address that has spent its budget of refusals
//! (`WEBHOOK_REFUSAL_LIMIT`) is turned away before anything is read, checked or written; a
//! provider is never refused, so never turned away.

use std::net::IpAddr;
use std::sync::LazyLock;
use std::time::Instant;

use actix_web::{HttpRequest, HttpResponse, web};
use ipnet::IpNet;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::actors::payments::{Outcome, PaymentUpdate, ProviderUpdate, raw_of, storable};
use crate::clients::ProviderError;
use crate::clients::wata::{self, Transaction};
use crate::clients::yookassa::Status;
use crate::db::payments::{self, BodyDigest, NewEvent};
use crate::domain::{PaymentEventVerdict, PaymentId, PaymentProvider};
use crate::web::WebState;
use crate::web::ratelimit::RateLimiter;

/// YooKassa's published webhook senders (reference §5).
static YOOKASSA_NETWORKS: LazyLock<Vec<IpNet>> = LazyLock::new(|| {
    [
        "185.71.76.0/27",
        "185.71.77.0/27",
        "77.75.153.0/25",
        "77.75.156.11/32",
        "77.75.156.35/32",
        "77.75.154.128/25",
        "2a02:5180::/32",
    ]
    .iter()
    .filter_map(|n| n.parse().ok())
    .collect()
});

/// The client's address: the socket peer, or — when the peer is a trusted proxy — the rightmost
/// `X-Forwarded-For` entry that is not a trusted proxy (a client-supplied value further left is
/// never believed). IPv4-mapped IPv6 addresses (`::ffff:a.b.c.d`, what a dual-stack socket
/// reports for an IPv4 peer) are read as the IPv4 address they are, so they match IPv4 ranges
/// (YooKassa's, `TRUSTED_PROXIES`) and count as one client with the plain form.
pub fn client_ip(req: &HttpRequest, trusted: &[IpNet]) -> Option<IpAddr> {
    let peer = req.peer_addr()?.ip().to_canonical();
    if !trusted.iter().any(|n| n.contains(&peer)) {
        return Some(peer);
    }
    let forwarded = req
        .headers()
        .get_all("x-forwarded-for")
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|s| s.trim().parse::<IpAddr>().ok())
        .map(|ip| ip.to_canonical())
        .collect::<Vec<_>>();
    Some(
        forwarded
            .into_iter()
            .rev()
            .find(|ip| !trusted.iter().any(|n| n.contains(ip)))
            .unwrap_or(peer),
    )
}

/// 429 for an address that has spent its budget of refused webhooks, before its request is
/// read, verified or recorded (see `count_refusal`).
pub(crate) fn turned_away(
    state: &WebState,
    remote: Option<IpAddr>,
) -> Option<crate::error::AppError> {
    let (limiter, ip) = (state.webhook_refusals.as_ref()?, remote?);
    let retry_after = limiter
        .peek(RateLimiter::address_key(ip), Instant::now())
        .err()?;
    tracing::debug!(remote = %ip, "webhook from an address over its refusal budget turned away");
    Some(crate::error::AppError::TooManyRequests {
        message: "too many refused webhook requests from this address; slow down".into(),
        retry_after,
    })
}

/// Counts a refusal against the sender's address. Only refusals count, so a genuine provider
/// (whose requests are never refused) is never turned away, however often it retries.
pub(crate) fn count_refusal(state: &WebState, remote: Option<IpAddr>) {
    if let (Some(limiter), Some(ip)) = (&state.webhook_refusals, remote) {
        // Over the budget already (a request that was let through concurrently): the bucket
        // is full, which is all that matters.
        let _ = limiter.check(RateLimiter::address_key(ip), Instant::now());
    }
}

/// Records an event refused at the edge (no order involved) and answers `status`. Only the
/// body's size and SHA-256 are kept: the body is anyone's to send, and stored whole a flood of
/// them fills the disk.
async fn refuse(
    state: &WebState,
    provider: PaymentProvider,
    verdict: PaymentEventVerdict,
    detail: &str,
    remote: Option<IpAddr>,
    body: &[u8],
    status: actix_web::http::StatusCode,
) -> HttpResponse {
    state
        .metrics
        .payment_events
        .with_label_values(&[provider.as_str(), verdict.as_str()])
        .inc();
    count_refusal(state, remote);
    let digest = BodyDigest::of(body);
    tracing::warn!(provider = %provider, verdict = %verdict, remote = ?remote, detail, body_bytes = digest.bytes, "payment webhook refused");
    let remote = remote.map(|ip| ip.to_string());
    if let Ok(mut conn) = state.pool.get().await {
        let recorded = payments::record_event(
            &mut conn,
            &NewEvent {
                provider,
                event_key: "-",
                event_type: "webhook",
                payment_id: None,
                verdict,
                detail: Some(detail),
                remote_addr: remote.as_deref(),
                payload: None,
                body: Some(digest),
            },
        )
        .await;
        if let Err(e) = recorded {
            tracing::warn!(error = %e, "could not record a refused webhook");
        }
    }
    HttpResponse::build(status)
        .json(json!({"error": {"code": verdict.as_str(), "message": detail}}))
}

/// Hands an authenticated event to the processor: 200 once committed; otherwise 503 when it may
/// work later (e.g. the database is unavailable) and 500 when it will not — the provider sends the
/// event again either way.
async fn deliver(state: &WebState, update: PaymentUpdate) -> HttpResponse {
    let Some(processor) = &state.payments else {
        return HttpResponse::NotFound().finish();
    };
    match processor.addr().send(ProviderUpdate(update)).await {
        Ok(Ok(verdict)) => HttpResponse::Ok().json(json!({"status": "ok", "verdict": verdict})),
        Ok(Err(e)) if !e.permanent => {
            tracing::warn!(error = %e.message, "payment event not recorded yet; the provider will send it again");
            HttpResponse::ServiceUnavailable()
                .json(json!({"error": {"code": "service_unavailable", "message": "try again"}}))
        }
        Ok(Err(e)) => {
            tracing::error!(error = %e.message, "payment event not recorded; the provider will send it again");
            HttpResponse::InternalServerError()
                .json(json!({"error": {"code": "internal", "message": "try again"}}))
        }
        Err(e) => {
            tracing::error!(error = %e, "payment processor unavailable");
            HttpResponse::ServiceUnavailable()
                .json(json!({"error": {"code": "service_unavailable", "message": "try again"}}))
        }
    }
}

#[derive(Deserialize)]
struct YooKassaNotification {
    event: String,
    object: YooKassaObject,
}

#[derive(Deserialize)]
struct YooKassaObject {
    id: String,
}

/// `POST /webhooks/yookassa`.
pub async fn yookassa(
    state: web::Data<WebState>,
    req: HttpRequest,
    body: web::Bytes,
) -> HttpResponse {
    use actix_web::http::StatusCode;
    let provider = PaymentProvider::Yookassa;
    let (Some(settings), Some(clients)) =
        (&state.settings.payments.yookassa, &state.payment_clients)
    else {
        return HttpResponse::NotFound().finish();
    };
    let Some(client) = &clients.yookassa else {
        return HttpResponse::NotFound().finish();
    };
    let remote = client_ip(&req, &state.settings.payments.trusted_proxies);
    if let Some(error) = turned_away(&state, remote) {
        return actix_web::ResponseError::error_response(&error);
    }
    if settings.check_ip
        && !remote.is_some_and(|ip| YOOKASSA_NETWORKS.iter().any(|n| n.contains(&ip)))
    {
        return refuse(
            &state,
            provider,
            PaymentEventVerdict::Forged,
            "the sender is not one of YooKassa's addresses",
            remote,
            &body,
            StatusCode::FORBIDDEN,
        )
        .await;
    }
    let Ok(notification) = serde_json::from_slice::<YooKassaNotification>(&body) else {
        return refuse(
            &state,
            provider,
            PaymentEventVerdict::Invalid,
            "not a YooKassa notification",
            remote,
            &body,
            StatusCode::BAD_REQUEST,
        )
        .await;
    };
    if notification.event.starts_with("refund.") {
        return yookassa_refund(&state, client, notification, &body, remote).await;
    }
    // Trust only YooKassa's own answer about the payment, never the body.
    let payment = match client.get_payment(&notification.object.id).await {
        Ok(payment) => payment,
        Err(ProviderError::NotFound) => {
            return refuse(
                &state,
                provider,
                PaymentEventVerdict::Forged,
                "YooKassa does not know this payment",
                remote,
                &body,
                StatusCode::OK,
            )
            .await;
        }
        Err(e) => {
            tracing::warn!(error = %e, "could not confirm a YooKassa webhook; asking YooKassa to send it again");
            return HttpResponse::ServiceUnavailable()
                .json(json!({"error": {"code": "service_unavailable", "message": "try again"}}));
        }
    };
    let outcome = match payment.status {
        Status::Succeeded if payment.paid => match payment.amount.to_money() {
            Some(amount) => Outcome::Paid { amount },
            None => Outcome::Pending,
        },
        Status::Canceled => {
            let reason = payment
                .cancellation_details
                .as_ref()
                .map_or("", |c| c.reason.as_str());
            Outcome::Canceled {
                reason: crate::actors::payments::yookassa_reason(reason),
                detail: format!(
                    "canceled by {}: {reason}",
                    payment
                        .cancellation_details
                        .as_ref()
                        .map_or("?", |c| c.party.as_str())
                ),
            }
        }
        _ => Outcome::Pending,
    };
    let order_id = payment
        .metadata
        .get("order_id")
        .and_then(|id| id.parse::<PaymentId>().ok());
    let update = PaymentUpdate {
        provider,
        order_id,
        external_id: payment.id.clone(),
        event_key: format!("{}:{:?}", payment.id, payment.status).to_lowercase(),
        event_type: notification.event,
        outcome,
        saved_method: payment
            .payment_method
            .as_ref()
            .filter(|m| m.saved)
            .map(|m| m.id.clone()),
        raw: raw_of(&payment),
        remote_addr: remote.map(|ip| ip.to_string()),
    };
    deliver(&state, update).await
}

/// A `refund.succeeded` notification (e.g. a refund made in YooKassa's dashboard): confirmed by
/// asking YooKassa for the refund, then the refunded payment's days are taken back once.
async fn yookassa_refund(
    state: &WebState,
    client: &crate::clients::yookassa::YooKassaClient,
    notification: YooKassaNotification,
    body: &[u8],
    remote: Option<IpAddr>,
) -> HttpResponse {
    use actix_web::http::StatusCode;
    let provider = PaymentProvider::Yookassa;
    let refund = match client.get_refund(&notification.object.id).await {
        Ok(refund) => refund,
        Err(ProviderError::NotFound) => {
            return refuse(
                state,
                provider,
                PaymentEventVerdict::Forged,
                "YooKassa does not know this refund",
                remote,
                body,
                StatusCode::OK,
            )
            .await;
        }
        Err(e) => {
            tracing::warn!(error = %e, "could not confirm a YooKassa refund notification; asking YooKassa to send it again");
            return HttpResponse::ServiceUnavailable()
                .json(json!({"error": {"code": "service_unavailable", "message": "try again"}}));
        }
    };
    let outcome = match (refund.status.as_str(), refund.amount.to_money()) {
        ("succeeded", Some(amount)) => Outcome::Refunded {
            amount,
            refund_id: refund.id.clone(),
        },
        _ => Outcome::Pending,
    };
    let update = PaymentUpdate {
        provider,
        order_id: None,
        external_id: refund.payment_id.clone(),
        event_key: format!("{}:{}", refund.id, refund.status),
        event_type: notification.event,
        outcome,
        saved_method: None,
        raw: raw_of(&refund),
        remote_addr: remote.map(|ip| ip.to_string()),
    };
    deliver(state, update).await
}

/// `POST /webhooks/wata`.
pub async fn wata(state: web::Data<WebState>, req: HttpRequest, body: web::Bytes) -> HttpResponse {
    use actix_web::http::StatusCode;
    let provider = PaymentProvider::Wata;
    let Some(client) = state.payment_clients.as_ref().and_then(|c| c.wata.as_ref()) else {
        return HttpResponse::NotFound().finish();
    };
    let remote = client_ip(&req, &state.settings.payments.trusted_proxies);
    if let Some(error) = turned_away(&state, remote) {
        return actix_web::ResponseError::error_response(&error);
    }
    let Some(signature) = req
        .headers()
        .get("x-signature")
        .and_then(|v| v.to_str().ok())
    else {
        return refuse(
            &state,
            provider,
            PaymentEventVerdict::Forged,
            "no X-Signature",
            remote,
            &body,
            StatusCode::UNAUTHORIZED,
        )
        .await;
    };
    match client.verify(&body, signature).await {
        Ok(true) => {}
        Ok(false) => {
            return refuse(
                &state,
                provider,
                PaymentEventVerdict::Forged,
                "the signature does not verify",
                remote,
                &body,
                StatusCode::UNAUTHORIZED,
            )
            .await;
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot verify a WATA webhook without the public key; WATA will send it again");
            return HttpResponse::ServiceUnavailable()
                .json(json!({"error": {"code": "service_unavailable", "message": "try again"}}));
        }
    }
    let Ok(transaction) = serde_json::from_slice::<Transaction>(&body) else {
        return refuse(
            &state,
            provider,
            PaymentEventVerdict::Invalid,
            "not a WATA transaction",
            remote,
            &body,
            StatusCode::BAD_REQUEST,
        )
        .await;
    };
    // Signed by WATA: kept with the event.
    let raw: Value = storable(serde_json::from_slice(&body).unwrap_or(Value::Null));
    let order_id = transaction
        .order_id
        .as_deref()
        .and_then(|id| id.parse::<PaymentId>().ok());
    let amount = wata::to_money(transaction.amount, &transaction.currency);
    let is_refund = transaction.kind.as_deref() == Some("Refund");
    let (outcome, external_id) = match (is_refund, transaction.transaction_status.as_str(), amount)
    {
        (false, "Paid", Some(amount)) => {
            (Outcome::Paid { amount }, transaction.transaction_id.clone())
        }
        (true, "Paid", Some(amount)) => (
            Outcome::Refunded {
                amount,
                refund_id: transaction.transaction_id.clone(),
            },
            transaction
                .original_transaction_id
                .clone()
                .unwrap_or_default(),
        ),
        // A declined attempt leaves a one-time link open: the payer may try again.
        _ => (Outcome::Pending, transaction.transaction_id.clone()),
    };
    let update = PaymentUpdate {
        provider,
        order_id,
        external_id,
        event_key: format!(
            "{}:{}",
            transaction.transaction_id, transaction.transaction_status
        ),
        event_type: format!(
            "{}:{}",
            transaction.kind.as_deref().unwrap_or("Payment"),
            transaction.transaction_status
        ),
        outcome,
        saved_method: None,
        raw,
        remote_addr: remote.map(|ip| ip.to_string()),
    };
    deliver(&state, update).await
}

/// Compares secrets in time independent of where they differ.
pub(crate) fn same_secret(given: &[u8], expected: &[u8]) -> bool {
    given.len() == expected.len()
        && given
            .iter()
            .zip(expected)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

/// `POST /webhooks/telegram` (TELEGRAM_MODE=webhook): Telegram's updates, authenticated by
/// the secret it sends in `X-Telegram-Bot-Api-Secret-Token`, handed to the bot actor. 200 once
/// queued; 503 when the queue is full (Telegram delivers again later). A Stars payment is
/// committed before the answer: 200 only once it is recorded, 503 otherwise (Telegram delivers
/// it again), so a crash after the answer cannot lose it.
pub async fn telegram(
    state: web::Data<WebState>,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, crate::error::AppError> {
    use crate::actors::bot::InboxError;
    use crate::error::AppError;
    let (Some(inbox), Some(secret)) = (&state.bot_inbox, &state.settings.bot.webhook_secret) else {
        return Err(AppError::NotFound(
            "the Telegram webhook is off (TELEGRAM_MODE=polling)".into(),
        ));
    };
    let remote = client_ip(&req, &state.settings.payments.trusted_proxies);
    if let Some(error) = turned_away(&state, remote) {
        return Err(error);
    }
    let given = req
        .headers()
        .get("X-Telegram-Bot-Api-Secret-Token")
        .map(|v| v.as_bytes())
        .unwrap_or_default();
    if !same_secret(given, secret.expose().as_bytes()) {
        count_refusal(&state, remote);
        tracing::warn!(remote = ?remote, "Telegram webhook with a wrong secret token refused");
        return Err(AppError::Unauthorized(
            "wrong or missing X-Telegram-Bot-Api-Secret-Token".into(),
        ));
    }
    let update: teloxide::types::Update = serde_json::from_slice(&body)
        .map_err(|e| AppError::BadRequest(format!("not a Telegram update: {e}")))?;
    if let Some(payment) = crate::actors::bot::payments::payment_of(&update) {
        let Some(processor) = &state.payments else {
            return Err(AppError::Unavailable(
                "payments are not running; deliver again later".into(),
            ));
        };
        match processor.addr().send(ProviderUpdate(payment)).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                tracing::warn!(update = update.id.0, error = %e.message, "Stars payment not recorded; Telegram delivers it again");
                return Err(AppError::Unavailable(
                    "the payment could not be recorded; deliver again later".into(),
                ));
            }
            Err(e) => {
                tracing::error!(update = update.id.0, error = %e, "payment processor unavailable");
                return Err(AppError::Unavailable(
                    "the payment could not be recorded; deliver again later".into(),
                ));
            }
        }
    }
    match inbox.deliver(update) {
        Ok(()) => Ok(HttpResponse::Ok().finish()),
        Err(InboxError::Full) => Err(AppError::Unavailable(
            "too many Telegram updates waiting; deliver again later".into(),
        )),
        Err(InboxError::Closed) => Err(AppError::Unavailable("the bot is stopping".into())),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn secrets_are_compared_whole() {
        assert!(super::same_secret(b"abc", b"abc"));
        assert!(!super::same_secret(b"abd", b"abc"));
        assert!(!super::same_secret(b"ab", b"abc"));
        assert!(!super::same_secret(b"", b"abc"));
    }

    use super::*;
    use actix_web::test::TestRequest;

    fn req(peer: &str, xff: Option<&str>) -> HttpRequest {
        let mut r = TestRequest::default().peer_addr(format!("{peer}:4000").parse().unwrap());
        if let Some(v) = xff {
            r = r.insert_header(("x-forwarded-for", v));
        }
        r.to_http_request()
    }

    #[test]
    fn ipv4_mapped_addresses_are_read_as_ipv4() {
        // A dual-stack socket (`[::]:8080`) reports IPv4 peers as `::ffff:a.b.c.d`.
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        assert_eq!(
            client_ip(&req("[::ffff:185.71.76.1]", None), &trusted),
            Some("185.71.76.1".parse().unwrap()),
            "a mapped peer must pass YooKassa's IPv4 ranges"
        );
        // A mapped proxy is still the trusted proxy, and mapped entries of the header are
        // IPv4 too (both when skipping trusted hops and in the answer).
        assert_eq!(
            client_ip(
                &req(
                    "[::ffff:10.0.0.2]",
                    Some("::ffff:185.71.76.1, ::ffff:10.0.0.3")
                ),
                &trusted
            ),
            Some("185.71.76.1".parse().unwrap()),
            "a mapped trusted proxy must be recognised"
        );
        // Real IPv6 stays IPv6.
        assert_eq!(
            client_ip(&req("[2a02:5180::1]", None), &trusted),
            Some("2a02:5180::1".parse().unwrap())
        );
    }

    #[test]
    fn client_ip_believes_forwarded_for_only_from_trusted_proxies() {
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        // Not behind a trusted proxy: the header is anyone's to write.
        assert_eq!(
            client_ip(&req("203.0.113.9", Some("185.71.76.1")), &trusted),
            Some("203.0.113.9".parse().unwrap())
        );
        // Behind the proxy: the rightmost untrusted hop, whatever the client put further left.
        assert_eq!(
            client_ip(
                &req("10.0.0.2", Some("185.71.76.1, 198.51.100.7")),
                &trusted
            ),
            Some("198.51.100.7".parse().unwrap())
        );
        assert_eq!(
            client_ip(&req("10.0.0.2", Some("185.71.76.1, 10.0.0.3")), &trusted),
            Some("185.71.76.1".parse().unwrap())
        );
        assert_eq!(
            client_ip(&req("10.0.0.2", None), &trusted),
            Some("10.0.0.2".parse().unwrap())
        );
        assert!(
            YOOKASSA_NETWORKS
                .iter()
                .any(|n| n.contains(&"185.71.76.1".parse::<IpAddr>().unwrap()))
        );
        assert!(
            YOOKASSA_NETWORKS
                .iter()
                .any(|n| n.contains(&"2a02:5180:0:1509::1".parse::<IpAddr>().unwrap()))
        );
        assert!(
            !YOOKASSA_NETWORKS
                .iter()
                .any(|n| n.contains(&"77.75.156.12".parse::<IpAddr>().unwrap()))
        );
    }
}
