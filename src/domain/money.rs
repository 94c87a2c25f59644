//! Money in minor units: kopecks for RUB, whole Stars for XTR. Never floating point.

use std::fmt;

text_enum!(
    /// Currencies the shop sells in.
    Currency {
        /// Russian rouble; minor unit is the kopeck (1/100).
        Rub => "RUB",
        /// Telegram Stars; whole stars, no minor unit.
        Xtr => "XTR",
    }
);

impl Currency {
    /// Number of decimal places of the major unit.
    pub const fn exponent(self) -> u32 {
        match self {
            Currency::Rub => 2,
            Currency::Xtr => 0,
        }
    }
}

/// An amount of money: `minor` units of `currency`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct Money {
    pub minor: i64,
    pub currency: Currency,
}

/// Why a decimal amount could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MoneyParseError {
    #[error("'{0}' is not a decimal amount like 199.00")]
    Malformed(String),
    #[error("'{0}' has more decimal places than {1} allows")]
    TooPrecise(String, Currency),
    #[error("'{0}' is too large")]
    Overflow(String),
}

impl Money {
    pub const fn new(minor: i64, currency: Currency) -> Self {
        Money { minor, currency }
    }

    pub const fn rub_kopecks(minor: i64) -> Self {
        Money::new(minor, Currency::Rub)
    }

    pub const fn stars(stars: i64) -> Self {
        Money::new(stars, Currency::Xtr)
    }

    /// The amount as a decimal string with exactly `exponent` places and a dot ("199.00", "150"),
    /// the form payment providers expect.
    pub fn to_decimal_string(self) -> String {
        let exp = self.currency.exponent();
        if exp == 0 {
            return self.minor.to_string();
        }
        let scale = 10i64.pow(exp);
        let sign = if self.minor < 0 { "-" } else { "" };
        let abs = self.minor.unsigned_abs();
        let scale = scale.unsigned_abs();
        format!(
            "{sign}{}.{:0width$}",
            abs / scale,
            abs % scale,
            width = exp as usize
        )
    }

    /// Parses a non-negative decimal amount ("199", "199.5", "199.00") in `currency`.
    pub fn parse_decimal(text: &str, currency: Currency) -> Result<Money, MoneyParseError> {
        let malformed = || MoneyParseError::Malformed(text.to_owned());
        let (whole, frac) = match text.split_once('.') {
            Some((w, f)) => (w, f),
            None => (text, ""),
        };
        if whole.is_empty()
            || !whole.bytes().all(|b| b.is_ascii_digit())
            || !frac.bytes().all(|b| b.is_ascii_digit())
            || (text.contains('.') && frac.is_empty())
        {
            return Err(malformed());
        }
        let exp = currency.exponent() as usize;
        if frac.len() > exp {
            return Err(MoneyParseError::TooPrecise(text.to_owned(), currency));
        }
        let overflow = || MoneyParseError::Overflow(text.to_owned());
        let whole: i64 = whole.parse().map_err(|_| overflow())?;
        let frac_value: i64 = if frac.is_empty() {
            0
        } else {
            frac.parse::<i64>().map_err(|_| malformed())? * 10i64.pow((exp - frac.len()) as u32)
        };
        let minor = whole
            .checked_mul(10i64.pow(exp as u32))
            .and_then(|m| m.checked_add(frac_value))
            .ok_or_else(overflow)?;
        Ok(Money::new(minor, currency))
    }
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.to_decimal_string(), self.currency)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn formats_kopecks_with_two_places() {
        assert_eq!(Money::rub_kopecks(19900).to_decimal_string(), "199.00");
        assert_eq!(Money::rub_kopecks(5).to_decimal_string(), "0.05");
        assert_eq!(Money::rub_kopecks(-150).to_decimal_string(), "-1.50");
        assert_eq!(Money::stars(150).to_string(), "150 XTR");
    }

    #[test]
    fn parses_provider_amounts() {
        assert_eq!(
            Money::parse_decimal("199.00", Currency::Rub),
            Ok(Money::rub_kopecks(19900))
        );
        assert_eq!(
            Money::parse_decimal("199.5", Currency::Rub),
            Ok(Money::rub_kopecks(19950))
        );
        assert_eq!(
            Money::parse_decimal("7", Currency::Xtr),
            Ok(Money::stars(7))
        );
        assert!(Money::parse_decimal("1.001", Currency::Rub).is_err());
        assert!(Money::parse_decimal("1.5", Currency::Xtr).is_err());
        assert!(Money::parse_decimal("-1", Currency::Rub).is_err());
        assert!(Money::parse_decimal("1.", Currency::Rub).is_err());
        assert!(Money::parse_decimal("", Currency::Rub).is_err());
        assert!(Money::parse_decimal("99999999999999999999", Currency::Rub).is_err());
    }

    proptest! {
        #[test]
        fn decimal_round_trip(minor in 0i64..i64::MAX / 1000, xtr in any::<bool>()) {
            let currency = if xtr { Currency::Xtr } else { Currency::Rub };
            let money = Money::new(minor, currency);
            prop_assert_eq!(Money::parse_decimal(&money.to_decimal_string(), currency), Ok(money));
        }

        #[test]
        fn parse_takes_exactly_plain_decimals_of_at_most_two_places(
            text in prop_oneof![".{0,30}", "[0-9]{1,22}(\\.[0-9]{0,3})?", "[0-9.,+ -]{0,12}"],
        ) {
            // The rule written out: digits, then optionally a point and one or two digits, and a
            // value that fits an i64 of kopecks.
            let (whole, frac) = text.split_once('.').unwrap_or((&text, ""));
            let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
            let plain = !whole.is_empty() && digits(whole) && digits(frac)
                && (frac.len() == 1 || frac.len() == 2 || !text.contains('.'));
            let value = plain
                .then(|| {
                    let whole: u128 = whole.parse().ok()?;
                    let frac: u128 = format!("{frac:0<2}").parse().ok()?;
                    whole.checked_mul(100)?.checked_add(frac)
                })
                .flatten()
                .filter(|v| *v <= i64::MAX as u128);
            match Money::parse_decimal(&text, Currency::Rub) {
                Ok(money) => {
                    prop_assert_eq!(Some(money.minor as u128), value, "{:?} accepted", text);
                    prop_assert_eq!(money.currency, Currency::Rub);
                }
                Err(_) => prop_assert_eq!(value, None, "{:?} refused", text),
            }
        }
    }
}
