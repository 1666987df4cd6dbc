//! Whether the wall clock can be trusted. Schedules that compare dates
//! (scrubs, "no backup for N days") wait until the time service has set the
//! clock from a time server and said so in [`CLOCK_FILE`].

/// Written by the appliance's time service after each good sync.
pub(crate) const CLOCK_FILE: &str = "/run/coffer/clock.json";

/// Present only on the appliance's image; elsewhere the host keeps time.
const APPLIANCE_MARKER: &str = "/etc/coffer/board";

pub(crate) fn trusted() -> bool {
    if !std::path::Path::new(APPLIANCE_MARKER).exists() {
        return true;
    }
    std::fs::read(CLOCK_FILE)
        .ok()
        .and_then(|b| serde_json::from_slice::<coffer_time::ClockState>(&b).ok())
        .is_some_and(|c| c.is_trusted())
}
