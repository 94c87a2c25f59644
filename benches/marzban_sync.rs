//! Benchmark of the panel syncs: 10,000 shop users on a fake panel (Marzban unless `BENCH_PANEL`
//! says `pasarguard`, `remnawave` (3.x) or `remnawave-2.8`), synced by the real MarzbanSyncer
//! against a real PostgreSQL. Prints the panel requests (listing pages, other reads, writes), wall
//! time and memory for: listing the panel alone, a sync with no drift, a sync with 1 % drift, and
//! the status sync. A listing and a sync that are not counted warm up first (the client logs
//! in, the pools open their connections); then each scenario runs `BENCH_RUNS` times and its wall
//! time is given as the median and the maximum of those runs.
//!
//! Run: `cargo bench --bench marzban_sync` (uses `TEST_DATABASE_URL` if set, otherwise a
//! throwaway PostgreSQL cluster in /tmp). `BENCH_PANEL` (marzban) picks the panel, `BENCH_USERS`
//! (10000) changes the number of users, `BENCH_RUNS` (5) the runs of each scenario.

mod common;
#[path = "../tests/it/support/marzban.rs"]
mod marzban;
// The bench drives the fakes through `panels` and uses a part of each.
#[allow(dead_code)]
#[path = "../tests/it/support/panels.rs"]
mod panels;
#[allow(dead_code)]
#[path = "../tests/it/support/pasarguard.rs"]
mod pasarguard;
#[allow(dead_code)]
#[path = "../tests/it/support/remnawave.rs"]
mod remnawave;
#[path = "../tests/it/support/server.rs"]
mod server;

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::Actor;
use common::{BenchDb, env_or, status_kib};
use diesel_async::RunQueryDsl;
use panels::{AnyPanel, Kind, PanelFake};
use vpn_shop::actors::marzban::MarzbanSyncer;
use vpn_shop::actors::messages::{RunSync, SyncKind};
use vpn_shop::clients::panel::{Panel, UserQuery};
use vpn_shop::config::{RawConfig, Settings};
use vpn_shop::metrics::Metrics;

const LIMIT: i64 = 50 << 30;

struct Row {
    scenario: &'static str,
    /// One per run, sorted.
    walls: Vec<Duration>,
    lists: usize,
    reads: usize,
    writes: usize,
    rss_growth_kib: i64,
}

impl Row {
    /// `0.54 s (median of 5, max 0.61 s)`.
    fn wall(&self) -> String {
        let median = self.walls[self.walls.len() / 2];
        let max = self.walls[self.walls.len() - 1];
        if self.walls.len() == 1 {
            return format!("{:.2} s (one run)", median.as_secs_f64());
        }
        format!(
            "{:.2} s (median of {}, max {:.2} s)",
            median.as_secs_f64(),
            self.walls.len(),
            max.as_secs_f64()
        )
    }
}

fn main() -> anyhow::Result<()> {
    let users = env_or("BENCH_USERS", 10_000) as i64;
    let runs = env_or("BENCH_RUNS", 5).max(1) as usize;
    let name = std::env::var("BENCH_PANEL").unwrap_or_else(|_| "marzban".into());
    let kind = Kind::from_name(&name).ok_or_else(|| {
        anyhow::anyhow!("BENCH_PANEL={name}: use marzban, pasarguard, remnawave or remnawave-2.8")
    })?;
    actix_rt::System::new().block_on(run(kind, users, runs))
}

async fn run(kind: Kind, users: i64, runs: usize) -> anyhow::Result<()> {
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
    let panel = AnyPanel::start(kind);
    for i in 1..=users {
        let name = format!("vpnshop_{}", 100_000_000 + i);
        panel.seed(&name, i * 1000);
        panel.edit(&name, |user| {
            user.expire = Some(expire);
            user.data_limit = Some(LIMIT);
        });
    }

    let mut env = panel.env(false);
    env.extend(
        [
            ("DATABASE_URL", url.as_str()),
            // The shipped default, not the tests' short one.
            ("PANEL_TIMEOUT", "10s"),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned())),
    );
    let raw = RawConfig::layered(None, None, env)?;
    let settings = Settings::from_raw(&raw)?;
    let panel_settings = settings.panel.clone().expect("panel configured");
    let metrics = Arc::new(Metrics::new()?);
    let pool = vpn_shop::db::build_pool(&url, 16, Duration::from_secs(5))?;
    let syncer = MarzbanSyncer::factory(
        pool,
        panel_settings.clone(),
        Arc::clone(&metrics),
        20,
        std::time::Duration::from_secs(120),
    )?()
    .start();

    let mut rows = Vec::new();
    // The requests are those of the last run (every run makes the same ones).
    let measure =
        |scenario: &'static str, mut walls: Vec<Duration>, rss_before: u64, panel: &AnyPanel| {
            let rss_after = status_kib("VmHWM:");
            walls.sort_unstable();
            Row {
                scenario,
                walls,
                lists: panel.lists(),
                reads: panel.reads(),
                writes: panel.writes(),
                rss_growth_kib: rss_after as i64 - rss_before as i64,
            }
        };

    // The panel's own listing time: every page, nothing else.
    let client = Panel::new(&panel_settings, Arc::clone(&metrics))?;
    let list_all = async || {
        let mut offset = 0;
        loop {
            let query = UserQuery {
                search: Some("vpnshop_"),
                status: None,
            };
            let page = client
                .list_users(&query, offset, panel_settings.page_size)
                .await?;
            offset += page.users.len() as u64;
            if page.users.is_empty() || offset >= page.total {
                break;
            }
        }
        anyhow::Ok(())
    };
    // Warm-up, not counted: the client logs in and opens its connections.
    list_all().await?;
    let rss = status_kib("VmHWM:");
    let mut walls = Vec::new();
    for _ in 0..runs {
        panel.clear_requests();
        let started = Instant::now();
        list_all().await?;
        walls.push(started.elapsed());
    }
    rows.push(measure("list the panel only", walls, rss, &panel));

    // Warm-up, not counted: the syncer's pool opens its connections, its client logs in.
    syncer
        .send(RunSync {
            kind: SyncKind::Subscriptions,
        })
        .await??
        .expect("not running already");

    for (scenario, kind, drift) in [
        ("subscription sync, no drift", SyncKind::Subscriptions, 0),
        (
            "subscription sync, 1 % drift",
            SyncKind::Subscriptions,
            users / 100,
        ),
        ("status sync", SyncKind::Status, 0),
    ] {
        let rss = status_kib("VmHWM:");
        let mut walls = Vec::new();
        for _ in 0..runs {
            // The drift again: the previous run wrote it back.
            for i in 0..drift {
                let name = format!("vpnshop_{}", 100_000_001 + i * 100);
                panel.edit(&name, |u| u.expire = Some(expire + 86_400));
            }
            panel.clear_requests();
            let started = Instant::now();
            let counts = syncer
                .send(RunSync { kind })
                .await??
                .expect("not running already");
            walls.push(started.elapsed());
            if kind == SyncKind::Subscriptions {
                assert_eq!(
                    i64::from(counts.updated),
                    drift,
                    "exactly the drifted users are written"
                );
            }
        }
        rows.push(measure(scenario, walls, rss, &panel));
    }

    println!();
    println!(
        "{} sync benchmark: {users} users, page size {}, write concurrency {}, {runs} runs of \
         each scenario after a warm-up, {} cores",
        kind.name(),
        panel_settings.page_size,
        panel_settings.write_concurrency,
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    );
    println!(
        "| scenario | wall time | listing pages | other reads | writes (per run) | peak RSS growth |"
    );
    println!("|---|---|---|---|---|---|");
    for r in &rows {
        println!(
            "| {} | {} | {} | {} | {} | {} MiB |",
            r.scenario,
            r.wall(),
            r.lists,
            r.reads,
            r.writes,
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
