//! Start/restart policy and the liveness registry behind `/ready`.
//!
//! Every actor is started by an actix [`Supervisor`], which restarts it when it stops. A panic in
//! a synchronous handler kills the actor's task for good (its address disconnects), which a
//! supervisor cannot see; the watchdog here finds such actors and starts a fresh one from the
//! same factory. Components hold an [`ActorHandle`], which always yields the current address.

use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

use actix::{Actor, Addr, Context, Handler, Recipient, Supervised, Supervisor};

use crate::actors::messages::Ping;
use crate::metrics::Metrics;

/// The current address of a supervised actor.
pub struct ActorHandle<A: Actor> {
    name: &'static str,
    addr: Arc<RwLock<Addr<A>>>,
}

impl<A: Actor> Clone for ActorHandle<A> {
    fn clone(&self) -> Self {
        ActorHandle {
            name: self.name,
            addr: Arc::clone(&self.addr),
        }
    }
}

impl<A: Actor> ActorHandle<A> {
    pub fn name(&self) -> &'static str {
        self.name
    }

    pub fn addr(&self) -> Addr<A> {
        self.addr
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

struct Entry {
    name: &'static str,
    probe: Box<dyn Fn() -> Recipient<Ping> + Send + Sync>,
    respawn: Box<dyn Fn() + Send + Sync>,
}

/// What `/ready` reports of one actor.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ActorStatus {
    pub name: &'static str,
    /// `None` when alive, otherwise why not.
    pub problem: Option<String>,
}

/// All supervised actors of the app.
pub struct ActorRegistry {
    entries: Mutex<Vec<Entry>>,
    metrics: Arc<Metrics>,
}

impl ActorRegistry {
    pub fn new(metrics: Arc<Metrics>) -> Arc<Self> {
        Arc::new(ActorRegistry {
            entries: Mutex::new(Vec::new()),
            metrics,
        })
    }

    /// Starts `factory()` under a [`Supervisor`] in the current arbiter and watches it.
    pub fn supervise<A, F>(&self, name: &'static str, factory: F) -> ActorHandle<A>
    where
        A: Actor<Context = Context<A>> + Supervised + Handler<Ping>,
        F: Fn() -> A + Send + Sync + 'static,
    {
        // The series exists from the start, so dashboards see 0 rather than nothing.
        self.metrics.actor_restarts.with_label_values(&[name]);
        let factory = Arc::new(factory);
        let start = move || {
            let factory = Arc::clone(&factory);
            Supervisor::start(move |_| factory())
        };
        let handle = ActorHandle {
            name,
            addr: Arc::new(RwLock::new(start())),
        };
        let probe_handle = handle.clone();
        let respawn_handle = handle.clone();
        self.lock().push(Entry {
            name,
            probe: Box::new(move || probe_handle.addr().recipient()),
            respawn: Box::new(move || {
                *respawn_handle
                    .addr
                    .write()
                    .unwrap_or_else(PoisonError::into_inner) = start();
            }),
        });
        handle
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Entry>> {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Asks every actor for a [`Ping`] within `timeout` (concurrently).
    pub async fn check(&self, timeout: Duration) -> Vec<ActorStatus> {
        let probes: Vec<(&'static str, Recipient<Ping>)> = self
            .lock()
            .iter()
            .map(|entry| (entry.name, (entry.probe)()))
            .collect();
        let checks = probes.into_iter().map(|(name, recipient)| async move {
            let problem = if !recipient.connected() {
                Some("not running".to_owned())
            } else {
                match tokio::time::timeout(timeout, recipient.send(Ping)).await {
                    Ok(Ok(Ok(()))) => None,
                    Ok(Ok(Err(problem))) => Some(problem),
                    Ok(Err(_)) => Some("not running".to_owned()),
                    Err(_) => Some(format!("no answer within {} ms", timeout.as_millis())),
                }
            };
            ActorStatus { name, problem }
        });
        futures_util::future::join_all(checks).await
    }

    /// Starts a fresh instance of every actor whose address is disconnected (its task died).
    /// Must run inside the arbiter that runs the actors. Returns the names re-spawned.
    pub fn respawn_dead(&self) -> Vec<&'static str> {
        let entries = self.lock();
        let mut respawned = Vec::new();
        for entry in entries.iter() {
            if !(entry.probe)().connected() {
                tracing::error!(
                    actor = entry.name,
                    "actor died (panic?); starting a new one"
                );
                (entry.respawn)();
                self.metrics
                    .actor_restarts
                    .with_label_values(&[entry.name])
                    .inc();
                respawned.push(entry.name);
            }
        }
        respawned
    }

    /// Runs [`ActorRegistry::respawn_dead`] every `interval` on the current arbiter until the
    /// returned handle is aborted.
    pub fn spawn_watchdog(self: &Arc<Self>, interval: Duration) -> actix_rt::task::JoinHandle<()> {
        let registry = Arc::clone(self);
        actix_rt::spawn(async move {
            let mut ticker = actix_rt::time::interval(interval);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticker.tick().await;
                registry.respawn_dead();
            }
        })
    }

    /// Counts a restart done by an actix supervisor (called from `Supervised::restarting`).
    pub fn count_restart(metrics: &Metrics, actor: &str) {
        tracing::warn!(actor, "actor restarting");
        metrics.actor_restarts.with_label_values(&[actor]).inc();
    }
}
