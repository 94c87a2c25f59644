//! Benchmark of broadcasts: 10,000 users, the real app, the fake Telegram Bot API enforcing a
//! flood limit. Prints the achieved rate against the configured one, the 429s provoked and
//! memory.
//!
//! Run: `cargo bench --bench broadcast` (uses `TEST_DATABASE_URL` if set, otherwise a throwaway
//! PostgreSQL cluster). `BENCH_USERS` (10000), `BENCH_RATE` (BROADCAST_RATE, 80) and
//! `BENCH_LIMIT` (the fake's messages-per-second limit and TELEGRAM_MAX_RATE, 100) change it.

mod common;
#[path = "../tests/it/support/telegram.rs"]
mod fake_telegram;
#[path = "../tests/it/support/server.rs"]
mod server;

use std::time::{Duration, Instant};

use common::{BenchDb, env_or, start_app, status_mib};
use diesel_async::RunQueryDsl;
use fake_telegram::{FakeTelegram, TOKEN};
use vpn_shop::db::broadcasts::{self, Author};
use vpn_shop::domain::BroadcastStatus;
use vpn_shop::domain::broadcast::{Audience, Segment, validate};

fn main() -> anyhow::Result<()> {
    actix_rt::System::new().block_on(run())
}

async fn run() -> anyhow::Result<()> {
    let users = env_or("BENCH_USERS", 10_000);
    let rate = env_or("BENCH_RATE", 80);
    let limit = env_or("BENCH_LIMIT", 100);

    let db = BenchDb::create("bc").await?;
    let mut conn = db.connect().await?;
    diesel::sql_query(format!(
        "INSERT INTO users (telegram_id, referral_code) \
         SELECT 500000000 + g, 'bench' || g FROM generate_series(1, {users}) g"
    ))
    .execute(&mut conn)
    .await?;

    let telegram = FakeTelegram::start();
    telegram.set_global_limit(limit as u32);
    telegram.set_per_chat_limit(1);
    let (tg_url, rate_s, limit_s) = (telegram.url(), rate.to_string(), limit.to_string());
    let (app, _data_dir) = start_app(
        &db,
        &[
            ("TELEGRAM_BOT_TOKEN", TOKEN),
            ("TELEGRAM_API_URL", tg_url.as_str()),
            ("TELEGRAM_MAX_RATE", limit_s.as_str()),
            ("BROADCAST_RATE", rate_s.as_str()),
        ],
    )
    .await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let idle_rss = status_mib("VmRSS:");

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
        peak_rss = peak_rss.max(status_mib("VmRSS:"));
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
    db.drop().await?;
    Ok(())
}
