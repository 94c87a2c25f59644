//! `GET /admin/`: the dashboard. The numbers are the API's (`GET /stats/overview`, the
//! subscription list, the sync runs, the firing alerts, the job counts); this module only
//! shapes them for the page, with the sales of the last 30 days as a server-rendered SVG chart.
//!
//! The overview's aggregates read the whole users, subscriptions and payments indexes (about
//! 100 ms at 100,000 users, see the console benchmark), too slow for every page view: the page
//! shows an [`OverviewSnapshot`] at most [`FRESH_FOR`] old, recomputed in the background when
//! it is older (the page says "as of" when); one older than [`STALE_AT_MOST`] is recomputed
//! before the page is shown.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;

use super::Layout;
use crate::actors::messages::SyncKind;
use crate::db::subscriptions::{self, ListState};
use crate::db::{PgPool, alerts, jobs, sync};
use crate::domain::{Currency, PaymentProvider, SyncRunStatus};
use crate::error::AppResult;
use crate::web::WebState;
use crate::web::admin::stats::{RevenueDay, RevenueTotals, StatsOverview, load_overview};
use crate::web::auth::role;
use crate::web::pages::render;
use crate::web::pages::session::Console;

#[derive(Template)]
#[template(path = "admin/dashboard.html")]
struct DashboardPage {
    layout: Layout,
    overview: Arc<StatsOverview>,
    periods: Vec<Period>,
    chart: Chart,
    expiring_3d: i64,
    panel_configured: bool,
    syncs: Vec<SyncLine>,
    alerts: Vec<AlertLine>,
    dead_jobs: i64,
}

/// Revenue of one period, by provider and by currency.
struct Period {
    /// Message id of its title.
    title: &'static str,
    lines: Vec<Line>,
    totals: Vec<Line>,
}

struct Line {
    /// Provider or currency.
    label: String,
    payments: i64,
    net_minor: i64,
    refunded_minor: i64,
    currency: Currency,
}

fn period(title: &'static str, totals: &RevenueTotals) -> Period {
    Period {
        title,
        lines: totals
            .by_provider
            .iter()
            .map(|l| Line {
                label: l.provider.as_str().to_owned(),
                payments: l.payments,
                net_minor: l.net_minor,
                refunded_minor: l.refunded_minor,
                currency: l.currency,
            })
            .collect(),
        totals: totals
            .by_currency
            .iter()
            .map(|t| Line {
                label: t.currency.as_str().to_owned(),
                payments: t.payments,
                net_minor: t.net_minor,
                refunded_minor: t.refunded_minor,
                currency: t.currency,
            })
            .collect(),
    }
}

struct SyncLine {
    kind: &'static str,
    status: String,
    ok: bool,
    finished_at: Option<chrono::DateTime<chrono::Utc>>,
    started_at: chrono::DateTime<chrono::Utc>,
}

struct AlertLine {
    kind: String,
    raised_at: chrono::DateTime<chrono::Utc>,
}

/// Sales per day as stacked bars, one colour per provider, in a fixed view box the page scales.
pub struct Chart {
    pub width: u32,
    pub height: u32,
    pub bars: Vec<Bar>,
    /// The tallest day's sales (the top of the scale).
    pub max: i64,
    pub first_day: String,
    pub last_day: String,
    /// Providers that sold in the period, in legend order.
    pub providers: Vec<&'static str>,
}

pub struct Bar {
    pub x: u32,
    pub y: u32,
    pub w: u32,
    pub h: u32,
    /// CSS class of the provider's colour.
    pub class: &'static str,
    /// Tooltip: the day, the provider and its sales.
    pub title: String,
}

const PROVIDERS: [PaymentProvider; 3] = [
    PaymentProvider::Yookassa,
    PaymentProvider::Wata,
    PaymentProvider::Stars,
];

fn provider_class(p: PaymentProvider) -> &'static str {
    match p {
        PaymentProvider::Yookassa => "p-yookassa",
        PaymentProvider::Wata => "p-wata",
        PaymentProvider::Stars => "p-stars",
        PaymentProvider::Free => "p-free",
    }
}

/// The chart of `days` (oldest first): a bar per day, a segment per provider with sales.
pub fn sales_chart(days: &[RevenueDay]) -> Chart {
    let (width, height) = (600u32, 160u32);
    let sales = |d: &RevenueDay, p: PaymentProvider| -> i64 {
        d.totals
            .by_provider
            .iter()
            .filter(|l| l.provider == p)
            .map(|l| l.payments)
            .sum()
    };
    let max = days
        .iter()
        .map(|d| PROVIDERS.iter().map(|p| sales(d, *p)).sum::<i64>())
        .max()
        .unwrap_or(0);
    let slot = width / (days.len().max(1) as u32);
    let gap = (slot / 5).max(1);
    let mut bars = Vec::new();
    for (i, day) in days.iter().enumerate() {
        let mut top = height;
        for p in PROVIDERS {
            let n = sales(day, p);
            if n == 0 || max == 0 {
                continue;
            }
            let h = ((n as f64 / max as f64) * f64::from(height - 4))
                .round()
                .max(2.0) as u32;
            top = top.saturating_sub(h);
            bars.push(Bar {
                x: i as u32 * slot + gap / 2,
                y: top,
                w: slot - gap,
                h,
                class: provider_class(p),
                title: format!("{} · {}: {n}", day.date, p.as_str()),
            });
        }
    }
    let providers = PROVIDERS
        .into_iter()
        .filter(|p| days.iter().any(|d| sales(d, *p) > 0))
        .map(|p| p.as_str())
        .collect();
    Chart {
        width,
        height,
        bars,
        max,
        first_day: days.first().map(|d| d.date.to_string()).unwrap_or_default(),
        last_day: days.last().map(|d| d.date.to_string()).unwrap_or_default(),
        providers,
    }
}

/// A snapshot this young is shown as it is.
pub const FRESH_FOR: Duration = Duration::from_secs(10);
/// A snapshot older than this (nobody looked for a while) is recomputed before it is shown.
pub const STALE_AT_MOST: Duration = Duration::from_secs(300);

/// The last overview computed for the dashboard, shared by the pages of one process.
#[derive(Default)]
pub struct OverviewSnapshot {
    latest: std::sync::Mutex<Option<(Instant, Arc<StatsOverview>)>>,
    /// A background recomputation is running (one at a time).
    refreshing: AtomicBool,
}

impl OverviewSnapshot {
    /// The overview to show: the snapshot while fresh; while merely stale, the snapshot and a
    /// recomputation in the background; otherwise computed now.
    pub async fn get(self: &Arc<Self>, pool: &PgPool) -> AppResult<Arc<StatsOverview>> {
        let latest = self
            .latest
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        if let Some((at, overview)) = latest {
            let age = at.elapsed();
            if age < FRESH_FOR {
                return Ok(overview);
            }
            if age < STALE_AT_MOST {
                if !self.refreshing.swap(true, Ordering::AcqRel) {
                    let (snapshot, pool) = (Arc::clone(self), pool.clone());
                    actix_web::rt::spawn(async move {
                        match load_overview(&pool).await {
                            Ok(overview) => {
                                snapshot.store(overview);
                            }
                            Err(e) => {
                                tracing::warn!(error = %e, "recomputing the dashboard's overview failed")
                            }
                        }
                        snapshot.refreshing.store(false, Ordering::Release);
                    });
                }
                return Ok(overview);
            }
        }
        Ok(self.store(load_overview(pool).await?))
    }

    fn store(&self, overview: StatsOverview) -> Arc<StatsOverview> {
        let overview = Arc::new(overview);
        *self.latest.lock().unwrap_or_else(|e| e.into_inner()) =
            Some((Instant::now(), Arc::clone(&overview)));
        overview
    }
}

/// `GET /admin/`: the shop at a glance.
pub async fn show(
    console: Console<role::Viewer>,
    state: web::Data<WebState>,
    req: HttpRequest,
) -> AppResult<HttpResponse> {
    let overview = state.dashboard.get(&state.pool).await?;
    let mut conn = state.pool.get().await?;
    let expiring_3d = subscriptions::count(
        &mut conn,
        Some(ListState::Expiring { within_days: 3 }),
        None,
    )
    .await?;
    let mut syncs = Vec::new();
    for kind in SyncKind::ALL {
        if let Some(run) = sync::recent_runs(&mut conn, kind.as_str(), 1)
            .await?
            .into_iter()
            .next()
        {
            syncs.push(SyncLine {
                kind: kind.as_str(),
                ok: run.status != SyncRunStatus::Failed,
                status: run.status.as_str().to_owned(),
                finished_at: run.finished_at,
                started_at: run.started_at,
            });
        }
    }
    let alerts = alerts::firing(&mut conn)
        .await?
        .into_iter()
        .map(|a| AlertLine {
            kind: a.kind.as_str().to_owned(),
            raised_at: a.raised_at,
        })
        .collect();
    let dead_jobs = jobs::dead_count(&mut conn).await?;
    let page = DashboardPage {
        layout: Layout::of(&req, &console),
        periods: vec![
            period("period-today", &overview.revenue.today),
            period("period-7d", &overview.revenue.last_7_days),
            period("period-30d", &overview.revenue.last_30_days),
        ],
        chart: sales_chart(&overview.revenue.by_day),
        overview,
        expiring_3d,
        panel_configured: state.settings.panel.is_some(),
        syncs,
        alerts,
        dead_jobs,
    };
    render(StatusCode::OK, &page)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::web::admin::stats::RevenueLine;

    fn day(date: &str, sales: &[(PaymentProvider, i64)]) -> RevenueDay {
        RevenueDay {
            date: date.parse().unwrap(),
            totals: RevenueTotals {
                by_provider: sales
                    .iter()
                    .map(|(p, n)| RevenueLine {
                        provider: *p,
                        currency: Currency::Rub,
                        payments: *n,
                        amount_minor: n * 100,
                        refunded_minor: 0,
                        net_minor: n * 100,
                    })
                    .collect(),
                by_currency: vec![],
            },
        }
    }

    #[test]
    fn the_busiest_day_fills_the_chart_and_providers_stack() {
        let days = [
            day("2026-03-01", &[]),
            day(
                "2026-03-02",
                &[(PaymentProvider::Yookassa, 3), (PaymentProvider::Stars, 1)],
            ),
            day("2026-03-03", &[(PaymentProvider::Yookassa, 2)]),
        ];
        let chart = sales_chart(&days);
        assert_eq!(chart.max, 4);
        assert_eq!(chart.providers, ["yookassa", "stars"]);
        assert_eq!(chart.bars.len(), 3, "no bar for an empty day");
        let busiest: Vec<_> = chart
            .bars
            .iter()
            .filter(|b| b.x == chart.bars[0].x)
            .collect();
        let total: u32 = busiest.iter().map(|b| b.h).sum();
        assert_eq!(total, chart.height - 4, "the busiest day is full height");
        assert_eq!(
            busiest[1].y + busiest[1].h,
            busiest[0].y,
            "stacked, no overlap"
        );
        assert!(chart.bars[2].h < total);
    }

    #[test]
    fn no_sales_no_bars() {
        let chart = sales_chart(&[day("2026-03-01", &[])]);
        assert!(chart.bars.is_empty());
        assert_eq!(chart.max, 0);
    }
}
