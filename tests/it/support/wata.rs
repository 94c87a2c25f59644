//! A fake WATA (wata.pro) H2H API for tests and benches: payment links, transactions, refunds and the
//! webhook-signing public key of `shared/reference/wata-api.md` (status codes, error bodies, quirks),
//! a payer that pays or declines links, and post-payment/refund webhooks signed like WATA signs them.
//! It serves from its own thread and actix System, so any runtime (or none) can drive it, with fault
//! injection and a request recorder. Benches include this file by path, next to `server.rs`.
//!
//! What the reference does not pin down is inferred here and marked "inferred" where it is decided.

// Each includer (a test binary, the bench) uses a different subset of this API.
#![allow(dead_code)]

use std::cmp::Ordering;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeDelta, Timelike, Utc};
use rsa::pkcs1::EncodeRsaPublicKey;
use rsa::pkcs1v15::SigningKey;
use rsa::pkcs8::{EncodePublicKey, LineEnding};
use rsa::rand_core::OsRng;
use rsa::signature::{SignatureEncoding, Signer};
use rsa::{RsaPrivateKey, RsaPublicKey};
use serde_json::{Map, Value};
use sha2::Sha512;

use super::server::{FakeServer, percent_decode};

/// The access token the fake accepts (`Authorization: Bearer <TOKEN>`).
pub const TOKEN: &str = "wata-test-token-1b2c3d";
/// The terminal the token belongs to (WATA infers it from the token).
pub const TERMINAL_NAME: &str = "vpn-shop-sandbox";
pub const TERMINAL_PUBLIC_ID: &str = "6f1c2a9e-4b7d-4e3a-9c15-2d8e7f0a1b36";
/// Hosted payment page; a link's `url` is this plus its id (the form public integrations show).
/// Never fetched by the tests.
pub const PAY_FORM_URL: &str = "https://payment.wata.pro/pay-form/";
/// `error.message` of a 400 validation error, as in the reference.
pub const INVALID_REQUEST: &str = "Your request is invalid!";

const CURRENCIES: [&str; 3] = ["RUB", "USD", "EUR"];
/// Link amount bounds in hundredths: RUB 10, USD/EUR 1 (reference, SDK); the maximum applies to
/// every currency (inferred).
const MIN_RUB: i64 = 1_000;
const MIN_FOREIGN: i64 = 100;
/// 999 999.99.
const MAX_AMOUNT: i64 = 99_999_999;
const DEFAULT_PAGE: usize = 10;
const MAX_PAGE: usize = 1000;
/// Sent with an injected 429 (the reference: `Retry-After` may be present).
const RETRY_AFTER_SECONDS: u64 = 30;

/// One request as it reached the fake.
#[derive(Clone, Debug)]
pub struct Recorded {
    pub method: String,
    /// Route pattern, e.g. `/api/h2h/links/{id}`; the raw path for unknown routes.
    pub route: String,
    /// Path as received (percent-encoded).
    pub path: String,
    pub query: String,
    pub authorization: Option<String>,
    /// JSON body; other text as a JSON string.
    pub body: Option<Value>,
    pub status: u16,
    pub received_at: Instant,
}

/// The running fake; stops (bounded) when dropped.
pub struct FakeWata {
    shared: Arc<Shared>,
    server: FakeServer,
}

impl FakeWata {
    /// Generates a 2048-bit RSA key pair, binds 127.0.0.1 on a random port and returns once the
    /// server is listening.
    pub fn start() -> FakeWata {
        let shared = Arc::new(Shared {
            state: Mutex::new(State::new(Arc::new(KeyPair::generate()))),
        });
        let data = web::Data::from(Arc::clone(&shared));
        let server = FakeServer::start("fake-wata", move |app| {
            app.app_data(data.clone())
                .app_data(web::PayloadConfig::new(1 << 20))
                .default_service(web::to(serve));
        });
        FakeWata { shared, server }
    }

    /// The base to use as `WATA_API_URL`: `http://127.0.0.1:PORT/api/h2h` (no trailing slash).
    pub fn url(&self) -> String {
        format!("{}/api/h2h", self.server.url())
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.shared.lock()
    }

    // -- what the API holds --------------------------------------------------------------------

    /// A link as `GET /links/{id}` shows it.
    pub fn link(&self, id: &str) -> Option<Value> {
        let st = self.state();
        st.link(id).map(|l| parse(&link_json(l)))
    }

    /// Every link in creation order.
    pub fn links(&self) -> Vec<Value> {
        let st = self.state();
        st.links.iter().map(|l| parse(&link_json(l))).collect()
    }

    /// A transaction as `GET /transactions/{id}` shows it.
    pub fn transaction(&self, id: &str) -> Option<Value> {
        let st = self.state();
        st.transaction(id).map(|t| parse(&transaction_json(t)))
    }

    /// Every transaction (payments, declines, refunds) in creation order.
    pub fn transactions(&self) -> Vec<Value> {
        let st = self.state();
        st.transactions
            .iter()
            .map(|t| parse(&transaction_json(t)))
            .collect()
    }

    // -- the payer -----------------------------------------------------------------------------

    /// A payer pays the link by SBP: a `Paid` `Payment` transaction for the link's amount, currency
    /// and orderId, `paymentTime` now. A OneTime link becomes `Closed`; a ManyTime one stays open.
    /// No webhook is sent (see `webhook`/`send_webhook`). Panics if the link is unknown, closed or
    /// expired: no payer could pay it.
    pub fn pay(&self, link_id: &str) -> Value {
        let result = self.state().attempt(link_id, None);
        result.unwrap_or_else(|e| panic!("fake WATA: cannot pay link {link_id:?}: {e}"))
    }

    /// A payer's attempt fails: a `Declined` `Payment` transaction with this `errorCode` and
    /// `errorDescription` (`paymentTime` null, inferred); the link stays `Opened`. Panics like `pay`.
    pub fn decline(&self, link_id: &str, code: &str, description: &str) -> Value {
        let result = self.state().attempt(link_id, Some((code, description)));
        result.unwrap_or_else(|e| panic!("fake WATA: cannot decline link {link_id:?}: {e}"))
    }

    /// The post-payment (or refund) webhook of a transaction: the raw JSON body bytes as WATA would
    /// send them (compact, its own field order: reference §5) and the `X-Signature` value (base64
    /// of RSA PKCS#1 v1.5 SHA-512 over exactly those bytes, with the current key).
    /// Panics if the transaction is unknown.
    pub fn webhook(&self, transaction_id: &str) -> (Vec<u8>, String) {
        let (body, keys) = {
            let st = self.state();
            let body = st.transaction(transaction_id).map(webhook_json);
            (body, Arc::clone(&st.keys))
        };
        let body = body
            .unwrap_or_else(|| panic!("fake WATA has no transaction {transaction_id:?}"))
            .into_bytes();
        let signature = keys.sign(&body);
        (body, signature)
    }

    /// POSTs `webhook(transaction_id)` to `webhook_url` with `Content-Type: application/json` and
    /// `X-Signature`, waiting up to a minute as WATA does; returns the HTTP status. Panics when
    /// the request cannot be made (nothing listening, timeout). WATA's re-sends are not simulated:
    /// call it again for a duplicate delivery.
    pub async fn send_webhook(&self, webhook_url: &str, transaction_id: &str) -> u16 {
        let (body, signature) = self.webhook(transaction_id);
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .expect("build the webhook client");
        let response = client
            .post(webhook_url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header("X-Signature", signature)
            .body(body)
            .send()
            .await
            .unwrap_or_else(|e| panic!("fake WATA: webhook to {webhook_url} failed: {e}"));
        response.status().as_u16()
    }

    // -- keys ----------------------------------------------------------------------------------

    /// Base64 signature of `body` with the current key, for tests that craft bodies.
    pub fn sign(&self, body: &[u8]) -> String {
        let keys = Arc::clone(&self.state().keys);
        keys.sign(body)
    }

    /// Base64 signature of `body` with a key WATA never served (a forgery). The key is generated
    /// once per process and shared by every fake.
    pub fn sign_with_foreign_key(&self, body: &[u8]) -> String {
        static FOREIGN: OnceLock<KeyPair> = OnceLock::new();
        FOREIGN.get_or_init(KeyPair::generate).sign(body)
    }

    /// The current public key exactly as `GET /public-key` serves it in `value`: PEM with LF line
    /// endings and no trailing newline, SubjectPublicKeyInfo (`-----BEGIN PUBLIC KEY-----`) unless
    /// [`FakeWata::serve_pkcs1_key`] asked for PKCS#1.
    pub fn public_key_pem(&self) -> String {
        self.state().served_public_pem().to_owned()
    }

    /// Serves the same key as PKCS#1 (`-----BEGIN RSA PUBLIC KEY-----`), as some WATA set-ups
    /// and clients name it (the reference: "some clients call it PKCS#1"); `false`: SPKI again.
    pub fn serve_pkcs1_key(&self, pkcs1: bool) {
        self.state().pkcs1 = pkcs1;
    }

    /// A new key pair: `GET /public-key` serves the new public key and webhooks are signed with it.
    pub fn rotate_key(&self) {
        // Generated before locking: it takes a while and requests must keep flowing.
        let keys = Arc::new(KeyPair::generate());
        self.state().keys = keys;
    }

    // -- knobs ---------------------------------------------------------------------------------

    /// The fee WATA keeps, as a fraction of a payment (`0.035` = 3.5 %): `commission` in webhooks,
    /// `totalCommission` in the API. Default 0, as in the reference's example.
    pub fn set_commission_rate(&self, rate: f64) {
        self.state().commission_rate = rate;
    }

    // -- faults and recorder -------------------------------------------------------------------

    /// The next `n` API requests (any route but `/public-key`) answer `status` with the error
    /// shape (and `Retry-After` for 429), applying nothing.
    pub fn fail_next(&self, n: usize, status: u16) {
        self.state().fail_next = (n, status);
    }

    /// The next `n` API requests (any route but `/public-key`) are applied, but answered only after
    /// `delay`: a client that times out does not know whether its link was created.
    pub fn time_out_next(&self, n: usize, delay: Duration) {
        self.state().time_out_next = (n, delay);
    }

    /// Added to every answer, `/public-key` included, after the request was applied.
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

    /// Requests with this method and route pattern: `/api/h2h/links`, `/api/h2h/links/{id}`,
    /// `/api/h2h/transactions/{id}`, `/api/h2h/v2/transactions`, `/api/h2h/transactions/refunds`,
    /// `/api/h2h/public-key`.
    pub fn count(&self, method: &str, route: &str) -> usize {
        self.state()
            .requests
            .iter()
            .filter(|r| r.method.eq_ignore_ascii_case(method) && r.route == route)
            .count()
    }
}

// ---------------------------------------------------------------------------------------------
// Keys

struct KeyPair {
    signing: SigningKey<Sha512>,
    public_pem: String,
    /// The same public key as PKCS#1 PEM.
    public_pkcs1_pem: String,
}

impl KeyPair {
    fn generate() -> KeyPair {
        let private = RsaPrivateKey::new(&mut OsRng, 2048).expect("generate a 2048-bit RSA key");
        let public = RsaPublicKey::from(&private);
        let public_pem = public
            .to_public_key_pem(LineEnding::LF)
            .expect("encode the RSA public key as PEM");
        let public_pkcs1_pem = public
            .to_pkcs1_pem(LineEnding::LF)
            .expect("encode the RSA public key as PKCS#1 PEM");
        KeyPair {
            signing: SigningKey::new(private),
            // The reference shows the value ending in `-----END PUBLIC KEY-----`.
            public_pem: public_pem.trim_end().to_owned(),
            public_pkcs1_pem: public_pkcs1_pem.trim_end().to_owned(),
        }
    }

    /// SHA512withRSA (PKCS#1 v1.5 over a SHA-512 digest), base64 with padding.
    fn sign(&self, body: &[u8]) -> String {
        BASE64.encode(self.signing.sign(body).to_bytes())
    }
}

// ---------------------------------------------------------------------------------------------
// HTTP plumbing

struct Shared {
    state: Mutex<State>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panicking test closure must not take every later request down with it.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn process(&self, incoming: &Incoming) -> (Reply, Duration) {
        let (route, pattern) = route_of(&incoming.method, &incoming.path);
        let body = recorded_body(&incoming.body);
        let mut st = self.lock();
        let (reply, delay) = st.process(&route, incoming);
        st.requests.push(Recorded {
            method: incoming.method.clone(),
            route: pattern,
            path: incoming.path.clone(),
            query: incoming.query.clone(),
            authorization: incoming.authorization.clone(),
            body,
            status: reply.status,
            received_at: incoming.received_at,
        });
        (reply, delay)
    }
}

struct Incoming {
    method: String,
    path: String,
    query: String,
    authorization: Option<String>,
    content_type: String,
    body: web::Bytes,
    received_at: Instant,
}

async fn serve(req: HttpRequest, body: web::Bytes, shared: web::Data<Shared>) -> HttpResponse {
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
        content_type: header("content-type").unwrap_or_default(),
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

struct Reply {
    status: u16,
    /// Compact JSON text; `None` = empty body.
    body: Option<String>,
    headers: Vec<(&'static str, String)>,
}

impl Reply {
    fn json(status: u16, body: String) -> Reply {
        Reply {
            status,
            body: Some(body),
            headers: Vec::new(),
        }
    }

    fn ok(body: String) -> Reply {
        Reply::json(200, body)
    }

    fn empty(status: u16) -> Reply {
        Reply {
            status,
            body: None,
            headers: Vec::new(),
        }
    }

    /// The reference's error body (ABP's `RemoteServiceErrorInfo`).
    fn error(
        status: u16,
        code: Option<&str>,
        message: &str,
        details: Option<&str>,
        validation: &[(String, String)],
    ) -> Reply {
        let validation_errors = if validation.is_empty() {
            "null".to_owned()
        } else {
            array(validation.iter().map(|(member, message)| {
                Obj::new()
                    .str("message", message)
                    .raw("members", array([string(member)]))
                    .render()
            }))
        };
        let error = Obj::new()
            .opt_str("code", code)
            .str("message", message)
            .opt_str("details", details)
            .raw("data", "{}".to_owned())
            .raw("validationErrors", validation_errors)
            .render();
        Reply::json(status, Obj::new().raw("error", error).render())
    }

    /// 400 with every `(member, message)` listed, as in the reference's example.
    fn invalid(code: Option<&str>, errors: &[(String, String)]) -> Reply {
        let messages: Vec<&str> = errors.iter().map(|(_, m)| m.as_str()).collect();
        let details = format!(
            "The following validation errors were found – {}",
            messages.join(" ")
        );
        Reply::error(400, code, INVALID_REQUEST, Some(&details), errors)
    }

    fn invalid_field(code: Option<&str>, member: &str, message: &str) -> Reply {
        Reply::invalid(code, &[(member.to_owned(), message.to_owned())])
    }

    fn not_found(code: &str, message: &str) -> Reply {
        Reply::error(404, Some(code), message, None, &[])
    }

    fn header(mut self, name: &'static str, value: impl Into<String>) -> Reply {
        self.headers.push((name, value.into()));
        self
    }

    fn into_response(self) -> HttpResponse {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = HttpResponse::build(status);
        for (name, value) in self.headers {
            response.insert_header((name, value));
        }
        match self.body {
            Some(json) => response
                .content_type("application/json; charset=utf-8")
                .body(json),
            None => response.finish(),
        }
    }
}

enum Route {
    CreateLink,
    GetLink(String),
    SearchLinks,
    GetTransaction(String),
    SearchTransactions,
    Refund,
    PublicKey,
    MethodNotAllowed,
    NotFound,
}

/// The route and its pattern. Routes of the real API this fake lacks answer 404 like unknown ones.
fn route_of(method: &str, path: &str) -> (Route, String) {
    let Some(rest) = path.strip_prefix("/api/h2h/") else {
        return (Route::NotFound, path.to_owned());
    };
    // ASP.NET routing ignores one trailing slash.
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    let segments: Vec<String> = rest.split('/').map(percent_decode).collect();
    let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
    let (pattern, candidates): (&str, Vec<(&str, Route)>) = match segments.as_slice() {
        ["links"] => (
            "/api/h2h/links",
            vec![("POST", Route::CreateLink), ("GET", Route::SearchLinks)],
        ),
        ["links", id] if !id.is_empty() => (
            "/api/h2h/links/{id}",
            vec![("GET", Route::GetLink(id.to_string()))],
        ),
        ["transactions", "refunds"] => (
            "/api/h2h/transactions/refunds",
            vec![("POST", Route::Refund)],
        ),
        ["transactions", id] if !id.is_empty() => (
            "/api/h2h/transactions/{id}",
            vec![("GET", Route::GetTransaction(id.to_string()))],
        ),
        ["v2", "transactions"] => (
            "/api/h2h/v2/transactions",
            vec![("GET", Route::SearchTransactions)],
        ),
        ["public-key"] => ("/api/h2h/public-key", vec![("GET", Route::PublicKey)]),
        _ => return (Route::NotFound, path.to_owned()),
    };
    let route = candidates
        .into_iter()
        .find(|(m, _)| *m == method)
        .map_or(Route::MethodNotAllowed, |(_, route)| route);
    (route, pattern.to_owned())
}

fn recorded_body(body: &[u8]) -> Option<Value> {
    if body.is_empty() {
        return None;
    }
    let text = String::from_utf8_lossy(body);
    Some(serde_json::from_str(&text).unwrap_or_else(|_| Value::String(text.into_owned())))
}

// ---------------------------------------------------------------------------------------------
// State and the API

struct Link {
    id: String,
    /// Creation order, the tie-break of equal sort keys.
    seq: u64,
    /// Hundredths of the currency.
    amount: i64,
    currency: String,
    status: &'static str,
    kind: &'static str,
    description: Option<String>,
    order_id: Option<String>,
    success_redirect_url: Option<String>,
    fail_redirect_url: Option<String>,
    email: Option<String>,
    creation_time: DateTime<Utc>,
    expiration: DateTime<Utc>,
}

struct Transaction {
    id: String,
    seq: u64,
    kind: &'static str,
    transaction_type: &'static str,
    status: &'static str,
    error_code: Option<String>,
    error_description: Option<String>,
    /// Hundredths of the currency.
    amount: i64,
    currency: String,
    order_id: Option<String>,
    order_description: Option<String>,
    commission: i64,
    creation_time: DateTime<Utc>,
    payment_time: Option<DateTime<Utc>>,
    email: Option<String>,
    payment_link_id: Option<String>,
    payer_id: String,
    original_transaction_id: Option<String>,
    /// Sum of the refunds of this payment.
    refunded: i64,
}

struct State {
    keys: Arc<KeyPair>,
    /// `GET /public-key` serves PKCS#1 instead of SubjectPublicKeyInfo.
    pkcs1: bool,
    links: Vec<Link>,
    transactions: Vec<Transaction>,
    next_seq: u64,
    commission_rate: f64,
    latency: Duration,
    fail_next: (usize, u16),
    time_out_next: (usize, Duration),
    requests: Vec<Recorded>,
}

impl State {
    fn new(keys: Arc<KeyPair>) -> State {
        State {
            keys,
            pkcs1: false,
            links: Vec::new(),
            transactions: Vec::new(),
            next_seq: 0,
            commission_rate: 0.0,
            latency: Duration::ZERO,
            fail_next: (0, 500),
            time_out_next: (0, Duration::ZERO),
            requests: Vec::new(),
        }
    }

    fn served_public_pem(&self) -> &str {
        if self.pkcs1 {
            &self.keys.public_pkcs1_pem
        } else {
            &self.keys.public_pem
        }
    }

    fn seq(&mut self) -> u64 {
        self.next_seq += 1;
        self.next_seq
    }

    fn link(&self, id: &str) -> Option<&Link> {
        self.links.iter().find(|l| l.id.eq_ignore_ascii_case(id))
    }

    fn transaction(&self, id: &str) -> Option<&Transaction> {
        self.transactions
            .iter()
            .find(|t| t.id.eq_ignore_ascii_case(id))
    }

    fn process(&mut self, route: &Route, incoming: &Incoming) -> (Reply, Duration) {
        let mut delay = self.latency;
        if !matches!(route, Route::PublicKey) {
            if self.fail_next.0 > 0 {
                self.fail_next.0 -= 1;
                return (injected_failure(self.fail_next.1), delay);
            }
            if self.time_out_next.0 > 0 {
                self.time_out_next.0 -= 1;
                delay += self.time_out_next.1;
            }
        }
        (self.apply(route, incoming), delay)
    }

    fn apply(&mut self, route: &Route, incoming: &Incoming) -> Reply {
        match route {
            Route::NotFound => return Reply::empty(404),
            Route::MethodNotAllowed => return Reply::empty(405),
            // Anonymous: a token, even a wrong one, is ignored (inferred: [AllowAnonymous]).
            Route::PublicKey => {
                let value = Obj::new().str("value", self.served_public_pem()).render();
                return Reply::ok(value);
            }
            _ => {}
        }
        if let Some(reply) = unauthorized(incoming.authorization.as_deref()) {
            return reply;
        }
        let query = Query::parse(&incoming.query);
        match route {
            Route::CreateLink => match json_object(incoming) {
                Ok(body) => self.create_link(&body),
                Err(reply) => reply,
            },
            Route::GetLink(id) => match self.link(id) {
                Some(link) => Reply::ok(link_json(link)),
                None => link_not_found(id),
            },
            Route::SearchLinks => self.search_links(&query),
            Route::GetTransaction(id) => match self.transaction(id) {
                Some(t) => Reply::ok(transaction_json(t)),
                None => transaction_not_found(id),
            },
            Route::SearchTransactions => self.search_transactions(&query),
            Route::Refund => match json_object(incoming) {
                Ok(body) => self.refund(&body),
                Err(reply) => reply,
            },
            Route::PublicKey | Route::NotFound | Route::MethodNotAllowed => Reply::empty(404),
        }
    }

    // -- links ---------------------------------------------------------------------------------

    fn create_link(&mut self, body: &Map<String, Value>) -> Reply {
        // Binding errors (missing or mistyped fields) carry `code: null` as in the reference's
        // example; rule violations carry a `PL_*` code (the codes themselves are inferred).
        let mut binding = Vec::new();
        let amount = match field(body, "amount") {
            None => {
                binding.push(required("amount"));
                None
            }
            Some(Value::Number(n)) => n.as_f64(),
            Some(_) => {
                binding.push(not_convertible("amount", "System.Decimal"));
                None
            }
        };
        let text = |name: &str, binding: &mut Vec<(String, String)>| match field(body, name) {
            None => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => {
                binding.push(not_convertible(name, "System.String"));
                None
            }
        };
        let currency = text("currency", &mut binding);
        if currency.is_none() && !binding.iter().any(|(m, _)| m == "currency") {
            binding.push(required("currency"));
        }
        let description = text("description", &mut binding);
        let order_id = text("orderId", &mut binding);
        let success_redirect_url = text("successRedirectUrl", &mut binding);
        let fail_redirect_url = text("failRedirectUrl", &mut binding);
        let email = text("email", &mut binding);
        let expiration = match text("expirationDateTime", &mut binding) {
            None => None,
            Some(raw) => {
                let parsed = parse_time(&raw);
                if parsed.is_none() {
                    binding.push(not_convertible("expirationDateTime", "System.DateTime"));
                }
                parsed
            }
        };
        let kind = match text("type", &mut binding).as_deref() {
            None => "OneTime",
            Some(t) if t.eq_ignore_ascii_case("OneTime") => "OneTime",
            Some(t) if t.eq_ignore_ascii_case("ManyTime") => "ManyTime",
            Some(_) => {
                binding.push(not_convertible("type", "PaymentLinkType"));
                "OneTime"
            }
        };
        let (Some(amount), Some(currency)) = (amount, currency) else {
            return Reply::invalid(None, &binding);
        };
        if !binding.is_empty() {
            return Reply::invalid(None, &binding);
        }

        let now = now();
        let mut rules: Vec<(&str, String, String)> = Vec::new();
        if !CURRENCIES.contains(&currency.as_str()) {
            rules.push((
                "PL_INVALID_CURRENCY",
                "currency".to_owned(),
                format!("Currency '{currency}' is not supported; use one of RUB, USD, EUR."),
            ));
        }
        let minor = match to_minor(amount) {
            Some(minor) => {
                let min = if currency == "RUB" {
                    MIN_RUB
                } else {
                    MIN_FOREIGN
                };
                if !(min..=MAX_AMOUNT).contains(&minor) {
                    rules.push((
                        "PL_INVALID_AMOUNT",
                        "amount".to_owned(),
                        format!(
                            "'Amount' must be between {} and {} {currency}.",
                            money(min),
                            money(MAX_AMOUNT)
                        ),
                    ));
                }
                minor
            }
            None => {
                rules.push((
                    "PL_INVALID_AMOUNT",
                    "amount".to_owned(),
                    "'Amount' must not have more than 2 decimal places.".to_owned(),
                ));
                0
            }
        };
        let expiration = expiration.unwrap_or(now + TimeDelta::days(3));
        if expiration < now + TimeDelta::minutes(10) || expiration > now + TimeDelta::days(30) {
            rules.push((
                "PL_INVALID_EXPIRATION_DATE",
                "expirationDateTime".to_owned(),
                "'ExpirationDateTime' must be from 10 minutes to 30 days from now.".to_owned(),
            ));
        }
        if let Some((code, _, _)) = rules.first() {
            let code = *code;
            let errors: Vec<(String, String)> = rules.into_iter().map(|(_, m, t)| (m, t)).collect();
            return Reply::invalid(Some(code), &errors);
        }

        // No idempotency: the same orderId again makes another link (reference §2).
        let link = Link {
            id: new_uuid(),
            seq: self.seq(),
            amount: minor,
            currency,
            status: "Opened",
            kind,
            description,
            order_id,
            success_redirect_url,
            fail_redirect_url,
            email,
            creation_time: now,
            expiration,
        };
        let json = link_json(&link);
        self.links.push(link);
        Reply::ok(json)
    }

    fn search_links(&self, query: &Query) -> Reply {
        let filter = match Filter::parse(query, &["Opened", "Closed"]) {
            Ok(filter) => filter,
            Err(reply) => return reply,
        };
        let skip = match query.number("SkipCount", 0, usize::MAX) {
            Ok(skip) => skip,
            Err(reply) => return reply,
        };
        let take = match query.number("MaxResultCount", DEFAULT_PAGE, MAX_PAGE) {
            Ok(take) => take,
            Err(reply) => return reply,
        };
        let mut found: Vec<&Link> = self
            .links
            .iter()
            .filter(|l| {
                filter.matches(
                    l.order_id.as_deref(),
                    l.status,
                    &l.currency,
                    l.amount,
                    l.creation_time,
                    Some(&l.id),
                )
            })
            .collect();
        found.sort_by(|a, b| {
            filter.compare(
                (&a.order_id, a.creation_time, a.amount, a.seq),
                (&b.order_id, b.creation_time, b.amount, b.seq),
            )
        });
        let total = found.len();
        let items = array(found.into_iter().skip(skip).take(take).map(link_json));
        let body = Obj::new()
            .raw("items", items)
            .raw("totalCount", total.to_string())
            .render();
        Reply::ok(body)
    }

    // -- transactions --------------------------------------------------------------------------

    /// A payer's attempt on a link: paid (`decline == None`) or declined with `(code, description)`.
    fn attempt(&mut self, link_id: &str, decline: Option<(&str, &str)>) -> Result<Value, String> {
        let now = now();
        let rate = self.commission_rate;
        let seq = self.seq();
        let link = self
            .links
            .iter_mut()
            .find(|l| l.id.eq_ignore_ascii_case(link_id))
            .ok_or("no such link")?;
        if link.status != "Opened" {
            return Err(format!("the link is {}", link.status));
        }
        if link.expiration <= now {
            return Err("the link has expired".to_owned());
        }
        let paid = decline.is_none();
        if paid && link.kind == "OneTime" {
            link.status = "Closed";
        }
        let transaction = Transaction {
            id: new_uuid(),
            seq,
            kind: "Payment",
            transaction_type: "SBP",
            status: if paid { "Paid" } else { "Declined" },
            error_code: decline.map(|(code, _)| code.to_owned()),
            error_description: decline.map(|(_, description)| description.to_owned()),
            amount: link.amount,
            currency: link.currency.clone(),
            order_id: link.order_id.clone(),
            order_description: link.description.clone(),
            commission: if paid {
                (link.amount as f64 * rate).round() as i64
            } else {
                0
            },
            creation_time: now,
            payment_time: paid.then_some(now),
            email: link.email.clone(),
            payment_link_id: Some(link.id.clone()),
            payer_id: new_uuid().replace('-', ""),
            original_transaction_id: None,
            refunded: 0,
        };
        let json = parse(&transaction_json(&transaction));
        self.transactions.push(transaction);
        Ok(json)
    }

    fn search_transactions(&self, query: &Query) -> Reply {
        let filter = match Filter::parse(query, &["Created", "Pending", "Paid", "Declined"]) {
            Ok(filter) => filter,
            Err(reply) => return reply,
        };
        let take = match query.number("MaxResultCount", DEFAULT_PAGE, MAX_PAGE) {
            Ok(take) => take,
            Err(reply) => return reply,
        };
        let mut found: Vec<&Transaction> = self
            .transactions
            .iter()
            .filter(|t| {
                filter.matches(
                    t.order_id.as_deref(),
                    t.status,
                    &t.currency,
                    t.amount,
                    t.creation_time,
                    t.payment_link_id.as_deref(),
                )
            })
            .collect();
        found.sort_by(|a, b| {
            filter.compare(
                (&a.order_id, a.creation_time, a.amount, a.seq),
                (&b.order_id, b.creation_time, b.amount, b.seq),
            )
        });
        // The cursor trio names the last item of the previous page; this fake pages by its id
        // (inferred: the real API seeks by the sort key, which gives the same pages).
        let start = match query.one("CursorId") {
            None => 0,
            Some(cursor) => match found.iter().position(|t| t.id.eq_ignore_ascii_case(cursor)) {
                Some(i) => i + 1,
                None => {
                    return Reply::invalid_field(
                        None,
                        "cursorId",
                        &format!("The value '{cursor}' is not valid."),
                    );
                }
            },
        };
        let page: Vec<&Transaction> = found.iter().skip(start).take(take).copied().collect();
        let has_next = found.len() > start + page.len();
        let last = page.last().filter(|_| has_next);
        let body = Obj::new()
            .raw("items", array(page.iter().map(|t| transaction_json(t))))
            .raw("hasNextPage", has_next.to_string())
            .opt_str("nextCursorId", last.map(|t| t.id.as_str()))
            .raw(
                "nextCursorAmount",
                last.map_or("null".to_owned(), |t| money(t.amount)),
            )
            .raw(
                "nextCursorDate",
                last.map_or("null".to_owned(), |t| string(&format_time(t.creation_time))),
            )
            .render();
        Reply::ok(body)
    }

    fn refund(&mut self, body: &Map<String, Value>) -> Reply {
        let mut binding = Vec::new();
        let original_id = match field(body, "originalTransactionId") {
            None => {
                binding.push(required("originalTransactionId"));
                None
            }
            Some(Value::String(s)) if uuid::Uuid::parse_str(s).is_ok() => Some(s.clone()),
            Some(_) => {
                binding.push(not_convertible("originalTransactionId", "System.Guid"));
                None
            }
        };
        let amount = match field(body, "amount") {
            None => {
                binding.push(required("amount"));
                None
            }
            Some(Value::Number(n)) => n.as_f64(),
            Some(_) => {
                binding.push(not_convertible("amount", "System.Decimal"));
                None
            }
        };
        let (Some(original_id), Some(amount), true) = (original_id, amount, binding.is_empty())
        else {
            return Reply::invalid(None, &binding);
        };
        let Some(index) = self
            .transactions
            .iter()
            .position(|t| t.id.eq_ignore_ascii_case(&original_id))
        else {
            return transaction_not_found(&original_id);
        };
        let original = &self.transactions[index];
        if original.kind != "Payment" || original.status != "Paid" {
            return Reply::invalid_field(
                Some("TRA_REFUND_NOT_ALLOWED"),
                "originalTransactionId",
                &format!(
                    "Only a paid payment can be refunded; transaction {} is a {} {}.",
                    original.id,
                    original.status.to_ascii_lowercase(),
                    original.kind.to_ascii_lowercase()
                ),
            );
        }
        let remaining = original.amount - original.refunded;
        let minor = match to_minor(amount) {
            None => {
                return Reply::invalid_field(
                    Some("TRA_INVALID_REFUND_AMOUNT"),
                    "amount",
                    "'Amount' must not have more than 2 decimal places.",
                );
            }
            Some(minor) if minor <= 0 => {
                return Reply::invalid_field(
                    Some("TRA_INVALID_REFUND_AMOUNT"),
                    "amount",
                    "'Amount' must be greater than 0.",
                );
            }
            Some(minor) if minor > remaining => {
                return Reply::invalid_field(
                    Some("TRA_REFUND_AMOUNT_EXCEEDED"),
                    "amount",
                    &format!(
                        "The refund amount exceeds the remaining amount {} {}.",
                        money(remaining),
                        original.currency
                    ),
                );
            }
            Some(minor) => minor,
        };
        let now = now();
        let seq = self.seq();
        let original = &mut self.transactions[index];
        original.refunded += minor;
        // Currency, order and payer are the original's (reference §4).
        let refund = Transaction {
            id: new_uuid(),
            seq,
            kind: "Refund",
            transaction_type: original.transaction_type,
            status: "Paid",
            error_code: None,
            error_description: None,
            amount: minor,
            currency: original.currency.clone(),
            order_id: original.order_id.clone(),
            order_description: original.order_description.clone(),
            commission: 0,
            creation_time: now,
            payment_time: Some(now),
            email: original.email.clone(),
            payment_link_id: original.payment_link_id.clone(),
            payer_id: original.payer_id.clone(),
            original_transaction_id: Some(original.id.clone()),
            refunded: 0,
        };
        let body = Obj::new()
            .str("transactionId", &refund.id)
            .str("originalTransactionId", &original.id)
            .str("transactionStatus", refund.status)
            .str("kind", refund.kind)
            .opt_str("errorCode", None)
            .opt_str("errorDescription", None)
            .render();
        self.transactions.push(refund);
        Reply::ok(body)
    }
}

/// 401 the way ASP.NET's JWT bearer handler answers: empty body, `WWW-Authenticate` (inferred).
fn unauthorized(authorization: Option<&str>) -> Option<Reply> {
    let Some(value) = authorization else {
        return Some(Reply::empty(401).header("WWW-Authenticate", "Bearer"));
    };
    let token = value
        .split_once(' ')
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("Bearer"))
        .map(|(_, token)| token.trim());
    if token == Some(TOKEN) {
        None
    } else {
        Some(Reply::empty(401).header("WWW-Authenticate", "Bearer error=\"invalid_token\""))
    }
}

fn injected_failure(status: u16) -> Reply {
    let message = match status {
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not found",
        429 => "Too many requests. Try again later.",
        503 => "Service unavailable.",
        _ => "An internal error occurred during your request!",
    };
    let reply = Reply::error(status, None, message, None, &[]);
    if status == 429 {
        reply.header("Retry-After", RETRY_AFTER_SECONDS.to_string())
    } else {
        reply
    }
}

fn link_not_found(id: &str) -> Reply {
    Reply::not_found(
        "PL_NOT_FOUND",
        &format!("There is no payment link with id = {id}!"),
    )
}

fn transaction_not_found(id: &str) -> Reply {
    Reply::not_found(
        "TRA_NOT_FOUND",
        &format!("There is no transaction with id = {id}!"),
    )
}

/// The JSON object body of a POST; 415 without `application/json`, 400 when it is not an object.
fn json_object(incoming: &Incoming) -> Result<Map<String, Value>, Reply> {
    let content_type = incoming.content_type.to_ascii_lowercase();
    if !content_type.starts_with("application/json") {
        return Err(Reply::empty(415));
    }
    match serde_json::from_slice::<Value>(&incoming.body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(Reply::invalid_field(
            None,
            "input",
            "The JSON value could not be converted to the request type. Path: $",
        )),
        Err(e) => Err(Reply::invalid_field(
            None,
            "input",
            &format!("The request body is not valid JSON: {e}"),
        )),
    }
}

/// Property names are matched case-insensitively and null counts as absent, as System.Text.Json
/// with ASP.NET's web defaults binds them (inferred).
fn field<'a>(body: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    body.iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v)
        .filter(|v| !v.is_null())
}

fn required(member: &str) -> (String, String) {
    let mut title = member.to_owned();
    if let Some(first) = title.get_mut(0..1) {
        first.make_ascii_uppercase();
    }
    (member.to_owned(), format!("'{title}' is required."))
}

fn not_convertible(member: &str, type_name: &str) -> (String, String) {
    (
        member.to_owned(),
        format!("The JSON value could not be converted to {type_name}. Path: $.{member}"),
    )
}

// ---------------------------------------------------------------------------------------------
// Query strings and search filters

struct Query(Vec<(String, String)>);

impl Query {
    fn parse(text: &str) -> Query {
        Query(
            web::Query::<Vec<(String, String)>>::from_query(text)
                .map(web::Query::into_inner)
                .unwrap_or_default(),
        )
    }

    /// Every value of a parameter (names are case-insensitive; arrays repeat the name).
    fn all(&self, name: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(k, v)| k.eq_ignore_ascii_case(name) && !v.is_empty())
            .map(|(_, v)| v.as_str())
            .collect()
    }

    fn one(&self, name: &str) -> Option<&str> {
        self.all(name).into_iter().next()
    }

    fn number(&self, name: &str, default: usize, max: usize) -> Result<usize, Reply> {
        let Some(raw) = self.one(name) else {
            return Ok(default);
        };
        match raw.parse::<usize>() {
            Ok(n) if n <= max => Ok(n),
            Ok(_) => Err(Reply::invalid_field(
                None,
                name,
                &format!("The field {name} must be between 0 and {max}."),
            )),
            Err(_) => Err(not_valid(name, raw)),
        }
    }

    fn amount(&self, name: &str) -> Result<Option<i64>, Reply> {
        match self.one(name) {
            None => Ok(None),
            Some(raw) => raw
                .parse::<f64>()
                .ok()
                .filter(|f| f.is_finite())
                .map(|f| Some((f * 100.0).round() as i64))
                .ok_or_else(|| not_valid(name, raw)),
        }
    }

    fn time(&self, name: &str) -> Result<Option<DateTime<Utc>>, Reply> {
        match self.one(name) {
            None => Ok(None),
            Some(raw) => parse_time(raw)
                .map(Some)
                .ok_or_else(|| not_valid(name, raw)),
        }
    }
}

fn not_valid(name: &str, raw: &str) -> Reply {
    Reply::invalid_field(None, name, &format!("The value '{raw}' is not valid."))
}

#[derive(Clone, Copy, PartialEq)]
enum SortKey {
    OrderId,
    CreationTime,
    Amount,
}

/// The filters shared by `GET /links` and `GET /v2/transactions`.
struct Filter {
    order_id: Option<String>,
    statuses: Vec<&'static str>,
    currencies: Vec<String>,
    link_ids: Vec<String>,
    amount_from: Option<i64>,
    amount_to: Option<i64>,
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
    sort: SortKey,
    descending: bool,
}

impl Filter {
    fn parse(query: &Query, statuses: &[&'static str]) -> Result<Filter, Reply> {
        // Enums bind case-insensitively; an unknown value is a 400 binding error.
        let mut wanted = Vec::new();
        for raw in query.all("Statuses") {
            match statuses.iter().find(|s| s.eq_ignore_ascii_case(raw)) {
                Some(status) => wanted.push(*status),
                None => return Err(not_valid("Statuses", raw)),
            }
        }
        let mut currencies = Vec::new();
        for raw in query.all("Currencies") {
            match CURRENCIES.iter().find(|c| c.eq_ignore_ascii_case(raw)) {
                Some(currency) => currencies.push((*currency).to_owned()),
                None => return Err(not_valid("Currencies", raw)),
            }
        }
        // Default order: newest first (inferred).
        let (sort, descending) = match query.one("Sorting") {
            None => (SortKey::CreationTime, true),
            Some(raw) => {
                let mut words = raw.split_whitespace();
                let key = match words.next().map(str::to_ascii_lowercase).as_deref() {
                    Some("orderid") => SortKey::OrderId,
                    Some("creationtime") => SortKey::CreationTime,
                    Some("amount") => SortKey::Amount,
                    _ => return Err(not_valid("Sorting", raw)),
                };
                let descending = match words.next().map(str::to_ascii_lowercase).as_deref() {
                    None | Some("asc") => false,
                    Some("desc") => true,
                    Some(_) => return Err(not_valid("Sorting", raw)),
                };
                (key, descending)
            }
        };
        Ok(Filter {
            order_id: query.one("OrderId").map(str::to_owned),
            statuses: wanted,
            currencies,
            link_ids: query
                .all("PaymentLinkIds")
                .into_iter()
                .map(str::to_owned)
                .collect(),
            amount_from: query.amount("AmountFrom")?,
            amount_to: query.amount("AmountTo")?,
            from: query.time("CreationTimeFrom")?,
            to: query.time("CreationTimeTo")?,
            sort,
            descending,
        })
    }

    fn matches(
        &self,
        order_id: Option<&str>,
        status: &str,
        currency: &str,
        amount: i64,
        created: DateTime<Utc>,
        link_id: Option<&str>,
    ) -> bool {
        self.order_id.as_deref().is_none_or(|o| order_id == Some(o))
            && (self.statuses.is_empty() || self.statuses.contains(&status))
            && (self.currencies.is_empty() || self.currencies.iter().any(|c| c == currency))
            && (self.link_ids.is_empty()
                || link_id
                    .is_some_and(|id| self.link_ids.iter().any(|l| l.eq_ignore_ascii_case(id))))
            && self.amount_from.is_none_or(|min| amount >= min)
            && self.amount_to.is_none_or(|max| amount <= max)
            && self.from.is_none_or(|from| created >= from)
            && self.to.is_none_or(|to| created <= to)
    }

    /// `(orderId, creationTime, amount, seq)`; equal keys keep creation order.
    fn compare(
        &self,
        a: (&Option<String>, DateTime<Utc>, i64, u64),
        b: (&Option<String>, DateTime<Utc>, i64, u64),
    ) -> Ordering {
        let order = match self.sort {
            SortKey::OrderId => a.0.cmp(b.0),
            SortKey::CreationTime => a.1.cmp(&b.1),
            SortKey::Amount => a.2.cmp(&b.2),
        }
        .then(a.3.cmp(&b.3));
        if self.descending {
            order.reverse()
        } else {
            order
        }
    }
}

// ---------------------------------------------------------------------------------------------
// JSON as WATA writes it: compact, its own field order, money with two decimals

/// An object rendered field by field in insertion order (serde_json's `Map` would sort them).
struct Obj(Vec<(&'static str, String)>);

impl Obj {
    fn new() -> Obj {
        Obj(Vec::new())
    }

    fn raw(mut self, key: &'static str, json: String) -> Obj {
        self.0.push((key, json));
        self
    }

    fn str(self, key: &'static str, value: &str) -> Obj {
        self.raw(key, string(value))
    }

    fn opt_str(self, key: &'static str, value: Option<&str>) -> Obj {
        self.raw(key, value.map_or("null".to_owned(), string))
    }

    fn money(self, key: &'static str, minor: i64) -> Obj {
        self.raw(key, money(minor))
    }

    fn time(self, key: &'static str, at: DateTime<Utc>) -> Obj {
        self.str(key, &format_time(at))
    }

    fn opt_time(self, key: &'static str, at: Option<DateTime<Utc>>) -> Obj {
        self.raw(
            key,
            at.map_or("null".to_owned(), |at| string(&format_time(at))),
        )
    }

    fn render(&self) -> String {
        let fields: Vec<String> = self
            .0
            .iter()
            .map(|(key, value)| format!("{}:{value}", string(key)))
            .collect();
        format!("{{{}}}", fields.join(","))
    }
}

fn string(text: &str) -> String {
    Value::String(text.to_owned()).to_string()
}

fn array(items: impl IntoIterator<Item = String>) -> String {
    let items: Vec<String> = items.into_iter().collect();
    format!("[{}]", items.join(","))
}

/// The reference's field list and example order (§3).
fn link_json(link: &Link) -> String {
    Obj::new()
        .str("id", &link.id)
        .money("amount", link.amount)
        .str("currency", &link.currency)
        .str("status", link.status)
        .str("url", &format!("{PAY_FORM_URL}{}", link.id))
        .str("terminalName", TERMINAL_NAME)
        .str("terminalPublicId", TERMINAL_PUBLIC_ID)
        .time("creationTime", link.creation_time)
        .opt_str("orderId", link.order_id.as_deref())
        .opt_str("description", link.description.as_deref())
        .opt_str("successRedirectUrl", link.success_redirect_url.as_deref())
        .opt_str("failRedirectUrl", link.fail_redirect_url.as_deref())
        .time("expirationDateTime", link.expiration)
        // Not in the reference's response example; echoed as the request field (inferred).
        .str("type", link.kind)
        .render()
}

/// `GET /transactions/{id}` and the items of `GET /v2/transactions`: the webhook's fields (reference
/// §4) with the fee as `totalCommission`, `id` (seen) in place of `transactionId` and `creationTime`
/// added (both inferred; sending both ids would break a client that aliases one to the other).
fn transaction_json(t: &Transaction) -> String {
    Obj::new()
        .str("id", &t.id)
        .str("transactionType", t.transaction_type)
        .str("kind", t.kind)
        .opt_str(
            "originalTransactionId",
            t.original_transaction_id.as_deref(),
        )
        .str("transactionStatus", t.status)
        .opt_str("errorCode", t.error_code.as_deref())
        .opt_str("errorDescription", t.error_description.as_deref())
        .str("terminalName", TERMINAL_NAME)
        .str("terminalPublicId", TERMINAL_PUBLIC_ID)
        .money("amount", t.amount)
        .str("currency", &t.currency)
        .opt_str("orderId", t.order_id.as_deref())
        .opt_str("orderDescription", t.order_description.as_deref())
        .money("totalCommission", t.commission)
        .time("creationTime", t.creation_time)
        .opt_time("paymentTime", t.payment_time)
        .opt_str("email", t.email.as_deref())
        .opt_str("paymentLinkId", t.payment_link_id.as_deref())
        .raw("payerData", payer_data(t))
        .render()
}

/// The post-payment / refund webhook body: reference §5's fields in its order; refunds add
/// `originalTransactionId` after `transactionId` (position inferred).
fn webhook_json(t: &Transaction) -> String {
    let mut body = Obj::new()
        .str("transactionType", t.transaction_type)
        .str("kind", t.kind)
        .str("transactionId", &t.id);
    if let Some(original) = &t.original_transaction_id {
        body = body.str("originalTransactionId", original);
    }
    body.str("transactionStatus", t.status)
        .opt_str("errorCode", t.error_code.as_deref())
        .opt_str("errorDescription", t.error_description.as_deref())
        .str("terminalName", TERMINAL_NAME)
        .str("terminalPublicId", TERMINAL_PUBLIC_ID)
        .money("amount", t.amount)
        .str("currency", &t.currency)
        .opt_str("orderId", t.order_id.as_deref())
        .opt_str("orderDescription", t.order_description.as_deref())
        .money("commission", t.commission)
        .opt_time("paymentTime", t.payment_time)
        .opt_str("email", t.email.as_deref())
        .opt_str("paymentLinkId", t.payment_link_id.as_deref())
        .raw("payerData", payer_data(t))
        .render()
}

fn payer_data(t: &Transaction) -> String {
    Obj::new().str("payerId", &t.payer_id).render()
}

fn parse(json: &str) -> Value {
    // Rendered by this module from valid parts; a failure is a bug in the fake itself.
    serde_json::from_str(json).expect("the fake WATA rendered invalid JSON")
}

// ---------------------------------------------------------------------------------------------
// Small helpers

/// Hundredths as `199.00` (a .NET decimal keeps its scale; the reference writes `199.00`).
fn money(minor: i64) -> String {
    let sign = if minor < 0 { "-" } else { "" };
    let abs = minor.unsigned_abs();
    format!("{sign}{}.{:02}", abs / 100, abs % 100)
}

/// A JSON amount in hundredths; `None` with more than two decimal places. The shortest decimal
/// form of the f64 is what the client wrote (`10.001` stays `10.001`).
fn to_minor(amount: f64) -> Option<i64> {
    if !amount.is_finite() || amount.abs() > 1e15 {
        return None;
    }
    let text = format!("{amount}");
    let decimals = text.split_once('.').map_or(0, |(_, d)| d.len());
    (decimals <= 2).then(|| (amount * 100.0).round() as i64)
}

/// Now, at .NET's 100 ns tick resolution so that rendered times parse back equal.
fn now() -> DateTime<Utc> {
    truncate_to_ticks(Utc::now())
}

fn truncate_to_ticks(at: DateTime<Utc>) -> DateTime<Utc> {
    at.with_nanosecond(at.nanosecond() / 100 * 100)
        .unwrap_or(at)
}

/// System.Text.Json's UTC form: `2026-11-27T10:30:00Z`, or `…:00.1234567Z` with trailing zeros
/// trimmed (the reference's examples have no fraction; fractions are inferred from .NET).
pub fn format_time(at: DateTime<Utc>) -> String {
    let seconds = at.format("%Y-%m-%dT%H:%M:%S").to_string();
    let ticks = at.nanosecond() % 1_000_000_000 / 100;
    if ticks == 0 {
        format!("{seconds}Z")
    } else {
        let fraction = format!("{ticks:07}");
        format!("{seconds}.{}Z", fraction.trim_end_matches('0'))
    }
}

/// ISO 8601: with an offset (converted to UTC), or without one (taken as UTC, inferred), or a date.
fn parse_time(text: &str) -> Option<DateTime<Utc>> {
    let text = text.trim();
    if let Ok(at) = DateTime::parse_from_rfc3339(text) {
        return Some(truncate_to_ticks(at.with_timezone(&Utc)));
    }
    for format in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"] {
        if let Ok(at) = NaiveDateTime::parse_from_str(text, format) {
            return Some(truncate_to_ticks(at.and_utc()));
        }
    }
    NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|at| at.and_utc())
}

fn new_uuid() -> String {
    uuid::Uuid::new_v4().to_string()
}
