//! Promo codes and their redemptions.

use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use crate::db::PgConn;
use crate::db::models::PromoCode;
use crate::db::schema::{promo_codes, promo_redemptions};
use crate::domain::pricing::PromoRules;
use crate::domain::{PaymentId, PromoCodeId, UserId};

/// Codes are stored upper-case; users may type them in any case.
pub fn normalise(code: &str) -> String {
    code.trim().to_uppercase()
}

pub async fn find_by_code(conn: &mut PgConn, code: &str) -> QueryResult<Option<PromoCode>> {
    promo_codes::table
        .filter(promo_codes::code.eq(normalise(code)))
        .select(PromoCode::as_select())
        .first(conn)
        .await
        .optional()
}

pub async fn find(conn: &mut PgConn, id: PromoCodeId) -> QueryResult<Option<PromoCode>> {
    promo_codes::table
        .find(id)
        .select(PromoCode::as_select())
        .first(conn)
        .await
        .optional()
}

pub async fn used_by(conn: &mut PgConn, promo: PromoCodeId, user: UserId) -> QueryResult<bool> {
    diesel::select(diesel::dsl::exists(
        promo_redemptions::table
            .filter(promo_redemptions::promo_code_id.eq(promo))
            .filter(promo_redemptions::user_id.eq(user)),
    ))
    .get_result(conn)
    .await
}

impl From<&PromoCode> for PromoRules {
    fn from(p: &PromoCode) -> Self {
        PromoRules {
            code: p.code.clone(),
            kind: p.kind,
            value: p.value,
            active: p.active,
            max_uses: p.max_uses,
            uses_count: p.uses_count,
            once_per_user: p.once_per_user,
            new_users_only: p.new_users_only,
            min_plan_days: p.min_plan_days,
            valid_from: p.valid_from,
            valid_until: p.valid_until,
        }
    }
}

/// Records a redemption and counts the use, unless the code is used up meanwhile. `false` when
/// it was (the caller's transaction then decides).
pub async fn redeem(
    conn: &mut PgConn,
    promo: PromoCodeId,
    user: UserId,
    payment: Option<PaymentId>,
    discount_minor: i64,
    bonus_days: i32,
) -> QueryResult<bool> {
    let counted = diesel::update(
        promo_codes::table.find(promo).filter(
            promo_codes::max_uses
                .is_null()
                .or(promo_codes::uses_count.lt(promo_codes::max_uses.assume_not_null())),
        ),
    )
    .set(promo_codes::uses_count.eq(promo_codes::uses_count + 1))
    .execute(conn)
    .await?;
    if counted == 0 {
        return Ok(false);
    }
    diesel::insert_into(promo_redemptions::table)
        .values((
            promo_redemptions::promo_code_id.eq(promo),
            promo_redemptions::user_id.eq(user),
            promo_redemptions::payment_id.eq(payment),
            promo_redemptions::discount_minor.eq(discount_minor),
            promo_redemptions::bonus_days.eq(bonus_days),
        ))
        .execute(conn)
        .await?;
    Ok(true)
}
