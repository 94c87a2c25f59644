//! A fake Marzban 0.8.4 panel for tests and benches: the REST API of
//! `shared/reference/marzban-api.md` (status codes, error bodies, quirks) over in-memory users, with
//! fault injection and a request recorder. It serves from its own thread and actix System, so any
//! runtime (or none) can drive it. Benches include this file by path, next to `server.rs`.

// Each includer (a test binary, the bench) uses a different subset of this API.
#![allow(dead_code)]

use std::cmp::Ordering;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{DateTime, Datelike, NaiveDate, NaiveDateTime, TimeDelta, Timelike, Utc};
use serde::Serialize;
use serde_json::{Map, Value, json};
use tokio::sync::watch;

use super::server::{FakeServer, percent_decode};

/// A sudo admin stored in the panel's database (its users are owned by it).
pub const ADMIN_USERNAME: &str = "admin";
pub const ADMIN_PASSWORD: &str = "panel-password";
/// The env "sudoer" (`SUDO_USERNAME`/`SUDO_PASSWORD`): sudo, not stored in the database, so the
/// users it creates have no owner (`admin: null`) and 0.8.4 answers 500 to their DELETE.
pub const ENV_SUDO_USERNAME: &str = "env_sudo";
pub const ENV_SUDO_PASSWORD: &str = "env-sudo-password";
pub const PANEL_VERSION: &str = "0.8.4";
/// The vless inbounds of the default config; `FakeUser::new` enables all of them.
pub const DEFAULT_VLESS_TAGS: [&str; 2] = ["VLESS TCP REALITY", "VLESS WS"];
/// Host put in the fake share links (TEST-NET-3, never reachable).
pub const LINK_HOST: &str = "203.0.113.5";

const PROXY_TYPES: [&str; 4] = ["vmess", "vless", "trojan", "shadowsocks"];
const USER_STATUSES: [&str; 5] = ["active", "disabled", "limited", "expired", "on_hold"];
const RESET_STRATEGIES: [&str; 5] = ["no_reset", "day", "week", "month", "year"];
const SHADOWSOCKS_METHODS: [&str; 3] = ["aes-128-gcm", "aes-256-gcm", "chacha20-ietf-poly1305"];
const FLOWS: [&str; 2] = ["", "xtls-rprx-vision"];
const USERNAME_MESSAGE: &str = "Value error, Username only can be 3 to 32 characters and contain a-z, 0-9, and underscores in between.";
const SUB_SIGNATURE_LEN: usize = 10;

/// `{"vless": ["VLESS TCP REALITY", "VLESS WS"], "trojan": ["TROJAN WS"]}`.
pub fn default_inbounds() -> BTreeMap<String, Vec<String>> {
    BTreeMap::from([
        (
            "vless".to_owned(),
            DEFAULT_VLESS_TAGS.iter().map(|t| t.to_string()).collect(),
        ),
        ("trojan".to_owned(), vec!["TROJAN WS".to_owned()]),
    ])
}

/// A user as the panel stores it.
#[derive(Clone, Debug)]
pub struct FakeUser {
    pub username: String,
    /// Stored status: active|disabled|on_hold|limited|expired.
    pub status: String,
    /// type → settings, always complete (`{"id","flow"}` for vless, …).
    pub proxies: Map<String, Value>,
    /// type → enabled inbound tags (the panel stores the complement as exclusions).
    pub inbounds: BTreeMap<String, Vec<String>>,
    pub expire: Option<i64>,
    pub data_limit: Option<i64>,
    pub data_limit_reset_strategy: String,
    pub used_traffic: i64,
    pub lifetime_used_traffic: i64,
    pub created_at: NaiveDateTime,
    /// Last PUT/revoke; an on_hold user goes active once `online_at >= edit_at.or(created_at)`.
    pub edit_at: Option<NaiveDateTime>,
    pub note: Option<String>,
    pub online_at: Option<NaiveDateTime>,
    pub sub_updated_at: Option<NaiveDateTime>,
    pub sub_last_user_agent: Option<String>,
    /// Normalised `{data_limit, expire, add_remaining_traffic, fire_on_either}`.
    pub next_plan: Option<Value>,
    pub on_hold_expire_duration: Option<i64>,
    pub on_hold_timeout: Option<NaiveDateTime>,
    pub auto_delete_in_days: Option<i64>,
    pub sub_revoked_at: Option<NaiveDateTime>,
    /// Owner; `None` = created by an env sudoer.
    pub admin: Option<String>,
}

impl FakeUser {
    /// Active, one vless proxy with a fresh UUID on every default vless inbound, no limits, no owner.
    /// After `set_inbounds`, prefer `FakePanel::new_user`, which uses the panel's current config.
    pub fn new(username: &str) -> FakeUser {
        let mut proxies = Map::new();
        proxies.insert("vless".to_owned(), json!({"id": new_uuid(), "flow": ""}));
        let inbounds = BTreeMap::from([(
            "vless".to_owned(),
            DEFAULT_VLESS_TAGS.iter().map(|t| t.to_string()).collect(),
        )]);
        FakeUser {
            username: username.to_owned(),
            status: "active".to_owned(),
            proxies,
            inbounds,
            expire: None,
            data_limit: None,
            data_limit_reset_strategy: "no_reset".to_owned(),
            used_traffic: 0,
            lifetime_used_traffic: 0,
            created_at: to_micros(Utc::now().naive_utc()),
            edit_at: None,
            note: None,
            online_at: None,
            sub_updated_at: None,
            sub_last_user_agent: None,
            next_plan: None,
            on_hold_expire_duration: None,
            on_hold_timeout: None,
            auto_delete_in_days: None,
            sub_revoked_at: None,
            admin: None,
        }
    }
}

/// One request as it reached the panel.
#[derive(Clone, Debug)]
pub struct Recorded {
    pub method: String,
    /// Route pattern, e.g. `/api/user/{username}`; the raw path for unknown routes.
    pub route: String,
    /// Path as received (percent-encoded).
    pub path: String,
    pub query: String,
    /// JSON body; the login form as an object of its fields; other text as a string.
    pub body: Option<Value>,
    /// 0: never answered (it came while the panel hung, see [`FakePanel::set_hanging`]).
    pub status: u16,
    pub received_at: Instant,
}

/// The host numbers of `GET /api/system` (user counts are computed).
#[derive(Clone, Debug)]
pub struct SystemInfo {
    pub version: String,
    pub mem_total: i64,
    pub mem_used: i64,
    pub cpu_cores: i64,
    pub cpu_usage: f64,
    pub incoming_bandwidth: i64,
    pub outgoing_bandwidth: i64,
    pub incoming_bandwidth_speed: i64,
    pub outgoing_bandwidth_speed: i64,
}

impl Default for SystemInfo {
    fn default() -> Self {
        SystemInfo {
            version: PANEL_VERSION.to_owned(),
            mem_total: 2_084_569_088,
            mem_used: 912_461_824,
            cpu_cores: 2,
            cpu_usage: 7.5,
            incoming_bandwidth: 52_428_800_000,
            outgoing_bandwidth: 157_286_400_000,
            incoming_bandwidth_speed: 125_000,
            outgoing_bandwidth_speed: 375_000,
        }
    }
}

/// The running fake panel; stops (bounded) when dropped.
pub struct FakePanel {
    shared: Arc<Shared>,
    server: FakeServer,
}

impl FakePanel {
    /// Binds 127.0.0.1 on a random port and returns once the server is listening.
    pub fn start() -> FakePanel {
        let shared = Arc::new(Shared {
            state: Mutex::new(State::new()),
            hanging: watch::Sender::new(false),
        });
        let data = web::Data::from(Arc::clone(&shared));
        let server = FakeServer::start("fake-marzban", move |app| {
            app.app_data(data.clone())
                .app_data(web::PayloadConfig::new(64 << 20))
                .default_service(web::to(serve));
        });
        FakePanel { shared, server }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        self.server.url()
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.shared.lock()
    }

    /// Replaces the xray inbounds (protocol → tags). Like the panel, which stores exclusions, users
    /// gain the new tags of their protocols and lose the removed ones.
    pub fn set_inbounds(&self, inbounds: BTreeMap<String, Vec<String>>) {
        self.state().set_config(inbounds);
    }

    pub fn inbounds(&self) -> BTreeMap<String, Vec<String>> {
        self.state().config.clone()
    }

    /// `FakeUser::new` with every inbound of the current config for its vless proxy.
    pub fn new_user(&self, username: &str) -> FakeUser {
        let mut user = FakeUser::new(username);
        user.inbounds = BTreeMap::from([("vless".to_owned(), self.state().config_tags("vless"))]);
        user
    }

    /// Stores `user` as is (replacing one with the same name). Proxy types without an `inbounds`
    /// entry get every inbound of their protocol; `lifetime_used_traffic` is raised to `used_traffic`.
    pub fn insert_user(&self, mut user: FakeUser) {
        let mut st = self.state();
        for ptype in user.proxies.keys() {
            if !user.inbounds.contains_key(ptype) {
                let tags = st.config_tags(ptype);
                user.inbounds.insert(ptype.clone(), tags);
            }
        }
        user.lifetime_used_traffic = user.lifetime_used_traffic.max(user.used_traffic);
        st.insert(user);
    }

    /// Case-insensitive; the status is the effective one (see `refresh_status`).
    pub fn user(&self, username: &str) -> Option<FakeUser> {
        let mut st = self.state();
        let now = st.now();
        let entry = st.users.get_mut(&lower(username))?;
        refresh_status(&mut entry.user, now);
        Some(entry.user.clone())
    }

    /// Every user in creation order, statuses refreshed.
    pub fn users(&self) -> Vec<FakeUser> {
        let mut st = self.state();
        let now = st.now();
        st.refresh_all(now);
        st.order
            .values()
            .filter_map(|key| st.users.get(key))
            .map(|entry| entry.user.clone())
            .collect()
    }

    pub fn user_count(&self) -> usize {
        self.state().users.len()
    }

    /// Edits a stored user by hand. If `f` changes `used_traffic` but not `lifetime_used_traffic`,
    /// the lifetime follows (the panel computes it as pre-reset usage + current usage).
    /// Panics when the user does not exist.
    pub fn update_user(&self, username: &str, f: impl FnOnce(&mut FakeUser)) {
        let mut st = self.state();
        let key = lower(username);
        let Some(mut entry) = st.users.remove(&key) else {
            drop(st);
            panic!("fake panel has no user {username:?}");
        };
        let (used, lifetime) = (entry.user.used_traffic, entry.user.lifetime_used_traffic);
        f(&mut entry.user);
        let user = &mut entry.user;
        if user.lifetime_used_traffic == lifetime && user.used_traffic != used {
            user.lifetime_used_traffic = lifetime - used + user.used_traffic;
        }
        let new_key = lower(&user.username);
        if let Some(old) = st.users.remove(&new_key) {
            st.order.remove(&old.seq);
        }
        st.order.insert(entry.seq, new_key.clone());
        st.users.insert(new_key, entry);
    }

    /// Deletes a user behind the shop's back (e.g. by hand in the panel UI).
    pub fn remove_user(&self, username: &str) -> bool {
        self.state().remove(username)
    }

    /// Whether a `subscription_url` (relative or absolute) would still be served.
    pub fn subscription_valid(&self, subscription_url: &str) -> bool {
        let Some((_, rest)) = subscription_url.rsplit_once("/sub/") else {
            return false;
        };
        let token = rest.split('/').next().unwrap_or_default();
        self.state().sub_owner(token).is_some()
    }

    /// Tokens issued from now on expire after `ttl` (`Duration::ZERO`: dead on arrival).
    pub fn set_token_ttl(&self, ttl: Duration) {
        self.state().token_ttl = ttl;
    }

    /// Every token issued so far becomes invalid.
    pub fn expire_all_tokens(&self) {
        self.state().tokens.clear();
    }

    /// Successful `POST /api/admin/token` count.
    pub fn logins(&self) -> usize {
        self.state().logins
    }

    /// Added to every answer, after the request was applied.
    pub fn set_latency(&self, latency: Duration) {
        self.state().latency = latency;
    }

    /// The next `n` requests (except the login) answer `status` `{"detail":"Internal Server Error"}`
    /// without applying anything.
    pub fn fail_next(&self, n: usize, status: u16) {
        self.state().fail_next = (n, status);
    }

    /// The next `n` requests (except the login) are applied, but answered only after `delay`.
    pub fn time_out_next(&self, n: usize, delay: Duration) {
        let mut st = self.state();
        st.time_out_next = (n, delay);
        st.time_out_only = None;
    }

    /// Like `time_out_next`, for the next `n` requests of one route only, e.g.
    /// `("POST", "/api/user")`: the work is done, the answer comes after `delay`.
    pub fn time_out_next_on(&self, method: &str, route: &str, n: usize, delay: Duration) {
        let mut st = self.state();
        st.time_out_next = (n, delay);
        st.time_out_only = Some((method.to_owned(), route.to_owned()));
    }

    /// Holds the next request with this method and route pattern (e.g.
    /// `("GET", "/api/users")`) at the door, before the panel applies it, until the test calls
    /// [`Hold::release`]: a way to make a race happen in a chosen order.
    pub fn hold_next(&self, method: &str, route: &str) -> Arc<Hold> {
        let hold = Arc::new(Hold {
            arrived: tokio::sync::Semaphore::new(0),
            released: tokio::sync::Semaphore::new(0),
        });
        self.state().hold = Some((method.to_owned(), route.to_owned(), Arc::clone(&hold)));
        hold
    }

    /// While down every request, login included, answers 503 at once and nothing is applied (a
    /// proxy in front of a stopped panel).
    pub fn set_outage(&self, down: bool) {
        self.state().outage = down;
    }

    /// While refusing, nothing listens on the panel's port: every connection is refused (the
    /// panel's process is down), open connections are closed. The users and tokens are kept; the
    /// same port listens again when `refuse` is false.
    pub fn refuse_connections(&self, refuse: bool) {
        if refuse {
            self.server.stop_listening();
        } else {
            self.server.listen_again();
        }
    }

    /// While hanging, every request (login included) is accepted and read but never answered and
    /// nothing is applied: the client's timeout (`PANEL_TIMEOUT`) is all that ends it. The
    /// requests are recorded with status 0. When the hang ends, the requests still waiting are
    /// answered 503, still applying nothing.
    pub fn set_hanging(&self, hang: bool) {
        self.shared.hanging.send_replace(hang);
    }

    /// A database admin: `sudo`, or a regular admin that sees and changes only the users it owns
    /// (others answer 403 `"You're not allowed"`, `GET /api/users` leaves them out).
    pub fn add_admin(&self, username: &str, password: &str, sudo: bool) {
        self.state().admins.insert(
            username.to_owned(),
            Account {
                password: password.to_owned(),
                sudo,
                env: false,
            },
        );
    }

    pub fn set_system(&self, info: SystemInfo) {
        self.state().system = info;
    }

    /// Every request in arrival order.
    pub fn requests(&self) -> Vec<Recorded> {
        self.state().requests.clone()
    }

    pub fn clear_requests(&self) {
        self.state().requests.clear();
    }

    /// Requests with this method and route pattern, e.g. `("PUT", "/api/user/{username}")`.
    pub fn count(&self, method: &str, route: &str) -> usize {
        self.state()
            .requests
            .iter()
            .filter(|r| r.method.eq_ignore_ascii_case(method) && r.route == route)
            .count()
    }
}

/// A request held by [`FakePanel::hold_next`].
pub struct Hold {
    arrived: tokio::sync::Semaphore,
    released: tokio::sync::Semaphore,
}

impl Hold {
    /// Waits (at most 20 s) until the request has arrived and is held.
    pub async fn wait_arrived(&self) {
        let permit = tokio::time::timeout(Duration::from_secs(20), self.arrived.acquire())
            .await
            .expect("the held request did not come within 20 s")
            .expect("never closed");
        // Counted once: a second wait returns at once.
        permit.forget();
        self.arrived.add_permits(1);
    }

    /// Lets the held request through (the panel applies it now).
    pub fn release(&self) {
        self.released.add_permits(1);
    }
}

// ---------------------------------------------------------------------------------------------
// HTTP plumbing

struct Shared {
    state: Mutex<State>,
    /// [`FakePanel::set_hanging`].
    hanging: watch::Sender<bool>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panicking test closure must not take every later request down with it.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The hold this request falls into, if any (it is taken: one request per hold).
    fn take_hold(&self, incoming: &Incoming) -> Option<Arc<Hold>> {
        let (_, pattern) = route_of(&incoming.method, &incoming.path);
        let mut st = self.lock();
        let matches = st
            .hold
            .as_ref()
            .is_some_and(|(method, route, _)| *method == incoming.method && *route == pattern);
        if matches {
            st.hold.take().map(|(_, _, hold)| hold)
        } else {
            None
        }
    }

    fn process(&self, incoming: &Incoming) -> (Reply, Duration) {
        let (route, pattern) = route_of(&incoming.method, &incoming.path);
        let mut st = self.lock();
        let (reply, delay) = st.process(&route, &pattern, incoming);
        st.record(incoming, &route, pattern, reply.status);
        (reply, delay)
    }

    /// While the panel hangs: records the request as unanswered and waits until the hang ends;
    /// whether it hung.
    async fn hang(&self, incoming: &Incoming) -> bool {
        let mut hanging = self.hanging.subscribe();
        if !*hanging.borrow_and_update() {
            return false;
        }
        let (route, pattern) = route_of(&incoming.method, &incoming.path);
        self.lock().record(incoming, &route, pattern, 0);
        // The sender lives as long as `Shared`, which outlives this request.
        let _ = hanging.wait_for(|hang| !*hang).await;
        true
    }
}

struct Incoming {
    method: String,
    path: String,
    query: String,
    authorization: Option<String>,
    content_type: String,
    user_agent: String,
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
        user_agent: header("user-agent").unwrap_or_default(),
        body,
        received_at: Instant::now(),
    };
    if let Some(hold) = shared.take_hold(&incoming) {
        hold.arrived.add_permits(1);
        if let Ok(permit) = hold.released.acquire().await {
            permit.forget();
        }
    }
    if shared.hang(&incoming).await {
        return Reply::detail(503, "Service Unavailable").into_response();
    }
    // The state is locked only inside `process`, never across this await.
    let (reply, delay) = shared.process(&incoming);
    if !delay.is_zero() {
        actix_rt::time::sleep(delay).await;
    }
    reply.into_response()
}

enum ReplyBody {
    Json(Value),
    RawJson(Vec<u8>),
    Text(&'static str, String),
}

struct Reply {
    status: u16,
    body: ReplyBody,
    headers: Vec<(&'static str, String)>,
}

impl Reply {
    fn json(status: u16, body: Value) -> Reply {
        Reply {
            status,
            body: ReplyBody::Json(body),
            headers: Vec::new(),
        }
    }

    fn raw_json(status: u16, body: Vec<u8>) -> Reply {
        Reply {
            status,
            body: ReplyBody::RawJson(body),
            headers: Vec::new(),
        }
    }

    fn ok(body: Value) -> Reply {
        Reply::json(200, body)
    }

    fn detail(status: u16, message: &str) -> Reply {
        Reply::json(status, json!({ "detail": message }))
    }

    fn invalid(errors: Map<String, Value>) -> Reply {
        Reply::json(422, json!({ "detail": errors }))
    }

    fn invalid_field(field: &str, message: &str) -> Reply {
        let mut errors = Map::new();
        errors.insert(field.to_owned(), message.into());
        Reply::invalid(errors)
    }

    fn text(status: u16, content_type: &'static str, text: String) -> Reply {
        Reply {
            status,
            body: ReplyBody::Text(content_type, text),
            headers: Vec::new(),
        }
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
            ReplyBody::Json(value) => response
                .content_type("application/json")
                .body(serde_json::to_vec(&value).unwrap_or_default()),
            ReplyBody::RawJson(bytes) => response.content_type("application/json").body(bytes),
            ReplyBody::Text(content_type, text) => response.content_type(content_type).body(text),
        }
    }
}

enum Route {
    Login,
    Admin,
    CreateUser,
    GetUser(String),
    ModifyUser(String),
    DeleteUser(String),
    ResetUser(String),
    RevokeSub(String),
    Users,
    System,
    Inbounds,
    Subscription(String),
    SubscriptionInfo(String),
    MethodNotAllowed,
    NotFound,
}

/// The route and its pattern. Routes of the real panel this fake lacks answer 404 like unknown ones.
fn route_of(method: &str, path: &str) -> (Route, String) {
    let decoded: Vec<String> = path
        .strip_prefix('/')
        .unwrap_or(path)
        .split('/')
        .map(percent_decode)
        .collect();
    let segments: Vec<&str> = decoded.iter().map(String::as_str).collect();
    let user = |u: &str| u.to_owned();
    let (pattern, candidates): (&str, Vec<(&str, Route)>) = match segments.as_slice() {
        ["api", "admin", "token"] => ("/api/admin/token", vec![("POST", Route::Login)]),
        ["api", "admin"] => ("/api/admin", vec![("GET", Route::Admin)]),
        ["api", "user"] => ("/api/user", vec![("POST", Route::CreateUser)]),
        ["api", "user", u] if !u.is_empty() => (
            "/api/user/{username}",
            vec![
                ("GET", Route::GetUser(user(u))),
                ("PUT", Route::ModifyUser(user(u))),
                ("DELETE", Route::DeleteUser(user(u))),
            ],
        ),
        ["api", "user", u, "reset"] if !u.is_empty() => (
            "/api/user/{username}/reset",
            vec![("POST", Route::ResetUser(user(u)))],
        ),
        ["api", "user", u, "revoke_sub"] if !u.is_empty() => (
            "/api/user/{username}/revoke_sub",
            vec![("POST", Route::RevokeSub(user(u)))],
        ),
        ["api", "users"] => ("/api/users", vec![("GET", Route::Users)]),
        ["api", "system"] => ("/api/system", vec![("GET", Route::System)]),
        ["api", "inbounds"] => ("/api/inbounds", vec![("GET", Route::Inbounds)]),
        ["sub", t] | ["sub", t, ""] if !t.is_empty() => (
            "/sub/{token}",
            vec![("GET", Route::Subscription(t.to_string()))],
        ),
        ["sub", t, "info"] if !t.is_empty() => (
            "/sub/{token}/info",
            vec![("GET", Route::SubscriptionInfo(t.to_string()))],
        ),
        _ => return (Route::NotFound, path.to_owned()),
    };
    let route = candidates
        .into_iter()
        .find(|(m, _)| *m == method)
        .map_or(Route::MethodNotAllowed, |(_, route)| route);
    (route, pattern.to_owned())
}

fn recorded_body(incoming: &Incoming, route: &Route) -> Option<Value> {
    if incoming.body.is_empty() {
        return None;
    }
    let text = String::from_utf8_lossy(&incoming.body);
    if matches!(route, Route::Login) && is_form(&incoming.content_type) {
        let fields = parse_pairs(&text)
            .into_iter()
            .map(|(k, v)| (k, Value::String(v)))
            .collect();
        return Some(Value::Object(fields));
    }
    Some(serde_json::from_str(&text).unwrap_or_else(|_| Value::String(text.into_owned())))
}

// ---------------------------------------------------------------------------------------------
// State and the API

struct Entry {
    /// Creation order: the default order of `GET /api/users` (SQLite row id).
    seq: u64,
    user: FakeUser,
}

struct InboundMeta {
    network: &'static str,
    tls: &'static str,
    port: u16,
}

/// A panel admin.
struct Account {
    password: String,
    sudo: bool,
    /// The env sudoer: not in the database, so it owns nothing.
    env: bool,
}

/// The admin a request is authenticated as.
struct Caller {
    username: String,
    sudo: bool,
    env: bool,
}

impl Caller {
    /// `get_validated_user`: a sudo may touch any user, a regular admin only its own.
    fn may_touch(&self, user: &FakeUser) -> bool {
        self.sudo || user.admin.as_deref() == Some(self.username.as_str())
    }
}

struct State {
    users: HashMap<String, Entry>,
    order: BTreeMap<u64, String>,
    next_seq: u64,
    config: BTreeMap<String, Vec<String>>,
    inbound_meta: HashMap<String, InboundMeta>,
    /// Database admins and the env sudoer, by username.
    admins: BTreeMap<String, Account>,
    /// token → (expiry, admin username).
    tokens: HashMap<String, (Instant, String)>,
    token_ttl: Duration,
    logins: usize,
    latency: Duration,
    fail_next: (usize, u16),
    time_out_next: (usize, Duration),
    /// `(method, route pattern)` that `time_out_next` is limited to.
    time_out_only: Option<(String, String)>,
    outage: bool,
    /// `(method, route pattern, hold)` of [`FakePanel::hold_next`].
    hold: Option<(String, String, Arc<Hold>)>,
    requests: Vec<Recorded>,
    system: SystemInfo,
    last_now: NaiveDateTime,
    sub_secret: u64,
}

/// A parsed `UserCreate`/`UserModify`; `None` = omitted or null.
#[derive(Default)]
struct UserBody {
    proxies: Option<Map<String, Value>>,
    expire: Option<i64>,
    data_limit: Option<i64>,
    data_limit_reset_strategy: Option<String>,
    inbounds: Option<BTreeMap<String, Vec<String>>>,
    note: Option<String>,
    on_hold_expire_duration: Option<i64>,
    on_hold_timeout: Option<NaiveDateTime>,
    auto_delete_in_days: Option<i64>,
    next_plan: Option<Value>,
    username: Option<String>,
    status: Option<String>,
}

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Create,
    Modify,
}

enum JsonBody {
    Absent,
    Json(Value),
    /// A body whose content type is not JSON: FastAPI validates the raw bytes (and fails).
    NotJson,
}

#[derive(Clone, Copy)]
enum SortField {
    Username,
    UsedTraffic,
    DataLimit,
    Expire,
    CreatedAt,
}

impl State {
    fn new() -> State {
        let mut state = State {
            users: HashMap::new(),
            order: BTreeMap::new(),
            next_seq: 0,
            config: BTreeMap::new(),
            inbound_meta: HashMap::new(),
            admins: BTreeMap::from([
                (
                    ADMIN_USERNAME.to_owned(),
                    Account {
                        password: ADMIN_PASSWORD.to_owned(),
                        sudo: true,
                        env: false,
                    },
                ),
                (
                    ENV_SUDO_USERNAME.to_owned(),
                    Account {
                        password: ENV_SUDO_PASSWORD.to_owned(),
                        sudo: true,
                        env: true,
                    },
                ),
            ]),
            tokens: HashMap::new(),
            token_ttl: Duration::from_secs(24 * 3600),
            logins: 0,
            latency: Duration::ZERO,
            fail_next: (0, 500),
            time_out_next: (0, Duration::ZERO),
            time_out_only: None,
            outage: false,
            hold: None,
            requests: Vec::new(),
            system: SystemInfo::default(),
            last_now: NaiveDateTime::MIN,
            sub_secret: rand::random(),
        };
        state.set_config(default_inbounds());
        state
    }

    /// UTC now at the database's microsecond precision, strictly increasing, so that every minted
    /// subscription token is unique and orders exactly against `created_at`/`sub_revoked_at`.
    fn now(&mut self) -> NaiveDateTime {
        let mut now = to_micros(Utc::now().naive_utc());
        if now <= self.last_now {
            now = self.last_now + TimeDelta::microseconds(1);
        }
        self.last_now = now;
        now
    }

    fn set_config(&mut self, config: BTreeMap<String, Vec<String>>) {
        let old = std::mem::replace(&mut self.config, config);
        for entry in self.users.values_mut() {
            let user = &mut entry.user;
            for ptype in user.proxies.keys() {
                let enabled = user.inbounds.entry(ptype.clone()).or_default();
                let was_known =
                    |tag: &String| old.get(ptype).is_some_and(|tags| tags.contains(tag));
                *enabled = self
                    .config
                    .get(ptype)
                    .into_iter()
                    .flatten()
                    .filter(|tag| enabled.contains(tag) || !was_known(tag))
                    .cloned()
                    .collect();
            }
        }
        self.inbound_meta.clear();
        let mut port = 443;
        for tags in self.config.values() {
            for tag in tags {
                self.inbound_meta
                    .insert(tag.clone(), inbound_meta(tag, port));
                port = if port == 443 { 2053 } else { port + 1 };
            }
        }
    }

    fn config_tags(&self, protocol: &str) -> Vec<String> {
        self.config.get(protocol).cloned().unwrap_or_default()
    }

    fn tag_exists(&self, tag: &str) -> bool {
        self.inbound_meta.contains_key(tag)
    }

    fn insert(&mut self, user: FakeUser) {
        let key = lower(&user.username);
        if let Some(old) = self.users.remove(&key) {
            self.order.remove(&old.seq);
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        self.order.insert(seq, key.clone());
        self.users.insert(key, Entry { seq, user });
    }

    fn remove(&mut self, username: &str) -> bool {
        match self.users.remove(&lower(username)) {
            Some(entry) => {
                self.order.remove(&entry.seq);
                true
            }
            None => false,
        }
    }

    fn refresh_all(&mut self, now: NaiveDateTime) {
        for entry in self.users.values_mut() {
            refresh_status(&mut entry.user, now);
        }
    }

    fn record(&mut self, incoming: &Incoming, route: &Route, pattern: String, status: u16) {
        self.requests.push(Recorded {
            method: incoming.method.clone(),
            route: pattern,
            path: incoming.path.clone(),
            query: incoming.query.clone(),
            body: recorded_body(incoming, route),
            status,
            received_at: incoming.received_at,
        });
    }

    fn process(&mut self, route: &Route, pattern: &str, incoming: &Incoming) -> (Reply, Duration) {
        if self.outage {
            return (Reply::detail(503, "Service Unavailable"), Duration::ZERO);
        }
        let mut delay = self.latency;
        if !matches!(route, Route::Login) {
            if self.fail_next.0 > 0 {
                self.fail_next.0 -= 1;
                return (
                    Reply::detail(self.fail_next.1, "Internal Server Error"),
                    delay,
                );
            }
            let targeted = self
                .time_out_only
                .as_ref()
                .is_none_or(|(method, route)| *method == incoming.method && route == pattern);
            if self.time_out_next.0 > 0 && targeted {
                self.time_out_next.0 -= 1;
                delay += self.time_out_next.1;
            }
        }
        (self.dispatch(route, incoming), delay)
    }

    fn dispatch(&mut self, route: &Route, incoming: &Incoming) -> Reply {
        match route {
            Route::NotFound => return Reply::detail(404, "Not Found"),
            Route::MethodNotAllowed => return Reply::detail(405, "Method Not Allowed"),
            Route::Login => return self.login(incoming),
            Route::Subscription(token) => return self.subscription(token, incoming, false),
            Route::SubscriptionInfo(token) => return self.subscription(token, incoming, true),
            _ => {}
        }
        // FastAPI decodes a JSON body before resolving any dependency, auth included.
        let body = if matches!(route, Route::CreateUser | Route::ModifyUser(_)) {
            match parse_json_body(incoming) {
                Ok(body) => body,
                Err(reply) => return reply,
            }
        } else {
            JsonBody::Absent
        };
        let caller = match self.authenticate(incoming.authorization.as_deref()) {
            Ok(caller) => caller,
            Err(reply) => return reply,
        };
        let now = self.now();
        // The user dependency: 404 for a missing user, then 403 for another admin's.
        if let Route::GetUser(name)
        | Route::ModifyUser(name)
        | Route::DeleteUser(name)
        | Route::ResetUser(name)
        | Route::RevokeSub(name) = route
        {
            match self.find(name, now) {
                Ok(key) if !caller.may_touch(&self.users[&key].user) => {
                    return Reply::detail(403, "You're not allowed");
                }
                Ok(_) => {}
                Err(reply) => return reply,
            }
        }
        match route {
            Route::Admin => Reply::ok(self.admin_json(&caller.username)),
            Route::CreateUser => self.create_user(&body, now, &caller),
            Route::GetUser(name) => self.get_user(name, now),
            Route::ModifyUser(name) => self.modify_user(name, &body, now),
            Route::DeleteUser(name) => self.delete_user(name),
            Route::ResetUser(name) => self.reset_user(name, now),
            Route::RevokeSub(name) => self.revoke_sub(name, now),
            Route::Users => self.list_users(&incoming.query, now, &caller),
            Route::System => self.system_stats(now, &caller),
            Route::Inbounds => self.inbounds_json(),
            _ => Reply::detail(404, "Not Found"),
        }
    }

    fn login(&mut self, incoming: &Incoming) -> Reply {
        let form = if is_form(&incoming.content_type) {
            parse_pairs(&String::from_utf8_lossy(&incoming.body))
        } else {
            Vec::new()
        };
        // Starlette keeps the last of repeated fields; FastAPI treats an empty form field as missing.
        let field = |name: &str| {
            form.iter()
                .rev()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
                .filter(|v| !v.is_empty())
        };
        let mut errors = Map::new();
        if let Some(grant_type) = field("grant_type")
            && grant_type != "password"
        {
            errors.insert(
                "grant_type".into(),
                "String should match pattern '^password$'".into(),
            );
        }
        let (username, password) = (field("username"), field("password"));
        if username.is_none() {
            errors.insert("username".into(), "Field required".into());
        }
        if password.is_none() {
            errors.insert("password".into(), "Field required".into());
        }
        if !errors.is_empty() {
            return Reply::invalid(errors);
        }
        let (Some(username), Some(password)) = (username, password) else {
            return Reply::invalid(errors);
        };
        let Some(account) = self
            .admins
            .get(username)
            .filter(|account| account.password == password)
        else {
            return Reply::detail(401, "Incorrect username or password")
                .header("www-authenticate", "Bearer");
        };
        let access = if account.sudo { "sudo" } else { "admin" };
        let iat = Utc::now().timestamp();
        let ttl = i64::try_from(self.token_ttl.as_secs()).unwrap_or(i64::MAX);
        let header = b64(br#"{"alg":"HS256","typ":"JWT"}"#, URL_SAFE, false);
        let claims =
            json!({"sub": username, "access": access, "iat": iat, "exp": iat.saturating_add(ttl)});
        let payload = b64(claims.to_string().as_bytes(), URL_SAFE, false);
        let signature = b64(&rand::random::<[u8; 32]>(), URL_SAFE, false);
        let token = format!("{header}.{payload}.{signature}");
        let expires = Instant::now()
            .checked_add(self.token_ttl)
            .unwrap_or_else(|| Instant::now() + Duration::from_secs(100 * 365 * 24 * 3600));
        self.tokens
            .insert(token.clone(), (expires, username.to_owned()));
        self.logins += 1;
        Reply::ok(json!({"access_token": token, "token_type": "bearer"}))
    }

    fn authenticate(&self, authorization: Option<&str>) -> Result<Caller, Reply> {
        let not_authenticated =
            || Reply::detail(401, "Not authenticated").header("www-authenticate", "Bearer");
        let Some(header) = authorization.filter(|h| !h.is_empty()) else {
            return Err(not_authenticated());
        };
        let (scheme, token) = header.split_once(' ').unwrap_or((header, ""));
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Err(not_authenticated());
        }
        let invalid = || {
            Reply::detail(401, "Could not validate credentials")
                .header("www-authenticate", "Bearer")
        };
        match self.tokens.get(token) {
            Some((expires, username)) if Instant::now() < *expires => {
                let account = self.admins.get(username).ok_or_else(invalid)?;
                Ok(Caller {
                    username: username.clone(),
                    sudo: account.sudo,
                    env: account.env,
                })
            }
            _ => Err(invalid()),
        }
    }

    /// Looks a user up (404 otherwise) and refreshes its status, as the panel's job would have.
    fn find(&mut self, username: &str, now: NaiveDateTime) -> Result<String, Reply> {
        let key = lower(username);
        match self.users.get_mut(&key) {
            Some(entry) => {
                refresh_status(&mut entry.user, now);
                Ok(key)
            }
            None => Err(Reply::detail(404, "User not found")),
        }
    }

    fn disabled_protocol(&self, proxies: &Map<String, Value>) -> Option<Reply> {
        proxies
            .keys()
            .find(|ptype| self.config.get(*ptype).is_none_or(Vec::is_empty))
            .map(|ptype| {
                Reply::detail(400, &format!("Protocol {ptype} is disabled on your server"))
            })
    }

    fn create_user(&mut self, body: &JsonBody, now: NaiveDateTime, caller: &Caller) -> Reply {
        let new = match parse_user_body(body, Mode::Create, self) {
            Ok(new) => new,
            Err(reply) => return reply,
        };
        let proxies = new.proxies.unwrap_or_default();
        if let Some(reply) = self.disabled_protocol(&proxies) {
            return reply;
        }
        let username = new.username.unwrap_or_default();
        if self.users.contains_key(&lower(&username)) {
            return Reply::detail(409, "User already exists");
        }
        // Without an `inbounds` key the validator that fills it in never runs and the panel
        // stores every inbound as excluded.
        let inbounds = proxies
            .keys()
            .map(|ptype| {
                let listed = new.inbounds.as_ref().and_then(|i| i.get(ptype));
                let enabled = self
                    .config_tags(ptype)
                    .into_iter()
                    .filter(|tag| listed.is_some_and(|l| l.contains(tag)))
                    .collect();
                (ptype.clone(), enabled)
            })
            .collect();
        let user = FakeUser {
            username,
            status: new.status.unwrap_or_else(|| "active".to_owned()),
            proxies,
            inbounds,
            expire: new.expire.filter(|e| *e != 0),
            data_limit: new.data_limit.filter(|l| *l != 0),
            data_limit_reset_strategy: new
                .data_limit_reset_strategy
                .unwrap_or_else(|| "no_reset".to_owned()),
            used_traffic: 0,
            lifetime_used_traffic: 0,
            created_at: now,
            edit_at: None,
            note: new.note,
            online_at: None,
            sub_updated_at: None,
            sub_last_user_agent: None,
            next_plan: new.next_plan,
            on_hold_expire_duration: new.on_hold_expire_duration.filter(|d| *d != 0),
            on_hold_timeout: new.on_hold_timeout,
            auto_delete_in_days: new.auto_delete_in_days,
            sub_revoked_at: None,
            // The env sudoer has no database row to own the user by.
            admin: (!caller.env).then(|| caller.username.clone()),
        };
        let response = self.user_json(&user, now);
        self.insert(user);
        Reply::ok(response)
    }

    fn get_user(&mut self, username: &str, now: NaiveDateTime) -> Reply {
        match self.find(username, now) {
            Ok(key) => Reply::ok(self.user_json(&self.users[&key].user, now)),
            Err(reply) => reply,
        }
    }

    fn modify_user(&mut self, username: &str, body: &JsonBody, now: NaiveDateTime) -> Reply {
        // The user dependency (404) resolves before the body is validated (422).
        let key = match self.find(username, now) {
            Ok(key) => key,
            Err(reply) => return reply,
        };
        let modify = match parse_user_body(body, Mode::Modify, self) {
            Ok(modify) => modify,
            Err(reply) => return reply,
        };
        if let Some(proxies) = &modify.proxies
            && let Some(reply) = self.disabled_protocol(proxies)
        {
            return reply;
        }
        let Some(entry) = self.users.get_mut(&key) else {
            return Reply::detail(404, "User not found");
        };
        apply_modify(&mut entry.user, modify, &self.config, now);
        Reply::ok(self.user_json(&self.users[&key].user, now))
    }

    /// 0.8.4 bug: a user with no owner (created by the env sudoer) is deleted, then building the
    /// deletion report fails: the answer is 500 (Starlette's plain-text "Internal Server Error",
    /// as for any unhandled exception), every time.
    fn delete_user(&mut self, username: &str) -> Reply {
        let ownerless = self
            .users
            .get(&lower(username))
            .is_some_and(|entry| entry.user.admin.is_none());
        if !self.remove(username) {
            return Reply::detail(404, "User not found");
        }
        if ownerless {
            return Reply::text(
                500,
                "text/plain; charset=utf-8",
                "Internal Server Error".into(),
            );
        }
        Reply::ok(json!({"detail": "User successfully deleted"}))
    }

    fn reset_user(&mut self, username: &str, now: NaiveDateTime) -> Reply {
        let key = match self.find(username, now) {
            Ok(key) => key,
            Err(reply) => return reply,
        };
        if let Some(entry) = self.users.get_mut(&key) {
            let user = &mut entry.user;
            user.used_traffic = 0;
            // 0.8.4: `status not in (UserStatus.expired or UserStatus.disabled)` is a substring test
            // against "expired": only an expired user keeps its status.
            if !"expired".contains(user.status.as_str()) {
                user.status = "active".to_owned();
            }
            user.next_plan = None;
        }
        Reply::ok(self.user_json(&self.users[&key].user, now))
    }

    fn revoke_sub(&mut self, username: &str, now: NaiveDateTime) -> Reply {
        let key = match self.find(username, now) {
            Ok(key) => key,
            Err(reply) => return reply,
        };
        if let Some(entry) = self.users.get_mut(&key) {
            let user = &mut entry.user;
            for (ptype, settings) in user.proxies.iter_mut() {
                if let Some(settings) = settings.as_object_mut() {
                    match ptype.as_str() {
                        "vless" | "vmess" => settings.insert("id".into(), new_uuid().into()),
                        _ => settings.insert("password".into(), random_password().into()),
                    };
                }
            }
            user.sub_revoked_at = Some(now);
            // crud.revoke_user_sub then runs update_user with the user's own values.
            if user.data_limit.is_some() {
                recompute_after_data_limit(user);
            }
            if user.expire.is_some() {
                recompute_after_expire(user, now);
            }
            user.edit_at = Some(now);
        }
        Reply::ok(self.user_json(&self.users[&key].user, now))
    }

    fn list_users(&mut self, query: &str, now: NaiveDateTime, caller: &Caller) -> Reply {
        let pairs = parse_pairs(query);
        let last = |name: &str| {
            pairs
                .iter()
                .rev()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
        };
        let all = |name: &str| -> Vec<&str> {
            pairs
                .iter()
                .filter(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
                .collect()
        };
        let mut errors = Map::new();
        let mut int_param = |name: &str| {
            let value = last(name)?;
            match value.trim().parse::<i64>() {
                Ok(n) => Some(n),
                Err(_) => {
                    errors.insert(
                        name.to_owned(),
                        "Input should be a valid integer, unable to parse string as an integer"
                            .into(),
                    );
                    None
                }
            }
        };
        let offset = int_param("offset");
        let limit = int_param("limit");
        let status = last("status");
        if let Some(status) = status
            && !USER_STATUSES.contains(&status)
        {
            errors.insert(
                "status".into(),
                "Input should be 'active', 'disabled', 'limited', 'expired' or 'on_hold'".into(),
            );
        }
        if !errors.is_empty() {
            return Reply::invalid(errors);
        }
        let sort = match last("sort").map(parse_sort).transpose() {
            Ok(sort) => sort,
            Err(option) => {
                return Reply::detail(400, &format!("\"{option}\" is not a valid sort option"));
            }
        };
        // `User.username.in_(…)` compares with the column's NOCASE collation.
        let usernames: HashSet<String> = all("username").into_iter().map(lower).collect();
        // The owner filter is honoured for sudo callers only; a regular admin sees its own users.
        let admins = if caller.sudo {
            all("admin")
        } else {
            vec![caller.username.as_str()]
        };
        let search = last("search")
            .filter(|s| !s.is_empty())
            .map(|s| format!("%{s}%"));

        self.refresh_all(now);
        let mut matched: Vec<&FakeUser> = self
            .order
            .values()
            .filter_map(|key| self.users.get(key))
            .map(|entry| &entry.user)
            .filter(|u| usernames.is_empty() || usernames.contains(&lower(&u.username)))
            .filter(|u| status.is_none_or(|s| u.status == s))
            .filter(|u| {
                admins.is_empty() || u.admin.as_deref().is_some_and(|a| admins.contains(&a))
            })
            .filter(|u| {
                search.as_deref().is_none_or(|pattern| {
                    sql_ilike(&u.username, pattern)
                        || u.note.as_deref().is_some_and(|n| sql_ilike(n, pattern))
                })
            })
            .collect();
        let total = matched.len();
        if let Some(keys) = &sort {
            // Stable: ties keep creation order.
            matched.sort_by(|a, b| compare_users(a, b, keys));
        }
        // Like crud.get_users: `if offset:` / `if limit:`, so 0 means "not given"; SQLite treats a
        // negative OFFSET as 0 and a negative LIMIT as no limit.
        let start = usize::try_from(offset.unwrap_or(0).max(0))
            .unwrap_or(usize::MAX)
            .min(total);
        let end = match limit.filter(|l| *l > 0) {
            Some(l) => start
                .saturating_add(usize::try_from(l).unwrap_or(usize::MAX))
                .min(total),
            None => total,
        };
        #[derive(Serialize)]
        struct UsersPage<'a> {
            users: Vec<UserView<'a>>,
            total: usize,
        }
        let page = UsersPage {
            users: matched[start..end]
                .iter()
                .map(|u| self.user_view(u, now))
                .collect(),
            total,
        };
        Reply::raw_json(200, serde_json::to_vec(&page).unwrap_or_default())
    }

    fn system_stats(&mut self, now: NaiveDateTime, caller: &Caller) -> Reply {
        self.refresh_all(now);
        let mut counts: HashMap<&str, usize> = HashMap::new();
        let mut online = 0;
        let mut total = 0;
        let online_since = now - TimeDelta::hours(24);
        // The counts of a regular admin cover its own users.
        for entry in self.users.values().filter(|e| caller.may_touch(&e.user)) {
            total += 1;
            *counts.entry(entry.user.status.as_str()).or_default() += 1;
            if entry.user.online_at.is_some_and(|at| at >= online_since) {
                online += 1;
            }
        }
        let count = |status: &str| counts.get(status).copied().unwrap_or(0);
        let sys = &self.system;
        Reply::ok(json!({
            "version": sys.version,
            "mem_total": sys.mem_total,
            "mem_used": sys.mem_used,
            "cpu_cores": sys.cpu_cores,
            "cpu_usage": sys.cpu_usage,
            "total_user": total,
            "online_users": online,
            "users_active": count("active"),
            "users_on_hold": count("on_hold"),
            "users_disabled": count("disabled"),
            "users_expired": count("expired"),
            "users_limited": count("limited"),
            "incoming_bandwidth": sys.incoming_bandwidth,
            "outgoing_bandwidth": sys.outgoing_bandwidth,
            "incoming_bandwidth_speed": sys.incoming_bandwidth_speed,
            "outgoing_bandwidth_speed": sys.outgoing_bandwidth_speed,
        }))
    }

    fn inbounds_json(&self) -> Reply {
        let mut out = Map::new();
        for (protocol, tags) in self.config.iter().filter(|(_, tags)| !tags.is_empty()) {
            let list = tags
                .iter()
                .map(|tag| {
                    let meta = &self.inbound_meta[tag];
                    json!({"tag": tag, "protocol": protocol, "network": meta.network, "tls": meta.tls, "port": meta.port})
                })
                .collect();
            out.insert(protocol.clone(), Value::Array(list));
        }
        Reply::ok(Value::Object(out))
    }

    fn subscription(&mut self, token: &str, incoming: &Incoming, info: bool) -> Reply {
        let Some(key) = self.sub_owner(token) else {
            return Reply::detail(404, "Not Found");
        };
        let now = self.now();
        let Some(entry) = self.users.get_mut(&key) else {
            return Reply::detail(404, "Not Found");
        };
        refresh_status(&mut entry.user, now);
        if info {
            let mut body = self.user_json(&self.users[&key].user, now);
            if let Some(fields) = body.as_object_mut() {
                for hidden in [
                    "admin",
                    "excluded_inbounds",
                    "note",
                    "inbounds",
                    "auto_delete_in_days",
                ] {
                    fields.remove(hidden);
                }
            }
            return Reply::ok(body);
        }
        entry.user.sub_updated_at = Some(now);
        entry.user.sub_last_user_agent = Some(incoming.user_agent.clone());
        let user = &self.users[&key].user;
        let links = self.user_links(user);
        let userinfo = format!(
            "upload=0; download={}; total={}; expire={}",
            user.used_traffic,
            user.data_limit.unwrap_or(0),
            user.expire.unwrap_or(0)
        );
        Reply::text(
            200,
            "text/plain; charset=utf-8",
            b64(links.join("\n").as_bytes(), STANDARD, true),
        )
        .header("subscription-userinfo", userinfo)
        .header("profile-update-interval", "12")
    }

    /// base64url("<username>,<unix nanos>") + a 10-char signature, like the panel's
    /// `create_subscription_token` but with sub-second time so that every response differs.
    fn sub_token(&self, username: &str, at: NaiveDateTime) -> String {
        let nanos = at.and_utc().timestamp_nanos_opt().unwrap_or_default();
        let payload = b64(format!("{username},{nanos}").as_bytes(), URL_SAFE, false);
        let signature = self.sub_signature(&payload);
        format!("{payload}{signature}")
    }

    fn sub_signature(&self, payload: &str) -> String {
        let mut hasher = DefaultHasher::new();
        (payload, self.sub_secret).hash(&mut hasher);
        let mut signature = b64(&hasher.finish().to_be_bytes(), URL_SAFE, false);
        signature.truncate(SUB_SIGNATURE_LEN);
        signature
    }

    /// The key of the user a subscription token still serves: not minted before the user was
    /// (re)created nor before its last `revoke_sub`.
    fn sub_owner(&self, token: &str) -> Option<String> {
        let split = token.len().checked_sub(SUB_SIGNATURE_LEN)?;
        if split == 0 || !token.is_char_boundary(split) {
            return None;
        }
        let (payload, signature) = token.split_at(split);
        if signature != self.sub_signature(payload) {
            return None;
        }
        let text = String::from_utf8(b64url_decode(payload)?).ok()?;
        let (username, nanos) = text.rsplit_once(',')?;
        let minted = DateTime::from_timestamp_nanos(nanos.parse().ok()?).naive_utc();
        let key = lower(username);
        let user = &self.users.get(&key)?.user;
        let dead = user.created_at > minted || user.sub_revoked_at.is_some_and(|r| r > minted);
        (!dead).then_some(key)
    }

    fn user_links(&self, user: &FakeUser) -> Vec<String> {
        let mut links = Vec::new();
        for (ptype, settings) in &user.proxies {
            let enabled = user.inbounds.get(ptype);
            for tag in self.config.get(ptype).into_iter().flatten() {
                if enabled.is_some_and(|e| e.contains(tag)) {
                    let meta = &self.inbound_meta[tag];
                    links.push(share_link(ptype, settings, tag, meta, &user.username));
                }
            }
        }
        links
    }

    /// `UserResponse` (reference §3.5) with a subscription URL minted at `at`.
    fn user_view<'a>(&'a self, user: &'a FakeUser, at: NaiveDateTime) -> UserView<'a> {
        let mut inbounds = BTreeMap::new();
        let mut excluded = BTreeMap::new();
        for ptype in user.proxies.keys() {
            let enabled = user.inbounds.get(ptype);
            let (on, off): (Vec<&str>, Vec<&str>) = self
                .config
                .get(ptype)
                .into_iter()
                .flatten()
                .map(String::as_str)
                .partition(|tag| enabled.is_some_and(|e| e.iter().any(|t| t == tag)));
            inbounds.insert(ptype.as_str(), on);
            excluded.insert(ptype.as_str(), off);
        }
        UserView {
            username: &user.username,
            status: &user.status,
            proxies: &user.proxies,
            inbounds,
            excluded_inbounds: excluded,
            expire: user.expire,
            data_limit: user.data_limit,
            data_limit_reset_strategy: &user.data_limit_reset_strategy,
            used_traffic: user.used_traffic,
            lifetime_used_traffic: user.lifetime_used_traffic,
            created_at: format_datetime(user.created_at),
            note: user.note.as_deref(),
            sub_updated_at: user.sub_updated_at.map(format_datetime),
            sub_last_user_agent: user.sub_last_user_agent.as_deref(),
            online_at: user.online_at.map(format_datetime),
            on_hold_expire_duration: user.on_hold_expire_duration,
            on_hold_timeout: user.on_hold_timeout.map(format_datetime),
            auto_delete_in_days: user.auto_delete_in_days,
            next_plan: user.next_plan.as_ref(),
            links: self.user_links(user),
            subscription_url: format!("/sub/{}", self.sub_token(&user.username, at)),
            admin: user.admin.as_deref().map(|name| self.admin_view(name)),
        }
    }

    fn user_json(&self, user: &FakeUser, at: NaiveDateTime) -> Value {
        serde_json::to_value(self.user_view(user, at)).unwrap_or_default()
    }
}

/// `UserResponse`, serialized straight from the stored user (a page of 10k users stays cheap).
#[derive(Serialize)]
struct UserView<'a> {
    username: &'a str,
    status: &'a str,
    proxies: &'a Map<String, Value>,
    inbounds: BTreeMap<&'a str, Vec<&'a str>>,
    excluded_inbounds: BTreeMap<&'a str, Vec<&'a str>>,
    expire: Option<i64>,
    data_limit: Option<i64>,
    data_limit_reset_strategy: &'a str,
    used_traffic: i64,
    lifetime_used_traffic: i64,
    created_at: String,
    note: Option<&'a str>,
    sub_updated_at: Option<String>,
    sub_last_user_agent: Option<&'a str>,
    online_at: Option<String>,
    on_hold_expire_duration: Option<i64>,
    on_hold_timeout: Option<String>,
    auto_delete_in_days: Option<i64>,
    next_plan: Option<&'a Value>,
    links: Vec<String>,
    subscription_url: String,
    admin: Option<AdminView<'a>>,
}

#[derive(Serialize)]
struct AdminView<'a> {
    username: &'a str,
    is_sudo: bool,
    telegram_id: Option<i64>,
    discord_webhook: Option<&'a str>,
    users_usage: i64,
}

impl State {
    fn admin_view<'a>(&self, username: &'a str) -> AdminView<'a> {
        AdminView {
            username,
            is_sudo: self.admins.get(username).is_some_and(|a| a.sudo),
            telegram_id: None,
            discord_webhook: None,
            users_usage: 0,
        }
    }

    fn admin_json(&self, username: &str) -> Value {
        serde_json::to_value(self.admin_view(username)).unwrap_or_default()
    }
}

// ---------------------------------------------------------------------------------------------
// Status rules (app/jobs/review_users.py and crud.update_user)

/// What the panel's 10-second review job would have done by now: an active user over its cap is
/// `limited` (checked first), past its expiry `expired`; an on_hold user that connected since its
/// last edit, or whose `on_hold_timeout` passed, becomes active with `expire = now + duration`.
/// `next_plan` is not applied (the shop does not use it).
pub fn refresh_status(user: &mut FakeUser, now: NaiveDateTime) {
    match user.status.as_str() {
        "active" => {
            if user
                .data_limit
                .is_some_and(|l| l != 0 && user.used_traffic >= l)
            {
                user.status = "limited".to_owned();
            } else if user
                .expire
                .is_some_and(|e| e != 0 && !expire_in_future(e, now))
            {
                user.status = "expired".to_owned();
            }
        }
        "on_hold" => {
            let since = user.edit_at.unwrap_or(user.created_at);
            let connected = user.online_at.is_some_and(|at| at >= since);
            let timed_out = user.on_hold_timeout.is_some_and(|t| t <= now);
            if connected || timed_out {
                user.status = "active".to_owned();
                if let Some(duration) = user.on_hold_expire_duration {
                    user.expire = Some(now.and_utc().timestamp() + duration);
                    user.on_hold_expire_duration = None;
                    user.on_hold_timeout = None;
                }
            }
        }
        _ => {}
    }
}

/// `expire > datetime.utcnow().timestamp()`, compared at microsecond precision.
fn expire_in_future(expire: i64, now: NaiveDateTime) -> bool {
    i128::from(expire) * 1_000_000 > i128::from(now.and_utc().timestamp_micros())
}

fn recompute_after_data_limit(user: &mut FakeUser) {
    if user.status == "expired" || user.status == "disabled" {
        return;
    }
    if user.data_limit.is_none_or(|l| user.used_traffic < l) {
        if user.status != "on_hold" {
            user.status = "active".to_owned();
        }
    } else {
        user.status = "limited".to_owned();
    }
}

fn recompute_after_expire(user: &mut FakeUser, now: NaiveDateTime) {
    if user.status == "active" || user.status == "expired" {
        let future = user.expire.is_none_or(|e| expire_in_future(e, now));
        user.status = if future { "active" } else { "expired" }.to_owned();
    }
}

/// crud.update_user, field by field and in its order.
fn apply_modify(
    user: &mut FakeUser,
    modify: UserBody,
    config: &BTreeMap<String, Vec<String>>,
    now: NaiveDateTime,
) {
    let config_tags = |ptype: &str| config.get(ptype).cloned().unwrap_or_default();
    if let Some(proxies) = modify.proxies.filter(|p| !p.is_empty()) {
        // Kept types keep their exclusions; new ones start without any (every inbound enabled).
        for ptype in proxies.keys() {
            if !user.proxies.contains_key(ptype) {
                user.inbounds.insert(ptype.clone(), config_tags(ptype));
            }
        }
        user.inbounds.retain(|ptype, _| proxies.contains_key(ptype));
        user.proxies = proxies;
    }
    if let Some(listed) = modify.inbounds.filter(|i| !i.is_empty()) {
        // UserModify.excluded_inbounds: a listed protocol gets exactly its listed tags (an empty
        // list excludes them all); unlisted protocols are untouched.
        for (ptype, tags) in listed {
            if user.proxies.contains_key(&ptype) {
                let enabled = config_tags(&ptype)
                    .into_iter()
                    .filter(|t| tags.contains(t))
                    .collect();
                user.inbounds.insert(ptype, enabled);
            }
        }
    }
    if let Some(status) = modify.status {
        user.status = status;
    }
    if let Some(limit) = modify.data_limit {
        user.data_limit = Some(limit).filter(|l| *l != 0);
        recompute_after_data_limit(user);
    }
    if let Some(expire) = modify.expire {
        user.expire = Some(expire).filter(|e| *e != 0);
        recompute_after_expire(user, now);
    }
    if let Some(note) = modify.note {
        user.note = Some(note).filter(|n| !n.is_empty());
    }
    if let Some(strategy) = modify.data_limit_reset_strategy {
        user.data_limit_reset_strategy = strategy;
    }
    if let Some(timeout) = modify.on_hold_timeout {
        user.on_hold_timeout = Some(timeout);
    }
    if let Some(duration) = modify.on_hold_expire_duration {
        user.on_hold_expire_duration = Some(duration);
    }
    if let Some(days) = modify.auto_delete_in_days {
        user.auto_delete_in_days = Some(days);
    }
    // 0.8.4 quirk: a PUT without next_plan deletes the user's next plan.
    user.next_plan = modify.next_plan;
    user.edit_at = Some(now);
}

// ---------------------------------------------------------------------------------------------
// Request validation (pydantic v2 as the panel uses it; 422 bodies keyed by the last loc element)

fn parse_json_body(incoming: &Incoming) -> Result<JsonBody, Reply> {
    if incoming.body.is_empty() {
        return Ok(JsonBody::Absent);
    }
    let content_type = incoming.content_type.to_ascii_lowercase();
    let essence = content_type.split(';').next().unwrap_or_default().trim();
    let subtype = essence.split_once('/').map_or("", |(_, s)| s);
    if !content_type.is_empty() && subtype != "json" && !subtype.ends_with("+json") {
        return Ok(JsonBody::NotJson);
    }
    serde_json::from_slice(&incoming.body)
        .map(JsonBody::Json)
        .map_err(|e| {
            let text = String::from_utf8_lossy(&incoming.body);
            let before: usize = text
                .split('\n')
                .take(e.line().saturating_sub(1))
                .map(|line| line.chars().count() + 1)
                .sum();
            let position = before + e.column().saturating_sub(1);
            Reply::invalid_field(&position.to_string(), "JSON decode error")
        })
}

fn parse_user_body(body: &JsonBody, mode: Mode, st: &State) -> Result<UserBody, Reply> {
    let object = match body {
        JsonBody::Json(Value::Object(object)) => object,
        JsonBody::Absent => return Err(Reply::invalid_field("body", "Field required")),
        _ => {
            return Err(Reply::invalid_field(
                "body",
                "Input should be a valid dictionary or object to extract fields from",
            ));
        }
    };
    let mut errors = Map::new();
    let mut error = |field: &str, message: String| {
        errors.insert(field.to_owned(), Value::String(message));
    };
    let given = |key: &str| object.get(key).filter(|v| !v.is_null());
    let mut out = UserBody::default();

    // Fields in the models' declaration order: validators see only the fields before them.
    match (mode, object.get("proxies")) {
        (_, None) | (Mode::Modify, Some(Value::Null)) => {}
        (Mode::Create, Some(v)) if is_falsy(v) => {
            error(
                "proxies",
                "Value error, Each user needs at least one proxy".into(),
            );
        }
        (_, Some(v)) => match normalize_proxies(v) {
            Ok(proxies) => out.proxies = Some(proxies).filter(|p| !p.is_empty()),
            Err(message) => error("proxies", message),
        },
    }
    if let Some(v) = given("expire") {
        match lax_int(v) {
            Ok(n) => out.expire = Some(n),
            Err(message) => error("expire", message.into()),
        }
    }
    if let Some(v) = given("data_limit") {
        match data_limit_value(v) {
            Ok(n) => out.data_limit = Some(n),
            Err(message) => error("data_limit", message),
        }
    }
    if let Some(v) = given("data_limit_reset_strategy") {
        match v.as_str().filter(|s| RESET_STRATEGIES.contains(s)) {
            Some(s) => out.data_limit_reset_strategy = Some(s.to_owned()),
            None => error(
                "data_limit_reset_strategy",
                "Input should be 'no_reset', 'day', 'week', 'month' or 'year'".into(),
            ),
        }
    }
    match mode {
        Mode::Create => match object.get("inbounds") {
            None => {}
            Some(Value::Object(listed)) => {
                let mut inbounds = BTreeMap::new();
                'protocols: for ptype in out.proxies.iter().flat_map(|p| p.keys()) {
                    let tags = match listed.get(ptype).map(tag_list).transpose() {
                        Ok(tags) => tags.unwrap_or_default(),
                        Err(message) => {
                            error("inbounds", message.into());
                            break;
                        }
                    };
                    if tags.is_empty() {
                        inbounds.insert(ptype.clone(), st.config_tags(ptype));
                        continue;
                    }
                    for tag in &tags {
                        if !st.tag_exists(tag) {
                            error(
                                "inbounds",
                                format!("Value error, Inbound {tag} doesn't exist"),
                            );
                            break 'protocols;
                        }
                    }
                    inbounds.insert(ptype.clone(), tags);
                }
                out.inbounds = Some(inbounds);
            }
            Some(_) => error("inbounds", "Input should be a valid dictionary".into()),
        },
        Mode::Modify => match given("inbounds") {
            None => {}
            Some(Value::Object(listed)) => {
                let mut inbounds = BTreeMap::new();
                for (ptype, tags) in listed {
                    let tags = match tag_list(tags) {
                        Ok(tags) => tags,
                        Err(message) => {
                            error("inbounds", message.into());
                            continue;
                        }
                    };
                    if let Some(tag) = tags.iter().find(|t| !st.tag_exists(t)) {
                        error(
                            "inbounds",
                            format!("Value error, Inbound {tag} doesn't exist"),
                        );
                    } else if !PROXY_TYPES.contains(&ptype.as_str()) {
                        error(
                            "[key]",
                            "Input should be 'vmess', 'vless', 'trojan' or 'shadowsocks'".into(),
                        );
                    } else {
                        inbounds.insert(ptype.clone(), tags);
                    }
                }
                out.inbounds = Some(inbounds).filter(|i| !i.is_empty());
            }
            Some(_) => error("inbounds", "Input should be a valid dictionary".into()),
        },
    }
    if let Some(v) = given("note") {
        match v.as_str() {
            Some(note) if note.chars().count() > 500 => error(
                "note",
                "Value error, User's note can be a maximum of 500 character".into(),
            ),
            Some(note) => out.note = Some(note.to_owned()),
            None => error("note", "Input should be a valid string".into()),
        }
    }
    if let Some(v) = given("on_hold_expire_duration") {
        match lax_int(v) {
            Ok(n) => out.on_hold_expire_duration = Some(n),
            Err(message) => error("on_hold_expire_duration", message.into()),
        }
    }
    if let Some(v) = given("on_hold_timeout") {
        match parse_datetime(v) {
            Some(at) => out.on_hold_timeout = Some(at),
            None => error("on_hold_timeout", "Input should be a valid datetime".into()),
        }
    }
    if let Some(v) = given("auto_delete_in_days") {
        match lax_int(v) {
            Ok(n) => out.auto_delete_in_days = Some(n),
            Err(message) => error("auto_delete_in_days", message.into()),
        }
    }
    if let Some(v) = given("next_plan") {
        match next_plan_value(v) {
            Ok(plan) => out.next_plan = Some(plan),
            Err((field, message)) => error(field, message),
        }
    }
    if mode == Mode::Create {
        match object.get("username") {
            None => error("username", "Field required".into()),
            Some(Value::String(name)) if username_valid(name) => {
                out.username = Some(name.clone());
            }
            Some(Value::String(_)) => error("username", USERNAME_MESSAGE.into()),
            Some(_) => error("username", "Input should be a valid string".into()),
        }
    }
    if let Some(v) = given("status") {
        let (allowed, message) = match mode {
            Mode::Create => (
                &["active", "on_hold"][..],
                "Input should be 'active' or 'on_hold'",
            ),
            Mode::Modify => (
                &["active", "disabled", "on_hold"][..],
                "Input should be 'active', 'disabled' or 'on_hold'",
            ),
        };
        match v.as_str() {
            Some("on_hold") if out.on_hold_expire_duration.is_none_or(|d| d <= 0) => error(
                "status",
                "Value error, User cannot be on hold without a valid on_hold_expire_duration."
                    .into(),
            ),
            Some("on_hold") if out.expire.is_some_and(|e| e != 0) => error(
                "status",
                "Value error, User cannot be on hold with specified expire.".into(),
            ),
            Some(s) if allowed.contains(&s) => out.status = Some(s.to_owned()),
            _ => error("status", message.into()),
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(Reply::invalid(errors))
    }
}

/// Python truthiness, for `if not v`.
fn is_falsy(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
    }
}

/// ProxySettings.from_dict for every type: complete settings, missing credentials generated.
fn normalize_proxies(v: &Value) -> Result<Map<String, Value>, String> {
    let Value::Object(given) = v else {
        return Err("Input should be a valid dictionary".into());
    };
    let mut proxies = Map::new();
    for (ptype, settings) in given {
        let empty = Map::new();
        let settings = match settings {
            Value::Object(s) => s,
            Value::Null => &empty,
            _ => return Err(format!("Value error, {ptype} settings should be an object")),
        };
        let text = |key: &str| -> Result<Option<String>, String> {
            match settings.get(key) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.clone())),
                Some(_) => Err(format!("Value error, {ptype}.{key} should be a string")),
            }
        };
        let flow = || -> Result<String, String> {
            let flow = text("flow")?.unwrap_or_default();
            if FLOWS.contains(&flow.as_str()) {
                Ok(flow)
            } else {
                Err(format!(
                    "Value error, {ptype}.flow should be '' or 'xtls-rprx-vision'"
                ))
            }
        };
        let id = || -> Result<String, String> {
            match text("id")? {
                None => Ok(new_uuid()),
                Some(id) => uuid::Uuid::parse_str(&id)
                    .map(|u| u.hyphenated().to_string())
                    .map_err(|_| format!("Value error, {ptype}.id should be a valid UUID")),
            }
        };
        let password = || text("password").map(|p| p.unwrap_or_else(random_password));
        let normalized = match ptype.as_str() {
            "vmess" => json!({"id": id()?}),
            "vless" => json!({"id": id()?, "flow": flow()?}),
            "trojan" => json!({"password": password()?, "flow": flow()?}),
            "shadowsocks" => {
                let method = text("method")?.unwrap_or_else(|| "chacha20-ietf-poly1305".into());
                if !SHADOWSOCKS_METHODS.contains(&method.as_str()) {
                    return Err(format!(
                        "Value error, shadowsocks.method should be one of {SHADOWSOCKS_METHODS:?}"
                    ));
                }
                json!({"password": password()?, "method": method})
            }
            _ => return Err(format!("Value error, '{ptype}' is not a valid ProxyTypes")),
        };
        proxies.insert(ptype.clone(), normalized);
    }
    Ok(proxies)
}

fn tag_list(v: &Value) -> Result<Vec<String>, &'static str> {
    match v {
        Value::Null => Ok(Vec::new()),
        Value::Array(items) => items
            .iter()
            .map(|t| {
                t.as_str()
                    .map(str::to_owned)
                    .ok_or("Input should be a valid string")
            })
            .collect(),
        _ => Err("Input should be a valid list"),
    }
}

/// pydantic's lax `int`: integers, integral floats, bools and numeric strings.
fn lax_int(v: &Value) -> Result<i64, &'static str> {
    match v {
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                Ok(i)
            } else if let Some(f) = n.as_f64().filter(|f| f.is_finite() && n.is_f64()) {
                if f.fract() == 0.0 && f.abs() < 9.2e18 {
                    Ok(f as i64)
                } else {
                    Err("Input should be a valid integer, got a number with a fractional part")
                }
            } else {
                Err("Input should be a valid integer")
            }
        }
        Value::Bool(b) => Ok(i64::from(*b)),
        Value::String(s) => s
            .trim()
            .parse()
            .map_err(|_| "Input should be a valid integer, unable to parse string as an integer"),
        _ => Err("Input should be a valid integer"),
    }
}

/// `data_limit`'s own before-validator: floats truncated, strings rejected; then `ge=0`.
fn data_limit_value(v: &Value) -> Result<i64, String> {
    let n = match v {
        Value::Number(n) if n.is_f64() => n.as_f64().map_or(0, |f| f.trunc() as i64),
        Value::Number(n) => n
            .as_i64()
            .ok_or_else(|| "Input should be a valid integer".to_owned())?,
        Value::Bool(b) => i64::from(*b),
        _ => {
            return Err(
                "Value error, data_limit must be an integer or a float, not a string".into(),
            );
        }
    };
    if n < 0 {
        return Err("Input should be greater than or equal to 0".into());
    }
    Ok(n)
}

fn next_plan_value(v: &Value) -> Result<Value, (&'static str, String)> {
    let Value::Object(plan) = v else {
        return Err((
            "next_plan",
            "Input should be a valid dictionary or instance of NextPlanModel".into(),
        ));
    };
    let int = |key: &'static str| match plan.get(key).filter(|v| !v.is_null()) {
        None => Ok(Value::Null),
        Some(v) => lax_int(v).map(Value::from).map_err(|m| (key, m.to_owned())),
    };
    let boolean = |key: &'static str, default: bool| match plan.get(key) {
        None => Ok(default),
        Some(Value::Bool(b)) => Ok(*b),
        Some(Value::Number(n)) if n.as_i64() == Some(0) => Ok(false),
        Some(Value::Number(n)) if n.as_i64() == Some(1) => Ok(true),
        Some(Value::String(s)) => match s.to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" | "t" | "y" => Ok(true),
            "false" | "0" | "no" | "off" | "f" | "n" => Ok(false),
            _ => Err((key, "Input should be a valid boolean".to_owned())),
        },
        Some(_) => Err((key, "Input should be a valid boolean".to_owned())),
    };
    Ok(json!({
        "data_limit": int("data_limit")?,
        "expire": int("expire")?,
        "add_remaining_traffic": boolean("add_remaining_traffic", false)?,
        "fire_on_either": boolean("fire_on_either", true)?,
    }))
}

/// `^(?=\w{3,32}\b)[a-zA-Z0-9-_@.]+(?:_[a-zA-Z0-9-_@.]+)*$` as Python's `re` runs it: the leading
/// run of word characters is 3–32 long, and `$` also matches before one trailing newline.
fn username_valid(name: &str) -> bool {
    let name = name.strip_suffix('\n').unwrap_or(name);
    let allowed = |b: u8| b.is_ascii_alphanumeric() || b"_-@.".contains(&b);
    if name.is_empty() || !name.bytes().all(allowed) {
        return false;
    }
    let word_run = name
        .bytes()
        .take_while(|b| b.is_ascii_alphanumeric() || *b == b'_')
        .count();
    (3..=32).contains(&word_run)
}

/// pydantic datetime input: ISO 8601 (naive = UTC, offsets converted) or unix seconds.
fn parse_datetime(v: &Value) -> Option<NaiveDateTime> {
    match v {
        Value::Number(n) => {
            let seconds = n.as_f64()?;
            DateTime::from_timestamp_micros((seconds * 1e6) as i64).map(|d| d.naive_utc())
        }
        Value::String(s) => {
            let s = s.trim();
            if let Ok(at) = DateTime::parse_from_rfc3339(s) {
                return Some(at.naive_utc());
            }
            for format in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"] {
                if let Ok(at) = NaiveDateTime::parse_from_str(s, format) {
                    return Some(at);
                }
            }
            NaiveDate::parse_from_str(s, "%Y-%m-%d")
                .ok()
                .and_then(|d| d.and_hms_opt(0, 0, 0))
        }
        _ => None,
    }
}

fn parse_sort(raw: &str) -> Result<Vec<(SortField, bool)>, String> {
    raw.trim_matches(',')
        .split(',')
        .map(|option| {
            let (descending, name) = match option.strip_prefix('-') {
                Some(name) => (true, name),
                None => (false, option),
            };
            let field = match name {
                "username" => SortField::Username,
                "used_traffic" => SortField::UsedTraffic,
                "data_limit" => SortField::DataLimit,
                "expire" => SortField::Expire,
                "created_at" => SortField::CreatedAt,
                _ => return Err(option.to_owned()),
            };
            Ok((field, descending))
        })
        .collect()
}

/// ORDER BY as SQLite does it: NOCASE usernames, NULLs first ascending.
fn compare_users(a: &FakeUser, b: &FakeUser, keys: &[(SortField, bool)]) -> Ordering {
    for &(field, descending) in keys {
        let order = match field {
            SortField::Username => a
                .username
                .bytes()
                .map(|c| c.to_ascii_lowercase())
                .cmp(b.username.bytes().map(|c| c.to_ascii_lowercase())),
            SortField::UsedTraffic => a.used_traffic.cmp(&b.used_traffic),
            SortField::DataLimit => a.data_limit.cmp(&b.data_limit),
            SortField::Expire => a.expire.cmp(&b.expire),
            SortField::CreatedAt => a.created_at.cmp(&b.created_at),
        };
        let order = if descending { order.reverse() } else { order };
        if order != Ordering::Equal {
            return order;
        }
    }
    Ordering::Equal
}

/// SQLite `lower(text) LIKE lower(pattern)` without ESCAPE: `%` any run, `_` any one character.
fn sql_ilike(text: &str, pattern: &str) -> bool {
    let text: Vec<char> = text.chars().map(|c| c.to_ascii_lowercase()).collect();
    let pattern: Vec<char> = pattern.chars().map(|c| c.to_ascii_lowercase()).collect();
    let (mut t, mut p) = (0, 0);
    let mut backtrack: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() && (pattern[p] == '_' || pattern[p] == text[t]) {
            t += 1;
            p += 1;
        } else if p < pattern.len() && pattern[p] == '%' {
            backtrack = Some((p, t));
            p += 1;
        } else if let Some((star, matched)) = backtrack {
            p = star + 1;
            t = matched + 1;
            backtrack = Some((star, matched + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|c| *c == '%')
}

// ---------------------------------------------------------------------------------------------
// Small helpers

/// SQLite NOCASE folds ASCII only.
fn lower(username: &str) -> String {
    username.to_ascii_lowercase()
}

fn to_micros(at: NaiveDateTime) -> NaiveDateTime {
    at.with_nanosecond(at.nanosecond() / 1000 * 1000)
        .unwrap_or(at)
}

/// pydantic v2: naive ISO 8601, microseconds only when non-zero.
pub fn format_datetime(at: NaiveDateTime) -> String {
    let (date, micros) = (at.date(), at.nanosecond() / 1000);
    let seconds = format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
        date.year(),
        date.month(),
        date.day(),
        at.hour(),
        at.minute(),
        at.second()
    );
    if micros == 0 {
        seconds
    } else {
        format!("{seconds}.{micros:06}")
    }
}

fn new_uuid() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// `secrets.token_urlsafe(16)`-like.
fn random_password() -> String {
    b64(&rand::random::<[u8; 16]>(), URL_SAFE, false)
}

fn is_form(content_type: &str) -> bool {
    content_type
        .to_ascii_lowercase()
        .starts_with("application/x-www-form-urlencoded")
}

/// `application/x-www-form-urlencoded` pairs (query strings and login forms), in order.
fn parse_pairs(text: &str) -> Vec<(String, String)> {
    web::Query::<Vec<(String, String)>>::from_query(text)
        .map(web::Query::into_inner)
        .unwrap_or_default()
}

fn inbound_meta(tag: &str, port: u16) -> InboundMeta {
    let words: Vec<String> = tag
        .split(|c: char| !c.is_ascii_alphanumeric())
        .map(str::to_ascii_uppercase)
        .collect();
    let has = |word: &str| words.iter().any(|w| w == word);
    let tls = if has("REALITY") {
        "reality"
    } else if has("TLS") {
        "tls"
    } else {
        "none"
    };
    let network = [
        ("WS", "ws"),
        ("GRPC", "grpc"),
        ("H2", "h2"),
        ("HTTPUPGRADE", "httpupgrade"),
        ("SPLITHTTP", "splithttp"),
        ("XHTTP", "xhttp"),
        ("KCP", "kcp"),
        ("QUIC", "quic"),
    ]
    .iter()
    .find(|(word, _)| has(word))
    .map_or("tcp", |(_, network)| network);
    InboundMeta { network, tls, port }
}

fn share_link(
    ptype: &str,
    settings: &Value,
    tag: &str,
    meta: &InboundMeta,
    username: &str,
) -> String {
    let field = |key: &str| settings.get(key).and_then(Value::as_str).unwrap_or("");
    let remark = format!("{tag} ({username})");
    let (port, network, tls) = (meta.port, meta.network, meta.tls);
    match ptype {
        "vless" => format!(
            "vless://{}@{LINK_HOST}:{port}?type={network}&security={tls}&flow={}#{}",
            field("id"),
            percent_encode(field("flow")),
            percent_encode(&remark)
        ),
        "trojan" => format!(
            "trojan://{}@{LINK_HOST}:{port}?type={network}&security={tls}#{}",
            percent_encode(field("password")),
            percent_encode(&remark)
        ),
        "shadowsocks" => format!(
            "ss://{}@{LINK_HOST}:{port}#{}",
            b64(
                format!("{}:{}", field("method"), field("password")).as_bytes(),
                STANDARD,
                false
            ),
            percent_encode(&remark)
        ),
        _ => {
            let config = json!({
                "v": "2", "ps": remark, "add": LINK_HOST, "port": port, "id": field("id"),
                "aid": "0", "scy": "auto", "net": network, "type": "none", "tls": tls,
            });
            format!(
                "{ptype}://{}",
                b64(config.to_string().as_bytes(), STANDARD, true)
            )
        }
    }
}

const STANDARD: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const URL_SAFE: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

fn b64(data: &[u8], alphabet: &[u8; 64], pad: bool) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let bytes = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = u32::from(bytes[0]) << 16 | u32::from(bytes[1]) << 8 | u32::from(bytes[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(alphabet[(n >> (18 - 6 * i) & 63) as usize]));
            } else if pad {
                out.push('=');
            }
        }
    }
    out
}

fn b64url_decode(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let (mut bits, mut count) = (0u32, 0u32);
    for c in text.bytes().take_while(|c| *c != b'=') {
        let value = URL_SAFE.iter().position(|a| *a == c)?;
        bits = (bits << 6) | value as u32;
        count += 6;
        if count >= 8 {
            count -= 8;
            out.push((bits >> count) as u8);
            bits &= (1 << count) - 1;
        }
    }
    Some(out)
}

fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            const HEX: &[u8; 16] = b"0123456789ABCDEF";
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 15)]));
        }
    }
    out
}
