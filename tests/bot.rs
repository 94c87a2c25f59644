//! The Telegram bot end to end: updates from the fake Bot API, the real app with its actors,
//! the fake Marzban panel behind it. Each test sends what a subscriber would and checks what the
//! chat shows, the database and the panel.

mod support;

use std::time::Duration;

use chrono::Utc;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use support::bot::{ADMIN_ID, BotShop, WAIT, bot_shop, button, buttons};
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
        .user("vpnshop_1001")
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
