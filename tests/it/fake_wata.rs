//! The fake WATA H2H API against `shared/reference/wata-api.md`, over plain HTTP, and its webhook
//! signatures verified the way the shop verifies them, so that tests of the shop's WATA client and
//! webhook handler can trust it.

use crate::support;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{SecondsFormat, TimeDelta, Utc};
use reqwest::{Method, StatusCode};
use rsa::RsaPublicKey;
use rsa::pkcs1v15::{Signature, VerifyingKey};
use rsa::pkcs8::DecodePublicKey;
use rsa::signature::Verifier;
use serde_json::{Value, json};
use sha2::Sha512;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;

use support::wata::{FakeWata, PAY_FORM_URL, TERMINAL_NAME, TERMINAL_PUBLIC_ID, TOKEN};

/// A fake and an HTTP client.
struct Api {
    wata: FakeWata,
    http: reqwest::Client,
}

fn api() -> Api {
    Api {
        wata: FakeWata::start(),
        http: reqwest::Client::new(),
    }
}

/// Status and body (JSON, `null` when empty, or the text as a JSON string).
async fn read(resp: reqwest::Response) -> (u16, Value) {
    let status = resp.status().as_u16();
    let text = resp.text().await.expect("body");
    let body = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    };
    (status, body)
}

impl Api {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.wata.url())
    }

    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut req = self.http.request(method, self.url(path)).bearer_auth(TOKEN);
        if let Some(body) = body {
            req = req.json(&body);
        }
        read(req.send().await.expect("request")).await
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        self.call(Method::GET, path, None).await
    }

    async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.call(Method::POST, path, Some(body)).await
    }

    /// Creates a link that must succeed.
    async fn create_link(&self, body: Value) -> Value {
        let (status, link) = self.post("/links", body.clone()).await;
        assert_eq!(status, 200, "create link {body}: {link}");
        link
    }

    async fn refund(&self, transaction_id: &str, amount: f64) -> (u16, Value) {
        self.post(
            "/transactions/refunds",
            json!({"originalTransactionId": transaction_id, "amount": amount}),
        )
        .await
    }
}

fn link_request(order_id: &str, amount: f64) -> Value {
    json!({
        "amount": amount, "currency": "RUB", "description": "VPN 30 days", "orderId": order_id,
        "successRedirectUrl": "https://t.me/my_vpn_bot", "failRedirectUrl": "https://t.me/my_vpn_bot",
    })
}

fn in_minutes(minutes: i64) -> String {
    (Utc::now() + TimeDelta::minutes(minutes)).to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn id_of(value: &Value) -> &str {
    value["id"].as_str().expect("id")
}

/// Verifies like the shop: SPKI PEM → PKCS#1 v1.5 SHA-512 over the raw body.
fn verifies(pem: &str, body: &[u8], signature_b64: &str) -> bool {
    let key = RsaPublicKey::from_public_key_pem(pem).expect("SPKI PEM");
    let verifying_key = VerifyingKey::<Sha512>::new(key);
    let Ok(bytes) = BASE64.decode(signature_b64) else {
        return false;
    };
    let Ok(signature) = Signature::try_from(bytes.as_slice()) else {
        return false;
    };
    verifying_key.verify(body, &signature).is_ok()
}

/// Asserts the reference's 400 shape and returns `(code, members)`.
fn validation_error(status: u16, body: &Value) -> (Value, Vec<String>) {
    assert_eq!(status, 400, "{body}");
    let error = &body["error"];
    assert_eq!(error["message"], "Your request is invalid!", "{body}");
    assert!(
        error["details"]
            .as_str()
            .unwrap()
            .starts_with("The following validation errors were found – "),
        "{body}"
    );
    assert_eq!(error["data"], json!({}), "{body}");
    let members = error["validationErrors"]
        .as_array()
        .expect("validationErrors")
        .iter()
        .flat_map(|e| {
            assert!(e["message"].is_string(), "{body}");
            e["members"].as_array().unwrap().clone()
        })
        .map(|m| m.as_str().unwrap().to_owned())
        .collect();
    (error["code"].clone(), members)
}

async fn served_public_key(api: &Api) -> String {
    let resp = api.http.get(api.url("/public-key")).send().await.unwrap();
    let (status, body) = read(resp).await;
    assert_eq!(status, 200);
    body["value"].as_str().expect("value").to_owned()
}

// ---------------------------------------------------------------------------------------------
// Auth

#[tokio::test]
async fn api_calls_need_the_bearer_token_but_the_public_key_does_not() {
    let api = api();
    let url = api.url("/links");

    let resp = api.http.get(&url).send().await.unwrap();
    assert_eq!(resp.headers()["www-authenticate"], "Bearer");
    assert_eq!(read(resp).await, (401, Value::Null));

    let resp = api
        .http
        .get(&url)
        .bearer_auth("wrong")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let resp = api
        .http
        .post(&url)
        .header("Authorization", TOKEN)
        .json(&link_request("1", 100.0))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "no Bearer scheme");
    assert!(api.wata.links().is_empty());

    assert_eq!(api.get("/links").await.0, 200);
    let resp = api.http.get(api.url("/public-key")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
}

// ---------------------------------------------------------------------------------------------
// Links

#[tokio::test]
async fn create_link_answers_an_opened_link_with_the_reference_fields() {
    let api = api();
    let expiration = in_minutes(30);
    let mut request = link_request("42", 199.0);
    request["expirationDateTime"] = json!(expiration);
    let before = Utc::now();
    let link = api.create_link(request).await;

    let id = id_of(&link);
    assert!(uuid::Uuid::parse_str(id).is_ok(), "{link}");
    assert_eq!(link["amount"], 199.0);
    assert_eq!(link["currency"], "RUB");
    assert_eq!(link["status"], "Opened");
    assert_eq!(link["url"], format!("{PAY_FORM_URL}{id}"));
    assert_eq!(link["terminalName"], TERMINAL_NAME);
    assert_eq!(link["terminalPublicId"], TERMINAL_PUBLIC_ID);
    assert_eq!(link["orderId"], "42");
    assert_eq!(link["description"], "VPN 30 days");
    assert_eq!(link["successRedirectUrl"], "https://t.me/my_vpn_bot");
    assert_eq!(link["failRedirectUrl"], "https://t.me/my_vpn_bot");
    assert_eq!(link["expirationDateTime"], expiration);
    assert_eq!(link["type"], "OneTime");
    let created: chrono::DateTime<Utc> = link["creationTime"].as_str().unwrap().parse().unwrap();
    assert!(created >= before - TimeDelta::seconds(1) && created <= Utc::now());
    assert_eq!(api.wata.link(id), Some(link.clone()));
    assert_eq!(api.wata.links(), vec![link]);
}

#[tokio::test]
async fn create_link_writes_money_with_two_decimals_and_defaults_to_three_days() {
    let api = api();
    let resp = api
        .http
        .post(api.url("/links"))
        .bearer_auth(TOKEN)
        .json(&json!({"amount": 199, "currency": "RUB"}))
        .send()
        .await
        .unwrap();
    let text = resp.text().await.unwrap();
    assert!(text.contains(r#""amount":199.00,"#), "{text}");
    let link: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(link["orderId"], Value::Null);
    let expires: chrono::DateTime<Utc> = link["expirationDateTime"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let ahead = expires - Utc::now();
    assert!(ahead > TimeDelta::days(3) - TimeDelta::minutes(1) && ahead <= TimeDelta::days(3));
}

#[tokio::test]
async fn create_link_rejects_bad_amounts_with_the_error_shape() {
    let api = api();
    for (amount, currency) in [
        (9.99, "RUB"),
        (10.001, "RUB"),
        (1_000_000.0, "RUB"),
        (0.99, "USD"),
        (-5.0, "EUR"),
    ] {
        let (status, body) = api
            .post("/links", json!({"amount": amount, "currency": currency}))
            .await;
        let (code, members) = validation_error(status, &body);
        assert_eq!(code, "PL_INVALID_AMOUNT", "{amount} {currency}: {body}");
        assert_eq!(members, ["amount"]);
    }
    // Missing or mistyped fields are binding errors: `code` null, as in the reference's example.
    let (status, body) = api.post("/links", json!({"currency": "RUB"})).await;
    assert_eq!(
        validation_error(status, &body),
        (Value::Null, vec!["amount".to_owned()])
    );
    assert_eq!(
        body["error"]["validationErrors"][0]["message"],
        "'Amount' is required."
    );
    let (status, body) = api
        .post("/links", json!({"amount": "199.00", "currency": "RUB"}))
        .await;
    assert_eq!(validation_error(status, &body).0, Value::Null);
    assert!(api.wata.links().is_empty());

    for (amount, currency) in [
        (10.0, "RUB"),
        (999_999.99, "RUB"),
        (1.0, "USD"),
        (10.5, "EUR"),
    ] {
        api.create_link(json!({"amount": amount, "currency": currency}))
            .await;
    }
    assert_eq!(api.wata.links().len(), 4);
}

#[tokio::test]
async fn create_link_rejects_unknown_currency_and_expiration_out_of_range() {
    let api = api();
    let (status, body) = api
        .post("/links", json!({"amount": 100, "currency": "GBP"}))
        .await;
    assert_eq!(
        validation_error(status, &body),
        (json!("PL_INVALID_CURRENCY"), vec!["currency".to_owned()])
    );
    for minutes in [-60, 5, 9, 30 * 24 * 60 + 5] {
        let (status, body) = api
            .post(
                "/links",
                json!({"amount": 100, "currency": "RUB", "expirationDateTime": in_minutes(minutes)}),
            )
            .await;
        assert_eq!(
            validation_error(status, &body),
            (
                json!("PL_INVALID_EXPIRATION_DATE"),
                vec!["expirationDateTime".to_owned()]
            ),
            "{minutes} min"
        );
    }
    let (status, body) = api
        .post(
            "/links",
            json!({"amount": 100, "currency": "RUB", "expirationDateTime": "tomorrow"}),
        )
        .await;
    assert_eq!(validation_error(status, &body).0, Value::Null);
    let (status, body) = api
        .post(
            "/links",
            json!({"amount": 100, "currency": "RUB", "type": "Twice"}),
        )
        .await;
    assert_eq!(validation_error(status, &body).1, ["type"]);
    assert!(api.wata.links().is_empty());

    // An offset is converted to UTC.
    let link = api
        .create_link(json!({"amount": 100, "currency": "RUB",
            "expirationDateTime": (Utc::now() + TimeDelta::minutes(11))
                .with_timezone(&chrono::FixedOffset::east_opt(3 * 3600).unwrap())
                .to_rfc3339_opts(SecondsFormat::Secs, false)}))
        .await;
    assert!(link["expirationDateTime"].as_str().unwrap().ends_with('Z'));
    api.create_link(
        json!({"amount": 100, "currency": "RUB", "expirationDateTime": in_minutes(29 * 24 * 60)}),
    )
    .await;
}

#[tokio::test]
async fn create_link_needs_a_json_content_type() {
    let api = api();
    let resp = api
        .http
        .post(api.url("/links"))
        .bearer_auth(TOKEN)
        .body(link_request("1", 100.0).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert!(api.wata.links().is_empty());
}

#[tokio::test]
async fn links_are_found_by_id_and_by_order_id_and_the_same_order_id_makes_a_second_link() {
    let api = api();
    let first = api.create_link(link_request("order-7", 199.0)).await;
    let second = api.create_link(link_request("order-7", 199.0)).await;
    api.create_link(link_request("order-8", 299.0)).await;
    assert_ne!(first["id"], second["id"], "no idempotency on orderId");

    assert_eq!(
        api.get(&format!("/links/{}", id_of(&first))).await,
        (200, first.clone())
    );
    let (status, body) = api.get(&format!("/links/{}", uuid::Uuid::new_v4())).await;
    assert_eq!(status, 404);
    assert_eq!(body["error"]["code"], "PL_NOT_FOUND");

    let (status, page) = api.get("/links?OrderId=order-7").await;
    assert_eq!(status, 200);
    assert_eq!(page["totalCount"], 2);
    // Newest first by default.
    assert_eq!(page["items"], json!([second, first]));

    let (_, page) = api
        .get("/links?Sorting=creationTime&MaxResultCount=1&SkipCount=1")
        .await;
    assert_eq!(page["totalCount"], 3);
    assert_eq!(page["items"], json!([second]));
    let (_, page) = api.get("/links?AmountFrom=200&Statuses=Opened").await;
    assert_eq!(page["items"][0]["orderId"], "order-8");
    assert_eq!(page["totalCount"], 1);
    let (status, body) = api.get("/links?MaxResultCount=1001").await;
    assert_eq!(validation_error(status, &body).1, ["MaxResultCount"]);
    let (status, _) = api.get("/links?Statuses=Lost").await;
    assert_eq!(status, 400);
}

// ---------------------------------------------------------------------------------------------
// Payments and transactions

#[tokio::test]
async fn pay_closes_a_one_time_link_and_records_a_paid_transaction() {
    let api = api();
    let link = api.create_link(link_request("42", 199.0)).await;
    let before = Utc::now();
    let paid = api.wata.pay(id_of(&link));

    assert_eq!(paid["kind"], "Payment");
    assert_eq!(paid["transactionType"], "SBP");
    assert_eq!(paid["transactionStatus"], "Paid");
    assert_eq!(paid["amount"], 199.0);
    assert_eq!(paid["currency"], "RUB");
    assert_eq!(paid["orderId"], "42");
    assert_eq!(paid["orderDescription"], "VPN 30 days");
    assert_eq!(paid["paymentLinkId"], link["id"]);
    assert_eq!(paid["errorCode"], Value::Null);
    assert_eq!(paid["totalCommission"], 0.0);
    let paid_at: chrono::DateTime<Utc> = paid["paymentTime"].as_str().unwrap().parse().unwrap();
    assert!(paid_at >= before - TimeDelta::seconds(1));

    let (status, fetched) = api.get(&format!("/transactions/{}", id_of(&paid))).await;
    assert_eq!((status, &fetched), (200, &paid));
    let (status, body) = api
        .get(&format!("/transactions/{}", uuid::Uuid::new_v4()))
        .await;
    assert_eq!(status, 404);
    assert_eq!(body["error"]["code"], "TRA_NOT_FOUND");

    assert_eq!(api.wata.link(id_of(&link)).unwrap()["status"], "Closed");
    let (_, fetched_link) = api.get(&format!("/links/{}", id_of(&link))).await;
    assert_eq!(fetched_link["status"], "Closed");
    assert_eq!(api.wata.transactions(), vec![paid]);
}

#[tokio::test]
async fn a_many_time_link_stays_open_and_commission_is_reported() {
    let api = api();
    api.wata.set_commission_rate(0.035);
    let mut request = link_request("many", 200.0);
    request["type"] = json!("ManyTime");
    let link = api.create_link(request).await;
    assert_eq!(link["type"], "ManyTime");
    api.wata.pay(id_of(&link));
    let second = api.wata.pay(id_of(&link));
    assert_eq!(api.wata.link(id_of(&link)).unwrap()["status"], "Opened");
    assert_eq!(second["totalCommission"], 7.0);
    let (body, _) = api.wata.webhook(id_of(&second));
    assert!(
        String::from_utf8(body)
            .unwrap()
            .contains(r#""commission":7.00,"#)
    );
}

#[tokio::test]
#[should_panic(expected = "the link is Closed")]
async fn paying_a_closed_link_is_a_test_bug() {
    let api = api();
    let link = api.create_link(link_request("1", 100.0)).await;
    api.wata.pay(id_of(&link));
    api.wata.pay(id_of(&link));
}

#[tokio::test]
async fn decline_keeps_the_link_open_and_search_finds_transactions_by_order_and_status() {
    let api = api();
    let link = api.create_link(link_request("42", 199.0)).await;
    let other = api.create_link(link_request("43", 299.0)).await;
    let declined = api
        .wata
        .decline(id_of(&link), "InsufficientFunds", "Not enough money");
    assert_eq!(declined["transactionStatus"], "Declined");
    assert_eq!(declined["errorCode"], "InsufficientFunds");
    assert_eq!(declined["errorDescription"], "Not enough money");
    assert_eq!(declined["paymentTime"], Value::Null);
    assert_eq!(api.wata.link(id_of(&link)).unwrap()["status"], "Opened");
    let paid = api.wata.pay(id_of(&link));
    api.wata.pay(id_of(&other));

    let (status, page) = api.get("/v2/transactions?OrderId=42").await;
    assert_eq!(status, 200);
    assert_eq!(page["items"], json!([paid, declined]), "newest first");
    assert_eq!(page["hasNextPage"], false);
    assert_eq!(page["nextCursorId"], Value::Null);

    let (_, page) = api
        .get("/v2/transactions?OrderId=42&Statuses=Paid&MaxResultCount=10")
        .await;
    assert_eq!(page["items"], json!([paid]));
    let (_, page) = api
        .get(&format!(
            "/v2/transactions?PaymentLinkIds={}&Statuses=Declined&Statuses=Paid",
            id_of(&link)
        ))
        .await;
    assert_eq!(page["items"].as_array().unwrap().len(), 2);

    // Cursor paging over all three, oldest first.
    let mut seen = Vec::new();
    let mut query = "Sorting=creationTime&MaxResultCount=2".to_owned();
    loop {
        let (status, page) = api.get(&format!("/v2/transactions?{query}")).await;
        assert_eq!(status, 200, "{page}");
        for item in page["items"].as_array().unwrap() {
            seen.push(item["id"].as_str().unwrap().to_owned());
        }
        if page["hasNextPage"] == false {
            break;
        }
        assert!(page["nextCursorAmount"].is_number() && page["nextCursorDate"].is_string());
        query = format!(
            "Sorting=creationTime&MaxResultCount=2&CursorId={}",
            page["nextCursorId"].as_str().unwrap()
        );
    }
    let all: Vec<String> = api
        .wata
        .transactions()
        .iter()
        .map(|t| id_of(t).to_owned())
        .collect();
    assert_eq!(seen, all);
    let (status, _) = api.get("/v2/transactions?Statuses=Refunded").await;
    assert_eq!(status, 400);
}

// ---------------------------------------------------------------------------------------------
// Webhooks and keys

#[tokio::test]
async fn webhook_signature_verifies_with_the_served_public_key_only_for_the_exact_bytes() {
    let api = api();
    let link = api.create_link(link_request("42", 199.0)).await;
    let paid = api.wata.pay(id_of(&link));
    let (body, signature) = api.wata.webhook(id_of(&paid));
    let pem = served_public_key(&api).await;
    assert!(pem.starts_with("-----BEGIN PUBLIC KEY-----\n"), "{pem}");
    assert!(pem.ends_with("-----END PUBLIC KEY-----"), "{pem}");
    assert_eq!(pem, api.wata.public_key_pem());

    assert!(verifies(&pem, &body, &signature));
    assert_eq!(
        api.wata.sign(&body),
        signature,
        "PKCS#1 v1.5 is deterministic"
    );

    let tampered = String::from_utf8(body.clone())
        .unwrap()
        .replace("199.00", "1.00");
    assert_ne!(tampered.as_bytes(), body.as_slice());
    assert!(!verifies(&pem, tampered.as_bytes(), &signature));
    // Re-serialising changes the bytes, so the signature no longer holds.
    let reserialised =
        serde_json::to_vec(&serde_json::from_slice::<Value>(&body).unwrap()).unwrap();
    assert!(!verifies(&pem, &reserialised, &signature));

    let forged = api.wata.sign_with_foreign_key(&body);
    assert!(!verifies(&pem, &body, &forged));
    assert!(verifies(
        &pem,
        tampered.as_bytes(),
        &api.wata.sign(tampered.as_bytes())
    ));
}

#[tokio::test]
async fn webhook_body_has_the_reference_fields_in_order() {
    let api = api();
    let link = api.create_link(link_request("42", 199.0)).await;
    let paid = api.wata.pay(id_of(&link));
    let (body, _) = api.wata.webhook(id_of(&paid));
    let text = String::from_utf8(body).unwrap();
    assert!(
        !text.contains('\n') && !text.contains("\": ") && !text.contains(", \""),
        "compact: {text}"
    );
    let order = [
        "transactionType",
        "kind",
        "transactionId",
        "transactionStatus",
        "errorCode",
        "errorDescription",
        "terminalName",
        "terminalPublicId",
        "amount",
        "currency",
        "orderId",
        "orderDescription",
        "commission",
        "paymentTime",
        "email",
        "paymentLinkId",
        "payerData",
    ];
    let positions: Vec<usize> = order
        .iter()
        .map(|k| {
            text.find(&format!("\"{k}\":"))
                .unwrap_or_else(|| panic!("{k} missing: {text}"))
        })
        .collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "{text}");
    assert!(text.contains(r#""amount":199.00,"#), "{text}");

    let hook: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(hook.as_object().unwrap().len(), order.len(), "{text}");
    assert_eq!(hook["transactionId"], paid["id"]);
    assert_eq!(hook["transactionStatus"], "Paid");
    assert_eq!(hook["kind"], "Payment");
    assert_eq!(hook["paymentLinkId"], link["id"]);
    assert_eq!(hook["paymentTime"], paid["paymentTime"]);
    assert!(hook["payerData"]["payerId"].is_string());
}

#[tokio::test]
async fn rotate_key_serves_a_new_key_and_old_signatures_fail_against_it() {
    let api = api();
    let link = api.create_link(link_request("42", 199.0)).await;
    let paid = api.wata.pay(id_of(&link));
    let old_pem = served_public_key(&api).await;
    let (body, old_signature) = api.wata.webhook(id_of(&paid));

    api.wata.rotate_key();
    let new_pem = served_public_key(&api).await;
    assert_ne!(new_pem, old_pem);
    assert_eq!(new_pem, api.wata.public_key_pem());
    assert!(!verifies(&new_pem, &body, &old_signature));
    let (same_body, new_signature) = api.wata.webhook(id_of(&paid));
    assert_eq!(same_body, body);
    assert!(verifies(&new_pem, &body, &new_signature));
    assert!(!verifies(&old_pem, &body, &new_signature));
}

/// One request as a tiny HTTP/1.1 server saw it.
struct Received {
    head: String,
    body: Vec<u8>,
}

/// Accepts connections on 127.0.0.1 and answers each request with `status`.
async fn webhook_receiver(status: u16) -> (String, Arc<Mutex<Vec<Received>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/webhooks/wata", listener.local_addr().unwrap());
    let received = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&received);
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let mut data = Vec::new();
            let mut chunk = [0u8; 4096];
            let (head, body) = loop {
                let n = socket.read(&mut chunk).await.unwrap();
                assert!(n > 0, "connection closed mid-request");
                data.extend_from_slice(&chunk[..n]);
                let Some(end) = data.windows(4).position(|w| w == b"\r\n\r\n") else {
                    continue;
                };
                let head = String::from_utf8_lossy(&data[..end]).to_string();
                let length: usize = head
                    .lines()
                    .find_map(|l| {
                        let (name, value) = l.split_once(':')?;
                        name.eq_ignore_ascii_case("content-length")
                            .then(|| value.trim().parse().unwrap())
                    })
                    .unwrap_or(0);
                if data.len() >= end + 4 + length {
                    break (head, data[end + 4..end + 4 + length].to_vec());
                }
            };
            sink.lock().unwrap().push(Received { head, body });
            let reply =
                format!("HTTP/1.1 {status} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
            socket.write_all(reply.as_bytes()).await.unwrap();
        }
    });
    (url, received)
}

#[tokio::test]
async fn send_webhook_posts_the_exact_bytes_with_the_signature_header() {
    let api = api();
    let link = api.create_link(link_request("42", 199.0)).await;
    let paid = api.wata.pay(id_of(&link));
    let (url, received) = webhook_receiver(200).await;

    assert_eq!(api.wata.send_webhook(&url, id_of(&paid)).await, 200);
    let (body, signature) = api.wata.webhook(id_of(&paid));
    let got = received.lock().unwrap().pop().expect("a delivery");
    assert!(
        got.head.starts_with("POST /webhooks/wata HTTP/1.1\r\n"),
        "{}",
        got.head
    );
    let header = |name: &str| {
        got.head.lines().find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
        })
    };
    assert_eq!(header("content-type").as_deref(), Some("application/json"));
    assert_eq!(header("x-signature"), Some(signature.clone()));
    assert_eq!(got.body, body);
    assert!(verifies(&api.wata.public_key_pem(), &got.body, &signature));

    let (failing_url, _) = webhook_receiver(500).await;
    assert_eq!(api.wata.send_webhook(&failing_url, id_of(&paid)).await, 500);
}

// ---------------------------------------------------------------------------------------------
// Refunds

#[tokio::test]
async fn partial_refunds_up_to_the_paid_amount_and_the_refund_webhook() {
    let api = api();
    let link = api.create_link(link_request("42", 199.0)).await;
    let paid = api.wata.pay(id_of(&link));
    let paid_id = id_of(&paid);

    let (status, refund) = api.refund(paid_id, 99.5).await;
    assert_eq!(status, 200, "{refund}");
    let refund_id = refund["transactionId"].as_str().unwrap().to_owned();
    assert_eq!(
        refund,
        json!({"transactionId": refund_id, "originalTransactionId": paid_id,
            "transactionStatus": "Paid", "kind": "Refund", "errorCode": null, "errorDescription": null})
    );

    let (status, body) = api.refund(paid_id, 99.51).await;
    assert_eq!(
        validation_error(status, &body),
        (
            json!("TRA_REFUND_AMOUNT_EXCEEDED"),
            vec!["amount".to_owned()]
        )
    );
    let (status, body) = api.refund(paid_id, 1.005).await;
    assert_eq!(validation_error(status, &body).1, ["amount"]);
    let (status, _) = api.refund(paid_id, 99.5).await;
    assert_eq!(status, 200, "the rest");
    let (status, _) = api.refund(paid_id, 0.01).await;
    assert_eq!(status, 400, "nothing left");

    let stored = api.wata.transaction(&refund_id).unwrap();
    assert_eq!(stored["kind"], "Refund");
    assert_eq!(stored["amount"], 99.5);
    assert_eq!(stored["originalTransactionId"], paid_id);
    assert_eq!(stored["orderId"], "42");
    assert_eq!(
        api.wata.transaction(paid_id).unwrap()["transactionStatus"],
        "Paid"
    );

    let (body, signature) = api.wata.webhook(&refund_id);
    assert!(verifies(&api.wata.public_key_pem(), &body, &signature));
    let hook: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(hook["kind"], "Refund");
    assert_eq!(hook["transactionId"], refund_id.as_str());
    assert_eq!(hook["originalTransactionId"], paid_id);
    assert_eq!(hook["amount"], 99.5);
    assert_eq!(hook["transactionStatus"], "Paid");
    assert!(
        String::from_utf8(body)
            .unwrap()
            .contains(r#""amount":99.50,"#)
    );
}

#[tokio::test]
async fn refunds_of_a_declined_payment_a_refund_or_an_unknown_transaction_are_rejected() {
    let api = api();
    let link = api.create_link(link_request("42", 199.0)).await;
    let declined = api.wata.decline(id_of(&link), "Declined", "Bank said no");
    let (status, body) = api.refund(id_of(&declined), 10.0).await;
    assert_eq!(
        validation_error(status, &body),
        (
            json!("TRA_REFUND_NOT_ALLOWED"),
            vec!["originalTransactionId".to_owned()]
        )
    );

    let paid = api.wata.pay(id_of(&link));
    let (_, refund) = api.refund(id_of(&paid), 10.0).await;
    let (status, _) = api
        .refund(refund["transactionId"].as_str().unwrap(), 1.0)
        .await;
    assert_eq!(status, 400, "a refund of a refund");
    let (status, body) = api.refund(&uuid::Uuid::new_v4().to_string(), 1.0).await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (404, &json!("TRA_NOT_FOUND"))
    );
    let (status, body) = api
        .post(
            "/transactions/refunds",
            json!({"originalTransactionId": "x", "amount": 1}),
        )
        .await;
    assert_eq!(
        validation_error(status, &body),
        (Value::Null, vec!["originalTransactionId".to_owned()])
    );
    assert_eq!(api.wata.transactions().len(), 3);
}

// ---------------------------------------------------------------------------------------------
// Faults and recorder

#[tokio::test]
async fn fail_next_answers_errors_without_applying_and_spares_the_public_key() {
    let api = api();
    api.wata.fail_next(2, 500);
    let (status, body) = api.post("/links", link_request("1", 100.0)).await;
    assert_eq!(status, 500);
    assert_eq!(
        body["error"]["message"],
        "An internal error occurred during your request!"
    );
    assert_eq!(body["error"]["data"], json!({}));
    assert_eq!(served_public_key(&api).await, api.wata.public_key_pem());
    assert_eq!(api.get("/links").await.0, 500);
    assert!(api.wata.links().is_empty(), "nothing applied");
    api.create_link(link_request("1", 100.0)).await;

    api.wata.fail_next(1, 429);
    let resp = api
        .http
        .get(api.url("/links"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["retry-after"], "30");
    let (status, body) = read(resp).await;
    assert_eq!(status, 429);
    assert!(body["error"]["message"].is_string());
    assert_eq!(api.get("/links").await.0, 200);
}

#[tokio::test]
async fn latency_and_time_out_next_delay_answers_after_applying() {
    let api = api();
    api.wata.time_out_next(1, Duration::from_millis(300));
    let client = reqwest::Client::builder()
        .timeout(Duration::from_millis(100))
        .build()
        .unwrap();
    let err = client
        .post(api.url("/links"))
        .bearer_auth(TOKEN)
        .json(&link_request("1", 100.0))
        .send()
        .await
        .unwrap_err();
    assert!(err.is_timeout());
    assert_eq!(
        api.wata.links().len(),
        1,
        "applied although the client gave up"
    );

    api.wata.set_latency(Duration::from_millis(150));
    let started = Instant::now();
    assert_eq!(api.get("/links").await.0, 200);
    assert!(started.elapsed() >= Duration::from_millis(150));
}

#[tokio::test]
async fn recorder_counts_requests_by_route() {
    let api = api();
    let link = api.create_link(link_request("1", 100.0)).await;
    let paid = api.wata.pay(id_of(&link));
    api.get(&format!("/links/{}", id_of(&link))).await;
    api.get(&format!("/links/{}", id_of(&link))).await;
    api.get("/links?OrderId=1").await;
    api.get(&format!("/transactions/{}", id_of(&paid))).await;
    api.get("/v2/transactions?OrderId=1").await;
    api.refund(id_of(&paid), 1.0).await;
    served_public_key(&api).await;
    api.get("/nothing/here").await;

    assert_eq!(api.wata.count("POST", "/api/h2h/links"), 1);
    assert_eq!(api.wata.count("GET", "/api/h2h/links/{id}"), 2);
    assert_eq!(api.wata.count("GET", "/api/h2h/links"), 1);
    assert_eq!(api.wata.count("GET", "/api/h2h/transactions/{id}"), 1);
    assert_eq!(api.wata.count("GET", "/api/h2h/v2/transactions"), 1);
    assert_eq!(api.wata.count("POST", "/api/h2h/transactions/refunds"), 1);
    assert_eq!(api.wata.count("get", "/api/h2h/public-key"), 1);

    let requests = api.wata.requests();
    assert_eq!(requests.len(), 9);
    let create = &requests[0];
    assert_eq!(create.body.as_ref().unwrap()["orderId"], "1");
    assert_eq!(
        create.authorization.as_deref(),
        Some(&*format!("Bearer {TOKEN}"))
    );
    assert_eq!(create.status, 200);
    assert_eq!(requests[3].query, "OrderId=1");
    let unknown = requests.last().unwrap();
    assert_eq!(
        (unknown.route.as_str(), unknown.status),
        ("/api/h2h/nothing/here", 404)
    );
    api.wata.clear_requests();
    assert!(api.wata.requests().is_empty());
}
