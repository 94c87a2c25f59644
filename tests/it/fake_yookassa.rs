//! The fake YooKassa against `shared/reference/yookassa-api.md`, over plain HTTP, so that tests of
//! the shop's payment client can trust it.

use crate::support;

use std::time::{Duration, Instant};

use chrono::DateTime;
use reqwest::Method;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

use support::yookassa::{
    AutoPayment, CARD_FIRST6, CARD_LAST4, CONFIRMATION_URL_PREFIX, FakeYooKassa, SECRET_KEY,
    SHOP_ID,
};

/// A fake and an HTTP client.
struct Api {
    fake: FakeYooKassa,
    http: reqwest::Client,
}

fn api() -> Api {
    Api {
        fake: FakeYooKassa::start(),
        http: reqwest::Client::new(),
    }
}

enum Auth {
    Right,
    Wrong,
    Missing,
}

fn new_key() -> String {
    uuid::Uuid::new_v4().to_string()
}

impl Api {
    async fn send(
        &self,
        method: Method,
        path: &str,
        auth: Auth,
        key: Option<&str>,
        body: Option<&Value>,
    ) -> (u16, Value) {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.fake.url()));
        req = match auth {
            Auth::Right => req.basic_auth(SHOP_ID, Some(SECRET_KEY)),
            Auth::Wrong => req.basic_auth(SHOP_ID, Some("test_wrong")),
            Auth::Missing => req,
        };
        if let Some(key) = key {
            req = req.header("Idempotence-Key", key);
        }
        if let Some(body) = body {
            req = req.json(body);
        }
        let resp = req.send().await.expect("request");
        let status = resp.status().as_u16();
        let text = resp.text().await.expect("body");
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (status, body)
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        self.send(Method::GET, path, Auth::Right, None, None).await
    }

    async fn post(&self, path: &str, key: &str, body: &Value) -> (u16, Value) {
        self.send(Method::POST, path, Auth::Right, Some(key), Some(body))
            .await
    }

    /// Creates a payment with a fresh key; asserts success.
    async fn create(&self, body: &Value) -> Value {
        let (status, payment) = self.post("/payments", &new_key(), body).await;
        assert_eq!(status, 200, "{payment}");
        payment
    }

    async fn refund(&self, payment_id: &str, value: &str) -> (u16, Value) {
        let body = json!({
            "payment_id": payment_id,
            "amount": {"value": value, "currency": "RUB"},
            "description": "refund order 42",
        });
        self.post("/refunds", &new_key(), &body).await
    }

    /// A paid first payment that saved its card; returns the saved method's id.
    async fn saved_card(&self) -> String {
        let mut body = order("199.00");
        body["save_payment_method"] = true.into();
        let payment = self.create(&body).await;
        let paid = self.fake.succeed(payment["id"].as_str().unwrap());
        paid["payment_method"]["id"].as_str().unwrap().to_owned()
    }
}

/// The shop's usual one-off payment.
fn order(value: &str) -> Value {
    json!({
        "amount": {"value": value, "currency": "RUB"},
        "capture": true,
        "confirmation": {"type": "redirect", "return_url": "https://t.me/my_vpn_bot"},
        "description": "VPN 30 days, order 42",
        "metadata": {"order_id": "42", "tg_user_id": "123456789"},
    })
}

fn autopayment(method_id: &str) -> Value {
    json!({
        "amount": {"value": "199.00", "currency": "RUB"},
        "capture": true,
        "payment_method_id": method_id,
        "description": "VPN auto-renewal, order 43",
        "metadata": {"order_id": "43"},
    })
}

fn receipt_item(value: &str, quantity: &str) -> Value {
    json!({
        "description": "Доступ к VPN, 30 дней",
        "quantity": quantity,
        "amount": {"value": value, "currency": "RUB"},
        "vat_code": 1,
        "payment_mode": "full_payment",
        "payment_subject": "service",
    })
}

fn with_receipt(customer: Value, items: Vec<Value>) -> Value {
    let mut body = order("199.00");
    body["receipt"] = json!({"customer": customer, "items": items, "tax_system_code": 2});
    body
}

fn assert_error(status: u16, body: &Value, want_status: u16, code: &str, parameter: Option<&str>) {
    assert_eq!(status, want_status, "{body}");
    assert_eq!(body["type"], "error", "{body}");
    assert_eq!(body["code"], code, "{body}");
    assert!(
        body["id"].as_str().is_some_and(|id| !id.is_empty()),
        "{body}"
    );
    assert!(body["description"].is_string(), "{body}");
    match parameter {
        Some(parameter) => assert_eq!(body["parameter"], parameter, "{body}"),
        None => assert!(body.get("parameter").is_none(), "{body}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Auth and idempotence

#[tokio::test]
async fn wrong_or_missing_credentials_get_401() {
    let api = api();
    let body = order("199.00");
    for auth in [Auth::Wrong, Auth::Missing] {
        let (status, resp) = api
            .send(
                Method::POST,
                "/payments",
                auth,
                Some(&new_key()),
                Some(&body),
            )
            .await;
        assert_error(status, &resp, 401, "invalid_credentials", None);
    }
    let (status, resp) = api
        .send(Method::GET, "/payments/x", Auth::Wrong, None, None)
        .await;
    assert_error(status, &resp, 401, "invalid_credentials", None);
    assert!(api.fake.payments().is_empty());
    assert!(api.fake.requests().iter().all(|r| !r.authorized));
    api.create(&body).await;
    assert!(api.fake.requests().last().unwrap().authorized);
}

#[tokio::test]
async fn same_key_and_body_returns_the_original_payment() {
    let api = api();
    let key = new_key();
    let (_, first) = api.post("/payments", &key, &order("199.00")).await;
    api.fake.succeed(first["id"].as_str().unwrap());
    let (status, again) = api.post("/payments", &key, &order("199.00")).await;
    assert_eq!(status, 200);
    // The stored answer, not the payment as it is now.
    assert_eq!(again, first);
    assert_eq!(again["status"], "pending");
    assert_eq!(api.fake.payments().len(), 1);
    let replays: Vec<bool> = api.fake.requests().iter().map(|r| r.replayed).collect();
    assert_eq!(replays, [false, true]);
}

#[tokio::test]
async fn same_key_with_another_body_is_refused() {
    let api = api();
    let key = new_key();
    api.post("/payments", &key, &order("199.00")).await;
    let (status, resp) = api.post("/payments", &key, &order("299.00")).await;
    assert_error(
        status,
        &resp,
        400,
        "invalid_request",
        Some("Idempotence-Key"),
    );
    assert_eq!(resp["description"], "Idempotence key duplicated");
    // Reusing a payment's key for a refund is another body on another route.
    let (status, resp) = api
        .post("/refunds", &key, &json!({"payment_id": "x"}))
        .await;
    assert_error(
        status,
        &resp,
        400,
        "invalid_request",
        Some("Idempotence-Key"),
    );
    assert_eq!(api.fake.payments().len(), 1);
}

#[tokio::test]
async fn missing_or_long_idempotence_key_is_refused() {
    let api = api();
    let body = order("199.00");
    for path in ["/payments", "/refunds"] {
        let (status, resp) = api
            .send(Method::POST, path, Auth::Right, None, Some(&body))
            .await;
        assert_error(
            status,
            &resp,
            400,
            "invalid_request",
            Some("Idempotence-Key"),
        );
    }
    let (status, resp) = api.post("/payments", &"k".repeat(65), &body).await;
    assert_error(
        status,
        &resp,
        400,
        "invalid_request",
        Some("Idempotence-Key"),
    );
    assert_eq!(api.post("/payments", &"k".repeat(64), &body).await.0, 200);
    assert_eq!(api.fake.payments().len(), 1);
}

#[tokio::test]
async fn idempotence_key_is_new_again_after_24_hours() {
    let api = api();
    let key = new_key();
    let (_, first) = api.post("/payments", &key, &order("199.00")).await;
    api.fake.advance_time(Duration::from_secs(23 * 3600));
    assert_eq!(api.post("/payments", &key, &order("199.00")).await.1, first);
    api.fake.advance_time(Duration::from_secs(2 * 3600));
    let (status, second) = api.post("/payments", &key, &order("199.00")).await;
    assert_eq!(status, 200);
    assert_ne!(second["id"], first["id"]);
    assert_eq!(api.fake.payments().len(), 2);
}

// ---------------------------------------------------------------------------------------------
// Payments

#[tokio::test]
async fn created_payment_is_pending_with_a_confirmation_url() {
    let api = api();
    let payment = api.create(&order("199")).await;
    let id = payment["id"].as_str().unwrap();
    let parts: Vec<usize> = id.split('-').map(str::len).collect();
    assert_eq!(parts, [8, 4, 4, 4, 12], "{id}");
    assert!(id.chars().all(|c| c == '-' || c.is_ascii_hexdigit()));
    assert_eq!(payment["status"], "pending");
    assert_eq!(payment["paid"], false);
    assert_eq!(payment["refundable"], false);
    assert_eq!(payment["test"], true);
    assert_eq!(
        payment["amount"],
        json!({"value": "199.00", "currency": "RUB"})
    );
    assert_eq!(payment["description"], "VPN 30 days, order 42");
    assert_eq!(
        payment["metadata"],
        json!({"order_id": "42", "tg_user_id": "123456789"})
    );
    assert_eq!(payment["recipient"]["account_id"], SHOP_ID);
    assert_eq!(payment["confirmation"]["type"], "redirect");
    assert_eq!(
        payment["confirmation"]["confirmation_url"],
        format!("{CONFIRMATION_URL_PREFIX}{id}")
    );
    let created_at = payment["created_at"].as_str().unwrap();
    assert_eq!(
        created_at.len(),
        "2026-11-27T10:00:00.000Z".len(),
        "{created_at}"
    );
    assert!(created_at.ends_with('Z'));
    DateTime::parse_from_rfc3339(created_at).expect("ISO 8601");
    assert_eq!(
        api.get(&format!("/payments/{id}")).await,
        (200, payment.clone())
    );
    assert_eq!(api.fake.payment(id), Some(payment));
}

#[tokio::test]
async fn succeed_and_cancel_show_in_get() {
    let api = api();
    let paid = api.create(&order("199.00")).await;
    let paid_id = paid["id"].as_str().unwrap();
    let returned = api.fake.succeed(paid_id);
    let (status, now) = api.get(&format!("/payments/{paid_id}")).await;
    assert_eq!((status, &now), (200, &returned));
    assert_eq!(now["status"], "succeeded");
    assert_eq!(now["paid"], true);
    assert_eq!(now["refundable"], true);
    assert!(now["captured_at"].is_string());
    assert_eq!(
        now["income_amount"],
        json!({"value": "192.03", "currency": "RUB"})
    );
    let method = &now["payment_method"];
    assert_eq!(method["type"], "bank_card");
    assert_eq!(method["saved"], false);
    assert_eq!(method["title"], format!("Bank card *{CARD_LAST4}"));
    assert_eq!(method["card"]["first6"], CARD_FIRST6);
    assert_eq!(method["card"]["last4"], CARD_LAST4);
    for field in ["expiry_month", "expiry_year", "card_type"] {
        assert!(method["card"][field].is_string(), "{field}");
    }
    assert_ne!(method["id"], now["id"]);

    let dropped = api.create(&order("199.00")).await;
    let dropped_id = dropped["id"].as_str().unwrap();
    api.fake
        .cancel(dropped_id, "yoo_money", "expired_on_confirmation");
    let (_, now) = api.get(&format!("/payments/{dropped_id}")).await;
    assert_eq!(now["status"], "canceled");
    assert_eq!(now["paid"], false);
    assert_eq!(
        now["cancellation_details"],
        json!({"party": "yoo_money", "reason": "expired_on_confirmation"})
    );
}

#[tokio::test]
async fn unknown_payment_or_refund_is_404() {
    let api = api();
    for path in [
        "/payments/2e9c1f4b-000f-5000-9000-1b7d3e5a6c01",
        "/refunds/2e9c1f4b-0015-5000-8000-1b7d3e5a6c01",
        "/nothing",
    ] {
        let (status, resp) = api.get(path).await;
        assert_error(status, &resp, 404, "not_found", None);
    }
}

#[tokio::test]
async fn amount_and_description_are_validated() {
    let api = api();
    let cases = [
        (
            json!({"value": "199.999", "currency": "RUB"}),
            "amount.value",
        ),
        (json!({"value": "0.00", "currency": "RUB"}), "amount.value"),
        (json!({"value": "-5.00", "currency": "RUB"}), "amount.value"),
        (json!({"value": 199, "currency": "RUB"}), "amount.value"),
        (
            json!({"value": "199.00", "currency": "USD"}),
            "amount.currency",
        ),
    ];
    for (amount, parameter) in cases {
        let mut body = order("1.00");
        body["amount"] = amount;
        let (status, resp) = api.post("/payments", &new_key(), &body).await;
        assert_error(status, &resp, 400, "invalid_request", Some(parameter));
    }
    let mut body = order("199.00");
    body.as_object_mut().unwrap().remove("amount");
    let (status, resp) = api.post("/payments", &new_key(), &body).await;
    assert_error(status, &resp, 400, "invalid_request", Some("amount"));

    let mut body = order("199.00");
    body["description"] = "д".repeat(129).into();
    let (status, resp) = api.post("/payments", &new_key(), &body).await;
    assert_error(status, &resp, 400, "invalid_request", Some("description"));
    body["description"] = "д".repeat(128).into();
    api.create(&body).await;

    let mut body = order("199.00");
    body.as_object_mut().unwrap().remove("confirmation");
    let (status, resp) = api.post("/payments", &new_key(), &body).await;
    assert_error(status, &resp, 400, "invalid_request", Some("confirmation"));
    assert_eq!(api.fake.payments().len(), 1);
}

#[tokio::test]
async fn metadata_limits_are_enforced() {
    let api = api();
    let map = |n: usize, key_len: usize, value_len: usize| -> Value {
        (0..n)
            .map(|i| {
                let key = format!("{i:0>width$}", width = key_len);
                (key, Value::String("v".repeat(value_len)))
            })
            .collect::<serde_json::Map<_, _>>()
            .into()
    };
    for metadata in [
        map(17, 2, 1),
        map(1, 33, 1),
        map(1, 2, 513),
        json!({"order_id": 42}),
        json!({"nested": {"a": "b"}}),
        json!(["order_id"]),
    ] {
        let mut body = order("199.00");
        body["metadata"] = metadata.clone();
        let (status, resp) = api.post("/payments", &new_key(), &body).await;
        assert_error(status, &resp, 400, "invalid_request", Some("metadata"));
    }
    assert!(api.fake.payments().is_empty());
    let mut body = order("199.00");
    body["metadata"] = map(16, 32, 512);
    let payment = api.create(&body).await;
    assert_eq!(payment["metadata"], body["metadata"]);
}

#[tokio::test]
async fn receipt_is_validated() {
    let api = api();
    let email = json!({"email": "user@example.com"});
    let cases = [
        (
            with_receipt(json!({}), vec![receipt_item("199.00", "1.00")]),
            "receipt.customer",
        ),
        (
            with_receipt(
                json!({"phone": "+7 900 123"}),
                vec![receipt_item("199.00", "1")],
            ),
            "receipt.customer.phone",
        ),
        (with_receipt(email.clone(), vec![]), "receipt.items"),
        (
            with_receipt(email.clone(), vec![receipt_item("99.00", "1.00")]),
            "receipt",
        ),
        (
            with_receipt(email.clone(), vec![receipt_item("199.00", "2.00")]),
            "receipt",
        ),
    ];
    for (body, parameter) in cases {
        let (status, resp) = api.post("/payments", &new_key(), &body).await;
        assert_error(status, &resp, 400, "invalid_request", Some(parameter));
    }
    for (field, bad) in [
        ("vat_code", json!(13)),
        ("payment_mode", json!("whenever")),
        ("payment_subject", Value::Null),
        ("description", json!("")),
        ("quantity", json!("0")),
    ] {
        let mut item = receipt_item("199.00", "1.00");
        item[field] = bad;
        let body = with_receipt(email.clone(), vec![item]);
        let (status, resp) = api.post("/payments", &new_key(), &body).await;
        assert_error(
            status,
            &resp,
            400,
            "invalid_request",
            Some(&format!("receipt.items[0].{field}")),
        );
    }
    assert!(api.fake.payments().is_empty());

    // 2 × 49.50 + 100.00 = 199.00, by phone.
    let body = with_receipt(
        json!({"phone": "79001234567"}),
        vec![receipt_item("49.50", "2"), receipt_item("100.00", "1.00")],
    );
    let payment = api.create(&body).await;
    assert_eq!(payment["receipt_registration"], "pending");
    let paid = api.fake.succeed(payment["id"].as_str().unwrap());
    assert_eq!(paid["receipt_registration"], "succeeded");
}

#[tokio::test]
async fn shop_with_receipts_refuses_a_payment_without_one() {
    let api = api();
    api.fake.set_receipts_required(true);
    let (status, resp) = api.post("/payments", &new_key(), &order("199.00")).await;
    assert_error(status, &resp, 400, "invalid_request", Some("receipt"));
    let body = with_receipt(
        json!({"email": "user@example.com"}),
        vec![receipt_item("199.00", "1.00")],
    );
    api.create(&body).await;
}

#[tokio::test]
async fn capture_false_waits_for_capture() {
    let api = api();
    let mut body = order("199.00");
    body["capture"] = false.into();
    let held = api.create(&body).await;
    let id = held["id"].as_str().unwrap();
    let now = api.fake.succeed(id);
    assert_eq!(now["status"], "waiting_for_capture");
    assert_eq!(now["paid"], true);
    assert!(now["expires_at"].is_string());
    let (status, captured) = api
        .post(
            &format!("/payments/{id}/capture"),
            &new_key(),
            &json!({"amount": {"value": "150.00", "currency": "RUB"}}),
        )
        .await;
    assert_eq!(status, 200, "{captured}");
    assert_eq!(captured["status"], "succeeded");
    assert_eq!(captured["amount"]["value"], "150.00");
    assert_eq!(captured["refundable"], true);
    let (status, resp) = api
        .post(&format!("/payments/{id}/cancel"), &new_key(), &json!({}))
        .await;
    assert_error(status, &resp, 400, "invalid_request", Some("payment_id"));

    let other = api.create(&body).await;
    let other_id = other["id"].as_str().unwrap();
    api.fake.succeed(other_id);
    let (status, canceled) = api
        .post(
            &format!("/payments/{other_id}/cancel"),
            &new_key(),
            &json!({}),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        canceled["cancellation_details"],
        json!({"party": "merchant", "reason": "canceled_by_merchant"})
    );
}

#[tokio::test]
async fn list_is_newest_first_with_a_cursor() {
    let api = api();
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(api.create(&order("199.00")).await["id"].clone());
    }
    api.fake.succeed(ids[1].as_str().unwrap());
    let (status, page) = api.get("/payments?limit=2").await;
    assert_eq!(status, 200);
    assert_eq!(page["type"], "list");
    let got: Vec<&Value> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| &p["id"])
        .collect();
    assert_eq!(got, [&ids[2], &ids[1]]);
    let cursor = page["next_cursor"].as_str().unwrap();
    let (_, rest) = api.get(&format!("/payments?limit=2&cursor={cursor}")).await;
    assert_eq!(rest["items"][0]["id"], ids[0]);
    assert!(rest.get("next_cursor").is_none());
    let (_, succeeded) = api.get("/payments?status=succeeded").await;
    assert_eq!(succeeded["items"].as_array().unwrap().len(), 1);
    let (status, resp) = api.get("/payments?limit=101").await;
    assert_error(status, &resp, 400, "invalid_request", Some("limit"));
}

// ---------------------------------------------------------------------------------------------
// Autopayments

#[tokio::test]
async fn saved_card_pays_an_autopayment_without_confirmation() {
    let api = api();
    let method_id = api.saved_card().await;
    let method = api.fake.payment_method(&method_id).unwrap();
    assert_eq!(method["saved"], true);
    let payment = api.create(&autopayment(&method_id)).await;
    assert_eq!(payment["status"], "succeeded");
    assert_eq!(payment["paid"], true);
    assert_eq!(payment["payment_method"]["id"], method_id.as_str());
    assert_eq!(payment["payment_method"]["saved"], true);
    assert!(payment.get("confirmation").is_none());
    assert_eq!(payment["metadata"], json!({"order_id": "43"}));
}

#[tokio::test]
async fn autopayment_outcome_follows_the_setting() {
    let api = api();
    let method_id = api.fake.insert_saved_card();

    api.fake
        .set_autopayment_outcome(AutoPayment::cancel("permission_revoked"));
    let revoked = api.create(&autopayment(&method_id)).await;
    assert_eq!(revoked["status"], "canceled");
    assert_eq!(revoked["paid"], false);
    assert_eq!(
        revoked["cancellation_details"],
        json!({"party": "yoo_money", "reason": "permission_revoked"})
    );

    api.fake
        .set_autopayment_outcome(AutoPayment::cancel("insufficient_funds"));
    let poor = api.create(&autopayment(&method_id)).await;
    assert_eq!(
        poor["cancellation_details"],
        json!({"party": "payment_network", "reason": "insufficient_funds"})
    );

    api.fake.set_autopayment_outcome(AutoPayment::Pending);
    let pending = api.create(&autopayment(&method_id)).await;
    assert_eq!(pending["status"], "pending");
    let paid = api.fake.succeed(pending["id"].as_str().unwrap());
    assert_eq!(paid["status"], "succeeded");
    assert_eq!(paid["payment_method"]["id"], method_id.as_str());

    api.fake.set_autopayment_outcome(AutoPayment::Succeed);
    api.fake.revoke_payment_method(&method_id);
    let after_revoke = api.create(&autopayment(&method_id)).await;
    assert_eq!(
        after_revoke["cancellation_details"]["reason"],
        "permission_revoked"
    );
}

#[tokio::test]
async fn autopayment_with_an_unknown_or_unsaved_method_is_refused() {
    let api = api();
    let unsaved = api.create(&order("199.00")).await;
    let unsaved_method = api.fake.succeed(unsaved["id"].as_str().unwrap())["payment_method"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    for method_id in [
        unsaved_method.as_str(),
        "2e9c1f4b-000f-5000-8000-000000000000",
    ] {
        let (status, resp) = api
            .post("/payments", &new_key(), &autopayment(method_id))
            .await;
        assert_error(
            status,
            &resp,
            400,
            "invalid_request",
            Some("payment_method_id"),
        );
    }
    assert_eq!(api.fake.payments().len(), 1);
}

#[tokio::test]
async fn shop_without_autopayments_gets_403() {
    let api = api();
    let method_id = api.fake.insert_saved_card();
    api.fake.set_autopayments_enabled(false);
    let (status, resp) = api
        .post("/payments", &new_key(), &autopayment(&method_id))
        .await;
    assert_error(status, &resp, 403, "forbidden", None);
    let mut body = order("199.00");
    body["save_payment_method"] = true.into();
    assert_eq!(api.post("/payments", &new_key(), &body).await.0, 403);
}

// ---------------------------------------------------------------------------------------------
// Refunds

#[tokio::test]
async fn partial_then_full_refund() {
    let api = api();
    let payment = api.create(&order("199.00")).await;
    let id = payment["id"].as_str().unwrap();
    api.fake.succeed(id);

    let (status, first) = api.refund(id, "50.00").await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(first["payment_id"], id);
    assert_eq!(first["status"], "succeeded");
    assert_eq!(
        first["amount"],
        json!({"value": "50.00", "currency": "RUB"})
    );
    assert_eq!(first["description"], "refund order 42");
    assert!(first["created_at"].is_string());
    let refund_id = first["id"].as_str().unwrap();
    assert_eq!(
        api.get(&format!("/refunds/{refund_id}")).await,
        (200, first.clone())
    );
    let now = api.fake.payment(id).unwrap();
    assert_eq!(now["refunded_amount"]["value"], "50.00");
    assert_eq!(now["refundable"], true);

    let (status, rest) = api.refund(id, "149.00").await;
    assert_eq!(status, 200, "{rest}");
    let now = api.fake.payment(id).unwrap();
    assert_eq!(
        now["refunded_amount"],
        json!({"value": "199.00", "currency": "RUB"})
    );
    assert_eq!(now["refundable"], false);
    assert_eq!(now["status"], "succeeded");
    assert_eq!(api.fake.refunds(), [first, rest]);

    let (status, resp) = api.refund(id, "1.00").await;
    assert_error(status, &resp, 400, "invalid_request", Some("payment_id"));
}

#[tokio::test]
async fn refund_beyond_the_remainder_or_of_an_unpaid_payment_is_refused() {
    let api = api();
    let paid = api.create(&order("199.00")).await;
    let paid_id = paid["id"].as_str().unwrap();
    api.fake.succeed(paid_id);
    let (status, resp) = api.refund(paid_id, "199.01").await;
    assert_error(status, &resp, 400, "invalid_request", Some("amount.value"));

    let pending = api.create(&order("199.00")).await;
    let (status, resp) = api.refund(pending["id"].as_str().unwrap(), "10.00").await;
    assert_error(status, &resp, 400, "invalid_request", Some("payment_id"));

    let canceled = api.create(&order("199.00")).await;
    let canceled_id = canceled["id"].as_str().unwrap();
    api.fake
        .cancel(canceled_id, "payment_network", "card_expired");
    let (status, resp) = api.refund(canceled_id, "10.00").await;
    assert_error(status, &resp, 400, "invalid_request", Some("payment_id"));

    let (status, resp) = api
        .refund("2e9c1f4b-000f-5000-9000-000000000000", "1.00")
        .await;
    assert_error(status, &resp, 400, "invalid_request", Some("payment_id"));
    assert!(api.fake.refunds().is_empty());
    assert!(
        api.fake
            .payment(paid_id)
            .unwrap()
            .get("refunded_amount")
            .is_none()
    );
}

// ---------------------------------------------------------------------------------------------
// Webhooks

/// One request the tiny webhook server received: the lower-cased head and the JSON body.
type Delivery = (String, Value);

/// A minimal HTTP server that answers every request with `status` and hands it over.
async fn webhook_server(status: u16) -> (String, mpsc::UnboundedReceiver<Delivery>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind the webhook server");
    let url = format!(
        "http://{}/webhooks/yookassa",
        listener.local_addr().expect("address")
    );
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let mut buf = Vec::new();
            let mut chunk = [0_u8; 4096];
            let head_end = loop {
                if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                    break Some(at + 4);
                }
                match stream.read(&mut chunk).await {
                    Ok(0) | Err(_) => break None,
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                }
            };
            let Some(head_end) = head_end else { continue };
            let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
            let length: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            while buf.len() < head_end + length {
                match stream.read(&mut chunk).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                }
            }
            let end = buf.len().min(head_end + length);
            let body = serde_json::from_slice(&buf[head_end..end]).unwrap_or(Value::Null);
            let _ = tx.send((head, body));
            let reply = format!(
                "HTTP/1.1 {status} Whatever\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
            );
            let _ = stream.write_all(reply.as_bytes()).await;
            let _ = stream.shutdown().await;
        }
    });
    (url, rx)
}

#[tokio::test]
async fn notification_reaches_the_webhook_with_the_current_object() {
    let api = api();
    let (url, mut deliveries) = webhook_server(200).await;
    let payment = api.create(&order("199.00")).await;
    let id = payment["id"].as_str().unwrap();
    let paid = api.fake.succeed(id);
    assert_eq!(
        api.fake
            .send_notification(&url, id, "payment.succeeded")
            .await,
        200
    );
    let (head, body) = deliveries.recv().await.expect("a delivery");
    assert!(head.starts_with("post /webhooks/yookassa "), "{head}");
    assert!(head.contains("content-type: application/json"), "{head}");
    assert!(!head.contains("authorization:"), "{head}");
    assert_eq!(
        body,
        json!({"type": "notification", "event": "payment.succeeded", "object": paid})
    );

    let (_, refund) = api.refund(id, "199.00").await;
    let refund_id = refund["id"].as_str().unwrap();
    api.fake
        .send_notification(&url, refund_id, "refund.succeeded")
        .await;
    let (_, body) = deliveries.recv().await.expect("a delivery");
    assert_eq!(body["event"], "refund.succeeded");
    assert_eq!(body["object"], refund);

    let (failing, _deliveries) = webhook_server(503).await;
    assert_eq!(
        api.fake
            .send_notification(&failing, id, "payment.succeeded")
            .await,
        503
    );
}

// ---------------------------------------------------------------------------------------------
// Faults and the recorder

#[tokio::test]
async fn fail_next_answers_the_error_and_applies_nothing() {
    let api = api();
    api.fake.fail_next(2, 500);
    let key = new_key();
    let (status, resp) = api.post("/payments", &key, &order("199.00")).await;
    assert_error(status, &resp, 500, "internal_server_error", None);
    let (status, _) = api.get("/payments/whatever").await;
    assert_eq!(status, 500);
    assert!(api.fake.payments().is_empty());
    // The retry with the same key is the first time the payment is made.
    let (status, payment) = api.post("/payments", &key, &order("199.00")).await;
    assert_eq!(status, 200);
    assert_eq!(api.fake.payments(), [payment]);

    api.fake.fail_next(1, 429);
    let (status, resp) = api.post("/payments", &new_key(), &order("199.00")).await;
    assert_error(status, &resp, 429, "too_many_requests", None);
    assert_eq!(api.fake.payments().len(), 1);
}

#[tokio::test]
async fn failure_after_applying_is_repaired_by_a_retry_with_the_same_key() {
    let api = api();
    api.fake.fail_next_after_applying(1, 500);
    let key = new_key();
    let (status, _) = api.post("/payments", &key, &order("199.00")).await;
    assert_eq!(status, 500);
    assert_eq!(api.fake.payments().len(), 1);
    let (status, payment) = api.post("/payments", &key, &order("199.00")).await;
    assert_eq!(status, 200);
    assert_eq!(api.fake.payments(), [payment]);
}

#[tokio::test]
async fn latency_and_time_outs_delay_the_answer() {
    let api = api();
    api.fake.set_latency(Duration::from_millis(150));
    let started = Instant::now();
    api.create(&order("199.00")).await;
    assert!(started.elapsed() >= Duration::from_millis(150));

    api.fake.set_latency(Duration::ZERO);
    api.fake.time_out_next(1, Duration::from_secs(2));
    let result = api
        .http
        .post(format!("{}/payments", api.fake.url()))
        .basic_auth(SHOP_ID, Some(SECRET_KEY))
        .header("Idempotence-Key", new_key())
        .timeout(Duration::from_millis(100))
        .json(&order("199.00"))
        .send()
        .await;
    assert!(result.unwrap_err().is_timeout());
    // Applied all the same.
    assert_eq!(api.fake.payments().len(), 2);
}

#[tokio::test]
async fn recorder_keeps_requests_and_counts_routes() {
    let api = api();
    let key = new_key();
    let (_, payment) = api.post("/payments", &key, &order("199.00")).await;
    let id = payment["id"].as_str().unwrap();
    api.get(&format!("/payments/{id}")).await;
    api.get(&format!("/payments/{id}")).await;
    api.fake.succeed(id);
    let (_, refund) = api.refund(id, "10.00").await;
    api.get(&format!("/refunds/{}", refund["id"].as_str().unwrap()))
        .await;

    assert_eq!(api.fake.count("POST", "/v3/payments"), 1);
    assert_eq!(api.fake.count("get", "/v3/payments/{id}"), 2);
    assert_eq!(api.fake.count("POST", "/v3/refunds"), 1);
    assert_eq!(api.fake.count("GET", "/v3/refunds/{id}"), 1);
    let requests = api.fake.requests();
    assert_eq!(requests.len(), 5);
    let create = &requests[0];
    assert_eq!(create.method, "POST");
    assert_eq!(create.path, "/v3/payments");
    assert_eq!(create.idempotence_key.as_deref(), Some(key.as_str()));
    assert!(create.authorized);
    assert_eq!(create.body, Some(order("199.00")));
    assert_eq!(create.status, 200);
    assert_eq!(create.response, payment);
    assert_eq!(requests[1].path, format!("/v3/payments/{id}"));
    assert!(requests[1].idempotence_key.is_none());
    api.fake.clear_requests();
    assert!(api.fake.requests().is_empty());
}
