//! Target URLs as duplicity takes them, parsed without touching anything.
//!
//! What duplicity 0.8 does (`backend.py` `ParsedUrl`, `backends/localbackend.py`,
//! `backends/ssh_paramiko_backend.py`), and so what this parser does:
//! - `scp://` and `sftp://` mean the same (one paramiko backend registers
//!   both). The path loses its first `/` only: `scp://u@h/dir` is `dir`
//!   relative to the login directory, `scp://u@h//abs` is `/abs`, and no
//!   path at all (`scp://u@h` or `scp://u@h/`) is the login directory `.`.
//! - `file` is not a netloc scheme there, so `file://relative` is the
//!   relative path `relative` and `file:///abs` the absolute `/abs`;
//!   `file:relative` (no `//`) is refused ("Bad file:// path syntax").
//! - Paths and user names are percent-decoded (`urllib.parse.unquote`).
//!
//! Refused here where duplicity would go on: a password in the URL (keys
//! only), and a query or fragment (duplicity silently drops them, which
//! would put the archives somewhere the user did not write).

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::path::PathBuf;

use thiserror::Error;

/// Where a backup lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// A local directory (`file://`).
    File { dir: PathBuf },
    /// A directory on an SSH server (`scp://`, `sftp://`).
    Ssh(SshTarget),
}

/// An SSH server and the directory on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshTarget {
    /// The login name; `None` means the local user's, as OpenSSH does.
    pub user: Option<String>,
    /// A host name or an address (IPv6 without brackets).
    pub host: String,
    pub port: u16,
    /// The directory as the server is asked for it: relative to the login
    /// directory unless it starts with `/`; `.` for the login directory.
    pub dir: Vec<u8>,
}

/// Which part of a URL is wrong.
#[derive(Debug, Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum UrlError {
    #[error("{url:?} is not a URL: expected scp://, sftp:// or file://")]
    NotAUrl { url: String },
    #[error("{url:?}: unsupported scheme {scheme:?} (use scp://, sftp:// or file://)")]
    Scheme { url: String, scheme: String },
    #[error("{url:?}: a file URL needs two slashes: file:///absolute/dir or file://relative/dir")]
    FileSyntax { url: String },
    #[error("{url:?}: no host name")]
    NoHost { url: String },
    #[error("{url:?}: bad port {port:?} (a number from 1 to 65535)")]
    Port { url: String, port: String },
    #[error("{url:?}: passwords in URLs are not supported; log in with a key (--ssh-key or ssh-agent)")]
    Password { url: String },
    #[error("{url:?}: bad host {host:?}")]
    Host { url: String, host: String },
    #[error("{url:?}: bad %-escape in the {part}")]
    Escape { url: String, part: &'static str },
    #[error("{url:?}: queries and fragments (after ? or #) are not part of a target")]
    Query { url: String },
    #[error("{url:?}: empty path")]
    EmptyPath { url: String },
}

impl Location {
    /// Parses a target URL as duplicity would.
    pub fn parse(url: &str) -> Result<Self, UrlError> {
        let err_url = || url.to_string();
        let Some((scheme, rest)) = url.split_once(':') else {
            return Err(UrlError::NotAUrl { url: err_url() });
        };
        if rest.contains(['?', '#']) {
            return Err(UrlError::Query { url: err_url() });
        }
        match scheme.to_ascii_lowercase().as_str() {
            "file" => {
                let Some(path) = rest.strip_prefix("//") else {
                    return Err(UrlError::FileSyntax { url: err_url() });
                };
                if path.is_empty() {
                    return Err(UrlError::EmptyPath { url: err_url() });
                }
                let bytes = unescape(path).ok_or(UrlError::Escape { url: err_url(), part: "path" })?;
                Ok(Location::File { dir: PathBuf::from(OsString::from_vec(bytes)) })
            }
            "scp" | "sftp" => parse_ssh(url, rest).map(Location::Ssh),
            "" => Err(UrlError::NotAUrl { url: err_url() }),
            other if other.contains('/') => Err(UrlError::NotAUrl { url: err_url() }),
            other => Err(UrlError::Scheme { url: err_url(), scheme: other.to_string() }),
        }
    }
}

fn parse_ssh(url: &str, rest: &str) -> Result<SshTarget, UrlError> {
    let err_url = || url.to_string();
    let Some(rest) = rest.strip_prefix("//") else {
        return Err(UrlError::NoHost { url: err_url() });
    };
    let (netloc, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    // The user part ends at the last '@', as Python's urlparse splits it.
    let (userinfo, hostport) = match netloc.rsplit_once('@') {
        Some((u, h)) => (Some(u), h),
        None => (None, netloc),
    };
    let user = match userinfo {
        Some(u) if u.contains(':') => return Err(UrlError::Password { url: err_url() }),
        Some(u) => {
            let bytes = unescape(u).ok_or(UrlError::Escape { url: err_url(), part: "user name" })?;
            let name = String::from_utf8(bytes).map_err(|_| UrlError::Escape { url: err_url(), part: "user name" })?;
            Some(name).filter(|n| !n.is_empty())
        }
        None => None,
    };
    let (host, port) = split_host_port(url, hostport)?;
    // Only the first '/' goes: "/dir" -> "dir", "//abs" -> "/abs".
    let dir = unescape(path.strip_prefix('/').unwrap_or(path)).ok_or(UrlError::Escape { url: err_url(), part: "path" })?;
    let dir = if dir.is_empty() { b".".to_vec() } else { dir };
    Ok(SshTarget { user, host, port, dir })
}

fn split_host_port(url: &str, hostport: &str) -> Result<(String, u16), UrlError> {
    let err_url = || url.to_string();
    let (host, port) = if let Some(inner) = hostport.strip_prefix('[') {
        let Some((h, after)) = inner.split_once(']') else {
            return Err(UrlError::Host { url: err_url(), host: hostport.to_string() });
        };
        match after {
            "" => (h, None),
            p => match p.strip_prefix(':') {
                Some(p) => (h, Some(p)),
                None => return Err(UrlError::Host { url: err_url(), host: hostport.to_string() }),
            },
        }
    } else {
        match hostport.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (hostport, None),
        }
    };
    if host.is_empty() {
        return Err(UrlError::NoHost { url: err_url() });
    }
    if host.chars().any(|c| c.is_whitespace() || c.is_control() || matches!(c, '/' | '@' | '[' | ']' | '%')) {
        return Err(UrlError::Host { url: err_url(), host: host.to_string() });
    }
    let port = match port {
        None => 22,
        // "host:" with nothing after means the default port, as urlparse reads it.
        Some("") => 22,
        Some(p) => match p.parse::<u16>() {
            Ok(n) if n > 0 && p.bytes().all(|b| b.is_ascii_digit()) => n,
            _ => return Err(UrlError::Port { url: err_url(), port: p.to_string() }),
        },
    };
    Ok((host.to_string(), port))
}

/// Percent-decodes; `None` on a `%` not followed by two hex digits.
fn unescape(s: &str) -> Option<Vec<u8>> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            let hi = char::from(hex[0]).to_digit(16)?;
            let lo = char::from(hex[1]).to_digit(16)?;
            out.push(u8::try_from(hi * 16 + lo).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ssh(user: Option<&str>, host: &str, port: u16, dir: &str) -> Location {
        Location::Ssh(SshTarget { user: user.map(str::to_string), host: host.into(), port, dir: dir.as_bytes().to_vec() })
    }

    fn file(dir: &str) -> Location {
        Location::File { dir: PathBuf::from(dir) }
    }

    #[test]
    fn urls_as_duplicity_reads_them() {
        let table = [
            ("scp://alice@box/backups", ssh(Some("alice"), "box", 22, "backups")),
            ("sftp://alice@box/backups", ssh(Some("alice"), "box", 22, "backups")),
            ("scp://alice@box//srv/backups", ssh(Some("alice"), "box", 22, "/srv/backups")),
            ("scp://alice@box:2222/a/b/", ssh(Some("alice"), "box", 2222, "a/b/")),
            ("scp://alice@box", ssh(Some("alice"), "box", 22, ".")),
            ("scp://alice@box/", ssh(Some("alice"), "box", 22, ".")),
            ("scp://box/x", ssh(None, "box", 22, "x")),
            ("SFTP://box:/x", ssh(None, "box", 22, "x")),
            ("sftp://al%40ice@[::1]:2200/my%20dir", ssh(Some("al@ice"), "::1", 2200, "my dir")),
            ("sftp://a@b@host/x", ssh(Some("a@b"), "host", 22, "x")),
            ("file:///srv/backups", file("/srv/backups")),
            ("file://relative/dir", file("relative/dir")),
            ("file://my%20dir", file("my dir")),
        ];
        for (url, want) in table {
            assert_eq!(Location::parse(url), Ok(want), "{url}");
        }
        assert_eq!(Location::parse("file:///a%ffb"), Ok(Location::File { dir: PathBuf::from(OsString::from_vec(b"/a\xffb".to_vec())) }));
    }

    #[test]
    fn errors_name_the_wrong_part() {
        let table: &[(&str, &str)] = &[
            ("/srv/backups", "not a URL"),
            ("backups", "not a URL"),
            ("s3://bucket/x", "unsupported scheme \"s3\""),
            ("file:relative", "two slashes"),
            ("file://", "empty path"),
            ("scp:/host/x", "no host"),
            ("scp://alice@/x", "no host"),
            ("scp://alice@box:22x/x", "bad port \"22x\""),
            ("scp://alice@box:0/x", "bad port \"0\""),
            ("scp://alice@box:70000/x", "bad port \"70000\""),
            ("scp://alice:secret@box/x", "passwords"),
            ("scp://[::1/x", "bad host"),
            ("scp://[::1]x/x", "bad host"),
            ("scp://bo x/x", "bad host"),
            ("scp://box/a%2", "bad %-escape in the path"),
            ("scp://a%zz@box/x", "bad %-escape in the user name"),
            ("scp://box/x?y=1", "queries"),
        ];
        for (url, want) in table {
            let err = Location::parse(url).expect_err(url).to_string();
            assert!(err.contains(want), "{url}: {err}");
        }
    }

    proptest::proptest! {
        #[test]
        fn never_panics(s in "\\PC{0,60}") {
            let _ = Location::parse(&s);
        }

        #[test]
        fn ssh_paths_lose_exactly_one_slash(dir in "[a-z/]{0,20}") {
            let Ok(Location::Ssh(t)) = Location::parse(&format!("scp://u@h/{dir}")) else { panic!("parse") };
            let want = if dir.is_empty() { ".".to_string() } else { dir };
            proptest::prop_assert_eq!(t.dir, want.into_bytes());
        }
    }
}
