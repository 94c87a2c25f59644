//! Migrations and the agreement between the migrations, `schema.rs` and the row types.

use crate::support;

use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use support::db::TestDb;
use vpn_shop::db::{self, models::*, schema::*};

#[tokio::test]
async fn migrations_apply_on_an_empty_database_and_twice_in_a_row() {
    let db = TestDb::empty().await;
    let first = db::run_migrations(&db.url).await.expect("first run");
    assert!(!first.is_empty(), "an empty database gets every migration");
    let second = db::run_migrations(&db.url).await.expect("second run");
    assert!(
        second.is_empty(),
        "a migrated database gets nothing: {second:?}"
    );
}

#[tokio::test]
async fn concurrent_migrations_are_serialised() {
    let db = TestDb::empty().await;
    let (a, b) = tokio::join!(db::run_migrations(&db.url), db::run_migrations(&db.url));
    let (a, b) = (a.expect("replica a"), b.expect("replica b"));
    assert!(
        a.is_empty() != b.is_empty(),
        "exactly one replica applies them: {a:?} / {b:?}"
    );
    assert!(db::run_migrations(&db.url).await.unwrap().is_empty());
}

/// Loads every table through its row type: a column missing, renamed or of another type in the
/// database than in `schema.rs` / the model fails here rather than in production.
#[tokio::test]
async fn every_table_loads_through_its_row_type() {
    let db = TestDb::new().await;
    let conn = &mut db.connect().await;
    macro_rules! load_zero {
        ($($table:ident => $model:ty),+ $(,)?) => {$(
            let rows: Vec<$model> = $table::table
                .select(<$model>::as_select())
                .limit(0)
                .load(conn)
                .await
                .unwrap_or_else(|e| panic!("{}: {e}", stringify!($table)));
            assert!(rows.is_empty());
        )+};
    }
    load_zero!(
        plans => Plan,
        promo_codes => PromoCode,
        users => User,
        subscriptions => Subscription,
        payments => Payment,
        payment_events => PaymentEvent,
        payment_refunds => PaymentRefund,
        promo_redemptions => PromoRedemption,
        promo_reservations => PromoReservation,
        referrals => Referral,
        jobs => Job,
        broadcasts => Broadcast,
        notifications => Notification,
        alerts => AlertRow,
        alert_settings => AlertSetting,
        alert_watches => AlertWatch,
        sync_runs => SyncRun,
        panel_stats => PanelStats,
        admins => Admin,
        admin_sessions => db::admin_sessions::AdminSession,
        user_sessions => db::user_sessions::UserSession,
        email_logins => db::email_logins::EmailLogin,
        telegram_link_codes => db::link_codes::LinkCode,
        login_throttle => LoginThrottle,
        revoked_tokens => RevokedToken,
        audit_log => AuditEntry,
        bot_dialogues => BotDialogue,
        telegram_updates => TelegramUpdate,
        scheduled_tasks => ScheduledTask,
        notification_keys => NotificationKey,
        rate_slots => RateSlot,
        row_counts => RowCount,
        support_conversations => db::support::ConversationRow,
        support_messages => db::support::SupportMessageRow,
        support_forwards => db::support_posts::SupportForward,
    );

    // Every table of the database is covered above.
    #[derive(QueryableByName)]
    struct TableName {
        #[diesel(sql_type = diesel::sql_types::Text)]
        table_name: String,
    }
    let mut names: Vec<String> = diesel::sql_query(
        "SELECT table_name::text AS table_name FROM information_schema.tables \
         WHERE table_schema = 'public' AND table_name NOT LIKE '\\_\\_diesel%'",
    )
    .load::<TableName>(conn)
    .await
    .unwrap()
    .into_iter()
    .map(|t| t.table_name)
    .collect();
    names.sort();
    assert_eq!(names.len(), 35, "a table without a row type: {names:?}");
}

/// The seeded plans are read back with their typed fields (ids, money, currency enum).
#[tokio::test]
async fn default_plans_are_seeded() {
    let db = TestDb::new().await;
    let conn = &mut db.connect().await;
    let plans: Vec<Plan> = plans::table
        .select(Plan::as_select())
        .order(plans::sort_order)
        .load(conn)
        .await
        .unwrap();
    let days: Vec<i32> = plans.iter().map(|p| p.days).collect();
    assert_eq!(days, vec![30, 90, 180, 365]);
    assert!(
        plans
            .iter()
            .all(|p| p.active && p.price().minor > 0 && p.price_in_stars().is_some())
    );
    assert_eq!(plans[0].price().to_string(), "199.00 RUB");
}

/// A status spelling that no enum variant has is refused by the CHECK constraint.
#[tokio::test]
async fn check_constraints_refuse_unknown_statuses() {
    let db = TestDb::new().await;
    let conn = &mut db.connect().await;
    let err = diesel::sql_query(
        "INSERT INTO jobs (kind, state, max_attempts) VALUES ('maintenance', 'sleeping', 3)",
    )
    .execute(conn)
    .await
    .unwrap_err();
    assert!(err.to_string().contains("jobs_state_check"), "{err}");
}
