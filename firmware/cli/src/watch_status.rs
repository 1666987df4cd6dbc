//! What the mirror's watcher last saw, shared through a file under
//! `/run/coffer`: `raid watch` publishes it, `status` shows it (the LED
//! pattern and each disk's health problems since boot).

use coffer_runtime::Paths;
use serde_json::Value;

/// Replaces the published view (atomically, so a reader never sees half).
pub(crate) fn publish(view: &Value) {
    let path = Paths::appliance().raid_watch();
    let path = path.as_path();
    if let Some(dir) = path.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    if let Err(e) = coffer_config::write_atomically(path, view.to_string().as_bytes()) {
        log::warn!("writing {}: {e}", path.display());
    }
}

/// The last published view; `Null` when no watcher has published one.
pub(crate) fn read() -> Value {
    std::fs::read(Paths::appliance().raid_watch()).ok().and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or_default()
}
