//! The wall clock, for what is measured in wall time and nothing else:
//! per-packet processing and alert latency, replay pacing, a quiet live
//! link's idle ticks, and the stats log's timestamp and uptime.
//!
//! Time inside the sensor is capture time, so that a replay at any speed
//! gives the same records. `clippy.toml` therefore forbids
//! `Instant::now` and `SystemTime::now` everywhere; these two functions are
//! the one allowance, so every wall-clock read in the sensor is a call
//! that names itself.

use std::time::{Instant, SystemTime, UNIX_EPOCH};

use tapsentry_types::Timestamp;

/// A monotonic instant, for measuring durations.
#[inline]
#[allow(
    clippy::disallowed_methods,
    reason = "the one monotonic wall-clock read; durations only"
)]
pub fn instant() -> Instant {
    Instant::now()
}

/// The time of day as a [`Timestamp`] (microseconds since the Unix
/// epoch); the epoch itself if the system clock is set before it.
#[allow(
    clippy::disallowed_methods,
    reason = "the one time-of-day read: stats timestamps and live idle ticks"
)]
pub fn timestamp() -> Timestamp {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    Timestamp::from_secs_nanos(
        i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        d.subsec_nanos(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_time_of_day_is_after_this_code_was_written() {
        // 2026-01-01T00:00:00Z: a clock before it is broken, not early.
        assert!(timestamp() > Timestamp::from_secs_nanos(1_767_225_600, 0));
        let a = instant();
        assert!(instant() >= a);
    }
}
