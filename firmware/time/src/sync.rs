//! The decisions of the appliance's clock service (`coffer time sync`), as
//! a pure step: after each round of questions to the time servers, whether
//! to step the system clock, whether the round is worth an event, and how
//! long to wait before the next round. The service only asks, applies and
//! sleeps.

use std::time::Duration;

/// A correction smaller than this is not worth a jump of the clock: slewing
/// it away is the kernel's job, and a jump of a few milliseconds would only
/// make file times go backwards.
pub const STEP_MS: i64 = 500;
/// Until the first success, ask this often: services wait for a trusted
/// clock, so the first answer matters most.
pub const RETRY: Duration = Duration::from_secs(20);
/// Asking more often than this is unkind to public servers.
pub const MIN_INTERVAL: Duration = Duration::from_secs(60);

/// What the service remembers between rounds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncLoop {
    synced: bool,
}

/// What to do after one round.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncStep {
    /// Step the system clock by the sample's offset.
    pub step_clock: bool,
    /// Record the clock as set from a server (the trust record).
    pub record: bool,
    /// Print `time.synced`: the first success, and every step of the clock.
    pub announce: bool,
    /// How long to sleep before the next round.
    pub wait: Duration,
}

impl SyncLoop {
    /// The decision after a round: `offset_ms` is the answer's offset, or
    /// `None` when no server answered. `interval` is the configured time
    /// between rounds once synced.
    pub fn step(&mut self, offset_ms: Option<i64>, interval: Duration) -> SyncStep {
        let Some(offset) = offset_ms else {
            return SyncStep { step_clock: false, record: false, announce: false, wait: self.wait(interval) };
        };
        let big = offset.unsigned_abs() >= STEP_MS.unsigned_abs();
        let first = !self.synced;
        self.synced = true;
        SyncStep { step_clock: big, record: true, announce: first || big, wait: self.wait(interval) }
    }

    fn wait(&self, interval: Duration) -> Duration {
        if self.synced { interval.max(MIN_INTERVAL) } else { RETRY }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: Duration = Duration::from_secs(3600);

    fn step(offset: Option<i64>, announce: bool, step_clock: bool, wait: Duration) -> SyncStep {
        SyncStep { step_clock, record: offset.is_some(), announce, wait }
    }

    #[test]
    fn rounds_in_sequence() {
        // (answer, expected) in order: failures retry quickly until the
        // first answer, which is always announced; afterwards only a step
        // of the clock is.
        let table = [
            (None, step(None, false, false, RETRY)),
            (None, step(None, false, false, RETRY)),
            (Some(3), step(Some(3), true, false, HOUR)),
            (Some(-40), step(Some(-40), false, false, HOUR)),
            (None, step(None, false, false, HOUR)),
            (Some(-500), step(Some(-500), true, true, HOUR)),
            (Some(499), step(Some(499), false, false, HOUR)),
            (Some(86_400_000), step(Some(86_400_000), true, true, HOUR)),
        ];
        let mut sync = SyncLoop::default();
        for (i, (answer, expected)) in table.into_iter().enumerate() {
            assert_eq!(sync.step(answer, HOUR), expected, "round {i}");
        }
    }

    #[test]
    fn a_large_first_offset_steps_the_clock() {
        let mut sync = SyncLoop::default();
        assert_eq!(sync.step(Some(i64::MIN), HOUR), step(Some(0), true, true, HOUR));
    }

    #[test]
    fn the_interval_has_a_floor() {
        let mut sync = SyncLoop::default();
        assert_eq!(sync.step(Some(0), Duration::from_secs(1)).wait, MIN_INTERVAL);
    }
}
