//! The per-user lock that serialises writes to one user's panel account, across replicas: every
//! write path (the provision job, the `panel_*` jobs, the subscription sync's corrections and
//! re-creations, the cleanup) holds it while it reads the subscription and writes the panel.
//!
//! Why an advisory lock on a pooled connection: two writers of one user can be two jobs of one
//! replica (`PANEL_WRITE_CONCURRENCY` > 1: a running provision job and a new one with the same
//! dedup key), or a sync on one replica and a job on another; only the shared database sees them
//! all. A session-level `pg_try_advisory_lock` keeps no transaction open across the panel's HTTP
//! calls (a row lock would make payments wait on the panel), and the locked section runs its own
//! reads and writes on the same connection, so a write costs one pooled connection, not two.
//! Writers that wait poll with backoff and give up after a bound (the job is retried later)
//! instead of parking a server backend in a lock queue. A holder dropped before it released (a
//! cancelled future, a panic) takes its connection out of the pool and closes it: PostgreSQL
//! releases the lock with the session, and no pooled connection is ever handed out still locked.

use std::time::{Duration, Instant};

use diesel::sql_types::{Bool, Integer};
use diesel_async::RunQueryDsl;

use crate::db::{PgConn, PgPool, PoolError, PooledConn};
use crate::domain::UserId;

/// First key of the two-key advisory locks (a key space apart from the single-key locks of the
/// migrations and the scheduler): "vpnu".
const NAMESPACE: i32 = 0x7670_6e75;

/// Polling while another writer holds the lock: from the first to the last delay, doubling.
const FIRST_DELAY: Duration = Duration::from_millis(10);
const LAST_DELAY: Duration = Duration::from_millis(250);

/// Why the lock was not taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("another panel write of user {0} did not finish within {1:?}")]
    Busy(UserId, Duration),
    #[error("database unavailable: {0}")]
    Pool(#[from] PoolError),
    #[error("database error: {0}")]
    Query(#[from] diesel::result::Error),
}

#[derive(Debug, diesel::QueryableByName)]
struct Locked {
    #[diesel(sql_type = Bool)]
    locked: bool,
}

/// The second key: the user id folded into 32 bits. Ids 2³² apart share a key, which only makes
/// their writes wait for each other.
fn key(user_id: UserId) -> i32 {
    (user_id.0 & 0xffff_ffff) as u32 as i32
}

/// A held panel-write lock of one user, with the connection that holds it.
pub struct PanelWriteLock {
    conn: Option<PooledConn>,
    user_id: UserId,
}

impl PanelWriteLock {
    /// Takes the lock of `user_id`, waiting at most `wait` for another writer to finish.
    pub async fn acquire(
        pool: &PgPool,
        user_id: UserId,
        wait: Duration,
    ) -> Result<PanelWriteLock, LockError> {
        let mut conn = pool.get().await?;
        let started = Instant::now();
        let mut delay = FIRST_DELAY;
        loop {
            let row: Locked = diesel::sql_query("SELECT pg_try_advisory_lock($1, $2) AS locked")
                .bind::<Integer, _>(NAMESPACE)
                .bind::<Integer, _>(key(user_id))
                .get_result(&mut *conn)
                .await?;
            if row.locked {
                return Ok(PanelWriteLock {
                    conn: Some(conn),
                    user_id,
                });
            }
            if started.elapsed() >= wait {
                return Err(LockError::Busy(user_id, wait));
            }
            let jittered = delay.mul_f64(0.5 + rand::random::<f64>() / 2.0);
            tokio::time::sleep(jittered).await;
            delay = (delay * 2).min(LAST_DELAY);
        }
    }

    /// The connection that holds the lock, for the reads and writes of the locked section.
    pub fn conn(&mut self) -> &mut PgConn {
        // Only `release` and `drop` take the connection, and both consume the lock.
        self.conn
            .as_deref_mut()
            .unwrap_or_else(|| unreachable!("a held lock has its connection"))
    }

    /// Releases the lock; the connection goes back to the pool (or is closed when the unlock
    /// failed, which releases the lock too).
    pub async fn release(mut self) {
        let Some(mut conn) = self.conn.take() else {
            return;
        };
        let unlocked: Result<Locked, _> =
            diesel::sql_query("SELECT pg_advisory_unlock($1, $2) AS locked")
                .bind::<Integer, _>(NAMESPACE)
                .bind::<Integer, _>(key(self.user_id))
                .get_result(&mut *conn)
                .await;
        if !matches!(unlocked, Ok(Locked { locked: true })) {
            tracing::warn!(user = %self.user_id, ?unlocked, "panel-write lock not released cleanly; closing its connection");
            drop(deadpool::managed::Object::take(conn));
        }
    }
}

impl Drop for PanelWriteLock {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            // Not released (cancelled or panicked): close the session, never pool it locked.
            drop(deadpool::managed::Object::take(conn));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_fold_ids_into_32_bits() {
        assert_eq!(key(UserId(7)), 7);
        assert_eq!(key(UserId(0xffff_ffff)), -1);
        assert_eq!(key(UserId((1 << 32) + 7)), 7);
        assert_ne!(key(UserId(1)), key(UserId(2)));
    }
}
