//! Promo codes and their redemptions.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use crate::db::PgConn;
use crate::db::models::{PromoCode, PromoRedemption};
use crate::db::schema::{promo_codes, promo_redemptions, users};
use crate::domain::pricing::PromoRules;
use crate::domain::{PaymentId, PromoCodeId, PromoKind, UserId};

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

/// What an admin sets on a promo code (`uses_count` is counted by redemptions only).
#[derive(Debug, Clone, PartialEq, Eq, Insertable, AsChangeset)]
#[diesel(table_name = promo_codes, treat_none_as_null = true)]
pub struct PromoValues {
    pub code: String,
    pub kind: PromoKind,
    pub value: i64,
    pub max_uses: Option<i32>,
    pub once_per_user: bool,
    pub new_users_only: bool,
    pub min_plan_days: Option<i32>,
    pub valid_from: Option<DateTime<Utc>>,
    pub valid_until: Option<DateTime<Utc>>,
    pub active: bool,
    pub note: Option<String>,
}

impl From<&PromoCode> for PromoValues {
    fn from(p: &PromoCode) -> Self {
        PromoValues {
            code: p.code.clone(),
            kind: p.kind,
            value: p.value,
            max_uses: p.max_uses,
            once_per_user: p.once_per_user,
            new_users_only: p.new_users_only,
            min_plan_days: p.min_plan_days,
            valid_from: p.valid_from,
            valid_until: p.valid_until,
            active: p.active,
            note: p.note.clone(),
        }
    }
}

/// Promo codes, newest first, optionally only (in)active ones and those starting with `prefix`
/// (compared after [`normalise`]); with the total that match.
pub async fn list(
    conn: &mut PgConn,
    active: Option<bool>,
    prefix: Option<&str>,
    page: i64,
    per_page: i64,
) -> QueryResult<(Vec<PromoCode>, i64)> {
    // `%`, `_` and `\` are LIKE's own characters: a prefix matches them literally.
    let pattern = prefix.map(|p| {
        let mut pattern = String::new();
        for c in normalise(p).chars() {
            if matches!(c, '%' | '_' | '\\') {
                pattern.push('\\');
            }
            pattern.push(c);
        }
        pattern.push('%');
        pattern
    });
    let filtered = || {
        let mut q = promo_codes::table.into_boxed();
        if let Some(active) = active {
            q = q.filter(promo_codes::active.eq(active));
        }
        if let Some(pattern) = &pattern {
            q = q.filter(promo_codes::code.like(pattern.clone()));
        }
        q
    };
    let total = filtered().count().get_result(conn).await?;
    let items = filtered()
        .select(PromoCode::as_select())
        .order(promo_codes::id.desc())
        .limit(per_page)
        .offset((page - 1).saturating_mul(per_page))
        .load(conn)
        .await?;
    Ok((items, total))
}

pub async fn insert(conn: &mut PgConn, values: &PromoValues) -> QueryResult<PromoCode> {
    diesel::insert_into(promo_codes::table)
        .values(values)
        .returning(PromoCode::as_returning())
        .get_result(conn)
        .await
}

/// Replaces every admin-set column of the code; `None` when there is no such code.
pub async fn update(
    conn: &mut PgConn,
    id: PromoCodeId,
    values: &PromoValues,
) -> QueryResult<Option<PromoCode>> {
    diesel::update(promo_codes::table.find(id))
        .set((values, promo_codes::updated_at.eq(diesel::dsl::now)))
        .returning(PromoCode::as_returning())
        .get_result(conn)
        .await
        .optional()
}

/// The code, locked until the end of the caller's transaction (a redemption counts its use
/// under the same row lock).
pub async fn lock(conn: &mut PgConn, id: PromoCodeId) -> QueryResult<Option<PromoCode>> {
    promo_codes::table
        .find(id)
        .select(PromoCode::as_select())
        .for_update()
        .first(conn)
        .await
        .optional()
}

/// Whether the code was redeemed or an order was priced with it (a pending order is redeemed
/// when it is paid, so the code must stay).
pub async fn is_used(conn: &mut PgConn, id: PromoCodeId) -> QueryResult<bool> {
    use crate::db::schema::payments;
    diesel::select(
        diesel::dsl::exists(
            promo_redemptions::table.filter(promo_redemptions::promo_code_id.eq(id)),
        )
        .or(diesel::dsl::exists(
            payments::table.filter(payments::promo_code_id.eq(id)),
        )),
    )
    .get_result(conn)
    .await
}

pub async fn delete(conn: &mut PgConn, id: PromoCodeId) -> QueryResult<bool> {
    diesel::delete(promo_codes::table.find(id))
        .execute(conn)
        .await
        .map(|n| n == 1)
}

/// Redemptions of a code, newest first, each with the user's Telegram id and username; with
/// the total.
pub async fn redemptions(
    conn: &mut PgConn,
    id: PromoCodeId,
    page: i64,
    per_page: i64,
) -> QueryResult<(Vec<(PromoRedemption, i64, Option<String>)>, i64)> {
    let total = promo_redemptions::table
        .filter(promo_redemptions::promo_code_id.eq(id))
        .count()
        .get_result(conn)
        .await?;
    let items = promo_redemptions::table
        .inner_join(users::table)
        .filter(promo_redemptions::promo_code_id.eq(id))
        .select((
            PromoRedemption::as_select(),
            users::telegram_id,
            users::username,
        ))
        .order((
            promo_redemptions::redeemed_at.desc(),
            promo_redemptions::id.desc(),
        ))
        .limit(per_page)
        .offset((page - 1).saturating_mul(per_page))
        .load(conn)
        .await?;
    Ok((items, total))
}
