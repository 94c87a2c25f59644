//! Typed settings, read once at start-up from (highest precedence first) the process environment,
//! a `.env` file in the working directory, an optional TOML file (`--config PATH`) and the
//! documented defaults. Every variable is declared once in [`VARS`]; `check-config` prints that
//! list, and the manual's configuration reference is rendered from it ([`reference_markdown`]).

mod alerts;
mod marzban;
mod notifications;
mod panel;
mod parse;
mod pasarguard;
mod payments;
mod remnawave;
mod telegram;
mod vars;

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use reqwest::Url;

pub use alerts::AlertSettings;
pub use marzban::MarzbanSettings;
pub use notifications::{NotificationSettings, SmtpSettings, SmtpTls};
pub use panel::{CleanupAction, PanelConnection, PanelSettings};
use parse::{default_public_url, parse_base_url, parse_database_url, parse_int};
pub use parse::{format_duration, parse_duration, parse_traffic_limit};
pub use pasarguard::{PasarGuardAuth, PasarGuardSettings};
pub use payments::{PaymentSettings, WataSettings, YooKassaSettings};
pub use remnawave::{ExtraHeaders, RemnawaveSettings};
pub use telegram::{BotSettings, ClientApp, TelegramMode, TelegramSettings};
pub use vars::{RENAMED, SECTIONS, VARS, Var, reference_markdown};

/// A value that must never reach a log or a terminal: `Debug` and `Display` print `***`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The secret itself, for the one place that needs it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// Where an effective value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Env,
    DotEnv(PathBuf),
    Toml(PathBuf),
    Default,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Env => f.write_str("environment"),
            Source::DotEnv(p) => write!(f, "{}", p.display()),
            Source::Toml(p) => write!(f, "{}", p.display()),
            Source::Default => f.write_str("default"),
        }
    }
}

/// A setting that stops start-up. Its `Display` is the one line shown to the user.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("invalid {var}={value}: {problem} (example: {var}={example})")]
    Invalid {
        var: &'static str,
        /// The offending value, or `***` for a secret.
        value: String,
        problem: String,
        example: &'static str,
    },
    #[error("{path}: {problem}")]
    File { path: String, problem: String },
    #[error(
        "{old} and {new} are both set, to different values: {old} is the deprecated name of {new}; keep only {new}"
    )]
    Renamed {
        old: &'static str,
        new: &'static str,
    },
}

/// Raw layered values before parsing: variable name → (value, source). Empty values are unset.
/// A value given under a setting's deprecated name ([`RENAMED`]) counts for the setting.
#[derive(Debug, Clone, Default)]
pub struct RawConfig {
    values: BTreeMap<&'static str, (String, Source)>,
    /// Current name → the deprecated name its value in effect was given under.
    given_as: BTreeMap<&'static str, &'static str>,
}

/// The values given under deprecated names while the sources are layered: current name →
/// (deprecated name, value, source).
type UnderOldNames = BTreeMap<&'static str, (&'static str, String, Source)>;

impl RawConfig {
    /// Layers the sources in precedence order: `toml` < `dotenv` < `env`.
    pub fn layered(
        toml: Option<(&Path, &str)>,
        dotenv: Option<(&Path, Vec<(String, String)>)>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<RawConfig, ConfigError> {
        let mut raw = RawConfig::default();
        let mut old = UnderOldNames::new();
        if let Some((path, text)) = toml {
            for ((var, old_name), value) in parse_toml(path, text)? {
                raw.put(
                    &mut old,
                    var,
                    old_name,
                    value,
                    Source::Toml(path.to_owned()),
                );
            }
        }
        if let Some((path, pairs)) = dotenv {
            for (key, value) in pairs {
                if let Some((var, old_name)) = resolve(&key) {
                    raw.put(
                        &mut old,
                        var,
                        old_name,
                        value,
                        Source::DotEnv(path.to_owned()),
                    );
                }
            }
        }
        for (key, value) in env {
            if let Some((var, old_name)) = resolve(&key) {
                raw.put(&mut old, var, old_name, value, Source::Env);
            }
        }
        for (name, (old_name, value, source)) in old {
            match raw.values.get(name) {
                Some((current, _)) if current.trim() != value.trim() => {
                    return Err(ConfigError::Renamed {
                        old: old_name,
                        new: name,
                    });
                }
                Some(_) => {}
                None => {
                    raw.values.insert(name, (value, source));
                    raw.given_as.insert(name, old_name);
                }
            }
        }
        Ok(raw)
    }

    /// One value of one source, under the setting's name or (`old_name`) its deprecated one.
    fn put(
        &mut self,
        old: &mut UnderOldNames,
        var: &'static Var,
        old_name: Option<&'static str>,
        value: String,
        source: Source,
    ) {
        match old_name {
            None => self.set(var.name, value, source),
            Some(_) if value.trim().is_empty() => {
                old.remove(var.name);
            }
            Some(old_name) => {
                old.insert(var.name, (old_name, value, source));
            }
        }
    }

    /// The settings whose value in effect was given under a deprecated name: (old, current).
    pub fn deprecated_names(&self) -> Vec<(&'static str, &'static str)> {
        self.given_as
            .iter()
            .map(|(new, old)| (*old, *new))
            .collect()
    }

    /// The name the value of `var` was given under: its own, or the deprecated one.
    fn given_name(&self, var: &'static Var) -> &'static str {
        self.given_as.get(var.name).copied().unwrap_or(var.name)
    }

    /// Reads the real sources: `config_file` if given, `./.env` if present, the process environment.
    pub fn from_process(config_file: Option<&Path>) -> Result<RawConfig, ConfigError> {
        let toml_text = match config_file {
            Some(path) => Some(
                std::fs::read_to_string(path).map_err(|e| ConfigError::File {
                    path: path.display().to_string(),
                    problem: format!("cannot read the configuration file: {e}"),
                })?,
            ),
            None => None,
        };
        let dotenv_path = Path::new(".env");
        let dotenv = if dotenv_path.is_file() {
            let iter = dotenvy::from_path_iter(dotenv_path).map_err(|e| ConfigError::File {
                path: ".env".into(),
                problem: e.to_string(),
            })?;
            let pairs = iter
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| ConfigError::File {
                    path: ".env".into(),
                    problem: e.to_string(),
                })?;
            Some((dotenv_path, pairs))
        } else {
            None
        };
        RawConfig::layered(
            config_file.zip(toml_text.as_deref()),
            dotenv,
            std::env::vars_os()
                .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?))),
        )
    }

    pub fn set(&mut self, name: &'static str, value: impl Into<String>, source: Source) {
        let value = value.into();
        self.given_as.remove(name);
        if value.trim().is_empty() {
            self.values.remove(name);
        } else {
            self.values.insert(name, (value, source));
        }
    }

    /// The effective value and its source, falling back to the default.
    pub fn get(&self, var: &Var) -> Option<(&str, Source)> {
        match self.values.get(var.name) {
            Some((v, s)) => Some((v.as_str(), s.clone())),
            None => var.default.map(|d| (d, Source::Default)),
        }
    }
}

fn lookup(name: &str) -> Option<&'static Var> {
    VARS.iter().find(|v| v.name.eq_ignore_ascii_case(name))
}

/// The setting `name` stands for, and the deprecated name when it is one ([`RENAMED`]).
fn resolve(name: &str) -> Option<(&'static Var, Option<&'static str>)> {
    if let Some(var) = lookup(name) {
        return Some((var, None));
    }
    let (old, new) = RENAMED
        .iter()
        .find(|(old, _)| old.eq_ignore_ascii_case(name))?;
    Some((lookup(new)?, Some(*old)))
}

/// A setting of the file: the variable, the deprecated name it was given under, its value.
type FileSetting = ((&'static Var, Option<&'static str>), String);

fn parse_toml(path: &Path, text: &str) -> Result<Vec<FileSetting>, ConfigError> {
    let file_error = |problem: String| ConfigError::File {
        path: path.display().to_string(),
        problem,
    };
    let table: toml::Table = text
        .parse()
        .map_err(|e: toml::de::Error| file_error(format!("not valid TOML: {}", e.message())))?;
    table
        .into_iter()
        .map(|(key, value)| {
            let var = resolve(&key).ok_or_else(|| {
                file_error(format!(
                    "unknown setting '{key}' (settings are the variable names, e.g. HTTP_BIND)"
                ))
            })?;
            let value = match value {
                toml::Value::String(s) => s,
                toml::Value::Integer(i) => i.to_string(),
                toml::Value::Float(f) => f.to_string(),
                toml::Value::Boolean(b) => b.to_string(),
                other => {
                    return Err(file_error(format!(
                        "{key} must be a string, number or boolean, not a {}",
                        other.type_str()
                    )));
                }
            };
            Ok((var, value))
        })
        .collect()
}

/// `pretty` or `json` log lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Pretty,
    Json,
}

/// The durable job queue and its runner.
#[derive(Debug, Clone)]
pub struct JobSettings {
    pub concurrency: usize,
    pub max_attempts: i32,
    pub poll_interval: Duration,
    pub lease: Duration,
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    pub retention: Duration,
}

/// The periodic tasks.
#[derive(Debug, Clone)]
pub struct SchedulerSettings {
    pub tick: Duration,
    pub maintenance_interval: Duration,
    /// `None`: no scheduled backups.
    pub backup_interval: Option<Duration>,
    pub backup_keep: usize,
    /// Send each scheduled backup to the bot's admins (checked: a bot token and admins exist).
    pub backup_telegram: bool,
}

/// The validated configuration of one process.
/// The admin API's protections.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiSettings {
    /// Requests per second per token and per client address; `None`: no limit.
    pub rate_limit: Option<f64>,
    pub burst: u32,
    /// Origins a browser may call the API from (`scheme://host[:port]`); empty: CORS off.
    pub cors_origins: Vec<String>,
    /// Refused webhook requests per client address: (how many at once, then per second);
    /// `None`: no limit.
    pub webhook_refusals: Option<(u32, f64)>,
}

/// `20/s`, `300/m`, `off`.
fn parse_rate(v: &str) -> Result<Option<f64>, String> {
    if v.eq_ignore_ascii_case("off") {
        return Ok(None);
    }
    let (n, per) = v.split_once('/').ok_or_else(|| {
        "expected requests per period like `20/s` or `600/m`, or `off`".to_owned()
    })?;
    let n: f64 = n
        .trim()
        .parse()
        .ok()
        .filter(|n: &f64| n.is_finite() && *n > 0.0)
        .ok_or_else(|| format!("`{n}` is not a positive number"))?;
    let seconds = match per.trim() {
        "s" => 1.0,
        "m" => 60.0,
        "h" => 3600.0,
        other => return Err(format!("unknown period `{other}`: use s, m or h")),
    };
    Ok(Some(n / seconds))
}

/// `20/m` (a budget of 20, refilled at 20 a minute), `off`: the budget and its rate per second.
fn parse_budget(v: &str) -> Result<Option<(u32, f64)>, String> {
    let Some(rate) = parse_rate(v)? else {
        return Ok(None);
    };
    let n = v.split_once('/').map_or("", |(n, _)| n.trim());
    let n: u32 = n
        .parse()
        .ok()
        .filter(|n| (1..=1_000_000).contains(n))
        .ok_or_else(|| format!("`{n}` is not a whole number from 1 to 1000000"))?;
    Ok(Some((n, rate)))
}

/// Comma-separated `http(s)://host[:port]` origins, without a path.
fn parse_origins(v: &str) -> Result<Vec<String>, String> {
    v.split(',')
        .map(str::trim)
        .filter(|o| !o.is_empty())
        .map(|o| {
            let url = Url::parse(o).map_err(|e| format!("`{o}` is not an origin: {e}"))?;
            let origin = url.origin();
            if !matches!(url.scheme(), "http" | "https") || !origin.is_tuple() {
                return Err(format!("`{o}` is not an http(s) origin"));
            }
            if url.path() != "/" || url.query().is_some() {
                return Err(format!(
                    "`{o}`: an origin has no path (use {})",
                    origin.ascii_serialization()
                ));
            }
            Ok(origin.ascii_serialization())
        })
        .collect()
}

#[derive(Debug, Clone)]
pub struct Settings {
    pub database_url: Option<Secret>,
    pub database_pool_size: usize,
    pub database_connect_timeout: Duration,
    pub data_dir: PathBuf,
    /// As root, the embedded cluster's home when the `postgres` user cannot reach `data_dir`.
    pub embedded_postgres_fallback_dir: PathBuf,
    pub http_bind: SocketAddr,
    pub public_base_url: Url,
    /// `None`: generated and stored in the data dir at start-up (see `web::auth`).
    pub jwt_secret: Option<Secret>,
    pub jwt_ttl: Duration,
    /// When set, `/metrics` needs it as a bearer token.
    pub metrics_token: Option<Secret>,
    pub api: ApiSettings,
    pub log_format: LogFormat,
    pub rust_log: String,
    pub jobs: JobSettings,
    pub scheduler: SchedulerSettings,
    pub watchdog_interval: Duration,
    pub shutdown_timeout: Duration,
    /// `None`: the panel of `PANEL_KIND` has no URL set; provisioning and panel syncs are off.
    pub panel: Option<PanelSettings>,
    /// `None`: no `TELEGRAM_BOT_TOKEN`, the bot and Telegram notifications are off.
    pub telegram: Option<TelegramSettings>,
    /// The bot's flows (trial, support, admins, mode).
    pub bot: BotSettings,
    pub notifications: NotificationSettings,
    /// Admin alerts: recipients, language, thresholds, sale notices and the digest.
    pub alerts: AlertSettings,
    pub payments: PaymentSettings,
}

impl Settings {
    /// Prefix of the shop's users on the panel (kept without a panel, for when one comes).
    pub fn panel_username_prefix(&self) -> &str {
        self.panel
            .as_ref()
            .map_or("vpnshop_", |p| p.username_prefix.as_str())
    }
}

/// Parses one variable with `parse`, turning its error into a [`ConfigError`] that names the
/// variable, shows the value (masked if secret) and an example.
struct Reader<'a> {
    raw: &'a RawConfig,
}

impl Reader<'_> {
    fn var(name: &str) -> &'static Var {
        // Every name passed here is a literal from this file that is in VARS (checked by a test).
        lookup(name).unwrap_or_else(|| panic!("{name} is not declared in config::VARS"))
    }

    fn optional<T>(
        &self,
        name: &str,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Result<Option<T>, ConfigError> {
        let var = Self::var(name);
        match self.raw.get(var) {
            None => Ok(None),
            Some((value, _)) => {
                parse(value.trim())
                    .map(Some)
                    .map_err(|problem| ConfigError::Invalid {
                        var: self.raw.given_name(var),
                        value: if var.secret {
                            "***".into()
                        } else {
                            format!("'{value}'")
                        },
                        problem,
                        example: var.example,
                    })
            }
        }
    }

    fn required<T>(
        &self,
        name: &str,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Result<T, ConfigError> {
        self.required_because(name, "a value is required", parse)
    }

    /// Like `required`, with the reason a value is needed (e.g. "required when MARZBAN_URL is set").
    fn required_because<T>(
        &self,
        name: &str,
        why: &str,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Result<T, ConfigError> {
        let var = Self::var(name);
        self.optional(name, parse)?
            .ok_or_else(|| ConfigError::Invalid {
                var: var.name,
                value: "''".into(),
                problem: why.into(),
                example: var.example,
            })
    }
}

impl Settings {
    /// Loads the real sources and validates them.
    pub fn load(config_file: Option<&Path>) -> Result<Settings, ConfigError> {
        Settings::from_raw(&RawConfig::from_process(config_file)?)
    }

    pub fn from_raw(raw: &RawConfig) -> Result<Settings, ConfigError> {
        let r = Reader { raw };
        let http_bind: SocketAddr = r.required("HTTP_BIND", |v| {
            v.parse()
                .map_err(|_| "not an IP address with a port".to_owned())
        })?;
        let public_base_url = match r.optional("PUBLIC_BASE_URL", parse_base_url)? {
            Some(url) => url,
            None => default_public_url(http_bind),
        };
        let jobs = JobSettings {
            concurrency: r.required("JOB_CONCURRENCY", |v| parse_int(v, 1, 256))?,
            max_attempts: r.required("JOB_MAX_ATTEMPTS", |v| parse_int(v, 1, 1000))?,
            poll_interval: r.required("JOB_POLL_INTERVAL", parse_duration)?,
            lease: r.required("JOB_LEASE", parse_duration)?,
            backoff_base: r.required("JOB_BACKOFF_BASE", parse_duration)?,
            backoff_max: r.required("JOB_BACKOFF_MAX", parse_duration)?,
            retention: r.required("JOB_RETENTION", parse_duration)?,
        };
        if jobs.backoff_max < jobs.backoff_base {
            let var = Reader::var("JOB_BACKOFF_MAX");
            return Err(ConfigError::Invalid {
                var: var.name,
                value: format!("'{}'", format_duration(jobs.backoff_max)),
                problem: format!(
                    "must not be shorter than JOB_BACKOFF_BASE ({})",
                    format_duration(jobs.backoff_base)
                ),
                example: var.example,
            });
        }
        let telegram = telegram::read(&r)?;
        let bot = telegram::read_bot(&r)?;
        if telegram.is_some()
            && bot.mode == TelegramMode::Webhook
            && public_base_url.scheme() != "https"
        {
            let var = Reader::var("PUBLIC_BASE_URL");
            return Err(ConfigError::Invalid {
                var: var.name,
                value: format!("'{public_base_url}'"),
                problem: "must be an https:// URL with TELEGRAM_MODE=webhook (Telegram posts updates over HTTPS only)".into(),
                example: "https://shop.example.com",
            });
        }
        if bot.webapp_enabled && public_base_url.scheme() != "https" {
            let var = Reader::var("PUBLIC_BASE_URL");
            return Err(ConfigError::Invalid {
                var: var.name,
                value: format!("'{public_base_url}'"),
                problem: "must be an https:// URL with WEBAPP_ENABLED=true (Telegram opens Mini Apps over HTTPS only)".into(),
                example: "https://shop.example.com",
            });
        }
        let backup_telegram = r.required("BACKUP_TELEGRAM", payments::parse_bool)?;
        if backup_telegram {
            let missing = if telegram.is_none() {
                Some("TELEGRAM_BOT_TOKEN")
            } else if bot.admin_ids.is_empty() {
                Some("ADMIN_TELEGRAM_IDS")
            } else {
                None
            };
            if let Some(name) = missing {
                let var = Reader::var(name);
                return Err(ConfigError::Invalid {
                    var: var.name,
                    value: "unset".into(),
                    problem: "is required with BACKUP_TELEGRAM=true (the bot sends the backups to the admins)".into(),
                    example: var.example,
                });
            }
        }
        Ok(Settings {
            database_url: r.optional("DATABASE_URL", parse_database_url)?,
            database_pool_size: r.required("DATABASE_POOL_SIZE", |v| parse_int(v, 1, 512))?,
            database_connect_timeout: r.required("DATABASE_CONNECT_TIMEOUT", parse_duration)?,
            data_dir: r.required("DATA_DIR", |v| Ok(PathBuf::from(v)))?,
            embedded_postgres_fallback_dir: r.required("EMBEDDED_POSTGRES_FALLBACK_DIR", |v| {
                let dir = PathBuf::from(v);
                if dir.is_absolute() {
                    Ok(dir)
                } else {
                    Err("not an absolute path".into())
                }
            })?,
            http_bind,
            public_base_url,
            jwt_secret: r.optional("JWT_SECRET", |v| {
                if v.len() < 32 {
                    Err(format!(
                        "too short ({} characters); use at least 32 random characters",
                        v.chars().count()
                    ))
                } else {
                    Ok(Secret::new(v))
                }
            })?,
            jwt_ttl: r.required("JWT_TTL", parse_duration)?,
            metrics_token: r.optional("METRICS_TOKEN", |v| {
                if v.chars().count() < 32 {
                    Err(format!(
                        "too short ({} characters); use at least 32 random characters",
                        v.chars().count()
                    ))
                } else if !v.bytes().all(|b| b.is_ascii_graphic()) {
                    // It travels in an Authorization header.
                    Err("may hold only visible ASCII characters (no spaces)".into())
                } else {
                    Ok(Secret::new(v))
                }
            })?,
            api: ApiSettings {
                rate_limit: r.required("API_RATE_LIMIT", parse_rate)?,
                burst: r.required("API_RATE_BURST", |v| parse_int(v, 1, 100_000))?,
                cors_origins: r
                    .optional("CORS_ORIGINS", parse_origins)?
                    .unwrap_or_default(),
                webhook_refusals: r.required("WEBHOOK_REFUSAL_LIMIT", parse_budget)?,
            },
            log_format: r.required("LOG_FORMAT", |v| match v {
                "pretty" => Ok(LogFormat::Pretty),
                "json" => Ok(LogFormat::Json),
                _ => Err("must be `pretty` or `json`".to_owned()),
            })?,
            rust_log: r.required("RUST_LOG", |v| {
                tracing_subscriber::EnvFilter::try_new(v)
                    .map(|_| v.to_owned())
                    .map_err(|e| format!("not a valid log filter: {e}"))
            })?,
            jobs,
            scheduler: SchedulerSettings {
                tick: r.required("SCHEDULER_TICK", parse_duration)?,
                maintenance_interval: r.required("MAINTENANCE_INTERVAL", parse_duration)?,
                backup_interval: r.optional("BACKUP_INTERVAL", parse_duration)?,
                backup_keep: r.required("BACKUP_KEEP", |v| parse_int(v, 1, 10_000))?,
                backup_telegram,
            },
            watchdog_interval: r.required("WATCHDOG_INTERVAL", parse_duration)?,
            shutdown_timeout: r.required("SHUTDOWN_TIMEOUT", parse_duration)?,
            panel: panel::read(&r)?,
            notifications: notifications::read(&r, telegram.as_ref().map(|t| t.max_rate))?,
            payments: payments::read(&r, telegram.is_some())?,
            alerts: alerts::read(&r, &bot.admin_ids)?,
            bot,
            telegram,
        })
    }
}

/// The report of `vpn-shop check-config`: every variable, its effective value (secrets masked)
/// and where it came from.
pub fn describe(raw: &RawConfig, settings: &Settings) -> String {
    let width = VARS.iter().map(|v| v.name.len()).max().unwrap_or(0);
    let mut out = String::new();
    for var in VARS {
        let line = match (raw.get(var), var.name) {
            (Some((_, source)), _) if var.secret => format!("*** ({source})"),
            (Some((value, source)), _) => match raw.given_as.get(var.name) {
                Some(old) => format!("{value} ({source}, as {old}, deprecated)"),
                None => format!("{value} ({source})"),
            },
            (None, "PUBLIC_BASE_URL") => {
                format!("{} (derived from HTTP_BIND)", settings.public_base_url)
            }
            (None, "JWT_SECRET") => format!(
                "unset (generated at first start and kept in {})",
                settings.data_dir.join("jwt_secret").display()
            ),
            (None, "BROADCAST_RATE") => format!(
                "{} (80 % of TELEGRAM_MAX_RATE)",
                settings.notifications.broadcast_rate
            ),
            (None, "DATABASE_URL") => format!(
                "unset (embedded PostgreSQL in {})",
                settings.data_dir.join("postgres").display()
            ),
            (None, _) => "unset".to_owned(),
        };
        out.push_str(&format!("{:width$}  {line}\n", var.name));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(pairs: &[(&str, &str)]) -> Result<Settings, ConfigError> {
        let env = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string()));
        Settings::from_raw(&RawConfig::layered(None, None, env)?)
    }

    #[test]
    fn webhook_mode_needs_a_secret_and_an_https_address() {
        let token = ("TELEGRAM_BOT_TOKEN", "123456:ABCDEFGHIJKLMN");
        let webhook = ("TELEGRAM_MODE", "webhook");
        let secret = (
            "TELEGRAM_WEBHOOK_SECRET",
            "s3cret-token-of-at-least-32-chars",
        );
        let err = settings(&[token, webhook]).unwrap_err().to_string();
        assert!(err.contains("TELEGRAM_WEBHOOK_SECRET"), "{err}");
        let err = settings(&[token, webhook, secret]).unwrap_err().to_string();
        assert!(
            err.contains("PUBLIC_BASE_URL") && err.contains("https"),
            "{err}"
        );
        let ok = settings(&[
            token,
            webhook,
            secret,
            ("PUBLIC_BASE_URL", "https://shop.example.com"),
        ])
        .unwrap();
        assert_eq!(ok.bot.mode, TelegramMode::Webhook);
    }

    #[test]
    fn the_mini_app_needs_an_https_address() {
        let on = ("WEBAPP_ENABLED", "true");
        let err = settings(&[on]).unwrap_err().to_string();
        assert!(
            err.contains("PUBLIC_BASE_URL") && err.contains("WEBAPP_ENABLED=true"),
            "{err}"
        );
        let ok = settings(&[on, ("PUBLIC_BASE_URL", "https://shop.example.com")]).unwrap();
        assert!(ok.bot.webapp_enabled);
        assert!(!settings(&[]).unwrap().bot.webapp_enabled);
    }

    #[test]
    fn a_telegram_webhook_secret_has_32_to_256_safe_characters() {
        let token = ("TELEGRAM_BOT_TOKEN", "123456:ABCDEFGHIJKLMN");
        let webhook = ("TELEGRAM_MODE", "webhook");
        let url = ("PUBLIC_BASE_URL", "https://shop.example.com");
        let long_enough = "a".repeat(31) + "_";
        let too_long = "a".repeat(257);
        for bad in [
            "x",
            "s3cret",
            &long_enough[1..],
            &too_long,
            &(long_enough.clone() + "!"),
        ] {
            match settings(&[token, webhook, url, ("TELEGRAM_WEBHOOK_SECRET", bad)]) {
                Ok(_) => panic!("a webhook secret of {} characters was accepted", bad.len()),
                Err(e) => {
                    let e = e.to_string();
                    assert!(e.contains("TELEGRAM_WEBHOOK_SECRET"), "{e}");
                    if bad.len() > 8 {
                        assert!(!e.contains(bad), "the secret is echoed: {e}");
                    }
                }
            }
        }
        for good in [long_enough.as_str(), &"A-z_9".repeat(51)] {
            let s = settings(&[token, webhook, url, ("TELEGRAM_WEBHOOK_SECRET", good)]).unwrap();
            assert_eq!(s.bot.webhook_secret.unwrap().expose(), good);
        }
    }

    #[test]
    fn a_metrics_token_is_long_and_fits_a_header() {
        assert!(settings(&[]).unwrap().metrics_token.is_none());
        let good = "m".repeat(32);
        let s = settings(&[("METRICS_TOKEN", &good)]).unwrap();
        assert_eq!(s.metrics_token.unwrap().expose(), good);
        for bad in ["short", &("m".repeat(31) + " "), &("m".repeat(32) + " x")] {
            let e = settings(&[("METRICS_TOKEN", bad)]).unwrap_err().to_string();
            assert!(e.contains("METRICS_TOKEN"), "{e}");
        }
    }

    #[test]
    fn defaults_are_valid() {
        let s = settings(&[]).unwrap();
        assert_eq!(s.http_bind, "127.0.0.1:8080".parse().unwrap());
        assert_eq!(s.data_dir, PathBuf::from("./data"));
        assert_eq!(
            s.embedded_postgres_fallback_dir,
            PathBuf::from("/var/lib/vpn-shop")
        );
        assert_eq!(s.public_base_url.as_str(), "http://127.0.0.1:8080/");
        assert_eq!(s.jwt_ttl, Duration::from_secs(12 * 3600));
        assert_eq!(s.log_format, LogFormat::Pretty);
        assert!(s.database_url.is_none() && s.jwt_secret.is_none());
    }

    #[test]
    fn the_embedded_postgres_fallback_dir_is_an_absolute_path() {
        let e = settings(&[("EMBEDDED_POSTGRES_FALLBACK_DIR", "var/lib")]).unwrap_err();
        assert!(
            e.to_string().contains("EMBEDDED_POSTGRES_FALLBACK_DIR"),
            "{e}"
        );
    }

    #[test]
    fn every_default_and_example_parses() {
        // The error messages recommend the examples, so they must be accepted: all at once
        // (some variables only count together with others, like the MARZBAN_* group).
        let all: Vec<(&str, &str)> = VARS.iter().map(|v| (v.name, v.example)).collect();
        let s = settings(&all).unwrap_or_else(|e| panic!("an example is rejected: {e}"));
        assert!(s.panel.is_some());
    }

    #[test]
    fn bad_value_names_variable_problem_and_example() {
        let err = settings(&[("HTTP_BIND", "localhost")]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid HTTP_BIND='localhost': not an IP address with a port \
             (example: HTTP_BIND=0.0.0.0:8080)"
        );
        let err = settings(&[("JOB_CONCURRENCY", "0")])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("JOB_CONCURRENCY") && err.contains("between 1 and 256"),
            "{err}"
        );
        let err = settings(&[("LOG_FORMAT", "xml")]).unwrap_err().to_string();
        assert!(err.contains("`pretty` or `json`"), "{err}");
        let err = settings(&[("JWT_TTL", "soon")]).unwrap_err().to_string();
        assert!(
            err.contains("JWT_TTL='soon'") && err.contains("12h"),
            "{err}"
        );
        let err = settings(&[("RUST_LOG", "info,[[[")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("RUST_LOG"), "{err}");
        let err = settings(&[("PUBLIC_BASE_URL", "ftp://x")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("http://"), "{err}");
        let err = settings(&[("JOB_BACKOFF_BASE", "2h")])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("JOB_BACKOFF_MAX") && err.contains("2h"),
            "{err}"
        );
        assert!(!err.contains('\n'));
    }

    #[test]
    fn secrets_are_never_echoed() {
        let err = settings(&[("JWT_SECRET", "short-secret")])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("JWT_SECRET=***") && !err.contains("short-secret"),
            "{err}"
        );
        let err = settings(&[("DATABASE_URL", "mysql-password-x")])
            .unwrap_err()
            .to_string();
        assert!(!err.contains("password-x"), "{err}");
        assert_eq!(format!("{:?}", Secret::new("p")), "***");
    }

    #[test]
    fn precedence_env_over_dotenv_over_toml() {
        let toml = "HTTP_BIND = \"127.0.0.1:1000\"\njob_concurrency = 3\nDATA_DIR = \"/toml\"\n";
        let dotenv = vec![
            ("HTTP_BIND".to_owned(), "127.0.0.1:2000".to_owned()),
            ("DATA_DIR".to_owned(), "/dotenv".to_owned()),
            ("SOMETHING_ELSE".to_owned(), "ignored".to_owned()),
        ];
        let env = vec![("HTTP_BIND".to_owned(), "127.0.0.1:3000".to_owned())];
        let raw = RawConfig::layered(
            Some((Path::new("vpn-shop.toml"), toml)),
            Some((Path::new(".env"), dotenv)),
            env,
        )
        .unwrap();
        let s = Settings::from_raw(&raw).unwrap();
        assert_eq!(s.http_bind.port(), 3000);
        assert_eq!(s.data_dir, PathBuf::from("/dotenv"));
        assert_eq!(s.jobs.concurrency, 3);
        let report = describe(&raw, &s);
        assert!(report.contains("127.0.0.1:3000 (environment)"), "{report}");
        assert!(report.contains("3 (vpn-shop.toml)"), "{report}");
    }

    #[test]
    fn empty_value_means_unset() {
        let s = settings(&[("DATABASE_URL", ""), ("DATA_DIR", " ")]).unwrap();
        assert!(s.database_url.is_none());
        assert_eq!(s.data_dir, PathBuf::from("./data"));
    }

    #[test]
    fn toml_errors_are_clear() {
        let raw = RawConfig::layered(Some((Path::new("c.toml"), "HTTP_BINDD = 1")), None, vec![]);
        assert_eq!(
            raw.unwrap_err().to_string(),
            "c.toml: unknown setting 'HTTP_BINDD' (settings are the variable names, e.g. HTTP_BIND)"
        );
        let raw = RawConfig::layered(Some((Path::new("c.toml"), "HTTP_BIND = [1]")), None, vec![]);
        assert!(raw.unwrap_err().to_string().contains("not a array"));
        let raw = RawConfig::layered(Some((Path::new("c.toml"), "= =")), None, vec![]);
        assert!(
            raw.unwrap_err()
                .to_string()
                .starts_with("c.toml: not valid TOML")
        );
    }

    #[test]
    fn check_config_masks_secrets() {
        let secret = "0123456789abcdef0123456789abcdef-very-secret";
        let raw = RawConfig::layered(
            None,
            None,
            vec![
                ("JWT_SECRET".to_owned(), secret.to_owned()),
                ("DATABASE_URL".to_owned(), "postgres://u:pw@h/db".to_owned()),
            ],
        )
        .unwrap();
        let s = Settings::from_raw(&raw).unwrap();
        let report = describe(&raw, &s);
        assert!(
            !report.contains(secret) && !report.contains("pw@"),
            "{report}"
        );
        assert!(report.contains("JWT_SECRET") && report.contains("*** (environment)"));
        assert_eq!(report.lines().count(), VARS.len());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("30"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("15m"), Ok(Duration::from_secs(900)));
        assert_eq!(parse_duration("7d"), Ok(Duration::from_secs(7 * 86400)));
        for bad in [
            "",
            "m",
            "0s",
            "1w",
            "-1s",
            "1.5h",
            "99999999999999999999d",
            "400d",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
        for d in ["250ms", "30s", "15m", "12h", "7d", "90s"] {
            assert_eq!(format_duration(parse_duration(d).unwrap()), d);
        }
    }

    #[test]
    fn traffic_limits() {
        const GIB: i64 = 1 << 30;
        assert_eq!(parse_traffic_limit("5GB"), Ok(Some(5 * GIB)));
        assert_eq!(parse_traffic_limit("5 GiB"), Ok(Some(5 * GIB)));
        assert_eq!(parse_traffic_limit("500mb"), Ok(Some(500 << 20)));
        assert_eq!(parse_traffic_limit("1TB"), Ok(Some(1 << 40)));
        assert_eq!(parse_traffic_limit("1024"), Ok(Some(1024)));
        for none in ["0", "0GB", "unlimited", "Unlimited"] {
            assert_eq!(parse_traffic_limit(none), Ok(None), "{none}");
        }
        for bad in [
            "",
            "GB",
            "-5GB",
            "1.5GB",
            "5XB",
            "9999999999TB",
            "unlimited5",
        ] {
            assert!(parse_traffic_limit(bad).is_err(), "{bad}");
        }
        // The default reads as no limit.
        let default = VARS
            .iter()
            .find(|v| v.name == "TRIAL_TRAFFIC_LIMIT")
            .unwrap();
        assert_eq!(parse_traffic_limit(default.default.unwrap()), Ok(None));
    }

    proptest::proptest! {
        #[test]
        fn traffic_limits_never_panic_and_are_positive(value in "\\PC{0,12}") {
            if let Ok(Some(bytes)) = parse_traffic_limit(&value) {
                proptest::prop_assert!(bytes > 0);
            }
        }
    }

    #[test]
    fn backup_telegram_needs_a_bot_and_admins() {
        assert!(!settings(&[]).unwrap().scheduler.backup_telegram);
        let err = settings(&[("BACKUP_TELEGRAM", "true")])
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with(
                "invalid TELEGRAM_BOT_TOKEN=unset: is required with BACKUP_TELEGRAM=true"
            ),
            "{err}"
        );
        let token = ("TELEGRAM_BOT_TOKEN", "123456:ABCdefGHIjklMNOpqr");
        let err = settings(&[("BACKUP_TELEGRAM", "true"), token])
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with(
                "invalid ADMIN_TELEGRAM_IDS=unset: is required with BACKUP_TELEGRAM=true"
            ),
            "{err}"
        );
        let s = settings(&[
            ("BACKUP_TELEGRAM", "true"),
            token,
            ("ADMIN_TELEGRAM_IDS", "42"),
        ])
        .unwrap();
        assert!(s.scheduler.backup_telegram);
        let err = settings(&[("BACKUP_TELEGRAM", "maybe")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("BACKUP_TELEGRAM='maybe'"), "{err}");
    }

    #[test]
    fn variable_names_are_unique() {
        let mut names: Vec<_> = VARS.iter().map(|v| v.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), VARS.len());
    }
}
