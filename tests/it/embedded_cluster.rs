//! The embedded PostgreSQL as `vpn-shop serve` owns it: where the cluster lives (also as root under
//! a private home directory), that it stops when `serve` is killed; and the shared test server
//! (`support::pg`), started once per test process, accepting connections from every test's runtime.

use crate::support;

use std::fs;
use std::net::TcpListener;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use diesel::QueryableByName;
use diesel::sql_types::{BigInt, Integer};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use nix::sys::signal::{Signal, kill};
use nix::unistd::{Pid, User, geteuid};
use vpn_shop::db::embedded::EmbeddedPostgres;

#[derive(QueryableByName)]
struct One {
    #[diesel(sql_type = Integer)]
    one: i32,
}

async fn select_one(url: &str) -> i32 {
    let mut conn = AsyncPgConnection::establish(url)
        .await
        .unwrap_or_else(|error| panic!("connecting to {url}: {error}"));
    let rows: Vec<One> = diesel::sql_query("SELECT 1 AS one")
        .load(&mut conn)
        .await
        .expect("SELECT 1");
    rows[0].one
}

#[tokio::test]
async fn the_test_server_is_started_once_and_accepts_connections() {
    let first = support::pg::server().await;
    let second = support::pg::server().await;
    assert!(
        std::ptr::eq(first, second),
        "server() started a second instance"
    );
    assert_eq!(select_one(&first.url_for("postgres")).await, 1);
}

#[tokio::test]
async fn another_test_runtime_shares_the_same_server() {
    let server = support::pg::server().await;
    assert_eq!(select_one(&server.url_for("postgres")).await, 1);
}

#[test]
fn urls_get_the_database_replaced() {
    let cases = [
        (
            "postgres://postgres@127.0.0.1:5432/postgres",
            "postgres://postgres@127.0.0.1:5432/t1",
        ),
        (
            "postgres://u:p@h/db?sslmode=disable",
            "postgres://u:p@h/t1?sslmode=disable",
        ),
        ("postgresql://h:5432", "postgresql://h:5432/t1"),
        (
            "postgres://h?application_name=x",
            "postgres://h/t1?application_name=x",
        ),
    ];
    for (url, expected) in cases {
        assert_eq!(support::pg::url_with_database(url, "t1"), expected);
    }
}

#[test]
fn dsns_get_the_database_replaced_or_added() {
    assert_eq!(
        support::pg::dsn_with_database("host=/run/pg port=5432 dbname=old user=x", "t1"),
        "host=/run/pg port=5432 user=x dbname=t1"
    );
    assert_eq!(
        support::pg::dsn_with_database("host = '/my dir' password='a\\'b'", "t1"),
        "host='/my dir' password='a\\'b' dbname=t1"
    );
}

const BIN: &str = env!("CARGO_BIN_EXE_vpn-shop");

const ADMIN_PASSWORD: &str = "a long enough password";

/// A `vpn-shop serve` child on a free port, its stderr kept in a file to show when it fails.
struct Serve {
    child: Child,
    port: u16,
    stderr: PathBuf,
}

impl Serve {
    /// `vpn-shop` as a user runs it from `cwd` (a clean environment plus `env`: no DATABASE_URL, so
    /// the embedded cluster in the default `./data`); stderr goes to `<logs>/<name>.stderr`.
    fn spawn(cwd: &Path, env: &[(&str, &str)], logs: &Path, name: &str) -> Serve {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("free port")
            .port();
        let stderr = logs.join(format!("{name}.stderr"));
        let child = vpn_shop(cwd, env)
            .env("HTTP_BIND", format!("127.0.0.1:{port}"))
            .arg("serve")
            .stdout(Stdio::null())
            .stderr(fs::File::create(&stderr).expect("stderr file"))
            .spawn()
            .expect("spawning vpn-shop serve");
        Serve {
            child,
            port,
            stderr,
        }
    }

    fn stderr(&self) -> String {
        fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Until `/ready` answers 200 (the database and every actor are up).
    async fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(response) = reqwest::get(self.url("/ready")).await
                && response.status() == 200
            {
                return;
            }
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                panic!("serve exited early with {status}:\n{}", self.stderr());
            }
            assert!(
                Instant::now() < deadline,
                "serve not ready within 60 s:\n{}",
                self.stderr()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn signal(&mut self, signal: Signal) -> ExitStatus {
        let pid = i32::try_from(self.child.id()).expect("pid");
        kill(Pid::from_raw(pid), signal).expect("signalling serve");
        self.child.wait().expect("waiting for serve")
    }
}

/// The binary with a clean environment, in `cwd` (so no stray .env is read).
fn vpn_shop(cwd: &Path, env: &[(&str, &str)]) -> Command {
    let mut command = Command::new(BIN);
    command
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .current_dir(cwd)
        .stdin(Stdio::null());
    for (name, value) in env {
        command.env(name, value);
    }
    command
}

fn postmaster_pid(cluster_dir: &Path) -> i32 {
    let contents = fs::read_to_string(cluster_dir.join("postmaster.pid"))
        .unwrap_or_else(|error| panic!("{}/postmaster.pid: {error}", cluster_dir.display()));
    contents
        .lines()
        .next()
        .and_then(|line| line.trim().parse().ok())
        .expect("pid on the first line of postmaster.pid")
}

/// Alive and not a zombie (in a container nobody may reap an orphan that exited).
fn process_running(pid: i32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        stat.rsplit_once(')')
            .is_some_and(|(_, rest)| !rest.trim_start().starts_with(['Z', 'X']))
    })
}

/// A temp dir under /tmp that the `postgres` user can traverse when the tests run as root.
fn shared_temp_dir(prefix: &str) -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix(prefix)
        .tempdir_in("/tmp")
        .expect("temp dir");
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).expect("chmod 755");
    dir
}

/// What a killed `serve` leaves behind: nothing. The cluster's server gets the parent-death signal
/// and shuts down, and the next `serve` starts on the same cluster.
#[tokio::test]
async fn the_cluster_stops_when_serve_is_killed() {
    let shop = shared_temp_dir("vpn-shop-killed-");
    let mut first = Serve::spawn(shop.path(), &[], shop.path(), "first");
    first.wait_ready().await;
    let cluster_dir = shop.path().join("data/postgres");
    let pid = postmaster_pid(&cluster_dir);
    assert!(process_running(pid));

    let status = first.signal(Signal::SIGKILL);
    assert_eq!(status.signal(), Some(Signal::SIGKILL as i32), "{status}");
    let deadline = Instant::now() + Duration::from_secs(10);
    while process_running(pid) {
        assert!(
            Instant::now() < deadline,
            "postmaster {pid} outlived the killed serve"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let mut second = Serve::spawn(shop.path(), &[], shop.path(), "second");
    second.wait_ready().await;
    assert_ne!(postmaster_pid(&cluster_dir), pid);
    assert!(
        second.signal(Signal::SIGTERM).success(),
        "{}",
        second.stderr()
    );
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

/// The new user: logged in as root, `git clone … && cd vpn-shop && cargo run -- serve` in
/// a home directory that is 0700. The `postgres` user cannot reach `./data`, so the cluster lives
/// under EMBEDDED_POSTGRES_FALLBACK_DIR (here a temp dir instead of /var/lib/vpn-shop), named
/// after the data dir; `serve` says so; the other files stay in `./data`; a one-off command and
/// the next start find the same cluster.
#[tokio::test]
async fn as_root_in_a_private_home_serve_keeps_the_cluster_where_postgres_can_reach_it() {
    if !geteuid().is_root() {
        eprintln!("skipped: only root runs the cluster as another user");
        return;
    }
    let postgres = User::from_name("postgres")
        .expect("looking up postgres")
        .expect("the postgres user (the PostgreSQL package creates it)");
    let home = tempfile::Builder::new()
        .prefix("vpn-shop-root-home-")
        .tempdir_in("/tmp")
        .expect("home dir");
    // Like /root.
    fs::set_permissions(home.path(), fs::Permissions::from_mode(0o700)).expect("chmod 700");
    let shop = home.path().join("vpn-shop");
    fs::create_dir(&shop).unwrap();
    let lib = shared_temp_dir("vpn-shop-var-lib-");
    let base = lib.path().join("vpn-shop");
    let base_arg = base.display().to_string();
    let env = [("EMBEDDED_POSTGRES_FALLBACK_DIR", base_arg.as_str())];

    let mut first = Serve::spawn(&shop, &env, home.path(), "first");
    first.wait_ready().await;

    let clusters: Vec<PathBuf> = fs::read_dir(&base)
        .unwrap_or_else(|error| panic!("{}: {error}\n{}", base.display(), first.stderr()))
        .map(|entry| entry.unwrap().path())
        .collect();
    assert_eq!(clusters.len(), 1, "{clusters:?}");
    let cluster = &clusters[0];
    let name = cluster.file_name().unwrap().to_string_lossy().into_owned();
    assert!(
        name.starts_with("data-"),
        "named after the data dir: {name}"
    );
    assert!(cluster.join("PG_VERSION").exists());
    let meta = fs::metadata(cluster).unwrap();
    assert_eq!(meta.uid(), postgres.uid.as_raw(), "owned by postgres");
    assert_eq!(meta.mode() & 0o777, 0o700);
    assert!(!shop.join("data/postgres/PG_VERSION").exists());
    let said = first.stderr();
    assert!(
        said.contains(&cluster.display().to_string()) && said.contains("cannot reach"),
        "serve says where the cluster lives and why:\n{said}"
    );

    // The cluster works: migrated, answering queries.
    let url = EmbeddedPostgres::url_if_running(cluster, "vpn_shop").expect("cluster running");
    let mut conn = AsyncPgConnection::establish(&url).await.expect("connect");
    let migrations: Vec<Count> =
        diesel::sql_query("SELECT count(*) AS n FROM __diesel_schema_migrations")
            .load(&mut conn)
            .await
            .expect("migrations table");
    assert!(migrations[0].n > 0);
    drop(conn);

    // A one-off command finds the running cluster.
    let out = vpn_shop(&shop, &env)
        .env("VPN_SHOP_ADMIN_PASSWORD", ADMIN_PASSWORD)
        .args(["admin", "create", "--username", "ops", "--role", "admin"])
        .output()
        .expect("admin create");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    assert!(
        first.signal(Signal::SIGTERM).success(),
        "{}",
        first.stderr()
    );
    assert!(!cluster.join("postmaster.pid").exists());

    let mut second = Serve::spawn(&shop, &env, home.path(), "second");
    second.wait_ready().await;
    let login = reqwest::Client::new()
        .post(second.url("/api/v1/auth/login"))
        .json(&serde_json::json!({"username": "ops", "password": ADMIN_PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), 200, "the admin of the first run is there");
    assert_eq!(fs::read_dir(&base).unwrap().count(), 1, "the same cluster");
    assert!(second.stderr().contains(&cluster.display().to_string()));
    assert!(
        second.signal(Signal::SIGTERM).success(),
        "{}",
        second.stderr()
    );
    assert!(
        shop.join("data/jwt_secret").exists(),
        "other files stay in the data dir"
    );
}
