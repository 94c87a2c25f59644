//! The Telegram bot end to end: updates from the fake Bot API, the real app with its actors,
//! the fake Marzban panel behind it. Each test sends what a subscriber would and checks what the
//! chat shows, the database and the panel.

use crate::support;

use std::time::Duration;

use chrono::Utc;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use support::bot::{ADMIN_ID, BotShop, WAIT, bot_shop, button, buttons};
use support::panels::PanelFake;
use vpn_shop::db::models::{Subscription, User};
use vpn_shop::db::promo::{self, PromoValues};
use vpn_shop::db::schema::{subscriptions, users};
use vpn_shop::domain::{Language, PromoKind};

const DAY: i64 = 86_400;

async fn user_row(shop: &BotShop, telegram_id: i64) -> User {
    users::table
        .filter(users::telegram_id.eq(telegram_id))
        .select(User::as_select())
        .first(&mut shop.app.db.connect().await)
        .await
        .expect("the user is registered")
}

async fn subscription_of(shop: &BotShop, telegram_id: i64) -> Option<Subscription> {
    let user = user_row(shop, telegram_id).await;
    subscriptions::table
        .filter(subscriptions::user_id.eq(user.id))
        .select(Subscription::as_select())
        .first(&mut shop.app.db.connect().await)
        .await
        .optional()
        .unwrap()
}

/// Updates the bot finished with `outcome` (`vpn_shop_bot_updates_total`, every kind): counted
/// after the handler's last answer was sent, so once it moves nothing more comes of the update.
pub(crate) async fn updates_with_outcome(app: &support::app::TestApp, outcome: &str) -> u64 {
    let text = app.get("/metrics", None).await.text().await.unwrap();
    let label = format!(r#"outcome="{outcome}""#);
    text.lines()
        .filter(|l| l.starts_with("vpn_shop_bot_updates_total{") && l.contains(&label))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

/// Waits until `n` updates in all finished with `outcome`.
async fn wait_outcomes(shop: &BotShop, outcome: &str, n: u64) {
    support::wait_until(&format!("{n} updates {outcome}"), || async {
        updates_with_outcome(&shop.app, outcome).await >= n
    })
    .await;
}

fn days_from_now(at: chrono::DateTime<Utc>) -> f64 {
    (at - Utc::now()).num_seconds() as f64 / DAY as f64
}

#[actix_rt::test]
async fn a_new_user_takes_the_trial_once_and_gets_the_link_when_the_panel_confirms() {
    let shop = bot_shop(&[]).await;
    let u = 1001;
    let welcome = shop.say(u, "/start").await;
    assert!(
        welcome.text.contains("Hello, User 1001!"),
        "{}",
        welcome.text
    );
    let labels: Vec<String> = buttons(&welcome).into_iter().map(|(t, _)| t).collect();
    assert_eq!(
        labels,
        [
            "🛒 Buy or renew",
            "📊 My subscription",
            "🎁 Free trial",
            "👥 Invite friends",
            "🏷 Promo code",
            "⚙️ Settings",
            "❓ Help"
        ]
    );
    let user = user_row(&shop, u).await;
    assert_eq!(user.language, Language::En);

    let started = shop
        .press(u, welcome.message_id, &button(&welcome, "🎁 Free trial"))
        .await;
    assert_eq!(started.method, "editMessageText");
    assert!(
        started
            .text
            .contains("Your free trial of 7 days has started"),
        "{}",
        started.text
    );
    // The link comes when the panel has the user.
    let link = shop.wait_text(u, "Your subscription link:").await;
    let panel_user = shop
        .panel
        .stored("vpnshop_1001")
        .expect("created on the panel");
    let expire = panel_user.expire.expect("an expiry");
    let sub = subscription_of(&shop, u).await.unwrap();
    assert!(sub.is_trial);
    assert_eq!(expire, sub.expires_at.timestamp());
    assert!((days_from_now(sub.expires_at) - 7.0).abs() < 0.01);
    assert!(link.text.contains(sub.subscription_url.as_deref().unwrap()));

    // Once per Telegram account, by command or button.
    let refused = shop.say(u, "/trial").await;
    assert!(
        refused
            .text
            .contains("You have already used your free trial"),
        "{}",
        refused.text
    );
    let sub_after = subscription_of(&shop, u).await.unwrap();
    assert_eq!(sub_after.expires_at, sub.expires_at);
    // The menu no longer offers it.
    let menu = shop.say(u, "/start").await;
    assert!(!buttons(&menu).iter().any(|(t, _)| t == "🎁 Free trial"));
}

#[actix_rt::test]
async fn status_shows_the_subscription_with_a_qr_code_and_the_apps() {
    let shop = bot_shop(&[]).await;
    let u = 1002;
    let none = shop.say(u, "/status").await;
    assert!(
        none.text.contains("You have no subscription yet"),
        "{}",
        none.text
    );
    shop.say(u, "/trial").await;
    shop.wait_text(u, "Your subscription link:").await;
    let status = shop.say(u, "/status").await;
    assert_eq!(status.method, "sendPhoto");
    for part in [
        "Your subscription",
        "Plan: free trial",
        "✅ active",
        "7 days left",
        "Traffic: 0 B (unlimited)",
        "Link: ",
    ] {
        assert!(status.text.contains(part), "{part:?} in {}", status.text);
    }
    let connect = shop
        .press(u, status.message_id, &button(&status, "📲 How to connect"))
        .await;
    assert!(
        connect.text.contains(
            r#"Android: <a href="https://github.com/2dust/v2rayNG/releases">v2rayNG</a>"#
        ),
        "{}",
        connect.text
    );
}

async fn insert_promo(
    shop: &BotShop,
    code: &str,
    kind: PromoKind,
    value: i64,
    tweak: impl FnOnce(&mut PromoValues),
) {
    let mut values = PromoValues {
        code: code.to_owned(),
        kind,
        value,
        max_uses: None,
        once_per_user: true,
        new_users_only: false,
        min_plan_days: None,
        valid_from: None,
        valid_until: None,
        active: true,
        note: None,
    };
    tweak(&mut values);
    promo::insert(&mut shop.app.db.connect().await, &values)
        .await
        .expect("promo code inserted");
}

#[actix_rt::test]
async fn promo_codes_of_each_kind_and_each_refusal() {
    let shop = bot_shop(&[]).await;
    let u = 1003;
    insert_promo(&shop, "DAYS10", PromoKind::BonusDays, 10, |_| {}).await;
    insert_promo(&shop, "SALE15", PromoKind::Percent, 15, |_| {}).await;
    insert_promo(&shop, "MINUS50", PromoKind::Fixed, 5_000, |_| {}).await;
    insert_promo(&shop, "OLD", PromoKind::BonusDays, 5, |v| {
        v.valid_until = Some(Utc::now() - chrono::Duration::days(1))
    })
    .await;
    insert_promo(&shop, "ONE", PromoKind::BonusDays, 5, |v| {
        v.max_uses = Some(1);
        v.once_per_user = false;
    })
    .await;

    // Bonus days at once (by the dialogue: the button, then the code).
    let menu = shop.say(u, "/start").await;
    let ask = shop
        .press(u, menu.message_id, &button(&menu, "🏷 Promo code"))
        .await;
    assert!(ask.text.contains("Send the promo code"), "{}", ask.text);
    let applied = shop.say(u, "days10").await;
    assert!(
        applied
            .text
            .contains("Promo code DAYS10 applied:</b> 10 days added"),
        "{}",
        applied.text
    );
    let sub = subscription_of(&shop, u).await.unwrap();
    assert!((days_from_now(sub.expires_at) - 10.0).abs() < 0.01);
    shop.wait_text(u, "Your subscription link:").await;
    // Once per user.
    let again = shop.say(u, "/promo DAYS10").await;
    assert!(
        again.text.contains("you have already used it"),
        "{}",
        again.text
    );
    assert_eq!(
        subscription_of(&shop, u).await.unwrap().expires_at,
        sub.expires_at
    );

    // Discounts are remembered for the next checkout.
    let sale = shop.say(u, "/promo SALE15").await;
    assert!(
        sale.text.contains("15% off your next payment"),
        "{}",
        sale.text
    );
    let pending = user_row(&shop, u)
        .await
        .pending_promo_id
        .expect("remembered");
    let fixed = shop.say(u, "/promo minus50").await;
    assert!(
        fixed.text.contains("50 ₽ off") || fixed.text.contains("50.00"),
        "{}",
        fixed.text
    );
    assert_ne!(user_row(&shop, u).await.pending_promo_id, Some(pending));

    // Refusals, each with its reason.
    let unknown = shop.say(u, "/promo NOPE").await;
    assert!(
        unknown.text.contains("there is no such code"),
        "{}",
        unknown.text
    );
    let expired = shop.say(u, "/promo OLD").await;
    assert!(expired.text.contains("it has expired"), "{}", expired.text);
    let first = shop.say(1004, "/promo ONE").await;
    assert!(first.text.contains("5 days added"), "{}", first.text);
    let used_up = shop.say(u, "/promo ONE").await;
    assert!(
        used_up.text.contains("it has been used up"),
        "{}",
        used_up.text
    );
    // A code with markup in it is shown escaped, never interpreted.
    let odd = shop.say(u, "/promo <b>X</b>").await;
    assert!(odd.text.contains("&lt;B&gt;X&lt;/B&gt;"), "{}", odd.text);
}

#[actix_rt::test]
async fn email_is_validated_and_the_language_switches() {
    let shop = bot_shop(&[]).await;
    let u = 1005;
    let settings = shop.say(u, "/settings").await;
    assert!(
        settings.text.contains("Email: not set"),
        "{}",
        settings.text
    );
    let ask = shop
        .press(u, settings.message_id, &button(&settings, "✉️ Set email"))
        .await;
    assert!(ask.text.contains("Send your email address"), "{}", ask.text);
    let bad = shop.say(u, "not-an-email").await;
    assert!(
        bad.text.contains("does not look like an email address"),
        "{}",
        bad.text
    );
    assert_eq!(user_row(&shop, u).await.email, None);
    // Still in the dialogue: the next text is tried again.
    let saved = shop.say(u, "Ann.Smith@Example.COM").await;
    assert!(saved.text.contains("Email saved"), "{}", saved.text);
    let email = user_row(&shop, u).await.email.expect("saved");
    assert_eq!(email.to_lowercase(), "ann.smith@example.com");
    // The dialogue is over: text is not taken as an address any more.
    let other = shop.say(u, "bob@example.com").await;
    assert!(
        other.text.contains("passed on to the shop's team"),
        "{}",
        other.text
    );

    let settings = shop.say(u, "/settings").await;
    let russian = shop
        .press(u, settings.message_id, &button(&settings, "🌐 Русский"))
        .await;
    assert!(russian.text.contains("Язык: Русский"), "{}", russian.text);
    assert_eq!(user_row(&shop, u).await.language, Language::Ru);
    let help = shop.say(u, "/help").await;
    assert!(help.text.contains("/buy"), "{}", help.text);
    assert!(!help.text.contains("buy or renew VPN"), "{}", help.text);
    let menu = shop.say(u, "/start").await;
    assert!(buttons(&menu).iter().all(|(t, _)| t != "🛒 Buy or renew"));
    // A Russian Telegram client starts in Russian.
    shop.telegram.push_update(serde_json::json!({"message": {
        "message_id": 1, "date": Utc::now().timestamp(),
        "chat": {"id": 1006, "type": "private", "first_name": "Иван"},
        "from": {"id": 1006, "is_bot": false, "first_name": "Иван", "language_code": "ru-RU"},
        "text": "/start",
        "entities": [{"type": "bot_command", "offset": 0, "length": 6}],
    }}));
    shop.next_after(1006, 0).await;
    assert_eq!(user_row(&shop, 1006).await.language, Language::Ru);
}

#[actix_rt::test]
async fn a_banned_user_gets_one_polite_refusal() {
    let shop = bot_shop(&[]).await;
    let u = 1007;
    shop.say(u, "/start").await;
    diesel::update(users::table.filter(users::telegram_id.eq(u)))
        .set(users::banned.eq(true))
        .execute(&mut shop.app.db.connect().await)
        .await
        .unwrap();
    let refusal = shop.say(u, "/trial").await;
    assert!(
        refusal.text.contains("has been blocked"),
        "{}",
        refusal.text
    );
    let seen = shop.messages(u).len();
    shop.telegram.push_message(u, "/buy");
    shop.telegram.push_message(u, "/status");
    // The /trial and these two, each finished as "banned".
    wait_outcomes(&shop, "banned", 3).await;
    assert_eq!(
        shop.messages(u).len(),
        seen,
        "no second refusal, nothing else"
    );
    assert!(subscription_of(&shop, u).await.is_none());
    // A pressed button is answered (the spinner stops) with the refusal.
    shop.telegram.push_callback(u, refusal.message_id, "trial");
    let answers = shop
        .telegram
        .wait_for_calls("answerCallbackQuery", 1, WAIT)
        .await;
    assert!(
        answers[0].params["text"]
            .as_str()
            .unwrap()
            .contains("blocked")
    );
}

#[actix_rt::test]
async fn too_many_updates_are_answered_once_and_dropped() {
    let shop = bot_shop(&[("BOT_RATE_LIMIT", "3/10s")]).await;
    let u = 1008;
    for _ in 0..6 {
        shop.telegram.push_message(u, "/help");
    }
    shop.wait_text(u, "Too many requests").await;
    // All six finished: three answered, three throttled.
    wait_outcomes(&shop, "throttled", 3).await;
    wait_outcomes(&shop, "handled", 3).await;
    let texts: Vec<String> = shop.messages(u).into_iter().map(|m| m.text).collect();
    assert_eq!(
        texts.iter().filter(|t| t.contains("<b>Help</b>")).count(),
        3,
        "{texts:#?}"
    );
    assert_eq!(
        texts
            .iter()
            .filter(|t| t.contains("Too many requests"))
            .count(),
        1,
        "{texts:#?}"
    );
    assert_eq!(texts.len(), 4);
}

/// Updates the bot has finished with (`vpn_shop_bot_updates_total`, every kind and outcome): a
/// handler returns once its answers were accepted by Telegram.
fn updates_handled(shop: &BotShop) -> u64 {
    use prometheus::core::Collector;
    shop.app
        .app
        .metrics
        .bot_updates
        .collect()
        .iter()
        .flat_map(|family| family.get_metric())
        .map(|m| m.get_counter().get_value() as u64)
        .sum()
}

async fn wait_handled(shop: &BotShop, n: u64) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    while updates_handled(shop) < n {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the bot finished {} of {n} updates",
            updates_handled(shop)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Issue 23: a post in a big channel brings 150 people to the bot within the same second, and
/// Telegram takes about 30 messages a second (the fake's default limits). Every one of them gets
/// the menu, once; whatever 429 the shop provoked it waited out and counted.
#[actix_rt::test]
async fn a_burst_of_new_users_all_get_the_menu_within_telegrams_limits() {
    let shop = bot_shop(&[]).await;
    let users: Vec<i64> = (0..150).map(|i| 300_000 + i).collect();
    for &u in &users {
        shop.telegram.push_message(u, "/start");
    }
    wait_handled(&shop, users.len() as u64).await;
    let mut lost = Vec::new();
    for &u in &users {
        let messages = shop.messages(u);
        let menus = messages
            .iter()
            .filter(|m| m.text.contains(&format!("Hello, User {u}!")) && buttons(m).len() == 7)
            .count();
        if menus != 1 || messages.len() != 1 {
            let texts: Vec<&str> = messages.iter().map(|m| m.text.as_str()).collect();
            lost.push((u, menus, texts.join(" | ")));
        }
    }
    assert!(
        lost.is_empty(),
        "{} of {} users did not get exactly one menu (user, menus, what they got): {lost:?}",
        lost.len(),
        users.len()
    );
    let counted = shop.app.app.metrics.telegram_flood_waits.get();
    assert_eq!(
        counted,
        shop.telegram.count_429() as u64,
        "every 429 Telegram answered is in vpn_shop_telegram_flood_waits_total"
    );
}

#[actix_rt::test]
async fn a_restart_in_the_middle_of_a_dialogue_continues_it() {
    let mut shop = bot_shop(&[]).await;
    let u = 1009;
    insert_promo(&shop, "AFTER", PromoKind::BonusDays, 3, |_| {}).await;
    let ask = shop.say(u, "/promo").await;
    assert!(ask.text.contains("Send the promo code"), "{}", ask.text);
    shop.app = shop.app.restart().await;
    let applied = shop.say(u, "AFTER").await;
    assert!(applied.text.contains("3 days added"), "{}", applied.text);
}

#[actix_rt::test]
async fn admins_grant_days_and_see_a_profile_and_others_cannot() {
    let shop = bot_shop(&[]).await;
    let u = 1010;
    shop.telegram.set_user(u, "Ann", Some("ann_vpn"));
    shop.say(u, "/start").await;
    let user = user_row(&shop, u).await;

    // Not for subscribers: commands and forged buttons alike.
    let refused = shop.say(u, &format!("/grant {u} 30")).await;
    assert!(
        refused.text.contains("for the shop's administrators"),
        "{}",
        refused.text
    );
    let forged = shop
        .press(u, refused.message_id, &format!("a:ban:{}", user.id.0))
        .await;
    assert!(
        forged.text.contains("for the shop's administrators"),
        "{}",
        forged.text
    );
    assert!(!user_row(&shop, u).await.banned);
    assert!(subscription_of(&shop, u).await.is_none());

    let usage = shop.say(ADMIN_ID, "/grant").await;
    assert!(usage.text.contains("Usage: /grant"), "{}", usage.text);
    let granted = shop.say(ADMIN_ID, &format!("/grant {u} 30")).await;
    assert!(
        granted.text.contains("@ann_vpn got 30 days"),
        "{}",
        granted.text
    );
    let sub = subscription_of(&shop, u).await.unwrap();
    assert!((days_from_now(sub.expires_at) - 30.0).abs() < 0.01);
    let audit = shop.app.audit_rows("user.extend").await;
    assert_eq!(audit.len(), 1);
    assert_eq!(audit[0]["actor"], format!("telegram:{ADMIN_ID}"));

    let profile = shop.say(ADMIN_ID, "/user @Ann_VPN").await;
    assert!(
        profile.text.contains(&format!("Telegram {u}")),
        "{}",
        profile.text
    );
    assert!(
        profile.text.contains("Subscription: active"),
        "{}",
        profile.text
    );
    let by_id = shop.say(ADMIN_ID, &format!("/user {u}")).await;
    assert_eq!(by_id.text, profile.text);
    let missing = shop.say(ADMIN_ID, "/user 424242").await;
    assert!(missing.text.contains("No user 424242"), "{}", missing.text);

    // The profile's buttons: grant by dialogue, ban.
    let ask = shop
        .press(
            ADMIN_ID,
            profile.message_id,
            &button(&profile, "➕ Grant days"),
        )
        .await;
    assert!(ask.text.contains("How many days"), "{}", ask.text);
    let wrong = shop.say(ADMIN_ID, "lots").await;
    assert!(wrong.text.contains("Usage: /grant"), "{}", wrong.text);
    let five = shop.say(ADMIN_ID, "5").await;
    assert!(five.text.contains("got 5 days"), "{}", five.text);
    let after = subscription_of(&shop, u).await.unwrap();
    assert_eq!((after.expires_at - sub.expires_at).num_days(), 5);

    let banned = shop
        .press(ADMIN_ID, profile.message_id, &button(&profile, "🚫 Ban"))
        .await;
    assert!(banned.text.contains("is banned"), "{}", banned.text);
    assert!(user_row(&shop, u).await.banned);
    assert_eq!(shop.app.audit_rows("user.update").await.len(), 1);
    let stats = shop.say(ADMIN_ID, "/stats").await;
    assert!(stats.text.contains("Users: 2"), "{}", stats.text);
}

/// Telegram's alphabet, at least 32 characters (shorter ones are refused at start-up).
const WEBHOOK_SECRET: &str = "s3cret_token-1-0123456789abcdefghij";

#[actix_rt::test]
async fn webhook_mode_checks_the_secret_and_handles_each_update_once() {
    let shop = bot_shop(&[
        ("TELEGRAM_MODE", "webhook"),
        ("TELEGRAM_WEBHOOK_SECRET", WEBHOOK_SECRET),
        // Telegram takes HTTPS webhooks only (the proxy in front terminates TLS).
        ("PUBLIC_BASE_URL", "https://shop.example.com"),
    ])
    .await;
    let hook = shop
        .telegram
        .webhook()
        .unwrap_or_else(|| panic!("{:#?}", shop.telegram.calls_to("setWebhook")));
    assert_eq!(hook.url, "https://shop.example.com/webhooks/telegram");
    assert_eq!(hook.secret_token.as_deref(), Some(WEBHOOK_SECRET));
    let allowed = hook.allowed_updates.unwrap_or_default();
    for kind in [
        "message",
        "callback_query",
        "pre_checkout_query",
        "my_chat_member",
    ] {
        assert!(allowed.iter().any(|a| a == kind), "{kind} in {allowed:?}");
    }
    let u = 1011;
    let update = serde_json::json!({"update_id": 777, "message": {
        "message_id": 5, "date": Utc::now().timestamp(),
        "chat": {"id": u, "type": "private", "first_name": "Web"},
        "from": {"id": u, "is_bot": false, "first_name": "Web", "language_code": "en"},
        "text": "/start",
        "entities": [{"type": "bot_command", "offset": 0, "length": 6}],
    }});
    let url = shop.app.url("/webhooks/telegram");
    let post = |secret: Option<&'static str>| {
        let mut req = shop.app.http.post(&url).json(&update);
        if let Some(secret) = secret {
            req = req.header("X-Telegram-Bot-Api-Secret-Token", secret);
        }
        req.send()
    };
    assert_eq!(post(None).await.unwrap().status(), 401);
    assert_eq!(post(Some("wrong")).await.unwrap().status(), 401);
    assert_eq!(post(Some(WEBHOOK_SECRET)).await.unwrap().status(), 200);
    shop.wait_text(u, "Hello, Web!").await;
    // Telegram delivers the same update again: handled once.
    assert_eq!(post(Some(WEBHOOK_SECRET)).await.unwrap().status(), 200);
    wait_outcomes(&shop, "duplicate", 1).await;
    assert_eq!(shop.messages(u).len(), 1);
    let garbage = shop
        .app
        .http
        .post(&url)
        .header("X-Telegram-Bot-Api-Secret-Token", WEBHOOK_SECRET)
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(garbage.status(), 400);
}
