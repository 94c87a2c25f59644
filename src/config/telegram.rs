//! Settings of the Telegram bot connection (shared by the bot and the notifier).

use std::time::Duration;

use reqwest::Url;

use super::parse::{parse_base_url, parse_int, parse_traffic_limit};
use super::{ConfigError, Reader, Secret, parse_duration};

#[derive(Debug, Clone)]
pub struct TelegramSettings {
    pub token: Secret,
    /// Bot API server (the official one, a self-hosted one, or a test fake).
    pub api_url: Url,
    /// Messages per second, all replicas together.
    pub max_rate: u32,
    /// Timeout of one Bot API request.
    pub timeout: Duration,
}

/// `None` without `TELEGRAM_BOT_TOKEN`.
pub(super) fn read(r: &Reader<'_>) -> Result<Option<TelegramSettings>, ConfigError> {
    let Some(token) = r.optional("TELEGRAM_BOT_TOKEN", parse_token)? else {
        return Ok(None);
    };
    Ok(Some(TelegramSettings {
        token,
        api_url: r.required("TELEGRAM_API_URL", parse_base_url)?,
        max_rate: r.required("TELEGRAM_MAX_RATE", |v| parse_int(v, 1, 1000))?,
        timeout: r.required("TELEGRAM_TIMEOUT", parse_duration)?,
    }))
}

/// `<bot id>:<secret>` as @BotFather issues it.
fn parse_token(value: &str) -> Result<Secret, String> {
    let well_formed = value.split_once(':').is_some_and(|(id, secret)| {
        !id.is_empty()
            && id.bytes().all(|b| b.is_ascii_digit())
            && secret.len() >= 10
            && secret
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    });
    if well_formed {
        Ok(Secret::new(value))
    } else {
        Err("not a bot token of the form <digits>:<letters, digits, _ and ->, as @BotFather gives it".into())
    }
}

/// How the bot receives updates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TelegramMode {
    /// `getUpdates` long polling (one replica).
    Polling,
    /// Telegram posts updates to `/webhooks/telegram` (any replica).
    Webhook,
}

/// One app /status recommends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientApp {
    pub platform: String,
    pub name: String,
    pub url: Url,
}

/// What the bot's subscriber and admin flows need (read even without a token, so
/// `check-config` validates them).
#[derive(Debug, Clone)]
pub struct BotSettings {
    pub mode: TelegramMode,
    pub webhook_secret: Option<Secret>,
    pub admin_ids: Vec<i64>,
    /// 0: no trial.
    pub trial_days: u32,
    /// Bytes of traffic a trial gets on the panel; `None`: unlimited.
    pub trial_traffic_limit: Option<i64>,
    pub support_contact: Option<String>,
    /// The team's group for support conversations (`SUPPORT_CHAT_ID`).
    pub support_chat_id: Option<i64>,
    /// The longest a subscriber should wait for a first answer (`SUPPORT_SLA`).
    pub support_sla: Duration,
    /// The oldest Mini App `initData` the cabinet signs in with (`WEBAPP_AUTH_MAX_AGE`).
    pub webapp_auth_max_age: Duration,
    /// The bot opens the cabinet as a Mini App: its menu button and an "Open cabinet" button
    /// (`WEBAPP_ENABLED`; needs an https PUBLIC_BASE_URL).
    pub webapp_enabled: bool,
    pub terms_text: Option<String>,
    /// `@username` or a numeric chat id.
    pub required_channel: Option<String>,
    /// Updates per user per window.
    pub rate_limit: (u32, Duration),
    pub client_apps: Vec<ClientApp>,
}

impl BotSettings {
    pub fn is_admin(&self, telegram_id: i64) -> bool {
        self.admin_ids.contains(&telegram_id)
    }

    /// Whether someone reads what subscribers write to the bot (a support group or admins).
    pub fn takes_questions(&self) -> bool {
        self.support_chat_id.is_some() || !self.admin_ids.is_empty()
    }
}

pub(super) fn read_bot(r: &Reader<'_>) -> Result<BotSettings, ConfigError> {
    let mode = r.required("TELEGRAM_MODE", |v| match v {
        "polling" => Ok(TelegramMode::Polling),
        "webhook" => Ok(TelegramMode::Webhook),
        _ => Err("must be `polling` or `webhook`".to_owned()),
    })?;
    let webhook_secret = r.optional("TELEGRAM_WEBHOOK_SECRET", parse_webhook_secret)?;
    if mode == TelegramMode::Webhook && webhook_secret.is_none() {
        let var = Reader::var("TELEGRAM_WEBHOOK_SECRET");
        return Err(ConfigError::Invalid {
            var: var.name,
            value: "unset".into(),
            problem: "is required with TELEGRAM_MODE=webhook".into(),
            example: var.example,
        });
    }
    Ok(BotSettings {
        mode,
        webhook_secret,
        admin_ids: r
            .optional("ADMIN_TELEGRAM_IDS", parse_ids)?
            .unwrap_or_default(),
        trial_days: r.required("TRIAL_DAYS", |v| parse_int(v, 0, 365))?,
        trial_traffic_limit: r.required("TRIAL_TRAFFIC_LIMIT", parse_traffic_limit)?,
        support_contact: r.optional("SUPPORT_CONTACT", |v| non_empty(v, 200))?,
        support_chat_id: r.optional("SUPPORT_CHAT_ID", parse_group_id)?,
        support_sla: r.required("SUPPORT_SLA", super::parse_duration)?,
        webapp_auth_max_age: r.required("WEBAPP_AUTH_MAX_AGE", super::parse_duration)?,
        webapp_enabled: r.required("WEBAPP_ENABLED", super::payments::parse_bool)?,
        terms_text: r
            .optional("TERMS_TEXT", |v| non_empty(v, 3500))?
            .map(|t| t.replace("\\n", "\n")),
        required_channel: r.optional("REQUIRED_CHANNEL", parse_channel)?,
        rate_limit: r.required("BOT_RATE_LIMIT", parse_bot_rate)?,
        client_apps: r.required("CLIENT_APPS", parse_client_apps)?,
    })
}

/// Shortest webhook secret accepted: it is all that stands between anyone who finds the URL and
/// the bot's update handling (a short one is guessed).
const MIN_WEBHOOK_SECRET: usize = 32;

/// Telegram's `secret_token`: 1-256 characters of `A-Za-z0-9_-`; we require at least
/// [`MIN_WEBHOOK_SECRET`]. Required rather than generated: webhook mode is for several
/// replicas, which must all know the one secret Telegram was given.
fn parse_webhook_secret(v: &str) -> Result<Secret, String> {
    if !v
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        return Err("may hold only A-Z, a-z, 0-9, _ and - (Telegram's alphabet)".into());
    }
    match v.len() {
        n if n < MIN_WEBHOOK_SECRET => Err(format!(
            "too short ({n} characters); use {MIN_WEBHOOK_SECRET} to 256 random characters, e.g. `openssl rand -hex 32`"
        )),
        n if n > 256 => Err(format!(
            "too long ({n} characters); Telegram takes at most 256"
        )),
        _ => Ok(Secret::new(v)),
    }
}

fn non_empty(v: &str, max: usize) -> Result<String, String> {
    match v.chars().count() {
        0 => Err("must not be empty (unset it instead)".into()),
        n if n > max => Err(format!("too long ({n} characters, at most {max})")),
        _ => Ok(v.to_owned()),
    }
}

fn parse_ids(v: &str) -> Result<Vec<i64>, String> {
    v.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| match s.parse::<i64>() {
            Ok(id) if id > 0 => Ok(id),
            _ => Err(format!(
                "'{s}' is not a Telegram user id (a positive number)"
            )),
        })
        .collect()
}

/// A group's chat id: negative (supergroups are -100…).
fn parse_group_id(v: &str) -> Result<i64, String> {
    match v.trim().parse::<i64>() {
        Ok(id) if id < 0 => Ok(id),
        _ => Err("must be a group's chat id, a negative number like -1001234567890".into()),
    }
}

fn parse_channel(v: &str) -> Result<String, String> {
    let username = v.strip_prefix('@').is_some_and(|name| {
        (5..=32).contains(&name.len())
            && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
    });
    let id = v
        .strip_prefix("-100")
        .is_some_and(|digits| !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()));
    if username || id {
        Ok(v.to_owned())
    } else {
        Err("must be a channel @username or its -100… id".into())
    }
}

/// `N/DURATION`, e.g. `5/2s`.
fn parse_bot_rate(v: &str) -> Result<(u32, Duration), String> {
    let (n, window) = v.split_once('/').ok_or("must be N/DURATION, e.g. 5/2s")?;
    let n = parse_int(n.trim(), 1, 10_000)?;
    let window = super::parse_duration(window.trim())?;
    if window.is_zero() {
        return Err("the window must be longer than 0".into());
    }
    Ok((n, window))
}

fn parse_client_apps(v: &str) -> Result<Vec<ClientApp>, String> {
    v.split(';')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|entry| {
            let (platform, rest) = entry
                .split_once('=')
                .ok_or_else(|| format!("'{entry}' is not Platform=App URL"))?;
            let (name, url) = rest
                .trim()
                .rsplit_once(' ')
                .ok_or_else(|| format!("'{entry}' is not Platform=App URL"))?;
            let url = Url::parse(url.trim())
                .ok()
                .filter(|u| matches!(u.scheme(), "http" | "https"))
                .ok_or_else(|| format!("'{}' is not an http(s) URL", url.trim()))?;
            if platform.trim().is_empty() || name.trim().is_empty() {
                return Err(format!("'{entry}' has an empty platform or app name"));
            }
            Ok(ClientApp {
                platform: platform.trim().to_owned(),
                name: name.trim().to_owned(),
                url,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_of_the_bot_settings() {
        assert_eq!(parse_ids("1, 22,333").unwrap(), vec![1, 22, 333]);
        assert!(parse_ids("1,abc").is_err());
        assert!(parse_ids("-5").is_err());
        assert_eq!(parse_channel("@my_news").unwrap(), "@my_news");
        assert_eq!(parse_channel("-1001234").unwrap(), "-1001234");
        assert!(parse_channel("news").is_err());
        assert_eq!(parse_bot_rate("5/2s").unwrap(), (5, Duration::from_secs(2)));
        assert!(parse_bot_rate("5").is_err());
        assert!(parse_bot_rate("0/2s").is_err());
        let apps = parse_client_apps(crate::config::vars::DEFAULT_CLIENT_APPS).unwrap();
        assert_eq!(apps.len(), 5);
        assert_eq!(apps[0].platform, "Android");
        assert!(parse_client_apps("Android=v2rayNG").is_err());
        assert!(parse_client_apps("Android=v2rayNG ftp://x").is_err());
    }
}
