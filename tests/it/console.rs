//! The admin web console (`/admin/`): sessions, CSRF, security headers and the lockout over
//! plain HTTP, and the flows a reseller goes through in a real headless Chromium (log in, find a
//! user, extend them and see the panel follow, a viewer without action buttons, forged and
//! CSRF-less POSTs refused, logout), with screenshots at 360 and 1280 px under
//! `target/screenshots/`.

use chrono::Utc;
use diesel::ExpressionMethods as _;
use diesel_async::RunQueryDsl;
use reqwest::header;
use reqwest::redirect::Policy;
use vpn_shop::db::schema::payments;
use vpn_shop::domain::{AdminRole, Currency, PaymentProvider, PaymentStatus};

use crate::support::app::{TestApp, spawn_app};
use crate::support::browser::Browser;
use crate::support::db::Subscriber;
use crate::support::marzban::FakePanel;
use crate::support::wait_until;

const PASSWORD: &str = "a password long enough";

/// A client that shows redirects instead of following them.
pub(crate) fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(Policy::none())
        .build()
        .expect("client")
}

/// The `name=value` part and the attributes of the `Set-Cookie` of `name`.
pub(crate) fn set_cookie(resp: &reqwest::Response, name: &str) -> Option<(String, String)> {
    resp.headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
        .map(|v| {
            let (pair, attrs) = v.split_once(';').unwrap_or((v, ""));
            (pair.to_owned(), attrs.to_owned())
        })
}

/// The value of the first hidden `csrf` field of a page.
pub(crate) fn csrf_of(html: &str) -> String {
    let at = html
        .find("name=\"csrf\" value=\"")
        .expect("a csrf field on the page");
    let rest = &html[at + "name=\"csrf\" value=\"".len()..];
    rest[..rest.find('"').expect("end of the value")].to_owned()
}

/// Logs in through the console's form; the session cookie (`name=value`).
pub(crate) async fn console_login(app: &TestApp, username: &str, password: &str) -> String {
    let http = client();
    let page = http.get(app.url("/admin/login")).send().await.unwrap();
    let (login_cookie, _) = set_cookie(&page, "vpnshop_login").expect("login cookie");
    let csrf = csrf_of(&page.text().await.unwrap());
    let resp = http
        .post(app.url("/admin/login"))
        .header(header::COOKIE, &login_cookie)
        .form(&[
            ("csrf", csrf.as_str()),
            ("username", username),
            ("password", password),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 303, "login of {username}");
    set_cookie(&resp, "vpnshop_admin")
        .expect("session cookie")
        .0
}

#[actix_rt::test]
async fn console_sessions_are_strict_cookies_behind_a_strict_policy() {
    let app = spawn_app(&[]).await;
    app.create_admin("olga", PASSWORD, AdminRole::Operator)
        .await;
    let http = client();

    // No session: the login page.
    let resp = http.get(app.url("/admin/")).send().await.unwrap();
    assert_eq!(resp.status(), 303);
    assert_eq!(resp.headers()[header::LOCATION], "/admin/login");
    assert_eq!(
        http.get(app.url("/admin")).send().await.unwrap().headers()[header::LOCATION],
        "/admin/"
    );

    let page = http.get(app.url("/admin/login")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let csp = page.headers()[header::CONTENT_SECURITY_POLICY]
        .to_str()
        .unwrap()
        .to_owned();
    for directive in [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "frame-ancestors 'none'",
        "form-action 'self'",
    ] {
        assert!(csp.contains(directive), "{directive} in {csp}");
    }
    assert!(!csp.contains("unsafe"), "{csp}");
    assert_eq!(page.headers()[header::CACHE_CONTROL], "no-store");
    let (login_cookie, attrs) = set_cookie(&page, "vpnshop_login").expect("login cookie");
    assert!(
        attrs.contains("HttpOnly") && attrs.contains("SameSite=Strict"),
        "{attrs}"
    );
    assert!(!attrs.contains("Secure"), "plain http: {attrs}");
    let html = page.text().await.unwrap();
    assert!(
        !html.contains("<script") && !html.contains("style="),
        "no inline script or style"
    );
    let csrf = csrf_of(&html);

    // The stylesheet: embedded, hashed name, cached for a year.
    let href = html
        .split("rel=\"stylesheet\" href=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .expect("stylesheet link")
        .to_owned();
    assert!(
        href.starts_with("/assets/console.") && href.ends_with(".css"),
        "{href}"
    );
    let css = http.get(app.url(&href)).send().await.unwrap();
    assert_eq!(css.status(), 200);
    assert!(
        css.headers()[header::CACHE_CONTROL]
            .to_str()
            .unwrap()
            .contains("immutable")
    );
    assert!(
        css.headers()[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/css")
    );
    let stale = http
        .get(app.url("/assets/console.00000000.css"))
        .send()
        .await
        .unwrap();
    assert_eq!(stale.status(), 404);

    // A login form without its token, or with another browser's, is refused.
    let form = |csrf: &str| {
        vec![
            ("csrf".to_owned(), csrf.to_owned()),
            ("username".to_owned(), "olga".to_owned()),
            ("password".to_owned(), PASSWORD.to_owned()),
        ]
    };
    let forged = http
        .post(app.url("/admin/login"))
        .form(&form(&csrf))
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 403, "no login cookie");
    let tokenless = http
        .post(app.url("/admin/login"))
        .header(header::COOKIE, &login_cookie)
        .form(&form(""))
        .send()
        .await
        .unwrap();
    assert_eq!(tokenless.status(), 403);

    // A wrong password shows the form again, saying so.
    let mut wrong = form(&csrf);
    wrong[2].1 = "not the password".into();
    let resp = http
        .post(app.url("/admin/login"))
        .header(header::COOKIE, &login_cookie)
        .form(&wrong)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    assert!(
        resp.text()
            .await
            .unwrap()
            .contains("Wrong username or password")
    );

    // The right one opens a session.
    let resp = http
        .post(app.url("/admin/login"))
        .header(header::COOKIE, &login_cookie)
        .form(&form(&csrf))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 303);
    assert_eq!(resp.headers()[header::LOCATION], "/admin/");
    let (session, attrs) = set_cookie(&resp, "vpnshop_admin").expect("session cookie");
    assert!(
        attrs.contains("HttpOnly") && attrs.contains("SameSite=Strict") && attrs.contains("Path=/"),
        "{attrs}"
    );
    let dashboard = get_page(&app, "/admin/", &session).await;
    assert_eq!(dashboard.status(), 200);
    assert!(dashboard.text().await.unwrap().contains("Dashboard"));

    // 26 users: two pages of 25, and the pager keeps the search.
    let mut conn = app.db.connect().await;
    for i in 0..26 {
        Subscriber::new(500_000 + i).insert(&mut conn).await;
    }
    let html = get_page(&app, "/admin/users", &session)
        .await
        .text()
        .await
        .unwrap();
    assert!(
        html.contains("26 users") && html.contains("1 / 2"),
        "{html}"
    );
    assert!(
        html.contains("href=\"/admin/users?q=&amp;page=2\""),
        "{html}"
    );
    let html = get_page(&app, "/admin/users?q=&page=2", &session)
        .await
        .text()
        .await
        .unwrap();
    assert_eq!(html.matches("class=\"user-link\"").count(), 1);
    let html = get_page(&app, "/admin/users?q=500001", &session)
        .await
        .text()
        .await
        .unwrap();
    assert!(html.contains("1 user") && !html.contains("1 / 2"), "{html}");

    // Only the token's hash is stored; an idle session ends.
    let token = session.split_once('=').unwrap().1;
    let stored: i64 = diesel::sql_query(
        "SELECT count(*) AS n FROM admin_sessions WHERE token_hash = sha256(convert_to($1, 'UTF8'))",
    )
    .bind::<diesel::sql_types::Text, _>(token)
    .get_result::<Count>(&mut conn)
    .await
    .unwrap()
    .n;
    assert_eq!(stored, 1);
    diesel::sql_query("UPDATE admin_sessions SET last_seen_at = now() - interval '13 hours'")
        .execute(&mut conn)
        .await
        .unwrap();
    let resp = get_page(&app, "/admin/", &session).await;
    assert_eq!(resp.status(), 303, "idle session ended");
    assert_eq!(resp.headers()[header::LOCATION], "/admin/login");
    app.shutdown().await;
}

#[derive(diesel::QueryableByName)]
struct Count {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
}

#[actix_rt::test]
async fn behind_https_the_cookies_are_secure_host_cookies() {
    let app = spawn_app(&[("PUBLIC_BASE_URL", "https://shop.example.com")]).await;
    let page = client().get(app.url("/admin/login")).send().await.unwrap();
    let (_, attrs) = set_cookie(&page, "__Host-vpnshop_login").expect("__Host- cookie");
    assert!(
        attrs.contains("Secure") && attrs.contains("Path=/"),
        "{attrs}"
    );
    assert!(!attrs.contains("Domain"), "{attrs}");
    app.shutdown().await;
}

#[actix_rt::test]
async fn console_and_api_share_the_lockout_and_password_changes_end_sessions() {
    let app = spawn_app(&[]).await;
    app.create_admin("petr", PASSWORD, AdminRole::Admin).await;
    let session = console_login(&app, "petr", PASSWORD).await;
    let http = client();
    let page = http.get(app.url("/admin/login")).send().await.unwrap();
    let (login_cookie, _) = set_cookie(&page, "vpnshop_login").unwrap();
    let csrf = csrf_of(&page.text().await.unwrap());
    let mut last = 0;
    for _ in 0..5 {
        last = http
            .post(app.url("/admin/login"))
            .header(header::COOKIE, &login_cookie)
            .form(&[
                ("csrf", csrf.as_str()),
                ("username", "petr"),
                ("password", "wrong"),
            ])
            .send()
            .await
            .unwrap()
            .status()
            .as_u16();
    }
    assert_eq!(last, 429, "the fifth failure locks");
    let (status, _) = app
        .call(
            "POST",
            "/api/v1/auth/login",
            None,
            Some(serde_json::json!({"username": "petr", "password": PASSWORD})),
        )
        .await;
    assert_eq!(status, 429, "the API sees the console's failures");

    // A password change (here: straight in the database, as the API's does) ends the session.
    let mut conn = app.db.connect().await;
    diesel::sql_query("UPDATE admins SET tokens_valid_after = now() WHERE username = 'petr'")
        .execute(&mut conn)
        .await
        .unwrap();
    let resp = get_page(&app, "/admin/", &session).await;
    assert_eq!(resp.status(), 303);
    app.shutdown().await;
}

/// A GET with a session cookie, not following redirects.
pub(crate) async fn get_page(app: &TestApp, path: &str, cookie: &str) -> reqwest::Response {
    client()
        .get(app.url(path))
        .header(header::COOKIE, cookie)
        .send()
        .await
        .unwrap()
}

/// A POST with a session cookie and form fields, as a forging page (or script) would send it.
pub(crate) async fn post_form(
    app: &TestApp,
    path: &str,
    cookie: &str,
    form: &[(&str, &str)],
) -> u16 {
    client()
        .post(app.url(path))
        .header(header::COOKIE, cookie)
        .form(form)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[actix_rt::test]
async fn a_reseller_runs_users_from_the_browser() {
    let Some(browser) = Browser::start().await else {
        return;
    };
    let panel = FakePanel::start();
    let url = panel.url();
    let app = spawn_app(&[
        ("MARZBAN_URL", url.as_str()),
        ("MARZBAN_USERNAME", crate::support::marzban::ADMIN_USERNAME),
        ("MARZBAN_PASSWORD", crate::support::marzban::ADMIN_PASSWORD),
        ("PANEL_TIMEOUT", "1s"),
        ("JOB_BACKOFF_BASE", "100ms"),
        ("JOB_BACKOFF_MAX", "500ms"),
        ("JOB_POLL_INTERVAL", "200ms"),
    ])
    .await;
    app.create_admin("olga", PASSWORD, AdminRole::Operator)
        .await;
    app.create_admin("vera", PASSWORD, AdminRole::Viewer).await;
    let mut conn = app.db.connect().await;
    let mut subscriber = Subscriber::new(700_123_456);
    subscriber.expires_at = Some(Utc::now() + chrono::Duration::days(5));
    subscriber.email = Some("ivan@example.com");
    let user = subscriber.insert(&mut conn).await;
    Subscriber::new(700_999_000).insert(&mut conn).await;
    for (provider, amount, currency) in [
        (PaymentProvider::Yookassa, 29_900, Currency::Rub),
        (PaymentProvider::Stars, 150, Currency::Xtr),
    ] {
        diesel::insert_into(payments::table)
            .values((
                payments::user_id.eq(user),
                payments::provider.eq(provider),
                payments::status.eq(PaymentStatus::Succeeded),
                payments::amount_minor.eq(amount),
                payments::currency.eq(currency),
                payments::days.eq(30),
                payments::paid_at.eq(Some(Utc::now())),
            ))
            .execute(&mut conn)
            .await
            .unwrap();
    }

    // Log in.
    browser.goto(&app.url("/admin/")).await;
    assert!(browser.current_url().await.ends_with("/admin/login"));
    browser.screenshots("login").await;
    browser.fill("#username", "olga").await;
    browser.fill("#password", PASSWORD).await;
    browser.click("button[type=submit]").await;
    assert!(browser.current_url().await.ends_with("/admin/"));
    assert_eq!(browser.text("h1").await, "Dashboard");
    let cookie = browser
        .cookie("vpnshop_admin")
        .await
        .expect("session cookie");
    assert_eq!(cookie["httpOnly"], true);
    assert_eq!(cookie["sameSite"], "Strict");
    browser.screenshots("dashboard").await;

    let source = browser.source().await;
    assert!(
        source.contains("299 ₽") && source.contains("150 ⭐"),
        "today's revenue"
    );

    // The payments, filtered by provider, and one payment's page.
    browser.click("nav.menu a[href='/admin/payments']").await;
    assert_eq!(browser.find_all("a.payment-link").await.len(), 2);
    browser.screenshots("payments").await;
    browser
        .goto(&app.url("/admin/payments?provider=stars&status=&user_id="))
        .await;
    assert_eq!(browser.find_all("a.payment-link").await.len(), 1);
    browser.click("a.payment-link").await;
    assert!(browser.text("h1").await.starts_with("Payment"));
    assert!(browser.source().await.contains("150 ⭐"));
    browser.screenshots("payment").await;

    // Find the user by Telegram id.
    browser.click("nav.menu a[href='/admin/users']").await;
    browser.screenshots("users").await;
    browser.fill("#q", "700123456").await;
    browser.click("form.search button").await;
    let links = browser.find_all("a.user-link").await;
    assert_eq!(links.len(), 1, "one match");
    browser.click("a.user-link").await;
    assert!(
        browser
            .current_url()
            .await
            .ends_with(&format!("/admin/users/{user}"))
    );
    assert!(browser.source().await.contains("ivan@example.com"));
    browser.screenshots("user").await;

    // Extend by 30 days: a confirmation first, showing the new end.
    browser.fill("#days", "30").await;
    browser.fill("#reason", "outage compensation").await;
    browser.click("#extend").await;
    assert!(browser.text("h1").await.contains("Extend"));
    assert!(!browser.text("#new-expiry").await.is_empty());
    browser.screenshots("confirm-extend").await;
    assert!(
        app.audit_rows("user.extend").await.is_empty(),
        "nothing before confirming"
    );
    browser.click("#confirm").await;
    assert!(browser.current_url().await.contains("done=extend"));
    assert!(browser.source().await.contains("Extended."));
    let rows = app.audit_rows("user.extend").await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["actor"], "admin:olga");
    assert_eq!(rows[0]["after"]["reason"], "outage compensation");
    // The panel sees the new expiry: 5 + 30 days from the start.
    let expires: chrono::DateTime<Utc> =
        serde_json::from_value(rows[0]["after"]["expires_at"].clone()).unwrap();
    assert!(expires > Utc::now() + chrono::Duration::days(34));
    wait_until("the panel has the new expiry", || async {
        panel
            .user("vpnshop_700123456")
            .is_some_and(|u| u.expire == Some(expires.timestamp()))
    })
    .await;

    // A note for the admins: confirmed, saved through the API's update, audited.
    browser.fill("#note", "paid in cash, ticket 42").await;
    browser.click("#set-note").await;
    assert!(browser.text("h1").await.contains("note"));
    assert_eq!(browser.text("#new-note").await, "paid in cash, ticket 42");
    assert!(
        app.audit_rows("user.update").await.is_empty(),
        "nothing before confirming"
    );
    browser.click("#confirm").await;
    assert!(browser.current_url().await.contains("done=note"));
    assert!(browser.source().await.contains("Note saved."));
    let rows = app.audit_rows("user.update").await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["after"]["note"], "paid in cash, ticket 42");
    assert_eq!(rows[0]["before"]["note"], serde_json::Value::Null);

    // A POST without the CSRF token is refused, and changes nothing.
    let session = format!(
        "vpnshop_admin={}",
        cookie["value"].as_str().expect("cookie value")
    );
    let path = format!("/admin/users/{user}/extend");
    let status = post_form(
        &app,
        &path,
        &session,
        &[("confirm", "yes"), ("days", "7"), ("reason", "forged")],
    )
    .await;
    assert_eq!(status, 403);
    let status = post_form(
        &app,
        &path,
        &session,
        &[
            ("csrf", "0123"),
            ("confirm", "yes"),
            ("days", "7"),
            ("reason", "forged"),
        ],
    )
    .await;
    assert_eq!(status, 403, "a wrong token");
    assert_eq!(app.audit_rows("user.extend").await.len(), 1);

    // A NUL character in a form is refused (PostgreSQL stores none), and nothing is written.
    let csrf = browser
        .attribute("form[action='/admin/logout'] input[name=csrf]", "value")
        .await
        .expect("the operator's csrf token");
    let status = post_form(
        &app,
        &format!("/admin/users/{user}/note"),
        &session,
        &[
            ("csrf", csrf.as_str()),
            ("confirm", "yes"),
            ("note", "a\0b"),
        ],
    )
    .await;
    assert_eq!(status, 400, "a NUL in a form");
    assert_eq!(app.audit_rows("user.update").await.len(), 1);

    // The payments of a period (days, both included): the two of today, then none.
    let day = |d: i64| {
        (Utc::now() + chrono::Duration::days(d))
            .format("%Y-%m-%d")
            .to_string()
    };
    for (from, to, found) in [(day(-1), day(1), 2), (day(2), day(3), 0)] {
        let page = get_page(
            &app,
            &format!("/admin/payments?from={from}&to={to}"),
            &session,
        )
        .await
        .text()
        .await
        .unwrap();
        assert_eq!(
            page.matches("class=\"payment-link\"").count(),
            found,
            "{from}..{to}"
        );
        assert!(
            page.contains(&format!("value=\"{from}\"")),
            "the form keeps the period"
        );
    }

    // Log out: back to the login page, and the old cookie opens nothing.
    browser.click("#logout").await;
    assert!(browser.current_url().await.ends_with("/admin/login"));
    let resp = get_page(&app, "/admin/", &session).await;
    assert_eq!(resp.status(), 303, "the session ended");
    assert_eq!(app.audit_rows("auth.logout").await.len(), 1);

    // A viewer reads the user but finds no action, and a forged action is refused.
    browser.fill("#username", "vera").await;
    browser.fill("#password", PASSWORD).await;
    browser.click("button[type=submit]").await;
    browser
        .goto(&app.url(&format!("/admin/users/{user}")))
        .await;
    assert!(browser.find_all("#actions").await.is_empty());
    assert!(browser.find_all("#extend").await.is_empty());
    assert!(browser.find_all("#ban").await.is_empty());
    let csrf = browser
        .attribute("form[action='/admin/logout'] input[name=csrf]", "value")
        .await
        .expect("the viewer's csrf token");
    let viewer = browser
        .cookie("vpnshop_admin")
        .await
        .expect("viewer session");
    let viewer = format!("vpnshop_admin={}", viewer["value"].as_str().unwrap());
    for action in [
        "extend",
        "ban",
        "reset-traffic",
        "revoke-link",
        "email",
        "note",
    ] {
        let status = post_form(
            &app,
            &format!("/admin/users/{user}/{action}"),
            &viewer,
            &[
                ("csrf", csrf.as_str()),
                ("confirm", "yes"),
                ("days", "7"),
                ("reason", "forged"),
                ("email", "x@example.com"),
                ("note", "forged"),
            ],
        )
        .await;
        assert_eq!(status, 403, "{action} by a viewer");
    }
    assert_eq!(app.audit_rows("user.extend").await.len(), 1);
    assert_eq!(
        app.audit_rows("user.update").await.len(),
        1,
        "the note only"
    );
    browser.screenshots("user-viewer").await;

    // The language follows the admin's choice.
    browser.click("form[action='/admin/language'] button").await;
    assert_eq!(
        browser.attribute("html", "lang").await.as_deref(),
        Some("ru")
    );
    assert!(browser.source().await.contains("Подписка"));
    browser.goto(&app.url("/admin/")).await;
    browser.screenshots("dashboard-ru").await;
    browser.quit().await;
    app.shutdown().await;
}
