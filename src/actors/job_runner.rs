//! JobRunner: drains the durable job queue and drives the handler registered for each job kind.
//!
//! It claims due jobs (never more than `JOB_CONCURRENCY`, and never more of one kind than that
//! kind's own limit), runs each handler as a future on the actor's context so the mailbox keeps
//! moving, contains panics and hangs (a panicking or timed-out handler is a failed attempt), and
//! records the outcome. New jobs wake it at once through LISTEN/NOTIFY; polling every
//! `JOB_POLL_INTERVAL` is the fallback.

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::fut::wrap_future;
use actix::{
    Actor, ActorFutureExt, AsyncContext, Context, Handler, ResponseActFuture, SpawnHandle,
    Supervised, WrapFuture,
};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use futures_util::FutureExt;
use futures_util::StreamExt;
use futures_util::future::LocalBoxFuture;
use tokio::sync::oneshot;

use crate::actors::messages::{Drain, Ping, WakeUp};
use crate::actors::supervisor::ActorRegistry;
use crate::config::JobSettings;
use crate::db::jobs::{self, FailOutcome};
use crate::db::models::Job;
use crate::db::{PgPool, jobs::NOTIFY_CHANNEL};
use crate::metrics::Metrics;

/// Why an attempt failed.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct JobError {
    pub message: String,
    /// Retrying cannot help (bad payload, a 4xx that will not change): dead at once.
    pub permanent: bool,
}

impl JobError {
    pub fn retryable(message: impl std::fmt::Display) -> Self {
        JobError {
            message: message.to_string(),
            permanent: false,
        }
    }

    pub fn permanent(message: impl std::fmt::Display) -> Self {
        JobError {
            message: message.to_string(),
            permanent: true,
        }
    }
}

impl From<anyhow::Error> for JobError {
    fn from(e: anyhow::Error) -> Self {
        JobError::retryable(format!("{e:#}"))
    }
}

impl From<crate::db::PoolError> for JobError {
    fn from(e: crate::db::PoolError) -> Self {
        JobError::retryable(format!("database unavailable: {e}"))
    }
}

impl From<diesel::result::Error> for JobError {
    fn from(e: diesel::result::Error) -> Self {
        JobError::retryable(format!("database error: {e}"))
    }
}

/// Does the work of one job kind. Must be idempotent: a job may run again after a crash or an
/// expired lease.
pub trait JobHandler: Send + Sync + 'static {
    fn run(&self, job: Job) -> LocalBoxFuture<'static, Result<(), JobError>>;
}

struct Registered {
    handler: Arc<dyn JobHandler>,
    max_concurrency: Option<usize>,
}

/// The handlers by job kind. Kinds without a handler stay in the queue untouched (a later
/// version of the program, or another replica, may handle them).
#[derive(Default)]
pub struct JobHandlers {
    by_kind: HashMap<&'static str, Registered>,
}

impl JobHandlers {
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers `handler` for `kind`; `max_concurrency` bounds how many such jobs this replica
    /// runs at once (e.g. writes to the panel), `None` = only the global limit.
    pub fn register(
        &mut self,
        kind: &'static str,
        handler: impl JobHandler,
        max_concurrency: Option<usize>,
    ) {
        self.by_kind.insert(
            kind,
            Registered {
                handler: Arc::new(handler),
                max_concurrency,
            },
        );
    }

    pub fn kinds(&self) -> Vec<&'static str> {
        let mut kinds: Vec<_> = self.by_kind.keys().copied().collect();
        kinds.sort_unstable();
        kinds
    }

    /// Which kinds to claim and how many of each group, given what is running and the free
    /// global capacity: kinds with their own limit each form a group; the rest share one.
    fn claim_plan(
        &self,
        in_flight: &HashMap<&'static str, usize>,
        free: usize,
    ) -> Vec<(Vec<&'static str>, usize)> {
        let mut plan = Vec::new();
        let mut shared = Vec::new();
        for kind in self.kinds() {
            let running = in_flight.get(kind).copied().unwrap_or(0);
            match self.by_kind[kind].max_concurrency {
                Some(limit) if limit > running => {
                    plan.push((vec![kind], (limit - running).min(free)))
                }
                Some(_) => {}
                None => shared.push(kind),
            }
        }
        if !shared.is_empty() {
            plan.push((shared, free));
        }
        plan
    }
}

/// Values of the `outcome` label of `vpn_shop_job_runs_total`.
const JOB_OUTCOMES: [&str; 6] = ["done", "retry", "dead", "superseded", "lost", "panicked"];

/// The runner actor. One per replica; `worker_id` names it in `jobs.locked_by`.
pub struct JobRunner {
    pool: PgPool,
    database_url: String,
    settings: JobSettings,
    handlers: Arc<JobHandlers>,
    worker_id: Arc<str>,
    metrics: Arc<Metrics>,
    in_flight: HashMap<&'static str, usize>,
    total_in_flight: usize,
    claiming: bool,
    /// A wake-up came while a claim was running: that claim may have missed the new job (its
    /// snapshot can predate the enqueue's commit), so claim once more when it ends.
    poll_again: bool,
    draining: bool,
    drain_waiters: Vec<oneshot::Sender<()>>,
    /// The LISTEN task; cancelled on drain so shutdown does not look like a lost connection.
    listener: Option<SpawnHandle>,
    /// The futures of the running jobs, cancelled when a drain runs out of time.
    running: HashMap<crate::domain::JobId, SpawnHandle>,
}

impl JobRunner {
    pub fn new(
        pool: PgPool,
        database_url: String,
        settings: JobSettings,
        handlers: Arc<JobHandlers>,
        worker_id: impl Into<Arc<str>>,
        metrics: Arc<Metrics>,
    ) -> Self {
        // Series exist from the start, so dashboards see 0 rather than nothing.
        for kind in handlers.kinds() {
            for outcome in JOB_OUTCOMES {
                metrics.job_runs.with_label_values(&[kind, outcome]);
            }
        }
        JobRunner {
            pool,
            database_url,
            settings,
            handlers,
            worker_id: worker_id.into(),
            metrics,
            in_flight: HashMap::new(),
            total_in_flight: 0,
            claiming: false,
            poll_again: false,
            draining: false,
            drain_waiters: Vec::new(),
            listener: None,
            running: HashMap::new(),
        }
    }

    /// A worker id unique to this process: host, pid and a random suffix.
    pub fn process_worker_id() -> String {
        let host = nix::unistd::gethostname()
            .ok()
            .and_then(|h| h.into_string().ok())
            .unwrap_or_else(|| "host".into());
        format!(
            "{host}:{}:{:06x}",
            std::process::id(),
            rand::random::<u32>() & 0xff_ffff
        )
    }

    /// Claims as many due jobs as there is capacity for and starts them.
    fn poll(&mut self, ctx: &mut Context<Self>) {
        if self.draining {
            return;
        }
        if self.claiming {
            self.poll_again = true;
            return;
        }
        let free = self
            .settings
            .concurrency
            .saturating_sub(self.total_in_flight);
        if free == 0 {
            return;
        }
        let plan = self.handlers.claim_plan(&self.in_flight, free);
        if plan.is_empty() {
            return;
        }
        self.claiming = true;
        self.poll_again = false;
        let pool = self.pool.clone();
        let worker = Arc::clone(&self.worker_id);
        let lease = self.settings.lease;
        let claim = async move {
            let mut conn = pool.get().await.map_err(|e| e.to_string())?;
            let buried = jobs::bury_expired_leases(&mut conn, lease)
                .await
                .map_err(|e| e.to_string())?;
            if buried > 0 {
                tracing::error!(
                    jobs = buried,
                    "jobs dead: their worker was lost during the last attempt"
                );
            }
            let mut claimed = Vec::new();
            let mut remaining = free;
            for (kinds, limit) in plan {
                let limit = limit.min(remaining);
                if limit == 0 {
                    break;
                }
                let batch = jobs::claim(&mut conn, &worker, &kinds, limit as i64, lease)
                    .await
                    .map_err(|e| e.to_string())?;
                remaining -= batch.len();
                claimed.extend(batch);
            }
            Ok::<_, String>(claimed)
        };
        ctx.spawn(wrap_future::<_, Self>(claim).map(|result, act, ctx| {
            act.claiming = false;
            match result {
                Ok(claimed) => {
                    let any = !claimed.is_empty();
                    for job in claimed {
                        act.start(job, ctx);
                    }
                    if any || act.poll_again {
                        // There may be more due jobs than this batch took, or a job enqueued
                        // while it ran.
                        act.poll(ctx);
                    }
                }
                Err(error) => tracing::warn!(%error, "claiming jobs failed; will retry"),
            }
            // A drain that arrived during this claim waited for it (see `Drain`).
            act.notify_if_drained();
        }));
    }

    /// Answers pending `Drain` requests once nothing runs and no claim is in flight (a claim's
    /// jobs are started even while draining: they are ours already).
    fn notify_if_drained(&mut self) {
        if self.total_in_flight == 0 && !self.claiming {
            for waiter in self.drain_waiters.drain(..) {
                let _ = waiter.send(());
            }
        }
    }

    fn start(&mut self, job: Job, ctx: &mut Context<Self>) {
        let Some((kind, registered)) = self.handlers.by_kind.get_key_value(job.kind.as_str())
        else {
            // Cannot happen: only registered kinds are claimed. Give it back rather than lose it.
            tracing::error!(job = %job.id, kind = %job.kind, "claimed a job without handler");
            return;
        };
        let kind: &'static str = kind;
        *self.in_flight.entry(kind).or_default() += 1;
        self.total_in_flight += 1;

        let id_of_started = job.id;
        let handler = Arc::clone(&registered.handler);
        let pool = self.pool.clone();
        let worker = Arc::clone(&self.worker_id);
        let settings = self.settings.clone();
        let metrics = Arc::clone(&self.metrics);
        let span = tracing::info_span!("job", id = %job.id, kind, attempt = job.attempts);
        let run = async move {
            let started = Instant::now();
            let id = job.id;
            let attempts = job.attempts;
            // `run` is called inside the guarded future: a handler that panics before returning
            // its future is contained too (and does not take the runner down).
            let limit = handler_time_limit(settings.lease);
            let guarded = async move { tokio::time::timeout(limit, handler.run(job)).await };
            let attempt = AssertUnwindSafe(guarded).catch_unwind().await;
            let (result, panicked) = match attempt {
                Ok(Ok(result)) => (result, false),
                Ok(Err(_)) => (
                    Err(JobError::retryable(format!(
                        "timed out after {}",
                        crate::config::format_duration(limit)
                    ))),
                    false,
                ),
                Err(panic) => (
                    Err(JobError::retryable(format!(
                        "handler panicked: {}",
                        panic_message(&panic)
                    ))),
                    true,
                ),
            };
            metrics
                .job_duration
                .with_label_values(&[kind])
                .observe(started.elapsed().as_secs_f64());
            let outcome =
                record_outcome(&pool, id, &worker, attempts, &result, &settings, started).await;
            let label = if panicked { "panicked" } else { outcome };
            metrics.job_runs.with_label_values(&[kind, label]).inc();
        };
        let job_id = id_of_started;
        let handle = ctx.spawn(
            tracing::Instrument::instrument(run, span)
                .into_actor(self)
                .map(move |(), act, ctx| {
                    act.running.remove(&job_id);
                    if let Some(n) = act.in_flight.get_mut(kind) {
                        *n = n.saturating_sub(1);
                    }
                    act.total_in_flight = act.total_in_flight.saturating_sub(1);
                    act.notify_if_drained();
                    act.poll(ctx);
                }),
        );
        self.running.insert(job_id, handle);
    }

    /// Keeps a dedicated connection LISTENing for enqueues and wakes the runner on each.
    /// Reconnects with backoff; a silent connection is probed every 30 s.
    fn spawn_listener(&self, ctx: &mut Context<Self>) -> SpawnHandle {
        let url = self.database_url.clone();
        let addr = ctx.address();
        ctx.spawn(wrap_future(async move {
            let mut delay = Duration::from_secs(1);
            loop {
                match AsyncPgConnection::establish(&url).await {
                    Ok(mut conn) => {
                        let listen = format!("LISTEN {NOTIFY_CHANNEL}");
                        if diesel::sql_query(listen).execute(&mut conn).await.is_ok() {
                            delay = Duration::from_secs(1);
                            // Catch up with whatever was enqueued while we were not listening.
                            addr.do_send(WakeUp);
                            loop {
                                let next = {
                                    let mut stream = std::pin::pin!(conn.notifications_stream());
                                    tokio::time::timeout(Duration::from_secs(30), stream.next())
                                        .await
                                };
                                match next {
                                    Ok(Some(Ok(_))) => addr.do_send(WakeUp),
                                    Ok(Some(Err(e))) => {
                                        tracing::warn!(error = %e, "job notifications failed");
                                        break;
                                    }
                                    Ok(None) => break,
                                    Err(_) => {
                                        let probe =
                                            diesel::sql_query("SELECT 1").execute(&mut conn);
                                        if probe.await.is_err() {
                                            break;
                                        }
                                    }
                                }
                            }
                        }
                        tracing::warn!(
                            "job notification listener lost its connection; reconnecting"
                        );
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "job notification listener cannot connect")
                    }
                }
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(30));
            }
        }))
    }
}

/// How long one attempt may run: 90 % of the lease, so that the outcome is written while this
/// worker still holds the job and no other worker has taken it over.
fn handler_time_limit(lease: Duration) -> Duration {
    lease.mul_f64(0.9)
}

/// Writes the outcome of an attempt. While the database is unavailable (a restart, a failover)
/// the write is retried with backoff (1 s doubling to 10 s) for as long as this worker's lease on
/// the job lasts (the lease began at `started` or before), so the job is settled as soon as the
/// database is back instead of waiting for the lease to expire; after that another worker may
/// have the job, and it is left to it.
async fn record_outcome(
    pool: &PgPool,
    id: crate::domain::JobId,
    worker: &str,
    attempts: i32,
    result: &Result<(), JobError>,
    settings: &JobSettings,
    started: Instant,
) -> &'static str {
    let retry_at = chrono::Utc::now()
        + jobs::backoff(
            attempts,
            settings.backoff_base,
            settings.backoff_max,
            rand::random::<f64>(),
        );
    let mut delay = Duration::from_secs(1);
    for attempt in 1u32.. {
        let write = async {
            let mut conn = pool.get().await.map_err(|e| e.to_string())?;
            match result {
                Ok(()) => jobs::complete(&mut conn, id, worker)
                    .await
                    .map(|held| if held { "done" } else { "lost" }),
                Err(error) => jobs::fail(&mut conn, id, worker, &error.message, error.permanent, retry_at)
                    .await
                    .map(|outcome| match outcome {
                        FailOutcome::Retry(at) => {
                            tracing::warn!(error = %error.message, retry_at = %at, "job attempt failed");
                            "retry"
                        }
                        FailOutcome::Dead => {
                            tracing::error!(error = %error.message, "job is dead: no attempts left");
                            "dead"
                        }
                        FailOutcome::Superseded => "superseded",
                        FailOutcome::Lost => "lost",
                    }),
            }
            .map_err(|e| e.to_string())
        };
        match write.await {
            Ok(label) => {
                if label == "lost" {
                    tracing::warn!("job lease was lost before it finished; another worker has it");
                }
                return label;
            }
            Err(e) => {
                let left = settings.lease.saturating_sub(started.elapsed());
                if left.is_zero() {
                    tracing::warn!(error = %e, attempt, "recording the job outcome failed; the lease is over, another worker takes the job");
                    break;
                }
                tracing::warn!(error = %e, attempt, "recording the job outcome failed; retrying");
                tokio::time::sleep(delay.min(left)).await;
                delay = (delay * 2).min(Duration::from_secs(10));
            }
        }
    }
    "lost"
}

fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic".to_owned()
    }
}

impl Actor for JobRunner {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        // A fresh start (or a restart) owns nothing that is still running: anything this worker
        // id holds in the table belongs to a previous incarnation and is given back.
        self.in_flight.clear();
        self.running.clear();
        self.total_in_flight = 0;
        self.claiming = true;
        let pool = self.pool.clone();
        let worker = Arc::clone(&self.worker_id);
        ctx.spawn(
            wrap_future::<_, Self>(async move {
                let mut conn = pool.get().await.map_err(|e| e.to_string())?;
                jobs::release_held(&mut conn, &worker)
                    .await
                    .map_err(|e| e.to_string())
            })
            .map(|result, act, ctx| {
                act.claiming = false;
                match result {
                    Ok(0) => {}
                    Ok(n) => tracing::warn!(jobs = n, "gave back jobs held by a previous run"),
                    Err(error) => tracing::warn!(%error, "could not release held jobs"),
                }
                act.notify_if_drained();
                act.poll(ctx);
            }),
        );
        ctx.run_interval(self.settings.poll_interval, |act, ctx| act.poll(ctx));
        self.listener = Some(self.spawn_listener(ctx));
        tracing::info!(worker = %self.worker_id, kinds = ?self.handlers.kinds(), "job runner started");
    }
}

impl Supervised for JobRunner {
    fn restarting(&mut self, _: &mut Context<Self>) {
        ActorRegistry::count_restart(&self.metrics, "job_runner");
    }
}

impl Handler<Ping> for JobRunner {
    type Result = Result<(), String>;
    fn handle(&mut self, _: Ping, _: &mut Context<Self>) -> Self::Result {
        Ok(())
    }
}

impl Handler<WakeUp> for JobRunner {
    type Result = ();
    fn handle(&mut self, _: WakeUp, ctx: &mut Context<Self>) {
        self.poll(ctx);
    }
}

impl Handler<Drain> for JobRunner {
    type Result = ResponseActFuture<Self, usize>;

    fn handle(&mut self, msg: Drain, ctx: &mut Context<Self>) -> Self::Result {
        self.draining = true;
        if let Some(listener) = self.listener.take() {
            ctx.cancel_future(listener);
        }
        let (tx, rx) = oneshot::channel();
        self.drain_waiters.push(tx);
        self.notify_if_drained();
        let running = self.total_in_flight;
        let pool = self.pool.clone();
        let worker = Arc::clone(&self.worker_id);
        Box::pin(
            wrap_future::<_, Self>(async move {
                if running > 0 {
                    tracing::info!(jobs = running, "waiting for running jobs to finish");
                }
                tokio::time::timeout(msg.timeout, rx).await.is_err()
            })
            .then(move |timed_out, act, ctx| {
                if timed_out {
                    // Stop what still runs, as the end of the process would, then hand the jobs
                    // back to the queue (their handlers are idempotent).
                    for (_, handle) in act.running.drain() {
                        ctx.cancel_future(handle);
                    }
                    act.in_flight.clear();
                    act.total_in_flight = 0;
                }
                wrap_future(async move {
                    if !timed_out {
                        return 0;
                    }
                    let released = match pool.get().await {
                        Ok(mut conn) => jobs::release_held(&mut conn, &worker).await.unwrap_or(0),
                        Err(_) => 0,
                    };
                    tracing::warn!(
                        jobs = released,
                        "jobs did not finish in time; put back in the queue"
                    );
                    released
                })
            }),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Noop;
    impl JobHandler for Noop {
        fn run(&self, _: Job) -> LocalBoxFuture<'static, Result<(), JobError>> {
            Box::pin(async { Ok(()) })
        }
    }

    #[test]
    fn claim_plan_respects_per_kind_and_global_limits() {
        let mut handlers = JobHandlers::new();
        handlers.register("provision", Noop, Some(4));
        handlers.register("notify", Noop, None);
        handlers.register("maintenance", Noop, None);
        let mut in_flight = HashMap::new();
        let plan = handlers.claim_plan(&in_flight, 8);
        assert_eq!(
            plan,
            vec![(vec!["provision"], 4), (vec!["maintenance", "notify"], 8)]
        );
        in_flight.insert("provision", 4);
        let plan = handlers.claim_plan(&in_flight, 3);
        assert_eq!(plan, vec![(vec!["maintenance", "notify"], 3)]);
        in_flight.insert("provision", 1);
        let plan = handlers.claim_plan(&in_flight, 2);
        assert_eq!(plan[0], (vec!["provision"], 2));
    }
}
