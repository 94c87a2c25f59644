//! Tariff plans.

use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use crate::db::PgConn;
use crate::db::models::Plan;
use crate::db::schema::plans;
use crate::domain::PlanId;

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
