//! When `serve` looks for users without a recent backup: hourly, and at
//! once when the clock becomes trusted (an untrusted clock would call every
//! user stale, or none). A pure step over the monotonic time since start.

use std::time::Duration;

/// How often the check runs once the clock is trusted.
pub const STALE_CHECK_EVERY: Duration = Duration::from_secs(3600);

/// What the check's schedule remembers between ticks.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StaleCheckTimer {
    last: Option<Duration>,
    was_trusted: bool,
}

impl StaleCheckTimer {
    /// Whether to check now; `since_start` is monotonic time, `trusted`
    /// whether the wall clock has been set from a time server.
    pub fn due(&mut self, trusted: bool, since_start: Duration) -> bool {
        let hour_passed = self.last.is_none_or(|t| since_start.saturating_sub(t) >= STALE_CHECK_EVERY);
        let became_trusted = trusted && !self.was_trusted;
        self.was_trusted = trusted;
        if !trusted || !(hour_passed || became_trusted) {
            return false;
        }
        self.last = Some(since_start);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_in_sequence() {
        let min = |m: u64| Duration::from_secs(m * 60);
        // (minutes since start, clock trusted, check now?)
        let table = [
            (0, false, false),
            (1, false, false),
            (2, true, true),
            (3, true, false),
            (61, true, false),
            (62, true, true),
            (63, false, false),
            // Trusted again: at once, although the hour has not passed.
            (64, true, true),
            (65, true, false),
            (124, true, true),
        ];
        let mut timer = StaleCheckTimer::default();
        for (minutes, trusted, expected) in table {
            assert_eq!(timer.due(trusted, min(minutes)), expected, "minute {minutes}, trusted {trusted}");
        }
    }
}
