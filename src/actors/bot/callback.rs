//! Callback data of the bot's inline buttons (at most 64 bytes, parsed once here). Buttons
//! carry no other subscriber's id: a user pressing a forged button acts on their own account;
//! the admin buttons name a user and are obeyed only for admins.

use std::str::FromStr;

use crate::domain::alerts::AlertKind;
use crate::domain::broadcast::Segment;
use crate::domain::{AlertId, JobId, Language, PaymentProvider, PlanId, UserId};
use crate::i18n::notifications::{CALLBACK_BUY, CALLBACK_MENU, CALLBACK_STATUS, CALLBACK_SUPPORT};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Callback {
    Menu,
    Buy,
    Status,
    Trial,
    Referral,
    Promo,
    Settings,
    Help,
    /// Write to the team (support conversations).
    Support,
    Connect,
    Plan(PlanId),
    Pay {
        plan: PlanId,
        provider: PaymentProvider,
        auto_renew: bool,
    },
    Language(Language),
    Email,
    EmailRemove,
    AutoRenewOff,
    CheckChannel,
    Cancel,
    Admin(AdminAction),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdminAction {
    Stats,
    Broadcast,
    Grant(UserId),
    Ban(UserId),
    Unban(UserId),
    ResetTraffic(UserId),
    RevokeLink(UserId),
    Audience(Segment),
    SendBroadcast,
    /// A user's profile (a button of an alert).
    User(UserId),
    /// Retry a dead job (a button of an alert).
    RetryJob(JobId),
    /// Mark a flagged payment reviewed (a button of its alert).
    Reviewed(AlertId),
    /// The alerts menu (`/alerts`).
    Alerts,
    Mute(AlertKind),
    Unmute(AlertKind),
}

/// The audiences an admin can pick in the bot.
pub const SEGMENTS: [Segment; 5] = [
    Segment::All,
    Segment::Active,
    Segment::Expired,
    Segment::Trial,
    Segment::NeverPaid,
];

fn segment(s: &str) -> Option<Segment> {
    SEGMENTS.into_iter().find(|seg| seg.as_str() == s)
}

impl Callback {
    pub fn encode(self) -> String {
        match self {
            Callback::Menu => CALLBACK_MENU.into(),
            Callback::Buy => CALLBACK_BUY.into(),
            Callback::Status => CALLBACK_STATUS.into(),
            Callback::Trial => "trial".into(),
            Callback::Referral => "ref".into(),
            Callback::Promo => "promo".into(),
            Callback::Settings => "settings".into(),
            Callback::Help => "help".into(),
            Callback::Support => CALLBACK_SUPPORT.into(),
            Callback::Connect => "connect".into(),
            Callback::Plan(id) => format!("plan:{}", id.0),
            Callback::Pay {
                plan,
                provider,
                auto_renew,
            } => format!(
                "pay:{}:{}{}",
                plan.0,
                provider.as_str(),
                if auto_renew { ":auto" } else { "" }
            ),
            Callback::Language(l) => format!("lang:{}", l.as_str()),
            Callback::Email => "email".into(),
            Callback::EmailRemove => "email_rm".into(),
            Callback::AutoRenewOff => "auto_off".into(),
            Callback::CheckChannel => "chk".into(),
            Callback::Cancel => "cancel".into(),
            Callback::Admin(a) => match a {
                AdminAction::Stats => "a:stats".into(),
                AdminAction::Broadcast => "a:bc".into(),
                AdminAction::Grant(u) => format!("a:grant:{}", u.0),
                AdminAction::Ban(u) => format!("a:ban:{}", u.0),
                AdminAction::Unban(u) => format!("a:unban:{}", u.0),
                AdminAction::ResetTraffic(u) => format!("a:reset:{}", u.0),
                AdminAction::RevokeLink(u) => format!("a:revoke:{}", u.0),
                AdminAction::Audience(a) => format!("a:aud:{}", a.as_str()),
                AdminAction::SendBroadcast => "a:send".into(),
                AdminAction::User(u) => format!("a:user:{}", u.0),
                AdminAction::RetryJob(j) => format!("a:retry:{}", j.0),
                AdminAction::Reviewed(p) => format!("a:rev:{}", p.0),
                AdminAction::Alerts => "a:alerts".into(),
                AdminAction::Mute(k) => format!("a:mute:{}", k.as_str()),
                AdminAction::Unmute(k) => format!("a:unmute:{}", k.as_str()),
            },
        }
    }

    /// `None` for anything this bot did not make (an old or forged button).
    pub fn parse(data: &str) -> Option<Callback> {
        let mut parts = data.split(':');
        let head = parts.next()?;
        let a = parts.next();
        let b = parts.next();
        let c = parts.next();
        if parts.next().is_some() {
            return None;
        }
        // Only the form `encode` writes: digits without sign or leading zero ("+1", "01" are not).
        let id = |s: Option<&str>| {
            s.filter(|s| s.bytes().all(|b| b.is_ascii_digit()) && !s.starts_with('0'))
                .and_then(|s| s.parse::<i64>().ok())
        };
        let cb = match (head, a, b, c) {
            (CALLBACK_MENU, None, _, _) => Callback::Menu,
            (CALLBACK_BUY, None, _, _) => Callback::Buy,
            (CALLBACK_STATUS, None, _, _) => Callback::Status,
            ("trial", None, _, _) => Callback::Trial,
            ("ref", None, _, _) => Callback::Referral,
            ("promo", None, _, _) => Callback::Promo,
            ("settings", None, _, _) => Callback::Settings,
            ("help", None, _, _) => Callback::Help,
            (CALLBACK_SUPPORT, None, _, _) => Callback::Support,
            ("connect", None, _, _) => Callback::Connect,
            ("plan", Some(_), None, _) => Callback::Plan(PlanId(id(a)?)),
            ("pay", Some(_), Some(provider), auto) => Callback::Pay {
                plan: PlanId(id(a)?),
                provider: PaymentProvider::from_str(provider).ok()?,
                auto_renew: match auto {
                    None => false,
                    Some("auto") => true,
                    Some(_) => return None,
                },
            },
            ("lang", Some(l), None, _) => Callback::Language(Language::from_str(l).ok()?),
            ("email", None, _, _) => Callback::Email,
            ("email_rm", None, _, _) => Callback::EmailRemove,
            ("auto_off", None, _, _) => Callback::AutoRenewOff,
            ("chk", None, _, _) => Callback::CheckChannel,
            ("cancel", None, _, _) => Callback::Cancel,
            ("a", Some(action), arg, None) => Callback::Admin(match (action, arg) {
                ("stats", None) => AdminAction::Stats,
                ("bc", None) => AdminAction::Broadcast,
                ("send", None) => AdminAction::SendBroadcast,
                ("grant", _) => AdminAction::Grant(UserId(id(arg)?)),
                ("ban", _) => AdminAction::Ban(UserId(id(arg)?)),
                ("unban", _) => AdminAction::Unban(UserId(id(arg)?)),
                ("reset", _) => AdminAction::ResetTraffic(UserId(id(arg)?)),
                ("revoke", _) => AdminAction::RevokeLink(UserId(id(arg)?)),
                ("aud", Some(a)) => AdminAction::Audience(segment(a)?),
                ("user", _) => AdminAction::User(UserId(id(arg)?)),
                ("retry", _) => AdminAction::RetryJob(JobId(id(arg)?)),
                ("rev", _) => AdminAction::Reviewed(AlertId(id(arg)?)),
                ("alerts", None) => AdminAction::Alerts,
                ("mute", Some(k)) => AdminAction::Mute(AlertKind::from_str(k).ok()?),
                ("unmute", Some(k)) => AdminAction::Unmute(AlertKind::from_str(k).ok()?),
                _ => return None,
            }),
            _ => return None,
        };
        Some(cb)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_only_in_the_written_form() {
        for data in [
            "plan:+1",
            "plan:01",
            "plan:0",
            "plan:-1",
            "plan: 1",
            "a:ban:+7",
            "pay:007:yookassa",
        ] {
            assert_eq!(Callback::parse(data), None, "{data}");
        }
        assert_eq!(Callback::parse("plan:10"), Some(Callback::Plan(PlanId(10))));
    }

    #[test]
    fn every_callback_round_trips_within_64_bytes() {
        let user = UserId(i64::MAX);
        let all = [
            Callback::Menu,
            Callback::Buy,
            Callback::Status,
            Callback::Trial,
            Callback::Referral,
            Callback::Promo,
            Callback::Settings,
            Callback::Help,
            Callback::Support,
            Callback::Connect,
            Callback::Plan(PlanId(i64::MAX)),
            Callback::Pay {
                plan: PlanId(i64::MAX),
                provider: PaymentProvider::Yookassa,
                auto_renew: true,
            },
            Callback::Pay {
                plan: PlanId(3),
                provider: PaymentProvider::Stars,
                auto_renew: false,
            },
            Callback::Language(Language::Ru),
            Callback::Email,
            Callback::EmailRemove,
            Callback::AutoRenewOff,
            Callback::CheckChannel,
            Callback::Cancel,
            Callback::Admin(AdminAction::Stats),
            Callback::Admin(AdminAction::Broadcast),
            Callback::Admin(AdminAction::Grant(user)),
            Callback::Admin(AdminAction::Ban(user)),
            Callback::Admin(AdminAction::Unban(user)),
            Callback::Admin(AdminAction::ResetTraffic(user)),
            Callback::Admin(AdminAction::RevokeLink(user)),
            Callback::Admin(AdminAction::Audience(Segment::NeverPaid)),
            Callback::Admin(AdminAction::SendBroadcast),
            Callback::Admin(AdminAction::User(user)),
            Callback::Admin(AdminAction::RetryJob(JobId(i64::MAX))),
            Callback::Admin(AdminAction::Reviewed(AlertId(i64::MAX))),
            Callback::Admin(AdminAction::Alerts),
            Callback::Admin(AdminAction::Mute(AlertKind::PaidUnprovisioned)),
            Callback::Admin(AdminAction::Unmute(AlertKind::PaidUnprovisioned)),
        ];
        for cb in all {
            let data = cb.encode();
            assert!(data.len() <= 64, "{data}");
            assert_eq!(Callback::parse(&data), Some(cb), "{data}");
        }
    }

    #[test]
    fn forged_or_old_data_is_refused() {
        for data in [
            "",
            "plan",
            "plan:x",
            "plan:-1",
            "plan:1:2",
            "pay:1",
            "pay:1:paypal",
            "pay:1:wata:twice",
            "lang:de",
            "a:grant",
            "a:grant:0",
            "a:aud:nobody",
            "a:mute:everything",
            "a:retry:0",
            "menu:1",
            "drop table",
        ] {
            assert_eq!(Callback::parse(data), None, "{data}");
        }
    }
}
