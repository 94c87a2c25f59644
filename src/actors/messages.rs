//! The typed message catalogue of the actors.

use std::time::Duration;

use actix::Message;

/// Liveness probe: every supervised actor answers it; `/ready` sends it with a timeout.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "()")]
pub struct Ping;

/// Something was enqueued (NOTIFY or a local enqueue): look for due jobs now.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "()")]
pub struct WakeUp;

/// Graceful shutdown of the job runner: claim nothing more, wait up to `timeout` for the running
/// jobs, then put back the ones still running. Answers how many were put back.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "usize")]
pub struct Drain {
    pub timeout: Duration,
}

/// Graceful shutdown of the scheduler: no more ticks.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "()")]
pub struct StopScheduling;
