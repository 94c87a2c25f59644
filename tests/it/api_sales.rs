//! The admin API of plans, promo codes, payments and refunds, and referrals, through the real
//! HTTP server, with the fake YooKassa and WATA behind the payment processor.

use crate::support;

use chrono::{Duration, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use serde_json::{Value, json};

use support::app::{TestApp, spawn_app};
use support::db::Subscriber;
use support::payments::Providers;
use support::wata::FakeWata;
use support::yookassa::FakeYooKassa;
use vpn_shop::db::schema::{payments, plans, referrals, subscriptions};
use vpn_shop::domain::{AdminRole, PaymentId, PaymentProvider, PaymentStatus, PlanId, UserId};

/// The app with YooKassa and WATA configured (so plans cost at least WATA's 10 ₽), and a token
/// of each role.
struct Sales {
    app: TestApp,
    yookassa: FakeYooKassa,
    _wata: FakeWata,
    admin: String,
    operator: String,
    viewer: String,
}

async fn sales() -> Sales {
    let providers = Providers::start();
    let app = spawn_app(&providers.env()).await;
    let Providers { yookassa, wata, .. } = providers;
    let admin = app.token_for(AdminRole::Admin).await;
    let operator = app.token_for(AdminRole::Operator).await;
    let viewer = app.token_for(AdminRole::Viewer).await;
    Sales {
        app,
        yookassa,
        _wata: wata,
        admin,
        operator,
        viewer,
    }
}

impl Sales {
    async fn conn(&self) -> AsyncPgConnection {
        self.app.db.connect().await
    }

    async fn call(
        &self,
        method: &str,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        self.app.call(method, path, Some(token), body).await
    }

    /// A plan made through the API: 30 days for 299 ₽ or 150 Stars.
    async fn plan(&self, name: &str) -> PlanId {
        let (status, plan) = self
            .call(
                "POST",
                "/api/v1/plans",
                &self.admin,
                Some(json!({"name": name, "days": 30, "price_minor": 29_900, "price_stars": 150})),
            )
            .await;
        assert_eq!(status, 201, "{plan}");
        PlanId(plan["id"].as_i64().unwrap())
    }

    /// A subscriber (ending in 5 days) who bought `plan` with YooKassa and paid.
    async fn paid_order(&self, telegram_id: i64, plan: PlanId) -> (UserId, PaymentId) {
        let user = Subscriber {
            expires_at: Some(Utc::now() + Duration::days(5)),
            ..Subscriber::new(telegram_id)
        }
        .insert(&mut self.conn().await)
        .await;
        let order = self.pending_order(user, plan).await;
        let external = self.external_id(order).await;
        self.yookassa.succeed(&external);
        let status = self
            .yookassa
            .send_notification(
                &self.app.url("/webhooks/yookassa"),
                &external,
                "payment.succeeded",
            )
            .await;
        assert_eq!(status, 200);
        (user, order)
    }

    async fn pending_order(&self, user: UserId, plan: PlanId) -> PaymentId {
        self.app
            .checkout_page(user, plan, PaymentProvider::Yookassa)
            .await
    }

    async fn external_id(&self, order: PaymentId) -> String {
        payments::table
            .find(order)
            .select(payments::external_id)
            .first::<Option<String>>(&mut self.conn().await)
            .await
            .unwrap()
            .expect("a YooKassa payment id")
    }

    async fn expires_at(&self, user: UserId) -> chrono::DateTime<Utc> {
        subscriptions::table
            .filter(subscriptions::user_id.eq(user))
            .select(subscriptions::expires_at)
            .first(&mut self.conn().await)
            .await
            .unwrap()
    }

    /// The one audit row of `action`.
    async fn audited_once(&self, action: &str) -> Value {
        let rows = self.app.audit_rows(action).await;
        assert_eq!(rows.len(), 1, "{action}: {rows:?}");
        let row = rows.into_iter().next().unwrap();
        assert!(row["admin_id"].as_i64().is_some(), "{row}");
        assert!(row["remote_addr"].as_str().is_some(), "{row}");
        row
    }

    async fn finish(self) {
        self.app.shutdown().await;
        drop(self.yookassa);
    }
}

fn field_of(reply: &Value) -> &str {
    assert_eq!(reply["error"]["code"], "validation_failed", "{reply}");
    reply["error"]["field"].as_str().unwrap_or_default()
}

// -- Plans ---------------------------------------------------------------------------------------

#[actix_rt::test]
async fn admins_create_list_change_and_remove_plans() {
    let s = sales().await;
    // Without the plans the migrations offer, so the lists below hold only this test's.
    diesel::delete(plans::table)
        .execute(&mut s.conn().await)
        .await
        .unwrap();
    let (status, plan) = s
        .call(
            "POST",
            "/api/v1/plans",
            &s.admin,
            Some(json!({
                "name": "  3 months ", "days": 90, "price_minor": 79_900, "price_stars": 400,
                "traffic_limit_bytes": 107_374_182_400_i64, "sort_order": 2,
            })),
        )
        .await;
    assert_eq!(status, 201, "{plan}");
    assert_eq!(plan["name"], "3 months");
    assert_eq!(
        (&plan["days"], &plan["price_minor"], &plan["currency"]),
        (&json!(90), &json!(79_900), &json!("RUB"))
    );
    assert_eq!(
        (
            &plan["price_stars"],
            &plan["traffic_limit_bytes"],
            &plan["sort_order"],
            &plan["active"]
        ),
        (
            &json!(400),
            &json!(107_374_182_400_i64),
            &json!(2),
            &json!(true)
        )
    );
    let id = plan["id"].as_i64().unwrap();
    let row = s.audited_once("plan.create").await;
    assert_eq!(row["target_type"], "plan");
    assert_eq!(row["target_id"], id.to_string());
    assert_eq!(row["actor"], "admin:admin-user");
    assert_eq!(row["after"]["price_minor"], 79_900);

    // A second, inactive plan shows only with include_inactive.
    let (status, hidden) = s
        .call(
            "POST",
            "/api/v1/plans",
            &s.admin,
            Some(json!({"name": "Old", "days": 30, "price_minor": 1_000, "active": false, "sort_order": 1})),
        )
        .await;
    assert_eq!(status, 201, "{hidden}");
    let (status, listed) = s.call("GET", "/api/v1/plans", &s.viewer, None).await;
    assert_eq!(status, 200);
    assert_eq!(listed.as_array().unwrap().len(), 1);
    assert_eq!(listed[0]["id"], id);
    let (_, all) = s
        .call(
            "GET",
            "/api/v1/plans?include_inactive=true",
            &s.viewer,
            None,
        )
        .await;
    let names: Vec<&str> = all
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Old", "3 months"], "in sort order");
    let (status, reply) = s
        .call(
            "GET",
            "/api/v1/plans?include_inactive=maybe",
            &s.viewer,
            None,
        )
        .await;
    assert_eq!((status, field_of(&reply)), (422, "include_inactive"));
    let (status, one) = s
        .call("GET", &format!("/api/v1/plans/{id}"), &s.viewer, None)
        .await;
    assert_eq!((status, &one["name"]), (200, &json!("3 months")));
    let (status, _) = s.call("GET", "/api/v1/plans/999999", &s.viewer, None).await;
    assert_eq!(status, 404);

    // Change: the price and no more Stars; the rest stays.
    let path = format!("/api/v1/plans/{id}");
    let (status, changed) = s
        .call(
            "PATCH",
            &path,
            &s.admin,
            Some(json!({"price_minor": 69_900, "price_stars": null})),
        )
        .await;
    assert_eq!(status, 200, "{changed}");
    assert_eq!(
        (
            &changed["price_minor"],
            &changed["price_stars"],
            &changed["days"]
        ),
        (&json!(69_900), &Value::Null, &json!(90))
    );
    let row = s.audited_once("plan.update").await;
    assert_eq!(
        (&row["before"]["price_minor"], &row["after"]["price_minor"]),
        (&json!(79_900), &json!(69_900))
    );
    assert_eq!(
        (&row["before"]["price_stars"], &row["after"]["price_stars"]),
        (&json!(400), &Value::Null)
    );
    let (status, reply) = s.call("PATCH", &path, &s.admin, Some(json!({}))).await;
    assert_eq!((status, field_of(&reply)), (422, "body"));
    let (status, reply) = s
        .call("PATCH", &path, &s.admin, Some(json!({"days": 4000})))
        .await;
    assert_eq!((status, field_of(&reply)), (422, "days"));
    let (status, _) = s
        .call(
            "PATCH",
            "/api/v1/plans/999999",
            &s.admin,
            Some(json!({"days": 10})),
        )
        .await;
    assert_eq!(status, 404);

    // A plan nobody bought is deleted; one a subscription names is deactivated.
    let hidden_id = hidden["id"].as_i64().unwrap();
    let (status, reply) = s
        .call(
            "DELETE",
            &format!("/api/v1/plans/{hidden_id}"),
            &s.admin,
            None,
        )
        .await;
    assert_eq!((status, reply), (200, json!({"deleted": true})));
    let row = s.audited_once("plan.delete").await;
    assert_eq!(
        (&row["target_id"], &row["before"]["name"], &row["after"]),
        (&json!(hidden_id.to_string()), &json!("Old"), &Value::Null)
    );
    let user = Subscriber {
        expires_at: Some(Utc::now() + Duration::days(3)),
        ..Subscriber::new(501)
    }
    .insert(&mut s.conn().await)
    .await;
    diesel::update(subscriptions::table.filter(subscriptions::user_id.eq(user)))
        .set(subscriptions::plan_id.eq(Some(PlanId(id))))
        .execute(&mut s.conn().await)
        .await
        .unwrap();
    let (status, reply) = s.call("DELETE", &path, &s.admin, None).await;
    assert_eq!((status, reply), (200, json!({"deactivated": true})));
    let row = s.audited_once("plan.deactivate").await;
    assert_eq!(
        (&row["before"]["active"], &row["after"]["active"]),
        (&json!(true), &json!(false))
    );
    let (_, one) = s.call("GET", &path, &s.viewer, None).await;
    assert_eq!(one["active"], false);
    let (status, _) = s
        .call("DELETE", "/api/v1/plans/999999", &s.admin, None)
        .await;
    assert_eq!(status, 404);
    s.finish().await;
}

#[actix_rt::test]
async fn plan_fields_are_checked_against_the_configured_providers_and_roles() {
    let s = sales().await;
    let valid = json!({"name": "Month", "days": 30, "price_minor": 29_900});
    for (change, field) in [
        (json!({"name": " "}), "name"),
        (json!({"name": "x".repeat(65)}), "name"),
        (json!({"days": 0}), "days"),
        (json!({"days": 3651}), "days"),
        // WATA is configured: 10 ₽ is the least a plan may cost.
        (json!({"price_minor": 999}), "price_minor"),
        (json!({"price_stars": 0}), "price_stars"),
        (json!({"traffic_limit_bytes": 0}), "traffic_limit_bytes"),
    ] {
        let mut body = valid.clone();
        body.as_object_mut()
            .unwrap()
            .extend(change.as_object().unwrap().clone());
        let (status, reply) = s.call("POST", "/api/v1/plans", &s.admin, Some(body)).await;
        assert_eq!((status, field_of(&reply)), (422, field), "{change}");
    }
    let (status, reply) = s
        .call(
            "POST",
            "/api/v1/plans",
            &s.admin,
            Some(json!({"name": "Month", "days": 30, "price_minor": 29_900, "prise": 1})),
        )
        .await;
    assert_eq!(status, 422, "unknown fields are refused: {reply}");
    let (status, plan) = s
        .call(
            "POST",
            "/api/v1/plans",
            &s.admin,
            Some(json!({"name": "Cheapest", "days": 1, "price_minor": 1_000})),
        )
        .await;
    assert_eq!((status, &plan["price_minor"]), (201, &json!(1_000)));
    assert_eq!(s.app.audit_rows("plan.create").await.len(), 1);

    let id = plan["id"].as_i64().unwrap();
    let path = format!("/api/v1/plans/{id}");
    s.app
        .assert_guarded("GET", "/api/v1/plans", None, AdminRole::Viewer)
        .await;
    s.app
        .assert_guarded("GET", &path, None, AdminRole::Viewer)
        .await;
    s.app
        .assert_guarded("POST", "/api/v1/plans", Some(valid), AdminRole::Admin)
        .await;
    s.app
        .assert_guarded("PATCH", &path, Some(json!({"days": 2})), AdminRole::Admin)
        .await;
    s.app
        .assert_guarded("DELETE", &path, None, AdminRole::Admin)
        .await;
    // Nothing changed through the refused requests.
    assert_eq!(s.app.audit_rows("plan.create").await.len(), 1);
    assert!(s.app.audit_rows("plan.update").await.is_empty());
    let (_, still) = s.call("GET", &path, &s.viewer, None).await;
    assert_eq!(still["days"], 1);
    s.finish().await;
}

// -- Promo codes ---------------------------------------------------------------------------------

#[actix_rt::test]
async fn operators_create_promo_codes_with_their_rules_and_find_them() {
    let s = sales().await;
    let plan = s.plan("Quarter").await;
    let (status, promo) = s
        .call(
            "POST",
            "/api/v1/promo-codes",
            &s.operator,
            Some(json!({
                "code": " winter-25 ", "kind": "percent", "value": 25, "max_uses": 100,
                "once_per_user": false, "new_users_only": true,
                "valid_from": "2026-12-01T03:00:00+03:00", "valid_until": "2027-01-01T00:00:00Z",
                "min_plan_id": plan.0, "note": "newsletter",
            })),
        )
        .await;
    assert_eq!(status, 201, "{promo}");
    assert_eq!(promo["code"], "WINTER-25");
    assert_eq!(
        (
            &promo["kind"],
            &promo["value"],
            &promo["max_uses"],
            &promo["uses_count"]
        ),
        (&json!("percent"), &json!(25), &json!(100), &json!(0))
    );
    assert_eq!(
        (
            &promo["once_per_user"],
            &promo["new_users_only"],
            &promo["active"]
        ),
        (&json!(false), &json!(true), &json!(true))
    );
    assert_eq!(promo["min_plan_days"], 30, "the plan's length");
    assert_eq!(
        chrono::DateTime::parse_from_rfc3339(promo["valid_from"].as_str().unwrap()).unwrap(),
        chrono::DateTime::parse_from_rfc3339("2026-12-01T00:00:00Z").unwrap()
    );
    assert_eq!(promo["note"], "newsletter");
    let row = s.audited_once("promo.create").await;
    assert_eq!(
        (
            &row["target_type"],
            &row["target_id"],
            &row["after"]["code"]
        ),
        (
            &json!("promo_code"),
            &json!(promo["id"].as_i64().unwrap().to_string()),
            &json!("WINTER-25")
        )
    );
    assert_eq!(row["actor"], "admin:operator-user");

    // The same code in another case is a duplicate.
    let (status, reply) = s
        .call(
            "POST",
            "/api/v1/promo-codes",
            &s.operator,
            Some(json!({"code": "Winter-25", "kind": "fixed", "value": 5_000})),
        )
        .await;
    assert_eq!((status, &reply["error"]["code"]), (409, &json!("conflict")));
    // Defaults: once per user, for everyone, no limits, active.
    for (code, kind, value) in [("FIXED-50", "fixed", 5_000), ("WEEK_FREE", "bonus_days", 7)] {
        let (status, made) = s
            .call(
                "POST",
                "/api/v1/promo-codes",
                &s.operator,
                Some(json!({"code": code, "kind": kind, "value": value})),
            )
            .await;
        assert_eq!(status, 201, "{made}");
        assert_eq!(
            (
                &made["once_per_user"],
                &made["new_users_only"],
                &made["max_uses"]
            ),
            (&json!(true), &json!(false), &Value::Null)
        );
    }
    let (status, _) = s
        .call(
            "PATCH",
            &format!("/api/v1/promo-codes/{}", promo["id"]),
            &s.operator,
            Some(json!({"active": false})),
        )
        .await;
    assert_eq!(status, 200);

    let codes = |page: &Value| -> Vec<String> {
        page["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["code"].as_str().unwrap().to_owned())
            .collect()
    };
    let (status, all) = s.call("GET", "/api/v1/promo-codes", &s.viewer, None).await;
    assert_eq!(status, 200);
    assert_eq!(
        codes(&all),
        ["WEEK_FREE", "FIXED-50", "WINTER-25"],
        "newest first"
    );
    assert_eq!(
        (&all["total"], &all["page"], &all["per_page"]),
        (&json!(3), &json!(1), &json!(50))
    );
    let (_, active) = s
        .call("GET", "/api/v1/promo-codes?active=true", &s.viewer, None)
        .await;
    assert_eq!(codes(&active), ["WEEK_FREE", "FIXED-50"]);
    let (_, inactive) = s
        .call(
            "GET",
            "/api/v1/promo-codes?active=false&q=win",
            &s.viewer,
            None,
        )
        .await;
    assert_eq!(codes(&inactive), ["WINTER-25"]);
    // `_` is a literal character, not LIKE's wildcard.
    let (_, prefix) = s
        .call("GET", "/api/v1/promo-codes?q=week_", &s.viewer, None)
        .await;
    assert_eq!(codes(&prefix), ["WEEK_FREE"]);
    let (_, none) = s
        .call("GET", "/api/v1/promo-codes?q=FIXED_", &s.viewer, None)
        .await;
    assert_eq!(none["total"], 0);
    let (_, paged) = s
        .call(
            "GET",
            "/api/v1/promo-codes?per_page=2&page=2",
            &s.viewer,
            None,
        )
        .await;
    assert_eq!(
        (codes(&paged), &paged["total"]),
        (vec!["WINTER-25".to_owned()], &json!(3))
    );
    let (status, reply) = s
        .call("GET", "/api/v1/promo-codes?per_page=500", &s.viewer, None)
        .await;
    assert_eq!((status, field_of(&reply)), (422, "per_page"));
    let (status, reply) = s
        .call("GET", "/api/v1/promo-codes?active=yes", &s.viewer, None)
        .await;
    assert_eq!((status, field_of(&reply)), (422, "active"));
    let (status, one) = s
        .call(
            "GET",
            &format!("/api/v1/promo-codes/{}", promo["id"]),
            &s.viewer,
            None,
        )
        .await;
    assert_eq!((status, &one["code"]), (200, &json!("WINTER-25")));
    let (status, _) = s
        .call("GET", "/api/v1/promo-codes/999999", &s.viewer, None)
        .await;
    assert_eq!(status, 404);
    s.finish().await;
}

#[actix_rt::test]
async fn promo_code_fields_are_checked_and_name_the_field() {
    let s = sales().await;
    let valid = json!({"code": "SPRING", "kind": "percent", "value": 10});
    for (change, field) in [
        (json!({"code": "AB"}), "code"),
        (json!({"code": "SPRING SALE"}), "code"),
        (json!({"code": "ВЕСНА"}), "code"),
        (json!({"kind": "discount"}), "kind"),
        (json!({"value": 101}), "value"),
        (json!({"value": 0}), "value"),
        (json!({"kind": "fixed", "value": 0}), "value"),
        (json!({"kind": "bonus_days", "value": 3651}), "value"),
        (json!({"max_uses": 0}), "max_uses"),
        (json!({"valid_from": "next monday"}), "valid_from"),
        (
            json!({"valid_from": "2027-01-01T00:00:00Z", "valid_until": "2026-12-01T00:00:00Z"}),
            "valid_until",
        ),
        (json!({"min_plan_id": 999_999}), "min_plan_id"),
        (json!({"note": "n".repeat(501)}), "note"),
    ] {
        let mut body = valid.clone();
        body.as_object_mut()
            .unwrap()
            .extend(change.as_object().unwrap().clone());
        let (status, reply) = s
            .call("POST", "/api/v1/promo-codes", &s.operator, Some(body))
            .await;
        assert_eq!((status, field_of(&reply)), (422, field), "{change}");
    }
    let (status, _) = s
        .call(
            "POST",
            "/api/v1/promo-codes",
            &s.operator,
            Some(json!({"code": "SPRING", "kind": "percent", "value": 10, "uses_count": 5})),
        )
        .await;
    assert_eq!(status, 422, "unknown (or computed) fields are refused");
    assert!(s.app.audit_rows("promo.create").await.is_empty());

    let (status, promo) = s
        .call(
            "POST",
            "/api/v1/promo-codes",
            &s.operator,
            Some(valid.clone()),
        )
        .await;
    assert_eq!(status, 201);
    let path = format!("/api/v1/promo-codes/{}", promo["id"]);
    // A change is checked as the whole code it makes.
    let (status, reply) = s
        .call("PATCH", &path, &s.operator, Some(json!({"value": 500})))
        .await;
    assert_eq!((status, field_of(&reply)), (422, "value"));
    let (status, reply) = s
        .call(
            "PATCH",
            &path,
            &s.operator,
            Some(json!({"kind": "fixed", "value": 500})),
        )
        .await;
    assert_eq!(
        (status, &reply["kind"], &reply["value"]),
        (200, &json!("fixed"), &json!(500))
    );

    s.app
        .assert_guarded("GET", "/api/v1/promo-codes", None, AdminRole::Viewer)
        .await;
    s.app
        .assert_guarded("GET", &path, None, AdminRole::Viewer)
        .await;
    s.app
        .assert_guarded(
            "GET",
            &format!("{path}/redemptions"),
            None,
            AdminRole::Viewer,
        )
        .await;
    s.app
        .assert_guarded(
            "POST",
            "/api/v1/promo-codes",
            Some(json!({"code": "OTHER", "kind": "percent", "value": 10})),
            AdminRole::Operator,
        )
        .await;
    s.app
        .assert_guarded(
            "PATCH",
            &path,
            Some(json!({"active": false})),
            AdminRole::Operator,
        )
        .await;
    s.app
        .assert_guarded("DELETE", &path, None, AdminRole::Operator)
        .await;
    assert_eq!(s.app.audit_rows("promo.create").await.len(), 1);
    assert_eq!(s.app.audit_rows("promo.update").await.len(), 1);
    s.finish().await;
}

#[actix_rt::test]
async fn promo_codes_are_changed_deleted_or_kept_and_their_redemptions_listed() {
    let s = sales().await;
    let plan = s.plan("Month").await;
    let create = |code: &str| {
        json!({"code": code, "kind": "bonus_days", "value": 7, "max_uses": 5,
               "valid_until": "2030-01-01T00:00:00Z", "min_plan_id": plan.0, "note": "x"})
    };
    let (_, used) = s
        .call(
            "POST",
            "/api/v1/promo-codes",
            &s.operator,
            Some(create("USED")),
        )
        .await;
    let (_, unused) = s
        .call(
            "POST",
            "/api/v1/promo-codes",
            &s.operator,
            Some(create("UNUSED")),
        )
        .await;
    let used_id = vpn_shop::domain::PromoCodeId(used["id"].as_i64().unwrap());
    let conn = &mut s.conn().await;
    let alice = Subscriber::new(7001).insert(conn).await;
    let bob = Subscriber::new(7002).insert(conn).await;
    for user in [alice, bob] {
        let code = vpn_shop::db::promo::lock(conn, used_id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            vpn_shop::db::promo::redeem_days(conn, &code, user, 7)
                .await
                .unwrap(),
            vpn_shop::db::promo::Redemption::Redeemed
        );
    }

    // Nullable fields are cleared with null; absent fields stay.
    let path = format!("/api/v1/promo-codes/{}", used_id);
    let (status, changed) = s
        .call(
            "PATCH",
            &path,
            &s.operator,
            Some(json!({"code": "used-2", "valid_until": null, "min_plan_id": null, "note": null})),
        )
        .await;
    assert_eq!(status, 200, "{changed}");
    assert_eq!(
        (
            &changed["code"],
            &changed["valid_until"],
            &changed["min_plan_days"],
            &changed["note"]
        ),
        (&json!("USED-2"), &Value::Null, &Value::Null, &Value::Null)
    );
    assert_eq!(
        (
            &changed["max_uses"],
            &changed["value"],
            &changed["uses_count"]
        ),
        (&json!(5), &json!(7), &json!(2))
    );
    let row = s.audited_once("promo.update").await;
    assert_eq!(
        (&row["before"]["code"], &row["after"]["code"]),
        (&json!("USED"), &json!("USED-2"))
    );
    assert_eq!(row["before"]["min_plan_days"], 30);
    // Not below the uses so far; not another code's code.
    let (status, reply) = s
        .call("PATCH", &path, &s.operator, Some(json!({"max_uses": 1})))
        .await;
    assert_eq!((status, field_of(&reply)), (422, "max_uses"));
    let (status, reply) = s
        .call("PATCH", &path, &s.operator, Some(json!({"code": "unused"})))
        .await;
    assert_eq!((status, &reply["error"]["code"]), (409, &json!("conflict")));
    let (status, reply) = s.call("PATCH", &path, &s.operator, Some(json!({}))).await;
    assert_eq!((status, field_of(&reply)), (422, "body"));
    let (status, _) = s
        .call(
            "PATCH",
            "/api/v1/promo-codes/999999",
            &s.operator,
            Some(json!({"active": false})),
        )
        .await;
    assert_eq!(status, 404);
    assert_eq!(s.app.audit_rows("promo.update").await.len(), 1);

    // Redemptions, newest first, with the users' Telegram ids.
    let (status, page) = s
        .call("GET", &format!("{path}/redemptions"), &s.viewer, None)
        .await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["total"], 2);
    let telegram_ids: Vec<i64> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["telegram_id"].as_i64().unwrap())
        .collect();
    assert_eq!(telegram_ids, [7002, 7001]);
    let first = &page["items"][0];
    assert_eq!(
        (
            &first["user_id"],
            &first["payment_id"],
            &first["bonus_days"],
            &first["discount_minor"]
        ),
        (&json!(bob.0), &Value::Null, &json!(7), &json!(0))
    );
    assert!(first["redeemed_at"].as_str().is_some());
    let (_, second) = s
        .call(
            "GET",
            &format!("{path}/redemptions?per_page=1&page=2"),
            &s.viewer,
            None,
        )
        .await;
    assert_eq!(second["items"][0]["telegram_id"], 7001);
    let (status, _) = s
        .call(
            "GET",
            "/api/v1/promo-codes/999999/redemptions",
            &s.viewer,
            None,
        )
        .await;
    assert_eq!(status, 404);

    // A redeemed code stays, inactive; an unused one goes.
    let (status, reply) = s.call("DELETE", &path, &s.operator, None).await;
    assert_eq!((status, reply), (200, json!({"deactivated": true})));
    let row = s.audited_once("promo.deactivate").await;
    assert_eq!(
        (&row["before"]["active"], &row["after"]["active"]),
        (&json!(true), &json!(false))
    );
    let (_, kept) = s.call("GET", &path, &s.viewer, None).await;
    assert_eq!(kept["active"], false);
    let unused_path = format!("/api/v1/promo-codes/{}", unused["id"]);
    let (status, reply) = s.call("DELETE", &unused_path, &s.operator, None).await;
    assert_eq!((status, reply), (200, json!({"deleted": true})));
    let row = s.audited_once("promo.delete").await;
    assert_eq!(
        (&row["before"]["code"], &row["after"]),
        (&json!("UNUSED"), &Value::Null)
    );
    let (status, _) = s.call("GET", &unused_path, &s.viewer, None).await;
    assert_eq!(status, 404);
    let (status, _) = s
        .call("DELETE", "/api/v1/promo-codes/999999", &s.operator, None)
        .await;
    assert_eq!(status, 404);
    s.finish().await;
}

// -- Payments and refunds ------------------------------------------------------------------------

#[actix_rt::test]
async fn payments_are_listed_with_filters_and_shown_with_their_events() {
    let s = sales().await;
    let plan = s.plan("Month").await;
    let (payer, paid) = s.paid_order(8001, plan).await;
    let other = Subscriber::new(8002).insert(&mut s.conn().await).await;
    let pending = s.pending_order(other, plan).await;

    let ids = |page: &Value| -> Vec<i64> {
        page["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["id"].as_i64().unwrap())
            .collect()
    };
    let (status, all) = s.call("GET", "/api/v1/payments", &s.viewer, None).await;
    assert_eq!(status, 200, "{all}");
    assert_eq!(ids(&all), [pending.0, paid.0], "newest first");
    assert_eq!(all["total"], 2);
    assert!(
        all["items"][0].get("raw_payload").is_none(),
        "only in the detail"
    );
    let (_, succeeded) = s
        .call(
            "GET",
            "/api/v1/payments?status=succeeded&provider=yookassa",
            &s.viewer,
            None,
        )
        .await;
    assert_eq!(ids(&succeeded), [paid.0]);
    assert_eq!(succeeded["items"][0]["user_id"], payer.0);
    assert_eq!(succeeded["items"][0]["amount_minor"], 29_900);
    let (_, of_user) = s
        .call(
            "GET",
            &format!("/api/v1/payments?user_id={}", other.0),
            &s.viewer,
            None,
        )
        .await;
    assert_eq!(ids(&of_user), [pending.0]);
    let (_, wata) = s
        .call("GET", "/api/v1/payments?provider=wata", &s.viewer, None)
        .await;
    assert_eq!(wata["total"], 0);
    let hour_ago = (Utc::now() - Duration::hours(1)).to_rfc3339();
    let in_an_hour = (Utc::now() + Duration::hours(1)).to_rfc3339();
    let window = format!(
        "/api/v1/payments?from={}&to={}",
        urlencode(&hour_ago),
        urlencode(&in_an_hour)
    );
    let (_, recent) = s.call("GET", &window, &s.viewer, None).await;
    assert_eq!(recent["total"], 2, "{recent}");
    let (_, future) = s
        .call(
            "GET",
            &format!("/api/v1/payments?from={}", urlencode(&in_an_hour)),
            &s.viewer,
            None,
        )
        .await;
    assert_eq!(future["total"], 0);
    let (_, paged) = s
        .call("GET", "/api/v1/payments?per_page=1&page=2", &s.viewer, None)
        .await;
    assert_eq!((ids(&paged), &paged["total"]), (vec![paid.0], &json!(2)));
    for (query, field) in [
        ("provider=paypal", "provider"),
        ("status=paid", "status"),
        ("from=yesterday", "from"),
        ("from=2026-12-01T00:00:00Z&to=2026-11-01T00:00:00Z", "to"),
        ("page=0", "page"),
        ("user_id=bob", "user_id"),
    ] {
        let (status, reply) = s
            .call("GET", &format!("/api/v1/payments?{query}"), &s.viewer, None)
            .await;
        assert_eq!((status, field_of(&reply)), (422, field), "{query}");
    }

    let (status, detail) = s
        .call("GET", &format!("/api/v1/payments/{paid}"), &s.viewer, None)
        .await;
    assert_eq!(status, 200, "{detail}");
    assert_eq!(
        (
            &detail["id"],
            &detail["status"],
            &detail["provider"],
            &detail["days"]
        ),
        (
            &json!(paid.0),
            &json!("succeeded"),
            &json!("yookassa"),
            &json!(30)
        )
    );
    assert!(detail["paid_at"].as_str().is_some());
    assert_eq!(detail["raw_payload"]["status"], "succeeded");
    let events = detail["events"].as_array().unwrap();
    assert_eq!(events.len(), 1, "{detail}");
    assert_eq!(
        (&events[0]["verdict"], &events[0]["event_type"]),
        (&json!("accepted"), &json!("payment.succeeded"))
    );
    assert!(events[0]["received_at"].as_str().is_some());
    assert!(events[0]["payload"].is_object());
    assert_eq!(detail["refunds"], json!([]));
    let (status, _) = s
        .call("GET", "/api/v1/payments/999999", &s.viewer, None)
        .await;
    assert_eq!(status, 404);
    s.app
        .assert_guarded("GET", "/api/v1/payments", None, AdminRole::Viewer)
        .await;
    s.app
        .assert_guarded(
            "GET",
            &format!("/api/v1/payments/{paid}"),
            None,
            AdminRole::Viewer,
        )
        .await;
    s.finish().await;
}

fn urlencode(text: &str) -> String {
    text.replace('+', "%2B").replace(':', "%3A")
}

#[actix_rt::test]
async fn admins_refund_payments_in_part_and_then_whole_through_the_provider() {
    let s = sales().await;
    let plan = s.plan("Month").await;
    let (user, order) = s.paid_order(9001, plan).await;
    let paid_until = s.expires_at(user).await;
    let path = format!("/api/v1/payments/{order}/refund");

    // Operators may not; bad amounts and reasons are refused before the provider is asked.
    s.app
        .assert_guarded(
            "POST",
            &path,
            Some(json!({"reason": "test"})),
            AdminRole::Admin,
        )
        .await;
    for (body, field) in [
        (json!({"amount_minor": 0, "reason": "x"}), "amount_minor"),
        (
            json!({"amount_minor": 29_901, "reason": "x"}),
            "amount_minor",
        ),
        (json!({"reason": "  "}), "reason"),
        (json!({"reason": "r".repeat(501)}), "reason"),
    ] {
        let (status, reply) = s.call("POST", &path, &s.admin, Some(body.clone())).await;
        assert_eq!((status, field_of(&reply)), (422, field), "{body}");
    }
    assert!(s.yookassa.refunds().is_empty());

    // Half: 15 of the 30 days go back.
    let (status, half) = s
        .call(
            "POST",
            &path,
            &s.admin,
            Some(json!({"amount_minor": 14_950, "reason": "could not connect for two weeks"})),
        )
        .await;
    assert_eq!(status, 200, "{half}");
    assert_eq!(
        (
            &half["refunded_minor"],
            &half["currency"],
            &half["days_taken_back"]
        ),
        (&json!(14_950), &json!("RUB"), &json!(15))
    );
    assert_eq!(
        (
            &half["payment"]["status"],
            &half["payment"]["refunded_minor"]
        ),
        (&json!("refunded"), &json!(14_950))
    );
    let now_ends = s.expires_at(user).await;
    assert_eq!(paid_until - now_ends, Duration::days(15));
    let refunds = s.yookassa.refunds();
    assert_eq!(refunds.len(), 1);
    assert_eq!(refunds[0]["amount"]["value"], "149.50");
    assert_eq!(refunds[0]["description"], "could not connect for two weeks");
    // The processor wrote the audit row, with the admin who asked.
    let row = s.audited_once("payment.refund").await;
    assert_eq!(
        (&row["actor"], &row["target_type"], &row["target_id"]),
        (
            &json!("admin:admin-user"),
            &json!("payment"),
            &json!(order.0.to_string())
        )
    );
    assert_eq!(row["after"]["reason"], "could not connect for two weeks");

    // More than remains is refused; the rest (no amount) is refunded.
    let (status, reply) = s
        .call(
            "POST",
            &path,
            &s.admin,
            Some(json!({"amount_minor": 20_000, "reason": "again"})),
        )
        .await;
    assert_eq!((status, field_of(&reply)), (422, "amount_minor"));
    let (status, rest) = s
        .call("POST", &path, &s.admin, Some(json!({"reason": "the rest"})))
        .await;
    assert_eq!(status, 200, "{rest}");
    assert_eq!(
        (
            &rest["refunded_minor"],
            &rest["days_taken_back"],
            &rest["payment"]["refunded_minor"]
        ),
        (&json!(14_950), &json!(15), &json!(29_900))
    );
    assert_eq!(paid_until - s.expires_at(user).await, Duration::days(30));
    assert_eq!(s.app.audit_rows("payment.refund").await.len(), 2);
    let (status, reply) = s
        .call(
            "POST",
            &path,
            &s.admin,
            Some(json!({"reason": "once more"})),
        )
        .await;
    assert_eq!(
        (status, field_of(&reply)),
        (422, "amount_minor"),
        "nothing remains"
    );

    let (_, detail) = s
        .call("GET", &format!("/api/v1/payments/{order}"), &s.viewer, None)
        .await;
    let refunds = detail["refunds"].as_array().unwrap();
    assert_eq!(refunds.len(), 2, "{detail}");
    assert_eq!(
        (&refunds[0]["amount_minor"], &refunds[0]["days_taken_back"]),
        (&json!(14_950), &json!(15))
    );
    assert!(refunds[1]["external_id"].as_str().is_some());
    assert_eq!(detail["status"], "refunded");
    s.finish().await;
}

#[actix_rt::test]
async fn refunds_of_unpaid_unknown_or_refused_payments_are_errors() {
    let s = sales().await;
    let plan = s.plan("Month").await;
    let user = Subscriber::new(9101).insert(&mut s.conn().await).await;
    let pending = s.pending_order(user, plan).await;
    let body = Some(json!({"reason": "test"}));
    let (status, reply) = s
        .call(
            "POST",
            &format!("/api/v1/payments/{pending}/refund"),
            &s.admin,
            body.clone(),
        )
        .await;
    assert_eq!(
        (status, &reply["error"]["code"]),
        (409, &json!("conflict")),
        "{reply}"
    );
    assert!(
        reply["error"]["message"]
            .as_str()
            .unwrap()
            .contains("pending")
    );
    let (status, _) = s
        .call(
            "POST",
            "/api/v1/payments/999999/refund",
            &s.admin,
            body.clone(),
        )
        .await;
    assert_eq!(status, 404);

    // The provider refuses: 409 with its message; nothing changes.
    let (_, paid) = s.paid_order(9102, plan).await;
    s.yookassa.fail_next(1, 400);
    let (status, reply) = s
        .call(
            "POST",
            &format!("/api/v1/payments/{paid}/refund"),
            &s.admin,
            body,
        )
        .await;
    assert_eq!(
        (status, &reply["error"]["code"]),
        (409, &json!("conflict")),
        "{reply}"
    );
    assert!(
        reply["error"]["message"]
            .as_str()
            .unwrap()
            .contains("refused"),
        "{reply}"
    );
    let status: PaymentStatus = payments::table
        .find(paid)
        .select(payments::status)
        .first(&mut s.conn().await)
        .await
        .unwrap();
    assert_eq!(status, PaymentStatus::Succeeded);
    assert!(s.app.audit_rows("payment.refund").await.is_empty());
    s.finish().await;
}

// -- Referrals -----------------------------------------------------------------------------------

#[actix_rt::test]
async fn referrals_show_the_top_inviters_and_the_totals() {
    let s = sales().await;
    let conn = &mut s.conn().await;
    let anna = Subscriber::new(100).insert(conn).await;
    let boris = Subscriber::new(200).insert(conn).await;
    let mut invited = Vec::new();
    for telegram_id in 101..=103 {
        invited.push((anna, Subscriber::new(telegram_id).insert(conn).await));
    }
    invited.push((boris, Subscriber::new(201).insert(conn).await));
    for (inviter, invitee) in &invited {
        diesel::insert_into(referrals::table)
            .values((
                referrals::inviter_id.eq(inviter),
                referrals::invitee_id.eq(invitee),
                referrals::invitee_bonus_days.eq(3),
            ))
            .execute(conn)
            .await
            .unwrap();
    }
    // Anna's first invitee paid, and she got 7 days for it; a free order does not count.
    let payer = invited[0].1;
    let order: PaymentId = diesel::insert_into(payments::table)
        .values((
            payments::user_id.eq(payer),
            payments::provider.eq(PaymentProvider::Yookassa),
            payments::status.eq(PaymentStatus::Succeeded),
            payments::amount_minor.eq(29_900),
            payments::currency.eq(vpn_shop::domain::Currency::Rub),
            payments::days.eq(30),
            payments::paid_at.eq(Some(Utc::now())),
        ))
        .returning(payments::id)
        .get_result(conn)
        .await
        .unwrap();
    diesel::insert_into(payments::table)
        .values((
            payments::user_id.eq(invited[1].1),
            payments::provider.eq(PaymentProvider::Free),
            payments::status.eq(PaymentStatus::Succeeded),
            payments::amount_minor.eq(0),
            payments::currency.eq(vpn_shop::domain::Currency::Rub),
            payments::days.eq(30),
            payments::paid_at.eq(Some(Utc::now())),
        ))
        .execute(conn)
        .await
        .unwrap();
    diesel::update(referrals::table.filter(referrals::invitee_id.eq(payer)))
        .set((
            referrals::inviter_bonus_days.eq(7),
            referrals::inviter_rewarded_at.eq(Some(Utc::now())),
            referrals::rewarded_payment_id.eq(Some(order)),
        ))
        .execute(conn)
        .await
        .unwrap();

    let (status, report) = s.call("GET", "/api/v1/referrals", &s.viewer, None).await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(
        (&report["total"], &report["page"], &report["per_page"]),
        (&json!(2), &json!(1), &json!(50))
    );
    assert_eq!(
        report["items"][0],
        json!({"user_id": anna.0, "telegram_id": 100, "username": null, "invited": 3,
               "paying_invited": 1, "bonus_days": 7})
    );
    assert_eq!(
        report["items"][1],
        json!({"user_id": boris.0, "telegram_id": 200, "username": null, "invited": 1,
               "paying_invited": 0, "bonus_days": 0})
    );
    assert_eq!(
        report["totals"],
        json!({"referrals": 4, "bonuses_granted": 5, "inviter_bonuses": 1, "invitee_bonuses": 4,
               "days_granted": 19, "inviter_days": 7, "invitee_days": 12})
    );
    let (_, second) = s
        .call(
            "GET",
            "/api/v1/referrals?per_page=1&page=2",
            &s.viewer,
            None,
        )
        .await;
    assert_eq!(second["items"].as_array().unwrap().len(), 1);
    assert_eq!(
        (&second["items"][0]["user_id"], &second["total"]),
        (&json!(boris.0), &json!(2))
    );
    let (status, reply) = s
        .call("GET", "/api/v1/referrals?per_page=0", &s.viewer, None)
        .await;
    assert_eq!((status, field_of(&reply)), (422, "per_page"));
    s.app
        .assert_guarded("GET", "/api/v1/referrals", None, AdminRole::Viewer)
        .await;
    s.finish().await;
}

/// PostgreSQL keeps no NUL character in text: a name or note with one (`\u0000` in the JSON) is
/// the client's mistake, answered 400 naming it — not a 500 from the failed insert (found by
/// `properties::admin_api_takes_any_json`).
#[actix_rt::test]
async fn text_with_a_nul_character_is_refused_as_a_bad_request() {
    let s = sales().await;
    let (status, body) = s
        .call(
            "POST",
            "/api/v1/plans",
            &s.admin,
            Some(json!({"name": "a\u{0}b", "days": 30, "price_minor": 29_900})),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], "bad_request");
    assert!(
        body["error"]["message"].as_str().unwrap().contains("NUL"),
        "{body}"
    );
    let count: i64 = plans::table
        .filter(plans::name.eq("ab"))
        .count()
        .get_result(&mut s.conn().await)
        .await
        .unwrap();
    assert_eq!(count, 0);
}
