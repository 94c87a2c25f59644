//! `POST /webhooks/panel`: the panel's own user events (Remnawave, reference §9), accepted when
//! `REMNAWAVE_WEBHOOK_SECRET` is set. The signature (`X-Remnawave-Signature`, hex HMAC-SHA256 of
//! the raw body with the panel's `WEBHOOK_SECRET_HEADER`) is checked before anything is read, and
//! the timestamp must be recent (the MAC does not cover it). An event about a shop user enqueues
//! that user's provision job, which reads the panel and makes it match the database at once
//! instead of at the next sync; nothing in the event itself is trusted beyond the username.

use std::net::IpAddr;

use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::Sha256;

use crate::actors::marzban::provision_job;
use crate::config::PanelConnection;
use crate::db::schema::subscriptions;
use crate::domain::UserId;
use crate::error::AppError;
use crate::web::WebState;
use crate::web::webhooks::{client_ip, count_refusal, same_secret, turned_away};

/// How old a delivery may be: the panel retries 3 times, 5 s apart, from a queue.
const FRESH_FOR: chrono::TimeDelta = chrono::TimeDelta::minutes(10);

/// The envelope of every event (`{scope, event, timestamp, data}`); `data` is a user for the
/// `user` scope.
#[derive(Debug, Deserialize)]
struct Event {
    scope: String,
    event: String,
    timestamp: DateTime<Utc>,
    #[serde(default)]
    data: serde_json::Value,
}

/// `hex(HMAC-SHA256(secret, body))`.
pub fn signature(secret: &str, body: &[u8]) -> String {
    // HMAC takes a key of any length: `new_from_slice` cannot fail for it.
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
    mac.update(body);
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn refused(state: &WebState, remote: Option<IpAddr>, why: &str) -> AppError {
    count_refusal(state, remote);
    tracing::warn!(remote = ?remote, why, "panel webhook refused");
    AppError::Unauthorized(why.into())
}

pub async fn panel(
    state: web::Data<WebState>,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, AppError> {
    let secret = match state.settings.panel.as_ref().map(|p| &p.connection) {
        Some(PanelConnection::Remnawave(r)) => r.webhook_secret.clone(),
        _ => None,
    };
    let Some(secret) = secret else {
        return Err(AppError::NotFound(
            "panel webhooks are off (set REMNAWAVE_WEBHOOK_SECRET with PANEL_KIND=remnawave)"
                .into(),
        ));
    };
    let remote = client_ip(&req, &state.settings.payments.trusted_proxies);
    if let Some(error) = turned_away(&state, remote) {
        return Err(error);
    }
    let given = req
        .headers()
        .get("X-Remnawave-Signature")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_ascii_lowercase();
    let expected = signature(secret.expose(), &body);
    if !same_secret(given.as_bytes(), expected.as_bytes()) {
        return Err(refused(
            &state,
            remote,
            "wrong or missing X-Remnawave-Signature",
        ));
    }
    let event: Event = serde_json::from_slice(&body)
        .map_err(|e| AppError::BadRequest(format!("not a Remnawave event: {e}")))?;
    if (Utc::now() - event.timestamp).abs() > FRESH_FOR {
        return Err(refused(
            &state,
            remote,
            "the event's timestamp is not recent",
        ));
    }
    let username = event.data["username"].as_str();
    let (true, Some(username)) = (event.scope == "user", username) else {
        tracing::debug!(scope = %event.scope, event = %event.event, "panel event ignored");
        return Ok(HttpResponse::Ok().finish());
    };
    let mut conn = state.pool.get().await?;
    let user: Option<UserId> = subscriptions::table
        .filter(subscriptions::panel_username.eq(username))
        .select(subscriptions::user_id)
        .first(&mut conn)
        .await
        .optional()?;
    match user {
        Some(user_id) => {
            crate::db::jobs::enqueue(
                &mut conn,
                provision_job(user_id),
                state.settings.jobs.max_attempts,
            )
            .await?;
            tracing::info!(%username, event = %event.event, "panel event: the user is brought up to date");
        }
        None => {
            tracing::debug!(%username, event = %event.event, "panel event about a user not the shop's")
        }
    }
    Ok(HttpResponse::Ok().finish())
}

#[cfg(test)]
mod tests {
    /// RFC 4231 test case 2.
    #[test]
    fn the_signature_is_hmac_sha256_in_hex() {
        assert_eq!(
            super::signature("Jefe", b"what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
