//! Settings of notifications: email (SMTP), expiry warnings, broadcasts, how dates are shown.

use std::time::Duration;

use chrono::FixedOffset;
use reqwest::Url;

use super::parse::parse_int;
use super::{ConfigError, Reader, Secret, parse_duration};

/// How to reach the mail server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpTls {
    /// `smtps://`: TLS from the first byte (usually port 465).
    Implicit,
    /// `smtp://`: STARTTLS, required (usually port 587).
    StartTls,
    /// `smtp://…?tls=none`: no encryption, for a relay on the same host or network.
    None,
}

#[derive(Debug, Clone)]
pub struct SmtpSettings {
    pub host: String,
    pub port: u16,
    pub tls: SmtpTls,
    pub username: Option<String>,
    pub password: Option<Secret>,
    /// `Name <address>` or `address`.
    pub from: String,
    pub timeout: Duration,
}

#[derive(Debug, Clone)]
pub struct NotificationSettings {
    /// `None` without `SMTP_URL`: email is off.
    pub smtp: Option<SmtpSettings>,
    /// Days before expiry at which users are warned, largest first.
    pub expiry_warning_days: Vec<u32>,
    /// Interval of the task that finds who to warn.
    pub scan_interval: Duration,
    /// Broadcast messages per second (part of TELEGRAM_MAX_RATE).
    pub broadcast_rate: u32,
    /// Offset of the dates and times shown to users.
    pub display_offset: FixedOffset,
}

/// TELEGRAM_MAX_RATE's default, for the broadcast rate when no bot is configured.
const DEFAULT_MAX_RATE: u32 = 25;

pub(super) fn read(
    r: &Reader<'_>,
    max_rate: Option<u32>,
) -> Result<NotificationSettings, ConfigError> {
    let smtp = match r.optional("SMTP_URL", parse_smtp_url)? {
        Some(parsed) => Some(SmtpSettings {
            from: r.required_because("SMTP_FROM", "required when SMTP_URL is set", parse_from)?,
            timeout: r.required("SMTP_TIMEOUT", parse_duration)?,
            ..parsed
        }),
        None => None,
    };
    let max_rate = max_rate.unwrap_or(DEFAULT_MAX_RATE);
    let broadcast_rate = r
        .optional("BROADCAST_RATE", |v| {
            let rate = parse_int(v, 1, 1000)?;
            if rate > max_rate {
                Err(format!("must not exceed TELEGRAM_MAX_RATE ({max_rate})"))
            } else {
                Ok(rate)
            }
        })?
        .unwrap_or_else(|| (max_rate * 4 / 5).max(1));
    Ok(NotificationSettings {
        smtp,
        expiry_warning_days: r.required("EXPIRY_WARNING_DAYS", parse_days)?,
        scan_interval: r.required("NOTIFICATIONS_SCAN_INTERVAL", parse_duration)?,
        broadcast_rate,
        display_offset: r.required("DISPLAY_UTC_OFFSET", parse_offset)?,
    })
}

/// `smtps://user:pass@host:465`, `smtp://user:pass@host:587` (STARTTLS) or
/// `smtp://host:25?tls=none`.
fn parse_smtp_url(value: &str) -> Result<SmtpSettings, String> {
    let url = Url::parse(value).map_err(|e| format!("not a URL ({e})"))?;
    let mut tls = match url.scheme() {
        "smtps" => SmtpTls::Implicit,
        "smtp" => SmtpTls::StartTls,
        _ => return Err("must start with smtps:// or smtp://".into()),
    };
    for (key, val) in url.query_pairs() {
        match (key.as_ref(), val.as_ref()) {
            ("tls", "none") if tls == SmtpTls::StartTls => tls = SmtpTls::None,
            ("tls", "required") => {}
            _ => {
                return Err(format!(
                    "unknown option {key}={val} (only tls=none, for smtp://)"
                ));
            }
        }
    }
    let host = url
        .host_str()
        .filter(|h| !h.is_empty())
        .ok_or("a host is needed")?
        .to_owned();
    let port = url.port().unwrap_or(match tls {
        SmtpTls::Implicit => 465,
        SmtpTls::StartTls => 587,
        SmtpTls::None => 25,
    });
    let decode = |s: &str| {
        percent_decode(s)
            .map_err(|_| "the user or password is not valid percent-encoding".to_owned())
    };
    let username = match url.username() {
        "" => None,
        user => Some(decode(user)?),
    };
    let password = match url.password() {
        Some(p) => Some(Secret::new(decode(p)?)),
        None => None,
    };
    Ok(SmtpSettings {
        host,
        port,
        tls,
        username,
        password,
        from: String::new(),
        timeout: Duration::ZERO,
    })
}

fn percent_decode(s: &str) -> Result<String, ()> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3).ok_or(())?;
            out.push(u8::from_str_radix(hex, 16).map_err(|_| ())?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| ())
}

fn parse_from(value: &str) -> Result<String, String> {
    value
        .parse::<lettre::message::Mailbox>()
        .map(|m| m.to_string())
        .map_err(|e| format!("not a mailbox like 'VPN Shop <noreply@example.com>' ({e})"))
}

/// `3,1`: distinct whole days, largest first.
fn parse_days(value: &str) -> Result<Vec<u32>, String> {
    let mut days = value
        .split(',')
        .map(|d| {
            d.trim()
                .parse::<u32>()
                .ok()
                .filter(|d| (1..=60).contains(d))
        })
        .collect::<Option<Vec<u32>>>()
        .ok_or("must be a comma list of days between 1 and 60, like 3,1")?;
    days.sort_unstable_by(|a, b| b.cmp(a));
    days.dedup();
    Ok(days)
}

/// `+03:00`, `-05:30`, `UTC`.
fn parse_offset(value: &str) -> Result<FixedOffset, String> {
    if value.eq_ignore_ascii_case("utc") || value == "Z" {
        return FixedOffset::east_opt(0).ok_or_else(|| "invalid".to_owned());
    }
    let problem = || "not an offset like +03:00 or UTC".to_owned();
    let (sign, rest) = match value.as_bytes().first() {
        Some(b'+') => (1, &value[1..]),
        Some(b'-') => (-1, &value[1..]),
        _ => return Err(problem()),
    };
    let (h, m) = rest.split_once(':').unwrap_or((rest, "0"));
    let (h, m): (i32, i32) = (
        h.parse().map_err(|_| problem())?,
        m.parse().map_err(|_| problem())?,
    );
    if !(0..=14).contains(&h) || !(0..60).contains(&m) {
        return Err(problem());
    }
    FixedOffset::east_opt(sign * (h * 3600 + m * 60)).ok_or_else(problem)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smtp_urls() {
        let s = parse_smtp_url("smtps://user%40x:p%2Fss@mail.example.com").unwrap();
        assert_eq!(
            (s.host.as_str(), s.port, s.tls),
            ("mail.example.com", 465, SmtpTls::Implicit)
        );
        assert_eq!(s.username.as_deref(), Some("user@x"));
        assert_eq!(s.password.unwrap().expose(), "p/ss");
        let s = parse_smtp_url("smtp://a:b@mail.example.com:2587").unwrap();
        assert_eq!((s.port, s.tls), (2587, SmtpTls::StartTls));
        let s = parse_smtp_url("smtp://127.0.0.1:2525?tls=none").unwrap();
        assert_eq!((s.port, s.tls, s.username), (2525, SmtpTls::None, None));
        for bad in [
            "http://x",
            "smtps://x?tls=none",
            "smtp://x?foo=1",
            "smtp://",
        ] {
            assert!(parse_smtp_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn days_and_offsets() {
        assert_eq!(parse_days("1, 3,3"), Ok(vec![3, 1]));
        assert!(parse_days("0").is_err() && parse_days("a").is_err() && parse_days("").is_err());
        assert_eq!(parse_offset("+03:00").unwrap().local_minus_utc(), 3 * 3600);
        assert_eq!(
            parse_offset("-05:30").unwrap().local_minus_utc(),
            -(5 * 3600 + 1800)
        );
        assert_eq!(parse_offset("UTC").unwrap().local_minus_utc(), 0);
        assert!(parse_offset("3").is_err() && parse_offset("+25:00").is_err());
    }

    #[test]
    fn from_addresses() {
        assert_eq!(
            parse_from("VPN Shop <noreply@example.com>").unwrap(),
            "VPN Shop <noreply@example.com>"
        );
        assert!(parse_from("not an address").is_err());
    }
}
