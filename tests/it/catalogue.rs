//! The catalogue in the subscriber's language: plan names and descriptions per language through
//! the admin API, and everywhere a subscriber reads them — the bot's screens, the Stars invoice,
//! the YooKassa and WATA payment descriptions and receipt, the notifications — on the real app
//! with the fake Bot API and payment providers.

use crate::support;

use std::collections::BTreeSet;

use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use serde_json::{Value, json};

use support::bot::{BotShop, bot_shop, button, buttons};
use support::db::Subscriber;
use support::payments::Providers;
use support::telegram::{SentMessage, StarPayment};
use support::wata::FakeWata;
use support::yookassa::FakeYooKassa;
use vpn_shop::db::models::Payment;
use vpn_shop::db::schema::{notifications, payments, plans, users};
use vpn_shop::domain::{AdminRole, Language, PlanId};

const DESCRIPTION_RU: &str = "Быстрые серверы для одного устройства";
const DESCRIPTION_EN: &str = "Fast servers for one device";

/// The bot with YooKassa (receipts on), WATA and Stars, the catalogue the migrations seed (four
/// plans named in ru and en), the one-month plan described in both languages through the API.
struct Catalogue {
    bot: BotShop,
    yookassa: FakeYooKassa,
    wata: FakeWata,
    admin: String,
    month: PlanId,
}

async fn catalogue() -> Catalogue {
    let providers = Providers::start();
    let mut env = providers.env();
    env.extend([
        ("STARS_ENABLED", "true"),
        ("YOOKASSA_RECEIPTS", "true"),
        ("YOOKASSA_VAT_CODE", "1"),
    ]);
    let bot = bot_shop(&env).await;
    drop(env);
    let Providers { yookassa, wata, .. } = providers;
    let admin = bot.app.token_for(AdminRole::Admin).await;
    let month: PlanId = plans::table
        .filter(plans::days.eq(30))
        .select(plans::id)
        .first(&mut bot.app.db.connect().await)
        .await
        .expect("the seeded one-month plan");
    let (status, plan) = bot
        .app
        .call(
            "PATCH",
            &format!("/api/v1/plans/{month}"),
            Some(&admin),
            Some(json!({"descriptions": {"ru": DESCRIPTION_RU, "en": DESCRIPTION_EN}})),
        )
        .await;
    assert_eq!(status, 200, "{plan}");
    Catalogue {
        bot,
        yookassa,
        wata,
        admin,
        month,
    }
}

impl Catalogue {
    /// Waits for a message (or edit) to `u` after the first `seen` with a button whose callback
    /// data starts with `data`:
    /// notifications (a link that became ready, …) may come in between.
    async fn wait_button(&self, u: i64, seen: usize, data: &str) -> SentMessage {
        let mut found = None;
        support::wait_until(&format!("a button {data} for {u}"), || {
            let messages = self.bot.messages(u);
            found = messages
                .into_iter()
                .skip(seen)
                .find(|m| buttons(m).iter().any(|(_, d)| d.starts_with(data)));
            let done = found.is_some();
            async move { done }
        })
        .await;
        found.expect("found")
    }

    /// `/buy` → the plan; returns the payment methods screen.
    async fn open_plan(&self, u: i64, plan: PlanId) -> SentMessage {
        let seen = self.bot.messages(u).len();
        self.bot.telegram.push_message(u, "/buy");
        let choose = format!("plan:{}", plan.0);
        let list = self.wait_button(u, seen, &choose).await;
        let seen = self.bot.messages(u).len();
        self.bot.telegram.push_callback(u, list.message_id, &choose);
        self.wait_button(u, seen, &format!("pay:{}:", plan.0)).await
    }

    /// `/buy` → the plan → the method of `provider` (callback `pay:<plan>:<provider>`).
    async fn pay_with(&self, u: i64, plan: PlanId, provider: &str) -> SentMessage {
        let methods = self.open_plan(u, plan).await;
        let data = format!("pay:{}:{provider}", plan.0);
        assert!(
            buttons(&methods).iter().any(|(_, d)| *d == data),
            "{data} offered: {:#?}",
            buttons(&methods)
        );
        self.bot.press(u, methods.message_id, &data).await
    }

    async fn last_order(&self, u: i64) -> Payment {
        let conn = &mut self.bot.app.db.connect().await;
        let user: vpn_shop::domain::UserId = users::table
            .filter(users::telegram_id.eq(u))
            .select(users::id)
            .first(conn)
            .await
            .unwrap();
        payments::table
            .filter(payments::user_id.eq(user))
            .order(payments::id.desc())
            .select(Payment::as_select())
            .first(conn)
            .await
            .expect("an order")
    }

    /// Buys the one-month plan with Stars through the bot: the invoice, the pre-checkout answer,
    /// the payment. Returns the `sendInvoice` call's parameters.
    async fn buy_month_with_stars(&self, u: i64) -> Value {
        let tg = &self.bot.telegram;
        let before = tg.calls_to("sendInvoice").len();
        self.pay_with(u, self.month, "stars").await;
        let invoice = tg
            .wait_for_calls("sendInvoice", before + 1, support::bot::WAIT)
            .await
            .pop()
            .expect("sendInvoice");
        let payload = invoice.params["payload"].as_str().unwrap().to_owned();
        let stars = invoice.params["prices"][0]["amount"].as_u64().unwrap() as u32;
        tg.push_pre_checkout(u, "XTR", stars, &payload);
        tg.push_successful_payment(u, &StarPayment::new(stars, &payload));
        invoice.params
    }

    /// The words of the catalogue in `language`: of every plan's name and description in it
    /// (the default `name` is not counted: it is in no particular language).
    async fn words_of(&self, language: Language) -> BTreeSet<String> {
        let rows: Vec<(Value, Value)> = plans::table
            .select((plans::names, plans::descriptions))
            .load(&mut self.bot.app.db.connect().await)
            .await
            .unwrap();
        rows.iter()
            .flat_map(|(names, descriptions)| {
                [&names[language.as_str()], &descriptions[language.as_str()]]
            })
            .filter_map(Value::as_str)
            .flat_map(words)
            .collect()
    }

    /// Waits until the `kind` notification (e.g. `payment_succeeded`) reached `u` on Telegram.
    async fn wait_notified(&self, u: i64, kind: &str) {
        support::wait_until(&format!("{kind} sent to {u}"), || async {
            let sent: i64 = notifications::table
                .inner_join(users::table)
                .filter(users::telegram_id.eq(u))
                .filter(notifications::kind.eq(kind))
                .filter(notifications::channel.eq("telegram"))
                .filter(notifications::sent_at.is_not_null())
                .count()
                .get_result(&mut self.bot.app.db.connect().await)
                .await
                .unwrap();
            sent > 0
        })
        .await;
    }

    async fn finish(self) {
        self.bot.app.shutdown().await;
        drop((self.yookassa, self.wata));
    }
}

/// The words of a text, lower case (numbers and signs left out).
fn words(text: &str) -> BTreeSet<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| w.chars().any(char::is_alphabetic))
        .map(str::to_lowercase)
        .collect()
}

/// What a subscriber reads of a message: its text, its buttons, an invoice's title, description
/// and price labels.
fn readable(m: &SentMessage) -> Vec<String> {
    let mut out = vec![m.text.clone()];
    out.extend(buttons(m).into_iter().map(|(label, _)| label));
    for key in ["title", "description"] {
        if let Some(text) = m.params[key].as_str() {
            out.push(text.to_owned());
        }
    }
    if let Some(prices) = m.params["prices"].as_array() {
        out.extend(
            prices
                .iter()
                .filter_map(|p| p["label"].as_str().map(str::to_owned)),
        );
    }
    out
}

#[actix_rt::test]
async fn the_plan_list_and_the_chosen_plan_are_in_the_subscribers_language() {
    let c = catalogue().await;
    // A Russian Telegram client, and an English one.
    let (ru, en) = (3001, 3002);
    c.bot.telegram.set_language(ru, "ru");
    for (u, plan_lines, button_label, description, chosen) in [
        (
            ru,
            ["1 месяц", "3 месяца", "6 месяцев", "12 месяцев"],
            "1 месяц — 199 ₽",
            DESCRIPTION_RU,
            "1 месяц: 30 дней за 199 ₽.",
        ),
        (
            en,
            ["1 month", "3 months", "6 months", "12 months"],
            "1 month — 199 ₽",
            DESCRIPTION_EN,
            "1 month: 30 days for 199 ₽.",
        ),
    ] {
        let list = c.bot.say(u, "/buy").await;
        for name in plan_lines {
            assert!(
                list.text.contains(&format!("<b>{name}</b>")),
                "{name}: {}",
                list.text
            );
        }
        assert!(list.text.contains(description), "{}", list.text);
        assert_eq!(
            button(&list, button_label),
            format!("plan:{}", c.month.0),
            "{:#?}",
            buttons(&list)
        );
        let methods = c
            .bot
            .press(u, list.message_id, &format!("plan:{}", c.month.0))
            .await;
        // An edit of the list: the fake keeps the text as Telegram shows it (no tags).
        assert!(methods.text.starts_with(chosen), "{}", methods.text);
        assert!(methods.text.contains(description), "{}", methods.text);
    }
    // A plan described in one language only: the other sees no description, and a plan without
    // a name in the reader's language shows its default name.
    let (status, reply) = c
        .bot
        .app
        .call(
            "POST",
            "/api/v1/plans",
            Some(&c.admin),
            Some(json!({"name": "Weekly", "names": {"ru": "Неделя"},
                        "descriptions": {"ru": "Попробовать"},
                        "days": 7, "price_minor": 5_000})),
        )
        .await;
    assert_eq!(status, 201, "{reply}");
    let ru_list = c.bot.say(ru, "/buy").await;
    assert!(ru_list.text.contains("<b>Неделя</b>"), "{}", ru_list.text);
    assert!(ru_list.text.contains("Попробовать"), "{}", ru_list.text);
    let en_list = c.bot.say(en, "/buy").await;
    assert!(en_list.text.contains("<b>Weekly</b>"), "{}", en_list.text);
    assert!(!en_list.text.contains("Попробовать"), "{}", en_list.text);
    c.finish().await;
}

#[actix_rt::test]
async fn the_stars_invoice_and_the_payment_notification_name_the_plan_in_the_buyers_language() {
    let c = catalogue().await;
    let (ru, en) = (3011, 3012);
    c.bot.telegram.set_language(ru, "ru");
    let invoice = c.buy_month_with_stars(ru).await;
    assert_eq!(invoice["title"], "VPN 1 месяц");
    assert_eq!(
        invoice["description"],
        format!("VPN: 1 месяц (30 дней). {DESCRIPTION_RU}")
    );
    assert_eq!(invoice["prices"][0]["label"], "VPN 1 месяц");
    let paid = c.bot.wait_text(ru, "Оплата 150 ⭐ получена").await;
    assert!(
        paid.text.contains("Тариф: 1 месяц (30 дней)"),
        "{}",
        paid.text
    );
    let status = c.bot.say(ru, "/status").await;
    assert!(status.text.contains("Тариф: 1 месяц"), "{}", status.text);

    let invoice = c.buy_month_with_stars(en).await;
    assert_eq!(invoice["title"], "VPN 1 month");
    assert_eq!(
        invoice["description"],
        format!("VPN: 1 month (30 days). {DESCRIPTION_EN}")
    );
    let paid = c.bot.wait_text(en, "Your payment of 150 ⭐").await;
    assert!(
        paid.text.contains("Plan: 1 month (30 days)"),
        "{}",
        paid.text
    );
    c.finish().await;
}

#[actix_rt::test]
async fn payment_pages_receipts_and_a_failed_payment_name_the_plan_in_the_payers_language() {
    let c = catalogue().await;
    let (ru, en) = (3021, 3022);
    let conn = &mut c.bot.app.db.connect().await;
    for (u, language) in [(ru, Language::Ru), (en, Language::En)] {
        Subscriber {
            language,
            email: Some("payer@example.com"),
            ..Subscriber::new(u)
        }
        .insert(conn)
        .await;
    }
    c.pay_with(ru, c.month, "yookassa").await;
    let order = c.last_order(ru).await;
    let id = order.external_id.clone().expect("a YooKassa payment");
    let payment = c.yookassa.payment(&id).unwrap();
    let ru_description = "VPN: 1 месяц (30 дней)";
    assert_eq!(
        payment["description"],
        format!("{ru_description}, заказ {}", order.id)
    );
    let create = c
        .yookassa
        .requests()
        .into_iter()
        .find(|r| r.route == "/v3/payments" && r.method == "POST")
        .expect("the payment was created");
    assert_eq!(
        create.body.unwrap()["receipt"]["items"][0]["description"],
        ru_description
    );
    // Declined: the subscriber reads which plan did not go through, in Russian.
    c.yookassa.cancel(&id, "payment_network", "card_expired");
    let status = c
        .yookassa
        .send_notification(
            &c.bot.app.url("/webhooks/yookassa"),
            &id,
            "payment.canceled",
        )
        .await;
    assert_eq!(status, 200);
    c.bot.wait_text(ru, "за тариф «1 месяц» не прошла").await;

    c.pay_with(en, c.month, "wata").await;
    let link = c.last_order(en).await.external_id.expect("a WATA link");
    assert_eq!(
        c.wata.link(&link).unwrap()["description"],
        "VPN: 1 month (30 days)"
    );
    c.finish().await;
}

/// Walks every screen a subscriber of `language` meets — menu, help, settings, referral, promo,
/// status, the plan list and each plan, a Stars purchase and its notification, a declined card
/// and its notification, a WATA page, status with the plan and its renewal — and returns all they
/// read, the payment pages' descriptions and the receipt too.
async fn walk(c: &Catalogue, u: i64, language: Language) -> Vec<String> {
    c.bot.telegram.set_language(u, language.as_str());
    Subscriber {
        language,
        email: Some("payer@example.com"),
        ..Subscriber::new(u)
    }
    .insert(&mut c.bot.app.db.connect().await)
    .await;
    let mut read = Vec::new();
    for command in [
        "/start",
        "/help",
        "/settings",
        "/referral",
        "/promo",
        "/status",
    ] {
        c.bot.say(u, command).await;
    }
    let ids: Vec<PlanId> = plans::table
        .filter(plans::active.eq(true))
        .order((plans::sort_order, plans::id))
        .select(plans::id)
        .load(&mut c.bot.app.db.connect().await)
        .await
        .unwrap();
    for plan in &ids {
        c.open_plan(u, *plan).await;
    }
    // A Stars purchase and its notification.
    c.buy_month_with_stars(u).await;
    c.wait_notified(u, "payment_succeeded").await;
    // A card payment declined, and its notification.
    let three_months = ids[1];
    c.pay_with(u, three_months, "yookassa").await;
    let order = c.last_order(u).await;
    let id = order.external_id.clone().expect("a YooKassa payment");
    c.yookassa.cancel(&id, "payment_network", "card_expired");
    c.yookassa
        .send_notification(
            &c.bot.app.url("/webhooks/yookassa"),
            &id,
            "payment.canceled",
        )
        .await;
    c.wait_notified(u, "payment_failed").await;
    let payment = c.yookassa.payment(&id).unwrap();
    read.push(payment["description"].as_str().unwrap().to_owned());
    let order_id = json!(order.id.to_string());
    for r in c.yookassa.requests() {
        if let Some(items) = r
            .body
            .as_ref()
            .filter(|b| b["metadata"]["order_id"] == order_id)
            .and_then(|b| b["receipt"]["items"].as_array())
        {
            read.extend(
                items
                    .iter()
                    .filter_map(|i| i["description"].as_str().map(str::to_owned)),
            );
        }
    }
    // A WATA page.
    c.pay_with(u, ids[2], "wata").await;
    let link = c.last_order(u).await.external_id.expect("a WATA link");
    read.push(
        c.wata.link(&link).unwrap()["description"]
            .as_str()
            .unwrap()
            .to_owned(),
    );
    // Status with the plan, and the renewal it offers.
    let status = c.bot.say(u, "/status").await;
    let renew = buttons(&status)
        .into_iter()
        .find(|(_, data)| data == "buy")
        .expect("a renewal button");
    c.bot.press(u, status.message_id, &renew.1).await;
    for m in c.bot.messages(u) {
        read.extend(readable(&m));
    }
    read
}

/// Walks every screen as a subscriber reading `language` and checks that no word of the
/// catalogue in `other` shows, and that every word of it in `language` does. One language per
/// test: the two walks are independent and run side by side.
async fn walk_shows_only(language: Language, other: Language, u: i64) {
    let c = catalogue().await;
    let read = walk(&c, u, language).await;
    let seen: BTreeSet<String> = read.iter().flat_map(|t| words(t)).collect();
    let own = c.words_of(language).await;
    let foreign: BTreeSet<String> = c.words_of(other).await.difference(&own).cloned().collect();
    assert!(!foreign.is_empty());
    let leaked: Vec<&String> = seen.intersection(&foreign).collect();
    assert!(
        leaked.is_empty(),
        "{language}: words of the {other} catalogue shown: {leaked:?}\n{read:#?}"
    );
    // The walk did show the catalogue: every word of it in the subscriber's language.
    let missing: Vec<&String> = own.difference(&seen).collect();
    assert!(missing.is_empty(), "{language}: never shown: {missing:?}");
    c.finish().await;
}

#[actix_rt::test]
async fn no_screen_shows_a_russian_reader_the_english_catalogue() {
    walk_shows_only(Language::Ru, Language::En, 3031).await;
}

#[actix_rt::test]
async fn no_screen_shows_an_english_reader_the_russian_catalogue() {
    walk_shows_only(Language::En, Language::Ru, 3032).await;
}

#[actix_rt::test]
async fn plan_names_per_language_round_trip_through_the_api_and_bad_ones_are_refused() {
    let c = catalogue().await;
    let app = &c.bot.app;
    let admin = Some(c.admin.as_str());
    // The seeded plans carry both languages.
    let (status, month) = app
        .call("GET", &format!("/api/v1/plans/{}", c.month), admin, None)
        .await;
    assert_eq!(status, 200);
    assert_eq!(month["name"], "1 month");
    assert_eq!(month["names"], json!({"ru": "1 месяц", "en": "1 month"}));
    assert_eq!(
        month["descriptions"],
        json!({"ru": DESCRIPTION_RU, "en": DESCRIPTION_EN})
    );

    // Names without a default name: the Russian one is the default.
    let (status, plan) = app
        .call(
            "POST",
            "/api/v1/plans",
            admin,
            Some(
                json!({"names": {"en": " 2 weeks ", "ru": "2 недели"}, "days": 14,
                        "price_minor": 9_900}),
            ),
        )
        .await;
    assert_eq!(status, 201, "{plan}");
    assert_eq!(plan["name"], "2 недели");
    assert_eq!(plan["names"], json!({"ru": "2 недели", "en": "2 weeks"}));
    assert_eq!(plan["descriptions"], json!({}));
    let path = format!("/api/v1/plans/{}", plan["id"]);
    let created = app.audit_rows("plan.create").await;
    assert_eq!(created.last().unwrap()["after"]["names"]["en"], "2 weeks");

    // The old way, a name only, still works.
    let (status, old) = app
        .call(
            "POST",
            "/api/v1/plans",
            admin,
            Some(json!({"name": "Year", "days": 365, "price_minor": 99_900})),
        )
        .await;
    assert_eq!((status, &old["names"]), (201, &json!({})), "{old}");

    // A PATCH replaces the set it names and leaves the rest.
    let (status, changed) = app
        .call(
            "PATCH",
            &path,
            admin,
            Some(json!({"names": {"en": "Two weeks"}, "descriptions": {"en": "For a trip"}})),
        )
        .await;
    assert_eq!(status, 200, "{changed}");
    assert_eq!(changed["names"], json!({"en": "Two weeks"}));
    assert_eq!(changed["descriptions"], json!({"en": "For a trip"}));
    assert_eq!(changed["name"], "2 недели");
    let (_, fetched) = app.call("GET", &path, admin, None).await;
    assert_eq!(fetched, changed);
    let updated = app.audit_rows("plan.update").await;
    let row = updated.last().unwrap();
    assert_eq!(row["before"]["names"]["ru"], "2 недели");
    assert_eq!(row["after"]["descriptions"]["en"], "For a trip");

    // Refusals name the field; nothing changes.
    let valid = json!({"days": 30, "price_minor": 29_900});
    for (fields, field) in [
        (json!({"names": {"de": "1 Monat"}}), "names.de"),
        (json!({"names": {"ru": "  "}}), "names.ru"),
        (json!({"names": {"en": "x".repeat(65)}}), "names.en"),
        (
            json!({"name": "Month", "descriptions": {"fr": "Vite"}}),
            "descriptions.fr",
        ),
        (
            json!({"name": "Month", "descriptions": {"en": ""}}),
            "descriptions.en",
        ),
        (
            json!({"name": "Month", "descriptions": {"en": "d".repeat(201)}}),
            "descriptions.en",
        ),
        (json!({"names": {}}), "name"),
        (json!({}), "name"),
    ] {
        let mut body = valid.clone();
        body.as_object_mut()
            .unwrap()
            .extend(fields.as_object().unwrap().clone());
        let (status, reply) = app.call("POST", "/api/v1/plans", admin, Some(body)).await;
        assert_eq!(status, 422, "{fields}: {reply}");
        assert_eq!(reply["error"]["field"], field, "{reply}");
    }
    let (status, reply) = app
        .call(
            "PATCH",
            &path,
            admin,
            Some(json!({"names": {"uk": "Тиждень"}})),
        )
        .await;
    assert_eq!(
        (status, &reply["error"]["field"]),
        (422, &json!("names.uk"))
    );
    let (_, still) = app.call("GET", &path, admin, None).await;
    assert_eq!(still, changed);
    c.finish().await;
}
