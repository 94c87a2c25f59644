//! Notification texts: a [`Notification`] and what we know of its recipient, rendered in the
//! recipient's language as an email subject, a Telegram HTML body and a button.

use chrono::FixedOffset;

use super::{Args, format_bytes, format_date, format_datetime, format_money, message};
use crate::domain::Language;
use crate::domain::notifications::{Notification, PromoEffect};

/// What the texts need to know about the recipient.
#[derive(Debug, Clone, Copy)]
pub struct Recipient<'a> {
    pub language: Language,
    /// The current subscription link, if the panel has issued one.
    pub subscription_url: Option<&'a str>,
}

/// A button under a Telegram message: its label and callback data (handled by the bot).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Button {
    pub text: String,
    pub callback: &'static str,
}

/// A notification ready to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub subject: String,
    /// Telegram HTML.
    pub html: String,
    pub button: Button,
}

/// Callback data of the buttons (the bot's main menu, the plan list, the subscription status).
pub const CALLBACK_MENU: &str = "menu";
pub const CALLBACK_BUY: &str = "buy";
pub const CALLBACK_STATUS: &str = "status";
/// Write to the team (under failed-payment messages, when someone reads support questions).
pub const CALLBACK_SUPPORT: &str = "support";

/// Renders a templated notification. `None` for a broadcast, whose text an admin wrote.
pub fn render(n: &Notification, to: &Recipient<'_>, offset: FixedOffset) -> Option<Rendered> {
    let lang = to.language;
    let days_text = |days: u32| message(lang, "days", &Args::new().number("days", days));
    let date = |at| format_date(lang, at, offset);
    let datetime = |at| format_datetime(lang, at, offset);
    let money = |m| format_money(lang, m);
    let args = match n {
        Notification::Broadcast { .. } => return None,
        Notification::LinkReady {} => Args::new(),
        Notification::TrialStarted { days, expires_at } => Args::new()
            .text("days_text", &days_text(*days))
            .text("date", &datetime(*expires_at)),
        Notification::TrialEnding { expires_at } => {
            Args::new().text("date", &datetime(*expires_at))
        }
        Notification::SubscriptionExpiring {
            days_left,
            expires_at,
        } => Args::new()
            .text("days_text", &days_text(*days_left))
            .text("date", &datetime(*expires_at)),
        Notification::SubscriptionExpired { expired_at } => {
            Args::new().text("date", &datetime(*expired_at))
        }
        Notification::PaymentSucceeded {
            plan,
            amount,
            days,
            expires_at,
        } => Args::new()
            .text("plan", plan)
            .text("amount", &money(*amount))
            .text("days_text", &days_text(*days))
            .text("date", &date(*expires_at)),
        Notification::PaymentFailed {
            plan,
            amount,
            reason,
        } => Args::new()
            .text("plan", plan)
            .text("amount", &money(*amount))
            .text("reason", &reason_text(lang, reason.as_str())),
        Notification::AutoRenewalSucceeded {
            plan,
            amount,
            expires_at,
        } => Args::new()
            .text("plan", plan)
            .text("amount", &money(*amount))
            .text("date", &date(*expires_at)),
        Notification::AutoRenewalFailed { amount, reason } => Args::new()
            .text("amount", &money(*amount))
            .text("reason", &reason_text(lang, reason.as_str())),
        Notification::ReferralJoined { friend, bonus_days } => Args::new()
            .text("friend", friend)
            .text("days_text", &days_text(*bonus_days)),
        Notification::ReferralBonus { days, expires_at }
        | Notification::ReferralWelcome { days, expires_at } => Args::new()
            .text("days_text", &days_text(*days))
            .text("date", &date(*expires_at)),
        Notification::PromoApplied { code, effect } => {
            let args = Args::new().text("code", code);
            match effect {
                PromoEffect::Days { days, expires_at } => args
                    .text("effect", "days")
                    .text("days_text", &days_text(*days))
                    .text("date", &date(*expires_at)),
                PromoEffect::Percent { percent } => {
                    args.text("effect", "percent").number("percent", *percent)
                }
                PromoEffect::Amount { amount } => args
                    .text("effect", "amount")
                    .text("amount", &money(*amount)),
            }
        }
        Notification::TrafficThreshold {
            percent,
            used_bytes,
            limit_bytes,
        } => Args::new()
            .number("percent", *percent)
            .text("used", &format_bytes(lang, *used_bytes))
            .text("limit", &format_bytes(lang, *limit_bytes)),
    };
    let kind = n.kind();
    let subject = super::html_to_text(&message(lang, &format!("{kind}-subject"), &args));
    let mut html = message(lang, &format!("{kind}-body"), &args);
    if n.with_link() {
        html.push_str("\n\n");
        html.push_str(&match to.subscription_url {
            Some(link) => message(lang, "link-line", &Args::new().text("link", link)),
            None => message(lang, "link-pending", &Args::new()),
        });
    }
    let (label, callback) = match n {
        Notification::TrialEnding { .. }
        | Notification::SubscriptionExpiring { .. }
        | Notification::SubscriptionExpired { .. }
        | Notification::PaymentFailed { .. }
        | Notification::AutoRenewalFailed { .. }
        | Notification::TrafficThreshold { .. } => ("button-renew", CALLBACK_BUY),
        Notification::TrialStarted { .. }
        | Notification::LinkReady {}
        | Notification::PaymentSucceeded { .. }
        | Notification::AutoRenewalSucceeded { .. }
        | Notification::ReferralBonus { .. }
        | Notification::ReferralWelcome { .. }
        | Notification::PromoApplied { .. } => ("button-status", CALLBACK_STATUS),
        Notification::ReferralJoined { .. } | Notification::Broadcast { .. } => {
            ("button-menu", CALLBACK_MENU)
        }
    };
    Some(Rendered {
        subject,
        html,
        button: Button {
            text: message(lang, label, &Args::new()),
            callback,
        },
    })
}

fn reason_text(lang: Language, code: &str) -> String {
    message(lang, &format!("failure-{code}"), &Args::new())
}

/// The HTML part of an email: the Telegram HTML as paragraphs.
pub fn email_html(subject: &str, telegram_html: &str) -> String {
    let body = telegram_html
        .split("\n\n")
        .map(|p| format!("<p>{}</p>", p.replace('\n', "<br>\n")))
        .collect::<Vec<_>>()
        .join("\n");
    format!(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{}</title></head>\n<body>\n{body}\n</body></html>\n",
        super::escape_html(subject)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::notifications::{FailureReason, KINDS};
    use crate::domain::{BroadcastId, Money};
    use chrono::{DateTime, Utc};

    fn at() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-12-27T09:00:00Z")
            .unwrap()
            .to_utc()
    }

    /// One notification of every kind, with data.
    pub(crate) fn samples() -> Vec<Notification> {
        let rub = Money::rub_kopecks(54900);
        vec![
            Notification::TrialStarted {
                days: 7,
                expires_at: at(),
            },
            Notification::TrialEnding { expires_at: at() },
            Notification::SubscriptionExpiring {
                days_left: 3,
                expires_at: at(),
            },
            Notification::SubscriptionExpired { expired_at: at() },
            Notification::PaymentSucceeded {
                plan: "3 months".into(),
                amount: rub,
                days: 90,
                expires_at: at(),
            },
            Notification::PaymentFailed {
                plan: "3 months".into(),
                amount: rub,
                reason: FailureReason::InsufficientFunds,
            },
            Notification::AutoRenewalSucceeded {
                plan: "1 month".into(),
                amount: rub,
                expires_at: at(),
            },
            Notification::AutoRenewalFailed {
                amount: rub,
                reason: FailureReason::PermissionRevoked,
            },
            Notification::ReferralJoined {
                friend: "Ann <3".into(),
                bonus_days: 30,
            },
            Notification::ReferralBonus {
                days: 30,
                expires_at: at(),
            },
            Notification::ReferralWelcome {
                days: 7,
                expires_at: at(),
            },
            Notification::PromoApplied {
                code: "SPRING".into(),
                effect: PromoEffect::Percent { percent: 15 },
            },
            Notification::TrafficThreshold {
                percent: 80,
                used_bytes: 40 << 30,
                limit_bytes: 50 << 30,
            },
            Notification::LinkReady {},
            Notification::Broadcast {
                broadcast_id: BroadcastId(1),
            },
        ]
    }

    fn msk() -> FixedOffset {
        FixedOffset::east_opt(3 * 3600).unwrap()
    }

    #[test]
    fn every_kind_renders_in_both_languages_with_its_data() {
        let samples = samples();
        let kinds: Vec<_> = samples.iter().map(Notification::kind).collect();
        assert_eq!(kinds, KINDS, "a sample per kind");
        for lang in [Language::En, Language::Ru] {
            let to = Recipient {
                language: lang,
                subscription_url: Some("https://sub.example.com/sub/abc"),
            };
            for n in &samples {
                let Some(r) = render(n, &to, msk()) else {
                    assert_eq!(n.kind(), "broadcast");
                    continue;
                };
                for text in [&r.subject, &r.html, &r.button.text] {
                    assert!(!text.is_empty(), "{lang} {}: empty", n.kind());
                    assert!(
                        !text.contains(n.kind()),
                        "{lang} {}: a message id leaked: {text}",
                        n.kind()
                    );
                    assert!(
                        !text.contains('{') && !text.contains('$'),
                        "{lang} {}: {text}",
                        n.kind()
                    );
                }
                if n.with_link() {
                    assert!(
                        r.html.contains("https://sub.example.com/sub/abc"),
                        "{}",
                        r.html
                    );
                }
            }
        }
    }

    #[test]
    fn data_appears_in_the_language_of_the_user() {
        let n = Notification::PaymentSucceeded {
            plan: "3 months".into(),
            amount: Money::rub_kopecks(54900),
            days: 90,
            expires_at: at(),
        };
        let ru = render(
            &n,
            &Recipient {
                language: Language::Ru,
                subscription_url: None,
            },
            msk(),
        )
        .unwrap();
        assert!(
            ru.html.contains("549 ₽")
                && ru.html.contains("90 дней")
                && ru.html.contains("27.12.2026"),
            "{}",
            ru.html
        );
        assert!(
            ru.html.contains("Ссылка на подписку готовится"),
            "{}",
            ru.html
        );
        assert_eq!(ru.subject, "Оплата получена: 3 months");
        let en = render(
            &n,
            &Recipient {
                language: Language::En,
                subscription_url: Some("https://x/sub/1"),
            },
            msk(),
        )
        .unwrap();
        assert!(
            en.html.contains("549 ₽")
                && en.html.contains("90 days")
                && en.html.contains("27 Dec 2026"),
            "{}",
            en.html
        );
        assert_eq!(
            en.button,
            Button {
                text: "My subscription".into(),
                callback: CALLBACK_STATUS
            }
        );

        let traffic = Notification::TrafficThreshold {
            percent: 100,
            used_bytes: 50 << 30,
            limit_bytes: 50 << 30,
        };
        let en = render(
            &traffic,
            &Recipient {
                language: Language::En,
                subscription_url: None,
            },
            msk(),
        )
        .unwrap();
        assert!(
            en.html.contains("Your traffic is used up") && en.html.contains("50 GB"),
            "{}",
            en.html
        );
        let friend = Notification::ReferralJoined {
            friend: "<script>".into(),
            bonus_days: 30,
        };
        let en = render(
            &friend,
            &Recipient {
                language: Language::En,
                subscription_url: None,
            },
            msk(),
        )
        .unwrap();
        assert!(en.html.contains("&lt;script&gt;") && !en.html.contains("<script>"));
        let reason = Notification::PaymentFailed {
            plan: "x".into(),
            amount: Money::rub_kopecks(100),
            reason: FailureReason::CardExpired,
        };
        let ru = render(
            &reason,
            &Recipient {
                language: Language::Ru,
                subscription_url: None,
            },
            msk(),
        )
        .unwrap();
        assert!(ru.html.contains("срок действия карты истёк"), "{}", ru.html);
    }

    #[test]
    fn email_html_is_a_document() {
        let html = email_html("A & B", "<b>Hi</b>\nline\n\nnext");
        assert!(html.contains("<title>A &amp; B</title>"));
        assert!(html.contains("<p><b>Hi</b><br>\nline</p>\n<p>next</p>"));
    }
}
