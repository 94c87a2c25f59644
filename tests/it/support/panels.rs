//! The fake panels behind one face, so that a scenario — the contract suite, a sale through the
//! bot, a sync, the cleanup — is written once and run against every panel a shop can drive:
//! [`PanelFake`] puts a fake's users and requests in the shop's terms, [`AnyPanel`] owns the fake
//! of one [`Kind`].

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::marzban::{self as mz, FakePanel};
use super::pasarguard::{self as pg, FakePasarGuard};
use super::remnawave::{self as rw, FakeRemnawave};

/// The panels (and Remnawave generations) a shop can run on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Marzban,
    PasarGuard,
    Remnawave2,
    Remnawave3,
}

/// A user as the fake panel stores it, in the shop's terms: the status as a read shows it
/// (lowercase: `active`, `disabled`, `expired`, `limited`, …), the expiry in unix seconds, the
/// data limit (`None`: unlimited) and the traffic used since the last reset.
#[derive(Debug, Clone, PartialEq)]
pub struct Stored {
    pub status: String,
    pub expire: Option<i64>,
    pub data_limit: Option<i64>,
    pub used: i64,
}

/// What a scenario needs of a fake panel, whichever it is.
pub trait PanelFake {
    /// The shop's settings that point at this fake (right credentials unless `wrong`).
    fn env(&self, wrong_credentials: bool) -> Vec<(String, String)>;
    fn stored(&self, username: &str) -> Option<Stored>;
    /// Changes a stored user by hand, as an admin on the panel would: the fields `f` changes
    /// (`status` set to `active` or `disabled`), the others as they were.
    fn edit(&self, username: &str, f: impl FnOnce(&mut Stored)) {
        let before = self.stored(username).expect("a user to edit");
        let mut after = before.clone();
        f(&mut after);
        self.store(username, &before, after);
    }
    /// Writes `after` over the user read as `before` (for [`PanelFake::edit`]).
    fn store(&self, username: &str, before: &Stored, after: Stored);
    /// A user the panel has, made by hand (active, no expiry), with `used` bytes of traffic.
    fn seed(&self, username: &str, used: i64);
    fn set_used(&self, username: &str, used: i64) {
        self.edit(username, |u| u.used = used);
    }
    fn remove(&self, username: &str) -> bool;
    fn fail_next(&self, n: usize, status: u16);
    fn time_out_next(&self, n: usize, delay: Duration);
    fn subscription_valid(&self, url: &str) -> bool;
    /// Whether the user could connect through the panel's nodes at all: on inbounds (Marzban),
    /// in a group (PasarGuard), in an internal squad (Remnawave).
    fn reaches_nodes(&self, username: &str) -> bool;
    /// Every request since the last [`PanelFake::clear_requests`]: method and route pattern.
    fn routes(&self) -> Vec<(String, String)>;
    fn clear_requests(&self);
    /// Every request is answered after `latency`, as by a distant panel.
    fn set_latency(&self, latency: Duration);

    /// Requests that changed something on the panel: every one but reads and logins.
    fn writes(&self) -> usize {
        self.routes()
            .iter()
            .filter(|(method, route)| method != "GET" && route != LOGIN)
            .count()
    }
    /// Pages of the user listing (`GET /api/users` on every panel).
    fn lists(&self) -> usize {
        self.routes()
            .iter()
            .filter(|(method, route)| method == "GET" && route == "/api/users")
            .count()
    }
    /// Reads other than the listing (one user, the system).
    fn reads(&self) -> usize {
        self.routes()
            .iter()
            .filter(|(method, route)| method == "GET" && route != "/api/users")
            .count()
    }
    /// Traffic resets the panel was asked for.
    fn resets(&self) -> usize {
        self.routes()
            .iter()
            .filter(|(method, route)| {
                method == "POST"
                    && (route.ends_with("/reset") || route.ends_with("/actions/reset-traffic"))
            })
            .count()
    }
}

/// The admin login of Marzban and PasarGuard (Remnawave's API takes tokens only).
const LOGIN: &str = "/api/admin/token";

/// Timeouts the scenarios share: long enough for a loaded machine, short enough for the
/// timeout cases.
fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .chain([("PANEL_TIMEOUT".to_owned(), "2s".to_owned())])
        .collect()
}

fn unix(at: DateTime<Utc>) -> i64 {
    at.timestamp()
}

fn at(unix: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(unix, 0).expect("a representable instant")
}

/// The methods every fake has under the same names: the rest of a [`PanelFake`] impl.
macro_rules! same_for_every_fake {
    ($fake:ident) => {
        fn remove(&self, username: &str) -> bool {
            self.remove_user(username)
        }
        fn fail_next(&self, n: usize, status: u16) {
            $fake::fail_next(self, n, status)
        }
        fn time_out_next(&self, n: usize, delay: Duration) {
            $fake::time_out_next(self, n, delay)
        }
        fn subscription_valid(&self, url: &str) -> bool {
            $fake::subscription_valid(self, url)
        }
        fn routes(&self) -> Vec<(String, String)> {
            self.requests()
                .into_iter()
                .map(|r| (r.method, r.route))
                .collect()
        }
        fn clear_requests(&self) {
            $fake::clear_requests(self)
        }
        fn set_latency(&self, latency: Duration) {
            $fake::set_latency(self, latency)
        }
    };
}

impl PanelFake for FakePanel {
    fn env(&self, wrong: bool) -> Vec<(String, String)> {
        let password = if wrong { "wrong" } else { mz::ADMIN_PASSWORD };
        env(&[
            ("MARZBAN_URL", &self.url()),
            ("MARZBAN_USERNAME", mz::ADMIN_USERNAME),
            ("MARZBAN_PASSWORD", password),
        ])
    }
    fn stored(&self, username: &str) -> Option<Stored> {
        self.user(username).map(|u| Stored {
            status: u.status,
            expire: u.expire,
            data_limit: u.data_limit,
            used: u.used_traffic,
        })
    }
    fn store(&self, username: &str, before: &Stored, after: Stored) {
        self.update_user(username, |u| {
            if after.status != before.status {
                u.status = after.status;
            }
            u.expire = after.expire;
            u.data_limit = after.data_limit;
            u.used_traffic = after.used;
        });
    }
    fn seed(&self, username: &str, used: i64) {
        let mut user = self.new_user(username);
        user.used_traffic = used;
        self.insert_user(user);
    }
    fn reaches_nodes(&self, username: &str) -> bool {
        self.user(username)
            .is_some_and(|u| u.inbounds.values().any(|tags| !tags.is_empty()))
    }
    same_for_every_fake!(FakePanel);
}

impl PanelFake for FakePasarGuard {
    fn env(&self, wrong: bool) -> Vec<(String, String)> {
        let key = if wrong { "pg_key_wrong" } else { pg::API_KEY };
        env(&[
            ("PANEL_KIND", "pasarguard"),
            ("PASARGUARD_URL", &self.url()),
            ("PASARGUARD_API_KEY", key),
            ("PASARGUARD_GROUP_IDS", "1"),
        ])
    }
    fn stored(&self, username: &str) -> Option<Stored> {
        self.user(username).map(|u| Stored {
            status: u.status,
            expire: u.expire.map(unix),
            data_limit: u.data_limit.filter(|l| *l > 0),
            used: u.used_traffic,
        })
    }
    fn store(&self, username: &str, before: &Stored, after: Stored) {
        self.update_user(username, |u| {
            if after.status != before.status {
                u.status = after.status;
            }
            u.expire = after.expire.map(at);
            u.data_limit = after.data_limit;
            u.used_traffic = after.used;
        });
    }
    fn seed(&self, username: &str, used: i64) {
        let mut user = self.new_user(username);
        user.used_traffic = used;
        user.lifetime_used_traffic = used;
        self.insert_user(user);
    }
    fn reaches_nodes(&self, username: &str) -> bool {
        self.user(username).is_some_and(|u| !u.group_ids.is_empty())
    }
    same_for_every_fake!(FakePasarGuard);
}

impl PanelFake for FakeRemnawave {
    fn env(&self, wrong: bool) -> Vec<(String, String)> {
        let token = if wrong {
            "eyJ.wrong.token"
        } else {
            rw::API_TOKEN
        };
        env(&[
            ("PANEL_KIND", "remnawave"),
            ("REMNAWAVE_URL", &self.url()),
            ("REMNAWAVE_TOKEN", token),
            ("REMNAWAVE_SQUADS", rw::SQUADS[0].0),
        ])
    }
    fn stored(&self, username: &str) -> Option<Stored> {
        self.user(username).map(|u| Stored {
            status: u.status.to_lowercase(),
            expire: Some(unix(u.expire_at)),
            data_limit: Some(u.traffic_limit_bytes).filter(|l| *l > 0),
            used: u.used_traffic_bytes,
        })
    }
    fn store(&self, username: &str, before: &Stored, after: Stored) {
        self.update_user(username, |u| {
            if after.status != before.status {
                u.status = after.status.to_uppercase();
            }
            if after.expire != before.expire {
                u.expire_at = at(after.expire.expect("Remnawave has no user without expiry"));
            }
            u.traffic_limit_bytes = after.data_limit.unwrap_or(0);
            u.used_traffic_bytes = after.used;
        });
    }
    fn seed(&self, username: &str, used: i64) {
        let mut user = self.new_user(username);
        user.used_traffic_bytes = used;
        user.lifetime_used_traffic_bytes = used;
        self.insert_user(user);
    }
    fn reaches_nodes(&self, username: &str) -> bool {
        self.user(username).is_some_and(|u| !u.squads.is_empty())
    }
    same_for_every_fake!(FakeRemnawave);
}

/// The running fake of one kind of panel.
pub enum AnyPanel {
    Marzban(FakePanel),
    PasarGuard(FakePasarGuard),
    Remnawave(FakeRemnawave),
}

impl Kind {
    pub const ALL: [Kind; 4] = [
        Kind::Marzban,
        Kind::PasarGuard,
        Kind::Remnawave2,
        Kind::Remnawave3,
    ];

    /// `marzban`, `pasarguard`, `remnawave-2.8`, `remnawave` (3.x).
    pub fn name(self) -> &'static str {
        match self {
            Kind::Marzban => "marzban",
            Kind::PasarGuard => "pasarguard",
            Kind::Remnawave2 => "remnawave-2.8",
            Kind::Remnawave3 => "remnawave",
        }
    }

    pub fn from_name(name: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.name() == name)
    }
}

impl AnyPanel {
    pub fn start(kind: Kind) -> AnyPanel {
        match kind {
            Kind::Marzban => AnyPanel::Marzban(FakePanel::start()),
            Kind::PasarGuard => AnyPanel::PasarGuard(FakePasarGuard::start()),
            Kind::Remnawave2 => AnyPanel::Remnawave(FakeRemnawave::start(rw::V2)),
            Kind::Remnawave3 => AnyPanel::Remnawave(FakeRemnawave::start(rw::V3)),
        }
    }

    /// The Marzban fake, for a test of Marzban's own behaviour.
    pub fn marzban(&self) -> &FakePanel {
        match self {
            AnyPanel::Marzban(fake) => fake,
            _ => panic!("not the Marzban fake"),
        }
    }
}

/// `$body` with `$fake` bound to the fake inside, whichever kind it is.
macro_rules! each {
    ($panel:expr, $fake:ident => $body:expr) => {
        match $panel {
            AnyPanel::Marzban($fake) => $body,
            AnyPanel::PasarGuard($fake) => $body,
            AnyPanel::Remnawave($fake) => $body,
        }
    };
}

impl PanelFake for AnyPanel {
    fn env(&self, wrong_credentials: bool) -> Vec<(String, String)> {
        each!(self, fake => fake.env(wrong_credentials))
    }
    fn stored(&self, username: &str) -> Option<Stored> {
        each!(self, fake => fake.stored(username))
    }
    fn store(&self, username: &str, before: &Stored, after: Stored) {
        each!(self, fake => fake.store(username, before, after))
    }
    fn seed(&self, username: &str, used: i64) {
        each!(self, fake => fake.seed(username, used))
    }
    fn remove(&self, username: &str) -> bool {
        each!(self, fake => PanelFake::remove(fake, username))
    }
    fn fail_next(&self, n: usize, status: u16) {
        each!(self, fake => PanelFake::fail_next(fake, n, status))
    }
    fn time_out_next(&self, n: usize, delay: Duration) {
        each!(self, fake => PanelFake::time_out_next(fake, n, delay))
    }
    fn subscription_valid(&self, url: &str) -> bool {
        each!(self, fake => PanelFake::subscription_valid(fake, url))
    }
    fn reaches_nodes(&self, username: &str) -> bool {
        each!(self, fake => fake.reaches_nodes(username))
    }
    fn routes(&self) -> Vec<(String, String)> {
        each!(self, fake => fake.routes())
    }
    fn clear_requests(&self) {
        each!(self, fake => PanelFake::clear_requests(fake))
    }
    fn set_latency(&self, latency: Duration) {
        each!(self, fake => PanelFake::set_latency(fake, latency))
    }
}

/// Runs the scenario `async fn $scenario(kind: Kind)` as one test per panel a shop can drive:
/// `$scenario::marzban`, `::pasarguard`, `::remnawave_2_8` and `::remnawave_3`.
#[macro_export]
macro_rules! on_every_panel {
    ($scenario:ident) => {
        mod $scenario {
            use $crate::support::panels::Kind;

            #[actix_rt::test]
            async fn marzban() {
                super::$scenario(Kind::Marzban).await;
            }

            #[actix_rt::test]
            async fn pasarguard() {
                super::$scenario(Kind::PasarGuard).await;
            }

            #[actix_rt::test]
            async fn remnawave_2_8() {
                super::$scenario(Kind::Remnawave2).await;
            }

            #[actix_rt::test]
            async fn remnawave_3() {
                super::$scenario(Kind::Remnawave3).await;
            }
        }
    };
}
