//! Prometheus metrics of one app instance: one registry, every family declared here so names and
//! labels stay consistent (dashboards and alert rules depend on them).

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
    TextEncoder,
};

/// Prefix of every family of our own.
const NAMESPACE: &str = "vpn_shop";

/// Seconds buckets for HTTP handling and job runs: 1 ms … 60 s.
const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

pub struct Metrics {
    registry: Registry,
    /// `method`, `route` (the matched pattern, never the raw path), `status`.
    pub http_requests: IntCounterVec,
    /// `method`, `route`.
    pub http_duration: HistogramVec,
    /// `state`: `max`, `size`, `in_use`, `available`, `waiting`.
    pub db_pool: IntGaugeVec,
    /// `kind`, `state`: refreshed from the jobs table at each scrape.
    pub jobs: IntGaugeVec,
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
}

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
        for collector in [
            Box::new(http_requests.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(http_duration.clone()),
            Box::new(db_pool.clone()),
            Box::new(jobs.clone()),
            Box::new(job_runs.clone()),
            Box::new(job_duration.clone()),
            Box::new(actor_restarts.clone()),
            Box::new(scheduler_leader.clone()),
            Box::new(scheduler_runs.clone()),
            Box::new(build_info.clone()),
        ] {
            registry.register(collector)?;
        }
        // Process metrics (RSS, CPU, open fds) keep their conventional `process_` names.
        registry.register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        ))?;
        build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION")])
            .set(1);
        Ok(Metrics {
            registry,
            http_requests,
            http_duration,
            db_pool,
            jobs,
            job_runs,
            job_duration,
            actor_restarts,
            scheduler_leader,
            scheduler_runs,
            build_info,
        })
    }

    /// The Prometheus text exposition of every family.
    pub fn render(&self) -> Result<String, prometheus::Error> {
        let mut buf = Vec::new();
        TextEncoder::new().encode(&self.registry.gather(), &mut buf)?;
        String::from_utf8(buf).map_err(|e| prometheus::Error::Msg(e.to_string()))
    }
}
