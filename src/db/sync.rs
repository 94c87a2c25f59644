//! Panel sync runs (`sync_runs`) and panel stats snapshots (`panel_stats`).

use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use crate::db::PgConn;
use crate::db::models::{NewPanelStats, SyncRun};
use crate::db::schema::{panel_stats, sync_runs};
use crate::domain::SyncRunStatus;

/// What a run did, counted per user.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct SyncCounts {
    pub checked: i32,
    pub created: i32,
    pub updated: i32,
    pub failed: i32,
}

pub async fn start_run(conn: &mut PgConn, kind: &str) -> QueryResult<i64> {
    diesel::insert_into(sync_runs::table)
        .values(sync_runs::kind.eq(kind))
        .returning(sync_runs::id)
        .get_result(conn)
        .await
}

pub async fn finish_run(
    conn: &mut PgConn,
    id: i64,
    counts: SyncCounts,
    error: Option<&str>,
) -> QueryResult<()> {
    let status = if error.is_some() {
        SyncRunStatus::Failed
    } else {
        SyncRunStatus::Succeeded
    };
    diesel::update(sync_runs::table.find(id))
        .set((
            sync_runs::status.eq(status),
            sync_runs::finished_at.eq(diesel::dsl::now),
            sync_runs::checked.eq(counts.checked),
            sync_runs::created.eq(counts.created),
            sync_runs::updated.eq(counts.updated),
            sync_runs::failed.eq(counts.failed),
            sync_runs::error.eq(error),
        ))
        .execute(conn)
        .await
        .map(|_| ())
}

/// Runs of one kind, newest first.
pub async fn recent_runs(conn: &mut PgConn, kind: &str, limit: i64) -> QueryResult<Vec<SyncRun>> {
    sync_runs::table
        .filter(sync_runs::kind.eq(kind))
        .select(SyncRun::as_select())
        .order(sync_runs::id.desc())
        .limit(limit)
        .load(conn)
        .await
}

pub async fn record_panel_stats(conn: &mut PgConn, stats: &NewPanelStats) -> QueryResult<()> {
    diesel::insert_into(panel_stats::table)
        .values(stats)
        .execute(conn)
        .await
        .map(|_| ())
}
