//! Notifications and broadcasts through the real app, the fake Telegram Bot API and the fake
//! SMTP server.

use crate::support;

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use support::app::{TestApp, spawn_app};
use support::db::Subscriber;
use support::smtp::FakeSmtp;
use support::telegram::{FakeTelegram, TOKEN};
use support::wait_until_within;
use vpn_shop::actors::notifier::Scan;
use vpn_shop::db::broadcasts::{self, Author};
use vpn_shop::db::models::{Broadcast, Notification as Delivery};
use vpn_shop::db::notifications;
use vpn_shop::db::schema::{jobs as jobs_table, notifications as deliveries, subscriptions, users};
use vpn_shop::domain::broadcast::{Audience, Segment, validate};
use vpn_shop::domain::notifications::{Notification, NotifyJob};
use vpn_shop::domain::{
    BroadcastId, BroadcastStatus, JobState, Language, Money, NotificationChannel,
    NotificationStatus, UserId,
};

struct Env {
    app: TestApp,
    telegram: FakeTelegram,
    smtp: FakeSmtp,
}

async fn spawn(extra: &[(&str, &str)]) -> Env {
    let telegram = FakeTelegram::start();
    let smtp = FakeSmtp::start();
    let (tg_url, smtp_url) = (telegram.url(), smtp.url());
    let mut settings = vec![
        ("TELEGRAM_BOT_TOKEN", TOKEN),
        ("TELEGRAM_API_URL", tg_url.as_str()),
        ("SMTP_URL", smtp_url.as_str()),
        ("SMTP_FROM", "VPN Shop <noreply@shop.example>"),
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

fn days(n: f64) -> DateTime<Utc> {
    Utc::now() + chrono::Duration::seconds((n * 86_400.0) as i64)
}

/// Waits until no `notify` job is pending or running.
async fn settle(app: &TestApp) {
    app.wait_jobs_idle("notify").await;
}

async fn deliveries_of(conn: &mut AsyncPgConnection, user: UserId) -> Vec<Delivery> {
    let mut rows = notifications::for_user(conn, user).await.unwrap();
    rows.sort_by_key(|r| r.id);
    rows
}

fn payment(user: UserId) -> NotifyJob {
    NotifyJob {
        user_id: user,
        notification: Notification::PaymentSucceeded {
            plan: "3 months".into(),
            amount: Money::rub_kopecks(54900),
            days: 90,
            expires_at: days(90.0),
        },
        dedup_key: format!("payment:{user}:42"),
    }
}

async fn enqueue(conn: &mut AsyncPgConnection, job: &NotifyJob) -> bool {
    notifications::enqueue_once(conn, job, 20)
        .await
        .unwrap()
        .is_some()
}

#[actix_rt::test]
async fn a_payment_gives_exactly_one_telegram_message_and_one_email() {
    let env = spawn(&[]).await;
    let conn = &mut env.app.db.connect().await;
    let user = Subscriber {
        language: Language::Ru,
        email: Some("ivan@example.com"),
        expires_at: Some(days(90.0)),
        ..Subscriber::new(5001)
    }
    .insert(conn)
    .await;
    diesel::update(subscriptions::table.filter(subscriptions::user_id.eq(user)))
        .set(subscriptions::subscription_url.eq("https://sub.example.com/sub/xyz"))
        .execute(conn)
        .await
        .unwrap();

    let job = payment(user);
    assert!(enqueue(conn, &job).await);
    // The same notification asked for again (a redelivered webhook): not enqueued again.
    assert!(!enqueue(conn, &job).await);
    // Even a second job for it (enqueued by other means) sends nothing twice.
    vpn_shop::db::jobs::enqueue(conn, vpn_shop::db::jobs::NewJob::new("notify", &job), 20)
        .await
        .unwrap();
    settle(&env.app).await;

    let messages = env.telegram.messages_to(5001);
    assert_eq!(messages.len(), 1, "{messages:?}");
    let text = &messages[0].text;
    assert!(text.contains("Оплата 549 ₽ получена"), "{text}");
    assert!(
        text.contains("https://sub.example.com/sub/xyz"),
        "the link: {text}"
    );
    assert_eq!(messages[0].parse_mode.as_deref(), Some("HTML"));
    let button = &messages[0].reply_markup.as_ref().unwrap()["inline_keyboard"][0][0];
    assert_eq!(button["text"], "Моя подписка");

    let mails = env.smtp.messages();
    assert_eq!(mails.len(), 1);
    assert_eq!(mails[0].to, vec!["ivan@example.com"]);
    assert_eq!(mails[0].subject, "Оплата получена: 3 months");
    assert!(
        mails[0]
            .text
            .as_deref()
            .unwrap()
            .contains("Оплата 549 ₽ получена")
    );
    assert!(mails[0].html.as_deref().unwrap().contains("<b>Спасибо!"));

    let rows = deliveries_of(conn, user).await;
    let summary: Vec<_> = rows.iter().map(|r| (r.channel, r.status)).collect();
    assert_eq!(
        summary,
        vec![
            (NotificationChannel::Telegram, NotificationStatus::Sent),
            (NotificationChannel::Email, NotificationStatus::Sent),
        ]
    );
    assert!(rows.iter().all(|r| r.sent_at.is_some() && r.attempts == 1));
    env.app.shutdown().await;
}

#[actix_rt::test]
async fn only_money_and_expiry_go_by_email_and_only_to_users_with_an_address() {
    let env = spawn(&[]).await;
    let conn = &mut env.app.db.connect().await;
    let with_email = Subscriber {
        email: Some("a@example.com"),
        ..Subscriber::new(5101)
    }
    .insert(conn)
    .await;
    let without = Subscriber::new(5102).insert(conn).await;
    let traffic = |user| NotifyJob {
        user_id: user,
        notification: Notification::TrafficThreshold {
            percent: 80,
            used_bytes: 8 << 30,
            limit_bytes: 10 << 30,
        },
        dedup_key: format!("traffic:80:{user}:1"),
    };
    enqueue(conn, &traffic(with_email)).await;
    enqueue(conn, &payment(without)).await;
    settle(&env.app).await;
    assert_eq!(env.telegram.sent_count(), 2);
    assert!(
        env.smtp.messages().is_empty(),
        "traffic is not emailed; the other user has no address"
    );
    env.app.shutdown().await;
}

#[actix_rt::test]
async fn expiry_warnings_are_sent_once_per_threshold_however_often_the_scan_runs() {
    let env = spawn(&[]).await;
    let conn = &mut env.app.db.connect().await;
    let user = Subscriber {
        expires_at: Some(days(2.5)),
        email: Some("e@example.com"),
        ..Subscriber::new(5201)
    }
    .insert(conn)
    .await;
    let _far = Subscriber {
        expires_at: Some(days(20.0)),
        ..Subscriber::new(5202)
    }
    .insert(conn)
    .await;
    let scan = || env.app.app.notifier.addr().send(Scan);
    for _ in 0..5 {
        scan().await.unwrap().unwrap();
    }
    settle(&env.app).await;
    let messages = env.telegram.messages_to(5201);
    assert_eq!(messages.len(), 1, "one 3-day warning: {messages:?}");
    assert!(
        messages[0].text.contains("ends in 3 days"),
        "{}",
        messages[0].text
    );
    assert!(env.telegram.messages_to(5202).is_empty());
    assert_eq!(env.smtp.messages().len(), 1);

    // A day later: the 1-day threshold, once.
    diesel::update(subscriptions::table.filter(subscriptions::user_id.eq(user)))
        .set(subscriptions::expires_at.eq(days(0.5)))
        .execute(conn)
        .await
        .unwrap();
    for _ in 0..3 {
        scan().await.unwrap().unwrap();
    }
    settle(&env.app).await;
    let messages = env.telegram.messages_to(5201);
    assert_eq!(messages.len(), 2);
    assert!(
        messages[1].text.contains("ends in 1 day"),
        "{}",
        messages[1].text
    );

    // The end: marked expired, told once.
    diesel::update(subscriptions::table.filter(subscriptions::user_id.eq(user)))
        .set(subscriptions::expires_at.eq(days(-0.01)))
        .execute(conn)
        .await
        .unwrap();
    for _ in 0..3 {
        scan().await.unwrap().unwrap();
    }
    settle(&env.app).await;
    let messages = env.telegram.messages_to(5201);
    assert_eq!(messages.len(), 3);
    assert!(
        messages[2].text.contains("Your subscription ended"),
        "{}",
        messages[2].text
    );
    let status: vpn_shop::domain::SubscriptionStatus = subscriptions::table
        .filter(subscriptions::user_id.eq(user))
        .select(subscriptions::status)
        .first(conn)
        .await
        .unwrap();
    assert_eq!(status, vpn_shop::domain::SubscriptionStatus::Expired);

    // A renewal is a new period: its warnings come again.
    diesel::update(subscriptions::table.filter(subscriptions::user_id.eq(user)))
        .set((
            subscriptions::expires_at.eq(days(2.0)),
            subscriptions::status.eq(vpn_shop::domain::SubscriptionStatus::Active),
        ))
        .execute(conn)
        .await
        .unwrap();
    scan().await.unwrap().unwrap();
    settle(&env.app).await;
    assert_eq!(env.telegram.messages_to(5201).len(), 4);
    env.app.shutdown().await;
}

#[actix_rt::test]
async fn trials_get_their_own_notice_a_day_before_the_end() {
    let env = spawn(&[]).await;
    let conn = &mut env.app.db.connect().await;
    Subscriber {
        expires_at: Some(days(0.7)),
        is_trial: true,
        ..Subscriber::new(5301)
    }
    .insert(conn)
    .await;
    Subscriber {
        expires_at: Some(days(2.0)),
        is_trial: true,
        ..Subscriber::new(5302)
    }
    .insert(conn)
    .await;
    for _ in 0..2 {
        env.app
            .app
            .notifier
            .addr()
            .send(Scan)
            .await
            .unwrap()
            .unwrap();
    }
    settle(&env.app).await;
    let messages = env.telegram.messages_to(5301);
    assert_eq!(messages.len(), 1);
    assert!(
        messages[0].text.contains("free trial ends"),
        "{}",
        messages[0].text
    );
    assert!(
        env.telegram.messages_to(5302).is_empty(),
        "not yet, and no paid-plan warning"
    );
    env.app.shutdown().await;
}

#[actix_rt::test]
async fn a_user_who_blocked_the_bot_is_marked_and_skipped() {
    let env = spawn(&[]).await;
    let conn = &mut env.app.db.connect().await;
    let user = Subscriber {
        email: Some("b@example.com"),
        ..Subscriber::new(5401)
    }
    .insert(conn)
    .await;
    env.telegram.block_chat(5401);
    enqueue(conn, &payment(user)).await;
    settle(&env.app).await;
    let blocked: bool = users::table
        .find(user)
        .select(users::bot_blocked)
        .first(conn)
        .await
        .unwrap();
    assert!(blocked);
    assert_eq!(env.smtp.messages().len(), 1, "email still goes out");

    let sends = env.telegram.calls_to("sendMessage").len();
    let mut later = payment(user);
    later.dedup_key = "payment:later".into();
    enqueue(conn, &later).await;
    settle(&env.app).await;
    assert_eq!(
        env.telegram.calls_to("sendMessage").len(),
        sends,
        "no more attempts"
    );
    let rows = deliveries_of(conn, user).await;
    let telegram: Vec<_> = rows
        .iter()
        .filter(|r| r.channel == NotificationChannel::Telegram)
        .map(|r| (r.status, r.last_error.clone().unwrap_or_default()))
        .collect();
    assert_eq!(telegram.len(), 2);
    assert!(
        telegram
            .iter()
            .all(|(s, _)| *s == NotificationStatus::Skipped),
        "{telegram:?}"
    );
    assert_eq!(telegram[1].1, "the user blocked the bot");

    // README: "it clears when they write to the bot again".
    env.telegram.unblock_chat(5401);
    env.telegram.push_message(5401, "/start");
    env.telegram
        .wait_for_messages(5401, 1, Duration::from_secs(20))
        .await;
    let blocked: bool = users::table
        .find(user)
        .select(users::bot_blocked)
        .first(conn)
        .await
        .unwrap();
    assert!(!blocked, "cleared when the user wrote again");
    let mut again = payment(user);
    again.dedup_key = "payment:after-unblock".into();
    enqueue(conn, &again).await;
    settle(&env.app).await;
    let texts: Vec<String> = env
        .telegram
        .messages_to(5401)
        .into_iter()
        .map(|m| m.text)
        .collect();
    assert_eq!(
        texts.len(),
        2,
        "the welcome and the notification: {texts:?}"
    );
    assert!(texts[1].contains("549"), "{texts:?}");
    env.app.shutdown().await;
}

/// Replicas reserving batches of the shared budget at the same moment: no slot is handed out
/// twice, slots are at least `interval` apart, none beyond the horizon, and a paused budget says
/// when to come back.
#[actix_rt::test]
async fn batches_of_the_shared_budget_never_overlap_across_replicas() {
    use vpn_shop::db::rate;
    let db = support::db::TestDb::new().await;
    let interval = Duration::from_millis(40);
    let horizon = Duration::from_secs(1);
    let reserve = |wanted: u32| {
        let db = &db;
        async move {
            let mut conn = db.connect().await;
            rate::reserve_many(&mut conn, "telegram", interval, horizon, wanted)
                .await
                .unwrap()
        }
    };
    let asked = Utc::now();
    let batches = futures_util::future::join_all((0..6).map(|_| reserve(10))).await;
    let mut slots: Vec<DateTime<Utc>> = Vec::new();
    let mut refused = 0;
    for batch in batches {
        match batch {
            Ok((first, granted)) => {
                assert!(granted >= 1);
                for i in 0..granted {
                    slots.push(first + chrono::Duration::milliseconds(40 * i64::from(i)));
                }
            }
            Err(_) => refused += 1,
        }
    }
    let answered = Utc::now();
    slots.sort();
    // Up to a second ahead at 40 ms apart: the slot now and 25 more (a few more when the
    // statements ran a little apart).
    assert!(
        (26..=32).contains(&slots.len()),
        "{} slots, {refused} batches refused",
        slots.len()
    );
    for pair in slots.windows(2) {
        let gap = (pair[1] - pair[0]).num_microseconds().unwrap();
        assert!(gap >= 39_999, "slots {gap} µs apart");
    }
    assert!(slots[0] >= asked - chrono::Duration::milliseconds(100));
    assert!(slots[slots.len() - 1] <= answered + chrono::Duration::from_std(horizon).unwrap());
    // A 429 pauses it for everyone: nothing is handed out, and the answer says when to ask again.
    let mut conn = db.connect().await;
    let until = Utc::now() + chrono::Duration::seconds(5);
    rate::pause_until(&mut conn, "telegram", until)
        .await
        .unwrap();
    let Err(retry_at) = reserve(1).await else {
        panic!("paused");
    };
    // (PostgreSQL keeps microseconds.)
    let earliest =
        until - chrono::Duration::from_std(horizon).unwrap() - chrono::Duration::milliseconds(1);
    assert!(retry_at >= earliest, "{retry_at} before {earliest}");
}

/// README ("Telegram's limits"): a 429 pauses the shared budget for its `retry_after`, so no
/// message to anyone leaves during the pause — not only the one Telegram refused — and the
/// refused one is resent after it.
#[actix_rt::test]
async fn a_429_pauses_every_send_for_its_retry_after_and_the_message_is_resent() {
    let env = spawn(&[]).await;
    let conn = &mut env.app.db.connect().await;
    let first = Subscriber::new(5501).insert(conn).await;
    let other = Subscriber::new(5502).insert(conn).await;
    env.telegram.flood_next(1, 2);
    enqueue(conn, &payment(first)).await;
    wait_until_within("the 429", Duration::from_secs(20), || async {
        env.telegram.count_429() == 1
    })
    .await;
    let flood = env
        .telegram
        .calls_to("sendMessage")
        .into_iter()
        .find(|c| c.status == 429)
        .expect("the 429 call");
    // Another chat's message, asked for during the pause, waits for its end too.
    enqueue(conn, &payment(other)).await;
    env.telegram
        .wait_for_messages(5502, 1, Duration::from_secs(20))
        .await;
    env.telegram
        .wait_for_messages(5501, 1, Duration::from_secs(20))
        .await;
    settle(&env.app).await;
    for chat in [5501, 5502] {
        let sent = env.telegram.messages_to(chat);
        assert_eq!(sent.len(), 1, "{chat}: {sent:?}");
        let after = sent[0].at.duration_since(flood.at);
        assert!(
            after >= Duration::from_millis(1_900),
            "chat {chat} was sent {after:?} after a 429 asking for 2 s"
        );
    }
    assert_eq!(env.telegram.count_429(), 1);
    let rows = deliveries_of(conn, first).await;
    assert_eq!(
        (rows[0].status, rows[0].attempts),
        (NotificationStatus::Sent, 1),
        "not a failure"
    );
    let metrics = env.app.get("/metrics", None).await.text().await.unwrap();
    assert!(metrics.contains("vpn_shop_telegram_flood_waits_total 1"));
    env.app.shutdown().await;
}

/// Telegram messages one replica sent (`vpn_shop_notifications_total{channel="telegram",
/// outcome="sent"}`) according to its `/metrics` at `base`.
async fn telegram_sent_by(http: &reqwest::Client, base: &str) -> u64 {
    let text = http
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .filter(|l| {
            l.starts_with("vpn_shop_notifications_total{")
                && l.contains(r#"channel="telegram""#)
                && l.contains(r#"outcome="sent""#)
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

/// README ("Telegram's limits"): two replicas send through one budget — together at most
/// `TELEGRAM_MAX_RATE` a second and one message a second to a chat. The fake Bot API answers
/// 429 beyond 10 a second or one a second in a chat; each replica alone would stay under 8.
#[actix_rt::test]
async fn two_replicas_keep_together_to_one_rate_and_one_message_a_second_per_chat() {
    let env = spawn(&[("TELEGRAM_MAX_RATE", "8"), ("JOB_CONCURRENCY", "20")]).await;
    env.telegram.set_global_limit(10);
    env.telegram.set_per_chat_limit(1);
    let second_dir = tempfile::tempdir().unwrap();
    let tg_url = env.telegram.url();
    let smtp_url = env.smtp.url();
    let settings = support::app::test_settings(
        &env.app.db,
        second_dir.path(),
        &[
            ("TELEGRAM_BOT_TOKEN", TOKEN),
            ("TELEGRAM_API_URL", tg_url.as_str()),
            ("SMTP_URL", smtp_url.as_str()),
            ("SMTP_FROM", "VPN Shop <noreply@shop.example>"),
            ("JOB_POLL_INTERVAL", "200ms"),
            ("TELEGRAM_MAX_RATE", "8"),
            ("JOB_CONCURRENCY", "20"),
        ],
    );
    let second = vpn_shop::app::start(&settings, &env.app.db.url)
        .await
        .expect("the second replica starts");
    let second_url = format!("http://{}", second.http_addr());
    let conn = &mut env.app.db.connect().await;
    // 20 chats, two messages each: 40 messages, all due at once.
    let mut jobs = Vec::new();
    for i in 0..20 {
        let user = Subscriber::new(5_600 + i).insert(conn).await;
        for n in 0..2 {
            let mut job = payment(user);
            job.dedup_key = format!("payment:{user}:{n}");
            jobs.push(job);
        }
    }
    for job in &jobs {
        enqueue(conn, job).await;
    }
    wait_until_within("40 messages", Duration::from_secs(60), || async {
        env.telegram.sent_messages().len() >= 40
    })
    .await;
    settle(&env.app).await;
    let floods: Vec<String> = env
        .telegram
        .calls_to("sendMessage")
        .into_iter()
        .filter(|c| c.status == 429)
        .map(|c| {
            let sent = env.telegram.sent_messages();
            let window = |m: &&support::telegram::SentMessage| {
                m.at <= c.at && c.at.duration_since(m.at) < Duration::from_secs(1)
            };
            let in_second = sent.iter().filter(window).count();
            let chat = c.params["chat_id"].as_i64().unwrap_or_default();
            let in_chat = sent
                .iter()
                .filter(window)
                .filter(|m| m.chat_id == chat)
                .count();
            format!("chat {chat}: {in_second} sent in the second before, {in_chat} to this chat")
        })
        .collect();
    assert!(floods.is_empty(), "beyond Telegram's limits: {floods:#?}");
    for i in 0..20 {
        let sent = env.telegram.messages_to(5_600 + i);
        assert_eq!(sent.len(), 2, "chat {}", 5_600 + i);
        let apart = sent[1].at.duration_since(sent[0].at);
        assert!(
            apart >= Duration::from_millis(900),
            "two messages {apart:?} apart in one chat"
        );
    }
    // Both replicas sent some of them.
    let (a, b) = (
        telegram_sent_by(&env.app.http, &env.app.base_url).await,
        telegram_sent_by(&env.app.http, &second_url).await,
    );
    assert_eq!(a + b, 40);
    assert!(a > 0 && b > 0, "one replica sent everything: {a} + {b}");
    second.shutdown().await;
    env.app.shutdown().await;
}

/// README (`DISPLAY_UTC_OFFSET`): the dates and times in messages are in the configured zone.
#[actix_rt::test]
async fn dates_in_messages_are_shown_in_the_display_offset() {
    let env = spawn(&[("DISPLAY_UTC_OFFSET", "+05:00")]).await;
    let conn = &mut env.app.db.connect().await;
    let user = Subscriber {
        expires_at: Some(days(90.0)),
        ..Subscriber::new(5701)
    }
    .insert(conn)
    .await;
    diesel::update(subscriptions::table.filter(subscriptions::user_id.eq(user)))
        .set(subscriptions::subscription_url.eq("https://sub.example.com/sub/zone"))
        .execute(conn)
        .await
        .unwrap();
    let mut job = payment(user);
    if let Notification::PaymentSucceeded { expires_at, .. } = &mut job.notification {
        *expires_at = "2026-12-31T22:30:00Z".parse().unwrap();
    }
    enqueue(conn, &job).await;
    let sent = env
        .telegram
        .wait_for_messages(5701, 1, Duration::from_secs(20))
        .await;
    // 22:30 UTC on New Year's Eve is New Year's Day five hours east.
    assert!(
        sent[0].text.contains("active until 1 Jan 2027."),
        "{}",
        sent[0].text
    );
    env.app.shutdown().await;
}

#[actix_rt::test]
async fn a_mail_outage_is_retried_without_resending_on_telegram() {
    let env = spawn(&[]).await;
    let conn = &mut env.app.db.connect().await;
    let user = Subscriber {
        email: Some("c@example.com"),
        ..Subscriber::new(5601)
    }
    .insert(conn)
    .await;
    env.smtp.set_down(true);
    enqueue(conn, &payment(user)).await;
    wait_until_within(
        "a failed email attempt",
        Duration::from_secs(10),
        || async {
            deliveries_of(&mut env.app.db.connect().await, user)
                .await
                .iter()
                .any(|r| r.channel == NotificationChannel::Email && r.attempts >= 2)
        },
    )
    .await;
    env.smtp.set_down(false);
    settle(&env.app).await;
    assert_eq!(env.smtp.messages().len(), 1);
    assert_eq!(
        env.telegram.messages_to(5601).len(),
        1,
        "Telegram was sent once"
    );
    env.app.shutdown().await;
}

async fn many_users(conn: &mut AsyncPgConnection, first: i64, n: i64) {
    diesel::sql_query(format!(
        "INSERT INTO users (telegram_id, referral_code) \
         SELECT {first} + g, 'bulk' || ({first} + g) FROM generate_series(0, {} ) g",
        n - 1
    ))
    .execute(conn)
    .await
    .unwrap();
}

async fn broadcast(conn: &mut AsyncPgConnection, audience: Audience) -> Broadcast {
    let message = validate(
        "<b>News</b>: faster servers",
        Some("Read"),
        Some("https://example.com/news"),
    )
    .unwrap();
    broadcasts::create_and_queue(conn, &message, audience, Author::Telegram(1), 20)
        .await
        .unwrap()
}

async fn broadcast_state(conn: &mut AsyncPgConnection, id: BroadcastId) -> Broadcast {
    broadcasts::find(conn, id).await.unwrap().unwrap()
}

/// Waits until the broadcast `id` completed, within `within`.
async fn wait_completed(db: &support::db::TestDb, id: BroadcastId, within: Duration) {
    wait_until_within("the broadcast to complete", within, || async {
        broadcast_state(&mut db.connect().await, id).await.status == BroadcastStatus::Completed
    })
    .await;
}

const ALL: Audience = Audience {
    segment: Segment::All,
    language: None,
};

#[actix_rt::test]
async fn a_broadcast_keeps_to_the_rate_limit_and_provokes_no_429() {
    // 300 users, Telegram allowing 100 messages a second: the shop sends at 95/s, for over 3 s,
    // close to the limit all along.
    let env = spawn(&[("TELEGRAM_MAX_RATE", "100"), ("BROADCAST_RATE", "95")]).await;
    env.telegram.set_global_limit(100);
    env.telegram.set_per_chat_limit(1);
    let conn = &mut env.app.db.connect().await;
    many_users(conn, 700_000, 300).await;
    let started = Instant::now();
    let b = broadcast(conn, ALL).await;
    wait_completed(&env.app.db, b.id, Duration::from_secs(90)).await;
    let took = started.elapsed();
    let done = broadcast_state(conn, b.id).await;
    assert_eq!(
        (done.total, done.sent, done.failed, done.blocked),
        (300, 300, 0, 0)
    );
    assert_eq!(env.telegram.count_429(), 0, "never beyond Telegram's limit");
    assert!(
        took >= Duration::from_secs(3),
        "300 messages at 95/s take 3 s at least: {took:?}"
    );
    let sent = env.telegram.sent_messages();
    assert_eq!(sent.len(), 300);
    let mut chats: Vec<i64> = sent.iter().map(|m| m.chat_id).collect();
    chats.sort_unstable();
    chats.dedup();
    assert_eq!(chats.len(), 300, "everyone once");
    let button = &sent[0].reply_markup.as_ref().unwrap()["inline_keyboard"][0][0];
    assert_eq!(button["url"], "https://example.com/news");
    env.app.shutdown().await;
}

#[actix_rt::test]
async fn a_broadcast_reaches_only_its_audience_and_counts_blocked_users() {
    let env = spawn(&[("TELEGRAM_MAX_RATE", "200"), ("BROADCAST_RATE", "200")]).await;
    let conn = &mut env.app.db.connect().await;
    Subscriber {
        language: Language::Ru,
        expires_at: Some(days(10.0)),
        ..Subscriber::new(5701)
    }
    .insert(conn)
    .await;
    Subscriber {
        language: Language::Ru,
        expires_at: Some(days(-10.0)),
        ..Subscriber::new(5702)
    }
    .insert(conn)
    .await;
    Subscriber {
        language: Language::En,
        expires_at: Some(days(10.0)),
        ..Subscriber::new(5703)
    }
    .insert(conn)
    .await;
    Subscriber {
        language: Language::Ru,
        expires_at: Some(days(10.0)),
        ..Subscriber::new(5704)
    }
    .insert(conn)
    .await;
    Subscriber {
        language: Language::Ru,
        expires_at: Some(days(10.0)),
        ..Subscriber::new(5705)
    }
    .insert(conn)
    .await;
    diesel::update(users::table.filter(users::telegram_id.eq(5705)))
        .set(users::banned.eq(true))
        .execute(conn)
        .await
        .unwrap();
    env.telegram.block_chat(5704);
    let audience = Audience {
        segment: Segment::Active,
        language: Some(Language::Ru),
    };
    let b = broadcast(conn, audience).await;
    wait_completed(&env.app.db, b.id, Duration::from_secs(20)).await;
    let done = broadcast_state(conn, b.id).await;
    assert_eq!(
        (done.total, done.sent, done.failed, done.blocked),
        (2, 1, 0, 1)
    );
    assert_eq!(env.telegram.messages_to(5701).len(), 1);
    for other in [5702, 5703, 5705] {
        assert!(
            env.telegram.messages_to(other).is_empty(),
            "{other} is not in the audience"
        );
    }
    env.app.shutdown().await;
}

#[actix_rt::test]
async fn a_canceled_broadcast_stops() {
    let env = spawn(&[("TELEGRAM_MAX_RATE", "20"), ("BROADCAST_RATE", "20")]).await;
    let conn = &mut env.app.db.connect().await;
    many_users(conn, 800_000, 400).await;
    let b = broadcast(conn, ALL).await;
    wait_until_within("some messages out", Duration::from_secs(20), || async {
        env.telegram.sent_count() >= 20
    })
    .await;
    assert!(broadcasts::cancel(conn, b.id).await.unwrap());
    let at_cancel = env.telegram.sent_count();
    // The broadcast's job ends: nothing is left that could send.
    wait_until_within(
        "the broadcast job to end",
        Duration::from_secs(20),
        || async {
            let busy: i64 = jobs_table::table
                .filter(jobs_table::kind.eq("broadcast"))
                .filter(jobs_table::state.eq_any([JobState::Pending, JobState::Running]))
                .count()
                .get_result(&mut env.app.db.connect().await)
                .await
                .unwrap();
            busy == 0
        },
    )
    .await;
    let after = env.telegram.sent_count();
    assert!(
        after <= at_cancel + 50,
        "stops within a batch: {at_cancel} then {after}"
    );
    assert!(after < 400, "not everyone got it: {after}");
    assert_eq!(
        broadcast_state(conn, b.id).await.status,
        BroadcastStatus::Canceled
    );
    assert!(
        !broadcasts::cancel(conn, b.id).await.unwrap(),
        "canceled once"
    );
    env.app.shutdown().await;
}

#[actix_rt::test]
async fn a_restart_in_the_middle_of_a_broadcast_sends_nobody_twice() {
    let telegram = FakeTelegram::start();
    let smtp = FakeSmtp::start();
    let tg_url = telegram.url();
    let settings = [
        ("TELEGRAM_BOT_TOKEN", TOKEN),
        ("TELEGRAM_API_URL", tg_url.as_str()),
        ("TELEGRAM_MAX_RATE", "60"),
        ("BROADCAST_RATE", "60"),
        ("SHUTDOWN_TIMEOUT", "1s"),
        ("JOB_POLL_INTERVAL", "200ms"),
    ];
    let first = spawn_app(&settings).await;
    let conn = &mut first.db.connect().await;
    many_users(conn, 900_000, 300).await;
    let b = broadcast(conn, ALL).await;
    wait_until_within(
        "the broadcast to be under way",
        Duration::from_secs(20),
        || async { telegram.sent_count() >= 60 },
    )
    .await;
    // Stop this instance mid-broadcast and start another on the same database.
    let db_url = first.db.url.clone();
    let data_dir = tempfile::tempdir().unwrap();
    let mut env = vec![("DATABASE_URL", db_url.as_str())];
    env.extend_from_slice(&settings);
    let second_settings = support::app::test_settings(&first.db, data_dir.path(), &env);
    let TestApp { app, db, .. } = first;
    app.shutdown().await;
    let at_restart = telegram.sent_count();
    let second = vpn_shop::app::start(&second_settings, &db.url)
        .await
        .unwrap();
    wait_completed(&db, b.id, Duration::from_secs(60)).await;
    assert!(
        telegram.sent_count() > at_restart,
        "the second instance carried on"
    );
    let mut per_chat = std::collections::HashMap::<i64, usize>::new();
    for m in telegram.sent_messages() {
        *per_chat.entry(m.chat_id).or_default() += 1;
    }
    assert!(per_chat.values().all(|n| *n == 1), "somebody got it twice");
    let done = broadcast_state(&mut db.connect().await, b.id).await;
    // A message cut off by the restart may have reached Telegram before it was recorded: it is
    // counted failed (never resent), so the records can only be short of what went out by those.
    let delivered = telegram.sent_count();
    assert!(
        done.sent as usize <= delivered && delivered <= (done.sent + done.failed) as usize,
        "sent {} failed {} delivered {delivered}",
        done.sent,
        done.failed
    );
    assert_eq!(
        done.sent + done.failed + done.blocked,
        300,
        "everyone accounted for"
    );
    let rows: i64 = deliveries::table
        .filter(deliveries::broadcast_id.eq(b.id))
        .count()
        .get_result(&mut db.connect().await)
        .await
        .unwrap();
    assert_eq!(rows, 300);
    second.shutdown().await;
    drop(smtp);
}

#[actix_rt::test]
async fn without_a_bot_or_mail_server_notifications_are_recorded_as_nothing_sent() {
    // No TELEGRAM_BOT_TOKEN, no SMTP_URL: the notify job completes and sends nothing.
    let app = spawn_app(&[("JOB_POLL_INTERVAL", "200ms")]).await;
    let conn = &mut app.db.connect().await;
    let user = Subscriber {
        email: Some("x@example.com"),
        ..Subscriber::new(5801)
    }
    .insert(conn)
    .await;
    enqueue(conn, &payment(user)).await;
    settle(&app).await;
    let state: JobState = jobs_table::table
        .filter(jobs_table::kind.eq("notify"))
        .select(jobs_table::state)
        .first(conn)
        .await
        .unwrap();
    assert_eq!(state, JobState::Done);
    assert!(deliveries_of(conn, user).await.is_empty());
    app.shutdown().await;
}

#[actix_rt::test]
async fn admins_create_follow_and_cancel_broadcasts_over_the_api() {
    let env = spawn(&[("TELEGRAM_MAX_RATE", "10"), ("BROADCAST_RATE", "5")]).await;
    let conn = &mut env.app.db.connect().await;
    many_users(conn, 910_000, 200).await;
    let operator = env
        .app
        .token_for(vpn_shop::domain::AdminRole::Operator)
        .await;
    let viewer = env.app.token_for(vpn_shop::domain::AdminRole::Viewer).await;
    let post = |token: &str, body: serde_json::Value| {
        env.app
            .http
            .post(env.app.url("/api/v1/broadcasts"))
            .bearer_auth(token)
            .json(&body)
            .send()
    };
    let good = serde_json::json!({
        "text": "<b>Sale</b> 20% off",
        "button_text": "Buy",
        "button_url": "https://t.me/vpn_shop_test_bot?start=sale",
        "audience": {"segment": "all", "language": null}
    });

    let (status, code, _) =
        support::app::error_of(post(&viewer, good.clone()).await.unwrap()).await;
    assert_eq!((status, code.as_str()), (403, "forbidden"));
    for (body, field) in [
        (
            serde_json::json!({"text": "<b>unclosed", "audience": {"segment": "all"}}),
            "text",
        ),
        (
            serde_json::json!({"text": "x", "button_text": "Buy", "audience": {"segment": "all"}}),
            "button_url",
        ),
    ] {
        let resp = post(&operator, body).await.unwrap();
        assert_eq!(resp.status(), 422);
        let body: serde_json::Value = resp.json().await.unwrap();
        assert_eq!(body["error"]["field"], field, "{body}");
    }
    let resp = post(
        &operator,
        serde_json::json!({"text": "x", "audience": {"segment": "vip"}}),
    )
    .await
    .unwrap();
    assert_eq!(resp.status(), 422, "unknown segment");

    let resp = post(&operator, good).await.unwrap();
    assert_eq!(resp.status(), 201);
    let created: serde_json::Value = resp.json().await.unwrap();
    let id = created["id"].as_i64().unwrap();
    assert_eq!(created["status"], "queued");

    let progress_of = || async {
        env.app
            .get(&format!("/api/v1/broadcasts/{id}"), Some(&viewer))
            .await
            .json::<serde_json::Value>()
            .await
            .unwrap()
    };
    wait_until_within("progress to show", Duration::from_secs(20), || async {
        progress_of().await["sent"].as_i64().unwrap() >= 1
    })
    .await;
    let progress = progress_of().await;
    assert_eq!(progress["status"], "running");
    assert_eq!(progress["total"], 200);
    assert!(progress["sent"].as_i64().unwrap() >= 1);
    assert!(progress["remaining"].as_i64().unwrap() > 100);
    assert!(progress["eta_seconds"].as_i64().unwrap() > 10, "{progress}");

    let cancel = |token: String| {
        let req = env
            .app
            .http
            .post(env.app.url(&format!("/api/v1/broadcasts/{id}/cancel")))
            .bearer_auth(token);
        async move { req.send().await.unwrap() }
    };
    let resp = cancel(operator.clone()).await;
    assert_eq!(resp.status(), 200);
    let canceled: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(canceled["status"], "canceled");
    assert!(canceled["eta_seconds"].is_null());
    assert_eq!(support::app::error_of(cancel(operator).await).await.0, 409);
    assert_eq!(
        support::app::error_of(
            env.app
                .get("/api/v1/broadcasts/999999", Some(&viewer))
                .await
        )
        .await
        .0,
        404
    );
    let list: serde_json::Value = env
        .app
        .get("/api/v1/broadcasts", Some(&viewer))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(list.as_array().unwrap().len(), 1);

    let actions: Vec<String> = vpn_shop::db::schema::audit_log::table
        .select(vpn_shop::db::schema::audit_log::action)
        .order(vpn_shop::db::schema::audit_log::id)
        .load(conn)
        .await
        .unwrap();
    assert_eq!(actions, vec!["broadcast.create", "broadcast.cancel"]);
    env.app.shutdown().await;
}

#[actix_rt::test]
async fn without_a_bot_a_broadcast_is_refused() {
    let app = spawn_app(&[]).await;
    let operator = app.token_for(vpn_shop::domain::AdminRole::Operator).await;
    let resp = app
        .http
        .post(app.url("/api/v1/broadcasts"))
        .bearer_auth(&operator)
        .json(&serde_json::json!({"text": "hello", "audience": {"segment": "all"}}))
        .send()
        .await
        .unwrap();
    let (status, code, message) = support::app::error_of(resp).await;
    assert_eq!((status, code.as_str()), (409, "conflict"));
    assert!(message.contains("TELEGRAM_BOT_TOKEN"), "{message}");
    app.shutdown().await;
}

#[actix_rt::test]
async fn a_delivery_cut_off_by_a_crash_is_sent_once_its_claim_is_stale() {
    let env = spawn(&[]).await;
    let conn = &mut env.app.db.connect().await;
    let user = Subscriber::new(5701).insert(conn).await;
    let job = payment(user);
    // What a worker killed between claiming the delivery and sending it leaves behind.
    diesel::insert_into(deliveries::table)
        .values((
            deliveries::user_id.eq(user),
            deliveries::kind.eq("payment_succeeded"),
            deliveries::channel.eq(NotificationChannel::Telegram),
            deliveries::dedup_key.eq(&job.dedup_key),
            deliveries::payload.eq(serde_json::to_value(&job.notification).unwrap()),
            deliveries::status.eq(NotificationStatus::Pending),
        ))
        .execute(conn)
        .await
        .unwrap();
    enqueue(conn, &job).await;
    // The fresh claim may be another worker's: the job waits, it does not give up as done.
    wait_until_within("a retried attempt", Duration::from_secs(10), || async {
        let attempts: i32 = jobs_table::table
            .filter(jobs_table::kind.eq("notify"))
            .select(jobs_table::attempts)
            .first(&mut env.app.db.connect().await)
            .await
            .unwrap();
        attempts >= 2
    })
    .await;
    let state: JobState = jobs_table::table
        .filter(jobs_table::kind.eq("notify"))
        .select(jobs_table::state)
        .first(conn)
        .await
        .unwrap();
    assert!(
        matches!(state, JobState::Pending | JobState::Running),
        "{state:?}"
    );
    assert!(env.telegram.messages_to(5701).is_empty());
    // After the job lease (JOB_LEASE, 10 minutes here) the claim is stale: the message goes out,
    // once. (The touch trigger
    // would set `updated_at` to now; this test's database may skip it.)
    diesel_async::SimpleAsyncConnection::batch_execute(
        conn,
        "ALTER TABLE notifications DISABLE TRIGGER notifications_touch; \
         UPDATE notifications SET updated_at = now() - interval '11 minutes'; \
         ALTER TABLE notifications ENABLE TRIGGER notifications_touch",
    )
    .await
    .unwrap();
    settle(&env.app).await;
    assert_eq!(env.telegram.messages_to(5701).len(), 1);
    let rows = deliveries_of(conn, user).await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].status, NotificationStatus::Sent);
    env.app.shutdown().await;
}

#[actix_rt::test]
async fn a_message_that_went_without_the_link_is_followed_by_the_link_once() {
    // A panel is configured (so messages wait for the link) but is down: no link comes.
    let panel = support::marzban::FakePanel::start();
    panel.set_outage(true);
    let panel_url = panel.url();
    let env = spawn(&[
        ("MARZBAN_URL", panel_url.as_str()),
        ("MARZBAN_USERNAME", support::marzban::ADMIN_USERNAME),
        ("MARZBAN_PASSWORD", support::marzban::ADMIN_PASSWORD),
    ])
    .await;
    let conn = &mut env.app.db.connect().await;
    let user = Subscriber {
        email: Some("late@example.com"),
        expires_at: Some(days(90.0)),
        ..Subscriber::new(5801)
    }
    .insert(conn)
    .await;
    enqueue(conn, &payment(user)).await;
    // After its wait the payment message goes, saying the link is being prepared.
    wait_until_within("the payment message", Duration::from_secs(20), || async {
        !env.telegram.messages_to(5801).is_empty()
    })
    .await;
    let first = env.telegram.messages_to(5801);
    assert_eq!(first.len(), 1);
    assert!(
        first[0].text.contains("being prepared"),
        "{}",
        first[0].text
    );
    // The follow-up waits for the link as long as it takes: it has looked twice and waits on.
    wait_until_within("the follow-up to wait", Duration::from_secs(20), || async {
        let waiting: Vec<(serde_json::Value, i32, Option<String>)> = jobs_table::table
            .filter(jobs_table::kind.eq("notify"))
            .filter(jobs_table::state.eq(JobState::Pending))
            .select((
                jobs_table::payload,
                jobs_table::attempts,
                jobs_table::last_error,
            ))
            .load(&mut env.app.db.connect().await)
            .await
            .unwrap();
        waiting.iter().any(|(payload, attempts, error)| {
            payload["notification"]["type"] == "link_ready"
                && *attempts >= 2
                && error.as_deref() == Some("waiting for the panel to issue the subscription link")
        })
    })
    .await;
    assert_eq!(env.telegram.messages_to(5801).len(), 1);

    // The panel issues the link (provisioning stores it).
    let link = "https://panel.example.com/sub/late-token";
    diesel::update(subscriptions::table.filter(subscriptions::user_id.eq(user)))
        .set(subscriptions::subscription_url.eq(link))
        .execute(conn)
        .await
        .unwrap();
    wait_until_within("the link message", Duration::from_secs(20), || async {
        env.telegram.messages_to(5801).len() >= 2
    })
    .await;
    settle(&env.app).await;
    let all = env.telegram.messages_to(5801);
    assert_eq!(all.len(), 2, "{all:?}");
    assert!(
        all[1].text.contains("subscription is ready"),
        "{}",
        all[1].text
    );
    assert!(all[1].text.contains(link), "{}", all[1].text);
    // By email too: the payment email said "being prepared" as well.
    let mails = env.smtp.messages();
    assert_eq!(
        mails.len(),
        2,
        "{:?}",
        mails.iter().map(|m| &m.subject).collect::<Vec<_>>()
    );
    assert!(mails[1].html.as_deref().unwrap_or_default().contains(link));
    env.app.shutdown().await;
}

#[actix_rt::test]
async fn a_subscriber_without_telegram_gets_the_broadcast_by_email() {
    let env = spawn(&[("TELEGRAM_MAX_RATE", "200"), ("BROADCAST_RATE", "200")]).await;
    let conn = &mut env.app.db.connect().await;
    Subscriber::new(5801).insert(conn).await;
    diesel::sql_query(
        "INSERT INTO users (email, email_verified_at, language, referral_code) \
         VALUES ('web@example.com', now(), 'ru', 'webonly1')",
    )
    .execute(conn)
    .await
    .unwrap();
    let b = broadcast(conn, ALL).await;
    wait_completed(&env.app.db, b.id, Duration::from_secs(20)).await;
    let done = broadcast_state(conn, b.id).await;
    assert_eq!(
        (done.total, done.sent, done.failed, done.blocked),
        (2, 2, 0, 0)
    );
    assert_eq!(env.telegram.messages_to(5801).len(), 1);
    let mails: Vec<_> = env
        .smtp
        .messages()
        .into_iter()
        .filter(|m| m.to == ["web@example.com"])
        .collect();
    assert_eq!(mails.len(), 1, "one mail");
    assert_eq!(mails[0].subject, "Новости вашего VPN-магазина");
    let text = mails[0].text.clone().unwrap_or_default();
    assert!(
        text.contains("News: faster servers") && text.contains("Read: https://example.com/news"),
        "{text}"
    );
    assert!(
        mails[0].html.as_deref().is_some_and(
            |h| h.contains("<b>News</b>") && h.contains("href=\"https://example.com/news\"")
        ),
        "{:?}",
        mails[0].html
    );
    env.app.shutdown().await;
}
