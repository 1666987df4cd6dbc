//! Error policy: every error names the operation and the file or host it
//! concerns, and for refusals the reason a person can act on (the host key's
//! fingerprint and the line to add, the server's own refusal text).
//! Bytes from a server never panic; they become `Protocol` errors.

use std::path::PathBuf;

use coffer_sftp_proto::StatusCode;
use thiserror::Error;

use crate::url::UrlError;

#[derive(Debug, Error)]
#[non_exhaustive]
pub enum RemoteError {
    #[error(transparent)]
    Url(#[from] UrlError),
    #[error("{name:?} is not a file name for a backup directory (one path component, no '/', not . or ..)")]
    InvalidName { name: String },
    #[error("{op} {path}: {source}")]
    Local { op: &'static str, path: PathBuf, source: std::io::Error },
    #[error("reading the data for {name}: {source}")]
    Source { name: String, source: std::io::Error },
    #[error("connecting to {host}:{port}: {source}")]
    Connect { host: String, port: u16, source: std::io::Error },
    #[error("SSH to {host}:{port}: {reason}")]
    Ssh { host: String, port: u16, reason: String },
    #[error(
        "the host key of {host} is not known (fingerprint {fingerprint}); refusing to connect. \
         If that is the right key, add this line to ~/.ssh/known_hosts:\n{line}{note}"
    )]
    HostKeyUnknown { host: String, fingerprint: String, line: String, note: String },
    #[error(
        "the host key of {host} has CHANGED: it offers {fingerprint}, {known} holds another key of that type. \
         Someone may be intercepting the connection, or the server was reinstalled; refusing to connect. \
         If the change is expected, replace that line with:\n{line}"
    )]
    HostKeyChanged { host: String, fingerprint: String, known: String, line: String },
    #[error("the host key of {host} ({fingerprint}) is marked @revoked at {at}; refusing to connect")]
    HostKeyRevoked { host: String, fingerprint: String, at: String },
    #[error("{host} offered a host certificate; only plain host keys from known_hosts are accepted")]
    HostCertificate { host: String },
    #[error("reading the key {path}: {reason}")]
    Key { path: PathBuf, reason: String },
    #[error("logging in as {user} on {host}:{port} failed; tried: {tried}{hint}")]
    Login { user: String, host: String, port: u16, tried: String, hint: String },
    #[error("{op} {name}: {}: {message}", status_text(*code))]
    Status { op: &'static str, name: String, code: StatusCode, message: String },
    #[error("SFTP with {host}: {reason}")]
    Protocol { host: String, reason: String },
    #[error("the SSH connection to {host} closed during {op}")]
    Closed { host: String, op: &'static str },
}

fn status_text(code: StatusCode) -> &'static str {
    match code {
        StatusCode::Ok => "ok",
        StatusCode::Eof => "end of file",
        StatusCode::NoSuchFile => "no such file",
        StatusCode::PermissionDenied => "permission denied",
        StatusCode::Failure => "failed",
        StatusCode::BadMessage => "bad message",
        StatusCode::OpUnsupported => "not supported by the server",
    }
}

impl RemoteError {
    /// Whether the error says the file is not there (a missing volume, as
    /// opposed to a refusal or a broken connection).
    pub fn is_not_found(&self) -> bool {
        match self {
            RemoteError::Status { code, .. } => *code == StatusCode::NoSuchFile,
            RemoteError::Local { source, .. } => source.kind() == std::io::ErrorKind::NotFound,
            _ => false,
        }
    }
}
