//! Shared helpers for the integration tests.

// Each test binary compiles this module on its own and uses a different subset of it, so items
// unused by one binary would otherwise warn there.
#![allow(dead_code)]

pub mod app;
pub mod bot;
pub mod browser;
pub mod db;
pub mod marzban;
pub mod panels;
pub mod pasarguard;
pub mod payments;
pub mod pg;
pub mod remnawave;
pub mod server;
pub mod smtp;
pub mod telegram;
pub mod wata;
pub mod yookassa;

/// Polls `check` every 50 ms until it holds; fails the test after 20 s, naming `what`.
pub async fn wait_until<F, Fut>(what: &str, check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    wait_until_within(what, std::time::Duration::from_secs(20), check).await
}

/// Like [`wait_until`] with a deadline of `timeout`.
pub async fn wait_until_within<F, Fut>(what: &str, timeout: std::time::Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}
