//! `quota/NAME.toml`: a user's last known usage and the warnings raised,
//! and `quota/NAME.rescan`: a request to the running server to recount.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::ConfigError;
use crate::users::write_atomically;

/// One threshold crossing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct QuotaWarning {
    pub percent: u8,
    /// Seconds since the epoch.
    pub at: i64,
    pub used_bytes: u64,
    pub limit_bytes: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "kebab-case", deny_unknown_fields)]
pub struct QuotaRecord {
    pub used_bytes: u64,
    pub used_files: u64,
    /// When the record was last written.
    pub updated_at: i64,
    #[serde(rename = "warning")]
    pub warnings: Vec<QuotaWarning>,
}

/// Warnings kept per user (the newest).
const KEEP_WARNINGS: usize = 20;

impl QuotaRecord {
    pub fn path(dir: &Path, user: &str) -> PathBuf {
        dir.join(format!("{user}.toml"))
    }

    pub fn rescan_request(dir: &Path, user: &str) -> PathBuf {
        dir.join(format!("{user}.rescan"))
    }

    /// Loads a user's record; none yet is an empty record.
    pub fn load(dir: &Path, user: &str) -> Result<Self, ConfigError> {
        let path = Self::path(dir, user);
        match std::fs::read_to_string(&path) {
            Ok(t) => toml::from_str(&t).map_err(|e| ConfigError::Parse { path, message: e.to_string().trim_end().to_string() }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(source) => Err(ConfigError::Read { path, source }),
        }
    }

    pub fn save(&mut self, dir: &Path, user: &str) -> Result<(), ConfigError> {
        std::fs::create_dir_all(dir).map_err(|source| ConfigError::Write { path: dir.into(), source })?;
        if self.warnings.len() > KEEP_WARNINGS {
            self.warnings.drain(..self.warnings.len() - KEEP_WARNINGS);
        }
        let path = Self::path(dir, user);
        let text = toml::to_string_pretty(self).map_err(|e| ConfigError::Parse { path: path.clone(), message: e.to_string() })?;
        write_atomically(&path, text.as_bytes())
    }
}
