//! The admin API of users and subscriptions, through the real HTTP server and database: the list
//! (search, filters, sorts, pages), profiles, profile changes, extensions, panel operations (with
//! the fake Marzban panel) and the subscription lists.

use crate::support;

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use serde_json::{Value, json};
use support::app::{TestApp, spawn_app};
use support::db::Subscriber;
use support::marzban::{ADMIN_PASSWORD, ADMIN_USERNAME, FakePanel};
use vpn_shop::db::jobs;
use vpn_shop::db::models::{Job, Subscription};
use vpn_shop::db::schema::{jobs as jobs_table, subscriptions};
use vpn_shop::domain::{AdminRole, JobId, JobState, SubscriptionStatus, UserId};

/// Runs set-up SQL (several statements allowed).
async fn exec(conn: &mut AsyncPgConnection, sql: &str) {
    use diesel_async::SimpleAsyncConnection;
    conn.batch_execute(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

fn days(n: i64) -> DateTime<Utc> {
    Utc::now() + chrono::Duration::days(n)
}

/// A user with a subscription ending at `expires_at` (or none).
async fn subscriber(
    conn: &mut AsyncPgConnection,
    telegram_id: i64,
    expires_at: Option<DateTime<Utc>>,
    status: SubscriptionStatus,
    is_trial: bool,
) -> UserId {
    Subscriber {
        expires_at,
        status,
        is_trial,
        ..Subscriber::new(telegram_id)
    }
    .insert(conn)
    .await
}

async fn subscription(conn: &mut AsyncPgConnection, user: UserId) -> Option<Subscription> {
    subscriptions::table
        .filter(subscriptions::user_id.eq(user))
        .select(Subscription::as_select())
        .first(conn)
        .await
        .optional()
        .unwrap()
}

/// Jobs of `kind` for `user`.
async fn jobs_of(conn: &mut AsyncPgConnection, kind: &str, user: UserId) -> Vec<Job> {
    jobs_table::table
        .filter(jobs_table::kind.eq(kind))
        .select(Job::as_select())
        .order(jobs_table::id)
        .load(conn)
        .await
        .unwrap()
        .into_iter()
        .filter(|j| j.payload["user_id"] == json!(user.0))
        .collect()
}

fn ids(page: &Value) -> Vec<i64> {
    page["items"]
        .as_array()
        .unwrap_or_else(|| panic!("no items: {page}"))
        .iter()
        .map(|u| u["telegram_id"].as_i64().unwrap())
        .collect()
}

async fn list(app: &TestApp, token: &str, query: &str) -> Value {
    let (status, body) = app
        .call("GET", &format!("/api/v1/users{query}"), Some(token), None)
        .await;
    assert_eq!(status, 200, "{query}: {body}");
    body
}

async fn refused(app: &TestApp, token: &str, path: &str, field: &str) {
    let (status, body) = app.call("GET", path, Some(token), None).await;
    assert_eq!(status, 422, "{path}: {body}");
    assert_eq!(body["error"]["field"], field, "{path}: {body}");
}

#[actix_rt::test]
async fn the_user_list_searches_filters_sorts_and_pages() {
    let app = spawn_app(&[]).await;
    app.assert_guarded("GET", "/api/v1/users", None, AdminRole::Viewer)
        .await;
    let token = app.token_for(AdminRole::Viewer).await;
    let conn = &mut app.db.connect().await;
    let alice = subscriber(
        conn,
        1001,
        Some(days(20)),
        SubscriptionStatus::Active,
        false,
    )
    .await;
    let bob = subscriber(
        conn,
        1002,
        Some(days(-3)),
        SubscriptionStatus::Expired,
        true,
    )
    .await;
    let carol = subscriber(conn, 1003, Some(days(5)), SubscriptionStatus::Active, true).await;
    let dave = subscriber(conn, 1004, None, SubscriptionStatus::Active, false).await;
    exec(conn, &format!(
        "UPDATE users SET username = 'Alice_Smith', email = 'alice@example.com', created_at = '2026-01-01T00:00:00Z' WHERE id = {alice};\
         UPDATE users SET username = 'alina', language = 'ru', banned = true, created_at = '2026-02-01T00:00:00Z' WHERE id = {bob};\
         UPDATE users SET username = 'a_l%ex', created_at = '2026-03-01T00:00:00Z' WHERE id = {carol};\
         UPDATE users SET created_at = '2026-04-01T00:00:00Z' WHERE id = {dave};\
         INSERT INTO payments (user_id, provider, status, amount_minor, currency, days, paid_at) VALUES \
             ({alice}, 'yookassa', 'succeeded', 19900, 'RUB', 30, now()), \
             ({carol}, 'yookassa', 'canceled', 19900, 'RUB', 30, NULL);"
    ))
    .await;

    // Newest first; every field of an item.
    let page = list(&app, &token, "").await;
    assert_eq!(ids(&page), vec![1004, 1003, 1002, 1001]);
    assert_eq!(
        (
            page["total"].as_i64(),
            page["page"].as_i64(),
            page["per_page"].as_i64()
        ),
        (Some(4), Some(1), Some(50))
    );
    let a = &page["items"][3];
    assert_eq!(a["id"], alice.0);
    assert_eq!(a["username"], "Alice_Smith");
    assert_eq!(a["email"], "alice@example.com");
    assert_eq!(a["language"], "en");
    assert_eq!(
        (a["banned"].as_bool(), a["bot_blocked"].as_bool()),
        (Some(false), Some(false))
    );
    assert_eq!(a["created_at"], "2026-01-01T00:00:00Z");
    assert!(a["last_seen_at"].is_null());
    assert_eq!(a["subscription"]["status"], "active");
    assert_eq!(a["subscription"]["is_trial"], false);
    assert!(a["subscription"]["plan_id"].is_null());
    assert!(a["subscription"]["expires_at"].as_str().is_some());
    assert!(page["items"][0]["subscription"].is_null());

    // Search: Telegram id, username prefix in any case (with or without @, LIKE characters taken
    // literally), email in any case.
    assert_eq!(ids(&list(&app, &token, "?q=1002").await), vec![1002]);
    assert_eq!(ids(&list(&app, &token, "?q=100").await), Vec::<i64>::new());
    assert_eq!(
        ids(&list(&app, &token, "?q=%40ALI").await),
        vec![1002, 1001]
    );
    assert_eq!(ids(&list(&app, &token, "?q=alice_").await), vec![1001]);
    assert_eq!(ids(&list(&app, &token, "?q=a_l%25").await), vec![1003]);
    assert_eq!(ids(&list(&app, &token, "?q=a%25").await), Vec::<i64>::new());
    // Search text is data, never SQL: a classic injection finds nobody and breaks nothing.
    for injection in [
        "%27%20OR%20%271%27%3D%271",
        "%27%3B%20DROP%20TABLE%20users%3B%20--",
        "1%20OR%201%3D1",
    ] {
        assert_eq!(
            ids(&list(&app, &token, &format!("?q={injection}")).await),
            Vec::<i64>::new(),
            "{injection}"
        );
    }
    assert_eq!(list(&app, &token, "").await["total"].as_i64(), Some(4));
    let found = list(&app, &token, "?q=Alice%40Example.COM").await;
    assert_eq!(
        (ids(&found), found["total"].as_i64()),
        (vec![1001], Some(1))
    );

    // Filters, alone and together; the total counts every match.
    let cases = [
        ("?status=active", vec![1003, 1001]),
        ("?status=expired", vec![1002]),
        ("?status=disabled", vec![]),
        ("?status=none", vec![1004]),
        ("?has_paid=true", vec![1001]),
        ("?has_paid=false", vec![1004, 1003, 1002]),
        ("?trial=true", vec![1003, 1002]),
        ("?trial=false", vec![1004, 1001]),
        ("?banned=true", vec![1002]),
        ("?language=ru", vec![1002]),
        (
            "?created_from=2026-02-01T00:00:00Z&created_to=2026-04-01T00:00:00Z",
            vec![1003, 1002],
        ),
        (
            "?created_from=2026-02-01T03:00:00%2B03:00",
            vec![1004, 1003, 1002],
        ),
        (
            "?created_from=2026-02-01T03:00:00+03:00",
            vec![1004, 1003, 1002],
        ),
        ("?status=active&trial=true&q=a", vec![1003]),
    ];
    for (query, expected) in cases {
        let page = list(&app, &token, query).await;
        assert_eq!(ids(&page), expected, "{query}");
        assert_eq!(
            page["total"].as_i64(),
            Some(expected.len() as i64),
            "{query}"
        );
    }

    // Sorts; users without a subscription last by expiry in both directions.
    let sorts = [
        ("created_at", vec![1001, 1002, 1003, 1004]),
        ("-created_at", vec![1004, 1003, 1002, 1001]),
        ("telegram_id", vec![1001, 1002, 1003, 1004]),
        ("-telegram_id", vec![1004, 1003, 1002, 1001]),
        ("expires_at", vec![1002, 1003, 1001, 1004]),
        ("-expires_at", vec![1001, 1003, 1002, 1004]),
    ];
    for (sort, expected) in sorts {
        assert_eq!(
            ids(&list(&app, &token, &format!("?sort={sort}")).await),
            expected,
            "{sort}"
        );
    }

    // Pages.
    let second = list(&app, &token, "?sort=telegram_id&page=2&per_page=3").await;
    assert_eq!(ids(&second), vec![1004]);
    assert_eq!(
        (
            second["total"].as_i64(),
            second["page"].as_i64(),
            second["per_page"].as_i64()
        ),
        (Some(4), Some(2), Some(3))
    );

    // Bad values name their parameter.
    for (query, field) in [
        ("?status=paused", "status"),
        ("?has_paid=yes", "has_paid"),
        ("?trial=maybe", "trial"),
        ("?banned=2", "banned"),
        ("?language=de", "language"),
        ("?created_from=yesterday", "created_from"),
        (
            "?created_from=2026-03-01T00:00:00Z&created_to=2026-02-01T00:00:00Z",
            "created_to",
        ),
        ("?sort=name", "sort"),
        ("?q=%40", "q"),
        ("?per_page=201", "per_page"),
        ("?page=0", "page"),
    ] {
        refused(&app, &token, &format!("/api/v1/users{query}"), field).await;
    }
    app.shutdown().await;
}

#[actix_rt::test]
async fn the_user_count_follows_inserts_and_deletes() {
    let app = spawn_app(&[]).await;
    let token = app.token_for(AdminRole::Viewer).await;
    let conn = &mut app.db.connect().await;
    assert_eq!(list(&app, &token, "").await["total"], 0);
    exec(
        conn,
        "INSERT INTO users (telegram_id, referral_code) SELECT g, 'code' || g FROM generate_series(1, 25) g",
    )
    .await;
    exec(
        conn,
        "INSERT INTO users (telegram_id, referral_code) VALUES (1, 'code1') ON CONFLICT DO NOTHING",
    )
    .await;
    let page = list(&app, &token, "?per_page=10").await;
    assert_eq!((page["total"].as_i64(), ids(&page).len()), (Some(25), 10));
    exec(conn, "DELETE FROM users WHERE telegram_id <= 5").await;
    assert_eq!(list(&app, &token, "").await["total"], 20);
    // The filtered count (a real count) agrees with the kept one.
    assert_eq!(list(&app, &token, "?banned=false").await["total"], 20);

    // A filter matching more than the few collected by id is counted and paged in SQL.
    exec(
        conn,
        "INSERT INTO users (telegram_id, referral_code, language) \
         SELECT g, 'code' || g, 'ru' FROM generate_series(100, 2599) g",
    )
    .await;
    let page = list(
        &app,
        &token,
        "?language=ru&sort=telegram_id&page=2&per_page=5",
    )
    .await;
    assert_eq!(page["total"], 2500);
    assert_eq!(ids(&page), vec![105, 106, 107, 108, 109]);
    let page = list(&app, &token, "?banned=false&sort=-telegram_id&per_page=3").await;
    assert_eq!(
        (page["total"].as_i64(), ids(&page)),
        (Some(2520), vec![2599, 2598, 2597])
    );
    app.shutdown().await;
}

#[actix_rt::test]
async fn a_profile_shows_the_subscription_payments_and_referrals() {
    let app = spawn_app(&[]).await;
    app.assert_guarded("GET", "/api/v1/users/1", None, AdminRole::Viewer)
        .await;
    let token = app.token_for(AdminRole::Viewer).await;
    let conn = &mut app.db.connect().await;
    let inviter = subscriber(conn, 2001, None, SubscriptionStatus::Active, false).await;
    let user = subscriber(
        conn,
        2002,
        Some(days(10)),
        SubscriptionStatus::Active,
        false,
    )
    .await;
    let friend = subscriber(conn, 2003, None, SubscriptionStatus::Active, false).await;
    let other = subscriber(conn, 2004, None, SubscriptionStatus::Active, false).await;
    exec(conn, &format!(
        "UPDATE users SET username = 'inviter' WHERE id = {inviter};\
         UPDATE users SET referred_by = {inviter}, note = 'VIP', trial_used_at = now() WHERE id = {user};\
         UPDATE subscriptions SET plan_id = 1, traffic_used_bytes = 500, traffic_limit_bytes = 1000, \
             subscription_url = 'https://sub.example.com/sub/abc', panel_status = 'active' WHERE user_id = {user};\
         INSERT INTO referrals (inviter_id, invitee_id, invitee_bonus_days) VALUES ({inviter}, {user}, 3);\
         INSERT INTO referrals (inviter_id, invitee_id, inviter_bonus_days, inviter_rewarded_at) VALUES ({user}, {friend}, 7, now());\
         INSERT INTO referrals (inviter_id, invitee_id) VALUES ({user}, {other});\
         INSERT INTO payments (user_id, provider, status, amount_minor, currency, days, paid_at, created_at) \
             SELECT {user}, 'stars', 'succeeded', 150, 'XTR', 30, now(), now() - make_interval(days => g) \
             FROM generate_series(1, 25) g;"
    ))
    .await;

    let (status, body) = app
        .call("GET", &format!("/api/v1/users/{user}"), Some(&token), None)
        .await;
    assert_eq!(status, 200, "{body}");
    let u = &body["user"];
    assert_eq!(u["id"], user.0);
    assert_eq!(u["telegram_id"], 2002);
    assert_eq!(u["referral_code"], "ref2002");
    assert_eq!(u["referred_by"], inviter.0);
    assert_eq!(u["note"], "VIP");
    assert!(u["trial_used_at"].as_str().is_some());
    assert!(u.get("pending_promo_id").is_some() && u.get("updated_at").is_some());
    let s = &body["subscription"];
    assert_eq!(s["status"], "active");
    assert_eq!(
        (s["plan_id"].as_i64(), s["plan_name"].as_str()),
        (Some(1), Some("1 month"))
    );
    assert_eq!(s["days_left"], 10);
    assert_eq!(
        (
            s["traffic_used_bytes"].as_i64(),
            s["traffic_limit_bytes"].as_i64()
        ),
        (Some(500), Some(1000))
    );
    assert_eq!(s["subscription_url"], "https://sub.example.com/sub/abc");
    assert_eq!(
        (s["panel_status"].as_str(), s["auto_renew"].as_bool()),
        (Some("active"), Some(false))
    );
    assert_eq!(s["panel_username"], "vpnshop_2002");
    assert!(s.get("online_at").is_some() && s.get("last_synced_at").is_some());
    let payments = body["payments"].as_array().unwrap();
    assert_eq!(payments.len(), 20, "the latest 20");
    let p = &payments[0];
    assert_eq!(
        (p["provider"].as_str(), p["status"].as_str()),
        (Some("stars"), Some("succeeded"))
    );
    assert_eq!(
        (
            p["amount_minor"].as_i64(),
            p["currency"].as_str(),
            p["days"].as_i64()
        ),
        (Some(150), Some("XTR"), Some(30))
    );
    assert!(
        p["created_at"].as_str() > payments[1]["created_at"].as_str(),
        "newest first"
    );
    assert!(p["paid_at"].as_str().is_some() && p["id"].as_i64().is_some());
    let r = &body["referrals"];
    assert_eq!(
        r["invited_by"],
        json!({"id": inviter.0, "telegram_id": 2001, "username": "inviter"})
    );
    assert_eq!(r["bonus_days_received"], 3);
    assert_eq!(
        (
            r["invited"].as_i64(),
            r["invited_paid"].as_i64(),
            r["bonus_days_earned"].as_i64()
        ),
        (Some(2), Some(1), Some(7))
    );

    // An invited user with nothing else.
    let (_, body) = app
        .call("GET", &format!("/api/v1/users/{other}"), Some(&token), None)
        .await;
    assert!(body["subscription"].is_null());
    assert_eq!(body["payments"], json!([]));
    assert_eq!(
        body["referrals"],
        json!({"invited_by": {"id": user.0, "telegram_id": 2002, "username": null},
               "bonus_days_received": 0, "invited": 0, "invited_paid": 0, "bonus_days_earned": 0})
    );

    let (status, body) = app
        .call("GET", "/api/v1/users/999999", Some(&token), None)
        .await;
    assert_eq!(status, 404);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("user 999999"),
        "{body}"
    );
    app.shutdown().await;
}

#[actix_rt::test]
async fn profile_changes_are_validated_applied_and_audited() {
    let app = spawn_app(&[]).await;
    app.assert_guarded(
        "PATCH",
        "/api/v1/users/1",
        Some(json!({"note": "x"})),
        AdminRole::Operator,
    )
    .await;
    let token = app.token_for(AdminRole::Operator).await;
    let conn = &mut app.db.connect().await;
    let user = subscriber(conn, 3001, None, SubscriptionStatus::Active, false).await;
    let path = format!("/api/v1/users/{user}");

    for (body, field) in [
        (json!({}), "body"),
        (json!({"nickname": "x"}), "body"),
        (json!({"banned": "yes"}), "body"),
        (json!({"banned": null}), "banned"),
        (json!({"language": "de"}), "language"),
        (json!({"language": null}), "language"),
        (json!({"email": "not-an-address"}), "email"),
        (json!({"email": "user@localhost"}), "email"),
        (json!({"email": "a b@example.com"}), "email"),
        (json!({"note": "n".repeat(1001)}), "note"),
    ] {
        let (status, reply) = app
            .call("PATCH", &path, Some(&token), Some(body.clone()))
            .await;
        assert_eq!(status, 422, "{body}: {reply}");
        assert_eq!(reply["error"]["field"], field, "{body}: {reply}");
    }
    // No body at all is "nothing to change" too.
    let resp = app
        .http
        .patch(app.url(&path))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 422);
    let (status, _) = app
        .call(
            "PATCH",
            "/api/v1/users/999999",
            Some(&token),
            Some(json!({"note": "x"})),
        )
        .await;
    assert_eq!(status, 404);
    assert!(app.audit_rows("user.update").await.is_empty());

    let (status, body) = app
        .call(
            "PATCH",
            &path,
            Some(&token),
            Some(json!({"email": "  Ivan.Petrov@Example.COM ", "language": "ru", "note": "n".repeat(1000)})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (body["email"].as_str(), body["language"].as_str()),
        (Some("ivan.petrov@example.com"), Some("ru"))
    );
    assert_eq!(body["note"].as_str().map(str::len), Some(1000));
    let rows = app.audit_rows("user.update").await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["target_type"], "user");
    assert_eq!(rows[0]["target_id"], user.0.to_string());
    assert_eq!(rows[0]["actor"], "admin:operator-user");
    assert_eq!(
        rows[0]["before"],
        json!({"email": null, "language": "en", "note": null})
    );
    assert_eq!(rows[0]["after"]["email"], "ivan.petrov@example.com");
    assert_eq!(rows[0]["after"]["language"], "ru");

    // Only what changes is recorded; nothing changed, nothing recorded.
    let (status, body) = app
        .call(
            "PATCH",
            &path,
            Some(&token),
            Some(json!({"language": "ru", "email": null, "note": ""})),
        )
        .await;
    assert_eq!(status, 200);
    assert!(body["email"].is_null() && body["note"].is_null());
    let rows = app.audit_rows("user.update").await;
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[1]["after"], json!({"email": null, "note": null}));
    let (status, _) = app
        .call(
            "PATCH",
            &path,
            Some(&token),
            Some(json!({"language": "ru"})),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(app.audit_rows("user.update").await.len(), 2);

    // Banning a user without a subscription queues no panel job.
    let (status, body) = app
        .call("PATCH", &path, Some(&token), Some(json!({"banned": true})))
        .await;
    assert_eq!((status, body["banned"].as_bool()), (200, Some(true)));
    assert!(jobs_of(conn, "provision", user).await.is_empty());
    app.shutdown().await;
}

#[actix_rt::test]
async fn banning_disables_the_subscription_and_unbanning_enables_it() {
    let app = spawn_app(&[]).await;
    let token = app.token_for(AdminRole::Operator).await;
    let conn = &mut app.db.connect().await;
    let user = subscriber(conn, 3101, Some(days(9)), SubscriptionStatus::Active, false).await;
    let path = format!("/api/v1/users/{user}");

    let (status, _) = app
        .call("PATCH", &path, Some(&token), Some(json!({"banned": true})))
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        subscription(conn, user).await.unwrap().status,
        SubscriptionStatus::Disabled
    );
    // The panel follows the database: one provision job applies whatever the status is when
    // it runs.
    let provision = jobs_of(conn, "provision", user).await;
    assert_eq!(provision.len(), 1);
    assert_eq!(provision[0].state, JobState::Pending);
    let rows = app.audit_rows("user.update").await;
    assert_eq!(
        (rows[0]["before"].clone(), rows[0]["after"].clone()),
        (json!({"banned": false}), json!({"banned": true}))
    );

    // Banning again changes nothing and queues nothing.
    app.call("PATCH", &path, Some(&token), Some(json!({"banned": true})))
        .await;
    assert_eq!(jobs_of(conn, "provision", user).await.len(), 1);
    assert_eq!(app.audit_rows("user.update").await.len(), 1);

    let (status, body) = app
        .call("PATCH", &path, Some(&token), Some(json!({"banned": false})))
        .await;
    assert_eq!((status, body["banned"].as_bool()), (200, Some(false)));
    assert_eq!(
        subscription(conn, user).await.unwrap().status,
        SubscriptionStatus::Active
    );
    // Unbanned before the ban reached the panel: the one waiting job will enable it (a ban's
    // own job could otherwise run last and disable an unbanned user).
    assert_eq!(jobs_of(conn, "provision", user).await.len(), 1);
    assert!(jobs_of(conn, "panel_disable", user).await.is_empty());
    assert_eq!(app.audit_rows("user.update").await.len(), 2);
    app.shutdown().await;
}

/// PostgreSQL stores no NUL character, in text or in JSON: a request carrying one (`\u0000`) is
/// refused at the edge with 400 (as `api_sales::text_with_a_nul_character_is_refused_as_a_bad_request`
/// wants of a plan's name), not answered 500 after a failed `jsonb` write. Found by
/// `properties::admin_api_takes_any_json` (an extension's reason `"\u0000"`).
#[actix_rt::test]
async fn text_with_a_nul_character_is_refused_and_nothing_is_written() {
    let app = spawn_app(&[]).await;
    let token = app.token_for(AdminRole::Admin).await;
    let conn = &mut app.db.connect().await;
    let user = subscriber(
        conn,
        4101,
        Some(days(10)),
        SubscriptionStatus::Active,
        false,
    )
    .await;
    for (method, path, body) in [
        (
            "POST",
            format!("/api/v1/users/{user}/extend"),
            json!({"days": 7, "reason": "\u{0}"}),
        ),
        (
            "PATCH",
            format!("/api/v1/users/{user}"),
            json!({"note": "before\u{0}after"}),
        ),
        (
            "POST",
            "/api/v1/plans".to_owned(),
            json!({"name": "Month\u{0}", "days": 30, "price_minor": 29_900}),
        ),
    ] {
        let (status, reply) = app.call(method, &path, Some(&token), Some(body)).await;
        assert_eq!(status, 400, "{method} {path}: {reply}");
        assert!(
            reply["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("NUL")),
            "{reply}"
        );
    }
    // An escaped backslash before `u0000` is text, not a NUL: taken.
    let (status, reply) = app
        .call(
            "PATCH",
            &format!("/api/v1/users/{user}"),
            Some(&token),
            Some(json!({"note": "C:\\u0000"})),
        )
        .await;
    assert_eq!(status, 200, "{reply}");
    assert_eq!(reply["note"], "C:\\u0000");
    assert!(app.audit_rows("user.extend").await.is_empty());
    assert_eq!(app.audit_rows("user.update").await.len(), 1);
    assert!(app.audit_rows("plan.create").await.is_empty());
    app.shutdown().await;
}

#[actix_rt::test]
async fn an_extension_adds_days_restarts_ended_time_and_creates_a_subscription() {
    let app = spawn_app(&[]).await;
    let body = json!({"days": 7, "reason": "outage"});
    app.assert_guarded(
        "POST",
        "/api/v1/users/1/extend",
        Some(body.clone()),
        AdminRole::Operator,
    )
    .await;
    let token = app.token_for(AdminRole::Operator).await;
    let conn = &mut app.db.connect().await;
    let running = subscriber(conn, 4001, Some(days(10)), SubscriptionStatus::Active, true).await;
    let ended = subscriber(
        conn,
        4002,
        Some(days(-30)),
        SubscriptionStatus::Expired,
        false,
    )
    .await;
    let newcomer = subscriber(conn, 4003, None, SubscriptionStatus::Active, false).await;

    for (bad, field) in [
        (json!({"days": 0, "reason": "x"}), "days"),
        (json!({"days": 3651, "reason": "x"}), "days"),
        (json!({"days": 7, "reason": "  "}), "reason"),
        (json!({"days": 7, "reason": "r".repeat(501)}), "reason"),
        (json!({"days": 7}), "body"),
        (json!({"days": 7, "reason": "x", "plan": 1}), "body"),
    ] {
        let (status, reply) = app
            .call(
                "POST",
                &format!("/api/v1/users/{running}/extend"),
                Some(&token),
                Some(bad.clone()),
            )
            .await;
        assert_eq!(
            (status, reply["error"]["field"].as_str()),
            (422, Some(field)),
            "{bad}: {reply}"
        );
    }
    let (status, _) = app
        .call(
            "POST",
            "/api/v1/users/999999/extend",
            Some(&token),
            Some(body.clone()),
        )
        .await;
    assert_eq!(status, 404);
    assert!(app.audit_rows("user.extend").await.is_empty());

    // Time left is kept; the trial stays a trial.
    let before = subscription(conn, running).await.unwrap().expires_at;
    let (status, view) = app
        .call(
            "POST",
            &format!("/api/v1/users/{running}/extend"),
            Some(&token),
            Some(json!({"days": 7, "reason": "outage"})),
        )
        .await;
    assert_eq!(status, 200, "{view}");
    let after = subscription(conn, running).await.unwrap();
    assert_eq!(after.expires_at, before + chrono::Duration::days(7));
    assert_eq!(
        (
            view["days_left"].as_i64(),
            view["is_trial"].as_bool(),
            view["status"].as_str()
        ),
        (Some(17), Some(true), Some("active"))
    );
    let rows = app.audit_rows("user.extend").await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["target_id"], running.0.to_string());
    assert_eq!(rows[0]["after"]["reason"], "outage");
    assert_eq!(rows[0]["after"]["days"], 7);
    let logged = |v: &Value| v.as_str().unwrap().parse::<DateTime<Utc>>().unwrap();
    assert_eq!(logged(&rows[0]["before"]["expires_at"]), before);
    assert_eq!(logged(&rows[0]["after"]["expires_at"]), after.expires_at);
    assert_eq!(jobs_of(conn, "provision", running).await.len(), 1);

    // An ended subscription starts again from now.
    let started = Utc::now();
    let (status, view) = app
        .call(
            "POST",
            &format!("/api/v1/users/{ended}/extend"),
            Some(&token),
            Some(json!({"days": 30, "reason": "goodwill"})),
        )
        .await;
    assert_eq!(status, 200);
    let sub = subscription(conn, ended).await.unwrap();
    assert!(
        sub.expires_at >= started + chrono::Duration::days(30)
            && sub.expires_at <= Utc::now() + chrono::Duration::days(30)
    );
    assert_eq!(
        (sub.status, view["days_left"].as_i64()),
        (SubscriptionStatus::Active, Some(30))
    );

    // No subscription yet: one is created, as a payment would.
    let (status, view) = app
        .call(
            "POST",
            &format!("/api/v1/users/{newcomer}/extend"),
            Some(&token),
            Some(json!({"days": 3, "reason": "welcome"})),
        )
        .await;
    assert_eq!(status, 200, "{view}");
    let sub = subscription(conn, newcomer).await.unwrap();
    assert_eq!(
        (sub.panel_username.as_str(), sub.status, sub.is_trial),
        ("vpnshop_4003", SubscriptionStatus::Active, false)
    );
    assert_eq!(view["panel_username"], "vpnshop_4003");
    let rows = app.audit_rows("user.extend").await;
    assert_eq!(rows.len(), 3);
    assert!(rows[2]["before"]["expires_at"].is_null());
    assert_eq!(jobs_of(conn, "provision", newcomer).await.len(), 1);

    // A banned user gets the days, but the subscription stays disabled.
    exec(
        conn,
        &format!("UPDATE users SET banned = true WHERE id = {newcomer}"),
    )
    .await;
    let (status, view) = app
        .call(
            "POST",
            &format!("/api/v1/users/{newcomer}/extend"),
            Some(&token),
            Some(json!({"days": 3, "reason": "more"})),
        )
        .await;
    assert_eq!(
        (status, view["status"].as_str(), view["days_left"].as_i64()),
        (200, Some("disabled"), Some(6))
    );
    app.shutdown().await;
}

#[actix_rt::test]
async fn panel_operations_need_a_panel_and_a_subscription() {
    let app = spawn_app(&[]).await;
    let token = app.token_for(AdminRole::Operator).await;
    let conn = &mut app.db.connect().await;
    let user = subscriber(conn, 5001, Some(days(5)), SubscriptionStatus::Active, false).await;
    for (method, path) in [
        ("POST", "reset-traffic"),
        ("POST", "revoke-link"),
        ("DELETE", "panel"),
    ] {
        app.assert_guarded(
            method,
            &format!("/api/v1/users/{user}/{path}"),
            None,
            AdminRole::Operator,
        )
        .await;
        let (status, body) = app
            .call(
                method,
                &format!("/api/v1/users/{user}/{path}"),
                Some(&token),
                None,
            )
            .await;
        assert_eq!(status, 409, "{path}: {body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("MARZBAN_URL"),
            "{body}"
        );
        let (status, _) = app
            .call(
                method,
                &format!("/api/v1/users/999999/{path}"),
                Some(&token),
                None,
            )
            .await;
        assert_eq!(status, 404, "{path}");
    }
    let count: i64 = jobs_table::table
        .filter(jobs_table::kind.eq_any([
            "panel_reset_traffic",
            "panel_revoke_sub",
            "panel_delete",
        ]))
        .count()
        .get_result(conn)
        .await
        .unwrap();
    assert_eq!(count, 0, "nothing was queued");
    app.shutdown().await;
}

async fn spawn_with_panel(panel: &FakePanel) -> TestApp {
    let url = panel.url();
    spawn_app(&[
        ("MARZBAN_URL", url.as_str()),
        ("MARZBAN_USERNAME", ADMIN_USERNAME),
        ("MARZBAN_PASSWORD", ADMIN_PASSWORD),
        ("PANEL_TIMEOUT", "1s"),
        ("JOB_BACKOFF_BASE", "100ms"),
        ("JOB_BACKOFF_MAX", "500ms"),
        ("JOB_POLL_INTERVAL", "200ms"),
    ])
    .await
}

async fn wait_done(app: &TestApp, id: JobId) -> Job {
    let deadline = Instant::now() + Duration::from_secs(20);
    let conn = &mut app.db.connect().await;
    loop {
        let job = jobs::find(conn, id).await.unwrap().unwrap();
        assert_ne!(job.state, JobState::Dead, "{job:?}");
        if job.state == JobState::Done {
            return job;
        }
        assert!(Instant::now() < deadline, "job {id} not done: {job:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Calls a panel operation; returns the job id after checking the 202 answer.
async fn accepted(app: &TestApp, token: &str, method: &str, path: &str, kind: &str) -> JobId {
    let (status, body) = app.call(method, path, Some(token), None).await;
    assert_eq!(status, 202, "{path}: {body}");
    assert_eq!(body["kind"], kind);
    JobId(body["job_id"].as_i64().unwrap())
}

#[actix_rt::test]
async fn panel_operations_reach_the_panel() {
    let panel = FakePanel::start();
    let app = spawn_with_panel(&panel).await;
    let token = app.token_for(AdminRole::Operator).await;
    let conn = &mut app.db.connect().await;
    let user = subscriber(conn, 6001, None, SubscriptionStatus::Active, false).await;
    let base = format!("/api/v1/users/{user}");

    // No subscription yet: nothing to do on the panel.
    let (status, body) = app
        .call("POST", &format!("{base}/reset-traffic"), Some(&token), None)
        .await;
    assert_eq!(status, 409, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("no subscription")
    );

    // An extension creates the subscription and the panel user.
    let (status, _) = app
        .call(
            "POST",
            &format!("{base}/extend"),
            Some(&token),
            Some(json!({"days": 30, "reason": "test"})),
        )
        .await;
    assert_eq!(status, 200);
    let provision = jobs_of(conn, "provision", user).await;
    wait_done(&app, provision[0].id).await;
    let first_link = subscription(conn, user)
        .await
        .unwrap()
        .subscription_url
        .unwrap();
    assert!(panel.user("vpnshop_6001").is_some());

    // Reset traffic.
    panel.update_user("vpnshop_6001", |u| u.used_traffic = 300);
    let job = accepted(
        &app,
        &token,
        "POST",
        &format!("{base}/reset-traffic"),
        "panel_reset_traffic",
    )
    .await;
    wait_done(&app, job).await;
    assert_eq!(panel.user("vpnshop_6001").unwrap().used_traffic, 0);
    let rows = app.audit_rows("user.reset_traffic").await;
    assert_eq!(rows.len(), 1);
    assert_eq!(
        rows[0]["after"],
        json!({"job_id": job.0, "kind": "panel_reset_traffic"})
    );
    assert_eq!(rows[0]["target_id"], user.0.to_string());

    // Revoke the link: a new one is stored, the old one no longer works.
    let job = accepted(
        &app,
        &token,
        "POST",
        &format!("{base}/revoke-link"),
        "panel_revoke_sub",
    )
    .await;
    wait_done(&app, job).await;
    let new_link = subscription(conn, user)
        .await
        .unwrap()
        .subscription_url
        .unwrap();
    assert_ne!(new_link, first_link);
    assert!(!panel.subscription_valid(&first_link) && panel.subscription_valid(&new_link));
    let rows = app.audit_rows("user.revoke_link").await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["before"]["subscription_url"], first_link.as_str());

    // Remove from the panel: the panel user goes, the shop keeps the subscription, disabled.
    let job = accepted(
        &app,
        &token,
        "DELETE",
        &format!("{base}/panel"),
        "panel_delete",
    )
    .await;
    wait_done(&app, job).await;
    assert!(panel.user("vpnshop_6001").is_none());
    let sub = subscription(conn, user).await.unwrap();
    assert_eq!(sub.status, SubscriptionStatus::Disabled);
    assert!(sub.subscription_url.is_none());
    assert_eq!(app.audit_rows("user.remove_from_panel").await.len(), 1);
    app.shutdown().await;
}

#[actix_rt::test]
async fn the_subscription_list_by_state() {
    let app = spawn_app(&[]).await;
    app.assert_guarded("GET", "/api/v1/subscriptions", None, AdminRole::Viewer)
        .await;
    let token = app.token_for(AdminRole::Viewer).await;
    let conn = &mut app.db.connect().await;
    let soon = subscriber(conn, 7001, Some(days(2)), SubscriptionStatus::Active, true).await;
    subscriber(
        conn,
        7002,
        Some(days(20)),
        SubscriptionStatus::Active,
        false,
    )
    .await;
    subscriber(
        conn,
        7003,
        Some(days(-1)),
        SubscriptionStatus::Expired,
        false,
    )
    .await;
    subscriber(
        conn,
        7004,
        Some(days(-10)),
        SubscriptionStatus::Active,
        true,
    )
    .await;
    subscriber(
        conn,
        7005,
        Some(days(1)),
        SubscriptionStatus::Disabled,
        false,
    )
    .await;
    subscriber(conn, 7006, None, SubscriptionStatus::Active, false).await;
    exec(
        conn,
        &format!("UPDATE users SET username = 'soon' WHERE id = {soon}"),
    )
    .await;

    let tg = |page: &Value| -> Vec<i64> {
        page["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["user"]["telegram_id"].as_i64().unwrap())
            .collect()
    };
    for (query, expected) in [
        ("", vec![7004, 7003, 7005, 7001, 7002]),
        ("?state=active", vec![7001, 7002]),
        ("?state=expiring", vec![7001]),
        ("?state=expiring&within_days=30", vec![7001, 7002]),
        ("?state=expired", vec![7004, 7003]),
        ("?state=expired&trial=true", vec![7004]),
        ("?trial=false", vec![7003, 7005, 7002]),
    ] {
        let (status, page) = app
            .call(
                "GET",
                &format!("/api/v1/subscriptions{query}"),
                Some(&token),
                None,
            )
            .await;
        assert_eq!(status, 200, "{query}: {page}");
        assert_eq!(tg(&page), expected, "{query}");
        assert_eq!(
            page["total"].as_i64(),
            Some(expected.len() as i64),
            "{query}"
        );
    }
    let (_, page) = app
        .call(
            "GET",
            "/api/v1/subscriptions?state=expiring&per_page=1",
            Some(&token),
            None,
        )
        .await;
    let item = &page["items"][0];
    assert_eq!(
        item["user"],
        json!({"id": soon.0, "telegram_id": 7001, "username": "soon"})
    );
    assert_eq!(
        (
            item["status"].as_str(),
            item["is_trial"].as_bool(),
            item["days_left"].as_i64()
        ),
        (Some("active"), Some(true), Some(2))
    );
    assert_eq!(
        (page["page"].as_i64(), page["per_page"].as_i64()),
        (Some(1), Some(1))
    );
    let (_, page) = app
        .call(
            "GET",
            "/api/v1/subscriptions?page=2&per_page=2",
            Some(&token),
            None,
        )
        .await;
    assert_eq!(
        (tg(&page), page["total"].as_i64()),
        (vec![7005, 7001], Some(5))
    );

    for (query, field) in [
        ("?state=soon", "state"),
        ("?state=expiring&within_days=0", "within_days"),
        ("?state=expiring&within_days=366", "within_days"),
        ("?state=active&within_days=3", "within_days"),
        ("?trial=perhaps", "trial"),
        ("?per_page=0", "per_page"),
    ] {
        refused(
            &app,
            &token,
            &format!("/api/v1/subscriptions{query}"),
            field,
        )
        .await;
    }

    // Every endpoint of this module is in the OpenAPI document.
    let doc: Value = app.get("/openapi.json", None).await.json().await.unwrap();
    for (path, method) in [
        ("/api/v1/users", "get"),
        ("/api/v1/users/{id}", "get"),
        ("/api/v1/users/{id}", "patch"),
        ("/api/v1/users/{id}/extend", "post"),
        ("/api/v1/users/{id}/reset-traffic", "post"),
        ("/api/v1/users/{id}/revoke-link", "post"),
        ("/api/v1/users/{id}/panel", "delete"),
        ("/api/v1/subscriptions", "get"),
    ] {
        assert!(doc["paths"][path][method].is_object(), "{method} {path}");
    }
    assert!(doc["components"]["schemas"]["UserDetail"].is_object());
    app.shutdown().await;
}

#[actix_rt::test]
async fn a_web_only_subscribers_sign_in_address_stays_and_stays_unique() {
    let app = spawn_app(&[]).await;
    let token = app.token_for(AdminRole::Operator).await;
    let conn = &mut app.db.connect().await;
    exec(
        conn,
        "INSERT INTO users (email, email_verified_at, referral_code) VALUES \
           ('web@example.com', now(), 'webref01'), ('other@example.com', now(), 'webref02'); \
         INSERT INTO users (telegram_id, email, email_verified_at, referral_code) VALUES \
           (3101, 'linked@example.com', now(), 'tgref001');",
    )
    .await;
    let id_of = async |conn: &mut AsyncPgConnection, email: &str| -> i64 {
        use vpn_shop::db::schema::users;
        users::table
            .filter(users::email.eq(email))
            .select(users::id)
            .first(conn)
            .await
            .unwrap()
    };
    let web = id_of(conn, "web@example.com").await;
    let path = format!("/api/v1/users/{web}");
    let (status, reply) = app
        .call("PATCH", &path, Some(&token), Some(json!({"email": null})))
        .await;
    assert_eq!(status, 422, "{reply}");
    assert_eq!(reply["error"]["field"], "email", "{reply}");
    let (status, reply) = app
        .call(
            "PATCH",
            &path,
            Some(&token),
            Some(json!({"email": "Other@Example.com"})),
        )
        .await;
    assert_eq!(status, 409, "{reply}");
    // A new address for the web account: the admin vouches for it, it still signs in.
    let (status, reply) = app
        .call(
            "PATCH",
            &path,
            Some(&token),
            Some(json!({"email": "new@example.com"})),
        )
        .await;
    assert_eq!(status, 200, "{reply}");
    let verified = async |conn: &mut AsyncPgConnection, id: i64| -> bool {
        use vpn_shop::db::schema::users;
        users::table
            .find(id)
            .select(users::email_verified_at.is_not_null())
            .first(conn)
            .await
            .unwrap()
    };
    assert!(verified(conn, web).await);
    // A Telegram user's address typed by an admin is not verified.
    let linked = id_of(conn, "linked@example.com").await;
    let (status, _) = app
        .call(
            "PATCH",
            &format!("/api/v1/users/{linked}"),
            Some(&token),
            Some(json!({"email": "typed@example.com"})),
        )
        .await;
    assert_eq!(status, 200);
    assert!(!verified(conn, linked).await);
}

/// A ban locks the user, then changes the subscription; an order being fulfilled changes the
/// subscription, then writes rows that name the user (its notification, its jobs). The user's
/// lock must not stop those rows (a foreign key takes a KEY SHARE lock on the user), or the two
/// wait on each other and PostgreSQL aborts one: the ban answered 500 in a property test.
#[actix_rt::test]
async fn locking_a_user_does_not_stop_rows_that_name_the_user() {
    use diesel_async::SimpleAsyncConnection;
    let db = support::db::TestDb::new().await;
    let (a, b) = (&mut db.connect().await, &mut db.connect().await);
    let user = subscriber(a, 3301, Some(days(5)), SubscriptionStatus::Active, false).await;
    b.batch_execute("SET lock_timeout = '3s'").await.unwrap();
    a.batch_execute("BEGIN").await.unwrap();
    assert!(vpn_shop::db::users::lock(a, user).await.unwrap().is_some());
    // The other transaction writes a row that references the locked user.
    let written = b
        .batch_execute(&format!(
            "INSERT INTO notifications (user_id, kind, channel, dedup_key) \
             VALUES ({user}, 'payment_succeeded', 'telegram', 'k1')"
        ))
        .await;
    a.batch_execute("COMMIT").await.unwrap();
    assert!(
        written.is_ok(),
        "a row naming a locked user waited for the lock: {written:?}"
    );
}
