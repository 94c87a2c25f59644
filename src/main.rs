//! The `vpn-shop` command line: serve · migrate · check-config · config-reference · admin create ·
//! backup · restore · panel migrate.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use diesel_async::AsyncConnection;

use vpn_shop::app::{self, Database};
use vpn_shop::config::{self, RawConfig, Settings};
use vpn_shop::db::{self, admins, audit};
use vpn_shop::domain::{AdminRole, password, roles};
use vpn_shop::telemetry;

/// A Telegram shop for VPN access on a Marzban panel.
#[derive(Debug, Parser)]
#[command(name = "vpn-shop", version, about)]
struct Cli {
    /// Optional TOML file with settings (keys are the variable names, e.g. HTTP_BIND);
    /// environment variables and .env take precedence over it.
    #[arg(long, global = true, value_name = "PATH")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the shop: HTTP server, actors, scheduler (embedded PostgreSQL without DATABASE_URL).
    Serve,
    /// Apply pending database migrations and exit.
    Migrate,
    /// Validate the configuration and print the effective settings (secrets masked).
    CheckConfig,
    /// Print the reference of every setting (Markdown tables: default, meaning) and exit; needs
    /// no valid configuration.
    ConfigReference,
    /// Manage admin API accounts.
    Admin {
        #[command(subcommand)]
        command: AdminCommand,
    },
    /// Write a consistent backup of the database (pg_dump custom format); the shop may keep
    /// running meanwhile.
    Backup {
        /// The file to write. Default: DATA_DIR/backups/vpn-shop-<UTC time>.dump.
        #[arg(long, value_name = "FILE")]
        output: Option<PathBuf>,
    },
    /// Replace the database's contents with a backup. Stop `serve` first.
    Restore {
        /// A file written by `vpn-shop backup`.
        file: PathBuf,
        /// Do not ask for confirmation (for scripts).
        #[arg(long)]
        yes: bool,
    },
    /// Work with VPN panels other than the configured one.
    Panel {
        #[command(subcommand)]
        command: PanelCommand,
    },
}

#[derive(Debug, Subcommand)]
enum PanelCommand {
    /// Create every subscription that has access on another panel (same username, expiry, data
    /// limit, status), read from that panel's settings (e.g. PASARGUARD_*). Safe to repeat.
    Migrate {
        /// marzban, pasarguard or remnawave.
        #[arg(long, value_name = "KIND")]
        to: String,
        /// Also store the new panel's subscription links: the last run, with the shop stopped,
        /// right before starting it with the new PANEL_KIND.
        #[arg(long)]
        record_links: bool,
    },
}

#[derive(Debug, Subcommand)]
enum AdminCommand {
    /// Create an admin API account. The password is read from VPN_SHOP_ADMIN_PASSWORD or asked
    /// for on the terminal.
    Create {
        #[arg(long)]
        username: String,
        /// admin, operator or viewer.
        #[arg(long, value_parser = parse_role)]
        role: AdminRole,
    },
}

fn parse_role(s: &str) -> Result<AdminRole, String> {
    s.parse::<AdminRole>().map_err(|e| e.to_string())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Command::ConfigReference = cli.command {
        print!("{}", config::reference_markdown());
        return ExitCode::SUCCESS;
    }
    let raw = match RawConfig::from_process(cli.config.as_deref()) {
        Ok(raw) => raw,
        Err(e) => return config_error(e),
    };
    let settings = match Settings::from_raw(&raw) {
        Ok(settings) => settings,
        Err(e) => return config_error(e),
    };
    if let Command::CheckConfig = cli.command {
        print!("{}", config::describe(&raw, &settings));
        println!("configuration OK");
        return ExitCode::SUCCESS;
    }
    telemetry::init(settings.log_format, &settings.rust_log);
    for (old, new) in raw.deprecated_names() {
        tracing::warn!(
            deprecated = old,
            current = new,
            "{old} is the deprecated name of {new}; rename it (the old name still works)"
        );
    }
    let result = actix_rt::System::new().block_on(async move {
        match cli.command {
            Command::Serve => serve(settings).await,
            Command::Migrate => migrate(settings).await,
            Command::Admin {
                command: AdminCommand::Create { username, role },
            } => create_admin(settings, &username, role).await,
            Command::Backup { output } => backup(settings, output).await,
            Command::Restore { file, yes } => restore(settings, &file, yes).await,
            Command::Panel {
                command: PanelCommand::Migrate { to, record_links },
            } => panel_migrate(settings, &raw, &to, record_links).await,
            Command::CheckConfig | Command::ConfigReference => Ok(()),
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "vpn-shop failed");
            eprintln!("vpn-shop: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn config_error(e: config::ConfigError) -> ExitCode {
    eprintln!("vpn-shop: {e}");
    ExitCode::from(2)
}

/// [`Database::open`], telling the person at the terminal when the embedded cluster is not in
/// `DATA_DIR/postgres` (as root, when the `postgres` user cannot reach the data directory).
async fn open_database(settings: &Settings, share_running: bool) -> anyhow::Result<Database> {
    let database = Database::open(settings, share_running).await?;
    if let Some(notice) = database.cluster.as_ref().and_then(|c| c.notice()) {
        eprintln!("vpn-shop: {notice}");
    }
    Ok(database)
}

async fn serve(settings: Settings) -> anyhow::Result<()> {
    let database = open_database(&settings, false).await?;
    let running = match app::start(&settings, &database.url).await {
        Ok(running) => running,
        Err(e) => {
            database.close().await;
            return Err(e);
        }
    };
    let signal = app::shutdown_signal().await;
    tracing::info!(signal = ?signal.as_ref().ok(), "shutdown requested");
    running.shutdown().await;
    database.close().await;
    signal.map(|_| ())
}

async fn migrate(settings: Settings) -> anyhow::Result<()> {
    let database = open_database(&settings, true).await?;
    let result = db::run_migrations(&database.url).await;
    database.close().await;
    let applied = result?;
    if applied.is_empty() {
        println!("database is up to date");
    } else {
        println!(
            "applied {} migration(s): {}",
            applied.len(),
            applied.join(", ")
        );
    }
    Ok(())
}

async fn panel_migrate(
    settings: Settings,
    raw: &RawConfig,
    to: &str,
    record_links: bool,
) -> anyhow::Result<()> {
    // The target's settings are read as if PANEL_KIND named it: the same checks as at start.
    let mut target_raw = raw.clone();
    target_raw.set("PANEL_KIND", to, config::Source::Env);
    let target = Settings::from_raw(&target_raw)
        .map_err(|e| anyhow::anyhow!("the settings of panel `{to}`: {e}"))?
        .panel
        .with_context(|| {
            format!("panel `{to}` is not configured: set its URL and credentials (see `vpn-shop check-config`)")
        })?;
    if let Some(current) = &settings.panel
        && std::mem::discriminant(&current.connection) == std::mem::discriminant(&target.connection)
    {
        bail!(
            "PANEL_KIND is already `{to}`: the scheduled subscription sync keeps that panel in line"
        );
    }
    let metrics = std::sync::Arc::new(vpn_shop::metrics::Metrics::new()?);
    let panel = vpn_shop::clients::panel::Panel::new(&target, metrics)?;
    let database = open_database(&settings, true).await?;
    let result = async {
        let mut conn = diesel_async::AsyncPgConnection::establish(&database.url)
            .await
            .context("connecting to the database")?;
        vpn_shop::actors::marzban::migrate::migrate(&mut conn, &panel, record_links).await
    }
    .await;
    database.close().await;
    let report = result?;
    println!("{} at {}: {report}", panel.kind().name(), panel.url());
    for (username, error) in &report.failed {
        println!("  {username}: {error}");
    }
    if !report.failed.is_empty() {
        bail!(
            "{} users were not migrated; run the command again once the cause is fixed",
            report.failed.len()
        );
    }
    Ok(())
}

async fn backup(settings: Settings, output: Option<PathBuf>) -> anyhow::Result<()> {
    let output = output.unwrap_or_else(|| db::backup::default_path(&settings.data_dir));
    let database = open_database(&settings, true).await?;
    let result = db::backup::backup(&database.url, &output).await;
    database.close().await;
    let bytes = result?;
    println!("backup written to {} ({bytes} bytes)", output.display());
    Ok(())
}

async fn restore(settings: Settings, file: &std::path::Path, yes: bool) -> anyhow::Result<()> {
    if !yes {
        if !std::io::stdin().is_terminal() {
            bail!("restore replaces the database's contents: confirm with --yes");
        }
        eprint!(
            "Restore {} over the shop's database? Everything written since the backup is lost. \
             Type 'restore' to go on: ",
            file.display()
        );
        let mut answer = String::new();
        std::io::stdin()
            .read_line(&mut answer)
            .context("reading the answer")?;
        if answer.trim() != "restore" {
            bail!("not restored");
        }
    }
    let database = open_database(&settings, true).await?;
    let result = async {
        db::backup::restore(&database.url, file).await?;
        // A backup of an older version gets this version's migrations.
        db::run_migrations(&database.url).await
    }
    .await;
    database.close().await;
    let applied = result?;
    println!(
        "restored {}{}",
        file.display(),
        if applied.is_empty() {
            String::new()
        } else {
            format!(" and applied {} newer migration(s)", applied.len())
        }
    );
    Ok(())
}

async fn create_admin(settings: Settings, username: &str, role: AdminRole) -> anyhow::Result<()> {
    let username = roles::normalize_username(username).map_err(anyhow::Error::msg)?;
    let password = read_password()?;
    password::check_policy(&password).map_err(anyhow::Error::msg)?;
    let hash = tokio::task::spawn_blocking(move || password::hash(&password))
        .await
        .context("hashing thread failed")?
        .map_err(anyhow::Error::msg)?;

    let database = open_database(&settings, true).await?;
    let result = async {
        db::run_migrations(&database.url).await?;
        let mut conn = diesel_async::AsyncPgConnection::establish(&database.url)
            .await
            .context("connecting to the database")?;
        conn.transaction::<_, anyhow::Error, _>(async |conn| {
            let admin = admins::create(conn, &username, &hash, role)
                .await?
                .with_context(|| format!("an admin named '{username}' already exists"))?;
            audit::record(
                conn,
                audit::AuditRecord {
                    admin_id: Some(admin.id),
                    actor: "cli".into(),
                    action: "admin.create".into(),
                    target_type: Some("admin".into()),
                    target_id: Some(admin.id.to_string()),
                    after: Some(
                        serde_json::json!({"username": admin.username, "role": admin.role}),
                    ),
                    ..Default::default()
                },
            )
            .await?;
            Ok(admin)
        })
        .await
    }
    .await;
    database.close().await;
    let admin = result?;
    println!(
        "created admin '{}' with role {}",
        admin.username, admin.role
    );
    Ok(())
}

/// The new admin's password: VPN_SHOP_ADMIN_PASSWORD, or typed twice on the terminal.
fn read_password() -> anyhow::Result<String> {
    if let Ok(password) = std::env::var("VPN_SHOP_ADMIN_PASSWORD")
        && !password.is_empty()
    {
        return Ok(password);
    }
    if !std::io::stdin().is_terminal() {
        bail!("no terminal to read the password from: set VPN_SHOP_ADMIN_PASSWORD");
    }
    let first = rpassword::prompt_password(format!(
        "Password (at least {} characters): ",
        password::MIN_PASSWORD_CHARS
    ))
    .context("reading the password")?;
    let second =
        rpassword::prompt_password("Repeat the password: ").context("reading the password")?;
    if first != second {
        bail!("the two passwords differ");
    }
    Ok(first)
}
