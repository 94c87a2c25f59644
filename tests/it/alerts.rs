//! Admin alerts through the real app, the fake Telegram Bot API and the fake SMTP server: each
//! condition alerts once and its end is told once, to every admin on every channel; a muted kind
//! is recorded and not sent.

use crate::support;

use std::time::Duration;

use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use support::app::{TestApp, spawn_app};
use support::smtp::FakeSmtp;
use support::telegram::{FakeTelegram, SentMessage, TOKEN};
use support::wait_until_within;
use vpn_shop::db::alerts;
use vpn_shop::db::models::AlertRow;
use vpn_shop::db::schema::{alerts as alerts_table, jobs as jobs_table, notifications};
use vpn_shop::domain::alerts::{Alert, AlertKind, AlertState, BACKUP_FAILED_KEY};
use vpn_shop::domain::{JobState, NotificationStatus};

pub const ADMIN_A: i64 = 9001;
pub const ADMIN_B: i64 = 9002;
pub const ADMIN_EMAIL: &str = "ops@example.com";

pub struct Env {
    pub app: TestApp,
    pub telegram: FakeTelegram,
    pub smtp: FakeSmtp,
}

pub async fn spawn(extra: &[(&str, &str)]) -> Env {
    let telegram = FakeTelegram::start();
    let smtp = FakeSmtp::start();
    let (tg_url, smtp_url) = (telegram.url(), smtp.url());
    let admins = format!("{ADMIN_A},{ADMIN_B}");
    let mut settings = vec![
        ("TELEGRAM_BOT_TOKEN", TOKEN),
        ("TELEGRAM_API_URL", tg_url.as_str()),
        ("SMTP_URL", smtp_url.as_str()),
        ("SMTP_FROM", "VPN Shop <noreply@shop.example>"),
        ("ADMIN_TELEGRAM_IDS", admins.as_str()),
        ("ADMIN_EMAILS", ADMIN_EMAIL),
        ("ADMIN_LANGUAGE", "en"),
        ("ADMIN_DIGEST_AT", "off"),
        ("JOB_BACKOFF_BASE", "100ms"),
        ("JOB_BACKOFF_MAX", "500ms"),
        ("JOB_POLL_INTERVAL", "200ms"),
    ];
    settings.extend_from_slice(extra);
    let app = spawn_app(&settings).await;
    Env {
        app,
        telegram,
        smtp,
    }
}

/// Waits until no alert delivery is pending or running.
pub async fn settle(app: &TestApp) {
    wait_until_within(
        "alert deliveries to finish",
        Duration::from_secs(20),
        || async {
            let busy: i64 = jobs_table::table
                .filter(jobs_table::kind.eq("alert_deliver"))
                .filter(jobs_table::state.eq_any([JobState::Pending, JobState::Running]))
                .count()
                .get_result(&mut app.db.connect().await)
                .await
                .unwrap();
            busy == 0
        },
    )
    .await;
}

/// The alerts recorded, oldest first.
pub async fn recorded(conn: &mut AsyncPgConnection) -> Vec<AlertRow> {
    alerts_table::table
        .select(AlertRow::as_select())
        .order(alerts_table::id)
        .load(conn)
        .await
        .unwrap()
}

/// Messages an admin got whose text contains `needle`.
pub fn told(env: &Env, admin: i64, needle: &str) -> Vec<SentMessage> {
    env.telegram
        .messages_to(admin)
        .into_iter()
        .filter(|m| m.text.contains(needle))
        .collect()
}

/// Emails to the admin address whose subject contains `needle`.
pub fn mailed(env: &Env, needle: &str) -> usize {
    env.smtp
        .messages()
        .iter()
        .filter(|m| m.to.iter().any(|t| t == ADMIN_EMAIL) && m.subject.contains(needle))
        .count()
}

/// Waits until each admin got `n` messages containing `needle` on Telegram and `n` emails.
pub async fn wait_told(env: &Env, needle: &str, n: usize) {
    wait_until_within(
        &format!("{n} alert(s) '{needle}' to every admin"),
        Duration::from_secs(20),
        || async {
            told(env, ADMIN_A, needle).len() >= n
                && told(env, ADMIN_B, needle).len() >= n
                && mailed(env, needle) >= n
        },
    )
    .await;
}

/// Every admin got exactly `n` messages containing `needle`, on each channel.
pub fn assert_told(env: &Env, needle: &str, n: usize) {
    for admin in [ADMIN_A, ADMIN_B] {
        assert_eq!(
            told(env, admin, needle).len(),
            n,
            "admin {admin}: '{needle}'"
        );
    }
    assert_eq!(mailed(env, needle), n, "email: '{needle}'");
}

fn backup_failed() -> Alert {
    Alert::BackupFailed {
        error: "pg_dump: connection refused".into(),
    }
}

#[actix_rt::test]
async fn a_condition_alerts_every_admin_once_and_its_end_once() {
    let env = spawn(&[]).await;
    let conn = &mut env.app.db.connect().await;
    let first = alerts::raise(conn, &backup_failed(), 5).await.unwrap();
    assert!(first.is_some());
    // The same condition again while it holds: nothing new.
    assert_eq!(
        alerts::raise(conn, &backup_failed(), 5).await.unwrap(),
        None
    );
    wait_told(&env, "The backup failed", 1).await;
    settle(&env.app).await;
    assert_told(&env, "The backup failed", 1);
    let message = &told(&env, ADMIN_A, "The backup failed")[0];
    assert_eq!(
        message.text,
        "🔴 <b>The backup failed</b>\npg_dump: connection refused"
    );
    assert_eq!(message.parse_mode.as_deref(), Some("HTML"));

    let resolved = alerts::resolve(conn, BACKUP_FAILED_KEY, None, 5)
        .await
        .unwrap();
    assert_eq!(resolved, first);
    assert_eq!(
        alerts::resolve(conn, BACKUP_FAILED_KEY, None, 5)
            .await
            .unwrap(),
        None
    );
    wait_told(&env, "The backup works again", 1).await;
    settle(&env.app).await;
    assert_told(&env, "The backup works again", 1);
    assert_told(&env, "The backup failed", 1);

    let rows = recorded(conn).await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].state, AlertState::Resolved);
    assert!(rows[0].resolved_at.is_some());
    // One delivery per admin and channel, per state: 2 Telegram + 1 email, twice.
    let sent: i64 = notifications::table
        .filter(notifications::alert_id.eq(rows[0].id))
        .filter(notifications::status.eq(NotificationStatus::Sent))
        .count()
        .get_result(conn)
        .await
        .unwrap();
    assert_eq!(sent, 6);

    // A new failure after the end is a new condition.
    assert!(
        alerts::raise(conn, &backup_failed(), 5)
            .await
            .unwrap()
            .is_some()
    );
    wait_told(&env, "The backup failed", 2).await;
}

#[actix_rt::test]
async fn a_muted_kind_is_recorded_and_not_sent() {
    let env = spawn(&[]).await;
    let conn = &mut env.app.db.connect().await;
    alerts::set_muted(conn, AlertKind::BackupFailed, true)
        .await
        .unwrap();
    let id = alerts::raise(conn, &backup_failed(), 5).await.unwrap();
    assert!(id.is_some());
    alerts::resolve(conn, BACKUP_FAILED_KEY, None, 5)
        .await
        .unwrap();
    // A kind that is not muted still goes out (and shows the muted one was not just slow).
    alerts::raise(
        conn,
        &Alert::SyncFailing {
            sync: "status".into(),
            error: "panel answered 502".into(),
        },
        5,
    )
    .await
    .unwrap();
    wait_told(&env, "status panel sync failed", 1).await;
    settle(&env.app).await;
    assert_told(&env, "backup", 0);
    let rows = recorded(conn).await;
    assert_eq!(rows.len(), 2);
    assert!(rows[0].muted && rows[0].kind == AlertKind::BackupFailed);
    assert_eq!(rows[0].state, AlertState::Resolved);
    assert!(!rows[1].muted);
}
