//! The PostgreSQL server integration tests run against: the one named by `TEST_DATABASE_URL`, or
//! one throwaway embedded cluster per test process.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use nix::errno::Errno;
use nix::sys::signal::kill;
use nix::unistd::Pid;
use tokio::sync::OnceCell;
use vpn_shop::db::embedded::EmbeddedPostgres;

/// Prefix of the per-process cluster directories under /tmp; the pid follows it.
const TEMP_PREFIX: &str = "vpn-shop-test-pg-";

/// Holds nothing bound to a tokio runtime: every `#[tokio::test]`/`#[actix_rt::test]` has its own
/// runtime, and the cluster's keeper is a std thread, so one instance serves them all.
static SERVER: OnceCell<TestServer> = OnceCell::const_new();

/// A server on which the tests may `CREATE DATABASE`.
pub enum TestServer {
    /// `TEST_DATABASE_URL`: a `postgres://` URL or a key/value DSN naming any database.
    External(String),
    /// Never dropped (it lives in a static): when the test process exits, the parent-death signal
    /// stops the server, and the next test process removes the directory.
    Embedded(EmbeddedPostgres),
}

/// The PostgreSQL server the tests use: `TEST_DATABASE_URL` if set (a URL to any database on a
/// server where we may CREATE DATABASE, e.g. postgres://postgres@127.0.0.1:5432/postgres), otherwise one
/// throwaway EmbeddedPostgres per test process in a temp dir under /tmp (started once, lazily; it
/// dies with the process thanks to the parent-death signal; leftover temp dirs of dead test processes
/// — name contains the pid — are removed at the next start).
pub async fn server() -> &'static TestServer {
    SERVER
        .get_or_init(|| async {
            if let Ok(url) = std::env::var("TEST_DATABASE_URL") {
                return TestServer::External(url);
            }
            remove_leftover_clusters();
            let dir = tempfile::Builder::new()
                .prefix(&format!("{TEMP_PREFIX}{}-", std::process::id()))
                .tempdir_in("/tmp")
                .expect("creating a temp dir for the test cluster")
                .keep();
            // When the tests run as root the server runs as `postgres`, which must traverse this.
            fs::set_permissions(&dir, fs::Permissions::from_mode(0o755))
                .expect("making the test cluster's parent dir traversable");
            let pg = EmbeddedPostgres::start(&dir.join("postgres"), "postgres")
                .await
                .unwrap_or_else(|error| panic!("starting the test PostgreSQL: {error:#}"));
            TestServer::Embedded(pg)
        })
        .await
}

impl TestServer {
    /// URL (DSN or postgres:// URL, whatever form the server was given in) for `database` on this server.
    pub fn url_for(&self, database: &str) -> String {
        match self {
            TestServer::External(url) if url.contains("://") => url_with_database(url, database),
            TestServer::External(dsn) => dsn_with_database(dsn, database),
            TestServer::Embedded(pg) => pg.url_for_database(database),
        }
    }
}

/// Removes the cluster directories of test processes that no longer run (and whose server is gone).
fn remove_leftover_clusters() {
    let Ok(entries) = fs::read_dir("/tmp") else {
        return;
    };
    for entry in entries.filter_map(Result::ok) {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|name| name.strip_prefix(TEMP_PREFIX))
            .and_then(|rest| rest.split('-').next())
            .and_then(|pid| pid.parse::<i32>().ok())
        else {
            continue;
        };
        let path = entry.path();
        if !is_alive(pid) && !postmaster_alive(&path.join("postgres")) {
            let _ = fs::remove_dir_all(&path);
        }
    }
}

fn is_alive(pid: i32) -> bool {
    pid > 0 && kill(Pid::from_raw(pid), None) != Err(Errno::ESRCH)
}

/// A server that is still shutting down on its parent-death signal keeps its directory a little longer.
fn postmaster_alive(cluster_dir: &Path) -> bool {
    fs::read_to_string(cluster_dir.join("postmaster.pid"))
        .ok()
        .and_then(|contents| contents.lines().next()?.trim().parse::<i32>().ok())
        .is_some_and(is_alive)
}

/// `postgres://user@host:5432/old?sslmode=disable` -> `postgres://user@host:5432/<database>?sslmode=disable`.
pub fn url_with_database(url: &str, database: &str) -> String {
    let authority_start = url.find("://").map_or(0, |i| i + 3);
    let rest = &url[authority_start..];
    let authority_end = rest
        .find(['/', '?', '#'])
        .map_or(url.len(), |i| authority_start + i);
    let suffix_start = url[authority_end..]
        .find(['?', '#'])
        .map_or(url.len(), |i| authority_end + i);
    format!(
        "{}/{database}{}",
        &url[..authority_end],
        &url[suffix_start..]
    )
}

/// `host=/run/pg user=x dbname=old` -> `host=/run/pg user=x dbname=<database>`; values may be quoted.
pub fn dsn_with_database(dsn: &str, database: &str) -> String {
    let mut pairs = parse_dsn(dsn);
    pairs.retain(|(key, _)| key != "dbname");
    pairs.push(("dbname".to_owned(), database.to_owned()));
    pairs
        .iter()
        .map(|(key, value)| format!("{key}={}", quote_dsn_value(value)))
        .collect::<Vec<_>>()
        .join(" ")
}

/// libpq key/value syntax: `key = value` pairs, values optionally in single quotes with `\` escapes.
fn parse_dsn(dsn: &str) -> Vec<(String, String)> {
    let mut pairs = Vec::new();
    let mut chars = dsn.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let key: String =
            std::iter::from_fn(|| chars.next_if(|c| *c != '=' && !c.is_whitespace())).collect();
        if key.is_empty() {
            return pairs;
        }
        while chars.next_if(|c| c.is_whitespace() || *c == '=').is_some() {}
        let mut value = String::new();
        if chars.next_if_eq(&'\'').is_some() {
            while let Some(c) = chars.next() {
                match c {
                    '\\' => value.extend(chars.next()),
                    '\'' => break,
                    c => value.push(c),
                }
            }
        } else {
            while let Some(c) = chars.next_if(|c| !c.is_whitespace()) {
                if c == '\\' {
                    value.extend(chars.next());
                } else {
                    value.push(c);
                }
            }
        }
        pairs.push((key, value));
    }
}

fn quote_dsn_value(value: &str) -> String {
    if !value.is_empty() && !value.contains(|c: char| c.is_whitespace() || c == '\'' || c == '\\') {
        value.to_owned()
    } else {
        format!("'{}'", value.replace('\\', "\\\\").replace('\'', "\\'"))
    }
}
