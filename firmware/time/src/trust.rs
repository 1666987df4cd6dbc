//! Whether the wall clock can be believed, as a small record the time
//! service writes and other processes (alerts, retention, the status page)
//! read: retention must not delete by age on a clock that says 1970.

use std::time::SystemTime;

use serde::{Deserialize, Serialize};

/// The clock's provenance. Written as JSON by whoever applies SNTP samples.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "kebab-case")]
pub struct ClockState {
    /// When an SNTP sample was last applied to the system clock.
    pub synced_at: Option<SystemTime>,
    /// The server that gave that sample.
    pub source: Option<String>,
    /// The correction that was applied, milliseconds (server minus ours).
    pub offset_ms: Option<i64>,
}

impl ClockState {
    /// The state right after applying `offset_ms` from `source` at `at`.
    pub fn synced(at: SystemTime, source: &str, offset_ms: i64) -> Self {
        ClockState {
            synced_at: Some(at),
            source: Some(source.to_owned()),
            offset_ms: Some(offset_ms),
        }
    }

    /// Trusted once an SNTP sample has been applied since boot (the record
    /// lives on a tmpfs, so a reboot forgets it). An RTC alone is not
    /// trusted: its battery may have died.
    pub fn is_trusted(&self) -> bool {
        self.synced_at.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn trust_follows_sync() {
        assert!(!ClockState::default().is_trusted());
        let at = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        assert!(ClockState::synced(at, "pool.ntp.org", -12).is_trusted());
    }

    #[test]
    fn json_round_trip_and_defaults() {
        let at = UNIX_EPOCH + Duration::from_millis(1_800_000_000_250);
        let state = ClockState::synced(at, "10.0.0.1:123", 1500);
        let text = serde_json::to_string(&state).unwrap();
        assert!(
            text.contains("\"synced-at\"") && text.contains("\"offset-ms\":1500"),
            "{text}"
        );
        assert_eq!(serde_json::from_str::<ClockState>(&text).unwrap(), state);
        // An empty or older file reads as "not synced".
        assert_eq!(
            serde_json::from_str::<ClockState>("{}").unwrap(),
            ClockState::default()
        );
    }
}
