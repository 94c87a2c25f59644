//! Promo codes, the uses unpaid orders hold (reservations) and the redemptions.
//!
//! A checkout with a code takes one of its uses under the code's row lock ([`reserve`]); the use
//! is the order's until it is paid ([`redeem_for_order`]) or ends unpaid ([`release`]). Held uses
//! count toward `max_uses` (`reserved_count`, checked by the database too), and a once-per-user
//! code is held and redeemed at most once per user (unique indexes).

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use crate::db::PgConn;
use crate::db::models::{PromoCode, PromoRedemption};
use crate::db::schema::{promo_codes, promo_redemptions, promo_reservations, users};
use crate::domain::pricing::{PromoRefusal, PromoRules};
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

/// Whether `user` redeemed the code already (a paid order, or bonus days).
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
            // Uses held by unpaid orders are taken too.
            uses_count: p.uses_count + p.reserved_count,
            once_per_user: p.once_per_user,
            new_users_only: p.new_users_only,
            min_plan_days: p.min_plan_days,
            valid_from: p.valid_from,
            valid_until: p.valid_until,
        }
    }
}

/// Takes one use of the `code` (locked by the caller with [`lock`], and checked with
/// `pricing::check_promo`) for `order` of `user`. A once-per-user code holds one use per user:
/// an older unpaid order of the same user gives its use to this one (the payer went back and
/// chose again); should that older order be paid after all, its use is taken again if one is
/// free, or it is an over-use ([`redeem_for_order`]).
pub async fn reserve(
    conn: &mut PgConn,
    code: &PromoCode,
    user: UserId,
    order: PaymentId,
) -> QueryResult<()> {
    if code.once_per_user {
        let older: Vec<PaymentId> = diesel::delete(
            promo_reservations::table
                .filter(promo_reservations::promo_code_id.eq(code.id))
                .filter(promo_reservations::user_id.eq(user))
                .filter(promo_reservations::once_per_user),
        )
        .returning(promo_reservations::payment_id)
        .get_results(conn)
        .await?;
        count_reserved(conn, code.id, -(older.len() as i32)).await?;
    }
    diesel::insert_into(promo_reservations::table)
        .values((
            promo_reservations::payment_id.eq(order),
            promo_reservations::promo_code_id.eq(code.id),
            promo_reservations::user_id.eq(user),
            promo_reservations::once_per_user.eq(code.once_per_user),
        ))
        .execute(conn)
        .await?;
    count_reserved(conn, code.id, 1).await
}

async fn count_reserved(conn: &mut PgConn, code: PromoCodeId, delta: i32) -> QueryResult<()> {
    if delta == 0 {
        return Ok(());
    }
    diesel::update(promo_codes::table.find(code))
        .set(promo_codes::reserved_count.eq(promo_codes::reserved_count + delta))
        .execute(conn)
        .await
        .map(|_| ())
}

/// Gives back the use an unpaid order held (it was canceled or expired). `true` when it held one.
/// The code's row is locked first, as a checkout locks it before it touches reservations: the two
/// never wait for each other in opposite orders.
pub async fn release(conn: &mut PgConn, order: PaymentId) -> QueryResult<bool> {
    let code: Option<PromoCodeId> = promo_reservations::table
        .find(order)
        .select(promo_reservations::promo_code_id)
        .first(conn)
        .await
        .optional()?;
    let Some(code) = code else {
        return Ok(false);
    };
    lock(conn, code).await?;
    let released = diesel::delete(promo_reservations::table.find(order))
        .execute(conn)
        .await?;
    if released == 0 {
        // Taken over by a newer checkout of the same payer meanwhile.
        return Ok(false);
    }
    count_reserved(conn, code, -1).await.map(|_| true)
}

/// What became of a paid order's promo code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Redemption {
    /// Redeemed with the use the order held (or a use that was still free).
    Redeemed,
    /// No use was left for it: the order was priced with the code but the code's limits are
    /// spent (its use was given back, or taken by another order of a once-per-user payer).
    OverUse(PromoRefusal),
}

/// Redeems the code of a paid `order` (`discount_minor`, `bonus_days` as priced): turns the use
/// it holds into a redemption, or takes a free use when it holds none; otherwise an over-use,
/// and nothing is counted (the caller records it).
pub async fn redeem_for_order(
    conn: &mut PgConn,
    code: PromoCodeId,
    user: UserId,
    order: PaymentId,
    discount_minor: i64,
    bonus_days: i32,
) -> QueryResult<Redemption> {
    let Some(locked) = lock(conn, code).await? else {
        // The code was deleted meanwhile: nothing to count.
        return Ok(Redemption::Redeemed);
    };
    let held = release(conn, order).await?;
    redeem_locked(
        conn,
        &locked,
        held,
        user,
        Some(order),
        discount_minor,
        bonus_days,
    )
    .await
}

/// Redeems `code` (locked by the caller) for bonus days with no order (the bot's /promo).
pub async fn redeem_days(
    conn: &mut PgConn,
    code: &PromoCode,
    user: UserId,
    bonus_days: i32,
) -> QueryResult<Redemption> {
    redeem_locked(conn, code, false, user, None, 0, bonus_days).await
}

/// `held`: the order held a use that was just given back (so it is free for it again).
async fn redeem_locked(
    conn: &mut PgConn,
    code: &PromoCode,
    held: bool,
    user: UserId,
    payment: Option<PaymentId>,
    discount_minor: i64,
    bonus_days: i32,
) -> QueryResult<Redemption> {
    if code.once_per_user && used_by(conn, code.id, user).await? {
        return Ok(Redemption::OverUse(PromoRefusal::AlreadyUsed));
    }
    // `release` gave the held use back: the count below sees the code as this order left it.
    let reserved = if held {
        code.reserved_count - 1
    } else {
        code.reserved_count
    };
    if code
        .max_uses
        .is_some_and(|max| code.uses_count + reserved >= max)
    {
        return Ok(Redemption::OverUse(PromoRefusal::UsedUp));
    }
    diesel::update(promo_codes::table.find(code.id))
        .set(promo_codes::uses_count.eq(promo_codes::uses_count + 1))
        .execute(conn)
        .await?;
    diesel::insert_into(promo_redemptions::table)
        .values((
            promo_redemptions::promo_code_id.eq(code.id),
            promo_redemptions::user_id.eq(user),
            promo_redemptions::payment_id.eq(payment),
            promo_redemptions::discount_minor.eq(discount_minor),
            promo_redemptions::bonus_days.eq(bonus_days),
            promo_redemptions::once_per_user.eq(code.once_per_user),
        ))
        .execute(conn)
        .await?;
    Ok(Redemption::Redeemed)
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
) -> QueryResult<(Vec<(PromoRedemption, Option<i64>, Option<String>)>, i64)> {
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
