//! The HTTP server (actix-web): admin REST API under `/api/v1` (JWT + roles), operational
//! endpoints, OpenAPI + Swagger UI, and the server-rendered web pages (`pages`: the admin
//! console at `/admin/`). Every error of the API, 404 and 405 included, is a JSON
//! `{"error": {"code", "message"}}` body; the pages show errors as HTML pages.

pub mod admin;
pub mod alerts;
pub mod auth;
pub mod broadcasts;
pub mod docs;
pub mod health;
pub mod jobs;
pub mod pages;
pub mod panel_webhook;
pub mod ratelimit;
pub mod sales;
pub mod support;
pub mod users;
pub mod webhooks;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::body::{BoxBody, EitherBody, MessageBody};
use actix_web::dev::{Server, Service, ServiceResponse};
use actix_web::http::header;
use actix_web::middleware::{ErrorHandlerResponse, ErrorHandlers};
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, ResponseError, web};
use anyhow::Context as _;
use chrono::{DateTime, Utc};
use utoipa_swagger_ui::SwaggerUi;

use crate::actors::supervisor::ActorRegistry;
use crate::db::PgPool;
use crate::error::{AppError, AppResult};
use crate::metrics::Metrics;
use auth::JwtKeys;

/// What handlers share.
pub struct WebState {
    pub settings: Arc<crate::config::Settings>,
    pub pool: PgPool,
    pub metrics: Arc<Metrics>,
    pub actors: Arc<ActorRegistry>,
    pub jwt: JwtKeys,
    /// Job kinds this replica handles (for zero-valued job gauges).
    pub job_kinds: Vec<&'static str>,
    /// The payment processor and the providers' clients (the webhooks authenticate with them).
    pub payments:
        Option<crate::actors::supervisor::ActorHandle<crate::actors::payments::PaymentProcessor>>,
    pub payment_clients: Option<Arc<crate::actors::payments::PaymentClients>>,
    /// The panel syncer (`POST /api/v1/sync/{kind}`); `None` without `MARZBAN_URL`.
    pub marzban:
        Option<crate::actors::supervisor::ActorHandle<crate::actors::marzban::MarzbanSyncer>>,
    /// Where `POST /webhooks/telegram` puts updates; `None` unless TELEGRAM_MODE=webhook.
    pub bot_inbox: Option<Arc<crate::actors::bot::BotInbox>>,
    /// Refused webhook requests per client address (`WEBHOOK_REFUSAL_LIMIT`); `None`: off.
    pub webhook_refusals: Option<ratelimit::RateLimiter>,
    /// The console dashboard's overview, recomputed at most every few seconds.
    pub dashboard: Arc<pages::admin::OverviewSnapshot>,
    /// Sends the cabinet's sign-in links; `None` without `SMTP_URL` (email sign-in is off).
    pub mailer: Option<Arc<crate::actors::notifier::Mailer>>,
}

impl WebState {
    /// The bot's @username, once it has connected (`getMe`); `None` without a bot.
    pub fn bot_username(&self) -> Option<&str> {
        self.payment_clients
            .as_ref()
            .and_then(|c| c.bot_username.get())
            .map(String::as_str)
    }
}

/// Largest JSON body the API accepts.
const JSON_LIMIT: usize = 64 * 1024;

/// Routes, extractor error handling and the JSON error shape.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.app_data(
        web::JsonConfig::default()
            .limit(JSON_LIMIT)
            .error_handler(|err, _| json_payload_error(err).into()),
    )
    .app_data(
        web::QueryConfig::default()
            .error_handler(|err, _| AppError::validation("query", err.to_string()).into()),
    )
    .app_data(
        web::PathConfig::default()
            .error_handler(|err, req| AppError::NotFound(format!("{} ({err})", req.path())).into()),
    )
    .service(web::resource("/webhooks/yookassa").post(webhooks::yookassa))
    .service(web::resource("/webhooks/wata").post(webhooks::wata))
    .service(web::resource("/webhooks/telegram").post(webhooks::telegram))
    .service(web::resource("/webhooks/panel").post(panel_webhook::panel))
    .service(web::resource("/health").get(health::health))
    .service(web::resource("/ready").get(health::ready))
    .service(web::resource("/metrics").get(health::metrics))
    .configure(pages::configure)
    .service(
        web::scope("/api/v1")
            // Outermost last: the rate limit answers before the token costs a database query,
            // and the body is read only for an authenticated caller.
            .wrap(actix_web::middleware::from_fn(refuse_nul_text))
            .wrap(actix_web::middleware::from_fn(auth::authenticate))
            .wrap(actix_web::middleware::from_fn(ratelimit::limit))
            .service(web::resource("/auth/login").post(auth::login))
            .service(web::resource("/me").get(auth::me))
            .service(web::resource("/jobs").get(jobs::list_jobs))
            .service(web::resource("/jobs/{id}").get(jobs::get_job))
            .service(web::resource("/jobs/{id}/retry").post(jobs::retry_job))
            .service(web::resource("/jobs/{id}/discard").post(jobs::discard_job))
            .service(web::resource("/scheduler/tasks").get(jobs::list_tasks))
            .service(
                web::resource("/broadcasts")
                    .get(broadcasts::list_broadcasts)
                    .post(broadcasts::create_broadcast),
            )
            .service(web::resource("/broadcasts/{id}").get(broadcasts::get_broadcast))
            .service(web::resource("/broadcasts/{id}/cancel").post(broadcasts::cancel_broadcast))
            .configure(users::routes)
            .configure(sales::routes)
            .configure(admin::routes)
            .configure(alerts::routes)
            .configure(support::routes),
    )
    .service(web::resource("/docs").get(|| async {
        HttpResponse::PermanentRedirect()
            .insert_header((header::LOCATION, "/docs/"))
            .finish()
    }))
    .service(SwaggerUi::new("/docs/{_:.*}").url("/openapi.json", docs::openapi()));
}

/// The address a request came from, as the audit log records it (the connection's peer, an
/// IPv4-mapped IPv6 address written as the IPv4 address it is).
pub(crate) fn remote_addr(req: &HttpRequest) -> Option<String> {
    req.peer_addr().map(|a| a.ip().to_canonical().to_string())
}

/// An RFC 3339 instant of a query parameter (`2026-11-27T10:00:00Z`, `…+03:00`). A `+` that
/// was not percent-encoded arrives as a space; it is read as the `+` it was meant to be.
pub(crate) fn parse_instant(field: &str, value: &str) -> AppResult<DateTime<Utc>> {
    let value = value.trim();
    DateTime::parse_from_rfc3339(value)
        .or_else(|e| match value.rsplit_once(' ') {
            Some((time, offset)) => DateTime::parse_from_rfc3339(&format!("{time}+{offset}")),
            None => Err(e),
        })
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| {
            AppError::validation(
                field,
                format!("'{value}' is not an RFC 3339 date-time like 2026-11-27T10:00:00Z ({e})"),
            )
        })
}

/// A listing's period: from (inclusive), to (exclusive); either end may be open.
pub(crate) type TimeRange = (Option<DateTime<Utc>>, Option<DateTime<Utc>>);

/// The two query parameters of a listing's period (e.g. `from`/`to`, `created_from`/
/// `created_to`), each an instant; the end must be later than the start.
pub(crate) fn time_range(
    (from_field, from): (&str, Option<&str>),
    (to_field, to): (&str, Option<&str>),
) -> AppResult<TimeRange> {
    let from = from.map(|v| parse_instant(from_field, v)).transpose()?;
    let to = to.map(|v| parse_instant(to_field, v)).transpose()?;
    if let (Some(from), Some(to)) = (from, to)
        && from >= to
    {
        return Err(AppError::validation(
            to_field,
            format!("must be later than {from_field}"),
        ));
    }
    Ok((from, to))
}

fn json_payload_error(err: actix_web::error::JsonPayloadError) -> AppError {
    use actix_web::error::JsonPayloadError as E;
    match err {
        E::Deserialize(e) if e.is_data() => AppError::validation("body", e.to_string()),
        E::Deserialize(e) => AppError::BadRequest(format!("malformed JSON: {e}")),
        E::ContentType => AppError::BadRequest("expected Content-Type: application/json".into()),
        E::OverflowKnownLength { .. } | E::Overflow { .. } => {
            AppError::BadRequest(format!("body larger than {JSON_LIMIT} bytes"))
        }
        other => AppError::BadRequest(other.to_string()),
    }
}

/// Refuses (400, as `AppError`'s mapping of a failed text write) a JSON body with a NUL character
/// in any of its strings (`\u0000`): PostgreSQL stores none, in text or in `jsonb`, and a `jsonb`
/// write (an audit row's reason) failed with a 500. Checked here, once,
/// for every API route; the body is handed on as read.
async fn refuse_nul_text(
    mut req: actix_web::dev::ServiceRequest,
    next: actix_web::middleware::Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    use futures_util::StreamExt;
    let json = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("json"));
    if json {
        let mut payload = req.parts_mut().1.take();
        let mut body = web::BytesMut::new();
        while let Some(chunk) = payload.next().await {
            let chunk =
                chunk.map_err(|e| AppError::BadRequest(format!("reading the body failed: {e}")))?;
            if body.len() + chunk.len() > JSON_LIMIT {
                return Err(
                    json_payload_error(actix_web::error::JsonPayloadError::Overflow {
                        limit: JSON_LIMIT,
                    })
                    .into(),
                );
            }
            body.extend_from_slice(&chunk);
        }
        if json_has_nul(&body) {
            return Err(AppError::BadRequest(
                "text must not contain the NUL character (\\u0000)".to_owned(),
            )
            .into());
        }
        req.set_payload(actix_web::dev::Payload::from(body.freeze()));
    }
    next.call(req).await
}

/// Whether a JSON text has the escape `\u0000` in a string (a raw NUL byte is no valid JSON, and
/// the parser refuses it). Escapes are read in pairs, so the text `\\u0000` (an escaped
/// backslash, then `u0000`) is not one.
fn json_has_nul(body: &[u8]) -> bool {
    let mut i = 0;
    while i < body.len() {
        if body[i] == b'\\' {
            if body.get(i + 1) == Some(&b'u') && body.get(i + 2..i + 6) == Some(b"0000".as_slice())
            {
                return true;
            }
            i += 2;
        } else {
            i += 1;
        }
    }
    false
}

/// Routes that did not match anything.
async fn not_found(req: HttpRequest) -> Result<HttpResponse, AppError> {
    Err(AppError::NotFound(format!(
        "{} {}",
        req.method(),
        req.path()
    )))
}

/// Replaces any non-JSON error body (actix's own 404/405/413…) with our JSON shape.
fn json_errors<B: MessageBody + 'static>(
    res: ServiceResponse<B>,
) -> actix_web::Result<ErrorHandlerResponse<B>> {
    // JSON errors of the API, and the HTML error pages of the web pages, are answers already.
    let is_answer = res
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json") || v.starts_with("text/html"));
    if is_answer {
        return Ok(ErrorHandlerResponse::Response(res.map_into_left_body()));
    }
    let status = res.status();
    let error = match status.as_u16() {
        404 => AppError::NotFound(format!(
            "{} {}",
            res.request().method(),
            res.request().path()
        )),
        405 => AppError::MethodNotAllowed(format!(
            "{} is not allowed on {}",
            res.request().method(),
            res.request().path()
        )),
        s if s < 500 => AppError::BadRequest(
            status
                .canonical_reason()
                .unwrap_or("bad request")
                .to_lowercase(),
        ),
        _ => AppError::Internal(anyhow::anyhow!("{status} without a body")),
    };
    let mut response: HttpResponse<BoxBody> = error.error_response();
    *response.status_mut() = status;
    for (name, value) in res.headers() {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            response.headers_mut().insert(name.clone(), value.clone());
        }
    }
    let (req, _) = res.into_parts();
    Ok(ErrorHandlerResponse::Response(
        ServiceResponse::new(req, response).map_into_right_body(),
    ))
}

/// A running HTTP server.
pub struct RunningServer {
    pub handle: actix_web::dev::ServerHandle,
    pub addrs: Vec<SocketAddr>,
    pub task: actix_rt::task::JoinHandle<std::io::Result<()>>,
}

/// Binds and starts the server on the current System. Signals are handled by the caller.
pub fn start(
    state: web::Data<WebState>,
    bind: SocketAddr,
    shutdown_timeout: Duration,
) -> anyhow::Result<RunningServer> {
    let metrics = Arc::clone(&state.metrics);
    let api = state.settings.api.clone();
    let limiter = api
        .rate_limit
        .map(|rate| web::Data::new(ratelimit::RateLimiter::new(rate, api.burst)));
    let server = HttpServer::new(move || {
        let metrics = Arc::clone(&metrics);
        App::new()
            .app_data(state.clone())
            .app_data(limiter.clone())
            .wrap(cors(&api.cors_origins))
            .configure(configure)
            .default_service(web::to(not_found))
            .wrap(ErrorHandlers::new().default_handler(json_errors))
            .wrap_fn(move |req, srv| {
                let started = Instant::now();
                let method = req.method().clone();
                let fut = srv.call(req);
                let metrics = Arc::clone(&metrics);
                async move {
                    let res: ServiceResponse<EitherBody<_>> = fut.await?;
                    record_request(&metrics, &method, &res, started);
                    Ok(res)
                }
            })
    })
    .disable_signals()
    .shutdown_timeout(shutdown_timeout.as_secs().max(1))
    .bind(bind)
    .with_context(|| format!("binding the HTTP server to {bind} (HTTP_BIND)"))?;
    let addrs = server.addrs();
    let server: Server = server.run();
    let handle = server.handle();
    let task = actix_rt::spawn(server);
    Ok(RunningServer {
        handle,
        addrs,
        task,
    })
}

/// CORS for the admin API: off (no headers; browsers refuse other origins) unless
/// `CORS_ORIGINS` lists the origins of a web page allowed to call it.
fn cors(origins: &[String]) -> actix_cors::Cors {
    use actix_web::http::Method;
    if origins.is_empty() {
        return actix_cors::Cors::default();
    }
    origins
        .iter()
        .fold(actix_cors::Cors::default(), |cors, origin| {
            cors.allowed_origin(origin)
        })
        .allowed_methods([
            Method::GET,
            Method::POST,
            Method::PATCH,
            Method::PUT,
            Method::DELETE,
        ])
        .allowed_headers([header::AUTHORIZATION, header::CONTENT_TYPE, header::ACCEPT])
        .expose_headers([header::RETRY_AFTER])
        .max_age(3600)
}

fn record_request<B>(
    metrics: &Metrics,
    method: &actix_web::http::Method,
    res: &ServiceResponse<B>,
    started: Instant,
) {
    // The matched pattern, never the raw path: label values must stay few.
    let route = res
        .request()
        .match_pattern()
        .unwrap_or_else(|| "unmatched".to_owned());
    let status = res.status().as_u16();
    let elapsed = started.elapsed();
    metrics
        .http_requests
        .with_label_values(&[method.as_str(), &route, &status.to_string()])
        .inc();
    metrics
        .http_duration
        .with_label_values(&[method.as_str(), &route])
        .observe(elapsed.as_secs_f64());
    let ms = elapsed.as_secs_f64() * 1000.0;
    if matches!(route.as_str(), "/metrics" | "/health" | "/ready") {
        tracing::debug!(method = %method, route, status, ms, "request");
    } else {
        tracing::info!(method = %method, route, status, ms, "request");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_nul_escape_is_found_and_an_escaped_backslash_is_not_one() {
        assert!(json_has_nul(br#"{"reason":"\u0000"}"#));
        assert!(json_has_nul(br#"{"a":["x","y\u0000z"]}"#));
        assert!(json_has_nul(br#"{"a":"\\\u0000"}"#));
        assert!(!json_has_nul(br#"{"a":"\\u0000"}"#));
        assert!(!json_has_nul(br#"{"a":"\u0001","b":"u0000"}"#));
        assert!(!json_has_nul(br#"{"a":"\u000"#));
        assert!(!json_has_nul(b"\\"));
    }

    #[test]
    fn instants_are_rfc3339_with_any_offset() {
        let t = parse_instant("from", "2026-11-27T10:00:00+03:00").unwrap();
        assert_eq!(t.to_rfc3339(), "2026-11-27T07:00:00+00:00");
        // An unencoded `+` in a query string decodes to a space.
        assert_eq!(
            parse_instant("from", "2026-11-27T10:00:00 03:00").unwrap(),
            t
        );
        assert_eq!(
            parse_instant("to", "2026-11-27T07:00:00Z").unwrap(),
            t,
            "Z is UTC"
        );
        for bad in ["", "2026-11-27", "yesterday", "2026-13-01T00:00:00Z"] {
            match parse_instant("from", bad) {
                Err(AppError::Validation { field, .. }) => assert_eq!(field, "from"),
                other => panic!("{bad:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn a_range_must_not_be_empty_or_reversed() {
        assert!(time_range(("from", None), ("to", None)).unwrap() == (None, None));
        assert!(
            time_range(
                ("from", Some("2026-01-01T00:00:00Z")),
                ("to", Some("2026-01-02T00:00:00Z"))
            )
            .is_ok()
        );
        for equal_or_reversed in ["2026-01-01T00:00:00Z", "2025-12-31T00:00:00Z"] {
            match time_range(
                ("created_from", Some("2026-01-01T00:00:00Z")),
                ("created_to", Some(equal_or_reversed)),
            ) {
                Err(AppError::Validation { field, message }) => {
                    assert_eq!(field, "created_to");
                    assert_eq!(message, "must be later than created_from");
                }
                other => panic!("{other:?}"),
            }
        }
    }
}
