//! Texts of the web pages (the admin console now, the subscriber cabinet later): a [`Tr`] per
//! request that templates call for wording (`locales/<lang>/console.ftl`), numbers, money,
//! dates and traffic in the reader's language. Page texts are plain: the template engine
//! escapes them once, so nothing here escapes.

use chrono::{DateTime, FixedOffset, Utc};

use crate::domain::{Currency, Language, Money};

/// A whole number as templates hand it over (by value or by reference, as askama does).
pub trait Whole {
    fn whole(&self) -> i64;
}

impl Whole for i64 {
    fn whole(&self) -> i64 {
        *self
    }
}

impl Whole for i32 {
    fn whole(&self) -> i64 {
        i64::from(*self)
    }
}

impl Whole for usize {
    fn whole(&self) -> i64 {
        i64::try_from(*self).unwrap_or(i64::MAX)
    }
}

impl<T: Whole + ?Sized> Whole for &T {
    fn whole(&self) -> i64 {
        (**self).whole()
    }
}

/// The reader's language and the shop's display time zone, for templates.
#[derive(Debug, Clone, Copy)]
pub struct Tr {
    pub language: Language,
    pub offset: FixedOffset,
}

impl Tr {
    pub fn new(language: Language, offset: FixedOffset) -> Self {
        Tr { language, offset }
    }

    /// The `lang` attribute of the page.
    pub fn lang(&self) -> &'static str {
        self.language.as_str()
    }

    /// The message `id` (no arguments).
    pub fn t(&self, id: &str) -> String {
        super::message(self.language, id, &super::Args::new())
    }

    /// The message `<prefix>-<value>`: the name of a status, role or kind, e.g.
    /// `tk("role", "operator")`. Values with underscores use dashes in the id.
    pub fn tk(&self, prefix: &str, value: &str) -> String {
        self.t(&format!("{prefix}-{}", value.replace('_', "-")))
    }

    /// The message `id` with one number argument `n` (plural forms follow it).
    pub fn n(&self, id: &str, n: impl Whole) -> String {
        let n = n.whole() as f64;
        super::message(self.language, id, &super::Args::new().number("n", n))
    }

    /// A whole number with the language's digit grouping: `12 345` / `12,345`.
    pub fn num(&self, n: impl Whole) -> String {
        let n = n.whole();
        let digits = n.unsigned_abs().to_string();
        let sep = match self.language {
            Language::Ru => '\u{a0}',
            Language::En => ',',
        };
        let mut out = String::with_capacity(digits.len() + digits.len() / 3 + 1);
        if n < 0 {
            out.push('-');
        }
        for (i, c) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i).is_multiple_of(3) {
                out.push(sep);
            }
            out.push(c);
        }
        out
    }

    /// A share as a percentage with one decimal: `12.5 %` / `12,5 %`; `—` without a base.
    pub fn percent(&self, rate: impl std::borrow::Borrow<Option<f64>>) -> String {
        match *rate.borrow() {
            None => "—".to_owned(),
            Some(r) => {
                let text = format!("{:.1}", r * 100.0);
                match self.language {
                    Language::Ru => format!("{} %", text.replace('.', ",")),
                    Language::En => format!("{text} %"),
                }
            }
        }
    }

    pub fn money(&self, minor: impl Whole, currency: impl std::borrow::Borrow<Currency>) -> String {
        super::format_money(self.language, Money::new(minor.whole(), *currency.borrow()))
    }

    pub fn date(&self, at: &DateTime<Utc>) -> String {
        super::format_date(self.language, *at, self.offset)
    }

    pub fn datetime(&self, at: &DateTime<Utc>) -> String {
        super::format_datetime(self.language, *at, self.offset)
    }

    pub fn bytes(&self, bytes: impl Whole) -> String {
        super::format_bytes(self.language, bytes.whole())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tr(language: Language) -> Tr {
        Tr::new(language, FixedOffset::east_opt(0).unwrap())
    }

    #[test]
    fn numbers_are_grouped_per_language() {
        assert_eq!(tr(Language::En).num(1_234_567), "1,234,567");
        assert_eq!(tr(Language::Ru).num(1_234_567), "1\u{a0}234\u{a0}567");
        assert_eq!(tr(Language::En).num(999), "999");
        assert_eq!(tr(Language::En).num(-1000), "-1,000");
        assert_eq!(tr(Language::Ru).percent(Some(0.125)), "12,5 %");
        assert_eq!(tr(Language::En).percent(None), "—");
    }
}
