//! Referrals: who invited whom, and the inviter's bonus for the first payment.

use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use crate::db::PgConn;
use crate::db::models::Referral;
use crate::db::schema::referrals;
use crate::domain::{PaymentId, UserId};

pub async fn of_invitee(conn: &mut PgConn, invitee: UserId) -> QueryResult<Option<Referral>> {
    referrals::table
        .filter(referrals::invitee_id.eq(invitee))
        .select(Referral::as_select())
        .first(conn)
        .await
        .optional()
}

/// Marks the inviter's bonus as granted for `payment`; `false` when it already was (it is
/// granted once, for the first payment).
pub async fn reward_inviter(
    conn: &mut PgConn,
    referral_id: i64,
    payment: PaymentId,
    days: i32,
) -> QueryResult<bool> {
    let n = diesel::update(
        referrals::table
            .find(referral_id)
            .filter(referrals::inviter_rewarded_at.is_null()),
    )
    .set((
        referrals::inviter_rewarded_at.eq(diesel::dsl::now),
        referrals::rewarded_payment_id.eq(payment),
        referrals::inviter_bonus_days.eq(days),
    ))
    .execute(conn)
    .await?;
    Ok(n == 1)
}
