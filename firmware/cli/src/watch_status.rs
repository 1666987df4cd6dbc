//! What the mirror's watcher last saw, shared through a file under
//! `/run/coffer`: `raid watch` publishes it, `status` shows it (the LED
//! pattern and each disk's health problems since boot).

use std::path::Path;

use serde_json::Value;

const WATCH_STATUS_FILE: &str = "/run/coffer/raid-watch.json";

/// Replaces the published view (atomically, so a reader never sees half).
pub(crate) fn publish(view: &Value) {
    let path = Path::new(WATCH_STATUS_FILE);
    if let Some(dir) = path.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    if let Err(e) = coffer_config::write_atomically(path, view.to_string().as_bytes()) {
        log::warn!("writing {}: {e}", path.display());
    }
}

/// The last published view; `Null` when no watcher has published one.
pub(crate) fn read() -> Value {
    std::fs::read(WATCH_STATUS_FILE).ok().and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or_default()
}
