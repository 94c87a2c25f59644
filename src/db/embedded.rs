//! The private PostgreSQL cluster that `vpn-shop serve` owns when no `DATABASE_URL` is configured
//! (tests start throwaway ones the same way): finds the installed server binaries, runs `initdb`
//! once, runs `postgres` as a child listening only on a private Unix socket, and stops it again.
//! `binaries` finds the installation, `location` decides where a data directory's cluster lives,
//! `cluster` prepares the directory, `process` runs the binaries.

mod binaries;
mod cluster;
mod location;
mod process;

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use diesel::QueryableByName;
use diesel::sql_types::{Integer, Text};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use tracing::{error, info, warn};

pub use binaries::find_server_binaries;
use binaries::major_version;
use cluster::{
    choose_socket_dir, create_private_dir, log_tail, open_log, prepare_cluster_dir, server_account,
    wait_for_previous_server,
};
pub use location::{ClusterLocation, Moved};
use process::{Keeper, initdb, server_command, server_version, spawn_keeper};

/// The superuser `initdb` creates; the application connects as it.
const SUPERUSER: &str = "vpn_shop";

/// With no TCP listener the port only names the socket file (`.s.PGSQL.5432`), and every cluster
/// has its own socket directory, so they can all use the default.
const PORT: u16 = 5432;

const READY_TIMEOUT: Duration = Duration::from_secs(60);

const CONNECT_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(5);

/// A PostgreSQL server running as a child of this process on a cluster directory it owns.
///
/// The server listens on a Unix socket only. It is stopped by [`EmbeddedPostgres::stop`], by
/// `Drop`, or — if this process dies without either — by its parent-death signal.
pub struct EmbeddedPostgres {
    cluster_dir: PathBuf,
    socket_dir: PathBuf,
    /// The socket directory lives under /tmp (path too long for `<cluster_dir>/run`); removed on stop.
    socket_dir_is_temporary: bool,
    database: String,
    /// `None` once the server has been stopped.
    keeper: Option<Keeper>,
}

impl EmbeddedPostgres {
    /// The cluster directory of `data_dir`: `<data dir>/postgres`; as root, when the `postgres`
    /// user cannot reach the data directory, `<fallback_base>/<data dir name>-<hash of its path>`.
    /// An existing cluster is found where it is. See [`location::locate`].
    pub async fn locate(data_dir: &Path, fallback_base: &Path) -> anyhow::Result<ClusterLocation> {
        location::locate(data_dir, fallback_base).await
    }

    /// Initialise the cluster in `cluster_dir` on first use (initdb), start `postgres` as a child
    /// process, wait until it accepts connections, and make sure database `database` exists.
    pub async fn start(cluster_dir: &Path, database: &str) -> anyhow::Result<Self> {
        let started = Instant::now();
        validate_database_name(database)?;
        let bin_dir = find_server_binaries()?;
        let account = server_account()?;

        let cluster_dir = prepare_cluster_dir(cluster_dir, account.as_ref())?;
        let binaries_version = server_version(&bin_dir, &cluster_dir, account.as_ref()).await?;
        wait_for_previous_server(&cluster_dir).await?;

        let version_file = cluster_dir.join("PG_VERSION");
        if !version_file.exists() {
            initdb(&bin_dir, &cluster_dir, account.as_ref()).await?;
        }
        let cluster_version = fs::read_to_string(&version_file)
            .with_context(|| format!("reading {}", version_file.display()))?
            .trim()
            .to_owned();
        if cluster_version != major_version(&binaries_version) {
            bail!(
                "the PostgreSQL cluster in {} was created by PostgreSQL {cluster_version} but the \
                 server binaries in {} are version {binaries_version}: upgrade the cluster \
                 (pg_upgrade) or install PostgreSQL {cluster_version}",
                cluster_dir.display(),
                bin_dir.display()
            );
        }

        let (socket_dir, socket_dir_is_temporary) = choose_socket_dir(&cluster_dir);
        create_private_dir(&socket_dir, account.as_ref())?;
        let log_dir = cluster_dir.join("log");
        create_private_dir(&log_dir, account.as_ref())?;
        let log_path = log_dir.join("postgres.log");
        let (log_file, log_offset) = open_log(&log_path, account.as_ref())?;

        let command = server_command(
            &bin_dir,
            &cluster_dir,
            &socket_dir,
            account.as_ref(),
            log_file,
        )?;
        let keeper = spawn_keeper(command).await?;
        let server = Self {
            cluster_dir,
            socket_dir,
            socket_dir_is_temporary,
            database: database.to_owned(),
            keeper: Some(keeper),
        };

        match server.become_ready(&log_path, log_offset).await {
            Ok(()) => {
                info!(
                    dir = %server.cluster_dir.display(),
                    version = %cluster_version,
                    socket = %server.socket_dir.display(),
                    elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
                    "embedded PostgreSQL ready"
                );
                Ok(server)
            }
            Err(start_error) => {
                if let Err(stop_error) = server.stop().await {
                    warn!(
                        error = format!("{stop_error:#}"),
                        "stopping the embedded PostgreSQL that failed to start"
                    );
                }
                Err(start_error)
            }
        }
    }

    /// libpq key/value DSN usable by tokio-postgres/diesel-async, e.g.
    /// "host=/path/to/socketdir port=5432 user=vpn_shop dbname=vpn_shop"
    pub fn database_url(&self) -> String {
        self.url_for_database(&self.database)
    }

    /// Same server, another database name (tests create databases through this).
    pub fn url_for_database(&self, database: &str) -> String {
        socket_dsn(&self.socket_dir, database)
    }

    /// The DSN of a server that another process (a running `vpn-shop serve`) already runs on
    /// `cluster_dir`, so that one-off commands (`migrate`, `admin create`) can use it instead of
    /// failing to start a second server. `None` when no server runs there.
    pub fn url_if_running(cluster_dir: &Path, database: &str) -> Option<String> {
        let cluster_dir = fs::canonicalize(cluster_dir).ok()?;
        let running = cluster::running_postmaster(&cluster_dir).ok()??;
        if running.stopping {
            return None;
        }
        let (socket_dir, _) = choose_socket_dir(&cluster_dir);
        Some(socket_dsn(&socket_dir, database))
    }

    /// Fast shutdown (SIGINT to the postmaster), wait for exit (bounded ~30 s, then SIGQUIT, then
    /// SIGKILL).
    pub async fn stop(mut self) -> anyhow::Result<()> {
        let Some(mut keeper) = self.keeper.take() else {
            return Ok(());
        };
        let result = keeper.shut_down().await;
        self.remove_temporary_socket_dir();
        result
    }

    /// Waits for the first connection, then creates the application database if it is missing.
    async fn become_ready(&self, log_path: &Path, log_offset: u64) -> anyhow::Result<()> {
        let keeper = self
            .keeper
            .as_ref()
            .context("the embedded PostgreSQL is not running")?;
        let url = self.url_for_database("postgres");
        let deadline = Instant::now() + READY_TIMEOUT;
        let mut conn = loop {
            if let Some(exit) = keeper.exit_report() {
                bail!(
                    "embedded PostgreSQL in {} exited during start-up ({exit}); last lines of {}:\n{}",
                    self.cluster_dir.display(),
                    log_path.display(),
                    log_tail(log_path, log_offset)
                );
            }
            let last_error = match tokio::time::timeout(
                CONNECT_ATTEMPT_TIMEOUT,
                AsyncPgConnection::establish(&url),
            )
            .await
            {
                Ok(Ok(conn)) => break conn,
                Ok(Err(error)) => error.to_string(),
                Err(_) => "connection attempt timed out".to_owned(),
            };
            if Instant::now() >= deadline {
                bail!(
                    "embedded PostgreSQL in {} did not accept connections within {} s (last error: \
                     {last_error}); last lines of {}:\n{}",
                    self.cluster_dir.display(),
                    READY_TIMEOUT.as_secs(),
                    log_path.display(),
                    log_tail(log_path, log_offset)
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        ensure_database(&mut conn, &self.database).await
    }

    fn remove_temporary_socket_dir(&self) {
        if self.socket_dir_is_temporary {
            // Only succeeds when empty: after a clean shutdown PostgreSQL removed its socket and lock.
            let _ = fs::remove_dir(&self.socket_dir);
        }
    }
}

impl Drop for EmbeddedPostgres {
    fn drop(&mut self) {
        if let Some(keeper) = self.keeper.take() {
            if let Err(error) = keeper.shut_down_blocking() {
                error!(
                    error = format!("{error:#}"),
                    "stopping the embedded PostgreSQL on drop"
                );
            }
            self.remove_temporary_socket_dir();
        }
    }
}

fn socket_dsn(socket_dir: &Path, database: &str) -> String {
    format!(
        "host={} port={PORT} user={SUPERUSER} dbname={}",
        dsn_value(&socket_dir.to_string_lossy()),
        dsn_value(database)
    )
}

fn validate_database_name(database: &str) -> anyhow::Result<()> {
    let valid = (1..=63).contains(&database.len())
        && database
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if !valid {
        bail!("invalid database name {database:?}: use 1 to 63 characters from a-z, 0-9 and _");
    }
    Ok(())
}

#[derive(QueryableByName)]
struct DatabasePresent {
    #[diesel(sql_type = Integer)]
    present: i32,
}

async fn ensure_database(conn: &mut AsyncPgConnection, database: &str) -> anyhow::Result<()> {
    let rows: Vec<DatabasePresent> =
        diesel::sql_query("SELECT 1 AS present FROM pg_database WHERE datname = $1")
            .bind::<Text, _>(database)
            .load(conn)
            .await
            .context("looking up the application database")?;
    if !rows.iter().any(|row| row.present == 1) {
        info!(database, "creating database");
        // The name was validated ([a-z0-9_]), so quoting it is enough; CREATE DATABASE takes no binds.
        diesel::sql_query(format!("CREATE DATABASE \"{database}\""))
            .execute(conn)
            .await
            .with_context(|| format!("creating database {database}"))?;
    }
    Ok(())
}

/// A value for a libpq key/value connection string, quoted when it needs to be.
fn dsn_value(value: &str) -> String {
    let plain = !value.is_empty()
        && value
            .chars()
            .all(|c| !c.is_whitespace() && c != '\'' && c != '\\');
    if plain {
        value.to_owned()
    } else {
        format!("'{}'", value.replace('\\', "\\\\").replace('\'', "\\'"))
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};

    use nix::errno::Errno;
    use nix::sys::signal::kill;
    use nix::unistd::Pid;
    use tempfile::TempDir;

    use super::*;

    /// A temp dir under /tmp that the `postgres` user can traverse when the tests run as root.
    fn cluster_parent() -> TempDir {
        let dir = tempfile::Builder::new()
            .prefix("vpn-shop-embedded-test-")
            .tempdir_in("/tmp")
            .expect("temp dir");
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).expect("chmod temp dir");
        dir
    }

    fn postmaster_pid(cluster_dir: &Path) -> i32 {
        let contents =
            fs::read_to_string(cluster_dir.join("postmaster.pid")).expect("postmaster.pid");
        contents
            .lines()
            .next()
            .expect("pid line")
            .trim()
            .parse()
            .expect("pid")
    }

    fn process_exists(pid: i32) -> bool {
        kill(Pid::from_raw(pid), None) != Err(Errno::ESRCH)
    }

    #[derive(QueryableByName)]
    struct Note {
        #[diesel(sql_type = Text)]
        body: String,
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn second_start_reuses_the_data() {
        let parent = cluster_parent();
        let cluster_dir = parent.path().join("postgres");

        let started = Instant::now();
        let pg = EmbeddedPostgres::start(&cluster_dir, "shop")
            .await
            .expect("first start");
        eprintln!("initdb + first start: {:?}", started.elapsed());
        assert!(
            pg.database_url().ends_with("dbname=shop"),
            "{}",
            pg.database_url()
        );
        let mut conn = AsyncPgConnection::establish(&pg.database_url())
            .await
            .expect("connect");
        diesel::sql_query("CREATE TABLE notes (body text NOT NULL)")
            .execute(&mut conn)
            .await
            .expect("create table");
        diesel::sql_query("INSERT INTO notes (body) VALUES ($1)")
            .bind::<Text, _>("kept across restarts")
            .execute(&mut conn)
            .await
            .expect("insert");
        drop(conn);
        pg.stop().await.expect("first stop");

        let started = Instant::now();
        let pg = EmbeddedPostgres::start(&cluster_dir, "shop")
            .await
            .expect("second start");
        eprintln!("restart: {:?}", started.elapsed());
        let mut conn = AsyncPgConnection::establish(&pg.database_url())
            .await
            .expect("reconnect");
        let notes: Vec<Note> = diesel::sql_query("SELECT body FROM notes")
            .load(&mut conn)
            .await
            .expect("select");
        assert_eq!(notes.len(), 1);
        assert_eq!(notes[0].body, "kept across restarts");
        drop(conn);
        let stopped = Instant::now();
        pg.stop().await.expect("second stop");
        eprintln!("stop: {:?}", stopped.elapsed());
        assert!(!cluster_dir.join("postmaster.pid").exists());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn drop_without_stop_ends_the_server() {
        let parent = cluster_parent();
        let cluster_dir = parent.path().join("postgres");
        let pg = EmbeddedPostgres::start(&cluster_dir, "shop")
            .await
            .expect("start");
        let pid = postmaster_pid(&cluster_dir);
        assert!(process_exists(pid));
        drop(pg);
        assert!(
            !process_exists(pid),
            "postmaster {pid} still exists after drop"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn second_server_on_a_running_cluster_is_refused() {
        let parent = cluster_parent();
        let cluster_dir = parent.path().join("postgres");
        let pg = EmbeddedPostgres::start(&cluster_dir, "shop")
            .await
            .expect("start");
        let pid = postmaster_pid(&cluster_dir);
        let error = match EmbeddedPostgres::start(&cluster_dir, "shop").await {
            Ok(_) => panic!("a second server started on a running cluster"),
            Err(error) => format!("{error:#}"),
        };
        assert!(error.contains(&format!("pid {pid}")), "{error}");
        assert!(
            error.contains(&cluster_dir.display().to_string()),
            "{error}"
        );
        pg.stop().await.expect("stop");
    }

    #[tokio::test]
    async fn unreachable_cluster_dir_is_named_when_running_as_root() {
        if !nix::unistd::geteuid().is_root() {
            return;
        }
        let parent = cluster_parent();
        let locked = parent.path().join("locked");
        fs::DirBuilder::new()
            .mode(0o700)
            .create(&locked)
            .expect("locked dir");
        let error = match EmbeddedPostgres::start(&locked.join("postgres"), "shop").await {
            Ok(_) => panic!("started in a dir the postgres user cannot reach"),
            Err(error) => format!("{error:#}"),
        };
        assert!(
            error.contains(&format!("{} is not accessible", locked.display())),
            "{error}"
        );
    }

    #[test]
    fn database_names_are_validated() {
        assert!(validate_database_name("vpn_shop_2").is_ok());
        for bad in ["", "Shop", "a-b", "x\"; DROP", &"a".repeat(64)] {
            assert!(validate_database_name(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn dsn_values_are_quoted_when_needed() {
        assert_eq!(dsn_value("/tmp/x"), "/tmp/x");
        assert_eq!(dsn_value("a b'c"), r"'a b\'c'");
    }
}
