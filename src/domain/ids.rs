//! Typed identifiers of our own rows. Telegram ids stay plain `i64` (they are Telegram's, not ours).

id_newtype!(
    /// A row of `users` (a Telegram subscriber).
    UserId
);
id_newtype!(
    /// A row of `plans`.
    PlanId
);
id_newtype!(
    /// A row of `subscriptions`.
    SubscriptionId
);
id_newtype!(
    /// A row of `payments` (an order).
    PaymentId
);
id_newtype!(
    /// A row of `promo_codes`.
    PromoCodeId
);
id_newtype!(
    /// A row of `jobs` (the durable queue).
    JobId
);
id_newtype!(
    /// A row of `admins` (an API account).
    AdminId
);
id_newtype!(
    /// A row of `broadcasts`.
    BroadcastId
);
id_newtype!(
    /// A row of `alerts` (an admin alert).
    AlertId
);
id_newtype!(
    /// A row of `support_conversations`.
    ConversationId
);
id_newtype!(
    /// A row of `support_messages`.
    SupportMessageId
);
