//! Texts for users in their language: Fluent files under `locales/<lang>/` (embedded in the
//! binary; the one place to edit wording) and the formatting of dates, money and traffic per
//! language. Values put into texts are HTML-escaped here, since the texts are Telegram HTML.

pub mod alerts;
pub mod checkout;
pub mod notifications;
pub mod pages;

use std::sync::LazyLock;

use chrono::{DateTime, FixedOffset, Utc};
use fluent_bundle::concurrent::FluentBundle;
use fluent_bundle::{FluentArgs, FluentResource, FluentValue};

use crate::domain::{Currency, Language, Money};

/// The Fluent sources of each language (file name, text).
const SOURCES: [(Language, &[(&str, &str)]); 2] = [
    (
        Language::En,
        &[
            (
                "notifications.ftl",
                include_str!("../../locales/en/notifications.ftl"),
            ),
            ("bot.ftl", include_str!("../../locales/en/bot.ftl")),
            ("alerts.ftl", include_str!("../../locales/en/alerts.ftl")),
            ("support.ftl", include_str!("../../locales/en/support.ftl")),
            ("console.ftl", include_str!("../../locales/en/console.ftl")),
            ("cabinet.ftl", include_str!("../../locales/en/cabinet.ftl")),
        ],
    ),
    (
        Language::Ru,
        &[
            (
                "notifications.ftl",
                include_str!("../../locales/ru/notifications.ftl"),
            ),
            ("bot.ftl", include_str!("../../locales/ru/bot.ftl")),
            ("alerts.ftl", include_str!("../../locales/ru/alerts.ftl")),
            ("support.ftl", include_str!("../../locales/ru/support.ftl")),
            ("console.ftl", include_str!("../../locales/ru/console.ftl")),
            ("cabinet.ftl", include_str!("../../locales/ru/cabinet.ftl")),
        ],
    ),
];

type Bundle = FluentBundle<FluentResource>;

/// The bundle of `language`, and what is wrong in its files (syntax errors, a message defined
/// twice — the second definition would be ignored); at start-up those are logged as errors.
fn build(language: Language) -> (Bundle, Vec<String>) {
    let tag = match language {
        Language::En => "en",
        Language::Ru => "ru",
    };
    // Both tags are valid language identifiers.
    let id = tag.parse().unwrap_or_default();
    let mut bundle = Bundle::new_concurrent(vec![id]);
    // No Unicode isolation marks around values: they would end up in messages and emails.
    bundle.set_use_isolating(false);
    let files = SOURCES
        .iter()
        .find(|(l, _)| *l == language)
        .map(|(_, files)| *files)
        .unwrap_or_default();
    let mut problems = Vec::new();
    for (name, text) in files {
        let resource = match FluentResource::try_new((*text).to_owned()) {
            Ok(resource) => resource,
            Err((resource, errors)) => {
                problems.push(format!("{tag}/{name}: syntax errors: {errors:?}"));
                resource
            }
        };
        if let Err(errors) = bundle.add_resource(resource) {
            problems.push(format!(
                "{tag}/{name}: defined in an earlier file too (ignored here): {errors:?}"
            ));
        }
    }
    (bundle, problems)
}

fn build_logged(language: Language) -> Bundle {
    let (bundle, problems) = build(language);
    for problem in problems {
        tracing::error!(%problem, "a locale file is wrong");
    }
    bundle
}

static EN: LazyLock<Bundle> = LazyLock::new(|| build_logged(Language::En));
static RU: LazyLock<Bundle> = LazyLock::new(|| build_logged(Language::Ru));

fn bundle(language: Language) -> &'static Bundle {
    match language {
        Language::En => &EN,
        Language::Ru => &RU,
    }
}

/// Arguments of a message. String values are HTML-escaped as they are added.
#[derive(Default)]
pub struct Args(FluentArgs<'static>);

impl Args {
    pub fn new() -> Self {
        Args(FluentArgs::new())
    }

    /// A text value (escaped for HTML).
    pub fn text(mut self, key: &'static str, value: &str) -> Self {
        self.0.set(key, FluentValue::from(escape_html(value)));
        self
    }

    /// A text of ours that is HTML already (another rendered message): not escaped again.
    pub fn html(mut self, key: &'static str, value: String) -> Self {
        self.0.set(key, FluentValue::from(value));
        self
    }

    /// A number (Fluent picks plural forms from it).
    pub fn number(mut self, key: &'static str, value: impl Into<f64>) -> Self {
        self.0.set(key, FluentValue::from(value.into()));
        self
    }
}

/// The message `id` in `language`, with `args`. A message missing from the files renders as its
/// id (and is reported), never as a panic.
pub fn message(language: Language, id: &str, args: &Args) -> String {
    let bundle = bundle(language);
    let Some(pattern) = bundle.get_message(id).and_then(|m| m.value()) else {
        tracing::error!(language = %language, id, "message missing from the locale files");
        return id.to_owned();
    };
    let mut errors = Vec::new();
    let text = bundle.format_pattern(pattern, Some(&args.0), &mut errors);
    if !errors.is_empty() {
        tracing::error!(language = %language, id, ?errors, "message could not be fully formatted");
    }
    text.into_owned()
}

/// Whether `language` has the message `id` (tests check that both languages have every text).
pub fn has_message(language: Language, id: &str) -> bool {
    bundle(language).has_message(id)
}

/// Every message id of a language's files.
pub fn message_ids(language: Language) -> Vec<String> {
    let files = SOURCES
        .iter()
        .find(|(l, _)| *l == language)
        .map(|(_, files)| *files)
        .unwrap_or_default();
    let mut ids = Vec::new();
    for (_, text) in files {
        let resource = match FluentResource::try_new((*text).to_owned()) {
            Ok(r) => r,
            Err((r, _)) => r,
        };
        for entry in resource.entries() {
            if let fluent_syntax::ast::Entry::Message(m) = entry {
                ids.push(m.id.name.to_owned());
            }
        }
    }
    ids
}

pub fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            c => out.push(c),
        }
    }
    out
}

/// The text of Telegram HTML without its tags and entities (for plain-text email).
pub fn html_to_text(html: &str) -> String {
    let mut out = String::with_capacity(html.len());
    let mut in_tag = false;
    for c in html.chars() {
        match (c, in_tag) {
            ('<', _) => in_tag = true,
            ('>', true) => in_tag = false,
            (c, false) => out.push(c),
            _ => {}
        }
    }
    out.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&amp;", "&")
}

const MONTHS_EN: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// A date as people of `language` write it, in the shop's display time zone:
/// `27.11.2026` / `27 Nov 2026`.
pub fn format_date(language: Language, at: DateTime<Utc>, offset: FixedOffset) -> String {
    use chrono::Datelike;
    let local = at.with_timezone(&offset);
    match language {
        Language::Ru => local.format("%d.%m.%Y").to_string(),
        Language::En => format!(
            "{} {} {}",
            local.day(),
            MONTHS_EN[local.month0() as usize],
            local.year()
        ),
    }
}

/// A date and time with its zone: `27.11.2026 14:05 (UTC+3)` / `27 Nov 2026, 14:05 (UTC+3)`.
pub fn format_datetime(language: Language, at: DateTime<Utc>, offset: FixedOffset) -> String {
    let local = at.with_timezone(&offset);
    let secs = offset.local_minus_utc();
    let zone = match (secs / 3600, (secs.abs() % 3600) / 60) {
        (0, 0) => "UTC".to_owned(),
        (h, 0) => format!("UTC{h:+}"),
        (h, m) => format!("UTC{h:+}:{m:02}"),
    };
    let date = format_date(language, at, offset);
    match language {
        Language::Ru => format!("{date} {} ({zone})", local.format("%H:%M")),
        Language::En => format!("{date}, {} ({zone})", local.format("%H:%M")),
    }
}

/// Money as people of `language` write it: `199 ₽`, `199,50 ₽` / `199.50 ₽`, `150 ⭐`.
pub fn format_money(language: Language, money: Money) -> String {
    match money.currency {
        Currency::Xtr => format!("{} ⭐", money.minor),
        Currency::Rub => {
            let text = if money.minor % 100 == 0 {
                (money.minor / 100).to_string()
            } else {
                money.to_decimal_string()
            };
            let text = match language {
                Language::Ru => text.replace('.', ","),
                Language::En => text,
            };
            format!("{text} ₽")
        }
    }
}

/// Traffic in the largest unit that keeps it readable: `850 MB`, `8.5 GB` / `8,5 ГБ`.
pub fn format_bytes(language: Language, bytes: i64) -> String {
    const UNITS_EN: [&str; 5] = ["B", "KB", "MB", "GB", "TB"];
    const UNITS_RU: [&str; 5] = ["Б", "КБ", "МБ", "ГБ", "ТБ"];
    let mut value = bytes.max(0) as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < 4 {
        value /= 1024.0;
        unit += 1;
    }
    let number = if unit == 0 || value >= 100.0 || value.fract() < 0.05 {
        format!("{value:.0}")
    } else {
        format!("{value:.1}")
    };
    match language {
        Language::Ru => format!("{} {}", number.replace('.', ","), UNITS_RU[unit]),
        Language::En => format!("{number} {}", UNITS_EN[unit]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msk() -> FixedOffset {
        FixedOffset::east_opt(3 * 3600).unwrap()
    }

    #[test]
    fn locale_files_have_no_errors_and_no_message_twice() {
        for language in [Language::En, Language::Ru] {
            let (_, problems) = build(language);
            assert!(problems.is_empty(), "{problems:#?}");
        }
    }

    #[test]
    fn both_languages_have_the_same_messages() {
        let mut en = message_ids(Language::En);
        let mut ru = message_ids(Language::Ru);
        en.sort();
        ru.sort();
        assert!(!en.is_empty());
        assert_eq!(en, ru, "en and ru define different messages");
    }

    #[test]
    fn plurals_per_language() {
        let days = |lang, n: u32| message(lang, "days", &Args::new().number("days", n));
        assert_eq!(days(Language::En, 1), "1 day");
        assert_eq!(days(Language::En, 7), "7 days");
        assert_eq!(days(Language::Ru, 1), "1 день");
        assert_eq!(days(Language::Ru, 3), "3 дня");
        assert_eq!(days(Language::Ru, 5), "5 дней");
        assert_eq!(days(Language::Ru, 21), "21 день");
    }

    #[test]
    fn the_support_card_names_states_in_the_readers_language() {
        let subscription = |lang| {
            message(
                lang,
                "support-card-subscription",
                &Args::new()
                    .text("status", "active")
                    .text("trial", "trial")
                    .text("date", "1 Jan"),
            )
        };
        assert_eq!(subscription(Language::Ru), "активна (пробная), до 1 Jan");
        assert_eq!(subscription(Language::En), "active (trial), until 1 Jan");
        let payment = message(
            Language::Ru,
            "support-card-payment",
            &Args::new()
                .text("id", "7")
                .text("amount", "199 ₽")
                .text("plan", "1 месяц")
                .text("provider", "yookassa")
                .text("status", "refunded")
                .text("date", "1 Jan"),
        );
        assert_eq!(
            payment,
            "заказ #7, 199 ₽ за «1 месяц» через yookassa, возвращён, 1 Jan"
        );
    }

    #[test]
    fn values_are_escaped_and_missing_messages_do_not_panic() {
        let text = message(
            Language::En,
            "greeting",
            &Args::new().text("name", "<b>Eve & co</b>"),
        );
        assert_eq!(text, "Hello, &lt;b&gt;Eve &amp; co&lt;/b&gt;!");
        assert_eq!(
            message(Language::En, "no-such-message", &Args::new()),
            "no-such-message"
        );
        assert_eq!(html_to_text("<b>a &lt; b</b> &amp; c"), "a < b & c");
    }

    #[test]
    fn dates_money_and_traffic() {
        let at = DateTime::parse_from_rfc3339("2026-11-27T11:05:00Z")
            .unwrap()
            .to_utc();
        assert_eq!(format_date(Language::Ru, at, msk()), "27.11.2026");
        assert_eq!(format_date(Language::En, at, msk()), "27 Nov 2026");
        assert_eq!(
            format_datetime(Language::Ru, at, msk()),
            "27.11.2026 14:05 (UTC+3)"
        );
        assert_eq!(
            format_datetime(Language::En, at, FixedOffset::east_opt(0).unwrap()),
            "27 Nov 2026, 11:05 (UTC)"
        );
        assert_eq!(
            format_money(Language::Ru, Money::rub_kopecks(19900)),
            "199 ₽"
        );
        assert_eq!(
            format_money(Language::Ru, Money::rub_kopecks(19950)),
            "199,50 ₽"
        );
        assert_eq!(
            format_money(Language::En, Money::rub_kopecks(19950)),
            "199.50 ₽"
        );
        assert_eq!(format_money(Language::En, Money::stars(150)), "150 ⭐");
        assert_eq!(format_bytes(Language::En, 850 * 1024 * 1024), "850 MB");
        assert_eq!(format_bytes(Language::Ru, 17 * (1 << 30) / 2), "8,5 ГБ");
        assert_eq!(format_bytes(Language::En, 10 << 30), "10 GB");
        assert_eq!(format_bytes(Language::En, 0), "0 B");
    }
}
