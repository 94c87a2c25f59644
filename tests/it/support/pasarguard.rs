//! A fake PasarGuard 5.2 panel for tests: the parts of the REST API of
//! `shared/reference/pasarguard-api.md` a shop uses (admin login and API keys, users by id and
//! by listing, 201 on create, 204 on delete, datetime `expire`, groups, case-sensitive usernames,
//! relative subscription URLs, `""` URLs in lists without `load_sub`), over in-memory users, with
//! faults on demand and a request recorder. It runs on the shared [`FakeServer`] plumbing.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{DateTime, NaiveDateTime, SecondsFormat, Utc};
use serde_json::{Value, json};

use super::server::{FakeServer, percent_decode};

/// A database admin (the owner's role: every permission).
pub const ADMIN_USERNAME: &str = "pg_admin";
pub const ADMIN_PASSWORD: &str = "pg-password";
/// An API key of that admin (`X-Api-Key` or `Authorization: ApiKey …`).
pub const API_KEY: &str = "pg_key_0f6a1b8e3c9d4d7e9a516b2c8e4f1a37";
pub const PANEL_VERSION: &str = "5.2.1";
/// The groups of `GET /api/groups`: id → (name, inbound tags).
pub const GROUPS: [(i64, &str, &str); 2] = [
    (1, "default", "VLESS TCP REALITY"),
    (2, "extra", "TROJAN WS"),
];

const STATUSES: [&str; 5] = ["active", "disabled", "limited", "expired", "on_hold"];
const SORT_KEYS: [&str; 7] = [
    "username",
    "used_traffic",
    "data_limit",
    "expire",
    "created_at",
    "edit_at",
    "online_at",
];

/// A user as the panel stores it.
#[derive(Clone, Debug, PartialEq)]
pub struct PgUser {
    pub id: i64,
    pub username: String,
    /// Stored status; `limited` and `expired` are also computed when read.
    pub status: String,
    pub expire: Option<DateTime<Utc>>,
    /// Bytes; `None` or 0 = unlimited.
    pub data_limit: Option<i64>,
    pub data_limit_reset_strategy: String,
    pub used_traffic: i64,
    pub lifetime_used_traffic: i64,
    pub group_ids: Vec<i64>,
    pub note: Option<String>,
    pub next_plan: Option<Value>,
    pub hwid_limit: Option<i64>,
    pub created_at: DateTime<Utc>,
    pub edit_at: Option<DateTime<Utc>>,
    pub online_at: Option<DateTime<Utc>>,
    /// The proxy credentials; new ones on every revoke.
    pub credentials: String,
    /// Subscription tokens carry it; a revoke moves it on, so older tokens answer 404.
    pub sub_generation: u32,
}

impl PgUser {
    /// The status a read shows: a stored `active` past its expiry or limit is `expired`/`limited`.
    fn effective(&self, now: DateTime<Utc>) -> String {
        if self.status == "active" {
            if self.expire.is_some_and(|e| e <= now) {
                return "expired".into();
            }
            if self
                .data_limit
                .is_some_and(|l| l > 0 && self.used_traffic >= l)
            {
                return "limited".into();
            }
        }
        self.status.clone()
    }

    fn token(&self) -> String {
        format!("{}g{}", self.id, self.sub_generation)
    }

    fn response(&self, now: DateTime<Utc>, load_sub: bool) -> Value {
        json!({
            "id": self.id,
            "username": self.username,
            "status": self.effective(now),
            "proxy_settings": {"vless": {"id": self.credentials}},
            "expire": self.expire.map(iso),
            "data_limit": self.data_limit,
            "data_limit_reset_strategy": self.data_limit_reset_strategy,
            "note": self.note,
            "on_hold_expire_duration": null,
            "on_hold_timeout": null,
            "group_ids": self.group_ids,
            "auto_delete_in_days": null,
            "hwid_limit": self.hwid_limit,
            "next_plan": self.next_plan,
            "used_traffic": self.used_traffic,
            "lifetime_used_traffic": self.lifetime_used_traffic,
            "created_at": iso(self.created_at),
            "edit_at": self.edit_at.map(iso),
            "online_at": self.online_at.map(iso),
            // The URL prefix is empty by default: relative.
            "subscription_url": if load_sub { format!("/sub/{}", self.token()) } else { String::new() },
            "admin": {"id": 1, "username": ADMIN_USERNAME},
        })
    }
}

fn iso(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// One request as it reached the panel.
#[derive(Clone, Debug)]
pub struct Recorded {
    pub method: String,
    /// Route pattern, e.g. `/api/user/by-id/{id}`.
    pub route: String,
    pub query: String,
    pub body: Option<Value>,
    pub status: u16,
}

#[derive(Default)]
struct State {
    users: BTreeMap<i64, PgUser>,
    next_id: i64,
    tokens: HashSet<String>,
    logins: usize,
    fail_next: (usize, u16),
    time_out_next: (usize, Duration),
    /// Added to every answer (as a distant panel would take).
    latency: Duration,
    requests: Vec<Recorded>,
}

impl State {
    fn by_name(&self, username: &str) -> Option<&PgUser> {
        self.users.values().find(|u| u.username == username)
    }
}

/// The running fake; stops (bounded) when dropped.
pub struct FakePasarGuard {
    state: Arc<Mutex<State>>,
    server: FakeServer,
}

impl FakePasarGuard {
    pub fn start() -> FakePasarGuard {
        let state = Arc::new(Mutex::new(State {
            next_id: 1,
            ..State::default()
        }));
        let data = web::Data::from(Arc::clone(&state));
        let server = FakeServer::start("fake-pasarguard", move |app| {
            app.app_data(data.clone()).default_service(web::to(serve));
        });
        FakePasarGuard { state, server }
    }

    pub fn url(&self) -> String {
        self.server.url()
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A user named `username` in group 1, active, no limits (not yet stored).
    pub fn new_user(&self, username: &str) -> PgUser {
        PgUser {
            id: 0,
            username: username.to_owned(),
            status: "active".into(),
            expire: None,
            data_limit: None,
            data_limit_reset_strategy: "no_reset".into(),
            used_traffic: 0,
            lifetime_used_traffic: 0,
            group_ids: vec![1],
            note: None,
            next_plan: None,
            hwid_limit: None,
            created_at: Utc::now(),
            edit_at: None,
            online_at: None,
            credentials: new_credentials(),
            sub_generation: 0,
        }
    }

    /// Stores `user` with the next id (its `id` is ignored); returns the id.
    pub fn insert_user(&self, mut user: PgUser) -> i64 {
        let mut st = self.state();
        user.id = st.next_id;
        st.next_id += 1;
        let id = user.id;
        st.users.insert(id, user);
        id
    }

    /// The user named exactly `username`, its status as a read shows it.
    pub fn user(&self, username: &str) -> Option<PgUser> {
        let st = self.state();
        let mut user = st.by_name(username)?.clone();
        user.status = user.effective(Utc::now());
        Some(user)
    }

    pub fn user_count(&self) -> usize {
        self.state().users.len()
    }

    /// Edits a stored user by hand (as the panel's own jobs or an admin would).
    pub fn update_user(&self, username: &str, f: impl FnOnce(&mut PgUser)) {
        let mut st = self.state();
        let user = st
            .users
            .values_mut()
            .find(|u| u.username == username)
            .unwrap_or_else(|| panic!("fake PasarGuard has no user {username:?}"));
        f(user);
    }

    /// Deletes a user behind the shop's back.
    pub fn remove_user(&self, username: &str) -> bool {
        let mut st = self.state();
        let id = st.by_name(username).map(|u| u.id);
        id.and_then(|id| st.users.remove(&id)).is_some()
    }

    /// Whether a subscription URL (relative or absolute) would still be served.
    pub fn subscription_valid(&self, subscription_url: &str) -> bool {
        let Some((_, token)) = subscription_url.rsplit_once("/sub/") else {
            return false;
        };
        self.state().users.values().any(|u| u.token() == token)
    }

    pub fn logins(&self) -> usize {
        self.state().logins
    }

    /// The next `n` requests (except the login) answer `status` without applying anything.
    pub fn fail_next(&self, n: usize, status: u16) {
        self.state().fail_next = (n, status);
    }

    /// The next `n` requests (except the login) are applied, but answered only after `delay`.
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

    /// Requests with this method and route pattern, e.g. `("PUT", "/api/user/by-id/{id}")`.
    pub fn count(&self, method: &str, route: &str) -> usize {
        self.state()
            .requests
            .iter()
            .filter(|r| r.method == method && r.route == route)
            .count()
    }
}

fn new_credentials() -> String {
    format!("{:032x}", rand::random::<u128>())
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

fn detail(status: u16, message: &str) -> Reply {
    reply(status, json!({ "detail": message }))
}

fn invalid(field: &str, message: &str) -> Reply {
    reply(422, json!({ "detail": { field: message } }))
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
    let (route, id) = route_of(&path);
    let json_body: Option<Value> = serde_json::from_slice(&body).ok();
    let (reply, delay) = {
        let mut st = state.lock().unwrap_or_else(|p| p.into_inner());
        let is_login = route == "/api/admin/token";
        let (reply, delay) = if !is_login && st.fail_next.0 > 0 {
            st.fail_next.0 -= 1;
            let status = st.fail_next.1;
            (detail(status, "Internal Server Error"), Duration::ZERO)
        } else {
            let reply = if is_login {
                login(&mut st, &body)
            } else if !authorized(&st, header("x-api-key"), header("authorization")) {
                detail(401, "Could not validate credentials")
            } else {
                handle(&mut st, &method, &route, id, &query, json_body.clone())
            };
            let delay = if !is_login && st.time_out_next.0 > 0 {
                st.time_out_next.0 -= 1;
                st.time_out_next.1
            } else {
                st.latency
            };
            (reply, delay)
        };
        st.requests.push(Recorded {
            method,
            route,
            query,
            body: json_body,
            status: reply.status,
        });
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

/// The route pattern of a path and the numeric id in it.
fn route_of(path: &str) -> (String, Option<i64>) {
    let parts: Vec<&str> = path.trim_end_matches('/').split('/').collect();
    if let ["", "api", "user", "by-id", id, rest @ ..] = parts.as_slice() {
        let suffix: String = rest.iter().map(|p| format!("/{p}")).collect();
        return (format!("/api/user/by-id/{{id}}{suffix}"), id.parse().ok());
    }
    (path.to_owned(), None)
}

fn login(st: &mut State, body: &[u8]) -> Reply {
    let form: BTreeMap<String, String> = String::from_utf8_lossy(body)
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .map(|(k, v)| (percent_decode(k), percent_decode(&v.replace('+', " "))))
        .collect();
    let (Some(username), Some(password)) = (form.get("username"), form.get("password")) else {
        return invalid("username", "Field required");
    };
    if username != ADMIN_USERNAME || password != ADMIN_PASSWORD {
        return detail(401, "Incorrect username or password");
    }
    let token = format!("jwt-{}", new_credentials());
    st.tokens.insert(token.clone());
    st.logins += 1;
    reply(200, json!({"access_token": token, "token_type": "bearer"}))
}

/// A valid bearer JWT first; else the API key (`X-Api-Key` or `Authorization: ApiKey …`).
fn authorized(st: &State, api_key: Option<String>, authorization: Option<String>) -> bool {
    let auth = authorization.unwrap_or_default();
    if let Some(token) = auth.strip_prefix("Bearer ")
        && st.tokens.contains(token)
    {
        return true;
    }
    api_key.as_deref() == Some(API_KEY) || auth.strip_prefix("ApiKey ") == Some(API_KEY)
}

fn handle(
    st: &mut State,
    method: &str,
    route: &str,
    id: Option<i64>,
    query: &str,
    body: Option<Value>,
) -> Reply {
    let now = Utc::now();
    match (method, route, id) {
        ("GET", "/api/admin", _) => reply(
            200,
            json!({"id": 1, "username": ADMIN_USERNAME, "status": "active", "total_users": st.users.len()}),
        ),
        ("GET", "/api/system", _) => system(st, now),
        ("POST", "/api/user", _) => create(st, body.unwrap_or(Value::Null), now),
        ("GET", "/api/users", _) => list(st, query, now),
        (_, r, Some(id)) if r.starts_with("/api/user/by-id/") => {
            if !st.users.contains_key(&id) {
                return detail(404, "User not found");
            }
            by_id(st, method, r, id, body.unwrap_or(Value::Null), now)
        }
        _ => detail(404, "Not Found"),
    }
}

fn system(st: &State, now: DateTime<Utc>) -> Reply {
    let count = |status: &str| {
        st.users
            .values()
            .filter(|u| u.effective(now) == status)
            .count()
    };
    let online = st
        .users
        .values()
        .filter(|u| {
            u.online_at
                .is_some_and(|t| now - t < chrono::TimeDelta::minutes(2))
        })
        .count();
    reply(
        200,
        json!({
            "version": PANEL_VERSION, "uptime_seconds": 3600,
            "mem_total": 2_084_569_088i64, "mem_used": 912_461_824i64, "disk_total": 0, "disk_used": 0,
            "cpu_cores": 2, "cpu_usage": 7.5, "total_user": st.users.len(),
            "online_users": online, "active_users": count("active"), "on_hold_users": count("on_hold"),
            "disabled_users": count("disabled"), "expired_users": count("expired"),
            "limited_users": count("limited"),
            "incoming_bandwidth": 52_428_800_000i64, "outgoing_bandwidth": 157_286_400_000i64,
        }),
    )
}

/// `3–128` characters of `a-zA-Z0-9-_@.`, no two special characters in a row.
fn valid_username(name: &str) -> bool {
    let special = |c: char| "-_@.".contains(c);
    (3..=128).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || special(c))
        && !name
            .chars()
            .zip(name.chars().skip(1))
            .any(|(a, b)| special(a) && special(b))
}

/// `expire` as a request may send it: ISO datetime (naive ⇒ UTC), unix seconds, `0`/`null` ⇒ never.
fn parse_expire(value: &Value) -> Result<Option<DateTime<Utc>>, ()> {
    match value {
        Value::Null => Ok(None),
        Value::Number(n) => match n.as_i64() {
            Some(0) => Ok(None),
            Some(ts) => DateTime::from_timestamp(ts, 0).map(Some).ok_or(()),
            None => Err(()),
        },
        Value::String(s) => DateTime::parse_from_rfc3339(s)
            .map(|t| Some(t.with_timezone(&Utc)))
            .or_else(|_| {
                NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f").map(|t| Some(t.and_utc()))
            })
            .map_err(|_| ()),
        _ => Err(()),
    }
}

fn groups_exist(ids: &[i64]) -> bool {
    ids.iter().all(|id| GROUPS.iter().any(|(g, _, _)| g == id))
}

fn create(st: &mut State, body: Value, now: DateTime<Utc>) -> Reply {
    let Some(username) = body["username"].as_str() else {
        return invalid("username", "Field required");
    };
    if !valid_username(username) {
        return invalid(
            "username",
            "Value error, username must be 3 to 128 characters of a-z, A-Z, 0-9, -, _, @, . without two special characters in a row",
        );
    }
    // Omitted: the validator is skipped and the user has no groups (no access).
    let group_ids: Vec<i64> = match &body["group_ids"] {
        Value::Null => Vec::new(),
        Value::Array(ids) if ids.is_empty() => {
            return invalid(
                "group_ids",
                "Value error, you must select at least one group",
            );
        }
        Value::Array(ids) => match ids.iter().map(Value::as_i64).collect::<Option<Vec<_>>>() {
            Some(ids) => ids,
            None => return invalid("group_ids", "Input should be a valid integer"),
        },
        _ => return invalid("group_ids", "Input should be a valid list"),
    };
    if !groups_exist(&group_ids) {
        return detail(404, "Group not found");
    }
    let Ok(expire) = parse_expire(&body["expire"]) else {
        return invalid("expire", "Input should be a valid datetime");
    };
    let status = body["status"].as_str().unwrap_or("active");
    if !["active", "on_hold"].contains(&status) {
        return invalid("status", "Input should be 'active' or 'on_hold'");
    }
    if st.by_name(username).is_some() {
        return detail(409, "User already exists");
    }
    let data_limit = match &body["data_limit"] {
        Value::Null => None,
        v => match v.as_i64().filter(|l| *l >= 0) {
            Some(l) => Some(l),
            None => return invalid("data_limit", "Input should be greater than or equal to 0"),
        },
    };
    let id = st.next_id;
    st.next_id += 1;
    let user = PgUser {
        id,
        username: username.to_owned(),
        status: status.to_owned(),
        expire,
        data_limit,
        data_limit_reset_strategy: body["data_limit_reset_strategy"]
            .as_str()
            .unwrap_or("no_reset")
            .to_owned(),
        used_traffic: 0,
        lifetime_used_traffic: 0,
        group_ids,
        note: body["note"].as_str().map(str::to_owned),
        next_plan: body.get("next_plan").cloned().filter(|p| !p.is_null()),
        hwid_limit: body["hwid_limit"].as_i64(),
        created_at: now,
        edit_at: None,
        online_at: None,
        credentials: new_credentials(),
        sub_generation: 0,
    };
    let response = user.response(now, true);
    st.users.insert(id, user);
    reply(201, response)
}

fn list(st: &State, query: &str, now: DateTime<Utc>) -> Reply {
    let mut params: Vec<(String, String)> = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        params.push((percent_decode(k), percent_decode(&v.replace('+', " "))));
    }
    let all = |key: &str| -> Vec<&str> {
        params
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .collect()
    };
    let one = |key: &str| all(key).first().map(|v| v.to_string());
    let number = |key: &str| one(key).map(|v| v.parse::<usize>());
    let (offset, limit) = match (number("offset"), number("limit")) {
        (Some(Err(_)), _) => return invalid("offset", "Input should be a valid integer"),
        (_, Some(Err(_))) => return invalid("limit", "Input should be a valid integer"),
        (o, l) => (o.and_then(Result::ok).unwrap_or(0), l.and_then(Result::ok)),
    };
    let mut sort: Vec<(&str, bool)> = Vec::new();
    if let Some(keys) = one("sort") {
        for key in keys.split(',') {
            let (name, desc) = key.strip_prefix('-').map_or((key, false), |k| (k, true));
            let Some(known) = SORT_KEYS.iter().find(|k| **k == name) else {
                return detail(400, &format!("Value error, invalid sort option: {key}"));
            };
            sort.push((known, desc));
        }
    }
    let statuses = all("status");
    if let Some(bad) = statuses.iter().find(|s| !STATUSES.contains(s)) {
        return invalid(
            "status",
            &format!("Input should be one of the statuses, not {bad}"),
        );
    }
    let usernames = all("username");
    let search = one("search").map(|s| s.to_lowercase());
    let load_sub = one("load_sub").as_deref() == Some("true");
    let mut users: Vec<&PgUser> = st
        .users
        .values()
        .filter(|u| usernames.is_empty() || usernames.contains(&u.username.as_str()))
        .filter(|u| statuses.is_empty() || statuses.contains(&u.effective(now).as_str()))
        .filter(|u| {
            search.as_ref().is_none_or(|s| {
                u.username.to_lowercase().contains(s)
                    || u.note
                        .as_ref()
                        .is_some_and(|n| n.to_lowercase().contains(s))
            })
        })
        .collect();
    // No default ORDER BY: without `sort` the database's order (here: scrambled by id parity).
    if sort.is_empty() {
        users.sort_by_key(|u| (u.id % 2, u.id));
    }
    users.sort_by(|a, b| {
        sort.iter()
            .map(|(key, desc)| {
                let o = match *key {
                    "username" => a.username.cmp(&b.username),
                    "used_traffic" => a.used_traffic.cmp(&b.used_traffic),
                    "data_limit" => a.data_limit.cmp(&b.data_limit),
                    "expire" => a.expire.cmp(&b.expire),
                    "created_at" => a.created_at.cmp(&b.created_at),
                    "edit_at" => a.edit_at.cmp(&b.edit_at),
                    _ => a.online_at.cmp(&b.online_at),
                };
                if *desc { o.reverse() } else { o }
            })
            .find(|o| o.is_ne())
            .unwrap_or(std::cmp::Ordering::Equal)
    });
    let total = users.len();
    let page: Vec<Value> = users
        .into_iter()
        .skip(offset)
        .take(limit.unwrap_or(usize::MAX))
        .map(|u| u.response(now, load_sub))
        .collect();
    reply(200, json!({"users": page, "total": total}))
}

fn by_id(
    st: &mut State,
    method: &str,
    route: &str,
    id: i64,
    body: Value,
    now: DateTime<Utc>,
) -> Reply {
    let suffix = route.trim_start_matches("/api/user/by-id/{id}");
    if (method, suffix) == ("DELETE", "") {
        st.users.remove(&id);
        return Reply {
            status: 204,
            body: None,
        };
    }
    let Some(user) = st.users.get_mut(&id) else {
        return detail(404, "User not found");
    };
    match (method, suffix) {
        ("GET", "") => {}
        ("PUT", "") => {
            if let Err(reply) = modify(user, &body, now) {
                return reply;
            }
        }
        ("PUT", "/disabled") => {
            let Some(disabled) = body["disabled"].as_bool() else {
                return invalid("disabled", "Field required");
            };
            user.status = if disabled { "disabled" } else { "active" }.into();
            user.edit_at = Some(now);
        }
        ("POST", "/reset") => {
            user.used_traffic = 0;
            user.next_plan = None;
            // Only `limited` becomes active; every other status stays.
            if user.effective(now) == "limited" {
                user.status = "active".into();
            }
        }
        ("POST", "/revoke_sub") => {
            user.credentials = new_credentials();
            user.sub_generation += 1;
        }
        _ => return detail(405, "Method Not Allowed"),
    }
    reply(200, user.response(now, true))
}

/// `UserModify`: omitted or `null` ⇒ unchanged (but a missing `next_plan` is deleted and
/// `group_ids: []` removes every group).
fn modify(user: &mut PgUser, body: &Value, now: DateTime<Utc>) -> Result<(), Reply> {
    let Some(fields) = body.as_object() else {
        return Err(invalid("body", "Input should be a valid dictionary"));
    };
    if let Some(value) = fields.get("expire").filter(|v| !v.is_null()) {
        let expire = parse_expire(value)
            .map_err(|_| invalid("expire", "Input should be a valid datetime"))?;
        user.expire = expire;
    }
    if let Some(value) = fields.get("data_limit").filter(|v| !v.is_null()) {
        let limit = value
            .as_i64()
            .filter(|l| *l >= 0)
            .ok_or_else(|| invalid("data_limit", "Input should be greater than or equal to 0"))?;
        // On modify 0 is stored as null: unlimited.
        user.data_limit = (limit > 0).then_some(limit);
    }
    if let Some(ids) = fields.get("group_ids").filter(|v| !v.is_null()) {
        let ids: Vec<i64> = ids
            .as_array()
            .and_then(|a| a.iter().map(Value::as_i64).collect())
            .ok_or_else(|| invalid("group_ids", "Input should be a valid list"))?;
        if !groups_exist(&ids) {
            return Err(detail(404, "Group not found"));
        }
        user.group_ids = ids;
    }
    if let Some(status) = fields.get("status").filter(|v| !v.is_null()) {
        match status.as_str() {
            Some("disabled") => user.status = "disabled".into(),
            // Enabling recomputes the real status (expired / limited follow from the values).
            Some("active") => user.status = "active".into(),
            Some("on_hold") => {
                user.status = "on_hold".into();
                user.expire = None;
            }
            _ => {
                return Err(invalid(
                    "status",
                    "Input should be 'active', 'disabled' or 'on_hold'",
                ));
            }
        }
    }
    if let Some(note) = fields.get("note").filter(|v| !v.is_null()) {
        user.note = note.as_str().map(str::to_owned);
    }
    user.next_plan = fields.get("next_plan").cloned().filter(|p| !p.is_null());
    user.edit_at = Some(now);
    Ok(())
}
