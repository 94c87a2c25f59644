//! The fake Marzban panel against `shared/reference/marzban-api.md`, over plain HTTP, so that tests
//! of the shop's Marzban client can trust it.

use crate::support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use chrono::Utc;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use support::marzban::{
    ADMIN_PASSWORD, ADMIN_USERNAME, ENV_SUDO_PASSWORD, ENV_SUDO_USERNAME, FakePanel, FakeUser,
    SystemInfo,
};

const GIB: i64 = 1 << 30;

/// A panel, an HTTP client and a token.
struct Api {
    panel: FakePanel,
    http: reqwest::Client,
    token: String,
}

async fn api() -> Api {
    let panel = FakePanel::start();
    let http = reqwest::Client::new();
    let token = login(&http, &panel.url()).await;
    Api { panel, http, token }
}

async fn login(http: &reqwest::Client, url: &str) -> String {
    login_as(http, url, ADMIN_USERNAME, ADMIN_PASSWORD).await
}

async fn login_as(http: &reqwest::Client, url: &str, username: &str, password: &str) -> String {
    let resp = http
        .post(format!("{url}/api/admin/token"))
        .form(&[("username", username), ("password", password)])
        .send()
        .await
        .expect("login request");
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.expect("token json");
    body["access_token"]
        .as_str()
        .expect("access_token")
        .to_owned()
}

/// Status and body (JSON, or the text as a JSON string).
async fn read(resp: reqwest::Response) -> (u16, Value) {
    let status = resp.status().as_u16();
    let text = resp.text().await.expect("body");
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, body)
}

impl Api {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.panel.url())
    }

    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
        self.call_as(&self.token, method, path, body).await
    }

    /// A call with another admin's token.
    async fn call_as(
        &self,
        token: &str,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut req = self.http.request(method, self.url(path)).bearer_auth(token);
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

    async fn post_empty(&self, path: &str) -> (u16, Value) {
        self.call(Method::POST, path, None).await
    }

    async fn put(&self, path: &str, body: Value) -> (u16, Value) {
        self.call(Method::PUT, path, Some(body)).await
    }

    async fn delete(&self, path: &str) -> (u16, Value) {
        self.call(Method::DELETE, path, None).await
    }

    /// Creates a user with a vless proxy on all vless inbounds plus `extra` fields.
    async fn create(&self, username: &str, extra: Value) -> Value {
        let mut body = json!({"username": username, "proxies": {"vless": {}}, "inbounds": {}});
        for (k, v) in extra.as_object().expect("object") {
            body[k] = v.clone();
        }
        let (status, user) = self.post("/api/user", body).await;
        assert_eq!(status, 200, "create {username}: {user}");
        user
    }
}

/// The claims of a panel token (the JWT's middle part).
fn jwt_claims(token: &str) -> Value {
    use base64::Engine as _;
    let payload = token.split('.').nth(1).expect("a JWT");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .expect("base64url");
    serde_json::from_slice(&bytes).expect("JSON claims")
}

fn now_ts() -> i64 {
    Utc::now().timestamp()
}

// ---------------------------------------------------------------------------------------------
// Auth

#[tokio::test]
async fn login_returns_a_bearer_token_and_counts() {
    let panel = FakePanel::start();
    let resp = reqwest::Client::new()
        .post(format!("{}/api/admin/token", panel.url()))
        .form(&[
            ("grant_type", "password"),
            ("username", ADMIN_USERNAME),
            ("password", ADMIN_PASSWORD),
        ])
        .send()
        .await
        .unwrap();
    let (status, body) = read(resp).await;
    assert_eq!(status, 200);
    assert_eq!(body["token_type"], "bearer");
    assert_eq!(body["access_token"].as_str().unwrap().split('.').count(), 3);
    assert_eq!(panel.logins(), 1);
}

#[tokio::test]
async fn login_with_wrong_password_is_401_with_www_authenticate() {
    let panel = FakePanel::start();
    let resp = reqwest::Client::new()
        .post(format!("{}/api/admin/token", panel.url()))
        .form(&[("username", ADMIN_USERNAME), ("password", "nope")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["www-authenticate"], "Bearer");
    let (status, body) = read(resp).await;
    assert_eq!(status, 401);
    assert_eq!(body, json!({"detail": "Incorrect username or password"}));
    assert_eq!(panel.logins(), 0);
}

#[tokio::test]
async fn login_with_missing_field_or_json_body_is_422_field_required() {
    let panel = FakePanel::start();
    let http = reqwest::Client::new();
    let url = format!("{}/api/admin/token", panel.url());
    let (status, body) = read(
        http.post(&url)
            .form(&[("username", ADMIN_USERNAME)])
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 422);
    assert_eq!(body, json!({"detail": {"password": "Field required"}}));

    let (status, body) = read(
        http.post(&url)
            .json(&json!({"username": ADMIN_USERNAME, "password": ADMIN_PASSWORD}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 422);
    assert_eq!(
        body,
        json!({"detail": {"username": "Field required", "password": "Field required"}})
    );

    let (status, body) = read(
        http.post(&url)
            .form(&[
                ("grant_type", "client_credentials"),
                ("username", ADMIN_USERNAME),
                ("password", ADMIN_PASSWORD),
            ])
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 422);
    assert!(body["detail"]["grant_type"].is_string(), "{body}");
}

#[tokio::test]
async fn protected_route_without_token_is_not_authenticated() {
    let panel = FakePanel::start();
    let resp = reqwest::get(format!("{}/api/users", panel.url()))
        .await
        .unwrap();
    assert_eq!(resp.headers()["www-authenticate"], "Bearer");
    let (status, body) = read(resp).await;
    assert_eq!(status, 401);
    assert_eq!(body, json!({"detail": "Not authenticated"}));
}

#[tokio::test]
async fn protected_route_with_bad_token_cannot_validate_credentials() {
    let panel = FakePanel::start();
    let resp = reqwest::Client::new()
        .get(format!("{}/api/system", panel.url()))
        .bearer_auth("not-a-token")
        .send()
        .await
        .unwrap();
    let (status, body) = read(resp).await;
    assert_eq!(status, 401);
    assert_eq!(body, json!({"detail": "Could not validate credentials"}));
}

#[tokio::test]
async fn expired_tokens_are_rejected_until_relogin() {
    let mut api = api().await;
    api.create("tg_1", json!({})).await;
    api.panel.expire_all_tokens();
    let (status, body) = api.get("/api/user/tg_1").await;
    assert_eq!(status, 401);
    assert_eq!(body["detail"], "Could not validate credentials");

    api.token = login(&api.http, &api.panel.url()).await;
    assert_eq!(api.get("/api/user/tg_1").await.0, 200);
    assert_eq!(api.panel.logins(), 2);
}

#[tokio::test]
async fn short_token_ttl_expires_tokens() {
    let mut api = api().await;
    api.panel.set_token_ttl(Duration::from_millis(300));
    api.token = login(&api.http, &api.panel.url()).await;
    // The token was issued before this instant, so it is dead 300 ms after it.
    let issued = Instant::now();
    assert_eq!(api.get("/api/admin").await.0, 200);
    tokio::time::sleep_until((issued + Duration::from_millis(320)).into()).await;
    let (status, body) = api.get("/api/admin").await;
    assert_eq!(
        (status, &body["detail"]),
        (401, &json!("Could not validate credentials"))
    );

    api.panel.set_token_ttl(Duration::from_secs(3600));
    api.token = login(&api.http, &api.panel.url()).await;
    assert_eq!(api.get("/api/admin").await.0, 200);
}

#[tokio::test]
async fn current_admin_and_inbounds() {
    let api = api().await;
    let (status, admin) = api.get("/api/admin").await;
    assert_eq!(status, 200);
    assert_eq!(admin["username"], ADMIN_USERNAME);
    assert_eq!(admin["is_sudo"], true);

    let (status, inbounds) = api.get("/api/inbounds").await;
    assert_eq!(status, 200);
    let vless = inbounds["vless"].as_array().unwrap();
    assert_eq!(vless.len(), 2);
    assert_eq!(vless[0]["tag"], "VLESS TCP REALITY");
    assert_eq!(vless[0]["protocol"], "vless");
    assert_eq!(vless[0]["network"], "tcp");
    assert_eq!(vless[0]["tls"], "reality");
    assert!(vless[0]["port"].is_u64());
    assert_eq!(inbounds["trojan"][0]["network"], "ws");
    assert!(inbounds.get("vmess").is_none());
}

// ---------------------------------------------------------------------------------------------
// Create

#[tokio::test]
async fn created_user_round_trips_with_relative_subscription_url_that_changes() {
    let api = api().await;
    let expire = now_ts() + 30 * 86400;
    let created = api
        .create(
            "tg_123456789",
            json!({"proxies": {"vless": {"flow": "xtls-rprx-vision"}}, "expire": expire,
                   "data_limit": 50 * GIB, "data_limit_reset_strategy": "no_reset", "note": "order 42"}),
        )
        .await;
    assert_eq!(created["status"], "active");
    assert_eq!(created["expire"], expire);
    assert_eq!(created["data_limit"], 50 * GIB);
    assert_eq!(created["used_traffic"], 0);
    assert_eq!(created["lifetime_used_traffic"], 0);
    assert_eq!(created["note"], "order 42");
    assert_eq!(created["proxies"]["vless"]["flow"], "xtls-rprx-vision");
    let id = created["proxies"]["vless"]["id"].as_str().unwrap();
    assert!(uuid::Uuid::parse_str(id).is_ok());
    assert_eq!(
        created["inbounds"],
        json!({"vless": ["VLESS TCP REALITY", "VLESS WS"]})
    );
    assert_eq!(created["excluded_inbounds"], json!({"vless": []}));
    assert_eq!(created["links"].as_array().unwrap().len(), 2);
    assert!(
        created["links"][0]
            .as_str()
            .unwrap()
            .starts_with("vless://")
    );
    assert_eq!(created["admin"]["username"], ADMIN_USERNAME);
    assert!(created["next_plan"].is_null() && created["online_at"].is_null());
    let created_at = created["created_at"].as_str().unwrap();
    assert!(
        chrono::NaiveDateTime::parse_from_str(created_at, "%Y-%m-%dT%H:%M:%S%.f").is_ok(),
        "{created_at}"
    );
    assert!(!created_at.ends_with('Z') && !created_at.contains('+'));

    let (status, fetched) = api.get("/api/user/TG_123456789").await;
    assert_eq!(status, 200);
    for field in [
        "username",
        "proxies",
        "inbounds",
        "expire",
        "data_limit",
        "created_at",
    ] {
        assert_eq!(fetched[field], created[field], "{field}");
    }
    let (first, second) = (
        created["subscription_url"].as_str().unwrap(),
        fetched["subscription_url"].as_str().unwrap(),
    );
    assert!(first.starts_with("/sub/") && second.starts_with("/sub/"));
    assert_ne!(first, second);
    assert!(api.panel.subscription_valid(first) && api.panel.subscription_valid(second));

    // The subscription itself is public.
    let resp = reqwest::get(api.url(&format!("{second}/info")))
        .await
        .unwrap();
    let (status, info) = read(resp).await;
    assert_eq!(status, 200);
    assert_eq!(info["username"], "tg_123456789");
    assert!(info.get("admin").is_none() && info.get("note").is_none());
}

#[tokio::test]
async fn get_unknown_user_is_404() {
    let api = api().await;
    let (status, body) = api.get("/api/user/nobody").await;
    assert_eq!(status, 404);
    assert_eq!(body, json!({"detail": "User not found"}));
}

#[tokio::test]
async fn duplicate_username_is_409_case_insensitive() {
    let api = api().await;
    api.create("Alice_1", json!({})).await;
    let (status, body) = api
        .post(
            "/api/user",
            json!({"username": "alice_1", "proxies": {"vless": {}}, "inbounds": {}}),
        )
        .await;
    assert_eq!(status, 409);
    assert_eq!(body, json!({"detail": "User already exists"}));
    assert_eq!(api.panel.user_count(), 1);
}

#[tokio::test]
async fn empty_proxies_is_422_but_omitted_proxies_creates_user_without_proxies() {
    let api = api().await;
    let (status, body) = api
        .post(
            "/api/user",
            json!({"username": "tg_1", "proxies": {}, "inbounds": {}}),
        )
        .await;
    assert_eq!(status, 422);
    let message = body["detail"]["proxies"].as_str().unwrap();
    assert!(
        message.ends_with("Each user needs at least one proxy"),
        "{body}"
    );
    assert!(api.panel.user("tg_1").is_none());

    let (status, user) = api
        .post("/api/user", json!({"username": "tg_2", "inbounds": {}}))
        .await;
    assert_eq!(status, 200);
    assert_eq!(user["proxies"], json!({}));
    assert_eq!(user["links"], json!([]));
}

#[tokio::test]
async fn omitted_inbounds_stores_user_without_links() {
    let api = api().await;
    let (status, user) = api
        .post(
            "/api/user",
            json!({"username": "tg_1", "proxies": {"vless": {}}}),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(user["inbounds"], json!({"vless": []}));
    assert_eq!(
        user["excluded_inbounds"],
        json!({"vless": ["VLESS TCP REALITY", "VLESS WS"]})
    );
    assert_eq!(user["links"], json!([]));
}

#[tokio::test]
async fn listed_inbounds_select_tags_and_foreign_keys_are_dropped() {
    let api = api().await;
    let user = api
        .create(
            "tg_1",
            json!({"proxies": {"vless": {}, "trojan": {"password": "secret"}},
                   "inbounds": {"vless": ["VLESS WS"], "vmess": ["whatever"]}}),
        )
        .await;
    assert_eq!(
        user["inbounds"],
        json!({"vless": ["VLESS WS"], "trojan": ["TROJAN WS"]})
    );
    assert_eq!(user["proxies"]["trojan"]["password"], "secret");
    assert_eq!(user["links"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn unknown_inbound_is_422() {
    let api = api().await;
    let (status, body) = api
        .post(
            "/api/user",
            json!({"username": "tg_1", "proxies": {"vless": {}}, "inbounds": {"vless": ["NOPE"]}}),
        )
        .await;
    assert_eq!(status, 422);
    assert!(
        body["detail"]["inbounds"]
            .as_str()
            .unwrap()
            .ends_with("Inbound NOPE doesn't exist"),
        "{body}"
    );
}

#[tokio::test]
async fn disabled_protocol_is_400() {
    let api = api().await;
    let (status, body) = api
        .post(
            "/api/user",
            json!({"username": "tg_1", "proxies": {"vmess": {}}, "inbounds": {}}),
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(
        body,
        json!({"detail": "Protocol vmess is disabled on your server"})
    );
}

#[tokio::test]
async fn bad_username_is_422_on_username() {
    let api = api().await;
    for bad in ["ab", "a-bc", "x".repeat(33).as_str(), "tg 1", "юзер", ""] {
        let (status, body) = api
            .post(
                "/api/user",
                json!({"username": bad, "proxies": {"vless": {}}, "inbounds": {}}),
            )
            .await;
        assert_eq!(status, 422, "{bad:?}");
        let detail = body["detail"].as_object().unwrap();
        assert_eq!(detail.len(), 1, "{body}");
        assert!(
            detail["username"]
                .as_str()
                .unwrap()
                .contains("Username only can be 3 to 32 characters"),
            "{body}"
        );
    }
    for good in ["abc", "tg_123456789", "abc-d.e@f", "x".repeat(32).as_str()] {
        api.create(good, json!({})).await;
    }
    let (status, body) = api
        .post("/api/user", json!({"proxies": {"vless": {}}}))
        .await;
    assert_eq!(
        (status, body),
        (422, json!({"detail": {"username": "Field required"}}))
    );
}

#[tokio::test]
async fn create_field_rules() {
    let api = api().await;
    let user = api
        .create(
            "tg_1",
            json!({"expire": 0, "data_limit": null, "proxies": {"trojan": {}, "vless": {"id": "0f6a1b8e-3c9d-4d7e-9a51-6b2c8e4f1a37"}}}),
        )
        .await;
    assert!(user["expire"].is_null() && user["data_limit"].is_null());
    assert_eq!(user["data_limit_reset_strategy"], "no_reset");
    assert_eq!(
        user["proxies"]["vless"]["id"],
        "0f6a1b8e-3c9d-4d7e-9a51-6b2c8e4f1a37"
    );
    assert!(
        user["proxies"]["trojan"]["password"]
            .as_str()
            .unwrap()
            .len()
            >= 16
    );

    let user = api.create("tg_2", json!({"data_limit": 1.9e9 })).await;
    assert_eq!(user["data_limit"], 1_900_000_000_i64);

    let rejected = [
        (json!({"data_limit": "10"}), "data_limit"),
        (json!({"data_limit": -1}), "data_limit"),
        (json!({"status": "disabled"}), "status"),
        (json!({"status": "on_hold"}), "status"),
        (
            json!({"status": "on_hold", "on_hold_expire_duration": 86400, "expire": now_ts() + 10}),
            "status",
        ),
        (
            json!({"data_limit_reset_strategy": "monthly"}),
            "data_limit_reset_strategy",
        ),
        (json!({"note": "x".repeat(501)}), "note"),
        (
            json!({"proxies": {"vless": {"id": "not-a-uuid"}}}),
            "proxies",
        ),
    ];
    for (extra, field) in rejected {
        let mut body = json!({"username": "tg_bad", "proxies": {"vless": {}}, "inbounds": {}});
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        let (status, resp) = api.post("/api/user", body).await;
        assert_eq!(status, 422, "{extra}");
        assert!(resp["detail"][field].is_string(), "{extra}: {resp}");
    }

    let on_hold = api
        .create(
            "tg_3",
            json!({"status": "on_hold", "on_hold_expire_duration": 86400, "expire": 0}),
        )
        .await;
    assert_eq!(on_hold["status"], "on_hold");
    assert_eq!(on_hold["on_hold_expire_duration"], 86400);
    assert!(on_hold["expire"].is_null());
}

#[tokio::test]
async fn invalid_json_is_422_before_auth() {
    let panel = FakePanel::start();
    let resp = reqwest::Client::new()
        .post(format!("{}/api/user", panel.url()))
        .header("content-type", "application/json")
        .body("{\"username\": ")
        .send()
        .await
        .unwrap();
    let (status, body) = read(resp).await;
    assert_eq!(status, 422);
    let detail = body["detail"].as_object().unwrap();
    assert_eq!(detail.values().next().unwrap(), "JSON decode error");
}

// ---------------------------------------------------------------------------------------------
// Modify

#[tokio::test]
async fn put_omitted_fields_stay_unchanged_and_zero_clears() {
    let api = api().await;
    let expire = now_ts() + 86400;
    let before = api
        .create(
            "tg_1",
            json!({"expire": expire, "data_limit": 10 * GIB, "note": "n", "data_limit_reset_strategy": "month"}),
        )
        .await;
    let (status, after) = api
        .put("/api/user/tg_1", json!({"note": null, "status": null}))
        .await;
    assert_eq!(status, 200);
    for field in [
        "expire",
        "data_limit",
        "note",
        "status",
        "data_limit_reset_strategy",
        "proxies",
        "inbounds",
    ] {
        assert_eq!(after[field], before[field], "{field}");
    }
    let (_, cleared) = api
        .put(
            "/api/user/tg_1",
            json!({"expire": 0, "data_limit": 0, "note": "", "proxies": {}, "inbounds": {}}),
        )
        .await;
    assert!(cleared["expire"].is_null() && cleared["data_limit"].is_null());
    assert!(cleared["note"].is_null());
    assert_eq!(cleared["status"], "active");
    assert_eq!(cleared["proxies"], before["proxies"]);
}

#[tokio::test]
async fn put_proxies_replaces_the_set_and_inbounds_per_protocol() {
    let api = api().await;
    let user = api
        .create("tg_1", json!({"inbounds": {"vless": ["VLESS WS"]}}))
        .await;
    let id = user["proxies"]["vless"]["id"].clone();
    let (status, user) = api
        .put(
            "/api/user/tg_1",
            json!({"proxies": {"vless": {"id": id}, "trojan": {}}}),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(user["proxies"]["vless"]["id"], id);
    assert_eq!(
        user["inbounds"],
        json!({"vless": ["VLESS WS"], "trojan": ["TROJAN WS"]})
    );
    let (_, user) = api
        .put("/api/user/tg_1", json!({"proxies": {"trojan": {}}}))
        .await;
    assert_eq!(user["proxies"].as_object().unwrap().len(), 1);
    let (_, user) = api
        .put("/api/user/tg_1", json!({"inbounds": {"trojan": []}}))
        .await;
    assert_eq!(user["inbounds"], json!({"trojan": []}));
    assert_eq!(user["links"], json!([]));
    let (status, body) = api
        .put("/api/user/tg_1", json!({"proxies": {"vmess": {}}}))
        .await;
    assert_eq!(
        (status, &body["detail"]),
        (400, &json!("Protocol vmess is disabled on your server"))
    );
}

#[tokio::test]
async fn put_future_expire_renews_an_expired_user() {
    let api = api().await;
    api.create("tg_1", json!({"expire": now_ts() + 3600})).await;
    api.panel
        .update_user("tg_1", |u| u.expire = Some(now_ts() - 60));
    let (_, user) = api.get("/api/user/tg_1").await;
    assert_eq!(user["status"], "expired");
    assert_eq!(api.panel.user("tg_1").unwrap().status, "expired");

    let renewed = now_ts() + 30 * 86400;
    let (status, user) = api.put("/api/user/tg_1", json!({"expire": renewed})).await;
    assert_eq!(status, 200);
    assert_eq!(user["status"], "active");
    assert_eq!(user["expire"], renewed);
    assert_eq!(api.get("/api/user/tg_1").await.1["status"], "active");
}

#[tokio::test]
async fn put_past_expire_expires_an_active_user() {
    let api = api().await;
    api.create("tg_1", json!({})).await;
    let (_, user) = api
        .put("/api/user/tg_1", json!({"expire": now_ts() - 10}))
        .await;
    assert_eq!(user["status"], "expired");
}

#[tokio::test]
async fn put_data_limit_recomputes_limited_and_active() {
    let api = api().await;
    api.create("tg_1", json!({"data_limit": 10 * GIB})).await;
    api.panel.update_user("tg_1", |u| u.used_traffic = 5 * GIB);
    let (_, user) = api
        .put("/api/user/tg_1", json!({"data_limit": 4 * GIB}))
        .await;
    assert_eq!(user["status"], "limited");
    let (_, user) = api
        .put("/api/user/tg_1", json!({"data_limit": 20 * GIB}))
        .await;
    assert_eq!(user["status"], "active");
    api.panel.update_user("tg_1", |u| u.used_traffic = 20 * GIB);
    assert_eq!(api.get("/api/user/tg_1").await.1["status"], "limited");
    let (_, user) = api.put("/api/user/tg_1", json!({"data_limit": 0})).await;
    assert_eq!(user["status"], "active");
    assert!(user["data_limit"].is_null());
}

#[tokio::test]
async fn put_does_not_reactivate_a_disabled_user() {
    let api = api().await;
    api.create("tg_1", json!({})).await;
    let (_, user) = api
        .put("/api/user/tg_1", json!({"status": "disabled"}))
        .await;
    assert_eq!(user["status"], "disabled");
    let (_, user) = api
        .put(
            "/api/user/tg_1",
            json!({"expire": now_ts() + 86400, "data_limit": 10 * GIB}),
        )
        .await;
    assert_eq!(user["status"], "disabled");
    let (_, user) = api.put("/api/user/tg_1", json!({"status": "active"})).await;
    assert_eq!(user["status"], "active");
}

#[tokio::test]
async fn put_without_next_plan_drops_it() {
    let api = api().await;
    let user = api
        .create(
            "tg_1",
            json!({"next_plan": {"data_limit": GIB, "expire": 86400}}),
        )
        .await;
    assert_eq!(
        user["next_plan"],
        json!({"data_limit": GIB, "expire": 86400, "add_remaining_traffic": false, "fire_on_either": true})
    );
    let (_, user) = api.put("/api/user/tg_1", json!({"note": "x"})).await;
    assert!(user["next_plan"].is_null());
    assert!(api.panel.user("tg_1").unwrap().next_plan.is_none());
}

#[tokio::test]
async fn put_rejects_computed_statuses_and_unknown_users() {
    let api = api().await;
    api.create("tg_1", json!({})).await;
    for status in ["limited", "expired", "paused"] {
        let (code, body) = api.put("/api/user/tg_1", json!({"status": status})).await;
        assert_eq!(code, 422);
        assert!(body["detail"]["status"].is_string());
    }
    // 404 wins over an invalid body: the user dependency resolves first.
    let (code, body) = api
        .put("/api/user/nobody", json!({"status": "limited"}))
        .await;
    assert_eq!((code, body), (404, json!({"detail": "User not found"})));
}

// ---------------------------------------------------------------------------------------------
// Reset, revoke, delete

#[tokio::test]
async fn reset_zeroes_usage_keeps_lifetime_and_reactivates_all_but_expired() {
    let api = api().await;
    api.create(
        "tg_1",
        json!({"data_limit": GIB, "next_plan": {"data_limit": GIB}}),
    )
    .await;
    api.panel.update_user("tg_1", |u| u.used_traffic = 2 * GIB);
    let (status, user) = api.post_empty("/api/user/tg_1/reset").await;
    assert_eq!(status, 200);
    assert_eq!(user["used_traffic"], 0);
    assert_eq!(user["lifetime_used_traffic"], 2 * GIB);
    assert_eq!(user["status"], "active");
    assert!(user["next_plan"].is_null());

    api.put("/api/user/tg_1", json!({"status": "disabled"}))
        .await;
    let (_, user) = api.post_empty("/api/user/tg_1/reset").await;
    assert_eq!(
        user["status"], "active",
        "0.8.4 quirk: disabled becomes active"
    );

    api.panel
        .update_user("tg_1", |u| u.expire = Some(now_ts() - 1));
    let (_, user) = api.post_empty("/api/user/tg_1/reset").await;
    assert_eq!(user["status"], "expired");
    assert_eq!(api.post_empty("/api/user/nobody/reset").await.0, 404);
}

#[tokio::test]
async fn revoke_sub_changes_credentials_and_kills_old_subscription_urls() {
    let api = api().await;
    let before = api
        .create(
            "tg_1",
            json!({"proxies": {"vless": {"flow": "xtls-rprx-vision"}, "trojan": {}}}),
        )
        .await;
    let old_url = before["subscription_url"].as_str().unwrap().to_owned();
    let (status, after) = api.post_empty("/api/user/tg_1/revoke_sub").await;
    assert_eq!(status, 200);
    assert_ne!(
        after["proxies"]["vless"]["id"],
        before["proxies"]["vless"]["id"]
    );
    assert_eq!(after["proxies"]["vless"]["flow"], "xtls-rprx-vision");
    assert_ne!(
        after["proxies"]["trojan"]["password"],
        before["proxies"]["trojan"]["password"]
    );
    assert_ne!(after["links"], before["links"]);
    let new_url = after["subscription_url"].as_str().unwrap();
    assert!(api.panel.user("tg_1").unwrap().sub_revoked_at.is_some());

    let old = reqwest::get(api.url(&old_url)).await.unwrap();
    assert_eq!(read(old).await, (404, json!({"detail": "Not Found"})));
    let new = reqwest::get(api.url(new_url)).await.unwrap();
    assert!(
        new.headers()["subscription-userinfo"]
            .to_str()
            .unwrap()
            .starts_with("upload=0; download=0;")
    );
    assert_eq!(new.status(), 200);
    assert!(!api.panel.subscription_valid(&old_url));
    assert!(api.panel.subscription_valid(new_url));
}

#[tokio::test]
async fn delete_user_then_404_and_old_subscription_dies() {
    let api = api().await;
    let user = api.create("tg_1", json!({})).await;
    let (status, body) = api.delete("/api/user/tg_1").await;
    assert_eq!(
        (status, body),
        (200, json!({"detail": "User successfully deleted"}))
    );
    assert_eq!(api.get("/api/user/tg_1").await.0, 404);
    assert_eq!(api.delete("/api/user/tg_1").await.0, 404);

    api.create("tg_1", json!({})).await;
    assert!(
        !api.panel
            .subscription_valid(user["subscription_url"].as_str().unwrap())
    );
}

/// 0.8.4: a user created by the env sudoer has no owner, and its DELETE deletes it, then fails
/// building the report: 500, every time; a user with an owner is deleted with 200.
#[tokio::test]
async fn deleting_a_user_of_the_env_sudoer_deletes_it_but_answers_500_every_time() {
    let api = api().await;
    let sudoer = login_as(
        &api.http,
        &api.panel.url(),
        ENV_SUDO_USERNAME,
        ENV_SUDO_PASSWORD,
    )
    .await;
    for name in ["tg_1", "tg_2"] {
        let body = json!({"username": name, "proxies": {"vless": {}}, "inbounds": {}});
        let (status, user) = api
            .call_as(&sudoer, Method::POST, "/api/user", Some(body))
            .await;
        assert_eq!(status, 200, "{user}");
        assert_eq!(user["admin"], Value::Null, "the env sudoer owns nothing");
    }
    for name in ["tg_1", "tg_2"] {
        let path = format!("/api/user/{name}");
        let (status, body) = api.delete(&path).await;
        assert_eq!(
            (status, body),
            (500, Value::String("Internal Server Error".into()))
        );
        assert!(api.panel.user(name).is_none(), "deleted all the same");
        assert_eq!(api.delete(&path).await.0, 404);
    }
    api.create("tg_3", json!({})).await;
    assert_eq!(
        api.delete("/api/user/tg_3").await,
        (200, json!({"detail": "User successfully deleted"}))
    );
}

/// A regular (non-sudo) admin sees and changes only the users it owns.
#[tokio::test]
async fn a_regular_admin_sees_and_changes_only_its_own_users() {
    let api = api().await;
    api.panel.add_admin("reseller", "reseller-password", false);
    let reseller = login_as(&api.http, &api.panel.url(), "reseller", "reseller-password").await;
    let claims = jwt_claims(&reseller);
    assert_eq!(
        (claims["sub"].as_str(), claims["access"].as_str()),
        (Some("reseller"), Some("admin"))
    );
    let (status, me) = api
        .call_as(&reseller, Method::GET, "/api/admin", None)
        .await;
    assert_eq!(
        (status, &me["username"], &me["is_sudo"]),
        (200, &json!("reseller"), &json!(false))
    );

    api.create("tg_sudo", json!({})).await;
    let body = json!({"username": "tg_own", "proxies": {"vless": {}}, "inbounds": {}});
    let (status, own) = api
        .call_as(&reseller, Method::POST, "/api/user", Some(body))
        .await;
    assert_eq!(status, 200, "{own}");
    assert_eq!(own["admin"]["username"], "reseller");
    assert_eq!(own["admin"]["is_sudo"], false);

    // Another admin's user: 403 on every user route; a missing user is still 404.
    let forbidden = (403, json!({"detail": "You're not allowed"}));
    let other = "/api/user/tg_sudo";
    assert_eq!(
        api.call_as(&reseller, Method::GET, other, None).await,
        forbidden
    );
    let put = Some(json!({"status": "disabled"}));
    assert_eq!(
        api.call_as(&reseller, Method::PUT, other, put).await,
        forbidden
    );
    assert_eq!(
        api.call_as(&reseller, Method::DELETE, other, None).await,
        forbidden
    );
    for suffix in ["/reset", "/revoke_sub"] {
        let path = format!("{other}{suffix}");
        assert_eq!(
            api.call_as(&reseller, Method::POST, &path, None).await,
            forbidden
        );
    }
    let missing = api
        .call_as(&reseller, Method::GET, "/api/user/nobody", None)
        .await;
    assert_eq!(missing, (404, json!({"detail": "User not found"})));
    assert_eq!(
        api.panel.user("tg_sudo").unwrap().status,
        "active",
        "nothing applied"
    );

    // The list is filtered to its own users; the owner filter is a sudo's only.
    for query in ["", "?admin=admin"] {
        let (status, page) = api
            .call_as(&reseller, Method::GET, &format!("/api/users{query}"), None)
            .await;
        assert_eq!(status, 200);
        assert_eq!(page["total"], 1, "{query}: {page}");
        assert_eq!(page["users"][0]["username"], "tg_own");
    }
    let (_, system) = api
        .call_as(&reseller, Method::GET, "/api/system", None)
        .await;
    assert_eq!(system["total_user"], 1);
    // Its own user it may change; the sudo sees both.
    let (status, _) = api
        .call_as(
            &reseller,
            Method::PUT,
            "/api/user/tg_own",
            Some(json!({"status": "disabled"})),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(api.get("/api/users").await.1["total"], 2);
    let (_, filtered) = api.get("/api/users?admin=reseller").await;
    assert_eq!(filtered["users"][0]["username"], "tg_own");
    assert_eq!(filtered["total"], 1);
}

#[tokio::test]
async fn a_refusing_panel_refuses_connections_and_keeps_its_users_and_tokens() {
    let api = api().await;
    api.create("tg_1", json!({})).await;
    api.panel.refuse_connections(true);
    let error = reqwest::Client::new()
        .get(api.url("/api/user/tg_1"))
        .bearer_auth(&api.token)
        .send()
        .await
        .expect_err("nothing listens");
    assert!(error.is_connect(), "{error:?}");
    api.panel.refuse_connections(false);
    // A new client: the old one's pooled connection died with the stopped server.
    let (status, user) = read(
        reqwest::Client::new()
            .get(api.url("/api/user/tg_1"))
            .bearer_auth(&api.token)
            .send()
            .await
            .expect("it listens again"),
    )
    .await;
    assert_eq!((status, &user["username"]), (200, &json!("tg_1")));
}

#[tokio::test]
async fn a_hanging_panel_answers_nothing_and_applies_nothing_until_the_hang_ends() {
    let api = api().await;
    api.panel.clear_requests();
    api.panel.set_hanging(true);
    let impatient = reqwest::Client::builder()
        .timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let body = json!({"username": "tg_1", "proxies": {"vless": {}}, "inbounds": {}});
    let error = impatient
        .post(api.url("/api/user"))
        .bearer_auth(&api.token)
        .json(&body)
        .send()
        .await
        .expect_err("no answer");
    assert!(error.is_timeout(), "{error:?}");
    let hung = api.panel.requests();
    assert_eq!(hung.len(), 1);
    assert_eq!((hung[0].route.as_str(), hung[0].status), ("/api/user", 0));
    assert_eq!(api.panel.user_count(), 0, "nothing applied");
    api.panel.set_hanging(false);
    api.create("tg_1", json!({})).await;
    assert_eq!(api.panel.user_count(), 1);
}

// ---------------------------------------------------------------------------------------------
// Listing and system

#[tokio::test]
async fn users_paging_total_and_creation_order() {
    let api = api().await;
    for i in 0..7 {
        api.panel.insert_user(FakeUser::new(&format!("user_{i}")));
    }
    let mut seen = Vec::new();
    let mut offset = 0;
    loop {
        let (status, page) = api
            .get(&format!("/api/users?offset={offset}&limit=3"))
            .await;
        assert_eq!(status, 200);
        assert_eq!(page["total"], 7);
        let users = page["users"].as_array().unwrap();
        seen.extend(
            users
                .iter()
                .map(|u| u["username"].as_str().unwrap().to_owned()),
        );
        offset += 3;
        if offset >= 7 {
            break;
        }
        assert_eq!(users.len(), 3);
    }
    let expected: Vec<String> = (0..7).map(|i| format!("user_{i}")).collect();
    assert_eq!(seen, expected);
    let (_, all) = api.get("/api/users").await;
    assert_eq!(all["users"].as_array().unwrap().len(), 7);
}

#[tokio::test]
async fn users_search_matches_username_or_note_case_insensitively() {
    let api = api().await;
    api.create("tg_100", json!({"note": "Order 42"})).await;
    api.create("tg_200", json!({})).await;
    api.create("web_300", json!({"note": "from TG"})).await;
    let names = |page: &Value| -> Vec<String> {
        page["users"]
            .as_array()
            .unwrap()
            .iter()
            .map(|u| u["username"].as_str().unwrap().to_owned())
            .collect()
    };
    let (_, page) = api.get("/api/users?search=TG").await;
    assert_eq!(names(&page), ["tg_100", "tg_200", "web_300"]);
    let (_, page) = api.get("/api/users?search=order").await;
    assert_eq!(names(&page), ["tg_100"]);
    assert_eq!(page["total"], 1);
    let (_, page) = api.get("/api/users?username=TG_200&username=web_300").await;
    assert_eq!(names(&page), ["tg_200", "web_300"]);
}

#[tokio::test]
async fn users_status_filter_and_sort() {
    let api = api().await;
    api.create("b_user", json!({"data_limit": GIB})).await;
    api.create("a_user", json!({"data_limit": 2 * GIB})).await;
    api.create("c_user", json!({})).await;
    api.put("/api/user/c_user", json!({"status": "disabled"}))
        .await;
    let (_, page) = api.get("/api/users?status=disabled").await;
    assert_eq!(page["total"], 1);
    assert_eq!(page["users"][0]["username"], "c_user");

    let order = |page: &Value| -> Vec<String> {
        page["users"]
            .as_array()
            .unwrap()
            .iter()
            .map(|u| u["username"].as_str().unwrap().to_owned())
            .collect()
    };
    let (_, page) = api.get("/api/users?sort=username").await;
    assert_eq!(order(&page), ["a_user", "b_user", "c_user"]);
    let (_, page) = api.get("/api/users?sort=-data_limit").await;
    assert_eq!(
        order(&page),
        ["a_user", "b_user", "c_user"],
        "NULL last descending"
    );
    let (_, page) = api.get("/api/users?sort=data_limit,-username").await;
    assert_eq!(order(&page), ["c_user", "b_user", "a_user"]);

    let (status, body) = api.get("/api/users?sort=username,x").await;
    assert_eq!(
        (status, body),
        (400, json!({"detail": "\"x\" is not a valid sort option"}))
    );
    let (status, body) = api.get("/api/users?status=paused").await;
    assert_eq!(status, 422);
    assert!(body["detail"]["status"].is_string());
}

#[tokio::test]
async fn system_counts_users_by_status_and_online() {
    let api = api().await;
    let now = Utc::now().naive_utc();
    api.panel.insert_user(FakeUser {
        online_at: Some(now - chrono::TimeDelta::hours(1)),
        ..FakeUser::new("active_1")
    });
    api.panel.insert_user(FakeUser {
        online_at: Some(now - chrono::TimeDelta::hours(30)),
        ..FakeUser::new("active_2")
    });
    api.panel.insert_user(FakeUser {
        expire: Some(now_ts() - 5),
        ..FakeUser::new("expired_1")
    });
    api.panel.insert_user(FakeUser {
        data_limit: Some(GIB),
        used_traffic: GIB,
        ..FakeUser::new("limited_1")
    });
    api.panel.insert_user(FakeUser {
        status: "disabled".into(),
        ..FakeUser::new("disabled_1")
    });
    api.panel.insert_user(FakeUser {
        status: "on_hold".into(),
        on_hold_expire_duration: Some(86400),
        ..FakeUser::new("on_hold_1")
    });
    api.panel.set_system(SystemInfo {
        cpu_cores: 8,
        ..SystemInfo::default()
    });
    let (status, sys) = api.get("/api/system").await;
    assert_eq!(status, 200);
    assert_eq!(sys["version"], "0.8.4");
    assert_eq!(sys["cpu_cores"], 8);
    assert_eq!(sys["total_user"], 6);
    assert_eq!(sys["users_active"], 2);
    assert_eq!(sys["users_expired"], 1);
    assert_eq!(sys["users_limited"], 1);
    assert_eq!(sys["users_disabled"], 1);
    assert_eq!(sys["users_on_hold"], 1);
    assert_eq!(sys["online_users"], 1);
    for field in [
        "mem_total",
        "mem_used",
        "incoming_bandwidth",
        "outgoing_bandwidth_speed",
    ] {
        assert!(sys[field].is_i64(), "{field}");
    }
}

#[tokio::test]
async fn on_hold_user_activates_on_first_connection() {
    let api = api().await;
    api.create(
        "tg_1",
        json!({"status": "on_hold", "on_hold_expire_duration": 86400}),
    )
    .await;
    assert_eq!(api.get("/api/user/tg_1").await.1["status"], "on_hold");
    api.panel
        .update_user("tg_1", |u| u.online_at = Some(Utc::now().naive_utc()));
    let (_, user) = api.get("/api/user/tg_1").await;
    assert_eq!(user["status"], "active");
    let expire = user["expire"].as_i64().unwrap();
    assert!((expire - (now_ts() + 86400)).abs() <= 2);
    assert!(user["on_hold_expire_duration"].is_null());
}

#[tokio::test]
async fn set_inbounds_changes_protocols_and_links() {
    let api = api().await;
    api.create("tg_1", json!({})).await;
    api.panel.set_inbounds(BTreeMap::from([
        (
            "vless".to_owned(),
            vec!["VLESS TCP REALITY".to_owned(), "VLESS GRPC".to_owned()],
        ),
        ("vmess".to_owned(), vec!["VMESS TCP".to_owned()]),
    ]));
    let (_, user) = api.get("/api/user/tg_1").await;
    assert_eq!(
        user["inbounds"],
        json!({"vless": ["VLESS TCP REALITY", "VLESS GRPC"]})
    );
    api.create("tg_2", json!({"proxies": {"vmess": {}}})).await;
    let (status, _) = api
        .post(
            "/api/user",
            json!({"username": "tg_3", "proxies": {"trojan": {}}, "inbounds": {}}),
        )
        .await;
    assert_eq!(status, 400);
}

// ---------------------------------------------------------------------------------------------
// Faults and the recorder

#[tokio::test]
async fn fail_next_answers_the_status_without_applying() {
    let api = api().await;
    api.panel.fail_next(2, 502);
    let body = json!({"username": "tg_1", "proxies": {"vless": {}}, "inbounds": {}});
    let (status, resp) = api.post("/api/user", body.clone()).await;
    assert_eq!(
        (status, resp),
        (502, json!({"detail": "Internal Server Error"}))
    );
    assert_eq!(api.get("/api/user/tg_1").await.0, 502);
    assert!(api.panel.user("tg_1").is_none());
    assert_eq!(api.post("/api/user", body).await.0, 200);
}

#[tokio::test]
async fn fail_next_spares_the_login() {
    let api = api().await;
    api.panel.fail_next(1, 500);
    login(&api.http, &api.panel.url()).await;
    assert_eq!(api.get("/api/admin").await.0, 500);
    assert_eq!(api.get("/api/admin").await.0, 200);
}

#[tokio::test]
async fn time_out_next_applies_but_answers_late() {
    let api = api().await;
    // The client gives up long before the answer; dropping the panel does not wait for it.
    api.panel.time_out_next(1, Duration::from_secs(2));
    let result = api
        .http
        .post(api.url("/api/user"))
        .bearer_auth(&api.token)
        .timeout(Duration::from_millis(100))
        .json(&json!({"username": "tg_1", "proxies": {"vless": {}}, "inbounds": {}}))
        .send()
        .await;
    assert!(result.unwrap_err().is_timeout());
    // Applied although the client gave up; the panel keeps answering meanwhile.
    assert!(api.panel.user("tg_1").is_some());
    let (status, _) = api
        .post(
            "/api/user",
            json!({"username": "tg_1", "proxies": {"vless": {}}, "inbounds": {}}),
        )
        .await;
    assert_eq!(status, 409);
}

#[tokio::test]
async fn outage_rejects_everything_including_login() {
    let api = api().await;
    api.panel.set_outage(true);
    let resp = api
        .http
        .post(api.url("/api/admin/token"))
        .form(&[("username", ADMIN_USERNAME), ("password", ADMIN_PASSWORD)])
        .send()
        .await
        .unwrap();
    assert_eq!(
        read(resp).await,
        (503, json!({"detail": "Service Unavailable"}))
    );
    let (status, _) = api
        .post(
            "/api/user",
            json!({"username": "tg_1", "proxies": {"vless": {}}, "inbounds": {}}),
        )
        .await;
    assert_eq!(status, 503);
    assert!(api.panel.user("tg_1").is_none());
    api.panel.set_outage(false);
    assert_eq!(api.get("/api/admin").await.0, 200);
    assert_eq!(api.panel.logins(), 1);
}

#[tokio::test]
async fn latency_delays_answers_without_blocking_others() {
    let api = api().await;
    api.panel.set_latency(Duration::from_millis(200));
    let started = Instant::now();
    let calls = (0..20).map(|_| api.get("/api/admin"));
    let results = futures_util::future::join_all(calls).await;
    assert!(results.iter().all(|(status, _)| *status == 200));
    let elapsed = started.elapsed();
    assert!(elapsed >= Duration::from_millis(200), "{elapsed:?}");
    // Not blocking others: while one request is held at the door, another is answered.
    api.panel.set_latency(Duration::ZERO);
    let held = api.panel.hold_next("GET", "/api/admin");
    let first = api.get("/api/admin");
    let second = async {
        held.wait_arrived().await;
        let answer = api.get("/api/admin").await;
        held.release();
        answer
    };
    let ((first, _), (second, _)) = tokio::join!(first, second);
    assert_eq!((first, second), (200, 200));
}

#[tokio::test]
async fn recorder_counts_requests_by_route_pattern() {
    let api = api().await;
    api.panel.clear_requests();
    api.create("tg_1", json!({})).await;
    api.put("/api/user/tg_1", json!({"note": "a"})).await;
    api.put("/api/user/TG_1", json!({"note": "b"})).await;
    api.get("/api/users?limit=10").await;
    api.get("/api/nowhere").await;
    assert_eq!(api.panel.count("POST", "/api/user"), 1);
    assert_eq!(api.panel.count("PUT", "/api/user/{username}"), 2);
    assert_eq!(api.panel.count("get", "/api/users"), 1);
    assert_eq!(api.panel.count("POST", "/api/admin/token"), 0);
    let requests = api.panel.requests();
    assert_eq!(requests.len(), 5);
    let put = &requests[2];
    assert_eq!(put.path, "/api/user/TG_1");
    assert_eq!(put.body, Some(json!({"note": "b"})));
    assert_eq!(put.status, 200);
    assert_eq!(requests[3].query, "limit=10");
    assert_eq!(
        (requests[4].route.as_str(), requests[4].status),
        ("/api/nowhere", 404)
    );
    api.panel.clear_requests();
    assert!(api.panel.requests().is_empty());
}

/// Pages anywhere in 10k users, a search, lookups (case-insensitive) and creates answer right.
/// How fast is the benchmarks' business (`cargo bench --bench marzban_sync`): a time limit here
/// failed on a busy machine and proved nothing on an idle one.
#[tokio::test]
async fn ten_thousand_users_page_search_and_look_up_right() {
    let api = api().await;
    for i in 0..10_000 {
        api.panel.insert_user(FakeUser::new(&format!("tg_{i}")));
    }
    for offset in [0, 2_500, 5_000, 9_900] {
        let (status, page) = api
            .get(&format!("/api/users?offset={offset}&limit=100"))
            .await;
        assert_eq!(status, 200);
        assert_eq!(page["total"], 10_000);
        let users = page["users"].as_array().unwrap();
        assert_eq!(users.len(), 100);
        assert_eq!(users[0]["username"], format!("tg_{offset}"));
    }
    let (_, found) = api.get("/api/users?search=tg_9999&limit=10").await;
    assert_eq!(found["total"], 1);
    for i in 0..200 {
        api.create(&format!("new_{i}"), json!({})).await;
        let (status, _) = api.get(&format!("/api/user/TG_{}", i * 50)).await;
        assert_eq!(status, 200);
    }
    assert_eq!(api.panel.user_count(), 10_200);
    assert_eq!(api.panel.users().len(), 10_200);
}

#[tokio::test]
async fn panel_stops_when_dropped() {
    let panel = FakePanel::start();
    let url = panel.url();
    assert_eq!(
        reqwest::get(format!("{url}/api/admin"))
            .await
            .unwrap()
            .status(),
        StatusCode::UNAUTHORIZED
    );
    drop(panel);
    assert!(reqwest::get(format!("{url}/api/admin")).await.is_err());
}

#[tokio::test]
async fn answers_while_the_test_runtime_is_blocked() {
    use std::io::{Read, Write};
    let panel = FakePanel::start();
    // A blocking exchange on the test's only runtime thread: the panel must not need it.
    let addr = panel.url().trim_start_matches("http://").to_owned();
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream
        .write_all(b"GET /api/admin HTTP/1.1\r\nHost: panel\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    assert!(response.starts_with("HTTP/1.1 401"), "{response}");
    assert!(
        response.ends_with(r#"{"detail":"Not authenticated"}"#),
        "{response}"
    );
}

#[actix_rt::test]
async fn works_from_an_actix_runtime() {
    let panel = FakePanel::start();
    let token = login(&reqwest::Client::new(), &panel.url()).await;
    assert!(!token.is_empty());
}
