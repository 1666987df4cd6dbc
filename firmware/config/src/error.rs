//! Error policy: every error names the file (and the key or user) it is
//! about and says what to do, because these messages go straight to the
//! person at the command line.

use std::path::PathBuf;
use thiserror::Error;

#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("cannot write {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
    #[error("{path} is not valid: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{path} has version {found}; this Coffer understands version {expected}")]
    Version { path: PathBuf, found: u32, expected: u32 },
    #[error("the state directory {0} is not initialised; run `coffer --state {0} init` first")]
    NotInitialised(PathBuf),
    #[error("invalid user name {0:?}: use 1 to 32 characters from a-z, 0-9, '_' and '-', starting with a letter or '_'")]
    BadUserName(String),
    #[error("no user named {0}; `coffer user list` shows the users")]
    NoSuchUser(String),
    #[error("invalid public key in {path}: {message}")]
    BadKey { path: PathBuf, message: String },
}
