//! Where `coffer-client`'s archive files go: a directory reached by
//! `file://` or over SSH (`scp://`, `sftp://`), behind one small blocking
//! trait, [`Remote`], that the client's threads call.
//!
//! - [`Location::parse`] reads duplicity's target URLs (pure, table-tested).
//! - [`FileRemote`] is a local directory; [`SftpRemote`] an SFTP session
//!   over one SSH connection (russh), trusting hosts and finding keys as
//!   OpenSSH's client does ([`SshOptions`], [`known_hosts`]), with WRITE and
//!   READ requests pipelined.
//! - Every `put` writes a hidden temporary (`.coffer-part-<random>-NAME`)
//!   and renames it into place only once complete, so an interrupted upload
//!   never carries a name that looks complete; duplicity's name patterns
//!   start with `duplicity-`, so it ignores the temporaries too.
//!
//! The API is blocking: the SSH connection runs on a small tokio runtime
//! owned by the [`SftpRemote`]; do not call it from inside another async
//! runtime's worker thread.

mod error;
mod file;
pub mod known_hosts;
mod sftp;
mod ssh;
mod url;

use std::io::Read;

pub use error::RemoteError;
pub use file::FileRemote;
pub use sftp::SftpRemote;
pub use ssh::SshOptions;
pub use url::{Location, SshTarget, UrlError};

/// One file in the target directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub name: String,
    pub size: u64,
}

/// A directory that holds one backup's archive files. Safe to share
/// between threads; operations on different names may run at once.
pub trait Remote: Send + Sync {
    /// The regular files in the directory (not the temporaries of uploads
    /// in progress, not names that are not UTF-8), in no particular order.
    fn list(&self) -> Result<Vec<Entry>, RemoteError>;
    /// Stores everything `data` yields as `name`, replacing a file of that
    /// name where the server allows it. The name appears only when the
    /// whole file is stored. Returns the number of bytes written.
    fn put(&self, name: &str, data: &mut dyn Read) -> Result<u64, RemoteError>;
    /// Streams the file `name`.
    fn get(&self, name: &str) -> Result<Box<dyn Read + Send>, RemoteError>;
    /// Deletes the file `name`.
    fn delete(&self, name: &str) -> Result<(), RemoteError>;
    /// Creates the directory and its missing parents (`mkdir -p`).
    fn create_dir(&self) -> Result<(), RemoteError>;
}

/// Opens the remote a URL names: a [`FileRemote`] for `file://`, an SSH
/// connection for `scp://` and `sftp://`.
pub fn open(url: &str, ssh: &SshOptions) -> Result<Box<dyn Remote>, RemoteError> {
    match Location::parse(url)? {
        Location::File { dir } => Ok(Box::new(FileRemote::new(dir))),
        Location::Ssh(target) => Ok(Box::new(SftpRemote::connect(&target, ssh)?)),
    }
}

/// The prefix of upload temporaries.
const PART_PREFIX: &str = ".coffer-part-";

/// Refuses names that are not a single path component.
fn check_name(name: &str) -> Result<(), RemoteError> {
    if name.is_empty() || name == "." || name == ".." || name.contains(['/', '\0']) || name.starts_with(PART_PREFIX) {
        return Err(RemoteError::InvalidName { name: name.to_string() });
    }
    Ok(())
}

/// A fresh temporary name for an upload of `name`.
fn part_name(name: &str) -> String {
    format!("{PART_PREFIX}{:016x}-{name}", rand::random::<u64>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for bad in ["", ".", "..", "a/b", "/a", "a\0b", ".coffer-part-1-x"] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
        for good in ["duplicity-full.20240101T000000Z.vol1.difftar.gpg", "..a", ".hidden", "a b"] {
            assert!(check_name(good).is_ok(), "{good:?}");
        }
        let p = part_name("x");
        assert!(p.starts_with(PART_PREFIX) && p.ends_with("-x") && p != part_name("x"));
    }
}
