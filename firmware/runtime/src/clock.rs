//! The wall clock: the time now, and whether it can be trusted. This is the
//! one place appliance code reads the system clock, so a newcomer (or a
//! future test clock) finds every use of it here. Schedules that compare
//! dates (scrubs, "no backup for N days") wait until the time service has
//! set the clock from a time server and said so in [`Paths::clock`].

use std::time::{SystemTime, UNIX_EPOCH};

use crate::Paths;

/// The system clock now.
pub fn system_now() -> SystemTime {
    SystemTime::now()
}

/// Seconds since the Unix epoch (0 if the clock is before it).
pub fn now() -> u64 {
    system_now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Whether dates can be compared: always off the appliance (the host keeps
/// time); on it, once the time service has recorded a good sync.
pub fn trusted(paths: &Paths) -> bool {
    if !paths.on_appliance() {
        return true;
    }
    std::fs::read(paths.clock())
        .ok()
        .and_then(|b| serde_json::from_slice::<coffer_time::ClockState>(&b).ok())
        .is_some_and(|c| c.is_trusted())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_host_trusts_its_clock_and_an_appliance_only_after_a_sync() {
        let root = tempfile::tempdir().expect("a temporary directory");
        let paths = Paths::under(root.path());
        assert!(trusted(&paths), "no board file: not an appliance");

        std::fs::create_dir_all(paths.etc_dir()).expect("etc");
        std::fs::write(paths.board(), "name = \"pc\"\n").expect("board");
        assert!(!trusted(&paths), "an appliance before any sync");

        std::fs::create_dir_all(paths.run_dir()).expect("run");
        let synced = coffer_time::ClockState::synced(system_now(), "pool.ntp.org", 3);
        std::fs::write(paths.clock(), serde_json::to_vec(&synced).expect("json")).expect("clock");
        assert!(trusted(&paths), "after a good sync");
    }

    #[test]
    fn now_is_seconds_since_the_epoch() {
        assert!(now() > 1_600_000_000);
    }
}
