//! How domain types are stored: id newtypes as `bigint`, enums as `text` in their documented
//! spelling. Reading a spelling that no variant has is an error, not a default.

use diesel::deserialize::{self, FromSql};
use diesel::pg::{Pg, PgValue};
use diesel::serialize::{self, IsNull, Output, ToSql};
use diesel::sql_types::{BigInt, Jsonb, Text};
use std::io::Write;

use crate::domain::*;

macro_rules! text_enum_sql {
    ($($ty:ty),+ $(,)?) => {$(
        impl ToSql<Text, Pg> for $ty {
            fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Pg>) -> serialize::Result {
                out.write_all(self.as_str().as_bytes())?;
                Ok(IsNull::No)
            }
        }

        impl FromSql<Text, Pg> for $ty {
            fn from_sql(bytes: PgValue<'_>) -> deserialize::Result<Self> {
                Ok(std::str::from_utf8(bytes.as_bytes())?.parse::<$ty>()?)
            }
        }
    )+};
}

macro_rules! id_sql {
    ($($ty:ident),+ $(,)?) => {$(
        impl ToSql<BigInt, Pg> for $ty {
            fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Pg>) -> serialize::Result {
                <i64 as ToSql<BigInt, Pg>>::to_sql(&self.0, &mut out.reborrow())
            }
        }

        impl FromSql<BigInt, Pg> for $ty {
            fn from_sql(bytes: PgValue<'_>) -> deserialize::Result<Self> {
                <i64 as FromSql<BigInt, Pg>>::from_sql(bytes).map($ty)
            }
        }
    )+};
}

text_enum_sql!(
    Currency,
    AdminRole,
    Language,
    SubscriptionStatus,
    PanelUserStatus,
    PaymentProvider,
    PaymentStatus,
    PaymentKind,
    PaymentEventVerdict,
    RefundState,
    PromoKind,
    JobState,
    NotificationChannel,
    NotificationStatus,
    BroadcastStatus,
    SyncRunStatus,
    alerts::AlertKind,
    alerts::AlertState,
    alerts::Anomaly,
    support::ConversationState,
    support::Direction,
    support::SupportMessageKind,
);

id_sql!(
    UserId,
    PlanId,
    SubscriptionId,
    PaymentId,
    PromoCodeId,
    JobId,
    AdminId,
    BroadcastId,
    AlertId,
    ConversationId,
    SupportMessageId,
);

/// A catalogue text per language as a `jsonb` object (see `domain::localized`).
impl ToSql<Jsonb, Pg> for Localized {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Pg>) -> serialize::Result {
        // jsonb's binary format: a version byte (1), then the JSON text.
        out.write_all(&[1])?;
        serde_json::to_writer(out, self)?;
        Ok(IsNull::No)
    }
}

impl FromSql<Jsonb, Pg> for Localized {
    fn from_sql(bytes: PgValue<'_>) -> deserialize::Result<Self> {
        let value = <serde_json::Value as FromSql<Jsonb, Pg>>::from_sql(bytes)?;
        Ok(serde_json::from_value(value)?)
    }
}
