//! Texts of the catalogue in several languages (a plan's name, its description): one text per
//! [`Language`], any of them may be missing. Who reads them picks their language and falls back
//! to a default of the caller's choosing; a text is never shown in a language the reader did not
//! ask for unless the caller says so.
//!
//! Stored as a `jsonb` object keyed by the language's code (`{"ru": "1 месяц", "en": "1 month"}`)
//! in a column of the row it belongs to (`plans.names`, `plans.descriptions`), rather than in a
//! child table keyed by language: every reader of a plan (the bot's list, a checkout, a payment's
//! notification) loads the plan row anyway and gets its texts with it — no join, no second query
//! per plan, no transaction around a plan's rows when an admin changes it — and the checks
//! (known language, length) are made once, where the admin API parses the request. A language
//! added to [`Language`] needs no schema change; a key this build does not know (written by a
//! newer version, or a language since removed) is skipped when read, not an error.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::Language;

#[derive(Debug, Clone, Default, PartialEq, Eq, diesel::AsExpression, diesel::FromSqlRow)]
#[diesel(sql_type = diesel::sql_types::Jsonb)]
pub struct Localized(BTreeMap<Language, String>);

impl Localized {
    pub fn new() -> Self {
        Localized(BTreeMap::new())
    }

    /// The text in `language`, if there is one.
    pub fn get(&self, language: Language) -> Option<&str> {
        self.0.get(&language).map(String::as_str)
    }

    /// The text in `language`, else `default`.
    pub fn get_or<'a>(&'a self, language: Language, default: &'a str) -> &'a str {
        self.get(language).unwrap_or(default)
    }

    pub fn insert(&mut self, language: Language, text: impl Into<String>) {
        self.0.insert(language, text.into());
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The texts in the order of [`Language::ALL`].
    pub fn iter(&self) -> impl Iterator<Item = (Language, &str)> {
        Language::ALL
            .iter()
            .filter_map(|l| self.get(*l).map(|text| (*l, text)))
    }

    /// Every text as the API shows it: language code → text.
    pub fn to_map(&self) -> BTreeMap<String, String> {
        self.0
            .iter()
            .map(|(l, text)| (l.as_str().to_owned(), text.clone()))
            .collect()
    }
}

impl FromIterator<(Language, String)> for Localized {
    fn from_iter<I: IntoIterator<Item = (Language, String)>>(iter: I) -> Self {
        Localized(iter.into_iter().collect())
    }
}

impl Serialize for Localized {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.0.iter().map(|(l, text)| (l.as_str(), text)))
    }
}

impl<'de> Deserialize<'de> for Localized {
    /// Lenient on purpose: a language this build does not know is dropped (see the module doc).
    /// Input from admins is checked at the API's edge, where an unknown language is refused.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = BTreeMap::<String, String>::deserialize(deserializer)?;
        Ok(raw
            .into_iter()
            .filter_map(|(code, text)| Some((code.parse::<Language>().ok()?, text)))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn falls_back_to_the_default_and_reads_unknown_languages_leniently() {
        let names: Localized =
            serde_json::from_str(r#"{"ru": "1 месяц", "en": "1 month", "de": "1 Monat"}"#).unwrap();
        assert_eq!(names.get(Language::Ru), Some("1 месяц"));
        assert_eq!(names.get_or(Language::En, "x"), "1 month");
        assert_eq!(
            serde_json::to_string(&names).unwrap(),
            r#"{"ru":"1 месяц","en":"1 month"}"#
        );
        let only_ru: Localized = [(Language::Ru, "1 месяц".to_owned())].into_iter().collect();
        assert_eq!(only_ru.get_or(Language::En, "Monthly"), "Monthly");
        assert_eq!(only_ru.get(Language::En), None);
        assert_eq!(
            only_ru.iter().collect::<Vec<_>>(),
            [(Language::Ru, "1 месяц")]
        );
    }
}
