//! What the operations pages (broadcasts, jobs, syncs, admin accounts) share: the confirmation
//! page of a one-button action, and its form.

use askama::Template;
use serde::Deserialize;

use super::Layout;

/// A form whose only field (besides the CSRF token) is the confirmation.
#[derive(Debug, Deserialize)]
pub struct ConfirmForm {
    /// Present on the second POST: the admin confirmed.
    pub confirm: Option<String>,
}

/// "Are you sure?" for an action: what will happen, the facts that matter, one button that
/// posts again with `confirm`, and the way back.
#[derive(Template)]
#[template(path = "admin/ops_confirm.html")]
pub struct OpsConfirm {
    pub layout: Layout,
    pub title: String,
    pub what: String,
    pub facts: Vec<(String, String)>,
    /// Where the confirming POST goes.
    pub action: String,
    /// More fields the confirming POST carries, as `(name, value)`.
    pub hidden: Vec<(String, String)>,
    pub button: String,
    /// Destructive: shown in the danger colour.
    pub danger: bool,
    pub back: String,
    pub csrf: String,
}
