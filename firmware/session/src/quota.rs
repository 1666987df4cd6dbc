//! The worker's side of quota accounting: a [`QuotaGate`] charges growth
//! before bytes land and frees what is deleted. [`QuotaClient`] holds credit
//! granted by the front end (which owns the user's ledger) over a socket
//! inherited from it, so a write costs a socket round trip only every few
//! megabytes.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::sync::Mutex;

use coffer_quota::human_bytes;

/// A write refused because the user is at their limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuotaExceeded {
    pub user: String,
    pub files: bool,
    pub used: u64,
    pub limit: u64,
}

impl std::fmt::Display for QuotaExceeded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.files {
            write!(f, "quota exceeded for user {}: used {} of {} files", self.user, self.used, self.limit)
        } else {
            write!(f, "quota exceeded for user {}: used {} of {}", self.user, human_bytes(self.used), human_bytes(self.limit))
        }
    }
}

/// Usage as `statvfs@openssh.com` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuotaUsage {
    pub used_bytes: u64,
    pub limit_bytes: Option<u64>,
    pub used_files: u64,
    pub limit_files: Option<u64>,
}

/// Accounting hooks called by the SFTP server and the exec emulation.
pub trait QuotaGate: Send + Sync {
    /// Called before a file grows by `bytes` or `files` new inodes appear.
    fn charge(&self, bytes: u64, files: u64) -> Result<(), QuotaExceeded>;
    /// Called after data was deleted or shrunk.
    fn free(&self, bytes: u64, files: u64);
    fn usage(&self) -> Option<QuotaUsage>;
}

/// No accounting (tests and fuzzing).
#[derive(Debug, Default)]
pub struct Unlimited;

impl QuotaGate for Unlimited {
    fn charge(&self, _: u64, _: u64) -> Result<(), QuotaExceeded> {
        Ok(())
    }
    fn free(&self, _: u64, _: u64) {}
    fn usage(&self) -> Option<QuotaUsage> {
        None
    }
}

/// Bytes and inodes asked for beyond the immediate need.
const PREFETCH_BYTES: u64 = 16 << 20;
const PREFETCH_FILES: u64 = 64;
/// Consumption is reported to the front end at least this often.
const REPORT_BYTES: u64 = 32 << 20;

struct ClientState {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
    credit_bytes: u64,
    credit_files: u64,
    consumed_bytes: u64,
    consumed_files: u64,
    broken: bool,
}

/// Credit-holding client of the front end's ledger.
pub struct QuotaClient {
    user: String,
    state: Mutex<ClientState>,
}

impl QuotaClient {
    pub fn new(user: &str, stream: UnixStream) -> std::io::Result<Self> {
        let reader = BufReader::new(stream.try_clone()?);
        Ok(QuotaClient {
            user: user.to_string(),
            state: Mutex::new(ClientState {
                reader,
                writer: stream,
                credit_bytes: 0,
                credit_files: 0,
                consumed_bytes: 0,
                consumed_files: 0,
                broken: false,
            }),
        })
    }
}

impl ClientState {
    fn ask(&mut self, line: &str) -> Option<String> {
        if self.broken {
            return None;
        }
        let mut reply = String::new();
        let ok = self.writer.write_all(line.as_bytes()).is_ok() && self.reader.read_line(&mut reply).is_ok_and(|n| n > 0);
        if !ok {
            // The front end is gone (shutdown): refuse further growth, never guess.
            self.broken = true;
            return None;
        }
        Some(reply)
    }

    fn report(&mut self) {
        if self.consumed_bytes > 0 || self.consumed_files > 0 {
            let line = format!("U {} {}\n", self.consumed_bytes, self.consumed_files);
            if self.ask(&line).is_some() {
                self.consumed_bytes = 0;
                self.consumed_files = 0;
            }
        }
    }
}

impl QuotaGate for QuotaClient {
    fn charge(&self, bytes: u64, files: u64) -> Result<(), QuotaExceeded> {
        let Ok(mut s) = self.state.lock() else {
            return Err(QuotaExceeded { user: self.user.clone(), files: false, used: 0, limit: 0 });
        };
        if s.credit_bytes < bytes || s.credit_files < files {
            s.report();
            let need_b = bytes.saturating_sub(s.credit_bytes);
            let need_f = files.saturating_sub(s.credit_files);
            let reply = s.ask(&format!("R {need_b} {need_f} {PREFETCH_BYTES} {PREFETCH_FILES}\n")).unwrap_or_default();
            let fields: Vec<&str> = reply.split_whitespace().collect();
            match fields.as_slice() {
                ["G", b, f] => {
                    s.credit_bytes += b.parse::<u64>().unwrap_or(0);
                    s.credit_files += f.parse::<u64>().unwrap_or(0);
                }
                ["D", files, used, limit] => {
                    return Err(QuotaExceeded {
                        user: self.user.clone(),
                        files: *files == "1",
                        used: used.parse().unwrap_or(0),
                        limit: limit.parse().unwrap_or(0),
                    });
                }
                _ => return Err(QuotaExceeded { user: self.user.clone(), files: false, used: 0, limit: 0 }),
            }
            if s.credit_bytes < bytes || s.credit_files < files {
                return Err(QuotaExceeded { user: self.user.clone(), files: false, used: 0, limit: 0 });
            }
        }
        s.credit_bytes -= bytes;
        s.credit_files -= files;
        s.consumed_bytes += bytes;
        s.consumed_files += files;
        if s.consumed_bytes >= REPORT_BYTES {
            s.report();
        }
        Ok(())
    }

    fn free(&self, bytes: u64, files: u64) {
        if bytes == 0 && files == 0 {
            return;
        }
        if let Ok(mut s) = self.state.lock() {
            s.report();
            let _ = s.ask(&format!("F {bytes} {files}\n"));
        }
    }

    fn usage(&self) -> Option<QuotaUsage> {
        let mut s = self.state.lock().ok()?;
        s.report();
        let reply = s.ask("S\n")?;
        let f: Vec<&str> = reply.split_whitespace().collect();
        let opt = |v: &str| if v == "-" { None } else { v.parse().ok() };
        match f.as_slice() {
            ["T", ub, lb, uf, lf] => Some(QuotaUsage {
                used_bytes: ub.parse().ok()?,
                limit_bytes: opt(lb),
                used_files: uf.parse().ok()?,
                limit_files: opt(lf),
            }),
            _ => None,
        }
    }
}

impl Drop for QuotaClient {
    fn drop(&mut self) {
        if let Ok(s) = self.state.get_mut() {
            s.report();
            let back = format!("X {} {}\n", s.credit_bytes, s.credit_files);
            let _ = s.ask(&back);
            let _ = s.ask("E\n");
        }
    }
}
