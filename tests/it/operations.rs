//! Operational endpoints and supervision: /health, /ready, /metrics, /docs, the watchdog, the
//! scheduled maintenance task, the job admin endpoints and graceful shutdown.

use crate::support;

use std::time::Duration;

use actix::{Actor, Context, Handler, Message, Supervised};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use serde_json::Value;
use support::app::{TestApp, error_of, spawn_app};
use support::wait_until;
use vpn_shop::actors::messages::Ping;
use vpn_shop::db::jobs::{self, NewJob};
use vpn_shop::db::schema::{audit_log, jobs as jobs_table};
use vpn_shop::domain::{AdminRole, JobState};

/// An actor whose handler panics on demand, killing its task: what a bug in a synchronous
/// handler does to a real actor.
struct Crashy;

impl Actor for Crashy {
    type Context = Context<Self>;
}

impl Supervised for Crashy {}

impl Handler<Ping> for Crashy {
    type Result = Result<(), String>;
    fn handle(&mut self, _: Ping, _: &mut Context<Self>) -> Self::Result {
        Ok(())
    }
}

#[derive(Message)]
#[rtype(result = "()")]
struct Crash;

impl Handler<Crash> for Crashy {
    type Result = ();
    fn handle(&mut self, _: Crash, _: &mut Context<Self>) {
        panic!("simulated bug in a handler");
    }
}

async fn ready(app: &TestApp) -> (u16, Value) {
    let resp = app.get("/ready", None).await;
    (resp.status().as_u16(), resp.json().await.unwrap())
}

#[actix_rt::test]
async fn health_and_ready_answer_when_everything_runs() {
    let app = spawn_app(&[]).await;
    let health: Value = app.get("/health", None).await.json().await.unwrap();
    assert_eq!(health["status"], "ok");
    assert_eq!(health["version"], env!("CARGO_PKG_VERSION"));

    let (status, body) = ready(&app).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "ready");
    assert_eq!(body["checks"]["database"], "ok");
    assert_eq!(body["checks"]["job_runner"], "ok");
    assert_eq!(body["checks"]["scheduler"], "ok");
    app.shutdown().await;
}

#[actix_rt::test]
async fn ready_names_a_dead_actor_until_the_watchdog_restarts_it() {
    // The watchdog is slow here so the dead state can be observed; it is then run by hand.
    let app = spawn_app(&[("WATCHDOG_INTERVAL", "1h")]).await;
    let crashy = app.app.actors.supervise("crashy", || Crashy);
    assert_eq!(ready(&app).await.0, 200);

    crashy.addr().do_send(Crash);
    wait_until("the actor to die", || async { !crashy.addr().connected() }).await;
    let (status, body) = ready(&app).await;
    assert_eq!(status, 503);
    assert_eq!(body["checks"]["crashy"], "not running");
    assert_eq!(body["checks"]["scheduler"], "ok");
    assert_eq!(body["error"]["code"], "not_ready");
    assert_eq!(body["error"]["message"], "not ready: crashy (not running)");

    assert_eq!(app.app.actors.respawn_dead(), vec!["crashy"]);
    assert_eq!(ready(&app).await.0, 200);
    // The handle follows the new instance.
    assert_eq!(crashy.addr().send(Ping).await, Ok(Ok(())));
    let metrics = app.get("/metrics", None).await.text().await.unwrap();
    assert!(
        metrics.contains("vpn_shop_actor_restarts_total{actor=\"crashy\"} 1"),
        "{metrics}"
    );
    app.shutdown().await;
}

#[actix_rt::test]
async fn the_watchdog_restarts_a_dead_actor_by_itself() {
    let app = spawn_app(&[("WATCHDOG_INTERVAL", "100ms")]).await;
    let crashy = app.app.actors.supervise("crashy", || Crashy);
    let first = crashy.addr();
    first.do_send(Crash);
    wait_until("a new instance", || async {
        !first.connected() && crashy.addr().connected()
    })
    .await;
    wait_until("ready again", || async { ready(&app).await.0 == 200 }).await;
    app.shutdown().await;
}

#[actix_rt::test]
async fn metrics_expose_every_family() {
    let app = spawn_app(&[]).await;
    // Wait for the maintenance job the scheduler enqueues at start, so job series have values.
    wait_until("the first maintenance run", || async {
        let conn = &mut app.db.connect().await;
        jobs_table::table
            .filter(jobs_table::kind.eq("maintenance"))
            .filter(jobs_table::state.eq(JobState::Done))
            .count()
            .get_result::<i64>(conn)
            .await
            .unwrap()
            == 1
    })
    .await;
    app.get("/health", None).await;
    let text = app.get("/metrics", None).await.text().await.unwrap();
    for expected in [
        "vpn_shop_http_requests_total{method=\"GET\",route=\"/health\",status=\"200\"} 1",
        "vpn_shop_http_request_duration_seconds_bucket{method=\"GET\",route=\"/health\"",
        "vpn_shop_db_pool_connections{state=\"max\"} 16",
        "vpn_shop_db_pool_connections{state=\"waiting\"}",
        "vpn_shop_db_pool_connections{state=\"in_use\"}",
        "vpn_shop_jobs{kind=\"maintenance\",state=\"done\"} 1",
        "vpn_shop_jobs{kind=\"maintenance\",state=\"dead\"} 0",
        "vpn_shop_job_runs_total{kind=\"maintenance\",outcome=\"done\"} 1",
        "vpn_shop_job_duration_seconds_count{kind=\"maintenance\"} 1",
        "vpn_shop_actor_restarts_total{actor=\"job_runner\"} 0",
        "vpn_shop_actor_restarts_total{actor=\"scheduler\"} 0",
        "vpn_shop_scheduler_leader 1",
        "vpn_shop_scheduler_task_runs_total{outcome=\"enqueued\",task=\"maintenance\"} 1",
        "vpn_shop_build_info{version=\"",
        "process_resident_memory_bytes ",
        "vpn_shop_job_oldest_due_seconds{kind=\"maintenance\"} 0",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in\n{text}");
    }
    // A job nobody runs here (no panel), due for a quarter of an hour: the queue is stuck.
    let conn = &mut app.db.connect().await;
    jobs::enqueue(
        conn,
        NewJob::new("panel_delete", serde_json::json!({"user_id": 1}))
            .run_at(chrono::Utc::now() - chrono::Duration::minutes(15)),
        3,
    )
    .await
    .unwrap();
    let text = app.get("/metrics", None).await.text().await.unwrap();
    let waited: f64 = text
        .lines()
        .find_map(|l| l.strip_prefix("vpn_shop_job_oldest_due_seconds{kind=\"panel_delete\"} "))
        .expect("the stuck kind has a series")
        .parse()
        .unwrap();
    assert!((900.0..1000.0).contains(&waited), "{waited}");
    // Unknown paths share one label value instead of creating a series each.
    app.get("/random/path/1", None).await;
    let text = app.get("/metrics", None).await.text().await.unwrap();
    assert!(text.contains("route=\"unmatched\",status=\"404\""));
    assert!(!text.contains("/random/path/1"));
    app.shutdown().await;
}

#[actix_rt::test]
async fn metrics_need_the_bearer_token_when_metrics_token_is_set() {
    let token = "metrics-token-0123456789-abcdefghijklmnop";
    let app = spawn_app(&[("METRICS_TOKEN", token)]).await;
    let scrape = |auth: Option<String>| {
        let mut req = app.http.get(app.url("/metrics"));
        if let Some(auth) = auth {
            req = req.header("Authorization", auth);
        }
        async move { req.send().await.unwrap() }
    };
    // Revenue and user counts are not for anyone who finds the address.
    for (what, auth) in [
        ("no token", None),
        ("a wrong token", Some(format!("Bearer {token}x"))),
        ("a prefix of it", Some(format!("Bearer {}", &token[..10]))),
        ("another scheme", Some(format!("Basic {token}"))),
    ] {
        let resp = scrape(auth).await;
        assert_eq!(resp.status(), 401, "/metrics with {what}");
        let (_, code, _) = error_of(resp).await;
        assert_eq!(code, "unauthorized", "{what}");
    }
    let resp = scrape(Some(format!("Bearer {token}"))).await;
    assert_eq!(resp.status(), 200);
    assert!(resp.text().await.unwrap().contains("vpn_shop_users"));
    // The other operational endpoints stay open (probes carry no token).
    assert_eq!(app.get("/health", None).await.status(), 200);
    app.shutdown().await;
}

#[actix_rt::test]
async fn docs_serve_swagger_ui_and_the_openapi_document() {
    let app = spawn_app(&[]).await;
    let no_redirect = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let resp = no_redirect.get(app.url("/docs")).send().await.unwrap();
    assert_eq!(resp.status(), 308);
    assert_eq!(resp.headers()["location"], "/docs/");

    let html = app.get("/docs/", None).await.text().await.unwrap();
    assert!(html.contains("swagger-ui"), "{html}");
    let init = app
        .get("/docs/swagger-initializer.js", None)
        .await
        .text()
        .await
        .unwrap();
    assert!(init.contains("/openapi.json"), "{init}");

    let doc: Value = app.get("/openapi.json", None).await.json().await.unwrap();
    for path in [
        "/api/v1/auth/login",
        "/api/v1/me",
        "/api/v1/jobs",
        "/api/v1/jobs/{id}",
        "/api/v1/jobs/{id}/retry",
        "/api/v1/jobs/{id}/discard",
        "/api/v1/scheduler/tasks",
        "/api/v1/broadcasts",
        "/api/v1/broadcasts/{id}",
        "/api/v1/broadcasts/{id}/cancel",
        "/health",
        "/ready",
        "/metrics",
    ] {
        assert!(
            doc["paths"][path].is_object(),
            "{path} missing from the OpenAPI document"
        );
    }
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    assert!(doc["components"]["schemas"]["ErrorBody"].is_object());
    app.shutdown().await;
}

#[actix_rt::test]
async fn the_periodic_tasks_run_at_start_and_show_in_the_task_list() {
    let app = spawn_app(&[]).await;
    let token = app.token_for(AdminRole::Viewer).await;
    wait_until("the maintenance task to be enqueued", || async {
        let tasks: Value = app
            .get("/api/v1/scheduler/tasks", Some(&token))
            .await
            .json()
            .await
            .unwrap();
        tasks
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["name"] == "maintenance" && t["last_result"] == "enqueued")
    })
    .await;
    let tasks: Value = app
        .get("/api/v1/scheduler/tasks", Some(&token))
        .await
        .json()
        .await
        .unwrap();
    let names: Vec<&str> = tasks
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    // Without a panel: the alert checks, the maintenance and the notification scan.
    assert_eq!(
        names,
        vec!["alerts_check", "maintenance", "notifications_scan"]
    );
    assert_eq!(tasks[0]["interval_secs"], 30);
    assert_eq!(tasks[1]["interval_secs"], 3600);
    app.shutdown().await;
}

#[actix_rt::test]
async fn maintenance_prunes_old_payment_events_but_keeps_the_money_record() {
    let app = spawn_app(&[
        ("PAYMENT_EVENTS_RETENTION", "30d"),
        ("JOB_POLL_INTERVAL", "100ms"),
    ])
    .await;
    let conn = &mut app.db.connect().await;
    // Old noise (refusals, duplicates, "still pending"), old money record, recent refusals.
    diesel::sql_query(
        "INSERT INTO payment_events (provider, event_key, event_type, verdict, received_at) \
         SELECT 'wata', v || ':' || age, 'webhook', v, now() - make_interval(days => age) \
         FROM unnest(ARRAY['forged', 'invalid', 'duplicate', 'ignored', 'accepted', 'mismatched']) AS v, \
              unnest(ARRAY[40, 1]) AS age",
    )
    .execute(conn)
    .await
    .unwrap();
    let id = jobs::enqueue(conn, NewJob::new("maintenance", serde_json::json!({})), 3)
        .await
        .unwrap()
        .unwrap();
    wait_until("the maintenance run", || async {
        let state: JobState = jobs_table::table
            .find(id)
            .select(jobs_table::state)
            .first(&mut app.db.connect().await)
            .await
            .unwrap();
        state == JobState::Done
    })
    .await;
    let mut kept: Vec<String> = vpn_shop::db::schema::payment_events::table
        .select(vpn_shop::db::schema::payment_events::event_key)
        .load(conn)
        .await
        .unwrap();
    kept.sort();
    assert_eq!(
        kept,
        [
            "accepted:1",
            "accepted:40",
            "duplicate:1",
            "forged:1",
            "ignored:1",
            "invalid:1",
            "mismatched:1",
            "mismatched:40",
        ],
        "events older than PAYMENT_EVENTS_RETENTION go, except accepted and mismatched ones"
    );
    app.shutdown().await;
}

#[actix_rt::test]
async fn admins_see_dead_jobs_and_an_operator_retries_one() {
    let app = spawn_app(&[]).await;
    let viewer = app.token_for(AdminRole::Viewer).await;
    let operator = app.token_for(AdminRole::Operator).await;
    // A job of a kind this replica does not handle, made dead as if its attempts ran out.
    let conn = &mut app.db.connect().await;
    let id = jobs::enqueue(
        conn,
        NewJob::new("provision", serde_json::json!({"user": 7})),
        5,
    )
    .await
    .unwrap()
    .unwrap();
    diesel::update(jobs_table::table.find(id))
        .set((
            jobs_table::state.eq(JobState::Dead),
            jobs_table::attempts.eq(5),
            jobs_table::last_error.eq("panel unreachable"),
        ))
        .execute(conn)
        .await
        .unwrap();

    let page: Value = app
        .get("/api/v1/jobs?state=dead", Some(&viewer))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(page["total"], 1);
    assert_eq!(page["items"][0]["kind"], "provision");
    assert_eq!(page["items"][0]["last_error"], "panel unreachable");

    let (status, _, _) =
        error_of(app.get("/api/v1/jobs?state=sleeping", Some(&viewer)).await).await;
    assert_eq!(status, 422);
    let (status, _, _) = error_of(app.get("/api/v1/jobs?per_page=500", Some(&viewer)).await).await;
    assert_eq!(status, 422);

    let retry = |token: String| {
        let req = app
            .http
            .post(app.url(&format!("/api/v1/jobs/{id}/retry")))
            .bearer_auth(token);
        async move { req.send().await.unwrap() }
    };
    let resp = retry(operator.clone()).await;
    assert_eq!(resp.status(), 200);
    let job: Value = resp.json().await.unwrap();
    assert_eq!(job["state"], "pending");
    assert_eq!(job["attempts"], 0);
    // Retrying a job that is not dead is a conflict.
    let (status, code, _) = error_of(retry(operator).await).await;
    assert_eq!((status, code.as_str()), (409, "conflict"));

    let actions: Vec<(String, String)> = audit_log::table
        .select((audit_log::actor, audit_log::action))
        .load(conn)
        .await
        .unwrap();
    assert_eq!(
        actions,
        vec![("admin:operator-user".to_owned(), "job.retry".to_owned())]
    );
    app.shutdown().await;
}

#[actix_rt::test]
async fn an_operator_discards_a_dead_job_and_the_audit_log_keeps_it() {
    let app = spawn_app(&[]).await;
    let viewer = app.token_for(AdminRole::Viewer).await;
    let operator = app.token_for(AdminRole::Operator).await;
    let conn = &mut app.db.connect().await;
    let mut ids = Vec::new();
    for user in [7, 8] {
        ids.push(
            jobs::enqueue(
                conn,
                NewJob::new("provision", serde_json::json!({"user": user})),
                5,
            )
            .await
            .unwrap()
            .unwrap(),
        );
    }
    let (dead, pending) = (ids[0], ids[1]);
    diesel::update(jobs_table::table.find(dead))
        .set((
            jobs_table::state.eq(JobState::Dead),
            jobs_table::attempts.eq(5),
            jobs_table::last_error.eq("panel unreachable"),
        ))
        .execute(conn)
        .await
        .unwrap();
    let discard = |token: String, id: i64| {
        let req = app
            .http
            .post(app.url(&format!("/api/v1/jobs/{id}/discard")))
            .bearer_auth(token);
        async move { req.send().await.unwrap() }
    };

    let (status, code, _) = error_of(discard(viewer, dead.0).await).await;
    assert_eq!((status, code.as_str()), (403, "forbidden"));
    // Only a dead job: a pending one is still going to run.
    let (status, code, message) = error_of(discard(operator.clone(), pending.0).await).await;
    assert_eq!((status, code.as_str()), (409, "conflict"));
    assert!(message.contains("only dead jobs"), "{message}");
    let (status, _, _) = error_of(discard(operator.clone(), 999_999).await).await;
    assert_eq!(status, 404);

    let resp = discard(operator.clone(), dead.0).await;
    assert_eq!(resp.status(), 200);
    let job: Value = resp.json().await.unwrap();
    assert_eq!(job["state"], "dead");
    assert_eq!(job["last_error"], "panel unreachable");
    let left: i64 = jobs_table::table
        .filter(jobs_table::id.eq_any([dead, pending]))
        .count()
        .get_result(conn)
        .await
        .unwrap();
    assert_eq!(left, 1, "the dead job is gone, the pending one stays");
    assert_eq!(error_of(discard(operator, dead.0).await).await.0, 404);

    let rows = app.audit_rows("job.discard").await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["actor"], "admin:operator-user");
    assert_eq!(rows[0]["target_id"], dead.0.to_string());
    assert_eq!(rows[0]["before"]["last_error"], "panel unreachable");
    app.shutdown().await;
}

#[actix_rt::test]
async fn graceful_shutdown_stops_the_server() {
    let app = spawn_app(&[]).await;
    let url = app.url("/health");
    assert_eq!(app.get("/health", None).await.status(), 200);
    app.shutdown().await;
    assert!(reqwest::get(&url).await.is_err(), "the port still answers");
}

/// README: a graceful shutdown stops taking connections and lets a running request finish. The
/// request is a panel sync whose read of the panel is held at the panel's door until the server
/// has stopped listening.
#[actix_rt::test]
async fn graceful_shutdown_lets_a_running_request_finish() {
    use support::marzban::{self as mz, FakePanel};
    let panel = FakePanel::start();
    let panel_url = panel.url();
    let app = spawn_app(&[
        ("MARZBAN_URL", panel_url.as_str()),
        ("MARZBAN_USERNAME", mz::ADMIN_USERNAME),
        ("MARZBAN_PASSWORD", mz::ADMIN_PASSWORD),
        ("PANEL_TIMEOUT", "20s"),
    ])
    .await;
    // The start-up panel jobs are over: the held request must be the test's own.
    app.db.wait_start_up_panel_jobs().await;
    let token = app.token_for(AdminRole::Operator).await;
    let held = panel.hold_next("GET", "/api/users");
    let request = app
        .http
        .post(app.url("/api/v1/sync/subscriptions"))
        .bearer_auth(token)
        .send();
    let request = actix_rt::spawn(request);
    held.wait_arrived().await;
    let health = app.url("/health");
    let stopping = actix_rt::spawn(app.shutdown());
    wait_until("the server to stop listening", || async {
        reqwest::get(&health).await.is_err()
    })
    .await;
    assert!(!request.is_finished(), "the running request was cut off");
    held.release();
    let answer = request
        .await
        .unwrap()
        .expect("the running request is answered");
    assert_eq!(answer.status(), 200);
    let counts: Value = answer.json().await.unwrap();
    assert!(counts["checked"].is_i64(), "{counts}");
    stopping.await.unwrap();
}

#[actix_rt::test]
async fn a_scheduled_backup_is_written_into_the_data_dir() {
    use std::os::unix::fs::PermissionsExt;
    let app = spawn_app(&[("BACKUP_INTERVAL", "24h"), ("BACKUP_KEEP", "3")]).await;
    let dir = app.settings.data_dir.join("backups");
    let dumps = || -> Vec<std::path::PathBuf> {
        std::fs::read_dir(&dir)
            .map(|d| {
                d.filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| p.extension().is_some_and(|x| x == "dump"))
                    .collect()
            })
            .unwrap_or_default()
    };
    // The task is due at start, like every periodic task.
    wait_until("the first scheduled backup", || async {
        !dumps().is_empty()
    })
    .await;
    let file = &dumps()[0];
    let name = file.file_name().unwrap().to_string_lossy().into_owned();
    assert!(
        name.starts_with("vpn-shop-") && name.ends_with("Z.dump"),
        "{name}"
    );
    let meta = std::fs::metadata(file).unwrap();
    assert!(meta.len() > 1000, "a real dump: {} bytes", meta.len());
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    let token = app.token_for(AdminRole::Viewer).await;
    let tasks: Value = app
        .get("/api/v1/scheduler/tasks", Some(&token))
        .await
        .json()
        .await
        .unwrap();
    assert!(
        tasks
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["name"] == "backup"),
        "{tasks}"
    );
    app.shutdown().await;
}

#[actix_rt::test]
async fn business_gauges_count_users_subscriptions_and_revenue() {
    use diesel_async::SimpleAsyncConnection;
    let app = spawn_app(&[]).await;
    let conn = &mut app.db.connect().await;
    // Six users; their trials, payments and subscriptions are chosen so that each gauge
    // counts some rows and leaves others out.
    conn.batch_execute(
        "INSERT INTO plans (name, days, price_minor) VALUES ('Month', 30, 19900);
         INSERT INTO users (telegram_id, referral_code, created_at, trial_used_at) VALUES
           (1001, 'ref1001', now() - interval '10 days', now() - interval '9 days'),
           (1002, 'ref1002', now() - interval '2 hours', now() - interval '1 hour'),
           (1003, 'ref1003', now() - interval '5 days', NULL),
           (1004, 'ref1004', now() - interval '30 days', now() - interval '5 days'),
           (1005, 'ref1005', now() - interval '3 hours', NULL),
           (1006, 'ref1006', now() - interval '40 days', NULL);
         -- u1 paid after the trial (converted); u4 paid before it (not converted); u3 paid
         -- by WATA (partly refunded) and in Stars; u5's order is pending and its free one is
         -- not money.
         INSERT INTO payments (user_id, provider, status, amount_minor, currency, days,
                               refunded_minor, paid_at)
         SELECT u.id, p.provider, p.status, p.amount, p.currency, 30, p.refunded,
                CASE WHEN p.status = 'pending' THEN NULL ELSE now() - p.ago END
         FROM (VALUES
             (1001, 'yookassa', 'succeeded', 19900, 'RUB', 0, interval '8 days'),
             (1004, 'yookassa', 'succeeded', 9900, 'RUB', 0, interval '20 days'),
             (1003, 'wata', 'refunded', 29900, 'RUB', 10000, interval '4 days'),
             (1003, 'stars', 'succeeded', 150, 'XTR', 0, interval '3 days'),
             (1005, 'yookassa', 'pending', 50000, 'RUB', 0, interval '0 days'),
             (1005, 'free', 'succeeded', 0, 'RUB', 0, interval '1 hour')
         ) AS p(telegram_id, provider, status, amount, currency, refunded, ago)
         JOIN users u ON u.telegram_id = p.telegram_id;
         -- Active: u1 and u3 paid (u3 ends tomorrow), u2 on a trial ending in 2 days, u5
         -- given days without a plan. Not active: u4 ended, u6 disabled.
         INSERT INTO subscriptions (user_id, plan_id, panel_username, status, is_trial, expires_at)
         SELECT u.id, CASE WHEN s.paid THEN (SELECT id FROM plans LIMIT 1) END,
                'vpnshop_' || u.telegram_id, s.status, s.trial, now() + s.ends_in
         FROM (VALUES
             (1001, true, 'active', false, interval '20 days'),
             (1002, false, 'active', true, interval '2 days'),
             (1003, true, 'active', false, interval '1 day'),
             (1004, true, 'expired', false, interval '-1 day'),
             (1005, false, 'active', false, interval '10 days'),
             (1006, true, 'disabled', false, interval '5 days')
         ) AS s(telegram_id, paid, status, trial, ends_in)
         JOIN users u ON u.telegram_id = s.telegram_id;",
    )
    .await
    .unwrap();
    let text = app.get("/metrics", None).await.text().await.unwrap();
    for expected in [
        "vpn_shop_users 6",
        "vpn_shop_users_new_24h 2",
        "vpn_shop_users_trial 3",
        "vpn_shop_users_paying 3",
        "vpn_shop_users_trial_converted 1",
        "vpn_shop_subscriptions_active{kind=\"paid\"} 2",
        "vpn_shop_subscriptions_active{kind=\"trial\"} 1",
        "vpn_shop_subscriptions_active{kind=\"granted\"} 1",
        "vpn_shop_subscriptions_expiring{kind=\"paid\"} 1",
        "vpn_shop_subscriptions_expiring{kind=\"trial\"} 1",
        "vpn_shop_subscriptions_expiring{kind=\"granted\"} 0",
        "vpn_shop_revenue{currency=\"RUB\",provider=\"yookassa\"} 298",
        "vpn_shop_revenue{currency=\"RUB\",provider=\"wata\"} 199",
        "vpn_shop_revenue{currency=\"XTR\",provider=\"stars\"} 150",
    ] {
        assert!(
            text.lines().any(|l| l == expected),
            "missing {expected:?} in\n{text}"
        );
    }
    let revenue_lines = text
        .lines()
        .filter(|l| l.starts_with("vpn_shop_revenue{"))
        .count();
    assert_eq!(revenue_lines, 3, "free orders are not revenue:\n{text}");
    app.shutdown().await;
}

#[actix_rt::test]
async fn a_scheduled_backup_is_sent_to_every_admin_on_telegram() {
    let telegram = support::telegram::FakeTelegram::start();
    let url = telegram.url();
    let app = spawn_app(&[
        ("BACKUP_INTERVAL", "24h"),
        ("BACKUP_TELEGRAM", "true"),
        ("TELEGRAM_BOT_TOKEN", support::telegram::TOKEN),
        ("TELEGRAM_API_URL", url.as_str()),
        ("ADMIN_TELEGRAM_IDS", "7001, 7002"),
        // No daily digest to the admins at start, which could take the chat's turn.
        ("ADMIN_DIGEST_AT", "off"),
    ])
    .await;
    let calls = telegram
        .wait_for_calls("sendDocument", 2, Duration::from_secs(20))
        .await;
    assert_eq!(calls.len(), 2, "one document per admin");
    let dir = app.settings.data_dir.join("backups");
    let dump = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "dump"))
        .expect("the backup file");
    let name = dump.file_name().unwrap().to_string_lossy().into_owned();
    let size = std::fs::metadata(&dump).unwrap().len();
    let mut chats: Vec<i64> = calls
        .iter()
        .map(|c| c.params["chat_id"].as_i64().unwrap())
        .collect();
    chats.sort_unstable();
    assert_eq!(chats, [7001, 7002]);
    for call in &calls {
        assert_eq!(call.status, 200, "{:?}", call.response);
        // The document part is the backup file itself, whole.
        let document = &call.params["document"];
        assert_eq!(document["file_name"], name.as_str(), "{document}");
        assert_eq!(document["size"], size, "{document}");
        let caption = call.params["caption"].as_str().unwrap();
        assert!(
            caption.contains(&name) && caption.contains("kB"),
            "{caption}"
        );
    }
    assert!(telegram.calls_to("sendMessage").is_empty());
    app.shutdown().await;
}
