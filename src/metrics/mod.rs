//! Prometheus metrics of one app instance: one registry, every family declared here so names and
//! labels stay consistent (dashboards and alert rules depend on them).

pub mod known;

use prometheus::core::Collector;
use prometheus::{
    Encoder, GaugeVec, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

/// A registered metric family: its name and label names (dashboards and alert rules are checked
/// against these).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Family {
    pub name: String,
    pub labels: Vec<String>,
}

/// Prefix of every family of our own.
const NAMESPACE: &str = "vpn_shop";

/// Seconds buckets for HTTP handling and job runs: 1 ms … 60 s.
const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

pub struct Metrics {
    registry: Registry,
    /// Every family registered, even one not observed yet (which `/metrics` does not show).
    declared: Vec<Family>,
    /// `method`, `route` (the matched pattern, never the raw path), `status`.
    pub http_requests: IntCounterVec,
    /// `method`, `route`.
    pub http_duration: HistogramVec,
    /// `state`: `max`, `size`, `in_use`, `available`, `waiting`.
    pub db_pool: IntGaugeVec,
    /// `kind`, `state`: refreshed from the jobs table at each scrape.
    pub jobs: IntGaugeVec,
    /// `kind`: seconds the oldest due pending job has waited (0 when none): a stuck queue.
    pub job_oldest_due: GaugeVec,
    /// `kind`, `outcome`: `done`, `retry`, `dead`, `superseded`, `lost`, `panicked`.
    pub job_runs: IntCounterVec,
    /// `kind`.
    pub job_duration: HistogramVec,
    /// `actor`.
    pub actor_restarts: IntCounterVec,
    /// 1 while this replica held the scheduler lock at its last tick.
    pub scheduler_leader: IntGauge,
    /// `task`, `outcome`: `enqueued`, `skipped`.
    pub scheduler_runs: IntCounterVec,
    /// `version`: constant 1.
    pub build_info: IntGaugeVec,
    /// `endpoint`, `status` (HTTP code, `timeout` or `error`).
    pub panel_requests: IntCounterVec,
    /// `endpoint`.
    pub panel_duration: HistogramVec,
    /// `kind`, `outcome`: `succeeded`, `failed`, `skipped`.
    pub sync_runs: IntCounterVec,
    /// `kind`.
    pub sync_duration: HistogramVec,
    /// `kind`, `change`: `checked`, `created`, `updated`, `failed`.
    pub sync_users: IntCounterVec,
    /// `status`: the panel's users by status, from `GET /api/system`.
    pub panel_users: IntGaugeVec,
    /// Users seen online in the last 24 h.
    pub panel_online_users: IntGauge,
    /// `direction`: `incoming`, `outgoing` — total bytes since the panel started.
    pub panel_bandwidth: IntGaugeVec,
    /// `direction`: bytes per second.
    pub panel_bandwidth_speed: IntGaugeVec,
    /// Panel host CPU usage in percent.
    pub panel_cpu_usage: prometheus::Gauge,
    /// `kind`: `total`, `used` — panel host memory in bytes.
    pub panel_memory: IntGaugeVec,
    /// Paying users whose running subscription the panel does not give (missing, disabled or
    /// ending earlier) for longer than PAID_UNPROVISIONED_AFTER, as the last check found; read
    /// from the database at scrape time, so every replica exports the same number.
    pub paid_unprovisioned: IntGauge,
    /// `kind`, `channel`, `outcome`: `sent`, `failed`, `skipped`.
    pub notifications: IntCounterVec,
    /// `channel`: time to send one message, waiting for the rate budget included.
    pub notification_send_duration: HistogramVec,
    /// 429 answers from Telegram (each one waited out and the message resent).
    pub telegram_flood_waits: prometheus::IntCounter,
    /// `outcome`: `sent`, `failed`, `blocked`.
    pub broadcast_messages: IntCounterVec,
    /// Messages still to send in the running broadcast.
    pub broadcast_remaining: IntGauge,
    /// `provider`, `endpoint`, `status` (HTTP code, `timeout` or `error`).
    pub provider_requests: IntCounterVec,
    /// `provider`, `endpoint`.
    pub provider_duration: HistogramVec,
    /// `provider`: orders created.
    pub checkouts: IntCounterVec,
    /// `provider`, `verdict`: `accepted`, `duplicate`, `forged`, `mismatched`, `ignored`, `invalid`.
    pub payment_events: IntCounterVec,
    /// `provider`: time to handle a payment webhook.
    pub webhook_duration: HistogramVec,
    /// `provider`.
    pub refunds: IntCounterVec,
    /// Payments an admin must look at, by kind (see `actors::payments::Anomaly`).
    pub payment_anomalies: IntCounterVec,
    /// `provider`, `outcome`: `succeeded`, `failed`, `pending`.
    pub auto_renewals: IntCounterVec,
    /// `kind` (`command`, `text`, `callback`, `pre_checkout`, `payment`, `chat_member`, `other`),
    /// `outcome`: `handled`, `duplicate`, `throttled`, `banned`, `error`.
    pub bot_updates: IntCounterVec,
    /// `kind`: time to handle one update, Bot API answers included.
    pub bot_update_duration: HistogramVec,
    /// Business gauges, refreshed from the database at scrape time (every replica exports the
    /// same numbers: aggregate them with `max`, not `sum`). Users in all.
    pub users: IntGauge,
    /// Users registered in the last 24 hours.
    pub users_new_24h: IntGauge,
    /// Users who ever started a trial.
    pub users_trial: IntGauge,
    /// Users with at least one paid payment.
    pub users_paying: IntGauge,
    /// Users who had a trial and paid after it started.
    pub users_trial_converted: IntGauge,
    /// `kind`: `trial`, `paid`, `granted` — status active and not ended.
    pub subscriptions_active: IntGaugeVec,
    /// `kind`: active subscriptions ending within 3 days.
    pub subscriptions_expiring: IntGaugeVec,
    /// Support conversations not closed, by state (`open`: waiting for an answer, `answered`).
    pub support_conversations: IntGaugeVec,
    /// Seconds the longest-waiting subscriber has waited for an answer.
    pub support_oldest_waiting: IntGauge,
    /// `SUPPORT_SLA` in seconds (the alert rule compares the wait with it).
    pub support_sla: IntGauge,
    /// Time from a conversation's opening to its first answer.
    pub support_first_response: prometheus::Histogram,
    /// `provider`, `currency`: paid minus refunded, all time, in the currency's major unit.
    pub revenue: GaugeVec,
    /// When the business gauges were last read (they are read at most every
    /// [`BUSINESS_REFRESH`]).
    pub business_refreshed: std::sync::Mutex<Option<std::time::Instant>>,
}

/// The business gauges are read from the database at most this often, however often scraped.
pub const BUSINESS_REFRESH: std::time::Duration = std::time::Duration::from_secs(10);

impl Metrics {
    pub fn new() -> prometheus::Result<Metrics> {
        let registry = Registry::new();
        let http_requests = IntCounterVec::new(
            Opts::new("http_requests_total", "HTTP requests by route and status.")
                .namespace(NAMESPACE),
            &["method", "route", "status"],
        )?;
        let http_duration = HistogramVec::new(
            HistogramOpts::new(
                "http_request_duration_seconds",
                "HTTP request handling time.",
            )
            .namespace(NAMESPACE)
            .buckets(LATENCY_BUCKETS.to_vec()),
            &["method", "route"],
        )?;
        let db_pool = IntGaugeVec::new(
            Opts::new(
                "db_pool_connections",
                "Database pool: max size, open, in use, idle, waiters.",
            )
            .namespace(NAMESPACE),
            &["state"],
        )?;
        let jobs = IntGaugeVec::new(
            Opts::new("jobs", "Jobs in the durable queue by kind and state.").namespace(NAMESPACE),
            &["kind", "state"],
        )?;
        let job_oldest_due = GaugeVec::new(
            Opts::new(
                "job_oldest_due_seconds",
                "How long the oldest due pending job of a kind has waited to run.",
            )
            .namespace(NAMESPACE),
            &["kind"],
        )?;
        let job_runs = IntCounterVec::new(
            Opts::new(
                "job_runs_total",
                "Finished job attempts by kind and outcome.",
            )
            .namespace(NAMESPACE),
            &["kind", "outcome"],
        )?;
        let job_duration = HistogramVec::new(
            HistogramOpts::new("job_duration_seconds", "Time of one job attempt.")
                .namespace(NAMESPACE)
                .buckets(LATENCY_BUCKETS.to_vec()),
            &["kind"],
        )?;
        let actor_restarts = IntCounterVec::new(
            Opts::new(
                "actor_restarts_total",
                "Actor restarts (supervisor and watchdog).",
            )
            .namespace(NAMESPACE),
            &["actor"],
        )?;
        let scheduler_leader = IntGauge::with_opts(
            Opts::new(
                "scheduler_leader",
                "1 while this replica schedules the periodic tasks.",
            )
            .namespace(NAMESPACE),
        )?;
        let scheduler_runs = IntCounterVec::new(
            Opts::new(
                "scheduler_task_runs_total",
                "Due periodic tasks by outcome.",
            )
            .namespace(NAMESPACE),
            &["task", "outcome"],
        )?;
        let build_info = IntGaugeVec::new(
            Opts::new("build_info", "Build information; the value is always 1.")
                .namespace(NAMESPACE),
            &["version"],
        )?;
        let panel_requests = IntCounterVec::new(
            Opts::new(
                "panel_requests_total",
                "Requests to the Marzban panel by endpoint and status.",
            )
            .namespace(NAMESPACE),
            &["endpoint", "status"],
        )?;
        let panel_duration = HistogramVec::new(
            HistogramOpts::new(
                "panel_request_duration_seconds",
                "Marzban panel request time.",
            )
            .namespace(NAMESPACE)
            .buckets(LATENCY_BUCKETS.to_vec()),
            &["endpoint"],
        )?;
        let sync_runs = IntCounterVec::new(
            Opts::new("sync_runs_total", "Panel sync runs by kind and outcome.")
                .namespace(NAMESPACE),
            &["kind", "outcome"],
        )?;
        let sync_duration = HistogramVec::new(
            HistogramOpts::new("sync_duration_seconds", "Panel sync run time.")
                .namespace(NAMESPACE)
                .buckets(vec![
                    0.1, 0.5, 1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0,
                ]),
            &["kind"],
        )?;
        let sync_users = IntCounterVec::new(
            Opts::new("sync_users_total", "Users handled by panel syncs: checked, created, updated (drift corrected), failed.")
                .namespace(NAMESPACE),
            &["kind", "change"],
        )?;
        let panel_users = IntGaugeVec::new(
            Opts::new("panel_users", "Panel users by status (GET /api/system).")
                .namespace(NAMESPACE),
            &["status"],
        )?;
        let panel_online_users = IntGauge::with_opts(
            Opts::new(
                "panel_online_users",
                "Panel users online in the last 24 hours.",
            )
            .namespace(NAMESPACE),
        )?;
        let panel_bandwidth = IntGaugeVec::new(
            Opts::new(
                "panel_bandwidth_bytes",
                "Panel traffic since it started, by direction.",
            )
            .namespace(NAMESPACE),
            &["direction"],
        )?;
        let panel_bandwidth_speed = IntGaugeVec::new(
            Opts::new(
                "panel_bandwidth_speed_bytes",
                "Panel traffic rate in bytes per second, by direction.",
            )
            .namespace(NAMESPACE),
            &["direction"],
        )?;
        let panel_cpu_usage = prometheus::Gauge::with_opts(
            Opts::new(
                "panel_cpu_usage_percent",
                "Panel host CPU usage in percent.",
            )
            .namespace(NAMESPACE),
        )?;
        let panel_memory = IntGaugeVec::new(
            Opts::new("panel_memory_bytes", "Panel host memory: total and used.")
                .namespace(NAMESPACE),
            &["kind"],
        )?;
        let paid_unprovisioned = IntGauge::with_opts(
            Opts::new(
                "paid_unprovisioned",
                "Paying users whose running subscription the panel does not give (missing, disabled or ending earlier than paid) for longer than PAID_UNPROVISIONED_AFTER.",
            )
            .namespace(NAMESPACE),
        )?;
        let notifications = IntCounterVec::new(
            Opts::new(
                "notifications_total",
                "Notification deliveries by type, channel and outcome.",
            )
            .namespace(NAMESPACE),
            &["kind", "channel", "outcome"],
        )?;
        let notification_send_duration = HistogramVec::new(
            HistogramOpts::new(
                "notification_send_duration_seconds",
                "Time to send one message, waiting for the rate budget included.",
            )
            .namespace(NAMESPACE)
            .buckets(LATENCY_BUCKETS.to_vec()),
            &["channel"],
        )?;
        let telegram_flood_waits = prometheus::IntCounter::with_opts(
            Opts::new(
                "telegram_flood_waits_total",
                "429 answers from Telegram, each waited out.",
            )
            .namespace(NAMESPACE),
        )?;
        let broadcast_messages = IntCounterVec::new(
            Opts::new("broadcast_messages_total", "Broadcast messages by outcome.")
                .namespace(NAMESPACE),
            &["outcome"],
        )?;
        let broadcast_remaining = IntGauge::with_opts(
            Opts::new(
                "broadcast_remaining",
                "Messages still to send in the running broadcast.",
            )
            .namespace(NAMESPACE),
        )?;
        let provider_requests = IntCounterVec::new(
            Opts::new(
                "provider_requests_total",
                "Requests to payment providers by endpoint and status.",
            )
            .namespace(NAMESPACE),
            &["provider", "endpoint", "status"],
        )?;
        let provider_duration = HistogramVec::new(
            HistogramOpts::new(
                "provider_request_duration_seconds",
                "Payment provider request time.",
            )
            .namespace(NAMESPACE)
            .buckets(LATENCY_BUCKETS.to_vec()),
            &["provider", "endpoint"],
        )?;
        let checkouts = IntCounterVec::new(
            Opts::new("checkouts_total", "Orders created by provider.").namespace(NAMESPACE),
            &["provider"],
        )?;
        let payment_events = IntCounterVec::new(
            Opts::new(
                "payment_events_total",
                "Payment webhooks and updates by verdict.",
            )
            .namespace(NAMESPACE),
            &["provider", "verdict"],
        )?;
        let webhook_duration = HistogramVec::new(
            HistogramOpts::new(
                "payment_webhook_duration_seconds",
                "Time to handle a payment webhook.",
            )
            .namespace(NAMESPACE)
            .buckets(LATENCY_BUCKETS.to_vec()),
            &["provider"],
        )?;
        let refunds = IntCounterVec::new(
            Opts::new("refunds_total", "Refunds made, by provider.").namespace(NAMESPACE),
            &["provider"],
        )?;
        let payment_anomalies = IntCounterVec::new(
            Opts::new(
                "payment_anomalies_total",
                "Payments an admin must look at (flagged orders), by kind.",
            )
            .namespace(NAMESPACE),
            &["kind"],
        )?;
        let auto_renewals = IntCounterVec::new(
            Opts::new(
                "auto_renewals_total",
                "Automatic renewal charges by outcome.",
            )
            .namespace(NAMESPACE),
            &["provider", "outcome"],
        )?;
        let bot_updates = IntCounterVec::new(
            Opts::new(
                "bot_updates_total",
                "Telegram updates received by the bot, by kind and outcome.",
            )
            .namespace(NAMESPACE),
            &["kind", "outcome"],
        )?;
        let bot_update_duration = HistogramVec::new(
            HistogramOpts::new(
                "bot_update_duration_seconds",
                "Time to handle one Telegram update.",
            )
            .namespace(NAMESPACE)
            .buckets(LATENCY_BUCKETS.to_vec()),
            &["kind"],
        )?;
        let gauge = |name: &str, help: &str| {
            IntGauge::with_opts(Opts::new(name, help).namespace(NAMESPACE))
        };
        let users = gauge("users", "Users of the shop (from the database).")?;
        let users_new_24h = gauge("users_new_24h", "Users registered in the last 24 hours.")?;
        let users_trial = gauge("users_trial", "Users who ever started a free trial.")?;
        let users_paying = gauge(
            "users_paying",
            "Users with at least one paid payment (refunded ones included, free orders not).",
        )?;
        let users_trial_converted = gauge(
            "users_trial_converted",
            "Users who had a trial and paid after it started.",
        )?;
        let subscriptions_active = IntGaugeVec::new(
            Opts::new(
                "subscriptions_active",
                "Subscriptions with status active that have not ended, by kind (trial, paid, granted).",
            )
            .namespace(NAMESPACE),
            &["kind"],
        )?;
        let subscriptions_expiring = IntGaugeVec::new(
            Opts::new(
                "subscriptions_expiring",
                "Active subscriptions ending within 3 days, by kind.",
            )
            .namespace(NAMESPACE),
            &["kind"],
        )?;
        let support_conversations = IntGaugeVec::new(
            Opts::new(
                "support_conversations",
                "Support conversations not closed, by state (open: the subscriber waits for an answer; answered).",
            )
            .namespace(NAMESPACE),
            &["state"],
        )?;
        let support_oldest_waiting = gauge(
            "support_oldest_waiting_seconds",
            "Seconds the longest-waiting subscriber has waited for an answer (0: nobody waits).",
        )?;
        let support_sla = gauge(
            "support_sla_seconds",
            "SUPPORT_SLA: how long a subscriber may wait for an answer before the alert fires.",
        )?;
        let support_first_response = prometheus::Histogram::with_opts(
            HistogramOpts::new(
                "support_first_response_seconds",
                "Time from a support conversation's first message to the team's first answer.",
            )
            .namespace(NAMESPACE)
            .buckets(vec![
                60.0, 300.0, 900.0, 1800.0, 3600.0, 7200.0, 14400.0, 28800.0, 43200.0, 86400.0,
                172800.0,
            ]),
        )?;
        let revenue = GaugeVec::new(
            Opts::new(
                "revenue",
                "Paid minus refunded, all time, by provider and currency, in the currency's major unit (RUB: roubles, XTR: Stars).",
            )
            .namespace(NAMESPACE),
            &["provider", "currency"],
        )?;
        let mut declared = Vec::new();
        for collector in [
            Box::new(http_requests.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(http_duration.clone()),
            Box::new(db_pool.clone()),
            Box::new(jobs.clone()),
            Box::new(job_oldest_due.clone()),
            Box::new(job_runs.clone()),
            Box::new(job_duration.clone()),
            Box::new(actor_restarts.clone()),
            Box::new(scheduler_leader.clone()),
            Box::new(scheduler_runs.clone()),
            Box::new(build_info.clone()),
            Box::new(panel_requests.clone()),
            Box::new(panel_duration.clone()),
            Box::new(sync_runs.clone()),
            Box::new(sync_duration.clone()),
            Box::new(sync_users.clone()),
            Box::new(panel_users.clone()),
            Box::new(panel_online_users.clone()),
            Box::new(panel_bandwidth.clone()),
            Box::new(panel_bandwidth_speed.clone()),
            Box::new(panel_cpu_usage.clone()),
            Box::new(panel_memory.clone()),
            Box::new(paid_unprovisioned.clone()),
            Box::new(notifications.clone()),
            Box::new(notification_send_duration.clone()),
            Box::new(telegram_flood_waits.clone()),
            Box::new(broadcast_messages.clone()),
            Box::new(broadcast_remaining.clone()),
            Box::new(provider_requests.clone()),
            Box::new(provider_duration.clone()),
            Box::new(checkouts.clone()),
            Box::new(payment_events.clone()),
            Box::new(webhook_duration.clone()),
            Box::new(refunds.clone()),
            Box::new(payment_anomalies.clone()),
            Box::new(auto_renewals.clone()),
            Box::new(bot_updates.clone()),
            Box::new(bot_update_duration.clone()),
            Box::new(users.clone()),
            Box::new(users_new_24h.clone()),
            Box::new(users_trial.clone()),
            Box::new(users_paying.clone()),
            Box::new(users_trial_converted.clone()),
            Box::new(subscriptions_active.clone()),
            Box::new(subscriptions_expiring.clone()),
            Box::new(support_conversations.clone()),
            Box::new(support_oldest_waiting.clone()),
            Box::new(support_sla.clone()),
            Box::new(support_first_response.clone()),
            Box::new(revenue.clone()),
        ] {
            declared.extend(families_of(collector.as_ref()));
            registry.register(collector)?;
        }
        // Process metrics (RSS, CPU, open fds) keep their conventional `process_` names.
        let process = prometheus::process_collector::ProcessCollector::for_self();
        declared.extend(families_of(&process));
        registry.register(Box::new(process))?;
        build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION")])
            .set(1);
        let metrics = Metrics {
            registry,
            declared,
            http_requests,
            http_duration,
            db_pool,
            jobs,
            job_oldest_due,
            job_runs,
            job_duration,
            actor_restarts,
            scheduler_leader,
            scheduler_runs,
            build_info,
            panel_requests,
            panel_duration,
            sync_runs,
            sync_duration,
            sync_users,
            panel_users,
            panel_online_users,
            panel_bandwidth,
            panel_bandwidth_speed,
            panel_cpu_usage,
            panel_memory,
            paid_unprovisioned,
            notifications,
            notification_send_duration,
            telegram_flood_waits,
            broadcast_messages,
            broadcast_remaining,
            provider_requests,
            provider_duration,
            checkouts,
            payment_events,
            webhook_duration,
            refunds,
            payment_anomalies,
            auto_renewals,
            bot_updates,
            bot_update_duration,
            users,
            users_new_24h,
            users_trial,
            users_paying,
            users_trial_converted,
            subscriptions_active,
            subscriptions_expiring,
            support_conversations,
            support_oldest_waiting,
            support_sla,
            support_first_response,
            revenue,
            business_refreshed: std::sync::Mutex::new(None),
        };
        metrics.create_known_series();
        Ok(metrics)
    }

    /// Every family this app exports (a family whose label values are not known in advance
    /// appears in `/metrics` once observed).
    pub fn declared(&self) -> &[Family] {
        &self.declared
    }

    /// The Prometheus text exposition of every family.
    pub fn render(&self) -> Result<String, prometheus::Error> {
        let mut buf = Vec::new();
        TextEncoder::new().encode(&self.registry.gather(), &mut buf)?;
        String::from_utf8(buf).map_err(|e| prometheus::Error::Msg(e.to_string()))
    }
}

fn families_of(collector: &dyn Collector) -> Vec<Family> {
    collector
        .desc()
        .into_iter()
        .map(|d| Family {
            name: d.fq_name.clone(),
            labels: d.variable_labels.clone(),
        })
        .collect()
}
