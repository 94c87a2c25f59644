//! Shared helpers for the integration tests.

// Each test binary compiles this module on its own and uses a different subset of it, so items
// unused by one binary would otherwise warn there.
#![allow(dead_code)]

pub mod app;
pub mod bot;
pub mod db;
pub mod marzban;
pub mod pg;
pub mod smtp;
pub mod telegram;
pub mod wata;
pub mod yookassa;
