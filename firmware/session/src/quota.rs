//! The worker's side of quota accounting: a [`QuotaGate`] charges growth
//! before bytes land and frees what is deleted. [`QuotaClient`] holds credit
//! granted by the front end (which owns the user's ledger) over a socket
//! inherited from it, so a write costs a socket round trip only every few
//! megabytes. Closing a file settles: its bytes become usage and unused
//! credit goes back, as it does after a moment without writes, so no
//! session holds more of the user's room than its writes in progress.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use coffer_quota::human_bytes;

/// Which limit refused a write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    Bytes,
    Files,
    /// The user's usage is unknown (its count failed): no write is allowed
    /// until a recount, which the server retries, succeeds.
    Recounting,
    /// The server did not answer (it is shutting down): growth is refused,
    /// never guessed.
    Unanswered,
}

/// A write refused because the user is at their limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuotaExceeded {
    pub user: String,
    pub what: Refusal,
    /// Committed bytes (or files).
    pub used: u64,
    /// Bytes (or files) held by sessions of the user: uploads in progress
    /// and credit granted for them.
    pub held: u64,
    pub limit: u64,
}

impl QuotaExceeded {
    /// A refusal when the server could not be asked (its socket is gone).
    fn unanswered(user: &str) -> Self {
        QuotaExceeded { user: user.to_string(), what: Refusal::Unanswered, used: 0, held: 0, limit: 0 }
    }
}

impl std::fmt::Display for QuotaExceeded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let user = &self.user;
        match self.what {
            Refusal::Files => {
                write!(f, "quota exceeded for user {user}: used {} of {} files", self.used, self.limit)?;
                if self.held > 0 {
                    write!(f, ", and {} more are held by uploads in progress", self.held)?;
                }
                Ok(())
            }
            Refusal::Bytes => {
                write!(f, "quota exceeded for user {user}: used {} of {}", human_bytes(self.used), human_bytes(self.limit))?;
                if self.held > 0 {
                    write!(f, ", and {} more is held by uploads in progress (this one included)", human_bytes(self.held))?;
                }
                Ok(())
            }
            Refusal::Recounting => write!(
                f,
                "writes refused for user {user}: a recount of their usage is running (the last count failed); try again in a minute, or ask the administrator to look at the server's log"
            ),
            Refusal::Unanswered => {
                write!(f, "writes refused for user {user}: the server's quota accounting does not answer (is it shutting down?); try again later")
            }
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
    /// Called when a file was closed: what was written so far becomes usage,
    /// and unused credit goes back so other sessions can have it.
    fn settle(&self) {}
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

/// Bytes and inodes asked for beyond the immediate need, each only when
/// that kind is needed (the ledger cuts it to a share of the room left).
const PREFETCH_BYTES: u64 = 16 << 20;
const PREFETCH_FILES: u64 = 64;
/// Credit unused for this long goes back to the ledger, so an idle session
/// (an upload left open) holds none of the user's room.
const IDLE_GIVE_BACK: Duration = Duration::from_secs(2);

struct ClientState {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
    credit_bytes: u64,
    credit_files: u64,
    /// Written since the last settle: held at the ledger, not yet usage.
    consumed_bytes: u64,
    consumed_files: u64,
    last_charge: Instant,
    broken: bool,
}

/// Credit-holding client of the front end's ledger.
pub struct QuotaClient {
    user: String,
    state: Arc<Mutex<ClientState>>,
}

impl QuotaClient {
    pub fn new(user: &str, stream: UnixStream) -> std::io::Result<Self> {
        let reader = BufReader::new(stream.try_clone()?);
        let state = Arc::new(Mutex::new(ClientState {
            reader,
            writer: stream,
            credit_bytes: 0,
            credit_files: 0,
            consumed_bytes: 0,
            consumed_files: 0,
            last_charge: Instant::now(),
            broken: false,
        }));
        let weak = Arc::downgrade(&state);
        std::thread::Builder::new().name("quota-idle".into()).spawn(move || give_back_when_idle(&weak))?;
        Ok(QuotaClient { user: user.to_string(), state })
    }
}

/// Returns unused credit of a session that stopped writing; ends with the client.
fn give_back_when_idle(state: &Weak<Mutex<ClientState>>) {
    loop {
        std::thread::sleep(IDLE_GIVE_BACK / 2);
        let Some(state) = state.upgrade() else { return };
        let Ok(mut s) = state.lock() else { return };
        if s.last_charge.elapsed() >= IDLE_GIVE_BACK {
            s.give_back();
        }
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

    /// Turns what was written into usage at the ledger.
    fn report(&mut self) {
        if self.consumed_bytes > 0 || self.consumed_files > 0 {
            let line = format!("U {} {}\n", self.consumed_bytes, self.consumed_files);
            if self.ask(&line).is_some() {
                self.consumed_bytes = 0;
                self.consumed_files = 0;
            }
        }
    }

    /// Returns credit not written into anything.
    fn give_back(&mut self) {
        if self.credit_bytes > 0 || self.credit_files > 0 {
            let line = format!("X {} {}\n", self.credit_bytes, self.credit_files);
            if self.ask(&line).is_some() {
                self.credit_bytes = 0;
                self.credit_files = 0;
            }
        }
    }
}

impl QuotaGate for QuotaClient {
    fn charge(&self, bytes: u64, files: u64) -> Result<(), QuotaExceeded> {
        let Ok(mut s) = self.state.lock() else { return Err(QuotaExceeded::unanswered(&self.user)) };
        s.last_charge = Instant::now();
        if s.credit_bytes < bytes || s.credit_files < files {
            let need_b = bytes.saturating_sub(s.credit_bytes);
            let need_f = files.saturating_sub(s.credit_files);
            // Prefetch only the kind needed: bytes asked for with every new
            // file once let one session of empty files hold the whole quota.
            let pre_b = if need_b > 0 { PREFETCH_BYTES } else { 0 };
            let pre_f = if need_f > 0 { PREFETCH_FILES } else { 0 };
            let reply = s.ask(&format!("R {need_b} {need_f} {pre_b} {pre_f}\n")).unwrap_or_default();
            let fields: Vec<&str> = reply.split_whitespace().collect();
            let num = |v: &str| v.parse::<u64>().unwrap_or(0);
            match fields.as_slice() {
                ["G", b, f] => {
                    s.credit_bytes += num(b);
                    s.credit_files += num(f);
                }
                ["D", what, used, held, limit] => {
                    let what = match *what {
                        "bytes" => Refusal::Bytes,
                        "files" => Refusal::Files,
                        "recount" => Refusal::Recounting,
                        _ => Refusal::Unanswered,
                    };
                    return Err(QuotaExceeded { user: self.user.clone(), what, used: num(used), held: num(held), limit: num(limit) });
                }
                _ => return Err(QuotaExceeded::unanswered(&self.user)),
            }
            if s.credit_bytes < bytes || s.credit_files < files {
                return Err(QuotaExceeded::unanswered(&self.user));
            }
        }
        s.credit_bytes -= bytes;
        s.credit_files -= files;
        s.consumed_bytes += bytes;
        s.consumed_files += files;
        Ok(())
    }

    fn free(&self, bytes: u64, files: u64) {
        if bytes == 0 && files == 0 {
            return;
        }
        if let Ok(mut s) = self.state.lock() {
            // What this session wrote and has not yet reported is still held
            // at the ledger: freeing it turns it back into credit (a refused
            // upload never passes through usage, so it raises no warning).
            let back_b = bytes.min(s.consumed_bytes);
            let back_f = files.min(s.consumed_files);
            s.consumed_bytes -= back_b;
            s.consumed_files -= back_f;
            s.credit_bytes += back_b;
            s.credit_files += back_f;
            let (bytes, files) = (bytes - back_b, files - back_f);
            if bytes > 0 || files > 0 {
                let _ = s.ask(&format!("F {bytes} {files}\n"));
            }
        }
    }

    fn settle(&self) {
        if let Ok(mut s) = self.state.lock() {
            s.report();
            s.give_back();
        }
    }

    fn usage(&self) -> Option<QuotaUsage> {
        let mut s = self.state.lock().ok()?;
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
        if let Ok(mut s) = self.state.lock() {
            s.report();
            s.give_back();
            let _ = s.ask("E\n");
        }
    }
}
