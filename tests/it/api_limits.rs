//! What protects and describes the whole admin API: the rate limit per token and per address,
//! CORS, and an OpenAPI document that lists every route the server has.

use crate::support;

use std::collections::BTreeSet;

use serde_json::Value;
use support::app::spawn_app;
use vpn_shop::domain::AdminRole;

async fn me(
    app: &support::app::TestApp,
    token: &str,
    forwarded_for: &str,
) -> (u16, Option<String>, Value) {
    let resp = app
        .http
        .get(app.url("/api/v1/me"))
        .bearer_auth(token)
        .header("x-forwarded-for", forwarded_for)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let retry = resp
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_owned());
    (status, retry, resp.json().await.unwrap_or(Value::Null))
}

#[actix_rt::test]
async fn a_token_and_an_address_each_get_the_burst_then_429_with_retry_after() {
    // The client address is taken from X-Forwarded-For: 127.0.0.1 is a trusted proxy here.
    let app = spawn_app(&[
        ("API_RATE_LIMIT", "1/m"),
        ("API_RATE_BURST", "3"),
        ("TRUSTED_PROXIES", "127.0.0.1"),
    ])
    .await;
    let first = app.token_for(AdminRole::Viewer).await;
    let second = app.token_for(AdminRole::Operator).await;

    // One token from ever-new addresses: its own bucket runs out.
    for i in 0..3 {
        let (status, _, _) = me(&app, &first, &format!("10.0.0.{i}")).await;
        assert_eq!(status, 200, "request {i} of the burst");
    }
    let (status, retry, body) = me(&app, &first, "10.0.0.9").await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["error"]["code"], "too_many_requests");
    let retry: u64 = retry.expect("Retry-After").parse().unwrap();
    assert!((1..=60).contains(&retry), "Retry-After {retry}");

    // Another token from one address: the address's bucket runs out.
    for _ in 0..3 {
        assert_eq!(me(&app, &second, "10.9.9.9").await.0, 200);
    }
    assert_eq!(me(&app, &second, "10.9.9.9").await.0, 429);
    // That token's own bucket is empty too: another address does not help it.
    assert_eq!(me(&app, &second, "10.9.9.8").await.0, 429);

    // Health, metrics and webhooks are not limited.
    for _ in 0..5 {
        assert_eq!(app.get("/health", None).await.status(), 200);
    }
    let metrics = app.get("/metrics", None).await.text().await.unwrap();
    assert!(
        metrics.contains("route=\"/api/v1/me\",status=\"429\""),
        "429s are counted like other answers"
    );
    app.shutdown().await;
}

#[actix_rt::test]
async fn unauthenticated_requests_are_limited_by_address_too() {
    let app = spawn_app(&[("API_RATE_LIMIT", "1/h"), ("API_RATE_BURST", "2")]).await;
    let login = |password: &'static str| {
        let app = &app;
        async move {
            app.call(
                "POST",
                "/api/v1/auth/login",
                None,
                Some(serde_json::json!({"username": "nobody", "password": password})),
            )
            .await
            .0
        }
    };
    assert_eq!(login("guess one").await, 401);
    assert_eq!(login("guess two").await, 401);
    assert_eq!(login("guess three").await, 429);
    app.shutdown().await;
}

#[actix_rt::test]
async fn cors_is_off_unless_origins_are_listed() {
    let preflight = |app: &support::app::TestApp, origin: &str| {
        app.http
            .request(reqwest::Method::OPTIONS, app.url("/api/v1/me"))
            .header("origin", origin)
            .header("access-control-request-method", "GET")
            .header("access-control-request-headers", "authorization")
            .send()
    };

    let closed = spawn_app(&[]).await;
    let resp = preflight(&closed, "https://admin.example.com")
        .await
        .unwrap();
    assert!(
        resp.headers().get("access-control-allow-origin").is_none(),
        "no CORS headers by default: {:?}",
        resp.headers()
    );
    let resp = closed
        .http
        .get(closed.url("/health"))
        .header("origin", "https://admin.example.com")
        .send()
        .await
        .unwrap();
    assert!(resp.headers().get("access-control-allow-origin").is_none());
    closed.shutdown().await;

    let open = spawn_app(&[(
        "CORS_ORIGINS",
        "https://admin.example.com, http://localhost:5173",
    )])
    .await;
    let resp = preflight(&open, "https://admin.example.com").await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.headers()["access-control-allow-origin"],
        "https://admin.example.com"
    );
    let allowed = resp.headers()["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .to_lowercase();
    assert!(allowed.contains("authorization"), "{allowed}");
    let token = open.token_for(AdminRole::Viewer).await;
    let resp = open
        .http
        .get(open.url("/api/v1/me"))
        .bearer_auth(&token)
        .header("origin", "http://localhost:5173")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.headers()["access-control-allow-origin"],
        "http://localhost:5173"
    );
    let resp = preflight(&open, "https://evil.example.net").await.unwrap();
    assert!(
        resp.headers().get("access-control-allow-origin").is_none(),
        "an origin not listed gets no permission"
    );
    open.shutdown().await;
}

#[test]
fn bad_limits_and_origins_stop_the_start_with_a_clear_message() {
    use vpn_shop::config::{RawConfig, Settings};
    let settings = |k: &str, v: &str| {
        Settings::from_raw(&RawConfig::layered(None, None, [(k.to_owned(), v.to_owned())]).unwrap())
    };
    let rate = settings("API_RATE_LIMIT", "300/m").unwrap();
    assert_eq!(rate.api.rate_limit, Some(5.0));
    assert_eq!(
        settings("API_RATE_LIMIT", "off").unwrap().api.rate_limit,
        None
    );
    for bad in ["20", "0/s", "x/s", "20/d"] {
        let e = settings("API_RATE_LIMIT", bad).unwrap_err().to_string();
        assert!(e.contains("API_RATE_LIMIT"), "{bad}: {e}");
    }
    let origins = settings(
        "CORS_ORIGINS",
        "https://a.example.com,http://localhost:3000",
    )
    .unwrap()
    .api
    .cors_origins;
    assert_eq!(
        origins,
        vec!["https://a.example.com", "http://localhost:3000"]
    );
    for bad in [
        "a.example.com",
        "https://a.example.com/admin",
        "ftp://a.example.com",
    ] {
        let e = settings("CORS_ORIGINS", bad).unwrap_err().to_string();
        assert!(e.contains("CORS_ORIGINS"), "{bad}: {e}");
    }
}

/// Every `web::resource("…")` of the server, from the source: the `/api/v1` ones with their
/// prefix; the webhooks (for the providers, not for API clients), the docs and the web pages are
/// left out.
fn routes_in_source() -> BTreeSet<String> {
    let mut dirs = vec![std::path::PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/src/web"
    ))];
    let mut files = Vec::new();
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                // The web pages (`/admin/…`) are HTML for browsers, not API routes.
                if !path.ends_with("pages") {
                    dirs.push(path);
                }
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    let mut routes = BTreeSet::new();
    for file in files {
        let text = std::fs::read_to_string(file).unwrap();
        for piece in text.split("web::resource(\"").skip(1) {
            let path = &piece[..piece.find('"').unwrap()];
            if path.starts_with("/webhooks") || path.starts_with("/docs") {
                continue;
            }
            routes.insert(match path {
                "/health" | "/ready" | "/metrics" => path.to_owned(),
                _ => format!("/api/v1{path}"),
            });
        }
    }
    routes
}

#[actix_rt::test]
async fn the_openapi_document_is_valid_and_lists_every_route_the_server_has() {
    let app = spawn_app(&[]).await;
    let doc: Value = app.get("/openapi.json", None).await.json().await.unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let paths = doc["paths"].as_object().expect("paths");

    // Every route of the server is documented…
    let source = routes_in_source();
    assert!(source.len() >= 12, "{source:?}");
    let documented: BTreeSet<String> = paths.keys().cloned().collect();
    let missing: Vec<_> = source.difference(&documented).collect();
    assert!(
        missing.is_empty(),
        "routes missing from /openapi.json: {missing:?}"
    );

    // …every documented operation exists on the server (an unauthenticated call reaches it:
    // 401, or 200 for the open ones — never 404 or 405)…
    let schemas = doc["components"]["schemas"].as_object().expect("schemas");
    let mut operations = 0;
    for (path, item) in paths {
        for (method, op) in item.as_object().unwrap() {
            if !matches!(method.as_str(), "get" | "post" | "patch" | "put" | "delete") {
                continue;
            }
            operations += 1;
            let concrete = path.replace("{id}", "1").replace("{kind}", "subscriptions");
            let (status, body) = app
                .call(&method.to_uppercase(), &concrete, None, None)
                .await;
            assert!(
                !matches!(status, 404 | 405) || body["error"]["code"] == "unauthorized",
                "{method} {path} is documented but the server answers {status}: {body}"
            );
            // …and describes its answers, with every schema it refers to defined.
            let responses = op["responses"].as_object().expect("responses");
            assert!(!responses.is_empty(), "{method} {path} has no responses");
            if path.starts_with("/api/v1") && path != "/api/v1/auth/login" {
                assert!(
                    responses.contains_key("401"),
                    "{method} {path} does not document 401"
                );
                assert!(
                    op["security"].is_array(),
                    "{method} {path} does not say it needs a token"
                );
            }
        }
    }
    assert!(operations >= source.len());
    let text = doc.to_string();
    for piece in text.split("\"$ref\":\"#/components/schemas/").skip(1) {
        let name = &piece[..piece.find('"').unwrap()];
        assert!(
            schemas.contains_key(name),
            "schema {name} is referred to but not defined"
        );
    }
    app.shutdown().await;
}

#[actix_rt::test]
async fn the_job_scheduler_and_broadcast_endpoints_are_guarded_and_check_their_input() {
    let app = spawn_app(&[]).await;
    for (method, path, body, role) in [
        ("GET", "/api/v1/me", None, AdminRole::Viewer),
        ("GET", "/api/v1/jobs", None, AdminRole::Viewer),
        ("GET", "/api/v1/jobs/1", None, AdminRole::Viewer),
        ("POST", "/api/v1/jobs/1/retry", None, AdminRole::Operator),
        ("GET", "/api/v1/scheduler/tasks", None, AdminRole::Viewer),
        ("GET", "/api/v1/broadcasts", None, AdminRole::Viewer),
        ("GET", "/api/v1/broadcasts/1", None, AdminRole::Viewer),
        (
            "POST",
            "/api/v1/broadcasts",
            Some(serde_json::json!({"text": "hi", "audience": {"segment": "all"}})),
            AdminRole::Operator,
        ),
        (
            "POST",
            "/api/v1/broadcasts/1/cancel",
            None,
            AdminRole::Operator,
        ),
    ] {
        app.assert_guarded(method, path, body, role).await;
    }

    let token = app.token_for(AdminRole::Operator).await;
    let call =
        |method: &'static str, path: &'static str| app.call(method, path, Some(&token), None);
    let (status, jobs) = call("GET", "/api/v1/jobs?per_page=5").await;
    assert_eq!(status, 200, "{jobs}");
    assert_eq!(jobs["per_page"], 5);
    for (path, field) in [
        ("/api/v1/jobs?state=sleeping", "state"),
        ("/api/v1/jobs?per_page=201", "per_page"),
        ("/api/v1/jobs?page=0", "page"),
    ] {
        let (status, body) = call("GET", path).await;
        assert_eq!(status, 422, "{path}: {body}");
        assert_eq!(body["error"]["field"], field, "{path}: {body}");
    }
    for (method, path) in [
        ("GET", "/api/v1/jobs/999999"),
        ("POST", "/api/v1/jobs/999999/retry"),
        ("GET", "/api/v1/broadcasts/999999"),
        ("POST", "/api/v1/broadcasts/999999/cancel"),
    ] {
        let (status, body) = call(method, path).await;
        assert_eq!(status, 404, "{method} {path}: {body}");
        assert_eq!(body["error"]["code"], "not_found");
    }
    let (status, body) = call("GET", "/api/v1/jobs/not-a-number").await;
    assert_eq!(status, 404, "{body}");
    app.shutdown().await;
}
