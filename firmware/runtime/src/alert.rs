//! Raising an alert, from any process: the alert goes into the spool in the
//! state directory ([`Paths::alert_spool`]) as one synced file, and the
//! alert service (`coffer alert run`) takes it from there. A spool that
//! cannot be written is logged, never fatal: the problem the alert is about
//! must still be handled.

use coffer_alert::{Alert, Severity, Spool};

use crate::{Paths, clock};

/// Puts `alert` in the spool for the alert service.
pub fn raise(paths: &Paths, alert: &Alert) {
    if let Err(e) = Spool::new(&paths.alert_spool()).put(alert) {
        log::error!("cannot queue alert {}: {e}", alert.key);
    }
}

/// An alert (or, with `resolved`, the news that its problem is gone) raised now.
pub fn stamped(key: &str, severity: Severity, title: &str, body: &str, resolved: bool) -> Alert {
    Alert { key: key.into(), severity, title: title.into(), body: body.into(), resolved, time: clock::now() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_raised_alert_waits_in_the_spool_of_the_state_directory() {
        let root = tempfile::tempdir().expect("a temporary directory");
        let paths = Paths::under(root.path()).with_state(root.path().join("state"));
        let alert = stamped("boot:data", Severity::Critical, "the appliance started without its data", "no disks", false);
        raise(&paths, &alert);
        let spool = Spool::new(&paths.alert_spool());
        let queued: Vec<Alert> = spool.list().expect("the spool reads").into_iter().map(|(_, a)| a).collect();
        assert_eq!(queued, [alert]);
    }
}
