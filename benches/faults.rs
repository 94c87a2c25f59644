//! Fault-injection scenarios against the real app and the fakes: each pays `BENCH_PURCHASES`
//! orders through the YooKassa webhook while something breaks, waits for the shop to recover and
//! then checks that nothing was lost or doubled — every order succeeded exactly once, each user's
//! subscription is one period from the payment, the panel user's `expire` equals it, and each user
//! got exactly one "payment received" Telegram message. One `PASS`/`FAIL` line per scenario; the
//! exit status is 1 if any failed.
//!
//! - `panel_down`: the Marzban panel answers 503 to everything for `BENCH_OUTAGE_SECS` (20) while
//!   the webhooks arrive, then recovers.
//! - `crash`: the app runs as a child process (`vpn-shop serve`, the binary of this build) and is
//!   SIGKILLed and started again 3–5 times: at random points of the webhooks (when a random share
//!   of them has been answered) and once or twice while jobs are running; webhooks that fail
//!   meanwhile are re-posted until answered 200, as YooKassa does.
//! - `telegram_429`: the fake Bot API enforces a global limit (30/s) and answers bursts of 429s
//!   (`retry_after` 1 s) every 2 s for `BENCH_STORM_SECS` (30) while the notifications go out.
//! - `smtp_down`: every user has an email address and the mail server refuses all connections for
//!   `BENCH_OUTAGE_SECS` while the webhooks arrive: the Telegram messages must all go out during
//!   the outage, and each user must get exactly one email after it.
//! - `pg_restart`: the app's PostgreSQL (a cluster of the bench's own) is shut down for
//!   `BENCH_PG_DOWN_SECS` (10) in the middle of the webhooks and started again; the same app process
//!   must recover by itself, `/ready` must answer 503 naming the database meanwhile (and `/health`
//!   200), and 200 again afterwards.
//!
//! Run: `cargo bench --bench faults [-- <scenario>…]` (uses `TEST_DATABASE_URL` if set, otherwise a
//! throwaway PostgreSQL cluster; `pg_restart` always runs its own). `BENCH_PURCHASES` (1000;
//! `telegram_429` and `smtp_down` use half), `BENCH_OUTAGE_SECS` (20), `BENCH_PG_DOWN_SECS` (10), `BENCH_STORM_SECS` (30),
//! `BENCH_SEED` change it.

mod common;
#[path = "../tests/it/support/marzban.rs"]
mod fake_marzban;
#[path = "../tests/it/support/smtp.rs"]
mod fake_smtp;
#[path = "../tests/it/support/telegram.rs"]
mod fake_telegram;
#[path = "../tests/it/support/yookassa.rs"]
mod fake_yookassa;
#[path = "../tests/it/support/server.rs"]
mod server;

use std::collections::HashMap;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::{BenchDb, Rng, env_or, start_app};
use diesel::sql_types::{BigInt, Bool, Nullable, Text};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use fake_marzban::FakePanel;
use fake_smtp::FakeSmtp;
use fake_telegram::FakeTelegram;
use fake_yookassa::FakeYooKassa;
use futures_util::{StreamExt, stream};

const FIRST_TELEGRAM_ID: i64 = 800_000_000;
/// In the English `payment_succeeded` message.
const SUCCESS_TEXT: &str = "Your payment of";
const JWT_SECRET: &str = "bench-secret-bench-secret-bench-secret-0123";

fn main() {
    let filters: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let scenarios: [&str; 5] = [
        "panel_down",
        "crash",
        "telegram_429",
        "smtp_down",
        "pg_restart",
    ];
    let chosen: Vec<&str> = scenarios
        .iter()
        .copied()
        .filter(|s| filters.is_empty() || filters.iter().any(|f| s.contains(f.as_str())))
        .collect();
    if chosen.is_empty() {
        eprintln!("no scenario matches {filters:?}; scenarios: {scenarios:?}");
        std::process::exit(2);
    }
    let mut failed = 0;
    for name in chosen {
        let result = actix_rt::System::new().block_on(async move {
            match name {
                "panel_down" => panel_down().await,
                "crash" => crash().await,
                "telegram_429" => telegram_429().await,
                "smtp_down" => smtp_down().await,
                _ => pg_restart().await,
            }
        });
        match result {
            Ok(Outcome { ok: true, line }) => println!("PASS {name}: {line}"),
            Ok(Outcome { ok: false, line }) => {
                failed += 1;
                println!("FAIL {name}: {line}");
            }
            Err(e) => {
                failed += 1;
                println!("FAIL {name}: the scenario could not run: {e:#}");
            }
        }
    }
    if failed > 0 {
        std::process::exit(1);
    }
}

struct Outcome {
    ok: bool,
    line: String,
}

// -- The shop and its fakes ------------------------------------------------------------------------

struct Fakes {
    panel: FakePanel,
    yookassa: FakeYooKassa,
    telegram: FakeTelegram,
    /// Mail goes only to users with an email address (those of `smtp_down`).
    smtp: FakeSmtp,
}

impl Fakes {
    fn start() -> Fakes {
        Fakes {
            panel: FakePanel::start(),
            yookassa: FakeYooKassa::start(),
            telegram: FakeTelegram::start(),
            smtp: FakeSmtp::start(),
        }
    }

    /// The app's settings for these fakes (on top of the database, data dir and bind address).
    fn env(&self) -> Vec<(String, String)> {
        [
            ("MARZBAN_URL", self.panel.url()),
            ("MARZBAN_USERNAME", fake_marzban::ADMIN_USERNAME.to_owned()),
            ("MARZBAN_PASSWORD", fake_marzban::ADMIN_PASSWORD.to_owned()),
            ("PANEL_TIMEOUT", "2s".to_owned()),
            ("YOOKASSA_SHOP_ID", fake_yookassa::SHOP_ID.to_owned()),
            ("YOOKASSA_SECRET_KEY", fake_yookassa::SECRET_KEY.to_owned()),
            ("YOOKASSA_API_URL", self.yookassa.url()),
            // The webhooks come from 127.0.0.1; each is still confirmed with YooKassa's API.
            ("YOOKASSA_CHECK_IP", "false".to_owned()),
            ("TELEGRAM_BOT_TOKEN", fake_telegram::TOKEN.to_owned()),
            ("TELEGRAM_API_URL", self.telegram.url()),
            ("TELEGRAM_MAX_RATE", "100".to_owned()),
            ("SMTP_URL", self.smtp.url()),
            ("SMTP_FROM", "VPN Shop <noreply@shop.example>".to_owned()),
            ("SMTP_TIMEOUT", "2s".to_owned()),
            ("JOB_POLL_INTERVAL", "200ms".to_owned()),
            ("JOB_BACKOFF_BASE", "200ms".to_owned()),
            ("JOB_BACKOFF_MAX", "2s".to_owned()),
            // With waits of at most 2 s, the default 20 attempts last as little as ~20 s: a job
            // must outlive the longest outage (BENCH_OUTAGE_SECS) instead of going dead in it.
            ("JOB_MAX_ATTEMPTS", "100".to_owned()),
            // A job whose claim was committed but whose answer a PostgreSQL restart cut off stays
            // `running` until its lease ends (10 min by default), then another attempt takes it
            // over: a lease of 30 s lets `pg_restart` see that within its 2 minutes.
            ("JOB_LEASE", "30s".to_owned()),
            // Only the webhooks confirm the orders.
            ("PAYMENT_POLL_AFTER", "24h".to_owned()),
            ("API_RATE_LIMIT", "off".to_owned()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
    }
}

fn pairs(env: &[(String, String)]) -> Vec<(&str, &str)> {
    env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
}

/// An order waiting for its webhook.
struct Order {
    telegram_id: i64,
    /// The `payment.succeeded` notification, once paid at the fake.
    body: Vec<u8>,
}

#[derive(diesel::QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

async fn count(conn: &mut AsyncPgConnection, sql: &str) -> anyhow::Result<i64> {
    Ok(diesel::sql_query(sql).get_result::<Count>(conn).await?.n)
}

/// `n` users with a pending YooKassa order each, created through the app's checkout, then paid at
/// the fake; returns the orders with their webhook bodies.
async fn orders(
    conn: &mut AsyncPgConnection,
    app: &vpn_shop::app::RunningApp,
    yookassa: &FakeYooKassa,
    n: usize,
) -> anyhow::Result<Vec<Order>> {
    let (plan, users) = common::plan_and_users(conn, FIRST_TELEGRAM_ID, n).await?;
    common::yookassa_orders(conn, app, &users, plan, 16)
        .await?
        .into_iter()
        .map(|(telegram_id, external)| {
            yookassa.succeed(&external);
            let body = yookassa.notification(&external, "payment.succeeded");
            Ok(Order {
                telegram_id,
                body: serde_json::to_vec(&body)?,
            })
        })
        .collect()
}

/// The posts of [`deliver_all`] not answered 200, by answer.
#[derive(Default)]
struct Refusals(std::collections::BTreeMap<String, usize>);

impl Refusals {
    fn total(&self) -> usize {
        self.0.values().sum()
    }

    /// Refusals with a 5xx other than 503 (a database or panel outage must say "try later").
    fn server_errors(&self) -> usize {
        self.0
            .iter()
            .filter(|(answer, _)| answer.starts_with('5') && answer.as_str() != "503")
            .map(|(_, n)| n)
            .sum()
    }
}

impl std::fmt::Display for Refusals {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.total())?;
        if !self.0.is_empty() {
            let parts: Vec<String> = self.0.iter().map(|(a, n)| format!("{a} × {n}")).collect();
            write!(f, ": {}", parts.join(", "))?;
        }
        Ok(())
    }
}

/// Posts every order's webhook, `concurrency` in flight, re-posting one until it is answered 200
/// (as YooKassa retries); returns the posts that were not answered 200.
async fn deliver_all(url: &str, orders: &[Order], concurrency: usize) -> anyhow::Result<Refusals> {
    deliver_counting(url, orders, concurrency, &AtomicUsize::new(0)).await
}

/// [`deliver_all`], counting the webhooks answered 200 so far in `answered`.
async fn deliver_counting(
    url: &str,
    orders: &[Order],
    concurrency: usize,
    answered: &AtomicUsize,
) -> anyhow::Result<Refusals> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()?;
    let refused = std::sync::Mutex::new(Refusals::default());
    let deadline = Instant::now() + Duration::from_secs(300);
    let results: Vec<anyhow::Result<()>> = stream::iter(orders)
        .map(|order| {
            let (client, refused) = (&client, &refused);
            async move {
                loop {
                    let answer = client
                        .post(url)
                        .header(reqwest::header::CONTENT_TYPE, "application/json")
                        .body(order.body.clone())
                        .send()
                        .await;
                    let what = match &answer {
                        Ok(r) if r.status().as_u16() == 200 => {
                            answered.fetch_add(1, Ordering::Relaxed);
                            return Ok(());
                        }
                        Ok(r) => r.status().as_u16().to_string(),
                        Err(_) => "no answer".to_owned(),
                    };
                    *refused
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .0
                        .entry(what)
                        .or_default() += 1;
                    anyhow::ensure!(
                        Instant::now() < deadline,
                        "the webhook of {} was never answered 200",
                        order.telegram_id
                    );
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
            }
        })
        .buffer_unordered(concurrency)
        .collect()
        .await;
    results.into_iter().collect::<anyhow::Result<()>>()?;
    Ok(refused.into_inner().unwrap_or_else(|p| p.into_inner()))
}

// -- The checks ------------------------------------------------------------------------------------

#[derive(diesel::QueryableByName)]
struct UserState {
    #[diesel(sql_type = BigInt)]
    telegram_id: i64,
    #[diesel(sql_type = Nullable<Text>)]
    panel_username: Option<String>,
    #[diesel(sql_type = Nullable<BigInt>)]
    expire: Option<i64>,
    #[diesel(sql_type = BigInt)]
    succeeded: i64,
    #[diesel(sql_type = Bool)]
    one_period: bool,
    /// Attempts of the Telegram delivery of `payment_succeeded` (≥ 2: claimed again).
    #[diesel(sql_type = Nullable<diesel::sql_types::Integer>)]
    telegram_attempts: Option<i32>,
}

/// What is wrong now; all zero once the shop has converged.
#[derive(Default, Debug, Clone)]
struct Tally {
    users: usize,
    /// Users whose order is not `succeeded` / succeeded more than once.
    unpaid: usize,
    paid_twice: usize,
    /// Subscription not exactly one period from the payment.
    wrong_period: usize,
    /// Panel user missing / its `expire` differs from `expires_at`.
    panel_missing: usize,
    panel_wrong: usize,
    /// Users without / with more than one "payment received" message.
    no_message: usize,
    extra_messages: usize,
    /// Users with two messages whose first send was cut off by a SIGKILL between leaving and
    /// being recorded: the delivery was claimed again once stale (at least once, never zero).
    /// Allowed only where processes are killed.
    resent_after_cut: usize,
    resends_allowed: bool,
    /// Jobs of the purchases (provisioning, notifications) not finished yet. The scheduler's
    /// periodic tasks and alert deliveries come and go on their own while a slow run waits (a
    /// CI run under load once found two pending 3 s after converging): they are only reported,
    /// in `other_pending`.
    pending_jobs: i64,
    other_pending: i64,
    dead_jobs: i64,
    /// The first few users with something wrong, for the report.
    samples: Vec<String>,
}

impl Tally {
    fn converged(&self) -> bool {
        self.unpaid == 0
            && self.paid_twice == 0
            && self.wrong_period == 0
            && self.panel_missing == 0
            && self.panel_wrong == 0
            && self.no_message == 0
            && self.extra_messages == 0
            && (self.resends_allowed || self.resent_after_cut == 0)
            && self.pending_jobs == 0
    }

    fn ok(&self) -> bool {
        self.converged() && self.dead_jobs == 0
    }

    /// Everything but the jobs: paid, provisioned, and the Telegram message sent.
    fn delivered(&self) -> bool {
        Tally {
            pending_jobs: 0,
            samples: Vec::new(),
            ..*self
        }
        .converged()
    }

    fn describe(&self) -> String {
        format!(
            "unpaid {}, paid twice {}, wrong period {}, panel user missing {}, panel expire wrong {}, \
             no message {}, >1 message {} (+ {} resent after a send cut off by a kill), \
             jobs pending {} (other jobs pending {}), dead {}",
            self.unpaid,
            self.paid_twice,
            self.wrong_period,
            self.panel_missing,
            self.panel_wrong,
            self.no_message,
            self.extra_messages,
            self.resent_after_cut,
            self.pending_jobs,
            self.other_pending,
            self.dead_jobs
        ) + &if self.samples.is_empty() {
            String::new()
        } else {
            format!(" (e.g. {})", self.samples.join(", "))
        }
    }
}

/// The jobs not finished yet.
const UNFINISHED: &str = "SELECT count(*) AS n FROM jobs WHERE state IN ('pending', 'running')";

/// The kinds of job a purchase creates, as an SQL list.
fn purchase_kinds() -> String {
    use vpn_shop::{actors::marzban::PROVISION, domain::notifications::NOTIFY_JOB};
    format!("'{PROVISION}', '{NOTIFY_JOB}'")
}

async fn tally(
    conn: &mut AsyncPgConnection,
    panel: &FakePanel,
    telegram: &FakeTelegram,
) -> anyhow::Result<Tally> {
    let states: Vec<UserState> = diesel::sql_query(format!(
        "SELECT u.telegram_id, s.panel_username, \
                floor(extract(epoch FROM s.expires_at))::int8 AS expire, \
                (SELECT count(*) FROM payments p \
                  WHERE p.user_id = u.id AND p.status = 'succeeded') AS succeeded, \
                coalesce((SELECT bool_and(abs(extract(epoch FROM \
                            s.expires_at - (p.paid_at + make_interval(days => p.days)))) < 2) \
                          FROM payments p WHERE p.user_id = u.id AND p.status = 'succeeded'), \
                         false) AS one_period, \
                (SELECT max(n.attempts) FROM notifications n \
                  WHERE n.user_id = u.id AND n.kind = 'payment_succeeded' \
                    AND n.channel = 'telegram') AS telegram_attempts \
         FROM users u LEFT JOIN subscriptions s ON s.user_id = u.id \
         WHERE u.telegram_id > {FIRST_TELEGRAM_ID} ORDER BY u.id"
    ))
    .load(conn)
    .await?;
    let on_panel: HashMap<String, Option<i64>> = panel
        .users()
        .into_iter()
        .map(|u| (u.username.to_ascii_lowercase(), u.expire))
        .collect();
    let mut messages: HashMap<i64, usize> = HashMap::new();
    for m in telegram.sent_messages() {
        if m.text.contains(SUCCESS_TEXT) {
            *messages.entry(m.chat_id).or_default() += 1;
        }
    }
    let mut t = Tally {
        users: states.len(),
        pending_jobs: count(
            conn,
            &format!("{UNFINISHED} AND kind IN ({})", purchase_kinds()),
        )
        .await?,
        other_pending: count(
            conn,
            &format!("{UNFINISHED} AND kind NOT IN ({})", purchase_kinds()),
        )
        .await?,
        dead_jobs: count(conn, "SELECT count(*) AS n FROM jobs WHERE state = 'dead'").await?,
        ..Tally::default()
    };
    for s in &states {
        let before = (
            t.unpaid,
            t.paid_twice,
            t.wrong_period,
            t.panel_missing,
            t.panel_wrong,
        );
        let messages_before = (t.no_message, t.extra_messages, t.resent_after_cut);
        match s.succeeded {
            0 => t.unpaid += 1,
            1 => {}
            _ => t.paid_twice += 1,
        }
        if s.succeeded > 0 && !s.one_period {
            t.wrong_period += 1;
        }
        match s
            .panel_username
            .as_ref()
            .and_then(|name| on_panel.get(&name.to_ascii_lowercase()))
        {
            None => t.panel_missing += 1,
            Some(expire) if *expire != s.expire => t.panel_wrong += 1,
            Some(_) => {}
        }
        match messages.get(&s.telegram_id).copied().unwrap_or(0) {
            0 => t.no_message += 1,
            1 => {}
            2 if s.telegram_attempts.unwrap_or(0) >= 2 => t.resent_after_cut += 1,
            _ => t.extra_messages += 1,
        }
        let wrong = before
            != (
                t.unpaid,
                t.paid_twice,
                t.wrong_period,
                t.panel_missing,
                t.panel_wrong,
            );
        if (wrong || messages_before != (t.no_message, t.extra_messages, t.resent_after_cut))
            && t.samples.len() < 5
        {
            t.samples.push(format!(
                "telegram id {}: {} succeeded, panel expire {:?} vs {:?}, {} messages",
                s.telegram_id,
                s.succeeded,
                s.panel_username
                    .as_ref()
                    .and_then(|name| on_panel.get(&name.to_ascii_lowercase())),
                s.expire,
                messages.get(&s.telegram_id).copied().unwrap_or(0)
            ));
        }
    }
    Ok(t)
}

/// Polls until the shop has converged (or 2 minutes pass), then waits 3 s more for late
/// duplicates; the time to converge and the final tally. `resends_allowed`: see
/// [`Tally::resent_after_cut`].
async fn converge(
    conn: &mut AsyncPgConnection,
    fakes: &Fakes,
    resends_allowed: bool,
) -> anyhow::Result<(Duration, Tally)> {
    let (limit, settle) = (Duration::from_secs(120), Duration::from_secs(3));
    let started = Instant::now();
    let tally_now = async |conn: &mut AsyncPgConnection| {
        let mut t = tally(conn, &fakes.panel, &fakes.telegram).await?;
        t.resends_allowed = resends_allowed;
        anyhow::Ok(t)
    };
    loop {
        let t = tally_now(conn).await?;
        if t.converged() || started.elapsed() > limit {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let took = started.elapsed();
    tokio::time::sleep(settle).await;
    Ok((took, tally_now(conn).await?))
}

// -- Scenarios -------------------------------------------------------------------------------------

/// The panel answers 503 to everything while the webhooks arrive, then comes back.
async fn panel_down() -> anyhow::Result<Outcome> {
    let n = env_or("BENCH_PURCHASES", 1000) as usize;
    let outage = Duration::from_secs(env_or("BENCH_OUTAGE_SECS", 20));
    let db = BenchDb::create("fault_panel").await?;
    let mut conn = db.connect().await?;
    let fakes = Fakes::start();
    let env = fakes.env();
    let (app, _data_dir) = start_app(&db, &pairs(&env)).await?;
    let orders = orders(&mut conn, &app, &fakes.yookassa, n).await?;

    fakes.panel.set_outage(true);
    let down_at = Instant::now();
    let url = format!("http://{}/webhooks/yookassa", app.http_addr());
    let refused = deliver_all(&url, &orders, 32).await?;
    let webhooks_took = down_at.elapsed();
    let during = tally(&mut conn, &fakes.panel, &fakes.telegram).await?;
    tokio::time::sleep(outage.saturating_sub(down_at.elapsed())).await;
    let outage_len = down_at.elapsed();
    let panel_503s = fakes
        .panel
        .requests()
        .iter()
        .filter(|r| r.status == 503)
        .count();
    let mid = tally(&mut conn, &fakes.panel, &fakes.telegram).await?;
    fakes.panel.set_outage(false);
    let (recovery, t) = converge(&mut conn, &fakes, false).await?;

    // A message that had to go without the link ("being prepared") is followed by it, once.
    let sent = fakes.telegram.sent_messages();
    let without_link: std::collections::HashSet<i64> = sent
        .iter()
        .filter(|m| m.text.contains(SUCCESS_TEXT) && m.text.contains("being prepared"))
        .map(|m| m.chat_id)
        .collect();
    let mut link_ready: HashMap<i64, usize> = HashMap::new();
    for m in sent
        .iter()
        .filter(|m| m.text.contains("subscription is ready"))
    {
        *link_ready.entry(m.chat_id).or_default() += 1;
    }
    let followed = without_link
        .iter()
        .filter(|chat| link_ready.get(chat) == Some(&1))
        .count();
    let links_ok = followed == without_link.len() && link_ready.len() == without_link.len();

    app.shutdown().await;
    drop(conn);
    db.drop().await?;
    Ok(Outcome {
        ok: t.ok() && t.users == n && refused.total() == 0 && links_ok,
        line: format!(
            "{n} purchases, webhooks answered in {:.1} s ({refused} not 200), panel down {:.1} s \
             ({panel_503s} requests answered 503; messages sent while down: {}, without the \
             link: {}, followed by one link message: {followed}; other link messages: {}), \
             full recovery {:.1} s after the panel came back; {}",
            webhooks_took.as_secs_f64(),
            outage_len.as_secs_f64(),
            n - mid.no_message.min(n),
            without_link.len(),
            link_ready.len()
                - link_ready
                    .keys()
                    .filter(|c| without_link.contains(c))
                    .count(),
            recovery.as_secs_f64(),
            t.describe()
        ) + &format!(" [when the webhooks were answered: {}]", during.describe()),
    })
}

/// The app as a child process, SIGKILLed and restarted at random moments.
async fn crash() -> anyhow::Result<Outcome> {
    let n = env_or("BENCH_PURCHASES", 1000) as usize;
    let mut rng = Rng(env_or("BENCH_SEED", 0x2545_F491_4F6C_DD1D).max(1));
    let db = BenchDb::create("fault_crash").await?;
    let mut conn = db.connect().await?;
    let fakes = Fakes::start();
    let env = fakes.env();
    // The orders through an in-process app, stopped before the child takes over.
    let orders = {
        let (app, _dir) = start_app(&db, &pairs(&env)).await?;
        let orders = orders(&mut conn, &app, &fakes.yookassa, n).await?;
        app.shutdown().await;
        orders
    };

    let data_dir = tempfile::tempdir()?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let mut child_env = env.clone();
    child_env.extend(
        [
            ("DATABASE_URL", db.url.clone()),
            ("DATA_DIR", data_dir.path().display().to_string()),
            ("HTTP_BIND", format!("127.0.0.1:{port}")),
            ("JWT_SECRET", JWT_SECRET.to_owned()),
            ("RUST_LOG", "warn".to_owned()),
            // A killed worker's job is taken over after the lease; 10 min by default.
            ("JOB_LEASE", "5s".to_owned()),
        ]
        .map(|(k, v)| (k.to_owned(), v)),
    );
    let exe = env!("CARGO_BIN_EXE_vpn-shop");
    let spawn = |k: usize| -> anyhow::Result<tokio::process::Child> {
        let log = std::fs::File::create(data_dir.path().join(format!("app-{k}.log")))?;
        let mut cmd = tokio::process::Command::new(exe);
        cmd.arg("serve")
            .env_clear()
            .envs(child_env.iter().map(|(k, v)| (k, v)))
            .current_dir(data_dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .kill_on_drop(true);
        if let Ok(path) = std::env::var("PATH") {
            cmd.env("PATH", path);
        }
        Ok(cmd.spawn()?)
    };

    // Kills at random points of the work, whatever the speed of the build: the first ones when a
    // random share of the webhooks has been answered, the last one or two while jobs are running
    // (claimed, between a panel call or a message and its record).
    let kills = 3 + (rng.next() % 3) as usize;
    let during_jobs = 1 + (rng.next() % 2) as usize;
    let mut shares: Vec<f64> = (0..kills - during_jobs)
        .map(|_| rng.between(0.1, 0.9))
        .collect();
    shares.sort_by(f64::total_cmp);
    let url = format!("http://127.0.0.1:{port}/webhooks/yookassa");
    let started = Instant::now();
    let mut child = spawn(0)?;
    let answered = AtomicUsize::new(0);
    let done = AtomicBool::new(false);
    let mut watcher = db.connect().await?;
    let killer = async {
        let mut log = Vec::new();
        for k in 0..kills {
            let phase = if let Some(share) = shares.get(k) {
                let target = (share * n as f64) as usize;
                while AtomicUsize::load(&answered, Ordering::Relaxed) < target
                    && !AtomicBool::load(&done, Ordering::Relaxed)
                {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                format!(
                    "webhooks, {} of {n} answered",
                    AtomicUsize::load(&answered, Ordering::Relaxed)
                )
            } else {
                while !AtomicBool::load(&done, Ordering::Relaxed) {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                let looking = Instant::now();
                let mut running = 0;
                while looking.elapsed() < Duration::from_secs(10) {
                    running = count(
                        &mut watcher,
                        "SELECT count(*) AS n FROM jobs WHERE state = 'running'",
                    )
                    .await?;
                    if running > 0 {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                format!("jobs, {running} running")
            };
            let pid = child
                .id()
                .ok_or_else(|| anyhow::anyhow!("the app exited by itself"))?;
            nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid as i32),
                nix::sys::signal::Signal::SIGKILL,
            )?;
            let status = child.wait().await?;
            log.push(format!(
                "{:.1}s ({phase}; {status})",
                started.elapsed().as_secs_f64()
            ));
            tokio::time::sleep(rng.secs(0.0, 1.0)).await;
            child = spawn(k + 1)?;
            // Let the new process get going before the next kill.
            tokio::time::sleep(Duration::from_millis(1500)).await;
        }
        anyhow::Ok(log)
    };
    let deliveries = async {
        let r = deliver_counting(&url, &orders, 16, &answered).await;
        done.store(true, Ordering::Relaxed);
        r
    };
    let (kill_log, refused) = futures_util::join!(killer, deliveries);
    let (kill_log, refused) = (kill_log?, refused?);
    let webhooks_took = started.elapsed();
    // A delivery cut off by a kill is claimed again after JOB_LEASE (5 s here).
    let (recovery, t) = converge(&mut conn, &fakes, true).await?;
    let total = started.elapsed();
    if let Some(pid) = child.id() {
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid as i32),
            nix::sys::signal::Signal::SIGKILL,
        )?;
    }
    let _ = child.wait().await;
    let ok = t.ok() && t.users == n;
    drop(conn);
    if ok {
        db.drop().await?;
    } else {
        // Kept for a look.
        let kept = data_dir.keep();
        eprintln!(
            "crash: the app's logs are in {}, its database {} is kept",
            kept.display(),
            db.name
        );
    }
    Ok(Outcome {
        ok,
        line: format!(
            "{n} purchases, SIGKILL of the `vpn-shop serve` process {} times at [{}], \
             webhooks all answered 200 after {:.1} s ({refused} posts refused or unanswered, \
             re-posted), converged {:.1} s later ({:.1} s in all); {}",
            kill_log.len(),
            kill_log.join(", "),
            webhooks_took.as_secs_f64(),
            recovery.as_secs_f64(),
            total.as_secs_f64(),
            t.describe()
        ),
    })
}

/// Bursts of 429s from the Bot API while the notifications go out.
async fn telegram_429() -> anyhow::Result<Outcome> {
    let n = (env_or("BENCH_PURCHASES", 1000) as usize / 2).max(1);
    let db = BenchDb::create("fault_tg").await?;
    let mut conn = db.connect().await?;
    let fakes = Fakes::start();
    let env = fakes.env();
    let (app, _data_dir) = start_app(&db, &pairs(&env)).await?;
    let orders = orders(&mut conn, &app, &fakes.yookassa, n).await?;

    // The app may send 100/s; the Bot API takes 30/s and answers bursts of 429s meanwhile.
    let storm_len = Duration::from_secs(env_or("BENCH_STORM_SECS", 30));
    fakes.telegram.set_global_limit(30);
    let storm = Arc::new(AtomicBool::new(true));
    let started = Instant::now();
    let url = format!("http://{}/webhooks/yookassa", app.http_addr());
    let stormer = {
        let storm = Arc::clone(&storm);
        let telegram = &fakes.telegram;
        async move {
            // 10 × 429 every 2 s for the first `storm_len`, then the limit alone.
            while AtomicBool::load(&storm, Ordering::Relaxed) && started.elapsed() < storm_len {
                telegram.flood_next(10, 1);
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
        }
    };
    let work = async {
        let refused = deliver_all(&url, &orders, 32).await;
        let converged = converge(&mut conn, &fakes, false).await;
        storm.store(false, Ordering::Relaxed);
        (refused, converged)
    };
    let ((refused, converged), ()) = futures_util::join!(work, stormer);
    let (refused, (took, t)) = (refused?, converged?);
    let total = started.elapsed();
    let floods = fakes.telegram.count_429();

    app.shutdown().await;
    drop(conn);
    db.drop().await?;
    Ok(Outcome {
        ok: t.ok() && t.users == n && refused.total() == 0,
        line: format!(
            "{n} purchases, Bot API limit 30/s plus 10 × 429 (retry_after 1 s) every 2 s for {} s: \
             {floods} answers 429, all delivered {:.1} s after the webhooks; {}",
            storm_len.as_secs(),
            took.as_secs_f64().min(total.as_secs_f64()),
            t.describe()
        ),
    })
}

/// The email address `smtp_down` gives a user.
fn email_of(telegram_id: i64) -> String {
    format!("user{telegram_id}@example.com")
}

/// The mail server refuses every connection while the webhooks arrive and the messages go out.
async fn smtp_down() -> anyhow::Result<Outcome> {
    let n = (env_or("BENCH_PURCHASES", 1000) as usize / 2).max(1);
    let outage = Duration::from_secs(env_or("BENCH_OUTAGE_SECS", 20));
    let db = BenchDb::create("fault_smtp").await?;
    let mut conn = db.connect().await?;
    let fakes = Fakes::start();
    let env = fakes.env();
    let (app, _data_dir) = start_app(&db, &pairs(&env)).await?;
    let orders = orders(&mut conn, &app, &fakes.yookassa, n).await?;
    diesel::sql_query(format!(
        "UPDATE users SET email = 'user' || telegram_id || '@example.com' \
         WHERE telegram_id > {FIRST_TELEGRAM_ID}"
    ))
    .execute(&mut conn)
    .await?;

    fakes.smtp.set_down(true);
    let down_at = Instant::now();
    let url = format!("http://{}/webhooks/yookassa", app.http_addr());
    let refused = deliver_all(&url, &orders, 32).await?;
    let webhooks_took = down_at.elapsed();
    // Telegram must not wait for the mail server.
    let telegram_done = loop {
        let t = tally(&mut conn, &fakes.panel, &fakes.telegram).await?;
        if t.delivered() || down_at.elapsed() >= outage {
            break t;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let telegram_took = down_at.elapsed();
    let mails_while_down = fakes.smtp.messages().len();
    tokio::time::sleep(outage.saturating_sub(down_at.elapsed())).await;
    let outage_len = down_at.elapsed();
    let refused_connections = fakes.smtp.connections();
    fakes.smtp.set_down(false);
    let (recovery, t) = converge(&mut conn, &fakes, false).await?;

    let mut mails: HashMap<String, usize> = HashMap::new();
    for mail in fakes.smtp.messages() {
        for to in mail.to {
            *mails.entry(to.to_ascii_lowercase()).or_default() += 1;
        }
    }
    let per_user: Vec<usize> = orders
        .iter()
        .map(|o| mails.get(&email_of(o.telegram_id)).copied().unwrap_or(0))
        .collect();
    let no_email = per_user.iter().filter(|&&k| k == 0).count();
    let extra_emails = per_user.iter().filter(|&&k| k > 1).count();

    app.shutdown().await;
    drop(conn);
    db.drop().await?;
    let telegram_in_time = telegram_done.delivered() && telegram_took < outage;
    Ok(Outcome {
        ok: t.ok()
            && t.users == n
            && refused.total() == 0
            && telegram_in_time
            && mails_while_down == 0
            && no_email == 0
            && extra_emails == 0,
        line: format!(
            "{n} purchases with an email address each, mail server down {:.1} s \
             ({refused_connections} connections refused), webhooks answered in {:.1} s \
             ({refused} not 200); every Telegram message sent {} ({:.1} s after the outage began); \
             after the mail server came back: all done in {:.1} s, users without an email {no_email}, \
             with more than one {extra_emails}; {}",
            outage_len.as_secs_f64(),
            webhooks_took.as_secs_f64(),
            if telegram_in_time {
                "while the mail server was down"
            } else {
                "NOT before the mail server came back"
            },
            telegram_took.as_secs_f64(),
            recovery.as_secs_f64(),
            t.describe()
        ),
    })
}

/// What `/ready` and `/health` answered while PostgreSQL was down.
#[derive(Default)]
struct Probes {
    ready_polls: usize,
    /// `/ready` answers 503 whose `checks.database` is not "ok".
    ready_database_down: usize,
    health_ok: usize,
}

/// The app's PostgreSQL is shut down in the middle of the webhooks and started again.
async fn pg_restart() -> anyhow::Result<Outcome> {
    use std::os::unix::fs::PermissionsExt;
    use vpn_shop::db::embedded::EmbeddedPostgres;

    let n = env_or("BENCH_PURCHASES", 1000) as usize;
    let down_for = Duration::from_secs(env_or("BENCH_PG_DOWN_SECS", 10));
    // A cluster of its own, whatever TEST_DATABASE_URL says: it is the one that is restarted.
    let dir = tempfile::Builder::new()
        .prefix("vpn-shop-bench-pg-")
        .tempdir_in("/tmp")?;
    // When the bench runs as root the server runs as `postgres`, which must traverse this.
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))?;
    let cluster = dir.path().join("postgres");
    let pg = EmbeddedPostgres::start(&cluster, "postgres").await?;
    let db = BenchDb::create_on(|database| pg.url_for_database(database), "fault_pg").await?;
    let fakes = Fakes::start();
    let env = fakes.env();
    let (app, _data_dir) = start_app(&db, &pairs(&env)).await?;
    let orders = {
        let mut conn = db.connect().await?;
        orders(&mut conn, &app, &fakes.yookassa, n).await?
    };

    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()?;
    let base = format!("http://{}", app.http_addr());
    let url = format!("{base}/webhooks/yookassa");
    let started = Instant::now();
    let answered = AtomicUsize::new(0);
    let restarter = async {
        // A third of the way into the webhooks.
        while AtomicUsize::load(&answered, Ordering::Relaxed) < n / 3 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let stopping_at = started.elapsed();
        let answered_at_stop = AtomicUsize::load(&answered, Ordering::Relaxed);
        pg.stop().await?;
        let down_at = Instant::now();
        let mut probes = Probes::default();
        while down_at.elapsed() < down_for {
            probes.ready_polls += 1;
            if let Ok(r) = http.get(format!("{base}/ready")).send().await
                && r.status().as_u16() == 503
                && let Ok(body) = r.json::<serde_json::Value>().await
                && body["checks"]["database"] != "ok"
            {
                probes.ready_database_down += 1;
            }
            if let Ok(r) = http.get(format!("{base}/health")).send().await
                && r.status().is_success()
            {
                probes.health_ok += 1;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        let was_down = down_at.elapsed();
        let pg = EmbeddedPostgres::start(&cluster, "postgres").await?;
        let up_at = Instant::now();
        // Ready again without anything done to the app.
        let ready_after = loop {
            if let Ok(r) = http.get(format!("{base}/ready")).send().await
                && r.status().is_success()
            {
                break Some(up_at.elapsed());
            }
            if up_at.elapsed() > Duration::from_secs(60) {
                break None;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        anyhow::Ok((
            pg,
            stopping_at,
            answered_at_stop,
            was_down,
            probes,
            ready_after,
        ))
    };
    let deliveries = deliver_counting(&url, &orders, 32, &answered);
    let (restarted, refused) = futures_util::join!(restarter, deliveries);
    let (pg, stopped_at, answered_at_stop, was_down, probes, ready_after) = restarted?;
    let refused = refused?;
    let webhooks_took = started.elapsed();
    let mut conn = db.connect().await?;
    let (recovery, t) = converge(&mut conn, &fakes, false).await?;

    app.shutdown().await;
    drop(conn);
    // The whole cluster goes (its admin connection to drop the database died with the restart).
    drop(db);
    pg.stop().await?;
    let probes_ok = probes.ready_polls > 0
        && probes.ready_database_down == probes.ready_polls
        && probes.health_ok == probes.ready_polls;
    Ok(Outcome {
        ok: t.ok()
            && t.users == n
            && probes_ok
            && ready_after.is_some()
            && answered_at_stop < n
            && refused.server_errors() == 0,
        line: format!(
            "{n} purchases, PostgreSQL shut down {:.1} s into the webhooks ({answered_at_stop} \
             answered by then) for {:.1} s: \
             /ready answered 503 naming the database {}/{} times and /health 200 {}/{} times \
             meanwhile, /ready 200 again {} after PostgreSQL was back, with the same process; \
             webhooks all answered 200 after {:.1} s ({refused} posts refused and re-posted; none may be a 5xx but 503), \
             converged {:.1} s later; {}",
            stopped_at.as_secs_f64(),
            was_down.as_secs_f64(),
            probes.ready_database_down,
            probes.ready_polls,
            probes.health_ok,
            probes.ready_polls,
            ready_after.map_or("never (60 s)".to_owned(), |d| format!(
                "{:.1} s",
                d.as_secs_f64()
            )),
            webhooks_took.as_secs_f64(),
            recovery.as_secs_f64(),
            t.describe()
        ),
    })
}
