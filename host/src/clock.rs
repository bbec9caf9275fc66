//! The driver's clock: wall time at start plus a monotonic offset, so the core sees
//! Unix-epoch times (for `Retry-After` dates) that never run backwards.

use moa_core::Time;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// Converts between `tokio`'s monotonic instants and the core's [`Time`].
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    wall: Time,
    mono: Instant,
}

impl Default for Clock {
    fn default() -> Self {
        Clock::new()
    }
}

impl Clock {
    /// A clock anchored at the current wall and monotonic times.
    pub fn new() -> Clock {
        let since_epoch = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
        Clock { wall: Time::from_micros(since_epoch.as_micros() as u64), mono: Instant::now() }
    }

    /// Now, as the core measures time.
    pub fn now(&self) -> Time {
        self.wall + self.mono.elapsed()
    }

    /// The monotonic instant of a core time (for timers).
    pub fn instant(&self, t: Time) -> Instant {
        self.mono + t.since(self.wall)
    }
}
