//! The board's description as the image installs it under `/etc/coffer`:
//! the names of the disk bays and of the status LED. Off the appliance the
//! files are missing and the defaults apply.

use coffer_raid::RaidPolicy;
use coffer_runtime::Paths;

/// The bays in the order of the mirror's member slots: one name a line, from
/// the board's `disks.toml` (written by the image build).
pub(crate) fn bays() -> Vec<String> {
    std::fs::read_to_string(Paths::appliance().bays())
        .map(|t| t.lines().map(str::trim).filter(|l| !l.is_empty()).map(str::to_string).collect())
        .unwrap_or_else(|_| RaidPolicy::default().bays)
}

/// The status LED's name (or `*suffix`) as the board's `leds.toml` gives
/// it, if the board has one.
pub(crate) fn status_led() -> Option<String> {
    std::fs::read_to_string(Paths::appliance().status_led()).ok().map(|name| name.trim().to_string())
}
