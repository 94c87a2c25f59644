//! Parsers of setting values. Each returns the problem in words; the caller adds the variable
//! name and an example.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use reqwest::Url;

use super::Secret;

pub(super) fn parse_int<T>(value: &str, min: T, max: T) -> Result<T, String>
where
    T: std::str::FromStr + PartialOrd + fmt::Display + Copy,
{
    let n: T = value.parse().map_err(|_| "not a whole number".to_owned())?;
    if n < min || n > max {
        return Err(format!("must be between {min} and {max}"));
    }
    Ok(n)
}

/// Durations: a number with a unit (`250ms`, `30s`, `15m`, `12h`, `7d`) or plain seconds (`30`).
pub fn parse_duration(value: &str) -> Result<Duration, String> {
    let split = value
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(value.len());
    let (digits, unit) = value.split_at(split);
    let problem = || "not a duration like 30s, 15m, 12h or 7d".to_owned();
    let n: u64 = digits.parse().map_err(|_| problem())?;
    let millis_per_unit: u64 = match unit.trim() {
        "ms" => 1,
        "" | "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return Err(problem()),
    };
    let millis = n
        .checked_mul(millis_per_unit)
        .filter(|ms| *ms <= 366 * 86_400_000)
        .ok_or_else(|| "too long (at most 366d)".to_owned())?;
    if millis == 0 {
        return Err("must be longer than zero".into());
    }
    Ok(Duration::from_millis(millis))
}

/// A traffic amount in the binary units the panel shows (1 GB = 1024³ bytes): `500MB`, `5GB`,
/// `1TB` (KB, MB, GB, TB, with or without the `i`, any case, a space allowed), or a number of
/// bytes; `0` or `unlimited` is no limit (`None`).
pub fn parse_traffic_limit(value: &str) -> Result<Option<i64>, String> {
    let value = value.trim();
    if value.eq_ignore_ascii_case("unlimited") {
        return Ok(None);
    }
    let split = value
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(value.len());
    let (digits, unit) = value.split_at(split);
    let problem = || "not an amount like 500MB, 5GB or 1TB, nor 0 / unlimited".to_owned();
    let n: i64 = digits.parse().map_err(|_| problem())?;
    let shift = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "kb" | "kib" => 10,
        "mb" | "mib" => 20,
        "gb" | "gib" => 30,
        "tb" | "tib" => 40,
        _ => return Err(problem()),
    };
    let bytes = n
        .checked_mul(1 << shift)
        .ok_or_else(|| "too large".to_owned())?;
    Ok((bytes > 0).then_some(bytes))
}

/// The shortest exact spelling of a duration in the units [`parse_duration`] reads.
pub fn format_duration(d: Duration) -> String {
    let ms = d.as_millis();
    for (unit, per) in [
        ("d", 86_400_000u128),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1_000),
    ] {
        if ms >= per && ms.is_multiple_of(per) {
            return format!("{}{unit}", ms / per);
        }
    }
    format!("{ms}ms")
}

pub(super) fn parse_base_url(value: &str) -> Result<Url, String> {
    let url = Url::parse(value).map_err(|e| format!("not a URL ({e})"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err("must start with http:// or https://".into());
    }
    if url.host().is_none() || url.query().is_some() || url.fragment().is_some() {
        return Err("must be a plain http(s)://host[:port][/path] without query".into());
    }
    Ok(url)
}

pub(super) fn default_public_url(bind: SocketAddr) -> Url {
    let ip = match bind.ip() {
        ip if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        ip => ip,
    };
    let host = match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => format!("[{v6}]"),
    };
    // A literal IP and a port always form a valid URL.
    Url::parse(&format!("http://{host}:{}", bind.port()))
        .unwrap_or_else(|e| unreachable!("http://ip:port is a valid URL: {e}"))
}

pub(super) fn parse_database_url(value: &str) -> Result<Secret, String> {
    let is_url = value.starts_with("postgres://") || value.starts_with("postgresql://");
    let is_dsn = value.contains('=');
    if !is_url && !is_dsn {
        return Err("not a PostgreSQL URL (postgres://…) or key=value connection string".into());
    }
    Ok(Secret::new(value))
}
