//! Delivery of one `notify` job: render it in the user's language, then send it on each channel
//! that applies, each delivery recorded in `notifications` and sent at most once.

use super::Shared;
use super::telegram::{MessageButton, SendError};
use crate::actors::job_runner::JobError;
use crate::db::models::User;
use crate::db::notifications::{self, Delivery, Reclaim};
use crate::db::{subscriptions, users};
use crate::domain::NotificationChannel;
use crate::domain::notifications::{Notification, NotifyJob};
use crate::domain::panel::DesiredUser;
use crate::i18n::notifications::{CALLBACK_SUPPORT, Recipient, email_html, render};

/// Attempts of a notification that wait for the subscription link before it is sent without it
/// (with the backoff of the job queue: about a minute and a half).
const LINK_WAIT_ATTEMPTS: i32 = 5;

/// Who a delivery goes to: a subscriber (who may be banned or have blocked the bot) or an admin.
#[derive(Clone, Copy)]
pub(super) enum To<'a> {
    User(&'a User),
    Admin,
}

/// How a channel's delivery ended.
pub(super) enum Outcome {
    Sent,
    /// Not attempted: already delivered or skipped.
    AlreadyHandled,
    /// Claimed by an attempt whose outcome is not recorded (another worker sending now, or one
    /// cut off by a crash): checked again later, and sent once the claim is stale.
    InFlight,
    Skipped,
    Failed {
        error: String,
        transient: bool,
    },
}

impl Shared {
    #[tracing::instrument(skip(self, job), fields(user = %job.user_id, kind = job.notification.kind()))]
    pub(super) async fn deliver(&self, job: NotifyJob, attempt: i32) -> Result<(), JobError> {
        let kind = job.notification.kind();
        let (user, link, link_coming) = {
            let mut conn = self.pool.get().await?;
            let user = users::find(&mut conn, job.user_id).await?.ok_or_else(|| {
                JobError::permanent(format!("user {} does not exist", job.user_id))
            })?;
            let sub = subscriptions::find_by_user(&mut conn, job.user_id)
                .await?
                .map(|(sub, _)| sub);
            // Only a subscription that needs a panel user gets one, and with it a link: a banned
            // or disabled user's, or one long expired, waits for nothing.
            let link_coming = !user.banned
                && sub.as_ref().is_some_and(|s| {
                    DesiredUser::new(s.status, s.expires_at, s.traffic_limit_bytes)
                        .needs_panel_user(chrono::Utc::now())
                });
            let link = sub.and_then(|s| s.subscription_url);
            (user, link, link_coming)
        };
        let follow_up = matches!(job.notification, Notification::LinkReady {});
        let waits_for_link = self.waits_for_links && link_coming;
        if job.notification.with_link() && link.is_none() {
            if follow_up && !self.waits_for_links {
                return Err(JobError::permanent("no panel issues subscription links"));
            }
            if follow_up && !link_coming {
                tracing::info!("no subscription link will come: the follow-up is dropped");
                return Ok(());
            }
            // The follow-up has nothing to say without the link: it waits for as long as the
            // job's attempts last (hours with the default backoff).
            if waits_for_link && (follow_up || attempt < LINK_WAIT_ATTEMPTS) {
                return Err(JobError::retryable(
                    "waiting for the panel to issue the subscription link",
                ));
            }
        }
        let recipient = Recipient {
            language: user.language,
            subscription_url: link.as_deref(),
        };
        let Some(rendered) = render(&job.notification, &recipient, self.settings.display_offset)
        else {
            return Err(JobError::permanent(
                "broadcasts are delivered by broadcast jobs",
            ));
        };
        let payload = serde_json::to_value(&job.notification).unwrap_or_default();
        let delivery = |channel| Delivery {
            user_id: Some(user.id),
            kind,
            channel,
            dedup_key: &job.dedup_key,
            payload: &payload,
            broadcast_id: None,
            alert_id: None,
        };

        let mut transient = Vec::new();
        if let (Some(telegram), Some(chat)) = (&self.telegram, user.telegram_id) {
            let d = delivery(NotificationChannel::Telegram);
            let mut buttons = vec![MessageButton::Callback {
                text: rendered.button.text.clone(),
                data: rendered.button.callback.to_owned(),
            }];
            // A payment that failed: the team can be asked, when someone reads questions.
            if job.notification.offers_support() && self.takes_questions() {
                buttons.push(MessageButton::Callback {
                    text: crate::i18n::message(
                        user.language,
                        "button-support",
                        &Default::default(),
                    ),
                    data: CALLBACK_SUPPORT.to_owned(),
                });
            }
            let outcome = self
                .on_channel(&d, To::User(&user), async {
                    telegram.send(chat, &rendered.html, &buttons, false).await
                })
                .await?;
            self.tally(kind, "telegram", &outcome, &mut transient);
        }
        // A user without Telegram gets every message by email: it is their only channel.
        let by_email = job.notification.by_email() || user.telegram_id.is_none();
        if let (Some(mailer), Some(email), true) = (&self.mailer, &user.email, by_email) {
            let d = delivery(NotificationChannel::Email);
            let text = crate::i18n::html_to_text(&rendered.html);
            let html = email_html(&rendered.subject, &rendered.html);
            let outcome = self
                .on_channel(&d, To::User(&user), async {
                    mailer
                        .send(email, &rendered.subject, text, html)
                        .await
                        .map_err(SendError::from)
                })
                .await?;
            self.tally(kind, "email", &outcome, &mut transient);
        }
        if job.notification.with_link() && link.is_none() && waits_for_link && !follow_up {
            // It went without the link ("being prepared"): the link follows once the panel has
            // issued it, once.
            let next = NotifyJob {
                user_id: job.user_id,
                notification: Notification::LinkReady {},
                dedup_key: format!("{}:link", job.dedup_key),
            };
            let mut conn = self.pool.get().await?;
            notifications::enqueue_once(&mut conn, &next, self.jobs.max_attempts).await?;
        }
        if transient.is_empty() {
            Ok(())
        } else {
            Err(JobError::retryable(transient.join("; ")))
        }
    }

    /// Claims the delivery, sends, records the outcome.
    pub(super) async fn on_channel(
        &self,
        delivery: &Delivery<'_>,
        to: To<'_>,
        send: impl std::future::Future<Output = Result<(), SendError>>,
    ) -> Result<Outcome, JobError> {
        let skip = match to {
            To::User(user) if user.banned => Some("the user is banned"),
            To::User(user)
                if delivery.channel == NotificationChannel::Telegram && user.bot_blocked =>
            {
                Some("the user blocked the bot")
            }
            _ => None,
        };
        if let Some(reason) = skip {
            let mut conn = self.pool.get().await?;
            return Ok(
                if notifications::record_skipped(&mut conn, delivery, reason).await? {
                    Outcome::Skipped
                } else {
                    Outcome::AlreadyHandled
                },
            );
        }
        let claimed = {
            let mut conn = self.pool.get().await?;
            notifications::claim(
                &mut conn,
                delivery,
                Reclaim::FailedOrStaleAfter(self.jobs.lease),
            )
            .await?
        };
        let Some(id) = claimed else {
            let mut conn = self.pool.get().await?;
            let pending =
                notifications::in_flight(&mut conn, delivery.dedup_key, delivery.channel).await?;
            return Ok(if pending {
                Outcome::InFlight
            } else {
                Outcome::AlreadyHandled
            });
        };
        // No pooled connection is held while waiting for the rate budget and the network.
        let result = send.await;
        // The message has left (or has certainly not): what became of it must be written, or the
        // claim stays pending and the message goes again once it is stale. A database that is
        // briefly unavailable is waited for (1 s doubling to 10 s) until the job runner's time
        // limit for the attempt ends it.
        let mut delay = std::time::Duration::from_secs(1);
        loop {
            match self.record_send(id, to, &result).await {
                Ok(outcome) => return Ok(outcome),
                Err(error) => {
                    tracing::warn!(%error, "recording a sent notification failed; retrying");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(std::time::Duration::from_secs(10));
                }
            }
        }
    }

    /// Writes the outcome of the send of claimed delivery `id`.
    async fn record_send(
        &self,
        id: i64,
        to: To<'_>,
        result: &Result<(), SendError>,
    ) -> Result<Outcome, JobError> {
        let mut conn = self.pool.get().await?;
        Ok(match result {
            Ok(()) => {
                notifications::mark_sent(&mut conn, id).await?;
                Outcome::Sent
            }
            Err(SendError::Unreachable(error)) => {
                notifications::mark_skipped(&mut conn, id, error).await?;
                match to {
                    To::User(user) => {
                        users::mark_bot_blocked(&mut conn, user.id).await?;
                        tracing::info!(%error, "user unreachable on Telegram; marked as blocked");
                    }
                    To::Admin => tracing::warn!(
                        %error,
                        "an admin of ADMIN_TELEGRAM_IDS cannot be reached on Telegram (has the admin started the bot?)"
                    ),
                }
                Outcome::Skipped
            }
            Err(SendError::Refused(error)) => {
                notifications::mark_failed(&mut conn, id, error).await?;
                Outcome::Failed {
                    error: error.clone(),
                    transient: false,
                }
            }
            Err(SendError::Transient(error)) => {
                notifications::mark_failed(&mut conn, id, error).await?;
                Outcome::Failed {
                    error: error.clone(),
                    transient: true,
                }
            }
        })
    }

    pub(super) fn tally(
        &self,
        kind: &str,
        channel: &str,
        outcome: &Outcome,
        transient: &mut Vec<String>,
    ) {
        let label = match outcome {
            Outcome::Sent => "sent",
            Outcome::AlreadyHandled => return,
            Outcome::InFlight => {
                // The job stays: a crash must not turn into a message never sent.
                transient.push(format!(
                    "{channel}: an earlier attempt's outcome is unknown; sent again once its claim is stale"
                ));
                return;
            }
            Outcome::Skipped => "skipped",
            Outcome::Failed { .. } => "failed",
        };
        self.metrics
            .notifications
            .with_label_values(&[kind, channel, label])
            .inc();
        match outcome {
            Outcome::Failed {
                error,
                transient: true,
            } => transient.push(format!("{channel}: {error}")),
            Outcome::Failed { error, .. } => {
                tracing::warn!(channel, %error, "notification refused; not retried")
            }
            _ => {}
        }
    }
}
