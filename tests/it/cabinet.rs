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
use crate::support::marzban::FakePanel;
use crate::support::panels::PanelFake as _;
use crate::support::payments::Providers;
use crate::support::smtp::FakeSmtp;
use crate::support::telegram::{FakeTelegram, TOKEN};
use crate::support::wait_until;

struct Env {
    app: TestApp,
    smtp: FakeSmtp,
    telegram: FakeTelegram,
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
        telegram,
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
    use_link_with(app, token, None).await
}

/// Uses a mailed link's token in a browser that has `session` (or none).
async fn use_link_with(app: &TestApp, token: &str, session: Option<&str>) -> reqwest::Response {
    let (cookie, csrf) = sign_in_form(app).await;
    let cookies = match session {
        Some(session) => format!("{cookie}; {session}"),
        None => cookie,
    };
    client()
        .post(app.url("/app/signin/link"))
        .header(header::COOKIE, cookies)
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
    // Connect instructions per platform, folded under each platform's buttons.
    assert_eq!(browser.find_all("#import-ios .howto li").await.len(), 3);
    assert!(
        browser
            .source()
            .await
            .contains("Install Hiddify, v2rayNG, v2RayTun or Happ from Google Play.")
    );
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

    // Linking Telegram: the code from the page, sent to the bot.
    browser.set_width(360).await;
    browser.click("#link-telegram").await;
    let code = browser.text("#link-code").await;
    let open_bot = browser.attribute("#open-bot", "href").await.unwrap();
    assert!(
        open_bot.ends_with(&format!("?start=link_{code}")),
        "{open_bot}"
    );
    browser.screenshots("cabinet-telegram-link").await;
    let done = tell_bot(&env, 8801, &format!("/link {code}")).await;
    assert!(done.contains("now linked"), "{done}");
    browser.goto(&env.app.url("/app/")).await;
    assert_eq!(browser.text("#telegram-state").await, "linked");

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

/// `GET path` with a session cookie: the status and the page.
async fn get_page(app: &TestApp, session: &str, path: &str) -> (u16, String) {
    let resp = client()
        .get(app.url(path))
        .header(header::COOKIE, session)
        .send()
        .await
        .unwrap();
    (resp.status().as_u16(), resp.text().await.unwrap())
}

/// Posts a form of the cabinet (its CSRF token taken from the home page) with `fields`.
async fn post_form(
    app: &TestApp,
    session: &str,
    path: &str,
    fields: &[(&str, &str)],
) -> reqwest::Response {
    let (_, home) = get_page(app, session, "/app/").await;
    let csrf = csrf_of(&home);
    let mut form = vec![("csrf", csrf.as_str())];
    form.extend_from_slice(fields);
    client()
        .post(app.url(path))
        .header(header::COOKIE, session)
        .form(&form)
        .send()
        .await
        .unwrap()
}

/// What the element with `id` holds (its text up to the next tag).
fn text_of(html: &str, id: &str) -> String {
    let start = html
        .find(&format!("id=\"{id}\""))
        .unwrap_or_else(|| panic!("no #{id} in {html}"));
    let rest = &html[start..];
    let open = rest.find('>').unwrap() + 1;
    let close = rest[open..].find('<').unwrap() + open;
    rest[open..close].trim().to_owned()
}

/// Sends `text` to the bot as Telegram user `from` and waits for the bot's answer.
async fn tell_bot(env: &Env, from: i64, text: &str) -> String {
    let seen = env.telegram.messages_to(from).len();
    env.telegram.push_message(from, text);
    let messages = env
        .telegram
        .wait_for_messages(from, seen + 1, Duration::from_secs(15))
        .await;
    messages
        .get(seen)
        .unwrap_or_else(|| panic!("the bot did not answer {text:?}: {messages:#?}"))
        .text
        .clone()
}

/// The code the cabinet shows for linking Telegram.
async fn link_code(env: &Env, session: &str) -> String {
    let resp = post_form(&env.app, session, "/app/telegram", &[]).await;
    assert_eq!(resp.status(), 200);
    let html = resp.text().await.unwrap();
    let code = text_of(&html, "link-code");
    assert!(
        html.contains(&format!(
            "https://t.me/{}?start=link_{code}",
            crate::support::telegram::BOT_USERNAME
        )),
        "the button opens the bot with the code: {html}"
    );
    code
}

#[actix_rt::test]
async fn a_web_only_subscriber_links_telegram_with_the_cabinets_code() {
    let env = spawn(&[]).await;
    let session = web_session(&env, "linker@example.com").await;
    let trial = post_form(&env.app, &session, "/app/trial", &[]).await;
    assert_eq!(trial.status(), 303);
    let (_, home) = get_page(&env.app, &session, "/app/").await;
    assert_eq!(text_of(&home, "telegram-state"), "not linked");
    let code = link_code(&env, &session).await;
    assert_eq!(code.len(), 8, "{code}");

    // The Telegram user wrote to the bot before: their (empty) shop account goes away.
    assert!(tell_bot(&env, 5501, "/start").await.contains("Hello"));
    let conn = &mut env.app.db.connect().await;
    assert_eq!(
        users::table.count().get_result::<i64>(conn).await.unwrap(),
        2
    );
    assert!(
        tell_bot(&env, 5501, "/link WRONG123")
            .await
            .contains("This code does not work")
    );
    // Typed in lower case with a dash, as people do.
    let typed = format!("/link {}-{}", &code[..4], &code[4..]).to_lowercase();
    let done = tell_bot(&env, 5501, &typed).await;
    assert!(
        done.contains("now linked") && done.contains("linker@example.com"),
        "{done}"
    );
    let linked: Vec<(Option<i64>, Option<String>)> = users::table
        .select((users::telegram_id, users::email))
        .load(conn)
        .await
        .unwrap();
    assert_eq!(
        linked,
        vec![(Some(5501), Some("linker@example.com".to_owned()))],
        "one account: the web one, with Telegram"
    );
    let (_, home) = get_page(&env.app, &session, "/app/").await;
    assert_eq!(text_of(&home, "telegram-state"), "linked");
    assert!(!home.contains("id=\"link-telegram\""));

    // The bot now sees the web account's trial.
    let status = tell_bot(&env, 5501, "/status").await;
    assert!(
        status.contains("Trial") || status.contains("trial"),
        "{status}"
    );
    // The code worked once.
    assert!(
        tell_bot(&env, 5502, &format!("/link {code}"))
            .await
            .contains("This code does not work")
    );
    // Email sign-in still opens the same account.
    env.smtp.clear();
    let again = web_session(&env, "linker@example.com").await;
    let (_, home) = get_page(&env.app, &again, "/app/").await;
    assert_eq!(text_of(&home, "telegram-state"), "linked");
    let accounts: i64 = users::table
        .filter(users::email.eq("linker@example.com"))
        .count()
        .get_result(conn)
        .await
        .unwrap();
    assert_eq!(accounts, 1);
}

#[actix_rt::test]
async fn a_telegram_account_with_its_own_subscription_is_not_merged() {
    let env = spawn(&[]).await;
    let conn = &mut env.app.db.connect().await;
    Subscriber {
        expires_at: Some(Utc::now() + chrono::Duration::days(10)),
        ..Subscriber::new(6601)
    }
    .insert(conn)
    .await;
    let session = web_session(&env, "second@example.com").await;
    let code = link_code(&env, &session).await;
    let refused = tell_bot(&env, 6601, &format!("/link {code}")).await;
    assert!(refused.contains("already has its own"), "{refused}");
    let telegram_of_web: Option<i64> = users::table
        .filter(users::email.eq("second@example.com"))
        .select(users::telegram_id)
        .first(conn)
        .await
        .unwrap();
    assert_eq!(telegram_of_web, None, "nothing changed");
    // The refusal did not use the code up: another Telegram account links with it, from the
    // cabinet's deep link.
    let done = tell_bot(&env, 6602, &format!("/start link_{code}")).await;
    assert!(done.contains("now linked"), "{done}");
    // A web account that has Telegram shows no code.
    let resp = post_form(&env.app, &session, "/app/telegram", &[]).await;
    assert_eq!(resp.status(), 303);
}

#[actix_rt::test]
async fn the_cabinet_switches_the_language_and_turns_auto_renewal_off() {
    let env = spawn(&[]).await;
    let session = web_session(&env, "settings@example.com").await;
    let conn = &mut env.app.db.connect().await;
    let switched = post_form(
        &env.app,
        &session,
        "/app/settings/language",
        &[("language", "ru")],
    )
    .await;
    assert_eq!(switched.status(), 303);
    let (_, home) = get_page(&env.app, &session, "/app/").await;
    assert!(home.contains("Здравствуйте"), "{home}");
    let bad = post_form(
        &env.app,
        &session,
        "/app/settings/language",
        &[("language", "de")],
    )
    .await;
    assert_eq!(bad.status(), 422);

    // A subscription that renews itself with a saved card.
    post_form(&env.app, &session, "/app/trial", &[]).await;
    diesel::update(subscriptions::table)
        .set((
            subscriptions::auto_renew.eq(true),
            subscriptions::auto_renew_provider.eq("yookassa"),
            subscriptions::auto_renew_method_id.eq("pm-1"),
        ))
        .execute(conn)
        .await
        .unwrap();
    let (_, home) = get_page(&env.app, &session, "/app/").await;
    assert_eq!(text_of(&home, "auto-renew-state"), "включено");
    let off = post_form(&env.app, &session, "/app/settings/auto-renew-off", &[]).await;
    assert_eq!(off.status(), 303);
    let (auto, method): (bool, Option<String>) = subscriptions::table
        .select((
            subscriptions::auto_renew,
            subscriptions::auto_renew_method_id,
        ))
        .first(conn)
        .await
        .unwrap();
    assert_eq!((auto, method), (false, None));
    let (_, home) = get_page(&env.app, &session, "/app/?done=auto-renew-off").await;
    assert_eq!(text_of(&home, "auto-renew-state"), "выключено");
    assert!(!home.contains("id=\"auto-renew-off\""));
    // Without the form's token: refused.
    let forged = client()
        .post(env.app.url("/app/settings/language"))
        .header(header::COOKIE, &session)
        .form(&[("language", "en")])
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 403);
}

#[actix_rt::test]
async fn with_webapp_enabled_the_bot_opens_the_cabinet_as_a_mini_app() {
    let env = spawn(&[
        ("WEBAPP_ENABLED", "true"),
        ("PUBLIC_BASE_URL", "https://shop.example.com"),
    ])
    .await;
    let calls = env
        .telegram
        .wait_for_calls("setChatMenuButton", 1, Duration::from_secs(15))
        .await;
    let button: serde_json::Value = match &calls[0].params["menu_button"] {
        serde_json::Value::String(s) => serde_json::from_str(s).unwrap(),
        other => other.clone(),
    };
    assert_eq!(button["type"], "web_app");
    assert_eq!(button["web_app"]["url"], "https://shop.example.com/app/");
    env.telegram.push_message(7701, "/start");
    let start = env
        .telegram
        .wait_for_messages(7701, 1, Duration::from_secs(15))
        .await
        .remove(0);
    assert!(
        crate::support::bot::buttons(&start).contains(&(
            "📱 Cabinet".to_owned(),
            "https://shop.example.com/app/".to_owned()
        )),
        "{:?}",
        start.reply_markup
    );
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
            ("auto_renew", "on"),
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
    let asked = providers
        .yookassa
        .requests()
        .into_iter()
        .rfind(|r| r.route == "/v3/payments" && r.method == "POST")
        .and_then(|r| r.body)
        .expect("the payment's creation");
    assert_eq!(
        asked["save_payment_method"], true,
        "the card is kept for automatic renewal: {asked}"
    );
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

#[actix_rt::test]
async fn in_a_browser_a_subscriber_pays_on_the_providers_page_and_the_panel_has_the_new_end() {
    let Some(browser) = Browser::start().await else {
        return;
    };
    let providers = Providers::start();
    providers.yookassa.serve_checkout_page();
    let panel = FakePanel::start();
    // The provider sends the browser back to PUBLIC_BASE_URL: the shop listens there.
    let port = crate::cli::free_port();
    let (bind, base) = (
        format!("127.0.0.1:{port}"),
        format!("http://127.0.0.1:{port}"),
    );
    let panel_env = panel.env(false);
    let mut extra = providers.env();
    extra.extend(panel_env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    extra.extend([
        ("HTTP_BIND", bind.as_str()),
        ("PUBLIC_BASE_URL", base.as_str()),
    ]);
    let env = spawn(&extra).await;
    let conn = &mut env.app.db.connect().await;
    diesel::insert_into(plans::table)
        .values((
            plans::name.eq("30 days"),
            plans::days.eq(30),
            plans::price_minor.eq(19_900_i64),
        ))
        .execute(conn)
        .await
        .unwrap();

    browser.goto(&env.app.url("/app/signin")).await;
    browser.fill("#email", "payer@example.com").await;
    browser.click("form[action='/app/signin'] button").await;
    let token = mailed_token(&env.smtp, "payer@example.com").await;
    browser
        .goto(&env.app.url(&format!("/app/signin/{token}")))
        .await;
    browser.click("#use-link").await;
    browser.click("#buy-link").await;
    assert!(browser.current_url().await.ends_with("/app/buy"));
    browser.screenshots("cabinet-buy").await;
    browser.click("#checkout").await;
    let order_page = browser.current_url().await;
    assert!(order_page.contains("/app/payments/"), "{order_page}");
    browser.screenshots("cabinet-order").await;

    // The provider's page, and back.
    browser.click("#pay").await;
    assert!(
        browser.current_url().await.contains("/checkout/"),
        "on YooKassa's page"
    );
    assert_eq!(browser.text("#amount").await, "199.00 RUB");
    browser.click("#pay").await;
    assert_eq!(browser.current_url().await, order_page, "back at the order");
    // YooKassa tells the shop, as it does after a payment.
    let id = providers.yookassa.payments()[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let status = providers
        .yookassa
        .send_notification(&env.app.url("/webhooks/yookassa"), &id, "payment.succeeded")
        .await;
    assert_eq!(status, 200);
    browser.goto(&order_page).await;
    assert!(browser.source().await.contains("id=\"new-end\""));
    browser.screenshots("cabinet-paid").await;

    // The panel has the new end.
    let (name, end): (String, chrono::DateTime<Utc>) = subscriptions::table
        .select((subscriptions::panel_username, subscriptions::expires_at))
        .first(conn)
        .await
        .unwrap();
    assert!(end > Utc::now() + chrono::Duration::days(29));
    wait_until("the panel account", || {
        let expire = panel.user(&name).and_then(|u| u.expire);
        async move { expire == Some(end.timestamp()) }
    })
    .await;
    browser.quit().await;
}

#[actix_rt::test]
async fn inside_telegram_stars_are_paid_through_an_invoice_link_the_mini_app_opens() {
    let Some(browser) = Browser::start().await else {
        return;
    };
    let env = spawn(&[("STARS_ENABLED", "true")]).await;
    let conn = &mut env.app.db.connect().await;
    diesel::insert_into(plans::table)
        .values((
            plans::name.eq("30 days"),
            plans::days.eq(30),
            plans::price_minor.eq(19_900_i64),
            plans::price_stars.eq(150_i64),
        ))
        .execute(conn)
        .await
        .unwrap();

    // Telegram opens the Mini App with the signed initData and its theme in the fragment.
    let init = init_data_of(7301, Utc::now().timestamp(), TOKEN);
    let fragment = reqwest::Url::parse_with_params(
        "http://x/",
        &[
            ("tgWebAppData", init.as_str()),
            (
                "tgWebAppThemeParams",
                r##"{"bg_color":"#ffffff","button_color":"#2481cc"}"##,
            ),
        ],
    )
    .unwrap()
    .query()
    .unwrap()
    .to_owned();
    browser
        .goto(&env.app.url(&format!("/app/signin#{fragment}")))
        .await;
    wait_until("the Mini App's sign-in", || {
        let browser = &browser;
        async move { browser.current_url().await.ends_with("/app/") }
    })
    .await;
    browser.goto(&env.app.url("/app/buy")).await;
    assert_eq!(
        browser
            .evaluate("getComputedStyle(document.getElementById('stars-choice')).display")
            .await,
        "flex",
        "Stars are offered inside Telegram"
    );
    browser.click_here("#stars-choice input").await;
    browser.click("#checkout").await;
    let order_page = browser.current_url().await;
    assert!(order_page.contains("/app/payments/"), "{order_page}");

    // The order's invoice link, as Telegram made it.
    let links = env.telegram.invoice_links();
    assert_eq!(links.len(), 1, "one invoice link");
    let payload = links[0].params["payload"].as_str().unwrap().to_owned();
    assert_eq!(
        browser.attribute("#pay", "data-invoice").await.as_deref(),
        Some(links[0].url.as_str())
    );
    let slug = links[0].url.trim_start_matches("https://t.me/$").to_owned();

    // The test plays the Telegram client around the page: the Pay button asks it to open the
    // invoice in its payment sheet rather than leaving the page.
    browser
        .evaluate(
            "window.sent = []; window.TelegramWebviewProxy = { postEvent: function (t, d) { \
             window.sent.push([t, JSON.parse(d)]); } }; true",
        )
        .await;
    browser.click_here("#pay").await;
    assert_eq!(browser.current_url().await, order_page);
    assert_eq!(
        browser.evaluate("JSON.stringify(window.sent)").await,
        format!(r#"[["web_app_open_invoice",{{"slug":"{slug}"}}]]"#)
    );

    // The payer pays in the sheet: the bot gets the pre-checkout query and the payment.
    env.telegram.push_pre_checkout(7301, "XTR", 150, &payload);
    wait_until("the pre-checkout answer", || {
        let answered = !env.telegram.pre_checkout_answers().is_empty();
        async move { answered }
    })
    .await;
    assert!(env.telegram.pre_checkout_answers()[0].ok);
    env.telegram.push_successful_payment(
        7301,
        &crate::support::telegram::StarPayment::new(150, &payload),
    );
    // Telegram tells the page the invoice was paid: it reloads and shows the new end.
    browser
        .evaluate(&format!(
            "window.Telegram.WebView.receiveEvent('invoice_closed', {{slug: '{slug}', status: 'paid'}}); true"
        ))
        .await;
    wait_until("the paid order's page", || {
        let browser = &browser;
        async move { browser.source().await.contains("id=\"new-end\"") }
    })
    .await;
    let end: chrono::DateTime<Utc> = subscriptions::table
        .select(subscriptions::expires_at)
        .first(conn)
        .await
        .unwrap();
    assert!(end > Utc::now() + chrono::Duration::days(29));
    browser.screenshots("cabinet-stars-paid").await;
    browser.quit().await;
}

/// Asks, as `session`, for `email` to become the account's sign-in address: the token of the
/// link mailed to it.
async fn ask_confirmation(env: &Env, session: &str, email: &str) -> String {
    env.smtp.clear();
    let asked = post_form(
        &env.app,
        session,
        "/app/settings/email",
        &[("email", email)],
    )
    .await;
    assert_eq!(asked.status(), 200);
    assert!(asked.text().await.unwrap().contains("id=\"mail-sent\""));
    mailed_token(&env.smtp, &email.to_lowercase()).await
}

#[actix_rt::test]
async fn a_new_sign_in_address_is_confirmed_by_a_mailed_link() {
    let env = spawn(&[]).await;
    let now = Utc::now().timestamp();
    // A Telegram user in the Mini App adds an address to sign in without Telegram.
    let signed = mini_app_sign_in(&env.app, &init_data_of(7401, now - 60, TOKEN)).await;
    let (session, _) = set_cookie(&signed, "vpnshop_app").expect("session");
    let token = ask_confirmation(&env, &session, "Mila@Example.com").await;
    let mail = env.smtp.messages().pop().unwrap();
    assert_eq!(
        mail.subject, "Подтвердите email",
        "in the subscriber's language"
    );
    let (_, page) = get_page(&env.app, "", &format!("/app/signin/{token}")).await;
    assert!(page.contains("mila@example.com") && page.contains("id=\"use-link\""));

    // Opened elsewhere (the mail app's browser): confirmed, and nobody is signed in by it.
    let used = use_link(&env.app, &token).await;
    assert_eq!(used.status(), 200);
    assert!(set_cookie(&used, "vpnshop_app").is_none());
    assert!(
        used.text()
            .await
            .unwrap()
            .contains("id=\"email-confirmed\"")
    );
    let conn = &mut env.app.db.connect().await;
    let (email, verified): (Option<String>, bool) = users::table
        .filter(users::telegram_id.eq(7401))
        .select((users::email, users::email_verified_at.is_not_null()))
        .first(conn)
        .await
        .unwrap();
    assert_eq!(
        (email.as_deref(), verified),
        (Some("mila@example.com"), true)
    );

    // The address now signs in to the Telegram user's account, without Telegram.
    env.smtp.clear();
    let by_mail = web_session(&env, "mila@example.com").await;
    let (_, home) = get_page(&env.app, &by_mail, "/app/").await;
    assert!(home.contains("Mila"), "{home}");
    assert_eq!(
        users::table.count().get_result::<i64>(conn).await.unwrap(),
        1
    );

    // Another account cannot take it.
    let other = web_session(&env, "other@example.com").await;
    let token = ask_confirmation(&env, &other, "mila@example.com").await;
    let taken = use_link(&env.app, &token).await;
    assert_eq!(taken.status(), 409);
    assert!(taken.text().await.unwrap().contains("id=\"email-taken\""));

    // Confirmed in the browser that asked: back to the cabinet.
    let token = ask_confirmation(&env, &other, "new@example.com").await;
    let own = use_link_with(&env.app, &token, Some(&other)).await;
    assert_eq!(own.status(), 303);
    assert_eq!(own.headers()[header::LOCATION], "/app/?done=email#account");
    let (_, home) = get_page(&env.app, &other, "/app/").await;
    assert!(text_of(&home, "account-email").starts_with("new@example.com"));
    // A malformed address is refused.
    let bad = post_form(
        &env.app,
        &other,
        "/app/settings/email",
        &[("email", "not an address")],
    )
    .await;
    assert_eq!(bad.status(), 422);
}
