//! Benchmark of a purchase end to end: the real app with the fake YooKassa, a fake panel (Marzban
//! unless `BENCH_PANEL` says `pasarguard`, `remnawave` (3.x) or `remnawave-2.8`) answering every
//! request after 60 ms, and the fake Telegram Bot API. Orders are created
//! through the PaymentProcessor's checkout (`CreateCheckout`) and paid at the fake YooKassa
//! beforehand (not timed); then their `payment.succeeded` webhooks are POSTed to
//! `/webhooks/yookassa`, `BENCH_CONCURRENCY` purchases in flight. Each purchase is timed from its
//! webhook POST to its answer and to the moment each of the two jobs the payment enqueued is
//! `done` in the `jobs` table: the `provision` job (the panel call answered and its outcome
//! committed, so the fake's 60 ms are inside) and the `notify` job of its `payment_succeeded`
//! message (sent and recorded). A purchase is complete when both are.
//!
//! The completions are not polled: a trigger on the bench's database `NOTIFY`s when a
//! `provision` or `notify` job reaches `done` or `dead`, and a thread of its own (one PostgreSQL
//! connection, a current-thread runtime) takes the time as each notification arrives, after the
//! commit. The benchmark thus adds one `pg_notify` per job and no CPU while it waits. After the
//! run it checks what each purchase left: the fake panel holds the user with the new expiry and
//! the fake Bot API got exactly one `payment_succeeded` message for the chat.
//!
//! The first `BENCH_WARMUP` purchases (20) run the same way before the measured ones and are not
//! counted (the pools open their connections, the app logs in to the panel, statements get
//! prepared). Prints p50, p99 (the maximum of N below 1,000 samples) and max, throughput, the
//! panel and Bot API calls made, and memory, then a `BENCH-RESULT` line for `bench/run`.
//!
//! The app runs with its real defaults (`JOB_POLL_INTERVAL` 5 s — new jobs wake the runner
//! through LISTEN/NOTIFY —, `TELEGRAM_MAX_RATE` 25/s, `PANEL_WRITE_CONCURRENCY` and
//! `JOB_CONCURRENCY` as shipped); only `YOOKASSA_CHECK_IP=false` (the webhooks come from
//! 127.0.0.1) and `PAYMENT_POLL_AFTER=24h` (the poller must not confirm the orders before their
//! webhook) are set.
//!
//! Run: `cargo bench --bench purchase` (uses `TEST_DATABASE_URL` if set, otherwise a throwaway
//! PostgreSQL cluster). `BENCH_PANEL` (marzban), `BENCH_PURCHASES` (measured, 1000), `BENCH_WARMUP` (20),
//! `BENCH_CONCURRENCY` (purchases in flight, 4) and `BENCH_PANEL_LATENCY_MS` (60) change it.

mod common;
#[path = "../tests/it/support/marzban.rs"]
mod marzban;
// The bench drives the fakes through `panels` and uses a part of each.
#[path = "../tests/it/support/telegram.rs"]
mod fake_telegram;
#[path = "../tests/it/support/yookassa.rs"]
mod fake_yookassa;
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

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{BenchDb, Latencies, env_or, ms, start_app_with_settings, status_mib};
use diesel::sql_types::BigInt;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use fake_telegram::{FakeTelegram, TOKEN};
use fake_yookassa::FakeYooKassa;
use futures_util::{StreamExt, stream};
use panels::{AnyPanel, Kind, PanelFake};
use serde_json::Value;
use tokio::sync::oneshot;
use vpn_shop::domain::panel::panel_username;

const TELEGRAM_ID_BASE: i64 = 800_000_000;
/// The start of the English `payment_succeeded` message (locales/en/notifications.ftl).
const PAID_TEXT: &str = "Your payment of";
/// How long one purchase may take before it counts as lost.
const GIVE_UP: Duration = Duration::from_secs(120);
/// The channel of the bench's trigger.
const CHANNEL: &str = "bench_job_finished";
/// What a finished job is reported as: its kind, or for a `notify` job the notification's type.
const PROVISION: &str = "provision";
const PAID_MESSAGE: &str = "payment_succeeded";

/// Tells [`CHANNEL`] `"<user id> <provision|notification type> <done|dead>"` when a `provision`
/// or `notify` job reaches a final state; delivered at commit.
const TRIGGER: [&str; 2] = [
    "CREATE FUNCTION bench_job_finished() RETURNS trigger LANGUAGE plpgsql AS $$ \
     BEGIN \
       PERFORM pg_notify('bench_job_finished', concat_ws(' ', NEW.payload->>'user_id', \
         CASE WHEN NEW.kind = 'notify' THEN NEW.payload->'notification'->>'type' ELSE NEW.kind END, \
         NEW.state)); \
       RETURN NULL; \
     END $$",
    "CREATE TRIGGER bench_job_finished AFTER UPDATE OF state ON jobs FOR EACH ROW \
     WHEN (NEW.state IN ('done', 'dead') AND OLD.state IS DISTINCT FROM NEW.state \
           AND NEW.kind IN ('provision', 'notify')) \
     EXECUTE FUNCTION bench_job_finished()",
];

/// A job of a purchase reached a final state: when the notification arrived, and which state.
struct Finished {
    at: Instant,
    done: bool,
}

/// Who waits for which job: (user id, [`PROVISION`] or [`PAID_MESSAGE`]).
type Waiters = Arc<Mutex<HashMap<(i64, &'static str), oneshot::Sender<Finished>>>>;

/// The thread that LISTENs on [`CHANNEL`] and hands each finished job to its waiter.
struct Listener {
    waiters: Waiters,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<anyhow::Result<()>>>,
}

impl Listener {
    /// Starts listening on the database at `url`; returns once `LISTEN` is in effect.
    fn start(url: String) -> anyhow::Result<Listener> {
        let waiters: Waiters = Arc::default();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<(), String>>();
        let (stop, mut stopped) = oneshot::channel::<()>();
        let handed = Arc::clone(&waiters);
        let thread = std::thread::Builder::new()
            .name("job-listener".into())
            .spawn(move || -> anyhow::Result<()> {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()?;
                runtime.block_on(async move {
                    let listening = async {
                        let mut conn = AsyncPgConnection::establish(&url).await?;
                        diesel::sql_query(format!("LISTEN {CHANNEL}"))
                            .execute(&mut conn)
                            .await?;
                        anyhow::Ok(conn)
                    };
                    let mut conn = match listening.await {
                        Ok(conn) => {
                            let _ = ready_tx.send(Ok(()));
                            conn
                        }
                        Err(e) => {
                            let _ = ready_tx.send(Err(format!("{e:#}")));
                            return Err(e);
                        }
                    };
                    let mut notifications = std::pin::pin!(conn.notifications_stream());
                    loop {
                        let next = tokio::select! {
                            _ = &mut stopped => return Ok(()),
                            next = notifications.next() => next,
                        };
                        let at = Instant::now();
                        let notification = match next {
                            Some(n) => n?,
                            None => anyhow::bail!("the listening connection closed"),
                        };
                        let mut words = notification.payload.split(' ');
                        let (Some(user), Some(what), Some(state)) =
                            (words.next(), words.next(), words.next())
                        else {
                            continue;
                        };
                        let what = match what {
                            PROVISION => PROVISION,
                            PAID_MESSAGE => PAID_MESSAGE,
                            _ => continue,
                        };
                        let Ok(user) = user.parse::<i64>() else {
                            continue;
                        };
                        let waiter = handed
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .remove(&(user, what));
                        if let Some(waiter) = waiter {
                            let _ = waiter.send(Finished {
                                at,
                                done: state == "done",
                            });
                        }
                    }
                })
            })?;
        match ready_rx.recv() {
            Ok(Ok(())) => Ok(Listener {
                waiters,
                stop: Some(stop),
                thread: Some(thread),
            }),
            Ok(Err(e)) => anyhow::bail!("the job listener could not start: {e}"),
            Err(_) => anyhow::bail!("the job listener thread ended before listening"),
        }
    }

    /// The completion of `what` of `user`, registered before the purchase starts.
    fn expect(&self, user: i64, what: &'static str) -> oneshot::Receiver<Finished> {
        let (tx, rx) = oneshot::channel();
        self.waiters
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert((user, what), tx);
        rx
    }

    fn stop(mut self) -> anyhow::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match self.thread.take().map(|t| t.join()) {
            Some(Ok(result)) => result,
            Some(Err(_)) => anyhow::bail!("the job listener panicked"),
            None => Ok(()),
        }
    }
}

/// One purchase's timings from its webhook POST; `None` where it never happened.
#[derive(Default)]
struct Timed {
    answer: Option<Duration>,
    provision: Option<Duration>,
    message: Option<Duration>,
    error: Option<String>,
}

impl Timed {
    fn complete(&self) -> bool {
        self.provision.is_some() && self.message.is_some()
    }
}

/// An order ready to be paid by its webhook.
struct Order {
    user_id: i64,
    telegram_id: i64,
    body: Vec<u8>,
}

#[derive(diesel::QueryableByName)]
struct UserRow {
    #[diesel(sql_type = BigInt)]
    id: i64,
    #[diesel(sql_type = BigInt)]
    telegram_id: i64,
}

/// POSTs the webhook of `order` and waits (without polling) for its two jobs.
async fn purchase(client: &reqwest::Client, url: &str, listener: &Listener, order: Order) -> Timed {
    let mut t = Timed::default();
    let provisioned = listener.expect(order.user_id, PROVISION);
    let messaged = listener.expect(order.user_id, PAID_MESSAGE);
    let posted = Instant::now();
    match client
        .post(url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(order.body)
        .send()
        .await
    {
        Ok(response) => {
            let status = response.status().as_u16();
            let answer: Value = response.json().await.unwrap_or(Value::Null);
            t.answer = Some(posted.elapsed());
            if status != 200 || answer["verdict"] != "accepted" {
                t.error = Some(format!(
                    "telegram id {}: webhook answered {status} {answer}",
                    order.telegram_id
                ));
                return t;
            }
        }
        Err(e) => {
            t.error = Some(format!("telegram id {}: webhook: {e}", order.telegram_id));
            return t;
        }
    }
    let (provisioned, messaged) = tokio::join!(
        tokio::time::timeout(GIVE_UP, provisioned),
        tokio::time::timeout(GIVE_UP, messaged)
    );
    let mut problems = Vec::new();
    for (name, outcome, slot) in [
        ("provision", provisioned, &mut t.provision),
        ("payment_succeeded notify", messaged, &mut t.message),
    ] {
        match outcome {
            Ok(Ok(Finished { at, done: true })) => {
                *slot = Some(at.saturating_duration_since(posted))
            }
            Ok(Ok(Finished { done: false, .. })) => problems.push(format!("{name} job dead")),
            Ok(Err(_)) => problems.push(format!("{name}: the job listener stopped")),
            Err(_) => problems.push(format!("{name} job not done after {} s", GIVE_UP.as_secs())),
        }
    }
    if !problems.is_empty() {
        t.error = Some(format!(
            "telegram id {}: {}",
            order.telegram_id,
            problems.join(", ")
        ));
    }
    t
}

fn main() -> anyhow::Result<()> {
    let ok = actix_rt::System::new().block_on(run())?;
    if !ok {
        std::process::exit(1);
    }
    Ok(())
}

async fn run() -> anyhow::Result<bool> {
    let purchases = env_or("BENCH_PURCHASES", 1000).max(1) as usize;
    let warmup = env_or("BENCH_WARMUP", 20) as usize;
    let concurrency = env_or("BENCH_CONCURRENCY", 4).max(1) as usize;
    let panel_latency = Duration::from_millis(env_or("BENCH_PANEL_LATENCY_MS", 60));
    let panel_name = std::env::var("BENCH_PANEL").unwrap_or_else(|_| "marzban".into());
    let kind = Kind::from_name(&panel_name).ok_or_else(|| {
        anyhow::anyhow!(
            "BENCH_PANEL={panel_name}: use marzban, pasarguard, remnawave or remnawave-2.8"
        )
    })?;

    let db = BenchDb::create("buy").await?;
    let mut conn = db.connect().await?;
    for sql in TRIGGER {
        diesel::sql_query(sql).execute(&mut conn).await?;
    }
    let (plan, users) =
        common::plan_and_users(&mut conn, TELEGRAM_ID_BASE, warmup + purchases).await?;
    let user_of: HashMap<i64, i64> = diesel::sql_query("SELECT id, telegram_id FROM users")
        .load::<UserRow>(&mut conn)
        .await?
        .into_iter()
        .map(|u| (u.telegram_id, u.id))
        .collect();

    let yookassa = FakeYooKassa::start();
    let panel = AnyPanel::start(kind);
    panel.set_latency(panel_latency);
    let telegram = FakeTelegram::start();
    let (yookassa_url, tg_url) = (yookassa.url(), telegram.url());
    let panel_env = panel.env(false);
    let mut env: Vec<(&str, &str)> = panel_env
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    env.extend_from_slice(&[
        // The shipped default, not the tests' short one.
        ("PANEL_TIMEOUT", "10s"),
        ("YOOKASSA_SHOP_ID", fake_yookassa::SHOP_ID),
        ("YOOKASSA_SECRET_KEY", fake_yookassa::SECRET_KEY),
        ("YOOKASSA_API_URL", yookassa_url.as_str()),
        // The webhooks come from 127.0.0.1; each is still confirmed with YooKassa's API.
        ("YOOKASSA_CHECK_IP", "false"),
        // The poller must not confirm the orders before their webhook.
        ("PAYMENT_POLL_AFTER", "24h"),
        ("TELEGRAM_BOT_TOKEN", TOKEN),
        ("TELEGRAM_API_URL", tg_url.as_str()),
    ]);
    let (app, _data_dir, settings) = start_app_with_settings(&db, &env).await?;
    let prefix = settings.panel_username_prefix().to_owned();
    let base = format!("http://{}", app.http_addr());
    tokio::time::sleep(Duration::from_secs(2)).await;
    let idle_rss = status_mib("VmRSS:");

    // The orders, through the real checkout, then paid at the fake YooKassa (not timed).
    let mut orders = Vec::with_capacity(warmup + purchases);
    for (telegram_id, external) in common::yookassa_orders(&mut conn, &app, &users, plan, 8).await?
    {
        yookassa.succeed(&external);
        let body = serde_json::to_vec(&yookassa.notification(&external, "payment.succeeded"))?;
        let user_id = *user_of
            .get(&telegram_id)
            .ok_or_else(|| anyhow::anyhow!("no user with telegram id {telegram_id}"))?;
        orders.push(Order {
            user_id,
            telegram_id,
            body,
        });
    }
    let expected: Vec<(i64, String)> = orders
        .iter()
        .map(|o| {
            (
                o.telegram_id,
                panel_username(
                    &prefix,
                    vpn_shop::domain::UserId(o.user_id),
                    Some(o.telegram_id),
                ),
            )
        })
        .collect();
    let measured_orders = orders.split_off(warmup.min(orders.len()));
    let warmup_orders = orders;

    let listener = Listener::start(db.url.clone())?;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()?;
    let url = format!("{base}/webhooks/yookassa");
    let run_all = |orders: Vec<Order>| {
        let (client, url, listener) = (&client, &url, &listener);
        stream::iter(orders)
            .map(move |order| purchase(client, url, listener, order))
            .buffer_unordered(concurrency)
            .collect::<Vec<Timed>>()
    };
    let first_post = Instant::now();
    let warm = run_all(warmup_orders).await;
    panel.clear_requests();
    let messages_before = telegram.sent_count();
    let started = Instant::now();
    let timed = run_all(measured_orders).await;
    let wall = started.elapsed();
    let peak_rss = status_mib("VmHWM:");
    let messages_during = telegram.sent_count() - messages_before;
    listener.stop()?;

    let latencies =
        |f: fn(&Timed) -> Option<Duration>| Latencies::new(timed.iter().filter_map(f).collect());
    let (answers, provisions, messages) = (
        latencies(|t| t.answer),
        latencies(|t| t.provision),
        latencies(|t| t.message),
    );
    let run_errors: Vec<&String> = warm
        .iter()
        .chain(&timed)
        .filter_map(|t| t.error.as_ref())
        .collect();
    let complete = timed.iter().filter(|t| t.complete()).count();
    let throughput = complete as f64 / wall.as_secs_f64();

    // What every purchase (warm-up included) left behind.
    let wanted_expire = chrono::Utc::now().timestamp() + i64::from(common::PLAN_DAYS) * 86_400;
    let mut paid_messages: HashMap<i64, usize> = HashMap::new();
    for m in telegram.sent_messages() {
        if m.text.contains(PAID_TEXT) {
            *paid_messages.entry(m.chat_id).or_default() += 1;
        }
    }
    let mut left_wrong = Vec::new();
    for (telegram_id, username) in &expected {
        // The expiry was set by a payment of this run: one period from a moment since the first
        // webhook (a few seconds of slack for clocks and rounding).
        let expire = panel.stored(username).and_then(|u| u.expire);
        let slack = first_post.elapsed().as_secs() as i64 + 5;
        if !expire.is_some_and(|e| (wanted_expire - slack..=wanted_expire + 5).contains(&e)) {
            left_wrong.push(format!("{username}: panel expire {expire:?}"));
        }
        let sent = paid_messages.get(telegram_id).copied().unwrap_or(0);
        if sent != 1 {
            left_wrong.push(format!(
                "telegram id {telegram_id}: {sent} payment_succeeded messages"
            ));
        }
    }
    let problems = run_errors.len() + left_wrong.len();

    println!();
    println!(
        "purchase benchmark on {panel_name}: {purchases} YooKassa purchases measured after {warmup} not counted, \
         {concurrency} in flight, fake panel latency {} ms, JOB_POLL_INTERVAL {:?}, \
         JOB_CONCURRENCY {}, TELEGRAM_MAX_RATE {}/s, {} cores",
        panel_latency.as_millis(),
        settings.jobs.poll_interval,
        settings.jobs.concurrency,
        settings.telegram.as_ref().map_or(0, |t| t.max_rate),
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    );
    println!("| from the webhook POST to | done | p50 | p99 (max of N under 1,000) | max |");
    println!("|---|---|---|---|---|");
    for (name, v) in [
        ("its answer", &answers),
        (
            "`provision` job done (panel answered, outcome committed)",
            &provisions,
        ),
        (
            "`notify` job of `payment_succeeded` done (message sent)",
            &messages,
        ),
    ] {
        println!(
            "| {name} | {} | {} | {} | {} |",
            v.len(),
            ms(v.p50_ms()),
            v.tail(),
            ms(v.max_ms())
        );
    }
    println!(
        "complete purchases: {complete} of {purchases} in {:.2} s ({throughput:.1} purchases/s)",
        wall.as_secs_f64()
    );
    let mut by_route: Vec<(String, usize)> = Vec::new();
    for (method, route) in panel.routes() {
        let key = format!("{method} {route}");
        match by_route.iter_mut().find(|(k, _)| *k == key) {
            Some((_, n)) => *n += 1,
            None => by_route.push((key, 1)),
        }
    }
    by_route.sort();
    println!(
        "panel requests during the measured run: {}",
        by_route
            .iter()
            .map(|(k, n)| format!("{k} × {n}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!("Bot API messages sent during the measured run: {messages_during}");
    println!(
        "after the run: {} of {} users (warm-up included) with the new expiry on the panel and one \
         payment_succeeded message",
        expected.len() - left_wrong.len().min(expected.len()),
        expected.len()
    );
    println!(
        "RSS idle {idle_rss} MiB, peak {peak_rss} MiB (the whole process: the app and the three \
         in-process fakes)"
    );
    if let Some(first) = run_errors.iter().copied().chain(&left_wrong).next() {
        println!("FAILED: {problems} problems, e.g. {first}");
    }
    println!(
        "BENCH-RESULT panel={panel_name} purchases={purchases} warmup={warmup} complete={complete} \
         concurrency={concurrency} answer_p50_ms={:.1} answer_tail={} provision_p50_ms={:.1} \
         provision_tail={} message_p50_ms={:.1} message_tail={} purchases_per_s={throughput:.1} \
         rss_idle_mib={idle_rss} rss_peak_mib={peak_rss}",
        answers.p50_ms(),
        answers.tail().replace(' ', "_"),
        provisions.p50_ms(),
        provisions.tail().replace(' ', "_"),
        messages.p50_ms(),
        messages.tail().replace(' ', "_"),
    );

    drop(conn);
    app.shutdown().await;
    let ok = problems == 0;
    if ok {
        db.drop().await?;
    } else {
        println!("database {} kept for inspection", db.name);
    }
    Ok(ok)
}
