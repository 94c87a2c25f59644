//! Tariff plans.

use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use crate::db::PgConn;
use crate::db::models::Plan;
use crate::db::schema::plans;
use crate::domain::{Localized, PlanId};

pub async fn find(conn: &mut PgConn, id: PlanId) -> QueryResult<Option<Plan>> {
    plans::table
        .find(id)
        .select(Plan::as_select())
        .first(conn)
        .await
        .optional()
}

/// Plans on sale, in their display order.
pub async fn active(conn: &mut PgConn) -> QueryResult<Vec<Plan>> {
    plans::table
        .filter(plans::active.eq(true))
        .select(Plan::as_select())
        .order((plans::sort_order, plans::id))
        .load(conn)
        .await
}

/// Every plan, on sale or not, in the display order.
pub async fn all(conn: &mut PgConn) -> QueryResult<Vec<Plan>> {
    plans::table
        .select(Plan::as_select())
        .order((plans::sort_order, plans::id))
        .load(conn)
        .await
}

/// What an admin sets on a plan (the currency is always RUB; Stars have their own price).
#[derive(Debug, Clone, PartialEq, Eq, Insertable, AsChangeset)]
#[diesel(table_name = plans, treat_none_as_null = true)]
pub struct PlanValues {
    pub name: String,
    pub names: Localized,
    pub descriptions: Localized,
    pub days: i32,
    pub price_minor: i64,
    pub price_stars: Option<i64>,
    pub traffic_limit_bytes: Option<i64>,
    pub active: bool,
    pub sort_order: i32,
}

impl From<&Plan> for PlanValues {
    fn from(p: &Plan) -> Self {
        PlanValues {
            name: p.name.clone(),
            names: p.names.clone(),
            descriptions: p.descriptions.clone(),
            days: p.days,
            price_minor: p.price_minor,
            price_stars: p.price_stars,
            traffic_limit_bytes: p.traffic_limit_bytes,
            active: p.active,
            sort_order: p.sort_order,
        }
    }
}

pub async fn insert(conn: &mut PgConn, values: &PlanValues) -> QueryResult<Plan> {
    diesel::insert_into(plans::table)
        .values(values)
        .returning(Plan::as_returning())
        .get_result(conn)
        .await
}

/// Replaces every admin-set column of the plan; `None` when there is no such plan.
pub async fn update(
    conn: &mut PgConn,
    id: PlanId,
    values: &PlanValues,
) -> QueryResult<Option<Plan>> {
    diesel::update(plans::table.find(id))
        .set((values, plans::updated_at.eq(diesel::dsl::now)))
        .returning(Plan::as_returning())
        .get_result(conn)
        .await
        .optional()
}

/// The plan, locked until the end of the caller's transaction: a checkout cannot start an order
/// of it meanwhile (the order's foreign key waits for the lock).
pub async fn lock(conn: &mut PgConn, id: PlanId) -> QueryResult<Option<Plan>> {
    plans::table
        .find(id)
        .select(Plan::as_select())
        .for_update()
        .first(conn)
        .await
        .optional()
}

/// Whether an order or a subscription names the plan (then it is history and stays).
pub async fn is_referenced(conn: &mut PgConn, id: PlanId) -> QueryResult<bool> {
    use crate::db::schema::{payments, subscriptions};
    diesel::select(
        diesel::dsl::exists(payments::table.filter(payments::plan_id.eq(id))).or(
            diesel::dsl::exists(subscriptions::table.filter(subscriptions::plan_id.eq(id))),
        ),
    )
    .get_result(conn)
    .await
}

pub async fn delete(conn: &mut PgConn, id: PlanId) -> QueryResult<bool> {
    diesel::delete(plans::table.find(id))
        .execute(conn)
        .await
        .map(|n| n == 1)
}
