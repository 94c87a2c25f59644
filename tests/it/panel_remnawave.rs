//! What only the Remnawave adapter has to get right, beyond the panel contract it passes like the
//! others (`panel_contract.rs`): the version read from `GET /api/system/metadata` picks 2.8's
//! uuid routes or 3.x's id routes and refuses any other version, at start too; the traps of the
//! reference (the `X-Forwarded-*` headers, API tokens only, 400 on enable/disable of a user already
//! in that state, squads, a past expiry); extra headers for a proxy that guards the panel.

use std::sync::Arc;

use serde_json::json;
use vpn_shop::clients::panel::{NewUser, Panel, PanelError};
use vpn_shop::config::{RawConfig, Settings};
use vpn_shop::domain::PanelUserStatus;
use vpn_shop::domain::panel::Drift;
use vpn_shop::metrics::Metrics;

use crate::panel_contract::{create, desired, panel};
use crate::support::panels::PanelFake;
use crate::support::remnawave::{self as rw, FakeRemnawave};

fn panel_with(fake: &FakeRemnawave, extra: &[(&str, &str)]) -> Panel {
    let mut env = fake.env(false);
    env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    let settings = Settings::from_raw(&RawConfig::layered(None, None, env).unwrap()).unwrap();
    Panel::new(&settings.panel.unwrap(), Arc::new(Metrics::new().unwrap())).unwrap()
}

/// 2.8 and 3.x both work, each through its own routes, the version read once.
#[actix_rt::test]
async fn the_version_picks_uuid_routes_on_2_8_and_id_routes_on_3() {
    for (version, key, id_field, delete_status) in
        [(rw::V2, "{uuid}", "uuid", 200), (rw::V3, "{id}", "id", 204)]
    {
        let fake = FakeRemnawave::start(version);
        let panel = panel(&fake, false);
        assert_eq!(
            panel.check_version().await.unwrap().as_deref(),
            Some(version)
        );
        let user = create(&panel, "vpnshop_21", &desired(30, 0)).await;
        assert_eq!(user.uuid.is_some(), version == rw::V2, "{version}");
        assert!(user.id.is_some());
        let extend = Drift {
            expire: Some(desired(60, 0).expire),
            ..Drift::default()
        };
        let extended = panel.modify_user(&user, &extend).await.unwrap();
        panel.set_enabled(&extended, false).await.unwrap();
        panel.reset_usage("vpnshop_21").await.unwrap();
        panel.revoke_subscription("vpnshop_21").await.unwrap();
        panel.delete_user("vpnshop_21").await.unwrap();
        assert!(fake.user("vpnshop_21").is_none());

        let requests = fake.requests();
        let patch = requests.iter().find(|r| r.method == "PATCH").unwrap();
        let body = patch.body.as_ref().unwrap();
        assert!(body.get(id_field).is_some(), "{version}: {body}");
        assert!(body.get("activeInternalSquads").is_none(), "{body}");
        for action in ["disable", "reset-traffic", "revoke"] {
            let route = format!("/api/users/{key}/actions/{action}");
            assert_eq!(fake.count("POST", &route), 1, "{version}: {route}");
        }
        let delete = requests.iter().find(|r| r.method == "DELETE").unwrap();
        assert_eq!(
            (delete.route.as_str(), delete.status),
            (format!("/api/users/{key}").as_str(), delete_status)
        );
        assert_eq!(fake.count("GET", "/api/system/metadata"), 1, "read once");
        assert!(
            requests.iter().all(|r| !r.route.contains("by-telegram-id")),
            "3.x has no by-telegram-id lookups; the adapter never uses them"
        );
    }
}

/// A version the adapter does not speak is refused, clearly, before any user is touched; the
/// shop does not start on it.
#[actix_rt::test]
async fn an_unsupported_version_is_refused_at_start() {
    for version in ["2.7.4", "2.4.0", "4.0.0"] {
        let fake = FakeRemnawave::start(version);
        let panel = panel(&fake, false);
        let e = panel.get_user("vpnshop_1").await.unwrap_err();
        assert!(matches!(e, PanelError::Incompatible(_)), "{version}: {e:?}");
        assert!(e.to_string().contains("2.8 and 3.x"), "{e}");
        let e = panel
            .create_user(&NewUser {
                username: "vpnshop_1",
                telegram_id: Some(1),
                desired: &desired(30, 0),
            })
            .await
            .unwrap_err();
        assert!(matches!(e, PanelError::Incompatible(_)), "{e:?}");
        assert_eq!(fake.count("POST", "/api/users"), 0);
        assert!(
            fake.requests()
                .iter()
                .all(|r| r.route == "/api/system/metadata")
        );
    }

    let fake = FakeRemnawave::start("2.7.4");
    let db = crate::support::db::TestDb::new().await;
    let dir = tempfile::tempdir().unwrap();
    let env = fake.env(false);
    let pairs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let settings = crate::support::app::test_settings(&db, dir.path(), &pairs);
    let e = match vpn_shop::app::start(&settings, &db.url).await {
        Ok(_) => panic!("the shop started on Remnawave 2.7.4"),
        Err(e) => format!("{e:#}"),
    };
    assert!(
        e.contains("Remnawave 2.7.4 is not supported") && e.contains("2.8 and 3.x"),
        "{e}"
    );
}

/// The reference's traps: without the proxy headers the connection is dropped (the adapter
/// always sends them); API tokens only; enable/disable of a user already in that state answers
/// 400, which counts as done; users are created in the configured squads.
#[actix_rt::test]
async fn the_panels_traps_are_handled() {
    let fake = FakeRemnawave::start(rw::V3);
    let http = reqwest::Client::new();
    let bare = http
        .get(format!("{}/api/system/metadata", fake.url()))
        .bearer_auth(rw::API_TOKEN)
        .send()
        .await;
    assert!(bare.is_err(), "answered without X-Forwarded-*: {bare:?}");
    assert_eq!(fake.requests()[0].status, 0, "dropped without an answer");
    let admin = http
        .get(format!("{}/api/system/metadata", fake.url()))
        .bearer_auth(rw::ADMIN_JWT)
        .header("X-Forwarded-For", "127.0.0.1")
        .header("X-Forwarded-Proto", "https")
        .send()
        .await
        .unwrap();
    assert_eq!(admin.status(), 403, "an admin login is refused on the API");

    let panel = panel(&fake, false);
    let user = create(&panel, "vpnshop_22", &desired(30, 0)).await;
    assert_eq!(
        fake.user("vpnshop_22").unwrap().squads,
        [rw::SQUADS[0].0.to_owned()]
    );
    let body = fake
        .requests()
        .into_iter()
        .find(|r| r.method == "POST" && r.route == "/api/users")
        .and_then(|r| r.body)
        .unwrap();
    assert_eq!(body["activeInternalSquads"], json!([rw::SQUADS[0].0]));
    assert_eq!(body["trafficLimitStrategy"], "NO_RESET");
    assert_eq!(body["telegramId"], 42);
    assert!(body["expireAt"].as_str().unwrap().ends_with(".000Z"));

    // Already active: 400 A030, counted as done.
    let again = panel.set_enabled(&user, true).await.unwrap();
    assert_eq!(again.status, PanelUserStatus::Active);
    let disabled = panel.set_enabled(&user, false).await.unwrap();
    let twice = panel.set_enabled(&disabled, false).await.unwrap();
    assert_eq!(twice.status, PanelUserStatus::Disabled);
    let refused: Vec<_> = fake
        .requests()
        .into_iter()
        .filter(|r| r.route.contains("/actions/") && r.status == 400)
        .map(|r| r.route)
        .collect();
    assert_eq!(
        refused,
        [
            "/api/users/{id}/actions/enable",
            "/api/users/{id}/actions/disable"
        ]
    );

    // Remnawave refuses a past expiry: a subscription cut short to the past is disabled.
    panel.set_enabled(&twice, true).await.unwrap();
    let cut = Drift {
        expire: Some(desired(-1, 0).expire),
        ..Drift::default()
    };
    let cut = panel.modify_user(&twice, &cut).await.unwrap();
    assert_eq!(cut.status, PanelUserStatus::Disabled);
    assert!(
        fake.requests()
            .iter()
            .all(|r| r.status != 400 || r.route.contains("/actions/"))
    );

    // A user made by hand without squads is one the panel would not let connect.
    let mut bare = fake.new_user("other_1");
    bare.squads.clear();
    fake.insert_user(bare);
    assert_eq!(fake.users_without_squads(), ["other_1"]);
}

/// A proxy in front of the panel that wants its own header (caddy-with-auth's `X-Api-Key`):
/// refused without `REMNAWAVE_EXTRA_HEADERS`, served with it.
#[actix_rt::test]
async fn extra_headers_pass_a_guarding_proxy() {
    let fake = FakeRemnawave::start(rw::V2);
    fake.set_gate("X-Api-Key", "caddy-key");
    let e = panel(&fake, false).probe().await.unwrap_err();
    assert!(matches!(e, PanelError::Forbidden(_)), "{e:?}");
    let guarded = panel_with(
        &fake,
        &[("REMNAWAVE_EXTRA_HEADERS", r#"{"X-Api-Key": "caddy-key"}"#)],
    );
    guarded.probe().await.expect("through the proxy");
    create(&guarded, "vpnshop_23", &desired(30, 0)).await;
    assert!(fake.user("vpnshop_23").is_some());
}

/// Remnawave's signed user events at `/webhooks/panel`: a wrong signature or a stale timestamp
/// is refused (401); a genuine one brings the user up to date at once, without waiting for a
/// sync (here: a user disabled on the panel behind the shop's back is enabled again).
#[actix_rt::test]
async fn a_signed_panel_event_refreshes_the_user_and_a_forged_one_is_refused() {
    const SECRET: &str = "Xq7vK2mP9zR4tN8wB3cF6hJ1lD5sG0aY";
    let fake = FakeRemnawave::start(rw::V3);
    let mut env = fake.env(false);
    env.extend(
        [
            ("REMNAWAVE_WEBHOOK_SECRET", SECRET),
            ("JOB_POLL_INTERVAL", "200ms"),
            ("JOB_BACKOFF_BASE", "100ms"),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned())),
    );
    let pairs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let app = crate::support::app::spawn_app(&pairs).await;
    let ends = chrono::Utc::now() + chrono::TimeDelta::days(20);
    crate::support::db::Subscriber {
        expires_at: Some(ends),
        ..crate::support::db::Subscriber::new(3001)
    }
    .insert(&mut app.db.connect().await)
    .await;
    let mut user = fake.new_user("vpnshop_3001");
    user.expire_at = ends;
    fake.insert_user(user);
    // The syncs run once at start; the next ones are hours away.
    crate::support::wait_until("the syncs at start", || async {
        fake.count("GET", "/api/users") > 0
    })
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    fake.update_user("vpnshop_3001", |u| u.status = "DISABLED".into());
    let listed = fake.count("GET", "/api/users");

    let event = |timestamp: chrono::DateTime<chrono::Utc>| {
        let mut data = json!({"username": "vpnshop_3001", "id": 1, "status": "DISABLED"});
        data["expireAt"] = json!(ends.to_rfc3339());
        json!({"scope": "user", "event": "user.disabled", "timestamp": timestamp.to_rfc3339(),
            "data": data})
        .to_string()
    };
    let send = async |body: String, signature: String| {
        app.http
            .post(app.url("/webhooks/panel"))
            .header("Content-Type", "application/json")
            .header("User-Agent", "Remnawave")
            .header("X-Remnawave-Signature", signature)
            .body(body)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    };
    let body = event(chrono::Utc::now());
    let forged = vpn_shop::web::panel_webhook::signature("another-secret", body.as_bytes());
    assert_eq!(send(body.clone(), forged).await, 401);
    let stale = event(chrono::Utc::now() - chrono::TimeDelta::hours(1));
    let signed = vpn_shop::web::panel_webhook::signature(SECRET, stale.as_bytes());
    assert_eq!(send(stale, signed).await, 401);
    tokio::time::sleep(std::time::Duration::from_millis(600)).await;
    assert_eq!(
        fake.user("vpnshop_3001").unwrap().status,
        "DISABLED",
        "nothing done"
    );

    let signed = vpn_shop::web::panel_webhook::signature(SECRET, body.as_bytes());
    assert_eq!(send(body, signed).await, 200);
    crate::support::wait_until("the user enabled again", || async {
        fake.user("vpnshop_3001").unwrap().status == "ACTIVE"
    })
    .await;
    assert_eq!(
        fake.count("GET", "/api/users"),
        listed,
        "no sync ran: the event did it"
    );
}
