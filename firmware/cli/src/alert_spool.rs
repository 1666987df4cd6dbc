//! Raising an alert from any command or service: the alert goes into the
//! spool in the state directory, and the alert service (`alert run`) takes
//! it from there.

use std::path::{Path, PathBuf};

use coffer_alert::{Alert, Spool};

/// The spool: one synced file per alert not yet taken by the alert service.
pub(crate) fn dir(state: &Path) -> PathBuf {
    state.join("alerts")
}

/// Puts an alert in the spool for the alert service.
pub(crate) fn raise(state: &Path, alert: &Alert) {
    if let Err(e) = Spool::new(&dir(state)).put(alert) {
        log::error!("cannot queue alert {}: {e}", alert.key);
    }
}
