//! The "no backup for N days" check `serve` runs: one alert per user, raised
//! when their last backup is too old and resolved when they back up again.

use std::collections::BTreeMap;
use std::path::Path;

use coffer_alert::{Alert, Severity};
use coffer_runtime::Paths;

use crate::status_gather::gather;

/// Raises (or resolves) one alert per user who has had no backup for the
/// configured number of days. Runs only with a trusted clock.
pub(crate) fn check_stale_backups(dir: &Path, raised: &mut BTreeMap<String, bool>) {
    if !coffer_runtime::clock::trusted(&Paths::appliance()) {
        return;
    }
    let status = match gather(dir) {
        Ok(s) => s,
        Err(e) => {
            log::warn!("checking for users without recent backups: {e:#}");
            return;
        }
    };
    for u in &status.users {
        let was = raised.get(&u.name).copied().unwrap_or(false);
        if u.stale == was {
            continue;
        }
        raised.insert(u.name.clone(), u.stale);
        let last = u.last_backup.map_or("never".to_string(), |t| format!("{} ago", coffer_status::duration((status.now - t).max(0) as u64)));
        if u.stale {
            coffer_runtime::event::emit(&coffer_runtime::event::Event::BackupStale { user: u.name.clone(), days: u64::from(status.stale_after_days) });
        }
        coffer_runtime::alert::raise(
            &Paths::appliance().with_state(dir),
            &Alert {
                key: format!("backup:{}:stale", u.name),
                severity: Severity::Warning,
                title: if u.stale {
                    format!("{} has not backed up for {}+ days", u.name, status.stale_after_days)
                } else {
                    format!("{} backs up again", u.name)
                },
                body: format!("Last backup: {last}. Check that the backup job on {}'s computer still runs.", u.name),
                resolved: !u.stale,
                time: status.now as u64,
            },
        );
    }
}
