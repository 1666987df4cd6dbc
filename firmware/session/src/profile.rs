//! What a key's profile allows, decided per operation.
//!
//! `append-only` keys may add history but never destroy it: new files and
//! directories, writing files they created in this session, reading and
//! listing. The exceptions are what real clients need and cannot destroy
//! history: volumes of a duplicity set that has no manifest yet (an
//! interrupted backup being resumed) may be overwritten, restic lock files
//! may be deleted, and a file created in this session may be renamed to a
//! name that does not exist yet (temporary upload → final name).
//! `read-only` keys restore only.

use coffer_duplicity::{FileRole, parse_name};
use coffer_storage::{JailPath, UserJail};

/// A key's profile, as stored in users.toml.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Profile {
    Full,
    AppendOnly,
    ReadOnly,
}

impl Profile {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "full" => Some(Profile::Full),
            "append-only" => Some(Profile::AppendOnly),
            "read-only" => Some(Profile::ReadOnly),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Profile::Full => "full",
            Profile::AppendOnly => "append-only",
            Profile::ReadOnly => "read-only",
        }
    }

    pub fn denied(self, what: &str) -> String {
        format!("Permission denied: this key's profile ({}) does not allow {what}", self.name())
    }
}

/// A restic lock: `locks/<64 hex>` anywhere in the area.
pub fn is_restic_lock(path: &JailPath) -> bool {
    let c = path.components();
    c.len() >= 2
        && c[c.len() - 2] == b"locks"
        && c[c.len() - 1].len() == 64
        && c[c.len() - 1].iter().all(u8::is_ascii_hexdigit)
}

/// A file of a duplicity set whose manifest does not exist (yet): an
/// interrupted backup that duplicity resumes by overwriting volumes.
pub fn is_incomplete_duplicity_file(jail: &UserJail, path: &JailPath) -> bool {
    let Some(name) = path.file_name().and_then(|n| std::str::from_utf8(n).ok()) else { return false };
    let Some(archive) = parse_name(name) else { return false };
    if archive.role == FileRole::Manifest {
        return false;
    }
    let Some((dir, _)) = path.split_last() else { return false };
    let Ok(entries) = jail.read_dir(&dir) else { return false };
    !entries.iter().any(|e| {
        std::str::from_utf8(&e.name)
            .ok()
            .and_then(parse_name)
            .is_some_and(|a| a.role == FileRole::Manifest && a.set_key() == archive.set_key())
    })
}
