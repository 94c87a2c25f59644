//! The admins' side of the alerts in the bot: `/alerts` (what fires now, mute or unmute a kind)
//! and the buttons under alert messages (retry a dead job, mark a flagged payment reviewed; "open
//! the user" is the profile of `admin`). Only ADMIN_TELEGRAM_IDS get here (the handler checks);
//! every change is audit-logged with the actor `telegram:<id>`.

use diesel_async::AsyncConnection;
use serde_json::json;
use teloxide::types::InlineKeyboardButton;

use super::admin::{actor, audit_on as audit};
use super::callback::{AdminAction, Callback};
use super::context::Ctx;
use crate::db::alerts;
use crate::db::jobs::{self, RetryError};
use crate::domain::alerts::{Alert, AlertKind};
use crate::domain::{AlertId, JobId};
use crate::i18n::Args;
use crate::i18n::alerts::kind_title;
use crate::i18n::format_datetime;

/// Firing alerts `/alerts` lists.
const MAX_LISTED: usize = 20;

/// `/alerts`: the firing alerts and a mute toggle per kind.
pub async fn menu(ctx: &Ctx) -> anyhow::Result<()> {
    let lang = ctx.lang();
    let offset = ctx.deps.settings.notifications.display_offset;
    let (firing, muted) = {
        let mut conn = ctx.deps.pool.get().await?;
        (
            alerts::firing(&mut conn).await?,
            alerts::muted_kinds(&mut conn).await?,
        )
    };
    // A message holds 4096 characters: the newest ones, and how many more.
    let list = firing
        .iter()
        .take(MAX_LISTED)
        .map(|row| {
            let title = serde_json::from_value::<Alert>(row.payload.clone())
                .map(|a| {
                    crate::i18n::alerts::render(
                        &a,
                        row.id,
                        row.state,
                        Default::default(),
                        lang,
                        offset,
                    )
                    .subject
                })
                .unwrap_or_else(|_| kind_title(lang, row.kind));
            ctx.ta(
                "alerts-firing-line",
                &Args::new()
                    .text("title", &title)
                    .text("since", &format_datetime(lang, row.raised_at, offset)),
            )
        })
        .chain((firing.len() > MAX_LISTED).then(|| {
            ctx.ta(
                "alerts-more",
                &Args::new().number("count", (firing.len() - MAX_LISTED) as f64),
            )
        }))
        .collect::<Vec<_>>()
        .join("\n");
    let text = ctx.ta(
        "alerts-menu",
        &Args::new()
            .number("firing", firing.len() as f64)
            .html("list", list),
    );
    let keyboard = AlertKind::ALL
        .iter()
        .map(|&kind| {
            let is_muted = muted.contains(&kind);
            let (label, action) = if is_muted {
                ("alerts-kind-muted", AdminAction::Unmute(kind))
            } else {
                ("alerts-kind-on", AdminAction::Mute(kind))
            };
            vec![InlineKeyboardButton::callback(
                ctx.ta(label, &Args::new().text("kind", &kind_title(lang, kind))),
                Callback::Admin(action).encode(),
            )]
        })
        .collect();
    ctx.show(text, keyboard).await
}

/// Mutes or unmutes `kind`, then shows the menu again.
pub async fn set_muted(ctx: &Ctx, kind: AlertKind, muted: bool) -> anyhow::Result<()> {
    let mut conn = ctx.deps.pool.get().await?;
    conn.transaction::<_, diesel::result::Error, _>(async |conn| {
        let before = alerts::muted_kinds(conn).await?.contains(&kind);
        alerts::set_muted(conn, kind, muted).await?;
        audit(
            ctx,
            conn,
            "alerts.settings",
            ("alert_kind", kind.to_string()),
            json!({ "muted": before }),
            json!({ "muted": muted }),
        )
        .await
    })
    .await?;
    drop(conn);
    tracing::info!(%kind, muted, admin = ctx.telegram_id, "alert kind muted from the bot");
    menu(ctx).await
}

/// Marks the flagged payment of alert `id` reviewed: the alert ends ("reviewed by").
pub async fn reviewed(ctx: &Ctx, id: AlertId) -> anyhow::Result<()> {
    let attempts = ctx.deps.settings.jobs.max_attempts;
    let by = actor(ctx);
    let mut conn = ctx.deps.pool.get().await?;
    let resolved = conn
        .transaction::<_, diesel::result::Error, _>(async |conn| {
            let resolved = alerts::mark_reviewed(conn, id, &by, attempts).await?;
            if let Some(row) = &resolved {
                audit(
                    ctx,
                    conn,
                    "payment.reviewed",
                    ("alert", id.to_string()),
                    row.payload.clone(),
                    json!({ "reviewed_by": by }),
                )
                .await?;
            }
            Ok(resolved)
        })
        .await?;
    let text = if resolved.is_some() {
        "alerts-reviewed"
    } else {
        "alerts-not-flagged"
    };
    ctx.send(
        ctx.ta(text, &Args::new().text("alert", &id.to_string())),
        Vec::new(),
    )
    .await
}

/// Retries dead job `id` (as `POST /api/v1/jobs/{id}/retry`).
pub async fn retry(ctx: &Ctx, id: JobId) -> anyhow::Result<()> {
    let mut conn = ctx.deps.pool.get().await?;
    let outcome = conn
        .transaction::<_, RetryError, _>(async |conn| {
            let before = jobs::find(conn, id).await?;
            let job = jobs::retry_dead(conn, id).await?;
            audit(
                ctx,
                conn,
                "job.retry",
                ("job", id.to_string()),
                serde_json::to_value(&before).unwrap_or_default(),
                serde_json::to_value(&job).unwrap_or_default(),
            )
            .await?;
            Ok(job)
        })
        .await;
    let args = Args::new().text("job", &id.to_string());
    match outcome {
        Ok(job) => {
            tracing::info!(job = %id, kind = %job.kind, admin = ctx.telegram_id, "dead job retried from the bot");
            ctx.send(ctx.ta("alerts-retried", &args), Vec::new()).await
        }
        Err(RetryError::Db(e)) => Err(e.into()),
        Err(refused) => {
            ctx.send(
                ctx.ta(
                    "alerts-retry-refused",
                    &args.text("reason", &refused.to_string()),
                ),
                Vec::new(),
            )
            .await
        }
    }
}
