//! A fake Remnawave panel for tests: the parts of the REST API of
//! `shared/reference/remnawave-api.md` a shop uses, in the shape of 2.8 (users by `uuid`) or 3.x
//! (by numeric `id`, 204 on delete, no by-telegram-id lookups) as [`FakeRemnawave::start`] is told,
//! over in-memory users, with the panel's traps: the connection dropped without the
//! `X-Forwarded-*` headers, API tokens only (401 without one, 403 for an admin JWT), 400 on
//! enable/disable of a user already in that state, a PATCH refusing a past expiry, users created
//! without internal squads (recorded: they could not connect). Faults on demand and a request
//! recorder; it runs on the shared [`FakeServer`] plumbing.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Value, json};

use super::server::{FakeServer, drop_connection, percent_decode};

/// The last 2.x and a 3.x release (the reference's tags).
pub const V2: &str = "2.8.1";
pub const V3: &str = "3.3.2";
/// An API token of the panel (`Authorization: Bearer …`).
pub const API_TOKEN: &str = "eyJhbGciOiJIUzI1NiJ9.eyJyb2xlIjoiQVBJIn0.rw-api-token";
/// What `POST /api/auth/login` hands an admin: refused on the API without the browser header.
pub const ADMIN_JWT: &str = "eyJhbGciOiJIUzI1NiJ9.eyJyb2xlIjoiQURNSU4ifQ.rw-admin-jwt";
pub const ADMIN_USERNAME: &str = "rw_admin";
pub const ADMIN_PASSWORD: &str = "rw-password";
/// The internal squads of `GET /api/internal-squads`: uuid, name.
pub const SQUADS: [(&str, &str); 2] = [
    ("3c1e8a4b-2f6d-4e8a-9b1c-7d2e5f6a8b9c", "Default-Squad"),
    ("7a9d2c4e-5b1f-4c3a-8e2d-1f6b9a3c5d7e", "Extra-Squad"),
];
/// `SUB_PUBLIC_DOMAIN`: subscription URLs are `https://{this}/{shortUuid}`.
pub const SUB_PUBLIC_DOMAIN: &str = "sub.example.com/api/sub";

/// A user as the panel stores it.
#[derive(Clone, Debug, PartialEq)]
pub struct RwUser {
    pub id: i64,
    /// Present in 2.x only (3.x dropped the column); the fake keeps one either way.
    pub uuid: String,
    pub short_uuid: String,
    pub username: String,
    /// `ACTIVE` or `DISABLED` as stored; `LIMITED`/`EXPIRED` are computed when read (the
    /// panel's watchdogs, run at once).
    pub status: String,
    pub expire_at: DateTime<Utc>,
    pub traffic_limit_bytes: i64,
    pub traffic_limit_strategy: String,
    pub used_traffic_bytes: i64,
    pub lifetime_used_traffic_bytes: i64,
    pub telegram_id: Option<i64>,
    pub description: Option<String>,
    pub hwid_device_limit: Option<i64>,
    pub squads: Vec<String>,
    pub online_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

impl RwUser {
    /// The status a read shows.
    pub fn effective(&self, now: DateTime<Utc>) -> String {
        if self.status == "ACTIVE" {
            if self.expire_at <= now {
                return "EXPIRED".into();
            }
            if self.traffic_limit_bytes > 0 && self.used_traffic_bytes >= self.traffic_limit_bytes {
                return "LIMITED".into();
            }
        }
        self.status.clone()
    }

    fn response(&self, v3: bool, now: DateTime<Utc>) -> Value {
        let mut user = json!({
            "id": self.id,
            "shortUuid": self.short_uuid,
            "username": self.username,
            "status": self.effective(now),
            "trafficLimitBytes": self.traffic_limit_bytes,
            "trafficLimitStrategy": self.traffic_limit_strategy,
            "expireAt": iso(self.expire_at),
            "telegramId": self.telegram_id,
            "email": null,
            "description": self.description,
            "tag": null,
            "hwidDeviceLimit": self.hwid_device_limit,
            "externalSquadUuid": null,
            "trojanPassword": "trojan-password",
            "vlessUuid": "0f6a1b8e-3c9d-4d7e-9a51-6b2c8e4f1a37",
            "ssPassword": "ss-password",
            "lastTriggeredThreshold": 0,
            "subRevokedAt": null,
            "lastTrafficResetAt": null,
            "createdAt": iso(self.created_at),
            "updatedAt": iso(now),
            "subscriptionUrl": format!("https://{SUB_PUBLIC_DOMAIN}/{}", self.short_uuid),
            "activeInternalSquads": self.squads.iter().map(|uuid| json!({
                "uuid": uuid,
                "name": SQUADS.iter().find(|(u, _)| u == uuid).map_or("?", |(_, n)| n),
            })).collect::<Vec<_>>(),
            "userTraffic": {
                "usedTrafficBytes": self.used_traffic_bytes,
                "lifetimeUsedTrafficBytes": self.lifetime_used_traffic_bytes,
                "onlineAt": self.online_at.map(iso),
                "firstConnectedAt": null,
                "lastConnectedNodeUuid": null,
            },
        });
        if !v3 {
            user["uuid"] = json!(self.uuid);
        }
        user
    }
}

fn iso(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn new_uuid() -> String {
    uuid::Uuid::new_v4().to_string()
}

fn new_short_uuid() -> String {
    format!("{:016x}", rand::random::<u64>())
}

/// One request as it reached the panel.
#[derive(Clone, Debug)]
pub struct Recorded {
    pub method: String,
    /// Route pattern, e.g. `/api/users/{uuid}/actions/enable` (2.8) or `/api/users/{id}` (3.x).
    pub route: String,
    pub query: String,
    pub body: Option<Value>,
    /// 0: the connection was dropped without an answer.
    pub status: u16,
}

#[derive(Default)]
struct State {
    version: String,
    users: BTreeMap<i64, RwUser>,
    next_id: i64,
    /// A header a guarding proxy wants (`X-Api-Key` of caddy-with-auth): name, value.
    gate: Option<(String, String)>,
    fail_next: (usize, u16),
    time_out_next: (usize, Duration),
    /// Added to every answer (as a distant panel would take).
    latency: Duration,
    requests: Vec<Recorded>,
}

impl State {
    fn v3(&self) -> bool {
        self.version.starts_with('3')
    }

    fn by_name(&self, username: &str) -> Option<&RwUser> {
        self.users.values().find(|u| u.username == username)
    }

    /// The user a route's key names: a uuid in 2.x, a numeric id in 3.x; `Err` as the panel's
    /// validation answers a key of the other shape.
    fn id_of_key(&self, key: &str) -> Result<Option<i64>, Reply> {
        if self.v3() {
            let id: i64 = key
                .parse()
                .map_err(|_| validation(&["id"], "Expected number, received nan"))?;
            Ok(self.users.contains_key(&id).then_some(id))
        } else {
            if uuid::Uuid::parse_str(key).is_err() {
                return Err(validation(&["uuid"], "Invalid uuid"));
            }
            Ok(self.users.values().find(|u| u.uuid == key).map(|u| u.id))
        }
    }
}

/// The running fake; stops (bounded) when dropped.
pub struct FakeRemnawave {
    state: Arc<Mutex<State>>,
    server: FakeServer,
}

impl FakeRemnawave {
    /// A panel that says it is `version` (`V2`, `V3`, or another to be refused).
    pub fn start(version: &str) -> FakeRemnawave {
        let state = Arc::new(Mutex::new(State {
            version: version.to_owned(),
            next_id: 1,
            ..State::default()
        }));
        let data = web::Data::from(Arc::clone(&state));
        let server = FakeServer::start_droppable("fake-remnawave", move |app| {
            app.app_data(data.clone()).default_service(web::to(serve));
        });
        FakeRemnawave { state, server }
    }

    pub fn url(&self) -> String {
        self.server.url()
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// From now on every request without this header is refused (403), as by a guarding proxy.
    pub fn set_gate(&self, name: &str, value: &str) {
        self.state().gate = Some((name.to_ascii_lowercase(), value.to_owned()));
    }

    /// A user named `username` in the first squad, active for 30 days, no limit (not stored).
    pub fn new_user(&self, username: &str) -> RwUser {
        let now = Utc::now();
        RwUser {
            id: 0,
            uuid: new_uuid(),
            short_uuid: new_short_uuid(),
            username: username.to_owned(),
            status: "ACTIVE".into(),
            expire_at: now + chrono::TimeDelta::days(30),
            traffic_limit_bytes: 0,
            traffic_limit_strategy: "NO_RESET".into(),
            used_traffic_bytes: 0,
            lifetime_used_traffic_bytes: 0,
            telegram_id: None,
            description: None,
            hwid_device_limit: None,
            squads: vec![SQUADS[0].0.to_owned()],
            online_at: None,
            created_at: now,
        }
    }

    /// Stores `user` with the next id (its `id` is ignored); returns the id.
    pub fn insert_user(&self, mut user: RwUser) -> i64 {
        let mut st = self.state();
        user.id = st.next_id;
        st.next_id += 1;
        let id = user.id;
        st.users.insert(id, user);
        id
    }

    /// The user named exactly `username`, its status as a read shows it.
    pub fn user(&self, username: &str) -> Option<RwUser> {
        let st = self.state();
        let mut user = st.by_name(username)?.clone();
        user.status = user.effective(Utc::now());
        Some(user)
    }

    /// Edits a stored user by hand (as the panel's own jobs or an admin would).
    pub fn update_user(&self, username: &str, f: impl FnOnce(&mut RwUser)) {
        let mut st = self.state();
        let user = st
            .users
            .values_mut()
            .find(|u| u.username == username)
            .unwrap_or_else(|| panic!("fake Remnawave has no user {username:?}"));
        f(user);
    }

    /// Deletes a user behind the shop's back.
    pub fn remove_user(&self, username: &str) -> bool {
        let mut st = self.state();
        let id = st.by_name(username).map(|u| u.id);
        id.and_then(|id| st.users.remove(&id)).is_some()
    }

    /// Users in no internal squad: on the real panel they have no inbounds and cannot connect.
    pub fn users_without_squads(&self) -> Vec<String> {
        self.state()
            .users
            .values()
            .filter(|u| u.squads.is_empty())
            .map(|u| u.username.clone())
            .collect()
    }

    /// Whether a subscription URL would still be served (`/api/sub/{shortUuid}`).
    pub fn subscription_valid(&self, subscription_url: &str) -> bool {
        let Some(short) = subscription_url.strip_prefix(&format!("https://{SUB_PUBLIC_DOMAIN}/"))
        else {
            return false;
        };
        self.state().users.values().any(|u| u.short_uuid == short)
    }

    /// The next `n` requests answer `status` without applying anything.
    pub fn fail_next(&self, n: usize, status: u16) {
        self.state().fail_next = (n, status);
    }

    /// The next `n` requests are applied, but answered only after `delay`.
    pub fn time_out_next(&self, n: usize, delay: Duration) {
        self.state().time_out_next = (n, delay);
    }

    /// Every request from now on is answered after `latency`.
    pub fn set_latency(&self, latency: Duration) {
        self.state().latency = latency;
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.state().requests.clone()
    }

    pub fn clear_requests(&self) {
        self.state().requests.clear();
    }

    /// Requests with this method and route pattern, e.g. `("POST", "/api/users")`.
    pub fn count(&self, method: &str, route: &str) -> usize {
        self.state()
            .requests
            .iter()
            .filter(|r| r.method == method && r.route == route)
            .count()
    }
}

struct Reply {
    status: u16,
    body: Option<Value>,
}

fn reply(status: u16, body: Value) -> Reply {
    Reply {
        status,
        body: Some(body),
    }
}

fn ok(response: Value) -> Reply {
    reply(200, json!({ "response": response }))
}

/// A business error (`http-exception.filter.ts`).
fn error(status: u16, path: &str, message: &str, code: &str) -> Reply {
    reply(
        status,
        json!({"timestamp": iso(Utc::now()), "path": path, "message": message, "errorCode": code}),
    )
}

/// zod's validation error.
fn validation(path: &[&str], message: &str) -> Reply {
    reply(
        400,
        json!({"statusCode": 400, "message": "Validation failed",
            "errors": [{"code": "custom", "path": path, "message": message}]}),
    )
}

fn nest(status: u16, message: &str, error: &str) -> Reply {
    reply(
        status,
        json!({"statusCode": status, "message": message, "error": error}),
    )
}

async fn serve(req: HttpRequest, body: web::Bytes, state: web::Data<Mutex<State>>) -> HttpResponse {
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let method = req.method().as_str().to_owned();
    let path = req.path().to_owned();
    let query = req.query_string().to_owned();
    let json_body: Option<Value> = serde_json::from_slice(&body).ok();
    let (reply, delay) = {
        let mut st = state.lock().unwrap_or_else(|p| p.into_inner());
        let (route, key) = route_of(&path, st.v3());
        let record = |st: &mut State, status: u16| {
            st.requests.push(Recorded {
                method: method.clone(),
                route: route.clone(),
                query: query.clone(),
                body: json_body.clone(),
                status,
            })
        };
        // proxy-check.middleware.ts: the socket is destroyed, no answer at all.
        if header("x-forwarded-for").is_none()
            || header("x-forwarded-proto").as_deref() != Some("https")
        {
            record(&mut st, 0);
            drop(st);
            drop_connection(&req);
            return HttpResponse::BadRequest().finish();
        }
        let reply = if let Some((name, value)) = st.gate.clone()
            && header(&name).as_deref() != Some(value.as_str())
        {
            reply(403, json!({"message": "access denied by the proxy"}))
        } else if st.fail_next.0 > 0 {
            st.fail_next.0 -= 1;
            let status = st.fail_next.1;
            error(status, &path, "Internal server error", "A000")
        } else if route == "/api/auth/login" {
            login(json_body.as_ref())
        } else {
            match authorize(header("authorization"), header("x-remnawave-client-type")) {
                Err(refusal) => refusal,
                Ok(()) => handle(&mut st, &method, &route, key, &query, json_body.clone()),
            }
        };
        let delay = if st.time_out_next.0 > 0 {
            st.time_out_next.0 -= 1;
            st.time_out_next.1
        } else {
            st.latency
        };
        record(&mut st, reply.status);
        (reply, delay)
    };
    if !delay.is_zero() {
        actix_rt::time::sleep(delay).await;
    }
    let mut response = HttpResponse::build(
        actix_web::http::StatusCode::from_u16(reply.status).unwrap_or_default(),
    );
    match reply.body {
        Some(body) => response.json(body),
        None => response.finish(),
    }
}

/// The route pattern of a path and the user key in it.
fn route_of(path: &str, v3: bool) -> (String, Option<String>) {
    let parts: Vec<&str> = path.trim_end_matches('/').split('/').collect();
    let key_name = if v3 { "{id}" } else { "{uuid}" };
    match parts.as_slice() {
        [
            "",
            "api",
            "users",
            lookup @ ("by-username" | "by-telegram-id" | "by-id"),
            value,
        ] => (
            format!("/api/users/{lookup}/{{value}}"),
            Some(percent_decode(value)),
        ),
        ["", "api", "users", key, rest @ ..]
            if !["stream", "tags", "resolve", "bulk"].contains(key) =>
        {
            let suffix: String = rest.iter().map(|p| format!("/{p}")).collect();
            (
                format!("/api/users/{key_name}{suffix}"),
                Some(percent_decode(key)),
            )
        }
        _ => (path.to_owned(), None),
    }
}

fn login(body: Option<&Value>) -> Reply {
    let body = body.cloned().unwrap_or(Value::Null);
    if body["username"] == ADMIN_USERNAME && body["password"] == ADMIN_PASSWORD {
        ok(json!({ "accessToken": ADMIN_JWT }))
    } else {
        error(401, "/api/auth/login", "Invalid credentials", "A003")
    }
}

/// API tokens only: an admin JWT is refused unless it comes from the browser UI.
fn authorize(authorization: Option<String>, client_type: Option<String>) -> Result<(), Reply> {
    match authorization
        .as_deref()
        .and_then(|a| a.strip_prefix("Bearer "))
    {
        Some(API_TOKEN) => Ok(()),
        Some(ADMIN_JWT) if client_type.as_deref() == Some("browser") => Ok(()),
        Some(ADMIN_JWT) => Err(nest(
            403,
            "For API requests you must create own API-token in the admin dashboard.",
            "Forbidden",
        )),
        _ => Err(nest(401, "Unauthorized", "Unauthorized")),
    }
}

fn cannot(method: &str, route: &str) -> Reply {
    nest(404, &format!("Cannot {method} {route}"), "Not Found")
}

fn handle(
    st: &mut State,
    method: &str,
    route: &str,
    key: Option<String>,
    query: &str,
    body: Option<Value>,
) -> Reply {
    let now = Utc::now();
    let v3 = st.v3();
    let body = body.unwrap_or(Value::Null);
    match (method, route) {
        ("GET", "/api/system/metadata") => metadata(st),
        ("GET", "/api/system/stats") => stats(st, now),
        ("GET", "/api/internal-squads") => ok(json!({
            "total": SQUADS.len(),
            "internalSquads": SQUADS.iter().map(|(uuid, name)| json!({"uuid": uuid, "name": name}))
                .collect::<Vec<_>>(),
        })),
        ("POST", "/api/users") => create(st, &body, now),
        ("PATCH", "/api/users") => patch(st, &body, now),
        ("GET", "/api/users") => list(st, query, now),
        ("GET", "/api/users/by-username/{value}") => {
            let name = key.unwrap_or_default();
            match st.by_name(&name) {
                Some(user) => ok(user.response(v3, now)),
                None => error(404, route, "User not found", "A063"),
            }
        }
        ("GET", "/api/users/by-telegram-id/{value}") if !v3 => {
            let id: Option<i64> = key.and_then(|k| k.parse().ok());
            ok(Value::Array(
                st.users
                    .values()
                    .filter(|u| u.telegram_id.is_some() && u.telegram_id == id)
                    .map(|u| u.response(false, now))
                    .collect(),
            ))
        }
        (_, r) if r.starts_with("/api/users/{") => {
            let key = key.unwrap_or_default();
            let id = match st.id_of_key(&key) {
                Ok(Some(id)) => id,
                Ok(None) => return error(404, r, "User not found", "A025"),
                Err(invalid) => return invalid,
            };
            by_key(st, method, r, id, now)
        }
        _ => cannot(method, route),
    }
}

/// `GET /api/system/metadata` exists from 2.5.
fn metadata(st: &State) -> Reply {
    let old = {
        let mut parts = st.version.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
        let (major, minor) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
        major < 2 || (major == 2 && minor < 5)
    };
    if old {
        return cannot("GET", "/api/system/metadata");
    }
    ok(json!({
        "version": st.version,
        "build": {"time": "2026-08-20T10:00:00.000Z", "number": "1"},
        "git": {"backend": {"commitSha": "347e6de", "branch": "main", "commitUrl": "https://github.com/remnawave/backend/commit/347e6de"},
                "frontend": {"commitSha": "0000000", "commitUrl": "https://github.com/remnawave/frontend"}},
    }))
}

fn stats(st: &State, now: DateTime<Utc>) -> Reply {
    let mut counts: BTreeMap<String, usize> = ["ACTIVE", "DISABLED", "LIMITED", "EXPIRED"]
        .iter()
        .map(|s| (s.to_string(), 0))
        .collect();
    for user in st.users.values() {
        *counts.entry(user.effective(now)).or_default() += 1;
    }
    ok(json!({
        "cpu": {"cores": 2},
        "memory": {"total": 2_084_569_088i64, "free": 1_172_107_264i64, "used": 912_461_824i64},
        "uptime": 3600, "timestamp": now.timestamp_millis(),
        "users": {"statusCounts": counts, "totalUsers": st.users.len()},
        "onlineStats": {"lastDay": 0, "lastWeek": 0, "neverOnline": st.users.len(), "onlineNow": 0},
        "nodes": {"totalOnline": 1, "totalBytesLifetime": "209715200000"},
    }))
}

/// `^[a-zA-Z0-9_-]+$`, 3–36 characters.
fn valid_username(name: &str) -> bool {
    (3..=36).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// A request datetime (`z.string().datetime({offset: true})`).
fn datetime(value: &Value) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(value.as_str()?)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

fn squads_of(value: &Value) -> Result<Vec<String>, Reply> {
    let Some(list) = value.as_array() else {
        return Err(validation(&["activeInternalSquads"], "Expected array"));
    };
    list.iter()
        .map(|s| {
            s.as_str()
                .filter(|s| uuid::Uuid::parse_str(s).is_ok())
                .map(str::to_owned)
                .ok_or_else(|| validation(&["activeInternalSquads"], "Invalid uuid"))
        })
        .collect()
}

const STRATEGIES: [&str; 5] = ["NO_RESET", "DAY", "WEEK", "MONTH", "MONTH_ROLLING"];

fn create(st: &mut State, body: &Value, now: DateTime<Utc>) -> Reply {
    let Some(username) = body["username"].as_str().filter(|n| valid_username(n)) else {
        return validation(
            &["username"],
            "Username can only contain letters, numbers, underscores and dashes",
        );
    };
    let Some(expire_at) = datetime(&body["expireAt"]) else {
        return validation(&["expireAt"], "Invalid datetime");
    };
    let status = body["status"].as_str().unwrap_or("ACTIVE");
    if !["ACTIVE", "DISABLED", "LIMITED", "EXPIRED"].contains(&status) {
        return validation(&["status"], "Invalid enum value");
    }
    let strategy = body["trafficLimitStrategy"].as_str().unwrap_or("NO_RESET");
    if !STRATEGIES.contains(&strategy) {
        return validation(&["trafficLimitStrategy"], "Invalid enum value");
    }
    let limit = match &body["trafficLimitBytes"] {
        Value::Null => 0,
        v => match v.as_i64().filter(|l| *l >= 0) {
            Some(l) => l,
            None => {
                return validation(
                    &["trafficLimitBytes"],
                    "Number must be greater than or equal to 0",
                );
            }
        },
    };
    // Omitted or []: the user is created in no squad (and cannot connect).
    let squads = match &body["activeInternalSquads"] {
        Value::Null => Vec::new(),
        v => match squads_of(v) {
            Ok(s) => s,
            Err(invalid) => return invalid,
        },
    };
    if body.get("uuid").is_some() && st.v3() {
        return validation(&["uuid"], "Unrecognized key(s) in object: 'uuid'");
    }
    if st.by_name(username).is_some() {
        return error(400, "/api/users", "User username already exists", "A019");
    }
    // An unknown squad uuid fails the insert (foreign key).
    if squads.iter().any(|s| !SQUADS.iter().any(|(u, _)| u == s)) {
        return error(500, "/api/users", "Failed to create user", "A018");
    }
    let id = st.next_id;
    st.next_id += 1;
    let user = RwUser {
        id,
        uuid: new_uuid(),
        short_uuid: new_short_uuid(),
        username: username.to_owned(),
        status: if status == "DISABLED" {
            "DISABLED"
        } else {
            "ACTIVE"
        }
        .into(),
        expire_at,
        traffic_limit_bytes: limit,
        traffic_limit_strategy: strategy.to_owned(),
        used_traffic_bytes: 0,
        lifetime_used_traffic_bytes: 0,
        telegram_id: body["telegramId"].as_i64(),
        description: body["description"].as_str().map(str::to_owned),
        hwid_device_limit: body["hwidDeviceLimit"].as_i64(),
        squads,
        online_at: None,
        created_at: now,
    };
    let response = user.response(st.v3(), now);
    st.users.insert(id, user);
    reply(201, json!({ "response": response }))
}

/// `PATCH /api/users`: 2.8 names the user by `uuid` or `username`, 3.x by `id` or `username`.
fn patch(st: &mut State, body: &Value, now: DateTime<Utc>) -> Reply {
    let v3 = st.v3();
    let id = if v3 {
        match (&body["id"], body["username"].as_str()) {
            (Value::Number(n), _) => n.as_i64().filter(|id| st.users.contains_key(id)),
            (Value::Null, Some(name)) => st.by_name(name).map(|u| u.id),
            _ => return validation(&["id"], "Either id or username is required"),
        }
    } else {
        match (body["uuid"].as_str(), body["username"].as_str()) {
            (Some(uuid), _) => st.users.values().find(|u| u.uuid == uuid).map(|u| u.id),
            (None, Some(name)) => st.by_name(name).map(|u| u.id),
            _ => return validation(&["uuid"], "Either uuid or username is required"),
        }
    };
    let Some(id) = id else {
        return error(404, "/api/users", "User not found", "A025");
    };
    let expire_at = match &body["expireAt"] {
        Value::Null => None,
        v => match datetime(v) {
            Some(t) if t <= now => {
                return error(
                    400,
                    "/api/users",
                    "Expiration date cannot be in the past",
                    "A039",
                );
            }
            Some(t) => Some(t),
            None => return validation(&["expireAt"], "Invalid datetime"),
        },
    };
    let limit = match &body["trafficLimitBytes"] {
        Value::Null => None,
        v => match v.as_i64().filter(|l| *l >= 0) {
            Some(l) => Some(l),
            None => {
                return validation(
                    &["trafficLimitBytes"],
                    "Number must be greater than or equal to 0",
                );
            }
        },
    };
    let squads = match &body["activeInternalSquads"] {
        Value::Null => None,
        v => match squads_of(v) {
            Ok(s) => Some(s),
            Err(invalid) => return invalid,
        },
    };
    let Some(user) = st.users.get_mut(&id) else {
        return error(404, "/api/users", "User not found", "A025");
    };
    match body["status"].as_str() {
        None => {}
        // Applied only to an ACTIVE user; silently ignored on LIMITED/EXPIRED.
        Some("DISABLED") if user.effective(now) == "ACTIVE" => user.status = "DISABLED".into(),
        Some("DISABLED") => {}
        Some("ACTIVE") => user.status = "ACTIVE".into(),
        Some(_) => return validation(&["status"], "Invalid enum value"),
    }
    if let Some(t) = expire_at {
        user.expire_at = t;
    }
    if let Some(l) = limit {
        user.traffic_limit_bytes = l;
    }
    if let Some(s) = squads {
        user.squads = s;
    }
    if let Some(strategy) = body["trafficLimitStrategy"].as_str() {
        user.traffic_limit_strategy = strategy.to_owned();
    }
    if let Some(limit) = body.get("hwidDeviceLimit") {
        user.hwid_device_limit = limit.as_i64();
    }
    ok(user.response(v3, now))
}

fn list(st: &State, query: &str, now: DateTime<Utc>) -> Reply {
    let params: BTreeMap<String, String> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(k), percent_decode(&v.replace('+', " ")))
        })
        .collect();
    let number = |key: &str, default: usize| -> Result<usize, Reply> {
        params.get(key).map_or(Ok(default), |v| {
            v.parse()
                .map_err(|_| validation(&[key], "Expected number, received nan"))
        })
    };
    let start = match number("start", 0) {
        Ok(n) => n,
        Err(r) => return r,
    };
    let size = match number("size", 25) {
        Ok(n) if (1..=1000).contains(&n) => n,
        Ok(_) => return validation(&["size"], "Number must be between 1 and 1000"),
        Err(r) => return r,
    };
    let filters: Vec<Value> = match params.get("filters") {
        None => Vec::new(),
        Some(text) => match serde_json::from_str(text) {
            Ok(Value::Array(f)) => f,
            _ => return validation(&["filters"], "Invalid JSON"),
        },
    };
    let modes: BTreeMap<String, String> = match params.get("filterModes") {
        None => BTreeMap::new(),
        Some(text) => match serde_json::from_str(text) {
            Ok(m) => m,
            _ => return validation(&["filterModes"], "Invalid JSON"),
        },
    };
    let matches = |user: &RwUser| {
        filters.iter().all(|f| {
            let value = f["value"].as_str().unwrap_or("").to_owned();
            let field = match f["id"].as_str() {
                Some("username") => user.username.clone(),
                Some("status") => user.effective(now),
                // Unknown ids are silently ignored.
                _ => return true,
            };
            let id = f["id"].as_str().unwrap_or("");
            match modes.get(id).map_or("contains", String::as_str) {
                "equals" => field == value,
                "startsWith" => field.to_lowercase().starts_with(&value.to_lowercase()),
                _ => field.to_lowercase().contains(&value.to_lowercase()),
            }
        })
    };
    // Newest first (id descending).
    let users: Vec<&RwUser> = st.users.values().rev().filter(|u| matches(u)).collect();
    let total = users.len();
    let page: Vec<Value> = users
        .into_iter()
        .skip(start)
        .take(size)
        .map(|u| u.response(st.v3(), now))
        .collect();
    ok(json!({"users": page, "total": total}))
}

fn by_key(st: &mut State, method: &str, route: &str, id: i64, now: DateTime<Utc>) -> Reply {
    let v3 = st.v3();
    let suffix = route
        .split_once('}')
        .map_or("", |(_, rest)| rest)
        .to_owned();
    if (method, suffix.as_str()) == ("DELETE", "") {
        st.users.remove(&id);
        return if v3 {
            Reply {
                status: 204,
                body: None,
            }
        } else {
            ok(json!({"isDeleted": true}))
        };
    }
    let Some(user) = st.users.get_mut(&id) else {
        return error(404, route, "User not found", "A025");
    };
    match (method, suffix.as_str()) {
        ("GET", "") => {}
        ("POST", "/actions/enable") => {
            if user.effective(now) == "ACTIVE" {
                return error(400, route, "User already enabled", "A030");
            }
            user.status = "ACTIVE".into();
        }
        ("POST", "/actions/disable") => {
            if user.status == "DISABLED" {
                return error(400, route, "User already disabled", "A029");
            }
            user.status = "DISABLED".into();
        }
        ("POST", "/actions/reset-traffic") => {
            // A LIMITED user becomes ACTIVE: its status is computed from the traffic.
            user.used_traffic_bytes = 0;
        }
        ("POST", "/actions/revoke") => {
            user.short_uuid = new_short_uuid();
        }
        _ => return cannot(method, route),
    }
    ok(user.response(v3, now))
}
