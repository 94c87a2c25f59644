//! Texts of the admin alerts (`locales/*/alerts.ftl`) in `ADMIN_LANGUAGE`: an [`Alert`] as it is
//! raised or as it ends, with the labels of its buttons.

use chrono::{DateTime, FixedOffset, Offset, Utc};

use super::{Args, format_date, format_datetime, format_money, html_to_text, message};
use crate::domain::alerts::{Alert, AlertAction, AlertKind, AlertState, RefundOrigin};
use crate::domain::{AlertId, Language, Money, UserId};

/// An alert ready to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderedAlert {
    /// The first line, as plain text (the email subject).
    pub subject: String,
    /// Telegram HTML.
    pub html: String,
    /// The buttons: label and action.
    pub buttons: Vec<(String, AlertAction)>,
}

/// What is known of an alert's end.
#[derive(Debug, Clone, Copy, Default)]
pub struct Ending<'a> {
    pub resolved_at: Option<DateTime<Utc>>,
    /// Who or what ended it (`reviewed_by` of a flagged payment).
    pub by: Option<&'a str>,
}

/// `#12 (Telegram 5001)`, or `#12`, or `—`.
pub fn user_label(lang: Language, user: Option<UserId>, telegram_id: Option<i64>) -> String {
    match (user, telegram_id) {
        (Some(id), Some(tg)) => message(
            lang,
            "alert-user",
            &Args::new()
                .text("id", &id.to_string())
                .text("telegram_id", &tg.to_string()),
        ),
        (Some(id), None) => format!("#{id}"),
        (None, _) => message(lang, "alert-none", &Args::new()),
    }
}

/// The short title of a kind (the first line of its message, without the details), for lists.
pub fn kind_title(lang: Language, kind: AlertKind) -> String {
    message(lang, &format!("alerts-kind-{kind}"), &Args::new())
}

/// The longest error or detail an alert quotes: a message must stay under Telegram's 4096
/// characters.
const MAX_QUOTED: usize = 600;

/// `text`, cut to [`MAX_QUOTED`] characters (with "…").
fn quoted(text: &str) -> String {
    match text.char_indices().nth(MAX_QUOTED) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_owned(),
    }
}

/// Alert `id` as told in `state`.
pub fn render(
    alert: &Alert,
    id: AlertId,
    state: AlertState,
    ending: Ending<'_>,
    lang: Language,
    offset: FixedOffset,
) -> RenderedAlert {
    let money = |m: Money| format_money(lang, m);
    let none = || message(lang, "alert-none", &Args::new());
    let anomaly_text = |a: &crate::domain::alerts::Anomaly| {
        message(lang, &format!("alert-anomaly-{a}"), &Args::new())
    };
    let resolved = state == AlertState::Resolved;
    let args = match alert {
        Alert::PaymentFlagged {
            anomaly,
            order,
            user,
            telegram_id,
            amount,
            provider,
            detail,
        } => Args::new()
            .text("anomaly", &anomaly_text(anomaly))
            .text("order", &order.map_or_else(none, |o| o.to_string()))
            .text("user", &user_label(lang, *user, *telegram_id))
            .text("amount", &money(*amount))
            .text("provider", provider.as_str())
            .text("detail", &quoted(detail))
            .text("by", ending.by.unwrap_or("—")),
        Alert::RefundMade {
            order,
            user,
            telegram_id,
            amount,
            provider,
            origin,
            ..
        } => {
            let origin = match origin {
                RefundOrigin::Shop { actor } => message(
                    lang,
                    "alert-refund-by-shop",
                    &Args::new().text("actor", actor),
                ),
                RefundOrigin::Requested => message(
                    lang,
                    "alert-refund-by-request",
                    &Args::new().text("provider", provider.as_str()),
                ),
                RefundOrigin::Provider => message(
                    lang,
                    "alert-refund-by-provider",
                    &Args::new().text("provider", provider.as_str()),
                ),
            };
            Args::new()
                .text("amount", &money(*amount))
                .text("order", &order.to_string())
                .text("provider", provider.as_str())
                .text("user", &user_label(lang, Some(*user), *telegram_id))
                // Already a text of ours: not escaped twice.
                .html("origin", origin)
        }
        Alert::JobDead {
            job_kind,
            count,
            job,
            user,
            last_error,
            ..
        } => Args::new()
            .number("count", *count as f64)
            .text("kind", job_kind)
            .text("job", &job.to_string())
            .text("user", &user_label(lang, *user, None))
            .text("error", &quoted(last_error)),
        Alert::PanelDown { since, error } => {
            let minutes = ending
                .resolved_at
                .map_or(0, |end| (end - *since).num_minutes().max(1));
            Args::new()
                .text("since", &format_datetime(lang, *since, offset))
                .text("error", &quoted(error))
                .number("minutes", minutes as f64)
        }
        Alert::SyncFailing { sync, error } => {
            Args::new().text("sync", sync).text("error", &quoted(error))
        }
        Alert::BackupFailed { error } => Args::new().text("error", &quoted(error)),
        Alert::WebhookProbing {
            failures,
            threshold,
            top_address,
        } => Args::new()
            .number("failures", *failures as f64)
            .number("threshold", *threshold as f64)
            .text("address", top_address.as_deref().unwrap_or("—")),
        Alert::PaidUnprovisioned { users, oldest } => Args::new()
            .number("users", *users as f64)
            .text("user", &user_label(lang, Some(*oldest), None)),
        Alert::Sale {
            user,
            telegram_id,
            plan,
            amount,
            provider,
            ..
        } => Args::new()
            .text("plan", plan)
            .text("amount", &money(*amount))
            .text("provider", provider.as_str())
            .text("user", &user_label(lang, Some(*user), *telegram_id)),
        Alert::Digest { day, figures } => {
            let revenue = if figures.revenue.is_empty() {
                none()
            } else {
                figures
                    .revenue
                    .iter()
                    .map(|r| format!("{} {} ({})", r.provider, money(r.amount), r.payments))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            let refunded = figures
                .refunded
                .iter()
                .map(|m| money(*m))
                .collect::<Vec<_>>()
                .join(", ");
            let day_start = day
                .and_hms_opt(12, 0, 0)
                .map(|t| t.and_utc())
                .unwrap_or_default();
            Args::new()
                .text("day", &format_date(lang, day_start, Utc.fix()))
                .number("sales", figures.sales as f64)
                .text("revenue", &revenue)
                .number("new_users", figures.new_users as f64)
                .number("trials", figures.trials as f64)
                .number("conversions", figures.trial_conversions as f64)
                .number("renewals", figures.renewals as f64)
                .number("refunds", figures.refunds as f64)
                .text(
                    "refunded",
                    &if refunded.is_empty() {
                        String::new()
                    } else {
                        format!("({refunded})")
                    },
                )
                .number("expiring", figures.expiring_tomorrow as f64)
        }
    };
    let kind = alert.kind();
    let text_id = if resolved {
        format!("alert-{kind}-resolved")
    } else {
        format!("alert-{kind}")
    };
    let html = message(lang, &text_id, &args);
    let subject = html_to_text(html.lines().next().unwrap_or_default());
    let buttons = alert
        .actions(id, state)
        .into_iter()
        .map(|action| {
            let label = match action {
                AlertAction::OpenUser(_) => "alert-button-user",
                AlertAction::RetryJob(_) => "alert-button-retry",
                AlertAction::MarkReviewed(_) => "alert-button-reviewed",
            };
            (message(lang, label, &Args::new()), action)
        })
        .collect();
    RenderedAlert {
        subject,
        html,
        buttons,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::alerts::{Anomaly, DigestFigures, ProviderRevenue};
    use crate::domain::{JobId, PaymentId, PaymentProvider};

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().to_utc()
    }

    /// One alert of every kind, with data.
    fn samples() -> Vec<Alert> {
        let rub = Money::rub_kopecks(29_900);
        vec![
            Alert::PaymentFlagged {
                anomaly: Anomaly::PaidClosedOrder,
                order: Some(PaymentId(12)),
                user: Some(UserId(3)),
                telegram_id: Some(42),
                amount: rub,
                provider: PaymentProvider::Yookassa,
                detail: "refund it".into(),
            },
            Alert::RefundMade {
                order: PaymentId(12),
                user: UserId(3),
                telegram_id: Some(42),
                amount: rub,
                provider: PaymentProvider::Wata,
                refund_id: "r1".into(),
                origin: RefundOrigin::Provider,
            },
            Alert::JobDead {
                job_kind: "provision".into(),
                count: 3,
                job: JobId(9),
                user: None,
                last_error: "<502>".into(),
                until: at("2026-12-01T10:00:00Z"),
            },
            Alert::PanelDown {
                since: at("2026-12-01T10:00:00Z"),
                error: "connection refused".into(),
            },
            Alert::SyncFailing {
                sync: "status".into(),
                error: "502".into(),
            },
            Alert::BackupFailed {
                error: "pg_dump failed".into(),
            },
            Alert::WebhookProbing {
                failures: 25,
                threshold: 20,
                top_address: Some("203.0.113.7".into()),
            },
            Alert::PaidUnprovisioned {
                users: 2,
                oldest: UserId(3),
            },
            Alert::Sale {
                order: PaymentId(12),
                user: UserId(3),
                telegram_id: Some(42),
                plan: "30 days".into(),
                amount: rub,
                provider: PaymentProvider::Stars,
            },
            Alert::Digest {
                day: chrono::NaiveDate::from_ymd_opt(2026, 12, 1).unwrap(),
                figures: DigestFigures {
                    sales: 4,
                    revenue: vec![ProviderRevenue {
                        provider: PaymentProvider::Wata,
                        amount: rub,
                        payments: 1,
                    }],
                    refunded: vec![Money::rub_kopecks(100)],
                    ..DigestFigures::default()
                },
            },
        ]
    }

    #[test]
    fn every_kind_renders_raised_and_ended_in_both_languages() {
        let kinds: Vec<AlertKind> = samples().iter().map(Alert::kind).collect();
        assert_eq!(kinds, AlertKind::ALL, "a sample per kind");
        let msk = FixedOffset::east_opt(3 * 3600).unwrap();
        let ended = Ending {
            resolved_at: Some(at("2026-12-01T10:07:00Z")),
            by: Some("telegram:1"),
        };
        for lang in [Language::En, Language::Ru] {
            for alert in samples() {
                let mut states = vec![AlertState::Firing];
                if alert.kind().is_condition() {
                    states.push(AlertState::Resolved);
                }
                for state in states {
                    let r = render(&alert, AlertId(1), state, ended, lang, msk);
                    assert!(
                        !r.subject.is_empty() && !r.subject.contains('<'),
                        "{}",
                        r.subject
                    );
                    assert!(
                        !r.html.contains("alert-") && !r.html.contains('{'),
                        "{lang} {} {state}: {}",
                        alert.kind(),
                        r.html
                    );
                    assert!(!kind_title(lang, alert.kind()).starts_with("alerts-kind-"));
                    for (label, _) in &r.buttons {
                        assert!(!label.starts_with("alert-button"), "{label}");
                    }
                }
            }
        }
        // Values are escaped; the panel's outage is measured.
        let dead = render(
            &samples()[2],
            AlertId(1),
            AlertState::Firing,
            ended,
            Language::En,
            msk,
        );
        assert!(dead.html.contains("&lt;502&gt;"), "{}", dead.html);
        let back = render(
            &samples()[3],
            AlertId(1),
            AlertState::Resolved,
            ended,
            Language::Ru,
            msk,
        );
        assert_eq!(
            back.html,
            "✅ <b>Панель снова доступна</b> (была недоступна 7 мин)."
        );
    }
}
