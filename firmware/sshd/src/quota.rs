//! The front end's side of quota accounting: every user's [`Ledger`], and
//! the line protocol session workers speak over their inherited socket.
//!
//! Worker → front end, one line each, each answered with one line:
//! `R need_bytes need_files prefetch_bytes prefetch_files` → `G bytes files`
//! or `D files_flag used limit`; `U bytes files` (consumed credit), `X bytes
//! files` (unused credit given back), `F bytes files` (freed), `E` (clean
//! end) → `K`; `S` → `T used_bytes limit_bytes|- used_files limit_files|-`.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use coffer_quota::{Credit, Ledger, Limits, human_bytes};
use serde_json::json;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

use crate::event;

/// A threshold crossing to record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WarningRaised {
    pub user: String,
    pub percent: u8,
    pub used_bytes: u64,
    pub limit_bytes: u64,
}

#[derive(Default)]
struct BookState {
    ledgers: HashMap<String, Ledger>,
    dirty: HashSet<String>,
    needs_recount: HashSet<String>,
    warnings: Vec<WarningRaised>,
}

/// Every user's ledger, shared by all connections.
#[derive(Default)]
pub struct QuotaBook {
    state: Mutex<BookState>,
}

impl std::fmt::Debug for QuotaBook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("QuotaBook")
    }
}

impl QuotaBook {
    /// True if the user's usage is known (counted at start or since).
    pub fn knows(&self, user: &str) -> bool {
        self.state.lock().is_ok_and(|s| s.ledgers.contains_key(user))
    }

    /// Sets a user's usage from a recount; returns the previous usage if different.
    pub fn recount(&self, user: &str, limits: Limits, bytes: u64, files: u64) -> Option<(u64, u64)> {
        let mut s = self.state.lock().ok()?;
        s.needs_recount.remove(user);
        s.dirty.insert(user.to_string());
        match s.ledgers.get_mut(user) {
            Some(l) => {
                let before = (l.used_bytes, l.used_files);
                l.limits = limits;
                l.recount(bytes, files);
                let _ = l.take_warnings();
                (before != (bytes, files)).then_some(before)
            }
            None => {
                s.ledgers.insert(user.to_string(), Ledger::new(limits, bytes, files));
                None
            }
        }
    }

    pub fn set_limits(&self, user: &str, limits: Limits) {
        if let Ok(mut s) = self.state.lock()
            && let Some(l) = s.ledgers.get_mut(user)
        {
            l.limits = limits;
        }
    }

    /// Users whose records changed since the last call, and warnings raised.
    pub fn take_dirty(&self) -> (Vec<(String, Ledger)>, Vec<WarningRaised>) {
        let Ok(mut s) = self.state.lock() else { return (Vec::new(), Vec::new()) };
        let dirty: Vec<String> = s.dirty.drain().collect();
        let out = dirty.into_iter().filter_map(|u| s.ledgers.get(&u).cloned().map(|l| (u, l))).collect();
        (out, std::mem::take(&mut s.warnings))
    }

    /// Users whose worker ended without settling its account.
    pub fn take_needs_recount(&self) -> Vec<String> {
        self.state.lock().map(|mut s| s.needs_recount.drain().collect()).unwrap_or_default()
    }

    fn with<T>(&self, user: &str, f: impl FnOnce(&mut Ledger) -> T) -> Option<T> {
        let mut s = self.state.lock().ok()?;
        let state = &mut *s;
        let l = state.ledgers.entry(user.to_string()).or_default();
        let out = f(l);
        for percent in l.take_warnings() {
            let w = WarningRaised {
                user: user.to_string(),
                percent,
                used_bytes: l.used_bytes,
                limit_bytes: l.limits.bytes.unwrap_or(0),
            };
            log::warn!(
                "user {user} has used {percent}% of their quota ({} of {})",
                human_bytes(w.used_bytes),
                human_bytes(w.limit_bytes)
            );
            event::emit(
                "quota.warning",
                &[("user", json!(user)), ("percent", json!(percent)), ("used", json!(w.used_bytes)), ("limit", json!(w.limit_bytes))],
            );
            state.warnings.push(w);
        }
        state.dirty.insert(user.to_string());
        Some(out)
    }

    /// Answers one protocol line; `outstanding` is the worker's unsettled credit.
    fn answer(&self, user: &str, line: &str, outstanding: &mut Credit, ended: &mut bool) -> String {
        let f: Vec<&str> = line.split_whitespace().collect();
        let n = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        let c = |i: usize| Credit { bytes: n(i), files: n(i + 1) };
        match f.first().copied() {
            Some("R") => match self.with(user, |l| l.grant(c(1), c(3))) {
                Some(Ok(g)) => {
                    outstanding.bytes += g.bytes;
                    outstanding.files += g.files;
                    format!("G {} {}\n", g.bytes, g.files)
                }
                Some(Err(e)) => {
                    log::info!(
                        "quota exceeded for user {user}: used {} of {}",
                        if e.files { e.used.to_string() } else { human_bytes(e.used) },
                        if e.files { format!("{} files", e.limit) } else { human_bytes(e.limit) }
                    );
                    format!("D {} {} {}\n", u8::from(e.files), e.used, e.limit)
                }
                None => "D 0 0 0\n".into(),
            },
            Some("U") => {
                let used = Credit { bytes: n(1).min(outstanding.bytes), files: n(2).min(outstanding.files) };
                outstanding.bytes -= used.bytes;
                outstanding.files -= used.files;
                self.with(user, |l| l.consume(used));
                "K\n".into()
            }
            Some("X") => {
                let back = Credit { bytes: n(1).min(outstanding.bytes), files: n(2).min(outstanding.files) };
                outstanding.bytes -= back.bytes;
                outstanding.files -= back.files;
                self.with(user, |l| l.give_back(back));
                "K\n".into()
            }
            Some("F") => {
                self.with(user, |l| l.free(c(1)));
                "K\n".into()
            }
            Some("S") => self
                .with(user, |l| {
                    let opt = |v: Option<u64>| v.map_or("-".to_string(), |v| v.to_string());
                    format!("T {} {} {} {}\n", l.used_bytes, opt(l.limits.bytes), l.used_files, opt(l.limits.files))
                })
                .unwrap_or_else(|| "T 0 - 0 -\n".into()),
            Some("E") => {
                *ended = true;
                "K\n".into()
            }
            _ => "?\n".into(),
        }
    }

    /// Serves one worker's socket until it closes. Credit a worker never
    /// settled (it crashed or was killed) is returned, and the user is
    /// recounted from disk, since its consumption is unknown.
    pub async fn serve_worker(self: Arc<Self>, user: String, stream: tokio::net::UnixStream) {
        let (r, mut w) = stream.into_split();
        let mut lines = BufReader::new(r).lines();
        let mut outstanding = Credit::default();
        let mut ended = false;
        while let Ok(Some(line)) = lines.next_line().await {
            let reply = self.answer(&user, &line, &mut outstanding, &mut ended);
            if w.write_all(reply.as_bytes()).await.is_err() {
                break;
            }
        }
        if outstanding != Credit::default() || !ended {
            self.with(&user, |l| l.give_back(outstanding));
            if let Ok(mut s) = self.state.lock() {
                s.needs_recount.insert(user.clone());
            }
            log::info!("user {user}: a session ended without settling its quota account; recounting");
        }
    }
}
