//! Provisioning and the scheduled syncs against the fake Marzban panel, through the real app
//! (job runner, MarzbanSyncer, database). The subscription, traffic and cleanup syncs run on
//! every panel a shop can drive (`on_every_panel!`); the rest is Marzban's own behaviour.

use crate::support;

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::AsyncConnection;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use support::app::{TestApp, spawn_app};
use support::db::Subscriber;
use support::marzban::{ADMIN_USERNAME, FakePanel, FakeUser};
use support::panels::{AnyPanel, Kind, PanelFake};
use support::wait_until;
use vpn_shop::actors::marzban::{UserJob, provision_job};
use vpn_shop::actors::messages::{CheckPaidAccess, RunSync, SyncKind};
use vpn_shop::db::jobs::{self, NewJob};
use vpn_shop::db::models::{Job, Subscription, SyncRun};
use vpn_shop::db::schema::{jobs as jobs_table, subscriptions, sync_runs};
use vpn_shop::db::subscriptions::{self as subs, Grant};
use vpn_shop::db::sync::SyncCounts;
use vpn_shop::domain::{JobId, JobState, PanelUserStatus, SubscriptionStatus, UserId};

const GIB: i64 = 1 << 30;

async fn spawn_with_panel(panel: &impl PanelFake, extra: &[(&str, &str)]) -> TestApp {
    let env = panel.env(false);
    let mut settings: Vec<(&str, &str)> =
        env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    settings.extend_from_slice(&[
        ("PANEL_TIMEOUT", "1s"),
        ("JOB_BACKOFF_BASE", "100ms"),
        ("JOB_BACKOFF_MAX", "500ms"),
        ("JOB_POLL_INTERVAL", "200ms"),
        // The health probe (`GET /api/system`) runs at start and then once an hour: not in
        // the middle of a test that counts the panel's requests.
        ("ALERT_CHECK_INTERVAL", "1h"),
    ]);
    settings.extend_from_slice(extra);
    let app = spawn_app(&settings).await;
    app.db.wait_start_up_panel_jobs().await;
    panel.clear_requests();
    app
}

/// A subscriber with a subscription, as a payment or a trial leaves them.
async fn subscriber(
    conn: &mut AsyncPgConnection,
    telegram_id: i64,
    status: SubscriptionStatus,
    expires_at: DateTime<Utc>,
    traffic_limit: Option<i64>,
) -> UserId {
    Subscriber {
        status,
        expires_at: Some(expires_at),
        traffic_limit,
        ..Subscriber::new(telegram_id)
    }
    .insert(conn)
    .await
}

/// `n` days from a fixed instant of this test process (whole seconds, as the panel stores unix
/// seconds), so two calls with the same `n` agree.
fn days(n: i64) -> DateTime<Utc> {
    static ANCHOR: std::sync::OnceLock<i64> = std::sync::OnceLock::new();
    let anchor = *ANCHOR.get_or_init(|| Utc::now().timestamp());
    DateTime::from_timestamp(anchor + n * 86_400, 0).unwrap()
}

async fn enqueue(conn: &mut AsyncPgConnection, kind: &str, user_id: UserId) -> JobId {
    jobs::enqueue(conn, NewJob::new(kind, UserJob { user_id }), 20)
        .await
        .unwrap()
        .unwrap()
}

async fn job(conn: &mut AsyncPgConnection, id: JobId) -> Job {
    jobs::find(conn, id).await.unwrap().unwrap()
}

async fn wait_done(app: &TestApp, ids: &[JobId]) -> Vec<Job> {
    let deadline = Instant::now() + Duration::from_secs(20);
    let conn = &mut app.db.connect().await;
    loop {
        let mut found = Vec::new();
        for id in ids {
            found.push(job(conn, *id).await);
        }
        assert!(
            found.iter().all(|j| j.state != JobState::Dead),
            "a job died: {found:?}"
        );
        if found.iter().all(|j| j.state == JobState::Done) {
            return found;
        }
        assert!(
            Instant::now() < deadline,
            "jobs not done in time: {found:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// What a payment does in the database: `days` more (one transaction, with its `provision` job).
/// Returns the job.
async fn pay(conn: &mut AsyncPgConnection, user_id: UserId, telegram_id: i64, days: i32) -> JobId {
    conn.transaction::<_, diesel::result::Error, _>(async |conn| {
        subs::extend(conn, user_id, &name(telegram_id), days, Grant::Days).await?;
        Ok(jobs::enqueue(conn, provision_job(user_id), 20)
            .await?
            .expect("no provision job was pending"))
    })
    .await
    .unwrap()
}

/// Starts a sync without waiting for it.
fn start_sync(app: &TestApp, kind: SyncKind) -> actix_rt::task::JoinHandle<Option<SyncCounts>> {
    let addr = app.app.marzban.as_ref().expect("a panel").addr();
    actix_rt::spawn(async move {
        addr.send(RunSync { kind })
            .await
            .expect("the syncer answers")
            .expect("the sync succeeds")
    })
}

async fn subscription(conn: &mut AsyncPgConnection, user_id: UserId) -> Subscription {
    subscriptions::table
        .filter(subscriptions::user_id.eq(user_id))
        .select(Subscription::as_select())
        .first(conn)
        .await
        .unwrap()
}

async fn run_sync(app: &TestApp, kind: SyncKind) -> SyncCounts {
    app.app
        .marzban
        .as_ref()
        .expect("a panel is configured")
        .addr()
        .send(RunSync { kind })
        .await
        .expect("the syncer answers")
        .expect("the sync succeeds")
        .expect("no other run of this kind is in progress")
}

/// The panel username the shop gives a Telegram user: the default prefix and the id, written out
/// here (not computed by `panel_username`) so that a change of the naming fails these tests.
fn name(telegram_id: i64) -> String {
    format!("vpnshop_{telegram_id}")
}

#[actix_rt::test]
async fn a_paid_user_is_created_on_the_panel_with_expiry_limit_and_inbounds() {
    let panel = FakePanel::start();
    let app = spawn_with_panel(
        &panel,
        &[
            ("MARZBAN_INBOUNDS", r#"{"vless":["VLESS TCP REALITY"]}"#),
            ("MARZBAN_SUBSCRIPTION_BASE_URL", "https://sub.example.com"),
        ],
    )
    .await;
    let conn = &mut app.db.connect().await;
    let expires = days(30);
    let user = subscriber(
        conn,
        1001,
        SubscriptionStatus::Active,
        expires,
        Some(50 * GIB),
    )
    .await;
    let id = enqueue(conn, "provision", user).await;
    wait_done(&app, &[id]).await;

    let panel_user = panel.user(&name(1001)).expect("created on the panel");
    assert_eq!(panel_user.expire, Some(expires.timestamp()));
    assert_eq!(panel_user.data_limit, Some(50 * GIB));
    assert_eq!(panel_user.status, "active");
    assert!(panel_user.proxies.contains_key("vless"));
    assert_eq!(panel_user.inbounds["vless"], vec!["VLESS TCP REALITY"]);
    assert_eq!(panel_user.note.as_deref(), Some("vpn-shop: telegram 1001"));
    // The create body carried `inbounds` (without it the user could not connect).
    let creates: Vec<_> = panel
        .requests()
        .into_iter()
        .filter(|r| r.method == "POST" && r.route == "/api/user")
        .collect();
    assert_eq!(creates.len(), 1, "created once");
    assert!(creates[0].body.as_ref().unwrap()["inbounds"].is_object());

    let sub = subscription(conn, user).await;
    assert_eq!(sub.panel_status, Some(PanelUserStatus::Active));
    let url = sub.subscription_url.expect("the link is stored");
    assert!(url.starts_with("https://sub.example.com/sub/"), "{url}");
    assert!(sub.last_synced_at.is_some());
    app.shutdown().await;
}

#[actix_rt::test]
async fn a_provision_retried_after_a_timeout_that_succeeded_leaves_one_user() {
    let panel = FakePanel::start();
    let app = spawn_with_panel(&panel, &[]).await;
    let conn = &mut app.db.connect().await;
    let expires = days(30);
    let user = subscriber(conn, 1002, SubscriptionStatus::Active, expires, None).await;
    // The panel creates the user but answers after the client gave up (PANEL_TIMEOUT=1s).
    panel.time_out_next_on("POST", "/api/user", 1, Duration::from_secs(3));
    let id = enqueue(conn, "provision", user).await;
    let done = wait_done(&app, &[id]).await;

    assert_eq!(
        done[0].attempts, 2,
        "the timed-out attempt failed, the retry found the user"
    );
    assert_eq!(panel.user_count(), 1);
    assert_eq!(panel.count("POST", "/api/user"), 1, "created once");
    assert_eq!(
        panel.count("PUT", "/api/user/{username}"),
        0,
        "nothing to correct"
    );
    let panel_user = panel.user(&name(1002)).unwrap();
    assert_eq!(panel_user.expire, Some(expires.timestamp()));
    assert!(subscription(conn, user).await.subscription_url.is_some());
    app.shutdown().await;
}

#[actix_rt::test]
async fn an_existing_panel_user_is_reconciled_not_created_again() {
    let panel = FakePanel::start();
    let app = spawn_with_panel(&panel, &[]).await;
    let conn = &mut app.db.connect().await;
    let expires = days(10);
    let user = subscriber(conn, 1003, SubscriptionStatus::Active, expires, Some(GIB)).await;
    // A user the shop created earlier, whose expiry and limit are stale.
    let mut stale = FakeUser::new(&name(1003));
    stale.expire = Some(days(1).timestamp());
    panel.insert_user(stale);
    let id = enqueue(conn, "provision", user).await;
    wait_done(&app, &[id]).await;
    let panel_user = panel.user(&name(1003)).unwrap();
    assert_eq!(panel_user.expire, Some(expires.timestamp()));
    assert_eq!(panel_user.data_limit, Some(GIB));
    assert_eq!(panel.count("POST", "/api/user"), 0);
    assert_eq!(panel.count("PUT", "/api/user/{username}"), 1);
    app.shutdown().await;
}

/// README (Marzban panel): a 409 to the create — an earlier attempt that timed out but
/// succeeded made the user meanwhile — is read and reconciled in the same attempt.
#[actix_rt::test]
async fn a_409_to_the_create_is_read_and_reconciled_in_the_same_attempt() {
    let panel = FakePanel::start();
    let app = spawn_with_panel(&panel, &[]).await;
    let conn = &mut app.db.connect().await;
    let expires = days(20);
    let user = subscriber(conn, 1004, SubscriptionStatus::Active, expires, None).await;
    let held = panel.hold_next("POST", "/api/user");
    let id = enqueue(conn, "provision", user).await;
    held.wait_arrived().await;
    // The user appears on the panel between the shop's read (404) and its create.
    let mut earlier = FakeUser::new(&name(1004));
    earlier.expire = Some(days(1).timestamp());
    panel.insert_user(earlier);
    held.release();
    let done = wait_done(&app, &[id]).await;
    assert_eq!(done[0].attempts, 1, "reconciled, not retried");
    let creates: Vec<u16> = panel
        .requests()
        .into_iter()
        .filter(|r| r.method == "POST" && r.route == "/api/user")
        .map(|r| r.status)
        .collect();
    assert_eq!(creates, vec![409]);
    assert_eq!(panel.count("PUT", "/api/user/{username}"), 1);
    assert_eq!(
        panel.user(&name(1004)).unwrap().expire,
        Some(expires.timestamp())
    );
    assert!(subscription(conn, user).await.subscription_url.is_some());
    app.shutdown().await;
}

/// README (Marzban panel): a 403 or a 422 from the panel makes the job dead at once (no retry).
#[actix_rt::test]
async fn a_403_or_422_from_the_panel_makes_the_job_dead_at_once() {
    let panel = FakePanel::start();
    let app = spawn_with_panel(&panel, &[]).await;
    let conn = &mut app.db.connect().await;
    for (telegram_id, status) in [(9_111, 403), (9_112, 422)] {
        let user = subscriber(
            conn,
            telegram_id,
            SubscriptionStatus::Active,
            days(30),
            None,
        )
        .await;
        panel.fail_next(1, status);
        let id = enqueue(conn, "provision", user).await;
        wait_until(&format!("the job answered {status} to die"), || async {
            let state = job(&mut app.db.connect().await, id).await.state;
            assert_ne!(state, JobState::Done, "{status} was retried");
            state == JobState::Dead
        })
        .await;
        let dead = job(conn, id).await;
        assert_eq!(dead.attempts, 1, "no retry after {status}");
        assert!(panel.user(&name(telegram_id)).is_none());
    }
    app.shutdown().await;
}

/// README (Marzban panel): an idempotent write (the PUT) answered 5xx is retried by the client
/// (up to three attempts), inside one attempt of the job.
#[actix_rt::test]
async fn a_put_answered_5xx_is_retried_within_the_attempt() {
    let panel = FakePanel::start();
    let app = spawn_with_panel(&panel, &[]).await;
    let conn = &mut app.db.connect().await;
    let expires = days(15);
    let user = subscriber(conn, 1005, SubscriptionStatus::Active, expires, None).await;
    let mut stale = FakeUser::new(&name(1005));
    stale.expire = Some(days(2).timestamp());
    panel.insert_user(stale);
    let held = panel.hold_next("PUT", "/api/user/{username}");
    let id = enqueue(conn, "provision", user).await;
    held.wait_arrived().await;
    panel.fail_next(2, 502);
    held.release();
    let done = wait_done(&app, &[id]).await;
    assert_eq!(done[0].attempts, 1, "retried by the client, not by the job");
    let puts: Vec<u16> = panel
        .requests()
        .into_iter()
        .filter(|r| r.method == "PUT")
        .map(|r| r.status)
        .collect();
    assert_eq!(puts, vec![502, 502, 200]);
    assert_eq!(
        panel.user(&name(1005)).unwrap().expire,
        Some(expires.timestamp())
    );
    app.shutdown().await;
}

/// README: at most `PANEL_WRITE_CONCURRENCY` panel writes at once per replica — and that many
/// do run at once. Every answer of the panel takes a second, so a create can only start a
/// second after the create two before it when two at most run together.
#[actix_rt::test]
async fn panel_writes_run_up_to_marzban_write_concurrency_at_once() {
    let panel = FakePanel::start();
    let app = spawn_with_panel(
        &panel,
        &[("PANEL_WRITE_CONCURRENCY", "2"), ("PANEL_TIMEOUT", "10s")],
    )
    .await;
    let conn = &mut app.db.connect().await;
    let latency = Duration::from_secs(1);
    panel.set_latency(latency);
    let mut ids = Vec::new();
    for telegram_id in 8_701..8_707 {
        let user = subscriber(
            conn,
            telegram_id,
            SubscriptionStatus::Active,
            days(30),
            None,
        )
        .await;
        ids.push(enqueue(conn, "provision", user).await);
    }
    wait_done(&app, &ids).await;
    panel.set_latency(Duration::ZERO);
    let creates: Vec<Instant> = panel
        .requests()
        .into_iter()
        .filter(|r| r.method == "POST" && r.route == "/api/user")
        .map(|r| r.received_at)
        .collect();
    assert_eq!(creates.len(), 6);
    for three in creates.windows(3) {
        let span = three[2].duration_since(three[0]);
        assert!(
            span >= latency,
            "three creates began within {span:?}: more than two at once"
        );
    }
    assert!(
        creates[1].duration_since(creates[0]) < latency,
        "the first two creates did not run together"
    );
    app.shutdown().await;
}

#[actix_rt::test]
async fn renewing_an_expired_user_makes_it_active_again() {
    let panel = FakePanel::start();
    let app = spawn_with_panel(&panel, &[]).await;
    let conn = &mut app.db.connect().await;
    let user = subscriber(conn, 1004, SubscriptionStatus::Active, days(5), None).await;
    let mut expired = FakeUser::new(&name(1004));
    expired.expire = Some(days(-3).timestamp());
    panel.insert_user(expired);
    assert_eq!(panel.user(&name(1004)).unwrap().status, "expired");

    let id = enqueue(conn, "provision", user).await;
    wait_done(&app, &[id]).await;
    let panel_user = panel.user(&name(1004)).unwrap();
    assert_eq!(panel_user.status, "active");
    assert_eq!(panel_user.expire, Some(days(5).timestamp()));
    let put = panel
        .requests()
        .into_iter()
        .find(|r| r.method == "PUT")
        .expect("a PUT");
    // Absolute values only: the expiry as a timestamp, nothing else touched.
    assert_eq!(
        put.body,
        Some(serde_json::json!({"expire": days(5).timestamp()}))
    );
    assert_eq!(
        subscription(conn, user).await.panel_status,
        Some(PanelUserStatus::Active)
    );
    app.shutdown().await;
}

async fn the_subscription_sync_corrects_drift_and_writes_only_drifted_users(kind: Kind) {
    let panel = AnyPanel::start(kind);
    let app = spawn_with_panel(&panel, &[("PANEL_PAGE_SIZE", "2")]).await;
    let conn = &mut app.db.connect().await;
    let expires = days(20);
    let mut ids = Vec::new();
    for tg in 2001..=2005 {
        let user = subscriber(
            conn,
            tg,
            SubscriptionStatus::Active,
            expires,
            Some(10 * GIB),
        )
        .await;
        ids.push(enqueue(conn, "provision", user).await);
    }
    wait_done(&app, &ids).await;
    // Changed by hand on the panel: one expiry, one data limit, one disabled.
    panel.edit(&name(2002), |u| u.expire = Some(days(400).timestamp()));
    panel.edit(&name(2003), |u| u.data_limit = None);
    panel.edit(&name(2004), |u| u.status = "disabled".into());
    // Users that are not the shop's, and one with the prefix the shop does not know.
    panel.seed("alice", 0);
    panel.edit("alice", |u| u.expire = Some(days(1).timestamp()));
    panel.seed(&name(9999), 0);
    let others = [panel.stored("alice"), panel.stored(&name(9999))];
    panel.clear_requests();

    let counts = run_sync(&app, SyncKind::Subscriptions).await;
    assert_eq!(
        counts,
        SyncCounts {
            checked: 5,
            created: 0,
            updated: 3,
            failed: 0
        }
    );
    for tg in [2002, 2003, 2004] {
        let u = panel.stored(&name(tg)).unwrap();
        assert_eq!(
            (u.expire, u.data_limit, u.status.as_str()),
            (Some(expires.timestamp()), Some(10 * GIB), "active"),
            "{tg}"
        );
    }
    assert_eq!(
        [panel.stored("alice"), panel.stored(&name(9999))],
        others,
        "foreign users are never touched"
    );
    if let AnyPanel::Marzban(marzban) = &panel {
        let puts: Vec<String> = marzban
            .requests()
            .into_iter()
            .filter(|r| r.method == "PUT")
            .map(|r| r.path)
            .collect();
        assert_eq!(
            puts.len(),
            3,
            "only the drifted users are written: {puts:?}"
        );
        assert!(
            marzban
                .requests()
                .iter()
                .all(|r| !r.path.contains("alice") && !r.path.contains("9999")),
            "foreign users are never touched"
        );
        // Pages of 2 for the 6 users the prefix search finds.
        assert_eq!(marzban.count("GET", "/api/users"), 3);
    }

    let run: SyncRun = sync_runs::table
        .filter(sync_runs::kind.eq("subscriptions"))
        .order(sync_runs::id.desc())
        .select(SyncRun::as_select())
        .first(conn)
        .await
        .unwrap();
    assert_eq!((run.checked, run.updated, run.failed), (5, 3, 0));
    assert!(run.finished_at.is_some() && run.error.is_none());

    // A second run finds nothing to do.
    panel.clear_requests();
    let counts = run_sync(&app, SyncKind::Subscriptions).await;
    assert_eq!((counts.updated, counts.failed), (0, 0));
    assert_eq!(panel.writes(), 0);
    app.shutdown().await;
}

crate::on_every_panel!(the_subscription_sync_corrects_drift_and_writes_only_drifted_users);

/// A subscription cut short to a date already past (a refund took its days back) loses its
/// access on the panel at the first sync, and the next sync finds nothing to write: on
/// Remnawave, which refuses an expiry in the past, the user is disabled instead and stays so.
async fn an_expiry_moved_into_the_past_is_written_once(kind: Kind) {
    let panel = AnyPanel::start(kind);
    let app = spawn_with_panel(&panel, &[]).await;
    let conn = &mut app.db.connect().await;
    let user = subscriber(conn, 2101, SubscriptionStatus::Active, days(20), None).await;
    wait_done(&app, &[enqueue(conn, "provision", user).await]).await;
    diesel::update(subscriptions::table.filter(subscriptions::user_id.eq(user)))
        .set(subscriptions::expires_at.eq(days(-2)))
        .execute(conn)
        .await
        .unwrap();

    let counts = run_sync(&app, SyncKind::Subscriptions).await;
    assert_eq!((counts.checked, counts.updated, counts.failed), (1, 1, 0));
    let ended = panel.stored(&name(2101)).unwrap();
    assert!(
        ["expired", "disabled"].contains(&ended.status.as_str()),
        "the access ended: {ended:?}"
    );
    for _ in 0..2 {
        panel.clear_requests();
        let again = run_sync(&app, SyncKind::Subscriptions).await;
        assert_eq!((again.checked, again.updated, again.failed), (1, 0, 0));
        assert_eq!(panel.writes(), 0, "nothing written again");
    }
    // A renewal brings the access back.
    wait_done(&app, &[pay(conn, user, 2101, 30).await]).await;
    let renewed = panel.stored(&name(2101)).unwrap();
    assert_eq!(renewed.status, "active");
    assert_eq!(
        renewed.expire,
        Some(subscription(conn, user).await.expires_at.timestamp())
    );
    app.shutdown().await;
}

crate::on_every_panel!(an_expiry_moved_into_the_past_is_written_once);

async fn the_subscription_sync_recreates_users_missing_on_the_panel(kind: Kind) {
    let panel = AnyPanel::start(kind);
    let app = spawn_with_panel(&panel, &[]).await;
    let conn = &mut app.db.connect().await;
    let active = subscriber(conn, 3001, SubscriptionStatus::Active, days(9), None).await;
    let _expired = subscriber(conn, 3002, SubscriptionStatus::Expired, days(-9), None).await;
    let _disabled = subscriber(conn, 3003, SubscriptionStatus::Disabled, days(9), None).await;
    let counts = run_sync(&app, SyncKind::Subscriptions).await;
    assert_eq!((counts.created, counts.failed), (1, 0));
    assert!(
        panel.stored(&name(3002)).is_none() && panel.stored(&name(3003)).is_none(),
        "only access still paid for is re-created"
    );
    assert_eq!(
        panel.stored(&name(3001)).unwrap().expire,
        Some(days(9).timestamp())
    );
    let link = subscription(conn, active)
        .await
        .subscription_url
        .expect("a link");
    assert!(panel.subscription_valid(&link) && panel.reaches_nodes(&name(3001)));
    app.shutdown().await;
}

crate::on_every_panel!(the_subscription_sync_recreates_users_missing_on_the_panel);

#[actix_rt::test]
async fn provision_jobs_wait_out_a_panel_outage_and_all_complete_after_it() {
    let panel = FakePanel::start();
    let app = spawn_with_panel(&panel, &[]).await;
    let conn = &mut app.db.connect().await;
    panel.set_outage(true);
    let expires = days(30);
    let mut ids = Vec::new();
    for tg in 4001..=4010 {
        let user = subscriber(conn, tg, SubscriptionStatus::Active, expires, None).await;
        ids.push(enqueue(conn, "provision", user).await);
    }
    // While the panel is down every job keeps failing and stays queued — none dies.
    wait_until("repeated failed attempts", || async {
        let conn = &mut app.db.connect().await;
        let mut all_retrying = true;
        for id in &ids {
            let j = job(conn, *id).await;
            assert!(
                matches!(j.state, JobState::Pending | JobState::Running),
                "{j:?}"
            );
            all_retrying &= j.attempts >= 3;
        }
        all_retrying
    })
    .await;
    assert_eq!(panel.user_count(), 0);
    panel.set_outage(false);
    wait_done(&app, &ids).await;
    assert_eq!(panel.user_count(), 10);
    for tg in 4001..=4010 {
        assert_eq!(
            panel.user(&name(tg)).unwrap().expire,
            Some(expires.timestamp())
        );
    }
    assert_eq!(
        panel.count("POST", "/api/user"),
        10,
        "each user created once"
    );
    app.shutdown().await;
}

#[actix_rt::test]
async fn an_expired_token_mid_sync_logs_in_again_once() {
    let panel = FakePanel::start();
    let app = spawn_with_panel(&panel, &[("PANEL_PAGE_SIZE", "1")]).await;
    let conn = &mut app.db.connect().await;
    let mut ids = Vec::new();
    for tg in 5001..=5004 {
        let user = subscriber(conn, tg, SubscriptionStatus::Active, days(30), None).await;
        ids.push(enqueue(conn, "provision", user).await);
    }
    wait_done(&app, &ids).await;
    let logins = panel.logins();
    panel.set_latency(Duration::from_millis(100));
    let sync = app.app.marzban.as_ref().unwrap().addr().send(RunSync {
        kind: SyncKind::Subscriptions,
    });
    let expire_after_first_page = async {
        while panel.count("GET", "/api/users") < 2 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panel.expire_all_tokens();
    };
    let (result, ()) = tokio::join!(sync, expire_after_first_page);
    let counts = result.unwrap().unwrap().unwrap();
    assert_eq!(
        counts.checked, 4,
        "the whole list was read despite the expired token"
    );
    assert_eq!(panel.logins(), logins + 1, "exactly one new login");
    app.shutdown().await;
}

async fn notifications(conn: &mut AsyncPgConnection) -> Vec<serde_json::Value> {
    jobs_table::table
        .filter(jobs_table::kind.eq("notify"))
        .order(jobs_table::id)
        .select(jobs_table::payload)
        .load(conn)
        .await
        .unwrap()
}

async fn traffic_thresholds_enqueue_one_notification_each(kind: Kind) {
    let panel = AnyPanel::start(kind);
    let app = spawn_with_panel(&panel, &[]).await;
    let conn = &mut app.db.connect().await;
    let user = subscriber(conn, 6001, SubscriptionStatus::Active, days(30), Some(1000)).await;
    let quiet = subscriber(conn, 6002, SubscriptionStatus::Active, days(30), None).await;
    let ids = vec![
        enqueue(conn, "provision", user).await,
        enqueue(conn, "provision", quiet).await,
    ];
    wait_done(&app, &ids).await;

    panel.set_used(&name(6001), 500);
    panel.set_used(&name(6002), 10 * GIB);
    run_sync(&app, SyncKind::Traffic).await;
    assert!(
        notifications(conn).await.is_empty(),
        "50 % announces nothing"
    );

    panel.set_used(&name(6001), 850);
    for _ in 0..3 {
        run_sync(&app, SyncKind::Traffic).await;
    }
    run_sync(&app, SyncKind::Status).await;
    let sent = notifications(conn).await;
    assert_eq!(sent.len(), 1, "80 % once, however many runs: {sent:?}");
    assert_eq!(sent[0]["notification"]["percent"], 80);
    assert_eq!(sent[0]["user_id"], user.0);

    panel.set_used(&name(6001), 1000);
    assert_eq!(panel.stored(&name(6001)).unwrap().status, "limited");
    for _ in 0..3 {
        run_sync(&app, SyncKind::Traffic).await;
    }
    let sent = notifications(conn).await;
    assert_eq!(sent.len(), 2, "{sent:?}");
    assert_eq!(sent[1]["notification"]["percent"], 100);
    assert_eq!(sent[1]["notification"]["limit_bytes"], 1000);

    let sub = subscription(conn, user).await;
    assert_eq!(sub.traffic_used_bytes, 1000);
    assert_eq!(sub.panel_status, Some(PanelUserStatus::Limited));

    // A renewal starts a new period: the thresholds are armed again.
    diesel::update(subscriptions::table.filter(subscriptions::user_id.eq(user)))
        .set(subscriptions::expires_at.eq(days(60)))
        .execute(conn)
        .await
        .unwrap();
    run_sync(&app, SyncKind::Traffic).await;
    assert_eq!(notifications(conn).await.len(), 3);
    app.shutdown().await;
}

crate::on_every_panel!(traffic_thresholds_enqueue_one_notification_each);

#[actix_rt::test]
async fn the_status_sync_stores_panel_status_online_time_and_traffic() {
    let panel = FakePanel::start();
    let app = spawn_with_panel(&panel, &[]).await;
    let conn = &mut app.db.connect().await;
    let user = subscriber(conn, 7001, SubscriptionStatus::Active, days(30), None).await;
    let id = enqueue(conn, "provision", user).await;
    wait_done(&app, &[id]).await;
    let online = Utc::now().naive_utc() - chrono::Duration::minutes(5);
    panel.update_user(&name(7001), |u| {
        u.used_traffic = 12345;
        u.online_at = Some(online);
        u.status = "disabled".into();
    });
    let counts = run_sync(&app, SyncKind::Status).await;
    assert_eq!((counts.checked, counts.updated), (1, 1));
    let sub = subscription(conn, user).await;
    assert_eq!(sub.traffic_used_bytes, 12345);
    assert_eq!(sub.panel_status, Some(PanelUserStatus::Disabled));
    let stored = sub.online_at.unwrap().naive_utc();
    assert!((stored - online).num_seconds().abs() <= 1);
    // The status sync only reads: nothing was written to the panel.
    assert_eq!(panel.count("PUT", "/api/user/{username}"), 0);
    app.shutdown().await;
}

/// A user the panel has, expired `ago` days before the test's anchor.
fn seed_expired(panel: &AnyPanel, telegram_id: i64, ago: i64) {
    panel.seed(&name(telegram_id), 0);
    panel.edit(&name(telegram_id), |u| {
        u.expire = Some(days(-ago).timestamp())
    });
}

async fn cleanup_disables_long_expired_users_and_keeps_their_records(kind: Kind) {
    let panel = AnyPanel::start(kind);
    let app = spawn_with_panel(&panel, &[]).await;
    let conn = &mut app.db.connect().await;
    let old = subscriber(conn, 8001, SubscriptionStatus::Expired, days(-40), None).await;
    let recent = subscriber(conn, 8002, SubscriptionStatus::Expired, days(-10), None).await;
    seed_expired(&panel, 8001, 40);
    seed_expired(&panel, 8002, 10);
    let counts = run_sync(&app, SyncKind::Cleanup).await;
    assert_eq!((counts.checked, counts.updated), (1, 1));
    assert_eq!(panel.stored(&name(8001)).unwrap().status, "disabled");
    assert_eq!(panel.stored(&name(8002)).unwrap().status, "expired");
    assert_eq!(
        subscription(conn, old).await.status,
        SubscriptionStatus::Disabled
    );
    assert_eq!(
        subscription(conn, recent).await.status,
        SubscriptionStatus::Expired
    );
    // Handled once: the next run finds nothing.
    assert_eq!(run_sync(&app, SyncKind::Cleanup).await.checked, 0);
    // The subscription sync does not undo it, nor writes anything.
    panel.clear_requests();
    let counts = run_sync(&app, SyncKind::Subscriptions).await;
    assert_eq!((counts.checked, counts.updated, counts.failed), (2, 0, 0));
    assert_eq!(panel.stored(&name(8001)).unwrap().status, "disabled");
    assert_eq!(panel.writes(), 0);
    app.shutdown().await;
}

crate::on_every_panel!(cleanup_disables_long_expired_users_and_keeps_their_records);

async fn cleanup_can_delete_instead(kind: Kind) {
    let panel = AnyPanel::start(kind);
    let app = spawn_with_panel(&panel, &[("PANEL_CLEANUP_ACTION", "delete")]).await;
    let conn = &mut app.db.connect().await;
    let old = subscriber(conn, 8101, SubscriptionStatus::Expired, days(-40), None).await;
    seed_expired(&panel, 8101, 40);
    run_sync(&app, SyncKind::Cleanup).await;
    assert!(panel.stored(&name(8101)).is_none());
    let sub = subscription(conn, old).await;
    assert_eq!(sub.status, SubscriptionStatus::Disabled);
    assert!(sub.panel_status.is_none() && sub.subscription_url.is_none());
    app.shutdown().await;
}

crate::on_every_panel!(cleanup_can_delete_instead);

#[actix_rt::test]
async fn admin_operations_reach_the_panel_and_the_database() {
    let panel = FakePanel::start();
    let app = spawn_with_panel(&panel, &[]).await;
    let conn = &mut app.db.connect().await;
    let user = subscriber(conn, 9001, SubscriptionStatus::Active, days(30), Some(GIB)).await;
    wait_done(&app, &[enqueue(conn, "provision", user).await]).await;
    let first_link = subscription(conn, user).await.subscription_url.unwrap();

    // Revoke: a new link is stored, the old one is dead.
    wait_done(&app, &[enqueue(conn, "panel_revoke_sub", user).await]).await;
    let new_link = subscription(conn, user).await.subscription_url.unwrap();
    assert_ne!(new_link, first_link);
    assert!(!panel.subscription_valid(&first_link) && panel.subscription_valid(&new_link));

    // Disable, then reset traffic: the 0.8.4 reset would make the user active again; the job
    // re-applies the status the database wants.
    panel.update_user(&name(9001), |u| u.used_traffic = 300);
    wait_done(&app, &[enqueue(conn, "panel_disable", user).await]).await;
    assert_eq!(panel.user(&name(9001)).unwrap().status, "disabled");
    wait_done(&app, &[enqueue(conn, "panel_reset_traffic", user).await]).await;
    let u = panel.user(&name(9001)).unwrap();
    assert_eq!((u.used_traffic, u.status.as_str()), (0, "disabled"));
    assert_eq!(subscription(conn, user).await.traffic_used_bytes, 0);

    wait_done(&app, &[enqueue(conn, "panel_enable", user).await]).await;
    assert_eq!(panel.user(&name(9001)).unwrap().status, "active");
    assert_eq!(
        subscription(conn, user).await.status,
        SubscriptionStatus::Active
    );

    // Delete, through the 0.8.4 bug that answers 500 although the user is gone (every time, for
    // a user created by the env sudoer, which owns nothing): the client asks whether it is gone.
    panel.update_user(&name(9001), |u| u.admin = None);
    panel.clear_requests();
    wait_done(&app, &[enqueue(conn, "panel_delete", user).await]).await;
    assert!(panel.user(&name(9001)).is_none());
    let answers: Vec<_> = panel
        .requests()
        .into_iter()
        .filter(|r| r.route == "/api/user/{username}")
        .map(|r| (r.method, r.status))
        .collect();
    assert_eq!(
        answers,
        [("DELETE".to_owned(), 500), ("GET".to_owned(), 404)],
        "one DELETE, then the check that the user is gone"
    );
    let sub = subscription(conn, user).await;
    assert_eq!(sub.status, SubscriptionStatus::Disabled);
    assert!(sub.subscription_url.is_none());
    app.shutdown().await;
}

#[actix_rt::test]
async fn a_request_the_panel_refuses_makes_the_job_dead_with_its_reason() {
    let panel = FakePanel::start();
    // Trojan is configured in the shop but the panel has no trojan inbound.
    panel.set_inbounds(std::collections::BTreeMap::from([(
        "vless".to_owned(),
        vec!["VLESS TCP REALITY".to_owned()],
    )]));
    let app = spawn_with_panel(&panel, &[("MARZBAN_PROXIES", "vless,trojan")]).await;
    let conn = &mut app.db.connect().await;
    let user = subscriber(conn, 9101, SubscriptionStatus::Active, days(30), None).await;
    let id = enqueue(conn, "provision", user).await;
    wait_until("the job to die", || async {
        job(&mut app.db.connect().await, id).await.state == JobState::Dead
    })
    .await;
    let dead = job(conn, id).await;
    assert_eq!(dead.attempts, 1, "no retry of a request the panel refuses");
    let error = dead.last_error.unwrap();
    assert!(
        error.contains("Protocol trojan is disabled on your server"),
        "{error}"
    );
    app.shutdown().await;
}

#[actix_rt::test]
async fn the_stats_sync_records_the_panel_and_exports_gauges() {
    let panel = FakePanel::start();
    let app = spawn_with_panel(&panel, &[]).await;
    let conn = &mut app.db.connect().await;
    panel.insert_user(FakeUser::new(&name(9201)));
    let mut disabled = FakeUser::new("bob");
    disabled.status = "disabled".into();
    panel.insert_user(disabled);
    run_sync(&app, SyncKind::Stats).await;
    let (total, active, disabled): (i64, i64, i64) = vpn_shop::db::schema::panel_stats::table
        .order(vpn_shop::db::schema::panel_stats::id.desc())
        .select((
            vpn_shop::db::schema::panel_stats::total_user,
            vpn_shop::db::schema::panel_stats::users_active,
            vpn_shop::db::schema::panel_stats::users_disabled,
        ))
        .first(conn)
        .await
        .unwrap();
    assert_eq!((total, active, disabled), (2, 1, 1));
    let metrics = app.get("/metrics", None).await.text().await.unwrap();
    for line in [
        "vpn_shop_panel_users{status=\"active\"} 1",
        "vpn_shop_panel_users{status=\"disabled\"} 1",
        "vpn_shop_sync_runs_total{kind=\"stats\",outcome=\"succeeded\"} 2",
        "vpn_shop_panel_requests_total{endpoint=\"system\",status=\"200\"} 2",
        "vpn_shop_panel_request_duration_seconds_count{endpoint=\"system\"} 2",
        "vpn_shop_panel_memory_bytes{kind=\"total\"}",
    ] {
        assert!(metrics.contains(line), "missing {line}");
    }
    let ready: serde_json::Value = app.get("/ready", None).await.json().await.unwrap();
    assert_eq!(ready["checks"]["marzban"], "ok");
    app.shutdown().await;
}

#[actix_rt::test]
async fn without_a_panel_provision_jobs_wait_in_the_queue() {
    let app = spawn_app(&[("JOB_POLL_INTERVAL", "100ms")]).await;
    assert!(app.app.marzban.is_none());
    let conn = &mut app.db.connect().await;
    let user = subscriber(conn, 9301, SubscriptionStatus::Active, days(30), None).await;
    let id = enqueue(conn, "provision", user).await;
    // A job the runner does handle, enqueued after it, is done: the runner has passed over it.
    let later = jobs::enqueue(conn, NewJob::new("maintenance", serde_json::json!({})), 3)
        .await
        .unwrap()
        .expect("enqueued");
    wait_done(&app, &[later]).await;
    let waiting = job(conn, id).await;
    assert_eq!((waiting.state, waiting.attempts), (JobState::Pending, 0));
    let ready: serde_json::Value = app.get("/ready", None).await.json().await.unwrap();
    assert!(ready["checks"].get("marzban").is_none());
    app.shutdown().await;
}

#[actix_rt::test]
async fn cleanup_leaves_alone_a_subscription_paid_while_it_runs() {
    let panel = FakePanel::start();
    // One write at a time: the cleanup deals with the users one after the other.
    let app = spawn_with_panel(&panel, &[("PANEL_WRITE_CONCURRENCY", "1")]).await;
    let conn = &mut app.db.connect().await;
    let first = subscriber(conn, 8301, SubscriptionStatus::Expired, days(-40), None).await;
    let payer = subscriber(conn, 8302, SubscriptionStatus::Expired, days(-40), None).await;
    for tg in [8301, 8302] {
        let mut u = FakeUser::new(&name(tg));
        u.expire = Some(days(-40).timestamp());
        panel.insert_user(u);
    }
    // The cleanup has read both long-expired subscriptions and works on the first one's panel
    // user when the second one pays.
    let hold = panel.hold_next("GET", "/api/user/{username}");
    let cleanup = start_sync(&app, SyncKind::Cleanup);
    hold.wait_arrived().await;
    let paid = pay(conn, payer, 8302, 30).await;
    hold.release();
    cleanup.await.unwrap();
    wait_done(&app, &[paid]).await;

    let sub = subscription(conn, payer).await;
    let panel_user = panel.user(&name(8302)).unwrap();
    assert_eq!(
        (panel_user.status.as_str(), panel_user.expire),
        ("active", Some(sub.expires_at.timestamp())),
        "the payer keeps the access just paid for"
    );
    assert_eq!(sub.status, SubscriptionStatus::Active);
    // The other one was cleaned up.
    assert_eq!(panel.user(&name(8301)).unwrap().status, "disabled");
    assert_eq!(
        subscription(conn, first).await.status,
        SubscriptionStatus::Disabled
    );
    // And no later sync undoes the payment.
    run_sync(&app, SyncKind::Subscriptions).await;
    assert_eq!(panel.user(&name(8302)).unwrap().status, "active");
    app.shutdown().await;
}

#[actix_rt::test]
async fn the_subscription_sync_does_not_move_back_an_expiry_paid_during_the_run() {
    let panel = FakePanel::start();
    let app = spawn_with_panel(&panel, &[]).await;
    let conn = &mut app.db.connect().await;
    // Expired two days ago: the panel shows the user expired.
    let user = subscriber(conn, 8401, SubscriptionStatus::Expired, days(-2), None).await;
    let mut expired = FakeUser::new(&name(8401));
    expired.expire = Some(days(-2).timestamp());
    panel.insert_user(expired);
    // The sync has read the database and waits for the panel's list when the user pays.
    let hold = panel.hold_next("GET", "/api/users");
    let sync = start_sync(&app, SyncKind::Subscriptions);
    hold.wait_arrived().await;
    let paid = pay(conn, user, 8401, 30).await;
    wait_done(&app, &[paid]).await;
    let renewed = subscription(conn, user).await.expires_at.timestamp();
    assert_eq!(panel.user(&name(8401)).unwrap().expire, Some(renewed));
    hold.release();
    sync.await.unwrap();

    let panel_user = panel.user(&name(8401)).unwrap();
    assert_eq!(
        (panel_user.expire, panel_user.status.as_str()),
        (Some(renewed), "active"),
        "the sync must not write back what it read before the payment"
    );
    app.shutdown().await;
}

#[actix_rt::test]
async fn two_provision_runs_of_one_user_end_with_the_latest_values() {
    let panel = FakePanel::start();
    let app = spawn_with_panel(&panel, &[]).await;
    let conn = &mut app.db.connect().await;
    let user = subscriber(conn, 8501, SubscriptionStatus::Active, days(5), None).await;
    wait_done(&app, &[enqueue(conn, "provision", user).await]).await;
    assert_eq!(
        panel.user(&name(8501)).unwrap().expire,
        Some(days(5).timestamp())
    );
    // A first change: its provision run reads the database and is held at the panel.
    let hold = panel.hold_next("GET", "/api/user/{username}");
    let first = pay(conn, user, 8501, 15).await;
    hold.wait_arrived().await;
    // A second change while the first run is under way: a second run (the first is no longer
    // pending, so the dedup key lets it in), which may run at once.
    let second = pay(conn, user, 8501, 10).await;
    wait_until("the second run to start", || async {
        let j = job(&mut app.db.connect().await, second).await;
        j.state != JobState::Pending
    })
    .await;
    // Room for the second run to write while the first one is held, if nothing stops it.
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        while panel.count("PUT", "/api/user/{username}") == 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    hold.release();
    wait_done(&app, &[first, second]).await;

    let latest = subscription(conn, user).await.expires_at.timestamp();
    assert_eq!(latest, days(5).timestamp() + 25 * 86_400);
    assert_eq!(
        panel.user(&name(8501)).unwrap().expire,
        Some(latest),
        "the panel ends with the database's latest expiry"
    );
    app.shutdown().await;
}

#[actix_rt::test]
async fn a_panel_write_lock_dropped_unreleased_frees_the_user_and_the_pool() {
    use vpn_shop::db::panel_lock::{LockError, PanelWriteLock};
    let db = support::db::TestDb::new().await;
    let pool = db.pool();
    let wait = Duration::from_millis(300);
    let held = PanelWriteLock::acquire(&pool, UserId(42), wait)
        .await
        .unwrap();
    // Another writer of the same user waits, then gives up; another user is not held up.
    let busy = PanelWriteLock::acquire(&pool, UserId(42), wait).await;
    assert!(matches!(busy, Err(LockError::Busy(..))), "{:?}", busy.err());
    PanelWriteLock::acquire(&pool, UserId(43), wait)
        .await
        .unwrap()
        .release()
        .await;
    // Dropped without release (a cancelled or panicking writer): its session is closed, so
    // other sessions (another replica's pool) can take the lock.
    drop(held);
    let other_replica = db.pool();
    let again = PanelWriteLock::acquire(&other_replica, UserId(42), Duration::from_secs(5))
        .await
        .expect("the lock is free once its holder is gone");
    again.release().await;
    // Released locks leave pooled connections unlocked: every connection can take it again.
    for _ in 0..8 {
        PanelWriteLock::acquire(&pool, UserId(42), wait)
            .await
            .unwrap()
            .release()
            .await;
    }
}

/// A paid order of `user` (what the check looks for: money that promised access).
async fn paid_order(conn: &mut AsyncPgConnection, user: UserId) {
    use vpn_shop::db::schema::payments;
    use vpn_shop::domain::{Currency, PaymentProvider, PaymentStatus};
    diesel::insert_into(payments::table)
        .values((
            payments::user_id.eq(user),
            payments::provider.eq(PaymentProvider::Yookassa),
            payments::status.eq(PaymentStatus::Succeeded),
            payments::amount_minor.eq(29_900_i64),
            payments::currency.eq(Currency::Rub),
            payments::days.eq(30),
            payments::paid_at.eq(Utc::now()),
        ))
        .execute(conn)
        .await
        .unwrap();
}

async fn check_paid_access(app: &TestApp) -> i64 {
    app.app
        .marzban
        .as_ref()
        .expect("a panel")
        .addr()
        .send(CheckPaidAccess)
        .await
        .expect("the syncer answers")
        .expect("the check runs")
}

async fn gauge(app: &TestApp) -> String {
    let metrics = app.get("/metrics", None).await.text().await.unwrap();
    metrics
        .lines()
        .find(|l| l.starts_with("vpn_shop_paid_unprovisioned "))
        .expect("the gauge is exported")
        .to_owned()
}

#[actix_rt::test]
async fn paid_access_taken_away_behind_the_shops_back_is_counted_and_repaired() {
    let panel = FakePanel::start();
    let app = spawn_with_panel(&panel, &[("PAID_UNPROVISIONED_AFTER", "1s")]).await;
    let conn = &mut app.db.connect().await;
    let mut users = Vec::new();
    // 8601 disabled, 8602 removed, 8603 cut short on the panel; 8604 fine but the shop's knowledge
    // of it is stale; 8605 removed but never paid (a trial): not this check's business.
    for tg in 8601..=8605 {
        let user = subscriber(conn, tg, SubscriptionStatus::Active, days(30), None).await;
        if tg != 8605 {
            paid_order(conn, user).await;
        }
        users.push(user);
    }
    let ids: Vec<JobId> = {
        let mut ids = Vec::new();
        for user in &users {
            ids.push(enqueue(conn, "provision", *user).await);
        }
        ids
    };
    wait_done(&app, &ids).await;
    // Past the grace period, everything is in order, and nothing was read on the panel.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    panel.clear_requests();
    assert_eq!(check_paid_access(&app).await, 0);
    assert!(panel.requests().is_empty(), "{:?}", panel.requests());

    panel.update_user(&name(8601), |u| u.status = "disabled".into());
    assert!(panel.remove_user(&name(8602)));
    panel.update_user(&name(8603), |u| u.expire = Some(days(2).timestamp()));
    assert!(panel.remove_user(&name(8605)));
    // The status sync notices (the next subscription sync would also repair them; it does not
    // run here).
    run_sync(&app, SyncKind::Status).await;
    assert_eq!(subscription(conn, users[1]).await.panel_status, None);
    diesel::update(subscriptions::table.filter(subscriptions::user_id.eq(users[3])))
        .set(subscriptions::panel_status.eq(None::<PanelUserStatus>))
        .execute(conn)
        .await
        .unwrap();

    panel.clear_requests();
    let found = check_paid_access(&app).await;
    assert_eq!(
        found, 3,
        "disabled, removed, cut short; the stale one is fine on the panel"
    );
    assert_eq!(gauge(&app).await, "vpn_shop_paid_unprovisioned 3");
    assert!(
        subscription(conn, users[0])
            .await
            .unprovisioned_since
            .is_some()
    );
    assert_eq!(
        subscription(conn, users[3]).await.panel_status,
        Some(PanelUserStatus::Active),
        "the stale knowledge is refreshed"
    );

    // The repair: the provision jobs it enqueued bring the panel back in line.
    wait_until("the repair", || async {
        let a = panel.user(&name(8601)).map(|u| u.status);
        let b = panel.user(&name(8602)).map(|u| u.expire);
        let c = panel.user(&name(8603)).and_then(|u| u.expire);
        a.as_deref() == Some("active")
            && b == Some(Some(days(30).timestamp()))
            && c == Some(days(30).timestamp())
    })
    .await;
    assert_eq!(check_paid_access(&app).await, 0);
    assert_eq!(gauge(&app).await, "vpn_shop_paid_unprovisioned 0");
    assert!(
        subscription(conn, users[0])
            .await
            .unprovisioned_since
            .is_none()
    );
    assert!(
        panel.user(&name(8605)).is_none(),
        "the trial is left to the syncs"
    );

    // A panel that cannot be read does not hide what the database knows.
    diesel::update(subscriptions::table.filter(subscriptions::user_id.eq(users[0])))
        .set(subscriptions::panel_status.eq(None::<PanelUserStatus>))
        .execute(conn)
        .await
        .unwrap();
    panel.set_outage(true);
    assert_eq!(check_paid_access(&app).await, 1);
    panel.set_outage(false);
    wait_until("the provision job after the outage", || async {
        subscription(&mut app.db.connect().await, users[0])
            .await
            .panel_status
            .is_some()
    })
    .await;
    assert_eq!(check_paid_access(&app).await, 0);
    app.shutdown().await;
}

/// The job once its last error contains `needle` (the job keeps being retried).
async fn wait_error(app: &TestApp, id: JobId, needle: &str) -> Job {
    wait_until(&format!("a job error with {needle:?}"), || async {
        let j = job(&mut app.db.connect().await, id).await;
        j.last_error.as_deref().is_some_and(|e| e.contains(needle))
    })
    .await;
    job(&mut app.db.connect().await, id).await
}

#[actix_rt::test]
async fn a_panel_that_refuses_connections_fails_the_job_which_completes_once_it_listens_again() {
    let panel = FakePanel::start();
    let app = spawn_with_panel(&panel, &[]).await;
    let conn = &mut app.db.connect().await;
    let user = subscriber(conn, 9201, SubscriptionStatus::Active, days(30), None).await;
    panel.refuse_connections(true);
    let id = enqueue(conn, "provision", user).await;
    let failed = wait_error(&app, id, "Connection refused").await;
    assert!(
        matches!(failed.state, JobState::Pending | JobState::Running),
        "retried, not given up: {failed:?}"
    );
    assert!(panel.requests().is_empty(), "nothing reached the panel");

    panel.refuse_connections(false);
    wait_done(&app, &[id]).await;
    let panel_user = panel.user(&name(9201)).expect("created once it listens");
    assert_eq!(panel_user.expire, Some(days(30).timestamp()));
    assert_eq!(panel.count("POST", "/api/user"), 1);
    app.shutdown().await;
}

/// A panel that accepts connections and never answers: each attempt ends at `PANEL_TIMEOUT`,
/// a read is tried three times (the client's retries), and the job is retried later as a whole.
#[actix_rt::test]
async fn a_hanging_panel_times_out_every_attempt_and_the_job_completes_after_the_hang() {
    let panel = FakePanel::start();
    let app = spawn_with_panel(&panel, &[("PANEL_TIMEOUT", "300ms")]).await;
    let conn = &mut app.db.connect().await;
    let user = subscriber(conn, 9202, SubscriptionStatus::Active, days(30), None).await;
    panel.set_hanging(true);
    let id = enqueue(conn, "provision", user).await;
    let failed = wait_error(&app, id, "timed out").await;
    assert!(
        matches!(failed.state, JobState::Pending | JobState::Running),
        "retried, not given up: {failed:?}"
    );
    let hung: Vec<_> = panel.requests();
    assert!(hung.iter().all(|r| r.status == 0), "nothing was answered");
    let reads = hung
        .iter()
        .filter(|r| r.method == "GET" && r.route == "/api/user/{username}")
        .count();
    assert!(
        reads >= 3,
        "a read is tried three times per job attempt: {reads}"
    );
    assert!(
        hung.iter().all(|r| r.method == "GET"),
        "a create is never sent while the read fails"
    );
    assert_eq!(panel.user_count(), 0);

    panel.set_hanging(false);
    wait_done(&app, &[id]).await;
    assert_eq!(
        panel
            .user(&name(9202))
            .expect("created after the hang")
            .expire,
        Some(days(30).timestamp())
    );
    assert_eq!(panel.count("POST", "/api/user"), 1);
    app.shutdown().await;
}

/// The README's set-up with a regular (non-sudo) panel admin: the shop's users are its own, the
/// syncs see only them, and a same-named user of another admin is refused by name, not changed.
#[actix_rt::test]
async fn a_regular_panel_admin_manages_its_own_users_and_never_touches_another_admins() {
    let panel = FakePanel::start();
    panel.add_admin("reseller", "reseller-password", false);
    let app = spawn_with_panel(
        &panel,
        &[
            ("MARZBAN_USERNAME", "reseller"),
            ("MARZBAN_PASSWORD", "reseller-password"),
        ],
    )
    .await;
    let conn = &mut app.db.connect().await;
    // Another admin's users: one with a shop-like name, one of the panel's own.
    let mut foreign = FakeUser::new(&name(9399));
    foreign.admin = Some(ADMIN_USERNAME.to_owned());
    panel.insert_user(foreign);
    let mut stranger = FakeUser::new("someone_else");
    stranger.admin = Some(ADMIN_USERNAME.to_owned());
    panel.insert_user(stranger);

    let own = subscriber(conn, 9301, SubscriptionStatus::Active, days(30), None).await;
    wait_done(&app, &[enqueue(conn, "provision", own).await]).await;
    let created = panel.user(&name(9301)).expect("created");
    assert_eq!(created.admin.as_deref(), Some("reseller"));

    let counts = run_sync(&app, SyncKind::Subscriptions).await;
    assert_eq!((counts.checked, counts.failed), (1, 0), "{counts:?}");
    run_sync(&app, SyncKind::Status).await;
    assert!(
        panel.requests().iter().all(|r| r.status != 403),
        "the syncs asked only for what the admin may see"
    );

    // A shop user whose panel name belongs to another admin: refused by name, left alone.
    let clash = subscriber(conn, 9399, SubscriptionStatus::Active, days(60), None).await;
    let id = enqueue(conn, "provision", clash).await;
    wait_until("the job to die", || async {
        job(&mut app.db.connect().await, id).await.state == JobState::Dead
    })
    .await;
    let error = job(conn, id).await.last_error.unwrap_or_default();
    assert!(error.contains("You're not allowed"), "{error}");
    let untouched = panel.user(&name(9399)).unwrap();
    assert_eq!(
        (untouched.expire, untouched.admin.as_deref()),
        (None, Some(ADMIN_USERNAME))
    );
    app.shutdown().await;
}
