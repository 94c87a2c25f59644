//! Admin API accounts: roles, ordered by what they may do, and the rule for usernames.

text_enum!(
    /// `viewer` reads; `operator` also manages users, subscriptions, promo codes, broadcasts and
    /// syncs; `admin` may do everything, including plans, refunds and admin accounts.
    AdminRole {
        Viewer => "viewer",
        Operator => "operator",
        Admin => "admin",
    }
);

impl AdminRole {
    const fn rank(self) -> u8 {
        match self {
            AdminRole::Viewer => 0,
            AdminRole::Operator => 1,
            AdminRole::Admin => 2,
        }
    }

    /// Whether this role includes everything `required` may do.
    pub const fn allows(self, required: AdminRole) -> bool {
        self.rank() >= required.rank()
    }
}

/// Shortest and longest admin username (the `admins.username` CHECK constraint agrees).
pub const USERNAME_CHARS: std::ops::RangeInclusive<usize> = 3..=64;

/// An admin username as stored: trimmed and lowercased (logins are case-insensitive), 3 to 64
/// characters of `a-z`, `0-9`, `_`, `.`, `-`. The error is the rule in words. The CLI's
/// `admin create` and `POST /api/v1/admins` both use it.
pub fn normalize_username(raw: &str) -> Result<String, String> {
    let username = raw.trim().to_lowercase();
    let valid = USERNAME_CHARS.contains(&username.len())
        && username
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_.-".contains(&b));
    if valid {
        Ok(username)
    } else {
        Err(format!(
            "username must be {} to {} characters of a-z, 0-9, '_', '.', '-'",
            USERNAME_CHARS.start(),
            USERNAME_CHARS.end()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::AdminRole::*;
    use super::normalize_username;

    #[test]
    fn usernames_are_trimmed_lowercased_and_checked() {
        assert_eq!(
            normalize_username("  Alice.Ops-2 "),
            Ok("alice.ops-2".into())
        );
        assert_eq!(normalize_username("bob_1"), Ok("bob_1".into()));
        for bad in [
            "",
            "ab",
            "   ab  ",
            "with space",
            "jürgen",
            "a/b",
            &"x".repeat(65),
        ] {
            assert!(normalize_username(bad).is_err(), "{bad:?}");
        }
        assert!(normalize_username(&"x".repeat(64)).is_ok());
    }

    #[test]
    fn roles_are_ordered() {
        assert!(Admin.allows(Operator) && Admin.allows(Viewer) && Admin.allows(Admin));
        assert!(Operator.allows(Viewer) && !Operator.allows(Admin));
        assert!(Viewer.allows(Viewer) && !Viewer.allows(Operator));
        assert_eq!("operator".parse(), Ok(Operator));
        assert!("root".parse::<super::AdminRole>().is_err());
    }
}
