//! Property tests: whatever arrives — a button's callback data, a configuration value, a
//! Telegram update, a webhook body, an admin API request — the program answers with a value or a
//! clear error and never panics, never answers 5xx (but a documented 503), never answers an error
//! that is not the JSON error body, and nothing a stranger sends is written as a payment.
//!
//! The pure properties run through `proptest!`; the HTTP ones start the real app once per test
//! function and draw their cases from a `TestRunner` in a loop, each request `.await`ed on the
//! test's own runtime. Case counts are the constants below (docs/src/development.md, "Property tests").

use crate::support;

use std::time::Duration;

use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, TestRunner};
use serde_json::{Value, json};
use teloxide::types::{MessageKind, UpdateKind};

use support::app::{TestApp, spawn_app};
use support::bot::bot_shop;
use support::db::Subscriber;
use support::payments::Providers;
use support::wait_until_within;
use support::wata::FakeWata;
use support::yookassa::FakeYooKassa;
use vpn_shop::actors::bot::callback::{AdminAction, Callback, SEGMENTS};
use vpn_shop::actors::bot::payments::payment_of;
use vpn_shop::actors::payments::Outcome;
use vpn_shop::config::{RawConfig, Settings, VARS};
use vpn_shop::domain::{AdminRole, Language, Money, PaymentProvider, PlanId, UserId};

/// Cases of each pure property.
const PURE_CASES: u32 = 4_000;
/// Requests to each payment webhook.
const WEBHOOK_CASES: u32 = 300;
/// Updates posted to the Telegram webhook.
const TELEGRAM_CASES: u32 = 300;
/// Requests to each admin API endpoint.
const ADMIN_CASES: u32 = 120;

// -- strategies --------------------------------------------------------------------------------

/// Numbers that tend to break things.
fn edge_number() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(json!(0)),
        Just(json!(-1)),
        Just(json!(1)),
        Just(json!(i64::MAX)),
        Just(json!(i64::MIN)),
        Just(json!(u64::MAX)),
        Just(json!(i64::from(i32::MAX) + 1)),
        Just(json!(3650)),
        Just(json!(3651)),
        Just(json!(1e300)),
        Just(json!(-0.5)),
        Just(json!(0.1)),
    ]
}

/// A JSON scalar: edge numbers, any numbers, short and very long strings (any Unicode, NUL too).
fn json_leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_filter_map("finite", |f| serde_json::Number::from_f64(f)
            .map(Value::Number)),
        edge_number(),
        any::<String>().prop_map(Value::from),
        "[a-z0-9:_.-]{0,12}".prop_map(Value::from),
        (1usize..6000).prop_map(|n| Value::from("я".repeat(n))),
        Just(json!("\u{0}")),
        Just(json!("2026-11-27T12:00:00Z")),
    ]
}

/// Any JSON value, nested a few levels.
fn json_value() -> impl Strategy<Value = Value> {
    json_leaf().prop_recursive(4, 40, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map("[a-zA-Z_]{0,12}", inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// One edit at a path of selectors: remove, replace or add a key (or an array item).
fn apply_edit(v: &mut Value, path: &[usize], action: u8, new: Value, key: &str) {
    match v {
        Value::Object(map) if !map.is_empty() && !path.is_empty() => {
            let k = map
                .keys()
                .nth(path[0] % map.len())
                .cloned()
                .unwrap_or_default();
            if path.len() == 1 {
                match action {
                    0 => {
                        map.remove(&k);
                    }
                    1 => {
                        map.insert(k, new);
                    }
                    _ => {
                        map.insert(key.to_owned(), new);
                    }
                }
            } else if let Some(child) = map.get_mut(&k) {
                apply_edit(child, &path[1..], action, new, key);
            }
        }
        Value::Array(items) if !items.is_empty() && !path.is_empty() => {
            let i = path[0] % items.len();
            if path.len() == 1 {
                if action == 0 {
                    items.remove(i);
                } else {
                    items[i] = new;
                }
            } else {
                apply_edit(&mut items[i], &path[1..], action, new, key);
            }
        }
        _ => *v = new,
    }
}

/// `base` with one to four random edits anywhere in it.
fn mutated(base: Value) -> impl Strategy<Value = Value> {
    prop::collection::vec(
        (
            prop::collection::vec(any::<usize>(), 1..4),
            0u8..3,
            json_value(),
            "[a-zA-Z_]{1,12}",
        ),
        1..4,
    )
    .prop_map(move |edits| {
        let mut v = base.clone();
        for (path, action, new, key) in edits {
            apply_edit(&mut v, &path, action, new, &key);
        }
        v
    })
}

/// A request body: random bytes, random JSON, or `valid` mutated.
fn body(valid: Value) -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        1 => prop::collection::vec(any::<u8>(), 0..2000),
        2 => json_value().prop_map(|v| v.to_string().into_bytes()),
        4 => mutated(valid.clone()).prop_map(|v| v.to_string().into_bytes()),
        1 => Just(valid.to_string().into_bytes()),
    ]
}

/// Draws one value of `strategy` (no shrinking: the failing case is printed whole).
fn draw<S: Strategy>(runner: &mut TestRunner, strategy: &S) -> S::Value {
    strategy
        .new_tree(runner)
        .unwrap_or_else(|e| panic!("cannot generate a case: {e}"))
        .current()
}

fn runner(cases: u32) -> TestRunner {
    TestRunner::new(Config {
        cases,
        ..Config::default()
    })
}

// -- pure properties ---------------------------------------------------------------------------

fn callback() -> impl Strategy<Value = Callback> {
    let id = 1i64..=i64::MAX;
    let user = (1i64..=i64::MAX).prop_map(UserId);
    let admin = prop_oneof![
        Just(AdminAction::Stats),
        Just(AdminAction::Broadcast),
        Just(AdminAction::SendBroadcast),
        user.clone().prop_map(AdminAction::Grant),
        user.clone().prop_map(AdminAction::Ban),
        user.clone().prop_map(AdminAction::Unban),
        user.clone().prop_map(AdminAction::ResetTraffic),
        user.prop_map(AdminAction::RevokeLink),
        prop::sample::select(SEGMENTS.to_vec()).prop_map(AdminAction::Audience),
    ];
    prop_oneof![
        prop::sample::select(vec![
            Callback::Menu,
            Callback::Buy,
            Callback::Status,
            Callback::Trial,
            Callback::Referral,
            Callback::Promo,
            Callback::Settings,
            Callback::Help,
            Callback::Connect,
            Callback::Email,
            Callback::EmailRemove,
            Callback::AutoRenewOff,
            Callback::CheckChannel,
            Callback::Cancel,
        ]),
        id.clone().prop_map(|n| Callback::Plan(PlanId(n))),
        (
            id,
            prop::sample::select(PaymentProvider::ALL.to_vec()),
            any::<bool>()
        )
            .prop_map(|(n, provider, auto_renew)| Callback::Pay {
                plan: PlanId(n),
                provider,
                auto_renew,
            }),
        prop::sample::select(Language::ALL.to_vec()).prop_map(Callback::Language),
        admin.prop_map(Callback::Admin),
    ]
}

/// Callback-like data: the bot's own words and numbers joined by colons, or anything.
fn callback_data() -> impl Strategy<Value = String> {
    let word = prop_oneof![
        prop::sample::select(vec![
            "menu",
            "buy",
            "status",
            "plan",
            "pay",
            "lang",
            "a",
            "grant",
            "ban",
            "unban",
            "reset",
            "revoke",
            "aud",
            "stats",
            "bc",
            "send",
            "auto",
            "yookassa",
            "wata",
            "stars",
            "free",
            "ru",
            "en",
            "all",
            "never_paid",
            "",
            "0",
            "-1",
            "1",
            "9223372036854775807",
            "9223372036854775808",
            "+1",
            " 1",
        ])
        .prop_map(str::to_owned),
        any::<i64>().prop_map(|n| n.to_string()),
        "\\PC{0,8}",
    ];
    prop_oneof![
        prop::collection::vec(word, 1..6).prop_map(|w| w.join(":")),
        any::<String>(),
        prop::collection::vec(any::<u8>(), 0..80)
            .prop_map(|b| String::from_utf8_lossy(&b).into_owned()),
    ]
}

/// A value near what a variable takes: numbers of any size and sign, durations with and without
/// units, lists, URLs, Unicode, very long, its example cut short or doubled.
fn config_value(example: &'static str) -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "\\PC{0,40}",
        any::<i64>().prop_map(|n| n.to_string()),
        any::<u64>().prop_map(|n| n.to_string()),
        (
            any::<u64>(),
            prop::sample::select(vec!["ms", "s", "m", "h", "d", "w", " s", "µs"])
        )
            .prop_map(|(n, u)| format!("{n}{u}")),
        prop::sample::select(vec![
            "",
            " ",
            "0",
            "-0",
            "-1",
            "1e9",
            "0x10",
            "99999999999999999999999999999999",
            "18446744073709551616",
            "NaN",
            "inf",
            "true",
            "off",
            "1/0s",
            "0/s",
            "5/0",
            "-5/s",
            "1000000000000/1ms",
            ",",
            ";;",
            "=",
            "a=",
            "=b",
            "http://",
            "https://",
            "https://[::1",
            "postgres://",
            "0.0.0.0:99999",
            "[::]:0",
            "+25:00",
            "-14:00",
            "UTC+3",
            "@",
            "-100",
            "Ω≈ç√∫",
            "\u{0}",
            "\u{feff}1",
        ])
        .prop_map(str::to_owned),
        (1usize..20_000).prop_map(|n| "9".repeat(n)),
        (1usize..20_000).prop_map(|n| "ж".repeat(n)),
        (0..=example.len()).prop_map(move |i| example.get(..i).unwrap_or(example).to_owned()),
        "\\PC{0,6}".prop_map(move |s| format!("{example}{s}")),
        "\\PC{0,6}".prop_map(move |s| format!("{s}{example}")),
        Just(format!("{example},{example}")),
        Just(format!("-{example}")),
    ]
}

/// Sets variable `i` to `value` over `base`; Ok, or an error naming that variable.
fn config_case(base: &[(String, String)], i: usize, value: &str) -> Result<(), TestCaseError> {
    let name = VARS[i].name;
    let mut env = base.to_vec();
    env.retain(|(k, _)| k != name);
    env.push((name.to_owned(), value.to_owned()));
    let raw = RawConfig::layered(None, None, env)
        .map_err(|e| TestCaseError::fail(format!("layered: {e}")))?;
    if let Err(e) = Settings::from_raw(&raw) {
        let message = e.to_string();
        prop_assert!(
            message.contains(name),
            "{name}={value:?}: the error does not name {name}: {message}"
        );
        // The example at the end of the message may well contain a short value.
        let shown = message.split("(example:").next().unwrap_or_default();
        if VARS[i].secret && value.trim().chars().count() >= 12 {
            prop_assert!(
                !shown.contains(value.trim()),
                "{name}: the error shows the secret: {message}"
            );
        }
    }
    Ok(())
}

fn var_and_value() -> impl Strategy<Value = (usize, String)> {
    (0..VARS.len()).prop_flat_map(|i| (Just(i), config_value(VARS[i].example)))
}

/// Every variable at its example (a valid whole configuration, MARZBAN_* and the providers on).
fn examples() -> Vec<(String, String)> {
    VARS.iter()
        .map(|v| (v.name.to_owned(), v.example.to_owned()))
        .collect()
}

/// A valid Telegram text message update.
fn valid_update() -> Value {
    json!({"update_id": 1, "message": {
        "message_id": 5, "date": 1_790_000_000,
        "chat": {"id": 1011, "type": "private", "first_name": "Web"},
        "from": {"id": 1011, "is_bot": false, "first_name": "Web", "language_code": "en"},
        "text": "/start",
        "entities": [{"type": "bot_command", "offset": 0, "length": 6}],
    }})
}

/// A valid Stars `successful_payment` or `refunded_payment` service message of order 17.
fn valid_stars_update(field: &str) -> Value {
    json!({"update_id": 3, "message": {
        "message_id": 6, "date": 1_790_000_000,
        "chat": {"id": 1013, "type": "private", "first_name": "Star"},
        "from": {"id": 1013, "is_bot": false, "first_name": "Star", "language_code": "en"},
        field: {"currency": "XTR", "total_amount": 150, "invoice_payload": "order:17",
            "telegram_payment_charge_id": "stxCharge17", "provider_payment_charge_id": ""},
    }})
}

/// A valid callback query update.
fn valid_callback_update() -> Value {
    json!({"update_id": 2, "callback_query": {
        "id": "77", "chat_instance": "ci",
        "from": {"id": 1012, "is_bot": false, "first_name": "Cb", "language_code": "ru"},
        "message": {"message_id": 9, "date": 1_790_000_000,
            "chat": {"id": 1012, "type": "private", "first_name": "Cb"},
            "from": {"id": 42, "is_bot": true, "first_name": "Shop"},
            "text": "menu"},
        "data": "menu",
    }})
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(PURE_CASES))]

    #[test]
    fn callback_parse_never_panics(data in callback_data()) {
        if let Some(cb) = Callback::parse(&data) {
            // What it accepts is what the bot would have written.
            prop_assert_eq!(cb.encode(), data);
        }
    }

    #[test]
    fn callbacks_round_trip_within_64_bytes(cb in callback()) {
        let data = cb.encode();
        prop_assert!(data.len() <= 64, "{}", data);
        prop_assert_eq!(Callback::parse(&data), Some(cb));
    }

    #[test]
    fn any_config_value_over_the_defaults_is_accepted_or_named((i, value) in var_and_value()) {
        let base = vec![("DATA_DIR".to_owned(), "/nonexistent/vpn-shop".to_owned())];
        config_case(&base, i, &value)?;
    }

    #[test]
    fn any_config_value_over_a_full_config_is_accepted_or_named((i, value) in var_and_value()) {
        config_case(&examples(), i, &value)?;
    }

    #[test]
    fn any_update_yields_the_stars_payment_it_carries_and_no_other(
        v in prop_oneof![
            json_value(),
            mutated(valid_update()),
            mutated(valid_callback_update()),
            mutated(valid_stars_update("successful_payment")),
            mutated(valid_stars_update("refunded_payment")),
            Just(valid_stars_update("successful_payment")),
            Just(valid_stars_update("refunded_payment")),
        ],
    ) {
        // What the bot does with an update before the dispatcher: take out the Stars payment
        // (long polling records it before confirming the update). What does not parse is
        // dropped by teloxide's listener and never gets here.
        let Ok(update) = serde_json::from_value::<teloxide::types::Update>(v.clone()) else {
            return Ok(());
        };
        let carried = match &update.kind {
            UpdateKind::Message(m) => match &m.kind {
                MessageKind::SuccessfulPayment(_) => Some("successful_payment"),
                MessageKind::RefundedPayment(_) => Some("refunded_payment"),
                _ => None,
            },
            _ => None,
        };
        let payment = payment_of(&update);
        let Some(field) = carried else {
            prop_assert!(payment.is_none(), "a payment out of {}", v);
            return Ok(());
        };
        let Some(p) = payment else {
            return Err(TestCaseError::fail(format!("the {field} of {v} was dropped")));
        };
        // Every field from the JSON as sent, not from the code under test.
        let sent = &v["message"][field];
        let charge = sent["telegram_payment_charge_id"].as_str().expect("a charge id");
        let total = sent["total_amount"].as_i64().expect("an amount");
        let order = sent["invoice_payload"]
            .as_str()
            .and_then(|p| p.strip_prefix("order:"))
            .and_then(|n| n.parse::<i64>().ok());
        prop_assert_eq!(p.provider, PaymentProvider::Stars);
        prop_assert_eq!(p.order_id.map(|o| o.0), order);
        prop_assert_eq!(&p.external_id, charge);
        match (field, p.outcome) {
            ("successful_payment", Outcome::Paid { amount } | Outcome::Renewed { amount }) => {
                prop_assert_eq!(amount, Money::stars(total));
                prop_assert_eq!(&p.event_key, charge);
            }
            ("refunded_payment", Outcome::Refunded { amount, refund_id }) => {
                prop_assert_eq!(amount, Money::stars(total));
                prop_assert_eq!(&refund_id, charge);
                prop_assert_eq!(p.event_key, format!("{charge}:refunded"));
            }
            (field, outcome) => {
                return Err(TestCaseError::fail(format!("{field} became {outcome:?}")));
            }
        }
    }
}

// -- HTTP ---------------------------------------------------------------------------------------

/// Posts raw `body` (as JSON) with `headers`; the status and the body.
async fn post_raw(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    headers: &[(&str, String)],
    body: Vec<u8>,
) -> (u16, Vec<u8>) {
    let mut req = app
        .http
        .request(method, app.url(path))
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(body);
    for (k, v) in headers {
        req = req.header(*k, v.as_str());
    }
    let resp = req.send().await.expect("request");
    let status = resp.status().as_u16();
    (status, resp.bytes().await.expect("body").to_vec())
}

/// No 5xx but 503 (when `may_be_unavailable`), and every error is `{"error":{"code","message"}}`.
fn check_answer(status: u16, body: &[u8], may_be_unavailable: bool, case: &dyn std::fmt::Debug) {
    let text = String::from_utf8_lossy(body);
    assert!(
        status < 500 || (status == 503 && may_be_unavailable),
        "answered {status} {text} to {case:?}"
    );
    if status >= 400 {
        let v: Value = serde_json::from_slice(body).unwrap_or_else(|_| {
            panic!("{status} with a body that is not JSON: {text:?} to {case:?}")
        });
        assert!(
            v["error"]["code"].is_string() && v["error"]["message"].is_string(),
            "{status} without the error body: {text} to {case:?}"
        );
    }
}

/// `vpn_shop_bot_updates_total`: all updates handled, and those whose outcome was "error".
async fn bot_updates(app: &TestApp) -> (u64, u64) {
    let text = app.get("/metrics", None).await.text().await.unwrap();
    let (mut all, mut errors) = (0, 0);
    for line in text
        .lines()
        .filter(|l| l.starts_with("vpn_shop_bot_updates_total{"))
    {
        let n: f64 = line
            .rsplit(' ')
            .next()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0);
        all += n as u64;
        if line.contains(r#"outcome="error""#) {
            errors += n as u64;
        }
    }
    (all, errors)
}

async fn succeeded_payments(app: &TestApp) -> i64 {
    use diesel::prelude::*;
    use diesel_async::RunQueryDsl;
    use vpn_shop::db::schema::payments;
    use vpn_shop::domain::PaymentStatus;
    let mut conn = app.db.connect().await;
    payments::table
        .filter(payments::status.eq(PaymentStatus::Succeeded))
        .count()
        .get_result(&mut conn)
        .await
        .expect("count payments")
}

async fn assert_healthy(app: &TestApp) {
    let resp = app.get("/health", None).await;
    assert_eq!(resp.status(), 200, "/health after the cases");
}

/// A `payment.succeeded` notice naming YooKassa payment `id` of order `order`.
fn yookassa_notification(id: &str, order: &str) -> Value {
    json!({"type": "notification", "event": "payment.succeeded", "object": {
        "id": id, "status": "succeeded", "paid": true,
        "amount": {"value": "299.00", "currency": "RUB"},
        "metadata": {"order_id": order}, "created_at": "2026-11-27T12:00:00.000Z",
    }})
}

/// A paid WATA transaction of order `order`, paid through link `link`.
fn wata_transaction(order: &str, link: &str) -> Value {
    json!({"transactionType": "CardCrypto", "kind": "Payment",
        "transactionId": "3a5e9c1e-1111-4222-8333-944455556666", "transactionStatus": "Paid",
        "terminalName": "shop", "amount": 299.0, "currency": "RUB", "orderId": order,
        "commission": 8.97, "paymentTime": "2026-11-27T12:00:00Z",
        "paymentLinkId": link})
}

/// A real pending order of a new user for 299.00 RUB through `provider`: its id and the
/// provider's id (YooKassa's payment, WATA's link).
async fn pending_order(
    app: &TestApp,
    plan: PlanId,
    telegram_id: i64,
    provider: PaymentProvider,
) -> (String, String) {
    let user = Subscriber::new(telegram_id)
        .insert(&mut app.db.connect().await)
        .await;
    let order_id = app.checkout_page(user, plan, provider).await;
    let external = order_row(app, order_id)
        .await
        .external_id
        .expect("the provider's id");
    (order_id.to_string(), external)
}

/// Forged and mangled webhooks about real pending orders (the payer has not paid) never pay
/// them; the genuine notices afterwards do, which shows the forgeries aimed at payable orders.
#[actix_rt::test]
async fn payment_webhooks_take_anything_and_give_nothing() {
    let providers = Providers::start();
    let app = spawn_app(&providers.env()).await;
    let (yookassa, wata) = (&providers.yookassa, &providers.wata);
    let plan = {
        use diesel::prelude::*;
        use diesel_async::RunQueryDsl;
        use vpn_shop::db::schema::plans;
        diesel::insert_into(plans::table)
            .values((
                plans::name.eq("30 days"),
                plans::days.eq(30),
                plans::price_minor.eq(29_900),
            ))
            .returning(plans::id)
            .get_result::<PlanId>(&mut app.db.connect().await)
            .await
            .unwrap()
    };
    let (yookassa_order, yookassa_payment) =
        pending_order(&app, plan, 9_100, PaymentProvider::Yookassa).await;
    let (wata_order, wata_link) = pending_order(&app, plan, 9_101, PaymentProvider::Wata).await;
    let mut runner = runner(WEBHOOK_CASES);

    // YooKassa: anyone can post a notice; only YooKassa's own answer about the payment counts,
    // and it says the order is not paid.
    let yookassa_body = body(yookassa_notification(&yookassa_payment, &yookassa_order));
    for _ in 0..WEBHOOK_CASES {
        let body = draw(&mut runner, &yookassa_body);
        let case = String::from_utf8_lossy(&body).into_owned();
        let (status, answer) =
            post_raw(&app, reqwest::Method::POST, "/webhooks/yookassa", &[], body).await;
        // 503: YooKassa could not be asked about the payment (documented: it sends again).
        check_answer(status, &answer, true, &case);
    }

    // WATA: unsigned, signed with garbage or with a foreign key.
    let forged = (
        body(wata_transaction(&wata_order, &wata_link)),
        0u8..3,
        prop_oneof![any::<String>(), "[A-Za-z0-9+/=]{0,400}"],
    );
    for _ in 0..WEBHOOK_CASES {
        let (body, how, garbage) = draw(&mut runner, &forged);
        let signature = match how {
            0 => None,
            1 => Some(garbage),
            _ => Some(wata.sign_with_foreign_key(&body)),
        };
        let case = (
            String::from_utf8_lossy(&body).into_owned(),
            signature.clone(),
        );
        let headers: Vec<(&str, String)> = signature
            .into_iter()
            .filter(|s| reqwest::header::HeaderValue::from_str(s).is_ok())
            .map(|s| ("X-Signature", s))
            .collect();
        let (status, answer) = post_raw(
            &app,
            reqwest::Method::POST,
            "/webhooks/wata",
            &headers,
            body,
        )
        .await;
        // 503: WATA's public key could not be fetched (documented: WATA sends again).
        check_answer(status, &answer, true, &case);
        assert!(
            status == 401 || status == 503,
            "an unsigned or forged WATA webhook answered {status}: {case:?}"
        );
    }
    assert_eq!(succeeded_payments(&app).await, 0, "a forged webhook paid");

    // The real payments of the same orders are taken: the forgeries had a payable target.
    yookassa.succeed(&yookassa_payment);
    let webhook = app.url("/webhooks/yookassa");
    assert_eq!(
        yookassa
            .send_notification(&webhook, &yookassa_payment, "payment.succeeded")
            .await,
        200
    );
    let transaction = wata.pay(&wata_link);
    let transaction = transaction["id"].as_str().expect("a transaction id");
    assert_eq!(
        wata.send_webhook(&app.url("/webhooks/wata"), transaction)
            .await,
        200
    );
    assert_eq!(succeeded_payments(&app).await, 2, "the genuine payments");

    // Signed by WATA's own key but mangled (about an order that does not exist, or one that is
    // paid already): answered without a 5xx, and no second payment. Found by these cases: a
    // signed body with a NUL character could not be stored (jsonb refuses it) and was answered
    // 500 — WATA would have sent it again forever.
    let mut nul = wata_transaction("999999", &wata_link);
    nul["terminalName"] = json!("sh\u{0}op");
    nul["x\u{0}"] = json!(["\u{0}"]);
    let nul = nul.to_string().into_bytes();
    let headers = [("X-Signature", wata.sign(&nul))];
    let (status, answer) =
        post_raw(&app, reqwest::Method::POST, "/webhooks/wata", &headers, nul).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&answer));
    let signed = body(wata_transaction("999999", &wata_link));
    for _ in 0..WEBHOOK_CASES / 3 {
        let body = draw(&mut runner, &signed);
        let case = String::from_utf8_lossy(&body).into_owned();
        let headers = [("X-Signature", wata.sign(&body))];
        let (status, answer) = post_raw(
            &app,
            reqwest::Method::POST,
            "/webhooks/wata",
            &headers,
            body,
        )
        .await;
        check_answer(status, &answer, true, &case);
    }
    assert_eq!(succeeded_payments(&app).await, 2, "a mangled webhook paid");

    assert_healthy(&app).await;
    app.shutdown().await;
}

#[actix_rt::test]
async fn telegram_webhook_takes_anything() {
    let secret = "s3cret_token-1-0123456789abcdefghij";
    let shop = bot_shop(&[
        ("TELEGRAM_MODE", "webhook"),
        ("TELEGRAM_WEBHOOK_SECRET", secret),
        ("PUBLIC_BASE_URL", "https://shop.example.com"),
    ])
    .await;
    let app = &shop.app;
    let mut runner = runner(TELEGRAM_CASES);
    let update = prop_oneof![
        body(valid_update()),
        body(valid_callback_update()),
        // Well-formed updates with any text or button data: the bot's handlers get them.
        (any::<i64>(), any::<String>(), callback_data()).prop_map(|(id, text, data)| {
            // From many users, as in life (one chat's answers are limited to about one a second).
            let user = json!(2_000_000 + id.rem_euclid(1000));
            let mut u = if id % 2 == 0 {
                let mut u = valid_update();
                u["message"]["text"] = json!(text);
                u["message"]["chat"]["id"] = user.clone();
                u["message"]["from"]["id"] = user;
                u
            } else {
                let mut u = valid_callback_update();
                u["callback_query"]["data"] = json!(data);
                u["callback_query"]["from"]["id"] = user.clone();
                u["callback_query"]["message"]["chat"]["id"] = user;
                u
            };
            u["update_id"] = json!(id.rem_euclid(1 << 31));
            u.to_string().into_bytes()
        }),
    ];
    let mut accepted = 0;
    for i in 0..TELEGRAM_CASES {
        let body = draw(&mut runner, &update);
        let case = String::from_utf8_lossy(&body).into_owned();
        // Every tenth without the secret: refused whatever the body.
        let headers = if i % 10 == 0 {
            vec![]
        } else {
            vec![("X-Telegram-Bot-Api-Secret-Token", secret.to_owned())]
        };
        let (status, answer) = post_raw(
            app,
            reqwest::Method::POST,
            "/webhooks/telegram",
            &headers,
            body,
        )
        .await;
        // 503: the bot's queue is full (documented: Telegram delivers again).
        check_answer(status, &answer, true, &case);
        if i % 10 == 0 {
            assert_eq!(status, 401, "{case}");
        }
        // What the dispatcher gets (it drops what does not parse as a known kind of update).
        let parsed = serde_json::from_str::<teloxide::types::Update>(&case);
        if status == 200 && parsed.is_ok_and(|u| !matches!(u.kind, UpdateKind::Error(_))) {
            accepted += 1;
        }
    }
    // Each accepted update reaches the handlers, and none of them fails on what it got (a
    // failure is logged with its update id, answered with an apology and counted as "error").
    wait_until_within(
        "every accepted update handled",
        Duration::from_secs(120),
        || async { bot_updates(app).await.0 >= accepted },
    )
    .await;
    let (handled, errors) = bot_updates(app).await;
    assert_eq!(
        errors, 0,
        "{errors} of {handled} arbitrary updates made a bot handler fail (see the log for their update ids)"
    );
    assert_healthy(app).await;
    // The bot still answers.
    let mut start = valid_update();
    start["update_id"] = json!(999_999_999);
    start["message"]["chat"]["id"] = json!(4242);
    start["message"]["from"]["id"] = json!(4242);
    let headers = [("X-Telegram-Bot-Api-Secret-Token", secret.to_owned())];
    let (status, _) = post_raw(
        app,
        reqwest::Method::POST,
        "/webhooks/telegram",
        &headers,
        start.to_string().into_bytes(),
    )
    .await;
    assert_eq!(status, 200);
    shop.wait_text(4242, "Hello").await;
}

#[actix_rt::test]
async fn admin_api_takes_any_json() {
    let app = spawn_app(&[]).await;
    let token = app.token_for(AdminRole::Admin).await;
    let user = {
        let mut conn = app.db.connect().await;
        Subscriber::new(5_550_001).insert(&mut conn).await
    };
    let (status, plan) = app
        .call(
            "POST",
            "/api/v1/plans",
            Some(&token),
            Some(
                json!({"name": "Month", "days": 30, "price_minor": 29900, "sort_order": 1,
                "active": true}),
            ),
        )
        .await;
    assert_eq!(status, 201, "{plan}");
    let (status, promo) = app
        .call(
            "POST",
            "/api/v1/promo-codes",
            Some(&token),
            Some(
                json!({"code": "SPRING", "kind": "percent", "value": 10, "once_per_user": true,
                "new_users_only": false, "active": true}),
            ),
        )
        .await;
    assert_eq!(status, 201, "{promo}");
    let endpoints: Vec<(reqwest::Method, String, Value)> = vec![
        (
            reqwest::Method::POST,
            "/api/v1/plans".into(),
            json!({"name": "Year", "days": 365, "price_minor": 299000, "price_stars": 1500,
                "traffic_limit_bytes": null, "sort_order": 2, "active": true}),
        ),
        (
            reqwest::Method::PATCH,
            format!("/api/v1/plans/{}", plan["id"]),
            json!({"name": "Month+", "days": 31, "price_stars": null, "active": false}),
        ),
        (
            reqwest::Method::POST,
            "/api/v1/promo-codes".into(),
            json!({"code": "AUTUMN", "kind": "fixed", "value": 5000, "max_uses": 10,
                "once_per_user": true, "new_users_only": true,
                "valid_from": "2026-11-01T00:00:00Z", "valid_until": "2026-12-01T00:00:00Z",
                "min_plan_id": plan["id"], "active": true, "note": "test"}),
        ),
        (
            reqwest::Method::PATCH,
            format!("/api/v1/promo-codes/{}", promo["id"]),
            json!({"value": 20, "max_uses": null, "valid_until": "2027-01-01T00:00:00Z"}),
        ),
        (
            reqwest::Method::PATCH,
            format!("/api/v1/users/{}", user.0),
            json!({"banned": false, "language": "ru", "email": "a@example.com", "note": "n"}),
        ),
        (
            reqwest::Method::POST,
            format!("/api/v1/users/{}/extend", user.0),
            json!({"days": 7, "reason": "compensation"}),
        ),
        (
            reqwest::Method::POST,
            "/api/v1/broadcasts".into(),
            json!({"text": "<b>News</b>", "button_text": "Open",
                "button_url": "https://example.com", "audience": "all"}),
        ),
        (
            reqwest::Method::POST,
            "/api/v1/admins".into(),
            json!({"username": "op2", "password": "a password long enough", "role": "operator"}),
        ),
    ];
    let mut runner = runner(ADMIN_CASES);
    // Also ids that name nothing or are not numbers.
    let id = prop_oneof![
        3 => Just(None),
        1 => prop::sample::select(vec!["0", "-1", "99999999999999999999", "abc", "1.5", "%20"])
            .prop_map(Some),
    ];
    for (method, path, valid) in &endpoints {
        let strategy = (body(valid.clone()), id.clone());
        for _ in 0..ADMIN_CASES {
            let (body, bad_id) = draw(&mut runner, &strategy);
            let path = match bad_id {
                Some(bad) if path.matches('/').count() > 3 => {
                    let mut parts: Vec<&str> = path.split('/').collect();
                    parts[4] = bad;
                    parts.join("/")
                }
                _ => path.clone(),
            };
            let case = (
                method.clone(),
                path.clone(),
                String::from_utf8_lossy(&body).into_owned(),
            );
            let headers = [("Authorization", format!("Bearer {token}"))];
            let (status, answer) = post_raw(&app, method.clone(), &path, &headers, body).await;
            check_answer(status, &answer, false, &case);
        }
    }
    assert_eq!(succeeded_payments(&app).await, 0);
    assert_healthy(&app).await;
    app.shutdown().await;
}

#[test]
fn the_case_strategies_make_what_they_say() {
    // The mutations really change the valid bodies, and parse back as JSON.
    let mut runner = runner(50);
    let strategy = mutated(valid_update());
    let changed = (0..50)
        .filter(|_| draw(&mut runner, &strategy) != valid_update())
        .count();
    assert!(changed > 40, "{changed} of 50 mutations changed something");
}

// -- the money model ---------------------------------------------------------------------------

/// Cases of the model-based test, each a random interleaving of up to `MODEL_STEPS` steps.
const MODEL_CASES: u32 = 32;
const MODEL_STEPS: usize = 30;
/// The plan the model sells: 30 days for 299.00 RUB.
const MODEL_DAYS: i64 = 30;
const MODEL_PRICE: i64 = 29_900;

/// One thing that happens to the shop. Indexes pick a user (of three) or an order (of those
/// opened so far), modulo their number.
#[derive(Debug, Clone)]
enum Step {
    /// The user opens a checkout (YooKassa or WATA).
    Checkout {
        user: usize,
        wata: bool,
    },
    /// The payer pays the order at the provider (no notice yet).
    Pay {
        order: usize,
    },
    /// The provider sends its notice of the order's payment, `times` times at once.
    Notify {
        order: usize,
        times: usize,
    },
    /// An admin refunds half of what remains, or all of it.
    Refund {
        order: usize,
        half: bool,
    },
    /// `payments_poll` runs.
    Poll,
    Ban {
        user: usize,
    },
    Unban {
        user: usize,
    },
    /// An admin gives days.
    Extend {
        user: usize,
        days: i64,
    },
    /// The subscription sync runs.
    Sync,
    /// The weekly cleanup runs.
    Cleanup,
    /// Two steps at the same moment (never two ban changes: their order would decide).
    Together(Box<Step>, Box<Step>),
}

fn single_step(with_ban: bool) -> BoxedStrategy<Step> {
    let user = 0usize..3;
    let order = 0usize..8;
    let mut steps = vec![
        (
            3,
            (user.clone(), any::<bool>())
                .prop_map(|(user, wata)| Step::Checkout { user, wata })
                .boxed(),
        ),
        (
            3,
            order.clone().prop_map(|order| Step::Pay { order }).boxed(),
        ),
        (
            3,
            (order.clone(), 1usize..4)
                .prop_map(|(order, times)| Step::Notify { order, times })
                .boxed(),
        ),
        (
            2,
            (order, any::<bool>())
                .prop_map(|(order, half)| Step::Refund { order, half })
                .boxed(),
        ),
        (1, Just(Step::Poll).boxed()),
        (
            1,
            (user.clone(), 1i64..5)
                .prop_map(|(user, days)| Step::Extend { user, days })
                .boxed(),
        ),
        (1, Just(Step::Sync).boxed()),
        (1, Just(Step::Cleanup).boxed()),
    ];
    if with_ban {
        steps.push((1, user.clone().prop_map(|user| Step::Ban { user }).boxed()));
        steps.push((1, user.prop_map(|user| Step::Unban { user }).boxed()));
    }
    proptest::strategy::Union::new_weighted(steps).boxed()
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => single_step(true),
        1 => (single_step(true), single_step(false))
            .prop_map(|(a, b)| Step::Together(Box::new(a), Box::new(b))),
    ]
}

/// What the model knows of an order.
#[derive(Debug, Clone)]
struct ModelOrder {
    id: vpn_shop::domain::PaymentId,
    user: usize,
    wata: bool,
    /// YooKassa payment or WATA link id.
    external: String,
    /// The WATA transaction, once paid.
    transaction: Option<String>,
    paid: bool,
    refunded: i64,
}

/// What the model knows of a user.
#[derive(Debug, Clone)]
struct ModelUser {
    id: UserId,
    telegram_id: i64,
    /// Ended long ago (the cleanup's business) rather than running.
    lapsed: bool,
    initial_end: chrono::DateTime<chrono::Utc>,
    banned: bool,
    extended_days: i64,
}

struct Model {
    users: Vec<ModelUser>,
    orders: Vec<ModelOrder>,
}

struct MoneyShop {
    app: TestApp,
    yookassa: FakeYooKassa,
    wata: FakeWata,
    panel: support::marzban::FakePanel,
    plan: PlanId,
    admin: String,
}

impl MoneyShop {
    async fn run_job(&self, kind: &str) {
        use vpn_shop::db::jobs::{self, NewJob};
        let conn = &mut self.app.db.connect().await;
        let Some(id) = jobs::enqueue(conn, NewJob::new(kind, json!({})), 3)
            .await
            .unwrap()
        else {
            return;
        };
        wait_until_within(kind, Duration::from_secs(30), || async {
            let job = jobs::find(&mut self.app.db.connect().await, id)
                .await
                .unwrap()
                .unwrap();
            job.state == vpn_shop::domain::JobState::Done
        })
        .await;
    }

    /// Runs a sync; `false` when a run of that kind was in progress (e.g. the scheduled one).
    async fn sync(&self, kind: vpn_shop::actors::messages::SyncKind) -> bool {
        let addr = self.app.app.marzban.as_ref().expect("a panel").addr();
        matches!(
            addr.send(vpn_shop::actors::messages::RunSync { kind })
                .await
                .expect("the syncer answers"),
            Ok(Some(_))
        )
    }

    /// Runs one step; the model learns what it did.
    async fn apply(&self, model: &std::cell::RefCell<Model>, step: &Step) {
        use vpn_shop::actors::messages::SyncKind;
        use vpn_shop::actors::payments::{Checkout, CreateCheckout, POLL_JOB, Refund};
        match step {
            Step::Together(a, b) => {
                futures_util::join!(
                    Box::pin(self.apply(model, a)),
                    Box::pin(self.apply(model, b))
                );
            }
            Step::Checkout { user, wata } => {
                let u = model.borrow().users[*user].clone();
                let result = self
                    .app
                    .app
                    .payments
                    .addr()
                    .send(CreateCheckout {
                        user_id: u.id,
                        plan_id: self.plan,
                        provider: if *wata {
                            PaymentProvider::Wata
                        } else {
                            PaymentProvider::Yookassa
                        },
                        promo_code: None,
                        auto_renew: false,
                        return_to: vpn_shop::actors::payments::ReturnTo::Bot,
                    })
                    .await
                    .unwrap();
                let id = match result {
                    Ok(Checkout::Redirect { order_id, .. }) => order_id,
                    Err(vpn_shop::actors::payments::CheckoutError::Banned) => return,
                    other => panic!("checkout: {other:?}"),
                };
                let order = order_row(&self.app, id).await;
                model.borrow_mut().orders.push(ModelOrder {
                    id,
                    user: *user,
                    wata: *wata,
                    external: order.external_id.expect("the provider's id"),
                    transaction: None,
                    paid: false,
                    refunded: 0,
                });
            }
            Step::Pay { order } => {
                let Some(o) = pick(&model.borrow().orders, *order) else {
                    return;
                };
                if o.paid {
                    return;
                }
                let transaction = if o.wata {
                    Some(
                        self.wata.pay(&o.external)["id"]
                            .as_str()
                            .expect("a transaction")
                            .to_owned(),
                    )
                } else {
                    self.yookassa.succeed(&o.external);
                    None
                };
                let mut m = model.borrow_mut();
                let o = m.orders.iter_mut().find(|x| x.id == o.id).unwrap();
                o.paid = true;
                o.transaction = transaction;
            }
            Step::Notify { order, times } => {
                let Some(o) = pick(&model.borrow().orders, *order) else {
                    return;
                };
                let sends = (0..*times).map(|_| async {
                    if o.wata {
                        match &o.transaction {
                            Some(t) => {
                                self.wata
                                    .send_webhook(&self.app.url("/webhooks/wata"), t)
                                    .await
                            }
                            None => 200,
                        }
                    } else {
                        self.yookassa
                            .send_notification(
                                &self.app.url("/webhooks/yookassa"),
                                &o.external,
                                "payment.succeeded",
                            )
                            .await
                    }
                });
                for status in futures_util::future::join_all(sends).await {
                    assert_eq!(status, 200, "a genuine notice of order {}", o.id);
                }
            }
            Step::Refund { order, half } => {
                let Some(o) = pick(&model.borrow().orders, *order) else {
                    return;
                };
                let row = order_row(&self.app, o.id).await;
                let remaining = row.amount_minor - row.refunded_minor;
                if !matches!(
                    row.status,
                    vpn_shop::domain::PaymentStatus::Succeeded
                        | vpn_shop::domain::PaymentStatus::Refunded
                ) || remaining <= 0
                {
                    return;
                }
                let amount = if *half {
                    (remaining / 2).max(1)
                } else {
                    remaining
                };
                let result = self
                    .app
                    .app
                    .payments
                    .addr()
                    .send(Refund {
                        payment_id: o.id,
                        amount: Some(vpn_shop::domain::Money::rub_kopecks(amount)),
                        reason: "model".into(),
                        actor: "admin:model".into(),
                        admin_id: None,
                        remote_addr: None,
                    })
                    .await
                    .unwrap();
                match result {
                    Ok(done) => {
                        let mut m = model.borrow_mut();
                        let o = m.orders.iter_mut().find(|x| x.id == o.id).unwrap();
                        o.refunded += done.refunded.minor;
                    }
                    // Another refund of it was under way, or took what remained meanwhile.
                    Err(
                        vpn_shop::actors::payments::RefundError::InProgress(_)
                        | vpn_shop::actors::payments::RefundError::Invalid(_),
                    ) => {}
                    Err(e) => panic!("refund of order {}: {e:?}", o.id),
                }
            }
            Step::Poll => self.run_job(POLL_JOB).await,
            Step::Ban { user } | Step::Unban { user } => {
                let banned = matches!(step, Step::Ban { .. });
                let id = model.borrow().users[*user].id;
                let (status, body) = self
                    .app
                    .call(
                        "PATCH",
                        &format!("/api/v1/users/{id}"),
                        Some(&self.admin),
                        Some(json!({"banned": banned})),
                    )
                    .await;
                assert_eq!(status, 200, "{body}");
                model.borrow_mut().users[*user].banned = banned;
            }
            Step::Extend { user, days } => {
                let id = model.borrow().users[*user].id;
                let (status, body) = self
                    .app
                    .call(
                        "POST",
                        &format!("/api/v1/users/{id}/extend"),
                        Some(&self.admin),
                        Some(json!({"days": days, "reason": "model"})),
                    )
                    .await;
                assert!(status < 300, "extend: {status} {body}");
                model.borrow_mut().users[*user].extended_days += days;
            }
            Step::Sync => {
                self.sync(SyncKind::Subscriptions).await;
            }
            Step::Cleanup => {
                self.sync(SyncKind::Cleanup).await;
            }
        }
    }

    /// Until nothing is left to do: every paid order known (the poll), the panel synced (the
    /// scheduled sync would, later), every panel job done.
    async fn settle(&self) {
        self.run_job(vpn_shop::actors::payments::POLL_JOB).await;
        while !self
            .sync(vpn_shop::actors::messages::SyncKind::Subscriptions)
            .await
        {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        wait_until_within("the panel jobs", Duration::from_secs(60), || async {
            use diesel::prelude::*;
            use diesel_async::RunQueryDsl;
            use vpn_shop::db::schema::jobs;
            use vpn_shop::domain::JobState;
            let conn = &mut self.app.db.connect().await;
            let dead: Vec<(String, Option<String>)> = jobs::table
                .filter(jobs::state.eq(JobState::Dead))
                .select((jobs::kind, jobs::last_error))
                .load(conn)
                .await
                .unwrap();
            assert!(dead.is_empty(), "dead jobs: {dead:?}");
            let busy: i64 = jobs::table
                .filter(jobs::kind.eq("provision").or(jobs::kind.like("panel\\_%")))
                .filter(jobs::state.eq_any([JobState::Pending, JobState::Running]))
                .count()
                .get_result(conn)
                .await
                .unwrap();
            busy == 0
        })
        .await;
    }
}

fn pick(orders: &[ModelOrder], i: usize) -> Option<ModelOrder> {
    (!orders.is_empty()).then(|| orders[i % orders.len()].clone())
}

async fn order_row(
    app: &TestApp,
    id: vpn_shop::domain::PaymentId,
) -> vpn_shop::db::models::Payment {
    vpn_shop::db::payments::find(&mut app.db.connect().await, id)
        .await
        .unwrap()
        .expect("the order")
}

/// After any interleaving of payments (notices duplicated, reordered or lost and found by the
/// poll), refunds, bans, admin grants, syncs and the cleanup, once everything has settled:
/// every payment bought exactly its days (less what its refunds took back, by their share), the
/// panel matches the database, and no ban was lifted.
#[actix_rt::test]
async fn any_interleaving_keeps_the_books_the_panel_and_the_bans_right() {
    use vpn_shop::db::subscriptions;
    use vpn_shop::domain::SubscriptionStatus;
    use vpn_shop::domain::pricing::refund_days;

    let providers = Providers::start();
    let panel = support::marzban::FakePanel::start();
    let panel_url = panel.url();
    let mut env = providers.env();
    env.extend([
        ("MARZBAN_URL", panel_url.as_str()),
        ("MARZBAN_USERNAME", support::marzban::ADMIN_USERNAME),
        ("MARZBAN_PASSWORD", support::marzban::ADMIN_PASSWORD),
        ("PANEL_TIMEOUT", "2s"),
        ("PANEL_CLEANUP_AFTER_DAYS", "7"),
        ("PAYMENT_POLL_AFTER", "1ms"),
        ("JOB_POLL_INTERVAL", "100ms"),
        ("JOB_BACKOFF_BASE", "100ms"),
        ("JOB_BACKOFF_MAX", "500ms"),
    ]);
    let app = spawn_app(&env).await;
    drop(env);
    let Providers { yookassa, wata, .. } = providers;
    let plan = {
        use diesel::prelude::*;
        use diesel_async::RunQueryDsl;
        use vpn_shop::db::schema::plans;
        diesel::insert_into(plans::table)
            .values((
                plans::name.eq("model"),
                plans::days.eq(MODEL_DAYS as i32),
                plans::price_minor.eq(MODEL_PRICE),
            ))
            .returning(plans::id)
            .get_result(&mut app.db.connect().await)
            .await
            .unwrap()
    };
    let admin = app.token_for(AdminRole::Admin).await;
    let shop = MoneyShop {
        app,
        yookassa,
        wata,
        panel,
        plan,
        admin,
    };
    let mut runner = runner(MODEL_CASES);
    let steps = prop::collection::vec(step(), 1..=MODEL_STEPS);
    // What the cases exercised, so a generator that stops making payments shows up.
    let (mut paid, mut refunded, mut banned, mut lapsed_paid) = (0, 0, 0, 0);
    for case in 0..MODEL_CASES {
        let started = chrono::Utc::now();
        let mut users = Vec::new();
        for (i, lapsed) in [false, false, true].into_iter().enumerate() {
            let telegram_id = 700_000 + i64::from(case) * 10 + i as i64;
            let initial_end = if lapsed {
                started - chrono::Duration::days(40)
            } else {
                started + chrono::Duration::days(40)
            };
            let initial_end = chrono::DateTime::from_timestamp(initial_end.timestamp(), 0).unwrap();
            let id = Subscriber {
                expires_at: Some(initial_end),
                status: if lapsed {
                    SubscriptionStatus::Expired
                } else {
                    SubscriptionStatus::Active
                },
                ..Subscriber::new(telegram_id)
            }
            .insert(&mut shop.app.db.connect().await)
            .await;
            users.push(ModelUser {
                id,
                telegram_id,
                lapsed,
                initial_end,
                banned: false,
                extended_days: 0,
            });
        }
        let model = std::cell::RefCell::new(Model {
            users,
            orders: Vec::new(),
        });
        let plan_of_case = draw(&mut runner, &steps);
        for step in &plan_of_case {
            shop.apply(&model, step).await;
        }
        shop.settle().await;
        let elapsed = chrono::Utc::now() - started;

        let model = model.into_inner();
        paid += model.orders.iter().filter(|o| o.paid).count();
        refunded += model.orders.iter().filter(|o| o.refunded > 0).count();
        banned += model.users.iter().filter(|u| u.banned).count();
        lapsed_paid += model
            .orders
            .iter()
            .filter(|o| o.paid && model.users[o.user].lapsed)
            .count();
        let conn = &mut shop.app.db.connect().await;
        let context = format!(
            "case {case}: {plan_of_case:#?}\norders: {:#?}",
            model.orders
        );
        for (i, u) in model.users.iter().enumerate() {
            // The books: each paid order its 30 days, less its refunds' share; admin grants.
            let mut days = u.extended_days;
            for o in model.orders.iter().filter(|o| o.user == i && o.paid) {
                let row = order_row(&shop.app, o.id).await;
                assert!(
                    matches!(
                        row.status,
                        vpn_shop::domain::PaymentStatus::Succeeded
                            | vpn_shop::domain::PaymentStatus::Refunded
                    ),
                    "paid order {} is {} — {context}",
                    o.id,
                    row.status
                );
                assert_eq!(row.refunded_minor, o.refunded, "order {} — {context}", o.id);
                days += MODEL_DAYS
                    - i64::from(refund_days(MODEL_DAYS as i32, MODEL_PRICE, 0, o.refunded));
            }
            for o in model.orders.iter().filter(|o| o.user == i && !o.paid) {
                let row = order_row(&shop.app, o.id).await;
                assert_eq!(
                    row.status,
                    vpn_shop::domain::PaymentStatus::Pending,
                    "unpaid order {} — {context}",
                    o.id
                );
            }
            let (sub, _) = subscriptions::find_by_user(conn, u.id)
                .await
                .unwrap()
                .expect("a subscription");
            let granted = days > 0 || model.orders.iter().any(|o| o.user == i && o.paid);
            let (expected, slack) = if u.lapsed && granted {
                // Time given to an ended subscription starts when it is given.
                (
                    started + chrono::Duration::days(days),
                    elapsed.num_seconds() + 5,
                )
            } else if u.lapsed {
                (u.initial_end, 1)
            } else {
                (u.initial_end + chrono::Duration::days(days), 5)
            };
            let off = (sub.expires_at - expected).num_seconds();
            assert!(
                (0..=slack).contains(&off) || (!u.lapsed && off.abs() <= slack),
                "user {i}: ends {} but {days} days were bought and given (expected {expected}, {off} s off) — {context}",
                sub.expires_at
            );
            // No ban lifted.
            if u.banned {
                assert_eq!(
                    sub.status,
                    SubscriptionStatus::Disabled,
                    "banned user {i} — {context}"
                );
            }
            // The panel matches the database.
            // The default prefix and the id, written out (not computed by the code under test).
            let name = format!("vpnshop_{}", u.telegram_id);
            let on_panel = shop.panel.user(&name);
            let needs_access =
                sub.status != SubscriptionStatus::Disabled && sub.expires_at > chrono::Utc::now();
            match on_panel {
                Some(p) if sub.status == SubscriptionStatus::Disabled => assert_eq!(
                    p.status, "disabled",
                    "user {i} is disabled in the database — {context}"
                ),
                Some(p) => {
                    assert_eq!(
                        p.expire,
                        Some(sub.expires_at.timestamp()),
                        "user {i}: the panel's expiry — {context}"
                    );
                    if needs_access {
                        assert_eq!(p.status, "active", "user {i} — {context}");
                    }
                }
                None => assert!(
                    !needs_access,
                    "user {i} has paid access but no panel user — {context}"
                ),
            }
        }
    }
    eprintln!(
        "model: {MODEL_CASES} cases, {paid} paid orders ({lapsed_paid} of lapsed users), {refunded} refunded, {banned} users left banned"
    );
    assert!(
        paid > 0 && refunded > 0 && banned > 0 && lapsed_paid > 0,
        "the cases exercised too little: {paid} paid, {refunded} refunded, {banned} banned, {lapsed_paid} lapsed paid"
    );
    shop.app.shutdown().await;
}
