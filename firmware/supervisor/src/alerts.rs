//! Raising an alert from PID 1 (a boot step that failed, a flapping
//! service, a rolled-back update): it goes into the spool on the state
//! partition, where the alert service takes it.

use std::path::Path;

use coffer_alert::{Alert, Severity, Spool};

use crate::boot::STATE_DIR;

/// Queues an alert for the alert service (on the state partition).
pub(crate) fn raise(key: &str, severity: Severity, title: &str, body: &str, resolved: bool) {
    let time = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let alert = Alert { key: key.into(), severity, title: title.into(), body: body.into(), resolved, time };
    if let Err(e) = Spool::new(&Path::new(STATE_DIR).join("alerts")).put(&alert) {
        log::error!("cannot queue alert {key}: {e}");
    }
}
