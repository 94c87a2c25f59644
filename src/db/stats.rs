//! The aggregates behind `GET /api/v1/stats/overview`: users, subscriptions, trials, revenue.
//!
//! Every number is computed by PostgreSQL from the rows themselves, with few statements that each
//! read an index range or one table once (checked with EXPLAIN ANALYZE on 100,000 users and
//! 300,000 payments; the indexes are in the `admin_api_admin` migration). The statements are
//! independent, so the caller may run them on separate connections at once.

use chrono::{DateTime, Duration, NaiveDate, Utc};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Date, Text, Timestamptz};
use diesel_async::RunQueryDsl;

use crate::db::PgConn;
use crate::domain::alerts::{DigestFigures, ProviderRevenue};
use crate::domain::{Currency, Money, PaymentProvider};

/// A payment that brought money: paid (a refund, whole or partial, keeps it paid; the refunded
/// amount is reported apart) and not a 100 % promo order. The partial indexes of the migration
/// carry exactly this predicate, so keep them in step.
const PAID: &str = "status IN ('succeeded', 'refunded') AND provider <> 'free'";

/// The periods of an overview, in UTC calendar days: "today" began at 00:00 UTC, the 7 and 30
/// day periods are today and the 6 (29) days before it. The 30-day period is the one of the
/// revenue by day, so its days add up to its total.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Windows {
    pub now: DateTime<Utc>,
    pub today: DateTime<Utc>,
    pub since_7d: DateTime<Utc>,
    pub since_30d: DateTime<Utc>,
}

impl Windows {
    pub fn at(now: DateTime<Utc>) -> Windows {
        let today = now
            .date_naive()
            .and_hms_opt(0, 0, 0)
            .map(|t| t.and_utc())
            .unwrap_or(now);
        Windows {
            now,
            today,
            since_7d: today - Duration::days(6),
            since_30d: today - Duration::days(29),
        }
    }

    /// The 30 days of the revenue series, oldest first.
    pub fn days(&self) -> Vec<NaiveDate> {
        let first = self.since_30d.date_naive();
        first.iter_days().take(30).collect()
    }
}

/// Plans for short aggregates, for the rest of the caller's transaction: no JIT compilation and
/// no parallel workers. These statements run in milliseconds, but their plan cost grows with
/// the tables past the points where PostgreSQL starts compiling or starting workers, which then
/// costs more than it saves (the caller already runs the statements side by side). Without
/// workers the planner also keeps to the merge of two ordered indexes for the trial conversion
/// instead of hashing every paid payment.
pub async fn plain_plans(conn: &mut PgConn) -> QueryResult<()> {
    diesel::sql_query(
        "SELECT set_config('jit', 'off', true), \
                set_config('max_parallel_workers_per_gather', '0', true)",
    )
    .execute(conn)
    .await
    .map(|_| ())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, QueryableByName)]
pub struct UserCounts {
    #[diesel(sql_type = BigInt)]
    pub total: i64,
    #[diesel(sql_type = BigInt)]
    pub new_today: i64,
    #[diesel(sql_type = BigInt)]
    pub new_7d: i64,
    #[diesel(sql_type = BigInt)]
    pub new_30d: i64,
    /// Users who ever started a trial (`users.trial_used_at`).
    #[diesel(sql_type = BigInt)]
    pub with_trial: i64,
    /// Of those, the users with a paid payment after the trial started.
    #[diesel(sql_type = BigInt)]
    pub converted: i64,
}

/// Users: total, new per period, trials and their conversion to a payment.
pub async fn users(conn: &mut PgConn, w: &Windows) -> QueryResult<UserCounts> {
    // The total from row_counts (kept by triggers); new users from the range of
    // users_created_at_id_idx; trial users from users_trial_idx (id
    // order), which PostgreSQL merges with payments_paid_user_idx (user order) for the
    // conversion: one pass over each index, no per-user aggregation.
    diesel::sql_query(format!(
        "SELECT (SELECT n FROM row_counts WHERE table_name = 'users') AS total, \
                count(*) FILTER (WHERE created_at >= $1) AS new_today, \
                count(*) FILTER (WHERE created_at >= $2) AS new_7d, \
                count(*) AS new_30d, \
                (SELECT count(*) FROM users WHERE trial_used_at IS NOT NULL) AS with_trial, \
                (SELECT count(*) FROM users u WHERE u.trial_used_at IS NOT NULL AND EXISTS ( \
                    SELECT 1 FROM payments p WHERE p.user_id = u.id AND {PAID} \
                      AND p.paid_at > u.trial_used_at)) AS converted \
         FROM users WHERE created_at >= $3"
    ))
    .bind::<Timestamptz, _>(w.today)
    .bind::<Timestamptz, _>(w.since_7d)
    .bind::<Timestamptz, _>(w.since_30d)
    .get_result(conn)
    .await
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    count: i64,
}

/// Users with at least one paid payment, ever.
pub async fn paying_users(conn: &mut PgConn) -> QueryResult<i64> {
    // An index-only scan of payments_paid_user_idx, already in user order: no sort, no hash.
    let row: Count = diesel::sql_query(format!(
        "SELECT count(*) AS count FROM (SELECT DISTINCT user_id FROM payments WHERE {PAID}) p"
    ))
    .get_result(conn)
    .await?;
    Ok(row.count)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, QueryableByName)]
pub struct SubscriptionCounts {
    /// Running now: not disabled, end in the future.
    #[diesel(sql_type = BigInt)]
    pub active: i64,
    #[diesel(sql_type = BigInt)]
    pub active_trials: i64,
    /// Running, not a trial, bought with a plan.
    #[diesel(sql_type = BigInt)]
    pub active_paid: i64,
    /// round(Σ plan price (kopecks) × 30 / plan days) over the active paid subscriptions.
    #[diesel(sql_type = BigInt)]
    pub mrr_minor: i64,
    /// Paid subscriptions running at the start of the 30-day period.
    #[diesel(sql_type = BigInt)]
    pub churn_base: i64,
    /// Of those, the ones that ended within the period and were not renewed since.
    #[diesel(sql_type = BigInt)]
    pub churned: i64,
}

/// Subscriptions: running, trials, paid, MRR and churn over the 30-day period.
///
/// A paid subscription is one that is not a trial and holds a plan: the plan is set when an
/// order for it is fulfilled, never by a trial or bonus days. The database keeps each user's
/// subscription as it is now, not its history, so "running at the start of the period" is read
/// from it: created by then and ending after it (an end only moves forward, except by a refund).
/// A subscription that lapsed before the period and was renewed within it therefore counts as if
/// it had run throughout.
pub async fn subscriptions(conn: &mut PgConn, w: &Windows) -> QueryResult<SubscriptionCounts> {
    // Only subscriptions ending after the start of the period matter to any of these numbers.
    diesel::sql_query(
        "SELECT count(*) FILTER (WHERE s.status <> 'disabled' AND s.expires_at > $2) AS active, \
            count(*) FILTER (WHERE s.status <> 'disabled' AND s.expires_at > $2 AND s.is_trial) \
                AS active_trials, \
            count(*) FILTER (WHERE s.status <> 'disabled' AND s.expires_at > $2 \
                AND NOT s.is_trial AND s.plan_id IS NOT NULL) AS active_paid, \
            coalesce(round(sum(p.price_minor::numeric * 30 / p.days) \
                FILTER (WHERE s.status <> 'disabled' AND s.expires_at > $2 AND NOT s.is_trial)), 0)::bigint \
                AS mrr_minor, \
            count(*) FILTER (WHERE NOT s.is_trial AND s.plan_id IS NOT NULL AND s.created_at <= $1) \
                AS churn_base, \
            count(*) FILTER (WHERE NOT s.is_trial AND s.plan_id IS NOT NULL AND s.created_at <= $1 \
                AND s.expires_at <= $2) AS churned \
         FROM subscriptions s LEFT JOIN plans p ON p.id = s.plan_id \
         WHERE s.expires_at > $1",
    )
    .bind::<Timestamptz, _>(w.since_30d)
    .bind::<Timestamptz, _>(w.now)
    .get_result(conn)
    .await
}

/// Paid payments of one UTC day, one provider and one currency.
#[derive(Debug, Clone, PartialEq, Eq, QueryableByName)]
pub struct RevenueRow {
    #[diesel(sql_type = Date)]
    pub day: NaiveDate,
    #[diesel(sql_type = Text)]
    pub provider: PaymentProvider,
    #[diesel(sql_type = Text)]
    pub currency: Currency,
    #[diesel(sql_type = BigInt)]
    pub payments: i64,
    #[diesel(sql_type = BigInt)]
    pub amount_minor: i64,
    /// Refunded since, of these payments.
    #[diesel(sql_type = BigInt)]
    pub refunded_minor: i64,
}

/// Paid payments since `since` by the UTC day they were paid, provider and currency.
pub async fn revenue_by_day(
    conn: &mut PgConn,
    since: DateTime<Utc>,
) -> QueryResult<Vec<RevenueRow>> {
    // An index-only range scan of payments_revenue_idx.
    diesel::sql_query(format!(
        "SELECT (paid_at AT TIME ZONE 'UTC')::date AS day, provider, currency, \
                count(*) AS payments, sum(amount_minor)::bigint AS amount_minor, \
                sum(refunded_minor)::bigint AS refunded_minor \
         FROM payments WHERE {PAID} AND paid_at >= $1 \
         GROUP BY 1, 2, 3 ORDER BY 1, 2, 3"
    ))
    .bind::<Timestamptz, _>(since)
    .load(conn)
    .await
}

/// The business numbers `/metrics` exports (read at scrape time, see `web::health`): users,
/// trials and their conversion, paying users. Each is a count over an index (or `row_counts`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, QueryableByName)]
pub struct BusinessCounts {
    #[diesel(sql_type = BigInt)]
    pub users: i64,
    /// Registered in the 24 hours before `now`.
    #[diesel(sql_type = BigInt)]
    pub users_new_24h: i64,
    /// Users who ever started a trial.
    #[diesel(sql_type = BigInt)]
    pub users_trial: i64,
    /// Users with at least one paid payment (as [`paying_users`]).
    #[diesel(sql_type = BigInt)]
    pub users_paying: i64,
    /// Users who had a trial and paid after it started (as [`UserCounts::converted`]).
    #[diesel(sql_type = BigInt)]
    pub users_trial_converted: i64,
}

/// Users, trials, conversion and paying users, in one statement.
pub async fn business_counts(conn: &mut PgConn, now: DateTime<Utc>) -> QueryResult<BusinessCounts> {
    // row_counts for the total; a range of users_created_at_id_idx; users_trial_idx; an
    // index-only scan of payments_paid_user_idx (merged with users_trial_idx for the conversion).
    diesel::sql_query(format!(
        "SELECT (SELECT n FROM row_counts WHERE table_name = 'users') AS users, \
                (SELECT count(*) FROM users WHERE created_at >= $1) AS users_new_24h, \
                (SELECT count(*) FROM users WHERE trial_used_at IS NOT NULL) AS users_trial, \
                (SELECT count(*) FROM (SELECT DISTINCT user_id FROM payments WHERE {PAID}) p) \
                    AS users_paying, \
                (SELECT count(*) FROM users u WHERE u.trial_used_at IS NOT NULL AND EXISTS ( \
                    SELECT 1 FROM payments p WHERE p.user_id = u.id AND {PAID} \
                      AND p.paid_at > u.trial_used_at)) AS users_trial_converted"
    ))
    .bind::<Timestamptz, _>(now - Duration::hours(24))
    .get_result(conn)
    .await
}

/// Running subscriptions of one kind: `trial`, `paid` (bought with a plan) or `granted` (days
/// given by an admin, a referral or a promo code, no plan).
#[derive(Debug, Clone, PartialEq, Eq, QueryableByName)]
pub struct ActiveSubscriptions {
    #[diesel(sql_type = Text)]
    pub kind: String,
    /// Status `active` and ending after now.
    #[diesel(sql_type = BigInt)]
    pub active: i64,
    /// Of those, ending within the window given to [`active_subscriptions`].
    #[diesel(sql_type = BigInt)]
    pub expiring: i64,
}

/// Subscriptions with status `active` that end after `now`, by kind, and how many of them end
/// before `now + expiring_within`.
pub async fn active_subscriptions(
    conn: &mut PgConn,
    now: DateTime<Utc>,
    expiring_within: Duration,
) -> QueryResult<Vec<ActiveSubscriptions>> {
    // A range of subscriptions_expires_at_idx (status, expires_at).
    diesel::sql_query(
        "SELECT CASE WHEN is_trial THEN 'trial' WHEN plan_id IS NOT NULL THEN 'paid' \
                     ELSE 'granted' END AS kind, \
                count(*) AS active, count(*) FILTER (WHERE expires_at <= $2) AS expiring \
         FROM subscriptions WHERE status = 'active' AND expires_at > $1 \
         GROUP BY 1 ORDER BY 1",
    )
    .bind::<Timestamptz, _>(now)
    .bind::<Timestamptz, _>(now + expiring_within)
    .load(conn)
    .await
}

/// Net revenue of one provider and currency since the shop began.
#[derive(Debug, Clone, PartialEq, Eq, QueryableByName)]
pub struct RevenueTotal {
    #[diesel(sql_type = Text)]
    pub provider: PaymentProvider,
    #[diesel(sql_type = Text)]
    pub currency: Currency,
    /// Σ (amount − refunded) of the paid payments, in minor units.
    #[diesel(sql_type = BigInt)]
    pub net_minor: i64,
}

/// Paid payments, all time, by provider and currency: amount minus what was refunded.
pub async fn revenue_totals(conn: &mut PgConn) -> QueryResult<Vec<RevenueTotal>> {
    // An index-only scan of payments_revenue_idx, which carries all four columns.
    diesel::sql_query(format!(
        "SELECT provider, currency, sum(amount_minor - refunded_minor)::bigint AS net_minor \
         FROM payments WHERE {PAID} GROUP BY 1, 2 ORDER BY 1, 2"
    ))
    .load(conn)
    .await
}

#[derive(QueryableByName)]
struct DigestCounts {
    #[diesel(sql_type = BigInt)]
    sales: i64,
    #[diesel(sql_type = BigInt)]
    new_users: i64,
    #[diesel(sql_type = BigInt)]
    trials: i64,
    #[diesel(sql_type = BigInt)]
    trial_conversions: i64,
    #[diesel(sql_type = BigInt)]
    renewals: i64,
    #[diesel(sql_type = BigInt)]
    refunds: i64,
    #[diesel(sql_type = BigInt)]
    expiring: i64,
}

#[derive(QueryableByName)]
struct Sum {
    #[diesel(sql_type = Text)]
    provider: PaymentProvider,
    #[diesel(sql_type = Text)]
    currency: Currency,
    #[diesel(sql_type = BigInt)]
    amount_minor: i64,
    #[diesel(sql_type = BigInt)]
    payments: i64,
}

#[derive(QueryableByName)]
struct CurrencySum {
    #[diesel(sql_type = Text)]
    currency: Currency,
    #[diesel(sql_type = BigInt)]
    amount_minor: i64,
}

/// The daily digest's figures for the day `[from, to)`; "expiring" counts the active
/// subscriptions that end in `[expiring_from, expiring_from + 1 day)`. A sale is a paid payment
/// paid in the day; a renewal, a sale to a user who had paid before it; a trial conversion, a
/// user who started a trial and paid for the first time in the day, after it.
pub async fn digest(
    conn: &mut PgConn,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    expiring_from: DateTime<Utc>,
) -> QueryResult<DigestFigures> {
    let counts: DigestCounts = diesel::sql_query(format!(
        "WITH day AS (SELECT id, user_id, paid_at FROM payments \
                      WHERE {PAID} AND paid_at >= $1 AND paid_at < $2) \
         SELECT (SELECT count(*) FROM day) AS sales, \
                (SELECT count(*) FROM users WHERE created_at >= $1 AND created_at < $2) \
                    AS new_users, \
                (SELECT count(*) FROM users WHERE trial_used_at >= $1 AND trial_used_at < $2) \
                    AS trials, \
                (SELECT count(DISTINCT d.user_id) FROM day d JOIN users u ON u.id = d.user_id \
                 WHERE u.trial_used_at < d.paid_at AND NOT EXISTS ( \
                     SELECT 1 FROM payments e WHERE e.user_id = d.user_id AND {PAID} \
                       AND e.paid_at < $1)) AS trial_conversions, \
                (SELECT count(*) FROM day d WHERE EXISTS ( \
                     SELECT 1 FROM payments e WHERE e.user_id = d.user_id AND {PAID} \
                       AND e.paid_at < d.paid_at)) AS renewals, \
                (SELECT count(*) FROM payment_refunds \
                 WHERE state = 'applied' AND created_at >= $1 AND created_at < $2) AS refunds, \
                (SELECT count(*) FROM subscriptions WHERE status = 'active' \
                   AND expires_at >= $3 AND expires_at < $3 + interval '1 day') AS expiring"
    ))
    .bind::<Timestamptz, _>(from)
    .bind::<Timestamptz, _>(to)
    .bind::<Timestamptz, _>(expiring_from)
    .get_result(conn)
    .await?;
    let revenue: Vec<Sum> = diesel::sql_query(format!(
        "SELECT provider, currency, sum(amount_minor)::bigint AS amount_minor, count(*) AS payments \
         FROM payments WHERE {PAID} AND paid_at >= $1 AND paid_at < $2 \
         GROUP BY 1, 2 ORDER BY 3 DESC, 1, 2"
    ))
    .bind::<Timestamptz, _>(from)
    .bind::<Timestamptz, _>(to)
    .load(conn)
    .await?;
    let refunded: Vec<CurrencySum> = diesel::sql_query(
        "SELECT p.currency, sum(r.amount_minor)::bigint AS amount_minor \
         FROM payment_refunds r JOIN payments p ON p.id = r.payment_id \
         WHERE r.state = 'applied' AND r.created_at >= $1 AND r.created_at < $2 \
         GROUP BY p.currency ORDER BY p.currency",
    )
    .bind::<Timestamptz, _>(from)
    .bind::<Timestamptz, _>(to)
    .load(conn)
    .await?;
    Ok(DigestFigures {
        sales: counts.sales,
        revenue: revenue
            .into_iter()
            .map(|r| ProviderRevenue {
                provider: r.provider,
                amount: Money::new(r.amount_minor, r.currency),
                payments: r.payments,
            })
            .collect(),
        new_users: counts.new_users,
        trials: counts.trials,
        trial_conversions: counts.trial_conversions,
        renewals: counts.renewals,
        refunds: counts.refunds,
        refunded: refunded
            .into_iter()
            .map(|r| Money::new(r.amount_minor, r.currency))
            .collect(),
        expiring_tomorrow: counts.expiring,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_are_utc_calendar_days_ending_today() {
        let now = DateTime::parse_from_rfc3339("2026-03-01T15:30:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let w = Windows::at(now);
        assert_eq!(w.today.to_rfc3339(), "2026-03-01T00:00:00+00:00");
        assert_eq!(w.since_7d.to_rfc3339(), "2026-02-23T00:00:00+00:00");
        assert_eq!(w.since_30d.to_rfc3339(), "2026-01-31T00:00:00+00:00");
        let days = w.days();
        assert_eq!(days.len(), 30);
        assert_eq!(days[0].to_string(), "2026-01-31");
        assert_eq!(days[29].to_string(), "2026-03-01");
    }
}
