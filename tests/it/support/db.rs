//! A fresh database per test, cloned from a template migrated once per schema (kept between
//! test processes, named after a digest of `migrations/`).

use std::sync::atomic::{AtomicU32, Ordering};

use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use tokio::sync::{Mutex, OnceCell};
use vpn_shop::db::{self, PgPool};

use super::pg;

static TEMPLATE: OnceCell<String> = OnceCell::const_new();
/// CREATE DATABASE … TEMPLATE must not run while anything is connected to the template.
static CLONE_LOCK: Mutex<()> = Mutex::const_new(());
static NEXT: AtomicU32 = AtomicU32::new(0);

/// Prefix of every database the tests create; the pid follows, so leftovers of dead test
/// processes can be recognised and removed.
const PREFIX: &str = "vpnshop_test_";

/// Prefix of the kept templates; the digest of `migrations/` follows.
const TEMPLATE_PREFIX: &str = "vpnshop_tpl_";
/// The advisory lock under which a test process looks for this schema's template and builds it.
const TEMPLATE_LOCK: i64 = 7_364_836;

/// A database of its own for one test; dropped (best effort) when the value is dropped.
pub struct TestDb {
    pub name: String,
    pub url: String,
    admin_url: String,
}

async fn admin_connection() -> (AsyncPgConnection, String) {
    let admin_url = pg::server().await.url_for("postgres");
    let conn = AsyncPgConnection::establish(&admin_url)
        .await
        .unwrap_or_else(|e| panic!("connecting to the test server: {e}"));
    (conn, admin_url)
}

/// The migrated template of this schema: `vpnshop_tpl_<digest of migrations/>`, kept between
/// test processes so that only the first run after a change of `migrations/` pays for migrating
/// (~1.6 s on 2 cores). It is built under a name of this process and renamed when complete, under
/// an advisory lock, so that a process killed half-way or two processes starting at once never
/// leave or use a half-migrated template.
async fn template() -> &'static str {
    TEMPLATE
        .get_or_init(|| async {
            let (mut conn, _) = admin_connection().await;
            drop_leftovers(&mut conn).await;
            let name = template_name();
            execute(
                &mut conn,
                &format!("SELECT pg_advisory_lock({TEMPLATE_LOCK})"),
            )
            .await;
            if !database_exists(&mut conn, &name).await {
                let building = format!("{PREFIX}{}_template", std::process::id());
                execute(
                    &mut conn,
                    &format!("DROP DATABASE IF EXISTS {building} WITH (FORCE)"),
                )
                .await;
                execute(&mut conn, &format!("CREATE DATABASE {building}")).await;
                let url = pg::server().await.url_for(&building);
                db::run_migrations(&url)
                    .await
                    .unwrap_or_else(|e| panic!("migrating the template database: {e:#}"));
                execute(
                    &mut conn,
                    &format!("ALTER DATABASE {building} RENAME TO {name}"),
                )
                .await;
                let now = chrono::Utc::now().timestamp();
                execute(&mut conn, &format!("COMMENT ON DATABASE {name} IS '{now}'")).await;
            }
            execute(
                &mut conn,
                &format!("SELECT pg_advisory_unlock({TEMPLATE_LOCK})"),
            )
            .await;
            name
        })
        .await
}

/// This schema's template: the prefix and the digest of `migrations/` made by `build.rs`.
fn template_name() -> String {
    format!("{TEMPLATE_PREFIX}{}", env!("VPN_SHOP_MIGRATIONS_DIGEST"))
}

async fn database_exists(conn: &mut AsyncPgConnection, name: &str) -> bool {
    #[derive(diesel::QueryableByName)]
    struct Count {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let Count { n } = diesel::sql_query("SELECT count(*) AS n FROM pg_database WHERE datname = $1")
        .bind::<diesel::sql_types::Text, _>(name)
        .get_result(conn)
        .await
        .unwrap_or_else(|e| panic!("looking for database {name}: {e}"));
    n > 0
}

async fn execute(conn: &mut AsyncPgConnection, sql: &str) {
    diesel::sql_query(sql)
        .execute(conn)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

#[derive(diesel::QueryableByName)]
struct Name {
    #[diesel(sql_type = diesel::sql_types::Text)]
    datname: String,
}

/// Drops databases left by test processes that no longer run, and templates of other schemas
/// unused for a day.
async fn drop_leftovers(conn: &mut AsyncPgConnection) {
    let names: Vec<Name> = diesel::sql_query(format!(
        "SELECT datname::text AS datname FROM pg_database WHERE datname LIKE '{PREFIX}%'"
    ))
    .load(conn)
    .await
    .unwrap_or_default();
    for Name { datname } in names {
        let pid = datname
            .strip_prefix(PREFIX)
            .and_then(|rest| rest.split('_').next())
            .and_then(|pid| pid.parse::<i32>().ok());
        let Some(pid) = pid else { continue };
        if pid != std::process::id() as i32
            && !std::path::Path::new(&format!("/proc/{pid}")).exists()
        {
            let _ = diesel::sql_query(format!("DROP DATABASE IF EXISTS {datname} WITH (FORCE)"))
                .execute(conn)
                .await;
        }
    }
    // Templates of other schemas (another branch, an older commit) untouched for a day. Without
    // FORCE: a template in use is left alone.
    let stale: Vec<Name> = diesel::sql_query(format!(
        "SELECT datname::text AS datname FROM pg_database \
         WHERE datname LIKE '{TEMPLATE_PREFIX}%' AND datname <> '{}' \
         AND coalesce(shobj_description(oid, 'pg_database'), '0') ~ '^[0-9]+$' \
         AND shobj_description(oid, 'pg_database')::bigint < extract(epoch FROM now()) - 86400",
        template_name()
    ))
    .load(conn)
    .await
    .unwrap_or_default();
    for Name { datname } in stale {
        let _ = diesel::sql_query(format!("DROP DATABASE IF EXISTS {datname}"))
            .execute(conn)
            .await;
    }
}

impl TestDb {
    /// A new database with every migration applied.
    pub async fn new() -> TestDb {
        let template = template().await;
        let name = format!(
            "{PREFIX}{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let (mut conn, admin_url) = admin_connection().await;
        {
            let _guard = CLONE_LOCK.lock().await;
            execute(
                &mut conn,
                &format!("CREATE DATABASE {name} TEMPLATE {template}"),
            )
            .await;
        }
        let url = pg::server().await.url_for(&name);
        TestDb {
            name,
            url,
            admin_url,
        }
    }

    /// An empty database with no migrations (for migration tests).
    pub async fn empty() -> TestDb {
        let name = format!(
            "{PREFIX}{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let (mut conn, admin_url) = admin_connection().await;
        execute(&mut conn, &format!("CREATE DATABASE {name}")).await;
        let url = pg::server().await.url_for(&name);
        TestDb {
            name,
            url,
            admin_url,
        }
    }

    pub fn pool(&self) -> PgPool {
        db::build_pool(&self.url, 8, std::time::Duration::from_secs(5)).expect("building a pool")
    }

    pub async fn connect(&self) -> AsyncPgConnection {
        AsyncPgConnection::establish(&self.url)
            .await
            .unwrap_or_else(|e| panic!("connecting to {}: {e}", self.name))
    }

    /// Waits until the panel jobs an app runs once at start (the five syncs and the health
    /// probe, `GET /api/system`) are over, so that they do not mix with what a test does with
    /// the panel. One query: counting busy and finished jobs separately races with the tick that
    /// enqueues them.
    pub async fn wait_start_up_panel_jobs(&self) {
        use diesel::{BoolExpressionMethods, ExpressionMethods, QueryDsl, TextExpressionMethods};
        use vpn_shop::actors::marzban::PROBE_PANEL;
        use vpn_shop::db::schema::jobs;
        use vpn_shop::domain::JobState;
        super::wait_until("the start-up syncs and health probe", || async {
            let finished: i64 = jobs::table
                .filter(jobs::kind.like("panel\\_%").or(jobs::kind.eq(PROBE_PANEL)))
                .filter(jobs::state.eq_any([JobState::Done, JobState::Dead]))
                .count()
                .get_result(&mut self.connect().await)
                .await
                .unwrap();
            finished == 6
        })
        .await;
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        // Outside of the test's runtime (it may be shutting down): a thread with its own.
        let (admin_url, name) = (self.admin_url.clone(), self.name.clone());
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async {
                if let Ok(mut conn) = AsyncPgConnection::establish(&admin_url).await {
                    let _ =
                        diesel::sql_query(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                            .execute(&mut conn)
                            .await;
                }
            });
        })
        .join();
    }
}

/// A subscriber, as the bot and payments leave them: a user and (when `expires_at` is given) a
/// subscription with the panel username `vpnshop_<telegram id>`.
pub struct Subscriber {
    pub telegram_id: i64,
    pub language: vpn_shop::domain::Language,
    pub email: Option<&'static str>,
    pub status: vpn_shop::domain::SubscriptionStatus,
    pub expires_at: Option<chrono::DateTime<chrono::Utc>>,
    pub traffic_limit: Option<i64>,
    pub is_trial: bool,
}

impl Subscriber {
    pub fn new(telegram_id: i64) -> Self {
        Subscriber {
            telegram_id,
            language: vpn_shop::domain::Language::En,
            email: None,
            status: vpn_shop::domain::SubscriptionStatus::Active,
            expires_at: None,
            traffic_limit: None,
            is_trial: false,
        }
    }

    pub async fn insert(self, conn: &mut AsyncPgConnection) -> vpn_shop::domain::UserId {
        use diesel::ExpressionMethods;
        use vpn_shop::db::schema::{subscriptions, users};
        let user_id = diesel::insert_into(users::table)
            .values((
                users::telegram_id.eq(self.telegram_id),
                users::referral_code.eq(format!("ref{}", self.telegram_id)),
                users::language.eq(self.language),
                users::email.eq(self.email),
            ))
            .returning(users::id)
            .get_result(conn)
            .await
            .expect("insert user");
        if let Some(expires_at) = self.expires_at {
            diesel::insert_into(subscriptions::table)
                .values((
                    subscriptions::user_id.eq(user_id),
                    subscriptions::panel_username.eq(vpn_shop::domain::panel::panel_username(
                        "vpnshop_",
                        user_id,
                        Some(self.telegram_id),
                    )),
                    subscriptions::status.eq(self.status),
                    subscriptions::expires_at.eq(expires_at),
                    subscriptions::traffic_limit_bytes.eq(self.traffic_limit),
                    subscriptions::is_trial.eq(self.is_trial),
                ))
                .execute(conn)
                .await
                .expect("insert subscription");
        }
        user_id
    }
}
