//! Slows down password guessing: failed logins are counted per user name and per client
//! address over a sliding window, and past a limit further attempts are refused (429 with
//! `Retry-After`) until the oldest failure leaves the window. A successful login clears its
//! user's count (not its address's: one address may guess at many names).
//!
//! In memory, per server: several servers behind a load balancer each count on their own,
//! which multiplies the limits by their number, still far from what guessing needs.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::state::lock;

/// Failed logins of one user name allowed per window.
pub(crate) const PER_USER: usize = 10;
/// Failed logins from one address allowed per window.
pub(crate) const PER_ADDRESS: usize = 30;
/// The window.
pub(crate) const WINDOW: Duration = Duration::from_secs(300);
/// The most keys remembered of each kind; past it, the oldest entries are dropped.
const MAX_KEYS: usize = 100_000;

/// The failed logins of the last [`WINDOW`].
#[derive(Debug, Default)]
pub(crate) struct LoginLimits {
    users: Mutex<HashMap<String, VecDeque<Instant>>>,
    addresses: Mutex<HashMap<IpAddr, VecDeque<Instant>>>,
}

/// Why an attempt is refused, and for how long.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Refused {
    /// `user` or `address`.
    pub(crate) by: &'static str,
    /// When the next attempt may be made.
    pub(crate) retry_after: Duration,
}

impl LoginLimits {
    /// Whether an attempt for `user` from `address` may be made at `now`.
    pub(crate) fn check(
        &self,
        user: &str,
        address: Option<IpAddr>,
        now: Instant,
    ) -> Result<(), Refused> {
        if let Some(wait) = wait(&mut lock(&self.users), user, PER_USER, now) {
            return Err(Refused {
                by: "user",
                retry_after: wait,
            });
        }
        if let Some(address) = address
            && let Some(wait) = wait(&mut lock(&self.addresses), &address, PER_ADDRESS, now)
        {
            return Err(Refused {
                by: "address",
                retry_after: wait,
            });
        }
        Ok(())
    }

    /// Counts a failed attempt.
    pub(crate) fn failed(&self, user: &str, address: Option<IpAddr>, now: Instant) {
        record(&mut lock(&self.users), user.to_owned(), now);
        if let Some(address) = address {
            record(&mut lock(&self.addresses), address, now);
        }
    }

    /// Forgets the failures of `user` after a successful login.
    pub(crate) fn succeeded(&self, user: &str) {
        lock(&self.users).remove(user);
    }
}

/// How long until an attempt under `key` is allowed, `None` when it is now.
fn wait<K, Q>(
    map: &mut HashMap<K, VecDeque<Instant>>,
    key: &Q,
    limit: usize,
    now: Instant,
) -> Option<Duration>
where
    K: std::borrow::Borrow<Q> + std::hash::Hash + Eq,
    Q: std::hash::Hash + Eq + ?Sized,
{
    let failures = map.get_mut(key)?;
    while failures
        .front()
        .is_some_and(|at| now.saturating_duration_since(*at) >= WINDOW)
    {
        failures.pop_front();
    }
    if failures.len() < limit {
        return None;
    }
    let oldest = *failures.front()?;
    Some(
        WINDOW
            .saturating_sub(now.saturating_duration_since(oldest))
            .max(Duration::from_secs(1)),
    )
}

fn record<K: std::hash::Hash + Eq>(map: &mut HashMap<K, VecDeque<Instant>>, key: K, now: Instant) {
    if map.len() >= MAX_KEYS {
        map.retain(|_, failures| {
            failures
                .back()
                .is_some_and(|at| now.saturating_duration_since(*at) < WINDOW)
        });
        if map.len() >= MAX_KEYS {
            map.clear();
        }
    }
    let failures = map.entry(key).or_default();
    failures.push_back(now);
    // Only the newest `limit` failures matter; keep a bounded queue.
    while failures.len() > PER_ADDRESS.max(PER_USER) {
        failures.pop_front();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_user_is_refused_after_too_many_failures_until_the_window_moves() {
        let limits = LoginLimits::default();
        let start = Instant::now();
        let address = Some(IpAddr::from([10, 0, 0, 1]));
        for i in 0..PER_USER {
            assert_eq!(limits.check("bob", address, start), Ok(()), "attempt {i}");
            limits.failed("bob", address, start + Duration::from_secs(i as u64));
        }
        let refused = limits
            .check("bob", address, start + Duration::from_secs(20))
            .unwrap_err();
        assert_eq!(refused.by, "user");
        assert_eq!(refused.retry_after, WINDOW - Duration::from_secs(20));
        // Another user from the same address is still served.
        assert_eq!(limits.check("alice", address, start), Ok(()));
        // Once the oldest failure is out of the window, one more attempt is allowed.
        assert_eq!(limits.check("bob", address, start + WINDOW), Ok(()));
    }

    #[test]
    fn an_address_is_refused_after_guessing_at_many_names() {
        let limits = LoginLimits::default();
        let now = Instant::now();
        let address = Some(IpAddr::from([10, 0, 0, 2]));
        for i in 0..PER_ADDRESS {
            limits.failed(&format!("user{i}"), address, now);
        }
        assert_eq!(limits.check("new", address, now).unwrap_err().by, "address");
        assert_eq!(
            limits.check("new", Some(IpAddr::from([10, 0, 0, 3])), now),
            Ok(())
        );
    }

    #[test]
    fn a_success_clears_the_users_failures() {
        let limits = LoginLimits::default();
        let now = Instant::now();
        for _ in 0..PER_USER {
            limits.failed("bob", None, now);
        }
        assert!(limits.check("bob", None, now).is_err());
        limits.succeeded("bob");
        assert_eq!(limits.check("bob", None, now), Ok(()));
    }
}
