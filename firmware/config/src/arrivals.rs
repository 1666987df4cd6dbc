//! `arrivals/NAME.toml`: when each of a user's backup sets arrived, as the
//! box first saw it, which sets an administrator adopted, and where the
//! user's retention stands (the last accepted run, an open hold).
//!
//! Arrival comes from the files' status change times, which clients cannot
//! set; it is recorded the first time a set is seen so a later chmod, rename
//! or copy of the data area does not move it.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::ConfigError;
use crate::users::write_atomically;

/// What is recorded about one set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct SetArrival {
    /// Seconds since the epoch: the earliest status change time among the
    /// set's files when it was first seen.
    pub arrival: i64,
    /// Confirmed by `retention adopt` whatever its name says.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub adopted: bool,
}

/// One user's record.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "kebab-case", deny_unknown_fields)]
pub struct ArrivalRecord {
    /// Sets that arrived after this time (seconds since the epoch) are new
    /// to retention: the last run that was not held, or an adoption, saw
    /// everything before it. Unset until the first sets are seen.
    pub accepted_at: Option<i64>,
    /// The last run was held (new sets displaced others in a burst) and
    /// its alert is open.
    pub held: bool,
    /// By `DIRECTORY/SET` (`backup/home/full.20261127T052936Z`; the area's
    /// top directory has no `DIRECTORY/`).
    #[serde(rename = "set")]
    pub sets: BTreeMap<String, SetArrival>,
}

/// An exclusive lock on one user's record, held while it is read, changed
/// and written back (the server records arrivals while a command may run).
#[derive(Debug)]
pub struct ArrivalLock {
    _file: File,
}

impl ArrivalRecord {
    pub fn path(dir: &Path, user: &str) -> PathBuf {
        dir.join(format!("{user}.toml"))
    }

    /// Takes the lock on `user`'s record in `dir` (created if missing).
    pub fn lock(dir: &Path, user: &str) -> Result<ArrivalLock, ConfigError> {
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::create_dir_all(dir).map_err(|source| ConfigError::Write { path: dir.into(), source })?;
        let path = dir.join(format!("{user}.lock"));
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(&path)
            .map_err(|source| ConfigError::Write { path: path.clone(), source })?;
        file.lock().map_err(|source| ConfigError::Write { path, source })?;
        Ok(ArrivalLock { _file: file })
    }

    /// Loads a user's record; none yet is an empty record.
    pub fn load(dir: &Path, user: &str) -> Result<Self, ConfigError> {
        let path = Self::path(dir, user);
        match std::fs::read_to_string(&path) {
            Ok(t) => toml::from_str(&t).map_err(|e| ConfigError::Parse {
                path,
                message: format!(
                    "{}; move the file aside and run `coffer retention adopt --user {user}` to record the sets again",
                    e.to_string().trim_end()
                ),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(source) => Err(ConfigError::Read { path, source }),
        }
    }

    pub fn save(&self, dir: &Path, user: &str) -> Result<(), ConfigError> {
        std::fs::create_dir_all(dir).map_err(|source| ConfigError::Write { path: dir.into(), source })?;
        let path = Self::path(dir, user);
        let text = toml::to_string_pretty(self).map_err(|e| ConfigError::Parse { path: path.clone(), message: e.to_string() })?;
        write_atomically(&path, text.as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_lock() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(ArrivalRecord::load(dir.path(), "alice").unwrap(), ArrivalRecord::default());
        let mut r = ArrivalRecord { accepted_at: Some(5), held: true, ..Default::default() };
        r.sets.insert("backup/home/full.20261127T052936Z".into(), SetArrival { arrival: 7, adopted: false });
        r.sets.insert("full.20981127T052936Z".into(), SetArrival { arrival: 9, adopted: true });
        {
            let _lock = ArrivalRecord::lock(dir.path(), "alice").unwrap();
            r.save(dir.path(), "alice").unwrap();
        }
        assert_eq!(ArrivalRecord::load(dir.path(), "alice").unwrap(), r);
        std::fs::write(ArrivalRecord::path(dir.path(), "bob"), "set = 3").unwrap();
        let e = ArrivalRecord::load(dir.path(), "bob").unwrap_err().to_string();
        assert!(e.contains("bob.toml") && e.contains("retention adopt --user bob"), "{e}");
    }
}
