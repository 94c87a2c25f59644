//! Delivery of one `alert_deliver` job: the alert sent to every admin of `ADMIN_TELEGRAM_IDS`
//! (with its buttons, in the language the admin chose in the bot, else `ADMIN_LANGUAGE`) and of
//! `ADMIN_EMAILS` (in `ADMIN_LANGUAGE`), each delivery recorded in `notifications` and sent at
//! most once, under the same Telegram budget as everything else.

use super::Shared;
use super::deliver::To;
use super::telegram::{MessageButton, SendError};
use crate::actors::bot::callback::{AdminAction, Callback};
use crate::actors::job_runner::JobError;
use crate::db::models::AlertRow;
use crate::db::notifications::Delivery;
use crate::db::{alerts, users};
use crate::domain::alerts::{Alert, AlertAction, AlertJob, AlertRecipient};
use crate::domain::{Language, NotificationChannel};
use crate::i18n::alerts::{Ending, render};
use crate::i18n::notifications::email_html;

/// `notifications.kind` and the metric label of alert deliveries.
pub const ALERT_KIND: &str = "alert";

/// The bot's button for an action.
fn callback(action: AlertAction) -> Callback {
    Callback::Admin(match action {
        AlertAction::OpenUser(user) => AdminAction::User(user),
        AlertAction::RetryJob(job) => AdminAction::RetryJob(job),
        AlertAction::MarkReviewed(order) => AdminAction::Reviewed(order),
    })
}

/// The delivery of `row` on `channel` to the admin named by `dedup_key`.
fn delivery<'a>(
    row: &'a AlertRow,
    channel: NotificationChannel,
    dedup_key: &'a str,
) -> Delivery<'a> {
    Delivery {
        user_id: None,
        kind: ALERT_KIND,
        channel,
        dedup_key,
        payload: &row.payload,
        broadcast_id: None,
        alert_id: Some(row.id),
    }
}

impl Shared {
    #[tracing::instrument(skip(self), fields(alert = %job.alert_id, state = %job.state))]
    pub(super) async fn deliver_alert(&self, job: AlertJob) -> Result<(), JobError> {
        let row = {
            let mut conn = self.pool.get().await?;
            alerts::find(&mut conn, job.alert_id).await?
        }
        .ok_or_else(|| JobError::permanent(format!("alert {} does not exist", job.alert_id)))?;
        let alert: Alert = serde_json::from_value(row.payload.clone())
            .map_err(|e| JobError::permanent(format!("bad alert payload: {e}")))?;
        let by = row
            .resolution
            .as_ref()
            .and_then(|r| r.get("reviewed_by"))
            .and_then(|v| v.as_str());
        let ending = Ending {
            resolved_at: row.resolved_at,
            by,
        };
        let settings = &self.alerts;
        let render_in = |language: Language| {
            render(
                &alert,
                row.id,
                job.state,
                ending,
                language,
                self.settings.display_offset,
            )
        };
        let mut transient = Vec::new();
        if let Some(telegram) = &self.telegram {
            for &chat in &settings.telegram {
                let language = self.admin_language(chat).await?;
                let rendered = render_in(language);
                let buttons: Vec<MessageButton> = rendered
                    .buttons
                    .iter()
                    .map(|(text, action)| MessageButton::Callback {
                        text: text.clone(),
                        data: callback(*action).encode(),
                    })
                    .collect();
                let key = AlertRecipient::Telegram(chat).dedup_key(row.id, job.state);
                let d = delivery(&row, NotificationChannel::Telegram, &key);
                let outcome = self
                    .on_channel(&d, To::Admin, async {
                        telegram.send(chat, &rendered.html, &buttons, false).await
                    })
                    .await?;
                self.tally(ALERT_KIND, "telegram", &outcome, &mut transient);
            }
        }
        if let Some(mailer) = &self.mailer {
            let rendered = render_in(settings.language);
            let text = crate::i18n::html_to_text(&rendered.html);
            let html = email_html(&rendered.subject, &rendered.html);
            for address in &settings.emails {
                let key = AlertRecipient::Email(address.clone()).dedup_key(row.id, job.state);
                let d = delivery(&row, NotificationChannel::Email, &key);
                let outcome = self
                    .on_channel(&d, To::Admin, async {
                        mailer
                            .send(address, &rendered.subject, text.clone(), html.clone())
                            .await
                            .map_err(SendError::from)
                    })
                    .await?;
                self.tally(ALERT_KIND, "email", &outcome, &mut transient);
            }
        }
        if transient.is_empty() {
            Ok(())
        } else {
            Err(JobError::retryable(transient.join("; ")))
        }
    }

    /// The language an admin reads alerts in on Telegram: the one they use in the bot (their
    /// `users` row, once they have talked to it), else `ADMIN_LANGUAGE`.
    pub(super) async fn admin_language(&self, chat: i64) -> Result<Language, JobError> {
        let mut conn = self.pool.get().await?;
        Ok(users::find_by_telegram_id(&mut conn, chat)
            .await?
            .map_or(self.alerts.language, |user| user.language))
    }
}
