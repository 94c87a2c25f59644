//! The audit log: who changed what, with before/after values; recorded in the transaction of
//! the change, listed with filters for `GET /api/v1/audit`.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use serde_json::Value;

use crate::db::PgConn;
use crate::db::models::AuditEntry;
use crate::db::schema::audit_log;
use crate::domain::AdminId;

/// One mutation to record, in the same transaction as the mutation itself.
#[derive(Debug, Clone, Default, Insertable)]
#[diesel(table_name = audit_log)]
pub struct AuditRecord {
    pub admin_id: Option<AdminId>,
    /// "admin:alice", "telegram:123456", "cli", "system".
    pub actor: String,
    pub action: String,
    pub target_type: Option<String>,
    pub target_id: Option<String>,
    pub before: Option<Value>,
    pub after: Option<Value>,
    pub remote_addr: Option<String>,
}

pub async fn record(conn: &mut PgConn, entry: AuditRecord) -> QueryResult<()> {
    diesel::insert_into(audit_log::table)
        .values(&entry)
        .execute(conn)
        .await
        .map(|_| ())
}

/// Which actions a listing shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ActionFilter {
    /// This action only, e.g. `user.ban`.
    Exact(String),
    /// Every action that starts with this, e.g. `user.`.
    Prefix(String),
}

/// What a listing of the audit log is narrowed to; every part is optional.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub admin_id: Option<AdminId>,
    pub action: Option<ActionFilter>,
    pub target_type: Option<String>,
    pub target_id: Option<String>,
    /// Entries at or after this moment.
    pub from: Option<DateTime<Utc>>,
    /// Entries before this moment.
    pub to: Option<DateTime<Utc>>,
}

/// `text` as a LIKE pattern that matches itself literally (`\` is PostgreSQL's escape character).
pub fn like_literal(text: &str) -> String {
    text.replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_")
}

/// A page of entries, newest first, with the total that matches the filter.
pub async fn list(
    conn: &mut PgConn,
    filter: &AuditFilter,
    page: i64,
    per_page: i64,
) -> QueryResult<(Vec<AuditEntry>, i64)> {
    let filtered = || {
        let mut q = audit_log::table.into_boxed();
        if let Some(admin_id) = filter.admin_id {
            q = q.filter(audit_log::admin_id.eq(admin_id));
        }
        match &filter.action {
            Some(ActionFilter::Exact(action)) => q = q.filter(audit_log::action.eq(action.clone())),
            Some(ActionFilter::Prefix(prefix)) => {
                q = q.filter(audit_log::action.like(format!("{}%", like_literal(prefix))))
            }
            None => {}
        }
        if let Some(target_type) = &filter.target_type {
            q = q.filter(audit_log::target_type.eq(target_type.clone()));
        }
        if let Some(target_id) = &filter.target_id {
            q = q.filter(audit_log::target_id.eq(target_id.clone()));
        }
        if let Some(from) = filter.from {
            q = q.filter(audit_log::created_at.ge(from));
        }
        if let Some(to) = filter.to {
            q = q.filter(audit_log::created_at.lt(to));
        }
        q
    };
    let total = filtered().count().get_result(conn).await?;
    let items = filtered()
        .select(AuditEntry::as_select())
        .order((audit_log::created_at.desc(), audit_log::id.desc()))
        .limit(per_page)
        .offset((page - 1).saturating_mul(per_page))
        .load(conn)
        .await?;
    Ok((items, total))
}
