//! The console's operations pages in a real headless Chromium: a broadcast composed, previewed
//! (on the button and live while typing), sent and followed to 100 % by the page's script while
//! the fake Telegram receives it, then another one canceled; dead jobs retried and discarded;
//! a sync run on demand, the audit log and admin accounts; a viewer who finds no action and
//! whose forged POSTs are refused. Screenshots at 360 and 1280 px under `target/screenshots/`.

use std::time::Duration;

use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use reqwest::header;
use reqwest::redirect::Policy;
use vpn_shop::db::jobs::{self, NewJob};
use vpn_shop::db::schema::{broadcasts, jobs as jobs_table};
use vpn_shop::domain::{AdminRole, BroadcastStatus, JobId, JobState};

use crate::support::app::{TestApp, spawn_app};
use crate::support::browser::Browser;
use crate::support::db::Subscriber;
use crate::support::marzban::FakePanel;
use crate::support::telegram::{FakeTelegram, TOKEN};
use crate::support::{wait_until, wait_until_within};

const PASSWORD: &str = "a password long enough";

/// Logs `username` in through the browser's login form.
async fn log_in(browser: &Browser, app: &TestApp, username: &str) {
    browser.goto(&app.url("/admin/login")).await;
    browser.fill("#username", username).await;
    browser.fill("#password", PASSWORD).await;
    browser.click("button[type=submit]").await;
    assert!(
        browser.current_url().await.ends_with("/admin/"),
        "{username} logged in"
    );
}

/// The browser's session cookie (`name=value`) and a CSRF token of its current page.
async fn session_of(browser: &Browser) -> (String, String) {
    let cookie = browser
        .cookie("vpnshop_admin")
        .await
        .expect("session cookie");
    let csrf = browser
        .attribute("form[action='/admin/logout'] input[name=csrf]", "value")
        .await
        .expect("csrf token");
    (
        format!("vpnshop_admin={}", cookie["value"].as_str().unwrap()),
        csrf,
    )
}

/// A POST with a session cookie and form fields; the status (redirects not followed).
async fn post_form(app: &TestApp, path: &str, cookie: &str, form: &[(&str, &str)]) -> u16 {
    reqwest::Client::builder()
        .redirect(Policy::none())
        .build()
        .unwrap()
        .post(app.url(path))
        .header(header::COOKIE, cookie)
        .form(form)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// A GET with a session cookie: status and body.
async fn get_page(app: &TestApp, path: &str, cookie: &str) -> (u16, String) {
    let resp = reqwest::Client::builder()
        .redirect(Policy::none())
        .build()
        .unwrap()
        .get(app.url(path))
        .header(header::COOKIE, cookie)
        .send()
        .await
        .unwrap();
    (resp.status().as_u16(), resp.text().await.unwrap())
}

async fn many_users(app: &TestApp, first: i64, n: i64) {
    diesel::sql_query(format!(
        "INSERT INTO users (telegram_id, referral_code) \
         SELECT {first} + g, 'ops' || ({first} + g) FROM generate_series(0, {}) g",
        n - 1
    ))
    .execute(&mut app.db.connect().await)
    .await
    .unwrap();
}

#[actix_rt::test]
async fn an_operator_sends_a_broadcast_and_watches_its_progress_reach_100_percent() {
    let Some(browser) = Browser::start().await else {
        return;
    };
    let telegram = FakeTelegram::start();
    let tg_url = telegram.url();
    // 20 recipients at 5 a second, in batches of 10: about four seconds, in visible steps.
    let app = spawn_app(&[
        ("TELEGRAM_BOT_TOKEN", TOKEN),
        ("TELEGRAM_API_URL", tg_url.as_str()),
        ("TELEGRAM_MAX_RATE", "30"),
        ("BROADCAST_RATE", "5"),
        ("JOB_POLL_INTERVAL", "200ms"),
    ])
    .await;
    app.create_admin("olga", PASSWORD, AdminRole::Operator)
        .await;
    let conn = &mut app.db.connect().await;
    for id in 0..3 {
        Subscriber::new(610_000 + id).insert(conn).await;
    }
    many_users(&app, 620_000, 17).await;

    log_in(&browser, &app, "olga").await;
    browser.click("nav.menu a[href='/admin/broadcasts']").await;
    assert!(browser.source().await.contains("No broadcasts yet"));
    browser.screenshots("broadcasts-empty").await;
    browser.click("#compose").await;

    // Live preview: typing is enough, the script asks the server for the fragment.
    browser.fill("#text", "<b>New servers</b> in Tokyo").await;
    wait_until("the live preview", || async {
        !browser
            .find_all("#preview .tg-text strong")
            .await
            .is_empty()
    })
    .await;
    assert_eq!(
        browser.live_text("#preview .tg-text strong").await,
        "New servers"
    );
    assert!(
        browser
            .live_text("#audience-size")
            .await
            .contains("20 users"),
        "the audience's size"
    );
    // A mistake is named before anything is sent.
    browser.fill("#text", "<b>New servers in Tokyo").await;
    wait_until("the live preview's error", || async {
        !browser.find_all("#preview-error").await.is_empty()
    })
    .await;
    assert!(
        browser
            .live_text("#preview-error")
            .await
            .contains("not closed")
    );
    assert!(browser.find_all("#send").await.is_empty(), "no send button");

    // The Preview button (the same without the script): the message as subscribers see it.
    browser
        .fill("#text", "<b>New servers</b> in Tokyo & Amsterdam")
        .await;
    browser.fill("#button_text", "Connect").await;
    browser
        .fill("#button_url", "https://t.me/vpn_shop_test_bot")
        .await;
    browser.click("#preview-button").await;
    // `&` alone is not Telegram HTML: the preview says so and offers no send.
    assert!(
        browser.live_text("#preview-error").await.contains("&amp;"),
        "{}",
        browser.live_text("#preview").await
    );
    browser
        .fill("#text", "<b>New servers</b> in Tokyo &amp; Amsterdam")
        .await;
    browser.click("#preview-button").await;
    assert_eq!(
        browser.live_text("#preview .tg-text").await,
        "New servers in Tokyo & Amsterdam"
    );
    assert_eq!(browser.live_text("#preview .tg-button").await, "Connect");
    assert!(
        browser
            .live_text("#send")
            .await
            .contains("Send to 20 users")
    );
    browser.screenshots("broadcast-preview").await;
    assert!(app.audit_rows("broadcast.create").await.is_empty());

    // Send: the broadcast's page, its progress moving without a reload.
    browser.click("#send").await;
    let url = browser.current_url().await;
    let id: i64 = url
        .rsplit('/')
        .next()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("a broadcast's page: {url}"));
    let first = browser.live_text("#bc-percent").await;
    assert_ne!(first, "100 %", "the page opened before the end");
    assert!(
        browser
            .live_attribute("#progress", "data-poll")
            .await
            .is_some(),
        "polls while it runs"
    );
    wait_until("some progress on the page", || async {
        let sent = browser.live_text("#bc-sent").await;
        sent != "0" && sent != "20"
    })
    .await;
    browser.screenshots("broadcast-progress").await;
    wait_until_within("100 % on the page", Duration::from_secs(30), || async {
        browser.live_text("#bc-percent").await == "100 %"
    })
    .await;
    assert_eq!(
        browser.current_url().await,
        url,
        "the script updated the page in place"
    );
    assert_eq!(browser.live_text("#bc-sent").await, "20");
    assert_eq!(browser.live_text("#bc-status").await, "completed");
    assert!(
        browser
            .live_attribute("#progress", "data-poll")
            .await
            .is_none(),
        "stops polling"
    );
    assert!(browser.find_all("#cancel").await.is_empty());
    browser.screenshots("broadcast-done").await;

    // Telegram received it, once per user, as written.
    let sent = telegram.sent_messages();
    assert_eq!(sent.len(), 20);
    assert!(
        sent.iter()
            .all(|m| m.text == "<b>New servers</b> in Tokyo &amp; Amsterdam")
    );
    let button = &sent[0].reply_markup.as_ref().unwrap()["inline_keyboard"][0][0];
    assert_eq!(button["url"], "https://t.me/vpn_shop_test_bot");
    let rows = app.audit_rows("broadcast.create").await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["actor"], "admin:olga");

    // Without the script, a plain load shows the same numbers.
    let (cookie, csrf) = session_of(&browser).await;
    let (status, html) = get_page(&app, &format!("/admin/broadcasts/{id}"), &cookie).await;
    assert_eq!(status, 200);
    assert!(
        html.contains("100 %") && html.contains("id=\"bc-sent\">20<"),
        "{html}"
    );
    // The script is our own file, under the policy's script-src 'self': no inline script.
    let script = html
        .split("<script src=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .expect("the console's script")
        .to_owned();
    assert!(
        script.starts_with("/assets/console.") && script.ends_with(".js"),
        "{script}"
    );
    assert_eq!(
        html.matches("<script").count(),
        1,
        "one script, no inline one"
    );
    let (status, body) = get_page(&app, &script, &cookie).await;
    assert_eq!(status, 200);
    assert!(body.contains("data-poll") && !body.contains("eval("));
    // The fragment the script polls: the same partial, without the page around it.
    let (status, fragment) =
        get_page(&app, &format!("/admin/broadcasts/{id}/progress"), &cookie).await;
    assert_eq!(status, 200);
    assert!(
        fragment.trim_start().starts_with("<div id=\"progress\"") && !fragment.contains("<html"),
        "{fragment}"
    );

    // A long one, canceled while it runs (after a confirmation).
    many_users(&app, 630_000, 300).await;
    browser.click("nav.menu a[href='/admin/broadcasts']").await;
    browser.click("#compose").await;
    browser.fill("#text", "Maintenance tonight").await;
    browser.click("#preview-button").await;
    assert!(browser.text("#send").await.contains("320 users"));
    browser.click("#send").await;
    wait_until("the second broadcast under way", || async {
        telegram.sent_count() > 20
    })
    .await;
    browser.click("#cancel").await;
    assert!(browser.text("h1").await.contains("Cancel"));
    browser.screenshots("broadcast-cancel").await;
    browser.click("#confirm").await;
    assert!(browser.current_url().await.ends_with("?done=cancel"));
    assert_eq!(browser.live_text("#bc-status").await, "canceled");
    assert!(browser.find_all("#cancel").await.is_empty());
    // The batch in flight still goes out; the page follows it to the final count.
    wait_until_within(
        "the final count on the page",
        Duration::from_secs(30),
        || async {
            browser
                .live_attribute("#progress", "data-poll")
                .await
                .is_none()
                && browser.live_text("#bc-sent").await == (telegram.sent_count() - 20).to_string()
        },
    )
    .await;
    let sent: usize = browser.live_text("#bc-sent").await.parse().unwrap();
    assert!((1..320).contains(&sent), "stopped part way: {sent}");
    let status: BroadcastStatus = broadcasts::table
        .order(broadcasts::id.desc())
        .select(broadcasts::status)
        .first(conn)
        .await
        .unwrap();
    assert_eq!(status, BroadcastStatus::Canceled);
    assert_eq!(app.audit_rows("broadcast.cancel").await.len(), 1);
    browser.click("nav.menu a[href='/admin/broadcasts']").await;
    assert_eq!(browser.find_all("a.broadcast-link").await.len(), 2);
    browser.screenshots("broadcasts").await;
    browser.click("a.broadcast-link").await;
    browser.click("form[action='/admin/language'] button").await;
    assert!(browser.source().await.contains("Получателей"));
    browser.screenshots("broadcast-ru").await;

    // A form without the session's token changes nothing.
    let status = post_form(
        &app,
        "/admin/broadcasts/new",
        &cookie,
        &[("text", "forged"), ("segment", "all"), ("confirm", "yes")],
    )
    .await;
    assert_eq!(status, 403);
    let status = post_form(
        &app,
        &format!("/admin/broadcasts/{id}/cancel"),
        &cookie,
        &[("csrf", csrf.as_str()), ("confirm", "yes")],
    )
    .await;
    assert_eq!(status, 409, "a completed broadcast cannot be canceled");
    assert_eq!(app.audit_rows("broadcast.create").await.len(), 2);
    browser.quit().await;
    app.shutdown().await;
}

/// A job of a kind this replica does not run, made dead as if its attempts ran out.
async fn dead_job(app: &TestApp, user: i64) -> JobId {
    let conn = &mut app.db.connect().await;
    let id = jobs::enqueue(
        conn,
        NewJob::new("provision", serde_json::json!({"user_id": user})),
        5,
    )
    .await
    .unwrap()
    .unwrap();
    diesel::update(jobs_table::table.find(id))
        .set((
            jobs_table::state.eq(JobState::Dead),
            jobs_table::attempts.eq(5),
            jobs_table::last_error.eq("panel unreachable: connection refused"),
            jobs_table::finished_at.eq(diesel::dsl::now),
        ))
        .execute(conn)
        .await
        .unwrap();
    id
}

#[actix_rt::test]
async fn dead_jobs_are_retried_and_discarded_and_a_viewer_can_do_neither() {
    let Some(browser) = Browser::start().await else {
        return;
    };
    let app = spawn_app(&[]).await;
    app.create_admin("olga", PASSWORD, AdminRole::Operator)
        .await;
    app.create_admin("vera", PASSWORD, AdminRole::Viewer).await;
    let retried = dead_job(&app, 1).await;
    let discarded = dead_job(&app, 2).await;

    log_in(&browser, &app, "olga").await;
    browser.click("nav.menu a[href='/admin/jobs']").await;
    assert_eq!(browser.find_all("li.job").await.len(), 2);
    assert!(browser.source().await.contains("panel unreachable"));
    browser.screenshots("jobs").await;

    // Retry: pending again with fresh attempts, audit-logged.
    browser.click(&format!("#job-{retried} button.retry")).await;
    assert!(browser.text("#done").await.contains(&format!("#{retried}")));
    let conn = &mut app.db.connect().await;
    let (state, attempts): (JobState, i32) = jobs_table::table
        .find(retried)
        .select((jobs_table::state, jobs_table::attempts))
        .first(conn)
        .await
        .unwrap();
    assert_eq!((state, attempts), (JobState::Pending, 0));
    assert_eq!(
        browser.find_all("li.job").await.len(),
        1,
        "one dead job left"
    );
    assert_eq!(app.audit_rows("job.retry").await[0]["actor"], "admin:olga");

    // Discard: a confirmation first, then the job is gone; the audit log keeps it.
    browser
        .click(&format!("#job-{discarded} button.discard"))
        .await;
    assert!(browser.source().await.contains("panel unreachable"));
    browser.screenshots("job-discard").await;
    assert!(app.audit_rows("job.discard").await.is_empty());
    browser.click("#confirm").await;
    assert!(browser.source().await.contains("No dead jobs"));
    let left: i64 = jobs_table::table
        .find(discarded)
        .count()
        .get_result(conn)
        .await
        .unwrap();
    assert_eq!(left, 0);
    let rows = app.audit_rows("job.discard").await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["before"]["kind"], "provision");
    assert_eq!(
        rows[0]["before"]["last_error"],
        "panel unreachable: connection refused"
    );

    // Without a bot a broadcast cannot go out: the form says so (the API's 409), nothing is stored.
    let (cookie, csrf) = session_of(&browser).await;
    let form = [
        ("csrf", csrf.as_str()),
        ("text", "<b>Hello</b>"),
        ("segment", "all"),
        ("language", ""),
        ("confirm", "yes"),
    ];
    let resp = reqwest::Client::new()
        .post(app.url("/admin/broadcasts/new"))
        .header(header::COOKIE, &cookie)
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 409);
    let html = resp.text().await.unwrap();
    assert!(
        html.contains("id=\"refused\"") && html.contains("TELEGRAM_BOT_TOKEN"),
        "{html}"
    );
    assert!(
        html.contains("<strong>Hello</strong>"),
        "the preview stays: {html}"
    );
    assert!(app.audit_rows("broadcast.create").await.is_empty());

    // A viewer reads but finds no action; forged POSTs are refused.
    let dead = dead_job(&app, 3).await;
    browser.click("#logout").await;
    log_in(&browser, &app, "vera").await;
    let nav = browser.text("nav.menu").await;
    assert!(
        nav.contains("Jobs") && !nav.contains("Audit") && !nav.contains("Admins"),
        "{nav}"
    );
    browser.click("nav.menu a[href='/admin/jobs']").await;
    assert_eq!(browser.find_all("li.job").await.len(), 1);
    assert!(
        browser
            .find_all("button.retry, button.discard")
            .await
            .is_empty()
    );
    browser.screenshots("jobs-viewer").await;
    browser.click("nav.menu a[href='/admin/broadcasts']").await;
    assert!(browser.find_all("#compose").await.is_empty());
    browser.click("nav.menu a[href='/admin/syncs']").await;
    assert!(browser.find_all("button.run-now").await.is_empty());
    let (cookie, csrf) = session_of(&browser).await;
    let forged = [("csrf", csrf.as_str()), ("confirm", "yes")];
    for path in [
        format!("/admin/jobs/{dead}/retry"),
        format!("/admin/jobs/{dead}/discard"),
        "/admin/syncs/status".to_owned(),
        "/admin/broadcasts/1/cancel".to_owned(),
        "/admin/admins".to_owned(),
    ] {
        assert_eq!(
            post_form(&app, &path, &cookie, &forged).await,
            403,
            "{path}"
        );
    }
    let status = post_form(
        &app,
        "/admin/broadcasts/new",
        &cookie,
        &[
            ("csrf", csrf.as_str()),
            ("text", "forged"),
            ("segment", "all"),
            ("confirm", "yes"),
        ],
    )
    .await;
    assert_eq!(status, 403);
    for path in ["/admin/broadcasts/new", "/admin/audit", "/admin/admins"] {
        assert_eq!(get_page(&app, path, &cookie).await.0, 403, "{path}");
    }
    let state: JobState = jobs_table::table
        .find(dead)
        .select(jobs_table::state)
        .first(conn)
        .await
        .unwrap();
    assert_eq!(state, JobState::Dead, "untouched");
    assert_eq!(app.audit_rows("job.retry").await.len(), 1);
    browser.quit().await;
    app.shutdown().await;
}

#[actix_rt::test]
async fn an_admin_runs_a_sync_reads_the_audit_log_and_manages_accounts() {
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
    ])
    .await;
    app.create_admin("anna", PASSWORD, AdminRole::Admin).await;
    log_in(&browser, &app, "anna").await;

    // Syncs: run one now; the history shows it.
    browser.click("nav.menu a[href='/admin/syncs']").await;
    browser.click("#run-status").await;
    assert!(browser.current_url().await.ends_with("?done=status"));
    assert!(browser.text("#done").await.contains("finished"));
    assert!(!browser.find_all("table.runs tbody tr").await.is_empty());
    browser.screenshots("syncs").await;
    let rows = app.audit_rows("sync.run").await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["after"]["outcome"], "succeeded");
    // A run that fails says so, and the history keeps its error.
    panel.set_outage(true);
    browser.click("#run-stats").await;
    panel.set_outage(false);
    assert!(browser.current_url().await.ends_with("?failed=stats"));
    assert!(browser.text("#failed").await.contains("failed"));
    assert!(browser.text("#sync-stats").await.contains("failed"));
    assert!(!browser.find_all("table.runs .error-text").await.is_empty());
    let rows = app.audit_rows("sync.run").await;
    assert_eq!(rows[1]["after"]["outcome"], "failed");

    // Admin accounts: a refused form keeps what was typed and says why.
    browser.click("nav.menu a[href='/admin/admins']").await;
    browser.fill("#new-username", "boris").await;
    browser.fill("#new-password", "short").await;
    browser.click("#create-account").await;
    assert!(
        browser.text("#refused").await.contains("12"),
        "the password rule"
    );
    assert_eq!(
        browser.attribute("#new-username", "value").await.as_deref(),
        Some("boris")
    );
    browser.fill("#new-password", PASSWORD).await;
    browser.click_here("#new-role option[value=operator]").await;
    browser.click("#create-account").await;
    assert!(browser.text("#done").await.contains("boris"));
    assert!(browser.text("#account-boris").await.contains("operator"));
    let created = app.audit_rows("admin.create").await;
    assert_eq!(created.len(), 1);
    assert_eq!(created[0]["after"]["role"], "operator");

    // Change the role, disable, then delete after a confirmation.
    browser
        .click_here("#account-boris select option[value=viewer]")
        .await;
    browser.click("#account-boris button.set-role").await;
    assert!(browser.text("#account-boris").await.contains("viewer"));
    browser.click("#account-boris button.disable").await;
    assert!(browser.text("#account-boris").await.contains("disabled"));
    browser.screenshots("admins").await;
    browser.click("#account-boris button.delete").await;
    browser.screenshots("admin-delete").await;
    browser.click("#confirm").await;
    assert!(browser.find_all("#account-boris").await.is_empty());
    assert_eq!(app.audit_rows("admin.update").await.len(), 2);
    assert_eq!(app.audit_rows("admin.delete").await.len(), 1);
    // No forms on one's own account; the API's rule stands behind that.
    assert!(browser.find_all("#account-anna form").await.is_empty());

    // The audit log, filtered by action.
    browser.click("nav.menu a[href='/admin/audit']").await;
    let source = browser.source().await;
    let actions: Vec<&str> = source
        .split("class=\"audit-action\">")
        .skip(1)
        .map(|part| part.split('<').next().unwrap_or_default())
        .collect();
    assert_eq!(
        actions,
        [
            "admin.delete",
            "admin.update",
            "admin.update",
            "admin.create",
            "sync.run",
            "sync.run"
        ]
    );
    browser.screenshots("audit").await;
    browser.fill("#action", "admin.update").await;
    browser.click("#filter").await;
    assert_eq!(browser.find_all(".audit-entry").await.len(), 2);
    assert!(browser.text("main").await.contains("2 entries"));
    browser.fill("#action", "user*").await;
    browser.click("#filter").await;
    assert!(
        browser
            .text("main")
            .await
            .contains("prefix ends with a dot")
    );

    // 25 entries a page, the filter kept by the pager.
    diesel::sql_query(
        "INSERT INTO audit_log (actor, action, target_type, target_id) \
         SELECT 'cli', 'user.extend', 'user', g::text FROM generate_series(1, 30) g",
    )
    .execute(&mut app.db.connect().await)
    .await
    .unwrap();
    let (cookie, _) = session_of(&browser).await;
    let (status, html) = get_page(&app, "/admin/audit?action=user.", &cookie).await;
    assert_eq!(status, 200);
    assert!(
        html.contains("30 entries") && html.contains("1 / 2"),
        "{html}"
    );
    assert_eq!(html.matches("class=\"card audit-entry\"").count(), 25);
    // (askama writes the filter's `&` as `&#38;`.)
    assert!(
        html.contains("href=\"/admin/audit?admin_id=&#38;action=user.&amp;page=2\""),
        "{}",
        &html[html.find("class=\"pager\"").unwrap_or(0)..]
    );
    let (_, html) = get_page(&app, "/admin/audit?admin_id=&action=user.&page=2", &cookie).await;
    assert_eq!(html.matches("class=\"card audit-entry\"").count(), 5);
    browser.quit().await;
    app.shutdown().await;
}
