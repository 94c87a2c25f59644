//! Starts the real app (actors + HTTP server on a random 127.0.0.1 port) on a fresh database.

use vpn_shop::app::{self, RunningApp};
use vpn_shop::config::{RawConfig, Settings};
use vpn_shop::db::admins;
use vpn_shop::domain::{AdminRole, password};

use super::db::TestDb;

pub const TEST_JWT_SECRET: &str = "test-secret-that-is-long-enough-0123456789";

pub struct TestApp {
    pub app: RunningApp,
    pub db: TestDb,
    pub base_url: String,
    pub http: reqwest::Client,
    pub settings: Settings,
    _data_dir: tempfile::TempDir,
}

/// Settings for a test: defaults, then these, then `overrides`.
pub fn test_settings(
    db: &TestDb,
    data_dir: &std::path::Path,
    overrides: &[(&str, &str)],
) -> Settings {
    let mut env = vec![
        ("DATABASE_URL".to_owned(), db.url.clone()),
        ("HTTP_BIND".to_owned(), "127.0.0.1:0".to_owned()),
        ("DATA_DIR".to_owned(), data_dir.display().to_string()),
        ("JWT_SECRET".to_owned(), TEST_JWT_SECRET.to_owned()),
        ("SHUTDOWN_TIMEOUT".to_owned(), "5s".to_owned()),
        // Tests fire requests faster than a person; the limit has tests of its own.
        ("API_RATE_LIMIT".to_owned(), "off".to_owned()),
        // Tests send many refused webhooks from 127.0.0.1 on purpose; so does one of its own.
        ("WEBHOOK_REFUSAL_LIMIT".to_owned(), "off".to_owned()),
    ];
    env.extend(
        overrides
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string())),
    );
    Settings::from_raw(&RawConfig::layered(None, None, env).expect("raw config"))
        .expect("valid test settings")
}

/// The argon2 hash of `pw`, made once per test process and password: hashing is deliberately
/// slow (~0.2 s here), and a few hundred tests create admins. Logging in still verifies it.
fn hash_of(pw: &str) -> String {
    static HASHES: std::sync::Mutex<std::collections::BTreeMap<String, String>> =
        std::sync::Mutex::new(std::collections::BTreeMap::new());
    let mut hashes = HASHES.lock().unwrap_or_else(|e| e.into_inner());
    hashes
        .entry(pw.to_owned())
        .or_insert_with(|| password::hash(pw).expect("hash"))
        .clone()
}

/// Must be called inside an actix System (`#[actix_rt::test]`).
pub async fn spawn_app(overrides: &[(&str, &str)]) -> TestApp {
    let db = TestDb::new().await;
    let data_dir = tempfile::tempdir().expect("temp data dir");
    let settings = test_settings(&db, data_dir.path(), overrides);
    let app = app::start(&settings, &db.url).await.expect("app starts");
    let base_url = format!("http://{}", app.http_addr());
    TestApp {
        app,
        db,
        base_url,
        http: reqwest::Client::new(),
        settings,
        _data_dir: data_dir,
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    /// Creates an admin account directly in the database.
    pub async fn create_admin(&self, username: &str, pw: &str, role: AdminRole) {
        let hash = hash_of(pw);
        let mut conn = self.db.connect().await;
        admins::create(&mut conn, username, &hash, role)
            .await
            .expect("insert admin")
            .expect("new username");
    }

    /// Logs in and returns the access token.
    pub async fn login(&self, username: &str, pw: &str) -> String {
        let resp = self
            .http
            .post(self.url("/api/v1/auth/login"))
            .json(&serde_json::json!({"username": username, "password": pw}))
            .send()
            .await
            .expect("login request");
        assert_eq!(resp.status(), 200, "login of {username} failed");
        let body: serde_json::Value = resp.json().await.expect("json");
        body["access_token"].as_str().expect("token").to_owned()
    }

    /// An admin with `role` and its token.
    pub async fn token_for(&self, role: AdminRole) -> String {
        let username = format!("{}-user", role.as_str());
        let pw = "a password long enough";
        self.create_admin(&username, pw, role).await;
        self.login(&username, pw).await
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> reqwest::Response {
        let mut req = self.http.get(self.url(path));
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        req.send().await.expect("request")
    }

    /// A request with an optional bearer token and JSON body; the answer's status and JSON body
    /// (`Value::Null` when the body is not JSON).
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<serde_json::Value>,
    ) -> (u16, serde_json::Value) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("HTTP method");
        let mut req = self.http.request(method, self.url(path));
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        if let Some(body) = body {
            req = req.json(&body);
        }
        let resp = req.send().await.expect("request");
        let status = resp.status().as_u16();
        let body = resp.json().await.unwrap_or(serde_json::Value::Null);
        (status, body)
    }

    /// Checks the guard of an endpoint that needs `role`: 401 without a token (and with a bad
    /// one), 403 for the role below it (when there is one). Creates the lower-role admin.
    pub async fn assert_guarded(
        &self,
        method: &str,
        path: &str,
        body: Option<serde_json::Value>,
        role: AdminRole,
    ) {
        let (status, reply) = self.call(method, path, None, body.clone()).await;
        assert_eq!(status, 401, "{method} {path} without a token: {reply}");
        assert_eq!(reply["error"]["code"], "unauthorized", "{reply}");
        let (status, _) = self
            .call(method, path, Some("not-a-token"), body.clone())
            .await;
        assert_eq!(status, 401, "{method} {path} with a bad token");
        let below = match role {
            AdminRole::Viewer => return,
            AdminRole::Operator => AdminRole::Viewer,
            AdminRole::Admin => AdminRole::Operator,
        };
        let username = format!("guard-{}", below.as_str());
        let pw = "a password long enough";
        let mut conn = self.db.connect().await;
        if admins::find_by_username(&mut conn, &username)
            .await
            .expect("find admin")
            .is_none()
        {
            self.create_admin(&username, pw, below).await;
        }
        let token = self.login(&username, pw).await;
        let (status, reply) = self.call(method, path, Some(&token), body).await;
        assert_eq!(status, 403, "{method} {path} as {below}: {reply}");
        assert_eq!(reply["error"]["code"], "forbidden", "{reply}");
    }

    /// Waits (20 s at most) until no job of `kind` is pending or running.
    pub async fn wait_jobs_idle(&self, kind: &str) {
        use diesel::prelude::*;
        use diesel_async::RunQueryDsl;
        use vpn_shop::db::schema::jobs;
        use vpn_shop::domain::JobState;
        let what = format!("{kind} jobs to finish");
        super::wait_until_within(&what, std::time::Duration::from_secs(20), || async {
            let busy: i64 = jobs::table
                .filter(jobs::kind.eq(kind))
                .filter(jobs::state.eq_any([JobState::Pending, JobState::Running]))
                .count()
                .get_result(&mut self.db.connect().await)
                .await
                .expect("count jobs");
            busy == 0
        })
        .await;
    }

    /// A checkout of `plan` by `user` through `provider` that opens a payment page: the order.
    pub async fn checkout_page(
        &self,
        user: vpn_shop::domain::UserId,
        plan: vpn_shop::domain::PlanId,
        provider: vpn_shop::domain::PaymentProvider,
    ) -> vpn_shop::domain::PaymentId {
        use vpn_shop::actors::payments::{Checkout, CreateCheckout};
        let checkout = self
            .app
            .payments
            .addr()
            .send(CreateCheckout {
                user_id: user,
                plan_id: plan,
                provider,
                promo_code: None,
                auto_renew: false,
                return_to: vpn_shop::actors::payments::ReturnTo::Bot,
            })
            .await
            .expect("the payment processor answers")
            .expect("a checkout");
        match checkout {
            Checkout::Redirect { order_id, .. } => order_id,
            other => panic!("not a payment page: {other:?}"),
        }
    }

    /// Rows of the audit log with this action.
    pub async fn audit_rows(&self, action: &str) -> Vec<serde_json::Value> {
        use diesel::sql_types::Text;
        use diesel_async::RunQueryDsl;
        #[derive(diesel::QueryableByName)]
        struct Row {
            #[diesel(sql_type = diesel::sql_types::Jsonb)]
            row: serde_json::Value,
        }
        let mut conn = self.db.connect().await;
        diesel::sql_query(
            "SELECT to_jsonb(a) AS row FROM audit_log a WHERE action = $1 ORDER BY id",
        )
        .bind::<Text, _>(action)
        .load::<Row>(&mut conn)
        .await
        .expect("audit rows")
        .into_iter()
        .map(|r| r.row)
        .collect()
    }

    /// Stops the app (as a crash or a deploy would, between two requests) and starts a new one
    /// on the same database, data directory and settings.
    pub async fn restart(self) -> TestApp {
        let TestApp {
            app,
            db,
            http,
            settings,
            _data_dir,
            ..
        } = self;
        app.shutdown().await;
        let app = app::start(&settings, &db.url).await.expect("app restarts");
        TestApp {
            base_url: format!("http://{}", app.http_addr()),
            app,
            db,
            http,
            settings,
            _data_dir,
        }
    }

    pub async fn shutdown(self) {
        self.app.shutdown().await;
    }
}

/// The JSON error body's code and message.
pub async fn error_of(resp: reqwest::Response) -> (u16, String, String) {
    let status = resp.status().as_u16();
    let body: serde_json::Value = resp.json().await.expect("error body is JSON");
    (
        status,
        body["error"]["code"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
        body["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
    )
}
