//! Settings of the Telegram bot connection (shared by the bot and the notifier).

use std::time::Duration;

use reqwest::Url;

use super::parse::{parse_base_url, parse_int};
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
