//! The Scheduler: periodic tasks enqueue one job per interval however many replicas tick, and a
//! run is skipped while the previous one is unfinished.

use crate::support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::Actor;
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use support::db::TestDb;
use vpn_shop::actors::scheduler::{Scheduler, TaskSpec, TickReport, tick};
use vpn_shop::db::jobs::{self, NewJob};
use vpn_shop::db::models::{Job, ScheduledTask};
use vpn_shop::db::scheduler as tasks;
use vpn_shop::db::schema::{jobs as jobs_table, scheduled_tasks};
use vpn_shop::domain::{JobId, JobState};
use vpn_shop::metrics::Metrics;

const MAX_ATTEMPTS: i32 = 5;
const TASK: &str = "maintenance";
const HOUR: Duration = Duration::from_secs(3600);
const DEADLINE: Duration = Duration::from_secs(10);

fn hourly() -> Vec<TaskSpec> {
    vec![TaskSpec::new(TASK, HOUR)]
}

async fn task(conn: &mut AsyncPgConnection, name: &str) -> ScheduledTask {
    scheduled_tasks::table
        .find(name)
        .select(ScheduledTask::as_select())
        .first(conn)
        .await
        .unwrap_or_else(|e| panic!("loading task {name}: {e}"))
}

async fn jobs_of(conn: &mut AsyncPgConnection, kind: &str) -> Vec<Job> {
    jobs_table::table
        .filter(jobs_table::kind.eq(kind.to_owned()))
        .select(Job::as_select())
        .order(jobs_table::id)
        .load(conn)
        .await
        .expect("loading jobs")
}

/// Makes the task due now.
async fn make_due(conn: &mut AsyncPgConnection, name: &str) {
    diesel::update(scheduled_tasks::table.find(name))
        .set(scheduled_tasks::next_run_at.eq(diesel::dsl::now))
        .execute(conn)
        .await
        .expect("moving next_run_at");
}

/// `at` lies within `[from + offset, to + offset]`, give or take a second (the database's clock
/// and ours).
fn within(at: DateTime<Utc>, from: DateTime<Utc>, to: DateTime<Utc>, offset: Duration) -> bool {
    let offset = chrono::Duration::from_std(offset).unwrap();
    let slack = chrono::Duration::seconds(1);
    at >= from + offset - slack && at <= to + offset + slack
}

fn enqueued(report: &TickReport) -> bool {
    report.leader && !report.enqueued.is_empty()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_schedulers_enqueue_a_due_task_once() {
    let db = TestDb::new().await;
    let conn = &mut db.connect().await;
    let before = Utc::now();
    tasks::upsert(conn, TASK, HOUR).await.unwrap();
    let (replica_a, replica_b) = (db.pool(), db.pool());
    let specs = hourly();

    // 20 rounds at once, each a tick of both replicas.
    let rounds = futures_util::future::join_all((0..20).map(|_| async {
        tokio::join!(
            tick(&replica_a, &specs, MAX_ATTEMPTS),
            tick(&replica_b, &specs, MAX_ATTEMPTS)
        )
    }))
    .await;
    let after = Utc::now();

    let mut enqueueing = 0;
    for (round, (a, b)) in rounds.into_iter().enumerate() {
        let (a, b) = (a.expect("tick a"), b.expect("tick b"));
        assert!(
            !(enqueued(&a) && enqueued(&b)),
            "round {round}: both replicas enqueued: {a:?} / {b:?}"
        );
        for report in [a, b] {
            assert!(report.skipped.is_empty(), "{report:?}");
            if enqueued(&report) {
                assert_eq!(report.enqueued, vec![TASK]);
                enqueueing += 1;
            }
        }
    }
    assert_eq!(enqueueing, 1, "exactly one tick enqueued the task");

    let jobs = jobs_of(conn, TASK).await;
    assert_eq!(jobs.len(), 1, "{jobs:#?}");
    let job = &jobs[0];
    assert_eq!(job.state, JobState::Pending);
    assert_eq!(job.max_attempts, MAX_ATTEMPTS);
    assert_eq!(job.dedup_key.as_deref(), Some("task:maintenance"));

    let task = task(conn, TASK).await;
    assert_eq!(task.last_job_id, Some(job.id));
    assert_eq!(task.last_result.as_deref(), Some("enqueued"));
    assert!(task.last_run_at.is_some());
    assert!(
        within(task.next_run_at, before, after, HOUR),
        "next run about an hour ahead: {} (ticked between {before} and {after})",
        task.next_run_at
    );
}

#[actix_rt::test]
async fn two_scheduler_actors_enqueue_a_due_task_once() {
    let db = TestDb::new().await;
    let conn = &mut db.connect().await;
    let before = Utc::now();
    let metrics = Arc::new(Metrics::new().unwrap());
    // Each replica registers the task itself on its first tick.
    let _a = Scheduler::new(
        db.pool(),
        hourly(),
        Duration::from_millis(50),
        MAX_ATTEMPTS,
        Arc::clone(&metrics),
    )
    .start();
    let _b = Scheduler::new(
        db.pool(),
        hourly(),
        Duration::from_millis(50),
        MAX_ATTEMPTS,
        Arc::new(Metrics::new().unwrap()),
    )
    .start();

    let started = Instant::now();
    while jobs_of(conn, TASK).await.is_empty() {
        assert!(started.elapsed() < DEADLINE, "the task was never enqueued");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Let both replicas go on ticking (some 20 ticks each).
    tokio::time::sleep(Duration::from_secs(1)).await;

    let jobs = jobs_of(conn, TASK).await;
    assert_eq!(jobs.len(), 1, "{jobs:#?}");
    let task = task(conn, TASK).await;
    assert_eq!(task.last_job_id, Some(jobs[0].id));
    assert_eq!(task.interval_secs, 3600);
    assert!(within(task.next_run_at, before, Utc::now(), HOUR));
}

#[tokio::test]
async fn task_is_skipped_while_its_previous_job_is_unfinished() {
    let db = TestDb::new().await;
    let pool = db.pool();
    let conn = &mut db.connect().await;
    let specs = hourly();
    tasks::upsert(conn, TASK, HOUR).await.unwrap();

    let report = tick(&pool, &specs, MAX_ATTEMPTS).await.unwrap();
    assert_eq!(
        report,
        TickReport {
            leader: true,
            enqueued: vec![TASK],
            skipped: vec![]
        }
    );
    let first = jobs_of(conn, TASK).await.remove(0).id;

    // Due again while the first run is still pending: skipped, and the next run moves on.
    make_due(conn, TASK).await;
    let before = Utc::now();
    let report = tick(&pool, &specs, MAX_ATTEMPTS).await.unwrap();
    assert_eq!(report.skipped, vec![TASK]);
    assert!(report.enqueued.is_empty());
    let task_now = task(conn, TASK).await;
    let result = task_now.last_result.clone().unwrap_or_default();
    assert!(result.starts_with("skipped"), "{result}");
    assert!(result.contains("pending"), "{result}");
    assert_eq!(
        task_now.last_job_id,
        Some(first),
        "still points at the unfinished run"
    );
    assert!(within(task_now.next_run_at, before, Utc::now(), HOUR));
    assert_eq!(jobs_of(conn, TASK).await.len(), 1);

    // Running counts as unfinished too.
    let claimed = jobs::claim(conn, "w1", &[TASK], 10, HOUR).await.unwrap();
    assert_eq!(claimed.len(), 1);
    make_due(conn, TASK).await;
    let report = tick(&pool, &specs, MAX_ATTEMPTS).await.unwrap();
    assert_eq!(report.skipped, vec![TASK]);
    let result = task(conn, TASK).await.last_result.unwrap_or_default();
    assert!(
        result.starts_with("skipped") && result.contains("running"),
        "{result}"
    );
    assert_eq!(jobs_of(conn, TASK).await.len(), 1);

    // Not due (its next run is an hour away): nothing happens at all.
    let report = tick(&pool, &specs, MAX_ATTEMPTS).await.unwrap();
    assert_eq!(
        report,
        TickReport {
            leader: true,
            ..TickReport::default()
        }
    );

    // Once the first run is done, the next due tick enqueues the second one.
    assert!(jobs::complete(conn, first, "w1").await.unwrap());
    make_due(conn, TASK).await;
    let report = tick(&pool, &specs, MAX_ATTEMPTS).await.unwrap();
    assert_eq!(report.enqueued, vec![TASK]);
    assert!(report.skipped.is_empty());
    let jobs = jobs_of(conn, TASK).await;
    assert_eq!(jobs.len(), 2);
    assert_eq!(jobs[0].state, JobState::Done);
    assert_eq!(jobs[1].state, JobState::Pending);
    let task_now = task(conn, TASK).await;
    assert_eq!(task_now.last_job_id, Some(jobs[1].id));
    assert_eq!(task_now.last_result.as_deref(), Some("enqueued"));
}

#[tokio::test]
async fn dead_previous_job_does_not_block_the_next_run() {
    let db = TestDb::new().await;
    let pool = db.pool();
    let conn = &mut db.connect().await;
    let specs = hourly();
    tasks::upsert(conn, TASK, HOUR).await.unwrap();
    tick(&pool, &specs, MAX_ATTEMPTS).await.unwrap();
    let first = jobs_of(conn, TASK).await.remove(0).id;
    jobs::claim(conn, "w1", &[TASK], 1, HOUR).await.unwrap();
    jobs::fail(conn, first, "w1", "broken", true, Utc::now())
        .await
        .unwrap();

    make_due(conn, TASK).await;
    let report = tick(&pool, &specs, MAX_ATTEMPTS).await.unwrap();
    assert_eq!(report.enqueued, vec![TASK]);
    let jobs = jobs_of(conn, TASK).await;
    assert_eq!(
        jobs.iter().map(|j| j.state).collect::<Vec<_>>(),
        vec![JobState::Dead, JobState::Pending]
    );
}

#[tokio::test]
async fn pending_job_enqueued_by_hand_stands_in_for_the_run() {
    let db = TestDb::new().await;
    let pool = db.pool();
    let conn = &mut db.connect().await;
    tasks::upsert(conn, TASK, HOUR).await.unwrap();
    let by_hand: JobId = conn
        .transaction::<_, diesel::result::Error, _>(async |conn| {
            jobs::enqueue(
                conn,
                NewJob::new(TASK, serde_json::json!({})).dedup_key("task:maintenance"),
                MAX_ATTEMPTS,
            )
            .await
        })
        .await
        .unwrap()
        .unwrap();

    let report = tick(&pool, &hourly(), MAX_ATTEMPTS).await.unwrap();
    assert_eq!(report.skipped, vec![TASK]);
    assert!(report.enqueued.is_empty());
    let jobs = jobs_of(conn, TASK).await;
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0].id, by_hand);
    let task = task(conn, TASK).await;
    assert!(
        task.last_result
            .as_deref()
            .is_some_and(|r| r.starts_with("skipped")),
        "{task:?}"
    );
    assert!(
        task.next_run_at > Utc::now(),
        "the run still counts as done"
    );
}

#[tokio::test]
async fn missed_runs_are_not_caught_up_one_by_one() {
    let db = TestDb::new().await;
    let pool = db.pool();
    let conn = &mut db.connect().await;
    let specs = hourly();
    tasks::upsert(conn, TASK, HOUR).await.unwrap();
    // The replicas were down for five hours.
    diesel::update(scheduled_tasks::table.find(TASK))
        .set(scheduled_tasks::next_run_at.eq(Utc::now() - chrono::Duration::hours(5)))
        .execute(conn)
        .await
        .unwrap();

    let before = Utc::now();
    let report = tick(&pool, &specs, MAX_ATTEMPTS).await.unwrap();
    assert_eq!(report.enqueued, vec![TASK]);
    let task = task(conn, TASK).await;
    assert!(
        within(task.next_run_at, before, Utc::now(), HOUR),
        "next run an hour from now, not in the past: {}",
        task.next_run_at
    );
    let report = tick(&pool, &specs, MAX_ATTEMPTS).await.unwrap();
    assert!(report.enqueued.is_empty() && report.skipped.is_empty());
    assert_eq!(jobs_of(conn, TASK).await.len(), 1);
}

#[tokio::test]
async fn shortened_interval_brings_the_next_run_forward() {
    let db = TestDb::new().await;
    let pool = db.pool();
    let conn = &mut db.connect().await;

    // A new task is due at once.
    tasks::upsert(conn, TASK, HOUR).await.unwrap();
    let new = task(conn, TASK).await;
    assert!(new.next_run_at <= Utc::now() + chrono::Duration::seconds(1));
    assert_eq!(new.interval_secs, 3600);
    assert!(new.enabled);
    tick(&pool, &hourly(), MAX_ATTEMPTS).await.unwrap();
    assert!(task(conn, TASK).await.next_run_at > Utc::now() + chrono::Duration::minutes(59));

    // The configuration now says every 10 minutes: the next run is at most 10 minutes away.
    let ten_minutes = Duration::from_secs(600);
    let before = Utc::now();
    tasks::upsert(conn, TASK, ten_minutes).await.unwrap();
    let shortened = task(conn, TASK).await;
    assert_eq!(shortened.interval_secs, 600);
    assert!(
        within(shortened.next_run_at, before, Utc::now(), ten_minutes),
        "{}",
        shortened.next_run_at
    );

    // A longer interval does not push an already planned run back.
    tasks::upsert(conn, TASK, 2 * HOUR).await.unwrap();
    let lengthened = task(conn, TASK).await;
    assert_eq!(lengthened.interval_secs, 7200);
    assert_eq!(lengthened.next_run_at, shortened.next_run_at);

    let listed = tasks::list(conn).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].name, TASK);
}
