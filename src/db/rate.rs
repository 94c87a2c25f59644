//! Send budgets shared by every replica through the database (`rate_slots`).
//!
//! A budget of `n` messages per second hands out slots `1/n` s apart: reserving takes the next
//! free slot and moves it on, in one atomic statement, so replicas together never exceed the
//! rate. Slots are handed out at most `horizon` ahead, so that a burst (a broadcast) does not
//! book the budget far into the future and every sender gets its turn each second; a sender
//! with a queue reserves a batch of consecutive slots in one statement (`reserve_many`).

use std::time::Duration;

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{Double, Integer, Text, Timestamptz};
use diesel_async::RunQueryDsl;

use crate::db::PgConn;
use crate::db::schema::rate_slots;

#[derive(QueryableByName)]
struct Slot {
    #[diesel(sql_type = Timestamptz)]
    slot: DateTime<Utc>,
}

/// Reserves the next slot of budget `key` (slots `interval` apart): `Ok(when)` to send at
/// `when`, or `Err(retry_at)` when the next free slot is more than `horizon` ahead.
pub async fn reserve(
    conn: &mut PgConn,
    key: &str,
    interval: Duration,
    horizon: Duration,
) -> QueryResult<Result<DateTime<Utc>, DateTime<Utc>>> {
    let reserved: Option<Slot> = diesel::sql_query(
        "INSERT INTO rate_slots AS r (key, next_at) VALUES ($1, now() + make_interval(secs => $2)) \
         ON CONFLICT (key) DO UPDATE SET next_at = GREATEST(r.next_at, now()) + make_interval(secs => $2) \
         WHERE r.next_at <= now() + make_interval(secs => $3) \
         RETURNING next_at - make_interval(secs => $2) AS slot",
    )
    .bind::<Text, _>(key)
    .bind::<Double, _>(interval.as_secs_f64())
    .bind::<Double, _>(horizon.as_secs_f64())
    .get_result(conn)
    .await
    .optional()?;
    if let Some(Slot { slot }) = reserved {
        return Ok(Ok(slot));
    }
    let next: DateTime<Utc> = rate_slots::table
        .find(key)
        .select(rate_slots::next_at)
        .first(conn)
        .await?;
    let horizon = chrono::Duration::from_std(horizon).unwrap_or(chrono::Duration::zero());
    Ok(Err(next - horizon))
}

#[derive(QueryableByName)]
struct Batch {
    #[diesel(sql_type = Timestamptz)]
    first: DateTime<Utc>,
    #[diesel(sql_type = Integer)]
    granted: i32,
}

/// Reserves up to `wanted` consecutive slots of budget `key` (`interval` apart) that start at
/// most `horizon` ahead, in one statement (one round trip for a whole queue of messages):
/// `Ok((first, granted))` — the slots are `first + i · interval` for `i < granted`, `granted ≥ 1`
/// — or `Err(retry_at)` when the next free slot is more than `horizon` ahead.
pub async fn reserve_many(
    conn: &mut PgConn,
    key: &str,
    interval: Duration,
    horizon: Duration,
    wanted: u32,
) -> QueryResult<Result<(DateTime<Utc>, u32), DateTime<Utc>>> {
    // The row is locked first (`FOR UPDATE`), so the start and the count are computed from the
    // latest value even when replicas reserve at the same moment.
    let query = "WITH current AS ( \
             SELECT key, GREATEST(next_at, now()) AS first FROM rate_slots WHERE key = $1 FOR UPDATE \
         ), batch AS ( \
             SELECT key, first, LEAST($4, GREATEST(0, FLOOR(EXTRACT(EPOCH FROM \
                 (now() + make_interval(secs => $3) - first)) / $2)::integer + 1)) AS granted \
             FROM current \
         ) \
         UPDATE rate_slots r SET next_at = batch.first + make_interval(secs => $2 * batch.granted) \
         FROM batch WHERE r.key = batch.key \
         RETURNING batch.first, batch.granted";
    let wanted = i32::try_from(wanted.max(1)).unwrap_or(i32::MAX);
    for _ in 0..2 {
        let batch: Option<Batch> = diesel::sql_query(query)
            .bind::<Text, _>(key)
            .bind::<Double, _>(interval.as_secs_f64())
            .bind::<Double, _>(horizon.as_secs_f64())
            .bind::<Integer, _>(wanted)
            .get_result(conn)
            .await
            .optional()?;
        match batch {
            Some(Batch { first, granted }) if granted > 0 => {
                return Ok(Ok((first, granted.unsigned_abs())));
            }
            Some(Batch { first, .. }) => {
                let horizon =
                    chrono::Duration::from_std(horizon).unwrap_or(chrono::Duration::zero());
                return Ok(Err(first - horizon));
            }
            // The budget's first use (or it was pruned): create it, then reserve.
            None => {
                diesel::sql_query(
                    "INSERT INTO rate_slots (key, next_at) VALUES ($1, now()) ON CONFLICT (key) DO NOTHING",
                )
                .bind::<Text, _>(key)
                .execute(conn)
                .await?;
            }
        }
    }
    Ok(Err(Utc::now()))
}

/// No slot of budget `key` before `until` (the API asked us to wait: a 429).
pub async fn pause_until(conn: &mut PgConn, key: &str, until: DateTime<Utc>) -> QueryResult<()> {
    diesel::sql_query(
        "INSERT INTO rate_slots AS r (key, next_at) VALUES ($1, $2) \
         ON CONFLICT (key) DO UPDATE SET next_at = GREATEST(r.next_at, EXCLUDED.next_at)",
    )
    .bind::<Text, _>(key)
    .bind::<Timestamptz, _>(until)
    .execute(conn)
    .await
    .map(|_| ())
}

/// Forgets budgets idle for a day (one per chat ever written to).
pub async fn prune(conn: &mut PgConn) -> QueryResult<usize> {
    diesel::sql_query("DELETE FROM rate_slots WHERE next_at < now() - interval '1 day'")
        .execute(conn)
        .await
}
