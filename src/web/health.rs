//! Operational endpoints: `/health` (the process answers), `/ready` (the database and every
//! actor answer) and `/metrics` (Prometheus).

use std::time::Duration;

use actix_web::{HttpRequest, HttpResponse, web};
use serde::Serialize;
use serde_json::json;
use utoipa::ToSchema;

use crate::db::{self, jobs, stats};
use crate::domain::JobState;
use crate::web::WebState;

#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    #[schema(example = "ok")]
    pub status: &'static str,
    #[schema(example = "0.1.0")]
    pub version: &'static str,
}

/// The process is up and serving HTTP.
#[utoipa::path(get, path = "/health", tag = "operations", responses((status = 200, body = Health)))]
pub async fn health() -> web::Json<Health> {
    web::Json(Health {
        status: "ok",
        version: env!("CARGO_PKG_VERSION"),
    })
}

/// Ready to serve: the database answers and every supervised actor answers a ping.
///
/// 503 names each failing part in `checks` and in `error.message`.
#[utoipa::path(
    get,
    path = "/ready",
    tag = "operations",
    responses(
        (status = 200, description = "Everything answers", body = Object,
         example = json!({"status": "ready", "checks": {"database": "ok", "scheduler": "ok", "job_runner": "ok"}})),
        (status = 503, description = "Something does not", body = Object,
         example = json!({"status": "unavailable", "checks": {"database": "ok", "scheduler": "not running"},
                          "error": {"code": "not_ready", "message": "not ready: scheduler (not running)"}})),
    )
)]
pub async fn ready(state: web::Data<WebState>) -> HttpResponse {
    let (database, actors) = futures_util::join!(
        db::ping(&state.pool, Duration::from_secs(2)),
        state.actors.check(Duration::from_secs(1)),
    );
    let mut checks = serde_json::Map::new();
    let mut failing = Vec::new();
    match database {
        Ok(()) => checks.insert("database".into(), json!("ok")),
        Err(e) => {
            failing.push(format!("database ({e})"));
            checks.insert("database".into(), json!(e))
        }
    };
    for actor in actors {
        match actor.problem {
            None => checks.insert(actor.name.into(), json!("ok")),
            Some(problem) => {
                failing.push(format!("{} ({problem})", actor.name));
                checks.insert(actor.name.into(), json!(problem))
            }
        };
    }
    if failing.is_empty() {
        HttpResponse::Ok().json(json!({"status": "ready", "checks": checks}))
    } else {
        tracing::warn!(failing = %failing.join("; "), "not ready");
        HttpResponse::ServiceUnavailable().json(json!({
            "status": "unavailable",
            "checks": checks,
            "error": {"code": "not_ready", "message": format!("not ready: {}", failing.join("; "))},
        }))
    }
}

/// Prometheus metrics (text exposition format). With `METRICS_TOKEN` set, only for
/// `Authorization: Bearer <METRICS_TOKEN>`: they include revenue and user counts.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operations",
    responses(
        (status = 200, description = "Prometheus text format", content_type = "text/plain"),
        (status = 401, description = "METRICS_TOKEN is set and the request does not carry it", body = crate::error::ErrorBody),
    )
)]
pub async fn metrics(state: web::Data<WebState>, req: HttpRequest) -> HttpResponse {
    if let Some(expected) = &state.settings.metrics_token {
        let given = req
            .headers()
            .get(actix_web::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .unwrap_or_default();
        if !crate::web::webhooks::same_secret(given.as_bytes(), expected.expose().as_bytes()) {
            tracing::info!(remote = ?crate::web::remote_addr(&req), "/metrics without the METRICS_TOKEN refused");
            return actix_web::ResponseError::error_response(
                &crate::error::AppError::Unauthorized(
                    "missing or wrong bearer token (Authorization: Bearer <METRICS_TOKEN>)".into(),
                ),
            );
        }
    }
    refresh_gauges(&state).await;
    match state.metrics.render() {
        Ok(text) => HttpResponse::Ok()
            .content_type("text/plain; version=0.0.4; charset=utf-8")
            .body(text),
        Err(e) => actix_web::ResponseError::error_response(&crate::error::AppError::Internal(
            anyhow::anyhow!("rendering metrics: {e}"),
        )),
    }
}

/// Gauges read at scrape time: the pool's state, the job counts and the business numbers.
async fn refresh_gauges(state: &WebState) {
    futures_util::join!(refresh_jobs(state), refresh_business(state));
}

/// `vpn_shop_subscriptions_expiring` counts subscriptions ending within this time.
const EXPIRING_WITHIN: chrono::Duration = chrono::Duration::days(3);

/// The business gauges (users, trials, paying users, subscriptions, revenue, support), read from the
/// database at most every [`BUSINESS_REFRESH`](crate::metrics::BUSINESS_REFRESH) however many
/// scrapers there are; in between, the last values are exported.
async fn refresh_business(state: &WebState) {
    {
        let mut last = state
            .metrics
            .business_refreshed
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if last.is_some_and(|at| at.elapsed() < crate::metrics::BUSINESS_REFRESH) {
            return;
        }
        // Claimed before the queries, so concurrent scrapes do not run them twice.
        *last = Some(std::time::Instant::now());
    }
    let read = async {
        let mut conn = state.pool.get().await.map_err(|e| e.to_string())?;
        let now = chrono::Utc::now();
        let counts = stats::business_counts(&mut conn, now)
            .await
            .map_err(|e| e.to_string())?;
        let subscriptions = stats::active_subscriptions(&mut conn, now, EXPIRING_WITHIN)
            .await
            .map_err(|e| e.to_string())?;
        let revenue = stats::revenue_totals(&mut conn)
            .await
            .map_err(|e| e.to_string())?;
        let unprovisioned = crate::db::paid_access::flagged(&mut conn)
            .await
            .map_err(|e| e.to_string())?;
        let support = crate::db::support::counts(&mut conn)
            .await
            .map_err(|e| e.to_string())?;
        Ok::<_, String>((counts, subscriptions, revenue, unprovisioned, support))
    };
    let problem = match tokio::time::timeout(Duration::from_secs(2), read).await {
        Ok(Ok((counts, subscriptions, revenue, unprovisioned, support))) => {
            let m = &state.metrics;
            m.support_conversations
                .with_label_values(&["open"])
                .set(support.open);
            m.support_conversations
                .with_label_values(&["answered"])
                .set(support.answered);
            m.support_oldest_waiting.set(support.oldest_waiting_seconds);
            m.paid_unprovisioned.set(unprovisioned);
            m.users.set(counts.users);
            m.users_new_24h.set(counts.users_new_24h);
            m.users_trial.set(counts.users_trial);
            m.users_paying.set(counts.users_paying);
            m.users_trial_converted.set(counts.users_trial_converted);
            m.subscriptions_active.reset();
            m.subscriptions_expiring.reset();
            // Every kind shows, so dashboards see zeros, not gaps.
            for kind in ["trial", "paid", "granted"] {
                m.subscriptions_active.with_label_values(&[kind]).set(0);
                m.subscriptions_expiring.with_label_values(&[kind]).set(0);
            }
            for row in subscriptions {
                let kind = row.kind.as_str();
                m.subscriptions_active
                    .with_label_values(&[kind])
                    .set(row.active);
                m.subscriptions_expiring
                    .with_label_values(&[kind])
                    .set(row.expiring);
            }
            m.revenue.reset();
            m.zero_revenue();
            for row in revenue {
                let major = row.net_minor as f64 / 10f64.powi(row.currency.exponent() as i32);
                m.revenue
                    .with_label_values(&[row.provider.as_str(), row.currency.as_str()])
                    .set(major);
            }
            return;
        }
        Ok(Err(e)) => e,
        Err(_) => "timed out".to_owned(),
    };
    tracing::debug!(error = %problem, "business numbers unavailable for /metrics");
    // The next scrape tries again.
    *state
        .metrics
        .business_refreshed
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner()) = None;
}

/// The pool's state and the job counts.
async fn refresh_jobs(state: &WebState) {
    let status = state.pool.status();
    let pool = &state.metrics.db_pool;
    pool.with_label_values(&["max"]).set(status.max_size as i64);
    pool.with_label_values(&["size"]).set(status.size as i64);
    pool.with_label_values(&["available"])
        .set(status.available as i64);
    pool.with_label_values(&["in_use"])
        .set(status.size.saturating_sub(status.available) as i64);
    pool.with_label_values(&["waiting"])
        .set(status.waiting as i64);

    let counts = async {
        let mut conn = state.pool.get().await.map_err(|e| e.to_string())?;
        jobs::counts(&mut conn).await.map_err(|e| e.to_string())
    };
    match tokio::time::timeout(Duration::from_secs(2), counts).await {
        Ok(Ok(counts)) => {
            let gauge = &state.metrics.jobs;
            gauge.reset();
            // Every handled kind shows every state, so dashboards see zeros, not gaps.
            for kind in &state.job_kinds {
                for job_state in JobState::ALL {
                    gauge.with_label_values(&[kind, job_state.as_str()]).set(0);
                }
            }
            let overdue = &state.metrics.job_oldest_due;
            overdue.reset();
            for kind in &state.job_kinds {
                overdue.with_label_values(&[kind]).set(0.0);
            }
            for row in counts {
                gauge
                    .with_label_values(&[row.kind.as_str(), row.state.as_str()])
                    .set(row.count);
                if row.state == JobState::Pending.as_str() {
                    overdue
                        .with_label_values(&[row.kind.as_str()])
                        .set(row.overdue_seconds);
                }
            }
        }
        Ok(Err(e)) => tracing::debug!(error = %e, "job counts unavailable for /metrics"),
        Err(_) => tracing::debug!("job counts timed out for /metrics"),
    }
}
