//! The supervision tree: one actor per concern, started under actix `Supervisor`s and watched by
//! a watchdog (see `supervisor`). Actors talk in the typed messages of `messages`; work that must
//! survive a crash goes through the jobs table, which the `job_runner` drains.

pub mod alerts;
pub mod bot;
pub mod job_runner;
pub mod maintenance;
pub mod marzban;
pub mod messages;
pub mod notifier;
pub mod payments;
pub mod scheduler;
pub mod supervisor;
