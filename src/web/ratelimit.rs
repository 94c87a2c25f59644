//! The admin API's rate limit: a GCRA bucket per token and per client address, kept in this
//! replica's memory (so N replicas allow N times the rate in all). A request over either limit
//! is answered 429 with `Retry-After` before it reaches a handler or the database. The same
//! buckets count the webhooks' refusals per address (see [`RateLimiter::peek`]).

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::net::IpAddr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header;
use actix_web::middleware::Next;
use actix_web::{Error, web};

use crate::error::AppError;
use crate::web::WebState;
use crate::web::webhooks::client_ip;

/// Whose requests a bucket counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Key {
    Address(IpAddr),
    /// A hash of the bearer token (the token itself is not kept).
    Token(u64),
}

/// Buckets are swept of idle entries after this many checks.
const SWEEP_EVERY: u64 = 4096;

pub struct RateLimiter {
    /// Time one request costs (1 / rate).
    cost: Duration,
    /// How far ahead of now a bucket may run: `burst` requests' worth.
    tolerance: Duration,
    /// Per key, the theoretical arrival time of its next request (GCRA).
    buckets: Mutex<HashMap<Key, Instant>>,
    checks: AtomicU64,
    hasher: RandomState,
}

impl RateLimiter {
    pub fn new(per_second: f64, burst: u32) -> RateLimiter {
        let cost = Duration::from_secs_f64(1.0 / per_second);
        RateLimiter {
            cost,
            tolerance: cost * burst.max(1),
            buckets: Mutex::new(HashMap::new()),
            checks: AtomicU64::new(0),
            hasher: RandomState::new(),
        }
    }

    pub fn token_key(&self, token: &str) -> Key {
        Key::Token(self.hasher.hash_one(token))
    }

    /// The bucket of a client address. An IPv6 client usually holds a whole /64, so one /64 is
    /// one client (or it would get a fresh bucket per address).
    pub fn address_key(ip: IpAddr) -> Key {
        match ip.to_canonical() {
            IpAddr::V6(v6) => {
                let prefix = u128::from(v6) & !((1u128 << 64) - 1);
                Key::Address(IpAddr::V6(prefix.into()))
            }
            v4 => Key::Address(v4),
        }
    }

    /// Whether `key`'s next request would be refused, without taking it: `Err` with the time
    /// until one is allowed again. With [`RateLimiter::check`] called only for what is to be
    /// counted (e.g. only refused webhooks), a key is turned away only once it has spent its
    /// budget on such events, and whoever never causes one is never limited.
    pub fn peek(&self, key: Key, now: Instant) -> Result<(), Duration> {
        let buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        let next = buckets.get(&key).map_or(now, |next| (*next).max(now)) + self.cost;
        let limit = now + self.tolerance;
        if next > limit {
            return Err(next - limit);
        }
        Ok(())
    }

    /// Takes one request from `key`'s bucket; `Err` with the time until one is allowed again.
    pub fn check(&self, key: Key, now: Instant) -> Result<(), Duration> {
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if self.checks.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY == SWEEP_EVERY - 1 {
            buckets.retain(|_, next| *next > now);
        }
        let next = buckets.get(&key).map_or(now, |next| (*next).max(now)) + self.cost;
        let limit = now + self.tolerance;
        if next > limit {
            return Err(next - limit);
        }
        buckets.insert(key, next);
        Ok(())
    }

    /// Keys tracked now (for tests).
    pub fn tracked(&self) -> usize {
        self.buckets.lock().map(|b| b.len()).unwrap_or(0)
    }
}

/// Middleware of the `/api/v1` scope.
pub async fn limit(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    // Registered as an `Option`: `None` when API_RATE_LIMIT is off.
    let denied = match (
        req.app_data::<Option<web::Data<RateLimiter>>>()
            .and_then(Option::as_ref),
        req.app_data::<web::Data<WebState>>(),
    ) {
        (Some(limiter), Some(state)) => {
            let now = Instant::now();
            let address = client_ip(req.request(), &state.settings.payments.trusted_proxies);
            let token = req
                .headers()
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "))
                .map(|t| limiter.token_key(t.trim()));
            address
                .map(|ip| limiter.check(Key::Address(ip), now))
                .transpose()
                .and_then(|_| token.map(|key| limiter.check(key, now)).transpose())
                .err()
                .map(|wait| (wait, address))
        }
        _ => None,
    };
    if let Some((retry_after, address)) = denied {
        tracing::info!(remote = ?address, path = %req.path(), "admin API rate limit reached");
        let error = AppError::TooManyRequests {
            message: "too many requests; slow down".into(),
            retry_after,
        };
        return Ok(req.error_response(error).map_into_right_body());
    }
    next.call(req)
        .await
        .map(ServiceResponse::map_into_left_body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_is_allowed_then_the_rate() {
        let limiter = RateLimiter::new(20.0, 40);
        let key = Key::Address("10.0.0.1".parse().unwrap());
        let start = Instant::now();
        for i in 0..40 {
            assert!(
                limiter.check(key, start).is_ok(),
                "request {i} of the burst"
            );
        }
        let wait = limiter.check(key, start).unwrap_err();
        assert_eq!(wait, Duration::from_millis(50));
        // One more every 50 ms.
        let later = start + Duration::from_millis(50);
        assert!(limiter.check(key, later).is_ok());
        assert!(limiter.check(key, later).is_err());
        // Other keys have their own buckets.
        assert!(limiter.check(limiter.token_key("abc"), start).is_ok());
    }

    #[test]
    fn peeking_takes_nothing_and_an_ipv6_client_is_its_slash_64() {
        let limiter = RateLimiter::new(1.0, 2);
        let key = Key::Address("203.0.113.9".parse().unwrap());
        let start = Instant::now();
        for _ in 0..10 {
            assert!(limiter.peek(key, start).is_ok());
        }
        limiter.check(key, start).unwrap();
        limiter.check(key, start).unwrap();
        assert_eq!(limiter.peek(key, start), Err(Duration::from_secs(1)));
        assert!(limiter.peek(key, start + Duration::from_secs(1)).is_ok());
        let a = RateLimiter::address_key("2001:db8:1:2:aaaa::1".parse().unwrap());
        let b = RateLimiter::address_key("2001:db8:1:2:bbbb::2".parse().unwrap());
        let c = RateLimiter::address_key("2001:db8:1:3::1".parse().unwrap());
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!(
            RateLimiter::address_key("::ffff:203.0.113.9".parse().unwrap()),
            key
        );
    }

    #[test]
    fn idle_buckets_are_swept() {
        let limiter = RateLimiter::new(1000.0, 1);
        let start = Instant::now();
        for i in 0..SWEEP_EVERY {
            let ip = IpAddr::from([10, 0, (i >> 8) as u8, i as u8]);
            limiter.check(Key::Address(ip), start).unwrap();
        }
        assert!(limiter.tracked() > 1000);
        let later = start + Duration::from_secs(1);
        for _ in 0..SWEEP_EVERY {
            limiter
                .check(Key::Address([10, 1, 1, 1].into()), later)
                .unwrap_or_default();
        }
        assert!(limiter.tracked() <= 2, "{} buckets", limiter.tracked());
    }
}
