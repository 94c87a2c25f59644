//! Payments end to end: the real app (actors, web server, database) against fake YooKassa, WATA
//! and Telegram Bot APIs on 127.0.0.1. The rule under test: every payment gives access exactly
//! once, and nothing a stranger sends gives access.

use crate::support;

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use serde_json::{Value, json};

use support::app::{TestApp, spawn_app};
use support::db::Subscriber;
use support::marzban::{self as mz, FakePanel};
use support::payments::Providers;
use support::telegram::{self as tg, FakeTelegram, StarPayment};
use support::wait_until;
use support::wata::{self as wt, FakeWata};
use support::yookassa::{self as yk, AutoPayment, FakeYooKassa};
use vpn_shop::actors::payments::{
    AUTO_RENEW_JOB, CancelAutoRenew, Checkout, CheckoutError, CreateCheckout, POLL_JOB, Refund,
    RefundError, RefundResult,
};
use vpn_shop::db::jobs::{self as queue, NewJob};
use vpn_shop::db::models::{Payment, PaymentEvent, Subscription};
use vpn_shop::db::schema::{
    audit_log, jobs, payment_events, payment_refunds, payments, plans, promo_codes, referrals,
    subscriptions, users,
};
use vpn_shop::domain::pricing::PromoRefusal;
use vpn_shop::domain::{
    JobState, Money, PaymentEventVerdict, PaymentId, PaymentKind, PaymentProvider, PaymentStatus,
    PlanId, PromoKind, SubscriptionStatus, UserId,
};

const DAY: i64 = 86_400;
/// The plan every test sells: 30 days for 299.00 RUB or 150 Stars.
const PLAN_DAYS: i64 = 30;
const PLAN_PRICE: i64 = 29_900;
const PLAN_STARS: i64 = 150;

/// The app with every provider configured, and the fakes behind it.
struct Shop {
    app: TestApp,
    yookassa: FakeYooKassa,
    wata: FakeWata,
    telegram: Option<FakeTelegram>,
    plan: PlanId,
}

async fn shop(extra: &[(&str, &str)]) -> Shop {
    shop_with(false, extra).await
}

/// With `stars`, a fake Telegram and `STARS_ENABLED=true` (the bot actor runs).
async fn shop_with(stars: bool, extra: &[(&str, &str)]) -> Shop {
    let providers = Providers::start();
    let telegram = stars.then(FakeTelegram::start);
    let telegram_url = telegram.as_ref().map(|t| t.url()).unwrap_or_default();
    let mut env = providers.env();
    env.extend([
        ("JOB_POLL_INTERVAL", "200ms"),
        ("JOB_BACKOFF_BASE", "100ms"),
    ]);
    if stars {
        env.extend([
            ("TELEGRAM_BOT_TOKEN", tg::TOKEN),
            ("TELEGRAM_API_URL", telegram_url.as_str()),
            ("STARS_ENABLED", "true"),
        ]);
    }
    env.extend_from_slice(extra);
    let app = spawn_app(&env).await;
    drop(env);
    let Providers { yookassa, wata, .. } = providers;
    let plan = insert_plan(&mut app.db.connect().await, PLAN_DAYS as i32, PLAN_PRICE).await;
    Shop {
        app,
        yookassa,
        wata,
        telegram,
        plan,
    }
}

impl Shop {
    async fn conn(&self) -> AsyncPgConnection {
        self.app.db.connect().await
    }

    async fn user(&self, telegram_id: i64) -> UserId {
        Subscriber::new(telegram_id)
            .insert(&mut self.conn().await)
            .await
    }

    /// A user whose subscription ends at `expires_at`.
    async fn subscriber(&self, telegram_id: i64, expires_at: DateTime<Utc>) -> UserId {
        Subscriber {
            expires_at: Some(expires_at),
            ..Subscriber::new(telegram_id)
        }
        .insert(&mut self.conn().await)
        .await
    }

    async fn try_checkout(
        &self,
        user: UserId,
        provider: PaymentProvider,
        promo: Option<&str>,
        auto_renew: bool,
    ) -> Result<Checkout, CheckoutError> {
        self.try_checkout_of(self.plan, user, provider, promo, auto_renew)
            .await
    }

    /// A checkout of another plan than the shop's own.
    async fn try_checkout_of(
        &self,
        plan: PlanId,
        user: UserId,
        provider: PaymentProvider,
        promo: Option<&str>,
        auto_renew: bool,
    ) -> Result<Checkout, CheckoutError> {
        self.app
            .app
            .payments
            .addr()
            .send(CreateCheckout {
                user_id: user,
                plan_id: plan,
                provider,
                promo_code: promo.map(str::to_owned),
                auto_renew,
                return_to: vpn_shop::actors::payments::ReturnTo::Bot,
            })
            .await
            .expect("the payment processor answers")
    }

    /// A checkout that must open a payment page; returns the order.
    async fn checkout(&self, user: UserId, provider: PaymentProvider) -> Payment {
        let checkout = self.try_checkout(user, provider, None, false).await;
        self.order_of(checkout).await
    }

    async fn order_of(&self, checkout: Result<Checkout, CheckoutError>) -> Payment {
        let id = match checkout.expect("a checkout") {
            Checkout::Redirect { order_id, .. }
            | Checkout::StarsInvoice { order_id, .. }
            | Checkout::Free { order_id, .. } => order_id,
        };
        order(&mut self.conn().await, id).await
    }

    /// The first `POST /v3/payments` YooKassa received.
    fn first_yookassa_create(&self) -> yk::Recorded {
        self.yookassa
            .requests()
            .into_iter()
            .find(|r| r.method == "POST" && r.route == "/v3/payments")
            .expect("POST /v3/payments")
    }

    fn webhook_url(&self, provider: &str) -> String {
        self.app.url(&format!("/webhooks/{provider}"))
    }

    /// YooKassa: the payer pays the order's payment and YooKassa notifies.
    async fn pay_yookassa(&self, order: &Payment) -> u16 {
        let id = order.external_id.as_deref().expect("a YooKassa payment");
        self.yookassa.succeed(id);
        self.yookassa
            .send_notification(&self.webhook_url("yookassa"), id, "payment.succeeded")
            .await
    }

    /// WATA: the payer pays the order's link; returns the transaction id (no webhook yet).
    fn pay_wata_link(&self, order: &Payment) -> String {
        let link = order.external_id.as_deref().expect("a WATA link");
        let transaction = self.wata.pay(link);
        transaction["id"]
            .as_str()
            .expect("transaction id")
            .to_owned()
    }

    async fn send_wata(&self, transaction: &str) -> u16 {
        self.wata
            .send_webhook(&self.webhook_url("wata"), transaction)
            .await
    }

    async fn post_raw(
        &self,
        provider: &str,
        body: Vec<u8>,
        headers: &[(&str, &str)],
    ) -> (u16, Value) {
        let mut request = self
            .app
            .http
            .post(self.webhook_url(provider))
            .header("content-type", "application/json")
            .body(body);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = request.send().await.expect("webhook request");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// Runs a periodic payment job now and waits for it to finish.
    async fn run(&self, kind: &str) {
        let conn = &mut self.conn().await;
        let id = queue::enqueue(conn, NewJob::new(kind, json!({})), 3)
            .await
            .unwrap()
            .expect("enqueued");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let job = queue::find(conn, id).await.unwrap().unwrap();
            match job.state {
                JobState::Done => return,
                JobState::Dead => panic!("{kind} died: {:?}", job.last_error),
                _ => {}
            }
            assert!(Instant::now() < deadline, "{kind} did not finish: {job:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn refund(
        &self,
        order: &Payment,
        amount: Option<i64>,
    ) -> Result<RefundResult, RefundError> {
        self.app
            .app
            .payments
            .addr()
            .send(Refund {
                payment_id: order.id,
                amount: amount.map(|minor| Money::new(minor, order.currency)),
                reason: "test refund".into(),
                actor: "admin:test".into(),
                admin_id: None,
                remote_addr: None,
            })
            .await
            .expect("the payment processor answers")
    }

    /// An inviter whose subscription ends at `inviter_ends` and a new user they invited.
    async fn invited(
        &self,
        inviter_telegram_id: i64,
        inviter_ends: DateTime<Utc>,
        invitee_telegram_id: i64,
    ) -> (UserId, UserId) {
        let inviter = self.subscriber(inviter_telegram_id, inviter_ends).await;
        let invitee = self.user(invitee_telegram_id).await;
        diesel::insert_into(referrals::table)
            .values((
                referrals::inviter_id.eq(inviter),
                referrals::invitee_id.eq(invitee),
            ))
            .execute(&mut self.conn().await)
            .await
            .unwrap();
        (inviter, invitee)
    }

    async fn metrics(&self) -> String {
        self.app.get("/metrics", None).await.text().await.unwrap()
    }

    async fn finish(self) {
        self.app.shutdown().await;
        drop((self.yookassa, self.wata, self.telegram));
    }
}

async fn insert_plan(conn: &mut AsyncPgConnection, days: i32, price: i64) -> PlanId {
    diesel::insert_into(plans::table)
        .values((
            plans::name.eq(format!("{days} days")),
            plans::days.eq(days),
            plans::price_minor.eq(price),
            plans::price_stars.eq(Some(PLAN_STARS)),
        ))
        .returning(plans::id)
        .get_result(conn)
        .await
        .unwrap()
}

async fn order(conn: &mut AsyncPgConnection, id: PaymentId) -> Payment {
    payments::table
        .find(id)
        .select(Payment::as_select())
        .first(conn)
        .await
        .unwrap()
}

async fn orders_of(conn: &mut AsyncPgConnection, user: UserId) -> Vec<Payment> {
    payments::table
        .filter(payments::user_id.eq(user))
        .order(payments::id)
        .select(Payment::as_select())
        .load(conn)
        .await
        .unwrap()
}

async fn subscription(conn: &mut AsyncPgConnection, user: UserId) -> Option<Subscription> {
    subscriptions::table
        .filter(subscriptions::user_id.eq(user))
        .select(Subscription::as_select())
        .first(conn)
        .await
        .optional()
        .unwrap()
}

async fn expires(conn: &mut AsyncPgConnection, user: UserId) -> DateTime<Utc> {
    subscription(conn, user)
        .await
        .expect("a subscription")
        .expires_at
}

async fn set_expires(conn: &mut AsyncPgConnection, user: UserId, at: DateTime<Utc>) {
    diesel::update(subscriptions::table.filter(subscriptions::user_id.eq(user)))
        .set(subscriptions::expires_at.eq(at))
        .execute(conn)
        .await
        .unwrap();
}

/// Payloads of the jobs of `kind` about `user`.
async fn jobs_for(conn: &mut AsyncPgConnection, kind: &str, user: UserId) -> Vec<Value> {
    let payloads: Vec<Value> = jobs::table
        .filter(jobs::kind.eq(kind))
        .order(jobs::id)
        .select(jobs::payload)
        .load(conn)
        .await
        .unwrap();
    payloads
        .into_iter()
        .filter(|p| p["user_id"] == json!(user))
        .collect()
}

/// The notification types the payments enqueued for `user` (the expiry warnings of the
/// notification scan, which may run meanwhile, are left out).
async fn notifications_for(conn: &mut AsyncPgConnection, user: UserId) -> Vec<String> {
    jobs_for(conn, "notify", user)
        .await
        .iter()
        .map(|p| p["notification"]["type"].as_str().unwrap_or("?").to_owned())
        .filter(|kind| kind != "subscription_expiring")
        .collect()
}

async fn events(conn: &mut AsyncPgConnection, provider: PaymentProvider) -> Vec<PaymentEvent> {
    payment_events::table
        .filter(payment_events::provider.eq(provider))
        .order(payment_events::id)
        .select(PaymentEvent::as_select())
        .load(conn)
        .await
        .unwrap()
}

fn verdicts(events: &[PaymentEvent]) -> Vec<PaymentEventVerdict> {
    events.iter().map(|e| e.verdict).collect()
}

fn count_of(verdicts: &[PaymentEventVerdict], verdict: PaymentEventVerdict) -> usize {
    verdicts.iter().filter(|v| **v == verdict).count()
}

/// `a` and `b` within two seconds of each other.
fn close(a: DateTime<Utc>, b: DateTime<Utc>) -> bool {
    (a - b).num_milliseconds().abs() < 2_000
}

fn days(n: i64) -> chrono::Duration {
    chrono::Duration::seconds(n * DAY)
}

/// `end` lies `n` days after a moment of the last two minutes (when the test paid): measured on
/// the test's clock, not from the `paid_at` the code under test wrote, so a period counted from
/// a wrong start fails.
#[track_caller]
fn assert_fresh_period(end: DateTime<Utc>, n: i64) {
    let now = Utc::now();
    assert!(
        end <= now + days(n) && end > now + days(n) - chrono::Duration::minutes(2),
        "expected {n} days from a payment just made, now {now}: ends {end}"
    );
}

/// Everything a paid first order leaves: one period from the payment, one `provision`, one
/// `payment_succeeded` notification.
async fn assert_paid_once(shop: &Shop, user: UserId, order_id: PaymentId) {
    let conn = &mut shop.conn().await;
    let paid = order(conn, order_id).await;
    assert_eq!(paid.status, PaymentStatus::Succeeded);
    let paid_at = paid.paid_at.expect("paid_at");
    assert!(
        paid_at <= Utc::now() && paid_at >= paid.created_at,
        "{paid:?}"
    );
    let sub = subscription(conn, user).await.expect("a subscription");
    assert_fresh_period(sub.expires_at, 30);
    assert_eq!(sub.status, SubscriptionStatus::Active);
    assert_eq!(sub.plan_id, Some(shop.plan));
    assert_eq!(jobs_for(conn, "provision", user).await.len(), 1);
    assert_eq!(
        notifications_for(conn, user).await,
        vec!["payment_succeeded"]
    );
}

// -- YooKassa ------------------------------------------------------------------------------------

#[actix_rt::test]
async fn yookassa_checkout_writes_the_order_first_and_asks_for_one_payment() {
    let shop = shop(&[("PAYMENT_RETURN_URL", "https://t.me/vpn_shop_bot")]).await;
    let user = shop.user(1001).await;
    let checkout = shop
        .try_checkout(user, PaymentProvider::Yookassa, None, false)
        .await
        .unwrap();
    let Checkout::Redirect {
        order_id,
        url,
        amount,
    } = checkout
    else {
        panic!("a payment page: {checkout:?}");
    };
    assert!(url.starts_with(yk::CONFIRMATION_URL_PREFIX), "{url}");
    assert_eq!(amount, Money::rub_kopecks(PLAN_PRICE));
    let conn = &mut shop.conn().await;
    let order = order(conn, order_id).await;
    assert_eq!(
        (order.status, order.provider, order.kind),
        (
            PaymentStatus::Pending,
            PaymentProvider::Yookassa,
            PaymentKind::Checkout
        )
    );
    assert_eq!(order.confirmation_url.as_deref(), Some(url.as_str()));
    let create = shop.first_yookassa_create();
    assert!(create.authorized, "Basic auth with the shop's credentials");
    // The key stored with the order: a UUID v4, within YooKassa's 64 characters.
    assert_eq!(
        create.idempotence_key.as_deref(),
        Some(order.provider_key.as_str())
    );
    let key = uuid::Uuid::parse_str(&order.provider_key).expect("a UUID");
    assert_eq!(key.get_version_num(), 4);
    let body = create.body.as_ref().unwrap();
    assert_eq!(
        body["amount"],
        json!({"value": "299.00", "currency": "RUB"})
    );
    assert_eq!(body["capture"], true);
    assert_eq!(body["metadata"]["order_id"], order_id.to_string());
    assert_eq!(body["confirmation"]["type"], "redirect");
    assert_eq!(
        body["confirmation"]["return_url"],
        "https://t.me/vpn_shop_bot"
    );
    assert!(body.get("receipt").is_none(), "no receipt unless enabled");
    // Nothing is given before the payment.
    assert!(subscription(conn, user).await.is_none());
    shop.finish().await;
}

/// Order ids are unique in one database only. After a restore from a backup taken before an order
/// was written (or in a second shop on the same YooKassa account), a new order gets the old one's
/// id; YooKassa keeps an `Idempotence-Key` for 24 h, so a key derived from the id would get the
/// old payment back, or "Idempotence key duplicated" when the request differs.
#[actix_rt::test]
async fn an_order_id_reused_after_a_restore_still_gets_its_own_yookassa_payment() {
    let shop = shop(&[]).await;
    let conn = &mut shop.conn().await;
    let first_user = shop.user(1001).await;
    let first = shop.checkout(first_user, PaymentProvider::Yookassa).await;

    // The restore: the order is gone and the id sequence is back where the backup left it.
    diesel::delete(payments::table.find(first.id))
        .execute(conn)
        .await
        .unwrap();
    diesel::sql_query("SELECT setval('payments_id_seq', $1, false)")
        .bind::<diesel::sql_types::BigInt, _>(first.id.0)
        .execute(conn)
        .await
        .unwrap();

    // Another user buys another plan; the new order has the old order's id.
    let second_user = shop.user(1002).await;
    let dearer = insert_plan(conn, 90, 79_900).await;
    let second = shop
        .try_checkout_of(dearer, second_user, PaymentProvider::Yookassa, None, false)
        .await;
    let second = shop.order_of(second).await;
    assert_eq!(second.id, first.id, "the restore reused the id");
    assert_ne!(
        second.external_id, first.external_id,
        "a payment of its own"
    );
    assert_ne!(second.confirmation_url, first.confirmation_url);
    let payment = shop
        .yookassa
        .payment(second.external_id.as_deref().unwrap())
        .unwrap();
    assert_eq!(payment["amount"]["value"], "799.00");
    assert_eq!(payment["metadata"]["user_id"], second_user.to_string());

    // Each order sent the key stored on it, unique and within YooKassa's 64 characters.
    let keys: Vec<String> = shop
        .yookassa
        .requests()
        .into_iter()
        .filter(|r| r.method == "POST" && r.route == "/v3/payments")
        .filter_map(|r| r.idempotence_key)
        .collect();
    assert_eq!(keys.len(), 2, "{keys:?}");
    assert_ne!(keys[0], keys[1]);
    assert_eq!(keys[1], second.provider_key);
    assert!(keys.iter().all(|k| k.len() <= 64));
    shop.finish().await;
}

/// Orders and refunds written before keys were stored keep the key they may already have sent
/// (`order-<id>`, `refund-<order>-<id>`): a pending order must repeat exactly that key.
#[actix_rt::test]
async fn the_key_migration_keeps_the_derived_keys_of_existing_orders_and_refunds() {
    use diesel::migration::{MigrationConnection, MigrationSource};
    use diesel_async::async_connection_wrapper::AsyncConnectionWrapper;
    use diesel_migrations::MigrationHarness;

    const KEYS_MIGRATION: &str = "provider_idempotence_keys";
    let db = support::db::TestDb::empty().await;
    let url = db.url.clone();
    tokio::task::spawn_blocking(move || {
        let mut conn =
            <AsyncConnectionWrapper<AsyncPgConnection> as diesel::Connection>::establish(&url)
                .unwrap();
        let migrations =
            MigrationSource::<diesel::pg::Pg>::migrations(&vpn_shop::db::MIGRATIONS).unwrap();
        conn.setup().unwrap();
        let mut migrations: Vec<_> = migrations.into_iter().collect();
        migrations.sort_by_key(|m| m.name().version().to_string());
        for migration in migrations {
            if migration.name().to_string().ends_with(KEYS_MIGRATION) {
                break;
            }
            conn.run_migration(&migration).unwrap();
        }
    })
    .await
    .unwrap();
    let conn = &mut db.connect().await;
    for statement in [
        "INSERT INTO users (id, telegram_id, referral_code) OVERRIDING SYSTEM VALUE VALUES (1, 1001, 'abcd1001')",
        "INSERT INTO payments (id, user_id, provider, status, amount_minor, currency, days, external_id, paid_at)
             OVERRIDING SYSTEM VALUE
             VALUES (41, 1, 'yookassa', 'pending', 29900, 'RUB', 30, NULL, NULL),
                    (42, 1, 'yookassa', 'succeeded', 29900, 'RUB', 30, 'yk-42', now())",
        "INSERT INTO payment_refunds (id, payment_id, provider, amount_minor, days_taken_back, state)
             OVERRIDING SYSTEM VALUE
             VALUES (7, 42, 'yookassa', 1000, 1, 'requested')",
    ] {
        diesel::sql_query(statement).execute(conn).await.unwrap();
    }
    vpn_shop::db::run_migrations(&db.url).await.unwrap();

    let keys: Vec<(PaymentId, String)> = payments::table
        .select((payments::id, payments::provider_key))
        .order(payments::id)
        .load(conn)
        .await
        .unwrap();
    assert_eq!(
        keys,
        [
            (PaymentId(41), "order-41".to_owned()),
            (PaymentId(42), "order-42".to_owned())
        ]
    );
    let refund_key: String = payment_refunds::table
        .find(7)
        .select(payment_refunds::provider_key)
        .first(conn)
        .await
        .unwrap();
    assert_eq!(refund_key, "refund-42-7");
    // A row written now draws a fresh UUID.
    let fresh: String = diesel::insert_into(payments::table)
        .values((
            payments::user_id.eq(UserId(1)),
            payments::provider.eq(PaymentProvider::Yookassa),
            payments::amount_minor.eq(29_900),
            payments::currency.eq(vpn_shop::domain::Currency::Rub),
            payments::days.eq(30),
        ))
        .returning(payments::provider_key)
        .get_result(conn)
        .await
        .unwrap();
    assert_eq!(
        uuid::Uuid::parse_str(&fresh).unwrap().get_version_num(),
        4,
        "{fresh}"
    );
}

#[actix_rt::test]
async fn yookassa_receipts_go_with_the_payment_when_enabled_and_the_user_has_an_email() {
    let shop = shop(&[("YOOKASSA_RECEIPTS", "true"), ("YOOKASSA_VAT_CODE", "1")]).await;
    shop.yookassa.set_receipts_required(true);
    let user = Subscriber {
        email: Some("payer@example.com"),
        ..Subscriber::new(1002)
    }
    .insert(&mut shop.conn().await)
    .await;
    shop.checkout(user, PaymentProvider::Yookassa).await;
    let create = shop.first_yookassa_create();
    let receipt = &create.body.as_ref().unwrap()["receipt"];
    assert_eq!(receipt["customer"]["email"], "payer@example.com");
    assert_eq!(receipt["items"][0]["amount"]["value"], "299.00");
    assert_eq!(receipt["items"][0]["vat_code"], 1);
    assert_eq!(receipt["items"][0]["payment_subject"], "service");
    shop.finish().await;
}

#[actix_rt::test]
async fn a_paid_yookassa_order_extends_once_and_enqueues_provision_and_notify() {
    let shop = shop(&[]).await;
    let user = shop.user(1003).await;
    let order = shop.checkout(user, PaymentProvider::Yookassa).await;
    assert_eq!(shop.pay_yookassa(&order).await, 200);
    assert_paid_once(&shop, user, order.id).await;
    let conn = &mut shop.conn().await;
    assert_eq!(
        verdicts(&events(conn, PaymentProvider::Yookassa).await),
        vec![PaymentEventVerdict::Accepted]
    );
    // Delivered again (YooKassa did not get our 200): nothing more.
    let before = expires(conn, user).await;
    let id = order.external_id.as_deref().unwrap();
    let again = shop
        .yookassa
        .send_notification(&shop.webhook_url("yookassa"), id, "payment.succeeded")
        .await;
    assert_eq!(again, 200);
    assert_eq!(expires(conn, user).await, before);
    assert_paid_once(&shop, user, order.id).await;
    assert_eq!(
        verdicts(&events(conn, PaymentProvider::Yookassa).await),
        vec![
            PaymentEventVerdict::Accepted,
            PaymentEventVerdict::Duplicate
        ]
    );
    let metrics = shop.metrics().await;
    for line in [
        r#"vpn_shop_payment_events_total{provider="yookassa",verdict="accepted"} 1"#,
        r#"vpn_shop_payment_events_total{provider="yookassa",verdict="duplicate"} 1"#,
        r#"vpn_shop_checkouts_total{provider="yookassa"} 1"#,
    ] {
        assert!(metrics.contains(line), "missing {line}");
    }
    shop.finish().await;
}

#[actix_rt::test]
async fn a_payment_under_way_when_the_user_is_banned_buys_time_but_not_access() {
    let shop = shop(&[]).await;
    let user = shop.user(1009).await;
    let order = shop.checkout(user, PaymentProvider::Yookassa).await;
    let conn = &mut shop.conn().await;
    diesel::update(users::table.find(user))
        .set(users::banned.eq(true))
        .execute(conn)
        .await
        .unwrap();
    assert_eq!(shop.pay_yookassa(&order).await, 200);
    let paid = self::order(conn, order.id).await;
    assert_eq!(paid.status, PaymentStatus::Succeeded);
    let sub = subscription(conn, user).await.expect("a subscription");
    assert_fresh_period(sub.expires_at, 30);
    assert_eq!(sub.status, SubscriptionStatus::Disabled, "the ban holds");
    // The panel follows the database: its provision job disables the account.
    assert_eq!(jobs_for(conn, "provision", user).await.len(), 1);
    shop.finish().await;
}

#[actix_rt::test]
async fn the_same_yookassa_webhook_twenty_times_at_once_extends_once() {
    let shop = shop(&[]).await;
    let user = shop.user(1004).await;
    let order = shop.checkout(user, PaymentProvider::Yookassa).await;
    let id = order.external_id.clone().unwrap();
    shop.yookassa.succeed(&id);
    let url = shop.webhook_url("yookassa");
    let statuses = futures_util::future::join_all((0..20).map(|_| {
        shop.yookassa
            .send_notification(&url, &id, "payment.succeeded")
    }))
    .await;
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    assert_paid_once(&shop, user, order.id).await;
    let verdicts = verdicts(&events(&mut shop.conn().await, PaymentProvider::Yookassa).await);
    assert_eq!(verdicts.len(), 20);
    assert_eq!(count_of(&verdicts, PaymentEventVerdict::Accepted), 1);
    shop.finish().await;
}

#[actix_rt::test]
async fn forged_yookassa_webhooks_give_nothing() {
    let shop = shop(&[]).await;
    let user = shop.user(1005).await;
    let order = shop.checkout(user, PaymentProvider::Yookassa).await;
    let id = order.external_id.clone().unwrap();
    // 1. A payment id YooKassa does not know, claiming our order in its body.
    let mut forged = shop.yookassa.notification(&id, "payment.succeeded");
    forged["object"]["id"] = json!("2f0d3a6e-000f-5000-9000-1b2c3d4e5f60");
    forged["object"]["status"] = json!("succeeded");
    forged["object"]["paid"] = json!(true);
    let (status, _) = shop
        .post_raw("yookassa", serde_json::to_vec(&forged).unwrap(), &[])
        .await;
    assert_eq!(status, 200, "answered, so that it is not sent again");
    // 2. Our real payment, said to be paid by the body, but YooKassa says it is pending.
    let mut lie = shop.yookassa.notification(&id, "payment.succeeded");
    lie["object"]["status"] = json!("succeeded");
    lie["object"]["paid"] = json!(true);
    let (status, body) = shop
        .post_raw("yookassa", serde_json::to_vec(&lie).unwrap(), &[])
        .await;
    assert_eq!((status, body["verdict"].as_str()), (200, Some("ignored")));
    // 3. Not a notification at all.
    let (status, _) = shop
        .post_raw("yookassa", b"{\"hello\":1}".to_vec(), &[])
        .await;
    assert_eq!(status, 400);

    let conn = &mut shop.conn().await;
    assert_eq!(order_status(conn, order.id).await, PaymentStatus::Pending);
    assert!(subscription(conn, user).await.is_none(), "no access");
    assert!(jobs_for(conn, "provision", user).await.is_empty());
    assert_eq!(
        verdicts(&events(conn, PaymentProvider::Yookassa).await),
        vec![
            PaymentEventVerdict::Forged,
            PaymentEventVerdict::Ignored,
            PaymentEventVerdict::Invalid
        ]
    );
    let metrics = shop.metrics().await;
    assert!(
        metrics
            .contains(r#"vpn_shop_payment_events_total{provider="yookassa",verdict="forged"} 1"#)
    );
    shop.finish().await;
}

async fn order_status(conn: &mut AsyncPgConnection, id: PaymentId) -> PaymentStatus {
    order(conn, id).await.status
}

#[actix_rt::test]
async fn yookassa_webhooks_from_outside_its_networks_are_refused_and_proxies_are_believed_only_when_trusted()
 {
    let shop = shop(&[
        ("YOOKASSA_CHECK_IP", "true"),
        ("TRUSTED_PROXIES", "127.0.0.1/32"),
    ])
    .await;
    let user = shop.user(1006).await;
    let order = shop.checkout(user, PaymentProvider::Yookassa).await;
    let id = order.external_id.clone().unwrap();
    shop.yookassa.succeed(&id);
    let body = serde_json::to_vec(&shop.yookassa.notification(&id, "payment.succeeded")).unwrap();
    // The proxy (127.0.0.1, trusted) says the sender is not YooKassa.
    let (status, _) = shop
        .post_raw(
            "yookassa",
            body.clone(),
            &[("x-forwarded-for", "203.0.113.9")],
        )
        .await;
    assert_eq!(status, 403);
    // A sender forging the header in front of our proxy: the rightmost untrusted address counts.
    let (status, _) = shop
        .post_raw(
            "yookassa",
            body.clone(),
            &[("x-forwarded-for", "185.71.76.1, 203.0.113.9")],
        )
        .await;
    assert_eq!(status, 403);
    assert!(subscription(&mut shop.conn().await, user).await.is_none());
    // YooKassa's address, through the proxy.
    let (status, reply) = shop
        .post_raw("yookassa", body, &[("x-forwarded-for", "185.71.76.1")])
        .await;
    assert_eq!((status, reply["verdict"].as_str()), (200, Some("accepted")));
    assert_paid_once(&shop, user, order.id).await;
    let events = events(&mut shop.conn().await, PaymentProvider::Yookassa).await;
    assert_eq!(events[0].remote_addr.as_deref(), Some("203.0.113.9"));
    assert_eq!(events[2].remote_addr.as_deref(), Some("185.71.76.1"));
    shop.finish().await;
}

#[actix_rt::test]
async fn yookassa_webhooks_from_the_socket_are_refused_without_a_trusted_proxy() {
    let shop = shop(&[("YOOKASSA_CHECK_IP", "true")]).await;
    let user = shop.user(1007).await;
    let order = shop.checkout(user, PaymentProvider::Yookassa).await;
    let id = order.external_id.clone().unwrap();
    shop.yookassa.succeed(&id);
    let body = serde_json::to_vec(&shop.yookassa.notification(&id, "payment.succeeded")).unwrap();
    // 127.0.0.1 is not YooKassa, and its X-Forwarded-For is not believed.
    let (status, reply) = shop
        .post_raw("yookassa", body, &[("x-forwarded-for", "185.71.76.1")])
        .await;
    assert_eq!(
        (status, reply["error"]["code"].as_str()),
        (403, Some("forged"))
    );
    assert!(subscription(&mut shop.conn().await, user).await.is_none());
    shop.finish().await;
}

#[actix_rt::test]
async fn a_canceled_yookassa_payment_cancels_the_order_and_tells_the_user() {
    let shop = shop(&[]).await;
    let user = shop.user(1008).await;
    let order = shop.checkout(user, PaymentProvider::Yookassa).await;
    let id = order.external_id.clone().unwrap();
    shop.yookassa.cancel(
        &id,
        yk::cancellation_party("insufficient_funds"),
        "insufficient_funds",
    );
    let status = shop
        .yookassa
        .send_notification(&shop.webhook_url("yookassa"), &id, "payment.canceled")
        .await;
    assert_eq!(status, 200);
    let conn = &mut shop.conn().await;
    let canceled = self::order(conn, order.id).await;
    assert_eq!(canceled.status, PaymentStatus::Canceled);
    assert!(
        canceled
            .failure_reason
            .unwrap()
            .contains("insufficient_funds")
    );
    assert!(subscription(conn, user).await.is_none());
    assert_eq!(notifications_for(conn, user).await, vec!["payment_failed"]);
    shop.finish().await;
}

#[actix_rt::test]
async fn a_stale_canceled_notice_after_success_changes_nothing() {
    let shop = shop(&[]).await;
    let user = shop.user(1009).await;
    let order = shop.checkout(user, PaymentProvider::Yookassa).await;
    assert_eq!(shop.pay_yookassa(&order).await, 200);
    // Out of order: a `payment.canceled` arrives after the success. YooKassa's answer (succeeded)
    // is what counts.
    let id = order.external_id.clone().unwrap();
    let status = shop
        .yookassa
        .send_notification(&shop.webhook_url("yookassa"), &id, "payment.canceled")
        .await;
    assert_eq!(status, 200);
    assert_paid_once(&shop, user, order.id).await;
    shop.finish().await;
}

#[actix_rt::test]
async fn a_webhook_yookassa_cannot_confirm_now_is_answered_503_and_counts_when_sent_again() {
    let shop = shop(&[]).await;
    let user = shop.user(1010).await;
    let order = shop.checkout(user, PaymentProvider::Yookassa).await;
    let id = order.external_id.clone().unwrap();
    shop.yookassa.succeed(&id);
    // Every attempt of the client (three) fails.
    shop.yookassa.fail_next(3, 500);
    let url = shop.webhook_url("yookassa");
    assert_eq!(
        shop.yookassa
            .send_notification(&url, &id, "payment.succeeded")
            .await,
        503
    );
    assert!(subscription(&mut shop.conn().await, user).await.is_none());
    assert_eq!(
        shop.yookassa
            .send_notification(&url, &id, "payment.succeeded")
            .await,
        200
    );
    assert_paid_once(&shop, user, order.id).await;
    shop.finish().await;
}

/// A proxy for one HTTP request: forwards what the client sends to `upstream` and never passes
/// the answer back; the client's connection is dropped when `cut` fires. What YooKassa sees
/// when the shop dies after its commit and before its answer left.
async fn swallowing_proxy(upstream: u16) -> (u16, tokio::sync::oneshot::Sender<()>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (cut, cut_rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        let (mut client, _) = listener.accept().await.unwrap();
        let mut server = tokio::net::TcpStream::connect(("127.0.0.1", upstream))
            .await
            .unwrap();
        let (mut from_client, _to_client) = client.split();
        let mut buf = [0u8; 8192];
        let forward = async {
            loop {
                match from_client.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if server.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                }
            }
            std::future::pending::<()>().await
        };
        tokio::select! {
            _ = forward => {}
            _ = cut_rx => {}
        }
        // Dropping both sockets closes the client's connection without an answer.
    });
    (port, cut)
}

/// `vpn-shop serve` as its own process on the test's database, with YooKassa faked.
fn serve(
    db_url: &str,
    yookassa_url: &str,
    data_dir: &std::path::Path,
    port: u16,
) -> std::process::Child {
    let bind = format!("127.0.0.1:{port}");
    let data = data_dir.display().to_string();
    crate::cli::vpn_shop(
        data_dir,
        &[
            ("DATABASE_URL", db_url),
            ("HTTP_BIND", &bind),
            ("DATA_DIR", &data),
            ("JWT_SECRET", support::app::TEST_JWT_SECRET),
            ("YOOKASSA_SHOP_ID", yk::SHOP_ID),
            ("YOOKASSA_SECRET_KEY", yk::SECRET_KEY),
            ("YOOKASSA_API_URL", yookassa_url),
            ("YOOKASSA_CHECK_IP", "false"),
        ],
        &["serve"],
    )
    .stdout(std::process::Stdio::null())
    .stderr(std::process::Stdio::null())
    .spawn()
    .expect("vpn-shop serve starts")
}

/// The shop process is killed (SIGKILL) after the payment's transaction committed and before
/// YooKassa read an answer; YooKassa sends the notice again to the restarted shop: one payment,
/// one period, one provisioning.
#[actix_rt::test]
async fn a_crash_between_the_commit_and_the_answer_makes_the_redelivery_a_no_op() {
    let shop = shop(&[]).await;
    let user = shop.user(1011).await;
    let order = shop.checkout(user, PaymentProvider::Yookassa).await;
    let id = order.external_id.clone().unwrap();
    shop.yookassa.succeed(&id);
    // From here the shop runs as a process of its own on the same database.
    let Shop { app, yookassa, .. } = shop;
    let TestApp {
        app: in_process,
        db,
        ..
    } = app;
    in_process.shutdown().await;
    let data_dir = tempfile::tempdir().unwrap();
    let yookassa_url = yookassa.url();
    let port = crate::cli::free_port();
    let mut first = serve(&db.url, &yookassa_url, data_dir.path(), port);
    crate::cli::wait_ready(port, &mut first).await;

    let (proxy, cut) = swallowing_proxy(port).await;
    let notice = {
        let yookassa = &yookassa;
        let url = format!("http://127.0.0.1:{proxy}/webhooks/yookassa");
        let id = id.clone();
        async move {
            yookassa
                .send_notification(&url, &id, "payment.succeeded")
                .await
        }
    };
    let crash = async {
        wait_until("the payment committed", || async {
            self::order(&mut db.connect().await, order.id).await.status == PaymentStatus::Succeeded
        })
        .await;
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(first.id() as i32),
            nix::sys::signal::Signal::SIGKILL,
        )
        .unwrap();
        let status = first.wait().unwrap();
        let _ = cut.send(());
        status
    };
    let (answer, killed) = futures_util::join!(notice, crash);
    assert_eq!(killed.code(), None, "killed by a signal: {killed}");
    assert_eq!(answer, 0, "YooKassa got no answer");

    // YooKassa delivers again, to the restarted shop.
    let port = crate::cli::free_port();
    let mut second = serve(&db.url, &yookassa_url, data_dir.path(), port);
    crate::cli::wait_ready(port, &mut second).await;
    let status = yookassa
        .send_notification(
            &format!("http://127.0.0.1:{port}/webhooks/yookassa"),
            &id,
            "payment.succeeded",
        )
        .await;
    assert_eq!(status, 200);
    let conn = &mut db.connect().await;
    let paid = self::order(conn, order.id).await;
    assert_eq!(paid.status, PaymentStatus::Succeeded);
    assert_eq!(orders_of(conn, user).await.len(), 1);
    assert_fresh_period(expires(conn, user).await, 30);
    assert_eq!(jobs_for(conn, "provision", user).await.len(), 1);
    assert_eq!(
        notifications_for(conn, user).await,
        vec!["payment_succeeded"]
    );
    assert_eq!(
        verdicts(&events(conn, PaymentProvider::Yookassa).await),
        vec![
            PaymentEventVerdict::Accepted,
            PaymentEventVerdict::Duplicate
        ]
    );
    assert!(crate::cli::terminate(&mut second).success());
}

#[actix_rt::test]
async fn an_amount_that_differs_from_the_order_gives_nothing_and_flags_it() {
    let shop = shop(&[]).await;
    let user = shop.user(1012).await;
    let order = shop.checkout(user, PaymentProvider::Yookassa).await;
    // The order says 399.00 (e.g. the price was changed by hand); YooKassa took 299.00.
    let conn = &mut shop.conn().await;
    diesel::update(payments::table.find(order.id))
        .set(payments::amount_minor.eq(39_900))
        .execute(conn)
        .await
        .unwrap();
    assert_eq!(shop.pay_yookassa(&order).await, 200);
    let flagged = self::order(conn, order.id).await;
    assert_eq!(flagged.status, PaymentStatus::Pending);
    let reason = flagged.failure_reason.expect("flagged for an admin");
    assert!(reason.contains("amount mismatch"), "{reason}");
    assert!(subscription(conn, user).await.is_none());
    assert_eq!(
        verdicts(&events(conn, PaymentProvider::Yookassa).await),
        vec![PaymentEventVerdict::Mismatched]
    );
    shop.finish().await;
}

// -- WATA ----------------------------------------------------------------------------------------

#[actix_rt::test]
async fn wata_checkout_opens_a_link_for_our_order() {
    let shop = shop(&[("PAYMENT_RETURN_URL", "https://t.me/vpn_shop_bot")]).await;
    let user = shop.user(2001).await;
    let order = shop.checkout(user, PaymentProvider::Wata).await;
    let link_id = order.external_id.clone().expect("the link id");
    let link = shop.wata.link(&link_id).expect("a link at WATA");
    assert_eq!(link["orderId"], order.id.to_string());
    assert_eq!(link["amount"], json!(299.0));
    assert_eq!(link["currency"], "RUB");
    assert_eq!(link["successRedirectUrl"], "https://t.me/vpn_shop_bot");
    assert!(link["expirationDateTime"].is_string());
    let create = shop
        .wata
        .requests()
        .into_iter()
        .find(|r| r.method == "POST")
        .unwrap();
    assert_eq!(
        create.authorization.as_deref(),
        Some(format!("Bearer {}", wt::TOKEN).as_str())
    );
    assert_eq!(
        order.confirmation_url.as_deref(),
        link["url"].as_str(),
        "the payer opens WATA's page"
    );
    shop.finish().await;
}

#[actix_rt::test]
async fn a_paid_wata_order_extends_once_even_when_the_webhook_comes_twenty_times_at_once() {
    let shop = shop(&[]).await;
    let user = shop.user(2002).await;
    let order = shop.checkout(user, PaymentProvider::Wata).await;
    let transaction = shop.pay_wata_link(&order);
    let url = shop.webhook_url("wata");
    let statuses =
        futures_util::future::join_all((0..20).map(|_| shop.wata.send_webhook(&url, &transaction)))
            .await;
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    assert_paid_once(&shop, user, order.id).await;
    let conn = &mut shop.conn().await;
    assert_eq!(
        self::order(conn, order.id).await.external_id.as_deref(),
        Some(transaction.as_str()),
        "the order now names WATA's transaction"
    );
    let verdicts = verdicts(&events(conn, PaymentProvider::Wata).await);
    assert_eq!(verdicts.len(), 20);
    assert_eq!(count_of(&verdicts, PaymentEventVerdict::Accepted), 1);
    assert_eq!(count_of(&verdicts, PaymentEventVerdict::Duplicate), 19);
    shop.finish().await;
}

#[actix_rt::test]
async fn refused_webhooks_keep_no_body_and_a_flood_is_cut_off_without_delaying_the_provider() {
    // The proxy in front (127.0.0.1, trusted) tells the flooding address from WATA's.
    let shop = shop(&[
        ("TRUSTED_PROXIES", "127.0.0.1/32"),
        ("WEBHOOK_REFUSAL_LIMIT", "10/m"),
    ])
    .await;
    let user = shop.user(2010).await;
    let order = shop.checkout(user, PaymentProvider::Wata).await;
    let transaction = shop.pay_wata_link(&order);
    let attacker = [("x-forwarded-for", "203.0.113.9")];

    // A big unsigned body: refused, and recorded without the body.
    let big = serde_json::to_vec(&json!({"orderId": "1", "junk": "x".repeat(200 * 1024)})).unwrap();
    let (status, _) = shop.post_raw("wata", big.clone(), &attacker).await;
    assert_eq!(status, 401);
    let refused = events(&mut shop.conn().await, PaymentProvider::Wata).await;
    assert_eq!(verdicts(&refused), vec![PaymentEventVerdict::Forged]);
    assert!(
        refused[0].payload.is_none(),
        "a refused body of {} bytes was stored",
        big.len()
    );
    assert_eq!(refused[0].remote_addr.as_deref(), Some("203.0.113.9"));
    assert_eq!(refused[0].detail.as_deref(), Some("no X-Signature"));
    // What is kept recognises the body: its size and SHA-256.
    use sha2::Digest as _;
    let sha256: String = sha2::Sha256::digest(&big)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(refused[0].body_bytes, Some(big.len() as i32));
    assert_eq!(refused[0].body_sha256.as_deref(), Some(sha256.as_str()));

    // A flood from that address: past its refusal budget it is turned away at the door (429,
    // nothing verified, nothing written).
    let mut statuses = Vec::new();
    for _ in 0..40 {
        statuses.push(shop.post_raw("wata", b"{}".to_vec(), &attacker).await.0);
    }
    assert_eq!(
        statuses.iter().filter(|s| **s == 401).count(),
        9,
        "the budget of 10 refusals, one used above: {statuses:?}"
    );
    assert!(statuses[9..].iter().all(|s| *s == 429), "{statuses:?}");
    let (status, reply) = shop.post_raw("wata", b"{}".to_vec(), &attacker).await;
    assert_eq!(
        (status, reply["error"]["code"].as_str()),
        (429, Some("too_many_requests"))
    );
    assert_eq!(
        events(&mut shop.conn().await, PaymentProvider::Wata)
            .await
            .len(),
        10
    );

    // WATA itself (another address) is never refused, so never limited: paid at once.
    assert_eq!(shop.send_wata(&transaction).await, 200);
    assert_paid_once(&shop, user, order.id).await;
    // And its retries of the same event are answered as usual, however many.
    for _ in 0..15 {
        assert_eq!(shop.send_wata(&transaction).await, 200);
    }
    shop.finish().await;
}

#[actix_rt::test]
async fn a_wata_webhook_without_a_valid_signature_is_401_and_gives_nothing() {
    let shop = shop(&[]).await;
    let user = shop.user(2003).await;
    let order = shop.checkout(user, PaymentProvider::Wata).await;
    let transaction = shop.pay_wata_link(&order);
    let (body, _) = shop.wata.webhook(&transaction);
    let foreign = shop.wata.sign_with_foreign_key(&body);
    let (status, reply) = shop
        .post_raw("wata", body.clone(), &[("x-signature", &foreign)])
        .await;
    assert_eq!(
        (status, reply["error"]["code"].as_str()),
        (401, Some("forged"))
    );
    let (status, _) = shop.post_raw("wata", body.clone(), &[]).await;
    assert_eq!(status, 401, "no signature");
    let (status, _) = shop
        .post_raw("wata", body, &[("x-signature", "bm90IGEgc2lnbmF0dXJl")])
        .await;
    assert_eq!(status, 401, "garbage signature");
    // A genuine body changed after signing (the amount doubled).
    let (body, signature) = shop.wata.webhook(&transaction);
    let tampered = String::from_utf8(body)
        .unwrap()
        .replace("\"orderId\"", "\"orderDescription\":\"x\",\"orderId\"")
        .into_bytes();
    let (status, _) = shop
        .post_raw("wata", tampered, &[("x-signature", &signature)])
        .await;
    assert_eq!(status, 401, "the signature covers the exact body");

    let conn = &mut shop.conn().await;
    assert_eq!(order_status(conn, order.id).await, PaymentStatus::Pending);
    assert!(subscription(conn, user).await.is_none());
    assert_eq!(
        verdicts(&events(conn, PaymentProvider::Wata).await),
        vec![PaymentEventVerdict::Forged; 4]
    );
    assert_eq!(
        shop.wata.count("GET", "/api/h2h/public-key"),
        2,
        "the key is fetched, then fetched again once; more forgeries do not reach WATA"
    );
    // The real one still counts.
    assert_eq!(shop.send_wata(&transaction).await, 200);
    assert_paid_once(&shop, user, order.id).await;
    shop.finish().await;
}

#[actix_rt::test]
async fn wata_key_rotation_is_followed_by_fetching_the_key_again() {
    let shop = shop(&[]).await;
    let first = shop.user(2004).await;
    let second = shop.user(2005).await;
    let a = shop.checkout(first, PaymentProvider::Wata).await;
    let b = shop.checkout(second, PaymentProvider::Wata).await;
    let ta = shop.pay_wata_link(&a);
    assert_eq!(shop.send_wata(&ta).await, 200);
    shop.wata.rotate_key();
    let tb = shop.pay_wata_link(&b);
    assert_eq!(shop.send_wata(&tb).await, 200, "the new key was fetched");
    assert_paid_once(&shop, second, b.id).await;
    assert_eq!(shop.wata.count("GET", "/api/h2h/public-key"), 2);
    shop.finish().await;
}

#[actix_rt::test]
async fn a_declined_wata_attempt_leaves_the_order_open_for_another_try() {
    let shop = shop(&[]).await;
    let user = shop.user(2006).await;
    let order = shop.checkout(user, PaymentProvider::Wata).await;
    let link = order.external_id.clone().unwrap();
    let declined = shop
        .wata
        .decline(&link, "InsufficientFunds", "Not enough money");
    let declined_id = declined["id"].as_str().unwrap().to_owned();
    assert_eq!(shop.send_wata(&declined_id).await, 200);
    assert_eq!(
        order_status(&mut shop.conn().await, order.id).await,
        PaymentStatus::Pending
    );
    let paid = shop.pay_wata_link(&order);
    assert_eq!(shop.send_wata(&paid).await, 200);
    assert_paid_once(&shop, user, order.id).await;
    shop.finish().await;
}

#[actix_rt::test]
async fn a_wata_amount_mismatch_gives_nothing_and_flags_the_order() {
    let shop = shop(&[]).await;
    let user = shop.user(2007).await;
    let order = shop.checkout(user, PaymentProvider::Wata).await;
    let conn = &mut shop.conn().await;
    diesel::update(payments::table.find(order.id))
        .set(payments::amount_minor.eq(19_900))
        .execute(conn)
        .await
        .unwrap();
    let transaction = shop.pay_wata_link(&order);
    assert_eq!(shop.send_wata(&transaction).await, 200);
    let flagged = self::order(conn, order.id).await;
    assert_eq!(flagged.status, PaymentStatus::Pending);
    assert!(flagged.failure_reason.unwrap().contains("amount mismatch"));
    assert!(subscription(conn, user).await.is_none());
    assert_eq!(
        verdicts(&events(conn, PaymentProvider::Wata).await),
        vec![PaymentEventVerdict::Mismatched]
    );
    shop.finish().await;
}

// -- Lost webhooks -------------------------------------------------------------------------------

#[actix_rt::test]
async fn lost_webhooks_are_recovered_by_the_poll_and_dead_links_expire() {
    let shop = shop(&[("PAYMENT_POLL_AFTER", "1ms")]).await;
    let (a, b, c, d) = (
        shop.user(3001).await,
        shop.user(3002).await,
        shop.user(3003).await,
        shop.user(3004).await,
    );
    let paid_yookassa = shop.checkout(a, PaymentProvider::Yookassa).await;
    let paid_wata = shop.checkout(b, PaymentProvider::Wata).await;
    let unpaid_wata = shop.checkout(c, PaymentProvider::Wata).await;
    let unpaid_yookassa = shop.checkout(d, PaymentProvider::Yookassa).await;
    // Paid, but no webhook ever comes.
    shop.yookassa
        .succeed(paid_yookassa.external_id.as_deref().unwrap());
    shop.pay_wata_link(&paid_wata);
    // The unpaid WATA link's time is over.
    let conn = &mut shop.conn().await;
    diesel::update(payments::table.find(unpaid_wata.id))
        .set(payments::link_expires_at.eq(Utc::now() - days(1)))
        .execute(conn)
        .await
        .unwrap();
    shop.run(POLL_JOB).await;

    assert_paid_once(&shop, a, paid_yookassa.id).await;
    assert_paid_once(&shop, b, paid_wata.id).await;
    assert_eq!(
        order_status(conn, unpaid_wata.id).await,
        PaymentStatus::Expired
    );
    // YooKassa decides about its own pending payments: still pending, the order waits.
    assert_eq!(
        order_status(conn, unpaid_yookassa.id).await,
        PaymentStatus::Pending
    );
    // The late webhooks change nothing.
    assert_eq!(shop.pay_yookassa_again(&paid_yookassa).await, 200);
    assert_paid_once(&shop, a, paid_yookassa.id).await;
    // Polling again changes nothing either.
    shop.run(POLL_JOB).await;
    assert_paid_once(&shop, b, paid_wata.id).await;
    shop.finish().await;
}

impl Shop {
    async fn pay_yookassa_again(&self, order: &Payment) -> u16 {
        let id = order.external_id.as_deref().unwrap();
        self.yookassa
            .send_notification(&self.webhook_url("yookassa"), id, "payment.succeeded")
            .await
    }
}

#[actix_rt::test]
async fn a_payment_that_arrives_after_its_order_expired_still_gives_access() {
    let shop = shop(&[("PAYMENT_POLL_AFTER", "1ms")]).await;
    let user = shop.user(3005).await;
    let order = shop.checkout(user, PaymentProvider::Wata).await;
    let conn = &mut shop.conn().await;
    diesel::update(payments::table.find(order.id))
        .set(payments::link_expires_at.eq(Utc::now() - chrono::Duration::seconds(1)))
        .execute(conn)
        .await
        .unwrap();
    shop.run(POLL_JOB).await;
    assert_eq!(order_status(conn, order.id).await, PaymentStatus::Expired);
    // The payer had paid in the last second; WATA's webhook comes now.
    let transaction = shop.pay_wata_link(&order);
    assert_eq!(shop.send_wata(&transaction).await, 200);
    assert_paid_once(&shop, user, order.id).await;
    shop.finish().await;
}

// -- Renewal -------------------------------------------------------------------------------------

#[actix_rt::test]
async fn paying_again_adds_the_period_to_the_time_that_remains() {
    let shop = shop(&[]).await;
    let ends = Utc::now() + days(10);
    let active = shop.subscriber(4001, ends).await;
    let order = shop.checkout(active, PaymentProvider::Yookassa).await;
    assert_eq!(shop.pay_yookassa(&order).await, 200);
    let conn = &mut shop.conn().await;
    assert!(
        close(expires(conn, active).await, ends + days(PLAN_DAYS)),
        "10 days left + 30"
    );
    // An ended subscription starts again from the payment.
    let ended = shop.subscriber(4002, Utc::now() - days(5)).await;
    diesel::update(subscriptions::table.filter(subscriptions::user_id.eq(ended)))
        .set(subscriptions::status.eq(SubscriptionStatus::Expired))
        .execute(conn)
        .await
        .unwrap();
    let order = shop.checkout(ended, PaymentProvider::Wata).await;
    let transaction = shop.pay_wata_link(&order);
    assert_eq!(shop.send_wata(&transaction).await, 200);
    let sub = subscription(conn, ended).await.unwrap();
    assert_fresh_period(sub.expires_at, 30);
    assert_eq!(sub.status, SubscriptionStatus::Active);
    shop.finish().await;
}

// -- Auto-renewal --------------------------------------------------------------------------------

/// A first YooKassa payment with the card saved for automatic renewal.
async fn with_saved_card(shop: &Shop, telegram_id: i64) -> (UserId, String) {
    let user = shop.user(telegram_id).await;
    let checkout = shop
        .try_checkout(user, PaymentProvider::Yookassa, None, true)
        .await;
    let order = shop.order_of(checkout).await;
    assert!(order.save_payment_method);
    let create = shop.first_yookassa_create();
    assert_eq!(create.body.as_ref().unwrap()["save_payment_method"], true);
    assert_eq!(shop.pay_yookassa(&order).await, 200);
    let sub = subscription(&mut shop.conn().await, user).await.unwrap();
    assert!(sub.auto_renew);
    assert_eq!(sub.auto_renew_provider, Some(PaymentProvider::Yookassa));
    let method = sub.auto_renew_method_id.expect("the saved card");
    (user, method)
}

#[actix_rt::test]
async fn auto_renewal_charges_the_saved_card_once_per_period() {
    let shop = shop(&[("AUTO_RENEW_DAYS_BEFORE", "1")]).await;
    let (user, method) = with_saved_card(&shop, 5001).await;
    let conn = &mut shop.conn().await;
    // Not due yet: 30 days left.
    shop.run(AUTO_RENEW_JOB).await;
    assert_eq!(orders_of(conn, user).await.len(), 1);
    // Twelve hours left: due.
    let ends = Utc::now() + chrono::Duration::hours(12);
    set_expires(conn, user, ends).await;
    shop.run(AUTO_RENEW_JOB).await;
    shop.run(AUTO_RENEW_JOB).await;
    let orders = orders_of(conn, user).await;
    assert_eq!(orders.len(), 2, "one charge for the period");
    let renewal = &orders[1];
    assert_eq!(renewal.kind, PaymentKind::AutoRenewal);
    assert_eq!(renewal.status, PaymentStatus::Succeeded);
    assert_eq!(renewal.payment_method_id.as_deref(), Some(method.as_str()));
    let charges: Vec<_> = shop
        .yookassa
        .requests()
        .into_iter()
        .filter(|r| {
            r.method == "POST"
                && r.route == "/v3/payments"
                && r.body.as_ref().unwrap()["payment_method_id"] == json!(method)
        })
        .collect();
    assert_eq!(charges.len(), 1);
    assert!(close(expires(conn, user).await, ends + days(PLAN_DAYS)));
    assert_eq!(
        notifications_for(conn, user).await,
        vec!["payment_succeeded", "auto_renewal_succeeded"]
    );
    let metrics = shop.metrics().await;
    assert!(
        metrics
            .contains(r#"vpn_shop_auto_renewals_total{outcome="succeeded",provider="yookassa"} 1"#),
        "{}",
        metrics
            .lines()
            .filter(|l| l.contains("auto_renewals"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    shop.finish().await;
}

#[actix_rt::test]
async fn a_charge_whose_answer_was_lost_is_asked_about_again_not_charged_twice() {
    let shop = shop(&[("PAYMENT_POLL_AFTER", "1ms")]).await;
    let (user, _) = with_saved_card(&shop, 5002).await;
    let conn = &mut shop.conn().await;
    let ends = Utc::now() + chrono::Duration::hours(6);
    set_expires(conn, user, ends).await;
    // YooKassa charges the card but its answer is lost.
    // (The client repeats a POST with its Idempotence-Key three times: all three answers lost.)
    shop.yookassa.fail_next_after_applying(3, 500);
    shop.run(AUTO_RENEW_JOB).await;
    let renewal = orders_of(conn, user).await.pop().unwrap();
    assert_eq!(renewal.status, PaymentStatus::Pending);
    assert!(renewal.external_id.is_none());
    // Neither the next auto-renewal run nor the poll charges again; the poll learns the result.
    shop.run(AUTO_RENEW_JOB).await;
    shop.run(POLL_JOB).await;
    let renewal = order(conn, renewal.id).await;
    assert_eq!(renewal.status, PaymentStatus::Succeeded);
    let succeeded: Vec<_> = shop
        .yookassa
        .payments()
        .into_iter()
        .filter(|p| p["metadata"]["order_id"] == renewal.id.to_string())
        .collect();
    assert_eq!(succeeded.len(), 1, "one payment at YooKassa");
    assert!(close(expires(conn, user).await, ends + days(PLAN_DAYS)));
    shop.finish().await;
}

#[actix_rt::test]
async fn a_revoked_card_turns_auto_renewal_off_and_tells_the_user() {
    let shop = shop(&[]).await;
    let (user, method) = with_saved_card(&shop, 5003).await;
    shop.yookassa.revoke_payment_method(&method);
    let conn = &mut shop.conn().await;
    let ends = Utc::now() + chrono::Duration::hours(3);
    set_expires(conn, user, ends).await;
    shop.run(AUTO_RENEW_JOB).await;
    let renewal = orders_of(conn, user).await.pop().unwrap();
    assert_eq!(renewal.status, PaymentStatus::Canceled);
    let sub = subscription(conn, user).await.unwrap();
    assert!(!sub.auto_renew, "permission_revoked turns it off");
    assert_eq!(sub.auto_renew_method_id, None);
    assert_eq!(
        sub.expires_at.timestamp(),
        ends.timestamp(),
        "no time given"
    );
    assert_eq!(
        notifications_for(conn, user).await,
        vec!["payment_succeeded", "auto_renewal_failed"]
    );
    shop.finish().await;
}

#[actix_rt::test]
async fn a_declined_renewal_is_not_retried_in_the_same_period_but_auto_renewal_stays_on() {
    let shop = shop(&[]).await;
    let (user, _) = with_saved_card(&shop, 5004).await;
    shop.yookassa
        .set_autopayment_outcome(AutoPayment::cancel("insufficient_funds"));
    let conn = &mut shop.conn().await;
    set_expires(conn, user, Utc::now() + chrono::Duration::hours(3)).await;
    shop.run(AUTO_RENEW_JOB).await;
    shop.run(AUTO_RENEW_JOB).await;
    let orders = orders_of(conn, user).await;
    assert_eq!(orders.len(), 2);
    assert_eq!(orders[1].status, PaymentStatus::Canceled);
    assert!(subscription(conn, user).await.unwrap().auto_renew);
    assert_eq!(
        notifications_for(conn, user).await,
        vec!["payment_succeeded", "auto_renewal_failed"]
    );
    shop.finish().await;
}

#[actix_rt::test]
async fn the_user_can_turn_auto_renewal_off() {
    let shop = shop(&[]).await;
    let (user, _) = with_saved_card(&shop, 5005).await;
    let off = shop
        .app
        .app
        .payments
        .addr()
        .send(CancelAutoRenew { user_id: user })
        .await
        .unwrap();
    assert_eq!(off, Ok(true));
    let conn = &mut shop.conn().await;
    assert!(!subscription(conn, user).await.unwrap().auto_renew);
    set_expires(conn, user, Utc::now() + chrono::Duration::hours(3)).await;
    shop.run(AUTO_RENEW_JOB).await;
    assert_eq!(orders_of(conn, user).await.len(), 1, "nothing charged");
    shop.finish().await;
}

// -- Refunds -------------------------------------------------------------------------------------

/// Waits until the panel user of Telegram user `telegram_id` (`vpnshop_<id>`, written out) expires
/// within two seconds of `at`.
async fn wait_panel_expiry(panel: &FakePanel, telegram_id: i64, at: DateTime<Utc>) {
    let name = format!("vpnshop_{telegram_id}");
    wait_until(
        &format!("{name} to expire at {at} on the panel"),
        || async {
            panel
                .user(&name)
                .and_then(|u| u.expire)
                .is_some_and(|expire| (expire - at.timestamp()).abs() <= 2)
        },
    )
    .await;
}

#[actix_rt::test]
async fn a_yookassa_refund_takes_the_time_back_once_and_is_audited() {
    let panel = FakePanel::start();
    let panel_url = panel.url();
    let shop = shop(&[
        ("MARZBAN_URL", panel_url.as_str()),
        ("MARZBAN_USERNAME", mz::ADMIN_USERNAME),
        ("MARZBAN_PASSWORD", mz::ADMIN_PASSWORD),
    ])
    .await;
    let ends = Utc::now() + days(5);
    let user = shop.subscriber(6001, ends).await;
    let order = shop.checkout(user, PaymentProvider::Yookassa).await;
    assert_eq!(shop.pay_yookassa(&order).await, 200);
    let conn = &mut shop.conn().await;
    assert!(close(expires(conn, user).await, ends + days(30)));
    wait_panel_expiry(&panel, 6001, ends + days(30)).await;
    // Half: 15 days back, in the database and then on the panel (its re-provisioning).
    let half = shop.refund(&order, Some(PLAN_PRICE / 2)).await.unwrap();
    assert_eq!(half.days_taken_back, 15);
    assert!(close(expires(conn, user).await, ends + days(15)));
    wait_panel_expiry(&panel, 6001, ends + days(15)).await;
    // The rest.
    let rest = shop.refund(&order, None).await.unwrap();
    assert_eq!(
        rest.refunded,
        Money::rub_kopecks(PLAN_PRICE - PLAN_PRICE / 2)
    );
    assert_eq!(rest.days_taken_back, 15);
    assert!(close(expires(conn, user).await, ends));
    let refunded = self::order(conn, order.id).await;
    assert_eq!(refunded.status, PaymentStatus::Refunded);
    assert_eq!(refunded.refunded_minor, PLAN_PRICE);
    assert_eq!(shop.yookassa.refunds().len(), 2);
    // Nothing is left to refund.
    let err = shop.refund(&order, None).await.unwrap_err();
    assert!(matches!(err, RefundError::Invalid(_)), "{err:?}");
    // YooKassa's refund.succeeded notices of both refunds change nothing more.
    for refund in shop.yookassa.refunds() {
        let id = refund["id"].as_str().unwrap();
        let status = shop
            .yookassa
            .send_notification(&shop.webhook_url("yookassa"), id, "refund.succeeded")
            .await;
        assert_eq!(status, 200);
    }
    assert!(close(expires(conn, user).await, ends));
    let verdicts = verdicts(&events(conn, PaymentProvider::Yookassa).await);
    assert_eq!(
        verdicts[1..],
        [
            PaymentEventVerdict::Duplicate,
            PaymentEventVerdict::Duplicate
        ]
    );
    // The panel gives back what was refunded: access ends where it ended before the purchase.
    wait_panel_expiry(&panel, 6001, ends).await;
    // Audited.
    let audited: Vec<(String, Option<String>)> = audit_log::table
        .filter(audit_log::action.eq("payment.refund"))
        .select((audit_log::actor, audit_log::target_id))
        .load(conn)
        .await
        .unwrap();
    assert_eq!(
        audited,
        vec![("admin:test".to_owned(), Some(order.id.to_string())); 2]
    );
    shop.finish().await;
}

#[actix_rt::test]
async fn a_refund_made_in_the_yookassa_dashboard_takes_the_time_back_when_its_notice_comes() {
    let shop = shop(&[]).await;
    let user = shop.user(6002).await;
    let order = shop.checkout(user, PaymentProvider::Yookassa).await;
    assert_eq!(shop.pay_yookassa(&order).await, 200);
    // The reseller refunds in YooKassa's dashboard: the same API, outside the shop.
    let refund = shop
        .app
        .http
        .post(format!("{}/refunds", shop.yookassa.url()))
        .basic_auth(yk::SHOP_ID, Some(yk::SECRET_KEY))
        .header("Idempotence-Key", "dashboard-1")
        .json(&json!({
            "payment_id": order.external_id,
            "amount": {"value": "299.00", "currency": "RUB"},
        }))
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    let id = refund["id"].as_str().expect("a refund").to_owned();
    let url = shop.webhook_url("yookassa");
    for _ in 0..3 {
        assert_eq!(
            shop.yookassa
                .send_notification(&url, &id, "refund.succeeded")
                .await,
            200
        );
    }
    let conn = &mut shop.conn().await;
    let refunded = self::order(conn, order.id).await;
    assert_eq!(refunded.status, PaymentStatus::Refunded);
    let sub = subscription(conn, user).await.unwrap();
    assert!(sub.expires_at <= Utc::now() + chrono::Duration::seconds(5));
    assert_eq!(sub.status, SubscriptionStatus::Expired);
    assert_eq!(
        verdicts(&events(conn, PaymentProvider::Yookassa).await),
        vec![
            PaymentEventVerdict::Accepted,
            PaymentEventVerdict::Accepted,
            PaymentEventVerdict::Duplicate,
            PaymentEventVerdict::Duplicate
        ]
    );
    shop.finish().await;
}

/// WATA's public key as PKCS#1 (`BEGIN RSA PUBLIC KEY`, "some clients call it PKCS#1"): the
/// shop falls back to that format and the signed webhook is believed.
#[actix_rt::test]
async fn a_wata_key_served_as_pkcs1_verifies_the_webhook() {
    let shop = shop(&[]).await;
    shop.wata.serve_pkcs1_key(true);
    assert!(
        shop.wata
            .public_key_pem()
            .starts_with("-----BEGIN RSA PUBLIC KEY-----")
    );
    let user = shop.user(6010).await;
    let order = shop.checkout(user, PaymentProvider::Wata).await;
    let transaction = shop.pay_wata_link(&order);
    assert_eq!(shop.send_wata(&transaction).await, 200);
    assert_eq!(
        order_status(&mut shop.conn().await, order.id).await,
        PaymentStatus::Succeeded
    );
    assert_eq!(shop.wata.count("GET", "/api/h2h/public-key"), 1);
    shop.finish().await;
}

#[actix_rt::test]
async fn a_wata_refund_takes_the_time_back_and_its_webhook_does_not_take_it_twice() {
    let shop = shop(&[]).await;
    let ends = Utc::now() + days(3);
    let user = shop.subscriber(6003, ends).await;
    let order = shop.checkout(user, PaymentProvider::Wata).await;
    let transaction = shop.pay_wata_link(&order);
    assert_eq!(shop.send_wata(&transaction).await, 200);
    let order = self::order(&mut shop.conn().await, order.id).await;
    let result = shop.refund(&order, Some(10_000)).await.unwrap();
    assert_eq!(
        result.days_taken_back, 10,
        "100 of 299 roubles: 10 of 30 days"
    );
    let conn = &mut shop.conn().await;
    assert!(close(expires(conn, user).await, ends + days(20)));
    let refund = shop
        .wata
        .transactions()
        .into_iter()
        .find(|t| t["kind"] == "Refund")
        .expect("a refund at WATA");
    assert_eq!(refund["originalTransactionId"], transaction);
    let refund_id = refund["id"].as_str().unwrap();
    assert_eq!(shop.send_wata(refund_id).await, 200);
    assert!(close(expires(conn, user).await, ends + days(20)), "once");
    let verdicts = verdicts(&events(conn, PaymentProvider::Wata).await);
    assert_eq!(verdicts.last(), Some(&PaymentEventVerdict::Duplicate));
    shop.finish().await;
}

#[actix_rt::test]
async fn refunds_of_orders_that_were_not_paid_are_refused() {
    let shop = shop(&[]).await;
    let user = shop.user(6004).await;
    let order = shop.checkout(user, PaymentProvider::Yookassa).await;
    let err = shop.refund(&order, None).await.unwrap_err();
    assert_eq!(err, RefundError::NotPaid(order.id, PaymentStatus::Pending));
    let missing = Payment {
        id: PaymentId(i64::MAX),
        ..order
    };
    let err = shop.refund(&missing, None).await.unwrap_err();
    assert_eq!(err, RefundError::NotFound(PaymentId(i64::MAX)));
    assert!(shop.yookassa.refunds().is_empty());
    shop.finish().await;
}

// -- Promo codes and referrals -------------------------------------------------------------------

async fn insert_promo(
    conn: &mut AsyncPgConnection,
    code: &str,
    kind: PromoKind,
    value: i64,
    max_uses: Option<i32>,
) {
    diesel::insert_into(promo_codes::table)
        .values((
            promo_codes::code.eq(code),
            promo_codes::kind.eq(kind),
            promo_codes::value.eq(value),
            promo_codes::max_uses.eq(max_uses),
        ))
        .execute(conn)
        .await
        .unwrap();
}

#[actix_rt::test]
async fn promo_codes_discount_add_days_or_make_the_period_free() {
    let shop = shop(&[]).await;
    let conn = &mut shop.conn().await;
    insert_promo(conn, "HALF", PromoKind::Percent, 50, None).await;
    insert_promo(conn, "PLUS7", PromoKind::BonusDays, 7, None).await;
    insert_promo(conn, "GIFT", PromoKind::Percent, 100, Some(1)).await;
    insert_promo(conn, "MINUS295", PromoKind::Fixed, 29_500, None).await;

    // 50 % off, typed in any case.
    let half = shop.user(7001).await;
    let order = shop
        .order_of(
            shop.try_checkout(half, PaymentProvider::Yookassa, Some("half"), false)
                .await,
        )
        .await;
    assert_eq!(order.amount(), Money::rub_kopecks(14_950));
    assert_eq!(order.discount_minor, 14_950);
    assert_eq!(shop.pay_yookassa(&order).await, 200);
    let redeemed: i32 = promo_codes::table
        .filter(promo_codes::code.eq("HALF"))
        .select(promo_codes::uses_count)
        .first(conn)
        .await
        .unwrap();
    assert_eq!(redeemed, 1, "counted when paid");
    // Once per user.
    let again = shop
        .try_checkout(half, PaymentProvider::Yookassa, Some("HALF"), false)
        .await;
    assert_eq!(again, Err(CheckoutError::Promo(PromoRefusal::AlreadyUsed)));

    // Bonus days: full price, 37 days.
    let bonus = shop.user(7002).await;
    let order = shop
        .order_of(
            shop.try_checkout(bonus, PaymentProvider::Wata, Some("PLUS7"), false)
                .await,
        )
        .await;
    assert_eq!(order.amount(), Money::rub_kopecks(PLAN_PRICE));
    let transaction = shop.pay_wata_link(&order);
    assert_eq!(shop.send_wata(&transaction).await, 200);
    assert_fresh_period(expires(conn, bonus).await, 37);

    // Never below WATA's minimum of 10 roubles.
    let fixed = shop.user(7003).await;
    let order = shop
        .order_of(
            shop.try_checkout(fixed, PaymentProvider::Wata, Some("MINUS295"), false)
                .await,
        )
        .await;
    assert_eq!(order.amount(), Money::rub_kopecks(1_000));

    // 100 %: no payment, the period at once; the code is then used up.
    let free = shop.user(7004).await;
    let checkout = shop
        .try_checkout(free, PaymentProvider::Yookassa, Some("GIFT"), false)
        .await
        .unwrap();
    let Checkout::Free {
        order_id,
        expires_at,
    } = checkout
    else {
        panic!("free: {checkout:?}");
    };
    let given = self::order(conn, order_id).await;
    assert_eq!(
        (given.provider, given.status, given.amount_minor),
        (PaymentProvider::Free, PaymentStatus::Succeeded, 0)
    );
    assert_eq!(expires(conn, free).await, expires_at);
    assert!(close(expires_at, Utc::now() + days(PLAN_DAYS)));
    assert_eq!(jobs_for(conn, "provision", free).await.len(), 1);
    let other = shop.user(7005).await;
    let used_up = shop
        .try_checkout(other, PaymentProvider::Yookassa, Some("GIFT"), false)
        .await;
    assert_eq!(used_up, Err(CheckoutError::Promo(PromoRefusal::UsedUp)));
    let unknown = shop
        .try_checkout(other, PaymentProvider::Yookassa, Some("NOPE"), false)
        .await;
    assert_eq!(unknown, Err(CheckoutError::Promo(PromoRefusal::Unknown)));
    shop.finish().await;
}

#[actix_rt::test]
async fn the_inviter_gets_the_bonus_once_on_the_first_payment_of_the_invited_user() {
    let shop = shop(&[("REFERRAL_INVITER_DAYS", "30")]).await;
    let inviter_ends = Utc::now() + days(2);
    let (inviter, invitee) = shop.invited(8001, inviter_ends, 8002).await;
    let conn = &mut shop.conn().await;
    for _ in 0..2 {
        let order = shop.checkout(invitee, PaymentProvider::Yookassa).await;
        assert_eq!(shop.pay_yookassa(&order).await, 200);
    }
    assert!(close(expires(conn, inviter).await, inviter_ends + days(30)));
    assert_eq!(
        notifications_for(conn, inviter).await,
        vec!["referral_bonus"]
    );
    assert_eq!(jobs_for(conn, "provision", inviter).await.len(), 1);
    let rewarded: Option<i64> = referrals::table
        .select(referrals::rewarded_payment_id)
        .first(conn)
        .await
        .unwrap();
    assert_eq!(rewarded, Some(orders_of(conn, invitee).await[0].id.0));
    shop.finish().await;
}

#[actix_rt::test]
async fn providers_without_credentials_are_not_offered_and_banned_users_cannot_buy() {
    let app = spawn_app(&[]).await;
    let conn = &mut app.db.connect().await;
    let plan = insert_plan(conn, 30, PLAN_PRICE).await;
    let user = Subscriber::new(9001).insert(conn).await;
    for provider in [
        PaymentProvider::Yookassa,
        PaymentProvider::Wata,
        PaymentProvider::Stars,
    ] {
        let result = app
            .app
            .payments
            .addr()
            .send(CreateCheckout {
                user_id: user,
                plan_id: plan,
                provider,
                promo_code: None,
                auto_renew: false,
                return_to: vpn_shop::actors::payments::ReturnTo::Bot,
            })
            .await
            .unwrap();
        assert_eq!(result, Err(CheckoutError::ProviderOff));
    }
    // The webhooks of unconfigured providers do not exist.
    let response = app
        .http
        .post(app.url("/webhooks/yookassa"))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    app.shutdown().await;

    let shop = shop(&[]).await;
    let banned = shop.user(9002).await;
    diesel::update(users::table.find(banned))
        .set(users::banned.eq(true))
        .execute(&mut shop.conn().await)
        .await
        .unwrap();
    assert_eq!(
        shop.try_checkout(banned, PaymentProvider::Yookassa, None, false)
            .await,
        Err(CheckoutError::Banned)
    );
    // A YooKassa outage: a clear error, and the order is closed.
    let user = shop.user(9003).await;
    shop.yookassa.fail_next(3, 500);
    let result = shop
        .try_checkout(user, PaymentProvider::Yookassa, None, false)
        .await;
    assert!(
        matches!(result, Err(CheckoutError::Provider(_))),
        "{result:?}"
    );
    let orders = orders_of(&mut shop.conn().await, user).await;
    assert_eq!(orders[0].status, PaymentStatus::Canceled);
    shop.finish().await;
}

// -- Telegram Stars ------------------------------------------------------------------------------

impl Shop {
    fn telegram(&self) -> &FakeTelegram {
        self.telegram.as_ref().expect("a Stars shop")
    }

    async fn wait_for_expiry(
        &self,
        user: UserId,
        what: &str,
        check: impl Fn(DateTime<Utc>) -> bool,
    ) {
        wait_until(what, || async {
            match subscription(&mut self.conn().await, user).await {
                Some(sub) => check(sub.expires_at),
                None => false,
            }
        })
        .await;
    }

    async fn wait_for_events(&self, n: usize) -> Vec<PaymentEvent> {
        wait_until("Stars events", || async {
            events(&mut self.conn().await, PaymentProvider::Stars)
                .await
                .len()
                >= n
        })
        .await;
        events(&mut self.conn().await, PaymentProvider::Stars).await
    }
}

#[actix_rt::test]
async fn a_stars_invoice_is_checked_before_payment_and_paid_once() {
    let shop = shop_with(true, &[]).await;
    let tg = shop.telegram();
    let user = shop.user(10_001).await;
    let checkout = shop
        .try_checkout(user, PaymentProvider::Stars, None, false)
        .await
        .unwrap();
    let Checkout::StarsInvoice { order_id, amount } = checkout else {
        panic!("an invoice: {checkout:?}");
    };
    assert_eq!(amount, Money::stars(PLAN_STARS));
    let invoice = tg.calls_to("sendInvoice").pop().expect("sendInvoice");
    assert_eq!(invoice.params["currency"], "XTR");
    assert_eq!(invoice.params["chat_id"], 10_001);
    assert_eq!(invoice.params["payload"], format!("order:{order_id}"));
    let payload = format!("order:{order_id}");

    // Pre-checkout: a wrong amount is refused, the right one accepted, within 10 s.
    tg.push_pre_checkout(10_001, "XTR", 1, &payload);
    tg.push_pre_checkout(10_001, "XTR", PLAN_STARS as u32, "order:999999");
    tg.push_pre_checkout(10_001, "XTR", PLAN_STARS as u32, &payload);
    wait_until("pre-checkout answers", || async {
        tg.pre_checkout_answers().len() == 3
    })
    .await;
    // Queries have no chat, so the bot answers them concurrently: in the order they were asked.
    let mut answers = tg.pre_checkout_answers();
    answers.sort_by_key(|a| {
        a.query_id
            .trim_start_matches("pcq")
            .parse::<u64>()
            .unwrap_or(0)
    });
    assert_eq!(
        answers.iter().map(|a| a.ok).collect::<Vec<_>>(),
        vec![false, false, true]
    );
    assert!(answers.iter().all(|a| a.in_time));
    assert!(answers[0].error_message.is_some());

    // Paid; Telegram's update arrives three times.
    let payment = StarPayment::new(PLAN_STARS as u32, &payload);
    for _ in 0..3 {
        tg.push_successful_payment(10_001, &payment);
    }
    let events = shop.wait_for_events(3).await;
    assert_eq!(
        verdicts(&events),
        vec![
            PaymentEventVerdict::Accepted,
            PaymentEventVerdict::Duplicate,
            PaymentEventVerdict::Duplicate
        ]
    );
    assert_paid_once(&shop, user, order_id).await;
    let paid = order(&mut shop.conn().await, order_id).await;
    assert_eq!(
        paid.external_id.as_deref(),
        Some(payment.telegram_payment_charge_id.as_str())
    );
    // A payment for the order paid already is not a second period: flagged for a refund.
    let second = StarPayment::new(PLAN_STARS as u32, &payload);
    tg.push_successful_payment(10_001, &second);
    let events = shop.wait_for_events(4).await;
    assert_eq!(events[3].verdict, PaymentEventVerdict::Mismatched);
    assert_paid_once(&shop, user, order_id).await;
    shop.finish().await;
}

#[actix_rt::test]
async fn a_stars_refund_takes_the_time_back_once() {
    let shop = shop_with(true, &[]).await;
    let tg = shop.telegram();
    let ends = Utc::now() + days(4);
    let user = shop.subscriber(10_002, ends).await;
    let order = shop
        .order_of(
            shop.try_checkout(user, PaymentProvider::Stars, None, false)
                .await,
        )
        .await;
    let payment = StarPayment::new(PLAN_STARS as u32, &format!("order:{}", order.id));
    tg.push_successful_payment(10_002, &payment);
    shop.wait_for_expiry(user, "the payment", |at| close(at, ends + days(30)))
        .await;
    let order = self::order(&mut shop.conn().await, order.id).await;
    // The admin refunds: refundStarPayment; Telegram then sends `refunded_payment`.
    let result = shop.refund(&order, None).await.unwrap();
    assert_eq!(result.days_taken_back, 30);
    assert!(
        tg.charge(&payment.telegram_payment_charge_id)
            .unwrap()
            .refunded
    );
    // Telegram's notice may be handled before or after the admin's refund commits: whichever
    // comes second finds the refund recorded (under the order's lock) and changes nothing.
    let events = shop.wait_for_events(2).await;
    assert!(
        matches!(
            events[1].verdict,
            PaymentEventVerdict::Duplicate | PaymentEventVerdict::Accepted
        ),
        "{:?}",
        events[1].verdict
    );
    let conn = &mut shop.conn().await;
    assert!(close(expires(conn, user).await, ends), "taken back once");
    assert_eq!(order_status(conn, order.id).await, PaymentStatus::Refunded);
    let refunds: i64 = payment_refunds::table
        .filter(payment_refunds::payment_id.eq(order.id))
        .count()
        .get_result(conn)
        .await
        .unwrap();
    assert_eq!(refunds, 1, "one refund recorded");
    shop.finish().await;
}

#[actix_rt::test]
async fn a_star_subscription_renews_itself_and_can_be_canceled() {
    let shop = shop_with(true, &[]).await;
    let tg = shop.telegram();
    let user = shop.user(10_003).await;
    let checkout = shop
        .try_checkout(user, PaymentProvider::Stars, None, true)
        .await
        .unwrap();
    let Checkout::Redirect { order_id, url, .. } = checkout else {
        panic!("a subscription link: {checkout:?}");
    };
    let link = tg.invoice_links().pop().expect("createInvoiceLink");
    assert_eq!(link.url, url);
    assert_eq!(link.params["subscription_period"], tg::SUBSCRIPTION_PERIOD);
    assert_eq!(link.params["currency"], "XTR");
    let payload = format!("order:{order_id}");
    let period_end = Utc::now().timestamp() + tg::SUBSCRIPTION_PERIOD;
    let first = StarPayment::subscription(PLAN_STARS as u32, &payload, period_end, true);
    tg.push_successful_payment(10_003, &first);
    shop.wait_for_expiry(user, "the first payment", |_| true)
        .await;
    let conn = &mut shop.conn().await;
    let after_first = expires(conn, user).await;
    let sub = subscription(conn, user).await.unwrap();
    assert!(sub.auto_renew);
    assert_eq!(sub.auto_renew_provider, Some(PaymentProvider::Stars));
    assert_eq!(
        sub.auto_renew_method_id.as_deref(),
        Some(first.telegram_payment_charge_id.as_str())
    );

    // Thirty days later Telegram charges again (twice delivered): one more period.
    let renewal = StarPayment::subscription(
        PLAN_STARS as u32,
        &payload,
        period_end + tg::SUBSCRIPTION_PERIOD,
        false,
    );
    tg.push_successful_payment(10_003, &renewal);
    tg.push_successful_payment(10_003, &renewal);
    shop.wait_for_events(3).await;
    assert_eq!(expires(conn, user).await, after_first + days(30));
    let orders = orders_of(conn, user).await;
    assert_eq!(orders.len(), 2);
    assert_eq!(orders[1].kind, PaymentKind::StarsRenewal);
    assert_eq!(
        orders[1].external_id.as_deref(),
        Some(renewal.telegram_payment_charge_id.as_str())
    );
    assert_eq!(
        notifications_for(conn, user).await,
        vec!["payment_succeeded", "auto_renewal_succeeded"]
    );

    // A refund of the renewal takes back the renewal's period, not the first order's.
    let result = shop.refund(&orders[1], None).await.unwrap();
    assert_eq!(result.days_taken_back, 30);
    assert_eq!(
        order_status(conn, orders[0].id).await,
        PaymentStatus::Succeeded
    );
    assert_eq!(
        order_status(conn, orders[1].id).await,
        PaymentStatus::Refunded
    );

    // The user cancels: Telegram stops the subscription.
    let off = shop
        .app
        .app
        .payments
        .addr()
        .send(CancelAutoRenew { user_id: user })
        .await
        .unwrap();
    assert_eq!(off, Ok(true));
    assert!(
        tg.charge(&first.telegram_payment_charge_id)
            .unwrap()
            .subscription_canceled
    );
    assert!(!subscription(conn, user).await.unwrap().auto_renew);
    shop.finish().await;
}

#[actix_rt::test]
async fn a_stars_payment_the_bot_missed_is_found_by_the_poll() {
    let shop = shop_with(true, &[("PAYMENT_POLL_AFTER", "1ms")]).await;
    let user = shop.user(10_004).await;
    let order = shop
        .order_of(
            shop.try_checkout(user, PaymentProvider::Stars, None, false)
                .await,
        )
        .await;
    // Known to Telegram's Star transactions, but the update never reached the shop: recorded
    // as Telegram would, then taken out of the update queue.
    let payment = StarPayment::new(PLAN_STARS as u32, &format!("order:{}", order.id));
    shop.telegram()
        .record_star_payment_without_update(10_004, &payment);
    shop.run(POLL_JOB).await;
    assert_paid_once(&shop, user, order.id).await;
    shop.finish().await;
}

/// README (Payments): a Stars invoice does not expire, so its order is given up (`expired`) by the
/// poll a day after it was made when Telegram has no payment for it — not before.
#[actix_rt::test]
async fn an_unpaid_stars_order_expires_after_a_day_and_not_before() {
    let shop = shop_with(true, &[("PAYMENT_POLL_AFTER", "1ms")]).await;
    let conn = &mut shop.conn().await;
    let mut orders = Vec::new();
    for (telegram_id, age_hours) in [(10_011, 25), (10_012, 23)] {
        let user = shop.user(telegram_id).await;
        let order = shop
            .order_of(
                shop.try_checkout(user, PaymentProvider::Stars, None, false)
                    .await,
            )
            .await;
        diesel::update(payments::table.find(order.id))
            .set(payments::created_at.eq(Utc::now() - chrono::Duration::hours(age_hours)))
            .execute(conn)
            .await
            .unwrap();
        orders.push(order.id);
    }
    shop.run(POLL_JOB).await;
    assert_eq!(
        order_status(conn, orders[0]).await,
        PaymentStatus::Expired,
        "25 hours old"
    );
    assert_eq!(
        order_status(conn, orders[1]).await,
        PaymentStatus::Pending,
        "23 hours old"
    );
    shop.finish().await;
}

#[actix_rt::test]
async fn payment_pages_send_the_payer_back_to_the_bot_chat() {
    let shop = shop_with(true, &[]).await;
    let tg = shop.telegram();
    // The bot connected (getMe answered, long polling began).
    tg.wait_for_calls("getUpdates", 1, Duration::from_secs(20))
        .await;
    let user = shop.user(10_005).await;
    shop.checkout(user, PaymentProvider::Yookassa).await;
    let create = shop.first_yookassa_create();
    assert_eq!(
        create.body.as_ref().unwrap()["confirmation"]["return_url"],
        format!("https://t.me/{}", tg::BOT_USERNAME)
    );
    shop.finish().await;
}

// -- Money safety: sequences where a payer lost access or a sales rule was bypassed -------------
// Each test below reproduced its sequence on the code before its fix (the assertion named in
// its comment failed there).

/// Inserts a promo code with its limits.
async fn insert_limited_promo(
    conn: &mut AsyncPgConnection,
    code: &str,
    kind: PromoKind,
    value: i64,
    max_uses: Option<i32>,
    once_per_user: bool,
) {
    diesel::insert_into(promo_codes::table)
        .values((
            promo_codes::code.eq(code),
            promo_codes::kind.eq(kind),
            promo_codes::value.eq(value),
            promo_codes::max_uses.eq(max_uses),
            promo_codes::once_per_user.eq(once_per_user),
        ))
        .execute(conn)
        .await
        .unwrap();
}

async fn promo_uses(conn: &mut AsyncPgConnection, code: &str) -> i32 {
    promo_codes::table
        .filter(promo_codes::code.eq(code))
        .select(promo_codes::uses_count)
        .first(conn)
        .await
        .unwrap()
}

/// The value of a metric line starting with `series` (0 when absent).
fn metric_value(metrics: &str, series: &str) -> f64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or(0.0)
}

#[actix_rt::test]
async fn a_promo_code_limited_to_ten_uses_discounts_ten_checkouts_not_every_one_opened_before_the_tenth_pays()
 {
    // Before: all 60 checkouts were discounted (the limit was checked against paid uses only).
    let shop = shop(&[]).await;
    let conn = &mut shop.conn().await;
    insert_limited_promo(conn, "TEN", PromoKind::Percent, 50, Some(10), true).await;
    let mut users = Vec::new();
    for i in 0..60 {
        users.push(shop.user(20_000 + i).await);
    }
    let checkouts = futures_util::future::join_all(
        users
            .iter()
            .map(|&user| shop.try_checkout(user, PaymentProvider::Yookassa, Some("TEN"), false)),
    )
    .await;
    let discounted: Vec<&Checkout> = checkouts.iter().filter_map(|c| c.as_ref().ok()).collect();
    let refused = checkouts
        .iter()
        .filter(|c| **c == Err(CheckoutError::Promo(PromoRefusal::UsedUp)))
        .count();
    assert_eq!(discounted.len(), 10, "ten reservations: {checkouts:?}");
    assert_eq!(refused, 50);
    // A canceled order gives its reservation back: one more checkout may use the code.
    let first = shop.order_of(Ok(discounted[0].clone())).await;
    let external = first.external_id.clone().unwrap();
    shop.yookassa
        .cancel(&external, "yoo_money", "expired_on_confirmation");
    let status = shop
        .yookassa
        .send_notification(&shop.webhook_url("yookassa"), &external, "payment.canceled")
        .await;
    assert_eq!(status, 200);
    let late = shop.user(20_100).await;
    let again = shop
        .try_checkout(late, PaymentProvider::Yookassa, Some("TEN"), false)
        .await;
    assert!(again.is_ok(), "the canceled order's use is free: {again:?}");
    // Everyone holding a reservation pays: ten uses, each at the discounted price.
    for checkout in discounted
        .iter()
        .skip(1)
        .map(|c| (*c).clone())
        .chain([again.unwrap()])
    {
        let order = shop.order_of(Ok(checkout)).await;
        assert_eq!(order.amount(), Money::rub_kopecks(PLAN_PRICE / 2));
        assert_eq!(shop.pay_yookassa(&order).await, 200);
    }
    assert_eq!(promo_uses(conn, "TEN").await, 10);
    shop.finish().await;
}

#[actix_rt::test]
async fn a_free_code_for_one_use_checked_out_by_two_users_at_the_same_moment_is_free_once() {
    // Before: both users got the period for free.
    let shop = shop(&[]).await;
    let conn = &mut shop.conn().await;
    insert_limited_promo(conn, "ONEGIFT", PromoKind::Percent, 100, Some(1), true).await;
    let (a, b) = (shop.user(21_001).await, shop.user(21_002).await);
    let (ra, rb) = futures_util::join!(
        shop.try_checkout(a, PaymentProvider::Yookassa, Some("ONEGIFT"), false),
        shop.try_checkout(b, PaymentProvider::Yookassa, Some("ONEGIFT"), false),
    );
    let free = [&ra, &rb]
        .iter()
        .filter(|r| matches!(r, Ok(Checkout::Free { .. })))
        .count();
    assert_eq!(free, 1, "{ra:?} / {rb:?}");
    assert!(
        [&ra, &rb]
            .iter()
            .any(|r| **r == Err(CheckoutError::Promo(PromoRefusal::UsedUp)))
    );
    let mut subscribed = 0;
    for user in [a, b] {
        if subscription(conn, user).await.is_some() {
            subscribed += 1;
        }
    }
    assert_eq!(subscribed, 1, "one free period");
    assert_eq!(promo_uses(conn, "ONEGIFT").await, 1);
    shop.finish().await;
}

#[actix_rt::test]
async fn a_once_per_user_code_paid_on_two_orders_is_redeemed_once_and_the_second_flagged() {
    // Before: two redemptions of a once-per-user code by one user, silently.
    let shop = shop(&[]).await;
    let conn = &mut shop.conn().await;
    insert_limited_promo(conn, "ONCE", PromoKind::Percent, 10, None, true).await;
    let user = shop.user(22_001).await;
    let first = shop
        .order_of(
            shop.try_checkout(user, PaymentProvider::Yookassa, Some("ONCE"), false)
                .await,
        )
        .await;
    // The payer opens a second checkout with the code (the first page is still open) …
    let second = shop
        .order_of(
            shop.try_checkout(user, PaymentProvider::Wata, Some("ONCE"), false)
                .await,
        )
        .await;
    // … and pays both.
    assert_eq!(shop.pay_yookassa(&first).await, 200);
    let transaction = shop.pay_wata_link(&second);
    assert_eq!(shop.send_wata(&transaction).await, 200);
    let redemptions: i64 = vpn_shop::db::schema::promo_redemptions::table
        .count()
        .get_result(conn)
        .await
        .unwrap();
    assert_eq!(redemptions, 1, "redeemed once");
    assert_eq!(promo_uses(conn, "ONCE").await, 1);
    // Both paid, both give their days; the over-use is recorded and counted for an alert.
    let orders = orders_of(conn, user).await;
    assert!(
        orders.iter().all(|o| o.status == PaymentStatus::Succeeded),
        "{orders:?}"
    );
    let flagged: Vec<&Payment> = orders
        .iter()
        .filter(|o| {
            o.failure_reason
                .as_deref()
                .is_some_and(|r| r.contains("promo"))
        })
        .collect();
    assert_eq!(flagged.len(), 1, "{orders:?}");
    assert_fresh_period(expires(conn, user).await, 60);
    let metrics = shop.metrics().await;
    assert_eq!(
        metric_value(
            &metrics,
            r#"vpn_shop_payment_anomalies_total{kind="promo_overuse"}"#
        ),
        1.0
    );
    shop.finish().await;
}

/// Holds a row lock on an order from another connection until `release` is called, so that a
/// payment of it cannot commit meanwhile.
struct HeldOrder {
    conn: AsyncPgConnection,
}

impl HeldOrder {
    async fn lock(shop: &Shop, order: PaymentId) -> HeldOrder {
        use diesel_async::SimpleAsyncConnection;
        let mut conn = shop.conn().await;
        conn.batch_execute(&format!(
            "BEGIN; SELECT id FROM payments WHERE id = {order} FOR UPDATE"
        ))
        .await
        .unwrap();
        HeldOrder { conn }
    }

    async fn release(mut self) {
        use diesel_async::SimpleAsyncConnection;
        self.conn.batch_execute("COMMIT").await.unwrap();
    }

    /// Like [`Self::wait_blocking`], but returns as soon as `answer` is finished (the caller
    /// then says what came back instead of waiting for a lock nobody will take).
    async fn wait_blocking_unless<T>(&mut self, answer: &actix_rt::task::JoinHandle<T>) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !answer.is_finished() && Instant::now() < deadline {
            if self.blocked().await {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until another session waits for this lock: the app has reached the order and
    /// cannot commit the payment until the lock is released.
    async fn wait_blocking(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !self.blocked().await {
            assert!(
                Instant::now() < deadline,
                "nothing waits for the held order"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Whether a session waits for a lock this one holds. Read from `pg_locks`, which is built
    /// on every call: `pg_stat_activity` would be a snapshot taken at its first read in this
    /// session's open transaction, without the backends that connected later (a pool's new
    /// connection then never showed up as waiting, and the tests failed now and then).
    async fn blocked(&mut self) -> bool {
        #[derive(QueryableByName)]
        struct Blocked {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            n: i64,
        }
        let blocked: Blocked = diesel::sql_query(
            "SELECT count(*) AS n FROM pg_locks \
             WHERE NOT granted AND pg_backend_pid() = ANY (pg_blocking_pids(pid))",
        )
        .get_result(&mut self.conn)
        .await
        .unwrap();
        blocked.n > 0
    }
}

/// A Telegram update carrying a `successful_payment` from `user`.
fn successful_payment_update(update_id: i64, user: i64, payment: &StarPayment) -> Value {
    json!({"update_id": update_id, "message": {
        "message_id": update_id, "date": Utc::now().timestamp(),
        "chat": {"id": user, "type": "private", "first_name": "Payer"},
        "from": {"id": user, "is_bot": false, "first_name": "Payer", "language_code": "en"},
        "successful_payment": {
            "currency": "XTR",
            "total_amount": payment.total_amount,
            "invoice_payload": payment.invoice_payload,
            "telegram_payment_charge_id": payment.telegram_payment_charge_id,
            "provider_payment_charge_id": "",
        },
    }})
}

const WEBHOOK_SECRET: &str = "a-webhook-secret-of-forty-characters_0123";

#[actix_rt::test]
async fn a_stars_payment_in_webhook_mode_is_committed_before_telegram_is_answered() {
    // Before: 200 as soon as the update was queued in memory (a crash then lost the payment).
    let shop = shop_with(
        true,
        &[
            ("TELEGRAM_MODE", "webhook"),
            ("TELEGRAM_WEBHOOK_SECRET", WEBHOOK_SECRET),
            ("PUBLIC_BASE_URL", "https://shop.example.com"),
        ],
    )
    .await;
    let user = shop.user(23_001).await;
    let order = shop
        .order_of(
            shop.try_checkout(user, PaymentProvider::Stars, None, false)
                .await,
        )
        .await;
    let payment = StarPayment::new(PLAN_STARS as u32, &format!("order:{}", order.id));
    let mut held = HeldOrder::lock(&shop, order.id).await;
    let post = shop
        .app
        .http
        .post(shop.app.url("/webhooks/telegram"))
        .header("X-Telegram-Bot-Api-Secret-Token", WEBHOOK_SECRET)
        .json(&successful_payment_update(9_001, 23_001, &payment))
        .send();
    let answer = actix_rt::spawn(post);
    // The app is at the payment and waits for the order's lock: no answer may have left yet.
    held.wait_blocking_unless(&answer).await;
    if answer.is_finished() {
        let status = answer.await.unwrap().unwrap().status();
        panic!(
            "Telegram was answered {status} while the payment could not be committed (order {})",
            order_status(&mut shop.conn().await, order.id).await
        );
    }
    held.release().await;
    let status = answer.await.unwrap().unwrap().status();
    assert_eq!(status, 200);
    assert_eq!(
        order_status(&mut shop.conn().await, order.id).await,
        PaymentStatus::Succeeded,
        "committed before the answer"
    );
    assert_paid_once(&shop, user, order.id).await;
    shop.finish().await;
}

#[actix_rt::test]
async fn a_stars_payment_in_polling_mode_is_recorded_before_its_update_is_confirmed() {
    // Before: the next getUpdates confirmed the update while the payment was not recorded.
    let shop = shop_with(true, &[]).await;
    let tg = shop.telegram();
    tg.wait_for_calls("getUpdates", 1, Duration::from_secs(20))
        .await;
    let user = shop.user(23_002).await;
    let order = shop
        .order_of(
            shop.try_checkout(user, PaymentProvider::Stars, None, false)
                .await,
        )
        .await;
    let payment = StarPayment::new(PLAN_STARS as u32, &format!("order:{}", order.id));
    let mut held = HeldOrder::lock(&shop, order.id).await;
    let update_id = tg.push_successful_payment(23_002, &payment);
    // Telegram forgets an update once a getUpdates names a later offset.
    let confirmed = || {
        !tg.pending_updates()
            .iter()
            .any(|u| u["update_id"].as_i64() == Some(update_id))
    };
    // The update was taken (a getUpdates returned it) and its payment waits for the order …
    held.wait_blocking().await;
    // … but is not confirmed while the payment cannot be recorded.
    assert!(
        !confirmed(),
        "update {update_id} confirmed to Telegram while order {} is {}",
        order.id,
        order_status(&mut shop.conn().await, order.id).await
    );
    held.release().await;
    wait_until("the payment recorded and the update confirmed", || async {
        confirmed()
    })
    .await;
    assert_eq!(
        order_status(&mut shop.conn().await, order.id).await,
        PaymentStatus::Succeeded
    );
    shop.finish().await;
}

#[actix_rt::test]
async fn the_stars_poll_finds_a_day_old_payment_behind_the_first_hundred_transactions() {
    // Before: getStarTransactions without offset read the bot's first 100 transactions ever, did
    // not find the payment, and the day-old order was expired: paid Stars, no access.
    let shop = shop_with(true, &[("PAYMENT_POLL_AFTER", "1ms")]).await;
    let tg = shop.telegram();
    let user = shop.user(23_003).await;
    let order = shop
        .order_of(
            shop.try_checkout(user, PaymentProvider::Stars, None, false)
                .await,
        )
        .await;
    // 150 earlier sales to others, then this payment, whose update never reached the shop.
    for i in 0..150 {
        let other = StarPayment::new(PLAN_STARS as u32, &format!("order:{}", 1_000_000 + i));
        tg.record_star_payment_without_update(30_000 + i, &other);
    }
    let payment = StarPayment::new(PLAN_STARS as u32, &format!("order:{}", order.id));
    tg.record_star_payment_without_update(23_003, &payment);
    let conn = &mut shop.conn().await;
    diesel::update(payments::table.find(order.id))
        .set(payments::created_at.eq(Utc::now() - days(2)))
        .execute(conn)
        .await
        .unwrap();
    shop.run(POLL_JOB).await;
    let polled = self::order(conn, order.id).await;
    assert_eq!(polled.status, PaymentStatus::Succeeded, "{polled:?}");
    assert_eq!(
        polled.external_id.as_deref(),
        Some(payment.telegram_payment_charge_id.as_str())
    );
    shop.finish().await;
}

#[actix_rt::test]
async fn a_payment_for_an_order_already_expired_is_granted_and_raised_for_an_admin() {
    // Before: granted silently.
    let shop = shop(&[]).await;
    let user = shop.user(23_004).await;
    let order = shop.checkout(user, PaymentProvider::Yookassa).await;
    let conn = &mut shop.conn().await;
    diesel::update(payments::table.find(order.id))
        .set(payments::status.eq(PaymentStatus::Expired))
        .execute(conn)
        .await
        .unwrap();
    assert_eq!(shop.pay_yookassa(&order).await, 200);
    let paid = self::order(conn, order.id).await;
    assert_eq!(paid.status, PaymentStatus::Succeeded);
    assert!(
        paid.failure_reason
            .as_deref()
            .is_some_and(|r| r.contains("expired")),
        "{paid:?}"
    );
    let metrics = shop.metrics().await;
    assert_eq!(
        metric_value(
            &metrics,
            r#"vpn_shop_payment_anomalies_total{kind="paid_after_expiry"}"#
        ),
        1.0
    );
    shop.finish().await;
}

/// The reseller refunds a YooKassa payment in the dashboard (the same API, outside the shop).
async fn dashboard_refund(shop: &Shop, payment_id: &str, value: &str) -> String {
    let refund = shop
        .app
        .http
        .post(format!("{}/refunds", shop.yookassa.url()))
        .basic_auth(yk::SHOP_ID, Some(yk::SECRET_KEY))
        .header("Idempotence-Key", format!("dashboard-{payment_id}-{value}"))
        .json(&json!({
            "payment_id": payment_id,
            "amount": {"value": value, "currency": "RUB"},
        }))
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    refund["id"].as_str().expect("a refund").to_owned()
}

#[actix_rt::test]
async fn a_refund_notice_that_arrives_before_its_payment_takes_the_days_back_when_it_lands() {
    // Before: the refund notice was "ignored" (200) and the payment then gave 30 days.
    let shop = shop(&[]).await;
    let ends = Utc::now() + days(3);
    let user = shop.subscriber(24_001, ends).await;
    let order = shop.checkout(user, PaymentProvider::Yookassa).await;
    let external = order.external_id.clone().unwrap();
    shop.yookassa.succeed(&external);
    let refund = dashboard_refund(&shop, &external, "299.00").await;
    let url = shop.webhook_url("yookassa");
    assert_eq!(
        shop.yookassa
            .send_notification(&url, &refund, "refund.succeeded")
            .await,
        200
    );
    assert_eq!(
        shop.yookassa
            .send_notification(&url, &external, "payment.succeeded")
            .await,
        200
    );
    let conn = &mut shop.conn().await;
    assert!(
        close(expires(conn, user).await, ends),
        "refunded in full: no time given, ends {}",
        expires(conn, user).await
    );
    let refunded = self::order(conn, order.id).await;
    assert_eq!(refunded.status, PaymentStatus::Refunded);
    assert_eq!(refunded.refunded_minor, PLAN_PRICE);
    // YooKassa sends the refund notice again: nothing more.
    assert_eq!(
        shop.yookassa
            .send_notification(&url, &refund, "refund.succeeded")
            .await,
        200
    );
    assert!(close(expires(conn, user).await, ends));
    shop.finish().await;
}

#[actix_rt::test]
async fn the_poll_reads_yookassas_refunds_of_a_payment_whose_notices_were_lost() {
    // Before: the poll saw `succeeded` and gave 30 days, ignoring `refunded_amount`.
    let shop = shop(&[("PAYMENT_POLL_AFTER", "1ms")]).await;
    let ends = Utc::now() + days(3);
    let user = shop.subscriber(24_002, ends).await;
    let order = shop.checkout(user, PaymentProvider::Yookassa).await;
    let external = order.external_id.clone().unwrap();
    shop.yookassa.succeed(&external);
    dashboard_refund(&shop, &external, "100.00").await;
    shop.run(POLL_JOB).await;
    let conn = &mut shop.conn().await;
    let polled = self::order(conn, order.id).await;
    assert_eq!(polled.status, PaymentStatus::Refunded);
    assert_eq!(polled.refunded_minor, 10_000);
    // 100 of 299 roubles: 10 of 30 days back.
    assert!(
        close(expires(conn, user).await, ends + days(20)),
        "ends {}",
        expires(conn, user).await
    );
    shop.finish().await;
}

#[actix_rt::test]
async fn a_wata_refund_webhook_before_the_payment_webhook_is_not_lost() {
    // Before: the refund was ignored and the payment then gave the whole period.
    let shop = shop(&[]).await;
    let ends = Utc::now() + days(3);
    let user = shop.subscriber(24_003, ends).await;
    let order = shop.checkout(user, PaymentProvider::Wata).await;
    let transaction = shop.pay_wata_link(&order);
    // Refunded at WATA (its dashboard) before the shop heard of the payment.
    let refund = shop
        .app
        .http
        .post(format!("{}/transactions/refunds", shop.wata.url()))
        .bearer_auth(wt::TOKEN)
        .json(&json!({"originalTransactionId": transaction, "amount": 299.00}))
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    let refund_id = refund["transactionId"]
        .as_str()
        .expect("a refund")
        .to_owned();
    assert_eq!(shop.send_wata(&refund_id).await, 200);
    assert_eq!(shop.send_wata(&transaction).await, 200);
    let conn = &mut shop.conn().await;
    assert!(
        close(expires(conn, user).await, ends),
        "ends {}",
        expires(conn, user).await
    );
    assert_eq!(order_status(conn, order.id).await, PaymentStatus::Refunded);
    shop.finish().await;
}

/// A WATA order paid through its webhook; the order after it.
async fn paid_wata_order(shop: &Shop, user: UserId) -> Payment {
    let order = shop.checkout(user, PaymentProvider::Wata).await;
    let transaction = shop.pay_wata_link(&order);
    assert_eq!(shop.send_wata(&transaction).await, 200);
    self::order(&mut shop.conn().await, order.id).await
}

fn wata_refunds(shop: &Shop) -> Vec<Value> {
    shop.wata
        .transactions()
        .into_iter()
        .filter(|t| t["kind"] == "Refund")
        .collect()
}

#[actix_rt::test]
async fn a_double_click_on_a_wata_refund_refunds_once() {
    // Before: both requests reached WATA: the payer was refunded twice.
    let shop = shop(&[]).await;
    let user = shop.user(25_001).await;
    let order = paid_wata_order(&shop, user).await;
    shop.wata.set_latency(Duration::from_millis(300));
    let (a, b) = futures_util::join!(
        shop.refund(&order, Some(10_000)),
        shop.refund(&order, Some(10_000))
    );
    assert_eq!(wata_refunds(&shop).len(), 1, "{a:?} / {b:?}");
    assert!(
        a.is_ok() != b.is_ok(),
        "one refund, one refusal: {a:?} / {b:?}"
    );
    let refused = if a.is_err() { a } else { b };
    assert!(
        matches!(refused, Err(RefundError::InProgress(_))),
        "{refused:?}"
    );
    let after = self::order(&mut shop.conn().await, order.id).await;
    assert_eq!(after.refunded_minor, 10_000);
    shop.finish().await;
}

#[actix_rt::test]
async fn a_wata_refund_retried_after_a_timeout_is_not_made_twice() {
    // Before: the retry refunded again.
    let shop = shop(&[("PAYMENT_PROVIDER_TIMEOUT", "1s")]).await;
    let user = shop.user(25_002).await;
    let order = paid_wata_order(&shop, user).await;
    // WATA refunds, but its answer comes after the shop gave up waiting.
    shop.wata.time_out_next(1, Duration::from_secs(3));
    let first = shop.refund(&order, Some(10_000)).await;
    assert!(matches!(first, Err(RefundError::Unknown(_))), "{first:?}");
    // The admin tries again: refused while WATA's outcome is unknown.
    let retry = shop.refund(&order, Some(10_000)).await;
    assert!(
        matches!(retry, Err(RefundError::InProgress(_))),
        "{retry:?}"
    );
    assert_eq!(wata_refunds(&shop).len(), 1);
    // WATA's webhook settles it: counted once, and the next refund may go.
    let refund_id = wata_refunds(&shop)[0]["id"].as_str().unwrap().to_owned();
    assert_eq!(shop.send_wata(&refund_id).await, 200);
    let after = self::order(&mut shop.conn().await, order.id).await;
    assert_eq!(after.refunded_minor, 10_000);
    let next = shop.refund(&order, Some(5_000)).await;
    assert!(next.is_ok(), "{next:?}");
    assert_eq!(wata_refunds(&shop).len(), 2);
    shop.finish().await;
}

#[actix_rt::test]
async fn partial_refunds_take_back_days_by_the_share_refunded_so_far() {
    // Before: two refunds of half a 31-day order took 16 + 16 = 32 days.
    let shop = shop(&[]).await;
    let conn = &mut shop.conn().await;
    let plan = insert_plan(conn, 31, 31_000).await;
    let ends = Utc::now() + days(40);
    let user = shop.subscriber(26_001, ends).await;
    let checkout = shop
        .try_checkout_of(plan, user, PaymentProvider::Yookassa, None, false)
        .await;
    let order = shop.order_of(checkout).await;
    assert_eq!(shop.pay_yookassa(&order).await, 200);
    let first = shop.refund(&order, Some(15_500)).await.unwrap();
    let second = shop.refund(&order, Some(15_500)).await.unwrap();
    assert_eq!(first.days_taken_back + second.days_taken_back, 31);
    assert!(close(expires(conn, user).await, ends));
    shop.finish().await;
}

#[actix_rt::test]
async fn auto_renewal_does_not_charge_again_while_a_charge_is_pending_and_the_end_moved() {
    // Before: the end date is part of the charge's key, so a moved end meant a second charge.
    let shop = shop(&[]).await;
    let (user, method) = with_saved_card(&shop, 27_001).await;
    shop.yookassa.set_autopayment_outcome(AutoPayment::Pending);
    let conn = &mut shop.conn().await;
    let ends = Utc::now() + chrono::Duration::hours(12);
    set_expires(conn, user, ends).await;
    shop.run(AUTO_RENEW_JOB).await;
    // While YooKassa works on the charge, the end moves (an admin gives two hours).
    set_expires(conn, user, ends + chrono::Duration::hours(2)).await;
    shop.run(AUTO_RENEW_JOB).await;
    let charges = shop
        .yookassa
        .requests()
        .into_iter()
        .filter(|r| {
            r.method == "POST"
                && r.route == "/v3/payments"
                && r.body.as_ref().unwrap()["payment_method_id"] == json!(method)
        })
        .count();
    assert_eq!(charges, 1, "one charge while one is pending");
    let pending = orders_of(conn, user)
        .await
        .into_iter()
        .filter(|o| o.kind == PaymentKind::AutoRenewal)
        .count();
    assert_eq!(pending, 1);
    shop.finish().await;
}

#[actix_rt::test]
async fn a_full_refund_of_the_first_payment_takes_the_inviters_bonus_back() {
    // Before: the inviter kept the 30 bonus days of a payment that was refunded in full.
    let shop = shop(&[("REFERRAL_INVITER_DAYS", "30")]).await;
    let inviter_ends = Utc::now() + days(2);
    let (inviter, invitee) = shop.invited(28_001, inviter_ends, 28_002).await;
    let conn = &mut shop.conn().await;
    let order = shop.checkout(invitee, PaymentProvider::Yookassa).await;
    assert_eq!(shop.pay_yookassa(&order).await, 200);
    assert!(close(expires(conn, inviter).await, inviter_ends + days(30)));
    // A partial refund leaves the bonus; the rest of it takes the bonus back, once.
    shop.refund(&order, Some(10_000)).await.unwrap();
    assert!(close(expires(conn, inviter).await, inviter_ends + days(30)));
    shop.refund(&order, None).await.unwrap();
    assert!(
        close(expires(conn, inviter).await, inviter_ends),
        "inviter ends {}",
        expires(conn, inviter).await
    );
    shop.finish().await;
}
