//! Benchmark of the payment webhooks: 10,000 deliveries to the real app's `/webhooks/yookassa` and
//! `/webhooks/wata`, 32 in flight — 75 % first deliveries of paid orders (half YooKassa, half
//! WATA), 20 % re-deliveries of one of those (half of them right behind their original, so both
//! are in flight at once; the rest anywhere) and 5 % forgeries (YooKassa notifications naming a
//! payment YooKassa does not know, WATA bodies signed with a foreign key). The orders are created
//! through the PaymentProcessor's checkout against the fake YooKassa and WATA and paid there.
//! Before them, `BENCH_WARMUP` first deliveries of orders of their own (4 × the concurrency) warm
//! the app up (connections opened, statements prepared, WATA's public key fetched) and are not
//! counted in the times.
//! Prints the verdicts, throughput, latency percentiles (p99 from 1,000 samples, else the maximum
//! of N) and memory, then checks in the database that every paid order, warm-up included, got
//! exactly one extension (exit status 1 and a FAILED line otherwise).
//!
//! Run: `cargo bench --bench webhooks` (uses `TEST_DATABASE_URL` if set, otherwise a throwaway
//! PostgreSQL cluster). `BENCH_WEBHOOKS` (measured deliveries, 10000), `BENCH_WARMUP` and
//! `BENCH_CONCURRENCY` (requests and checkouts in flight, 32) change it.

mod common;
#[path = "../tests/it/support/wata.rs"]
mod fake_wata;
#[path = "../tests/it/support/yookassa.rs"]
mod fake_yookassa;
#[path = "../tests/it/support/server.rs"]
mod server;

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use common::{BenchDb, Latencies, Rng, env_or, ms, start_app, status_mib};
use diesel::sql_types::{BigInt, Nullable, Text};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use fake_wata::FakeWata;
use fake_yookassa::FakeYooKassa;
use futures_util::{StreamExt, stream};
use serde_json::Value;
use vpn_shop::domain::PaymentProvider;

/// Shaped like YooKassa's payment ids, unknown to the fake.
fn payment_id(rng: &mut Rng) -> String {
    let (a, b) = (rng.next(), rng.next());
    format!(
        "{:08x}-000f-5000-8000-{:012x}",
        a as u32,
        b & 0xffff_ffff_ffff
    )
}

/// Shaped like a WATA transaction id, unknown to the fake.
fn uuid(rng: &mut Rng) -> String {
    let (a, b) = (rng.next(), rng.next());
    format!(
        "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xfff,
        b >> 52,
        b & 0xffff_ffff_ffff
    )
}

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
enum Provider {
    YooKassa,
    Wata,
}

impl Provider {
    fn name(self) -> &'static str {
        match self {
            Provider::YooKassa => "yookassa",
            Provider::Wata => "wata",
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    First,
    Duplicate,
    Forged,
}

#[derive(Clone)]
struct Delivery {
    provider: Provider,
    kind: Kind,
    /// The order a genuine delivery is about.
    order: Option<i64>,
    body: Vec<u8>,
    /// WATA's `X-Signature`.
    signature: Option<String>,
}

struct Answer {
    status: u16,
    /// `verdict` of a processed event, else `error.code`, else a description.
    verdict: String,
    /// When the request was sent and answered, from the start of the run.
    sent: Duration,
    answered: Duration,
}

#[derive(diesel::QueryableByName)]
struct OrderRow {
    #[diesel(sql_type = BigInt)]
    id: i64,
    #[diesel(sql_type = Text)]
    provider: String,
    #[diesel(sql_type = Nullable<Text>)]
    external_id: Option<String>,
}

#[derive(diesel::QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

#[derive(diesel::QueryableByName)]
struct Grouped {
    #[diesel(sql_type = Text)]
    a: String,
    #[diesel(sql_type = Text)]
    b: String,
    #[diesel(sql_type = BigInt)]
    n: i64,
}

#[derive(diesel::QueryableByName)]
struct Extensions {
    #[diesel(sql_type = BigInt)]
    total: i64,
    #[diesel(sql_type = BigInt)]
    one: i64,
    #[diesel(sql_type = BigInt)]
    more: i64,
    #[diesel(sql_type = BigInt)]
    less: i64,
    #[diesel(sql_type = BigInt)]
    missing: i64,
}

#[derive(diesel::QueryableByName)]
struct Offender {
    #[diesel(sql_type = BigInt)]
    order_id: i64,
    #[diesel(sql_type = BigInt)]
    user_id: i64,
    #[diesel(sql_type = Text)]
    paid_to_expiry: String,
}

async fn count(conn: &mut AsyncPgConnection, sql: &str) -> anyhow::Result<i64> {
    Ok(diesel::sql_query(sql).get_result::<Count>(conn).await?.n)
}

/// Posts one delivery; `started` is the start of the run the times are measured from.
async fn deliver(
    client: &reqwest::Client,
    urls: &(String, String),
    d: &Delivery,
    started: Instant,
) -> Answer {
    let request = match d.provider {
        Provider::YooKassa => client.post(&urls.0),
        Provider::Wata => client.post(&urls.1),
    }
    .header(reqwest::header::CONTENT_TYPE, "application/json")
    .body(d.body.clone());
    let request = match &d.signature {
        Some(signature) => request.header("X-Signature", signature),
        None => request,
    };
    let sent = started.elapsed();
    let (status, verdict) = match request.send().await {
        Ok(response) => {
            let status = response.status().as_u16();
            let body: Value = response.json().await.unwrap_or(Value::Null);
            let verdict = body["verdict"]
                .as_str()
                .or(body["error"]["code"].as_str())
                .unwrap_or("(no verdict)")
                .to_owned();
            (status, verdict)
        }
        Err(e) => (0, format!("transport error: {e}")),
    };
    Answer {
        status,
        verdict,
        sent,
        answered: started.elapsed(),
    }
}

/// The outcome of one check: printed as `name: OK (detail)` or `FAILED: name: detail`.
struct Check {
    name: String,
    ok: bool,
    detail: String,
}

fn check(name: impl Into<String>, ok: bool, detail: impl Into<String>) -> Check {
    Check {
        name: name.into(),
        ok,
        detail: detail.into(),
    }
}

fn main() -> anyhow::Result<()> {
    let ok = actix_rt::System::new().block_on(run())?;
    if !ok {
        std::process::exit(1);
    }
    Ok(())
}

async fn run() -> anyhow::Result<bool> {
    let total = env_or("BENCH_WEBHOOKS", 10_000) as usize;
    let concurrency = env_or("BENCH_CONCURRENCY", 32).max(1) as usize;
    let forged = total * 5 / 100;
    let duplicates = total * 20 / 100;
    let orders = total - forged - duplicates;
    anyhow::ensure!(orders >= 2, "BENCH_WEBHOOKS is too small");
    let warmup = env_or("BENCH_WARMUP", 4 * concurrency as u64) as usize;
    // Every paid order, the warm-up's included.
    let paid = orders + warmup;

    let db = BenchDb::create("wh").await?;
    let mut conn = db.connect().await?;
    let (plan, mut users) = common::plan_and_users(&mut conn, 700_000_000, paid).await?;
    users.sort_unstable();

    let yookassa = FakeYooKassa::start();
    let wata = FakeWata::start();
    let (yookassa_url, wata_url) = (yookassa.url(), wata.url());
    // No MARZBAN_URL and no TELEGRAM_BOT_TOKEN: the provision jobs a payment enqueues wait in the
    // queue and the notify jobs find no channel to deliver on — expected; they are only counted.
    let (app, _data_dir) = start_app(
        &db,
        &[
            ("YOOKASSA_SHOP_ID", fake_yookassa::SHOP_ID),
            ("YOOKASSA_SECRET_KEY", fake_yookassa::SECRET_KEY),
            ("YOOKASSA_API_URL", yookassa_url.as_str()),
            // The webhooks come from 127.0.0.1; each is still confirmed with YooKassa's API.
            ("YOOKASSA_CHECK_IP", "false"),
            ("WATA_TOKEN", fake_wata::TOKEN),
            ("WATA_API_URL", wata_url.as_str()),
            // The poller must not confirm the orders itself on a slow run (the webhooks would
            // then only find duplicates).
            ("PAYMENT_POLL_AFTER", "24h"),
            // The forgeries come from the providers' own address here (127.0.0.1), which the
            // refusal budget would then turn away; in life they come from elsewhere.
            ("WEBHOOK_REFUSAL_LIMIT", "off"),
        ],
    )
    .await?;
    let base = format!("http://{}", app.http_addr());
    tokio::time::sleep(Duration::from_secs(1)).await;
    let idle_rss = status_mib("VmRSS:");

    // The orders, through the real checkout: half YooKassa, half WATA.
    let started = Instant::now();
    let provider_of = |i: usize| {
        if i.is_multiple_of(2) {
            PaymentProvider::Yookassa
        } else {
            PaymentProvider::Wata
        }
    };
    common::checkouts(&app, &users, plan, provider_of, concurrency).await?;
    let checkout_time = started.elapsed();

    // Every order is paid at its provider; its webhook is what a genuine delivery sends.
    let started = Instant::now();
    let rows: Vec<OrderRow> =
        diesel::sql_query("SELECT id, provider, external_id FROM payments ORDER BY id")
            .load(&mut conn)
            .await?;
    anyhow::ensure!(rows.len() == paid, "{} orders, not {paid}", rows.len());
    let mut firsts = Vec::with_capacity(paid);
    for row in &rows {
        let external = row
            .external_id
            .as_deref()
            .ok_or_else(|| anyhow::anyhow!("order {} has no external id", row.id))?;
        firsts.push(match row.provider.as_str() {
            "yookassa" => {
                yookassa.succeed(external);
                let notification = yookassa.notification(external, "payment.succeeded");
                Delivery {
                    provider: Provider::YooKassa,
                    kind: Kind::First,
                    order: Some(row.id),
                    body: serde_json::to_vec(&notification)?,
                    signature: None,
                }
            }
            "wata" => {
                let transaction = wata.pay(external);
                let id = transaction["id"]
                    .as_str()
                    .ok_or_else(|| anyhow::anyhow!("no transaction id in {transaction}"))?;
                let (body, signature) = wata.webhook(id);
                Delivery {
                    provider: Provider::Wata,
                    kind: Kind::First,
                    order: Some(row.id),
                    body,
                    signature: Some(signature),
                }
            }
            other => anyhow::bail!("order {} is paid through {other}", row.id),
        });
    }

    // The last orders warm up; the others are the measured run's.
    let warm_firsts = firsts.split_off(orders);

    // Forgeries of both kinds, each naming a real order.
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let of = |p: Provider| {
        firsts
            .iter()
            .filter(|d| d.provider == p)
            .cloned()
            .collect::<Vec<_>>()
    };
    let (yookassa_firsts, wata_firsts) = (of(Provider::YooKassa), of(Provider::Wata));
    let mut deliveries = firsts.clone();
    for k in 0..forged {
        if k % 2 == 0 {
            // A notification of a payment YooKassa never made, for a real order.
            let genuine = &yookassa_firsts[rng.below(yookassa_firsts.len())];
            let mut body: Value = serde_json::from_slice(&genuine.body)?;
            body["object"]["id"] = Value::String(payment_id(&mut rng));
            deliveries.push(Delivery {
                provider: Provider::YooKassa,
                kind: Kind::Forged,
                order: None,
                body: serde_json::to_vec(&body)?,
                signature: None,
            });
        } else {
            // A paid transaction WATA never made, for a real order, signed with a foreign key.
            let genuine = &wata_firsts[rng.below(wata_firsts.len())];
            let text = String::from_utf8(genuine.body.clone())?;
            let id = serde_json::from_str::<Value>(&text)?["transactionId"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            let body = text.replace(&id, &uuid(&mut rng)).into_bytes();
            let signature = wata.sign_with_foreign_key(&body);
            deliveries.push(Delivery {
                provider: Provider::Wata,
                kind: Kind::Forged,
                order: None,
                body,
                signature: Some(signature),
            });
        }
    }
    let payment_time = started.elapsed();

    // Shuffled (Fisher–Yates), then the re-deliveries: the even ones within the next C/2
    // places after their original (in flight together), the odd ones anywhere (before it, too).
    for i in (1..deliveries.len()).rev() {
        deliveries.swap(i, rng.below(i + 1));
    }
    const SPAN: u64 = 1 << 20;
    let mut keyed: Vec<(u64, Delivery)> = deliveries
        .into_iter()
        .enumerate()
        .map(|(p, d)| (p as u64 * SPAN, d))
        .collect();
    let first_places: Vec<usize> = keyed
        .iter()
        .enumerate()
        .filter(|(_, (_, d))| d.kind == Kind::First)
        .map(|(p, _)| p)
        .collect();
    let places = keyed.len() as u64;
    let mut adjacent = 0;
    for k in 0..duplicates {
        let p = first_places[rng.below(first_places.len())];
        let mut copy = keyed[p].1.clone();
        copy.kind = Kind::Duplicate;
        let key = if k % 2 == 0 {
            adjacent += 1;
            p as u64 * SPAN + 1 + rng.next() % ((concurrency as u64 / 2).max(1) * SPAN)
        } else {
            rng.next() % (places * SPAN)
        };
        keyed.push((key, copy));
    }
    keyed.sort_by_key(|(key, _)| *key);
    let deliveries: Vec<Delivery> = keyed.into_iter().map(|(_, d)| d).collect();

    // The webhooks.
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()?;
    let urls = (
        format!("{base}/webhooks/yookassa"),
        format!("{base}/webhooks/wata"),
    );
    let warm_started = Instant::now();
    let warm_answers: Vec<(Provider, Answer)> = stream::iter(&warm_firsts)
        .map(|d| {
            let (client, urls) = (&client, &urls);
            async move { (d.provider, deliver(client, urls, d, warm_started).await) }
        })
        .buffer_unordered(concurrency)
        .collect()
        .await;
    let before_rss = status_mib("VmRSS:");
    let started = Instant::now();
    let mut answers: Vec<(usize, Answer)> = stream::iter(deliveries.iter().enumerate())
        .map(|(i, d)| {
            let (client, urls) = (&client, &urls);
            async move { (i, deliver(client, urls, d, started).await) }
        })
        .buffer_unordered(concurrency)
        .collect()
        .await;
    let wall = started.elapsed();
    let after_rss = status_mib("VmRSS:");
    answers.sort_by_key(|(i, _)| *i);

    // What the senders saw.
    let latencies = Latencies::new(answers.iter().map(|(_, a)| a.answered - a.sent).collect());
    let mut by_provider: BTreeMap<Provider, Vec<Duration>> = BTreeMap::new();
    let mut verdicts: BTreeMap<(Provider, String), usize> = BTreeMap::new();
    let mut statuses: BTreeMap<u16, usize> = BTreeMap::new();
    let mut per_order: HashMap<i64, (usize, usize, usize)> = HashMap::new();
    let mut in_flight: HashMap<i64, Vec<(Duration, Duration)>> = HashMap::new();
    let mut forged_not_refused = 0;
    for (i, a) in &answers {
        let d = &deliveries[*i];
        by_provider
            .entry(d.provider)
            .or_default()
            .push(a.answered - a.sent);
        *verdicts.entry((d.provider, a.verdict.clone())).or_default() += 1;
        *statuses.entry(a.status).or_default() += 1;
        match d.order {
            Some(order) => {
                in_flight
                    .entry(order)
                    .or_default()
                    .push((a.sent, a.answered));
                let seen = per_order.entry(order).or_default();
                match a.verdict.as_str() {
                    "accepted" => seen.0 += 1,
                    "duplicate" => seen.1 += 1,
                    _ => seen.2 += 1,
                }
            }
            None => forged_not_refused += usize::from(a.verdict != "forged"),
        }
    }
    let verdict_of = |provider: Option<Provider>, verdict: &str| -> usize {
        verdicts
            .iter()
            .filter(|((p, v), _)| provider.is_none_or(|want| want == *p) && v == verdict)
            .map(|(_, n)| n)
            .sum()
    };
    let other_of = |provider: Option<Provider>| -> usize {
        verdicts
            .iter()
            .filter(|((p, v), _)| {
                provider.is_none_or(|want| want == *p)
                    && !matches!(v.as_str(), "accepted" | "duplicate" | "forged")
            })
            .map(|(_, n)| n)
            .sum()
    };

    // Orders two of whose deliveries were in flight at the same moment.
    let overlapping = in_flight
        .values()
        .filter(|spans| {
            spans
                .iter()
                .enumerate()
                .any(|(i, a)| spans[i + 1..].iter().any(|b| a.0 < b.1 && b.0 < a.1))
        })
        .count();
    let redelivered = in_flight.values().filter(|spans| spans.len() > 1).count();

    println!();
    println!(
        "webhook benchmark: {total} deliveries ({orders} first, {duplicates} re-deliveries of which \
         {adjacent} right behind their original, {forged} forged) after {warmup} first deliveries \
         not counted (warm-up), concurrency {concurrency}, {} cores",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    );
    println!(
        "orders: {paid} created through CreateCheckout in {:.1} s ({:.0}/s, {concurrency} in \
         flight); paid at the fakes and webhooks prepared in {:.1} s",
        checkout_time.as_secs_f64(),
        paid as f64 / checkout_time.as_secs_f64(),
        payment_time.as_secs_f64()
    );
    println!();
    println!(
        "| deliveries | concurrency | wall time | throughput | p50 | p90 | p99 (max of N under 1,000) | max | RSS before → after |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    println!(
        "| {total} | {concurrency} | {:.2} s | {:.0} webhooks/s | {} | {} | {} | {} | {before_rss} → {after_rss} MiB |",
        wall.as_secs_f64(),
        total as f64 / wall.as_secs_f64(),
        ms(latencies.p50_ms()),
        ms(latencies.quantile_ms(0.90)),
        latencies.tail(),
        ms(latencies.max_ms()),
    );
    println!();
    println!(
        "| provider | deliveries | accepted | duplicate | forged | other | p50 | p99 (max of N under 1,000) | max |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for (provider, lat) in by_provider {
        let lat = Latencies::new(lat);
        let p = Some(provider);
        println!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            provider.name(),
            lat.len(),
            verdict_of(p, "accepted"),
            verdict_of(p, "duplicate"),
            verdict_of(p, "forged"),
            other_of(p),
            ms(lat.p50_ms()),
            lat.tail(),
            ms(lat.max_ms()),
        );
    }
    println!(
        "| all | {total} | {} | {} | {} | {} | {} | {} | {} |",
        verdict_of(None, "accepted"),
        verdict_of(None, "duplicate"),
        verdict_of(None, "forged"),
        other_of(None),
        ms(latencies.p50_ms()),
        latencies.tail(),
        ms(latencies.max_ms()),
    );
    println!("| expected | {total} | {orders} | {duplicates} | {forged} | 0 | | | |");
    println!(
        "orders delivered more than once: {redelivered}, of which {overlapping} had two deliveries in \
         flight at the same time"
    );
    println!(
        "HTTP statuses: {}",
        statuses
            .iter()
            .map(|(s, n)| format!("{s} × {n}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let others: Vec<String> = verdicts
        .iter()
        .filter(|((_, v), _)| !matches!(v.as_str(), "accepted" | "duplicate" | "forged"))
        .map(|((p, v), n)| format!("{} {v:?} × {n}", p.name()))
        .collect();
    if !others.is_empty() {
        println!("other answers: {}", others.join(", "));
    }
    println!(
        "provider calls during the run: YooKassa GET /v3/payments/{{id}} × {}, WATA GET /public-key × {}",
        yookassa.count("GET", "/v3/payments/{id}"),
        wata.count("GET", "/api/h2h/public-key"),
    );

    // What the senders saw must add up…
    let mut checks = Vec::new();
    let warm_refused: Vec<String> = warm_answers
        .iter()
        .filter(|(_, a)| a.status != 200 || a.verdict != "accepted")
        .map(|(p, a)| format!("{} {} {}", p.name(), a.status, a.verdict))
        .collect();
    checks.push(check(
        "every warm-up delivery accepted",
        warm_refused.is_empty(),
        match <[String]>::first(&warm_refused) {
            None => format!("{warmup}/{warmup}"),
            Some(e) => format!("{} of {warmup} not, e.g. {e}", warm_refused.len()),
        },
    ));
    let errors: usize = statuses
        .iter()
        .filter(|(s, _)| **s == 0 || **s >= 500)
        .map(|(_, n)| n)
        .sum();
    checks.push(check(
        "no 5xx or transport errors",
        errors == 0,
        format!("{errors} of {total}"),
    ));
    checks.push(check(
        "every forgery refused as forged",
        forged_not_refused == 0,
        format!("{} of {forged} refused", forged - forged_not_refused),
    ));
    let once = per_order
        .values()
        .filter(|(a, _, x)| *a == 1 && *x == 0)
        .count();
    let twice = per_order.values().filter(|(a, _, _)| *a > 1).count();
    let never = per_order.values().filter(|(a, _, _)| *a == 0).count();
    checks.push(check(
        "one delivery per order accepted, the others duplicate",
        once == orders,
        format!("{once}/{orders}; accepted twice or more: {twice}, never: {never}"),
    ));

    // …and so must the database.
    let succeeded = count(
        &mut conn,
        "SELECT count(*) AS n FROM payments WHERE status = 'succeeded'",
    )
    .await?;
    checks.push(check(
        "every paid order succeeded (warm-up included)",
        succeeded == paid as i64,
        format!("{succeeded}/{paid}"),
    ));
    let ext: Extensions = diesel::sql_query(
        "SELECT count(*) AS total, \
         count(*) FILTER (WHERE abs(extract(epoch FROM s.expires_at - p.paid_at) \
             - 86400 * (p.days + p.bonus_days)) <= 60) AS one, \
         count(*) FILTER (WHERE extract(epoch FROM s.expires_at - p.paid_at) \
             > 86400 * (p.days + p.bonus_days) + 60) AS more, \
         count(*) FILTER (WHERE extract(epoch FROM s.expires_at - p.paid_at) \
             < 86400 * (p.days + p.bonus_days) - 60) AS less, \
         count(*) FILTER (WHERE s.id IS NULL OR p.paid_at IS NULL) AS missing \
         FROM payments p LEFT JOIN subscriptions s ON s.user_id = p.user_id",
    )
    .get_result(&mut conn)
    .await?;
    let subscriptions = count(&mut conn, "SELECT count(*) AS n FROM subscriptions").await?;
    let one_extension = ext.one == paid as i64 && ext.total == paid as i64;
    let extension_check = check(
        "exactly one extension per paid order",
        one_extension,
        if one_extension {
            format!("{}/{paid}", ext.one)
        } else {
            format!(
                "{}/{paid} one period; more than one: {}, less than one: {}, no subscription or \
                 not paid: {}",
                ext.one, ext.more, ext.less, ext.missing
            )
        },
    );
    if !one_extension {
        let offenders: Vec<Offender> = diesel::sql_query(
            "SELECT p.id AS order_id, p.user_id, \
             coalesce((s.expires_at - p.paid_at)::text, 'no subscription') AS paid_to_expiry \
             FROM payments p LEFT JOIN subscriptions s ON s.user_id = p.user_id \
             WHERE s.id IS NULL OR p.paid_at IS NULL OR abs(extract(epoch FROM s.expires_at - p.paid_at) \
                 - 86400 * (p.days + p.bonus_days)) > 60 \
             ORDER BY p.id LIMIT 5",
        )
        .load(&mut conn)
        .await?;
        for o in offenders {
            println!(
                "  order {} of user {}: expires_at − paid_at = {}",
                o.order_id, o.user_id, o.paid_to_expiry
            );
        }
    }
    checks.push(check(
        "one subscription per paying user",
        subscriptions == paid as i64,
        format!("{subscriptions}/{paid}"),
    ));
    let events: Vec<Grouped> = diesel::sql_query(
        "SELECT provider AS a, verdict AS b, count(*) AS n FROM payment_events GROUP BY 1, 2",
    )
    .load(&mut conn)
    .await?;
    let recorded: BTreeMap<(String, String), i64> =
        events.into_iter().map(|g| ((g.a, g.b), g.n)).collect();
    let mut answered: BTreeMap<(String, String), i64> = verdicts
        .iter()
        .map(|((p, v), n)| ((p.name().to_owned(), v.clone()), *n as i64))
        .collect();
    for (p, a) in &warm_answers {
        *answered
            .entry((p.name().to_owned(), a.verdict.clone()))
            .or_default() += 1;
    }
    let show = |m: &BTreeMap<(String, String), i64>| {
        m.iter()
            .map(|((p, v), n)| format!("{p} {v} {n}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    checks.push(check(
        "payment_events match the answers",
        recorded == answered,
        if recorded == answered {
            show(&recorded)
        } else {
            format!(
                "recorded: {}; answered: {}",
                show(&recorded),
                show(&answered)
            )
        },
    ));
    let accepted_twice = count(
        &mut conn,
        "SELECT count(*) AS n FROM (SELECT payment_id FROM payment_events \
         WHERE verdict = 'accepted' GROUP BY payment_id HAVING count(*) > 1) t",
    )
    .await?;
    checks.push(check(
        "no order with two accepted events",
        accepted_twice == 0,
        format!("{accepted_twice} orders"),
    ));
    let jobs: Vec<Grouped> = diesel::sql_query(
        "SELECT kind AS a, state AS b, count(*) AS n FROM jobs \
         WHERE kind IN ('provision', 'notify') GROUP BY 1, 2 ORDER BY 1, 2",
    )
    .load(&mut conn)
    .await?;
    let jobs_of = |kind: &str| -> (i64, String) {
        let rows: Vec<&Grouped> = jobs.iter().filter(|g| g.a == kind).collect();
        let states = rows
            .iter()
            .map(|g| format!("{} {}", g.b, g.n))
            .collect::<Vec<_>>()
            .join(", ");
        (rows.iter().map(|g| g.n).sum(), states)
    };
    let paying_users = count(
        &mut conn,
        "SELECT count(DISTINCT user_id) AS n FROM payments WHERE status = 'succeeded'",
    )
    .await?;
    let (provision, provision_states) = jobs_of("provision");
    checks.push(check(
        "one provision job per paying user",
        provision == paying_users,
        format!("{provision}/{paying_users}: {provision_states}"),
    ));
    let (notify, notify_states) = jobs_of("notify");
    checks.push(check(
        "one notify job per paid order",
        notify == succeeded,
        format!("{notify}/{succeeded}: {notify_states}"),
    ));

    checks.push(extension_check);
    println!();
    for c in &checks {
        if c.ok {
            println!("{}: OK ({})", c.name, c.detail);
        } else {
            println!("FAILED: {}: {}", c.name, c.detail);
        }
    }
    let ok = checks.iter().all(|c| c.ok);
    println!(
        "RSS idle {idle_rss} MiB, peak {} MiB (the whole process: the app, both fakes with their \
         request recorders, and the {total} prepared deliveries)",
        status_mib("VmHWM:")
    );

    app.shutdown().await;
    drop(conn);
    if ok {
        db.drop().await?;
    } else {
        println!("database {} kept for inspection", db.name);
    }
    Ok(ok)
}
