//! Buying through the Telegram bot end to end: commands and button presses on the fake Bot API,
//! payments on the fake YooKassa, WATA and Telegram Stars, the real app with its actors and a
//! fake panel behind it. Each test checks the chat, the database and the panel. The sale, the
//! renewal, the sync after a change made on the panel and the traffic plans run on every panel a
//! shop can drive (`on_every_panel!`: Marzban, PasarGuard, Remnawave 2.8 and 3.x).

use crate::support;

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use serde_json::{Value, json};

use support::bot::{BotShop, bot_shop_on, button, buttons};
use support::db::Subscriber;
use support::panels::{AnyPanel, Kind, PanelFake, Stored};
use support::payments::Providers;
use support::telegram::{SentMessage, StarPayment};
use support::wait_until;
use support::wata::{self as wt, FakeWata};
use support::yookassa::{self as yk, FakeYooKassa};
use vpn_shop::actors::messages::{RunSync, SyncKind};
use vpn_shop::db::models::{Payment, Subscription, User};
use vpn_shop::db::schema::{
    jobs, payment_events, payments, plans, referrals, subscriptions, users,
};
use vpn_shop::domain::{
    AdminRole, PaymentEventVerdict, PaymentProvider, PaymentStatus, PlanId, SubscriptionStatus,
    UserId,
};

const DAY: i64 = 86_400;
/// The plan on sale: 30 days for 299.00 RUB or 150 Stars.
const PLAN_DAYS: i64 = 30;
const PLAN_PRICE: i64 = 29_900;
const PLAN_STARS: i64 = 150;
const PAID: &str = "Thank you! Your payment of";
const LINK: &str = "Your subscription link: <code>";

/// The bot with every payment provider configured, the fakes behind it and one plan on sale.
struct Shop {
    bot: BotShop,
    yookassa: FakeYooKassa,
    wata: FakeWata,
    plan: PlanId,
}

async fn shop(extra: &[(&str, &str)]) -> Shop {
    shop_on(Kind::Marzban, extra).await
}

/// The shop on a panel of `kind`.
async fn shop_on(kind: Kind, extra: &[(&str, &str)]) -> Shop {
    let providers = Providers::start();
    let mut env = providers.env();
    env.push(("STARS_ENABLED", "true"));
    env.extend_from_slice(extra);
    let bot = bot_shop_on(kind, &env).await;
    drop(env);
    let Providers { yookassa, wata, .. } = providers;
    let plan = diesel::insert_into(plans::table)
        .values((
            plans::name.eq(format!("{PLAN_DAYS} days")),
            plans::days.eq(PLAN_DAYS as i32),
            plans::price_minor.eq(PLAN_PRICE),
            plans::price_stars.eq(Some(PLAN_STARS)),
        ))
        .returning(plans::id)
        .get_result(&mut bot.app.db.connect().await)
        .await
        .unwrap();
    Shop {
        bot,
        yookassa,
        wata,
        plan,
    }
}

impl Shop {
    async fn conn(&self) -> AsyncPgConnection {
        self.bot.app.db.connect().await
    }

    fn webhook_url(&self, provider: &str) -> String {
        self.bot.app.url(&format!("/webhooks/{provider}"))
    }

    /// `/buy` → the plan → the payment method labelled `method`; returns the bot's answer.
    async fn choose(&self, u: i64, method: &str) -> SentMessage {
        self.choose_plan(u, self.plan, method).await
    }

    /// `/buy` → `plan` → the payment method labelled `method`; returns the bot's answer.
    async fn choose_plan(&self, u: i64, plan: PlanId, method: &str) -> SentMessage {
        let plans = self.bot.say(u, "/buy").await;
        let plan_data = format!("plan:{}", plan.0);
        assert!(
            buttons(&plans).iter().any(|(_, data)| *data == plan_data),
            "the plan is offered: {:#?}",
            buttons(&plans)
        );
        let methods = self.bot.press(u, plans.message_id, &plan_data).await;
        self.bot
            .press(u, methods.message_id, &button(&methods, method))
            .await
    }

    /// The "Pay …" URL button of a checkout message.
    fn pay_url(checkout: &SentMessage) -> String {
        let pay: Vec<_> = buttons(checkout)
            .into_iter()
            .filter(|(text, _)| text.starts_with("Pay "))
            .collect();
        assert_eq!(pay.len(), 1, "one Pay button in {:#?}", buttons(checkout));
        pay[0].1.clone()
    }

    /// Buys the plan with YooKassa through the bot and pays; returns the order.
    async fn buy_yookassa(&self, u: i64) -> Payment {
        self.buy_yookassa_plan(u, self.plan).await
    }

    /// Buys `plan` with YooKassa through the bot and pays; returns the order.
    async fn buy_yookassa_plan(&self, u: i64, plan: PlanId) -> Payment {
        let checkout = self.choose_plan(u, plan, "💳 Card, SBP (YooKassa)").await;
        assert!(
            checkout.text.contains("Order #"),
            "a checkout: {}",
            checkout.text
        );
        let order = self.last_order(u).await;
        assert_eq!(order.status, PaymentStatus::Pending);
        let id = order.external_id.clone().expect("a YooKassa payment id");
        let confirmation = self.yookassa.payment(&id).expect("created at YooKassa")["confirmation"]
            ["confirmation_url"]
            .as_str()
            .expect("a confirmation URL")
            .to_owned();
        assert!(confirmation.starts_with(yk::CONFIRMATION_URL_PREFIX));
        assert_eq!(Self::pay_url(&checkout), confirmation);
        self.yookassa.succeed(&id);
        let status = self
            .yookassa
            .send_notification(&self.webhook_url("yookassa"), &id, "payment.succeeded")
            .await;
        assert_eq!(status, 200);
        order
    }

    /// Buys the plan with WATA through the bot and pays; returns the order.
    async fn buy_wata(&self, u: i64) -> Payment {
        let checkout = self.choose(u, "💳 Card (WATA)").await;
        let order = self.last_order(u).await;
        assert_eq!(order.status, PaymentStatus::Pending);
        let link_id = order.external_id.clone().expect("a WATA link id");
        let link = self.wata.link(&link_id).expect("created at WATA");
        let url = link["url"].as_str().expect("a payment form URL").to_owned();
        assert!(url.starts_with(wt::PAY_FORM_URL), "{url}");
        assert_eq!(Self::pay_url(&checkout), url);
        let transaction = self.wata.pay(&link_id);
        let transaction = transaction["id"].as_str().expect("a transaction id");
        let status = self
            .wata
            .send_webhook(&self.webhook_url("wata"), transaction)
            .await;
        assert_eq!(status, 200);
        order
    }

    async fn user(&self, telegram_id: i64) -> User {
        users::table
            .filter(users::telegram_id.eq(telegram_id))
            .select(User::as_select())
            .first(&mut self.conn().await)
            .await
            .expect("the user is registered")
    }

    async fn orders(&self, telegram_id: i64) -> Vec<Payment> {
        let user = self.user(telegram_id).await;
        payments::table
            .filter(payments::user_id.eq(user.id))
            .order(payments::id)
            .select(Payment::as_select())
            .load(&mut self.conn().await)
            .await
            .unwrap()
    }

    async fn last_order(&self, telegram_id: i64) -> Payment {
        self.orders(telegram_id)
            .await
            .pop()
            .expect("the bot wrote an order")
    }

    async fn order(&self, id: vpn_shop::domain::PaymentId) -> Payment {
        payments::table
            .find(id)
            .select(Payment::as_select())
            .first(&mut self.conn().await)
            .await
            .unwrap()
    }

    async fn subscription(&self, telegram_id: i64) -> Option<Subscription> {
        let user = self.user(telegram_id).await;
        subscriptions::table
            .filter(subscriptions::user_id.eq(user.id))
            .select(Subscription::as_select())
            .first(&mut self.conn().await)
            .await
            .optional()
            .unwrap()
    }

    async fn expires(&self, telegram_id: i64) -> DateTime<Utc> {
        self.subscription(telegram_id)
            .await
            .expect("a subscription")
            .expires_at
    }

    /// Waits until the panel user's `expire` is the subscription's end; returns the subscription.
    async fn panel_matches(&self, telegram_id: i64) -> Subscription {
        let name = format!("vpnshop_{telegram_id}");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let sub = self
                .subscription(telegram_id)
                .await
                .expect("a subscription");
            let expire = self.bot.panel.stored(&name).and_then(|u| u.expire);
            if expire == Some(sub.expires_at.timestamp()) {
                return sub;
            }
            assert!(
                Instant::now() < deadline,
                "the panel's {name} expires at {expire:?}, the subscription at {}",
                sub.expires_at.timestamp()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The notification types enqueued for `telegram_id` (expiry warnings left out).
    async fn notifications(&self, telegram_id: i64) -> Vec<String> {
        let user = self.user(telegram_id).await;
        let payloads: Vec<Value> = jobs::table
            .filter(jobs::kind.eq("notify"))
            .order(jobs::id)
            .select(jobs::payload)
            .load(&mut self.conn().await)
            .await
            .unwrap();
        payloads
            .iter()
            .filter(|p| p["user_id"] == json!(user.id))
            .map(|p| p["notification"]["type"].as_str().unwrap_or("?").to_owned())
            .filter(|kind| kind != "subscription_expiring")
            .collect()
    }

    /// Messages to `chat` containing `needle`.
    fn count(&self, chat: i64, needle: &str) -> usize {
        self.bot
            .messages(chat)
            .iter()
            .filter(|m| m.text.contains(needle))
            .count()
    }

    /// Asserts one succeeded order for `u`, the subscription one period past `from` (or past the
    /// payment when `None`), the panel in step, and the payment message with the link in the chat.
    async fn assert_paid(&self, u: i64, order: &Payment, from: Option<DateTime<Utc>>) {
        let message = self.bot.wait_text(u, PAID).await;
        let paid = self.order(order.id).await;
        assert_eq!(paid.status, PaymentStatus::Succeeded);
        let succeeded = self
            .orders(u)
            .await
            .into_iter()
            .filter(|o| o.status == PaymentStatus::Succeeded)
            .count();
        assert_eq!(succeeded, 1, "exactly one succeeded payment");
        let start = from.unwrap_or_else(|| paid.paid_at.expect("paid_at"));
        let sub = self.panel_matches(u).await;
        assert!(
            close(sub.expires_at, start + days(PLAN_DAYS)),
            "one period from {start}: {}",
            sub.expires_at
        );
        if from.is_none() {
            assert!((days_from_now(sub.expires_at) - PLAN_DAYS as f64).abs() < 0.01);
        }
        assert_eq!(sub.status, SubscriptionStatus::Active);
        assert_eq!(sub.plan_id, Some(self.plan));
        let link = sub
            .subscription_url
            .as_deref()
            .expect("a subscription link");
        assert!(
            message.text.contains(&format!("{LINK}{link}</code>")),
            "the link in {}",
            message.text
        );
        assert!(self.bot.panel.subscription_valid(link), "{link}");
        assert!(
            self.bot.panel.reaches_nodes(&format!("vpnshop_{u}")),
            "the panel user can connect"
        );
        assert_eq!(self.count(u, PAID), 1, "one payment message");
    }
}

fn days(n: i64) -> chrono::Duration {
    chrono::Duration::seconds(n * DAY)
}

/// `a` and `b` within two seconds of each other.
fn close(a: DateTime<Utc>, b: DateTime<Utc>) -> bool {
    (a - b).num_milliseconds().abs() < 2_000
}

fn days_from_now(at: DateTime<Utc>) -> f64 {
    (at - Utc::now()).num_seconds() as f64 / DAY as f64
}

async fn buying_with_yookassa_through_the_bot_gives_the_link_and_the_panel_the_period(kind: Kind) {
    let shop = shop_on(kind, &[]).await;
    let u = 2001;
    let order = shop.buy_yookassa(u).await;
    shop.assert_paid(u, &order, None).await;
    assert_eq!(
        shop.notifications(u).await,
        vec!["payment_succeeded"],
        "one notification"
    );
}

#[actix_rt::test]
async fn buying_with_wata_through_the_bot_gives_the_link_and_the_panel_the_period() {
    let shop = shop(&[]).await;
    let u = 2002;
    let order = shop.buy_wata(u).await;
    shop.assert_paid(u, &order, None).await;
    assert_eq!(shop.notifications(u).await, vec!["payment_succeeded"]);
}

#[actix_rt::test]
async fn buying_with_stars_through_the_bot_pays_once_even_when_the_payment_comes_again() {
    let shop = shop(&[]).await;
    let tg = &shop.bot.telegram;
    let u = 2003;
    shop.choose(u, "⭐ Telegram Stars (150 ⭐)").await;
    let invoice = tg
        .wait_for_calls("sendInvoice", 1, Duration::from_secs(15))
        .await
        .pop()
        .expect("sendInvoice");
    assert_eq!(invoice.params["chat_id"], u);
    assert_eq!(invoice.params["currency"], "XTR");
    let order = shop.last_order(u).await;
    let payload = format!("order:{}", order.id);
    assert_eq!(invoice.params["payload"], payload);
    assert!(
        shop.bot
            .messages(u)
            .iter()
            .any(|m| m.method == "sendInvoice"),
        "the invoice is in the chat"
    );
    shop.bot.wait_text(u, "The invoice for").await;

    tg.push_pre_checkout(u, "XTR", PLAN_STARS as u32, &payload);
    wait_until("the pre-checkout answer", || async {
        !tg.pre_checkout_answers().is_empty()
    })
    .await;
    let answers = tg.pre_checkout_answers();
    assert_eq!(answers.len(), 1);
    assert!(answers[0].ok && answers[0].in_time, "{:?}", answers[0]);

    let payment = StarPayment::new(PLAN_STARS as u32, &payload);
    tg.push_successful_payment(u, &payment);
    shop.assert_paid(u, &order, None).await;
    let ends = shop.expires(u).await;

    // Telegram delivers the same payment again, as a new update.
    tg.push_successful_payment(u, &payment);
    // The bot has handled it once a later message is answered.
    let status = shop.bot.say(u, "/status").await;
    assert!(status.text.contains("Your subscription"), "{}", status.text);
    wait_until("the redelivery recorded", || async {
        let verdicts: Vec<PaymentEventVerdict> = payment_events::table
            .filter(payment_events::provider.eq(PaymentProvider::Stars))
            .order(payment_events::id)
            .select(payment_events::verdict)
            .load(&mut shop.conn().await)
            .await
            .unwrap();
        verdicts
            == [
                PaymentEventVerdict::Accepted,
                PaymentEventVerdict::Duplicate,
            ]
    })
    .await;
    assert_eq!(shop.expires(u).await, ends, "not extended twice");
    shop.assert_paid(u, &order, None).await;
    assert_eq!(shop.notifications(u).await, vec!["payment_succeeded"]);
    let paid = shop.order(order.id).await;
    assert_eq!(
        paid.external_id.as_deref(),
        Some(payment.telegram_payment_charge_id.as_str())
    );
}

async fn renewing_through_the_bot_adds_the_period_to_the_time_left(kind: Kind) {
    let shop = shop_on(kind, &[]).await;
    let u = 2004;
    let ends = Utc::now() + days(10);
    Subscriber {
        expires_at: Some(ends),
        ..Subscriber::new(u)
    }
    .insert(&mut shop.conn().await)
    .await;
    let ends = shop.expires(u).await;
    let plans = shop.bot.say(u, "/buy").await;
    assert!(
        plans
            .text
            .contains("Your current subscription is active until"),
        "{}",
        plans.text
    );
    let order = shop.buy_yookassa(u).await;
    shop.assert_paid(u, &order, Some(ends)).await;
    let sub = shop.subscription(u).await.unwrap();
    assert!(
        (days_from_now(sub.expires_at) - (10 + PLAN_DAYS) as f64).abs() < 0.01,
        "10 days left + 30, not now + 30: {}",
        sub.expires_at
    );
}

crate::on_every_panel!(
    buying_with_yookassa_through_the_bot_gives_the_link_and_the_panel_the_period
);
crate::on_every_panel!(renewing_through_the_bot_adds_the_period_to_the_time_left);

/// A renewal on the panel of `kind` adds the period and keeps the link; a change made on the
/// panel behind the shop's back (expiry shortened, user disabled) is undone by the subscription
/// sync, which then finds nothing more to write.
async fn a_renewal_keeps_the_link_and_the_sync_undoes_changes_made_on_the_panel(kind: Kind) {
    let shop = shop_on(kind, &[]).await;
    let panel = &shop.bot.panel;
    let u = 2010;
    let name = format!("vpnshop_{u}");
    let order = shop.buy_yookassa(u).await;
    shop.assert_paid(u, &order, None).await;
    let sub = shop.subscription(u).await.expect("a subscription");
    let link = sub.subscription_url.clone().expect("a link");
    assert_eq!(panel.stored(&name).unwrap().data_limit, None, "unlimited");
    if let AnyPanel::Remnawave(remnawave) = panel {
        let user = remnawave.user(&name).unwrap();
        assert_eq!(user.squads, [support::remnawave::SQUADS[0].0.to_owned()]);
        assert_eq!(user.telegram_id, Some(u));
    }

    // Renewal: the period is added to the time left; the link stays.
    let first_end = sub.expires_at;
    shop.bot.wait_text(u, PAID).await;
    shop.buy_yookassa(u).await;
    let renewed = loop {
        let sub = shop.panel_matches(u).await;
        if sub.expires_at > first_end {
            break sub;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(close(renewed.expires_at, first_end + days(PLAN_DAYS)));
    assert_eq!(renewed.subscription_url.as_deref(), Some(link.as_str()));
    assert!(panel.subscription_valid(&link));

    // Behind the shop's back: shortened and disabled on the panel; the sync puts it back.
    panel.edit(&name, |user| {
        user.expire = Some((Utc::now() + days(1)).timestamp());
        user.status = "disabled".into();
    });
    let counts = run_sync(&shop, SyncKind::Subscriptions).await;
    assert_eq!((counts.checked, counts.updated, counts.failed), (1, 1, 0));
    let fixed = panel.stored(&name).unwrap();
    assert_eq!(
        (fixed.status.as_str(), fixed.expire),
        ("active", Some(renewed.expires_at.timestamp()))
    );
    assert!(panel.reaches_nodes(&name));
    panel.clear_requests();
    let again = run_sync(&shop, SyncKind::Subscriptions).await;
    assert_eq!((again.checked, again.updated, again.failed), (1, 0, 0));
    assert_eq!(panel.writes(), 0, "nothing left to write");
}

crate::on_every_panel!(a_renewal_keeps_the_link_and_the_sync_undoes_changes_made_on_the_panel);

/// The referral row of `invitee`, if any: (inviter, rewarded payment).
async fn referral_of(shop: &Shop, invitee: UserId) -> Option<(UserId, Option<i64>)> {
    referrals::table
        .filter(referrals::invitee_id.eq(invitee))
        .select((referrals::inviter_id, referrals::rewarded_payment_id))
        .first(&mut shop.conn().await)
        .await
        .optional()
        .unwrap()
}

#[actix_rt::test]
async fn a_referral_gives_both_sides_their_days_exactly_once() {
    let shop = shop(&[]).await;
    let (a, b) = (2101, 2102);
    // A has a subscription (the trial), so the bonus visibly adds to it.
    shop.bot.say(a, "/start").await;
    shop.bot.say(a, "/trial").await;
    shop.bot.wait_text(a, LINK).await;
    let a_ends = shop.panel_matches(a).await.expires_at;
    let code = shop.user(a).await.referral_code;
    let text = shop.bot.say(a, "/referral").await;
    assert!(
        text.text.contains(&format!("start=ref_{code}")),
        "{}",
        text.text
    );

    // B comes through A's link.
    let welcome = shop.bot.say(b, &format!("/start ref_{code}")).await;
    assert!(
        welcome
            .text
            .contains("You joined through an invitation: 7 days are added for free."),
        "{}",
        welcome.text
    );
    let b_user = shop.user(b).await;
    let inviter = shop.user(a).await;
    assert_eq!(b_user.referred_by, Some(inviter.id));
    assert_eq!(
        referral_of(&shop, b_user.id).await,
        Some((inviter.id, None))
    );
    let b_sub = shop.panel_matches(b).await;
    assert!(
        (days_from_now(b_sub.expires_at) - 7.0).abs() < 0.01,
        "{}",
        b_sub.expires_at
    );
    let joined = shop.bot.wait_text(a, "joined through your link").await;
    assert!(joined.text.contains("User 2102"), "{}", joined.text);
    shop.bot
        .wait_text(b, "You joined through a friend's invitation")
        .await;
    assert_eq!(
        shop.notifications(a).await,
        vec!["trial_started", "referral_joined"]
    );

    // B's first payment: A gets 30 days, once.
    let b_before = shop.expires(b).await;
    let first = shop.buy_yookassa(b).await;
    shop.assert_paid(b, &first, Some(b_before)).await;
    shop.bot.wait_text(a, "Your friend paid").await;
    let a_after = shop.panel_matches(a).await.expires_at;
    assert!(
        close(a_after, a_ends + days(30)),
        "A: {a_ends} + 30 days, got {a_after}"
    );
    assert_eq!(
        referral_of(&shop, b_user.id).await,
        Some((inviter.id, Some(first.id.0)))
    );

    // B's second payment: nothing more for A.
    let b_before = shop.expires(b).await;
    let second = shop.buy_wata(b).await;
    wait_until("B's second payment", || async {
        shop.order(second.id).await.status == PaymentStatus::Succeeded
    })
    .await;
    wait_until("B's second payment message", || async {
        shop.count(b, PAID) == 2
    })
    .await;
    assert!(close(shop.expires(b).await, b_before + days(PLAN_DAYS)));
    assert_eq!(shop.expires(a).await, a_after, "no second bonus");
    assert_eq!(
        shop.notifications(a).await,
        vec!["trial_started", "referral_joined", "referral_bonus"]
    );
    assert_eq!(shop.count(a, "Your friend paid"), 1);
    assert_eq!(
        shop.notifications(b).await,
        vec!["referral_welcome", "payment_succeeded", "payment_succeeded"]
    );
    assert_eq!(shop.count(a, "joined through your link"), 1);
}

#[actix_rt::test]
async fn referral_links_give_nothing_to_existing_users_or_to_oneself() {
    let shop = shop(&[]).await;
    let (a, c) = (2201, 2202);
    shop.bot.say(a, "/start").await;
    let code = shop.user(a).await.referral_code;

    // C knew the bot before following A's link.
    shop.bot.say(c, "/start").await;
    let answer = shop.bot.say(c, &format!("/start ref_{code}")).await;
    assert!(
        answer
            .text
            .contains("Referral links only work for new users."),
        "{}",
        answer.text
    );
    assert!(!answer.text.contains("You joined through an invitation"));
    let c_user = shop.user(c).await;
    assert_eq!(c_user.referred_by, None);
    assert_eq!(referral_of(&shop, c_user.id).await, None);
    assert!(shop.subscription(c).await.is_none());

    // A follows their own link.
    let own = shop.bot.say(a, &format!("/start ref_{code}")).await;
    assert!(!own.text.contains("You joined through an invitation"));
    let a_user = shop.user(a).await;
    assert_eq!(a_user.referred_by, None);
    assert_eq!(referral_of(&shop, a_user.id).await, None);
    assert!(shop.subscription(a).await.is_none());

    // Nobody was told of a friend joining.
    assert!(shop.notifications(a).await.is_empty());
    assert!(shop.notifications(c).await.is_empty());
    assert_eq!(shop.count(a, "joined through your link"), 0);
}

#[actix_rt::test]
async fn names_with_html_characters_are_shown_as_typed() {
    let shop = shop(&[]).await;
    let u = 2301;
    diesel::update(plans::table.find(shop.plan))
        .set(plans::name.eq("Family & <Friends>"))
        .execute(&mut shop.conn().await)
        .await
        .unwrap();
    shop.bot.telegram.set_user(u, "Tom & Jerry", None);
    // The texts are Telegram HTML: escaped once, so the chat shows the names as typed.
    let welcome = shop.bot.say(u, "/start").await;
    assert!(
        welcome.text.contains("Hello, Tom &amp; Jerry!"),
        "{}",
        welcome.text
    );
    let plans = shop.bot.say(u, "/buy").await;
    assert!(
        plans.text.contains("<b>Family &amp; &lt;Friends&gt;</b>"),
        "{}",
        plans.text
    );
    let methods = shop
        .bot
        .press(u, plans.message_id, &format!("plan:{}", shop.plan.0))
        .await;
    // An edit is recorded as the chat shows it (the HTML parsed).
    assert_eq!(methods.method, "editMessageText");
    assert!(
        methods.text.starts_with("Family & <Friends>: 30 days"),
        "{}",
        methods.text
    );
    let order = shop.buy_yookassa(u).await;
    shop.assert_paid(u, &order, None).await;
    let status = shop.bot.say(u, "/status").await;
    assert!(
        status.text.contains("Plan: Family &amp; &lt;Friends&gt;"),
        "{}",
        status.text
    );
    let help = shop.bot.say(u, "/help").await;
    assert!(
        help.text.contains("Support: @shop_support"),
        "{}",
        help.text
    );
}

// -- Traffic limits ------------------------------------------------------------------------------

const GIB: i64 = 1 << 30;

/// A plan made by an admin through the API; its id.
async fn plan_through_the_api(shop: &Shop, name: &str, traffic_limit_bytes: Option<i64>) -> PlanId {
    let app = &shop.bot.app;
    let token = app.token_for(AdminRole::Admin).await;
    let (status, plan) = app
        .call(
            "POST",
            "/api/v1/plans",
            Some(&token),
            Some(json!({
                "name": name, "days": PLAN_DAYS, "price_minor": 19_900,
                "traffic_limit_bytes": traffic_limit_bytes,
            })),
        )
        .await;
    assert_eq!(status, 201, "{plan}");
    assert_eq!(plan["traffic_limit_bytes"], json!(traffic_limit_bytes));
    PlanId(plan["id"].as_i64().expect("a plan id"))
}

fn panel_user(shop: &Shop, telegram_id: i64) -> Stored {
    shop.bot
        .panel
        .stored(&format!("vpnshop_{telegram_id}"))
        .expect("a panel user")
}

async fn run_sync(shop: &Shop, kind: SyncKind) -> vpn_shop::db::sync::SyncCounts {
    shop.bot
        .app
        .app
        .marzban
        .as_ref()
        .expect("a panel")
        .addr()
        .send(RunSync { kind })
        .await
        .expect("the syncer answers")
        .expect("the sync succeeds")
        .expect("no other run of this kind is in progress")
}

async fn a_traffic_plan_limits_the_panel_user_warns_and_renews_with_a_fresh_allowance(kind: Kind) {
    let shop = shop_on(kind, &[]).await;
    let plan = plan_through_the_api(&shop, "10 GB", Some(10 * GIB)).await;
    let u = 2401;
    let offer = shop.bot.say(u, "/buy").await;
    assert!(
        offer.text.contains("<b>10 GB</b>: 30 days") && offer.text.contains("10 GB of traffic"),
        "{}",
        offer.text
    );
    shop.buy_yookassa_plan(u, plan).await;
    let sub = shop.panel_matches(u).await;
    assert_eq!(
        panel_user(&shop, u).data_limit,
        Some(10 * GIB),
        "the plan's limit reaches the panel"
    );
    assert_eq!(sub.traffic_limit_bytes, Some(10 * GIB));
    assert_eq!(shop.bot.panel.resets(), 0, "a new user starts at 0 anyway");

    // 90 % used: the traffic sync warns (80 %), once.
    shop.bot.panel.set_used(&format!("vpnshop_{u}"), 9 * GIB);
    run_sync(&shop, SyncKind::Traffic).await;
    run_sync(&shop, SyncKind::Traffic).await;
    assert_eq!(
        shop.notifications(u).await,
        vec!["payment_succeeded", "traffic_threshold"]
    );
    // The subscriber reads both before renewing (and the answer to the renewal's /buy is not
    // taken for a notice that is still on its way).
    shop.bot.wait_text(u, "Thank you!").await;
    shop.bot
        .wait_text(u, "You have used 80% of your traffic")
        .await;

    // The renewal buys a new period and a fresh allowance: the counter is reset, once.
    let before = shop.expires(u).await;
    shop.buy_yookassa_plan(u, plan).await;
    let renewed = shop.panel_matches(u).await;
    assert!(close(renewed.expires_at, before + days(PLAN_DAYS)));
    let panel = panel_user(&shop, u);
    assert_eq!(
        (panel.used, panel.data_limit, panel.status.as_str()),
        (0, Some(10 * GIB), "active"),
        "a renewal starts a fresh allowance"
    );
    assert_eq!(shop.bot.panel.resets(), 1);
    wait_until("the fresh counter in the database", || async {
        shop.subscription(u).await.unwrap().traffic_used_bytes == 0
    })
    .await;
    // A later provisioning (e.g. the subscription sync) does not reset again.
    run_sync(&shop, SyncKind::Subscriptions).await;
    assert_eq!(shop.bot.panel.resets(), 1);
}

crate::on_every_panel!(
    a_traffic_plan_limits_the_panel_user_warns_and_renews_with_a_fresh_allowance
);

async fn days_without_a_plan_keep_the_limit_and_another_plan_moves_it(kind: Kind) {
    let shop = shop_on(kind, &[]).await;
    let plan = plan_through_the_api(&shop, "10 GB", Some(10 * GIB)).await;
    let u = 2402;
    shop.buy_yookassa_plan(u, plan).await;
    shop.panel_matches(u).await;
    assert_eq!(panel_user(&shop, u).data_limit, Some(10 * GIB));
    // The subscriber reads the payment notice before buying again (so that the answer to the
    // next /buy is not taken for this notice, still on its way on a busy machine).
    shop.bot.wait_text(u, "Thank you!").await;
    shop.bot.panel.set_used(&format!("vpnshop_{u}"), 3 * GIB);

    // An admin grants a week: the limit and the counter stay.
    let token = shop.bot.app.token_for(AdminRole::Operator).await;
    let id = shop.user(u).await.id;
    let (status, body) = shop
        .bot
        .app
        .call(
            "POST",
            &format!("/api/v1/users/{id}/extend"),
            Some(&token),
            Some(json!({"days": 7, "reason": "outage compensation"})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let granted = shop.panel_matches(u).await;
    assert_eq!(granted.traffic_limit_bytes, Some(10 * GIB));
    let panel = panel_user(&shop, u);
    assert_eq!((panel.data_limit, panel.used), (Some(10 * GIB), 3 * GIB));

    // The unlimited plan: the limit goes.
    shop.buy_yookassa_plan(u, shop.plan).await;
    let moved = shop.panel_matches(u).await;
    assert_eq!(moved.traffic_limit_bytes, None);
    assert_eq!(
        panel_user(&shop, u).data_limit,
        None,
        "unlimited on the panel"
    );
    assert_eq!(shop.bot.panel.resets(), 0);
}

crate::on_every_panel!(days_without_a_plan_keep_the_limit_and_another_plan_moves_it);

#[actix_rt::test]
async fn trial_traffic_limit_limits_the_trial_on_the_panel() {
    let shop = shop(&[("TRIAL_TRAFFIC_LIMIT", "5GB")]).await;
    let u = 2403;
    shop.bot.say(u, "/start").await;
    shop.bot.say(u, "/trial").await;
    shop.bot.wait_text(u, LINK).await;
    let sub = shop.panel_matches(u).await;
    assert!(sub.is_trial);
    assert_eq!(panel_user(&shop, u).data_limit, Some(5 * GIB));
    assert_eq!(sub.traffic_limit_bytes, Some(5 * GIB));
}

// -- Refunds and bans ----------------------------------------------------------------------------

/// Waits until every `provision` job of `telegram_id` is done.
async fn provisioned(shop: &Shop, telegram_id: i64) {
    let user = shop.user(telegram_id).await;
    wait_until("the provision jobs", || async {
        let states: Vec<(Value, vpn_shop::domain::JobState)> = jobs::table
            .filter(jobs::kind.eq("provision"))
            .select((jobs::payload, jobs::state))
            .load(&mut shop.conn().await)
            .await
            .unwrap();
        states
            .iter()
            .filter(|(p, _)| p["user_id"] == json!(user.id))
            .all(|(_, s)| *s == vpn_shop::domain::JobState::Done)
    })
    .await;
}

#[actix_rt::test]
async fn a_refund_of_a_banned_user_keeps_the_panel_account_disabled() {
    let shop = shop(&[]).await;
    let u = 2501;
    let order = shop.buy_yookassa(u).await;
    shop.panel_matches(u).await;
    assert_eq!(panel_user(&shop, u).status, "active");
    let app = &shop.bot.app;
    let token = app.token_for(AdminRole::Admin).await;
    let id = shop.user(u).await.id;
    let (status, body) = app
        .call(
            "PATCH",
            &format!("/api/v1/users/{id}"),
            Some(&token),
            Some(json!({"banned": true})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    provisioned(&shop, u).await;
    assert_eq!(panel_user(&shop, u).status, "disabled");

    // Half the payment back: 15 days are taken back, the ban stays.
    let (status, body) = app
        .call(
            "POST",
            &format!("/api/v1/payments/{}/refund", order.id),
            Some(&token),
            Some(json!({"amount_minor": PLAN_PRICE / 2, "reason": "asked for it"})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["days_taken_back"], 15);
    let sub = shop.panel_matches(u).await;
    provisioned(&shop, u).await;
    assert_eq!(
        panel_user(&shop, u).status,
        "disabled",
        "the panel account stays disabled"
    );
    assert_eq!(
        sub.status,
        SubscriptionStatus::Disabled,
        "the refund keeps the ban"
    );
}

/// A payment that was under way when an admin banned the user buys time but no panel account (a
/// disabled subscription needs none), so no link will ever come: the notification of it ends
/// (skipped for the banned user) instead of waiting for a link until its attempts are spent and
/// it lies dead in the queue for an admin.
#[actix_rt::test]
async fn a_payment_of_a_banned_user_leaves_no_notification_waiting_for_a_link() {
    let shop = shop(&[]).await;
    let u = 2502;
    shop.choose(u, "💳 Card, SBP (YooKassa)").await;
    let order = shop.last_order(u).await;
    let app = &shop.bot.app;
    let token = app.token_for(AdminRole::Admin).await;
    let id = shop.user(u).await.id;
    let (status, body) = app
        .call(
            "PATCH",
            &format!("/api/v1/users/{id}"),
            Some(&token),
            Some(json!({"banned": true})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let external = order.external_id.clone().expect("a YooKassa payment id");
    shop.yookassa.succeed(&external);
    let status = shop
        .yookassa
        .send_notification(
            &shop.webhook_url("yookassa"),
            &external,
            "payment.succeeded",
        )
        .await;
    assert_eq!(status, 200);
    let sub = shop.subscription(u).await.expect("the payment bought time");
    assert_eq!(sub.status, SubscriptionStatus::Disabled, "the ban holds");
    assert!(sub.subscription_url.is_none());
    wait_until("the notifications to end", || async {
        let states: Vec<(Value, vpn_shop::domain::JobState)> = jobs::table
            .filter(jobs::kind.eq("notify"))
            .select((jobs::payload, jobs::state))
            .load(&mut shop.conn().await)
            .await
            .unwrap();
        let mine: Vec<_> = states
            .iter()
            .filter(|(p, _)| p["user_id"] == json!(id))
            .map(|(_, s)| *s)
            .collect();
        assert!(
            !mine.contains(&vpn_shop::domain::JobState::Dead),
            "a notification died: {mine:?}"
        );
        !mine.is_empty() && mine.iter().all(|s| *s == vpn_shop::domain::JobState::Done)
    })
    .await;
    assert_eq!(shop.count(u, PAID), 0, "nothing is sent to a banned user");
}
