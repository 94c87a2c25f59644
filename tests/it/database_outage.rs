//! PostgreSQL down and back (README, "Supervision and readiness"): the app reaches its database
//! through a TCP proxy that the test cuts — open connections are dropped, new ones refused — and
//! restores. The test's own connections go to the server directly.

use crate::support;

use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use serde_json::Value;
use tokio::sync::watch;

use support::app::test_settings;
use support::db::{Subscriber, TestDb};
use support::marzban::{self as mz, FakePanel};
use support::wait_until;
use support::yookassa::{self as yk, FakeYooKassa};
use vpn_shop::actors::marzban::provision_job;
use vpn_shop::actors::payments::{Checkout, CreateCheckout};
use vpn_shop::db::jobs as queue;
use vpn_shop::db::schema::{payments, plans};
use vpn_shop::domain::{JobState, PaymentProvider, PaymentStatus, PlanId};

/// Where the proxy sends what it accepts.
enum Upstream {
    Tcp(String),
    Unix(std::path::PathBuf),
}

/// `url` (a `postgres://` URL or a `host=… dbname=…` DSN of the test server) as the server's
/// address, its user and its database.
fn upstream_of(url: &str) -> (Upstream, String, String) {
    if let Some(rest) = url.strip_prefix("postgres://") {
        let (auth, rest) = rest.split_once('@').unwrap_or(("postgres", rest));
        let user = auth.split(':').next().unwrap_or("postgres").to_owned();
        let (addr, db) = rest.split_once('/').expect("a database in the URL");
        let db = db.split('?').next().unwrap_or(db).to_owned();
        return (Upstream::Tcp(addr.to_owned()), user, db);
    }
    let pairs: Vec<(&str, &str)> = url
        .split_whitespace()
        .filter_map(|pair| pair.split_once('='))
        .collect();
    let get = |key: &str| {
        pairs
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v.trim_matches('\'').to_owned())
    };
    let host = get("host").expect("a host in the DSN");
    let port = get("port").unwrap_or_else(|| "5432".into());
    let upstream = if host.starts_with('/') {
        Upstream::Unix(std::path::Path::new(&host).join(format!(".s.PGSQL.{port}")))
    } else {
        Upstream::Tcp(format!("{host}:{port}"))
    };
    (
        upstream,
        get("user").unwrap_or_else(|| "postgres".into()),
        get("dbname").expect("a dbname in the DSN"),
    )
}

/// A TCP proxy in front of PostgreSQL that can be cut and restored.
struct DbProxy {
    port: u16,
    up: watch::Sender<bool>,
}

impl DbProxy {
    async fn start(upstream: Upstream) -> DbProxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (up, _) = watch::channel(true);
        let state = up.clone();
        let upstream = std::sync::Arc::new(upstream);
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let mut cut = state.subscribe();
                if !*cut.borrow() {
                    continue; // refused: dropped at once
                }
                let upstream = std::sync::Arc::clone(&upstream);
                tokio::spawn(async move {
                    let copy = async {
                        match &*upstream {
                            Upstream::Tcp(addr) => {
                                let Ok(mut server) = tokio::net::TcpStream::connect(addr).await
                                else {
                                    return;
                                };
                                let _ =
                                    tokio::io::copy_bidirectional(&mut client, &mut server).await;
                            }
                            Upstream::Unix(path) => {
                                let Ok(mut server) = tokio::net::UnixStream::connect(path).await
                                else {
                                    return;
                                };
                                let _ =
                                    tokio::io::copy_bidirectional(&mut client, &mut server).await;
                            }
                        }
                    };
                    tokio::select! {
                        _ = copy => {}
                        _ = cut.wait_for(|up| !*up) => {}
                    }
                });
            }
        });
        DbProxy { port, up }
    }

    /// PostgreSQL is gone: every connection through the proxy is dropped, new ones too.
    fn cut(&self) {
        self.up.send_replace(false);
    }

    fn restore(&self) {
        self.up.send_replace(true);
    }
}

async fn ready(http: &reqwest::Client, base: &str) -> (u16, Value) {
    let resp = http.get(format!("{base}/ready")).send().await.unwrap();
    (
        resp.status().as_u16(),
        resp.json().await.unwrap_or(Value::Null),
    )
}

async fn job_state(conn: &mut AsyncPgConnection, id: vpn_shop::domain::JobId) -> JobState {
    queue::find(conn, id).await.unwrap().unwrap().state
}

/// While PostgreSQL is down `/ready` answers 503 naming the database, `/health` 200, a payment
/// webhook 503 (YooKassa sends it again) and not 500; a job whose handler finished during the
/// outage has its outcome written as soon as the database is back (not when its 10-minute lease
/// ends); afterwards `/ready` is 200 again and the webhook sent again pays the order.
#[actix_rt::test]
async fn while_postgresql_is_down_the_app_says_so_and_catches_up_when_it_is_back() {
    let db = TestDb::new().await;
    let (upstream, user, database) = upstream_of(&db.url);
    let proxy = DbProxy::start(upstream).await;
    let proxied = format!("postgres://{user}@127.0.0.1:{}/{database}", proxy.port);
    let panel = FakePanel::start();
    let yookassa = FakeYooKassa::start();
    let (panel_url, yookassa_url) = (panel.url(), yookassa.url());
    let data_dir = tempfile::tempdir().unwrap();
    let settings = test_settings(
        &db,
        data_dir.path(),
        &[
            ("DATABASE_URL", proxied.as_str()),
            ("MARZBAN_URL", panel_url.as_str()),
            ("MARZBAN_USERNAME", mz::ADMIN_USERNAME),
            ("MARZBAN_PASSWORD", mz::ADMIN_PASSWORD),
            ("YOOKASSA_SHOP_ID", yk::SHOP_ID),
            ("YOOKASSA_SECRET_KEY", yk::SECRET_KEY),
            ("YOOKASSA_API_URL", yookassa_url.as_str()),
            ("YOOKASSA_CHECK_IP", "false"),
            ("JOB_POLL_INTERVAL", "200ms"),
            ("JOB_BACKOFF_BASE", "100ms"),
            ("JOB_BACKOFF_MAX", "500ms"),
        ],
    );
    let app = vpn_shop::app::start(&settings, &proxied)
        .await
        .expect("the app starts");
    let base = format!("http://{}", app.http_addr());
    let http = reqwest::Client::new();
    let conn = &mut db.connect().await;
    wait_until("ready at start", || async {
        ready(&http, &base).await.0 == 200
    })
    .await;
    db.wait_start_up_panel_jobs().await;

    // A pending order, and a provisioning job whose panel request is held at the panel's door.
    let plan: PlanId = diesel::insert_into(plans::table)
        .values((
            plans::name.eq("30 days"),
            plans::days.eq(30),
            plans::price_minor.eq(29_900),
        ))
        .returning(plans::id)
        .get_result(conn)
        .await
        .unwrap();
    let buyer = Subscriber::new(9_401).insert(conn).await;
    let checkout = app
        .payments
        .addr()
        .send(CreateCheckout {
            user_id: buyer,
            plan_id: plan,
            provider: PaymentProvider::Yookassa,
            promo_code: None,
            auto_renew: false,
            return_to: vpn_shop::actors::payments::ReturnTo::Bot,
        })
        .await
        .unwrap();
    let Ok(Checkout::Redirect { order_id, .. }) = checkout else {
        panic!("{checkout:?}");
    };
    let external: String = payments::table
        .find(order_id)
        .select(payments::external_id.assume_not_null())
        .first(conn)
        .await
        .unwrap();
    let subscriber = Subscriber {
        expires_at: Some(chrono::Utc::now() + chrono::Duration::days(30)),
        ..Subscriber::new(9_402)
    }
    .insert(conn)
    .await;
    let held = panel.hold_next("POST", "/api/user");
    let job = queue::enqueue(conn, provision_job(subscriber), 20)
        .await
        .unwrap()
        .expect("enqueued");
    held.wait_arrived().await;

    proxy.cut();
    // /ready names the database; /health stays 200.
    wait_until("/ready to notice", || async {
        ready(&http, &base).await.0 == 503
    })
    .await;
    let (_, body) = ready(&http, &base).await;
    assert_eq!(body["status"], "unavailable", "{body}");
    let database = body["checks"]["database"].as_str().unwrap_or("ok");
    assert_ne!(database, "ok", "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("database")),
        "{body}"
    );
    let health = http.get(format!("{base}/health")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    // The payer paid; YooKassa's notice cannot be recorded: 503, so that it is sent again.
    yookassa.succeed(&external);
    let webhook = format!("{base}/webhooks/yookassa");
    assert_eq!(
        yookassa
            .send_notification(&webhook, &external, "payment.succeeded")
            .await,
        503
    );
    // The held panel request is answered while the database is still down.
    held.release();
    wait_until("the panel user created", || async {
        panel.user("vpnshop_9402").is_some()
    })
    .await;
    assert_eq!(job_state(conn, job).await, JobState::Running);

    proxy.restore();
    // The outcome is written once the database is back, long before the 10-minute lease ends.
    wait_until("the job settled after the outage", || async {
        job_state(&mut db.connect().await, job).await == JobState::Done
    })
    .await;
    wait_until("ready again", || async {
        ready(&http, &base).await.0 == 200
    })
    .await;
    assert_eq!(
        yookassa
            .send_notification(&webhook, &external, "payment.succeeded")
            .await,
        200
    );
    let status: PaymentStatus = payments::table
        .find(order_id)
        .select(payments::status)
        .first(conn)
        .await
        .unwrap();
    assert_eq!(status, PaymentStatus::Succeeded);
    app.shutdown().await;
}
