//! The layout of a state directory. Every file name lives here.

use std::path::{Path, PathBuf};

/// Paths inside one state directory.
#[derive(Debug, Clone)]
pub struct StatePaths {
    root: PathBuf,
}

impl StatePaths {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        StatePaths { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `coffer.toml`: server settings.
    pub fn config(&self) -> PathBuf {
        self.root.join("coffer.toml")
    }

    /// `users.toml`: users, their keys and profiles.
    pub fn users(&self) -> PathBuf {
        self.root.join("users.toml")
    }

    /// `retention.toml`: retention policies.
    pub fn retention(&self) -> PathBuf {
        self.root.join("retention.toml")
    }

    /// Per-user records of when backup sets arrived (`arrivals/NAME.toml`).
    pub fn arrivals_dir(&self) -> PathBuf {
        self.root.join("arrivals")
    }

    /// Per-user quota records (usage, warnings).
    pub fn quota_dir(&self) -> PathBuf {
        self.root.join("quota")
    }

    /// The ed25519 host key (OpenSSH private key format).
    pub fn host_key(&self) -> PathBuf {
        self.root.join("host-keys").join("ssh_host_ed25519_key")
    }

    /// The data area, relative paths in the config resolve against the state directory.
    pub fn data_dir(&self, configured: &Path) -> PathBuf {
        self.root.join(configured)
    }
}
