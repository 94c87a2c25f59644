//! vpn-shop: a Telegram shop for VPN access on a Marzban panel.
//!
//! The binary (`src/main.rs`) is a thin CLI over this library; integration tests drive the same
//! library so they run the production code paths.

pub mod actors;
pub mod app;
pub mod clients;
pub mod config;
pub mod db;
pub mod domain;
pub mod error;
pub mod i18n;
pub mod metrics;
pub mod subscribers;
pub mod telemetry;
pub mod web;
