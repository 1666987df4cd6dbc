//! Firmware slots and updates: `update status|apply|rollback`.

/// Written by the supervisor at boot and when it marks a slot good.
pub(crate) const SLOT_FILE: &str = "/run/coffer/slot.json";

/// `good`, `trial` or `rolled-back` for the running slot, as the supervisor found it.
pub(crate) fn slot_state() -> String {
    std::fs::read(SLOT_FILE)
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .and_then(|v| v["state"].as_str().map(str::to_string))
        .unwrap_or_else(|| "unknown".into())
}
