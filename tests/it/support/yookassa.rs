//! A fake YooKassa payments API v3 for tests and benches: the subset of
//! `shared/reference/yookassa-api.md` the shop uses (payments, autopayments, 54-FZ receipts,
//! refunds, idempotence, webhooks) over in-memory state, with fault injection and a request
//! recorder. It serves from its own thread and actix System, so any runtime (or none) can drive
//! it. Benches include this file by path, next to `server.rs`.
//!
//! Behaviour the reference does not pin down is marked `[I]` (inferred) where it is decided.

// Each includer (a test binary, a bench) uses a different subset of this API.
#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use chrono::{DateTime, Datelike, SecondsFormat, TimeDelta, Utc};
use serde_json::{Map, Value, json};

use super::server::FakeServer;

pub const SHOP_ID: &str = "506751";
pub const SECRET_KEY: &str = "test_Fh8hUAVVBGUGbjmlzba6TB0iyUbos_lueTHE-axOwM0";
/// `recipient.gateway_id` of every payment.
pub const GATEWAY_ID: &str = "2391570";
/// `confirmation.confirmation_url` is this followed by the payment id.
pub const CONFIRMATION_URL_PREFIX: &str =
    "https://yoomoney.ru/checkout/payments/v2/contract?orderId=";
/// The card every payer pays with.
pub const CARD_FIRST6: &str = "555555";
pub const CARD_LAST4: &str = "4444";
/// [I] YooKassa's fee, in tenths of a percent of the amount: `income_amount = amount − 3.5 %`.
pub const FEE_PER_MILLE: i64 = 35;

const MAX_IDEMPOTENCE_KEY_LEN: usize = 64;
const MAX_DESCRIPTION_LEN: usize = 128;
/// [I] The reference gives no limit for a refund's description.
const MAX_REFUND_DESCRIPTION_LEN: usize = 250;
const MAX_METADATA_KEYS: usize = 16;
const MAX_METADATA_KEY_LEN: usize = 32;
const MAX_METADATA_VALUE_LEN: usize = 512;
const MAX_ITEM_DESCRIPTION_LEN: usize = 128;
const PAYMENT_METHOD_TYPES: [&str; 9] = [
    "bank_card",
    "sbp",
    "yoo_money",
    "sberbank",
    "tinkoff_bank",
    "mir_pay",
    "sber_loan",
    "b2b_sberbank",
    "mobile_balance",
];
/// [M] 54-FZ `payment_mode` values.
const PAYMENT_MODES: [&str; 7] = [
    "full_prepayment",
    "partial_prepayment",
    "advance",
    "full_payment",
    "partial_payment",
    "credit",
    "credit_payment",
];
/// [M] 54-FZ `payment_subject` values.
const PAYMENT_SUBJECTS: [&str; 20] = [
    "commodity",
    "excise",
    "job",
    "service",
    "gambling_bet",
    "gambling_prize",
    "lottery",
    "lottery_prize",
    "intellectual_activity",
    "payment",
    "agent_commission",
    "composite",
    "another",
    "property_right",
    "non_operating_gain",
    "insurance_premium",
    "sales_tax",
    "resort_fee",
    "marked",
    "non_marked",
];

/// What a payment made with a saved `payment_method_id` does at creation.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum AutoPayment {
    /// Charged at once: `succeeded` (`waiting_for_capture` with `capture: false`).
    #[default]
    Succeed,
    /// Declined at once: `canceled` with this `reason` and `cancellation_party(reason)`.
    Cancel { reason: String },
    /// Stays `pending` until the test calls `succeed`/`cancel`.
    Pending,
}

impl AutoPayment {
    pub fn cancel(reason: &str) -> AutoPayment {
        AutoPayment::Cancel {
            reason: reason.to_owned(),
        }
    }
}

/// [I] Who declines for a reason: the issuer/network for card and balance problems, the merchant
/// for its own cancellations, YooKassa for the rest (`permission_revoked`, `fraud_suspected`,
/// `expired_on_confirmation`, …).
pub fn cancellation_party(reason: &str) -> &'static str {
    match reason {
        "canceled_by_merchant" => "merchant",
        "3d_secure_failed"
        | "call_issuer"
        | "card_expired"
        | "general_decline"
        | "insufficient_funds"
        | "invalid_card_number"
        | "invalid_csc"
        | "issuer_unavailable"
        | "payment_method_limit_exceeded"
        | "payment_method_restricted"
        | "unsupported_mobile_operator" => "payment_network",
        _ => "yoo_money",
    }
}

/// One request as it reached the fake.
#[derive(Clone, Debug)]
pub struct Recorded {
    pub method: String,
    /// Route pattern, e.g. `/v3/payments/{id}`; the raw path for unknown routes.
    pub route: String,
    pub path: String,
    pub query: String,
    pub idempotence_key: Option<String>,
    /// Whether `Authorization` carried the right Basic credentials.
    pub authorized: bool,
    /// JSON body; other text as a JSON string; `None` when empty.
    pub body: Option<Value>,
    pub status: u16,
    /// The answer's JSON body.
    pub response: Value,
    /// Answered from the idempotence store: nothing was applied.
    pub replayed: bool,
    pub received_at: Instant,
}

/// The running fake; stops (bounded) when dropped.
pub struct FakeYooKassa {
    shared: Arc<Shared>,
    server: FakeServer,
}

impl FakeYooKassa {
    /// Binds 127.0.0.1 on a random port and returns once the server is listening.
    pub fn start() -> FakeYooKassa {
        let shared = Arc::new(Shared {
            state: Mutex::new(State::new()),
        });
        let data = web::Data::from(Arc::clone(&shared));
        let server = FakeServer::start("fake-yookassa", move |app| {
            app.app_data(data.clone())
                .app_data(web::PayloadConfig::new(1 << 20))
                .default_service(web::to(serve));
        });
        FakeYooKassa { shared, server }
    }

    /// The API base to use as `YOOKASSA_API_URL`: `http://127.0.0.1:PORT/v3`.
    pub fn url(&self) -> String {
        format!("{}/v3", self.server.url())
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.shared.lock()
    }

    // -- State ------------------------------------------------------------------------------------

    /// The payment object as `GET /v3/payments/{id}` returns it.
    pub fn payment(&self, id: &str) -> Option<Value> {
        self.state()
            .payments
            .get(id)
            .map(|p| Value::Object(p.object.clone()))
    }

    /// Every payment in creation order.
    pub fn payments(&self) -> Vec<Value> {
        let st = self.state();
        st.payment_order
            .iter()
            .filter_map(|id| st.payments.get(id))
            .map(|p| Value::Object(p.object.clone()))
            .collect()
    }

    pub fn refund(&self, id: &str) -> Option<Value> {
        self.state().refunds.get(id).cloned()
    }

    /// Every refund in creation order.
    pub fn refunds(&self) -> Vec<Value> {
        let st = self.state();
        st.refund_order
            .iter()
            .filter_map(|id| st.refunds.get(id))
            .cloned()
            .collect()
    }

    /// A payment method known to the shop (saved or not), as payments show it.
    pub fn payment_method(&self, id: &str) -> Option<Value> {
        self.state().methods.get(id).map(|m| m.object.clone())
    }

    /// Saves a card for autopayments as if a first payment had saved it; returns its id.
    pub fn insert_saved_card(&self) -> String {
        let mut st = self.state();
        let now = st.now();
        let id = new_id(now, "000f-5000-8000");
        let object = card_method(&id, true, now);
        st.methods.insert(
            id.clone(),
            SavedMethod {
                object,
                revoked: false,
            },
        );
        id
    }

    /// The payer withdraws consent (e.g. unlinks the card in their bank app): autopayments with
    /// this method are declined with `permission_revoked` from now on, whatever the outcome set.
    pub fn revoke_payment_method(&self, id: &str) {
        let mut st = self.state();
        let Some(method) = st.methods.get_mut(id) else {
            drop(st);
            panic!("fake YooKassa has no payment method {id:?}");
        };
        method.revoked = true;
    }

    // -- Driving payments like a payer or the bank would -----------------------------------------

    /// The payer pays: `pending` → `succeeded` (`waiting_for_capture` when created with
    /// `capture: false`), `paid: true`, `captured_at`, `income_amount`, `refundable: true` and
    /// `payment_method` (a card unless `payment_method_data` chose another type) with
    /// `saved` = the payment's `save_payment_method`. Returns the payment now.
    /// Panics unless the payment exists and is `pending`.
    pub fn succeed(&self, id: &str) -> Value {
        let result = self.state().succeed(id);
        result.unwrap_or_else(|problem| panic!("{problem}"))
    }

    /// Confirmation URLs lead to a checkout page this fake serves (`GET /checkout/{id}`), with
    /// a *Pay* button that succeeds the payment and sends the browser to its `return_url`, as
    /// the payer would see it. Without this they are YooKassa's own (unreachable) addresses.
    pub fn serve_checkout_page(&self) {
        let base = format!("{}/checkout/", self.server.url());
        self.state().checkout_page = Some(base);
    }

    /// The payment is declined or abandoned: `pending`/`waiting_for_capture` → `canceled` with
    /// `cancellation_details {party, reason}`. Returns the payment now. Panics unless the payment
    /// exists and is in one of those states.
    pub fn cancel(&self, id: &str, party: &str, reason: &str) -> Value {
        let mut st = self.state();
        let problem = match st.payments.get(id) {
            None => Some(format!("fake YooKassa has no payment {id:?}")),
            Some(p) if !matches!(p.status(), "pending" | "waiting_for_capture") => Some(format!(
                "cancel({id:?}): the payment is already {}",
                p.status()
            )),
            Some(_) => None,
        };
        if let Some(problem) = problem {
            drop(st);
            panic!("{problem}");
        }
        let payment = st.payments.get_mut(id).expect("checked above");
        payment.mark_canceled(party, reason);
        Value::Object(payment.object.clone())
    }

    /// What payments with `payment_method_id` do at creation from now on.
    pub fn set_autopayment_outcome(&self, outcome: AutoPayment) {
        self.state().autopayment = outcome;
    }

    /// With receipts enabled for the shop, a payment without `receipt` is refused (400).
    pub fn set_receipts_required(&self, required: bool) {
        self.state().receipts_required = required;
    }

    /// A live shop without autopayments switched on: `save_payment_method: true` and
    /// `payment_method_id` answer 403 `forbidden` [I]. On by default, as in test shops.
    pub fn set_autopayments_enabled(&self, enabled: bool) {
        self.state().autopayments_enabled = enabled;
    }

    /// Moves the fake's clock forward: timestamps of new objects and the 24 h idempotence window.
    pub fn advance_time(&self, by: Duration) {
        let mut st = self.state();
        st.clock_offset += TimeDelta::from_std(by).expect("a sane duration");
    }

    // -- Webhooks ---------------------------------------------------------------------------------

    /// `{"type":"notification","event":event,"object":<payment or refund now>}`. The event is not
    /// checked against the status, so stale and out-of-order deliveries can be simulated.
    /// Panics when `id` is neither a payment nor a refund.
    pub fn notification(&self, id: &str, event: &str) -> Value {
        let object = self
            .payment(id)
            .or_else(|| self.refund(id))
            .unwrap_or_else(|| panic!("fake YooKassa has no payment or refund {id:?}"));
        json!({"type": "notification", "event": event, "object": object})
    }

    /// POSTs `notification(id, event)` as JSON to `webhook_url` (no auth, no signature, as the
    /// real one) and returns the HTTP status; 0 when no answer came within 10 s.
    pub async fn send_notification(&self, webhook_url: &str, id: &str, event: &str) -> u16 {
        let body = self.notification(id, event);
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .expect("build the notification client");
        match client.post(webhook_url).json(&body).send().await {
            Ok(response) => response.status().as_u16(),
            Err(_) => 0,
        }
    }

    // -- Faults and the recorder ------------------------------------------------------------------

    /// The next `n` requests answer `status` with the error body of that status (500 →
    /// `internal_server_error`, 429 → `too_many_requests`, …) without applying anything.
    pub fn fail_next(&self, n: usize, status: u16) {
        self.state().fail_next = (n, status);
    }

    /// The next `n` requests are applied (and their idempotent result stored), then answered
    /// `status` with its error body: the "500, result unknown" case of the reference.
    pub fn fail_next_after_applying(&self, n: usize, status: u16) {
        self.state().fail_after_applying = (n, status);
    }

    /// The next `n` requests are applied, but answered only after `delay`.
    pub fn time_out_next(&self, n: usize, delay: Duration) {
        self.state().time_out_next = (n, delay);
    }

    /// Added to every answer, after the request was applied.
    pub fn set_latency(&self, latency: Duration) {
        self.state().latency = latency;
    }

    /// Every request in arrival order.
    pub fn requests(&self) -> Vec<Recorded> {
        self.state().requests.clone()
    }

    pub fn clear_requests(&self) {
        self.state().requests.clear();
    }

    /// Requests with this method and route pattern: `/v3/payments`, `/v3/payments/{id}`,
    /// `/v3/payments/{id}/capture`, `/v3/payments/{id}/cancel`, `/v3/refunds`, `/v3/refunds/{id}`.
    pub fn count(&self, method: &str, route: &str) -> usize {
        self.state()
            .requests
            .iter()
            .filter(|r| r.method.eq_ignore_ascii_case(method) && r.route == route)
            .count()
    }
}

// ---------------------------------------------------------------------------------------------
// HTTP plumbing

struct Shared {
    state: Mutex<State>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panicking test helper must not take every later request down with it.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn process(&self, incoming: &Incoming) -> (Reply, Duration) {
        let (route, pattern) = route_of(&incoming.method, &incoming.path);
        let authorized = credentials_ok(incoming.authorization.as_deref());
        let mut st = self.lock();
        let outcome = st.process(&route, incoming, authorized);
        st.requests.push(Recorded {
            method: incoming.method.clone(),
            route: pattern,
            path: incoming.path.clone(),
            query: incoming.query.clone(),
            idempotence_key: incoming.idempotence_key.clone(),
            authorized,
            body: recorded_body(&incoming.body),
            status: outcome.reply.status,
            response: outcome.reply.body.clone(),
            replayed: outcome.replayed,
            received_at: incoming.received_at,
        });
        (outcome.reply, outcome.delay)
    }
}

struct Incoming {
    method: String,
    path: String,
    query: String,
    authorization: Option<String>,
    idempotence_key: Option<String>,
    body: web::Bytes,
    received_at: Instant,
}

/// The payer's checkout page ([`FakeYooKassa::serve_checkout_page`]): `GET` shows the amount
/// and a *Pay* button, `POST` pays and sends the browser back to the shop's `return_url`.
fn checkout(req: &HttpRequest, id: &str, shared: &Shared) -> HttpResponse {
    let mut st = shared.lock();
    let Some(payment) = st.payments.get(id).map(|p| p.object.clone()) else {
        return HttpResponse::NotFound().body("no such payment");
    };
    if req.method() == actix_web::http::Method::GET {
        let amount = &payment["amount"];
        let html = format!(
            "<!doctype html><html><head><meta charset=\"utf-8\"><title>YooKassa checkout</title></head>\
             <body><h1 id=\"amount\">{} {}</h1><form method=\"post\"><button id=\"pay\" type=\"submit\">Pay</button></form></body></html>",
            amount["value"].as_str().unwrap_or_default(),
            amount["currency"].as_str().unwrap_or_default(),
        );
        return HttpResponse::Ok()
            .content_type("text/html; charset=utf-8")
            .body(html);
    }
    if let Err(problem) = st.succeed(id) {
        return HttpResponse::Conflict().body(problem);
    }
    let back = payment["confirmation"]["return_url"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    HttpResponse::SeeOther()
        .insert_header(("location", back))
        .finish()
}

async fn serve(req: HttpRequest, body: web::Bytes, shared: web::Data<Shared>) -> HttpResponse {
    if let Some(id) = req.path().strip_prefix("/checkout/") {
        return checkout(&req, id, &shared);
    }
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let incoming = Incoming {
        method: req.method().as_str().to_owned(),
        path: req.path().to_owned(),
        query: req.query_string().to_owned(),
        authorization: header("authorization"),
        idempotence_key: header("idempotence-key"),
        body,
        received_at: Instant::now(),
    };
    // The state is locked only inside `process`, never across this await.
    let (reply, delay) = shared.process(&incoming);
    if !delay.is_zero() {
        actix_rt::time::sleep(delay).await;
    }
    reply.into_response()
}

#[derive(Clone)]
struct Reply {
    status: u16,
    body: Value,
}

impl Reply {
    fn ok(body: Value) -> Reply {
        Reply { status: 200, body }
    }

    fn error(status: u16, code: &str, description: &str, parameter: Option<&str>) -> Reply {
        let mut body = json!({
            "type": "error",
            "id": uuid::Uuid::new_v4().to_string(),
            "code": code,
            "description": description,
        });
        if let Some(parameter) = parameter {
            body["parameter"] = parameter.into();
        }
        Reply { status, body }
    }

    /// 400 `invalid_request` naming the offending parameter.
    fn invalid(parameter: &str, description: &str) -> Reply {
        Reply::error(400, "invalid_request", description, Some(parameter))
    }

    fn not_found(description: &str) -> Reply {
        Reply::error(404, "not_found", description, None)
    }

    /// The body the real API gives with this status (see the reference's error table).
    fn fault(status: u16) -> Reply {
        let (code, description) = match status {
            400 => ("invalid_request", "Invalid request"),
            401 => (
                "invalid_credentials",
                "Error in shopId or secret key. Check their validity.",
            ),
            403 => ("forbidden", "Operation is forbidden"),
            404 => ("not_found", "Object not found"),
            429 => ("too_many_requests", "Too many requests, try again later"),
            _ => (
                "internal_server_error",
                "Internal server error: the result is unknown, retry with the same Idempotence-Key",
            ),
        };
        Reply::error(status, code, description, None)
    }

    fn into_response(self) -> HttpResponse {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        HttpResponse::build(status)
            .content_type("application/json")
            .body(serde_json::to_vec(&self.body).unwrap_or_default())
    }
}

struct Outcome {
    reply: Reply,
    delay: Duration,
    replayed: bool,
}

enum Route {
    CreatePayment,
    ListPayments,
    GetPayment(String),
    CapturePayment(String),
    CancelPayment(String),
    CreateRefund,
    ListRefunds,
    GetRefund(String),
    /// [I] Unknown paths and methods both answer 404 `not_found`.
    NotFound,
}

/// The route and its pattern (the raw path for unknown paths).
fn route_of(method: &str, path: &str) -> (Route, String) {
    let segments: Vec<&str> = path.strip_prefix('/').unwrap_or(path).split('/').collect();
    let id = |s: &str| s.to_owned();
    let (pattern, candidates): (&str, Vec<(&str, Route)>) = match segments.as_slice() {
        ["v3", "payments"] => (
            "/v3/payments",
            vec![("POST", Route::CreatePayment), ("GET", Route::ListPayments)],
        ),
        ["v3", "payments", p] if !p.is_empty() => {
            ("/v3/payments/{id}", vec![("GET", Route::GetPayment(id(p)))])
        }
        ["v3", "payments", p, "capture"] if !p.is_empty() => (
            "/v3/payments/{id}/capture",
            vec![("POST", Route::CapturePayment(id(p)))],
        ),
        ["v3", "payments", p, "cancel"] if !p.is_empty() => (
            "/v3/payments/{id}/cancel",
            vec![("POST", Route::CancelPayment(id(p)))],
        ),
        ["v3", "refunds"] => (
            "/v3/refunds",
            vec![("POST", Route::CreateRefund), ("GET", Route::ListRefunds)],
        ),
        ["v3", "refunds", r] if !r.is_empty() => {
            ("/v3/refunds/{id}", vec![("GET", Route::GetRefund(id(r)))])
        }
        _ => return (Route::NotFound, path.to_owned()),
    };
    let route = candidates
        .into_iter()
        .find(|(m, _)| *m == method)
        .map_or(Route::NotFound, |(_, route)| route);
    (route, pattern.to_owned())
}

fn recorded_body(body: &[u8]) -> Option<Value> {
    if body.is_empty() {
        return None;
    }
    let text = String::from_utf8_lossy(body);
    Some(serde_json::from_str(&text).unwrap_or_else(|_| Value::String(text.into_owned())))
}

/// `Authorization: Basic base64(SHOP_ID:SECRET_KEY)`.
fn credentials_ok(header: Option<&str>) -> bool {
    let Some((scheme, encoded)) = header.and_then(|h| h.trim().split_once(' ')) else {
        return false;
    };
    if !scheme.eq_ignore_ascii_case("basic") {
        return false;
    }
    STANDARD
        .decode(encoded.trim())
        .is_ok_and(|decoded| decoded == format!("{SHOP_ID}:{SECRET_KEY}").as_bytes())
}

// ---------------------------------------------------------------------------------------------
// State and the API

struct PaymentEntry {
    object: Map<String, Value>,
    /// Current amount (a partial capture lowers it), in kopecks.
    amount: i64,
    currency: String,
    capture: bool,
    save_method: bool,
    /// The saved method an autopayment charges.
    method: Option<String>,
    refunded: i64,
    has_receipt: bool,
}

impl PaymentEntry {
    fn status(&self) -> &str {
        self.object["status"].as_str().unwrap_or_default()
    }

    fn set(&mut self, key: &str, value: Value) {
        self.object.insert(key.to_owned(), value);
    }

    fn mark_paid(&mut self, method: Value, now: DateTime<Utc>) {
        self.set("paid", true.into());
        self.set("payment_method", method);
        self.set(
            "authorization_details",
            json!({
                "rrn": random_digits(12),
                "auth_code": random_digits(6),
                "three_d_secure": {"applied": false},
            }),
        );
        if self.capture {
            self.mark_captured(now);
        } else {
            // [M] Funds are held for 7 days awaiting capture.
            self.set("status", "waiting_for_capture".into());
            self.set("expires_at", timestamp(now + TimeDelta::days(7)).into());
        }
    }

    fn mark_captured(&mut self, now: DateTime<Utc>) {
        self.set("status", "succeeded".into());
        self.set("captured_at", timestamp(now).into());
        self.object.remove("expires_at");
        self.set("amount", money(self.amount, &self.currency));
        let fee = (self.amount * FEE_PER_MILLE + 500) / 1000;
        self.set("income_amount", money(self.amount - fee, &self.currency));
        self.set("refundable", true.into());
        if self.has_receipt {
            self.set("receipt_registration", "succeeded".into());
        }
    }

    fn mark_canceled(&mut self, party: &str, reason: &str) {
        self.set("status", "canceled".into());
        self.set("paid", false.into());
        self.set("refundable", false.into());
        self.object.remove("expires_at");
        self.set(
            "cancellation_details",
            json!({"party": party, "reason": reason}),
        );
        if self.has_receipt {
            self.set("receipt_registration", "canceled".into());
        }
    }
}

struct SavedMethod {
    /// As `payment.payment_method` shows it.
    object: Value,
    revoked: bool,
}

/// An idempotent POST's result, honoured for 24 h.
struct StoredResult {
    method: String,
    path: String,
    body: Value,
    reply: Reply,
    at: DateTime<Utc>,
}

struct State {
    payments: HashMap<String, PaymentEntry>,
    payment_order: Vec<String>,
    refunds: HashMap<String, Value>,
    refund_order: Vec<String>,
    methods: HashMap<String, SavedMethod>,
    idempotence: HashMap<String, StoredResult>,
    autopayment: AutoPayment,
    receipts_required: bool,
    autopayments_enabled: bool,
    clock_offset: TimeDelta,
    last_now: DateTime<Utc>,
    latency: Duration,
    fail_next: (usize, u16),
    fail_after_applying: (usize, u16),
    time_out_next: (usize, Duration),
    requests: Vec<Recorded>,
    /// Where confirmation URLs lead ([`FakeYooKassa::serve_checkout_page`]).
    checkout_page: Option<String>,
}

impl State {
    fn new() -> State {
        State {
            payments: HashMap::new(),
            payment_order: Vec::new(),
            refunds: HashMap::new(),
            refund_order: Vec::new(),
            methods: HashMap::new(),
            idempotence: HashMap::new(),
            autopayment: AutoPayment::Succeed,
            receipts_required: false,
            autopayments_enabled: true,
            clock_offset: TimeDelta::zero(),
            last_now: DateTime::<Utc>::MIN_UTC,
            latency: Duration::ZERO,
            fail_next: (0, 500),
            fail_after_applying: (0, 500),
            time_out_next: (0, Duration::ZERO),
            requests: Vec::new(),
            checkout_page: None,
        }
    }

    /// The payer pays ([`FakeYooKassa::succeed`]); why not, when the payment is not pending.
    fn succeed(&mut self, id: &str) -> Result<Value, String> {
        let st = self;
        let now = st.now();
        let problem = match st.payments.get(id) {
            None => Some(format!("fake YooKassa has no payment {id:?}")),
            Some(p) if p.status() != "pending" => Some(format!(
                "succeed({id:?}): the payment is {}, not pending",
                p.status()
            )),
            Some(_) => None,
        };
        if let Some(problem) = problem {
            return Err(problem);
        }
        let payment = st.payments.get_mut(id).expect("checked above");
        let method_id = match &payment.method {
            // An autopayment left pending charges its saved method.
            Some(method_id) => method_id.clone(),
            None => {
                let chosen = payment.object.get("payment_method");
                let kind = chosen
                    .and_then(|m| m["type"].as_str())
                    .unwrap_or("bank_card")
                    .to_owned();
                // [I] A method id of its own, not the payment's, so a client mixing them up fails.
                let method_id = chosen
                    .and_then(|m| m["id"].as_str())
                    .map(str::to_owned)
                    .unwrap_or_else(|| new_id(now, "000f-5000-8000"));
                let object = if kind == "bank_card" {
                    card_method(&method_id, payment.save_method, now)
                } else {
                    json!({
                        "type": kind,
                        "id": method_id,
                        "saved": payment.save_method,
                        "title": method_title(&kind),
                    })
                };
                st.methods.insert(
                    method_id.clone(),
                    SavedMethod {
                        object,
                        revoked: false,
                    },
                );
                method_id
            }
        };
        let method_object = st.methods[&method_id].object.clone();
        let payment = st.payments.get_mut(id).expect("checked above");
        payment.mark_paid(method_object, now);
        Ok(Value::Object(payment.object.clone()))
    }

    /// The fake's clock (real time plus `advance_time`), never going backwards.
    fn now(&mut self) -> DateTime<Utc> {
        let now = (Utc::now() + self.clock_offset).max(self.last_now);
        self.last_now = now;
        now
    }

    fn process(&mut self, route: &Route, incoming: &Incoming, authorized: bool) -> Outcome {
        let mut delay = self.latency;
        if self.fail_next.0 > 0 {
            self.fail_next.0 -= 1;
            return Outcome {
                reply: Reply::fault(self.fail_next.1),
                delay,
                replayed: false,
            };
        }
        if self.time_out_next.0 > 0 {
            self.time_out_next.0 -= 1;
            delay += self.time_out_next.1;
        }
        let (mut reply, replayed) = self.dispatch(route, incoming, authorized);
        if self.fail_after_applying.0 > 0 {
            self.fail_after_applying.0 -= 1;
            reply = Reply::fault(self.fail_after_applying.1);
        }
        Outcome {
            reply,
            delay,
            replayed,
        }
    }

    fn dispatch(&mut self, route: &Route, incoming: &Incoming, authorized: bool) -> (Reply, bool) {
        if !authorized {
            return (Reply::fault(401), false);
        }
        let read = |reply| (reply, false);
        match route {
            Route::NotFound => read(Reply::not_found("Resource not found")),
            Route::GetPayment(id) => read(match self.payments.get(id) {
                Some(p) => Reply::ok(Value::Object(p.object.clone())),
                None => Reply::not_found("Payment doesn't exist or access denied"),
            }),
            Route::GetRefund(id) => read(match self.refunds.get(id) {
                Some(r) => Reply::ok(r.clone()),
                None => Reply::not_found("Refund doesn't exist or access denied"),
            }),
            Route::ListPayments => {
                let objects: Vec<Value> = self
                    .payment_order
                    .iter()
                    .filter_map(|id| self.payments.get(id))
                    .map(|p| Value::Object(p.object.clone()))
                    .collect();
                read(list(&objects, &incoming.query, &["status"]))
            }
            Route::ListRefunds => {
                let objects: Vec<Value> = self
                    .refund_order
                    .iter()
                    .filter_map(|id| self.refunds.get(id))
                    .cloned()
                    .collect();
                read(list(&objects, &incoming.query, &["status", "payment_id"]))
            }
            Route::CreatePayment => {
                self.idempotent(incoming, |st, body, now| st.create_payment(body, now))
            }
            Route::CapturePayment(id) => {
                self.idempotent(incoming, |st, body, now| st.capture(id, body, now))
            }
            Route::CancelPayment(id) => {
                self.idempotent(incoming, |st, _, _| st.cancel_by_merchant(id))
            }
            Route::CreateRefund => {
                self.idempotent(incoming, |st, body, now| st.create_refund(body, now))
            }
        }
    }

    /// Runs a POST under its `Idempotence-Key`: a repeat (same key, method, path and JSON body
    /// within 24 h) gets the stored answer, even if the object changed since; any other reuse of
    /// the key is refused. [I] Only successful answers are stored, so a refused request may be
    /// corrected and sent again with its key; the key is shared by all POST routes.
    fn idempotent(
        &mut self,
        incoming: &Incoming,
        apply: impl FnOnce(&mut State, &Value, DateTime<Utc>) -> Reply,
    ) -> (Reply, bool) {
        let key = match incoming.idempotence_key.as_deref().map(str::trim) {
            None | Some("") => {
                return (
                    Reply::invalid("Idempotence-Key", "Idempotence key is missing"),
                    false,
                );
            }
            Some(key) if key.chars().count() > MAX_IDEMPOTENCE_KEY_LEN => {
                return (
                    Reply::invalid(
                        "Idempotence-Key",
                        "Idempotence key is too long: at most 64 characters",
                    ),
                    false,
                );
            }
            Some(key) => key.to_owned(),
        };
        let body = if incoming.body.iter().all(u8::is_ascii_whitespace) {
            // [I] Capture and cancel are usually sent without a body.
            Value::Object(Map::new())
        } else {
            match serde_json::from_slice::<Value>(&incoming.body) {
                Ok(body @ Value::Object(_)) => body,
                _ => {
                    return (
                        Reply::error(
                            400,
                            "invalid_request",
                            "Request body is not a valid JSON object",
                            None,
                        ),
                        false,
                    );
                }
            }
        };
        let now = self.now();
        self.idempotence
            .retain(|_, stored| now - stored.at < TimeDelta::hours(24));
        if let Some(stored) = self.idempotence.get(&key) {
            if stored.method == incoming.method
                && stored.path == incoming.path
                && stored.body == body
            {
                return (stored.reply.clone(), true);
            }
            return (
                Reply::invalid("Idempotence-Key", "Idempotence key duplicated"),
                false,
            );
        }
        let reply = apply(self, &body, now);
        if reply.status == 200 {
            self.idempotence.insert(
                key,
                StoredResult {
                    method: incoming.method.clone(),
                    path: incoming.path.clone(),
                    body,
                    reply: reply.clone(),
                    at: now,
                },
            );
        }
        (reply, false)
    }

    fn create_payment(&mut self, body: &Value, now: DateTime<Utc>) -> Reply {
        match self.try_create_payment(body, now) {
            Ok(reply) | Err(reply) => reply,
        }
    }

    fn try_create_payment(&mut self, body: &Value, now: DateTime<Utc>) -> Result<Reply, Reply> {
        let (amount, currency) = parse_money(body.get("amount"), "amount")?;
        let description = optional_text(body, "description", MAX_DESCRIPTION_LEN)?;
        let metadata = parse_metadata(body.get("metadata"))?;
        let capture = optional_bool(body, "capture")?.unwrap_or(false);
        let save_method = optional_bool(body, "save_payment_method")?.unwrap_or(false);
        let method_id = optional_text(body, "payment_method_id", usize::MAX)?;
        let merchant_customer_id = optional_text(body, "merchant_customer_id", 200)?;
        let method_data = match body.get("payment_method_data") {
            None | Some(Value::Null) => None,
            Some(data) => match data.get("type").and_then(Value::as_str) {
                Some(kind) if PAYMENT_METHOD_TYPES.contains(&kind) => Some(kind.to_owned()),
                _ => {
                    return Err(Reply::invalid(
                        "payment_method_data.type",
                        "Unknown or missing payment method type",
                    ));
                }
            },
        };
        let confirmation = match (body.get("confirmation"), &method_id) {
            (None | Some(Value::Null), Some(_)) => None,
            (None | Some(Value::Null), None) => {
                // [I] A payment the payer pays themselves needs a way to pay.
                return Err(Reply::invalid(
                    "confirmation",
                    "Missing confirmation: required unless payment_method_id is given",
                ));
            }
            (Some(confirmation), _) => Some(parse_confirmation(confirmation)?),
        };
        let has_receipt = match body.get("receipt") {
            None | Some(Value::Null) if self.receipts_required => {
                return Err(Reply::invalid(
                    "receipt",
                    "Receipt is required: the shop sends 54-FZ receipts through YooKassa",
                ));
            }
            None | Some(Value::Null) => false,
            Some(receipt) => {
                validate_receipt(receipt, amount, &currency)?;
                true
            }
        };
        if !self.autopayments_enabled && (save_method || method_id.is_some()) {
            return Err(Reply::error(
                403,
                "forbidden",
                "Autopayments are not enabled for this shop",
                None,
            ));
        }
        let saved = match &method_id {
            None => None,
            Some(id) => match self.methods.get(id) {
                Some(method) if method.object["saved"] == true => Some((id.clone(), method)),
                _ => {
                    return Err(Reply::invalid(
                        "payment_method_id",
                        "Payment method is not saved or does not exist",
                    ));
                }
            },
        };

        let id = self.unused_payment_id(now);
        let mut object = Map::new();
        let mut put = |key: &str, value: Value| {
            object.insert(key.to_owned(), value);
        };
        put("id", id.clone().into());
        put("status", "pending".into());
        put("paid", false.into());
        put("amount", money(amount, &currency));
        put("created_at", timestamp(now).into());
        put(
            "recipient",
            json!({"account_id": SHOP_ID, "gateway_id": GATEWAY_ID}),
        );
        put("refundable", false.into());
        put("test", true.into());
        if let Some(description) = description {
            put("description", description.into());
        }
        if let Some(metadata) = metadata {
            put("metadata", Value::Object(metadata));
        }
        if let Some(customer) = merchant_customer_id {
            put("merchant_customer_id", customer.into());
        }
        if let Some(return_url) = confirmation {
            put(
                "confirmation",
                json!({
                    "type": "redirect",
                    "return_url": return_url,
                    "confirmation_url": format!(
                        "{}{id}",
                        self.checkout_page.as_deref().unwrap_or(CONFIRMATION_URL_PREFIX)
                    ),
                }),
            );
        }
        if has_receipt {
            put("receipt_registration", "pending".into());
        }
        let mut payment = PaymentEntry {
            object,
            amount,
            currency,
            capture,
            save_method,
            method: None,
            refunded: 0,
            has_receipt,
        };
        match (saved, method_data) {
            (Some((method_id, method)), _) => {
                let (method_object, revoked) = (method.object.clone(), method.revoked);
                payment.set("payment_method", method_object.clone());
                payment.method = Some(method_id);
                match (&self.autopayment, revoked) {
                    (_, true) => payment.mark_canceled(
                        cancellation_party("permission_revoked"),
                        "permission_revoked",
                    ),
                    (AutoPayment::Succeed, false) => payment.mark_paid(method_object, now),
                    (AutoPayment::Cancel { reason }, false) => {
                        payment.mark_canceled(cancellation_party(reason), reason)
                    }
                    (AutoPayment::Pending, false) => {}
                }
            }
            (None, Some(kind)) => {
                // [I] A pre-selected method shows at once, unsaved until paid.
                let method_id = new_id(now, "000f-5000-8000");
                payment.set(
                    "payment_method",
                    json!({"type": kind, "id": method_id, "saved": false}),
                );
            }
            (None, None) => {}
        }
        let reply = Reply::ok(Value::Object(payment.object.clone()));
        self.payment_order.push(id.clone());
        self.payments.insert(id, payment);
        Ok(reply)
    }

    fn unused_payment_id(&self, now: DateTime<Utc>) -> String {
        loop {
            let id = new_id(now, "000f-5000-9000");
            if !self.payments.contains_key(&id) {
                return id;
            }
        }
    }

    /// `POST /v3/payments/{id}/capture`, optionally for less than the held amount.
    fn capture(&mut self, id: &str, body: &Value, now: DateTime<Utc>) -> Reply {
        let Some(payment) = self.payments.get_mut(id) else {
            return Reply::not_found("Payment doesn't exist or access denied");
        };
        if payment.status() != "waiting_for_capture" {
            return Reply::invalid(
                "payment_id",
                "Payment can be captured only in status waiting_for_capture",
            );
        }
        if let Some(amount) = body.get("amount").filter(|a| !a.is_null()) {
            let (value, currency) = match parse_money(Some(amount), "amount") {
                Ok(parsed) => parsed,
                Err(reply) => return reply,
            };
            if currency != payment.currency || value > payment.amount {
                return Reply::invalid(
                    "amount.value",
                    "Capture amount exceeds the amount of the payment",
                );
            }
            payment.amount = value;
        }
        payment.mark_captured(now);
        Reply::ok(Value::Object(payment.object.clone()))
    }

    /// `POST /v3/payments/{id}/cancel`: only from `waiting_for_capture`.
    fn cancel_by_merchant(&mut self, id: &str) -> Reply {
        let Some(payment) = self.payments.get_mut(id) else {
            return Reply::not_found("Payment doesn't exist or access denied");
        };
        if payment.status() != "waiting_for_capture" {
            return Reply::invalid(
                "payment_id",
                "Payment can be canceled only in status waiting_for_capture",
            );
        }
        payment.mark_canceled("merchant", "canceled_by_merchant");
        Reply::ok(Value::Object(payment.object.clone()))
    }

    fn create_refund(&mut self, body: &Value, now: DateTime<Utc>) -> Reply {
        match self.try_create_refund(body, now) {
            Ok(reply) | Err(reply) => reply,
        }
    }

    fn try_create_refund(&mut self, body: &Value, now: DateTime<Utc>) -> Result<Reply, Reply> {
        let payment_id = match body.get("payment_id") {
            Some(Value::String(id)) if !id.is_empty() => id.clone(),
            _ => {
                return Err(Reply::invalid(
                    "payment_id",
                    "Missing or invalid payment_id",
                ));
            }
        };
        let (amount, currency) = parse_money(body.get("amount"), "amount")?;
        let description = optional_text(body, "description", MAX_REFUND_DESCRIPTION_LEN)?;
        // [I] An unknown payment is a bad parameter here, not a 404 of the refunds route.
        let Some(payment) = self.payments.get_mut(&payment_id) else {
            return Err(Reply::invalid(
                "payment_id",
                "Payment doesn't exist or access denied",
            ));
        };
        if payment.status() != "succeeded" || payment.object["refundable"] != true {
            return Err(Reply::invalid(
                "payment_id",
                "Payment is not refundable: only succeeded payments with a refundable remainder",
            ));
        }
        if currency != payment.currency {
            return Err(Reply::invalid(
                "amount.currency",
                "Refund currency differs from the payment's",
            ));
        }
        let remainder = payment.amount - payment.refunded;
        if amount > remainder {
            return Err(Reply::invalid(
                "amount.value",
                &format!(
                    "Refund amount exceeds the refundable remainder of {}",
                    format_money(remainder)
                ),
            ));
        }
        payment.refunded += amount;
        payment.set("refunded_amount", money(payment.refunded, &currency));
        payment.set("refundable", (payment.refunded < payment.amount).into());
        let id = loop {
            let id = new_id(now, "0015-5000-8000");
            if !self.refunds.contains_key(&id) {
                break id;
            }
        };
        let mut refund = json!({
            "id": id,
            "payment_id": payment_id,
            "status": "succeeded",
            "amount": money(amount, &currency),
            "created_at": timestamp(now),
        });
        if let Some(description) = description {
            refund["description"] = description.into();
        }
        self.refund_order.push(id.clone());
        self.refunds.insert(id, refund.clone());
        Ok(Reply::ok(refund))
    }
}

// ---------------------------------------------------------------------------------------------
// Validation

/// `{"value": "199.00", "currency": "RUB"}` → (kopecks, currency). [I] `value` must be a string
/// (the reference's format), positive, with at most 2 decimals; only RUB is accepted.
fn parse_money(v: Option<&Value>, parameter: &str) -> Result<(i64, String), Reply> {
    let Some(Value::Object(amount)) = v else {
        return Err(Reply::invalid(
            parameter,
            &format!("Missing or invalid {parameter}"),
        ));
    };
    let value_parameter = format!("{parameter}.value");
    let value = match amount.get("value") {
        Some(Value::String(text)) => parse_decimal(text, 2),
        _ => None,
    };
    let Some(value) = value.filter(|v| *v > 0) else {
        return Err(Reply::invalid(
            &value_parameter,
            "Amount value must be a positive decimal string with ≤2 decimals, e.g. \"199.00\"",
        ));
    };
    match amount.get("currency").and_then(Value::as_str) {
        Some("RUB") => Ok((value, "RUB".to_owned())),
        _ => Err(Reply::invalid(
            &format!("{parameter}.currency"),
            "Unsupported or missing currency: this shop accepts RUB",
        )),
    }
}

/// `"199"`, `"199.5"`, `"199.00"` → the value × 10^`decimals`; `None` for anything else.
fn parse_decimal(text: &str, decimals: u32) -> Option<i64> {
    let (int, frac) = match text.split_once('.') {
        Some((_, "")) => return None,
        Some((int, frac)) => (int, frac),
        None => (text, ""),
    };
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if int.is_empty() || int.len() > 12 || !digits(int) || !digits(frac) {
        return None;
    }
    if frac.len() > decimals as usize {
        return None;
    }
    let scale = 10_i64.pow(decimals);
    let frac_value = format!("{frac:0<width$}", width = decimals as usize);
    let frac_value: i64 = if decimals == 0 {
        0
    } else {
        frac_value.parse().ok()?
    };
    Some(int.parse::<i64>().ok()? * scale + frac_value)
}

fn optional_text(body: &Value, field: &str, max_chars: usize) -> Result<Option<String>, Reply> {
    match body.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) if text.chars().count() <= max_chars => Ok(Some(text.clone())),
        Some(Value::String(_)) => Err(Reply::invalid(
            field,
            &format!("{field} is too long: at most {max_chars} characters"),
        )),
        Some(_) => Err(Reply::invalid(field, &format!("{field} must be a string"))),
    }
}

fn optional_bool(body: &Value, field: &str) -> Result<Option<bool>, Reply> {
    match body.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(_) => Err(Reply::invalid(field, &format!("{field} must be a boolean"))),
    }
}

/// A flat map of strings: ≤16 keys, key ≤32 characters, value ≤512 characters.
/// [I] Non-string values are refused rather than converted.
fn parse_metadata(v: Option<&Value>) -> Result<Option<Map<String, Value>>, Reply> {
    let metadata = match v {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Object(metadata)) => metadata,
        Some(_) => {
            return Err(Reply::invalid(
                "metadata",
                "metadata must be an object of strings",
            ));
        }
    };
    if metadata.len() > MAX_METADATA_KEYS {
        return Err(Reply::invalid("metadata", "metadata has more than 16 keys"));
    }
    for (key, value) in metadata {
        if key.is_empty() || key.chars().count() > MAX_METADATA_KEY_LEN {
            return Err(Reply::invalid(
                "metadata",
                &format!("metadata key {key:?} must be 1 to 32 characters"),
            ));
        }
        match value {
            Value::String(text) if text.chars().count() <= MAX_METADATA_VALUE_LEN => {}
            Value::String(_) => {
                return Err(Reply::invalid(
                    "metadata",
                    &format!("metadata value of {key:?} is longer than 512 characters"),
                ));
            }
            _ => {
                return Err(Reply::invalid(
                    "metadata",
                    &format!("metadata value of {key:?} must be a string"),
                ));
            }
        }
    }
    Ok(Some(metadata.clone()))
}

/// `{"type": "redirect", "return_url": …}` → the return URL. [I] Other confirmation types exist
/// but the shop does not use them: `not_supported`.
fn parse_confirmation(v: &Value) -> Result<String, Reply> {
    match v.get("type").and_then(Value::as_str) {
        Some("redirect") => {}
        Some("embedded" | "external" | "qr" | "mobile_application") => {
            return Err(Reply::error(
                400,
                "not_supported",
                "This fake supports only redirect confirmations",
                Some("confirmation.type"),
            ));
        }
        _ => {
            return Err(Reply::invalid(
                "confirmation.type",
                "Missing or unknown confirmation type",
            ));
        }
    }
    match v.get("return_url").and_then(Value::as_str) {
        Some(url) if !url.is_empty() && url.len() <= 2048 => Ok(url.to_owned()),
        _ => Err(Reply::invalid(
            "confirmation.return_url",
            "Missing return_url for a redirect confirmation",
        )),
    }
}

/// A 54-FZ receipt: a customer with `email` or `phone`, at least one complete item, and
/// Σ amount×quantity equal to the payment amount ([M], to the kopeck after rounding each item).
fn validate_receipt(receipt: &Value, amount: i64, currency: &str) -> Result<(), Reply> {
    let Value::Object(receipt) = receipt else {
        return Err(Reply::invalid("receipt", "receipt must be an object"));
    };
    let customer = receipt.get("customer").and_then(Value::as_object);
    let text = |key: &str| {
        customer
            .and_then(|c| c.get(key))
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
    };
    let email_ok = text("email").map(|e| {
        e.split_once('@')
            .is_some_and(|(user, host)| !user.is_empty() && host.contains('.'))
    });
    // [M] ITU-T E.164 digits without `+`, e.g. 79001234567.
    let phone_ok = text("phone")
        .map(|p| (11..=15).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit()));
    match (email_ok, phone_ok) {
        (Some(false), _) => {
            return Err(Reply::invalid("receipt.customer.email", "Invalid email"));
        }
        (_, Some(false)) => {
            return Err(Reply::invalid(
                "receipt.customer.phone",
                "Invalid phone: digits in ITU-T E.164, e.g. 79001234567",
            ));
        }
        (None, None) => {
            return Err(Reply::invalid(
                "receipt.customer",
                "Receipt customer needs an email or a phone",
            ));
        }
        _ => {}
    }
    let items = match receipt.get("items") {
        Some(Value::Array(items)) if !items.is_empty() => items,
        _ => {
            return Err(Reply::invalid(
                "receipt.items",
                "Receipt needs at least one item",
            ));
        }
    };
    let mut total = 0_i64;
    for (i, item) in items.iter().enumerate() {
        let field = |name: &str| format!("receipt.items[{i}].{name}");
        let description = item.get("description").and_then(Value::as_str);
        if !description
            .is_some_and(|d| !d.is_empty() && d.chars().count() <= MAX_ITEM_DESCRIPTION_LEN)
        {
            return Err(Reply::invalid(
                &field("description"),
                "Item description is required, at most 128 characters",
            ));
        }
        // [I] Quantity as a string or a number, up to 3 decimals.
        let quantity = match item.get("quantity") {
            Some(Value::String(q)) => parse_decimal(q, 3),
            Some(Value::Number(n)) => parse_decimal(&n.to_string(), 3),
            _ => None,
        };
        let Some(quantity) = quantity.filter(|q| *q > 0) else {
            return Err(Reply::invalid(
                &field("quantity"),
                "Item quantity must be a positive number",
            ));
        };
        let (unit, item_currency) = parse_money(item.get("amount"), &field("amount"))?;
        if item_currency != currency {
            return Err(Reply::invalid(
                &field("amount.currency"),
                "Item currency differs from the payment's",
            ));
        }
        if !item
            .get("vat_code")
            .and_then(Value::as_i64)
            .is_some_and(|code| (1..=12).contains(&code))
        {
            return Err(Reply::invalid(
                &field("vat_code"),
                "vat_code must be an integer from 1 to 12",
            ));
        }
        let listed = |name: &str, values: &[&str]| {
            item.get(name)
                .and_then(Value::as_str)
                .is_some_and(|v| values.contains(&v))
        };
        if !listed("payment_mode", &PAYMENT_MODES) {
            return Err(Reply::invalid(
                &field("payment_mode"),
                "Missing or unknown payment_mode",
            ));
        }
        if !listed("payment_subject", &PAYMENT_SUBJECTS) {
            return Err(Reply::invalid(
                &field("payment_subject"),
                "Missing or unknown payment_subject",
            ));
        }
        total += (unit * quantity + 500) / 1000;
    }
    if let Some(code) = receipt.get("tax_system_code").filter(|c| !c.is_null())
        && !code.as_i64().is_some_and(|c| (1..=6).contains(&c))
    {
        return Err(Reply::invalid(
            "receipt.tax_system_code",
            "tax_system_code must be an integer from 1 to 6",
        ));
    }
    if total != amount {
        return Err(Reply::invalid(
            "receipt",
            &format!(
                "Sum of receipt items ({}) is not equal to the payment amount ({})",
                format_money(total),
                format_money(amount)
            ),
        ));
    }
    Ok(())
}

/// `{"type":"list","items":[…],"next_cursor"?}`, newest first. Query: `limit` (1–100, default
/// 10), `cursor`, `created_at.gte|gt|lte|lt` and equality on the `fields` given.
fn list(objects: &[Value], query: &str, fields: &[&str]) -> Reply {
    let pairs = web::Query::<Vec<(String, String)>>::from_query(query)
        .map(web::Query::into_inner)
        .unwrap_or_default();
    let param = |name: &str| {
        pairs
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let limit = match param("limit") {
        None => 10,
        Some(text) => match text.parse::<usize>() {
            Ok(n) if (1..=100).contains(&n) => n,
            _ => return Reply::invalid("limit", "limit must be from 1 to 100"),
        },
    };
    let before = match param("cursor") {
        None => objects.len(),
        Some(cursor) => match decode_cursor(cursor).filter(|i| *i <= objects.len()) {
            Some(index) => index,
            None => return Reply::invalid("cursor", "Invalid cursor"),
        },
    };
    let mut bounds = Vec::new();
    for name in [
        "created_at.gte",
        "created_at.gt",
        "created_at.lte",
        "created_at.lt",
    ] {
        if let Some(text) = param(name) {
            match DateTime::parse_from_rfc3339(text) {
                Ok(at) => bounds.push((name, at.with_timezone(&Utc))),
                Err(_) => return Reply::invalid(name, "Expected an ISO 8601 date and time"),
            }
        }
    }
    let matches = |object: &Value| {
        let created = object["created_at"]
            .as_str()
            .and_then(|c| DateTime::parse_from_rfc3339(c).ok())
            .map(|c| c.with_timezone(&Utc));
        let Some(created) = created else {
            return false;
        };
        let in_bounds = bounds.iter().all(|(name, at)| match *name {
            "created_at.gte" => created >= *at,
            "created_at.gt" => created > *at,
            "created_at.lte" => created <= *at,
            _ => created < *at,
        });
        in_bounds
            && fields
                .iter()
                .all(|f| param(f).is_none_or(|wanted| object[*f] == wanted))
    };
    let mut items = Vec::new();
    let mut next_cursor = None;
    for index in (0..before).rev() {
        if !matches(&objects[index]) {
            continue;
        }
        if items.len() == limit {
            next_cursor = Some(encode_cursor(index + 1));
            break;
        }
        items.push(objects[index].clone());
    }
    let mut body = json!({"type": "list", "items": items});
    if let Some(cursor) = next_cursor {
        body["next_cursor"] = cursor.into();
    }
    Reply::ok(body)
}

/// [I] Opaque to clients: the position before which the next page starts.
fn encode_cursor(index: usize) -> String {
    URL_SAFE_NO_PAD.encode(format!("before:{index}"))
}

fn decode_cursor(cursor: &str) -> Option<usize> {
    let bytes = URL_SAFE_NO_PAD.decode(cursor).ok()?;
    String::from_utf8(bytes)
        .ok()?
        .strip_prefix("before:")?
        .parse()
        .ok()
}

// ---------------------------------------------------------------------------------------------
// Small helpers

/// ISO 8601 UTC with milliseconds: `2026-11-27T10:00:00.000Z`.
fn timestamp(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn format_money(kopecks: i64) -> String {
    format!("{}.{:02}", kopecks / 100, kopecks % 100)
}

fn money(kopecks: i64, currency: &str) -> Value {
    json!({"value": format_money(kopecks), "currency": currency})
}

/// YooKassa-style ids, e.g. `2e9c1f4b-000f-5000-9000-1b7d3e5a6c01`: [I] the creation time in hex,
/// a fixed middle per object kind, 48 random bits.
fn new_id(now: DateTime<Utc>, middle: &str) -> String {
    let seconds = now.timestamp() as u32;
    let random = rand::random::<u64>() & 0xffff_ffff_ffff;
    format!("{seconds:08x}-{middle}-{random:012x}")
}

fn random_digits(n: usize) -> String {
    (0..n)
        .map(|_| char::from(b'0' + rand::random::<u8>() % 10))
        .collect()
}

fn card_method(id: &str, saved: bool, now: DateTime<Utc>) -> Value {
    json!({
        "type": "bank_card",
        "id": id,
        "saved": saved,
        "title": format!("Bank card *{CARD_LAST4}"),
        "card": {
            "first6": CARD_FIRST6,
            "last4": CARD_LAST4,
            "expiry_month": "12",
            "expiry_year": (now.year() + 3).to_string(),
            "card_type": "MasterCard",
            "issuer_country": "RU",
        },
    })
}

fn method_title(kind: &str) -> &'static str {
    match kind {
        "sbp" => "SBP",
        "yoo_money" => "YooMoney wallet",
        "sberbank" => "SberPay",
        "tinkoff_bank" => "T-Pay",
        "mir_pay" => "Mir Pay",
        _ => "Payment method",
    }
}
