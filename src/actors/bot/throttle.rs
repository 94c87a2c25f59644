//! Per-user limits kept in this replica's memory: the update rate (BOT_RATE_LIMIT), the one
//! refusal a banned user gets, and confirmed members of the required channel.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// What to do with an update under the rate limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Allow,
    /// The first update over the limit in this window: say "too fast" once.
    Warn,
    /// Further updates over the limit: drop silently.
    Drop,
}

struct Window {
    started: Instant,
    count: u32,
}

/// Fixed windows per user; maps are pruned when they grow large.
pub struct Throttle {
    limit: u32,
    window: Duration,
    windows: Mutex<HashMap<i64, Window>>,
    /// Users told they are banned, and when.
    banned_told: Mutex<HashMap<i64, Instant>>,
    /// Users seen in the required channel, and when.
    members: Mutex<HashMap<i64, Instant>>,
}

/// A banned user is told again after this long (one polite refusal, not one per message).
const BANNED_REMINDER: Duration = Duration::from_secs(3600);
/// A confirmed channel member is checked again after this long.
const MEMBER_TTL: Duration = Duration::from_secs(600);
const PRUNE_AT: usize = 50_000;

impl Throttle {
    pub fn new(limit: u32, window: Duration) -> Throttle {
        Throttle {
            limit,
            window,
            windows: Mutex::new(HashMap::new()),
            banned_told: Mutex::new(HashMap::new()),
            members: Mutex::new(HashMap::new()),
        }
    }

    pub fn check(&self, user: i64, now: Instant) -> Verdict {
        let Ok(mut windows) = self.windows.lock() else {
            return Verdict::Allow;
        };
        if windows.len() > PRUNE_AT {
            let window = self.window;
            windows.retain(|_, w| now.duration_since(w.started) < window);
        }
        let w = windows.entry(user).or_insert(Window {
            started: now,
            count: 0,
        });
        if now.duration_since(w.started) >= self.window {
            *w = Window {
                started: now,
                count: 0,
            };
        }
        w.count += 1;
        match w.count.checked_sub(self.limit) {
            None | Some(0) => Verdict::Allow,
            Some(1) => Verdict::Warn,
            Some(_) => Verdict::Drop,
        }
    }

    /// `true` when the banned user should be told (once an hour at most).
    pub fn tell_banned(&self, user: i64, now: Instant) -> bool {
        remember_once(&self.banned_told, user, now, BANNED_REMINDER)
    }

    pub fn is_known_member(&self, user: i64, now: Instant) -> bool {
        self.members
            .lock()
            .ok()
            .and_then(|m| m.get(&user).copied())
            .is_some_and(|at| now.duration_since(at) < MEMBER_TTL)
    }

    pub fn remember_member(&self, user: i64, now: Instant) {
        if let Ok(mut m) = self.members.lock() {
            if m.len() > PRUNE_AT {
                m.retain(|_, at| now.duration_since(*at) < MEMBER_TTL);
            }
            m.insert(user, now);
        }
    }
}

/// Records `user` at `now` unless recorded less than `every` ago; `true` when recorded.
fn remember_once(
    map: &Mutex<HashMap<i64, Instant>>,
    user: i64,
    now: Instant,
    every: Duration,
) -> bool {
    let Ok(mut map) = map.lock() else {
        return true;
    };
    if map.len() > PRUNE_AT {
        map.retain(|_, at| now.duration_since(*at) < every);
    }
    match map.get(&user) {
        Some(at) if now.duration_since(*at) < every => false,
        _ => {
            map.insert(user, now);
            true
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn five_per_two_seconds_then_one_warning_then_silence() {
        let t = Throttle::new(5, Duration::from_secs(2));
        let start = Instant::now();
        let verdicts: Vec<_> = (0..8).map(|_| t.check(1, start)).collect();
        assert_eq!(&verdicts[..5], &[Verdict::Allow; 5]);
        assert_eq!(verdicts[5], Verdict::Warn);
        assert_eq!(&verdicts[6..], &[Verdict::Drop; 2]);
        // Another user has their own window; a new window starts afresh.
        assert_eq!(t.check(2, start), Verdict::Allow);
        assert_eq!(t.check(1, start + Duration::from_secs(2)), Verdict::Allow);
    }

    #[test]
    fn banned_users_are_told_once_an_hour() {
        let t = Throttle::new(5, Duration::from_secs(2));
        let now = Instant::now();
        assert!(t.tell_banned(1, now));
        assert!(!t.tell_banned(1, now + Duration::from_secs(60)));
        assert!(t.tell_banned(1, now + BANNED_REMINDER));
        assert!(!t.is_known_member(1, now));
        t.remember_member(1, now);
        assert!(t.is_known_member(1, now + Duration::from_secs(1)));
        assert!(!t.is_known_member(1, now + MEMBER_TTL));
    }
}
