//! The spool: one JSON file per alert under `STATE/alerts/spool/`, written
//! atomically by any process, taken in by the alert service. Files survive
//! reboots, so an alert raised just before a power cut is still sent.

use std::path::{Path, PathBuf};

use crate::Alert;

#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    #[error("alert spool {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
}

pub struct Spool {
    dir: PathBuf,
}

impl Spool {
    pub fn new(alerts_dir: &Path) -> Self {
        Spool { dir: alerts_dir.join("spool") }
    }

    fn io(&self, source: std::io::Error) -> SpoolError {
        SpoolError::Io { path: self.dir.clone(), source }
    }

    /// Adds an alert; visible to the service only once complete.
    pub fn put(&self, alert: &Alert) -> Result<(), SpoolError> {
        std::fs::create_dir_all(&self.dir).map_err(|e| self.io(e))?;
        let text = serde_json::to_vec(alert).map_err(|e| self.io(e.into()))?;
        // Names sort in the order alerts were raised (a resolve after its problem).
        let unique = format!("{:020}-{:010}-{:010}", alert.time, std::process::id(), next_serial());
        // Synced before it is visible: an alert raised just before a power cut survives it.
        coffer_config::write_atomically(&self.dir.join(format!("{unique}.json")), &text)
            .map_err(|e| self.io(std::io::Error::other(e.to_string())))
    }

    /// Every complete alert in the spool, oldest first. Unreadable files
    /// are reported and left for a person to look at, never deleted.
    pub fn list(&self) -> Result<Vec<(PathBuf, Alert)>, SpoolError> {
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(self.io(e)),
        };
        let mut files: Vec<PathBuf> =
            entries.filter_map(|e| e.ok()).map(|e| e.path()).filter(|p| p.extension().is_some_and(|x| x == "json")).collect();
        files.sort();
        Ok(files
            .into_iter()
            .filter_map(|p| match std::fs::read(&p).map_err(|e| e.to_string()).and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string())) {
                Ok(a) => Some((p, a)),
                Err(e) => {
                    log::warn!("alert spool file {} unreadable ({e}); left in place", p.display());
                    None
                }
            })
            .collect())
    }

    pub fn remove(&self, path: &Path) -> Result<(), SpoolError> {
        std::fs::remove_file(path).map_err(|e| self.io(e))
    }
}

fn next_serial() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Severity;

    #[test]
    fn put_list_remove() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::new(dir.path());
        assert!(spool.list().unwrap().is_empty());
        let a = Alert { key: "k".into(), severity: Severity::Critical, title: "t".into(), body: "b".into(), resolved: false, time: 5 };
        spool.put(&a).unwrap();
        spool.put(&Alert { time: 3, ..a.clone() }).unwrap();
        std::fs::write(dir.path().join("spool/.partial.tmp"), "{").unwrap();
        let listed = spool.list().unwrap();
        assert_eq!(listed.iter().map(|(_, a)| a.time).collect::<Vec<_>>(), [3, 5]);
        spool.remove(&listed[0].0).unwrap();
        assert_eq!(spool.list().unwrap().len(), 1);
    }
}
