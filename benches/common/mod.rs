//! What the benchmarks share: a database of their own on the test server, the app started on it
//! with the fakes' URLs, and memory readings.

#![allow(dead_code)] // each benchmark uses part of it

#[path = "../../tests/it/support/pg.rs"]
pub mod pg;

use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use vpn_shop::app::RunningApp;
use vpn_shop::config::{RawConfig, Settings};

/// An integer setting of the benchmark from the environment.
pub fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Fewer samples than this and the 99th percentile is one of the few slowest: the tail is then
/// reported as the maximum of N instead.
pub const P99_MIN_SAMPLES: usize = 1_000;

/// Latencies of one measurement, sorted; warm-up samples are never in here.
pub struct Latencies(Vec<std::time::Duration>);

impl Latencies {
    pub fn new(mut samples: Vec<std::time::Duration>) -> Latencies {
        samples.sort_unstable();
        Latencies(samples)
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The `q`-quantile in milliseconds (nearest rank; 0 without samples).
    pub fn quantile_ms(&self, q: f64) -> f64 {
        match self.0.len() {
            0 => 0.0,
            n => self.0[((n - 1) as f64 * q).round() as usize].as_secs_f64() * 1000.0,
        }
    }

    pub fn p50_ms(&self) -> f64 {
        self.quantile_ms(0.5)
    }

    pub fn max_ms(&self) -> f64 {
        self.quantile_ms(1.0)
    }

    /// Whether there are enough samples for a 99th percentile.
    pub fn has_p99(&self) -> bool {
        self.0.len() >= P99_MIN_SAMPLES
    }

    /// The 99th percentile with enough samples, otherwise the maximum: what the tail column shows
    /// and what a target on the p99 is compared with.
    pub fn tail_ms(&self) -> f64 {
        if self.has_p99() {
            self.quantile_ms(0.99)
        } else {
            self.max_ms()
        }
    }

    /// `p99 12.3 ms`, or `max of 200: 23.4 ms` with fewer than [`P99_MIN_SAMPLES`].
    pub fn tail(&self) -> String {
        if self.has_p99() {
            format!("p99 {}", ms(self.tail_ms()))
        } else {
            format!("max of {}: {}", self.0.len(), ms(self.tail_ms()))
        }
    }
}

/// Milliseconds with the digits that mean something: one decimal below 100 ms, none from 100 ms,
/// seconds with two decimals from 1 s.
pub fn ms(v: f64) -> String {
    if v >= 1_000.0 {
        format!("{:.2} s", v / 1000.0)
    } else if v >= 100.0 {
        format!("{v:.0} ms")
    } else {
        format!("{v:.1} ms")
    }
}

/// xorshift64: deterministic randomness without a dependency (a seed gives the same run).
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    /// Uniform in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    /// Uniform in `[lo, hi)`.
    pub fn between(&mut self, lo: f64, hi: f64) -> f64 {
        let f = (self.next() % 1_000_000) as f64 / 1_000_000.0;
        lo + (hi - lo) * f
    }

    /// Uniform in `[lo, hi)` seconds.
    pub fn secs(&mut self, lo: f64, hi: f64) -> std::time::Duration {
        std::time::Duration::from_secs_f64(self.between(lo, hi))
    }
}

/// A `/proc/self/status` field (`VmRSS:` now, `VmHWM:` the peak) in KiB.
pub fn status_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// The same in MiB.
pub fn status_mib(field: &str) -> u64 {
    status_kib(field) / 1024
}

/// A fresh, migrated database on `TEST_DATABASE_URL`'s server or a throwaway cluster (as the
/// tests use), dropped by [`BenchDb::drop`].
pub struct BenchDb {
    admin: AsyncPgConnection,
    pub name: String,
    pub url: String,
}

impl BenchDb {
    pub async fn create(tag: &str) -> anyhow::Result<BenchDb> {
        let server = pg::server().await;
        Self::create_on(|database| server.url_for(database), tag).await
    }

    /// The same on another server, given as the URL of each of its databases.
    pub async fn create_on(url_for: impl Fn(&str) -> String, tag: &str) -> anyhow::Result<BenchDb> {
        let name = format!("vpnshop_bench_{tag}_{}", std::process::id());
        let mut admin = AsyncPgConnection::establish(&url_for("postgres")).await?;
        diesel::sql_query(format!("DROP DATABASE IF EXISTS {name}"))
            .execute(&mut admin)
            .await?;
        diesel::sql_query(format!("CREATE DATABASE {name}"))
            .execute(&mut admin)
            .await?;
        let url = url_for(&name);
        vpn_shop::db::run_migrations(&url).await?;
        Ok(BenchDb { admin, name, url })
    }

    pub async fn connect(&self) -> anyhow::Result<AsyncPgConnection> {
        Ok(AsyncPgConnection::establish(&self.url).await?)
    }

    pub async fn drop(mut self) -> anyhow::Result<()> {
        diesel::sql_query(format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            self.name
        ))
        .execute(&mut self.admin)
        .await?;
        Ok(())
    }
}

/// The whole app on `db`, with these settings on top of a private data directory and an
/// ephemeral HTTP port; logs at `warn`.
pub async fn start_app(
    db: &BenchDb,
    vars: &[(&str, &str)],
) -> anyhow::Result<(RunningApp, tempfile::TempDir)> {
    let (app, data_dir, _) = start_app_with_settings(db, vars).await?;
    Ok((app, data_dir))
}

/// [`start_app`], also returning the settings the app runs with (to print what it used).
pub async fn start_app_with_settings(
    db: &BenchDb,
    vars: &[(&str, &str)],
) -> anyhow::Result<(RunningApp, tempfile::TempDir, Settings)> {
    let data_dir = tempfile::tempdir()?;
    let dir = data_dir.path().display().to_string();
    let base = [
        ("DATABASE_URL", db.url.as_str()),
        ("DATA_DIR", dir.as_str()),
        ("HTTP_BIND", "127.0.0.1:0"),
        ("JWT_SECRET", "bench-secret-bench-secret-bench-secret-0123"),
        ("RUST_LOG", "warn"),
    ];
    let raw = RawConfig::layered(
        None,
        None,
        base.iter()
            .chain(vars)
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
    )?;
    let settings = Settings::from_raw(&raw)?;
    let app = vpn_shop::app::start(&settings, &db.url).await?;
    Ok((app, data_dir, settings))
}

/// A shop-sized database, made by PostgreSQL itself (a few seconds): `users` users (70 % with a
/// subscription, 10 % invited by another user, a quarter without a username), `payments`
/// payments over a year on the migrations' plans (80 % paid, by YooKassa, WATA and Stars).
pub async fn seed_shop(
    conn: &mut diesel_async::AsyncPgConnection,
    users: u64,
    payments: u64,
) -> anyhow::Result<()> {
    let statements = [
        format!(
            "INSERT INTO users (telegram_id, username, first_name, language, email, referral_code, \
                 trial_used_at, banned, created_at, last_seen_at) \
             SELECT 100000000 + g, CASE WHEN g % 4 <> 0 THEN 'user_' || g END, 'Name ' || g, \
                 CASE WHEN g % 3 = 0 THEN 'en' ELSE 'ru' END, \
                 CASE WHEN g % 5 = 0 THEN 'user' || g || '@example.com' END, 'ref' || g, \
                 CASE WHEN g % 10 < 4 THEN now() - (g % 365) * interval '1 day' END, g % 200 = 0, \
                 now() - ((g * 7919) % (365 * 24 * 60)) * interval '1 minute', \
                 now() - (g % 1000) * interval '1 minute' \
             FROM generate_series(1, {users}) g"
        ),
        "INSERT INTO referrals (inviter_id, invitee_id, invitee_bonus_days, inviter_bonus_days, created_at) \
         SELECT 1 + (u.id * 31) % (u.id - 1), u.id, 7, CASE WHEN u.id % 20 = 0 THEN 30 ELSE 0 END, u.created_at \
         FROM users u WHERE u.id % 10 = 0 AND u.id > 1"
            .to_owned(),
        "UPDATE users u SET referred_by = r.inviter_id FROM referrals r WHERE r.invitee_id = u.id".to_owned(),
        "INSERT INTO subscriptions (user_id, plan_id, panel_username, status, is_trial, expires_at, \
             traffic_used_bytes, subscription_url, created_at) \
         SELECT u.id, (SELECT id FROM plans ORDER BY id LIMIT 1), 'vpnshop_' || u.telegram_id, \
             CASE WHEN u.id % 7 < 5 THEN 'active' ELSE 'expired' END, u.id % 10 = 1, \
             CASE WHEN u.id % 7 < 5 THEN now() + (u.id % 60) * interval '1 day' \
                  ELSE now() - (u.id % 90) * interval '1 day' END, \
             (u.id % 1000) * 1048576, 'https://panel.example.com/sub/' || u.id, u.created_at \
         FROM users u WHERE u.id % 10 < 7"
            .to_owned(),
        format!(
            "INSERT INTO payments (user_id, plan_id, provider, status, amount_minor, currency, days, \
                 external_id, paid_at, created_at) \
             SELECT 1 + (g * 7) % {users}, p.id, \
                 (ARRAY['yookassa', 'wata', 'stars'])[1 + g % 3], \
                 CASE WHEN g % 10 < 8 THEN 'succeeded' WHEN g % 10 = 8 THEN 'canceled' ELSE 'expired' END, \
                 CASE WHEN g % 3 = 2 THEN p.price_stars ELSE p.price_minor END, \
                 CASE WHEN g % 3 = 2 THEN 'XTR' ELSE 'RUB' END, p.days, 'bench-' || g, \
                 CASE WHEN g % 10 < 8 THEN now() - (g % 525600) * interval '1 minute' END, \
                 now() - (g % 525600) * interval '1 minute' \
             FROM generate_series(1, {payments}) g \
             JOIN plans p ON p.id = (SELECT id FROM plans ORDER BY id OFFSET g % 4 LIMIT 1)"
        ),
        // What autovacuum would have done by now: statistics, and the visibility map that lets
        // the statistics' index-only scans skip the table.
        "VACUUM ANALYZE".to_owned(),
    ];
    for sql in statements {
        diesel::sql_query(sql).execute(conn).await?;
    }
    Ok(())
}

/// The plan the benchmarks sell: "Month", 30 days, 299 ₽.
pub const PLAN_DAYS: i32 = 30;
pub const PLAN_PRICE_MINOR: i64 = 29_900;

#[derive(diesel::QueryableByName)]
struct Id {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    id: i64,
}

/// The plan, and `n` English-speaking users with Telegram ids `first_telegram_id + 1 ..= + n`:
/// the plan's id and the users' ids, in that order.
pub async fn plan_and_users(
    conn: &mut AsyncPgConnection,
    first_telegram_id: i64,
    n: usize,
) -> anyhow::Result<(i64, Vec<i64>)> {
    let plan = diesel::sql_query(format!(
        "INSERT INTO plans (name, days, price_minor) \
         VALUES ('Month', {PLAN_DAYS}, {PLAN_PRICE_MINOR}) RETURNING id"
    ))
    .get_result::<Id>(conn)
    .await?
    .id;
    let users = diesel::sql_query(format!(
        "INSERT INTO users (telegram_id, referral_code, language) \
         SELECT {first_telegram_id} + g, 'bench' || g, 'en' FROM generate_series(1, {n}) g \
         RETURNING id"
    ))
    .load::<Id>(conn)
    .await?
    .into_iter()
    .map(|r| r.id)
    .collect();
    Ok((plan, users))
}

/// Orders for `users` (ids of `users` rows) on `plan` through the real checkout
/// (`CreateCheckout` to the PaymentProcessor), the `i`-th user's at `provider_of(i)`, each a
/// payment page; `concurrency` at once.
pub async fn checkouts(
    app: &RunningApp,
    users: &[i64],
    plan: i64,
    provider_of: impl Fn(usize) -> vpn_shop::domain::PaymentProvider,
    concurrency: usize,
) -> anyhow::Result<()> {
    use futures_util::{StreamExt, stream};
    use vpn_shop::actors::payments::{Checkout, CreateCheckout};
    use vpn_shop::domain::{PlanId, UserId};

    let payments = app.payments.addr();
    let created: Vec<Result<(), String>> = stream::iter(users.iter().enumerate())
        .map(|(i, &user)| {
            let payments = payments.clone();
            let provider = provider_of(i);
            async move {
                let checkout = payments
                    .send(CreateCheckout {
                        user_id: UserId(user),
                        plan_id: PlanId(plan),
                        provider,
                        promo_code: None,
                        auto_renew: false,
                        return_to: vpn_shop::actors::payments::ReturnTo::Bot,
                    })
                    .await;
                match checkout {
                    Ok(Ok(Checkout::Redirect { .. })) => Ok(()),
                    Ok(Ok(other)) => Err(format!("unexpected checkout {other:?}")),
                    Ok(Err(e)) => Err(e.to_string()),
                    Err(e) => Err(e.to_string()),
                }
            }
        })
        .buffer_unordered(concurrency)
        .collect()
        .await;
    if let Some(Err(e)) = created.iter().find(|r| r.is_err()) {
        anyhow::bail!(
            "{} of {} checkouts failed, e.g.: {e}",
            created.iter().filter(|r| r.is_err()).count(),
            users.len()
        );
    }
    Ok(())
}

#[derive(diesel::QueryableByName)]
struct OrderRow {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    telegram_id: i64,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
    external_id: Option<String>,
}

/// A YooKassa order for each of `users` through the real checkout ([`checkouts`]), read back as
/// (Telegram id of its user, YooKassa payment id) in the order they were created.
pub async fn yookassa_orders(
    conn: &mut AsyncPgConnection,
    app: &RunningApp,
    users: &[i64],
    plan: i64,
    concurrency: usize,
) -> anyhow::Result<Vec<(i64, String)>> {
    checkouts(
        app,
        users,
        plan,
        |_| vpn_shop::domain::PaymentProvider::Yookassa,
        concurrency,
    )
    .await?;
    let rows: Vec<OrderRow> = diesel::sql_query(
        "SELECT u.telegram_id, p.external_id FROM payments p JOIN users u ON u.id = p.user_id \
         ORDER BY p.id",
    )
    .load(conn)
    .await?;
    anyhow::ensure!(
        rows.len() == users.len(),
        "{} orders, not {}",
        rows.len(),
        users.len()
    );
    rows.into_iter()
        .map(|row| {
            let external = row.external_id.ok_or_else(|| {
                anyhow::anyhow!("an order of {} has no external id", row.telegram_id)
            })?;
            Ok((row.telegram_id, external))
        })
        .collect()
}
