//! The label values known before anything happens, and the series made from them at start: a
//! labelled family shows nothing until its first series is created, so a fresh shop would show
//! "No data" on its dashboards and `rate()` would miss each series' first event. The code that
//! records a family names its label values from here.

use super::Metrics;
use crate::actors::messages::SyncKind;
use crate::domain::PaymentProvider;
use crate::domain::pricing::provider_currency;

/// `kind` of `bot_updates_total` and `bot_update_duration_seconds` (what `on_update` sees).
pub const BOT_UPDATE_KINDS: [&str; 7] = [
    "command",
    "text",
    "payment",
    "callback",
    "pre_checkout",
    "chat_member",
    "other",
];

/// `outcome` of `bot_updates_total`.
pub const BOT_UPDATE_OUTCOMES: [&str; 5] = ["handled", "duplicate", "banned", "throttled", "error"];

/// `endpoint` of `panel_requests_total` and `panel_request_duration_seconds`.
pub const PANEL_ENDPOINTS: [&str; 14] = [
    "login",
    "get_user",
    "create_user",
    "modify_user",
    "delete_user",
    "reset_user",
    "revoke_sub",
    "list_users",
    "system",
    "inbounds",
    "probe",
    "metadata",
    "enable_user",
    "disable_user",
];

/// `provider`, `endpoint` of `provider_requests_total` and `provider_request_duration_seconds`.
pub const PROVIDER_ENDPOINTS: [(&str, &str); 9] = [
    ("yookassa", "create_payment"),
    ("yookassa", "get_payment"),
    ("yookassa", "get_refund"),
    ("yookassa", "list_refunds"),
    ("yookassa", "create_refund"),
    ("wata", "create_link"),
    ("wata", "find_transactions"),
    ("wata", "refund"),
    ("wata", "public_key"),
];

/// `status` of a request that got no HTTP answer (panel and payment providers). Answered
/// requests are labelled with their HTTP code, which is not known in advance; these two are what
/// the failure alerts count.
pub const NO_ANSWER_STATUSES: [&str; 2] = ["timeout", "error"];

/// `channel` of the notification families.
pub const CHANNELS: [&str; 2] = ["telegram", "email"];

/// `outcome` of `sync_runs_total`.
pub const SYNC_OUTCOMES: [&str; 3] = ["succeeded", "failed", "skipped"];

/// `change` of `sync_users_total`.
pub const SYNC_CHANGES: [&str; 4] = ["checked", "created", "updated", "failed"];

/// `status` of `panel_users` (the panel's `GET /api/system` counts).
pub const PANEL_USER_STATUSES: [&str; 5] = ["active", "on_hold", "disabled", "expired", "limited"];

/// `direction` of `panel_bandwidth_bytes` and `panel_bandwidth_speed_bytes`.
pub const DIRECTIONS: [&str; 2] = ["incoming", "outgoing"];

/// `kind` of `panel_memory_bytes`.
pub const MEMORY_KINDS: [&str; 2] = ["total", "used"];

/// `outcome` of `auto_renewals_total` (YooKassa's saved cards are the only automatic charge).
pub const AUTO_RENEWAL_OUTCOMES: [&str; 3] = ["succeeded", "failed", "pending"];

/// `state` of `support_conversations` (closed ones are not counted).
pub const SUPPORT_STATES: [&str; 2] = ["open", "answered"];

/// The HTTP series of the scrape itself: the first scrape of `/metrics` counts from an existing
/// 0. (Other routes and statuses appear when first requested: they are not known in advance.)
const SCRAPE_ROUTE: (&str, &str, &str) = ("GET", "/metrics", "200");

impl Metrics {
    /// Creates every series whose label values are known in advance, at 0. Families whose values
    /// come from what runs (job kinds, actors, notification kinds) are started by their owners.
    pub(super) fn create_known_series(&self) {
        let (method, route, status) = SCRAPE_ROUTE;
        self.http_requests
            .with_label_values(&[method, route, status]);
        self.http_duration.with_label_values(&[method, route]);
        for kind in BOT_UPDATE_KINDS {
            self.bot_update_duration.with_label_values(&[kind]);
            for outcome in BOT_UPDATE_OUTCOMES {
                self.bot_updates.with_label_values(&[kind, outcome]);
            }
        }
        for endpoint in PANEL_ENDPOINTS {
            self.panel_duration.with_label_values(&[endpoint]);
            for status in NO_ANSWER_STATUSES {
                self.panel_requests.with_label_values(&[endpoint, status]);
            }
        }
        for (provider, endpoint) in PROVIDER_ENDPOINTS {
            self.provider_duration
                .with_label_values(&[provider, endpoint]);
            for status in NO_ANSWER_STATUSES {
                self.provider_requests
                    .with_label_values(&[provider, endpoint, status]);
            }
        }
        for channel in CHANNELS {
            self.notification_send_duration
                .with_label_values(&[channel]);
        }
        for kind in SyncKind::ALL {
            self.sync_duration.with_label_values(&[kind.as_str()]);
            for outcome in SYNC_OUTCOMES {
                self.sync_runs.with_label_values(&[kind.as_str(), outcome]);
            }
            for change in SYNC_CHANGES {
                self.sync_users.with_label_values(&[kind.as_str(), change]);
            }
        }
        for status in PANEL_USER_STATUSES {
            self.panel_users.with_label_values(&[status]);
        }
        for direction in DIRECTIONS {
            self.panel_bandwidth.with_label_values(&[direction]);
            self.panel_bandwidth_speed.with_label_values(&[direction]);
        }
        for kind in MEMORY_KINDS {
            self.panel_memory.with_label_values(&[kind]);
        }
        for provider in PaymentProvider::ALL {
            let provider = provider.as_str();
            self.checkouts.with_label_values(&[provider]);
            self.webhook_duration.with_label_values(&[provider]);
            self.refunds.with_label_values(&[provider]);
        }
        for outcome in AUTO_RENEWAL_OUTCOMES {
            self.auto_renewals
                .with_label_values(&[PaymentProvider::Yookassa.as_str(), outcome]);
        }
        for state in SUPPORT_STATES {
            self.support_conversations.with_label_values(&[state]);
        }
        self.zero_revenue();
    }

    /// Sets the revenue of every provider that takes money, in its currency, to 0: what one that
    /// sold nothing yet has. The scrape resets the family and sets the providers that did sell.
    /// (Orders paid by a 100 % promo are not revenue.)
    pub fn zero_revenue(&self) {
        for &provider in PaymentProvider::ALL {
            if provider == PaymentProvider::Free {
                continue;
            }
            let currency = provider_currency(provider);
            self.revenue
                .with_label_values(&[provider.as_str(), currency.as_str()])
                .set(0.0);
        }
    }
}
