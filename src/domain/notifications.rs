//! Notifications other parts of the shop ask the Notifier to deliver, as payloads of `notify`
//! jobs. Each carries its dedup key: one logical notification is delivered at most once.

use serde::{Deserialize, Serialize};

use crate::domain::UserId;

/// Job kind of a notification delivery.
pub const NOTIFY_JOB: &str = "notify";

/// What to tell the user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Notification {
    /// Traffic reached `percent` (80 or 100) of the limit in the current period.
    TrafficThreshold {
        percent: u8,
        used_bytes: i64,
        limit_bytes: i64,
    },
}

/// Payload of a `notify` job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotifyJob {
    pub user_id: UserId,
    pub notification: Notification,
    /// Identity of the logical notification, e.g. `traffic:80:<user>:<expires_at>`.
    pub dedup_key: String,
}
