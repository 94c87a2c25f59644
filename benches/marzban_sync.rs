//! Benchmark of the panel syncs: 10,000 shop users on the fake Marzban panel, synced by the real
//! MarzbanSyncer against a real PostgreSQL. Prints panel requests by endpoint, writes issued,
//! wall time and memory for: listing the panel alone, a sync with no drift, a sync with 1 % drift,
//! and the status sync.
//!
//! Run: `cargo bench --bench marzban_sync` (uses `TEST_DATABASE_URL` if set, otherwise a
//! throwaway PostgreSQL cluster in /tmp). `BENCH_USERS` changes the number of users.

mod common;
#[path = "../tests/it/support/marzban.rs"]
mod fake_marzban;
#[path = "../tests/it/support/server.rs"]
mod server;

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::Actor;
use common::{BenchDb, status_kib};
use diesel_async::RunQueryDsl;
use fake_marzban::{ADMIN_PASSWORD, ADMIN_USERNAME, FakePanel, FakeUser};
use vpn_shop::actors::marzban::MarzbanSyncer;
use vpn_shop::actors::messages::{RunSync, SyncKind};
use vpn_shop::clients::marzban::{MarzbanClient, UserQuery};
use vpn_shop::config::{RawConfig, Settings};
use vpn_shop::metrics::Metrics;

const LIMIT: i64 = 50 << 30;

struct Row {
    scenario: &'static str,
    wall: Duration,
    lists: usize,
    gets: usize,
    puts: usize,
    posts: usize,
    rss_growth_kib: i64,
}

fn main() -> anyhow::Result<()> {
    let users: i64 = std::env::var("BENCH_USERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    actix_rt::System::new().block_on(run(users))
}

async fn run(users: i64) -> anyhow::Result<()> {
    let db = BenchDb::create("sync").await?;
    let url = db.url.clone();

    // 10,000 subscriptions in the database and the same users on the panel.
    let expire = chrono::Utc::now().timestamp() + 30 * 86_400;
    let mut conn = db.connect().await?;
    diesel::sql_query(format!(
        "INSERT INTO users (telegram_id, referral_code) \
         SELECT 100000000 + g, 'ref' || g FROM generate_series(1, {users}) g"
    ))
    .execute(&mut conn)
    .await?;
    diesel::sql_query(format!(
        "INSERT INTO subscriptions (user_id, panel_username, status, expires_at, traffic_limit_bytes) \
         SELECT id, 'vpnshop_' || telegram_id, 'active', to_timestamp({expire}), {LIMIT} FROM users"
    ))
    .execute(&mut conn)
    .await?;
    let panel = FakePanel::start();
    for i in 1..=users {
        let mut user = FakeUser::new(&format!("vpnshop_{}", 100_000_000 + i));
        user.expire = Some(expire);
        user.data_limit = Some(LIMIT);
        user.used_traffic = i * 1000;
        panel.insert_user(user);
    }

    let raw = RawConfig::layered(
        None,
        None,
        [
            ("DATABASE_URL", url.as_str()),
            ("MARZBAN_URL", panel.url().as_str()),
            ("MARZBAN_USERNAME", ADMIN_USERNAME),
            ("MARZBAN_PASSWORD", ADMIN_PASSWORD),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned())),
    )?;
    let settings = Settings::from_raw(&raw)?;
    let marzban = settings.marzban.clone().expect("panel configured");
    let metrics = Arc::new(Metrics::new()?);
    let pool = vpn_shop::db::build_pool(&url, 16, Duration::from_secs(5))?;
    let syncer = MarzbanSyncer::factory(pool, marzban.clone(), Arc::clone(&metrics), 20)?().start();

    let mut rows = Vec::new();
    let measure = |scenario: &'static str, wall: Duration, rss_before: u64, panel: &FakePanel| {
        let rss_after = status_kib("VmHWM:");
        Row {
            scenario,
            wall,
            lists: panel.count("GET", "/api/users"),
            gets: panel.count("GET", "/api/user/{username}"),
            puts: panel.count("PUT", "/api/user/{username}"),
            posts: panel.count("POST", "/api/user"),
            rss_growth_kib: rss_after as i64 - rss_before as i64,
        }
    };

    // The panel's own listing time: every page, nothing else.
    let client = MarzbanClient::new(&marzban, Arc::clone(&metrics))?;
    let _ = client.system().await?; // log in outside the measurement
    panel.clear_requests();
    let rss = status_kib("VmHWM:");
    let started = Instant::now();
    let mut offset = 0;
    loop {
        let query = UserQuery {
            search: Some("vpnshop_"),
            status: None,
        };
        let page = client.list_users(&query, offset, marzban.page_size).await?;
        offset += page.users.len() as u64;
        if page.users.is_empty() || offset >= page.total {
            break;
        }
    }
    rows.push(measure(
        "list the panel only",
        started.elapsed(),
        rss,
        &panel,
    ));

    for (scenario, kind, drift) in [
        ("subscription sync, no drift", SyncKind::Subscriptions, 0),
        (
            "subscription sync, 1 % drift",
            SyncKind::Subscriptions,
            users / 100,
        ),
        ("status sync", SyncKind::Status, 0),
    ] {
        for i in 0..drift {
            let name = format!("vpnshop_{}", 100_000_001 + i * 100);
            panel.update_user(&name, |u| u.expire = Some(expire + 86_400));
        }
        panel.clear_requests();
        let rss = status_kib("VmHWM:");
        let started = Instant::now();
        let counts = syncer
            .send(RunSync { kind })
            .await??
            .expect("not running already");
        let wall = started.elapsed();
        if kind == SyncKind::Subscriptions {
            assert_eq!(
                i64::from(counts.updated),
                drift,
                "exactly the drifted users are written"
            );
        }
        rows.push(measure(scenario, wall, rss, &panel));
    }

    println!();
    println!(
        "marzban sync benchmark: {users} users, page size {}, write concurrency {}, {} cores",
        marzban.page_size,
        marzban.write_concurrency,
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    );
    println!(
        "| scenario | wall time | GET /api/users | GET /api/user | PUT /api/user | POST /api/user | writes | peak RSS growth |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for r in &rows {
        println!(
            "| {} | {:.2} s | {} | {} | {} | {} | {} | {} MiB |",
            r.scenario,
            r.wall.as_secs_f64(),
            r.lists,
            r.gets,
            r.puts,
            r.posts,
            r.puts + r.posts,
            r.rss_growth_kib.max(0) / 1024
        );
    }
    println!(
        "process peak RSS {} MiB (includes the in-process fake panel with {users} users)",
        status_kib("VmHWM:") / 1024
    );

    drop(conn);
    db.drop().await?;
    Ok(())
}
