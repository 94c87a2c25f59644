//! Database access: the connection pool, migrations, queries by aggregate and the local embedded
//! PostgreSQL cluster used when no `DATABASE_URL` is configured.
//!
//! Queries are functions over `&mut AsyncPgConnection`, so the same function runs inside or
//! outside a transaction; handlers and actors open the transactions.

pub mod admin_sessions;
pub mod admins;
pub mod alerts;
pub mod audit;
pub mod backup;
pub mod broadcasts;
pub mod email_logins;
pub mod embedded;
pub mod jobs;
pub mod link_codes;
pub mod models;
pub mod notifications;
pub mod paid_access;
pub mod panel_lock;
pub mod payments;
pub mod plans;
pub mod promo;
pub mod rate;
pub mod referrals;
pub mod scheduler;
pub mod schema;
pub mod sql_types;
pub mod stats;
pub mod subscriptions;
pub mod support;
pub mod support_posts;
pub mod sync;
pub mod telegram;
pub mod user_sessions;
pub mod users;

use std::time::Duration;

use anyhow::Context;
use diesel_async::async_connection_wrapper::AsyncConnectionWrapper;
use diesel_async::pooled_connection::{AsyncDieselConnectionManager, ManagerConfig};
use diesel_async::{AsyncConnection, AsyncPgConnection};
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};

pub use diesel_async::AsyncPgConnection as PgConn;

/// The pool every actor and handler draws connections from.
pub type PgPool = diesel_async::pooled_connection::deadpool::Pool<AsyncPgConnection>;
/// A connection checked out of [`PgPool`].
pub type PooledConn = diesel_async::pooled_connection::deadpool::Object<AsyncPgConnection>;
/// Why no connection could be had: timeout, or the server refused.
pub type PoolError = diesel_async::pooled_connection::deadpool::PoolError;

/// The migrations in `migrations/`, compiled into the binary.
pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations");

/// Key of the advisory lock that serialises migrations of replicas starting together.
const MIGRATION_LOCK_KEY: i64 = 0x7670_6e5f_6d69_6772; // "vpn_migr"

/// Builds the pool. Connections are made lazily; `connect_timeout` bounds both making a
/// connection and waiting for a free one, so a request fails with 503 instead of hanging.
pub fn build_pool(url: &str, max_size: usize, connect_timeout: Duration) -> anyhow::Result<PgPool> {
    let mut config = ManagerConfig::default();
    config.custom_setup = Box::new(move |url| {
        let url = url.to_owned();
        Box::pin(async move {
            match tokio::time::timeout(connect_timeout, AsyncPgConnection::establish(&url)).await {
                Ok(result) => result,
                Err(_) => Err(diesel::ConnectionError::BadConnection(format!(
                    "no answer from PostgreSQL within {connect_timeout:?}"
                ))),
            }
        })
    });
    let manager = AsyncDieselConnectionManager::<AsyncPgConnection>::new_with_config(url, config);
    PgPool::builder(manager)
        .max_size(max_size)
        .wait_timeout(Some(connect_timeout))
        .create_timeout(Some(connect_timeout))
        .recycle_timeout(Some(connect_timeout))
        .runtime(deadpool::Runtime::Tokio1)
        .build()
        .context("building the database pool")
}

/// Applies pending migrations and returns the versions applied (empty when up to date).
///
/// Runs on a blocking thread with diesel's synchronous migration harness over an
/// `AsyncConnectionWrapper` (diesel-async's own harness panics inside an actix System). An
/// advisory lock makes replicas that start together migrate one after the other.
pub async fn run_migrations(url: &str) -> anyhow::Result<Vec<String>> {
    let url = url.to_owned();
    tokio::task::spawn_blocking(move || -> anyhow::Result<Vec<String>> {
        let mut conn =
            <AsyncConnectionWrapper<AsyncPgConnection> as diesel::Connection>::establish(&url)
                .context("connecting to PostgreSQL to run migrations")?;
        diesel::RunQueryDsl::execute(
            diesel::sql_query("SELECT pg_advisory_lock($1)")
                .bind::<diesel::sql_types::BigInt, _>(MIGRATION_LOCK_KEY),
            &mut conn,
        )
        .context("taking the migration lock")?;
        let applied = conn
            .run_pending_migrations(MIGRATIONS)
            .map(|versions| versions.iter().map(|v| v.to_string()).collect())
            .map_err(|e| anyhow::anyhow!("applying migrations: {e}"));
        // The lock is released with the session anyway; unlocking early is a courtesy.
        let _ = diesel::RunQueryDsl::execute(
            diesel::sql_query("SELECT pg_advisory_unlock($1)")
                .bind::<diesel::sql_types::BigInt, _>(MIGRATION_LOCK_KEY),
            &mut conn,
        );
        applied
    })
    .await
    .context("migration thread failed")?
}

/// Checks that the database answers, within `timeout`.
pub async fn ping(pool: &PgPool, timeout: Duration) -> Result<(), String> {
    use diesel_async::RunQueryDsl;
    let check = async {
        let mut conn = pool.get().await.map_err(|e| e.to_string())?;
        diesel::sql_query("SELECT 1")
            .execute(&mut conn)
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    };
    match tokio::time::timeout(timeout, check).await {
        Ok(result) => result,
        Err(_) => Err(format!("no answer within {timeout:?}")),
    }
}
