//! Broadcast delivery: the audience in user-id order, under `BROADCAST_RATE`, a few messages in
//! flight, in slices of a few seconds (a slice queues the next, so shutdowns and restarts only
//! ever wait for one slice). Each recipient is claimed before the message goes out and never
//! claimed twice: after a crash, a message whose outcome is unknown is counted failed, not resent.
//! A subscriber without Telegram gets the broadcast by email.

use std::time::{Duration, Instant};

use futures_util::StreamExt;

use super::Shared;
use super::telegram::{MessageButton, SendError};
use crate::actors::job_runner::JobError;
use crate::db::broadcasts::{self, Recipient};
use crate::db::models::Broadcast;
use crate::db::notifications::{self, Delivery, Reclaim};
use crate::db::users;
use crate::domain::broadcast::Audience;
use crate::domain::{BroadcastId, BroadcastStatus, NotificationChannel};

/// Recipients read and sent per round (the progress is recorded after each): about two seconds
/// of sending, within these bounds.
const BATCH_MIN: i64 = 10;
const BATCH_MAX: i64 = 100;
/// Messages in flight at once (the rate budget spaces them).
const IN_FLIGHT: usize = 8;
/// Length of one slice of delivery before the next is queued.
const SLICE: Duration = Duration::from_secs(10);

enum Message {
    Sent,
    Blocked,
    Failed,
    /// Claimed by an earlier run.
    Skipped,
}

impl Shared {
    #[tracing::instrument(skip(self), fields(broadcast = %id))]
    pub(super) async fn deliver_broadcast(&self, id: BroadcastId) -> Result<(), JobError> {
        let Some(telegram) = &self.telegram else {
            return Err(JobError::retryable(
                "no Telegram bot configured (TELEGRAM_BOT_TOKEN)",
            ));
        };
        let mut conn = self.pool.get().await?;
        let Some(mut broadcast) = broadcasts::find(&mut conn, id).await? else {
            return Err(JobError::permanent(format!(
                "broadcast {id} does not exist"
            )));
        };
        let audience: Audience = serde_json::from_value(broadcast.audience.clone())
            .map_err(|e| JobError::permanent(format!("broadcast {id} has a bad audience: {e}")))?;
        match broadcast.status {
            BroadcastStatus::Canceled | BroadcastStatus::Completed => return Ok(()),
            BroadcastStatus::Draft => return Err(JobError::permanent("the broadcast is a draft")),
            BroadcastStatus::Queued => {
                let total = broadcasts::count_audience(&mut conn, audience).await?;
                broadcasts::start(&mut conn, id, total).await?;
                tracing::info!(total, "broadcast started");
            }
            BroadcastStatus::Running => {
                let interrupted = notifications::fail_interrupted(&mut conn, id).await?;
                if interrupted > 0 {
                    tracing::warn!(
                        interrupted,
                        "messages interrupted by a restart are counted failed, not resent"
                    );
                }
            }
        }
        drop(conn);
        let button = match (&broadcast.button_text, &broadcast.button_url) {
            (Some(text), Some(url)) => Some(MessageButton::Url {
                text: text.clone(),
                url: url.clone(),
            }),
            _ => None,
        };
        let batch_size = (i64::from(self.settings.broadcast_rate) * 2).clamp(BATCH_MIN, BATCH_MAX);
        let started = Instant::now();
        loop {
            let batch = {
                let mut conn = self.pool.get().await?;
                broadcast = broadcasts::find(&mut conn, id)
                    .await?
                    .ok_or_else(|| JobError::permanent("the broadcast was deleted"))?;
                if broadcast.status == BroadcastStatus::Canceled {
                    tracing::info!("broadcast canceled; stopping");
                    self.metrics.broadcast_remaining.set(0);
                    return Ok(());
                }
                broadcasts::recipients(&mut conn, audience, broadcast.cursor_user_id, batch_size)
                    .await?
            };
            let Some(last) = batch.last().map(|r| r.user_id.0) else {
                let mut conn = self.pool.get().await?;
                broadcasts::complete(&mut conn, id).await?;
                let done =
                    broadcasts::record_progress(&mut conn, id, broadcast.cursor_user_id).await?;
                self.metrics.broadcast_remaining.set(0);
                tracing::info!(
                    sent = done.sent,
                    failed = done.failed,
                    blocked = done.blocked,
                    "broadcast completed"
                );
                return Ok(());
            };
            let results: Vec<Result<Message, JobError>> = futures_util::stream::iter(batch)
                .map(|recipient| self.send_one(telegram, &broadcast, recipient, button.as_ref()))
                .buffer_unordered(IN_FLIGHT)
                .collect()
                .await;
            // A recipient that could not even be claimed: the cursor stays, the job is retried
            // (the others of this batch are claimed and will not be sent twice).
            let results = results
                .into_iter()
                .collect::<Result<Vec<Message>, JobError>>()?;
            for result in &results {
                let outcome = match result {
                    Message::Sent => "sent",
                    Message::Blocked => "blocked",
                    Message::Failed => "failed",
                    Message::Skipped => continue,
                };
                self.metrics
                    .broadcast_messages
                    .with_label_values(&[outcome])
                    .inc();
            }
            let mut conn = self.pool.get().await?;
            let progress = broadcasts::record_progress(&mut conn, id, last).await?;
            let handled = i64::from(progress.sent + progress.failed + progress.blocked);
            self.metrics
                .broadcast_remaining
                .set((i64::from(progress.total) - handled).max(0));
            if started.elapsed() >= SLICE {
                // Hand over to the next slice (this job ends; nothing of it is in flight).
                broadcasts::queue_delivery(&mut conn, id, self.jobs.max_attempts).await?;
                return Ok(());
            }
        }
    }

    async fn send_one(
        &self,
        telegram: &super::telegram::TelegramSender,
        broadcast: &Broadcast,
        recipient: Recipient,
        button: Option<&MessageButton>,
    ) -> Result<Message, JobError> {
        let dedup_key = format!("broadcast:{}:{}", broadcast.id, recipient.user_id);
        let payload = serde_json::json!({"type": "broadcast", "broadcast_id": broadcast.id});
        let channel = match recipient.telegram_id {
            Some(_) => NotificationChannel::Telegram,
            None => NotificationChannel::Email,
        };
        let delivery = Delivery {
            user_id: Some(recipient.user_id),
            kind: "broadcast",
            channel,
            dedup_key: &dedup_key,
            payload: &payload,
            broadcast_id: Some(broadcast.id),
            alert_id: None,
        };
        let claimed = {
            let mut conn = self.pool.get().await?;
            notifications::claim(&mut conn, &delivery, Reclaim::Never).await?
        };
        let Some(id) = claimed else {
            return Ok(Message::Skipped);
        };
        let result = match (recipient.telegram_id, &recipient.email) {
            (Some(chat), _) => {
                telegram
                    .send(
                        chat,
                        &broadcast.text,
                        button.map(std::slice::from_ref).unwrap_or_default(),
                        true,
                    )
                    .await
            }
            (None, Some(address)) => self.mail_broadcast(broadcast, &recipient, address).await,
            (None, None) => Err(SendError::Unreachable("no Telegram and no email".into())),
        };
        let Ok(mut conn) = self.pool.get().await else {
            // The row stays pending: a later run counts it failed (the message may have gone out).
            return Ok(Message::Failed);
        };
        let recorded = match &result {
            Ok(()) => notifications::mark_sent(&mut conn, id).await,
            Err(SendError::Unreachable(reason)) => {
                if recipient.telegram_id.is_some() {
                    let _ = users::mark_bot_blocked(&mut conn, recipient.user_id).await;
                }
                notifications::mark_skipped(&mut conn, id, reason).await
            }
            Err(error) => notifications::mark_failed(&mut conn, id, &error.to_string()).await,
        };
        if let Err(e) = recorded {
            tracing::warn!(error = %e, "could not record a broadcast message");
        }
        Ok(match result {
            Ok(()) => Message::Sent,
            Err(SendError::Unreachable(_)) => Message::Blocked,
            Err(_) => Message::Failed,
        })
    }

    /// The broadcast by email, to a subscriber without Telegram: the same text (Telegram's HTML
    /// subset is HTML) and its button as a link, under a subject in their language.
    async fn mail_broadcast(
        &self,
        broadcast: &Broadcast,
        recipient: &Recipient,
        address: &str,
    ) -> Result<(), SendError> {
        let Some(mailer) = &self.mailer else {
            return Err(SendError::Unreachable(
                "no mail server (SMTP_URL) for a subscriber without Telegram".into(),
            ));
        };
        let subject = crate::i18n::message(
            recipient.language,
            "broadcast-email-subject",
            &crate::i18n::Args::new(),
        );
        let mut html = broadcast.text.replace('\n', "<br>");
        let mut text = crate::i18n::html_to_text(&broadcast.text);
        if let (Some(label), Some(url)) = (&broadcast.button_text, &broadcast.button_url) {
            html.push_str(&format!(
                "<p><a href=\"{}\">{}</a></p>",
                crate::i18n::escape_html(url),
                crate::i18n::escape_html(label)
            ));
            text.push_str(&format!("\n\n{label}: {url}"));
        }
        let html = crate::i18n::notifications::email_html(&subject, &html);
        mailer
            .send(address, &subject, text, html)
            .await
            .map_err(SendError::from)
    }
}
