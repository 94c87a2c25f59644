//! The panel contract: one suite of behaviours every adapter of `clients::panel::Panel` must show,
//! run against each adapter's fake (Marzban 0.8.4, PasarGuard 5.2, Remnawave 2.8 and 3.x), each fake following its
//! reference document. Create, extend, disable, enable, reset, revoke, delete; paging over more
//! than 1,000 users; a panel answering 5xx, timing out or refusing the credentials; a user removed
//! on the panel behind the shop's back; and Marzban 0.8.4's DELETE that answers 500. At the end, a
//! shop with `PANEL_KIND=pasarguard` gives a trial and syncs through the same code as with Marzban.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use vpn_shop::actors::messages::{RunSync, SyncKind};
use vpn_shop::clients::panel::{NewUser, Panel, PanelError, UserQuery};
use vpn_shop::config::{RawConfig, Settings};
use vpn_shop::db::models::Subscription;
use vpn_shop::db::schema::subscriptions;
use vpn_shop::domain::PanelUserStatus;
use vpn_shop::domain::panel::{DesiredUser, Drift, WantedStatus};
use vpn_shop::metrics::Metrics;

use crate::support::app::spawn_app;
use crate::support::marzban::{self as mz, FakePanel};
use crate::support::panels::{PanelFake, Stored};
use crate::support::pasarguard::{self as pg, FakePasarGuard};
use crate::support::remnawave::{self as rw, FakeRemnawave};
use crate::support::telegram::{self as tg, FakeTelegram};

const GIB: i64 = 1 << 30;
const PREFIX: &str = "vpnshop_";

/// The adapter the shop would build from these settings.
pub(crate) fn panel(fake: &impl PanelFake, wrong_credentials: bool) -> Panel {
    let raw = RawConfig::layered(None, None, fake.env(wrong_credentials)).expect("raw settings");
    let settings = Settings::from_raw(&raw).expect("valid settings");
    let panel = settings.panel.expect("a panel is configured");
    Panel::new(&panel, Arc::new(Metrics::new().expect("metrics"))).expect("the adapter")
}

pub(crate) fn desired(days: i64, limit: i64) -> DesiredUser {
    DesiredUser {
        expire: (Utc::now() + chrono::TimeDelta::days(days)).timestamp(),
        data_limit: limit,
        status: WantedStatus::Active,
    }
}

pub(crate) async fn create(
    panel: &Panel,
    username: &str,
    wanted: &DesiredUser,
) -> vpn_shop::clients::panel::PanelUser {
    panel
        .create_user(&NewUser {
            username,
            telegram_id: Some(42),
            desired: wanted,
        })
        .await
        .expect("created")
}

/// Create, extend, disable, enable, reset, revoke, delete: each visible on the panel and in the
/// adapter's answer, in the shop's terms.
async fn a_user_lives_and_dies(fake: &impl PanelFake) {
    let panel = panel(fake, false);
    let name = "vpnshop_1001";
    let wanted = desired(30, 10 * GIB);
    let created = create(&panel, name, &wanted).await;
    assert_eq!(created.username, name);
    assert_eq!(created.expire, Some(wanted.expire));
    assert_eq!(created.data_limit, Some(10 * GIB));
    assert_eq!(created.status, PanelUserStatus::Active);
    assert!(
        created.subscription_url.starts_with("http"),
        "{}",
        created.subscription_url
    );
    assert!(fake.subscription_valid(&created.subscription_url));
    let stored = fake.stored(name).expect("on the panel");
    assert_eq!(
        stored,
        Stored {
            status: "active".into(),
            expire: Some(wanted.expire),
            data_limit: Some(10 * GIB),
            used: 0
        }
    );
    let again = panel
        .create_user(&NewUser {
            username: name,
            telegram_id: Some(42),
            desired: &wanted,
        })
        .await;
    assert_eq!(again.unwrap_err(), PanelError::AlreadyExists);

    // Extend: absolute values, so a repeat changes nothing.
    let read = panel.get_user(name).await.expect("read");
    assert_eq!(read.state(), created.state());
    let later = desired(60, 20 * GIB);
    let extend = Drift {
        expire: Some(later.expire),
        data_limit: Some(later.data_limit),
        status: None,
    };
    let extended = panel.modify_user(&read, &extend).await.expect("extended");
    let twice = panel
        .modify_user(&extended, &extend)
        .await
        .expect("repeated");
    assert_eq!(twice.state(), extended.state());
    assert_eq!(fake.stored(name).unwrap().expire, Some(later.expire));
    assert_eq!(fake.stored(name).unwrap().data_limit, Some(20 * GIB));

    let disabled = panel.set_enabled(&twice, false).await.expect("disabled");
    assert_eq!(disabled.status, PanelUserStatus::Disabled);
    assert_eq!(fake.stored(name).unwrap().status, "disabled");
    let enabled = panel.set_enabled(&disabled, true).await.expect("enabled");
    assert_eq!(enabled.status, PanelUserStatus::Active);
    assert_eq!(fake.stored(name).unwrap().status, "active");

    fake.set_used(name, 5 * GIB);
    assert_eq!(panel.get_user(name).await.unwrap().used_traffic, 5 * GIB);
    let reset = panel.reset_usage(name).await.expect("reset");
    assert_eq!(
        (reset.used_traffic, fake.stored(name).unwrap().used),
        (0, 0)
    );
    // What a reset does to a disabled user is the panel's own; the capability says which.
    panel.set_enabled(&reset, false).await.unwrap();
    let after = panel.reset_usage(name).await.unwrap();
    let kept = panel.capabilities().reset_keeps_status;
    assert_eq!(
        after.status,
        if kept {
            PanelUserStatus::Disabled
        } else {
            PanelUserStatus::Active
        },
        "{:?}",
        panel.kind()
    );

    let old_link = panel.get_user(name).await.unwrap().subscription_url;
    assert!(fake.subscription_valid(&old_link));
    let revoked = panel.revoke_subscription(name).await.expect("revoked");
    assert!(revoked.subscription_url.starts_with("http"));
    assert_ne!(revoked.subscription_url, old_link);
    assert!(
        !fake.subscription_valid(&old_link),
        "the old link still works"
    );
    assert!(fake.subscription_valid(&revoked.subscription_url));

    panel.delete_user(name).await.expect("deleted");
    assert!(fake.stored(name).is_none());
    panel
        .delete_user(name)
        .await
        .expect("a user already gone counts as deleted");
    assert_eq!(
        panel.get_user(name).await.unwrap_err(),
        PanelError::NotFound
    );
}

/// The syncs page through every shop user: over 1,000 of them, with others' users around.
async fn paging_reaches_every_shop_user(fake: &impl PanelFake) {
    let panel = panel(fake, false);
    for i in 0..1_050 {
        fake.seed(&format!("{PREFIX}{}", 5_000_000 + i), 0);
    }
    for i in 0..5 {
        fake.seed(&format!("other_{i}"), 0);
    }
    let query = UserQuery {
        search: Some(PREFIX),
        status: None,
    };
    let mut seen = HashSet::new();
    let mut offset = 0;
    loop {
        let page = panel.list_users(&query, offset, 100).await.expect("a page");
        assert_eq!(page.total, 1_050);
        offset += page.users.len() as u64;
        for user in page.users {
            assert!(user.username.starts_with(PREFIX), "{}", user.username);
            assert!(seen.insert(user.username), "a user on two pages");
        }
        if offset >= page.total {
            break;
        }
    }
    assert_eq!(seen.len(), 1_050);
    let active = UserQuery {
        search: Some(PREFIX),
        status: Some(PanelUserStatus::Active),
    };
    assert_eq!(panel.list_users(&active, 0, 1).await.unwrap().total, 1_050);
}

/// 5xx: reads are retried, a persistent failure is transient; a create is never repeated.
async fn server_errors_are_retried_or_reported(fake: &impl PanelFake) {
    let panel = panel(fake, false);
    fake.seed("vpnshop_7", 0);
    panel.probe().await.expect("logged in");
    fake.fail_next(1, 502);
    assert_eq!(
        panel.get_user("vpnshop_7").await.unwrap().username,
        "vpnshop_7"
    );
    fake.fail_next(5, 503);
    let e = panel.get_user("vpnshop_7").await.unwrap_err();
    assert!(
        matches!(e, PanelError::Server { status: 503, .. }) && e.is_transient(),
        "{e:?}"
    );
    fake.fail_next(1, 500);
    let e = panel
        .create_user(&NewUser {
            username: "vpnshop_8",
            telegram_id: Some(8),
            desired: &desired(30, 0),
        })
        .await
        .unwrap_err();
    assert!(matches!(e, PanelError::Server { status: 500, .. }), "{e:?}");
    assert!(
        fake.stored("vpnshop_8").is_none(),
        "a failed create applied"
    );
}

/// A panel that does not answer in time: reads give up as transient; a create that the panel
/// did but answered late is found by the next attempt (`AlreadyExists`).
async fn a_slow_panel_times_out(fake: &impl PanelFake) {
    let panel = panel(fake, false);
    fake.seed("vpnshop_9", 0);
    panel.probe().await.expect("logged in");
    fake.time_out_next(3, Duration::from_secs(4));
    let e = panel.get_user("vpnshop_9").await.unwrap_err();
    assert!(
        matches!(e, PanelError::Transport(_)) && e.is_transient(),
        "{e:?}"
    );
    let wanted = desired(30, 0);
    let new = NewUser {
        username: "vpnshop_10",
        telegram_id: Some(10),
        desired: &wanted,
    };
    fake.time_out_next(1, Duration::from_secs(4));
    assert!(matches!(
        panel.create_user(&new).await,
        Err(PanelError::Transport(_))
    ));
    assert!(
        fake.stored("vpnshop_10").is_some(),
        "the panel did the work"
    );
    assert_eq!(
        panel.create_user(&new).await.unwrap_err(),
        PanelError::AlreadyExists
    );
}

/// Wrong credentials: a clear refusal naming the settings to check.
async fn refused_credentials_name_the_settings(fake: &impl PanelFake, variable: &str) {
    let panel = panel(fake, true);
    let e = panel.probe().await.unwrap_err();
    match &e {
        PanelError::Unauthorized(detail) => assert!(detail.contains(variable), "{detail}"),
        other => panic!("not a refusal: {other:?}"),
    }
    assert!(matches!(
        panel.get_user("vpnshop_1").await,
        Err(PanelError::Unauthorized(_))
    ));
}

/// A user deleted on the panel by hand: reads say so, and writes do not pretend.
async fn a_user_removed_behind_the_shops_back(fake: &impl PanelFake) {
    let panel = panel(fake, false);
    let user = create(&panel, "vpnshop_11", &desired(30, 0)).await;
    assert!(fake.remove("vpnshop_11"));
    assert_eq!(
        panel.get_user("vpnshop_11").await.unwrap_err(),
        PanelError::NotFound
    );
    let extend = Drift {
        expire: Some(desired(60, 0).expire),
        ..Drift::default()
    };
    assert_eq!(
        panel.modify_user(&user, &extend).await.unwrap_err(),
        PanelError::NotFound
    );
    assert_eq!(
        panel.reset_usage("vpnshop_11").await.unwrap_err(),
        PanelError::NotFound
    );
    assert_eq!(
        panel.revoke_subscription("vpnshop_11").await.unwrap_err(),
        PanelError::NotFound
    );
    panel
        .delete_user("vpnshop_11")
        .await
        .expect("gone counts as deleted");
}

async fn stats_in_the_shops_terms(fake: &impl PanelFake) {
    let panel = panel(fake, false);
    fake.seed("vpnshop_12", 0);
    let user = create(&panel, "vpnshop_13", &desired(30, 0)).await;
    panel.set_enabled(&user, false).await.unwrap();
    let stats = panel.system().await.expect("stats");
    assert_eq!(
        (stats.total_user, stats.users_active, stats.users_disabled),
        (2, 1, 1)
    );
    assert!(stats.version.is_some());
}

macro_rules! contract {
    ($module:ident, $fake:expr, $variable:expr) => {
        mod $module {
            use super::*;

            #[actix_rt::test]
            async fn a_user_lives_and_dies() {
                super::a_user_lives_and_dies(&$fake).await;
            }

            #[actix_rt::test]
            async fn paging_reaches_every_shop_user() {
                super::paging_reaches_every_shop_user(&$fake).await;
            }

            #[actix_rt::test]
            async fn server_errors_are_retried_or_reported() {
                super::server_errors_are_retried_or_reported(&$fake).await;
            }

            #[actix_rt::test]
            async fn a_slow_panel_times_out() {
                super::a_slow_panel_times_out(&$fake).await;
            }

            #[actix_rt::test]
            async fn refused_credentials_name_the_settings() {
                super::refused_credentials_name_the_settings(&$fake, $variable).await;
            }

            #[actix_rt::test]
            async fn a_user_removed_behind_the_shops_back() {
                super::a_user_removed_behind_the_shops_back(&$fake).await;
            }

            #[actix_rt::test]
            async fn stats_in_the_shops_terms() {
                super::stats_in_the_shops_terms(&$fake).await;
            }
        }
    };
}

contract!(marzban, FakePanel::start(), "MARZBAN_PASSWORD");
contract!(pasarguard, FakePasarGuard::start(), "PASARGUARD_API_KEY");
contract!(
    remnawave_2_8,
    FakeRemnawave::start(rw::V2),
    "REMNAWAVE_TOKEN"
);
contract!(remnawave_3, FakeRemnawave::start(rw::V3), "REMNAWAVE_TOKEN");

/// Marzban 0.8.4 answers 500 to the DELETE of a user an env-file sudoer created, yet deletes it:
/// the adapter checks and counts it as deleted.
#[actix_rt::test]
async fn marzban_delete_answering_500_but_deleting_counts_as_deleted() {
    let fake = FakePanel::start();
    let mut env = fake.env(false);
    env.retain(|(k, _)| k != "MARZBAN_USERNAME" && k != "MARZBAN_PASSWORD");
    env.push(("MARZBAN_USERNAME".into(), mz::ENV_SUDO_USERNAME.into()));
    env.push(("MARZBAN_PASSWORD".into(), mz::ENV_SUDO_PASSWORD.into()));
    let settings = Settings::from_raw(&RawConfig::layered(None, None, env).unwrap()).unwrap();
    let panel = Panel::new(&settings.panel.unwrap(), Arc::new(Metrics::new().unwrap())).unwrap();
    create(&panel, "vpnshop_14", &desired(30, 0)).await;
    panel
        .delete_user("vpnshop_14")
        .await
        .expect("counted as deleted");
    assert!(fake.user("vpnshop_14").is_none());
    let deletes = fake
        .requests()
        .into_iter()
        .filter(|r| r.method == "DELETE")
        .map(|r| r.status)
        .collect::<Vec<_>>();
    assert_eq!(deletes, [500], "asked once, then read instead of repeating");
}

/// PasarGuard's create without groups gives no access, and `[]` on modify removes every group:
/// the adapter always sends the configured groups on create and never sends groups on modify.
#[actix_rt::test]
async fn pasarguard_users_keep_their_groups() {
    let fake = FakePasarGuard::start();
    let panel = panel(&fake, false);
    let user = create(&panel, "vpnshop_15", &desired(30, 0)).await;
    assert_eq!(fake.user("vpnshop_15").unwrap().group_ids, [1]);
    panel
        .modify_user(
            &user,
            &Drift {
                expire: Some(desired(90, 0).expire),
                ..Drift::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(fake.user("vpnshop_15").unwrap().group_ids, [1]);
    let bodies: Vec<_> = fake.requests().into_iter().filter_map(|r| r.body).collect();
    assert!(
        bodies[0]["group_ids"] == serde_json::json!([1]),
        "{bodies:?}"
    );
    assert!(bodies[1].get("group_ids").is_none(), "{bodies:?}");
    // Usernames are case-sensitive on PasarGuard: another case is another user.
    assert_eq!(
        panel.get_user("VPNSHOP_15").await.unwrap_err(),
        PanelError::NotFound
    );
}

/// A shop on PasarGuard: the trial is created on the panel with its groups and the link comes
/// from the adapter (absolute); a change made on the panel behind the shop's back is corrected
/// by the subscription sync, as with Marzban.
#[actix_rt::test]
async fn a_pasarguard_shop_gives_a_trial_and_syncs() {
    let telegram = FakeTelegram::start();
    let fake = FakePasarGuard::start();
    let mut env = fake.env(false);
    env.extend(
        [
            ("TELEGRAM_BOT_TOKEN", tg::TOKEN.to_owned()),
            ("TELEGRAM_API_URL", telegram.url()),
            (
                "PASARGUARD_SUBSCRIPTION_BASE_URL",
                "https://sub.example.com".to_owned(),
            ),
            ("JOB_POLL_INTERVAL", "200ms".to_owned()),
            ("JOB_BACKOFF_BASE", "100ms".to_owned()),
            ("JOB_BACKOFF_MAX", "500ms".to_owned()),
        ]
        .map(|(k, v)| (k.to_owned(), v)),
    );
    let pairs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let app = spawn_app(&pairs).await;
    telegram
        .wait_for_calls("setMyCommands", 2, Duration::from_secs(15))
        .await;
    let u = 2001;
    telegram.push_message(u, "/trial");
    crate::support::wait_until("the subscription link", || async {
        telegram
            .messages_to(u)
            .iter()
            .any(|m| m.text.contains("Your subscription link:"))
    })
    .await;
    let on_panel = fake.user("vpnshop_2001").expect("created on PasarGuard");
    assert_eq!(on_panel.group_ids, [1]);
    let sub: Subscription = subscriptions::table
        .filter(subscriptions::panel_username.eq("vpnshop_2001"))
        .select(Subscription::as_select())
        .first(&mut app.db.connect().await)
        .await
        .unwrap();
    assert_eq!(
        on_panel.expire.map(|t| t.timestamp()),
        Some(sub.expires_at.timestamp())
    );
    let url = sub.subscription_url.expect("the link stored");
    assert!(url.starts_with("https://sub.example.com/sub/"), "{url}");
    assert!(fake.subscription_valid(&url));
    assert!(
        telegram
            .messages_to(u)
            .iter()
            .any(|m| m.text.contains(&url)),
        "the user got the adapter's link"
    );

    // Behind the shop's back: shortened and disabled on the panel.
    fake.update_user("vpnshop_2001", |user| {
        user.expire = Some(Utc::now() + chrono::TimeDelta::days(1));
        user.status = "disabled".into();
    });
    let counts = app
        .app
        .marzban
        .as_ref()
        .expect("a panel syncer")
        .addr()
        .send(RunSync {
            kind: SyncKind::Subscriptions,
        })
        .await
        .unwrap()
        .unwrap()
        .expect("ran");
    assert_eq!((counts.checked, counts.updated), (1, 1));
    let fixed = fake.user("vpnshop_2001").unwrap();
    assert_eq!(fixed.status, "active");
    assert_eq!(
        fixed.expire.map(|t| t.timestamp()),
        Some(sub.expires_at.timestamp())
    );
    assert_eq!(fixed.group_ids, [1]);
}

/// PasarGuard without an API key: the admin login form, its token reused; a wrong password is
/// refused naming the settings to check.
#[actix_rt::test]
async fn pasarguard_signs_in_with_a_login_when_no_api_key_is_set() {
    let fake = FakePasarGuard::start();
    let login = |password: &str| {
        let mut env = fake.env(false);
        env.retain(|(k, _)| k != "PASARGUARD_API_KEY");
        env.push(("PASARGUARD_USERNAME".into(), pg::ADMIN_USERNAME.into()));
        env.push(("PASARGUARD_PASSWORD".into(), password.into()));
        let settings = Settings::from_raw(&RawConfig::layered(None, None, env).unwrap()).unwrap();
        Panel::new(&settings.panel.unwrap(), Arc::new(Metrics::new().unwrap())).unwrap()
    };
    let panel = login(pg::ADMIN_PASSWORD);
    create(&panel, "vpnshop_16", &desired(30, 0)).await;
    assert_eq!(
        panel.get_user("vpnshop_16").await.unwrap().username,
        "vpnshop_16"
    );
    assert_eq!(fake.logins(), 1, "the token is reused");
    let e = login("wrong").probe().await.unwrap_err();
    match e {
        PanelError::Unauthorized(detail) => {
            assert!(
                detail.contains("PASARGUARD_USERNAME and PASARGUARD_PASSWORD"),
                "{detail}"
            )
        }
        other => panic!("not a refusal: {other:?}"),
    }
}
