//! The wall clock: the time now, and whether it can be trusted. Schedules
//! that compare dates (scrubs, "no backup for N days") wait until the time
//! service has set the clock from a time server and said so in [`CLOCK_FILE`].

use std::time::{SystemTime, UNIX_EPOCH};

/// Written by the appliance's time service after each good sync.
pub(crate) const CLOCK_FILE: &str = "/run/coffer/clock.json";

/// Present only on the appliance's image; elsewhere the host keeps time.
const APPLIANCE_MARKER: &str = "/etc/coffer/board";

/// Seconds since the Unix epoch (0 if the clock is before it).
pub(crate) fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

pub(crate) fn trusted() -> bool {
    if !std::path::Path::new(APPLIANCE_MARKER).exists() {
        return true;
    }
    std::fs::read(CLOCK_FILE)
        .ok()
        .and_then(|b| serde_json::from_slice::<coffer_time::ClockState>(&b).ok())
        .is_some_and(|c| c.is_trusted())
}
