//! The durable job queue (`db::jobs`) and the `JobRunner` actor that drains it, against a real
//! PostgreSQL database.

use crate::support;

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix::{Actor, Addr};
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use futures_util::StreamExt;
use futures_util::future::LocalBoxFuture;
use support::db::TestDb;
use vpn_shop::actors::job_runner::{JobError, JobHandler, JobHandlers, JobRunner};
use vpn_shop::actors::messages::{Drain, Ping};
use vpn_shop::config::JobSettings;
use vpn_shop::db::jobs::{self, FailOutcome, NOTIFY_CHANNEL, NewJob, RetryError};
use vpn_shop::db::models::Job;
use vpn_shop::db::schema::{jobs as jobs_table, scheduled_tasks};
use vpn_shop::domain::{JobId, JobState};
use vpn_shop::metrics::Metrics;

const MAX_ATTEMPTS: i32 = 5;
const LONG_LEASE: Duration = Duration::from_secs(600);
/// How long a test waits for something that should happen at once before it gives up.
const DEADLINE: Duration = Duration::from_secs(10);

// ---------------------------------------------------------------------------------------------
// Helpers

async fn enqueue(conn: &mut AsyncPgConnection, job: NewJob) -> Option<JobId> {
    conn.transaction::<_, diesel::result::Error, _>(async |conn| {
        jobs::enqueue(conn, job, MAX_ATTEMPTS).await
    })
    .await
    .expect("enqueueing a job")
}

async fn enqueue_one(conn: &mut AsyncPgConnection, kind: &str) -> JobId {
    enqueue(conn, NewJob::new(kind, serde_json::json!({})))
        .await
        .expect("a job without dedup key is always enqueued")
}

async fn job(conn: &mut AsyncPgConnection, id: JobId) -> Job {
    jobs::find(conn, id)
        .await
        .expect("loading a job")
        .unwrap_or_else(|| panic!("job {id} does not exist"))
}

async fn job_count(conn: &mut AsyncPgConnection) -> i64 {
    jobs_table::table
        .count()
        .get_result(conn)
        .await
        .expect("counting jobs")
}

/// Makes a pending job due now (instead of waiting for its backoff).
async fn make_due(conn: &mut AsyncPgConnection, id: JobId) {
    diesel::update(jobs_table::table.find(id))
        .set(jobs_table::run_at.eq(diesel::dsl::now))
        .execute(conn)
        .await
        .expect("moving run_at");
}

fn ids(jobs: &[Job]) -> Vec<JobId> {
    jobs.iter().map(|j| j.id).collect()
}

fn close_to(a: DateTime<Utc>, b: DateTime<Utc>) -> bool {
    (a - b).num_milliseconds().abs() <= 1
}

/// Polls the jobs until every one satisfies `done`, or fails the test after [`DEADLINE`].
async fn wait_for_jobs(
    conn: &mut AsyncPgConnection,
    ids: &[JobId],
    what: &str,
    done: impl Fn(&Job) -> bool,
) -> Vec<Job> {
    let started = Instant::now();
    loop {
        let mut jobs = Vec::with_capacity(ids.len());
        for &id in ids {
            jobs.push(job(conn, id).await);
        }
        if jobs.iter().all(&done) {
            return jobs;
        }
        if started.elapsed() > DEADLINE {
            panic!("timed out waiting until {what}: {jobs:#?}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until `condition` holds, or fails the test after [`DEADLINE`].
async fn wait_until(what: &str, condition: impl Fn() -> bool) {
    let started = Instant::now();
    while !condition() {
        assert!(
            started.elapsed() < DEADLINE,
            "timed out waiting until {what}"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

fn settings() -> JobSettings {
    JobSettings {
        concurrency: 8,
        max_attempts: MAX_ATTEMPTS,
        poll_interval: Duration::from_millis(200),
        lease: Duration::from_secs(30),
        backoff_base: Duration::from_millis(100),
        backoff_max: Duration::from_secs(1),
        retention: Duration::from_secs(86_400),
    }
}

type HandlerFuture = LocalBoxFuture<'static, Result<(), JobError>>;

/// A handler made of a closure.
struct FnHandler<F>(F);

impl<F> JobHandler for FnHandler<F>
where
    F: Fn(Job) -> HandlerFuture + Send + Sync + 'static,
{
    fn run(&self, job: Job) -> HandlerFuture {
        (self.0)(job)
    }
}

type Seen = Arc<Mutex<Vec<JobId>>>;

/// A handler that records the ids of the jobs it ran and succeeds.
fn recorder(seen: &Seen) -> impl JobHandler {
    let seen = Arc::clone(seen);
    FnHandler(move |job: Job| -> HandlerFuture {
        seen.lock().unwrap().push(job.id);
        Box::pin(async { Ok(()) })
    })
}

/// `AtomicUsize::load`, spelled out: diesel's `RunQueryDsl::load` is implemented for every type.
fn value(counter: &AtomicUsize) -> usize {
    AtomicUsize::load(counter, Ordering::SeqCst)
}

fn seen(seen: &Seen) -> Vec<JobId> {
    seen.lock().unwrap().clone()
}

fn start_runner(db: &TestDb, settings: JobSettings, handlers: JobHandlers) -> Addr<JobRunner> {
    JobRunner::new(
        db.pool(),
        db.url.clone(),
        settings,
        Arc::new(handlers),
        "worker-a",
        Arc::new(Metrics::new().expect("metrics")),
    )
    .start()
}

/// Runs `f` and fails the test if it takes longer than [`DEADLINE`].
async fn within_deadline<T>(what: &str, f: impl Future<Output = T>) -> T {
    tokio::time::timeout(DEADLINE, f)
        .await
        .unwrap_or_else(|_| panic!("timed out: {what}"))
}

// ---------------------------------------------------------------------------------------------
// The queue

#[tokio::test]
async fn enqueue_in_a_rolled_back_transaction_leaves_no_job() {
    let db = TestDb::new().await;
    let conn = &mut db.connect().await;

    let result = conn
        .transaction::<(), diesel::result::Error, _>(async |conn| {
            let id =
                jobs::enqueue(conn, NewJob::new("mail.send", "rolled back"), MAX_ATTEMPTS).await?;
            assert!(id.is_some(), "the job exists inside the transaction");
            Err(diesel::result::Error::RollbackTransaction)
        })
        .await;
    assert!(matches!(
        result,
        Err(diesel::result::Error::RollbackTransaction)
    ));
    assert_eq!(
        job_count(conn).await,
        0,
        "a rolled-back enqueue leaves no job"
    );

    let id = enqueue(conn, NewJob::new("mail.send", "committed"))
        .await
        .expect("enqueued");
    assert_eq!(
        job_count(conn).await,
        1,
        "a committed enqueue leaves one job"
    );
    let job = job(conn, id).await;
    assert_eq!(job.state, JobState::Pending);
    assert_eq!(job.kind, "mail.send");
    assert_eq!(job.payload, serde_json::json!("committed"));
    assert_eq!(job.attempts, 0);
    assert_eq!(job.max_attempts, MAX_ATTEMPTS);
    assert!(job.locked_by.is_none() && job.finished_at.is_none());
}

#[tokio::test]
async fn enqueue_notifies_listeners_only_when_committed() {
    let db = TestDb::new().await;
    let listener = &mut db.connect().await;
    diesel::sql_query(format!("LISTEN {NOTIFY_CHANNEL}"))
        .execute(listener)
        .await
        .expect("LISTEN");
    let conn = &mut db.connect().await;

    let _ = conn
        .transaction::<(), diesel::result::Error, _>(async |conn| {
            jobs::enqueue(conn, NewJob::new("rolled.back", ()), MAX_ATTEMPTS).await?;
            Err(diesel::result::Error::RollbackTransaction)
        })
        .await;
    enqueue_one(conn, "committed").await;

    // Notifications arrive in commit order: the first one must be the committed job's.
    let first = within_deadline("a notification", async {
        let mut stream = std::pin::pin!(listener.notifications_stream());
        stream.next().await
    })
    .await
    .expect("the notification stream ended")
    .expect("receiving a notification");
    assert_eq!(first.channel, NOTIFY_CHANNEL);
    assert_eq!(first.payload, "committed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workers_never_claim_the_same_job() {
    const JOBS: usize = 300;
    const WORKERS: usize = 3;
    let db = TestDb::new().await;
    let conn = &mut db.connect().await;
    let mut enqueued: Vec<JobId> = conn
        .transaction::<_, diesel::result::Error, _>(async |conn| {
            let mut ids = Vec::new();
            for i in 0..JOBS {
                let id = jobs::enqueue(conn, NewJob::new("bulk", i), MAX_ATTEMPTS).await?;
                ids.push(id.expect("no dedup key"));
            }
            Ok(ids)
        })
        .await
        .expect("enqueueing");

    // Every worker has its own connection. The barrier makes them all hold a batch at the same
    // time once, so they really compete instead of one draining the queue alone.
    let barrier = Arc::new(tokio::sync::Barrier::new(WORKERS));
    let mut tasks = Vec::new();
    for w in 0..WORKERS {
        let url = db.url.clone();
        let barrier = Arc::clone(&barrier);
        tasks.push(tokio::spawn(async move {
            let worker = format!("worker-{w}");
            let mut conn = AsyncPgConnection::establish(&url)
                .await
                .expect("connecting");
            let mut claimed = Vec::new();
            let mut first = true;
            loop {
                let batch = jobs::claim(&mut conn, &worker, &["bulk"], 7, LONG_LEASE)
                    .await
                    .expect("claiming");
                if first {
                    assert!(!batch.is_empty(), "{worker}: the first batch is not empty");
                    barrier.wait().await;
                    first = false;
                }
                if batch.is_empty() {
                    return claimed;
                }
                assert!(batch.len() <= 7);
                for job in batch {
                    assert_eq!(job.state, JobState::Running);
                    assert_eq!(job.locked_by.as_deref(), Some(worker.as_str()));
                    assert!(
                        jobs::complete(&mut conn, job.id, &worker)
                            .await
                            .expect("completing"),
                        "{worker} still holds job {}",
                        job.id
                    );
                    claimed.push(job.id);
                }
            }
        }));
    }
    let mut per_worker = Vec::new();
    for task in tasks {
        per_worker.push(task.await.expect("a worker panicked"));
    }

    let mut claims: HashMap<JobId, usize> = HashMap::new();
    for id in per_worker.iter().flatten() {
        *claims.entry(*id).or_default() += 1;
    }
    let twice: Vec<_> = claims.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "jobs claimed more than once: {twice:?}");
    let mut all: Vec<JobId> = claims.into_keys().collect();
    all.sort();
    enqueued.sort();
    assert_eq!(all, enqueued, "every job was claimed");
    assert!(
        per_worker.iter().all(|claimed| !claimed.is_empty()),
        "every worker got work"
    );

    let (rows, total) = jobs::list(conn, None, Some("bulk"), 1, 1000)
        .await
        .expect("listing");
    assert_eq!(total, JOBS as i64);
    for job in rows {
        assert_eq!(job.state, JobState::Done, "{job:?}");
        assert_eq!(job.attempts, 1, "claimed once: {job:?}");
        assert!(job.finished_at.is_some() && job.locked_by.is_none());
    }
}

#[tokio::test]
async fn failed_attempt_goes_back_to_pending_with_growing_backoff() {
    let base = Duration::from_secs(5);
    let max = Duration::from_secs(60);
    // The pure schedule: doubling from `base`, capped at `max`, jitter scales into [½, 1].
    assert_eq!(jobs::backoff(1, base, max, 1.0), Duration::from_secs(5));
    assert_eq!(jobs::backoff(2, base, max, 1.0), Duration::from_secs(10));
    assert_eq!(jobs::backoff(3, base, max, 1.0), Duration::from_secs(20));
    assert_eq!(jobs::backoff(4, base, max, 1.0), Duration::from_secs(40));
    assert_eq!(jobs::backoff(5, base, max, 1.0), max);
    assert_eq!(jobs::backoff(50, base, max, 1.0), max);
    assert_eq!(jobs::backoff(2, base, max, 0.0), Duration::from_secs(5));
    for attempt in 1..10 {
        let d = jobs::backoff(attempt, base, max, 0.37);
        let full = jobs::backoff(attempt, base, max, 1.0);
        assert!(d >= full / 2 && d <= full, "attempt {attempt}: {d:?}");
        assert!(jobs::backoff(attempt + 1, base, max, 1.0) >= full);
    }

    let db = TestDb::new().await;
    let conn = &mut db.connect().await;
    let id = enqueue_one(conn, "panel.sync").await;

    let mut previous_delay = chrono::Duration::zero();
    for attempt in 1..=3 {
        let claimed = jobs::claim(conn, "w1", &["panel.sync"], 10, LONG_LEASE)
            .await
            .unwrap();
        assert_eq!(ids(&claimed), vec![id], "attempt {attempt} claims the job");
        assert_eq!(claimed[0].attempts, attempt);

        let before = Utc::now();
        let retry_at = before + jobs::backoff(attempt, base, max, 1.0);
        let error = format!("panel said 502 (attempt {attempt})");
        let outcome = jobs::fail(conn, id, "w1", &error, false, retry_at)
            .await
            .unwrap();
        let FailOutcome::Retry(at) = outcome else {
            panic!("attempt {attempt}: expected a retry, got {outcome:?}");
        };
        assert!(close_to(at, retry_at), "{at} vs {retry_at}");

        let job = job(conn, id).await;
        assert_eq!(job.state, JobState::Pending);
        assert_eq!(job.attempts, attempt);
        assert_eq!(job.last_error.as_deref(), Some(error.as_str()));
        assert!(job.locked_by.is_none() && job.locked_at.is_none());
        assert!(job.finished_at.is_none());
        assert!(close_to(job.run_at, retry_at));
        let delay = job.run_at - before;
        assert!(
            delay > previous_delay,
            "the delay grows: {delay} after {previous_delay}"
        );
        previous_delay = delay;

        // Not due yet: nobody can claim it before `run_at`.
        let early = jobs::claim(conn, "w2", &["panel.sync"], 10, LONG_LEASE)
            .await
            .unwrap();
        assert!(early.is_empty(), "claimed before its run_at: {early:?}");

        make_due(conn, id).await;
    }
}

#[tokio::test]
async fn job_is_dead_after_max_attempts_or_a_permanent_failure() {
    let db = TestDb::new().await;
    let conn = &mut db.connect().await;
    let id = enqueue(
        conn,
        NewJob::new("panel.sync", serde_json::json!({"user": 1})).max_attempts(3),
    )
    .await
    .unwrap();

    for attempt in 1..=3 {
        let claimed = jobs::claim(conn, "w1", &["panel.sync"], 10, LONG_LEASE)
            .await
            .unwrap();
        assert_eq!(ids(&claimed), vec![id], "attempt {attempt}");
        let outcome = jobs::fail(conn, id, "w1", "boom", false, Utc::now())
            .await
            .unwrap();
        if attempt < 3 {
            assert!(matches!(outcome, FailOutcome::Retry(_)), "{outcome:?}");
            assert_eq!(job(conn, id).await.state, JobState::Pending);
        } else {
            assert_eq!(outcome, FailOutcome::Dead);
        }
    }
    let dead = job(conn, id).await;
    assert_eq!(dead.state, JobState::Dead);
    assert_eq!(dead.attempts, 3);
    assert_eq!(dead.last_error.as_deref(), Some("boom"));
    assert!(dead.finished_at.is_some(), "a dead job is finished");
    assert!(dead.locked_by.is_none() && dead.locked_at.is_none());
    let claimed = jobs::claim(conn, "w1", &["panel.sync"], 10, LONG_LEASE)
        .await
        .unwrap();
    assert!(claimed.is_empty(), "a dead job is never claimed");

    // A permanent failure does not wait for the attempts to run out.
    let permanent = enqueue_one(conn, "mail.send").await;
    let claimed = jobs::claim(conn, "w1", &["mail.send"], 10, LONG_LEASE)
        .await
        .unwrap();
    assert_eq!(ids(&claimed), vec![permanent]);
    let outcome = jobs::fail(
        conn,
        permanent,
        "w1",
        "invalid address",
        true,
        Utc::now() + chrono::Duration::hours(1),
    )
    .await
    .unwrap();
    assert_eq!(outcome, FailOutcome::Dead);
    let job = job(conn, permanent).await;
    assert_eq!(job.state, JobState::Dead);
    assert_eq!(job.attempts, 1);
    assert!(job.finished_at.is_some());
    assert_eq!(job.last_error.as_deref(), Some("invalid address"));

    let counts = jobs::counts(conn).await.unwrap();
    let mut counts: Vec<_> = counts
        .into_iter()
        .map(|c| (c.kind, c.state, c.count))
        .collect();
    counts.sort();
    assert_eq!(
        counts,
        vec![
            ("mail.send".into(), "dead".into(), 1),
            ("panel.sync".into(), "dead".into(), 1)
        ]
    );
}

#[tokio::test]
async fn retry_dead_revives_only_dead_jobs() {
    let db = TestDb::new().await;
    let conn = &mut db.connect().await;
    let id = enqueue_one(conn, "panel.sync").await;
    jobs::claim(conn, "w1", &["panel.sync"], 1, LONG_LEASE)
        .await
        .unwrap();
    assert_eq!(
        jobs::fail(conn, id, "w1", "gone", true, Utc::now())
            .await
            .unwrap(),
        FailOutcome::Dead
    );

    let revived = jobs::retry_dead(conn, id)
        .await
        .expect("retrying a dead job");
    assert_eq!(revived.id, id);
    assert_eq!(revived.state, JobState::Pending);
    assert_eq!(revived.attempts, 0);
    assert!(revived.finished_at.is_none());
    let stored = job(conn, id).await;
    assert_eq!(stored.state, JobState::Pending);
    assert_eq!(stored.attempts, 0);
    let claimed = jobs::claim(conn, "w1", &["panel.sync"], 1, LONG_LEASE)
        .await
        .unwrap();
    assert_eq!(ids(&claimed), vec![id], "a revived job is due at once");
    assert_eq!(claimed[0].attempts, 1, "with a fresh set of attempts");

    // Running (and pending, done) jobs are not dead: refused, and left as they are.
    match jobs::retry_dead(conn, id).await {
        Err(RetryError::NotDead(got, JobState::Running)) => assert_eq!(got, id),
        other => panic!("expected NotDead(running), got {other:?}"),
    }
    assert_eq!(job(conn, id).await.state, JobState::Running);
    let pending = enqueue_one(conn, "mail.send").await;
    assert!(matches!(
        jobs::retry_dead(conn, pending).await,
        Err(RetryError::NotDead(_, JobState::Pending))
    ));

    match jobs::retry_dead(conn, JobId(987_654)).await {
        Err(RetryError::NotFound(got)) => assert_eq!(got, JobId(987_654)),
        other => panic!("expected NotFound, got {other:?}"),
    }
}

#[tokio::test]
async fn retry_dead_refuses_while_an_identical_job_is_pending() {
    let db = TestDb::new().await;
    let conn = &mut db.connect().await;
    let key = "sync:user:7";
    let dead = enqueue(conn, NewJob::new("panel.sync", 7).dedup_key(key))
        .await
        .unwrap();
    jobs::claim(conn, "w1", &["panel.sync"], 1, LONG_LEASE)
        .await
        .unwrap();
    jobs::fail(conn, dead, "w1", "gone", true, Utc::now())
        .await
        .unwrap();
    let twin = enqueue(conn, NewJob::new("panel.sync", 7).dedup_key(key))
        .await
        .expect("the dead job does not block a new one");

    assert!(matches!(
        jobs::retry_dead(conn, dead).await,
        Err(RetryError::TwinPending)
    ));
    assert_eq!(job(conn, dead).await.state, JobState::Dead);
    assert_eq!(job(conn, twin).await.state, JobState::Pending);
}

#[tokio::test]
async fn dedup_key_allows_one_pending_job_per_key() {
    let db = TestDb::new().await;
    let conn = &mut db.connect().await;
    let key = "sync:user:42";
    let first = enqueue(conn, NewJob::new("panel.sync", 42).dedup_key(key))
        .await
        .expect("the first job is enqueued");
    assert_eq!(
        enqueue(conn, NewJob::new("panel.sync", 42).dedup_key(key)).await,
        None,
        "a second pending job with the same key is a no-op"
    );
    assert_eq!(job_count(conn).await, 1);
    // Another key, or no key, is not affected.
    enqueue(
        conn,
        NewJob::new("panel.sync", 43).dedup_key("sync:user:43"),
    )
    .await
    .expect("another key");
    enqueue_one(conn, "panel.sync").await;
    assert_eq!(job_count(conn).await, 3);

    // Once the first one runs, the work it does may already be stale: a new one can be queued.
    let claimed = jobs::claim(conn, "w1", &["panel.sync"], 1, LONG_LEASE)
        .await
        .unwrap();
    assert_eq!(ids(&claimed), vec![first]);
    let second = enqueue(conn, NewJob::new("panel.sync", 42).dedup_key(key))
        .await
        .expect("a job with the key of a running one is enqueued");
    assert_ne!(second, first);
    assert_eq!(
        enqueue(conn, NewJob::new("panel.sync", 42).dedup_key(key)).await,
        None,
        "but only one pending"
    );
    assert_eq!(job(conn, first).await.state, JobState::Running);
    assert_eq!(job(conn, second).await.state, JobState::Pending);
    assert_eq!(job_count(conn).await, 4);

    // Finishing the running one leaves the pending twin alone.
    assert!(jobs::complete(conn, first, "w1").await.unwrap());
    assert_eq!(job(conn, second).await.state, JobState::Pending);
}

#[tokio::test]
async fn failing_job_with_a_pending_twin_is_superseded() {
    let db = TestDb::new().await;
    let conn = &mut db.connect().await;
    let key = "notify:user:9";
    let running = enqueue(conn, NewJob::new("mail.send", 9).dedup_key(key))
        .await
        .unwrap();
    jobs::claim(conn, "w1", &["mail.send"], 1, LONG_LEASE)
        .await
        .unwrap();
    let twin = enqueue(conn, NewJob::new("mail.send", 9).dedup_key(key))
        .await
        .expect("twin enqueued while the first runs");

    let outcome = jobs::fail(
        conn,
        running,
        "w1",
        "smtp timeout",
        false,
        Utc::now() + chrono::Duration::seconds(5),
    )
    .await
    .expect("failing must not violate the pending-key index");
    assert_eq!(outcome, FailOutcome::Superseded);
    let closed = job(conn, running).await;
    assert_eq!(closed.state, JobState::Done);
    assert!(closed.finished_at.is_some());
    assert!(closed.locked_by.is_none());
    assert_eq!(closed.last_error.as_deref(), Some("smtp timeout"));
    let twin = job(conn, twin).await;
    assert_eq!(twin.state, JobState::Pending);
    assert_eq!(twin.attempts, 0);

    // Without a twin, the same failure retries; with a twin, a last attempt is still dead.
    let key = "notify:user:10";
    let last = enqueue(
        conn,
        NewJob::new("mail.send", 10).dedup_key(key).max_attempts(1),
    )
    .await
    .unwrap();
    let claimed = jobs::claim(conn, "w1", &["mail.send"], 10, LONG_LEASE)
        .await
        .unwrap();
    assert!(ids(&claimed).contains(&last));
    enqueue(conn, NewJob::new("mail.send", 10).dedup_key(key))
        .await
        .unwrap();
    assert_eq!(
        jobs::fail(conn, last, "w1", "smtp timeout", false, Utc::now())
            .await
            .unwrap(),
        FailOutcome::Dead
    );
}

#[tokio::test]
async fn expired_lease_is_taken_over_by_another_worker() {
    let db = TestDb::new().await;
    let conn_a = &mut db.connect().await;
    let conn_b = &mut db.connect().await;
    let id = enqueue_one(conn_a, "panel.sync").await;
    let lease = Duration::from_millis(100);

    let claimed = jobs::claim(conn_a, "worker-a", &["panel.sync"], 10, lease)
        .await
        .unwrap();
    assert_eq!(ids(&claimed), vec![id]);
    // A lease that has not expired protects the job.
    let none = jobs::claim(conn_b, "worker-b", &["panel.sync"], 10, LONG_LEASE)
        .await
        .unwrap();
    assert!(none.is_empty(), "{none:?}");

    // worker-a went silent: once its lease is over, worker-b takes the job over.
    let started = Instant::now();
    let taken = loop {
        let batch = jobs::claim(conn_b, "worker-b", &["panel.sync"], 10, lease)
            .await
            .unwrap();
        if !batch.is_empty() {
            break batch;
        }
        assert!(
            started.elapsed() < DEADLINE,
            "the expired lease was never taken over"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(ids(&taken), vec![id]);
    assert_eq!(taken[0].attempts, 2, "the lost attempt counts");
    assert_eq!(taken[0].locked_by.as_deref(), Some("worker-b"));

    // worker-a wakes up: it no longer holds the job and cannot finish or fail it.
    assert!(!jobs::complete(conn_a, id, "worker-a").await.unwrap());
    assert_eq!(
        jobs::fail(conn_a, id, "worker-a", "late", false, Utc::now())
            .await
            .unwrap(),
        FailOutcome::Lost
    );
    let job_now = job(conn_a, id).await;
    assert_eq!(job_now.state, JobState::Running);
    assert_eq!(job_now.locked_by.as_deref(), Some("worker-b"));
    assert!(job_now.last_error.is_none());

    assert!(jobs::complete(conn_b, id, "worker-b").await.unwrap());
    assert_eq!(job(conn_b, id).await.state, JobState::Done);
}

#[tokio::test]
async fn lost_last_attempt_is_buried_as_dead() {
    let db = TestDb::new().await;
    let conn = &mut db.connect().await;
    let last = enqueue(conn, NewJob::new("panel.sync", 1).max_attempts(1))
        .await
        .unwrap();
    let spare = enqueue(conn, NewJob::new("panel.sync", 2).max_attempts(2))
        .await
        .unwrap();
    let lease = Duration::from_millis(100);
    let claimed = jobs::claim(conn, "worker-a", &["panel.sync"], 10, lease)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 2);

    assert_eq!(
        jobs::bury_expired_leases(conn, LONG_LEASE).await.unwrap(),
        0,
        "nothing is buried while the lease runs"
    );
    let started = Instant::now();
    loop {
        let buried = jobs::bury_expired_leases(conn, lease).await.unwrap();
        if buried > 0 {
            assert_eq!(buried, 1, "only the job whose lost attempt was its last");
            break;
        }
        assert!(started.elapsed() < DEADLINE, "the lease never expired");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let dead = job(conn, last).await;
    assert_eq!(dead.state, JobState::Dead);
    assert!(dead.finished_at.is_some());
    assert!(dead.locked_by.is_none() && dead.locked_at.is_none());
    assert!(
        dead.last_error
            .as_deref()
            .is_some_and(|e| e.contains("lease expired")),
        "{dead:?}"
    );

    // The other one has an attempt left: it is taken over, not buried.
    assert_eq!(job(conn, spare).await.state, JobState::Running);
    let taken = jobs::claim(conn, "worker-b", &["panel.sync"], 10, lease)
        .await
        .unwrap();
    assert_eq!(ids(&taken), vec![spare]);
    assert_eq!(taken[0].attempts, 2);
}

#[tokio::test]
async fn release_held_gives_jobs_back_without_counting_the_attempt() {
    let db = TestDb::new().await;
    let conn = &mut db.connect().await;
    let a = enqueue_one(conn, "panel.sync").await;
    let b = enqueue_one(conn, "panel.sync").await;
    jobs::claim(conn, "worker-a", &["panel.sync"], 1, LONG_LEASE)
        .await
        .unwrap();
    jobs::claim(conn, "worker-b", &["panel.sync"], 1, LONG_LEASE)
        .await
        .unwrap();

    assert_eq!(jobs::release_held(conn, "worker-a").await.unwrap(), 1);
    let released = job(conn, a).await;
    assert_eq!(released.state, JobState::Pending);
    assert_eq!(released.attempts, 0);
    assert!(released.locked_by.is_none());
    assert_eq!(job(conn, b).await.locked_by.as_deref(), Some("worker-b"));
    let again = jobs::claim(conn, "worker-c", &["panel.sync"], 10, LONG_LEASE)
        .await
        .unwrap();
    assert_eq!(ids(&again), vec![a], "due again at once");
}

#[tokio::test]
async fn prune_done_deletes_only_old_finished_jobs() {
    let db = TestDb::new().await;
    let conn = &mut db.connect().await;
    let mut finished = Vec::new();
    for _ in 0..4 {
        finished.push(enqueue_one(conn, "panel.sync").await);
    }
    let pending = enqueue_one(conn, "panel.sync").await;
    let claimed = jobs::claim(conn, "w", &["panel.sync"], 4, LONG_LEASE)
        .await
        .unwrap();
    let mut claimed = ids(&claimed);
    claimed.sort();
    assert_eq!(claimed, finished, "the oldest four");
    let [old_done, recent_done, old_dead, task_last] = finished[..] else {
        unreachable!()
    };
    for id in [old_done, recent_done, task_last] {
        assert!(jobs::complete(conn, id, "w").await.unwrap());
    }
    jobs::fail(conn, old_dead, "w", "x", true, Utc::now())
        .await
        .unwrap();
    diesel::update(
        jobs_table::table.filter(jobs_table::id.eq_any([old_done, old_dead, task_last])),
    )
    .set(jobs_table::finished_at.eq(Utc::now() - chrono::Duration::days(30)))
    .execute(conn)
    .await
    .unwrap();
    diesel::insert_into(scheduled_tasks::table)
        .values((
            scheduled_tasks::name.eq("maintenance"),
            scheduled_tasks::interval_secs.eq(3600),
            scheduled_tasks::next_run_at.eq(Utc::now()),
            scheduled_tasks::last_job_id.eq(task_last),
        ))
        .execute(conn)
        .await
        .unwrap();

    let pruned = jobs::prune_done(conn, Duration::from_secs(86_400))
        .await
        .unwrap();
    assert_eq!(pruned, 1);
    assert!(jobs::find(conn, old_done).await.unwrap().is_none());
    for id in [recent_done, old_dead, task_last, pending] {
        assert!(
            jobs::find(conn, id).await.unwrap().is_some(),
            "job {id} kept"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// The JobRunner actor

#[actix_rt::test]
async fn runner_runs_every_enqueued_job_once() {
    let db = TestDb::new().await;
    let conn = &mut db.connect().await;
    let before = enqueue_one(conn, "mail.send").await;
    let other_kind = enqueue_one(conn, "not.handled").await;

    let ran: Seen = Seen::default();
    let mut handlers = JobHandlers::new();
    handlers.register("mail.send", recorder(&ran), None);
    let _runner = start_runner(&db, settings(), handlers);

    let mut expected = vec![before];
    for _ in 0..20 {
        expected.push(enqueue_one(conn, "mail.send").await);
    }
    let jobs = wait_for_jobs(conn, &expected, "every job is done", |j| {
        j.state == JobState::Done
    })
    .await;
    for job in &jobs {
        assert_eq!(job.attempts, 1, "{job:?}");
        assert!(job.finished_at.is_some() && job.locked_by.is_none());
        assert!(job.last_error.is_none());
    }
    let mut ran = seen(&ran);
    ran.sort();
    expected.sort();
    assert_eq!(ran, expected, "each job ran exactly once");

    let untouched = job(conn, other_kind).await;
    assert_eq!(
        untouched.state,
        JobState::Pending,
        "kinds without handler stay queued"
    );
    assert_eq!(untouched.attempts, 0);
}

#[actix_rt::test]
async fn runner_contains_a_panicking_handler_and_keeps_going() {
    let db = TestDb::new().await;
    let conn = &mut db.connect().await;
    let ran: Seen = Seen::default();
    let mut handlers = JobHandlers::new();
    handlers.register(
        "explode",
        FnHandler(|_job: Job| -> HandlerFuture {
            Box::pin(async { panic!("the panel answered in Klingon") })
        }),
        None,
    );
    handlers.register("mail.send", recorder(&ran), None);
    // A long backoff so that the failed job stays pending where the test can see it.
    let settings = JobSettings {
        backoff_base: Duration::from_secs(3600),
        backoff_max: Duration::from_secs(3600),
        ..settings()
    };
    let runner = start_runner(&db, settings, handlers);

    let exploding = enqueue_one(conn, "explode").await;
    let failed = wait_for_jobs(
        conn,
        &[exploding],
        "the panicking attempt is recorded",
        |j| j.attempts == 1 && j.state == JobState::Pending,
    )
    .await
    .remove(0);
    assert!(
        failed
            .last_error
            .as_deref()
            .is_some_and(|e| e.contains("panicked") && e.contains("Klingon")),
        "{failed:?}"
    );
    assert!(
        failed.run_at > Utc::now(),
        "retried later, after the backoff"
    );
    assert!(failed.locked_by.is_none());

    assert_runner_still_works(conn, &ran, &runner).await;
}

/// After a contained failure, the runner answers and runs the next `mail.send` job.
async fn assert_runner_still_works(
    conn: &mut AsyncPgConnection,
    ran: &Seen,
    runner: &Addr<JobRunner>,
) {
    let fine = enqueue_one(conn, "mail.send").await;
    wait_for_jobs(conn, &[fine], "the next job is done", |j| {
        j.state == JobState::Done
    })
    .await;
    assert_eq!(seen(ran), vec![fine]);
    within_deadline("the runner answers", runner.send(Ping))
        .await
        .expect("the runner is alive")
        .expect("and healthy");
}

#[actix_rt::test]
async fn runner_contains_a_handler_that_panics_before_returning_its_future() {
    let db = TestDb::new().await;
    let conn = &mut db.connect().await;
    let ran: Seen = Seen::default();
    let mut handlers = JobHandlers::new();
    handlers.register(
        "explode",
        FnHandler(|job: Job| -> HandlerFuture {
            let _payload: u32 = serde_json::from_value(job.payload).expect("a number");
            Box::pin(async { Ok(()) })
        }),
        None,
    );
    handlers.register("mail.send", recorder(&ran), None);
    let settings = JobSettings {
        backoff_base: Duration::from_secs(3600),
        backoff_max: Duration::from_secs(3600),
        ..settings()
    };
    let runner = start_runner(&db, settings, handlers);

    let exploding = enqueue(conn, NewJob::new("explode", "not a number"))
        .await
        .unwrap();
    let failed = wait_for_jobs(
        conn,
        &[exploding],
        "the panicking attempt is recorded",
        |j| j.attempts == 1 && j.state == JobState::Pending,
    )
    .await
    .remove(0);
    assert!(
        failed
            .last_error
            .as_deref()
            .is_some_and(|e| e.contains("panicked")),
        "{failed:?}"
    );

    assert_runner_still_works(conn, &ran, &runner).await;
}

#[actix_rt::test]
async fn runner_retries_a_failed_attempt_after_the_backoff() {
    let db = TestDb::new().await;
    let conn = &mut db.connect().await;
    let mut handlers = JobHandlers::new();
    handlers.register(
        "flaky",
        FnHandler(|job: Job| -> HandlerFuture {
            Box::pin(async move {
                match job.attempts {
                    1 => panic!("first attempt panics"),
                    2 => Err(JobError::retryable("second attempt fails")),
                    _ => Ok(()),
                }
            })
        }),
        None,
    );
    let _runner = start_runner(&db, settings(), handlers);

    let id = enqueue_one(conn, "flaky").await;
    let done = wait_for_jobs(conn, &[id], "the third attempt succeeds", |j| {
        j.state == JobState::Done
    })
    .await
    .remove(0);
    assert_eq!(done.attempts, 3);
    assert_eq!(
        done.last_error.as_deref(),
        Some("second attempt fails"),
        "the last failure stays readable"
    );
}

/// README ("Jobs and periodic tasks"): a hanging handler counts as a failed attempt after 90 %
/// of `JOB_LEASE`, while the worker still holds the job; the runner goes on with the next attempt.
#[actix_rt::test]
async fn a_hanging_handler_is_a_failed_attempt_at_ninety_percent_of_the_lease() {
    let db = TestDb::new().await;
    let conn = &mut db.connect().await;
    let mut handlers = JobHandlers::new();
    handlers.register(
        "hangs_once",
        FnHandler(|job: Job| -> HandlerFuture {
            Box::pin(async move {
                if job.attempts == 1 {
                    std::future::pending::<()>().await;
                }
                Ok(())
            })
        }),
        None,
    );
    let settings = JobSettings {
        lease: Duration::from_secs(2),
        ..settings()
    };
    let _runner = start_runner(&db, settings, handlers);

    let id = enqueue_one(conn, "hangs_once").await;
    let done = wait_for_jobs(conn, &[id], "the second attempt succeeds", |j| {
        j.state == JobState::Done
    })
    .await
    .remove(0);
    assert_eq!(done.attempts, 2, "the hanging attempt counted once");
    assert_eq!(
        done.last_error.as_deref(),
        Some("timed out after 1800ms"),
        "cut off at 90 % of the 2 s lease"
    );
}

#[actix_rt::test]
async fn runner_kills_a_job_on_a_permanent_error() {
    let db = TestDb::new().await;
    let conn = &mut db.connect().await;
    let calls = Arc::new(AtomicUsize::new(0));
    let mut handlers = JobHandlers::new();
    let counter = Arc::clone(&calls);
    handlers.register(
        "mail.send",
        FnHandler(move |_job: Job| -> HandlerFuture {
            counter.fetch_add(1, Ordering::SeqCst);
            Box::pin(async { Err(JobError::permanent("550 no such mailbox")) })
        }),
        None,
    );
    let _runner = start_runner(&db, settings(), handlers);

    let id = enqueue_one(conn, "mail.send").await;
    let dead = wait_for_jobs(conn, &[id], "the job is dead", |j| {
        j.state == JobState::Dead
    })
    .await
    .remove(0);
    assert_eq!(dead.attempts, 1, "no retry for a permanent error");
    assert_eq!(dead.last_error.as_deref(), Some("550 no such mailbox"));
    assert!(dead.finished_at.is_some());
    assert_eq!(value(&calls), 1);
}

#[actix_rt::test]
async fn runner_respects_per_kind_and_global_concurrency() {
    #[derive(Default)]
    struct Gauge {
        now: AtomicUsize,
        max: AtomicUsize,
    }
    impl Gauge {
        fn enter(&self) {
            let now = self.now.fetch_add(1, Ordering::SeqCst) + 1;
            self.max.fetch_max(now, Ordering::SeqCst);
        }
        fn leave(&self) {
            self.now.fetch_sub(1, Ordering::SeqCst);
        }
    }
    /// Holds its job until `gauge` has seen `at_once` jobs running together: a runner that
    /// runs fewer at once never opens it (and then gives up after a while, once for all).
    #[derive(Clone)]
    struct Gate {
        gauge: Arc<Gauge>,
        at_once: usize,
        gave_up: Arc<std::sync::atomic::AtomicBool>,
    }
    impl Gate {
        async fn pass(&self) {
            let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
            while value(&self.gauge.max) < self.at_once
                && !std::sync::atomic::AtomicBool::load(&self.gave_up, Ordering::SeqCst)
            {
                if tokio::time::Instant::now() > deadline {
                    self.gave_up.store(true, Ordering::SeqCst);
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    }
    fn busy(kind: Arc<Gauge>, total: Arc<Gauge>, gate: Gate) -> impl JobHandler {
        FnHandler(move |_job: Job| -> HandlerFuture {
            let (kind, total, gate) = (Arc::clone(&kind), Arc::clone(&total), gate.clone());
            Box::pin(async move {
                kind.enter();
                total.enter();
                gate.pass().await;
                kind.leave();
                total.leave();
                Ok(())
            })
        })
    }

    let db = TestDb::new().await;
    let conn = &mut db.connect().await;
    let (panel, mail, total) = (
        Arc::new(Gauge::default()),
        Arc::new(Gauge::default()),
        Arc::new(Gauge::default()),
    );
    // A panel job waits for a second one beside it (its limit), a mail job for four jobs at
    // once (the global limit): so the limits are reached, not only respected.
    let gave_up = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let gate = |gauge: &Arc<Gauge>, at_once| Gate {
        gauge: Arc::clone(gauge),
        at_once,
        gave_up: Arc::clone(&gave_up),
    };
    let mut handlers = JobHandlers::new();
    handlers.register(
        "panel.write",
        busy(Arc::clone(&panel), Arc::clone(&total), gate(&panel, 2)),
        Some(2),
    );
    handlers.register(
        "mail.send",
        busy(Arc::clone(&mail), Arc::clone(&total), gate(&total, 4)),
        None,
    );
    // Everything is due before the runner starts, so it claims as much as it may at once.
    let mut ids = Vec::new();
    for _ in 0..12 {
        ids.push(enqueue_one(conn, "panel.write").await);
        ids.push(enqueue_one(conn, "mail.send").await);
    }
    let settings = JobSettings {
        concurrency: 4,
        ..settings()
    };
    let _runner = start_runner(&db, settings, handlers);

    wait_for_jobs(conn, &ids, "every job is done", |j| {
        j.state == JobState::Done
    })
    .await;
    let (panel_max, total_max) = (value(&panel.max), value(&total.max));
    assert_eq!(panel_max, 2, "panel.write jobs at once (its limit is 2)");
    assert_eq!(total_max, 4, "jobs at once (JOB_CONCURRENCY 4)");
    assert!(value(&mail.max) >= 1);
    assert!(
        !std::sync::atomic::AtomicBool::load(&gave_up, Ordering::SeqCst),
        "a gate waited in vain: the runner did not run its jobs side by side"
    );
}

#[actix_rt::test]
async fn runner_wakes_up_on_notify_without_polling() {
    let db = TestDb::new().await;
    let conn = &mut db.connect().await;
    let ran: Seen = Seen::default();
    let done = Arc::new(tokio::sync::Notify::new());
    let mut handlers = JobHandlers::new();
    let (seen_by_handler, done_by_handler) = (Arc::clone(&ran), Arc::clone(&done));
    let handler = FnHandler(move |job: Job| -> HandlerFuture {
        seen_by_handler.lock().unwrap().push(job.id);
        done_by_handler.notify_one();
        Box::pin(async { Ok(()) })
    });
    handlers.register("mail.send", handler, None);
    // Polling alone would take a minute: only the NOTIFY can wake the runner in time.
    let settings = JobSettings {
        poll_interval: Duration::from_secs(60),
        ..settings()
    };
    let _runner = start_runner(&db, settings, handlers);

    // One after the other, each enqueued soon after the previous one ran: the enqueue then lands
    // at every moment of the runner's cycle (recording the outcome, claiming again, idle), also
    // while a claim that cannot see it yet is running.
    // (The pause busy-waits with `yield_now`: sleeping has a resolution of a millisecond, too
    // coarse. The wait for the job does not: a core spinning there slowed every test beside it.)
    let mut expected = Vec::new();
    for i in 0..300u32 {
        expected.push(enqueue_one(conn, "mail.send").await);
        while ran.lock().unwrap().len() < expected.len() {
            tokio::time::timeout(DEADLINE, done.notified())
                .await
                .unwrap_or_else(|_| panic!("job #{i} never ran"));
        }
        let pause = Duration::from_micros(u64::from(i * 37 % 3000));
        let started = Instant::now();
        while started.elapsed() < pause {
            tokio::task::yield_now().await;
        }
    }
    wait_for_jobs(conn, &expected, "every job is done", |j| {
        j.state == JobState::Done
    })
    .await;
    assert_eq!(seen(&ran), expected);
}

/// A handler that waits at a gate the test opens.
fn gated(gate: &Arc<tokio::sync::Semaphore>, started: &Arc<AtomicUsize>) -> impl JobHandler {
    let (gate, started) = (Arc::clone(gate), Arc::clone(started));
    FnHandler(move |_job: Job| -> HandlerFuture {
        let (gate, started) = (Arc::clone(&gate), Arc::clone(&started));
        Box::pin(async move {
            started.fetch_add(1, Ordering::SeqCst);
            let _permit = gate
                .acquire()
                .await
                .map_err(|e| JobError::retryable(e.to_string()))?;
            Ok(())
        })
    })
}

#[actix_rt::test]
async fn drain_waits_for_running_jobs() {
    let db = TestDb::new().await;
    let conn = &mut db.connect().await;
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let started = Arc::new(AtomicUsize::new(0));
    let mut handlers = JobHandlers::new();
    handlers.register("panel.write", gated(&gate, &started), None);
    // Three jobs fill the runner: no claim is under way once they all run.
    let settings = JobSettings {
        concurrency: 3,
        ..settings()
    };
    let runner = start_runner(&db, settings, handlers);

    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(enqueue_one(conn, "panel.write").await);
    }
    wait_until("the three jobs run", || value(&started) == 3).await;

    let drain = runner.send(Drain {
        timeout: Duration::from_secs(30),
    });
    // The mailbox is in order: once Ping is answered, the runner is draining.
    runner.send(Ping).await.expect("ping").expect("healthy");
    let late = enqueue_one(conn, "panel.write").await;
    for id in &ids {
        assert_eq!(job(conn, *id).await.state, JobState::Running);
    }
    gate.add_permits(100);

    let put_back = within_deadline("drain", drain)
        .await
        .expect("drain answered");
    assert_eq!(put_back, 0, "every running job finished");
    // Drain answers only after the outcomes were written.
    for id in &ids {
        assert_eq!(job(conn, *id).await.state, JobState::Done);
    }
    assert_eq!(value(&started), 3);
    let late = job(conn, late).await;
    assert_eq!(
        late.state,
        JobState::Pending,
        "a draining runner claims nothing more"
    );
    assert_eq!(late.attempts, 0);
}

#[actix_rt::test]
async fn drain_puts_back_jobs_that_do_not_finish_in_time() {
    let db = TestDb::new().await;
    let conn = &mut db.connect().await;
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let started = Arc::new(AtomicUsize::new(0));
    let mut handlers = JobHandlers::new();
    handlers.register("panel.write", gated(&gate, &started), None);
    let runner = start_runner(&db, settings(), handlers);

    let mut ids = Vec::new();
    for _ in 0..2 {
        ids.push(enqueue_one(conn, "panel.write").await);
    }
    wait_until("both jobs run", || value(&started) == 2).await;

    let put_back = within_deadline(
        "drain",
        runner.send(Drain {
            timeout: Duration::from_millis(200),
        }),
    )
    .await
    .expect("drain answered");
    assert_eq!(put_back, 2);
    for id in &ids {
        let job = job(conn, *id).await;
        assert_eq!(job.state, JobState::Pending, "{job:?}");
        assert_eq!(job.attempts, 0, "the interrupted attempt is not counted");
        assert!(job.locked_by.is_none());
    }
}

#[actix_rt::test]
async fn hurry_makes_a_users_waiting_jobs_due_and_leaves_the_others() {
    let db = TestDb::new().await;
    let conn = &mut db.connect().await;
    let later = Utc::now() + chrono::Duration::minutes(5);
    let mine = enqueue(
        conn,
        NewJob::new("notify", serde_json::json!({"user_id": 7})).run_at(later),
    )
    .await
    .unwrap();
    let theirs = enqueue(
        conn,
        NewJob::new("notify", serde_json::json!({"user_id": 8})).run_at(later),
    )
    .await
    .unwrap();
    let other_kind = enqueue(
        conn,
        NewJob::new("provision", serde_json::json!({"user_id": 7})).run_at(later),
    )
    .await
    .unwrap();
    let woken = jobs::hurry(conn, "notify", vpn_shop::domain::UserId(7))
        .await
        .unwrap();
    assert_eq!(woken, 1);
    assert!(job(conn, mine).await.run_at <= Utc::now());
    assert!(job(conn, theirs).await.run_at > Utc::now());
    assert!(job(conn, other_kind).await.run_at > Utc::now());
    // Nothing waits any more: a second call wakes nothing.
    assert_eq!(
        jobs::hurry(conn, "notify", vpn_shop::domain::UserId(7))
            .await
            .unwrap(),
        0
    );
}
