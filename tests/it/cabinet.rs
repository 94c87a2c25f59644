//! The subscriber cabinet (`/app/`): email sign-in through the fake mail server (one-time,
//! 15-minute links, the same answer for every address, rate limits), the Telegram Mini App's
//! signed `initData` (good, forged, stale), and a subscriber's flow in a real headless Chromium
//! (sign up by email, take the trial, see the link, its QR code and the import buttons), with
//! screenshots at 360 and 1280 px under `target/screenshots/`.

use std::time::Duration;

use chrono::Utc;
use diesel::{ExpressionMethods as _, QueryDsl as _};
use diesel_async::RunQueryDsl;
use reqwest::header;
use vpn_shop::db::schema::{email_logins, plans, subscriptions, users};
use vpn_shop::domain::init_data;

use crate::console::{client, csrf_of, set_cookie};
use crate::support::app::{TestApp, spawn_app};
use crate::support::browser::Browser;
use crate::support::db::Subscriber;
use crate::support::payments::Providers;
use crate::support::smtp::FakeSmtp;
use crate::support::telegram::{FakeTelegram, TOKEN};
use crate::support::wait_until;

struct Env {
    app: TestApp,
    smtp: FakeSmtp,
    _telegram: FakeTelegram,
}

async fn spawn(extra: &[(&str, &str)]) -> Env {
    let smtp = FakeSmtp::start();
    let telegram = FakeTelegram::start();
    let (smtp_url, tg_url) = (smtp.url(), telegram.url());
    let mut settings = vec![
        ("SMTP_URL", smtp_url.as_str()),
        ("SMTP_FROM", "VPN Shop <noreply@shop.example>"),
        ("TELEGRAM_BOT_TOKEN", TOKEN),
        ("TELEGRAM_API_URL", tg_url.as_str()),
        ("TRIAL_DAYS", "3"),
        ("JOB_POLL_INTERVAL", "200ms"),
    ];
    settings.extend_from_slice(extra);
    Env {
        app: spawn_app(&settings).await,
        smtp,
        _telegram: telegram,
    }
}

/// The sign-in page's double-submit cookie and token.
async fn sign_in_form(app: &TestApp) -> (String, String) {
    let page = client().get(app.url("/app/signin")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let (cookie, _) = set_cookie(&page, "vpnshop_signin").expect("sign-in cookie");
    (cookie, csrf_of(&page.text().await.unwrap()))
}

/// Asks for a sign-in link for `email`: the status and the page.
async fn ask_link(app: &TestApp, email: &str) -> (u16, String) {
    let (cookie, csrf) = sign_in_form(app).await;
    let resp = client()
        .post(app.url("/app/signin"))
        .header(header::COOKIE, cookie)
        .form(&[("csrf", csrf.as_str()), ("email", email)])
        .send()
        .await
        .unwrap();
    (resp.status().as_u16(), resp.text().await.unwrap())
}

/// The token of the last sign-in link mailed to `email`.
async fn mailed_token(smtp: &FakeSmtp, email: &str) -> String {
    let mut token = None;
    wait_until("the sign-in mail", || {
        let found = smtp
            .messages()
            .into_iter()
            .rev()
            .find(|m| m.to.iter().any(|t| t == email))
            .and_then(|m| m.text);
        token = found.and_then(|text| {
            text.split("/app/signin/")
                .nth(1)
                .map(|rest| rest.chars().take_while(char::is_ascii_hexdigit).collect())
        });
        let done = token.is_some();
        async move { done }
    })
    .await;
    token.unwrap()
}

/// Uses a sign-in link's token: the answer (a 303 with the session cookie when it worked).
async fn use_link(app: &TestApp, token: &str) -> reqwest::Response {
    let (cookie, csrf) = sign_in_form(app).await;
    client()
        .post(app.url("/app/signin/link"))
        .header(header::COOKIE, cookie)
        .form(&[("csrf", csrf.as_str()), ("token", token)])
        .send()
        .await
        .unwrap()
}

#[actix_rt::test]
async fn an_unknown_address_signs_up_by_a_one_time_link() {
    let env = spawn(&[]).await;
    let (status, page) = ask_link(&env.app, "New.Person@Example.com").await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("id=\"mail-sent\""), "{page}");
    let token = mailed_token(&env.smtp, "new.person@example.com").await;
    let mail = env.smtp.messages().pop().unwrap();
    assert_eq!(mail.subject, "Your sign-in link");

    // Only the token's hash is stored.
    let conn = &mut env.app.db.connect().await;
    let stored: Vec<Vec<u8>> = email_logins::table
        .select(email_logins::token_hash)
        .load(conn)
        .await
        .unwrap();
    assert_eq!(stored.len(), 1);
    assert_ne!(stored[0], token.as_bytes());

    // Looking at the link's page does not use it up (a mail scanner may fetch it).
    let peek = client()
        .get(env.app.url(&format!("/app/signin/{token}")))
        .send()
        .await
        .unwrap();
    assert_eq!(peek.status(), 200);
    let resp = use_link(&env.app, &token).await;
    assert_eq!(resp.status(), 303);
    assert_eq!(resp.headers()[header::LOCATION], "/app/");
    let (session, attrs) = set_cookie(&resp, "vpnshop_app").expect("session cookie");
    assert!(
        attrs.contains("HttpOnly") && attrs.contains("SameSite=Lax"),
        "{attrs}"
    );
    let home = client()
        .get(env.app.url("/app/"))
        .header(header::COOKIE, &session)
        .send()
        .await
        .unwrap();
    assert_eq!(home.status(), 200);
    let csp = home.headers()[header::CONTENT_SECURITY_POLICY]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        csp.contains("frame-ancestors https://web.telegram.org") && !csp.contains("unsafe"),
        "{csp}"
    );
    assert!(home.headers().get(header::X_FRAME_OPTIONS).is_none());
    let html = home.text().await.unwrap();
    assert!(html.contains("new.person@example.com"), "{html}");
    assert!(html.contains("id=\"start-trial\""), "the trial is offered");

    // A web-only user: no Telegram id, the address as given (lower-cased).
    let (telegram_id, email): (Option<i64>, Option<String>) = users::table
        .select((users::telegram_id, users::email))
        .first(conn)
        .await
        .unwrap();
    assert_eq!(telegram_id, None);
    assert_eq!(email.as_deref(), Some("new.person@example.com"));

    // The same link again: refused, no session.
    let again = use_link(&env.app, &token).await;
    assert_eq!(again.status(), 410);
    assert!(set_cookie(&again, "vpnshop_app").is_none());
    assert!(again.text().await.unwrap().contains("id=\"link-gone\""));

    // Signing in again with a new link reaches the same account.
    ask_link(&env.app, "new.person@example.com").await;
    env.smtp.clear();
    ask_link(&env.app, "NEW.PERSON@example.com").await;
    let token = mailed_token(&env.smtp, "new.person@example.com").await;
    assert_eq!(use_link(&env.app, &token).await.status(), 303);
    let count: i64 = users::table.count().get_result(conn).await.unwrap();
    assert_eq!(count, 1);

    // Sign out ends the session.
    let home = client()
        .get(env.app.url("/app/"))
        .header(header::COOKIE, &session)
        .send()
        .await
        .unwrap();
    let csrf = csrf_of(&home.text().await.unwrap());
    let out = client()
        .post(env.app.url("/app/signout"))
        .header(header::COOKIE, &session)
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), 303);
    let after = client()
        .get(env.app.url("/app/"))
        .header(header::COOKIE, &session)
        .send()
        .await
        .unwrap();
    assert_eq!(after.status(), 303);
    assert_eq!(after.headers()[header::LOCATION], "/app/signin");
}

#[actix_rt::test]
async fn an_expired_link_is_refused() {
    let env = spawn(&[]).await;
    ask_link(&env.app, "late@example.com").await;
    let token = mailed_token(&env.smtp, "late@example.com").await;
    let conn = &mut env.app.db.connect().await;
    diesel::update(email_logins::table)
        .set(email_logins::expires_at.eq(Utc::now() - chrono::Duration::seconds(1)))
        .execute(conn)
        .await
        .unwrap();
    let resp = use_link(&env.app, &token).await;
    assert_eq!(resp.status(), 410);
    assert!(set_cookie(&resp, "vpnshop_app").is_none());
    let count: i64 = users::table.count().get_result(conn).await.unwrap();
    assert_eq!(count, 0, "no account for an expired link");
    // A made-up token likewise.
    let made_up = use_link(&env.app, &"ab".repeat(32)).await;
    assert_eq!(made_up.status(), 410);
}

#[actix_rt::test]
async fn known_and_unknown_addresses_get_the_same_answer() {
    let env = spawn(&[]).await;
    let conn = &mut env.app.db.connect().await;
    Subscriber {
        email: Some("known@example.com"),
        ..Subscriber::new(4242)
    }
    .insert(conn)
    .await;
    ask_link(&env.app, "web@example.com").await;
    let token = mailed_token(&env.smtp, "web@example.com").await;
    use_link(&env.app, &token).await;

    let (known_status, known) = ask_link(&env.app, "web@example.com").await;
    let (unknown_status, unknown) = ask_link(&env.app, "nobody@example.com").await;
    assert_eq!((known_status, unknown_status), (200, 200));
    assert_eq!(
        known.replace("web@example.com", "X"),
        unknown.replace("nobody@example.com", "X"),
        "the page says nothing about the address"
    );
    mailed_token(&env.smtp, "nobody@example.com").await;
}

#[actix_rt::test]
async fn sign_in_links_are_rate_limited_per_address_and_per_client() {
    let env = spawn(&[]).await;
    for _ in 0..3 {
        assert_eq!(ask_link(&env.app, "busy@example.com").await.0, 200);
    }
    let (status, page) = ask_link(&env.app, "Busy@Example.com").await;
    assert_eq!(status, 429, "{page}");
    assert!(page.contains("Too many sign-in links"), "{page}");
    // Other addresses from this client still get theirs, up to the client's own budget.
    let mut refused_at = None;
    for i in 0..30 {
        let (status, _) = ask_link(&env.app, &format!("user{i}@example.com")).await;
        if status == 429 {
            refused_at = Some(i);
            break;
        }
    }
    // 16 requests from one client at once (the 4 above, the refused one included, and 12
    // more), then one per 20 s.
    assert_eq!(refused_at, Some(12));
    // Mails went to the addresses that were not refused, and no more.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mails = env.smtp.messages();
    assert!(mails.iter().all(|m| m.to != ["user12@example.com"]));
    assert_eq!(
        mails
            .iter()
            .filter(|m| m.to == ["busy@example.com"])
            .count(),
        3
    );
}

/// A Mini App sign-in with `init_data`: the answer.
async fn mini_app_sign_in(app: &TestApp, init_data: &str) -> reqwest::Response {
    let (cookie, csrf) = sign_in_form(app).await;
    client()
        .post(app.url("/app/signin/telegram"))
        .header(header::COOKIE, cookie)
        .form(&[("csrf", csrf), ("init_data", init_data.to_owned())])
        .send()
        .await
        .unwrap()
}

fn init_data_of(telegram_id: i64, auth_date: i64, token: &str) -> String {
    let user = format!(r#"{{"id":{telegram_id},"first_name":"Mila","language_code":"ru"}}"#);
    init_data::sign(
        &[
            ("query_id", "AAHdF6IQAAAAAN0XohDhrOrc"),
            ("user", &user),
            ("auth_date", &auth_date.to_string()),
        ],
        token,
    )
}

#[actix_rt::test]
async fn a_mini_app_signs_in_with_signed_init_data_and_forged_or_stale_is_refused() {
    let env = spawn(&[("WEBAPP_AUTH_MAX_AGE", "10m")]).await;
    let now = Utc::now().timestamp();

    let forged = mini_app_sign_in(&env.app, &init_data_of(777, now, "999:SomeOtherBotToken")).await;
    assert_eq!(forged.status(), 403);
    assert!(set_cookie(&forged, "vpnshop_app").is_none());
    let stale = mini_app_sign_in(&env.app, &init_data_of(777, now - 11 * 60, TOKEN)).await;
    assert_eq!(stale.status(), 403);
    assert!(set_cookie(&stale, "vpnshop_app").is_none());
    let conn = &mut env.app.db.connect().await;
    let count: i64 = users::table.count().get_result(conn).await.unwrap();
    assert_eq!(count, 0, "no user from refused data");

    // A login-CSRF: the right data without the page's token is refused too.
    let no_token = client()
        .post(env.app.url("/app/signin/telegram"))
        .form(&[("init_data", init_data_of(777, now, TOKEN))])
        .send()
        .await
        .unwrap();
    assert_eq!(no_token.status(), 403);

    let good = mini_app_sign_in(&env.app, &init_data_of(777, now - 60, TOKEN)).await;
    assert_eq!(good.status(), 303);
    let (session, _) = set_cookie(&good, "vpnshop_app").expect("session cookie");
    let (telegram_id, first_name, language): (Option<i64>, Option<String>, String) = users::table
        .select((users::telegram_id, users::first_name, users::language))
        .first(conn)
        .await
        .unwrap();
    assert_eq!(telegram_id, Some(777));
    assert_eq!(first_name.as_deref(), Some("Mila"));
    assert_eq!(language, "ru");
    let home = client()
        .get(env.app.url("/app/"))
        .header(header::COOKIE, session)
        .send()
        .await
        .unwrap();
    assert_eq!(home.status(), 200);
    assert!(home.text().await.unwrap().contains("Здравствуйте, Mila"));
}

#[actix_rt::test]
async fn a_subscriber_signs_up_by_email_takes_the_trial_and_sees_how_to_connect() {
    let Some(browser) = Browser::start().await else {
        return;
    };
    let env = spawn(&[]).await;
    browser.goto(&env.app.url("/app/")).await;
    assert!(browser.current_url().await.ends_with("/app/signin"));
    browser.screenshots("cabinet-signin").await;
    browser.fill("#email", "olga@example.com").await;
    browser.click("form[action='/app/signin'] button").await;
    assert!(browser.source().await.contains("id=\"mail-sent\""));
    browser.screenshots("cabinet-mail-sent").await;

    // The link from the mail, opened in the browser.
    let token = mailed_token(&env.smtp, "olga@example.com").await;
    browser
        .goto(&env.app.url(&format!("/app/signin/{token}")))
        .await;
    browser.click("#use-link").await;
    assert!(browser.current_url().await.ends_with("/app/"));
    assert!(browser.source().await.contains("id=\"no-subscription\""));
    let cookie = browser.cookie("vpnshop_app").await.expect("session cookie");
    assert_eq!(cookie["httpOnly"], true);

    // The trial, through the bot's code: a subscription with the web-only panel name.
    browser.click("#start-trial").await;
    assert!(browser.current_url().await.ends_with("/app/?done=trial"));
    assert!(browser.source().await.contains("id=\"link-pending\""));
    let conn = &mut env.app.db.connect().await;
    let (user_id, name, trial): (i64, String, bool) = subscriptions::table
        .select((
            subscriptions::user_id,
            subscriptions::panel_username,
            subscriptions::is_trial,
        ))
        .first(conn)
        .await
        .unwrap();
    assert!(trial);
    assert!(name.starts_with("vpnshop_w"), "{name}");
    assert!(!browser.source().await.contains("id=\"start-trial\""));

    // The panel issued the link: copy field, QR code and one-tap import buttons.
    let link = "https://panel.example.com/sub/dXNlcl8xMjM0NTY3ODk";
    diesel::update(subscriptions::table.filter(subscriptions::user_id.eq(user_id)))
        .set((
            subscriptions::subscription_url.eq(link),
            subscriptions::traffic_used_bytes.eq(3 * 1024 * 1024 * 1024_i64),
        ))
        .execute(conn)
        .await
        .unwrap();
    browser.goto(&env.app.url("/app/")).await;
    assert_eq!(
        browser.attribute("#sub-link", "value").await.as_deref(),
        Some(link)
    );
    let v2rayng = browser
        .attribute("#import-android a[data-app='v2rayNG']", "href")
        .await
        .unwrap();
    assert!(
        v2rayng.starts_with(
            "v2rayng://install-config?url=https%3A%2F%2Fpanel.example.com%2Fsub%2FdXNlcl8xMjM0NTY3ODk#"
        ),
        "{v2rayng}"
    );
    let streisand = browser
        .attribute("#import-ios a[data-app='Streisand']", "href")
        .await
        .unwrap();
    assert!(
        streisand.starts_with(&format!("streisand://import/{link}#")),
        "{streisand}"
    );
    let happ = browser
        .attribute("#import-desktop a[data-app='Happ']", "href")
        .await
        .unwrap();
    assert_eq!(happ, format!("happ://add/{link}"));
    let qr = browser.attribute("#sub-qr", "src").await.unwrap();
    assert!(qr.starts_with("data:image/svg+xml;base64,"), "{qr}");
    assert!(browser.text("#sub-state").await.contains("active"));
    for width in [360, 1280] {
        browser.set_width(width).await;
        assert!(
            !browser.overflows_horizontally().await,
            "no horizontal scrolling at {width} px"
        );
    }
    browser.screenshots("cabinet-home").await;

    // Signing out returns to the sign-in page.
    browser.click("#signout").await;
    assert!(browser.current_url().await.ends_with("/app/signin"));
    browser.quit().await;
}

/// A web-only subscriber signed in by email: the session cookie.
async fn web_session(env: &Env, email: &str) -> String {
    ask_link(&env.app, email).await;
    let token = mailed_token(&env.smtp, email).await;
    let resp = use_link(&env.app, &token).await;
    set_cookie(&resp, "vpnshop_app").expect("session cookie").0
}

#[actix_rt::test]
async fn a_web_only_subscriber_buys_with_yookassa_and_comes_back_to_the_new_end() {
    let providers = Providers::start();
    let env = spawn(&providers.env()).await;
    let conn = &mut env.app.db.connect().await;
    let plan: i64 = diesel::insert_into(plans::table)
        .values((
            plans::name.eq("30 days"),
            plans::days.eq(30),
            plans::price_minor.eq(19_900_i64),
        ))
        .returning(plans::id)
        .get_result(conn)
        .await
        .unwrap();
    let session = web_session(&env, "buyer@example.com").await;
    let page = client()
        .get(env.app.url("/app/buy"))
        .header(header::COOKIE, &session)
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains("value=\"yookassa\"") && html.contains("value=\"wata\""));
    assert!(!html.contains("value=\"stars\""), "no Stars on the web");
    let csrf = csrf_of(&html);

    // An unknown promo code: the form again, saying why.
    let refused = client()
        .post(env.app.url("/app/buy"))
        .header(header::COOKIE, &session)
        .form(&[
            ("csrf", csrf.as_str()),
            ("plan", &plan.to_string()),
            ("provider", "yookassa"),
            ("promo", "NOSUCHCODE"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 422);
    assert!(
        refused
            .text()
            .await
            .unwrap()
            .contains("there is no such code")
    );

    let resp = client()
        .post(env.app.url("/app/buy"))
        .header(header::COOKIE, &session)
        .form(&[
            ("csrf", csrf.as_str()),
            ("plan", &plan.to_string()),
            ("provider", "yookassa"),
            ("promo", ""),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 303);
    let order_page = resp.headers()[header::LOCATION]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(order_page.starts_with("/app/payments/"), "{order_page}");

    // YooKassa was asked to bring the payer back to that page.
    let payment = providers
        .yookassa
        .payments()
        .pop()
        .expect("a YooKassa payment");
    let return_url = payment["confirmation"]["return_url"].as_str().unwrap();
    assert!(return_url.ends_with(&order_page), "{return_url}");
    let confirmation = payment["confirmation"]["confirmation_url"]
        .as_str()
        .unwrap()
        .to_owned();
    let html = client()
        .get(env.app.url(&order_page))
        .header(header::COOKIE, &session)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        html.contains(&format!("href=\"{}\"", confirmation.replace('&', "&amp;"))),
        "the pay button leads to YooKassa: {html}"
    );

    // The payer pays; YooKassa tells the shop; the page shows the new end.
    let id = payment["id"].as_str().unwrap();
    providers.yookassa.succeed(id);
    let status = providers
        .yookassa
        .send_notification(&env.app.url("/webhooks/yookassa"), id, "payment.succeeded")
        .await;
    assert_eq!(status, 200);
    let html = client()
        .get(env.app.url(&order_page))
        .header(header::COOKIE, &session)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(html.contains("id=\"new-end\""), "{html}");
    let end: chrono::DateTime<Utc> = subscriptions::table
        .select(subscriptions::expires_at)
        .first(conn)
        .await
        .unwrap();
    assert!(end > Utc::now() + chrono::Duration::days(29));

    // Another subscriber's order is not found.
    let other = web_session(&env, "other@example.com").await;
    let foreign = client()
        .get(env.app.url(&order_page))
        .header(header::COOKIE, &other)
        .send()
        .await
        .unwrap();
    assert_eq!(foreign.status(), 404);
}
