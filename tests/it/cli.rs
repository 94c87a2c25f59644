//! The `vpn-shop` binary as a user runs it: version, check-config, configuration errors,
//! migrate, admin create, and serve on the embedded default.

use crate::support;

use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use support::db::TestDb;
use vpn_shop::db::schema::{admins, audit_log};

const BIN: &str = env!("CARGO_BIN_EXE_vpn-shop");

/// The binary with a clean environment, run in an empty directory (so no stray .env is read).
pub(crate) fn vpn_shop(dir: &std::path::Path, env: &[(&str, &str)], args: &[&str]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .current_dir(dir)
        .args(args)
        .stdin(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

fn run(dir: &std::path::Path, env: &[(&str, &str)], args: &[&str]) -> Output {
    vpn_shop(dir, env, args).output().expect("running vpn-shop")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn version_prints_the_package_version() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(dir.path(), &[], &["--version"]);
    assert!(out.status.success());
    assert_eq!(
        text(&out.stdout).trim(),
        format!("vpn-shop {}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn check_config_prints_every_setting_with_secrets_masked() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(".env"), "JOB_CONCURRENCY=3\n").unwrap();
    std::fs::write(
        dir.path().join("shop.toml"),
        "HTTP_BIND = \"0.0.0.0:9000\"\n",
    )
    .unwrap();
    let out = run(
        dir.path(),
        &[
            (
                "DATABASE_URL",
                "postgres://shop:db-password-123@db:5432/shop",
            ),
            ("JWT_SECRET", "jwt-secret-jwt-secret-jwt-secret-jwt-secret"),
        ],
        &["--config", "shop.toml", "check-config"],
    );
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    for var in vpn_shop::config::VARS {
        assert!(stdout.contains(var.name), "{} missing:\n{stdout}", var.name);
    }
    assert!(
        !stdout.contains("db-password-123") && !stdout.contains("jwt-secret-jwt"),
        "{stdout}"
    );
    assert!(stdout.contains("0.0.0.0:9000 (shop.toml)"), "{stdout}");
    assert!(stdout.contains("3 (.env)"), "{stdout}");
    assert!(stdout.contains("*** (environment)"), "{stdout}");
    assert!(stdout.ends_with("configuration OK\n"));
}

/// A Remnawave shop's settings are validated and shown like the others, the token and the extra
/// headers (often a proxy's key) masked.
#[test]
fn check_config_shows_the_remnawave_settings_with_the_token_masked() {
    let dir = tempfile::tempdir().unwrap();
    let squad = "3c1e8a4b-2f6d-4e8a-9b1c-7d2e5f6a8b9c";
    let out = run(
        dir.path(),
        &[
            ("PANEL_KIND", "remnawave"),
            ("REMNAWAVE_URL", "https://rw.example.com"),
            ("REMNAWAVE_TOKEN", "eyJ-secret-token"),
            ("REMNAWAVE_SQUADS", squad),
            ("REMNAWAVE_EXTRA_HEADERS", r#"{"X-Api-Key":"caddy-secret"}"#),
        ],
        &["check-config"],
    );
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        stdout.contains("https://rw.example.com") && stdout.contains(squad),
        "{stdout}"
    );
    assert!(
        !stdout.contains("eyJ-secret-token") && !stdout.contains("caddy-secret"),
        "{stdout}"
    );
    let out = run(
        dir.path(),
        &[
            ("PANEL_KIND", "remnawave"),
            ("REMNAWAVE_URL", "https://rw.example.com"),
            ("REMNAWAVE_TOKEN", "eyJ-secret-token"),
        ],
        &["check-config"],
    );
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("REMNAWAVE_SQUADS"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn a_bad_value_stops_start_up_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(dir.path(), &[("HTTP_BIND", "everywhere")], &["serve"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert_eq!(
        stderr,
        "vpn-shop: invalid HTTP_BIND='everywhere': not an IP address with a port \
         (example: HTTP_BIND=0.0.0.0:8080)\n"
    );
    let out = run(
        dir.path(),
        &[],
        &["--config", "missing.toml", "check-config"],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).starts_with("vpn-shop: missing.toml: cannot read"),
        "{}",
        text(&out.stderr)
    );
}

#[tokio::test]
async fn migrate_and_admin_create_work_against_a_configured_database() {
    let db = TestDb::new().await;
    let dir = tempfile::tempdir().unwrap();
    let url = db.url.clone();
    let env = [("DATABASE_URL", url.as_str())];

    let out = run(dir.path(), &env, &["migrate"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "database is up to date\n");

    let with_password = [
        ("DATABASE_URL", url.as_str()),
        ("VPN_SHOP_ADMIN_PASSWORD", "a long enough password"),
    ];
    let out = run(
        dir.path(),
        &with_password,
        &[
            "admin",
            "create",
            "--username",
            "Alice",
            "--role",
            "operator",
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        "created admin 'alice' with role operator\n"
    );

    let out = run(
        dir.path(),
        &with_password,
        &["admin", "create", "--username", "alice", "--role", "admin"],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("an admin named 'alice' already exists"),
        "{}",
        text(&out.stderr)
    );

    let short = [
        ("DATABASE_URL", url.as_str()),
        ("VPN_SHOP_ADMIN_PASSWORD", "short"),
    ];
    let out = run(
        dir.path(),
        &short,
        &["admin", "create", "--username", "bob", "--role", "viewer"],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("password too short"),
        "{}",
        text(&out.stderr)
    );

    let out = run(
        dir.path(),
        &env,
        &["admin", "create", "--username", "bob", "--role", "viewer"],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("set VPN_SHOP_ADMIN_PASSWORD"),
        "{}",
        text(&out.stderr)
    );

    let out = run(
        dir.path(),
        &with_password,
        &["admin", "create", "--username", "bob", "--role", "root"],
    );
    assert_eq!(out.status.code(), Some(2), "clap rejects an unknown role");

    let conn = &mut db.connect().await;
    let rows: Vec<(String, String)> = admins::table
        .select((admins::username, admins::password_hash))
        .load(conn)
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
    assert!(rows[0].1.starts_with("$argon2id$"));
    let audit: Vec<(String, String)> = audit_log::table
        .select((audit_log::actor, audit_log::action))
        .load(conn)
        .await
        .unwrap();
    assert_eq!(audit, vec![("cli".to_owned(), "admin.create".to_owned())]);
}

pub(crate) fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub(crate) async fn wait_ready(port: u16, child: &mut std::process::Child) -> Duration {
    let started = Instant::now();
    loop {
        if let Ok(resp) = reqwest::get(format!("http://127.0.0.1:{port}/ready")).await
            && resp.status() == 200
        {
            return started.elapsed();
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!("serve exited early with {status}");
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "not ready within 60 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub(crate) fn terminate(child: &mut std::process::Child) -> std::process::ExitStatus {
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    child.wait().unwrap()
}

/// The README's run command: `serve` with no DATABASE_URL owns an embedded PostgreSQL in the
/// data dir; a second start reuses the data; one-off commands share the running cluster.
#[tokio::test]
async fn serve_runs_on_the_embedded_database_and_keeps_its_data() {
    let dir = tempfile::Builder::new()
        .prefix("vpn-shop-cli-")
        .tempdir_in("/tmp")
        .unwrap();
    // When the tests run as root the cluster runs as `postgres`, which must reach the data dir.
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let port = free_port();
    let bind = format!("127.0.0.1:{port}");
    let env = [("HTTP_BIND", bind.as_str()), ("DATA_DIR", "data")];

    let mut first = vpn_shop(dir.path(), &env, &["serve"])
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_ready(port, &mut first).await;

    // While it runs, `admin create` uses its cluster instead of starting a second one.
    let mut create_env = env.to_vec();
    create_env.push(("VPN_SHOP_ADMIN_PASSWORD", "a long enough password"));
    let out = run(
        dir.path(),
        &create_env,
        &["admin", "create", "--username", "ops", "--role", "admin"],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));

    let status = terminate(&mut first);
    assert!(status.success(), "serve exited with {status} on SIGTERM");
    assert!(
        !dir.path().join("data/postgres/postmaster.pid").exists(),
        "PostgreSQL still running"
    );

    let mut second = vpn_shop(dir.path(), &env, &["serve"])
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_ready(port, &mut second).await;
    let login = reqwest::Client::new()
        .post(format!("http://127.0.0.1:{port}/api/v1/auth/login"))
        .json(&serde_json::json!({"username": "ops", "password": "a long enough password"}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        login.status(),
        200,
        "the admin created in the first run is still there"
    );
    assert!(terminate(&mut second).success());
    assert!(dir.path().join("data/jwt_secret").exists());
}

#[tokio::test]
async fn a_backup_restored_into_an_empty_database_has_the_same_rows() {
    use support::db::Subscriber;
    let source = TestDb::new().await;
    {
        let conn = &mut source.connect().await;
        let emails = [
            "user0@example.com",
            "user1@example.com",
            "user2@example.com",
            "user3@example.com",
            "user4@example.com",
        ];
        for (i, email) in (0..).zip(emails) {
            Subscriber {
                email: Some(email),
                ..Subscriber::new(6_000 + i)
            }
            .insert(conn)
            .await;
        }
        diesel::sql_query(
            "INSERT INTO payments (user_id, provider, status, amount_minor, currency, days, paid_at) \
             SELECT id, 'yookassa', 'succeeded', 19900, 'RUB', 30, now() FROM users",
        )
        .execute(conn)
        .await
        .unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("shop.dump");
    let file_arg = file.display().to_string();
    let out = run(
        dir.path(),
        &[("DATABASE_URL", &source.url)],
        &["backup", "--output", &file_arg],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("backup written to"));
    let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "backups are readable by their owner only");
    assert!(!dir.path().join("shop.partial").exists());

    // Restoring needs a confirmation; without a terminal, --yes.
    let target = TestDb::empty().await;
    let out = run(
        dir.path(),
        &[("DATABASE_URL", &target.url)],
        &["restore", &file_arg],
    );
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("--yes"), "{}", text(&out.stderr));
    let out = run(
        dir.path(),
        &[("DATABASE_URL", &target.url)],
        &["restore", &file_arg, "--yes"],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));

    #[derive(diesel::QueryableByName, PartialEq, Debug)]
    struct Rows {
        #[diesel(sql_type = diesel::sql_types::Text)]
        rows: String,
    }
    let dump = async |db: &TestDb| -> Vec<Rows> {
        let conn = &mut db.connect().await;
        diesel::sql_query(
            "SELECT coalesce((SELECT string_agg(format('%s %s %s %s', id, telegram_id, email, referral_code), ';' ORDER BY id) FROM users), '') \
                 || '|' || coalesce((SELECT string_agg(format('%s %s %s %s', id, user_id, status, amount_minor), ';' ORDER BY id) FROM payments), '') \
                 || '|' || coalesce((SELECT string_agg(format('%s %s', id, expires_at), ';' ORDER BY id) FROM subscriptions), '') \
                 || '|' || (SELECT count(*) FROM plans) || '|' || (SELECT count(*) FROM __diesel_schema_migrations) AS rows",
        )
        .load(conn)
        .await
        .unwrap()
    };
    let (before, after) = (dump(&source).await, dump(&target).await);
    assert!(before[0].rows.contains("user4@example.com"), "{before:?}");
    assert_eq!(before, after);
    // The restored database is a working one: the users total is kept by its triggers.
    let conn = &mut target.connect().await;
    let n: Vec<Rows> =
        diesel::sql_query("SELECT n::text AS rows FROM row_counts WHERE table_name = 'users'")
            .load(conn)
            .await
            .unwrap();
    assert_eq!(n[0].rows, "5");

    // A file that is not a backup is refused before anything is touched.
    std::fs::write(dir.path().join("junk.dump"), "not a backup").unwrap();
    let out = run(
        dir.path(),
        &[("DATABASE_URL", &target.url)],
        &["restore", "junk.dump", "--yes"],
    );
    assert!(!out.status.success());
    assert_eq!(dump(&target).await, before);
}

/// `panel migrate --to pasarguard` on a shop configured for Marzban: every subscription with
/// access gets its user on PasarGuard with the same expiry and limit, the others none; a second
/// run changes nothing; `--record-links` stores PasarGuard's links; the configured panel itself
/// and an unconfigured one are refused.
#[tokio::test]
async fn panel_migrate_copies_the_subscriptions_with_access_and_can_be_repeated() {
    use crate::support::db::Subscriber;
    use crate::support::pasarguard::{API_KEY, FakePasarGuard};
    use chrono::{Duration as Days, Utc};
    use vpn_shop::db::schema::subscriptions;
    use vpn_shop::domain::SubscriptionStatus;

    let db = TestDb::new().await;
    let target = FakePasarGuard::start();
    let dir = tempfile::tempdir().unwrap();
    let mut conn = db.connect().await;
    let ends = Utc::now() + Days::days(12);
    let ends = chrono::DateTime::from_timestamp(ends.timestamp(), 0).unwrap();
    let mut with_access = Subscriber::new(810_001);
    with_access.expires_at = Some(ends);
    with_access.insert(&mut conn).await;
    let mut limited = Subscriber::new(810_002);
    limited.expires_at = Some(ends + Days::days(30));
    limited.traffic_limit = Some(50 << 30);
    limited.insert(&mut conn).await;
    let mut ended = Subscriber::new(810_003);
    ended.expires_at = Some(Utc::now() - Days::days(3));
    ended.status = SubscriptionStatus::Expired;
    ended.insert(&mut conn).await;
    let mut banned = Subscriber::new(810_004);
    banned.expires_at = Some(ends);
    banned.status = SubscriptionStatus::Disabled;
    banned.insert(&mut conn).await;

    let pasarguard = target.url();
    let env = [
        ("DATABASE_URL", db.url.as_str()),
        ("MARZBAN_URL", "http://127.0.0.1:9"),
        ("MARZBAN_USERNAME", "admin"),
        ("MARZBAN_PASSWORD", "secret"),
        ("PASARGUARD_URL", pasarguard.as_str()),
        ("PASARGUARD_API_KEY", API_KEY),
        ("PASARGUARD_GROUP_IDS", "1"),
    ];
    let out = run(
        dir.path(),
        &env,
        &["panel", "migrate", "--to", "pasarguard"],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout)
            .contains("created 2, updated 0, already in line 0, skipped (no access) 2, failed 0"),
        "{}",
        text(&out.stdout)
    );
    let user = target.user("vpnshop_810001").expect("created");
    assert_eq!(user.expire, Some(ends));
    assert_eq!(user.group_ids, vec![1]);
    let user = target.user("vpnshop_810002").expect("created");
    assert_eq!(user.expire, Some(ends + Days::days(30)));
    assert_eq!(user.data_limit, Some(50 << 30));
    assert!(target.user("vpnshop_810003").is_none());
    assert!(target.user("vpnshop_810004").is_none());

    // Changed on the new panel meanwhile: a second run puts it back and creates nothing.
    target.update_user("vpnshop_810001", |u| u.expire = Some(ends - Days::days(5)));
    let out = run(
        dir.path(),
        &env,
        &["panel", "migrate", "--to", "pasarguard", "--record-links"],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains(
            "created 0, updated 1, already in line 1, skipped (no access) 2, failed 0; 2 links recorded"
        ),
        "{}",
        text(&out.stdout)
    );
    assert_eq!(target.user("vpnshop_810001").unwrap().expire, Some(ends));
    assert_eq!(target.user_count(), 2);
    let links: Vec<Option<String>> = subscriptions::table
        .order(subscriptions::id)
        .select(subscriptions::subscription_url)
        .load(&mut conn)
        .await
        .unwrap();
    assert_eq!(links.len(), 4);
    for link in &links[..2] {
        let link = link.as_deref().expect("a link recorded");
        assert!(link.starts_with(&pasarguard), "{link}");
        assert!(target.subscription_valid(link), "{link}");
    }
    assert_eq!(links[2..], [None, None]);

    // The panel the shop already uses, and a panel without settings, are refused.
    let out = run(dir.path(), &env, &["panel", "migrate", "--to", "marzban"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("PANEL_KIND is already `marzban`"),
        "{}",
        text(&out.stderr)
    );
    let out = run(dir.path(), &env, &["panel", "migrate", "--to", "remnawave"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("panel `remnawave` is not configured"),
        "{}",
        text(&out.stderr)
    );
}
