//! Email addresses as the shop stores them: a sane syntax check (a dot-atom local part, a domain
//! name with a top-level domain, no display names, quoted parts or IP literals) and one spelling,
//! lower-case, so that a search finds an address however it was typed.

use email_address::{EmailAddress, Options};

/// Longest address a mail server accepts (RFC 5321 path limit less the angle brackets).
pub const MAX_EMAIL_CHARS: usize = 254;

/// Why an address is refused, in words an admin or a user understands.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EmailError {
    #[error("an email address cannot be empty")]
    Empty,
    #[error("an email address has at most {MAX_EMAIL_CHARS} characters")]
    TooLong,
    #[error("'{0}' is not an email address like name@example.com")]
    Invalid(String),
}

/// The stored spelling of `raw`: trimmed and lower-cased, once it passes the syntax check.
pub fn normalize_email(raw: &str) -> Result<String, EmailError> {
    let trimmed = raw.trim();
    if trimmed.is_empty() {
        return Err(EmailError::Empty);
    }
    if trimmed.chars().count() > MAX_EMAIL_CHARS {
        return Err(EmailError::TooLong);
    }
    let address = trimmed.to_lowercase();
    let options = Options::default()
        .with_required_tld()
        .without_domain_literal()
        .without_display_text();
    // Quoted local parts are valid mail syntax but may hold '@' and spaces, which no real
    // subscriber uses and the column's CHECK refuses.
    let plain = address.matches('@').count() == 1 && !address.contains('"');
    if !plain || EmailAddress::parse_with_options(&address, options).is_err() {
        return Err(EmailError::Invalid(trimmed.to_owned()));
    }
    Ok(address)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn accepts_and_lower_cases_ordinary_addresses() {
        assert_eq!(
            normalize_email("  Ivan.Petrov+vpn@Example.COM "),
            Ok("ivan.petrov+vpn@example.com".to_owned())
        );
        assert_eq!(
            normalize_email("a_b-c@mail.yandex.ru"),
            Ok("a_b-c@mail.yandex.ru".to_owned())
        );
        assert_eq!(
            normalize_email("Борис@почта.рф"),
            Ok("борис@почта.рф".to_owned())
        );
    }

    #[test]
    fn refuses_what_is_not_a_plain_address() {
        for bad in [
            "plainaddress",
            "@example.com",
            "user@",
            "user@localhost",
            "user@@example.com",
            "user@exa mple.com",
            "us er@example.com",
            "user@[127.0.0.1]",
            "\"john doe\"@example.com",
            "\"a@b\"@example.com",
            "John <john@example.com>",
            "user@-example.com",
            "user@example..com",
            ".user@example.com",
        ] {
            assert!(
                matches!(normalize_email(bad), Err(EmailError::Invalid(_))),
                "{bad} was accepted"
            );
        }
        assert_eq!(normalize_email("   "), Err(EmailError::Empty));
        let long = format!("{}@example.com", "a".repeat(250));
        assert_eq!(normalize_email(&long), Err(EmailError::TooLong));
    }

    proptest! {
        #[test]
        fn never_panics_and_accepted_addresses_fit_the_column(raw in "\\PC{0,80}") {
            if let Ok(address) = normalize_email(&raw) {
                // The CHECK of users.email: one '@', no whitespace, something on both sides.
                let (local, domain) = address.split_once('@').unwrap();
                prop_assert!(!local.is_empty() && !domain.is_empty() && !domain.contains('@'));
                prop_assert!(!address.chars().any(char::is_whitespace));
                prop_assert_eq!(address.to_lowercase(), address.clone());
                prop_assert_eq!(normalize_email(&address), Ok(address.clone()));
            }
        }
    }
}
