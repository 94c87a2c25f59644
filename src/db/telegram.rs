//! Telegram bookkeeping shared by replicas: handled update ids and dialogue state.

use std::time::Duration;

use diesel::sql_types::Double;
use diesel_async::RunQueryDsl;

use crate::db::PgConn;

/// Forgets handled update ids older than `retention`.
pub async fn prune_updates(conn: &mut PgConn, retention: Duration) -> diesel::QueryResult<usize> {
    diesel::sql_query(
        "DELETE FROM telegram_updates WHERE received_at < now() - make_interval(secs => $1)",
    )
    .bind::<Double, _>(retention.as_secs_f64())
    .execute(conn)
    .await
}
