//! Benchmark of broadcasts: 10,000 users, the real app, the fake Telegram Bot API enforcing a
//! flood limit. Prints the achieved rate against the configured one, the 429s provoked and
//! memory.
//!
//! Run: `cargo bench --bench broadcast` (uses `TEST_DATABASE_URL` if set, otherwise a throwaway
//! PostgreSQL cluster). `BENCH_USERS` (10000), `BENCH_RATE` (BROADCAST_RATE, 80) and
//! `BENCH_LIMIT` (the fake's messages-per-second limit and TELEGRAM_MAX_RATE, 100) change it.

#[path = "../tests/support/telegram.rs"]
mod fake_telegram;
#[path = "../tests/support/pg.rs"]
mod pg;

use std::time::{Duration, Instant};

use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use fake_telegram::{FakeTelegram, TOKEN};
use vpn_shop::config::{RawConfig, Settings};
use vpn_shop::db::broadcasts::{self, Author};
use vpn_shop::domain::BroadcastStatus;
use vpn_shop::domain::broadcast::{Audience, Segment, validate};

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn rss_mib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .unwrap_or(0)
        / 1024
}

fn main() -> anyhow::Result<()> {
    actix_rt::System::new().block_on(run())
}

async fn run() -> anyhow::Result<()> {
    let users = env_or("BENCH_USERS", 10_000);
    let rate = env_or("BENCH_RATE", 80);
    let limit = env_or("BENCH_LIMIT", 100);

    let server = pg::server().await;
    let db_name = format!("vpnshop_bench_bc_{}", std::process::id());
    let mut admin = AsyncPgConnection::establish(&server.url_for("postgres")).await?;
    diesel::sql_query(format!("DROP DATABASE IF EXISTS {db_name}"))
        .execute(&mut admin)
        .await?;
    diesel::sql_query(format!("CREATE DATABASE {db_name}"))
        .execute(&mut admin)
        .await?;
    let url = server.url_for(&db_name);
    vpn_shop::db::run_migrations(&url).await?;
    let mut conn = AsyncPgConnection::establish(&url).await?;
    diesel::sql_query(format!(
        "INSERT INTO users (telegram_id, referral_code) \
         SELECT 500000000 + g, 'bench' || g FROM generate_series(1, {users}) g"
    ))
    .execute(&mut conn)
    .await?;

    let telegram = FakeTelegram::start();
    telegram.set_global_limit(limit as u32);
    telegram.set_per_chat_limit(1);
    let data_dir = tempfile::tempdir()?;
    let (tg_url, rate_s, limit_s, dir) = (
        telegram.url(),
        rate.to_string(),
        limit.to_string(),
        data_dir.path().display().to_string(),
    );
    let raw = RawConfig::layered(
        None,
        None,
        [
            ("DATABASE_URL", url.as_str()),
            ("DATA_DIR", dir.as_str()),
            ("HTTP_BIND", "127.0.0.1:0"),
            ("JWT_SECRET", "bench-secret-bench-secret-bench-secret-0123"),
            ("TELEGRAM_BOT_TOKEN", TOKEN),
            ("TELEGRAM_API_URL", tg_url.as_str()),
            ("TELEGRAM_MAX_RATE", limit_s.as_str()),
            ("BROADCAST_RATE", rate_s.as_str()),
            ("RUST_LOG", "warn"),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned())),
    )?;
    let settings = Settings::from_raw(&raw)?;
    let app = vpn_shop::app::start(&settings, &url).await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let idle_rss = rss_mib();

    let message = validate("<b>Benchmark</b> broadcast", None, None).map_err(anyhow::Error::msg)?;
    let audience = Audience {
        segment: Segment::All,
        language: None,
    };
    let started = Instant::now();
    let b = broadcasts::create_and_queue(&mut conn, &message, audience, Author::Telegram(1), 20)
        .await?;
    let mut peak_rss = idle_rss;
    loop {
        tokio::time::sleep(Duration::from_millis(200)).await;
        peak_rss = peak_rss.max(rss_mib());
        let state = broadcasts::find(&mut conn, b.id).await?.expect("broadcast");
        if state.status == BroadcastStatus::Completed {
            break;
        }
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(3600),
            "broadcast did not finish"
        );
    }
    let wall = started.elapsed();
    let done = broadcasts::find(&mut conn, b.id).await?.expect("broadcast");
    let sent = telegram.sent_messages();
    let span = match (<[_]>::first(&sent), <[_]>::last(&sent)) {
        (Some(first), Some(last)) => last.at.duration_since(first.at),
        _ => Duration::ZERO,
    };
    let achieved = if span.is_zero() {
        0.0
    } else {
        (sent.len() as f64 - 1.0) / span.as_secs_f64()
    };

    println!();
    println!(
        "broadcast benchmark: {users} users, BROADCAST_RATE {rate}/s, fake Bot API limit {limit}/s, {} cores",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    );
    println!(
        "| users | sent | failed | wall time | achieved rate | configured rate | achieved / configured | 429s | RSS idle → peak |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    println!(
        "| {users} | {} | {} | {:.1} s | {achieved:.1}/s | {rate}/s | {:.3} | {} | {idle_rss} → {peak_rss} MiB |",
        done.sent,
        done.failed,
        wall.as_secs_f64(),
        achieved / rate as f64,
        telegram.count_429(),
    );
    println!(
        "(RSS is the whole process: the app and the in-process fake Bot API with its recorder)"
    );

    app.shutdown().await;
    drop(conn);
    diesel::sql_query(format!("DROP DATABASE IF EXISTS {db_name} WITH (FORCE)"))
        .execute(&mut admin)
        .await?;
    Ok(())
}
