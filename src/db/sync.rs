//! Panel sync runs (`sync_runs`) and panel stats snapshots (`panel_stats`).

use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use crate::db::PgConn;
use crate::db::models::{NewPanelStats, PanelStats, SyncRun};
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

/// A page of runs (of one kind, or all), newest first, with the total that matches.
pub async fn list_runs(
    conn: &mut PgConn,
    kind: Option<&str>,
    page: i64,
    per_page: i64,
) -> QueryResult<(Vec<SyncRun>, i64)> {
    let filtered = || {
        let mut q = sync_runs::table.into_boxed();
        if let Some(kind) = kind {
            q = q.filter(sync_runs::kind.eq(kind.to_owned()));
        }
        q
    };
    let total = filtered().count().get_result(conn).await?;
    let items = filtered()
        .select(SyncRun::as_select())
        // Ids are handed out as runs start: the primary key orders them without a sort.
        .order(sync_runs::id.desc())
        .limit(per_page)
        .offset((page - 1).saturating_mul(per_page))
        .load(conn)
        .await?;
    Ok((items, total))
}

/// The newest `limit` snapshots of the panel's stats, newest first.
pub async fn panel_stats_history(conn: &mut PgConn, limit: i64) -> QueryResult<Vec<PanelStats>> {
    panel_stats::table
        .select(PanelStats::as_select())
        .order((panel_stats::collected_at.desc(), panel_stats::id.desc()))
        .limit(limit)
        .load(conn)
        .await
}
