//! What a subscription means on the Marzban panel: the panel username, the desired panel user
//! (absolute expiry, data limit, status) and the drift between that and what the panel reports.
//! The database is the source of truth; the panel is made to match it.

use chrono::{DateTime, Utc};

use crate::domain::{PanelUserStatus, SubscriptionStatus, UserId};

/// Panel username of a subscriber, within the panel's `[a-z0-9_]{3,32}` (the prefix is
/// validated at start-up to leave room for any id): prefix + Telegram id for one who came
/// through the bot (the names the shop has always given), prefix + `w` + the shop's own user id
/// for one who signed up on the web without Telegram. A subscription keeps the name it was
/// created with (`subscriptions.panel_username`), so linking Telegram later renames nothing.
pub fn panel_username(prefix: &str, user_id: UserId, telegram_id: Option<i64>) -> String {
    let prefix = prefix.to_ascii_lowercase();
    match telegram_id {
        Some(telegram_id) => format!("{prefix}{}", telegram_id.unsigned_abs()),
        // Base 36 keeps any i64 id within 13 characters: 16 + 1 + 13 <= 32.
        None => format!("{prefix}w{}", base36(user_id.0.unsigned_abs())),
    }
}

fn base36(mut n: u64) -> String {
    const DIGITS: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut out = Vec::new();
    loop {
        out.push(DIGITS[(n % 36) as usize]);
        n /= 36;
        if n == 0 {
            break;
        }
    }
    out.reverse();
    out.into_iter().map(char::from).collect()
}

/// The status the shop asks the panel for. `limited` and `expired` are computed by the panel
/// from the traffic and the expiry; the shop only ever sets these two.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WantedStatus {
    Active,
    Disabled,
}

impl WantedStatus {
    pub const fn as_str(self) -> &'static str {
        match self {
            WantedStatus::Active => "active",
            WantedStatus::Disabled => "disabled",
        }
    }
}

/// The panel user a subscription should have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DesiredUser {
    /// Unix seconds (UTC), as the panel stores it.
    pub expire: i64,
    /// Bytes; 0 = unlimited, as the panel takes it.
    pub data_limit: i64,
    pub status: WantedStatus,
}

impl DesiredUser {
    pub fn new(
        status: SubscriptionStatus,
        expires_at: DateTime<Utc>,
        traffic_limit_bytes: Option<i64>,
    ) -> Self {
        DesiredUser {
            expire: expires_at.timestamp(),
            data_limit: traffic_limit_bytes.unwrap_or(0).max(0),
            status: match status {
                SubscriptionStatus::Disabled => WantedStatus::Disabled,
                // An expired subscription stays "active" with a past expiry: the panel itself
                // shows it as expired, and a renewal only has to move the expiry.
                SubscriptionStatus::Active | SubscriptionStatus::Expired => WantedStatus::Active,
            },
        }
    }

    /// Whether a panel user missing from the panel should be created: only for access the
    /// user still has (a disabled or long-expired subscription needs no panel user).
    pub fn needs_panel_user(&self, now: DateTime<Utc>) -> bool {
        self.status == WantedStatus::Active && self.expire > now.timestamp()
    }
}

/// The fields of a panel user that the shop manages, as the panel reports them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PanelState {
    /// `None`: never expires.
    pub expire: Option<i64>,
    /// `None`: unlimited.
    pub data_limit: Option<i64>,
    pub status: PanelUserStatus,
}

/// The changes a PUT must carry to make the panel match; all absolute values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Drift {
    pub expire: Option<i64>,
    pub data_limit: Option<i64>,
    pub status: Option<WantedStatus>,
}

impl Drift {
    pub fn is_empty(&self) -> bool {
        *self == Drift::default()
    }
}

/// What differs between the panel and the desired user.
pub fn drift(desired: &DesiredUser, panel: &PanelState) -> Drift {
    let expire = (panel.expire != Some(desired.expire)).then_some(desired.expire);
    let panel_limit = panel.data_limit.unwrap_or(0);
    let data_limit = (panel_limit != desired.data_limit).then_some(desired.data_limit);
    let status_ok = match desired.status {
        WantedStatus::Disabled => panel.status == PanelUserStatus::Disabled,
        // `expired` and `limited` follow from expiry and traffic, which are compared above.
        WantedStatus::Active => matches!(
            panel.status,
            PanelUserStatus::Active | PanelUserStatus::Expired | PanelUserStatus::Limited
        ),
    };
    Drift {
        expire,
        data_limit,
        status: (!status_ok).then_some(desired.status),
    }
}

/// [`drift`] on a panel that keeps (`refuses_past_expiry == false`) or refuses an expiry in the
/// past (Remnawave). Where it is refused, an access that has ended (`desired` active but its expiry
/// before `now`) is held by a disabled panel user whatever expiry that user still has — the
/// adapter disables instead of writing the past date — so such a user is in line, and the next
/// sync does not write it again. A naturally expired user with the same expiry is in line too,
/// as on every panel.
pub fn drift_on(
    desired: &DesiredUser,
    panel: &PanelState,
    refuses_past_expiry: bool,
    now: i64,
) -> Drift {
    let changes = drift(desired, panel);
    let ended = desired.status == WantedStatus::Active && desired.expire <= now;
    if refuses_past_expiry && ended && panel.status == PanelUserStatus::Disabled {
        return Drift {
            expire: None,
            status: None,
            ..changes
        };
    }
    changes
}

/// Traffic warning thresholds, in percent of the limit.
pub const TRAFFIC_THRESHOLDS: [u8; 2] = [80, 100];

/// The highest threshold `used` has reached of `limit` (0 when none, or no limit).
pub fn traffic_level(used: i64, limit: Option<i64>) -> u8 {
    let Some(limit) = limit.filter(|l| *l > 0) else {
        return 0;
    };
    let used = used.max(0) as i128;
    TRAFFIC_THRESHOLDS
        .iter()
        .rev()
        .copied()
        .find(|t| used * 100 >= limit as i128 * i128::from(*t))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use proptest::prelude::*;

    fn at(ts: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(ts, 0).unwrap()
    }

    #[test]
    fn usernames_fit_the_panel_rule() {
        let id = UserId(7);
        assert_eq!(
            panel_username("vpnshop_", id, Some(123456789)),
            "vpnshop_123456789"
        );
        assert_eq!(panel_username("vpnshop_", UserId(42), None), "vpnshop_w16");
        assert_eq!(panel_username("Shop_", UserId(35), None), "shop_wz");
        let longest = [
            panel_username("sixteen_chars_pf", id, Some(i64::MAX >> 11)),
            panel_username("sixteen_chars_pf", UserId(i64::MAX), None),
        ];
        for name in longest {
            assert!(
                name.len() <= 32 && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'),
                "{name}"
            );
        }
        // A web-only name never equals a Telegram user's: theirs are digits after the prefix.
        assert!(panel_username("p_", UserId(1), None).starts_with("p_w"));
    }

    #[test]
    fn desired_user_from_subscription() {
        let d = DesiredUser::new(SubscriptionStatus::Expired, at(1_000), None);
        assert_eq!(
            d,
            DesiredUser {
                expire: 1_000,
                data_limit: 0,
                status: WantedStatus::Active
            }
        );
        assert!(!d.needs_panel_user(at(2_000)) && d.needs_panel_user(at(999)));
        let d = DesiredUser::new(SubscriptionStatus::Disabled, at(5_000), Some(10));
        assert_eq!(d.status, WantedStatus::Disabled);
        assert!(!d.needs_panel_user(at(0)));
    }

    #[test]
    fn drift_only_where_the_panel_differs() {
        let desired = DesiredUser {
            expire: 2_000,
            data_limit: 0,
            status: WantedStatus::Active,
        };
        let same = PanelState {
            expire: Some(2_000),
            data_limit: None,
            status: PanelUserStatus::Active,
        };
        assert!(drift(&desired, &same).is_empty());
        // Computed panel statuses are not drift.
        for status in [PanelUserStatus::Expired, PanelUserStatus::Limited] {
            assert!(drift(&desired, &PanelState { status, ..same }).is_empty());
        }
        let changed = PanelState {
            expire: Some(1_500),
            data_limit: Some(5),
            status: PanelUserStatus::Disabled,
        };
        assert_eq!(
            drift(&desired, &changed),
            Drift {
                expire: Some(2_000),
                data_limit: Some(0),
                status: Some(WantedStatus::Active)
            }
        );
        let never = PanelState {
            expire: None,
            ..same
        };
        assert_eq!(drift(&desired, &never).expire, Some(2_000));
        let disabled = DesiredUser {
            status: WantedStatus::Disabled,
            ..desired
        };
        assert_eq!(drift(&disabled, &same).status, Some(WantedStatus::Disabled));
        let on_hold = PanelState {
            status: PanelUserStatus::OnHold,
            ..same
        };
        assert_eq!(drift(&desired, &on_hold).status, Some(WantedStatus::Active));
    }

    #[test]
    fn an_ended_access_held_by_a_disabled_user_is_in_line_where_past_expiries_are_refused() {
        let now = 10_000;
        let ended = DesiredUser {
            expire: 9_000,
            data_limit: 0,
            status: WantedStatus::Active,
        };
        let disabled = PanelState {
            expire: Some(20_000),
            data_limit: None,
            status: PanelUserStatus::Disabled,
        };
        assert!(drift_on(&ended, &disabled, true, now).is_empty());
        // A panel that stores the past date gets it, and the user enabled (it shows expired).
        assert_eq!(
            drift_on(&ended, &disabled, false, now),
            drift(&ended, &disabled)
        );
        // Still active on the panel: the expiry is written (the adapter disables instead).
        let active = PanelState {
            status: PanelUserStatus::Active,
            ..disabled
        };
        assert_eq!(drift_on(&ended, &active, true, now).expire, Some(9_000));
        // The data limit is still the database's.
        let limited = PanelState {
            data_limit: Some(5),
            ..disabled
        };
        assert_eq!(
            drift_on(&ended, &limited, true, now),
            Drift {
                data_limit: Some(0),
                ..Drift::default()
            }
        );
        // An access that has not ended is enabled again, with its expiry.
        let running = DesiredUser {
            expire: 11_000,
            ..ended
        };
        assert_eq!(
            drift_on(&running, &disabled, true, now),
            drift(&running, &disabled)
        );
        // Naturally expired with the same date: in line.
        let expired = PanelState {
            expire: Some(9_000),
            status: PanelUserStatus::Expired,
            ..disabled
        };
        assert!(drift_on(&ended, &expired, true, now).is_empty());
    }

    #[test]
    fn traffic_levels() {
        let gib = 1 << 30;
        assert_eq!(traffic_level(0, Some(gib)), 0);
        assert_eq!(traffic_level(gib * 79 / 100, Some(gib)), 0);
        assert_eq!(traffic_level(gib * 80 / 100 + 1, Some(gib)), 80);
        assert_eq!(traffic_level(gib, Some(gib)), 100);
        assert_eq!(traffic_level(gib * 3, Some(gib)), 100);
        assert_eq!(traffic_level(gib * 3, None), 0);
        assert_eq!(traffic_level(5, Some(0)), 0);
    }

    proptest! {
        #[test]
        fn applying_the_drift_leaves_none(
            expire in 0i64..4_000_000_000, limit in 0i64..i64::MAX,
            panel_expire in proptest::option::of(0i64..4_000_000_000),
            panel_limit in proptest::option::of(1i64..i64::MAX),
            disabled in any::<bool>(), status in 0usize..5,
        ) {
            let desired = DesiredUser {
                expire, data_limit: limit,
                status: if disabled { WantedStatus::Disabled } else { WantedStatus::Active },
            };
            let panel = PanelState {
                expire: panel_expire, data_limit: panel_limit, status: PanelUserStatus::ALL[status],
            };
            let d = drift(&desired, &panel);
            let applied = PanelState {
                expire: Some(d.expire.unwrap_or(panel.expire.unwrap_or(expire))),
                data_limit: match d.data_limit { Some(0) => None, Some(l) => Some(l), None => panel.data_limit },
                status: match d.status {
                    Some(WantedStatus::Disabled) => PanelUserStatus::Disabled,
                    Some(WantedStatus::Active) => PanelUserStatus::Active,
                    None => panel.status,
                },
            };
            prop_assert!(drift(&desired, &applied).is_empty());
        }

        #[test]
        fn traffic_level_is_monotonic(a in 0i64..i64::MAX, b in 0i64..i64::MAX, limit in 1i64..i64::MAX) {
            let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
            prop_assert!(traffic_level(lo, Some(limit)) <= traffic_level(hi, Some(limit)));
        }
    }
}
