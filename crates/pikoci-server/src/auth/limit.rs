//! Slows down password guessing. Every login attempt is counted before its password is checked
//! (so parallel attempts cannot all slip under the limit), and a success takes its count back.
//! Attempts are counted over a sliding window per user name from one address, per user name
//! from everywhere (a higher ceiling), and per address; past a limit, further attempts are
//! refused (429 with `Retry-After`) until the oldest one leaves the window.
//!
//! Keying a user's limit by address too means that one address guessing cannot lock the user
//! out from everywhere; the per-name ceiling still stops guessing from many addresses. IPv6
//! addresses are counted per /64, which one host usually has whole.
//!
//! In memory, per server: several servers behind a load balancer each count on their own,
//! which multiplies the limits by their number, still far from what guessing needs. Memory is
//! bounded: expired entries are dropped as the maps grow, and past [`MAX_KEYS`] the entry that
//! was used longest ago goes.

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::state::lock;

/// Attempts allowed per user name from one address, per window.
pub(crate) const PER_USER_AND_ADDRESS: usize = 10;
/// Attempts allowed per user name from all addresses together, per window.
pub(crate) const PER_USER: usize = 100;
/// Attempts allowed from one address, per window.
pub(crate) const PER_ADDRESS: usize = 30;
/// The window.
pub(crate) const WINDOW: Duration = Duration::from_secs(300);
/// The most keys remembered in each map.
const MAX_KEYS: usize = 50_000;

/// The attempts of the last [`WINDOW`].
#[derive(Debug, Default)]
pub(crate) struct LoginLimits {
    user_at: Mutex<Counts<(String, Option<IpAddr>)>>,
    users: Mutex<Counts<String>>,
    addresses: Mutex<Counts<IpAddr>>,
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
    /// Counts an attempt for `user` (`None`: a name that cannot exist, counted per address
    /// only) from `address` at `now`, or refuses it without counting.
    pub(crate) fn attempt(
        &self,
        user: Option<&str>,
        address: Option<IpAddr>,
        now: Instant,
    ) -> Result<(), Refused> {
        let address = address.map(network);
        // Every lock is taken in this order, and the checks come before any count, so that a
        // refused attempt counts nowhere.
        let mut user_at = lock(&self.user_at);
        let mut users = lock(&self.users);
        let mut addresses = lock(&self.addresses);
        let by_user = user.map(|user| ((user.to_owned(), address), user.to_owned()));
        if let Some((pair, name)) = &by_user {
            let wait = user_at
                .wait(pair, PER_USER_AND_ADDRESS, now)
                .or_else(|| users.wait(name, PER_USER, now));
            if let Some(wait) = wait {
                return Err(Refused {
                    by: "user",
                    retry_after: wait,
                });
            }
        }
        if let Some(address) = &address
            && let Some(wait) = addresses.wait(address, PER_ADDRESS, now)
        {
            return Err(Refused {
                by: "address",
                retry_after: wait,
            });
        }
        if let Some((pair, name)) = by_user {
            user_at.record(pair, now);
            users.record(name, now);
        }
        if let Some(address) = address {
            addresses.record(address, now);
        }
        Ok(())
    }

    /// After a successful login: forgets the user's attempts from that address, and takes this
    /// attempt back from the user's and the address's counts.
    pub(crate) fn succeeded(&self, user: &str, address: Option<IpAddr>) {
        let address = address.map(network);
        lock(&self.user_at).forget(&(user.to_owned(), address));
        lock(&self.users).take_back(user);
        if let Some(address) = address {
            lock(&self.addresses).take_back(&address);
        }
    }
}

/// The key an address is counted under: itself for IPv4, its /64 for IPv6.
fn network(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V4(_) => address,
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return IpAddr::V4(v4);
            }
            let bits = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(bits.into())
        }
    }
}

/// Attempt times per key, oldest first.
#[derive(Debug)]
struct Counts<K> {
    map: HashMap<K, VecDeque<Instant>>,
}

impl<K> Default for Counts<K> {
    fn default() -> Self {
        Counts {
            map: HashMap::new(),
        }
    }
}

impl<K: Hash + Eq + Clone> Counts<K> {
    /// How long until an attempt under `key` is allowed, `None` when it is now.
    fn wait<Q>(&mut self, key: &Q, limit: usize, now: Instant) -> Option<Duration>
    where
        K: std::borrow::Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let times = self.map.get_mut(key)?;
        while times
            .front()
            .is_some_and(|at| now.saturating_duration_since(*at) >= WINDOW)
        {
            times.pop_front();
        }
        if times.len() < limit {
            return None;
        }
        let oldest = *times.front()?;
        Some(
            WINDOW
                .saturating_sub(now.saturating_duration_since(oldest))
                .max(Duration::from_secs(1)),
        )
    }

    fn record(&mut self, key: K, now: Instant) {
        if self.map.len() >= MAX_KEYS && !self.map.contains_key(&key) {
            self.map.retain(|_, times| {
                times
                    .back()
                    .is_some_and(|at| now.saturating_duration_since(*at) < WINDOW)
            });
            if self.map.len() >= MAX_KEYS
                && let Some(stalest) = self
                    .map
                    .iter()
                    .min_by_key(|(_, times)| times.back().copied())
                    .map(|(key, _)| key.clone())
            {
                self.map.remove(&stalest);
            }
        }
        let times = self.map.entry(key).or_default();
        times.push_back(now);
        // Only the newest `limit` attempts matter; keep the queue bounded.
        while times.len() > PER_USER.max(PER_ADDRESS).max(PER_USER_AND_ADDRESS) {
            times.pop_front();
        }
    }

    /// Removes the newest attempt under `key`.
    fn take_back<Q>(&mut self, key: &Q)
    where
        K: std::borrow::Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        if let Some(times) = self.map.get_mut(key) {
            times.pop_back();
            if times.is_empty() {
                self.map.remove(key);
            }
        }
    }

    /// Removes every attempt under `key`.
    fn forget<Q>(&mut self, key: &Q)
    where
        K: std::borrow::Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.map.remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(last: u8) -> Option<IpAddr> {
        Some(IpAddr::from([10, 0, 0, last]))
    }

    #[test]
    fn a_user_is_refused_from_an_address_after_too_many_attempts_until_the_window_moves() {
        let limits = LoginLimits::default();
        let start = Instant::now();
        for i in 0..PER_USER_AND_ADDRESS {
            let at = start + Duration::from_secs(i as u64);
            assert_eq!(
                limits.attempt(Some("bob"), ip(1), at),
                Ok(()),
                "attempt {i}"
            );
        }
        let refused = limits
            .attempt(Some("bob"), ip(1), start + Duration::from_secs(20))
            .unwrap_err();
        assert_eq!(refused.by, "user");
        assert_eq!(refused.retry_after, WINDOW - Duration::from_secs(20));
        // The same user from elsewhere, and another user from here, are still served.
        assert_eq!(limits.attempt(Some("bob"), ip(2), start), Ok(()));
        assert_eq!(limits.attempt(Some("alice"), ip(1), start), Ok(()));
        // Once the oldest attempt is out of the window, one more is allowed.
        assert_eq!(limits.attempt(Some("bob"), ip(1), start + WINDOW), Ok(()));
    }

    #[test]
    fn refused_attempts_count_nowhere() {
        let limits = LoginLimits::default();
        let now = Instant::now();
        for _ in 0..PER_USER_AND_ADDRESS {
            limits.attempt(Some("bob"), ip(1), now).unwrap();
        }
        for _ in 0..100 {
            limits.attempt(Some("bob"), ip(1), now).unwrap_err();
        }
        // Bob made 10 counted attempts, not 110: he is still served from elsewhere.
        for i in 0..PER_USER - PER_USER_AND_ADDRESS {
            let address = Some(IpAddr::from([10, 2, (i / 256) as u8, (i % 256) as u8]));
            assert_eq!(
                limits.attempt(Some("bob"), address, now),
                Ok(()),
                "attempt {i}"
            );
        }
        // The address made 10 counted attempts, not 110.
        for i in 0..PER_ADDRESS - PER_USER_AND_ADDRESS {
            let name = format!("other{i}");
            assert_eq!(limits.attempt(Some(&name), ip(1), now), Ok(()));
        }
        assert_eq!(
            limits.attempt(Some("more"), ip(1), now).unwrap_err().by,
            "address"
        );
    }

    #[test]
    fn a_user_is_refused_everywhere_past_the_ceiling() {
        let limits = LoginLimits::default();
        let now = Instant::now();
        for i in 0..PER_USER {
            let address = Some(IpAddr::from([10, 1, (i / 256) as u8, (i % 256) as u8]));
            limits.attempt(Some("bob"), address, now).unwrap();
        }
        assert_eq!(
            limits.attempt(Some("bob"), ip(200), now).unwrap_err().by,
            "user"
        );
    }

    #[test]
    fn an_address_is_refused_after_guessing_at_many_names_or_impossible_ones() {
        let limits = LoginLimits::default();
        let now = Instant::now();
        for i in 0..PER_ADDRESS - 1 {
            limits
                .attempt(Some(&format!("user{i}")), ip(3), now)
                .unwrap();
        }
        limits.attempt(None, ip(3), now).unwrap();
        assert_eq!(limits.attempt(None, ip(3), now).unwrap_err().by, "address");
        assert_eq!(limits.attempt(Some("new"), ip(4), now), Ok(()));
    }

    #[test]
    fn a_success_takes_its_attempt_back() {
        let limits = LoginLimits::default();
        let now = Instant::now();
        for _ in 0..PER_USER_AND_ADDRESS - 1 {
            limits.attempt(Some("bob"), ip(1), now).unwrap();
        }
        limits.attempt(Some("bob"), ip(1), now).unwrap();
        limits.succeeded("bob", ip(1));
        assert_eq!(limits.attempt(Some("bob"), ip(1), now), Ok(()));
    }

    #[test]
    fn ipv6_addresses_count_per_64() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::2".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(network(a), network(b));
        assert_ne!(network(a), network(c));
        let mapped: IpAddr = "::ffff:10.0.0.1".parse().unwrap();
        assert_eq!(network(mapped), IpAddr::from([10, 0, 0, 1]));
    }
}
