//! The console's sales pages: refunds on a payment's page, plans and promo codes. Over plain
//! HTTP: the API's checks and messages shown on the form with the input kept, roles and CSRF.
//! In headless Chromium: an admin refunds part of a payment (the fake YooKassa sees the refund,
//! the subscription ends earlier), creates a plan and a promo code that then prices an order,
//! and a viewer finds no forms and is refused a forged POST; screenshots at 360 and 1280 px.

use chrono::{Duration, Utc};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use serde_json::json;
use vpn_shop::db::schema::{payments, plans, promo_codes, subscriptions};
use vpn_shop::domain::{AdminRole, PaymentId, PaymentProvider, PlanId, UserId};

use crate::console::{client, console_login, csrf_of, get_page, post_form};
use crate::support::app::{TestApp, spawn_app};
use crate::support::browser::Browser;
use crate::support::db::Subscriber;
use crate::support::payments::Providers;
use crate::support::yookassa::FakeYooKassa;

const PASSWORD: &str = "a password long enough";

/// The app selling through the fake YooKassa and WATA (plans then cost at least WATA's 10 ₽).
async fn shop() -> (TestApp, Providers) {
    let providers = Providers::start();
    let app = spawn_app(&providers.env()).await;
    (app, providers)
}

/// A 30-day plan for 299 ₽, straight in the database.
async fn plan(app: &TestApp, name: &str) -> PlanId {
    diesel::insert_into(plans::table)
        .values((
            plans::name.eq(name),
            plans::days.eq(30),
            plans::price_minor.eq(29_900),
        ))
        .returning(plans::id)
        .get_result(&mut app.db.connect().await)
        .await
        .unwrap()
}

/// A subscriber (ending in 5 days) who bought `plan` with YooKassa, paid, and was notified.
async fn paid_order(
    app: &TestApp,
    yookassa: &FakeYooKassa,
    telegram_id: i64,
    plan: PlanId,
) -> (UserId, PaymentId) {
    let user = Subscriber {
        expires_at: Some(Utc::now() + Duration::days(5)),
        ..Subscriber::new(telegram_id)
    }
    .insert(&mut app.db.connect().await)
    .await;
    let order = app
        .checkout_page(user, plan, PaymentProvider::Yookassa)
        .await;
    let external: Option<String> = payments::table
        .find(order)
        .select(payments::external_id)
        .first(&mut app.db.connect().await)
        .await
        .unwrap();
    let external = external.expect("a YooKassa payment id");
    yookassa.succeed(&external);
    let status = yookassa
        .send_notification(
            &app.url("/webhooks/yookassa"),
            &external,
            "payment.succeeded",
        )
        .await;
    assert_eq!(status, 200);
    (user, order)
}

async fn expires_at(app: &TestApp, user: UserId) -> chrono::DateTime<Utc> {
    subscriptions::table
        .filter(subscriptions::user_id.eq(user))
        .select(subscriptions::expires_at)
        .first(&mut app.db.connect().await)
        .await
        .unwrap()
}

/// A console POST with the session's CSRF token: status and page.
async fn post_page(
    app: &TestApp,
    path: &str,
    cookie: &str,
    csrf: &str,
    form: &[(&str, &str)],
) -> (u16, String) {
    let mut fields = vec![("csrf", csrf)];
    fields.extend_from_slice(form);
    let resp = client()
        .post(app.url(path))
        .header(reqwest::header::COOKIE, cookie)
        .form(&fields)
        .send()
        .await
        .unwrap();
    (resp.status().as_u16(), resp.text().await.unwrap())
}

/// The message the API answers `body` at `path` with.
async fn api_message(app: &TestApp, token: &str, path: &str, body: serde_json::Value) -> String {
    let (status, reply) = app.call("POST", path, Some(token), Some(body)).await;
    assert!(status == 422 || status == 409, "{status} {reply}");
    reply["error"]["message"].as_str().unwrap().to_owned()
}

/// Text as the page escapes it.
fn escaped(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('\'', "&#39;")
        .replace('"', "&quot;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[actix_rt::test]
async fn console_forms_show_the_apis_messages_and_keep_the_input() {
    let (app, providers) = shop().await;
    app.create_admin("anna", PASSWORD, AdminRole::Admin).await;
    app.create_admin("olga", PASSWORD, AdminRole::Operator)
        .await;
    let admin_token = app.token_for(AdminRole::Admin).await;
    let admin = console_login(&app, "anna", PASSWORD).await;
    let csrf = csrf_of(
        &get_page(&app, "/admin/plans", &admin)
            .await
            .text()
            .await
            .unwrap(),
    );

    // A plan below WATA's minimum: the API's message on the form, the input still there.
    let (status, html) = post_page(
        &app,
        "/admin/plans",
        &admin,
        &csrf,
        &[
            ("name", "Cheap week"),
            ("days", "7"),
            ("price", "5"),
            ("active", "on"),
        ],
    )
    .await;
    assert_eq!(status, 422);
    let message = api_message(
        &app,
        &admin_token,
        "/api/v1/plans",
        json!({"name": "Cheap week", "days": 7, "price_minor": 500}),
    )
    .await;
    assert!(message.contains("at least 1000 kopecks"), "{message}");
    assert!(
        html.contains(&escaped(&message)),
        "the API's message: {html}"
    );
    assert!(html.contains("value=\"Cheap week\"") && html.contains("value=\"5\""));
    assert!(html.contains(
        "id=\"price\" name=\"price\" inputmode=\"decimal\" value=\"5\" aria-invalid=\"true\""
    ));
    let (status, html) = post_page(
        &app,
        "/admin/plans",
        &admin,
        &csrf,
        &[("name", "Week"), ("days", "a week"), ("price", "99")],
    )
    .await;
    assert_eq!(status, 422);
    assert!(
        html.contains("&#39;a week&#39; is not a whole number"),
        "{html}"
    );
    assert_eq!(app.audit_rows("plan.create").await.len(), 0);

    // A valid plan: created through the API's path (audit row), then changed and deactivated.
    let (status, _) = post_page(
        &app,
        "/admin/plans",
        &admin,
        &csrf,
        &[
            ("name", "Week"),
            ("name_ru", "Неделя"),
            ("days", "7"),
            ("price", "99.50"),
            ("price_stars", "50"),
            ("traffic_gib", "20"),
            ("active", "on"),
        ],
    )
    .await;
    assert_eq!(status, 303);
    let rows = app.audit_rows("plan.create").await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["actor"], "admin:anna");
    assert_eq!(rows[0]["after"]["price_minor"], 9_950);
    assert_eq!(rows[0]["after"]["traffic_limit_bytes"], 20i64 << 30);
    let week = PlanId(rows[0]["target_id"].as_str().unwrap().parse().unwrap());
    let html = get_page(&app, &format!("/admin/plans/{week}?done=created"), &admin)
        .await
        .text()
        .await
        .unwrap();
    assert!(
        html.contains("Plan created.") && html.contains("value=\"Неделя\""),
        "{html}"
    );
    let (status, html) = post_page(
        &app,
        &format!("/admin/plans/{week}"),
        &admin,
        &csrf,
        &[("name", "Week"), ("days", "3651"), ("price", "99.50")],
    )
    .await;
    assert_eq!(status, 422);
    assert!(html.contains("must be between 1 and 3650") && html.contains("value=\"3651\""));
    let (status, _) = post_page(
        &app,
        &format!("/admin/plans/{week}/active"),
        &admin,
        &csrf,
        &[("active", "false")],
    )
    .await;
    assert_eq!(status, 303);
    let active: bool = plans::table
        .find(week)
        .select(plans::active)
        .first(&mut app.db.connect().await)
        .await
        .unwrap();
    assert!(!active);
    assert_eq!(app.audit_rows("plan.update").await.len(), 1);

    // Plans are the admin's (as in the API): an operator reads them but may not change them.
    let operator = console_login(&app, "olga", PASSWORD).await;
    let page = get_page(&app, "/admin/plans", &operator).await;
    let html = page.text().await.unwrap();
    assert!(!html.contains("id=\"new-plan\""));
    let operator_csrf = csrf_of(&html);
    let (status, _) = post_page(
        &app,
        "/admin/plans",
        &operator,
        &operator_csrf,
        &[("name", "Week"), ("days", "7"), ("price", "99")],
    )
    .await;
    assert_eq!(status, 403);

    // Promo codes are the operator's: a bad code and a duplicate are shown on the form.
    let (status, html) = post_page(
        &app,
        "/admin/promo-codes",
        &operator,
        &operator_csrf,
        &[("code", "ab"), ("kind", "percent"), ("value", "10")],
    )
    .await;
    assert_eq!(status, 422);
    let message = api_message(
        &app,
        &admin_token,
        "/api/v1/promo-codes",
        json!({"code": "ab", "kind": "percent", "value": 10}),
    )
    .await;
    assert!(html.contains(&escaped(&message)), "{message}: {html}");
    assert!(html.contains("value=\"ab\""));
    let spring = [
        ("code", "spring"),
        ("kind", "fixed"),
        ("value", "50"),
        ("max_uses", "100"),
        ("valid_until", "2099-01-01T00:00"),
        ("once_per_user", "on"),
        ("active", "on"),
    ];
    let (status, _) = post_page(
        &app,
        "/admin/promo-codes",
        &operator,
        &operator_csrf,
        &spring,
    )
    .await;
    assert_eq!(status, 303);
    let (status, html) = post_page(
        &app,
        "/admin/promo-codes",
        &operator,
        &operator_csrf,
        &spring,
    )
    .await;
    assert_eq!(status, 409);
    assert!(
        html.contains("the promo code SPRING exists already"),
        "{html}"
    );
    let rows = app.audit_rows("promo.create").await;
    assert_eq!(rows.len(), 1);
    assert_eq!(
        (&rows[0]["after"]["value"], &rows[0]["after"]["kind"]),
        (&json!(5_000), &json!("fixed")),
        "50 roubles off"
    );
    assert_eq!(rows[0]["after"]["valid_until"], "2099-01-01T00:00:00Z");
    let id = rows[0]["target_id"].as_str().unwrap().to_owned();
    let (status, html) = post_page(
        &app,
        &format!("/admin/promo-codes/{id}"),
        &operator,
        &operator_csrf,
        &[
            ("code", "spring"),
            ("kind", "percent"),
            ("value", "150"),
            ("active", "on"),
        ],
    )
    .await;
    assert_eq!(status, 422);
    assert!(
        html.contains("a percent code&#39;s value must be 1 to 100"),
        "{html}"
    );
    let (status, _) = post_page(
        &app,
        &format!("/admin/promo-codes/{id}/active"),
        &operator,
        &operator_csrf,
        &[("active", "false")],
    )
    .await;
    assert_eq!(status, 303);
    let html = get_page(&app, "/admin/promo-codes", &operator)
        .await
        .text()
        .await
        .unwrap();
    assert!(
        html.contains("SPRING") && html.contains("0 / 100"),
        "{html}"
    );

    // Refunds are the admin's: an operator is refused; an amount over the rest and a provider
    // refusing are shown on the payment's page.
    let month = plan(&app, "Month").await;
    let (_, order) = paid_order(&app, &providers.yookassa, 8801, month).await;
    let path = format!("/admin/payments/{order}/refund");
    let (status, _) = post_page(
        &app,
        &path,
        &operator,
        &operator_csrf,
        &[("amount", "10"), ("reason", "test")],
    )
    .await;
    assert_eq!(status, 403);
    let html = get_page(&app, &format!("/admin/payments/{order}"), &operator)
        .await
        .text()
        .await
        .unwrap();
    assert!(
        !html.contains("id=\"refund\""),
        "no refund form for an operator"
    );
    let (status, html) = post_page(
        &app,
        &path,
        &admin,
        &csrf,
        &[("amount", "300"), ("reason", "too much")],
    )
    .await;
    assert_eq!(status, 422);
    assert!(
        html.contains("must be between 1 and 29900 (the order&#39;s amount)")
            && html.contains("value=\"300\"")
            && html.contains("value=\"too much\""),
        "{html}"
    );
    let (status, html) = post_page(&app, &path, &admin, &csrf, &[("amount", "100")]).await;
    assert_eq!(status, 422, "a reason is needed");
    assert!(html.contains("must be 1 to 500 characters"), "{html}");
    let (status, html) = post_page(
        &app,
        &path,
        &admin,
        &csrf,
        &[("amount", ""), ("reason", "could not connect")],
    )
    .await;
    assert_eq!(status, 200);
    assert!(
        html.contains("299 ₽") && html.contains("30 days taken back"),
        "{html}"
    );
    providers.yookassa.fail_next(1, 400);
    let (status, html) = post_page(
        &app,
        &path,
        &admin,
        &csrf,
        &[
            ("confirm", "yes"),
            ("amount", "299.00"),
            ("reason", "could not connect"),
        ],
    )
    .await;
    assert_eq!(status, 409);
    assert!(html.contains("the provider refused the refund"), "{html}");
    assert!(html.contains("id=\"form-error\"") && html.contains("value=\"could not connect\""));
    assert!(app.audit_rows("payment.refund").await.is_empty());
    app.shutdown().await;
}

#[actix_rt::test]
async fn a_reseller_refunds_and_sells_from_the_browser() {
    let Some(browser) = Browser::start().await else {
        return;
    };
    let (app, providers) = shop().await;
    app.create_admin("anna", PASSWORD, AdminRole::Admin).await;
    app.create_admin("vera", PASSWORD, AdminRole::Viewer).await;
    let month = plan(&app, "Month").await;
    let (user, order) = paid_order(&app, &providers.yookassa, 8901, month).await;
    let paid_until = expires_at(&app, user).await;

    browser.goto(&app.url("/admin/login")).await;
    browser.fill("#username", "anna").await;
    browser.fill("#password", PASSWORD).await;
    browser.click("button[type=submit]").await;

    // Refund half: the confirmation shows the amount and the 15 days; nothing happens before.
    browser
        .goto(&app.url(&format!("/admin/payments/{order}")))
        .await;
    browser.screenshots("payment-refund").await;
    browser.fill("#amount", "149.50").await;
    browser
        .fill("#refund-reason", "could not connect for two weeks")
        .await;
    browser.click("#refund-submit").await;
    assert!(browser.text("h1").await.contains("Refund"));
    assert!(browser.text("#refund-amount").await.contains("149.50 ₽"));
    assert_eq!(browser.text("#refund-days").await, "15 days taken back");
    browser.screenshots("confirm-refund").await;
    assert!(
        providers.yookassa.refunds().is_empty(),
        "nothing before confirming"
    );
    browser.click("#confirm").await;
    assert!(browser.current_url().await.ends_with("?done=refund"));
    assert!(browser.text("#done").await.starts_with("Refunded."));
    let refunds = providers.yookassa.refunds();
    assert_eq!(refunds.len(), 1, "the fake YooKassa saw the refund");
    assert_eq!(refunds[0]["amount"]["value"], "149.50");
    assert_eq!(
        paid_until - expires_at(&app, user).await,
        Duration::days(15)
    );
    let rows = app.audit_rows("payment.refund").await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["actor"], "admin:anna");
    assert_eq!(rows[0]["after"]["days_taken_back"], 15);

    // A plan made in the browser.
    browser.click("nav.menu a[href='/admin/plans']").await;
    let listed = browser.find_all("a.plan-link").await.len();
    browser.fill("#name", "Quarter").await;
    browser.fill("#name_ru", "Три месяца").await;
    browser.fill("#days", "90").await;
    browser.fill("#price", "799").await;
    browser.click("#create-plan").await;
    assert_eq!(browser.text("#done").await, "Plan created.");
    browser.screenshots("plan").await;
    browser.click("nav.menu a[href='/admin/plans']").await;
    assert_eq!(browser.find_all("a.plan-link").await.len(), listed + 1);
    assert!(browser.source().await.contains(">Quarter</a>"));
    browser.screenshots("plans").await;

    // A promo code made in the browser, in the list, and pricing an order.
    browser.click("nav.menu a[href='/admin/promo-codes']").await;
    browser.fill("#code", "winter-25").await;
    browser.fill("#value", "25").await;
    browser.fill("#max_uses", "100").await;
    browser.click("#create-promo").await;
    assert_eq!(browser.text("#done").await, "Promo code created.");
    browser.screenshots("promo-code").await;
    browser.click("nav.menu a[href='/admin/promo-codes']").await;
    let links = browser.find_all("a.promo-link").await;
    assert_eq!(links.len(), 1);
    assert_eq!(browser.text("a.promo-link").await, "WINTER-25");
    assert_eq!(browser.text(".uses").await, "0 / 100");
    browser.screenshots("promo-codes").await;
    let buyer = Subscriber::new(8902)
        .insert(&mut app.db.connect().await)
        .await;
    let checkout = app
        .app
        .payments
        .addr()
        .send(vpn_shop::actors::payments::CreateCheckout {
            user_id: buyer,
            plan_id: month,
            provider: PaymentProvider::Yookassa,
            promo_code: Some("Winter-25".into()),
            auto_renew: false,
            return_to: vpn_shop::actors::payments::ReturnTo::Bot,
        })
        .await
        .unwrap()
        .expect("a checkout with the code");
    let vpn_shop::actors::payments::Checkout::Redirect { order_id, .. } = checkout else {
        panic!("not a payment page: {checkout:?}");
    };
    let (amount, discount): (i64, i64) = payments::table
        .find(order_id)
        .select((payments::amount_minor, payments::discount_minor))
        .first(&mut app.db.connect().await)
        .await
        .unwrap();
    assert_eq!((amount, discount), (22_425, 7_475), "25 % off 299 ₽");
    let reserved: i32 = promo_codes::table
        .filter(promo_codes::code.eq("WINTER-25"))
        .select(promo_codes::reserved_count)
        .first(&mut app.db.connect().await)
        .await
        .unwrap();
    assert_eq!(reserved, 1);

    // A viewer: no refund form, no plan or promo forms; forged POSTs are refused.
    browser.click("#logout").await;
    browser.fill("#username", "vera").await;
    browser.fill("#password", PASSWORD).await;
    browser.click("button[type=submit]").await;
    browser
        .goto(&app.url(&format!("/admin/payments/{order}")))
        .await;
    assert!(browser.find_all("#refund").await.is_empty());
    assert!(browser.find_all("#refund-submit").await.is_empty());
    browser.goto(&app.url("/admin/plans")).await;
    assert!(browser.find_all("#new-plan").await.is_empty());
    browser.click("a.plan-link").await;
    assert!(browser.find_all("form.editor").await.is_empty());
    assert!(browser.find_all("#deactivate").await.is_empty());
    browser.goto(&app.url("/admin/promo-codes")).await;
    assert!(browser.find_all("#new-promo").await.is_empty());
    browser.click("a.promo-link").await;
    assert!(browser.find_all("form.editor").await.is_empty());
    browser.screenshots("promo-code-viewer").await;
    let csrf = browser
        .attribute("form[action='/admin/logout'] input[name=csrf]", "value")
        .await
        .expect("the viewer's csrf token");
    let viewer = browser
        .cookie("vpnshop_admin")
        .await
        .expect("viewer session");
    let viewer = format!("vpnshop_admin={}", viewer["value"].as_str().unwrap());
    for (path, form) in [
        (
            format!("/admin/payments/{order}/refund"),
            vec![("confirm", "yes"), ("amount", "10"), ("reason", "forged")],
        ),
        (
            "/admin/plans".to_owned(),
            vec![("name", "Forged"), ("days", "1"), ("price", "99")],
        ),
        (
            format!("/admin/plans/{month}/active"),
            vec![("active", "false")],
        ),
        (
            "/admin/promo-codes".to_owned(),
            vec![("code", "FORGED"), ("kind", "percent"), ("value", "99")],
        ),
    ] {
        let mut fields = vec![("csrf", csrf.as_str())];
        fields.extend(form);
        assert_eq!(
            post_form(&app, &path, &viewer, &fields).await,
            403,
            "{path}"
        );
    }
    // And an admin's form without its token.
    let admin = console_login(&app, "anna", PASSWORD).await;
    let status = post_form(
        &app,
        &format!("/admin/payments/{order}/refund"),
        &admin,
        &[("confirm", "yes"), ("amount", "10"), ("reason", "forged")],
    )
    .await;
    assert_eq!(status, 403);
    assert_eq!(providers.yookassa.refunds().len(), 1);
    assert_eq!(app.audit_rows("payment.refund").await.len(), 1);
    assert_eq!(app.audit_rows("plan.create").await.len(), 1);
    assert_eq!(app.audit_rows("promo.create").await.len(), 1);
    browser.quit().await;
    app.shutdown().await;
}

/// The dashboard's "active subscriptions" tile.
fn active_tile(html: &str) -> String {
    let end = html
        .find("</span><span class=\"label\">active subscriptions")
        .expect("the active subscriptions tile");
    let start = html[..end].rfind('>').expect("its value") + 1;
    html[start..end].to_owned()
}

#[actix_rt::test]
async fn the_dashboard_shows_a_snapshot_and_renews_it_in_the_background() {
    let app = spawn_app(&[]).await;
    app.create_admin("vera", PASSWORD, AdminRole::Viewer).await;
    let viewer = console_login(&app, "vera", PASSWORD).await;
    let page = || async {
        get_page(&app, "/admin/", &viewer)
            .await
            .text()
            .await
            .unwrap()
    };
    assert_eq!(active_tile(&page().await), "0");
    Subscriber {
        expires_at: Some(Utc::now() + Duration::days(30)),
        ..Subscriber::new(8990)
    }
    .insert(&mut app.db.connect().await)
    .await;
    // Within its 10 s the snapshot is shown as it is.
    assert_eq!(active_tile(&page().await), "0");
    // Then a view starts a recomputation and shows the old one; a later view the new one.
    tokio::time::sleep(std::time::Duration::from_secs(10)).await;
    crate::support::wait_until("the renewed snapshot", || async {
        active_tile(&page().await) == "1"
    })
    .await;
    app.shutdown().await;
}
