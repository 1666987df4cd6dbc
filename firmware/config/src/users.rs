//! `users.toml`: who may log in, with which keys and profiles, and the
//! uid/gid each user's sessions run as on the appliance.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::ConfigError;

const USERS_VERSION: u32 = 1;
/// First uid/gid handed to a Coffer user; below it are system accounts.
const FIRST_UID: u32 = 2000;

/// A validated user name (also the name of the user's data directory).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct UserName(String);

impl UserName {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for UserName {
    type Error = ConfigError;
    fn try_from(s: String) -> Result<Self, ConfigError> {
        validate_user_name(&s)?;
        Ok(UserName(s))
    }
}

impl From<UserName> for String {
    fn from(u: UserName) -> String {
        u.0
    }
}

impl std::fmt::Display for UserName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Checks a user name: it becomes a directory name, so it must be safe as one.
pub fn validate_user_name(s: &str) -> Result<(), ConfigError> {
    let ok = !s.is_empty()
        && s.len() <= 32
        && s.chars().next().is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
    if ok { Ok(()) } else { Err(ConfigError::BadUserName(s.into())) }
}

/// What a key may do.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum KeyProfile {
    #[default]
    Full,
    AppendOnly,
    ReadOnly,
}

/// One public key in OpenSSH `authorized_keys` form (`type base64 comment`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct AuthorizedKey {
    pub key: String,
    #[serde(default)]
    pub profile: KeyProfile,
}

impl AuthorizedKey {
    /// The key type and base64 blob, which identify the key; the comment does not.
    pub fn identity(&self) -> (&str, &str) {
        let mut parts = self.key.split_whitespace();
        (parts.next().unwrap_or(""), parts.next().unwrap_or(""))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct User {
    pub name: UserName,
    pub uid: u32,
    pub gid: u32,
    /// Byte limit; none is unlimited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quota_bytes: Option<u64>,
    /// File (inode) limit; none is unlimited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quota_files: Option<u64>,
    /// Administrators may run the appliance's commands over SSH.
    #[serde(default, skip_serializing_if = "is_default")]
    pub role: Role,
    /// A locked user cannot log in; their data and keys stay.
    #[serde(default, skip_serializing_if = "is_default")]
    pub locked: bool,
    #[serde(default, rename = "key")]
    pub keys: Vec<AuthorizedKey>,
}

/// What a user is: someone who backs up, or also an administrator of the box.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    #[default]
    User,
    Admin,
}

fn is_default<T: Default + PartialEq>(v: &T) -> bool {
    *v == T::default()
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct UserDb {
    pub version: u32,
    #[serde(default, rename = "user")]
    pub users: Vec<User>,
}

impl Default for UserDb {
    fn default() -> Self {
        UserDb { version: USERS_VERSION, users: Vec::new() }
    }
}

impl UserDb {
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.into(), source })?;
        let db: UserDb = toml::from_str(&text)
            .map_err(|e| ConfigError::Parse { path: path.into(), message: e.to_string().trim_end().to_string() })?;
        if db.version != USERS_VERSION {
            return Err(ConfigError::Version { path: path.into(), found: db.version, expected: USERS_VERSION });
        }
        Ok(db)
    }

    /// Writes the database atomically (temporary file, fsync, rename), so a
    /// power cut leaves either the old or the new list of users.
    pub fn save(&self, path: &Path) -> Result<(), ConfigError> {
        let text = toml::to_string_pretty(self).map_err(|e| ConfigError::Parse { path: path.into(), message: e.to_string() })?;
        write_atomically(path, text.as_bytes())
    }

    pub fn get(&self, name: &str) -> Option<&User> {
        self.users.iter().find(|u| u.name.as_str() == name)
    }

    pub fn get_mut(&mut self, name: &str) -> Option<&mut User> {
        self.users.iter_mut().find(|u| u.name.as_str() == name)
    }

    /// Adds `key` to user `name`, creating the user when new. Returns true when
    /// the user was created. Adding a key that is already there updates its profile.
    pub fn add_key(&mut self, name: UserName, key: AuthorizedKey) -> bool {
        if let Some(user) = self.users.iter_mut().find(|u| u.name == name) {
            match user.keys.iter_mut().find(|k| k.identity() == key.identity()) {
                Some(existing) => *existing = key,
                None => user.keys.push(key),
            }
            return false;
        }
        let next = self.users.iter().map(|u| u.uid.max(u.gid) + 1).max().unwrap_or(FIRST_UID).max(FIRST_UID);
        self.users.push(User {
            name,
            uid: next,
            gid: next,
            quota_bytes: None,
            quota_files: None,
            role: Role::User,
            locked: false,
            keys: vec![key],
        });
        true
    }

    pub fn remove(&mut self, name: &str) -> Result<User, ConfigError> {
        let pos = self.users.iter().position(|u| u.name.as_str() == name).ok_or_else(|| ConfigError::NoSuchUser(name.into()))?;
        Ok(self.users.remove(pos))
    }
}

/// Replaces `path` with `bytes` so that readers see the old or the new file,
/// never half of one. The file is readable by its owner (root) only.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), ConfigError> {
    StagedFile::write(path, bytes)?.commit()
}

/// A file's new contents written and synced beside it under a temporary
/// name, waiting for [`StagedFile::commit`] to rename it into place. Several
/// staged files make a change of many files that fails before any is
/// replaced; one dropped uncommitted leaves the old file as it was.
#[derive(Debug)]
pub struct StagedFile {
    path: std::path::PathBuf,
    tmp: Option<std::path::PathBuf>,
}

impl StagedFile {
    pub fn write(path: &Path, bytes: &[u8]) -> Result<Self, ConfigError> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let err = |source| ConfigError::Write { path: path.into(), source };
        // A name of its own per writer: the server and a command may write the same file at once.
        static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let file_name = path.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default();
        let tmp = path.with_file_name(format!(".{file_name}.{}.{n}.tmp", std::process::id()));
        // Owner-only from the first byte: these files hold keys, secrets and usage.
        let create = || std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp);
        let mut f = match create() {
            // Left by a power cut under the same process id and count: stale.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                std::fs::remove_file(&tmp).map_err(err)?;
                create().map_err(err)?
            }
            other => other.map_err(err)?,
        };
        let staged = StagedFile { path: path.into(), tmp: Some(tmp) };
        f.write_all(bytes).map_err(err)?;
        f.sync_all().map_err(err)?;
        Ok(staged)
    }

    /// Gives the file this mode (from 0600) before it takes its place.
    pub fn set_mode(&self, mode: u32) -> Result<(), ConfigError> {
        use std::os::unix::fs::PermissionsExt;
        let tmp = self.tmp.as_deref().unwrap_or(&self.path);
        std::fs::set_permissions(tmp, std::fs::Permissions::from_mode(mode))
            .map_err(|source| ConfigError::Write { path: self.path.clone(), source })
    }

    pub fn commit(mut self) -> Result<(), ConfigError> {
        let err = |source| ConfigError::Write { path: self.path.clone(), source };
        let Some(tmp) = self.tmp.take() else { return Ok(()) };
        std::fs::rename(&tmp, &self.path).map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            err(e)
        })?;
        if let Some(dir) = self.path.parent() {
            std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(err)?;
        }
        Ok(())
    }
}

impl Drop for StagedFile {
    fn drop(&mut self) {
        if let Some(tmp) = self.tmp.take() {
            let _ = std::fs::remove_file(tmp);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn staged_files_change_nothing_until_committed() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        std::fs::write(&a, "old a").unwrap();
        let staged = StagedFile::write(&a, b"new a").unwrap();
        drop(staged);
        assert_eq!(std::fs::read_to_string(&a).unwrap(), "old a");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1, "no temporary left");
        let sa = StagedFile::write(&a, b"new a").unwrap();
        let sb = StagedFile::write(&b, b"new b").unwrap();
        sb.set_mode(0o644).unwrap();
        assert_eq!(std::fs::read_to_string(&a).unwrap(), "old a", "staged, not yet in place");
        sa.commit().unwrap();
        sb.commit().unwrap();
        assert_eq!(std::fs::read_to_string(&a).unwrap(), "new a");
        assert_eq!(std::fs::read_to_string(&b).unwrap(), "new b");
        assert_eq!(std::fs::metadata(&a).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(std::fs::metadata(&b).unwrap().permissions().mode() & 0o777, 0o644);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2);
    }

    #[test]
    fn names() {
        for ok in ["alice", "_svc", "a-b_c9"] {
            validate_user_name(ok).unwrap();
        }
        for bad in ["", "Alice", "9a", "a/b", "..", "a b", &"x".repeat(33)] {
            assert!(validate_user_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn add_remove_roundtrip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("users.toml");
        let mut db = UserDb::default();
        let k = |s: &str| AuthorizedKey { key: s.into(), profile: KeyProfile::Full };
        assert!(db.add_key(UserName::try_from("alice".to_string()).unwrap(), k("ssh-ed25519 AAAA one")));
        assert!(!db.add_key(UserName::try_from("alice".to_string()).unwrap(), k("ssh-ed25519 BBBB two")));
        assert!(!db.add_key(UserName::try_from("alice".to_string()).unwrap(), k("ssh-ed25519 AAAA renamed")));
        assert!(db.add_key(UserName::try_from("bob".to_string()).unwrap(), k("ssh-ed25519 CCCC")));
        assert_eq!(db.get("alice").unwrap().keys.len(), 2);
        assert_ne!(db.get("alice").unwrap().uid, db.get("bob").unwrap().uid);
        db.save(&path).unwrap();
        assert_eq!(UserDb::load(&path).unwrap(), db);
        db.remove("alice").unwrap();
        assert!(db.remove("alice").is_err());
    }
}
