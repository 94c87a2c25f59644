//! Benchmark of a purchase end to end: the real app with the fake YooKassa, the fake Marzban
//! panel answering every request after 60 ms, and the fake Telegram Bot API. `BENCH_PURCHASES`
//! orders are created through the PaymentProcessor's checkout (`CreateCheckout`) and paid at the
//! fake YooKassa beforehand (not timed); then their `payment.succeeded` webhooks are POSTed to
//! `/webhooks/yookassa`, `BENCH_CONCURRENCY` purchases in flight. Each purchase is timed from its
//! webhook POST to (a) the fake panel holding the user with the new expiry (polled every 2 ms) and
//! (b) the fake Telegram having accepted the `payment_succeeded` message for that chat (the
//! fake's own timestamp). Prints p50/p99/max of both and of the webhook answer, throughput, the
//! panel and Bot API calls made, and memory, then a `BENCH-RESULT` line for `bench/run`.
//!
//! The app runs with its real defaults (`JOB_POLL_INTERVAL` 5 s — new jobs wake the runner
//! through LISTEN/NOTIFY —, `TELEGRAM_MAX_RATE` 25/s, `MARZBAN_WRITE_CONCURRENCY` and
//! `JOB_CONCURRENCY` as shipped); only `YOOKASSA_CHECK_IP=false` (the webhooks come from
//! 127.0.0.1) and `PAYMENT_POLL_AFTER=24h` (the poller must not confirm the orders before their
//! webhook) are set.
//!
//! Run: `cargo bench --bench purchase` (uses `TEST_DATABASE_URL` if set, otherwise a throwaway
//! PostgreSQL cluster). `BENCH_PURCHASES` (500), `BENCH_CONCURRENCY` (purchases in flight, 4)
//! and `BENCH_PANEL_LATENCY_MS` (60) change it.

mod common;
#[path = "../tests/it/support/marzban.rs"]
mod fake_marzban;
#[path = "../tests/it/support/telegram.rs"]
mod fake_telegram;
#[path = "../tests/it/support/yookassa.rs"]
mod fake_yookassa;
#[path = "../tests/it/support/server.rs"]
mod server;

use std::time::{Duration, Instant};

use common::{BenchDb, env_or, start_app_with_settings, status_mib};
use fake_marzban::{ADMIN_PASSWORD, ADMIN_USERNAME, FakePanel};
use fake_telegram::{FakeTelegram, TOKEN};
use fake_yookassa::FakeYooKassa;
use futures_util::{StreamExt, stream};
use serde_json::Value;
use vpn_shop::domain::panel::panel_username;

const TELEGRAM_ID_BASE: i64 = 800_000_000;
/// The start of the English `payment_succeeded` message (locales/en/notifications.ftl).
const PAID_TEXT: &str = "Your payment of";
/// How long one purchase may take before it counts as lost.
const GIVE_UP: Duration = Duration::from_secs(120);

/// One purchase's timings from its webhook POST; `None` where it never happened.
struct Timed {
    answer: Option<Duration>,
    panel: Option<Duration>,
    telegram: Option<Duration>,
    error: Option<String>,
}

fn percentile(sorted: &[Duration], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

fn main() -> anyhow::Result<()> {
    let ok = actix_rt::System::new().block_on(run())?;
    if !ok {
        std::process::exit(1);
    }
    Ok(())
}

async fn run() -> anyhow::Result<bool> {
    let purchases = env_or("BENCH_PURCHASES", 500).max(1) as usize;
    let concurrency = env_or("BENCH_CONCURRENCY", 4).max(1) as usize;
    let panel_latency = Duration::from_millis(env_or("BENCH_PANEL_LATENCY_MS", 60));

    let db = BenchDb::create("buy").await?;
    let mut conn = db.connect().await?;
    let (plan, users) = common::plan_and_users(&mut conn, TELEGRAM_ID_BASE, purchases).await?;

    let yookassa = FakeYooKassa::start();
    let panel = FakePanel::start();
    panel.set_latency(panel_latency);
    let telegram = FakeTelegram::start();
    let (yookassa_url, panel_url, tg_url) = (yookassa.url(), panel.url(), telegram.url());
    let (app, _data_dir, settings) = start_app_with_settings(
        &db,
        &[
            ("YOOKASSA_SHOP_ID", fake_yookassa::SHOP_ID),
            ("YOOKASSA_SECRET_KEY", fake_yookassa::SECRET_KEY),
            ("YOOKASSA_API_URL", yookassa_url.as_str()),
            // The webhooks come from 127.0.0.1; each is still confirmed with YooKassa's API.
            ("YOOKASSA_CHECK_IP", "false"),
            // The poller must not confirm the orders before their webhook.
            ("PAYMENT_POLL_AFTER", "24h"),
            ("MARZBAN_URL", panel_url.as_str()),
            ("MARZBAN_USERNAME", ADMIN_USERNAME),
            ("MARZBAN_PASSWORD", ADMIN_PASSWORD),
            ("TELEGRAM_BOT_TOKEN", TOKEN),
            ("TELEGRAM_API_URL", tg_url.as_str()),
        ],
    )
    .await?;
    let prefix = settings.panel_username_prefix().to_owned();
    let base = format!("http://{}", app.http_addr());
    tokio::time::sleep(Duration::from_secs(2)).await;
    let idle_rss = status_mib("VmRSS:");

    // The orders, through the real checkout, then paid at the fake YooKassa (not timed).
    let mut orders = Vec::with_capacity(purchases);
    for (telegram_id, external) in common::yookassa_orders(&mut conn, &app, &users, plan, 8).await?
    {
        yookassa.succeed(&external);
        let body = serde_json::to_vec(&yookassa.notification(&external, "payment.succeeded"))?;
        orders.push((telegram_id, body));
    }
    panel.clear_requests();
    telegram.clear_calls();

    // The purchases.
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()?;
    let url = format!("{base}/webhooks/yookassa");
    let started = Instant::now();
    let timed: Vec<Timed> = stream::iter(orders)
        .map(|(telegram_id, body)| {
            let (client, url, panel, telegram, prefix) =
                (&client, &url, &panel, &telegram, &prefix);
            async move {
                let username = panel_username(prefix, telegram_id);
                let posted = Instant::now();
                // The expiry the purchase must reach, a few seconds of slack for clocks and rounding.
                let wanted_expire =
                    chrono::Utc::now().timestamp() + i64::from(common::PLAN_DAYS) * 86_400 - 5;
                let mut t = Timed {
                    answer: None,
                    panel: None,
                    telegram: None,
                    error: None,
                };
                match client
                    .post(url)
                    .header(reqwest::header::CONTENT_TYPE, "application/json")
                    .body(body)
                    .send()
                    .await
                {
                    Ok(response) => {
                        let status = response.status().as_u16();
                        let answer: Value = response.json().await.unwrap_or(Value::Null);
                        t.answer = Some(posted.elapsed());
                        if status != 200 || answer["verdict"] != "accepted" {
                            t.error = Some(format!("webhook answered {status} {answer}"));
                            return t;
                        }
                    }
                    Err(e) => {
                        t.error = Some(format!("webhook: {e}"));
                        return t;
                    }
                }
                while t.panel.is_none() || t.telegram.is_none() {
                    if t.panel.is_none()
                        && panel
                            .user(&username)
                            .and_then(|u| u.expire)
                            .is_some_and(|e| e >= wanted_expire)
                    {
                        t.panel = Some(posted.elapsed());
                    }
                    if t.telegram.is_none() {
                        t.telegram = telegram
                            .messages_to(telegram_id)
                            .iter()
                            .find(|m| m.text.contains(PAID_TEXT))
                            .map(|m| m.at.saturating_duration_since(posted));
                    }
                    if posted.elapsed() > GIVE_UP {
                        t.error = Some(format!(
                            "{username}: after {} s panel {}, Telegram {}",
                            GIVE_UP.as_secs(),
                            if t.panel.is_some() {
                                "done"
                            } else {
                                "not updated"
                            },
                            if t.telegram.is_some() {
                                "done"
                            } else {
                                "no message"
                            },
                        ));
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
                t
            }
        })
        .buffer_unordered(concurrency)
        .collect()
        .await;
    let wall = started.elapsed();
    let peak_rss = status_mib("VmHWM:");

    let sorted = |f: fn(&Timed) -> Option<Duration>| {
        let mut v: Vec<Duration> = timed.iter().filter_map(f).collect();
        v.sort_unstable();
        v
    };
    let (answers, panels, messages) = (
        sorted(|t| t.answer),
        sorted(|t| t.panel),
        sorted(|t| t.telegram),
    );
    let errors: Vec<&String> = timed.iter().filter_map(|t| t.error.as_ref()).collect();
    let complete = timed
        .iter()
        .filter(|t| t.panel.is_some() && t.telegram.is_some())
        .count();
    let throughput = complete as f64 / wall.as_secs_f64();

    println!();
    println!(
        "purchase benchmark: {purchases} YooKassa purchases, {concurrency} in flight, fake panel \
         latency {} ms, JOB_POLL_INTERVAL {:?}, JOB_CONCURRENCY {}, TELEGRAM_MAX_RATE {}/s, {} cores",
        panel_latency.as_millis(),
        settings.jobs.poll_interval,
        settings.jobs.concurrency,
        settings.telegram.as_ref().map_or(0, |t| t.max_rate),
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    );
    println!("| from the webhook POST to | done | p50 | p99 | max |");
    println!("|---|---|---|---|---|");
    for (name, v) in [
        ("its answer", &answers),
        ("panel user with the new expiry", &panels),
        ("`payment_succeeded` message sent", &messages),
    ] {
        println!(
            "| {name} | {} | {:.1} ms | {:.1} ms | {:.1} ms |",
            v.len(),
            percentile(v, 0.50),
            percentile(v, 0.99),
            percentile(v, 1.0)
        );
    }
    println!(
        "complete purchases: {complete} of {purchases} in {:.2} s ({throughput:.1} purchases/s)",
        wall.as_secs_f64()
    );
    let mut by_route: Vec<(String, usize)> = Vec::new();
    for r in panel.requests() {
        let key = format!("{} {}", r.method, r.route);
        match by_route.iter_mut().find(|(k, _)| *k == key) {
            Some((_, n)) => *n += 1,
            None => by_route.push((key, 1)),
        }
    }
    by_route.sort();
    println!(
        "panel requests during the run: {}",
        by_route
            .iter()
            .map(|(k, n)| format!("{k} × {n}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!(
        "Bot API messages sent during the run: {}",
        telegram.sent_count()
    );
    println!(
        "RSS idle {idle_rss} MiB, peak {peak_rss} MiB (the whole process: the app and the three \
         in-process fakes)"
    );
    if let [first, ..] = errors.as_slice() {
        println!("FAILED: {} purchases, e.g. {first}", errors.len());
    }
    println!(
        "BENCH-RESULT purchases={purchases} complete={complete} concurrency={concurrency} \
         answer_p50_ms={:.1} answer_p99_ms={:.1} panel_p50_ms={:.1} panel_p99_ms={:.1} \
         telegram_p50_ms={:.1} telegram_p99_ms={:.1} purchases_per_s={throughput:.1} \
         rss_idle_mib={idle_rss} rss_peak_mib={peak_rss}",
        percentile(&answers, 0.50),
        percentile(&answers, 0.99),
        percentile(&panels, 0.50),
        percentile(&panels, 0.99),
        percentile(&messages, 0.50),
        percentile(&messages, 0.99),
    );

    drop(conn);
    app.shutdown().await;
    let ok = errors.is_empty();
    if ok {
        db.drop().await?;
    } else {
        println!("database {} kept for inspection", db.name);
    }
    Ok(ok)
}
