//! Email through SMTP (lettre): multipart plain text + HTML.

use std::sync::Arc;
use std::time::Instant;

use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use crate::config::{SmtpSettings, SmtpTls};
use crate::metrics::Metrics;

/// Why an email was not sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MailError {
    /// The address or the message is refused for good (5xx, a bad address).
    #[error("the mail server refused the email: {0}")]
    Refused(String),
    /// The server is down, busy or answered 4xx: worth trying again later.
    #[error("the mail server could not take the email now: {0}")]
    Transient(String),
}

impl From<MailError> for super::SendError {
    fn from(e: MailError) -> Self {
        match e {
            MailError::Refused(m) => super::SendError::Refused(m),
            MailError::Transient(m) => super::SendError::Transient(m),
        }
    }
}

pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    metrics: Arc<Metrics>,
}

impl Mailer {
    pub fn new(settings: &SmtpSettings, metrics: Arc<Metrics>) -> anyhow::Result<Self> {
        let builder = match settings.tls {
            SmtpTls::Implicit => AsyncSmtpTransport::<Tokio1Executor>::relay(&settings.host)?,
            SmtpTls::StartTls => {
                AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&settings.host)?
            }
            SmtpTls::None => {
                AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&settings.host)
            }
        };
        let mut builder = builder.port(settings.port).timeout(Some(settings.timeout));
        if let (Some(user), Some(password)) = (&settings.username, &settings.password) {
            builder =
                builder.credentials(Credentials::new(user.clone(), password.expose().to_owned()));
        }
        Ok(Mailer {
            transport: builder.build(),
            from: settings.from.parse()?,
            metrics,
        })
    }

    pub async fn send(
        &self,
        to: &str,
        subject: &str,
        text: String,
        html: String,
    ) -> Result<(), MailError> {
        let started = Instant::now();
        let to: Mailbox = to
            .parse()
            .map_err(|e| MailError::Refused(format!("invalid address {to}: {e}")))?;
        let message = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(subject)
            .multipart(MultiPart::alternative_plain_html(text, html))
            .map_err(|e| MailError::Refused(e.to_string()))?;
        let result = self.transport.send(message).await.map(|_| ()).map_err(|e| {
            if e.is_permanent() {
                MailError::Refused(e.to_string())
            } else {
                MailError::Transient(e.to_string())
            }
        });
        self.metrics
            .notification_send_duration
            .with_label_values(&["email"])
            .observe(started.elapsed().as_secs_f64());
        result
    }
}
