//! Admin login, tokens, lockout and roles, through the real HTTP server.

use crate::support;

use std::time::Duration;

use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use serde_json::{Value, json};
use support::app::{TestApp, error_of, spawn_app};
use vpn_shop::db::schema::{admins, login_throttle};
use vpn_shop::domain::AdminRole;

const PASSWORD: &str = "correct horse battery staple";

async fn login(app: &TestApp, username: &str, password: &str) -> reqwest::Response {
    app.http
        .post(app.url("/api/v1/auth/login"))
        .json(&json!({"username": username, "password": password}))
        .send()
        .await
        .unwrap()
}

#[actix_rt::test]
async fn login_returns_a_bearer_token_that_identifies_the_admin() {
    let app = spawn_app(&[]).await;
    app.create_admin("alice", PASSWORD, AdminRole::Operator)
        .await;

    // Usernames are case-insensitive.
    let resp = login(&app, " Alice ", PASSWORD).await;
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["token_type"], "bearer");
    assert_eq!(body["expires_in"], 12 * 3600);
    assert_eq!(body["role"], "operator");
    let token = body["access_token"].as_str().unwrap();

    let me: Value = app
        .get("/api/v1/me", Some(token))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(me["username"], "alice");
    assert_eq!(me["role"], "operator");
    assert!(me["token_expires_at"].as_str().is_some());

    let conn = &mut app.db.connect().await;
    let last_login: Option<chrono::DateTime<chrono::Utc>> = admins::table
        .filter(admins::username.eq("alice"))
        .select(admins::last_login_at)
        .first(conn)
        .await
        .unwrap();
    assert!(last_login.is_some());
    app.shutdown().await;
}

#[actix_rt::test]
async fn wrong_password_and_unknown_user_get_the_same_401() {
    let app = spawn_app(&[]).await;
    app.create_admin("alice", PASSWORD, AdminRole::Admin).await;
    let wrong = error_of(login(&app, "alice", "not the password").await).await;
    let unknown = error_of(login(&app, "mallory", PASSWORD).await).await;
    assert_eq!(
        wrong,
        (
            401,
            "unauthorized".into(),
            "wrong username or password".into()
        )
    );
    assert_eq!(
        unknown, wrong,
        "the answer must not reveal which accounts exist"
    );
    app.shutdown().await;
}

#[actix_rt::test]
async fn five_failed_logins_lock_the_username_for_fifteen_minutes() {
    let app = spawn_app(&[]).await;
    app.create_admin("alice", PASSWORD, AdminRole::Admin).await;
    app.create_admin("bob", PASSWORD, AdminRole::Admin).await;

    for attempt in 1..=4 {
        let resp = login(&app, "alice", "guess").await;
        assert_eq!(resp.status(), 401, "attempt {attempt}");
    }
    let fifth = login(&app, "alice", "guess").await;
    assert_eq!(fifth.status(), 429);
    let retry_after: u64 = fifth.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        (890..=900).contains(&retry_after),
        "Retry-After {retry_after}"
    );
    let (_, code, message) = error_of(fifth).await;
    assert_eq!(code, "too_many_requests");
    assert!(message.contains("15 minutes"), "{message}");

    // Locked means locked: the right password is refused too, without being checked.
    assert_eq!(login(&app, "alice", PASSWORD).await.status(), 429);
    // Other accounts are not affected.
    assert_eq!(login(&app, "bob", PASSWORD).await.status(), 200);

    // When the lock is over, the right password works again.
    let conn = &mut app.db.connect().await;
    diesel::update(login_throttle::table.find("alice"))
        .set(login_throttle::locked_until.eq(chrono::Utc::now() - chrono::Duration::seconds(1)))
        .execute(conn)
        .await
        .unwrap();
    assert_eq!(login(&app, "alice", PASSWORD).await.status(), 200);
    app.shutdown().await;
}

#[actix_rt::test]
async fn forty_concurrent_guesses_get_at_most_five_password_checks() {
    let app = spawn_app(&[]).await;
    app.create_admin("alice", PASSWORD, AdminRole::Admin).await;

    // All at once: the password check is slow (Argon2), so a lock that is read before the
    // check and written after it lets every one of them through.
    let guesses = (0..40).map(|i| {
        let app = &app;
        async move { login(app, "alice", &format!("guess {i}")).await.status() }
    });
    let statuses = futures_util::future::join_all(guesses).await;
    let unauthorized = statuses.iter().filter(|s| s.as_u16() == 401).count();
    let locked = statuses.iter().filter(|s| s.as_u16() == 429).count();
    assert_eq!(unauthorized + locked, 40, "{statuses:?}");
    assert!(
        unauthorized <= 5,
        "{unauthorized} guesses were checked and answered 401; at most 5 may be: {statuses:?}"
    );
    assert!(unauthorized >= 1, "{statuses:?}");

    // Locked, so the right password is refused without being checked.
    let (status, code, message) = error_of(login(&app, "alice", PASSWORD).await).await;
    assert_eq!((status, code.as_str()), (429, "too_many_requests"));
    assert!(message.contains("failed logins"), "{message}");
    app.shutdown().await;
}

#[actix_rt::test]
async fn a_successful_login_forgets_earlier_failures() {
    let app = spawn_app(&[]).await;
    app.create_admin("alice", PASSWORD, AdminRole::Admin).await;
    for _ in 0..4 {
        assert_eq!(login(&app, "alice", "guess").await.status(), 401);
    }
    assert_eq!(login(&app, "alice", PASSWORD).await.status(), 200);
    for _ in 0..4 {
        assert_eq!(login(&app, "alice", "guess").await.status(), 401);
    }
    app.shutdown().await;
}

#[actix_rt::test]
async fn an_expired_token_is_refused() {
    let app = spawn_app(&[("JWT_TTL", "1s")]).await;
    app.create_admin("alice", PASSWORD, AdminRole::Admin).await;
    let token = app.login("alice", PASSWORD).await;
    assert_eq!(app.get("/api/v1/me", Some(&token)).await.status(), 200);
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let (status, code, message) = error_of(app.get("/api/v1/me", Some(&token)).await).await;
    assert_eq!((status, code.as_str()), (401, "unauthorized"));
    assert_eq!(message, "token expired; log in again");
    app.shutdown().await;
}

#[actix_rt::test]
async fn missing_forged_and_foreign_tokens_are_refused() {
    let app = spawn_app(&[]).await;
    let (status, _, message) = error_of(app.get("/api/v1/me", None).await).await;
    assert_eq!(status, 401);
    assert!(message.contains("missing bearer token"), "{message}");

    let (status, _, message) = error_of(app.get("/api/v1/me", Some("not.a.jwt")).await).await;
    assert_eq!((status, message.as_str()), (401, "invalid token"));

    // Signed with another key (another shop's secret).
    let claims = json!({"sub": "1", "name": "x", "role": "admin", "iat": 0,
                        "exp": 4_000_000_000u64, "jti": "6f1c2c1e-4a7b-4c55-9f4e-0d9b1d2a7c11"});
    let foreign = jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(b"some-other-secret-some-other-secret"),
    )
    .unwrap();
    let (status, _, message) = error_of(app.get("/api/v1/me", Some(&foreign)).await).await;
    assert_eq!((status, message.as_str()), (401, "invalid token"));
    app.shutdown().await;
}

#[actix_rt::test]
async fn a_disabled_account_or_a_password_change_ends_its_tokens() {
    let app = spawn_app(&[]).await;
    app.create_admin("alice", PASSWORD, AdminRole::Admin).await;
    app.create_admin("bob", PASSWORD, AdminRole::Admin).await;
    let alice = app.login("alice", PASSWORD).await;
    let bob = app.login("bob", PASSWORD).await;
    let conn = &mut app.db.connect().await;

    diesel::update(admins::table.filter(admins::username.eq("alice")))
        .set(admins::active.eq(false))
        .execute(conn)
        .await
        .unwrap();
    let (status, _, message) = error_of(app.get("/api/v1/me", Some(&alice)).await).await;
    assert_eq!(
        (status, message.as_str()),
        (401, "account disabled or deleted")
    );
    assert_eq!(login(&app, "alice", PASSWORD).await.status(), 401);

    diesel::update(admins::table.filter(admins::username.eq("bob")))
        .set(admins::tokens_valid_after.eq(chrono::Utc::now() + chrono::Duration::seconds(2)))
        .execute(conn)
        .await
        .unwrap();
    let (status, _, message) = error_of(app.get("/api/v1/me", Some(&bob)).await).await;
    assert_eq!(status, 401);
    assert!(message.contains("no longer valid"), "{message}");
    app.shutdown().await;
}

#[actix_rt::test]
async fn a_role_below_the_endpoint_is_forbidden() {
    let app = spawn_app(&[]).await;
    let viewer = app.token_for(AdminRole::Viewer).await;
    let operator = app.token_for(AdminRole::Operator).await;

    // Viewers read…
    assert_eq!(app.get("/api/v1/jobs", Some(&viewer)).await.status(), 200);
    // …but may not retry jobs.
    let resp = app
        .http
        .post(app.url("/api/v1/jobs/1/retry"))
        .bearer_auth(&viewer)
        .send()
        .await
        .unwrap();
    let (status, code, message) = error_of(resp).await;
    assert_eq!((status, code.as_str()), (403, "forbidden"));
    assert_eq!(
        message,
        "this action needs the operator role; you are viewer"
    );

    // An operator passes the role check and gets to the lookup.
    let resp = app
        .http
        .post(app.url("/api/v1/jobs/999999/retry"))
        .bearer_auth(&operator)
        .send()
        .await
        .unwrap();
    assert_eq!(error_of(resp).await.0, 404);
    app.shutdown().await;
}

#[actix_rt::test]
async fn malformed_login_bodies_get_clear_errors() {
    let app = spawn_app(&[]).await;
    let resp = app
        .http
        .post(app.url("/api/v1/auth/login"))
        .json(&json!({"username": "alice"}))
        .send()
        .await
        .unwrap();
    let (status, code, message) = error_of(resp).await;
    assert_eq!((status, code.as_str()), (422, "validation_failed"));
    assert!(message.contains("password"), "{message}");

    let resp = app
        .http
        .post(app.url("/api/v1/auth/login"))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    let (status, code, _) = error_of(resp).await;
    assert_eq!((status, code.as_str()), (400, "bad_request"));

    let resp = login(&app, "   ", PASSWORD).await;
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["field"], "username");
    app.shutdown().await;
}

#[actix_rt::test]
async fn unknown_routes_and_methods_answer_json_errors() {
    let app = spawn_app(&[]).await;
    let (status, code, message) = error_of(app.get("/api/v1/nothing-here", None).await).await;
    assert_eq!((status, code.as_str()), (404, "not_found"));
    assert!(message.contains("/api/v1/nothing-here"), "{message}");

    let resp = app.http.delete(app.url("/api/v1/me")).send().await.unwrap();
    let (status, code, _) = error_of(resp).await;
    assert_eq!((status, code.as_str()), (405, "method_not_allowed"));

    let resp = app
        .http
        .get(app.url("/api/v1/auth/login"))
        .send()
        .await
        .unwrap();
    assert_eq!(error_of(resp).await.0, 405);
    app.shutdown().await;
}

/// README ("Data directory"): without `JWT_SECRET` one is generated at first start into
/// `DATA_DIR/jwt_secret`, readable by its owner only (mode 0600), and found again at the next.
#[test]
fn a_generated_jwt_secret_is_written_with_mode_0600_and_kept() {
    use std::os::unix::fs::PermissionsExt;
    use vpn_shop::config::{RawConfig, Settings};
    let dir = tempfile::tempdir().unwrap();
    let env = vec![("DATA_DIR".to_owned(), dir.path().display().to_string())];
    let settings = Settings::from_raw(&RawConfig::layered(None, None, env).unwrap()).unwrap();
    assert!(settings.jwt_secret.is_none());
    let secret = vpn_shop::web::auth::resolve_jwt_secret(&settings).unwrap();
    let file = dir.path().join("jwt_secret");
    let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "jwt_secret is mode {mode:o}");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), secret.expose());
    assert!(secret.expose().len() >= 32);
    let again = vpn_shop::web::auth::resolve_jwt_secret(&settings).unwrap();
    assert_eq!(
        again.expose(),
        secret.expose(),
        "the same secret at the next start"
    );
}
