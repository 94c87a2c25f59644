//! Telegram Mini App `initData`: the signed query string Telegram hands the cabinet when it
//! opens inside Telegram. Checked as Telegram documents it: `secret = HMAC_SHA256(key =
//! "WebAppData", msg = bot_token)`, `hash = hex(HMAC_SHA256(key = secret, msg =
//! data_check_string))`, where `data_check_string` is every other field as `key=value`, sorted
//! by key and joined by `\n`; and `auth_date` no older than the configured age.

use std::time::Duration;

use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// The Telegram user the Mini App was opened by.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct WebAppUser {
    pub id: i64,
    #[serde(default)]
    pub first_name: Option<String>,
    #[serde(default)]
    pub last_name: Option<String>,
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub language_code: Option<String>,
}

/// Why `initData` is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum InitDataError {
    #[error("initData is not a query string with a hash, an auth_date and a user")]
    Malformed,
    #[error("initData is not signed with this bot's token")]
    BadHash,
    #[error("initData is too old (or dated in the future)")]
    Stale,
}

/// How far in the future an `auth_date` may be (clocks differ a little).
const CLOCK_SKEW: i64 = 60;

fn secret_key(bot_token: &str) -> HmacSha256 {
    let mut secret =
        HmacSha256::new_from_slice(b"WebAppData").expect("HMAC takes a key of any length");
    secret.update(bot_token.as_bytes());
    let secret = secret.finalize().into_bytes();
    HmacSha256::new_from_slice(&secret).expect("HMAC takes a key of any length")
}

fn data_check_string(fields: &[(String, String)]) -> String {
    let mut lines: Vec<String> = fields
        .iter()
        .filter(|(k, _)| k != "hash")
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    lines.sort();
    lines.join("\n")
}

/// The user of `init_data` when it is signed with `bot_token` and at most `max_age` old at `now`.
pub fn verify(
    init_data: &str,
    bot_token: &str,
    max_age: Duration,
    now: DateTime<Utc>,
) -> Result<WebAppUser, InitDataError> {
    let fields: Vec<(String, String)> =
        serde_urlencoded::from_str(init_data).map_err(|_| InitDataError::Malformed)?;
    let field = |name: &str| {
        fields
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let hash = field("hash").ok_or(InitDataError::Malformed)?;
    let hash: Vec<u8> = (0..hash.len())
        .step_by(2)
        .map(|i| {
            hash.get(i..i + 2)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        })
        .collect::<Option<_>>()
        .ok_or(InitDataError::BadHash)?;
    let mut mac = secret_key(bot_token);
    mac.update(data_check_string(&fields).as_bytes());
    // Constant-time comparison.
    mac.verify_slice(&hash)
        .map_err(|_| InitDataError::BadHash)?;
    let auth_date: i64 = field("auth_date")
        .and_then(|d| d.parse().ok())
        .ok_or(InitDataError::Malformed)?;
    let age = now.timestamp() - auth_date;
    let max_age = i64::try_from(max_age.as_secs()).unwrap_or(i64::MAX);
    if age > max_age || age < -CLOCK_SKEW {
        return Err(InitDataError::Stale);
    }
    let user = field("user").ok_or(InitDataError::Malformed)?;
    serde_json::from_str(user).map_err(|_| InitDataError::Malformed)
}

/// `initData` of `fields` signed with `bot_token`, as Telegram builds it (the tests' Telegram).
pub fn sign(fields: &[(&str, &str)], bot_token: &str) -> String {
    let owned: Vec<(String, String)> = fields
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    let mut mac = secret_key(bot_token);
    mac.update(data_check_string(&owned).as_bytes());
    let hash: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let mut all = owned;
    all.push(("hash".to_owned(), hash));
    serde_urlencoded::to_string(all).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: &str = "123456:ABCdefGhIJKlmnoPQRstuVWXyz";
    const USER: &str = r#"{"id":5001,"first_name":"Anna","username":"anna","language_code":"ru"}"#;

    fn at(ts: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(ts, 0).unwrap()
    }

    fn data(auth_date: &str) -> String {
        sign(
            &[
                ("query_id", "AAHdF6IQAAAAAN0XohDhrOrc"),
                ("user", USER),
                ("auth_date", auth_date),
            ],
            TOKEN,
        )
    }

    const HOUR: Duration = Duration::from_secs(3600);

    #[test]
    fn a_signed_fresh_init_data_gives_its_user() {
        let user = verify(&data("1700000000"), TOKEN, HOUR, at(1_700_000_100)).unwrap();
        assert_eq!(user.id, 5001);
        assert_eq!(user.username.as_deref(), Some("anna"));
        assert_eq!(user.language_code.as_deref(), Some("ru"));
    }

    #[test]
    fn the_documented_algorithm_by_hand() {
        // secret = HMAC(key "WebAppData", token); hash = HMAC(secret, sorted lines).
        let mut secret = HmacSha256::new_from_slice(b"WebAppData").unwrap();
        secret.update(TOKEN.as_bytes());
        let secret = secret.finalize().into_bytes();
        let mut mac = HmacSha256::new_from_slice(&secret).unwrap();
        mac.update(format!("auth_date=1700000000\nquery_id=Q\nuser={USER}").as_bytes());
        let hash: String = mac
            .finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let encoded = serde_urlencoded::to_string([
            ("user", USER),
            ("query_id", "Q"),
            ("auth_date", "1700000000"),
            ("hash", hash.as_str()),
        ])
        .unwrap();
        assert!(verify(&encoded, TOKEN, HOUR, at(1_700_000_000)).is_ok());
    }

    #[test]
    fn forged_or_changed_data_is_refused() {
        let good = data("1700000000");
        let now = at(1_700_000_100);
        assert_eq!(
            verify(&good, "999:OtherBotTokenxxxx", HOUR, now),
            Err(InitDataError::BadHash)
        );
        let other_user = good.replace("5001", "5002");
        assert_eq!(
            verify(&other_user, TOKEN, HOUR, now),
            Err(InitDataError::BadHash)
        );
        let later = good.replace("1700000000", "1700000099");
        assert_eq!(
            verify(&later, TOKEN, HOUR, now),
            Err(InitDataError::BadHash)
        );
        let no_hash = good.split("&hash=").next().unwrap().to_owned();
        assert_eq!(
            verify(&no_hash, TOKEN, HOUR, now),
            Err(InitDataError::Malformed)
        );
        assert_eq!(
            verify(&format!("{no_hash}&hash=zz"), TOKEN, HOUR, now),
            Err(InitDataError::BadHash)
        );
        assert_eq!(verify("", TOKEN, HOUR, now), Err(InitDataError::Malformed));
    }

    #[test]
    fn stale_or_future_auth_dates_are_refused() {
        let good = data("1700000000");
        assert_eq!(
            verify(&good, TOKEN, HOUR, at(1_700_003_601)),
            Err(InitDataError::Stale)
        );
        assert!(verify(&good, TOKEN, HOUR, at(1_700_003_600)).is_ok());
        assert_eq!(
            verify(&good, TOKEN, HOUR, at(1_699_999_000)),
            Err(InitDataError::Stale)
        );
    }

    #[test]
    fn signed_but_without_a_user_is_malformed() {
        let data = sign(&[("auth_date", "1700000000")], TOKEN);
        assert_eq!(
            verify(&data, TOKEN, HOUR, at(1_700_000_000)),
            Err(InitDataError::Malformed)
        );
    }
}
