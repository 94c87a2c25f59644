//! Queries of the `paid_unprovisioned` check: paying users whose running subscription the panel
//! does not give, as far as the database knows from the panel's last reports, and the flag the
//! check leaves on them (what the `vpn_shop_paid_unprovisioned` gauge counts).

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{Array, BigInt, Double, Text, Timestamptz};
use diesel_async::RunQueryDsl;

use crate::db::PgConn;
use crate::domain::UserId;

/// A subscription whose paid access the panel may not give.
#[derive(Debug, Clone, QueryableByName)]
pub struct Suspect {
    #[diesel(sql_type = BigInt)]
    pub user_id: UserId,
    #[diesel(sql_type = Text)]
    pub panel_username: String,
    #[diesel(sql_type = Timestamptz)]
    pub expires_at: DateTime<Utc>,
    /// All the suspects, of which at most `limit` are returned.
    #[diesel(sql_type = BigInt)]
    pub total: i64,
}

/// Running subscriptions (active, not ended) of users with a paid payment (`succeeded` or
/// partly `refunded`, not a free order: the predicate of `payments_paid_user_idx`), unchanged
/// for `after`, whose panel user is missing, disabled or ends earlier than paid according to
/// the panel's last report. One range of `subscriptions_expires_at_idx` and an index probe per
/// running subscription whose panel state disagrees.
pub async fn suspects(
    conn: &mut PgConn,
    after: std::time::Duration,
    limit: i64,
) -> QueryResult<Vec<Suspect>> {
    diesel::sql_query(
        "SELECT s.user_id, s.panel_username, s.expires_at, count(*) OVER () AS total \
         FROM subscriptions s \
         WHERE s.status = 'active' AND s.expires_at > now() \
           AND s.access_changed_at < now() - make_interval(secs => $1) \
           AND (s.panel_status IS NULL OR s.panel_status = 'disabled' OR s.panel_expire IS NULL \
                OR (s.panel_expire <> 0 \
                    AND s.panel_expire < floor(extract(epoch FROM s.expires_at))::bigint)) \
           AND EXISTS (SELECT 1 FROM payments p WHERE p.user_id = s.user_id \
                       AND p.status IN ('succeeded', 'refunded') AND p.provider <> 'free') \
         ORDER BY s.access_changed_at, s.user_id \
         LIMIT $2",
    )
    .bind::<Double, _>(after.as_secs_f64())
    .bind::<BigInt, _>(limit)
    .load(conn)
    .await
}

/// Flags `missing` (keeping the time each was first found) and clears the flag of everyone
/// else: the flags are exactly what this run of the check found.
pub async fn flag(conn: &mut PgConn, missing: &[UserId]) -> QueryResult<()> {
    let ids: Vec<i64> = missing.iter().map(|u| u.0).collect();
    diesel::sql_query(
        "UPDATE subscriptions SET unprovisioned_since = CASE WHEN user_id = ANY($1) \
             THEN COALESCE(unprovisioned_since, now()) END \
         WHERE user_id = ANY($1) OR unprovisioned_since IS NOT NULL",
    )
    .bind::<Array<BigInt>, _>(&ids)
    .execute(conn)
    .await
    .map(|_| ())
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

/// How many subscriptions the last check flagged (`subscriptions_unprovisioned_idx`).
pub async fn flagged(conn: &mut PgConn) -> QueryResult<i64> {
    diesel::sql_query(
        "SELECT count(*) AS n FROM subscriptions WHERE unprovisioned_since IS NOT NULL",
    )
    .get_result::<Count>(conn)
    .await
    .map(|c| c.n)
}
