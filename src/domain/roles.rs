//! Roles of admin API accounts, ordered by what they may do.

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

#[cfg(test)]
mod tests {
    use super::AdminRole::*;

    #[test]
    fn roles_are_ordered() {
        assert!(Admin.allows(Operator) && Admin.allows(Viewer) && Admin.allows(Admin));
        assert!(Operator.allows(Viewer) && !Operator.allows(Admin));
        assert!(Viewer.allows(Viewer) && !Viewer.allows(Operator));
        assert_eq!("operator".parse(), Ok(Operator));
        assert!("root".parse::<super::AdminRole>().is_err());
    }
}
