//! Admin alerts through the real app, the fake Telegram Bot API and the fake SMTP server: each
//! condition alerts once and its end is told once, to every admin on every channel; a muted kind
//! is recorded and not sent.

use crate::support;

use std::time::Duration;

use diesel::prelude::*;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
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
    app.wait_jobs_idle("alert_deliver").await;
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

/// `ADMIN_LANGUAGE` (here `en`) is for the admins who have not talked to the bot and for email;
/// an admin who uses the bot in Russian reads the alerts on Telegram in Russian.
#[actix_rt::test]
async fn each_admin_reads_alerts_in_the_language_they_use_in_the_bot() {
    let env = spawn(&[]).await;
    let conn = &mut env.app.db.connect().await;
    support::db::Subscriber {
        language: vpn_shop::domain::Language::Ru,
        ..support::db::Subscriber::new(ADMIN_A)
    }
    .insert(conn)
    .await;
    alerts::raise(conn, &backup_failed(), 5).await.unwrap();
    wait_until_within(
        "the alert to both admins",
        Duration::from_secs(20),
        || async {
            !told(&env, ADMIN_A, "Резервная копия не создана").is_empty()
                && !told(&env, ADMIN_B, "The backup failed").is_empty()
                && mailed(&env, "The backup failed") == 1
        },
    )
    .await;
    settle(&env.app).await;
    assert_eq!(env.telegram.messages_to(ADMIN_A).len(), 1);
    assert!(told(&env, ADMIN_A, "The backup failed").is_empty());
    assert!(told(&env, ADMIN_B, "Резервная").is_empty());
}

// -- The events ----------------------------------------------------------------------------------

mod events {
    use super::*;

    use chrono::Utc;
    use serde_json::json;
    use support::db::Subscriber;
    use support::marzban::{ADMIN_PASSWORD, ADMIN_USERNAME, FakePanel};
    use support::payments::Providers;
    use vpn_shop::actors::payments::Refund;
    use vpn_shop::db::models::Payment;
    use vpn_shop::db::schema::{audit_log, payment_events, payments, plans, subscriptions};
    use vpn_shop::domain::{Money, PaymentProvider, PlanId, UserId};

    /// The shop with both payment providers, its admins on Telegram and email.
    pub struct Shop {
        pub env: Env,
        pub providers: Providers,
        pub plan: PlanId,
    }

    pub async fn shop(extra: &[(&str, &str)]) -> Shop {
        let providers = Providers::start();
        let mut settings = providers.env();
        settings.extend_from_slice(extra);
        let env = spawn(&settings).await;
        let plan = diesel::insert_into(plans::table)
            .values((
                plans::name.eq("30 days"),
                plans::days.eq(30),
                plans::price_minor.eq(29_900i64),
            ))
            .returning(plans::id)
            .get_result(&mut env.app.db.connect().await)
            .await
            .unwrap();
        Shop {
            env,
            providers,
            plan,
        }
    }

    impl Shop {
        /// A WATA order of the plan for a new user `telegram_id`.
        pub async fn order(&self, telegram_id: i64) -> (UserId, Payment) {
            let conn = &mut self.env.app.db.connect().await;
            let user = Subscriber::new(telegram_id).insert(conn).await;
            let order_id = self
                .env
                .app
                .checkout_page(user, self.plan, PaymentProvider::Wata)
                .await;
            let order = payments::table
                .find(order_id)
                .select(Payment::as_select())
                .first(conn)
                .await
                .unwrap();
            (user, order)
        }

        /// The payer pays the order's WATA link and WATA notifies: the transaction id.
        pub async fn pay(&self, order: &Payment) -> String {
            let link = order.external_id.as_deref().unwrap();
            let transaction = self.providers.wata.pay(link);
            let id = transaction["id"].as_str().unwrap().to_owned();
            self.notify(&id).await;
            id
        }

        pub async fn notify(&self, transaction: &str) {
            let url = self.env.app.url("/webhooks/wata");
            assert_eq!(
                self.providers.wata.send_webhook(&url, transaction).await,
                200
            );
        }
    }

    #[actix_rt::test]
    async fn a_flagged_payment_alerts_once_and_ends_when_an_admin_marks_it_reviewed() {
        let shop = shop(&[]).await;
        let env = &shop.env;
        let conn = &mut env.app.db.connect().await;
        let (user, order) = shop.order(7001).await;
        diesel::update(payments::table.find(order.id))
            .set(payments::amount_minor.eq(19_900i64))
            .execute(conn)
            .await
            .unwrap();
        let transaction = shop.pay(&order).await;
        // WATA sends its notice again: the same condition, no second alert.
        shop.notify(&transaction).await;
        wait_told(env, "Payment flagged", 1).await;
        settle(&env.app).await;
        assert_told(env, "Payment flagged", 1);
        let message = &told(env, ADMIN_A, "Payment flagged")[0];
        assert!(
            message.text.starts_with(&format!(
                "🔴 <b>Payment flagged: amount or currency mismatch</b>\nOrder #{}, user #{user} (Telegram 7001), 199 ₽ through wata.",
                order.id
            )),
            "{}",
            message.text
        );
        let alert = recorded(conn).await.pop().unwrap();
        assert_eq!(alert.kind, AlertKind::PaymentFlagged);
        let buttons = message.reply_markup.as_ref().unwrap()["inline_keyboard"].clone();
        assert_eq!(
            buttons[0][0]["callback_data"],
            format!("a:rev:{}", alert.id)
        );
        assert_eq!(buttons[1][0]["callback_data"], format!("a:user:{user}"));

        // Someone who is no admin presses the button (a forwarded message): refused.
        env.telegram
            .push_callback(7001, message.message_id, &format!("a:rev:{}", alert.id));
        env.telegram
            .wait_for_messages(7001, 1, Duration::from_secs(10))
            .await;
        assert_eq!(
            alerts::find(conn, alert.id).await.unwrap().unwrap().state,
            AlertState::Firing
        );
        // An admin does: the alert ends, every admin is told once, the review is audited.
        env.telegram
            .push_callback(ADMIN_A, message.message_id, &format!("a:rev:{}", alert.id));
        wait_told(env, "Flagged payment reviewed", 1).await;
        env.telegram
            .push_callback(ADMIN_B, message.message_id, &format!("a:rev:{}", alert.id));
        wait_until_within(
            "the second press answered",
            Duration::from_secs(10),
            || async { !told(env, ADMIN_B, "not a flagged payment waiting").is_empty() },
        )
        .await;
        settle(&env.app).await;
        assert_told(env, "Flagged payment reviewed", 1);
        assert!(
            told(env, ADMIN_B, "Flagged payment reviewed")[0]
                .text
                .contains(&format!("by telegram:{ADMIN_A}"))
        );
        let reviews: i64 = audit_log::table
            .filter(audit_log::action.eq("payment.reviewed"))
            .count()
            .get_result(conn)
            .await
            .unwrap();
        assert_eq!(reviews, 1);
    }

    #[actix_rt::test]
    async fn a_charge_with_no_order_alerts_once() {
        let shop = shop(&[]).await;
        let env = &shop.env;
        let (_, order) = shop.order(7002).await;
        let transaction = shop.pay(&order).await;
        // The order is gone (deleted by hand): the same genuine charge names no order now.
        let conn = &mut env.app.db.connect().await;
        diesel::delete(payment_events::table)
            .execute(conn)
            .await
            .unwrap();
        diesel::delete(payments::table.find(order.id))
            .execute(conn)
            .await
            .unwrap();
        shop.notify(&transaction).await;
        shop.notify(&transaction).await;
        wait_told(env, "a charge with no order", 1).await;
        settle(&env.app).await;
        assert_told(env, "a charge with no order", 1);
        assert!(
            told(env, ADMIN_A, "a charge with no order")[0]
                .text
                .contains(&transaction)
        );
    }

    #[actix_rt::test]
    async fn a_refund_is_told_once_with_who_made_it() {
        let shop = shop(&[]).await;
        let env = &shop.env;
        let (_, order) = shop.order(7003).await;
        shop.pay(&order).await;
        env.app
            .app
            .payments
            .addr()
            .send(Refund {
                payment_id: order.id,
                amount: Some(Money::rub_kopecks(10_000)),
                reason: "asked".into(),
                actor: "admin:alice".into(),
                admin_id: None,
                remote_addr: None,
            })
            .await
            .unwrap()
            .unwrap();
        // WATA's notice of the same refund counts nothing twice, and tells nothing twice.
        let refund = shop
            .providers
            .wata
            .transactions()
            .into_iter()
            .find(|t| t["kind"] == "Refund")
            .unwrap();
        shop.notify(refund["id"].as_str().unwrap()).await;
        wait_told(env, "Refund of 100 ₽", 1).await;
        settle(&env.app).await;
        assert_told(env, "Refund of", 1);
        let text = &told(env, ADMIN_A, "Refund of")[0].text;
        assert!(text.ends_with("Made by admin:alice."), "{text}");
    }

    async fn insert_dead(conn: &mut AsyncPgConnection, kind: &str, user: i64, error: &str) -> i64 {
        diesel::sql_query(
            "INSERT INTO jobs (kind, payload, state, attempts, max_attempts, last_error, finished_at) \
             VALUES ($1, $2, 'dead', 3, 3, $3, now()) RETURNING id",
        )
        .bind::<diesel::sql_types::Text, _>(kind)
        .bind::<diesel::sql_types::Jsonb, _>(json!({ "user_id": user }))
        .bind::<diesel::sql_types::Text, _>(error)
        .get_result::<IdRow>(conn)
        .await
        .unwrap()
        .id
    }

    #[derive(QueryableByName)]
    struct IdRow {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        id: i64,
    }

    #[actix_rt::test]
    async fn dead_jobs_are_told_at_most_once_per_kind_in_15_minutes_with_their_count() {
        let env = spawn(&[
            ("ALERT_CHECK_INTERVAL", "200ms"),
            ("SCHEDULER_TICK", "100ms"),
        ])
        .await;
        let conn = &mut env.app.db.connect().await;
        // Both at once: a check between them would tell the first alone.
        let newest = conn
            .transaction::<_, diesel::result::Error, _>(async |conn| {
                insert_dead(conn, "provision", 11, "panel answered 500").await;
                Ok(insert_dead(conn, "provision", 12, "panel answered 502").await)
            })
            .await
            .unwrap();
        wait_told(&env, "2 provision jobs are dead", 1).await;
        let message = &told(&env, ADMIN_A, "provision jobs are dead")[0];
        assert_eq!(
            message.text,
            format!(
                "⚠️ <b>2 provision jobs are dead</b>\nNewest: job #{newest}, user #12.\nLast error: panel answered 502"
            )
        );
        assert_eq!(
            message.reply_markup.as_ref().unwrap()["inline_keyboard"][0][0]["callback_data"],
            format!("a:retry:{newest}")
        );
        // Another one within 15 minutes: counted later, not told now.
        let third = insert_dead(conn, "provision", 13, "timeout").await;
        tokio::time::sleep(Duration::from_millis(1500)).await;
        settle(&env.app).await;
        assert_told(&env, "jobs are dead", 1);
        assert_told(&env, "A provision job is dead", 0);
        // 15 minutes later (the last alert moved back): the one since, with its count.
        diesel::sql_query(
            "UPDATE alerts SET raised_at = raised_at - interval '16 minutes' WHERE kind = 'job_dead'",
        )
        .execute(conn)
        .await
        .unwrap();
        wait_told(&env, "A provision job is dead", 1).await;
        settle(&env.app).await;
        assert_told(&env, "A provision job is dead", 1);
        assert!(
            told(&env, ADMIN_B, "A provision job is dead")[0]
                .text
                .contains(&format!("job #{third}, user #13"))
        );
        // The button retries it (an admin's press).
        let message = &told(&env, ADMIN_A, "A provision job is dead")[0];
        env.telegram
            .push_callback(ADMIN_A, message.message_id, &format!("a:retry:{third}"));
        wait_until_within("the retried job", Duration::from_secs(10), || async {
            jobs_table::table
                .find(third)
                .select(jobs_table::state)
                .first::<JobState>(&mut env.app.db.connect().await)
                .await
                .unwrap()
                == JobState::Pending
        })
        .await;
    }

    #[actix_rt::test]
    async fn a_panel_outage_and_its_failing_sync_alert_once_and_end_once() {
        let panel = FakePanel::start();
        let url = panel.url();
        let env = spawn(&[
            ("MARZBAN_URL", url.as_str()),
            ("MARZBAN_USERNAME", ADMIN_USERNAME),
            ("MARZBAN_PASSWORD", ADMIN_PASSWORD),
            ("PANEL_TIMEOUT", "1s"),
            ("PANEL_SYNC_STATUS_INTERVAL", "300ms"),
            ("ALERT_CHECK_INTERVAL", "200ms"),
            ("ALERT_PANEL_DOWN_AFTER", "1s"),
            ("SCHEDULER_TICK", "100ms"),
        ])
        .await;
        // Up for a while: nothing to tell.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert_told(&env, "panel", 0);
        panel.set_outage(true);
        wait_told(&env, "The panel is unreachable", 1).await;
        wait_told(&env, "The status panel sync failed twice in a row", 1).await;
        tokio::time::sleep(Duration::from_millis(1500)).await;
        panel.set_outage(false);
        wait_told(&env, "The panel is back", 1).await;
        wait_told(&env, "The status panel sync works again", 1).await;
        tokio::time::sleep(Duration::from_millis(1000)).await;
        settle(&env.app).await;
        assert_told(&env, "The panel is unreachable", 1);
        assert_told(&env, "The panel is back", 1);
        assert_told(&env, "The status panel sync failed twice", 1);
        assert_told(&env, "The status panel sync works again", 1);
    }

    #[actix_rt::test]
    async fn a_failing_backup_alerts_once_and_the_next_good_one_ends_it() {
        let env = spawn(&[("BACKUP_INTERVAL", "300ms"), ("SCHEDULER_TICK", "100ms")]).await;
        // The backups' folder cannot be made: a file is in its place.
        let dir = env.app.settings.data_dir.join("backups");
        std::fs::write(&dir, b"in the way").unwrap();
        wait_told(&env, "The backup failed", 1).await;
        tokio::time::sleep(Duration::from_millis(1000)).await;
        assert_told(&env, "The backup failed", 1);
        std::fs::remove_file(&dir).unwrap();
        wait_told(&env, "The backup works again", 1).await;
        settle(&env.app).await;
        assert_told(&env, "The backup failed", 1);
        assert_told(&env, "The backup works again", 1);
    }

    #[actix_rt::test]
    async fn forged_webhooks_above_the_threshold_alert_once_and_end_after_5_quiet_minutes() {
        let shop = shop(&[
            ("ALERT_CHECK_INTERVAL", "200ms"),
            ("ALERT_WEBHOOK_FAILURES", "3"),
            ("SCHEDULER_TICK", "100ms"),
        ])
        .await;
        let env = &shop.env;
        let forge = || async {
            let body = br#"{"transactionId":"x","orderId":"1"}"#.to_vec();
            let signature = shop.providers.wata.sign_with_foreign_key(&body);
            env.app
                .http
                .post(env.app.url("/webhooks/wata"))
                .header("content-type", "application/json")
                .header("X-Signature", signature)
                .body(body)
                .send()
                .await
                .unwrap()
                .status()
        };
        for _ in 0..2 {
            assert_eq!(forge().await, 401);
        }
        tokio::time::sleep(Duration::from_millis(800)).await;
        assert_told(env, "forged payment webhooks", 0);
        for _ in 0..3 {
            forge().await;
        }
        // The check may run between two of them: it tells the count it saw (3 to 5), once.
        wait_told(env, "forged payment webhooks in 5 minutes", 1).await;
        tokio::time::sleep(Duration::from_millis(800)).await;
        assert_told(env, "forged payment webhooks in 5 minutes", 1);
        let text = &told(env, ADMIN_A, "forged payment webhooks in 5 minutes")[0].text;
        assert!(
            ["3", "4", "5"]
                .iter()
                .any(|n| text.starts_with(&format!("⚠️ <b>{n} forged payment webhooks"))),
            "{text}"
        );
        assert!(text.contains("most came from 127.0.0.1"), "{text}");
        let conn = &mut env.app.db.connect().await;
        diesel::sql_query(
            "UPDATE payment_events SET received_at = received_at - interval '6 minutes'",
        )
        .execute(conn)
        .await
        .unwrap();
        wait_told(env, "No forged payment webhooks for 5 minutes", 1).await;
        settle(&env.app).await;
        assert_told(env, "No forged payment webhooks", 1);
        assert_told(env, "forged payment webhooks in 5 minutes", 1);
    }

    #[actix_rt::test]
    async fn paid_access_missing_for_10_minutes_alerts_once_and_ends_once() {
        let env = spawn(&[
            ("ALERT_CHECK_INTERVAL", "200ms"),
            ("SCHEDULER_TICK", "100ms"),
        ])
        .await;
        let conn = &mut env.app.db.connect().await;
        let user = Subscriber {
            expires_at: Some(Utc::now() + chrono::Duration::days(20)),
            ..Subscriber::new(7010)
        }
        .insert(conn)
        .await;
        // Flagged by the paid_unprovisioned check 9 minutes after the payment: not yet.
        let flag = |minutes: i64| {
            diesel::update(subscriptions::table.filter(subscriptions::user_id.eq(user))).set((
                subscriptions::unprovisioned_since
                    .eq(Some(Utc::now() - chrono::Duration::minutes(minutes - 5))),
                subscriptions::access_changed_at
                    .eq(Utc::now() - chrono::Duration::minutes(minutes)),
            ))
        };
        flag(9).execute(conn).await.unwrap();
        tokio::time::sleep(Duration::from_millis(800)).await;
        assert_told(&env, "no access on the panel", 0);
        flag(11).execute(conn).await.unwrap();
        wait_told(&env, "A paying user has no access on the panel", 1).await;
        tokio::time::sleep(Duration::from_millis(800)).await;
        let text = &told(&env, ADMIN_A, "no access on the panel")[0].text;
        assert!(
            text.contains(&format!("The oldest: user #{user}.")),
            "{text}"
        );
        diesel::update(subscriptions::table.filter(subscriptions::user_id.eq(user)))
            .set(subscriptions::unprovisioned_since.eq(None::<chrono::DateTime<Utc>>))
            .execute(conn)
            .await
            .unwrap();
        wait_told(&env, "Every paying user has their access", 1).await;
        settle(&env.app).await;
        assert_told(&env, "no access on the panel", 1);
        assert_told(&env, "Every paying user has their access", 1);
    }
}

// -- Seeing and muting them ----------------------------------------------------------------------

mod seeing {
    use super::*;

    use serde_json::json;
    use vpn_shop::domain::AdminRole;

    #[actix_rt::test]
    async fn the_history_lists_firing_resolved_and_muted_alerts_to_viewers() {
        let env = spawn(&[]).await;
        let app = &env.app;
        let conn = &mut app.db.connect().await;
        alerts::raise(conn, &backup_failed(), 5).await.unwrap();
        alerts::resolve(conn, BACKUP_FAILED_KEY, None, 5)
            .await
            .unwrap();
        alerts::set_muted(conn, AlertKind::SyncFailing, true)
            .await
            .unwrap();
        alerts::raise(
            conn,
            &Alert::SyncFailing {
                sync: "traffic".into(),
                error: "502".into(),
            },
            5,
        )
        .await
        .unwrap();
        app.assert_guarded("GET", "/api/v1/alerts", None, AdminRole::Viewer)
            .await;
        let viewer = app.token_for(AdminRole::Viewer).await;
        let (status, page) = app.call("GET", "/api/v1/alerts", Some(&viewer), None).await;
        assert_eq!(status, 200, "{page}");
        assert_eq!(page["total"], 2);
        assert_eq!(page["items"][0]["kind"], "sync_failing");
        assert_eq!(page["items"][0]["state"], "firing");
        assert_eq!(page["items"][0]["muted"], true);
        assert_eq!(page["items"][0]["payload"]["sync"], "traffic");
        assert_eq!(page["items"][1]["kind"], "backup_failed");
        assert_eq!(page["items"][1]["state"], "resolved");
        assert!(page["items"][1]["resolved_at"].is_string());
        let (_, firing) = app
            .call("GET", "/api/v1/alerts?state=firing", Some(&viewer), None)
            .await;
        assert_eq!(firing["total"], 1);
        let (status, error) = app
            .call("GET", "/api/v1/alerts?kind=everything", Some(&viewer), None)
            .await;
        assert_eq!(status, 422, "{error}");
        assert_eq!(error["error"]["code"], "validation_failed", "{error}");
    }

    #[actix_rt::test]
    async fn admins_mute_kinds_through_the_api_audited_and_muted_kinds_are_only_recorded() {
        let env = spawn(&[]).await;
        let app = &env.app;
        let patch = json!({"muted": {"backup_failed": true, "sale": true}});
        app.assert_guarded(
            "PATCH",
            "/api/v1/alerts/settings",
            Some(patch.clone()),
            AdminRole::Admin,
        )
        .await;
        app.assert_guarded("GET", "/api/v1/alerts/settings", None, AdminRole::Viewer)
            .await;
        let admin = app.token_for(AdminRole::Admin).await;
        let (status, view) = app
            .call(
                "PATCH",
                "/api/v1/alerts/settings",
                Some(&admin),
                Some(patch),
            )
            .await;
        assert_eq!(status, 200, "{view}");
        assert_eq!(view["muted"]["backup_failed"], true);
        assert_eq!(view["muted"]["sale"], true);
        assert_eq!(view["muted"]["panel_down"], false);
        assert_eq!(view["telegram"], json!([ADMIN_A, ADMIN_B]));
        assert_eq!(view["emails"], json!([ADMIN_EMAIL]));
        assert_eq!(view["language"], "en");
        let audit = app.audit_rows("alerts.settings").await;
        assert_eq!(audit.len(), 1);
        assert_eq!(audit[0]["before"], json!({"muted": []}));
        assert_eq!(
            audit[0]["after"],
            json!({"muted": ["backup_failed", "sale"]})
        );
        let (status, error) = app
            .call(
                "PATCH",
                "/api/v1/alerts/settings",
                Some(&admin),
                Some(json!({"muted": {"everything": true}})),
            )
            .await;
        assert_eq!(status, 422, "{error}");

        let conn = &mut app.db.connect().await;
        alerts::raise(conn, &backup_failed(), 5).await.unwrap();
        alerts::raise(
            conn,
            &Alert::SyncFailing {
                sync: "status".into(),
                error: "502".into(),
            },
            5,
        )
        .await
        .unwrap();
        wait_told(&env, "status panel sync failed", 1).await;
        settle(app).await;
        assert_told(&env, "backup", 0);
        let (_, page) = app.call("GET", "/api/v1/alerts", Some(&admin), None).await;
        assert_eq!(page["total"], 2, "the muted one is recorded: {page}");
    }

    #[actix_rt::test]
    async fn a_flagged_payment_is_reviewed_through_the_api_by_an_operator() {
        let env = spawn(&[]).await;
        let app = &env.app;
        let conn = &mut app.db.connect().await;
        let flagged = Alert::PaymentFlagged {
            anomaly: vpn_shop::domain::alerts::Anomaly::ChargeWithoutOrder,
            order: None,
            user: None,
            telegram_id: None,
            amount: vpn_shop::domain::Money::rub_kopecks(29_900),
            provider: vpn_shop::domain::PaymentProvider::Yookassa,
            detail: "charge 2f9 of 299.00 RUB names no order".into(),
        };
        let id = alerts::raise(conn, &flagged, 5).await.unwrap().unwrap();
        let backup = alerts::raise(conn, &backup_failed(), 5)
            .await
            .unwrap()
            .unwrap();
        let path = format!("/api/v1/alerts/{id}/review");
        app.assert_guarded("POST", &path, None, AdminRole::Operator)
            .await;
        let operator = app.token_for(AdminRole::Operator).await;
        let (status, row) = app.call("POST", &path, Some(&operator), None).await;
        assert_eq!(status, 200, "{row}");
        assert_eq!(row["state"], "resolved");
        assert_eq!(row["resolution"]["reviewed_by"], "admin:operator-user");
        let (status, _) = app.call("POST", &path, Some(&operator), None).await;
        assert_eq!(status, 409, "reviewed once");
        let (status, _) = app
            .call(
                "POST",
                &format!("/api/v1/alerts/{backup}/review"),
                Some(&operator),
                None,
            )
            .await;
        assert_eq!(status, 409, "only flagged payments are reviewed");
        let (status, _) = app
            .call(
                "POST",
                "/api/v1/alerts/999999/review",
                Some(&operator),
                None,
            )
            .await;
        assert_eq!(status, 404);
        wait_told(&env, "Flagged payment reviewed", 1).await;
        settle(app).await;
        assert_told(&env, "Flagged payment reviewed", 1);
        assert_eq!(app.audit_rows("payment.reviewed").await.len(), 1);
    }

    #[actix_rt::test]
    async fn admins_see_and_mute_alerts_with_the_bots_alerts_command() {
        let env = spawn(&[]).await;
        let conn = &mut env.app.db.connect().await;
        alerts::raise(conn, &backup_failed(), 5).await.unwrap();
        wait_told(&env, "The backup failed", 1).await;
        env.telegram.push_message(ADMIN_A, "/alerts");
        let menu = wait_menu(&env, ADMIN_A, 1).await;
        assert!(menu.text.contains("Firing now: 1"), "{}", menu.text);
        assert!(
            menu.text.contains("• 🔴 The backup failed (since "),
            "{}",
            menu.text
        );
        let keyboard = menu.reply_markup.as_ref().unwrap()["inline_keyboard"].clone();
        let backup_row = keyboard
            .as_array()
            .unwrap()
            .iter()
            .find(|row| row[0]["callback_data"] == "a:mute:backup_failed")
            .expect("a mute button of backup_failed");
        assert_eq!(backup_row[0]["text"], "🔔 Failed backups");
        env.telegram
            .push_callback(ADMIN_A, menu.message_id, "a:mute:backup_failed");
        wait_until_within("the kind muted", Duration::from_secs(10), || async {
            alerts::muted_kinds(&mut env.app.db.connect().await)
                .await
                .unwrap()
                == vec![AlertKind::BackupFailed]
        })
        .await;
        assert_eq!(env.app.audit_rows("alerts.settings").await.len(), 1);
        // Someone else cannot.
        env.telegram.push_message(4242, "/alerts");
        env.telegram
            .push_callback(4242, 1, "a:unmute:backup_failed");
        env.telegram
            .wait_for_messages(4242, 2, Duration::from_secs(10))
            .await;
        assert_eq!(
            alerts::muted_kinds(conn).await.unwrap(),
            vec![AlertKind::BackupFailed]
        );
        assert!(
            env.telegram
                .messages_to(4242)
                .iter()
                .all(|m| !m.text.contains("Firing now"))
        );
    }

    #[actix_rt::test]
    async fn the_bots_alert_list_stays_within_one_message() {
        let env = spawn(&[]).await;
        let conn = &mut env.app.db.connect().await;
        alerts::set_muted(conn, AlertKind::SyncFailing, true)
            .await
            .unwrap();
        for n in 0..23 {
            let alert = Alert::SyncFailing {
                sync: format!("sync{n}"),
                error: "e".repeat(2000),
            };
            alerts::raise(conn, &alert, 5).await.unwrap();
        }
        env.telegram.push_message(ADMIN_A, "/alerts");
        let menu = wait_menu(&env, ADMIN_A, 1).await;
        assert!(menu.text.contains("Firing now: 23"), "{}", menu.text);
        assert_eq!(menu.text.matches("\n• ").count(), 20, "{}", menu.text);
        assert!(menu.text.contains("… and 3 more"), "{}", menu.text);
        assert!(menu.text.chars().count() < 4096);
    }

    /// Waits for the `n`-th /alerts menu an admin got (sent or edited into place).
    async fn wait_menu(env: &Env, admin: i64, n: usize) -> SentMessage {
        wait_until_within("the alerts menu", Duration::from_secs(10), || async {
            told(env, admin, "Firing now").len() >= n
        })
        .await;
        told(env, admin, "Firing now").pop().unwrap()
    }
}

// -- Sale notices and the daily digest -----------------------------------------------------------

mod business {
    use super::events::shop;
    use super::*;

    use chrono::{DateTime, FixedOffset, NaiveTime, TimeZone, Utc};
    use support::db::Subscriber;
    use vpn_shop::db::stats;
    use vpn_shop::domain::alerts::{DigestFigures, ProviderRevenue};
    use vpn_shop::domain::{Money, PaymentProvider, UserId};

    #[actix_rt::test]
    async fn sales_are_not_told_by_default() {
        let shop = shop(&[]).await;
        let env = &shop.env;
        let (_, order) = shop.order(7020).await;
        shop.pay(&order).await;
        // The buyer's own message has gone out, so the sale was handled.
        env.telegram
            .wait_for_messages(7020, 1, Duration::from_secs(20))
            .await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        settle(&env.app).await;
        assert_told(env, "New sale", 0);
        assert!(recorded(&mut env.app.db.connect().await).await.is_empty());
    }

    #[actix_rt::test]
    async fn with_admin_notify_sales_each_sale_is_told_once() {
        let shop = shop(&[("ADMIN_NOTIFY_SALES", "true")]).await;
        let env = &shop.env;
        let (user, order) = shop.order(7021).await;
        let transaction = shop.pay(&order).await;
        shop.notify(&transaction).await;
        wait_told(env, "New sale", 1).await;
        settle(&env.app).await;
        assert_told(env, "New sale", 1);
        assert_eq!(
            told(env, ADMIN_A, "New sale")[0].text,
            format!(
                "💰 <b>New sale: 30 days</b>\n299 ₽ through wata, user #{user} (Telegram 7021)."
            )
        );
    }

    fn at(rfc3339: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(rfc3339).unwrap().to_utc()
    }

    async fn user(
        conn: &mut AsyncPgConnection,
        telegram_id: i64,
        created: &str,
        trial: Option<&str>,
    ) -> UserId {
        let id = Subscriber::new(telegram_id).insert(conn).await;
        diesel::sql_query("UPDATE users SET created_at = $2, trial_used_at = $3 WHERE id = $1")
            .bind::<diesel::sql_types::BigInt, _>(id.0)
            .bind::<diesel::sql_types::Timestamptz, _>(at(created))
            .bind::<diesel::sql_types::Nullable<diesel::sql_types::Timestamptz>, _>(trial.map(at))
            .execute(conn)
            .await
            .unwrap();
        id
    }

    async fn payment(
        conn: &mut AsyncPgConnection,
        user: UserId,
        provider: &str,
        status: &str,
        amount: Money,
        paid: Option<&str>,
    ) -> i64 {
        #[derive(QueryableByName)]
        struct Id {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            id: i64,
        }
        diesel::sql_query(
            "INSERT INTO payments (user_id, provider, status, amount_minor, currency, days, paid_at) \
             VALUES ($1, $2, $3, $4, $5, 30, $6) RETURNING id",
        )
        .bind::<diesel::sql_types::BigInt, _>(user.0)
        .bind::<diesel::sql_types::Text, _>(provider)
        .bind::<diesel::sql_types::Text, _>(status)
        .bind::<diesel::sql_types::BigInt, _>(amount.minor)
        .bind::<diesel::sql_types::Text, _>(amount.currency.as_str())
        .bind::<diesel::sql_types::Nullable<diesel::sql_types::Timestamptz>, _>(paid.map(at))
        .get_result::<Id>(conn)
        .await
        .unwrap()
        .id
    }

    async fn refund(
        conn: &mut AsyncPgConnection,
        payment: i64,
        minor: i64,
        state: &str,
        made: &str,
    ) {
        diesel::sql_query(
            "INSERT INTO payment_refunds (payment_id, provider, external_id, amount_minor, \
                 days_taken_back, state, created_at) \
             SELECT id, provider, gen_random_uuid()::text, $2, 0, $3, $4 FROM payments WHERE id = $1",
        )
        .bind::<diesel::sql_types::BigInt, _>(payment)
        .bind::<diesel::sql_types::BigInt, _>(minor)
        .bind::<diesel::sql_types::Text, _>(state)
        .bind::<diesel::sql_types::Timestamptz, _>(at(made))
        .execute(conn)
        .await
        .unwrap();
    }

    async fn ending(conn: &mut AsyncPgConnection, telegram_id: i64, status: &str, ends: &str) {
        let id = Subscriber {
            expires_at: Some(at(ends)),
            ..Subscriber::new(telegram_id)
        }
        .insert(conn)
        .await;
        diesel::sql_query("UPDATE subscriptions SET status = $2 WHERE user_id = $1")
            .bind::<diesel::sql_types::BigInt, _>(id.0)
            .bind::<diesel::sql_types::Text, _>(status)
            .execute(conn)
            .await
            .unwrap();
    }

    /// 1 December 2026 in Moscow (UTC+3): from 30 Nov 21:00 UTC to 1 Dec 21:00 UTC.
    #[tokio::test]
    async fn the_digest_counts_one_local_day_of_a_seeded_shop() {
        let db = support::db::TestDb::new().await;
        let conn = &mut db.connect().await;
        let rub = Money::rub_kopecks;
        // Joined in the day with a trial, paid in Stars after it: new, trial, conversion, sale.
        let u1 = user(
            conn,
            1,
            "2026-11-30T22:00:00Z",
            Some("2026-11-30T22:05:00Z"),
        )
        .await;
        payment(
            conn,
            u1,
            "stars",
            "succeeded",
            Money::stars(150),
            Some("2026-12-01T10:00:00Z"),
        )
        .await;
        // Trial 10 days before, first payment in the day: a conversion and a sale.
        let u2 = user(
            conn,
            2,
            "2026-11-20T10:00:00Z",
            Some("2026-11-21T10:00:00Z"),
        )
        .await;
        payment(
            conn,
            u2,
            "yookassa",
            "succeeded",
            rub(29_900),
            Some("2026-12-01T12:00:00Z"),
        )
        .await;
        // Paid 20 days before and again in the day: a renewal and a sale, no conversion (no
        // trial); a free order in the day is no sale; a pending one neither.
        let u3 = user(conn, 3, "2026-11-01T10:00:00Z", None).await;
        let earlier = payment(
            conn,
            u3,
            "wata",
            "succeeded",
            rub(29_900),
            Some("2026-11-11T10:00:00Z"),
        )
        .await;
        payment(
            conn,
            u3,
            "wata",
            "succeeded",
            rub(59_900),
            Some("2026-12-01T20:59:59Z"),
        )
        .await;
        payment(
            conn,
            u3,
            "free",
            "succeeded",
            rub(0),
            Some("2026-12-01T13:00:00Z"),
        )
        .await;
        payment(conn, u3, "wata", "pending", rub(29_900), None).await;
        // Joined in the day, paid only after it (local 2 Dec 00:00:00): new, nothing else.
        let u4 = user(conn, 4, "2026-12-01T20:00:00Z", None).await;
        payment(
            conn,
            u4,
            "yookassa",
            "succeeded",
            rub(29_900),
            Some("2026-12-01T21:00:00Z"),
        )
        .await;
        // Joined the day before (local 30 Nov 23:59): not new.
        user(
            conn,
            5,
            "2026-11-30T20:59:00Z",
            Some("2026-11-30T20:59:30Z"),
        )
        .await;
        // A refund applied in the day, one refused, one applied the day before.
        refund(conn, earlier, 10_000, "applied", "2026-12-01T09:00:00Z").await;
        refund(conn, earlier, 5_000, "failed", "2026-12-01T09:30:00Z").await;
        refund(conn, earlier, 1_000, "applied", "2026-11-30T20:00:00Z").await;
        // Ending on local 3 December (the day after the digest is sent): two active ones count.
        ending(conn, 6, "active", "2026-12-02T21:00:00Z").await;
        ending(conn, 7, "active", "2026-12-03T20:59:59Z").await;
        ending(conn, 8, "active", "2026-12-03T21:00:00Z").await;
        ending(conn, 9, "disabled", "2026-12-03T10:00:00Z").await;
        ending(conn, 10, "active", "2026-12-02T20:59:59Z").await;

        let from = at("2026-11-30T21:00:00Z");
        let to = at("2026-12-01T21:00:00Z");
        let figures = stats::digest(conn, from, to, at("2026-12-02T21:00:00Z"))
            .await
            .unwrap();
        assert_eq!(
            figures,
            DigestFigures {
                sales: 3,
                revenue: vec![
                    ProviderRevenue {
                        provider: PaymentProvider::Wata,
                        amount: rub(59_900),
                        payments: 1,
                    },
                    ProviderRevenue {
                        provider: PaymentProvider::Yookassa,
                        amount: rub(29_900),
                        payments: 1,
                    },
                    ProviderRevenue {
                        provider: PaymentProvider::Stars,
                        amount: Money::stars(150),
                        payments: 1,
                    },
                ],
                new_users: 2,
                trials: 1,
                trial_conversions: 2,
                renewals: 1,
                refunds: 1,
                refunded: vec![rub(10_000)],
                expiring_tomorrow: 2,
            }
        );
    }

    #[actix_rt::test]
    async fn the_digest_of_yesterday_goes_out_once_after_admin_digest_at() {
        let env = spawn(&[
            ("ADMIN_DIGEST_AT", "00:00"),
            ("ALERT_CHECK_INTERVAL", "200ms"),
            ("SCHEDULER_TICK", "100ms"),
        ])
        .await;
        let moscow = FixedOffset::east_opt(3 * 3600).unwrap();
        let yesterday = Utc::now()
            .with_timezone(&moscow)
            .date_naive()
            .pred_opt()
            .unwrap();
        let noon = moscow
            .from_local_datetime(&yesterday.and_time(NaiveTime::from_hms_opt(12, 0, 0).unwrap()))
            .unwrap()
            .to_utc();
        let conn = &mut env.app.db.connect().await;
        let buyer = Subscriber::new(7030).insert(conn).await;
        payment(
            conn,
            buyer,
            "wata",
            "succeeded",
            Money::rub_kopecks(29_900),
            Some(&noon.to_rfc3339()),
        )
        .await;
        wait_told(&env, "Digest of", 1).await;
        tokio::time::sleep(Duration::from_millis(1000)).await;
        settle(&env.app).await;
        assert_told(&env, "Digest of", 1);
        let text = &told(&env, ADMIN_A, "Digest of")[0].text;
        assert!(
            text.starts_with(&format!(
                "📊 <b>Digest of {}</b>\nSales: 1\nRevenue: wata 299 ₽ (1)\n",
                yesterday.format("%-d %b %Y")
            )),
            "{text}"
        );
    }
}
