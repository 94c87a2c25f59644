//! The admin API's own part: admin accounts, logout and password, audit log, notifications,
//! panel syncs and statistics — through the real HTTP server and database.

use crate::support;

use std::time::Duration;

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Bool, Nullable, Text, Timestamptz};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use serde_json::{Value, json};
use support::app::{TestApp, spawn_app};
use support::marzban::{ADMIN_PASSWORD, ADMIN_USERNAME, FakePanel};
use vpn_shop::db::audit::{self, AuditRecord};
use vpn_shop::db::schema::{admins, sync_runs};
use vpn_shop::domain::{AdminId, AdminRole};

const PASSWORD: &str = "correct horse battery staple";

/// An admin account `name` with `role`, logged in: its id and token.
async fn account(app: &TestApp, name: &str, role: AdminRole) -> (i64, String) {
    app.create_admin(name, PASSWORD, role).await;
    let id: i64 = admins::table
        .filter(admins::username.eq(name))
        .select(admins::id)
        .first(&mut app.db.connect().await)
        .await
        .unwrap();
    (id, app.login(name, PASSWORD).await)
}

async fn login_status(app: &TestApp, username: &str, password: &str) -> u16 {
    app.call(
        "POST",
        "/api/v1/auth/login",
        None,
        Some(json!({"username": username, "password": password})),
    )
    .await
    .0
}

/// The status of `GET /me` with `token`: whether the token is still accepted.
async fn me_status(app: &TestApp, token: &str) -> u16 {
    app.get("/api/v1/me", Some(token)).await.status().as_u16()
}

/// Asserts a 422 naming `field`.
fn assert_invalid(status: u16, body: &Value, field: &str) {
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["code"], "validation_failed", "{body}");
    assert_eq!(body["error"]["field"], field, "{body}");
}

/// Asserts a 409 whose message contains `words`.
fn assert_conflict(status: u16, body: &Value, words: &str) {
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"]["code"], "conflict", "{body}");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains(words), "{message}");
}

/// No password and no hash anywhere in audit rows.
fn assert_no_secrets(rows: &[Value], passwords: &[&str]) {
    for row in rows {
        let text = row.to_string();
        assert!(!text.contains("$argon2"), "a hash in the audit log: {text}");
        for password in passwords {
            assert!(
                !text.contains(password),
                "a password in the audit log: {text}"
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Roles

#[actix_rt::test]
async fn each_endpoint_checks_its_role() {
    let app = spawn_app(&[]).await;
    let account_body = json!({"username": "x-y-z", "password": PASSWORD, "role": "viewer"});
    for (method, path, body, role) in [
        ("GET", "/api/v1/admins", None, AdminRole::Admin),
        (
            "POST",
            "/api/v1/admins",
            Some(account_body),
            AdminRole::Admin,
        ),
        (
            "PATCH",
            "/api/v1/admins/1",
            Some(json!({"active": true})),
            AdminRole::Admin,
        ),
        ("DELETE", "/api/v1/admins/1", None, AdminRole::Admin),
        ("GET", "/api/v1/audit", None, AdminRole::Admin),
        ("POST", "/api/v1/sync/stats", None, AdminRole::Operator),
        ("GET", "/api/v1/notifications", None, AdminRole::Viewer),
        ("GET", "/api/v1/sync/runs", None, AdminRole::Viewer),
        ("GET", "/api/v1/stats/overview", None, AdminRole::Viewer),
        ("GET", "/api/v1/stats/panel", None, AdminRole::Viewer),
        ("POST", "/api/v1/auth/logout", None, AdminRole::Viewer),
        (
            "POST",
            "/api/v1/me/password",
            Some(json!({"current_password": PASSWORD, "new_password": "another long password"})),
            AdminRole::Viewer,
        ),
    ] {
        app.assert_guarded(method, path, body, role).await;
    }
    // Viewers read the operational lists.
    let (_, viewer) = account(&app, "vera", AdminRole::Viewer).await;
    for path in [
        "/api/v1/notifications",
        "/api/v1/sync/runs",
        "/api/v1/stats/overview",
        "/api/v1/stats/panel",
    ] {
        let (status, body) = app.call("GET", path, Some(&viewer), None).await;
        assert_eq!(status, 200, "{path}: {body}");
    }
    app.shutdown().await;
}

/// Every route of the admin API as the route configuration declares it (`web::resource("…")`
/// followed by its methods in src/web/{mod,users,sales,admin}.rs): `(METHOD, /api/v1 path)`.
fn declared_routes() -> Vec<(String, String)> {
    let root = env!("CARGO_MANIFEST_DIR");
    let mut routes = Vec::new();
    for file in ["mod", "users", "sales", "admin"] {
        let src = std::fs::read_to_string(format!("{root}/src/web/{file}.rs")).unwrap();
        for chunk in src.split("web::resource(\"").skip(1) {
            let (path, rest) = chunk.split_once('"').unwrap();
            if !["/auth", "/me", "/jobs", "/scheduler", "/broadcasts"]
                .iter()
                .any(|p| path.starts_with(p))
                && file == "mod"
            {
                continue; // outside the /api/v1 scope: webhooks, probes, docs
            }
            // The methods chained on this resource: up to the `.service(` or `;` that ends it.
            let end = rest
                .find(".service(")
                .or_else(|| rest.find(';'))
                .unwrap_or(rest.len());
            for method in ["get", "post", "put", "patch", "delete"] {
                if rest[..end].contains(&format!(".{method}(")) {
                    routes.push((method.to_uppercase(), format!("/api/v1{path}")));
                }
            }
        }
    }
    routes
}

#[actix_rt::test]
async fn a_role_below_the_route_is_refused_before_the_body_or_query_is_read() {
    use AdminRole::{Admin, Operator, Viewer};
    // Every mutating route and the role it needs (the login is public); and the reads an
    // operator may not make. Malformed path ids too: the role is checked before anything.
    let table = [
        ("POST", "/api/v1/jobs/{id}/retry", Operator),
        ("POST", "/api/v1/jobs/{id}/discard", Operator),
        ("POST", "/api/v1/broadcasts", Operator),
        ("POST", "/api/v1/broadcasts/{id}/cancel", Operator),
        ("PATCH", "/api/v1/users/{id}", Operator),
        ("POST", "/api/v1/users/{id}/extend", Operator),
        ("POST", "/api/v1/users/{id}/reset-traffic", Operator),
        ("POST", "/api/v1/users/{id}/revoke-link", Operator),
        ("DELETE", "/api/v1/users/{id}/panel", Operator),
        ("POST", "/api/v1/plans", Admin),
        ("PATCH", "/api/v1/plans/{id}", Admin),
        ("DELETE", "/api/v1/plans/{id}", Admin),
        ("POST", "/api/v1/promo-codes", Operator),
        ("PATCH", "/api/v1/promo-codes/{id}", Operator),
        ("DELETE", "/api/v1/promo-codes/{id}", Operator),
        ("POST", "/api/v1/payments/{id}/refund", Admin),
        ("POST", "/api/v1/admins", Admin),
        ("PATCH", "/api/v1/admins/{id}", Admin),
        ("DELETE", "/api/v1/admins/{id}", Admin),
        ("POST", "/api/v1/auth/logout", Viewer),
        ("POST", "/api/v1/me/password", Viewer),
        ("POST", "/api/v1/sync/{kind}", Operator),
        ("GET", "/api/v1/admins", Admin),
        ("GET", "/api/v1/audit", Admin),
    ];
    let declared = declared_routes();
    assert!(declared.len() >= 40, "{declared:?}");
    for (method, path) in &declared {
        let public = path == "/api/v1/auth/login";
        assert!(
            method == "GET" || public || table.iter().any(|(m, p, _)| m == method && p == path),
            "{method} {path} is missing from this table"
        );
    }
    for (method, path, _) in &table {
        assert!(
            declared.iter().any(|(m, p)| m == method && p == path),
            "{method} {path} is not a route"
        );
    }

    let app = spawn_app(&[]).await;
    let viewer = app.token_for(Viewer).await;
    let operator = app.token_for(Operator).await;
    // JSON of the wrong shape, and a query of the wrong types.
    let malformed = json!([{"unexpected": true}]);
    let query = "?limit=many&offset=-x&from=yesterday&created_from=never&status=nonsense";
    let mut wrong = Vec::new();
    for (method, path, needs) in table {
        let path = format!(
            "{}{}",
            path.replace("{id}", "not-a-number")
                .replace("{kind}", "bogus"),
            if method == "GET" { query } else { "" }
        );
        let body = (method != "GET").then(|| malformed.clone());
        let (status, reply) = app.call(method, &path, None, body.clone()).await;
        if (status, reply["error"]["code"].as_str()) != (401, Some("unauthorized")) {
            wrong.push(format!("{method} {path} without a token: {status} {reply}"));
        }
        let below: &[(AdminRole, &str)] = match needs {
            Viewer => &[],
            Operator => &[(Viewer, &viewer)],
            Admin => &[(Viewer, &viewer), (Operator, &operator)],
        };
        for (role, token) in below {
            let (status, reply) = app.call(method, &path, Some(token), body.clone()).await;
            if (status, reply["error"]["code"].as_str()) != (403, Some("forbidden")) {
                wrong.push(format!(
                    "{method} {path} as {role} (needs {needs}): {status} {reply}"
                ));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "{} answers are not 401/403:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
    app.shutdown().await;
}

// ---------------------------------------------------------------------------------------------
// Accounts

#[actix_rt::test]
async fn accounts_are_listed_without_their_password_hashes() {
    let app = spawn_app(&[]).await;
    let (root_id, root) = account(&app, "root", AdminRole::Admin).await;
    app.create_admin("olga", PASSWORD, AdminRole::Operator)
        .await;

    let (status, body) = app.call("GET", "/api/v1/admins", Some(&root), None).await;
    assert_eq!(status, 200, "{body}");
    let list = body.as_array().unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!(list[0]["id"], root_id);
    assert_eq!(list[0]["username"], "root");
    assert_eq!(list[0]["role"], "admin");
    assert_eq!(list[0]["active"], true);
    assert!(list[0]["last_login_at"].is_string(), "root logged in");
    assert!(list[0]["created_at"].is_string());
    assert_eq!(list[1]["username"], "olga");
    assert_eq!(list[1]["role"], "operator");
    assert!(list[1]["last_login_at"].is_null(), "olga never logged in");
    let mut keys: Vec<&str> = list[1]
        .as_object()
        .unwrap()
        .keys()
        .map(|k| k.as_str())
        .collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "active",
            "created_at",
            "id",
            "last_login_at",
            "role",
            "username"
        ]
    );
    assert!(!body.to_string().contains("argon2"));
    app.shutdown().await;
}

#[actix_rt::test]
async fn an_admin_creates_an_account_with_the_rules_of_the_cli() {
    let app = spawn_app(&[]).await;
    let (root_id, root) = account(&app, "root", AdminRole::Admin).await;
    let create = |body: Value| app.call("POST", "/api/v1/admins", Some(&root), Some(body));

    let (status, body) = create(json!({
        "username": "  Olga.Ops-1 ", "password": "olga's long password", "role": "operator"
    }))
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(
        body["username"], "olga.ops-1",
        "trimmed and lowercased like the CLI"
    );
    assert_eq!(body["role"], "operator");
    assert_eq!(body["active"], true);
    assert!(body.get("password_hash").is_none());
    let olga_id = body["id"].as_i64().unwrap();
    // The new account logs in (case-insensitively) with its password.
    let olga = app.login("OLGA.OPS-1", "olga's long password").await;
    assert_eq!(me_status(&app, &olga).await, 200);
    let hash: String = admins::table
        .find(AdminId(olga_id))
        .select(admins::password_hash)
        .first(&mut app.db.connect().await)
        .await
        .unwrap();
    assert!(hash.starts_with("$argon2id$"), "{hash}");

    // A taken username, in any case.
    let (status, body) = create(json!({
        "username": "OLGA.ops-1", "password": "another long password", "role": "viewer"
    }))
    .await;
    assert_conflict(status, &body, "already exists");

    // The CLI's rules: 3–64 characters of a-z 0-9 _ . -, a password of at least 12.
    for (body, field) in [
        (
            json!({"username": "ab", "password": PASSWORD, "role": "viewer"}),
            "username",
        ),
        (
            json!({"username": "has space", "password": PASSWORD, "role": "viewer"}),
            "username",
        ),
        (
            json!({"username": "x".repeat(65), "password": PASSWORD, "role": "viewer"}),
            "username",
        ),
        (
            json!({"username": "paul", "password": "short", "role": "viewer"}),
            "password",
        ),
        (
            json!({"username": "paul", "password": " padded password ", "role": "viewer"}),
            "password",
        ),
        (
            json!({"username": "paul", "password": PASSWORD, "role": "root"}),
            "role",
        ),
        (json!({"username": "paul", "password": PASSWORD}), "body"),
        (
            json!({"username": "paul", "password": PASSWORD, "role": "viewer", "x": 1}),
            "body",
        ),
    ] {
        let (status, reply) = create(body.clone()).await;
        assert_invalid(status, &reply, field);
    }
    let count: i64 = admins::table
        .count()
        .get_result(&mut app.db.connect().await)
        .await
        .unwrap();
    assert_eq!(count, 2, "nothing else was created");

    let rows = app.audit_rows("admin.create").await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["admin_id"], root_id);
    assert_eq!(rows[0]["actor"], "admin:root");
    assert_eq!(rows[0]["target_type"], "admin");
    assert_eq!(rows[0]["target_id"], olga_id.to_string());
    assert_eq!(
        rows[0]["after"],
        json!({"username": "olga.ops-1", "role": "operator", "active": true})
    );
    assert_no_secrets(&rows, &["olga's long password"]);
    app.shutdown().await;
}

#[actix_rt::test]
async fn a_new_role_a_new_password_or_disabling_ends_the_accounts_tokens() {
    let app = spawn_app(&[]).await;
    let (_, root) = account(&app, "root", AdminRole::Admin).await;
    let (olga_id, olga) = account(&app, "olga", AdminRole::Operator).await;
    let olga_path = format!("/api/v1/admins/{olga_id}");
    let patch = |body: Value| app.call("PATCH", &olga_path, Some(&root), Some(body));

    // Enabling an active account changes nothing that matters: the token lives on.
    let (status, body) = patch(json!({"active": true})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(me_status(&app, &olga).await, 200);

    // A new role: the old token (with the old role in it) is refused; a new login has the role.
    let (status, body) = patch(json!({"role": "viewer"})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["role"], "viewer");
    assert_eq!(me_status(&app, &olga).await, 401);
    let olga = app.login("olga", PASSWORD).await;
    let me: Value = app
        .get("/api/v1/me", Some(&olga))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(me["role"], "viewer");

    // A new password: the token issued a moment ago is refused, the old password too.
    let (status, _) = patch(json!({"password": "olga's new long password"})).await;
    assert_eq!(status, 200);
    assert_eq!(me_status(&app, &olga).await, 401);
    assert_eq!(login_status(&app, "olga", PASSWORD).await, 401);
    let olga = app.login("olga", "olga's new long password").await;
    assert_eq!(me_status(&app, &olga).await, 200);

    // Disabled: refused at once and cannot log in; enabled again: logs in, old token stays dead.
    let (status, body) = patch(json!({"active": false})).await;
    assert_eq!((status, body["active"].clone()), (200, json!(false)));
    assert_eq!(me_status(&app, &olga).await, 401);
    assert_eq!(
        login_status(&app, "olga", "olga's new long password").await,
        401
    );
    let (status, _) = patch(json!({"active": true})).await;
    assert_eq!(status, 200);
    assert_eq!(me_status(&app, &olga).await, 401);
    let olga = app.login("olga", "olga's new long password").await;
    assert_eq!(me_status(&app, &olga).await, 200);

    // Nothing to change, an unknown field, a bad role or password, an unknown account.
    let (status, body) = patch(json!({})).await;
    assert_invalid(status, &body, "body");
    let (status, body) = patch(json!({"username": "other"})).await;
    assert_invalid(status, &body, "body");
    let (status, body) = patch(json!({"role": "superuser"})).await;
    assert_invalid(status, &body, "role");
    let (status, body) = patch(json!({"password": "short"})).await;
    assert_invalid(status, &body, "password");
    let (status, body) = app
        .call(
            "PATCH",
            "/api/v1/admins/999999",
            Some(&root),
            Some(json!({"active": false})),
        )
        .await;
    assert_eq!(status, 404, "{body}");

    let rows = app.audit_rows("admin.update").await;
    assert_eq!(rows.len(), 5, "every successful change is logged");
    assert_eq!(rows[1]["before"]["role"], "operator");
    assert_eq!(rows[1]["after"]["role"], "viewer");
    assert_eq!(rows[2]["after"]["password_changed"], true);
    assert!(rows[1]["after"].get("password_changed").is_none());
    assert_eq!(rows[3]["before"]["active"], true);
    assert_eq!(rows[3]["after"]["active"], false);
    assert_eq!(rows[3]["target_id"], olga_id.to_string());
    assert_no_secrets(&rows, &["olga's new long password", PASSWORD]);
    app.shutdown().await;
}

#[actix_rt::test]
async fn admins_cannot_demote_disable_or_delete_themselves() {
    let app = spawn_app(&[]).await;
    let (root_id, root) = account(&app, "root", AdminRole::Admin).await;
    let (_, _other) = account(&app, "other", AdminRole::Admin).await;
    let me = format!("/api/v1/admins/{root_id}");

    for (body, words) in [
        (json!({"role": "operator"}), "cannot demote your own"),
        (json!({"active": false}), "cannot disable your own"),
        (
            json!({"role": "viewer", "active": false}),
            "cannot demote and disable your own",
        ),
    ] {
        let (status, reply) = app.call("PATCH", &me, Some(&root), Some(body)).await;
        assert_conflict(status, &reply, words);
    }
    let (status, reply) = app.call("DELETE", &me, Some(&root), None).await;
    assert_conflict(status, &reply, "cannot delete your own");

    // Nothing changed and the token still works; keeping one's own role is no demotion.
    let (status, reply) = app
        .call(
            "PATCH",
            &me,
            Some(&root),
            Some(json!({"role": "admin", "active": true})),
        )
        .await;
    assert_eq!(status, 200, "{reply}");
    assert_eq!(
        (reply["role"].clone(), reply["active"].clone()),
        (json!("admin"), json!(true))
    );
    assert_eq!(me_status(&app, &root).await, 200);
    assert_eq!(app.audit_rows("admin.delete").await.len(), 0);
    app.shutdown().await;
}

#[actix_rt::test]
async fn two_admins_demoting_each_other_at_once_leave_one_admin() {
    let app = spawn_app(&[]).await;
    for round in 0..3 {
        let a = format!("alice{round}");
        let b = format!("bruno{round}");
        let (a_id, a_token) = account(&app, &a, AdminRole::Admin).await;
        let (b_id, b_token) = account(&app, &b, AdminRole::Admin).await;
        // Everyone else steps down, so these two are the only admins.
        diesel::update(admins::table.filter(admins::id.ne_all([a_id, b_id])))
            .set(admins::active.eq(false))
            .execute(&mut app.db.connect().await)
            .await
            .unwrap();
        let demote = json!({"role": "viewer"});
        let a_path = format!("/api/v1/admins/{a_id}");
        let b_path = format!("/api/v1/admins/{b_id}");
        let ((a_status, a_reply), (b_status, b_reply)) = tokio::join!(
            app.call("PATCH", &b_path, Some(&a_token), Some(demote.clone())),
            app.call("PATCH", &a_path, Some(&b_token), Some(demote.clone())),
        );
        let statuses = [a_status, b_status];
        assert!(
            statuses.contains(&200) && statuses.iter().any(|s| [401, 403].contains(s)),
            "one wins, the other is no longer an admin: {a_reply} / {b_reply}"
        );
        let admins_left: i64 = admins::table
            .filter(admins::role.eq(AdminRole::Admin))
            .filter(admins::active.eq(true))
            .count()
            .get_result(&mut app.db.connect().await)
            .await
            .unwrap();
        assert_eq!(admins_left, 1, "round {round}");
    }
    app.shutdown().await;
}

#[actix_rt::test]
async fn a_deleted_admin_leaves_their_audit_entries_under_their_name() {
    let app = spawn_app(&[]).await;
    let (root_id, root) = account(&app, "root", AdminRole::Admin).await;
    let (bob_id, bob) = account(&app, "bob", AdminRole::Admin).await;
    // Bob does something that is audited, and holds a second token.
    let bob_second = app.login("bob", PASSWORD).await;
    let (status, _) = app
        .call(
            "POST",
            "/api/v1/admins",
            Some(&bob),
            Some(json!({"username": "carol", "password": PASSWORD, "role": "viewer"})),
        )
        .await;
    assert_eq!(status, 201);

    let (status, body) = app
        .call(
            "DELETE",
            &format!("/api/v1/admins/{bob_id}"),
            Some(&root),
            None,
        )
        .await;
    assert_eq!(status, 204, "{body}");
    assert_eq!(me_status(&app, &bob).await, 401);
    assert_eq!(me_status(&app, &bob_second).await, 401);
    assert_eq!(login_status(&app, "bob", PASSWORD).await, 401);
    let (status, _) = app
        .call(
            "DELETE",
            &format!("/api/v1/admins/{bob_id}"),
            Some(&root),
            None,
        )
        .await;
    assert_eq!(status, 404, "already gone");

    let created = app.audit_rows("admin.create").await;
    assert_eq!(created.len(), 1);
    assert_eq!(created[0]["actor"], "admin:bob", "the name stays");
    assert!(
        created[0]["admin_id"].is_null(),
        "the link to the account goes"
    );
    let deleted = app.audit_rows("admin.delete").await;
    assert_eq!(deleted.len(), 1);
    assert_eq!(deleted[0]["admin_id"], root_id);
    assert_eq!(deleted[0]["target_id"], bob_id.to_string());
    assert_eq!(
        deleted[0]["before"],
        json!({"username": "bob", "role": "admin", "active": true})
    );
    assert!(deleted[0]["after"].is_null());
    assert_no_secrets(&deleted, &[PASSWORD]);
    app.shutdown().await;
}

// ---------------------------------------------------------------------------------------------
// Logout and own password

#[actix_rt::test]
async fn logout_revokes_only_the_presented_token() {
    let app = spawn_app(&[]).await;
    let (olga_id, first) = account(&app, "olga", AdminRole::Viewer).await;
    let second = app.login("olga", PASSWORD).await;

    let (status, body) = app
        .call("POST", "/api/v1/auth/logout", Some(&first), None)
        .await;
    assert_eq!((status, body), (204, Value::Null));
    let (status, body) = app.call("GET", "/api/v1/me", Some(&first), None).await;
    assert_eq!(status, 401);
    assert_eq!(body["error"]["message"], "token revoked; log in again");
    let (status, _) = app
        .call("POST", "/api/v1/auth/logout", Some(&first), None)
        .await;
    assert_eq!(status, 401, "a revoked token cannot log out again");
    assert_eq!(me_status(&app, &second).await, 200, "other sessions go on");

    let rows = app.audit_rows("auth.logout").await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["admin_id"], olga_id);
    assert_eq!(rows[0]["actor"], "admin:olga");
    assert_eq!(rows[0]["target_id"], olga_id.to_string());
    app.shutdown().await;
}

#[actix_rt::test]
async fn changing_your_own_password_needs_the_current_one_and_ends_every_token() {
    let app = spawn_app(&[]).await;
    let (olga_id, olga) = account(&app, "olga", AdminRole::Viewer).await;
    let other_session = app.login("olga", PASSWORD).await;
    let app_ref = &app;
    let change = |token: &str, current: &str, new: &str| {
        let token = token.to_owned();
        let body = json!({"current_password": current, "new_password": new});
        async move {
            app_ref
                .call("POST", "/api/v1/me/password", Some(&token), Some(body))
                .await
        }
    };
    let new_password = "a brand new passphrase";

    let (status, body) = change(&olga, "not my password", new_password).await;
    assert_invalid(status, &body, "current_password");
    let (status, body) = change(&olga, PASSWORD, "too short").await;
    assert_invalid(status, &body, "new_password");
    let (status, body) = change(&olga, PASSWORD, PASSWORD).await;
    assert_invalid(status, &body, "new_password");
    let (status, body) = change(&olga, "", new_password).await;
    assert_invalid(status, &body, "current_password");
    assert_eq!(me_status(&app, &olga).await, 200, "nothing changed yet");

    let (status, body) = change(&olga, PASSWORD, new_password).await;
    assert_eq!((status, body), (204, Value::Null));
    // Every token of the account ends, this one included; logging in again works at once.
    assert_eq!(me_status(&app, &olga).await, 401);
    assert_eq!(me_status(&app, &other_session).await, 401);
    assert_eq!(login_status(&app, "olga", PASSWORD).await, 401);
    let fresh = app.login("olga", new_password).await;
    assert_eq!(me_status(&app, &fresh).await, 200);

    let rows = app.audit_rows("admin.password_change").await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["admin_id"], olga_id);
    assert_eq!(rows[0]["target_id"], olga_id.to_string());
    assert_no_secrets(&rows, &[PASSWORD, new_password]);
    app.shutdown().await;
}

#[actix_rt::test]
async fn wrong_current_passwords_count_as_failed_logins() {
    let app = spawn_app(&[]).await;
    let (_, olga) = account(&app, "olga", AdminRole::Viewer).await;
    let body = json!({"current_password": "guess", "new_password": "a brand new passphrase"});
    for _ in 0..4 {
        let (status, reply) = app
            .call(
                "POST",
                "/api/v1/me/password",
                Some(&olga),
                Some(body.clone()),
            )
            .await;
        assert_invalid(status, &reply, "current_password");
    }
    let (status, reply) = app
        .call(
            "POST",
            "/api/v1/me/password",
            Some(&olga),
            Some(body.clone()),
        )
        .await;
    assert_eq!(status, 429, "the fifth locks the username: {reply}");
    assert_eq!(login_status(&app, "olga", PASSWORD).await, 429);
    app.shutdown().await;
}

// ---------------------------------------------------------------------------------------------
// Audit log

async fn audit_at(
    conn: &mut AsyncPgConnection,
    admin_id: Option<i64>,
    action: &str,
    target: (&str, &str),
    at: DateTime<Utc>,
) {
    diesel::sql_query(
        "INSERT INTO audit_log (admin_id, actor, action, target_type, target_id, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind::<Nullable<BigInt>, _>(admin_id)
    .bind::<Text, _>(admin_id.map_or("system".to_owned(), |id| format!("admin:{id}")))
    .bind::<Text, _>(action)
    .bind::<Text, _>(target.0)
    .bind::<Text, _>(target.1)
    .bind::<Timestamptz, _>(at)
    .execute(conn)
    .await
    .unwrap();
}

/// The `action`s of a page's items.
fn actions(page: &Value) -> Vec<&str> {
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["action"].as_str().unwrap())
        .collect()
}

#[actix_rt::test]
async fn the_audit_log_is_filtered_and_paged_newest_first() {
    let app = spawn_app(&[]).await;
    let (root_id, root) = account(&app, "root", AdminRole::Admin).await;
    let (olga_id, _) = account(&app, "olga", AdminRole::Operator).await;
    let conn = &mut app.db.connect().await;
    let t0: DateTime<Utc> = "2026-01-10T12:00:00Z".parse().unwrap();
    let h = |n: i64| t0 + chrono::Duration::hours(n);
    audit_at(conn, Some(root_id), "user.ban", ("user", "7"), h(0)).await;
    audit_at(conn, Some(olga_id), "user.note", ("user", "7"), h(1)).await;
    audit_at(conn, Some(olga_id), "user_x.odd", ("user", "8"), h(2)).await;
    audit_at(conn, None, "job.retry", ("job", "3"), h(3)).await;
    audit_at(conn, Some(root_id), "user.ban", ("user", "9"), h(4)).await;
    let (app_ref, root_ref) = (&app, root.as_str());
    let get = |query: &str| {
        let path = format!("/api/v1/audit{query}");
        async move { app_ref.call("GET", &path, Some(root_ref), None).await }
    };

    let (status, all) = get("?to=2026-02-01T00:00:00Z").await;
    assert_eq!(status, 200, "{all}");
    assert_eq!(
        actions(&all),
        [
            "user.ban",
            "job.retry",
            "user_x.odd",
            "user.note",
            "user.ban"
        ],
        "newest first"
    );
    assert_eq!(all["total"], 5);
    assert_eq!(all["items"][0]["target_id"], "9");
    assert_eq!(all["items"][0]["admin_id"], root_id);
    assert_eq!(all["items"][1]["admin_id"], Value::Null);

    let (_, page) = get("?to=2026-02-01T00:00:00Z&per_page=2&page=2").await;
    assert_eq!(actions(&page), ["user_x.odd", "user.note"]);
    assert_eq!(
        (
            page["total"].clone(),
            page["page"].clone(),
            page["per_page"].clone()
        ),
        (json!(5), json!(2), json!(2))
    );

    let (_, exact) = get("?action=user.ban").await;
    assert_eq!(exact["total"], 2);
    // A prefix; `_` in it is literal, not LIKE's wildcard.
    for prefix in ["user.", "user.*"] {
        let (_, by_prefix) = get(&format!("?action={prefix}")).await;
        assert_eq!(
            actions(&by_prefix),
            ["user.ban", "user.note", "user.ban"],
            "{prefix}"
        );
    }
    let (_, odd) = get("?action=user_x.").await;
    assert_eq!(actions(&odd), ["user_x.odd"]);
    let (_, by_admin) = get(&format!("?admin_id={olga_id}")).await;
    assert_eq!(actions(&by_admin), ["user_x.odd", "user.note"]);
    let (_, by_target) = get("?target_type=user&target_id=7").await;
    assert_eq!(actions(&by_target), ["user.note", "user.ban"]);
    // `from` is inclusive, `to` exclusive; offsets are understood (13:00+01:00 is 12:00Z).
    let (_, window) = get("?from=2026-01-10T13:00:00%2B01:00&to=2026-01-10T14:00:00Z").await;
    assert_eq!(actions(&window), ["user.note", "user.ban"]);
    let (_, unencoded_plus) = get("?from=2026-01-10T14:00:00+01:00&to=2026-01-10T15:00:00Z").await;
    assert_eq!(actions(&unencoded_plus), ["user_x.odd", "user.note"]);

    for (query, field) in [
        ("?from=yesterday", "from"),
        ("?to=2026-01-10", "to"),
        ("?from=2026-01-11T00:00:00Z&to=2026-01-10T00:00:00Z", "to"),
        ("?action=user*", "action"),
        ("?page=0", "page"),
        ("?per_page=201", "per_page"),
        ("?admin_id=abc", "query"),
    ] {
        let (status, body) = get(query).await;
        assert_invalid(status, &body, field);
    }
    app.shutdown().await;
}

// ---------------------------------------------------------------------------------------------
// Notifications

async fn user(conn: &mut AsyncPgConnection, telegram_id: i64) -> i64 {
    diesel::sql_query(
        "INSERT INTO users (telegram_id, referral_code) VALUES ($1, 'ref' || $1) RETURNING id",
    )
    .bind::<BigInt, _>(telegram_id)
    .get_result::<Id>(conn)
    .await
    .unwrap()
    .id
}

#[derive(QueryableByName)]
struct Id {
    #[diesel(sql_type = BigInt)]
    id: i64,
}

async fn delivery(
    conn: &mut AsyncPgConnection,
    user_id: i64,
    kind: &str,
    channel: &str,
    status: &str,
    at: DateTime<Utc>,
) -> i64 {
    diesel::sql_query(
        "INSERT INTO notifications (user_id, kind, channel, status, dedup_key, created_at) \
         VALUES ($1, $2, $3, $4, $2 || ':' || $1 || ':' || $5, $5) RETURNING id",
    )
    .bind::<BigInt, _>(user_id)
    .bind::<Text, _>(kind)
    .bind::<Text, _>(channel)
    .bind::<Text, _>(status)
    .bind::<Timestamptz, _>(at)
    .get_result::<Id>(conn)
    .await
    .unwrap()
    .id
}

fn ids(page: &Value) -> Vec<i64> {
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_i64().unwrap())
        .collect()
}

#[actix_rt::test]
async fn notification_deliveries_are_filtered_and_paged_newest_first() {
    let app = spawn_app(&[]).await;
    let viewer = app.token_for(AdminRole::Viewer).await;
    let conn = &mut app.db.connect().await;
    let (ann, ben) = (user(conn, 101).await, user(conn, 102).await);
    let t0: DateTime<Utc> = "2026-01-10T12:00:00Z".parse().unwrap();
    let h = |n: i64| t0 + chrono::Duration::hours(n);
    let n1 = delivery(conn, ann, "payment_succeeded", "telegram", "sent", h(0)).await;
    let n2 = delivery(conn, ann, "payment_succeeded", "email", "failed", h(1)).await;
    let n3 = delivery(
        conn,
        ben,
        "subscription_expiring",
        "telegram",
        "skipped",
        h(2),
    )
    .await;
    let n4 = delivery(conn, ben, "payment_succeeded", "telegram", "sent", h(3)).await;
    let (app_ref, viewer_ref) = (&app, viewer.as_str());
    let get = |query: &str| {
        let path = format!("/api/v1/notifications{query}");
        async move { app_ref.call("GET", &path, Some(viewer_ref), None).await }
    };

    let (status, all) = get("").await;
    assert_eq!(status, 200, "{all}");
    assert_eq!(ids(&all), [n4, n3, n2, n1]);
    assert_eq!(all["total"], 4);
    let first = &all["items"][3];
    assert_eq!(first["user_id"], ann);
    assert_eq!(first["kind"], "payment_succeeded");
    assert_eq!(first["channel"], "telegram");
    assert_eq!(first["status"], "sent");

    for (query, expected) in [
        ("?kind=payment_succeeded", vec![n4, n2, n1]),
        ("?channel=email", vec![n2]),
        ("?status=sent", vec![n4, n1]),
        (&format!("?user_id={ben}") as &str, vec![n4, n3]),
        (
            "?kind=payment_succeeded&channel=telegram&status=sent",
            vec![n4, n1],
        ),
        (
            "?from=2026-01-10T13:00:00Z&to=2026-01-10T15:00:00Z",
            vec![n3, n2],
        ),
        ("?per_page=3&page=2", vec![n1]),
    ] {
        let (status, page) = get(query).await;
        assert_eq!(status, 200, "{query}: {page}");
        assert_eq!(ids(&page), expected, "{query}");
    }
    let (_, paged) = get("?per_page=3&page=2").await;
    assert_eq!(paged["total"], 4);

    for (query, field) in [
        ("?kind=payment", "kind"),
        ("?channel=sms", "channel"),
        ("?status=delivered", "status"),
        ("?from=2026-01-10", "from"),
        ("?per_page=0", "per_page"),
    ] {
        let (status, body) = get(query).await;
        assert_invalid(status, &body, field);
    }
    app.shutdown().await;
}

// ---------------------------------------------------------------------------------------------
// Panel syncs and panel stats

#[actix_rt::test]
async fn sync_runs_are_listed_newest_first_by_kind() {
    let app = spawn_app(&[]).await;
    let viewer = app.token_for(AdminRole::Viewer).await;
    let conn = &mut app.db.connect().await;
    for kind in ["subscriptions", "status", "subscriptions", "stats"] {
        vpn_shop::db::sync::start_run(conn, kind).await.unwrap();
    }
    let (status, all) = app
        .call("GET", "/api/v1/sync/runs", Some(&viewer), None)
        .await;
    assert_eq!(status, 200, "{all}");
    let kinds: Vec<&str> = all["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["stats", "subscriptions", "status", "subscriptions"]);
    assert_eq!(all["total"], 4);
    assert_eq!(all["items"][0]["status"], "running");
    assert_eq!(all["items"][0]["checked"], 0);

    let (_, subs) = app
        .call(
            "GET",
            "/api/v1/sync/runs?kind=subscriptions&per_page=1",
            Some(&viewer),
            None,
        )
        .await;
    assert_eq!(subs["total"], 2);
    assert_eq!(subs["items"].as_array().unwrap().len(), 1);
    assert_eq!(subs["items"][0]["id"], all["items"][1]["id"]);
    let (status, body) = app
        .call(
            "GET",
            "/api/v1/sync/runs?kind=everything",
            Some(&viewer),
            None,
        )
        .await;
    assert_invalid(status, &body, "kind");
    app.shutdown().await;
}

#[actix_rt::test]
async fn syncing_without_a_panel_is_a_conflict() {
    let app = spawn_app(&[]).await;
    let operator = app.token_for(AdminRole::Operator).await;
    let (status, body) = app
        .call("POST", "/api/v1/sync/subscriptions", Some(&operator), None)
        .await;
    assert_conflict(status, &body, "MARZBAN_URL");
    let (status, body) = app
        .call("POST", "/api/v1/sync/everything", Some(&operator), None)
        .await;
    assert_invalid(status, &body, "kind");
    assert!(app.audit_rows("sync.run").await.is_empty());
    app.shutdown().await;
}

async fn spawn_with_panel(panel: &FakePanel) -> TestApp {
    let url = panel.url();
    let app = spawn_app(&[
        ("MARZBAN_URL", url.as_str()),
        ("MARZBAN_USERNAME", ADMIN_USERNAME),
        ("MARZBAN_PASSWORD", ADMIN_PASSWORD),
        ("PANEL_TIMEOUT", "1s"),
        ("JOB_POLL_INTERVAL", "200ms"),
        // The health probe runs at start, then not in the middle of a test.
        ("ALERT_CHECK_INTERVAL", "1h"),
    ])
    .await;
    app.db.wait_start_up_panel_jobs().await;
    app
}

#[actix_rt::test]
async fn an_operator_runs_a_sync_now_one_at_a_time() {
    let panel = FakePanel::start();
    let app = spawn_with_panel(&panel).await;
    let operator = app.token_for(AdminRole::Operator).await;
    let conn = &mut app.db.connect().await;
    let runs_before: i64 = sync_runs::table.count().get_result(conn).await.unwrap();

    let (status, body) = app
        .call("POST", "/api/v1/sync/stats", Some(&operator), None)
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["kind"], "stats");
    for counter in ["checked", "created", "updated", "failed"] {
        assert!(body[counter].is_i64(), "{counter}: {body}");
    }
    let newest: (String, String) = sync_runs::table
        .select((sync_runs::kind, sync_runs::status))
        .order(sync_runs::id.desc())
        .first::<(String, vpn_shop::domain::SyncRunStatus)>(conn)
        .await
        .map(|(k, s)| (k, s.as_str().to_owned()))
        .unwrap();
    assert_eq!(newest, ("stats".to_owned(), "succeeded".to_owned()));
    let runs_after: i64 = sync_runs::table.count().get_result(conn).await.unwrap();
    assert_eq!(runs_after, runs_before + 1);
    let (_, listed) = app
        .call("GET", "/api/v1/sync/runs?kind=stats", Some(&operator), None)
        .await;
    assert_eq!(listed["items"][0]["status"], "succeeded");

    // A run of a kind already in progress is refused, not queued behind it: the first run's
    // read of the panel is held at the panel's door while the second run is asked for.
    let held = panel.hold_next("GET", "/api/users");
    let slow = app.call("POST", "/api/v1/sync/subscriptions", Some(&operator), None);
    let second = async {
        held.wait_arrived().await;
        let answer = app
            .call("POST", "/api/v1/sync/subscriptions", Some(&operator), None)
            .await;
        held.release();
        answer
    };
    let ((first_status, first_body), (second_status, second_body)) = tokio::join!(slow, second);
    assert_eq!(first_status, 200, "{first_body}");
    assert_conflict(second_status, &second_body, "already running");

    // A run that fails answers 503 and is recorded as failed.
    panel.set_outage(true);
    let (status, body) = app
        .call("POST", "/api/v1/sync/stats", Some(&operator), None)
        .await;
    assert_eq!(status, 503, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("stats sync failed"),
        "{body}"
    );
    panel.set_outage(false);
    let (_, listed) = app
        .call("GET", "/api/v1/sync/runs?kind=stats", Some(&operator), None)
        .await;
    assert_eq!(listed["items"][0]["status"], "failed");

    let rows = app.audit_rows("sync.run").await;
    let outcomes: Vec<(&str, &str)> = rows
        .iter()
        .map(|r| {
            (
                r["target_id"].as_str().unwrap(),
                r["after"]["outcome"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        outcomes,
        [
            ("stats", "succeeded"),
            ("subscriptions", "succeeded"),
            ("stats", "failed")
        ],
        "the refused run is not logged"
    );
    assert_eq!(rows[0]["actor"], "admin:operator-user");
    assert!(rows[0]["after"]["counts"]["checked"].is_i64());
    app.shutdown().await;
}

#[actix_rt::test]
async fn panel_stats_show_the_latest_snapshot_and_the_history() {
    let app = spawn_app(&[]).await;
    let viewer = app.token_for(AdminRole::Viewer).await;
    let (status, empty) = app
        .call("GET", "/api/v1/stats/panel", Some(&viewer), None)
        .await;
    assert_eq!(status, 200);
    assert_eq!(empty, json!({"latest": null, "history": []}));

    let conn = &mut app.db.connect().await;
    for (i, online) in [3_i64, 5, 8].into_iter().enumerate() {
        diesel::sql_query(
            "INSERT INTO panel_stats (collected_at, version, mem_total, mem_used, cpu_cores, \
                 cpu_usage, total_user, online_users, users_active, users_on_hold, users_disabled, \
                 users_expired, users_limited, incoming_bandwidth, outgoing_bandwidth, \
                 incoming_bandwidth_speed, outgoing_bandwidth_speed) \
             VALUES (now() - make_interval(mins => $1), '0.8.4', 8000, 4000, 2, 12.5, 10, $2, \
                 7, 0, 1, 1, 1, 100, 200, 3, 4)",
        )
        .bind::<diesel::sql_types::Integer, _>(10 - i as i32)
        .bind::<BigInt, _>(online)
        .execute(conn)
        .await
        .unwrap();
    }
    let (status, body) = app
        .call("GET", "/api/v1/stats/panel", Some(&viewer), None)
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["latest"]["online_users"], 8);
    assert_eq!(body["latest"]["version"], "0.8.4");
    assert_eq!(body["latest"]["cpu_usage"], 12.5);
    let online: Vec<i64> = body["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["online_users"].as_i64().unwrap())
        .collect();
    assert_eq!(online, [8, 5, 3], "newest first");
    let (_, limited) = app
        .call("GET", "/api/v1/stats/panel?limit=2", Some(&viewer), None)
        .await;
    assert_eq!(limited["history"].as_array().unwrap().len(), 2);
    assert_eq!(limited["latest"]["online_users"], 8);
    for limit in ["0", "1001", "x"] {
        let (status, body) = app
            .call(
                "GET",
                &format!("/api/v1/stats/panel?limit={limit}"),
                Some(&viewer),
                None,
            )
            .await;
        assert_eq!(status, 422, "{limit}: {body}");
    }
    app.shutdown().await;
}

// ---------------------------------------------------------------------------------------------
// Statistics

/// Waits while the UTC day is about to turn, so that "today" is the same day for the data a test
/// writes and for the request that counts it.
async fn clear_of_midnight() -> DateTime<Utc> {
    loop {
        let now = Utc::now();
        let secs = now.timestamp().rem_euclid(86_400);
        if (600..86_400 - 120).contains(&secs) {
            return now;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

async fn plan(conn: &mut AsyncPgConnection, days: i32, price_minor: i64) -> i64 {
    diesel::sql_query(
        "INSERT INTO plans (name, days, price_minor) VALUES ($1, $2, $3) RETURNING id",
    )
    .bind::<Text, _>(format!("{days} days"))
    .bind::<diesel::sql_types::Integer, _>(days)
    .bind::<BigInt, _>(price_minor)
    .get_result::<Id>(conn)
    .await
    .unwrap()
    .id
}

async fn shop_user(
    conn: &mut AsyncPgConnection,
    telegram_id: i64,
    created_at: DateTime<Utc>,
    trial_at: Option<DateTime<Utc>>,
) -> i64 {
    diesel::sql_query(
        "INSERT INTO users (telegram_id, referral_code, created_at, trial_used_at) \
         VALUES ($1, 'ref' || $1, $2, $3) RETURNING id",
    )
    .bind::<BigInt, _>(telegram_id)
    .bind::<Timestamptz, _>(created_at)
    .bind::<Nullable<Timestamptz>, _>(trial_at)
    .get_result::<Id>(conn)
    .await
    .unwrap()
    .id
}

/// A subscription: (plan, status, trial, created, ends).
async fn subscription(
    conn: &mut AsyncPgConnection,
    user_id: i64,
    plan_id: Option<i64>,
    status: &str,
    is_trial: bool,
    created_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
) {
    diesel::sql_query(
        "INSERT INTO subscriptions (user_id, plan_id, panel_username, status, is_trial, \
             created_at, expires_at) VALUES ($1, $2, 'vpnshop_' || $1, $3, $4, $5, $6)",
    )
    .bind::<BigInt, _>(user_id)
    .bind::<Nullable<BigInt>, _>(plan_id)
    .bind::<Text, _>(status)
    .bind::<Bool, _>(is_trial)
    .bind::<Timestamptz, _>(created_at)
    .bind::<Timestamptz, _>(expires_at)
    .execute(conn)
    .await
    .unwrap();
}

/// A payment: provider, status, amount and currency, refunded part, when paid.
#[allow(clippy::too_many_arguments)] // One row of a table, column by column.
async fn payment(
    conn: &mut AsyncPgConnection,
    user_id: i64,
    provider: &str,
    status: &str,
    amount_minor: i64,
    currency: &str,
    refunded_minor: i64,
    paid_at: Option<DateTime<Utc>>,
) {
    diesel::sql_query(
        "INSERT INTO payments (user_id, provider, status, amount_minor, currency, days, \
             refunded_minor, paid_at, created_at) \
         VALUES ($1, $2, $3, $4, $5, 30, $6, $7, coalesce($7, now()))",
    )
    .bind::<BigInt, _>(user_id)
    .bind::<Text, _>(provider)
    .bind::<Text, _>(status)
    .bind::<BigInt, _>(amount_minor)
    .bind::<Text, _>(currency)
    .bind::<BigInt, _>(refunded_minor)
    .bind::<Nullable<Timestamptz>, _>(paid_at)
    .execute(conn)
    .await
    .unwrap();
}

/// A revenue line: provider/currency (or currency), payments, amount, refunded, net.
type Line = (String, i64, i64, i64, i64);

/// The lines of a list of revenue lines, named by `key`.
fn lines(lines: &Value, key: &str) -> Vec<Line> {
    lines
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                format!(
                    "{}{}",
                    l[key].as_str().unwrap(),
                    l.get("currency")
                        .filter(|_| key != "currency")
                        .and_then(Value::as_str)
                        .map(|c| format!("/{c}"))
                        .unwrap_or_default()
                ),
                l["payments"].as_i64().unwrap(),
                l["amount_minor"].as_i64().unwrap(),
                l["refunded_minor"].as_i64().unwrap(),
                l["net_minor"].as_i64().unwrap(),
            )
        })
        .collect()
}

fn line(name: &str, payments: i64, amount: i64, refunded: i64) -> Line {
    (
        name.to_owned(),
        payments,
        amount,
        refunded,
        amount - refunded,
    )
}

#[actix_rt::test]
async fn the_overview_counts_a_known_shop_exactly() {
    let app = spawn_app(&[]).await;
    let viewer = app.token_for(AdminRole::Viewer).await;
    let conn = &mut app.db.connect().await;
    let now = clear_of_midnight().await;
    let ago = |days: i64| now - chrono::Duration::days(days);
    let minutes_ago = |m: i64| now - chrono::Duration::minutes(m);
    let p30 = plan(conn, 30, 20_000).await;
    let p90 = plan(conn, 90, 54_000).await;
    let p180 = plan(conn, 180, 99_000).await;
    let p365 = plan(conn, 365, 180_000).await;

    // A: trial 60 days ago, paid 50 days ago and again today; renewed, running.
    let a = shop_user(conn, 1, ago(60), Some(ago(60))).await;
    payment(
        conn,
        a,
        "yookassa",
        "succeeded",
        20_000,
        "RUB",
        0,
        Some(ago(50)),
    )
    .await;
    payment(
        conn,
        a,
        "yookassa",
        "succeeded",
        20_000,
        "RUB",
        0,
        Some(minutes_ago(1)),
    )
    .await;
    subscription(conn, a, Some(p30), "active", false, ago(60), ago(-20)).await;
    // B: paid in Stars 40 days ago; the subscription ended 5 days ago and was not renewed.
    let b = shop_user(conn, 2, ago(45), None).await;
    payment(conn, b, "stars", "succeeded", 150, "XTR", 0, Some(ago(40))).await;
    subscription(conn, b, Some(p30), "expired", false, ago(45), ago(5)).await;
    // C: trial 20 days ago, paid by WATA 15 days ago (10 000 of it refunded since); running.
    let c = shop_user(conn, 3, ago(20), Some(ago(20))).await;
    payment(
        conn,
        c,
        "wata",
        "refunded",
        54_000,
        "RUB",
        10_000,
        Some(ago(15)),
    )
    .await;
    subscription(conn, c, Some(p90), "active", false, ago(20), ago(-75)).await;
    // D: in a trial since 3 days; an order pending, another canceled.
    let d = shop_user(conn, 4, ago(3), Some(ago(3))).await;
    payment(conn, d, "yookassa", "pending", 20_000, "RUB", 0, None).await;
    payment(conn, d, "yookassa", "canceled", 20_000, "RUB", 0, None).await;
    subscription(conn, d, None, "active", true, ago(3), ago(-4)).await;
    // E: joined today, got a plan with a 100 % promo code (no money, no subscription here).
    let e = shop_user(conn, 5, minutes_ago(2), None).await;
    payment(
        conn,
        e,
        "free",
        "succeeded",
        0,
        "RUB",
        0,
        Some(minutes_ago(2)),
    )
    .await;
    // F: paid 101 days ago, then took a trial: not a conversion. Disabled by an admin.
    let f = shop_user(conn, 6, ago(102), Some(ago(100))).await;
    payment(
        conn,
        f,
        "yookassa",
        "succeeded",
        99_000,
        "RUB",
        0,
        Some(ago(101)),
    )
    .await;
    subscription(conn, f, Some(p180), "disabled", false, ago(100), ago(-30)).await;
    // G: a year's plan bought 35 days ago; running.
    let g = shop_user(conn, 7, ago(35), None).await;
    payment(
        conn,
        g,
        "yookassa",
        "succeeded",
        180_000,
        "RUB",
        0,
        Some(ago(35)),
    )
    .await;
    subscription(conn, g, Some(p365), "active", false, ago(35), ago(-330)).await;
    // H: paid 200 days ago; ended long before the period.
    let h = shop_user(conn, 8, ago(200), None).await;
    payment(
        conn,
        h,
        "yookassa",
        "succeeded",
        20_000,
        "RUB",
        0,
        Some(ago(200)),
    )
    .await;
    subscription(conn, h, Some(p30), "expired", false, ago(200), ago(170)).await;
    // I: joined 10 days ago, pays in Stars: 2 days ago and today; running.
    let i = shop_user(conn, 9, ago(10), None).await;
    payment(conn, i, "stars", "succeeded", 150, "XTR", 0, Some(ago(2))).await;
    payment(
        conn,
        i,
        "stars",
        "succeeded",
        150,
        "XTR",
        0,
        Some(minutes_ago(3)),
    )
    .await;
    subscription(conn, i, Some(p30), "active", false, ago(10), ago(-58)).await;
    // The viewer's own account is no user of the shop; neither are the admins.

    let (status, body) = app
        .call("GET", "/api/v1/stats/overview", Some(&viewer), None)
        .await;
    assert_eq!(status, 200, "{body}");

    assert_eq!(
        body["users"],
        json!({"total": 9, "new_today": 1, "new_7d": 2, "new_30d": 4}),
        "E today; D and E in 7 days; C, D, E, I in 30"
    );
    assert_eq!(
        body["subscriptions"],
        json!({"active": 5, "active_trials": 1, "active_paid": 4}),
        "A, C, D (trial), G, I run; F is disabled, B and H ended"
    );
    assert_eq!(
        body["trials"],
        json!({"users_with_trial": 4, "converted": 2, "conversion_rate": 0.5}),
        "A, C, D, F had trials; A and C paid after theirs, F only before"
    );
    assert_eq!(
        body["paying_users"], 7,
        "A B C F G H I; not D (no paid order), not E (free)"
    );
    // 20 000 × 30/30 + 54 000 × 30/90 + 180 000 × 30/365 + 20 000 × 30/30
    // = 20 000 + 18 000 + 14 794.52… + 20 000 = 72 794.52… → 72 795.
    assert_eq!(
        body["mrr"],
        json!({"amount_minor": 72_795, "currency": "RUB", "subscriptions": 4})
    );
    assert_eq!(
        body["churn"],
        json!({"base": 4, "churned": 1, "rate": 0.25}),
        "A, B, F, G ran 30 days ago (C and I are newer, H had ended, D is a trial); B ended"
    );

    let revenue = &body["revenue"];
    assert_eq!(
        lines(&revenue["today"]["by_provider"], "provider"),
        [
            line("stars/XTR", 1, 150, 0),
            line("yookassa/RUB", 1, 20_000, 0)
        ]
    );
    assert_eq!(
        lines(&revenue["today"]["by_currency"], "currency"),
        [line("RUB", 1, 20_000, 0), line("XTR", 1, 150, 0)]
    );
    assert_eq!(
        lines(&revenue["last_30_days"]["by_provider"], "provider"),
        [
            line("stars/XTR", 2, 300, 0),
            line("wata/RUB", 1, 54_000, 10_000),
            line("yookassa/RUB", 1, 20_000, 0),
        ]
    );
    assert_eq!(
        lines(&revenue["last_30_days"]["by_currency"], "currency"),
        [line("RUB", 2, 74_000, 10_000), line("XTR", 2, 300, 0)]
    );
    let days = revenue["by_day"].as_array().unwrap();
    assert_eq!(days.len(), 30);
    let today = now.date_naive();
    assert_eq!(days[29]["date"], today.to_string());
    assert_eq!(
        days[0]["date"],
        (today - chrono::Duration::days(29)).to_string()
    );
    let with_payments: Vec<(String, Vec<Line>)> = days
        .iter()
        .filter(|d| !d["by_provider"].as_array().unwrap().is_empty())
        .map(|d| {
            (
                d["date"].as_str().unwrap().to_owned(),
                lines(&d["by_currency"], "currency"),
            )
        })
        .collect();
    assert_eq!(
        with_payments,
        [
            (
                ago(15).date_naive().to_string(),
                vec![line("RUB", 1, 54_000, 10_000)]
            ),
            (
                ago(2).date_naive().to_string(),
                vec![line("XTR", 1, 150, 0)]
            ),
            (
                today.to_string(),
                vec![line("RUB", 1, 20_000, 0), line("XTR", 1, 150, 0)]
            ),
        ]
    );
    assert_eq!(
        body["periods"]["today_from"],
        json!(format!("{today}T00:00:00Z"))
    );
    app.shutdown().await;
}

#[actix_rt::test]
async fn the_overview_of_an_empty_shop_is_zeros() {
    let app = spawn_app(&[]).await;
    let viewer = app.token_for(AdminRole::Viewer).await;
    let (status, body) = app
        .call("GET", "/api/v1/stats/overview", Some(&viewer), None)
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["users"]["total"], 0);
    assert_eq!(body["trials"]["conversion_rate"], Value::Null);
    assert_eq!(
        body["churn"],
        json!({"base": 0, "churned": 0, "rate": null})
    );
    assert_eq!(body["mrr"]["amount_minor"], 0);
    assert_eq!(body["paying_users"], 0);
    assert_eq!(
        body["revenue"]["today"],
        json!({"by_provider": [], "by_currency": []})
    );
    assert_eq!(body["revenue"]["by_day"].as_array().unwrap().len(), 30);
    app.shutdown().await;
}

// ---------------------------------------------------------------------------------------------
// The audit record helper is what other modules use; the listing shows its rows as they are.

#[actix_rt::test]
async fn audit_rows_of_other_modules_are_listed_with_their_values() {
    let app = spawn_app(&[]).await;
    let (root_id, root) = account(&app, "root", AdminRole::Admin).await;
    audit::record(
        &mut app.db.connect().await,
        AuditRecord {
            admin_id: Some(AdminId(root_id)),
            actor: "admin:root".into(),
            action: "plan.update".into(),
            target_type: Some("plan".into()),
            target_id: Some("1".into()),
            before: Some(json!({"price_minor": 19_900})),
            after: Some(json!({"price_minor": 24_900})),
            remote_addr: Some("203.0.113.9".into()),
        },
    )
    .await
    .unwrap();
    let (status, page) = app
        .call("GET", "/api/v1/audit?action=plan.", Some(&root), None)
        .await;
    assert_eq!(status, 200, "{page}");
    let item = &page["items"][0];
    assert_eq!(item["before"], json!({"price_minor": 19_900}));
    assert_eq!(item["after"], json!({"price_minor": 24_900}));
    assert_eq!(item["remote_addr"], "203.0.113.9");
    assert_eq!(item["actor"], "admin:root");
    assert!(item["created_at"].is_string());
    app.shutdown().await;
}
