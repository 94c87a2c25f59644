//! Benchmark of the admin console's dashboard (`GET /admin/`) on a shop-sized database: the
//! admin API benchmark's shop (100,000 users, 70 % with a subscription, 300,000 payments over a
//! year), plus the sync runs and the done and dead jobs the dashboard reads. A session is
//! opened through the real login form; then the page is asked one request at a time (the time
//! the server takes to answer it, loopback included) after an uncounted warm-up. The target of
//! the console: p99 under 20 ms.
//!
//! The page shows the overview of a snapshot at most 10 s old (recomputed in the background,
//! see `web::pages::admin::dashboard`); what a recomputation costs is measured apart, as the
//! API's `GET /api/v1/stats/overview` one request at a time (`BENCH_OVERVIEWS`, 100).
//!
//! Run: `cargo bench --bench console` (uses `TEST_DATABASE_URL` if set, otherwise a throwaway
//! PostgreSQL cluster). `BENCH_USERS` (100000), `BENCH_PAYMENTS` (300000) and
//! `BENCH_REQUESTS` (5000: a p99, and long enough to include the snapshot's background
//! recomputations) change it.

mod common;

use std::time::{Duration, Instant};

use common::{BenchDb, Latencies, env_or, ms, seed_shop, start_app};
use diesel_async::RunQueryDsl;
use reqwest::header;
use vpn_shop::domain::{AdminRole, password};

/// The console's p99 target.
const TARGET_P99_MS: f64 = 20.0;
const PASSWORD: &str = "bench password long enough";

fn main() -> anyhow::Result<()> {
    actix_rt::System::new().block_on(run())
}

/// What the dashboard reads besides the sales: sync runs and finished jobs (some dead), as a
/// shop that has run for a few months has them.
async fn seed_operations(conn: &mut diesel_async::AsyncPgConnection) -> anyhow::Result<()> {
    for sql in [
        "INSERT INTO sync_runs (kind, status, started_at, finished_at) \
         SELECT (ARRAY['subscriptions', 'status', 'traffic', 'stats', 'cleanup'])[1 + g % 5], \
             CASE WHEN g % 50 = 0 THEN 'failed' ELSE 'succeeded' END, \
             now() - g * interval '5 minutes', now() - g * interval '5 minutes' + interval '3 seconds' \
         FROM generate_series(1, 20000) g",
        "INSERT INTO jobs (kind, payload, state, attempts, max_attempts, run_at, created_at, finished_at) \
         SELECT 'notify', '{}'::jsonb, CASE WHEN g % 100 = 0 THEN 'dead' ELSE 'done' END, 5, 5, \
             now() - g * interval '1 minute', now() - g * interval '1 minute', now() - g * interval '1 minute' \
         FROM generate_series(1, 50000) g",
        "ANALYZE",
    ] {
        diesel::sql_query(sql).execute(conn).await?;
    }
    Ok(())
}

/// The `name=value` of a `Set-Cookie` of `name`.
fn cookie_of(resp: &reqwest::Response, name: &str) -> Option<String> {
    resp.headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
        .map(|v| v.split(';').next().unwrap_or(v).to_owned())
}

/// Logs in through the console's form; the session cookie.
async fn console_login(client: &reqwest::Client, base: &str) -> anyhow::Result<String> {
    let page = client.get(format!("{base}/admin/login")).send().await?;
    let login_cookie =
        cookie_of(&page, "vpnshop_login").ok_or_else(|| anyhow::anyhow!("no login cookie"))?;
    let html = page.text().await?;
    let marker = "name=\"csrf\" value=\"";
    let at = html
        .find(marker)
        .ok_or_else(|| anyhow::anyhow!("no csrf field on the login page"))?;
    let rest = &html[at + marker.len()..];
    let csrf = &rest[..rest.find('"').unwrap_or(0)];
    let resp = client
        .post(format!("{base}/admin/login"))
        .header(header::COOKIE, login_cookie)
        .form(&[
            ("csrf", csrf),
            ("username", "bench"),
            ("password", PASSWORD),
        ])
        .send()
        .await?;
    cookie_of(&resp, "vpnshop_admin")
        .ok_or_else(|| anyhow::anyhow!("login failed: {}", resp.status()))
}

async fn run() -> anyhow::Result<()> {
    let users = env_or("BENCH_USERS", 100_000);
    let payments = env_or("BENCH_PAYMENTS", 300_000);
    let requests = env_or("BENCH_REQUESTS", 5_000).max(1) as usize;
    let overviews = env_or("BENCH_OVERVIEWS", 100).max(1) as usize;

    let db = BenchDb::create("console").await?;
    let mut conn = db.connect().await?;
    let started = Instant::now();
    seed_shop(&mut conn, users, payments).await?;
    seed_operations(&mut conn).await?;
    let seeded = started.elapsed();
    let hash = password::hash(PASSWORD).map_err(anyhow::Error::msg)?;
    vpn_shop::db::admins::create(&mut conn, "bench", &hash, AdminRole::Viewer)
        .await?
        .ok_or_else(|| anyhow::anyhow!("admin exists"))?;

    // The scheduler and the job runner stay quiet: the page alone is measured.
    let (app, _data_dir) = start_app(
        &db,
        &[("SCHEDULER_TICK", "1h"), ("JOB_POLL_INTERVAL", "1h")],
    )
    .await?;
    let base = format!("http://{}", app.http_addr());
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let session = console_login(&client, &base).await?;

    let mut failures = Vec::new();
    let mut samples = Vec::with_capacity(requests);
    let mut bytes = 0;
    // The pool opens its connections, PostgreSQL caches the pages, statements get prepared.
    let warm_up = 50;
    for i in 0..warm_up + requests {
        let sent = Instant::now();
        let resp = client
            .get(format!("{base}/admin/"))
            .header(header::COOKIE, &session)
            .send()
            .await;
        let outcome = match resp {
            Ok(r) if r.status().is_success() => r.text().await.map_err(|e| e.to_string()),
            Ok(r) => Err(r.status().to_string()),
            Err(e) => Err(e.to_string()),
        };
        let took = sent.elapsed();
        match outcome {
            Ok(html) if html.contains("<h1>") => {
                bytes = html.len();
                if i >= warm_up {
                    samples.push(took);
                }
            }
            Ok(_) => failures.push("a page without its heading".to_owned()),
            Err(e) => failures.push(e),
        }
    }
    let lat = Latencies::new(samples);

    // The overview computed for every request: the API's, with a token of the same account.
    let login: serde_json::Value = client
        .post(format!("{base}/api/v1/auth/login"))
        .json(&serde_json::json!({"username": "bench", "password": PASSWORD}))
        .send()
        .await?
        .json()
        .await?;
    let token = login["access_token"]
        .as_str()
        .ok_or_else(|| anyhow::anyhow!("API login failed: {login}"))?
        .to_owned();
    let mut computed = Vec::with_capacity(overviews);
    for i in 0..overviews + 5 {
        let sent = Instant::now();
        let resp = client
            .get(format!("{base}/api/v1/stats/overview"))
            .bearer_auth(&token)
            .send()
            .await?;
        let ok = resp.status().is_success();
        resp.bytes().await?;
        if !ok {
            failures.push("GET /api/v1/stats/overview failed".to_owned());
        } else if i >= 5 {
            computed.push(sent.elapsed());
        }
    }
    let computed = Latencies::new(computed);
    app.shutdown().await;

    println!();
    println!(
        "console dashboard benchmark: {users} users, {payments} payments (seeded in {:.1} s), {} cores",
        seeded.as_secs_f64(),
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    );
    println!("| page | requests | p50 | p99 (max of N under 1,000) | max | page size | errors |");
    println!("|---|---|---|---|---|---|---|");
    println!(
        "| `GET /admin/` | {} | {} | {} | {} | {} KiB | {} |",
        lat.len(),
        ms(lat.p50_ms()),
        lat.tail(),
        ms(lat.max_ms()),
        bytes / 1024,
        failures.len()
    );
    println!(
        "| `GET /api/v1/stats/overview` (the overview computed) | {} | {} | {} | {} | — | — |",
        computed.len(),
        ms(computed.p50_ms()),
        computed.tail(),
        ms(computed.max_ms()),
    );
    let met = lat.tail_ms() < TARGET_P99_MS;
    println!(
        "target: p99 under {TARGET_P99_MS} ms: {}",
        if met { "met" } else { "MISSED" }
    );
    if let [first, ..] = failures.as_slice() {
        println!("FAILED: {} errors, e.g. {first}", failures.len());
    }
    drop(conn);
    db.drop().await?;
    tokio::time::sleep(Duration::from_millis(10)).await;
    if !failures.is_empty() || !met {
        std::process::exit(1);
    }
    Ok(())
}
