//! The integration tests: one binary (one link of the crate and its dependencies) whose modules
//! are the areas of the program, each against the real HTTP server, database and in-process fakes
//! of the outside services (`support`). `cargo test` runs them all; `cargo test --test it bot::`
//! one area, `cargo test --test it -- name` one test.

mod support;

mod alerts;
mod api_admin;
mod api_limits;
mod api_sales;
mod api_users;
mod auth;
mod bot;
mod bot_payments;
mod cabinet;
mod catalogue;
mod cli;
mod console;
mod console_ops;
mod console_sales;
mod database_outage;
mod db_schema;
mod deployment;
mod docs;
mod embedded_cluster;
mod fake_marzban;
mod fake_smtp;
mod fake_telegram;
mod fake_wata;
mod fake_yookassa;
mod jobs;
mod marzban;
mod monitoring;
mod notifications;
mod operations;
mod panel_contract;
mod panel_remnawave;
mod payments;
mod properties;
mod scheduler;
mod support_conversations;
