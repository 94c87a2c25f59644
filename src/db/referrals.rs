//! Referrals: who invited whom, and the inviter's bonus for the first payment.

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Nullable, Text};
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

/// Records that `inviter` brought `invitee` (a new user) and the bonus days promised to each;
/// `None` when the invitee was already invited by someone.
pub async fn create(
    conn: &mut PgConn,
    inviter: UserId,
    invitee: UserId,
    invitee_days: i32,
    inviter_days: i32,
) -> QueryResult<Option<Referral>> {
    use crate::db::schema::users;
    let referral = diesel::insert_into(referrals::table)
        .values((
            referrals::inviter_id.eq(inviter),
            referrals::invitee_id.eq(invitee),
            referrals::invitee_bonus_days.eq(invitee_days),
            referrals::inviter_bonus_days.eq(inviter_days),
        ))
        .on_conflict(referrals::invitee_id)
        .do_nothing()
        .returning(Referral::as_returning())
        .get_result(conn)
        .await
        .optional()?;
    if referral.is_some() {
        diesel::update(users::table.find(invitee))
            .set(users::referred_by.eq(inviter))
            .execute(conn)
            .await?;
    }
    Ok(referral)
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

/// Marks the inviter's bonus granted for `payment` as taken back (the payment was refunded in
/// full) and returns the referral; `None` when no bonus was given for it or it was taken back
/// already.
pub async fn revoke_bonus_of_payment(
    conn: &mut PgConn,
    payment: PaymentId,
) -> QueryResult<Option<Referral>> {
    diesel::update(
        referrals::table
            .filter(referrals::rewarded_payment_id.eq(payment))
            .filter(referrals::inviter_bonus_revoked_at.is_null()),
    )
    .set(referrals::inviter_bonus_revoked_at.eq(diesel::dsl::now))
    .returning(Referral::as_returning())
    .get_result(conn)
    .await
    .optional()
}

/// An inviter and what their invitations brought.
#[derive(Debug, Clone, QueryableByName)]
pub struct InviterStats {
    #[diesel(sql_type = BigInt)]
    pub user_id: UserId,
    #[diesel(sql_type = Nullable<BigInt>)]
    pub telegram_id: Option<i64>,
    #[diesel(sql_type = Nullable<Text>)]
    pub username: Option<String>,
    /// Users who joined through the inviter's link.
    #[diesel(sql_type = BigInt)]
    pub invited: i64,
    /// Of those, the ones who paid (a refunded payment counts, as in `payments::has_paid`).
    #[diesel(sql_type = BigInt)]
    pub paying_invited: i64,
    /// Days the inviter was given for invited users' first payments.
    #[diesel(sql_type = BigInt)]
    pub bonus_days: i64,
}

/// Inviters, most invitations first, with the number of inviters.
pub async fn top_inviters(
    conn: &mut PgConn,
    page: i64,
    per_page: i64,
) -> QueryResult<(Vec<InviterStats>, i64)> {
    let total = referrals::table
        .select(diesel::dsl::count(referrals::inviter_id).aggregate_distinct())
        .get_result(conn)
        .await?;
    let items = diesel::sql_query(
        "SELECT r.inviter_id AS user_id, u.telegram_id, u.username, \
                count(*) AS invited, \
                count(*) FILTER (WHERE EXISTS ( \
                    SELECT 1 FROM payments p WHERE p.user_id = r.invitee_id \
                    AND p.provider <> 'free' AND p.status IN ('succeeded', 'refunded') \
                )) AS paying_invited, \
                coalesce(sum(r.inviter_bonus_days), 0)::bigint AS bonus_days \
         FROM referrals r JOIN users u ON u.id = r.inviter_id \
         GROUP BY r.inviter_id, u.telegram_id, u.username \
         ORDER BY invited DESC, r.inviter_id \
         LIMIT $1 OFFSET $2",
    )
    .bind::<BigInt, _>(per_page)
    .bind::<BigInt, _>((page - 1).saturating_mul(per_page))
    .load(conn)
    .await?;
    Ok((items, total))
}

/// The referral programme as a whole.
#[derive(Debug, Clone, QueryableByName)]
pub struct ReferralTotals {
    /// Users who joined through someone's link.
    #[diesel(sql_type = BigInt)]
    pub referrals: i64,
    /// Bonuses granted: to inviters (for a first payment) and to invited users (for joining).
    #[diesel(sql_type = BigInt)]
    pub inviter_bonuses: i64,
    #[diesel(sql_type = BigInt)]
    pub invitee_bonuses: i64,
    /// Days those bonuses gave.
    #[diesel(sql_type = BigInt)]
    pub inviter_days: i64,
    #[diesel(sql_type = BigInt)]
    pub invitee_days: i64,
}

pub async fn totals(conn: &mut PgConn) -> QueryResult<ReferralTotals> {
    diesel::sql_query(
        "SELECT count(*) AS referrals, \
                count(*) FILTER (WHERE inviter_rewarded_at IS NOT NULL) AS inviter_bonuses, \
                count(*) FILTER (WHERE invitee_bonus_days > 0) AS invitee_bonuses, \
                coalesce(sum(inviter_bonus_days), 0)::bigint AS inviter_days, \
                coalesce(sum(invitee_bonus_days), 0)::bigint AS invitee_days \
         FROM referrals",
    )
    .get_result(conn)
    .await
}
