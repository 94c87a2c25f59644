//! Benchmark of the Telegram bot: 1,500 updates from 150 users through the fake Bot API's
//! `getUpdates` long polling into the real app's bot, the fake enforcing Telegram's flood limits
//! (30 messages/s in all, 1/s per chat). Prints how long the burst of every user's `/start` took
//! to be answered (issue 23: 150 people within the same second, all answered within 15 s, none
//! lost), the throughput, the handling time per update, the outcomes, the 429s, the Bot API calls
//! made and memory.
//!
//! Run: `cargo bench --bench bot` (uses `TEST_DATABASE_URL` if set, otherwise a throwaway
//! PostgreSQL cluster). `BENCH_UPDATES` (1500) and `BENCH_USERS` (150) change it.
//!
//! The updates: every user's `/start` first (pushed at once: the burst; their answers give the
//! message each user then presses buttons under), then the rest in a seeded random order, pushed
//! at once:
//! overall about 40 % `/start`, 40 % button presses (`menu`, `buy`, `ref`, `settings`, `help`
//! under the bot's answer to that user's `/start`) and 20 % `/status`. Half the users have a
//! subscription with a link beforehand, so their `/status` answers with the QR photo.
//!
//! The handling time per update is the bot's own measurement (from the dispatcher handing the
//! update to the handler until the handler returns, i.e. after its Bot API calls were answered):
//! `vpn_shop_bot_update_duration_seconds`, read from the app's registry; p50/p99 are interpolated
//! linearly inside the histogram's buckets.

mod common;
#[path = "../tests/it/support/telegram.rs"]
mod fake_telegram;
#[path = "../tests/it/support/server.rs"]
mod server;

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use common::{BenchDb, env_or, start_app, status_mib};
use diesel_async::RunQueryDsl;
use fake_telegram::{FakeTelegram, TOKEN};
use prometheus::core::Collector;
use vpn_shop::metrics::Metrics;

const FIRST_USER: i64 = 700_000_000;
const BUTTONS: [&str; 5] = ["menu", "buy", "ref", "settings", "help"];

fn main() -> anyhow::Result<()> {
    actix_rt::System::new().block_on(run())
}

/// A small seeded generator (xorshift64*): the same mix on every run.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 33) as usize % n
    }
}

#[derive(Clone, Copy)]
enum Action {
    Start,
    Press(&'static str),
    Status,
}

async fn run() -> anyhow::Result<()> {
    let total = env_or("BENCH_UPDATES", 1_500) as usize;
    let users = env_or("BENCH_USERS", 150) as usize;
    anyhow::ensure!(
        users > 0 && total >= users,
        "BENCH_UPDATES must be at least BENCH_USERS"
    );
    let user_id = |i: usize| FIRST_USER + i as i64;

    let db = BenchDb::create("bot").await?;
    let mut conn = db.connect().await?;
    // Every second user is a subscriber with a link (the QR photo path of /status); the others
    // are registered by their first /start.
    diesel::sql_query(format!(
        "INSERT INTO users (telegram_id, first_name, referral_code) \
         SELECT {FIRST_USER} + g, 'User ' || ({FIRST_USER} + g), 'bench' || g \
         FROM generate_series(0, {}, 2) g",
        users - 1
    ))
    .execute(&mut conn)
    .await?;
    let subscribers = diesel::sql_query(
        "INSERT INTO subscriptions (user_id, panel_username, expires_at, traffic_limit_bytes, \
         traffic_used_bytes, subscription_url) \
         SELECT id, 'bench' || id, now() + interval '30 days', 107374182400, 1073741824, \
         'https://panel.example.com/sub/' || md5(telegram_id::text) FROM users",
    )
    .execute(&mut conn)
    .await?;

    // Telegram's flood limits, as the fake enforces them by default.
    let telegram = FakeTelegram::start();
    for i in 0..users {
        telegram.set_user(user_id(i), &format!("User {}", user_id(i)), None);
    }
    let tg_url = telegram.url();
    let (app, _data_dir) = start_app(
        &db,
        &[
            ("TELEGRAM_BOT_TOKEN", TOKEN),
            ("TELEGRAM_API_URL", tg_url.as_str()),
            // The most BOT_RATE_LIMIT allows: no update is throttled.
            ("BOT_RATE_LIMIT", "10000/1s"),
        ],
    )
    .await?;
    telegram
        .wait_for_calls("getUpdates", 1, Duration::from_secs(30))
        .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let idle_rss = status_mib("VmRSS:");
    let calls_before = telegram.calls().len();

    // The mix after each user's first /start.
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let starts = (total * 2 / 5).saturating_sub(users);
    let presses = total * 2 / 5;
    let mut rest: Vec<(usize, Action)> = Vec::with_capacity(total - users);
    for n in 0..total - users {
        let action = if n < starts {
            Action::Start
        } else if n < starts + presses {
            Action::Press(BUTTONS[rng.below(BUTTONS.len())])
        } else {
            Action::Status
        };
        rest.push((rng.below(users), action));
    }
    for i in (1..rest.len()).rev() {
        rest.swap(i, rng.below(i + 1));
    }

    let started = Instant::now();
    for i in 0..users {
        telegram.push_message(user_id(i), "/start");
    }
    wait_handled(&app.metrics, users, &telegram).await?;
    // The bot's answer to each /start: the message the user presses buttons under.
    let mut menu_message: HashMap<i64, i64> = HashMap::new();
    let mut last_menu = started;
    for m in telegram.sent_messages() {
        if m.method == "sendMessage" && !menu_message.contains_key(&m.chat_id) {
            menu_message.insert(m.chat_id, m.message_id);
            last_menu = last_menu.max(m.at);
        }
    }
    let burst_429 = telegram.count_429();
    let burst_waits = app.metrics.telegram_flood_waits.get();
    let burst = last_menu.duration_since(started);
    let lost = users - menu_message.len();
    let mut peak_rss = status_mib("VmRSS:");
    for &(i, action) in &rest {
        let id = user_id(i);
        match (action, menu_message.get(&id)) {
            (Action::Start, _) | (Action::Press(_), None) => telegram.push_message(id, "/start"),
            (Action::Status, _) => telegram.push_message(id, "/status"),
            (Action::Press(data), Some(&menu)) => telegram.push_callback(id, menu, data),
        };
    }
    let pushed = Instant::now();
    peak_rss = peak_rss.max(wait_handled(&app.metrics, total, &telegram).await?);
    let calls: Vec<_> = telegram.calls().into_iter().skip(calls_before).collect();
    let last_answer = calls
        .iter()
        .filter(|c| c.method != "getUpdates")
        .map(|c| c.at)
        .max()
        .unwrap_or(started);
    let wall = last_answer.duration_since(started);
    let end_rss = status_mib("VmRSS:");
    let hwm = status_mib("VmHWM:");

    let outcomes = counts(&app.metrics);
    let mut by_method: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    for c in &calls {
        let e = by_method.entry(c.method.as_str()).or_default();
        e.0 += 1;
        if c.status != 200 {
            e.1 += 1;
        }
    }

    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let n_starts = starts + users;
    let n_status = total - n_starts - presses;
    println!();
    println!(
        "bot benchmark: {total} updates from {users} users ({n_starts} /start, {presses} button presses, \
         {n_status} /status; {subscribers} users with a subscription link), long polling against the \
         fake Bot API with Telegram's flood limits (30 messages/s, 1/s per chat), {cores} cores"
    );
    println!(
        "burst: {users} users' /start pushed at once: {} answered, {lost} lost, the last menu {:.2} s \
         after the push; {burst_429} × 429 provoked, {burst_waits} counted in vpn_shop_telegram_flood_waits_total",
        menu_message.len(),
        burst.as_secs_f64()
    );
    println!(
        "(first {users} /start pushed at once, then the other {} at once {:.2} s later)",
        total - users,
        pushed.duration_since(started).as_secs_f64()
    );
    let (p50, p99) = quantiles(&app.metrics, None);
    println!(
        "| updates | wall time (first push → last answer) | updates/s | handling p50 | handling p99 | RSS idle → end (peak) |"
    );
    println!("|---|---|---|---|---|---|");
    println!(
        "| {total} | {:.2} s | {:.0} | {} | {} | {idle_rss} → {end_rss} MiB ({hwm} MiB) |",
        wall.as_secs_f64(),
        total as f64 / wall.as_secs_f64(),
        ms(p50),
        ms(p99),
    );
    for kind in ["command", "callback"] {
        let (p50, p99) = quantiles(&app.metrics, Some(kind));
        println!(
            "handling time of `{kind}` updates: p50 {}, p99 {}",
            ms(p50),
            ms(p99)
        );
    }
    println!(
        "(handling time: the bot's histogram vpn_shop_bot_update_duration_seconds, interpolated in its buckets)"
    );
    println!("outcomes (vpn_shop_bot_updates_total):");
    let mut errors = 0;
    for ((kind, outcome), n) in &outcomes {
        println!("  {kind:<10} {outcome:<10} {n}");
        if outcome == "error" {
            errors += n;
        }
    }
    println!("Bot API calls during the run (method: calls, of which not 200):");
    for (method, (n, failed)) in &by_method {
        println!("  {method:<22} {n:>6} {failed:>6}");
    }
    println!(
        "(RSS is the whole process: the app and the in-process fake Bot API with its recorder; peak is VmHWM)"
    );
    let _ = peak_rss;
    println!(
        "429s in all: {} provoked, {} counted in vpn_shop_telegram_flood_waits_total",
        telegram.count_429(),
        app.metrics.telegram_flood_waits.get()
    );

    app.shutdown().await;
    drop(conn);
    db.drop().await?;
    anyhow::ensure!(errors == 0, "{errors} updates failed");
    anyhow::ensure!(lost == 0, "{lost} of {users} users got no answer to /start");
    Ok(())
}

/// Waits until the bot counted `n` updates; returns the highest RSS seen meanwhile.
async fn wait_handled(metrics: &Metrics, n: usize, telegram: &FakeTelegram) -> anyhow::Result<u64> {
    let started = Instant::now();
    let mut peak = 0;
    loop {
        let done: u64 = counts(metrics).values().sum();
        peak = peak.max(status_mib("VmRSS:"));
        if done as usize >= n {
            return Ok(peak);
        }
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(1800),
            "the bot handled {done} of {n} updates ({} still queued in the fake)",
            telegram.pending_updates().len()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `vpn_shop_bot_updates_total` by kind and outcome.
fn counts(metrics: &Metrics) -> BTreeMap<(String, String), u64> {
    let mut out = BTreeMap::new();
    for family in metrics.bot_updates.collect() {
        for m in family.get_metric() {
            let label = |name: &str| {
                m.get_label()
                    .iter()
                    .find(|l| l.name() == name)
                    .map(|l| l.value().to_owned())
                    .unwrap_or_default()
            };
            out.insert(
                (label("kind"), label("outcome")),
                m.get_counter().get_value() as u64,
            );
        }
    }
    out
}

/// p50 and p99 of `vpn_shop_bot_update_duration_seconds` (one kind or all), in seconds.
fn quantiles(metrics: &Metrics, kind: Option<&str>) -> (f64, f64) {
    let mut buckets: Vec<(f64, u64)> = Vec::new();
    let mut count = 0;
    for family in metrics.bot_update_duration.collect() {
        for m in family.get_metric() {
            if let Some(kind) = kind
                && !m
                    .get_label()
                    .iter()
                    .any(|l| l.name() == "kind" && l.value() == kind)
            {
                continue;
            }
            let h = m.get_histogram();
            count += h.get_sample_count();
            for (i, b) in h.get_bucket().iter().enumerate() {
                if buckets.len() <= i {
                    buckets.push((b.upper_bound(), 0));
                }
                buckets[i].1 += b.cumulative_count();
            }
        }
    }
    let q = |q: f64| {
        let rank = q * count as f64;
        let (mut lower, mut below) = (0.0, 0);
        for &(upper, cumulative) in &buckets {
            if cumulative as f64 >= rank && cumulative > below {
                let share = (rank - below as f64) / (cumulative - below) as f64;
                return lower + (upper - lower) * share;
            }
            (lower, below) = (upper, cumulative);
        }
        f64::INFINITY
    };
    (q(0.5), q(0.99))
}

fn ms(seconds: f64) -> String {
    format!("{:.1} ms", seconds * 1000.0)
}
