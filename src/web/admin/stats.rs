//! `GET /stats/overview`: the shop in numbers. The aggregates are in `db::stats`; the independent
//! statements run at once on separate pooled connections, and the revenue rows are shaped here.

use std::collections::BTreeMap;

use actix_web::web;
use chrono::{DateTime, NaiveDate, Utc};
use diesel_async::AsyncConnection;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::db::PgPool;
use crate::db::stats::{self, RevenueRow, Windows};
use crate::domain::{Currency, PaymentProvider};
use crate::error::{AppError, AppResult, ErrorBody};
use crate::web::WebState;
use crate::web::auth::{Require, role};

/// The business overview. Periods are UTC calendar days: "today" since 00:00 UTC, "7 d" and
/// "30 d" are today and the 6 or 29 days before it (see `periods`). Money is in minor units of
/// its currency — kopecks for RUB, whole Stars for XTR — and amounts of different currencies
/// are never added together. Revenue counts payments that brought money (succeeded, or refunded
/// since: the refunded part is shown apart; 100 % promo orders are not revenue), on the day they
/// were paid.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct StatsOverview {
    pub generated_at: DateTime<Utc>,
    pub periods: Periods,
    pub users: UserStats,
    pub subscriptions: SubscriptionStats,
    pub trials: TrialStats,
    /// Users with at least one payment that brought money, ever.
    pub paying_users: i64,
    pub revenue: Revenue,
    pub mrr: Mrr,
    pub churn: Churn,
}

/// Where the periods of the overview begin.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Periods {
    /// 00:00 UTC today.
    pub today_from: DateTime<Utc>,
    /// 00:00 UTC six days before today.
    pub last_7_days_from: DateTime<Utc>,
    /// 00:00 UTC 29 days before today: the start of the 30-day period of revenue, churn and
    /// new users.
    pub last_30_days_from: DateTime<Utc>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct UserStats {
    pub total: i64,
    /// Joined today.
    pub new_today: i64,
    /// Joined in the last 7 days (today included).
    pub new_7d: i64,
    /// Joined in the last 30 days (today included).
    pub new_30d: i64,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SubscriptionStats {
    /// Running now: not disabled and ending in the future (trials included).
    pub active: i64,
    /// Running trials.
    pub active_trials: i64,
    /// Running subscriptions bought with a plan (not trials): those of `mrr`.
    pub active_paid: i64,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct TrialStats {
    /// Users who ever started a trial.
    pub users_with_trial: i64,
    /// Of those, the users who paid after their trial started.
    pub converted: i64,
    /// `converted / users_with_trial`; `null` when no one had a trial.
    pub conversion_rate: Option<f64>,
}

/// Monthly recurring revenue: for each running paid subscription (`subscriptions.active_paid`),
/// the price of its plan normalised to 30 days, in RUB kopecks:
/// `round(Σ plan.price_minor × 30 / plan.days)`. A 3-month plan (90 days) of 549.00 RUB counts
/// 183.00 RUB a month. Subscriptions paid in Stars count their plan's RUB price.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Mrr {
    pub amount_minor: i64,
    /// Always `RUB`.
    #[schema(value_type = String, example = "RUB")]
    pub currency: Currency,
    pub subscriptions: i64,
}

/// Churn over the 30-day period: of the paid subscriptions running at its start
/// (`base`: bought with a plan, created by then and ending after it), those that ended within
/// it and were not renewed since (`churned`: their end is still in the past). The database keeps
/// each subscription's current state, not its history, so one that had lapsed before the period
/// and was renewed within it counts in `base` as if it had run throughout.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Churn {
    pub base: i64,
    pub churned: i64,
    /// `churned / base`; `null` when `base` is 0.
    pub rate: Option<f64>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Revenue {
    pub today: RevenueTotals,
    /// Today and the 6 days before it.
    pub last_7_days: RevenueTotals,
    pub last_30_days: RevenueTotals,
    /// The 30 days of `last_30_days`, oldest first; days without payments are there, empty.
    pub by_day: Vec<RevenueDay>,
}

#[derive(Debug, Default, Serialize, Deserialize, ToSchema)]
pub struct RevenueTotals {
    /// One line per provider and currency that had payments, by provider.
    pub by_provider: Vec<RevenueLine>,
    /// One line per currency that had payments (the providers' lines added up).
    pub by_currency: Vec<CurrencyTotal>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct RevenueDay {
    pub date: NaiveDate,
    #[serde(flatten)]
    pub totals: RevenueTotals,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RevenueLine {
    /// `yookassa`, `wata` or `stars`.
    #[schema(value_type = String, example = "yookassa")]
    pub provider: PaymentProvider,
    /// `RUB` (kopecks) or `XTR` (Stars).
    #[schema(value_type = String, example = "RUB")]
    pub currency: Currency,
    pub payments: i64,
    /// Paid, before refunds.
    pub amount_minor: i64,
    /// Refunded since, of these payments.
    pub refunded_minor: i64,
    /// `amount_minor − refunded_minor`.
    pub net_minor: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CurrencyTotal {
    #[schema(value_type = String, example = "RUB")]
    pub currency: Currency,
    pub payments: i64,
    pub amount_minor: i64,
    pub refunded_minor: i64,
    pub net_minor: i64,
}

/// Adds up revenue rows by provider and currency, and by currency.
fn totals<'a>(rows: impl IntoIterator<Item = &'a RevenueRow>) -> RevenueTotals {
    let mut lines: BTreeMap<(&str, &str), RevenueLine> = BTreeMap::new();
    let mut currencies: BTreeMap<&str, CurrencyTotal> = BTreeMap::new();
    for row in rows {
        let line = lines
            .entry((row.provider.as_str(), row.currency.as_str()))
            .or_insert_with(|| RevenueLine {
                provider: row.provider,
                currency: row.currency,
                payments: 0,
                amount_minor: 0,
                refunded_minor: 0,
                net_minor: 0,
            });
        line.payments += row.payments;
        line.amount_minor += row.amount_minor;
        line.refunded_minor += row.refunded_minor;
        line.net_minor += row.amount_minor - row.refunded_minor;
        let total = currencies
            .entry(row.currency.as_str())
            .or_insert_with(|| CurrencyTotal {
                currency: row.currency,
                payments: 0,
                amount_minor: 0,
                refunded_minor: 0,
                net_minor: 0,
            });
        total.payments += row.payments;
        total.amount_minor += row.amount_minor;
        total.refunded_minor += row.refunded_minor;
        total.net_minor += row.amount_minor - row.refunded_minor;
    }
    RevenueTotals {
        by_provider: lines.into_values().collect(),
        by_currency: currencies.into_values().collect(),
    }
}

fn revenue(rows: &[RevenueRow], w: &Windows) -> Revenue {
    let today = w.today.date_naive();
    Revenue {
        today: totals(rows.iter().filter(|r| r.day >= today)),
        last_7_days: totals(rows.iter().filter(|r| r.day >= w.since_7d.date_naive())),
        last_30_days: totals(rows),
        by_day: w
            .days()
            .into_iter()
            .map(|date| RevenueDay {
                date,
                totals: totals(rows.iter().filter(|r| r.day == date)),
            })
            .collect(),
    }
}

fn ratio(part: i64, whole: i64) -> Option<f64> {
    (whole > 0).then(|| part as f64 / whole as f64)
}

/// Runs `$body` (statements on `$conn`) on a pooled connection of its own, in a transaction
/// with plans fit for short aggregates (see [`stats::plain_plans`]).
macro_rules! on_own_connection {
    ($pool:expr, |$conn:ident| $body:expr) => {
        async {
            let mut conn = $pool.get().await?;
            conn.transaction::<_, AppError, _>(async |$conn| {
                stats::plain_plans($conn).await?;
                Ok($body)
            })
            .await
        }
    };
}

/// The shop in numbers: users, subscriptions, trials and their conversion, paying users,
/// revenue per provider and currency (today, 30 days, by day), MRR and churn.
#[utoipa::path(
    get,
    path = "/api/v1/stats/overview",
    tag = "stats",
    security(("bearer" = [])),
    responses(
        (status = 200, body = StatsOverview),
        (status = 401, body = ErrorBody),
    )
)]
pub async fn overview(
    _admin: Require<role::Viewer>,
    state: web::Data<WebState>,
) -> AppResult<web::Json<StatsOverview>> {
    Ok(web::Json(load_overview(&state.pool).await?))
}

/// The overview as of now (the API's `GET /stats/overview` and the console's dashboard).
pub(crate) async fn load_overview(pool: &PgPool) -> AppResult<StatsOverview> {
    let w = Windows::at(Utc::now());
    // Three connections, three server processes: the statements take milliseconds each and
    // run side by side instead of one after the other.
    let (users, subscriptions, (paying_users, revenue_rows)) = futures_util::try_join!(
        on_own_connection!(pool, |c| stats::users(c, &w).await?),
        on_own_connection!(pool, |c| stats::subscriptions(c, &w).await?),
        on_own_connection!(pool, |c| (
            stats::paying_users(c).await?,
            stats::revenue_by_day(c, w.since_30d).await?
        )),
    )?;
    Ok(StatsOverview {
        generated_at: w.now,
        periods: Periods {
            today_from: w.today,
            last_7_days_from: w.since_7d,
            last_30_days_from: w.since_30d,
        },
        users: UserStats {
            total: users.total,
            new_today: users.new_today,
            new_7d: users.new_7d,
            new_30d: users.new_30d,
        },
        subscriptions: SubscriptionStats {
            active: subscriptions.active,
            active_trials: subscriptions.active_trials,
            active_paid: subscriptions.active_paid,
        },
        trials: TrialStats {
            users_with_trial: users.with_trial,
            converted: users.converted,
            conversion_rate: ratio(users.converted, users.with_trial),
        },
        paying_users,
        revenue: revenue(&revenue_rows, &w),
        mrr: Mrr {
            amount_minor: subscriptions.mrr_minor,
            currency: Currency::Rub,
            subscriptions: subscriptions.active_paid,
        },
        churn: Churn {
            base: subscriptions.churn_base,
            churned: subscriptions.churned,
            rate: ratio(subscriptions.churned, subscriptions.churn_base),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(
        day: &str,
        provider: PaymentProvider,
        currency: Currency,
        n: i64,
        amount: i64,
        refunded: i64,
    ) -> RevenueRow {
        RevenueRow {
            day: day.parse().unwrap(),
            provider,
            currency,
            payments: n,
            amount_minor: amount,
            refunded_minor: refunded,
        }
    }

    #[test]
    fn revenue_is_added_up_per_currency_and_never_across() {
        let now = "2026-03-01T12:00:00Z".parse::<DateTime<Utc>>().unwrap();
        let w = Windows::at(now);
        let rows = [
            row(
                "2026-02-01",
                PaymentProvider::Yookassa,
                Currency::Rub,
                2,
                39_800,
                0,
            ),
            row(
                "2026-03-01",
                PaymentProvider::Wata,
                Currency::Rub,
                1,
                19_900,
                19_900,
            ),
            row(
                "2026-03-01",
                PaymentProvider::Yookassa,
                Currency::Rub,
                1,
                54_900,
                0,
            ),
            row(
                "2026-03-01",
                PaymentProvider::Stars,
                Currency::Xtr,
                3,
                450,
                150,
            ),
        ];
        let r = revenue(&rows, &w);
        assert_eq!(r.by_day.len(), 30);
        assert_eq!(r.by_day[0].date.to_string(), "2026-01-31");
        assert!(r.by_day[0].totals.by_provider.is_empty());
        assert_eq!(r.by_day[1].totals.by_currency[0].amount_minor, 39_800);

        let today = &r.today;
        let providers: Vec<_> = today
            .by_provider
            .iter()
            .map(|l| (l.provider.as_str(), l.net_minor))
            .collect();
        assert_eq!(
            providers,
            [("stars", 300), ("wata", 0), ("yookassa", 54_900)]
        );
        let currencies: Vec<_> = today
            .by_currency
            .iter()
            .map(|t| (t.currency.as_str(), t.payments, t.amount_minor, t.net_minor))
            .collect();
        assert_eq!(
            currencies,
            [("RUB", 2, 74_800, 54_900), ("XTR", 3, 450, 300)]
        );
        let week: Vec<_> = r
            .last_7_days
            .by_currency
            .iter()
            .map(|t| (t.currency.as_str(), t.amount_minor))
            .collect();
        assert_eq!(
            week,
            [("RUB", 74_800), ("XTR", 450)],
            "February is not this week"
        );
        let month: Vec<_> = r
            .last_30_days
            .by_currency
            .iter()
            .map(|t| (t.currency.as_str(), t.amount_minor))
            .collect();
        assert_eq!(month, [("RUB", 114_600), ("XTR", 450)]);
    }

    #[test]
    fn rates_need_a_base() {
        assert_eq!(ratio(1, 4), Some(0.25));
        assert_eq!(ratio(0, 0), None);
    }
}
