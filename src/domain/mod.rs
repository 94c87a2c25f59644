//! Pure business rules and value types: no database, no HTTP, no actors.
//!
//! Types here carry meaning (ids, money, statuses) and are shared by every layer; the database
//! mapping of these types lives in `db::sql_types`.

#[macro_use]
mod macros;
pub mod alerts;
pub mod broadcast;
pub mod email;
pub mod enums;
pub mod ids;
pub mod import_links;
pub mod init_data;
pub mod localized;
pub mod money;
pub mod notifications;
pub mod panel;
pub mod password;
pub mod pricing;
pub mod qr;
pub mod roles;
pub mod support;

/// A random code of `N` characters drawn from `alphabet` (referral codes, Telegram link codes).
pub fn random_code<const N: usize>(alphabet: &[u8]) -> String {
    let bytes: [u8; N] = rand::random();
    bytes
        .iter()
        .map(|b| char::from(alphabet[usize::from(*b) % alphabet.len()]))
        .collect()
}

pub use enums::*;
pub use ids::*;
pub use localized::Localized;
pub use money::{Currency, Money};
pub use roles::AdminRole;
