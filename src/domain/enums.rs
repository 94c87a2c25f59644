//! Enumerations stored as `text` columns (each with a CHECK constraint in the migrations that
//! lists exactly these spellings).

/// A text did not name any variant of an enum.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'{value}' is not a valid {type_name}; expected one of: {}", expected.join(", "))]
pub struct UnknownVariant {
    pub type_name: &'static str,
    pub value: String,
    pub expected: &'static [&'static str],
}

text_enum!(
    /// Language of the bot's texts for a user.
    Language {
        Ru => "ru",
        En => "en",
    }
);

impl Language {
    /// Telegram's `language_code`: `ru*` is Russian, anything else English.
    pub fn from_telegram_code(code: Option<&str>) -> Language {
        match code {
            Some(c) if c.to_ascii_lowercase().starts_with("ru") => Language::Ru,
            _ => Language::En,
        }
    }
}

text_enum!(
    /// What the database says a subscription should be (the panel is made to match).
    SubscriptionStatus {
        Active => "active",
        Expired => "expired",
        Disabled => "disabled",
    }
);

text_enum!(
    /// A user's status as the Marzban panel reports it.
    PanelUserStatus {
        Active => "active",
        Disabled => "disabled",
        Limited => "limited",
        Expired => "expired",
        OnHold => "on_hold",
    }
);

text_enum!(
    /// Who takes the money for an order.
    PaymentProvider {
        Yookassa => "yookassa",
        Wata => "wata",
        Stars => "stars",
        /// A 100 % promo: the period is given without a payment.
        Free => "free",
    }
);

text_enum!(
    /// Life of an order. Only `pending` may change into anything else — and `expired` into
    /// `succeeded` when a genuine payment arrives after the link ran out.
    PaymentStatus {
        Pending => "pending",
        Succeeded => "succeeded",
        Canceled => "canceled",
        Expired => "expired",
        Refunded => "refunded",
    }
);

text_enum!(
    /// Why an order exists.
    PaymentKind {
        Checkout => "checkout",
        AutoRenewal => "auto_renewal",
        StarsRenewal => "stars_renewal",
    }
);

text_enum!(
    /// What we concluded about a received payment webhook or update.
    PaymentEventVerdict {
        Accepted => "accepted",
        Duplicate => "duplicate",
        Forged => "forged",
        Mismatched => "mismatched",
        Ignored => "ignored",
        Invalid => "invalid",
    }
);

text_enum!(
    /// Where a refund stands (`payment_refunds.state`).
    RefundState {
        /// The shop asked the provider; the outcome is not known yet.
        Requested => "requested",
        /// The provider reported it before the shop recorded the payment as paid.
        Early => "early",
        /// Counted: in `payments.refunded_minor`, its days taken back.
        Applied => "applied",
        /// The provider refused it.
        Failed => "failed",
    }
);

text_enum!(
    /// Kinds of promo codes.
    PromoKind {
        Percent => "percent",
        Fixed => "fixed",
        BonusDays => "bonus_days",
    }
);

text_enum!(
    /// State of a durable job. A failed attempt puts the job back to `pending` with a later
    /// `run_at`; after the last attempt it is `dead`.
    JobState {
        Pending => "pending",
        Running => "running",
        Done => "done",
        Dead => "dead",
    }
);

text_enum!(
    /// Delivery channel of a notification.
    NotificationChannel {
        Telegram => "telegram",
        Email => "email",
    }
);

text_enum!(
    /// Outcome of one delivery.
    NotificationStatus {
        Pending => "pending",
        Sent => "sent",
        Failed => "failed",
        Skipped => "skipped",
    }
);

text_enum!(
    /// Life of an admin broadcast.
    BroadcastStatus {
        Draft => "draft",
        Queued => "queued",
        Running => "running",
        Completed => "completed",
        Canceled => "canceled",
    }
);

text_enum!(
    /// Outcome of a panel sync run.
    SyncRunStatus {
        Running => "running",
        Succeeded => "succeeded",
        Failed => "failed",
    }
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spellings_round_trip() {
        for s in JobState::ALL {
            assert_eq!(s.as_str().parse::<JobState>(), Ok(*s));
        }
        let err = "paid".parse::<PaymentStatus>().unwrap_err();
        assert_eq!(
            err.to_string(),
            "'paid' is not a valid PaymentStatus; expected one of: pending, succeeded, canceled, expired, refunded"
        );
    }

    #[test]
    fn telegram_language_codes() {
        assert_eq!(Language::from_telegram_code(Some("ru")), Language::Ru);
        assert_eq!(Language::from_telegram_code(Some("RU-ru")), Language::Ru);
        assert_eq!(Language::from_telegram_code(Some("uk")), Language::En);
        assert_eq!(Language::from_telegram_code(None), Language::En);
    }
}
