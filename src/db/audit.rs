//! The audit log: who changed what, with before/after values.

use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use serde_json::Value;

use crate::db::PgConn;
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
