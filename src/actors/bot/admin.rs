//! Admin commands in the bot, for ADMIN_TELEGRAM_IDS: `/admin`, `/stats`, `/user`, `/grant`,
//! `/broadcast`, and the buttons under a user's profile. Every action is audit-logged with the
//! actor `telegram:<id>`.

use chrono::Utc;
use diesel_async::AsyncConnection;
use serde_json::json;
use teloxide::types::InlineKeyboardButton;

use super::callback::{AdminAction, Callback, SEGMENTS};
use super::context::{Ctx, Keyboard};
use super::storage::DialogueState;
use crate::actors::marzban::{PANEL_RESET_TRAFFIC, PANEL_REVOKE_SUB, UserJob, provision_job};
use crate::db::audit::{self, AuditRecord};
use crate::db::broadcasts::{self, Author};
use crate::db::jobs::{self, NewJob};
use crate::db::models::User;
use crate::db::subscriptions::Grant;
use crate::db::{PgConn, stats, subscriptions, users};
use crate::domain::broadcast::{Audience, Segment, validate};
use crate::domain::{Currency, Money, PaymentProvider, UserId};
use crate::i18n::{Args, format_bytes, format_date, format_money};

/// Days one grant may give (as in the admin API).
const MAX_GRANT_DAYS: i64 = 3650;

/// The admin as the audit log names them.
pub(super) fn actor(ctx: &Ctx) -> String {
    format!("telegram:{}", ctx.telegram_id)
}

/// Audit-logs `action` of the admin on `target` (its type and id).
pub(super) async fn audit_on(
    ctx: &Ctx,
    conn: &mut PgConn,
    action: &str,
    target: (&str, String),
    before: serde_json::Value,
    after: serde_json::Value,
) -> diesel::QueryResult<()> {
    audit::record(
        conn,
        AuditRecord {
            admin_id: None,
            actor: actor(ctx),
            action: action.into(),
            target_type: Some(target.0.into()),
            target_id: Some(target.1),
            before: Some(before),
            after: Some(after),
            remote_addr: None,
        },
    )
    .await
}

async fn audit(
    ctx: &Ctx,
    conn: &mut PgConn,
    action: &str,
    target: UserId,
    before: serde_json::Value,
    after: serde_json::Value,
) -> diesel::QueryResult<()> {
    audit_on(
        ctx,
        conn,
        action,
        ("user", target.to_string()),
        before,
        after,
    )
    .await
}

fn name_of(user: &User) -> String {
    match (&user.username, &user.first_name) {
        (Some(username), _) => format!("@{username}"),
        (None, Some(first)) => first.clone(),
        (None, None) => user.fallback_name(),
    }
}

/// "No user …" for what the admin typed or pressed.
async fn not_found(ctx: &Ctx, who: &str) -> anyhow::Result<()> {
    ctx.send(
        ctx.ta("admin-user-not-found", &Args::new().text("who", who)),
        Vec::new(),
    )
    .await
}

/// Why a broadcast text cannot be sent.
async fn invalid_broadcast(ctx: &Ctx, problem: &impl std::fmt::Display) -> anyhow::Result<()> {
    ctx.send(
        ctx.ta(
            "admin-broadcast-invalid",
            &Args::new().text("problem", &problem.to_string()),
        ),
        Vec::new(),
    )
    .await
}

pub async fn command(ctx: &Ctx, name: &str, args: &str) -> anyhow::Result<()> {
    match name {
        "stats" => stats(ctx).await,
        "user" => match args.split_whitespace().next() {
            Some(who) => user(ctx, who).await,
            None => ctx.send(ctx.t("admin-user-usage"), Vec::new()).await,
        },
        "grant" => {
            let mut parts = args.split_whitespace();
            let target = parts.next().and_then(|s| s.parse::<i64>().ok());
            let days = parts
                .next()
                .and_then(|s| s.parse::<i64>().ok())
                .filter(|d| (1..=MAX_GRANT_DAYS).contains(d));
            match (target, days, parts.next()) {
                (Some(telegram_id), Some(days), None) => {
                    let found = {
                        let mut conn = ctx.deps.pool.get().await?;
                        users::find_by_telegram_id(&mut conn, telegram_id).await?
                    };
                    match found {
                        Some(target) => grant(ctx, target.id, days).await,
                        None => not_found(ctx, &telegram_id.to_string()).await,
                    }
                }
                _ => ctx.send(ctx.t("admin-grant-usage"), Vec::new()).await,
            }
        }
        "alerts" => super::alerts::menu(ctx).await,
        "broadcast" => {
            ctx.set_state(DialogueState::BroadcastText).await?;
            ctx.send(
                ctx.t("admin-broadcast-ask"),
                vec![vec![ctx.button("button-cancel", Callback::Cancel)]],
            )
            .await
        }
        _ => menu(ctx).await,
    }
}

async fn menu(ctx: &Ctx) -> anyhow::Result<()> {
    ctx.show(
        ctx.t("admin-menu"),
        vec![vec![
            ctx.button("admin-button-stats", Callback::Admin(AdminAction::Stats)),
            ctx.button(
                "admin-button-broadcast",
                Callback::Admin(AdminAction::Broadcast),
            ),
        ]],
    )
    .await
}

/// Text an admin's dialogue waits for.
pub async fn text(ctx: &Ctx, state: DialogueState, text: &str) -> anyhow::Result<()> {
    match state {
        DialogueState::GrantDays { user_id } => match text.parse::<i64>() {
            Ok(days) if (1..=MAX_GRANT_DAYS).contains(&days) => {
                ctx.set_state(DialogueState::Idle).await?;
                grant(ctx, user_id, days).await
            }
            _ => ctx.send(ctx.t("admin-grant-usage"), Vec::new()).await,
        },
        DialogueState::BroadcastText | DialogueState::BroadcastReady { .. } => {
            broadcast_text(ctx, text).await
        }
        _ => Ok(()),
    }
}

async fn stats(ctx: &Ctx) -> anyhow::Result<()> {
    let now = Utc::now();
    let w = stats::Windows::at(now);
    let mut conn = ctx.deps.pool.get().await?;
    let users = stats::users(&mut conn, &w).await?;
    let subs = stats::subscriptions(&mut conn, &w).await?;
    let paying = stats::paying_users(&mut conn).await?;
    let revenue = stats::revenue_by_day(&mut conn, w.since_30d).await?;
    drop(conn);
    let lang = ctx.lang();
    // Per provider and currency: today and 30 days.
    let mut sums: Vec<(PaymentProvider, Currency, i64, i64)> = Vec::new();
    for row in &revenue {
        let net = row.amount_minor - row.refunded_minor;
        let today = if row.day >= w.today.date_naive() {
            net
        } else {
            0
        };
        match sums
            .iter_mut()
            .find(|(p, c, _, _)| *p == row.provider && *c == row.currency)
        {
            Some(entry) => {
                entry.2 += today;
                entry.3 += net;
            }
            None => sums.push((row.provider, row.currency, today, net)),
        }
    }
    let lines = |pick: fn(&(PaymentProvider, Currency, i64, i64)) -> i64| {
        let mut out = String::new();
        for entry in &sums {
            out.push('\n');
            out.push_str(&ctx.ta(
                "admin-stats-provider",
                &Args::new().text("provider", entry.0.as_str()).text(
                    "amount",
                    &format_money(lang, Money::new(pick(entry), entry.1)),
                ),
            ));
        }
        if out.is_empty() { " 0".into() } else { out }
    };
    let text = ctx.ta(
        "admin-stats",
        &Args::new()
            .number("users", users.total as f64)
            .number("new_today", users.new_today as f64)
            .number("active", subs.active as f64)
            .number("trials", subs.active_trials as f64)
            .number("paying", paying as f64)
            .text("today", &lines(|e| e.2))
            .text("month", &lines(|e| e.3)),
    );
    ctx.show(text, Vec::new()).await
}

/// `/user <telegram id | @username>`.
async fn user(ctx: &Ctx, who: &str) -> anyhow::Result<()> {
    let found = {
        let mut conn = ctx.deps.pool.get().await?;
        match who.parse::<i64>() {
            Ok(id) => users::find_by_telegram_id(&mut conn, id).await?,
            Err(_) => users::find_by_username(&mut conn, who).await?,
        }
    };
    match found {
        Some(user) => profile(ctx, user.id).await,
        None => not_found(ctx, who).await,
    }
}

async fn profile(ctx: &Ctx, id: UserId) -> anyhow::Result<()> {
    let lang = ctx.lang();
    let offset = ctx.deps.settings.notifications.display_offset;
    let (user, sub, payments) = {
        let mut conn = ctx.deps.pool.get().await?;
        let Some(user) = users::find(&mut conn, id).await? else {
            return Ok(());
        };
        let sub = subscriptions::find_by_user(&mut conn, id)
            .await?
            .map(|(s, _)| s);
        let payments = users::recent_payments(&mut conn, id, 5).await?;
        (user, sub, payments)
    };
    let yes_no = |b: bool| if b { "✔" } else { "—" };
    let subscription = match &sub {
        Some(s) => ctx.ta(
            "admin-user-sub",
            &Args::new()
                .text("state", s.status.as_str())
                .text("date", &format_date(lang, s.expires_at, offset))
                .text("used", &format_bytes(lang, s.traffic_used_bytes)),
        ),
        None => ctx.t("admin-user-no-sub"),
    };
    let mut payment_lines = String::new();
    for p in &payments {
        payment_lines.push('\n');
        payment_lines.push_str(
            &ctx.ta(
                "admin-user-payment",
                &Args::new()
                    .text("id", &p.id.to_string())
                    .text("date", &format_date(lang, p.created_at, offset))
                    .text(
                        "amount",
                        &format_money(lang, Money::new(p.amount_minor, p.currency)),
                    )
                    .text("provider", p.provider.as_str())
                    .text("status", p.status.as_str()),
            ),
        );
    }
    if payment_lines.is_empty() {
        payment_lines.push_str(" —");
    }
    let text = ctx.ta(
        "admin-user",
        &Args::new()
            .text("name", &name_of(&user))
            .text("id", &user.id.to_string())
            .text(
                "telegram_id",
                &user
                    .telegram_id
                    .map_or_else(|| "—".to_owned(), |id| id.to_string()),
            )
            .text("language", user.language.as_str())
            .text("joined", &format_date(lang, user.created_at, offset))
            .text(
                "email",
                &user
                    .email
                    .as_deref()
                    .map_or_else(|| "—".into(), str::to_owned),
            )
            .text("banned", yes_no(user.banned))
            .text("blocked", yes_no(user.bot_blocked))
            .text("subscription", &subscription)
            .text("payments", &payment_lines),
    );
    let admin = |id: &str, action| ctx.button(id, Callback::Admin(action));
    let mut keyboard: Keyboard = vec![vec![
        admin("admin-button-grant", AdminAction::Grant(user.id)),
        if user.banned {
            admin("admin-button-unban", AdminAction::Unban(user.id))
        } else {
            admin("admin-button-ban", AdminAction::Ban(user.id))
        },
    ]];
    if sub.is_some() {
        keyboard.push(vec![
            admin("admin-button-reset", AdminAction::ResetTraffic(user.id)),
            admin("admin-button-revoke", AdminAction::RevokeLink(user.id)),
        ]);
    }
    ctx.send(text, keyboard).await
}

pub async fn action(ctx: &Ctx, action: AdminAction) -> anyhow::Result<()> {
    match action {
        AdminAction::Stats => stats(ctx).await,
        AdminAction::Broadcast => command(ctx, "broadcast", "").await,
        AdminAction::Grant(id) => {
            let Some(target) = target(ctx, id).await? else {
                return Ok(());
            };
            ctx.set_state(DialogueState::GrantDays { user_id: id })
                .await?;
            ctx.send(
                ctx.ta(
                    "admin-grant-ask",
                    &Args::new().text("name", &name_of(&target)),
                ),
                vec![vec![ctx.button("button-cancel", Callback::Cancel)]],
            )
            .await
        }
        AdminAction::Ban(id) => ban(ctx, id, true).await,
        AdminAction::Unban(id) => ban(ctx, id, false).await,
        AdminAction::ResetTraffic(id) => panel_job(ctx, id, PANEL_RESET_TRAFFIC).await,
        AdminAction::RevokeLink(id) => panel_job(ctx, id, PANEL_REVOKE_SUB).await,
        AdminAction::Audience(segment) => choose_audience(ctx, segment).await,
        AdminAction::SendBroadcast => send_broadcast(ctx).await,
        AdminAction::User(id) => profile(ctx, id).await,
        AdminAction::RetryJob(id) => super::alerts::retry(ctx, id).await,
        AdminAction::Reviewed(order) => super::alerts::reviewed(ctx, order).await,
        AdminAction::Alerts => super::alerts::menu(ctx).await,
        AdminAction::Mute(kind) => super::alerts::set_muted(ctx, kind, true).await,
        AdminAction::Unmute(kind) => super::alerts::set_muted(ctx, kind, false).await,
    }
}

async fn target(ctx: &Ctx, id: UserId) -> anyhow::Result<Option<User>> {
    let found = {
        let mut conn = ctx.deps.pool.get().await?;
        users::find(&mut conn, id).await?
    };
    if found.is_none() {
        not_found(ctx, &id.to_string()).await?;
    }
    Ok(found)
}

/// Gives days (added to what remains), provisions, audits — as `POST /api/v1/users/{id}/extend`.
async fn grant(ctx: &Ctx, id: UserId, days: i64) -> anyhow::Result<()> {
    let days = i32::try_from(days.clamp(1, MAX_GRANT_DAYS)).unwrap_or(1);
    let prefix = ctx.deps.settings.panel_username_prefix().to_owned();
    let attempts = ctx.deps.settings.jobs.max_attempts;
    let mut conn = ctx.deps.pool.get().await?;
    let done = conn
        .transaction::<_, diesel::result::Error, _>(async |conn| {
            let Some(target) = users::lock(conn, id).await? else {
                return Ok(None);
            };
            let before = subscriptions::lock_by_user(conn, id)
                .await?
                .map(|s| s.expires_at);
            let name = target.panel_username(&prefix);
            let end = subscriptions::extend(conn, id, &name, days, Grant::Days).await?;
            jobs::enqueue(conn, provision_job(id), attempts).await?;
            audit(
                ctx,
                conn,
                "user.extend",
                id,
                json!({ "expires_at": before }),
                json!({ "expires_at": end, "days": days, "reason": "granted in the bot" }),
            )
            .await?;
            Ok(Some((target, end)))
        })
        .await?;
    let Some((target, end)) = done else {
        return not_found(ctx, &id.to_string()).await;
    };
    tracing::info!(user = %id, days, admin = ctx.telegram_id, "days granted in the bot");
    let lang = ctx.lang();
    ctx.send(
        ctx.ta(
            "admin-granted",
            &Args::new()
                .text("name", &name_of(&target))
                .text(
                    "days_text",
                    &crate::i18n::message(lang, "days", &Args::new().number("days", days)),
                )
                .text(
                    "date",
                    &crate::i18n::format_datetime(
                        lang,
                        end,
                        ctx.deps.settings.notifications.display_offset,
                    ),
                ),
        ),
        Vec::new(),
    )
    .await
}

async fn ban(ctx: &Ctx, id: UserId, banned: bool) -> anyhow::Result<()> {
    let attempts = ctx.deps.settings.jobs.max_attempts;
    let mut conn = ctx.deps.pool.get().await?;
    let target = conn
        .transaction::<_, diesel::result::Error, _>(async |conn| {
            let Some(target) = users::lock(conn, id).await? else {
                return Ok(None);
            };
            if target.banned != banned {
                if users::set_banned(conn, id, banned).await? {
                    jobs::enqueue(conn, provision_job(id), attempts).await?;
                }
                audit(
                    ctx,
                    conn,
                    "user.update",
                    id,
                    json!({ "banned": target.banned }),
                    json!({ "banned": banned }),
                )
                .await?;
            }
            Ok(Some(target))
        })
        .await?;
    let Some(target) = target else {
        return Ok(());
    };
    tracing::info!(user = %id, banned, admin = ctx.telegram_id, "ban changed in the bot");
    let id_text = if banned {
        "admin-banned"
    } else {
        "admin-unbanned"
    };
    ctx.send(
        ctx.ta(id_text, &Args::new().text("name", &name_of(&target))),
        Vec::new(),
    )
    .await
}

async fn panel_job(ctx: &Ctx, id: UserId, kind: &'static str) -> anyhow::Result<()> {
    let attempts = ctx.deps.settings.jobs.max_attempts;
    let mut conn = ctx.deps.pool.get().await?;
    let outcome = conn
        .transaction::<_, diesel::result::Error, _>(async |conn| {
            let Some(target) = users::find(conn, id).await? else {
                return Ok(None);
            };
            let Some((sub, _)) = subscriptions::find_by_user(conn, id).await? else {
                return Ok(Some((target, false)));
            };
            let job =
                jobs::enqueue(conn, NewJob::new(kind, UserJob { user_id: id }), attempts).await?;
            let action = if kind == PANEL_RESET_TRAFFIC {
                "user.reset_traffic"
            } else {
                "user.revoke_link"
            };
            audit(
                ctx,
                conn,
                action,
                id,
                json!({
                    "panel_username": sub.panel_username,
                    "subscription_url": sub.subscription_url,
                    "traffic_used_bytes": sub.traffic_used_bytes,
                }),
                json!({ "job_id": job, "kind": kind }),
            )
            .await?;
            Ok(Some((target, true)))
        })
        .await?;
    let Some((target, queued)) = outcome else {
        return Ok(());
    };
    let text = match (queued, kind) {
        (false, _) => "admin-no-subscription",
        (true, PANEL_RESET_TRAFFIC) => "admin-traffic-reset",
        (true, _) => "admin-link-revoked",
    };
    tracing::info!(user = %id, kind, queued, admin = ctx.telegram_id, "panel operation from the bot");
    ctx.send(
        ctx.ta(text, &Args::new().text("name", &name_of(&target))),
        Vec::new(),
    )
    .await
}

/// The composed text: checked like the API's broadcasts, then previewed; the audience next.
async fn broadcast_text(ctx: &Ctx, text: &str) -> anyhow::Result<()> {
    if let Err(e) = validate(text, None, None) {
        return invalid_broadcast(ctx, &e).await;
    }
    ctx.set_state(DialogueState::BroadcastReady {
        text: text.to_owned(),
        audience: None,
    })
    .await?;
    ctx.send(ctx.t("admin-broadcast-preview"), Vec::new())
        .await?;
    ctx.send(text.to_owned(), Vec::new()).await?;
    let keyboard = SEGMENTS
        .into_iter()
        .map(|segment| {
            vec![ctx.button(
                &format!("admin-broadcast-audience-{}", segment.as_str()),
                Callback::Admin(AdminAction::Audience(segment)),
            )]
        })
        .chain([vec![ctx.button("button-cancel", Callback::Cancel)]])
        .collect();
    ctx.send(ctx.t("admin-broadcast-audience"), keyboard).await
}

async fn choose_audience(ctx: &Ctx, segment: Segment) -> anyhow::Result<()> {
    let DialogueState::BroadcastReady { text, .. } = ctx.state().await? else {
        return ctx.send(ctx.t("callback-expired"), Vec::new()).await;
    };
    let count = {
        let mut conn = ctx.deps.pool.get().await?;
        broadcasts::count_audience(
            &mut conn,
            Audience {
                segment,
                language: None,
            },
        )
        .await?
    };
    ctx.set_state(DialogueState::BroadcastReady {
        text,
        audience: Some(segment),
    })
    .await?;
    let audience = ctx.t(&format!("admin-broadcast-audience-{}", segment.as_str()));
    ctx.show(
        ctx.ta(
            "admin-broadcast-confirm",
            &Args::new()
                .text("audience", &audience)
                .number("count", count as f64),
        ),
        vec![vec![
            ctx.button(
                "admin-broadcast-send",
                Callback::Admin(AdminAction::SendBroadcast),
            ),
            InlineKeyboardButton::callback(ctx.t("button-cancel"), Callback::Cancel.encode()),
        ]],
    )
    .await
}

async fn send_broadcast(ctx: &Ctx) -> anyhow::Result<()> {
    let DialogueState::BroadcastReady {
        text,
        audience: Some(segment),
    } = ctx.state().await?
    else {
        return ctx.send(ctx.t("callback-expired"), Vec::new()).await;
    };
    let message = match validate(&text, None, None) {
        Ok(message) => message,
        Err(e) => return invalid_broadcast(ctx, &e).await,
    };
    let attempts = ctx.deps.settings.jobs.max_attempts;
    let telegram_id = ctx.telegram_id;
    let audience = Audience {
        segment,
        language: None,
    };
    let mut conn = ctx.deps.pool.get().await?;
    let (broadcast, count) = conn
        .transaction::<_, diesel::result::Error, _>(async |conn| {
            let count = broadcasts::count_audience(conn, audience).await?;
            let broadcast = broadcasts::create_and_queue(
                conn,
                &message,
                audience,
                Author::Telegram(telegram_id),
                attempts,
            )
            .await?;
            audit::record(
                conn,
                AuditRecord {
                    admin_id: None,
                    actor: actor(ctx),
                    action: "broadcast.create".into(),
                    target_type: Some("broadcast".into()),
                    target_id: Some(broadcast.id.to_string()),
                    after: serde_json::to_value(&broadcast).ok(),
                    ..Default::default()
                },
            )
            .await?;
            Ok((broadcast, count))
        })
        .await?;
    drop(conn);
    ctx.set_state(DialogueState::Idle).await?;
    tracing::info!(broadcast = %broadcast.id, admin = telegram_id, "broadcast created in the bot");
    ctx.show(
        ctx.ta(
            "admin-broadcast-started",
            &Args::new()
                .text("id", &broadcast.id.to_string())
                .number("count", count as f64),
        ),
        Vec::new(),
    )
    .await
}
