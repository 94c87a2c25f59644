//! Scheduler: periodic triggers for the other actors.
//!
//! It owns the `scheduled_tasks` table (name, interval, next run, last result), filled from the
//! configuration at start. On each tick, in one transaction, the replica that gets the advisory
//! lock enqueues a job for every due task and moves its next run forward, so a task runs once
//! per interval however many replicas there are. A task whose previous job is still pending or
//! running is skipped for that interval: two runs of one task never overlap.

use std::sync::Arc;
use std::time::Duration;

use actix::fut::wrap_future;
use actix::{Actor, ActorFutureExt, AsyncContext, Context, Handler, Supervised};
use chrono::Utc;
use diesel_async::AsyncConnection;

use crate::actors::messages::{Ping, StopScheduling};
use crate::actors::supervisor::ActorRegistry;
use crate::db::jobs::{self, NewJob};
use crate::db::{PgPool, scheduler as tasks};
use crate::domain::JobState;
use crate::metrics::Metrics;

/// A periodic task: every `interval`, enqueue `job`.
#[derive(Debug, Clone)]
pub struct TaskSpec {
    pub name: &'static str,
    pub interval: Duration,
    pub job: NewJob,
}

impl TaskSpec {
    /// A task whose job has the task's name as kind and an empty payload.
    pub fn new(name: &'static str, interval: Duration) -> Self {
        TaskSpec {
            name,
            interval,
            job: NewJob::new(name, serde_json::json!({})),
        }
    }
}

/// What one tick did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TickReport {
    pub leader: bool,
    pub enqueued: Vec<&'static str>,
    pub skipped: Vec<&'static str>,
}

pub struct Scheduler {
    pool: PgPool,
    tasks: Arc<Vec<TaskSpec>>,
    tick: Duration,
    default_max_attempts: i32,
    metrics: Arc<Metrics>,
    registered: bool,
    ticking: bool,
    stopped: bool,
}

impl Scheduler {
    pub fn new(
        pool: PgPool,
        tasks: Vec<TaskSpec>,
        tick: Duration,
        default_max_attempts: i32,
        metrics: Arc<Metrics>,
    ) -> Self {
        Scheduler {
            pool,
            tasks: Arc::new(tasks),
            tick,
            default_max_attempts,
            metrics,
            registered: false,
            ticking: false,
            stopped: false,
        }
    }

    fn on_tick(&mut self, ctx: &mut Context<Self>) {
        if self.ticking || self.stopped {
            return;
        }
        self.ticking = true;
        let pool = self.pool.clone();
        let tasks = Arc::clone(&self.tasks);
        let registered = self.registered;
        let max_attempts = self.default_max_attempts;
        let work = async move {
            if !registered {
                register(&pool, &tasks).await?;
            }
            tick(&pool, &tasks, max_attempts).await
        };
        ctx.spawn(wrap_future::<_, Self>(work).map(|result, act, _| {
            act.ticking = false;
            match result {
                Ok(report) => {
                    act.registered = true;
                    act.metrics.scheduler_leader.set(i64::from(report.leader));
                    for task in &report.enqueued {
                        act.metrics.scheduler_runs.with_label_values(&[task, "enqueued"]).inc();
                    }
                    for task in &report.skipped {
                        act.metrics.scheduler_runs.with_label_values(&[task, "skipped"]).inc();
                    }
                }
                Err(error) => tracing::warn!(error = %format!("{error:#}"), "scheduler tick failed; will retry"),
            }
        }));
    }
}

/// Writes the configured tasks into `scheduled_tasks`.
async fn register(pool: &PgPool, tasks: &[TaskSpec]) -> anyhow::Result<()> {
    let mut conn = pool.get().await?;
    for task in tasks {
        tasks::upsert(&mut conn, task.name, task.interval).await?;
    }
    tracing::info!(
        tasks = ?tasks.iter().map(|t| (t.name, crate::config::format_duration(t.interval))).collect::<Vec<_>>(),
        "scheduler started"
    );
    Ok(())
}

/// One tick: if this replica gets the lock, enqueue every due task (or skip it while its
/// previous run is unfinished) and move its next run forward — all in one transaction.
pub async fn tick(
    pool: &PgPool,
    tasks: &[TaskSpec],
    default_max_attempts: i32,
) -> anyhow::Result<TickReport> {
    let mut conn = pool.get().await?;
    let report = conn
        .transaction::<_, diesel::result::Error, _>(async move |conn| {
                let mut report = TickReport::default();
                if !tasks::try_lead(conn).await? {
                    return Ok(report);
                }
                report.leader = true;
                let names: Vec<&str> = tasks.iter().map(|t| t.name).collect();
                for due in tasks::due(conn, &names).await? {
                    let Some(spec) = tasks.iter().find(|t| t.name == due.name) else {
                        continue;
                    };
                    let now = Utc::now();
                    let interval = chrono::Duration::from_std(spec.interval)
                        .unwrap_or(chrono::Duration::MAX);
                    let mut next = due.next_run_at + interval;
                    if next <= now {
                        // Missed runs (downtime) are not caught up one by one.
                        next = now + interval;
                    }
                    let previous = match due.last_job_id {
                        Some(id) => jobs::find(conn, id).await?.map(|job| (id, job.state)),
                        None => None,
                    };
                    if let Some((id, state @ (JobState::Pending | JobState::Running))) = previous {
                        let reason = format!("skipped: the previous run (job {id}) is still {state}");
                        tasks::record_skipped(conn, spec.name, &reason, next).await?;
                        tracing::warn!(task = spec.name, job = %id, "previous run unfinished; skipping this one");
                        report.skipped.push(spec.name);
                        continue;
                    }
                    let job = spec.job.clone().dedup_key(format!("task:{}", spec.name));
                    match jobs::enqueue(conn, job, default_max_attempts).await? {
                        Some(id) => {
                            tasks::record_enqueued(conn, spec.name, id, next).await?;
                            report.enqueued.push(spec.name);
                        }
                        None => {
                            // A pending job of this task exists that the table did not point at
                            // (e.g. enqueued by hand): that one will do.
                            tasks::record_skipped(conn, spec.name, "skipped: a run is already pending", next).await?;
                            report.skipped.push(spec.name);
                        }
                    }
                }
                Ok(report)
        })
        .await?;
    Ok(report)
}

impl Actor for Scheduler {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.on_tick(ctx);
        ctx.run_interval(self.tick, |act, ctx| act.on_tick(ctx));
    }
}

impl Supervised for Scheduler {
    fn restarting(&mut self, _: &mut Context<Self>) {
        self.ticking = false;
        ActorRegistry::count_restart(&self.metrics, "scheduler");
    }
}

impl Handler<Ping> for Scheduler {
    type Result = Result<(), String>;
    fn handle(&mut self, _: Ping, _: &mut Context<Self>) -> Self::Result {
        Ok(())
    }
}

impl Handler<StopScheduling> for Scheduler {
    type Result = ();
    fn handle(&mut self, _: StopScheduling, _: &mut Context<Self>) {
        self.stopped = true;
        self.metrics.scheduler_leader.set(0);
    }
}
