//! Benchmark of the admin API on a shop-sized database: 100,000 users (70 % with a
//! subscription, 10 % invited by another user), 300,000 payments over a year. Measures, at
//! concurrency 32 through the real HTTP server, `GET /users?per_page=50` (random pages),
//! `GET /users/{id}`, `GET /stats/overview` and `POST /users/{id}/extend`, then prints the
//! query plans of the slowest one's queries (EXPLAIN ANALYZE, from `auto_explain`).
//!
//! Run: `cargo bench --bench admin_api` (uses `TEST_DATABASE_URL` if set, otherwise a
//! throwaway PostgreSQL cluster). `BENCH_USERS` (100000), `BENCH_PAYMENTS` (300000),
//! `BENCH_REQUESTS` (requests per endpoint, 4000) and `BENCH_CONCURRENCY` (32) change it.

mod common;

use std::time::{Duration, Instant};

use common::{BenchDb, Latencies, env_or, ms, seed_shop, start_app, status_mib};
use diesel::sql_types::{BigInt, Text};
use diesel_async::RunQueryDsl;
use futures_util::{StreamExt, stream};
use serde_json::{Value, json};
use vpn_shop::domain::{AdminRole, password};

#[derive(diesel::QueryableByName)]
struct Line {
    #[diesel(sql_type = Text)]
    line: String,
}

#[derive(diesel::QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

/// xorshift64: deterministic request targets without a dependency.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x % n.max(1)
    }
}

struct Row {
    name: &'static str,
    in_flight: usize,
    requests: usize,
    wall: Duration,
    lat: Latencies,
    failures: Vec<String>,
}

/// One request of a scenario: method, URL and body (`page` of the list, `user` of the profile
/// and the extension).
fn request_of(
    base: &str,
    scenario: &str,
    page: u64,
    user: u64,
) -> (reqwest::Method, String, Option<Value>) {
    match scenario {
        "GET /users?per_page=50" => (
            reqwest::Method::GET,
            format!("{base}/api/v1/users?per_page=50&page={page}"),
            None,
        ),
        "GET /users/{id}" => (
            reqwest::Method::GET,
            format!("{base}/api/v1/users/{user}"),
            None,
        ),
        "GET /stats/overview" => (
            reqwest::Method::GET,
            format!("{base}/api/v1/stats/overview"),
            None,
        ),
        _ => (
            reqwest::Method::POST,
            format!("{base}/api/v1/users/{user}/extend"),
            Some(json!({"days": 1, "reason": "benchmark"})),
        ),
    }
}

fn main() -> anyhow::Result<()> {
    actix_rt::System::new().block_on(run())
}

async fn run() -> anyhow::Result<()> {
    let users = env_or("BENCH_USERS", 100_000);
    let payments = env_or("BENCH_PAYMENTS", 300_000);
    let requests = env_or("BENCH_REQUESTS", 4_000) as usize;
    let concurrency = env_or("BENCH_CONCURRENCY", 32).max(1) as usize;

    let db = BenchDb::create("api").await?;
    let mut conn = db.connect().await?;
    let started = Instant::now();
    seed_shop(&mut conn, users, payments).await?;
    let seeded = started.elapsed();
    let hash = password::hash("bench password long enough").map_err(anyhow::Error::msg)?;
    vpn_shop::db::admins::create(&mut conn, "bench", &hash, AdminRole::Operator)
        .await?
        .ok_or_else(|| anyhow::anyhow!("admin exists"))?;

    let (app, _data_dir) = start_app(&db, &[("API_RATE_LIMIT", "off")]).await?;
    let base = format!("http://{}", app.http_addr());
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency)
        .build()?;
    let login: Value = client
        .post(format!("{base}/api/v1/auth/login"))
        .json(&json!({"username": "bench", "password": "bench password long enough"}))
        .send()
        .await?
        .json()
        .await?;
    let token = login["access_token"]
        .as_str()
        .ok_or_else(|| anyhow::anyhow!("login failed: {login}"))?
        .to_owned();
    let idle_rss = status_mib("VmRSS:");

    let scenarios: [(&'static str, usize); 4] = [
        ("GET /users?per_page=50", requests),
        ("GET /users/{id}", requests),
        ("GET /stats/overview", (requests / 10).max(50)),
        ("POST /users/{id}/extend", requests),
    ];
    let mut rows = Vec::new();
    let mut rng = Rng(0x2545_F491_4F6C_DD1D);
    // A warm-up that is not counted (the pool opens its connections, PostgreSQL caches the
    // pages, statements get prepared), then one at a time (the time a request takes; a quarter
    // of the requests, so that 4,000 give the 1,000 samples of a p99), then `concurrency` in
    // flight (what the machine sustains; latency then includes the wait for a core).
    let passes = scenarios
        .iter()
        .map(|&(name, _)| (name, 4 * concurrency, concurrency, false))
        .chain(
            scenarios
                .iter()
                .map(|&(name, n)| (name, (n / 4).max(20), 1, true)),
        )
        .chain(
            scenarios
                .iter()
                .map(|&(name, n)| (name, n, concurrency, true)),
        );
    for (name, n, in_flight, counted) in passes {
        let targets: Vec<(reqwest::Method, String, Option<Value>)> = (0..n)
            .map(|_| request_of(&base, name, 1 + rng.below(40), 1 + rng.below(users)))
            .collect();
        let started = Instant::now();
        let results: Vec<(Duration, Result<(), String>)> = stream::iter(targets)
            .map(|(method, url, body)| {
                let (client, token) = (&client, &token);
                async move {
                    let sent = Instant::now();
                    let mut request = client.request(method, &url).bearer_auth(token);
                    if let Some(body) = body {
                        request = request.json(&body);
                    }
                    let outcome = match request.send().await {
                        Ok(r) if r.status().is_success() => {
                            r.bytes().await.map(|_| ()).map_err(|e| e.to_string())
                        }
                        Ok(r) => Err(format!(
                            "{} {}",
                            r.status(),
                            r.text().await.unwrap_or_default()
                        )),
                        Err(e) => Err(e.to_string()),
                    };
                    (sent.elapsed(), outcome)
                }
            })
            .buffer_unordered(in_flight)
            .collect()
            .await;
        let wall = started.elapsed();
        let lat = Latencies::new(results.iter().map(|(d, _)| *d).collect());
        if !counted {
            continue;
        }
        rows.push(Row {
            name,
            in_flight,
            requests: n,
            wall,
            lat,
            failures: results.into_iter().filter_map(|(_, r)| r.err()).collect(),
        });
    }
    let peak_rss = status_mib("VmHWM:");

    println!();
    println!(
        "admin API benchmark: {users} users, {payments} payments (seeded in {:.1} s), {} cores",
        seeded.as_secs_f64(),
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    );
    println!(
        "| endpoint | in flight | requests | requests/s | p50 | p99 (max of N under 1,000) | max | errors |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for r in &rows {
        println!(
            "| `{}` | {} | {} | {:.0} | {} | {} | {} | {} |",
            r.name,
            r.in_flight,
            r.requests,
            r.requests as f64 / r.wall.as_secs_f64(),
            ms(r.lat.p50_ms()),
            r.lat.tail(),
            ms(r.lat.max_ms()),
            r.failures.len()
        );
    }
    println!("RSS idle {idle_rss} MiB, peak {peak_rss} MiB (the app and the benchmark's client)");
    for r in &rows {
        if let [first, ..] = r.failures.as_slice() {
            println!(
                "FAILED: {}: {} errors, e.g. {first}",
                r.name,
                r.failures.len()
            );
        }
    }
    let extended =
        diesel::sql_query("SELECT count(*) AS n FROM audit_log WHERE action = 'user.extend'")
            .get_result::<Count>(&mut conn)
            .await?
            .n;
    println!("audit rows of the extensions: {extended}");

    // The plans of the slowest endpoint's queries: one more request, on an app whose database
    // sessions load auto_explain, with the background work quiet; the plans are read back from
    // the server's log.
    let slowest = rows
        .iter()
        .filter(|r| r.in_flight == 1)
        .max_by(|a, b| a.lat.tail_ms().total_cmp(&b.lat.tail_ms()))
        .map(|r| r.name)
        .unwrap_or_default();
    app.shutdown().await;
    println!();
    match explain(&db, &mut conn, &client, &token, slowest, users).await {
        Ok(plans) => {
            println!(
                "query plans of the slowest endpoint ({slowest}), one request, its statements of \
                 1 ms or more:"
            );
            for line in plans {
                println!("    {line}");
            }
        }
        Err(e) => println!("no query plans: {e:#}"),
    }

    drop(conn);
    let failed = rows.iter().any(|r| !r.failures.is_empty());
    db.drop().await?;
    if failed {
        std::process::exit(1);
    }
    Ok(())
}

/// The server's log file, where auto_explain writes: the logging collector's file, the
/// embedded cluster's `log/postgres.log`, or Debian's `/var/log/postgresql/…`.
async fn server_log(
    conn: &mut diesel_async::AsyncPgConnection,
) -> anyhow::Result<std::path::PathBuf> {
    let one = |sql: &'static str| diesel::sql_query(sql);
    let data = one("SELECT current_setting('data_directory') AS line")
        .get_result::<Line>(conn)
        .await?
        .line;
    let collector = one("SELECT coalesce(pg_current_logfile(), '') AS line")
        .get_result::<Line>(conn)
        .await?
        .line;
    let major = one("SELECT split_part(current_setting('server_version'), '.', 1) AS line")
        .get_result::<Line>(conn)
        .await?
        .line;
    let data = std::path::Path::new(&data);
    let candidates = [
        (!collector.is_empty()).then(|| data.join(&collector)),
        Some(data.join("log/postgres.log")),
        Some(format!("/var/log/postgresql/postgresql-{major}-main.log").into()),
    ];
    candidates
        .into_iter()
        .flatten()
        .find(|p| std::fs::File::open(p).is_ok())
        .ok_or_else(|| anyhow::anyhow!("the server's log is not readable from here"))
}

/// One request of `endpoint` with auto_explain on; the plans it logged.
async fn explain(
    db: &BenchDb,
    conn: &mut diesel_async::AsyncPgConnection,
    client: &reqwest::Client,
    token: &str,
    endpoint: &str,
    users: u64,
) -> anyhow::Result<Vec<String>> {
    let log = server_log(conn).await?;
    for setting in [
        "session_preload_libraries = 'auto_explain'",
        "auto_explain.log_min_duration = 0",
        "auto_explain.log_analyze = on",
        "auto_explain.log_buffers = on",
    ] {
        diesel::sql_query(format!("ALTER DATABASE {} SET {setting}", db.name))
            .execute(conn)
            .await?;
    }
    let (app, _data_dir) = start_app(
        db,
        &[
            ("API_RATE_LIMIT", "off"),
            ("SCHEDULER_TICK", "1h"),
            ("JOB_POLL_INTERVAL", "1h"),
        ],
    )
    .await?;
    // The start-up's own work (first scheduler tick, maintenance) ends first.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let from = std::fs::metadata(&log)?.len();
    let base = format!("http://{}", app.http_addr());
    let (method, url, body) = request_of(&base, endpoint, 20, users / 2);
    let mut request = client.request(method, url).bearer_auth(token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let status = request.send().await?.status();
    tokio::time::sleep(Duration::from_millis(500)).await;
    app.shutdown().await;
    diesel::sql_query(format!("ALTER DATABASE {} RESET ALL", db.name))
        .execute(conn)
        .await?;
    anyhow::ensure!(status.is_success(), "the request answered {status}");
    let text = std::fs::read(&log)?;
    let text = String::from_utf8_lossy(&text[(from as usize).min(text.len())..]).into_owned();
    // Blocks of "duration: … plan:" and their tab-indented lines, of this database only when the
    // log says which database a line is from; pool health checks left out.
    let mut plans = Vec::new();
    let mut keep = false;
    for line in text.lines() {
        if line.starts_with('\t') {
            if keep {
                plans.push(line.trim_end().replacen('\t', "", 1));
            }
            continue;
        }
        let ours = !line.contains('@') || line.contains(&format!("@{} ", db.name));
        keep = ours && line.contains("duration:") && line.contains("plan:");
        if keep {
            plans.push(line[line.find("duration:").unwrap_or(0)..].to_owned());
        }
    }
    let mut blocks: Vec<Vec<String>> = Vec::new();
    for line in plans {
        if line.starts_with("duration:") {
            blocks.push(vec![line]);
        } else if let Some(block) = blocks.last_mut() {
            block.push(line);
        }
    }
    // The request's own statements of a millisecond or more: not the job runner's (which may
    // still be working through the extensions' provision jobs), not the trivial ones.
    blocks.retain(|b| {
        let ms: f64 = b[0]
            .trim_start_matches("duration:")
            .split_whitespace()
            .next()
            .and_then(|d| d.parse().ok())
            .unwrap_or(0.0);
        let text = b.get(1).map_or("", |l| l.as_str());
        ms >= 1.0 && !text.contains("\"jobs\"") && !text.contains(" jobs ")
    });
    anyhow::ensure!(
        !blocks.is_empty(),
        "no plans in {} (is auto_explain installed?)",
        log.display()
    );
    Ok(blocks.concat())
}
