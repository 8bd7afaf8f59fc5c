//! The server's clock: wall-clock time that follows tokio's clock, so that tests on paused time
//! (`tokio::time::pause`) move leases and check timers forward deterministically.

use chrono::{DateTime, Utc};

/// Wall-clock time anchored at creation and advanced by tokio's monotonic clock.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    base: DateTime<Utc>,
    start: tokio::time::Instant,
}

impl Clock {
    /// A clock reading the current time now.
    pub fn new() -> Clock {
        Clock::starting_at(Utc::now())
    }

    /// A clock reading `base` now (tests).
    pub fn starting_at(base: DateTime<Utc>) -> Clock {
        Clock {
            base,
            start: tokio::time::Instant::now(),
        }
    }

    /// The current time, with millisecond precision (what the store keeps).
    pub fn now(&self) -> DateTime<Utc> {
        let elapsed = chrono::Duration::from_std(self.start.elapsed()).unwrap_or_default();
        let now = self.base + elapsed;
        DateTime::from_timestamp_millis(now.timestamp_millis()).unwrap_or(now)
    }
}

impl Default for Clock {
    fn default() -> Clock {
        Clock::new()
    }
}
