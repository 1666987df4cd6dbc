//! The A/B slot record the supervisor keeps under `/run/coffer` (which slot
//! booted, and whether it is on trial), read by `update` and `status`.

use coffer_runtime::Paths;

/// `good`, `trial` or `unknown` for the running slot, as the supervisor found it.
pub(crate) fn slot_state() -> String {
    slot_json()["state"].as_str().unwrap_or("unknown").to_string()
}

/// The record, or `null` when there is none or it cannot be read.
pub(crate) fn slot_json() -> serde_json::Value {
    std::fs::read(Paths::appliance().slot()).ok().and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or_default()
}
