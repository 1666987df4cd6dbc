//! The front end's side of quota accounting: every user's [`Ledger`], and
//! the line protocol session workers speak over their inherited socket.
//!
//! Worker → front end, one line each, each answered with one line:
//! `R need_bytes need_files prefetch_bytes prefetch_files` → `G bytes files`
//! or `D bytes|files|recount used held limit`; `U bytes files` (consumed
//! credit), `X bytes files` (unused credit given back), `F bytes files`
//! (freed), `E` (clean end) → `K`; `S` → `T used_bytes limit_bytes|-
//! used_files limit_files|-`.
//!
//! A user whose usage is unknown (never counted, or the count failed) has
//! no ledger, and every request for credit is refused with `D recount`:
//! without a count a limit cannot be enforced, so nothing is written until a
//! recount succeeds. Failed counts are retried with a growing delay.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use coffer_quota::{Credit, Ledger, Limits, human_bytes};
use coffer_runtime::event::{self, Event};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};


/// A threshold crossing to record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WarningRaised {
    pub user: String,
    pub percent: u8,
    pub used_bytes: u64,
    pub limit_bytes: u64,
}

/// First and longest delay before a failed usage count is tried again.
const RETRY_FIRST: Duration = Duration::from_secs(2);
const RETRY_MAX: Duration = Duration::from_secs(120);

/// A failed count to try again.
struct Retry {
    due: Instant,
    delay: Duration,
}

#[derive(Default)]
struct BookState {
    ledgers: HashMap<String, Ledger>,
    dirty: HashSet<String>,
    needs_recount: HashSet<String>,
    retries: HashMap<String, Retry>,
    /// Credit of workers that ended without settling: what they wrote is
    /// unknown, so it stays held until a recount has seen the disk.
    orphaned: HashMap<String, Credit>,
    /// Orphaned credit that the recount now running will account for.
    releasing: HashMap<String, Credit>,
    /// File limit of users without their own (from the data area's inodes).
    default_files: Option<u64>,
    warnings: Vec<WarningRaised>,
}

fn add(map: &mut HashMap<String, Credit>, user: &str, c: Credit) {
    let e = map.entry(user.to_string()).or_default();
    e.bytes = e.bytes.saturating_add(c.bytes);
    e.files = e.files.saturating_add(c.files);
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

    /// Gives users without a file limit of their own this one (none: no limit).
    pub fn set_default_files(&self, files: Option<u64>) {
        if let Ok(mut s) = self.state.lock() {
            s.default_files = files;
        }
    }

    /// Sets a user's usage from a recount; returns the previous usage if different.
    pub fn recount(&self, user: &str, limits: Limits, bytes: u64, files: u64) -> Option<(u64, u64)> {
        let mut s = self.state.lock().ok()?;
        let limits = limits.with_default_files(s.default_files);
        s.needs_recount.remove(user);
        if s.retries.remove(user).is_some() {
            log::info!("user {user}: usage counted ({bytes} bytes in {files} files); writes are allowed again");
        }
        s.dirty.insert(user.to_string());
        let released = s.releasing.remove(user).unwrap_or_default();
        if let Some(l) = s.ledgers.get_mut(user) {
            l.give_back(released);
        }
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
        if let Ok(mut s) = self.state.lock() {
            let limits = limits.with_default_files(s.default_files);
            if let Some(l) = s.ledgers.get_mut(user) {
                l.limits = limits;
            }
        }
    }

    /// A count of the user's area failed: a user never counted stays
    /// unknown (their writes are refused), and the count is tried again
    /// later, each time after a longer delay.
    pub fn count_failed(&self, user: &str, why: &str) {
        let Ok(mut s) = self.state.lock() else { return };
        let known = s.ledgers.contains_key(user);
        let delay = s.retries.get(user).map_or(RETRY_FIRST, |r| (r.delay * 2).min(RETRY_MAX));
        s.retries.insert(user.to_string(), Retry { due: Instant::now() + delay, delay });
        if known {
            log::error!("user {user}: recount failed: {why}; keeping the usage known so far, trying again in {}s", delay.as_secs());
        } else {
            log::error!(
                "user {user}: cannot count usage: {why}; their writes are refused until a count succeeds, trying again in {}s",
                delay.as_secs()
            );
        }
        event::emit(&Event::QuotaCountFailed { user: user.to_string(), error: why.to_string(), retry_secs: delay.as_secs() });
    }

    /// Stops retrying the count of a user who was removed.
    pub fn forget_retry(&self, user: &str) {
        if let Ok(mut s) = self.state.lock() {
            s.retries.remove(user);
        }
    }

    /// True while a failed count waits to be tried again.
    pub fn retry_scheduled(&self, user: &str) -> bool {
        self.state.lock().is_ok_and(|s| s.retries.contains_key(user))
    }

    /// Users whose records changed since the last call, and warnings raised.
    pub fn take_dirty(&self) -> (Vec<(String, Ledger)>, Vec<WarningRaised>) {
        let Ok(mut s) = self.state.lock() else { return (Vec::new(), Vec::new()) };
        let dirty: Vec<String> = s.dirty.drain().collect();
        let out = dirty.into_iter().filter_map(|u| s.ledgers.get(&u).cloned().map(|l| (u, l))).collect();
        (out, std::mem::take(&mut s.warnings))
    }

    /// Users to count now: a worker ended without settling its account, or
    /// a failed count is due again. Their orphaned credit is released by the
    /// [`Self::recount`] that follows.
    pub fn take_needs_recount(&self) -> Vec<String> {
        let Ok(mut s) = self.state.lock() else { return Vec::new() };
        let now = Instant::now();
        let mut users: HashSet<String> = s.needs_recount.drain().collect();
        users.extend(s.retries.iter().filter(|(_, r)| r.due <= now).map(|(u, _)| u.clone()));
        for user in &users {
            if let Some(c) = s.orphaned.remove(user) {
                add(&mut s.releasing, user, c);
            }
        }
        users.into_iter().collect()
    }

    /// Runs `f` on a known user's ledger; `None` while their usage is unknown.
    fn with<T>(&self, user: &str, f: impl FnOnce(&mut Ledger) -> T) -> Option<T> {
        let mut s = self.state.lock().ok()?;
        let state = &mut *s;
        let l = state.ledgers.get_mut(user)?;
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
            event::emit(&Event::QuotaWarning { user: user.to_string(), percent, used: w.used_bytes, limit: w.limit_bytes });
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
                        "quota exceeded for user {user}: used {} of {}, {} held by uploads in progress",
                        if e.files { e.used.to_string() } else { human_bytes(e.used) },
                        if e.files { format!("{} files", e.limit) } else { human_bytes(e.limit) },
                        if e.files { format!("{} files", e.held) } else { human_bytes(e.held) },
                    );
                    format!("D {} {} {} {}\n", if e.files { "files" } else { "bytes" }, e.used, e.held, e.limit)
                }
                None => {
                    log::info!("user {user}: write refused, their usage is not known yet (recount pending)");
                    "D recount 0 0 0\n".into()
                }
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
            // Bytes this worker wrote may be anywhere in its credit: hold it
            // all until a recount has seen the disk.
            if let Ok(mut s) = self.state.lock() {
                add(&mut s.orphaned, &user, outstanding);
                s.needs_recount.insert(user.clone());
            }
            log::info!("user {user}: a session ended without settling its quota account; recounting");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ask(book: &QuotaBook, user: &str, line: &str, outstanding: &mut Credit) -> String {
        let mut ended = false;
        book.answer(user, line, outstanding, &mut ended)
    }

    #[test]
    fn unknown_users_are_refused_until_counted() {
        let book = QuotaBook::default();
        let mut c = Credit::default();
        assert_eq!(ask(&book, "alice", "R 10 0 100 0", &mut c), "D recount 0 0 0\n");
        // Frees and reports of an unknown user create no ledger (which would have no limits).
        assert_eq!(ask(&book, "alice", "F 10 1", &mut c), "K\n");
        assert!(!book.knows("alice"));
        book.count_failed("alice", "EMFILE");
        assert!(book.retry_scheduled("alice"));
        assert_eq!(ask(&book, "alice", "R 10 0 100 0", &mut c), "D recount 0 0 0\n");
        book.recount("alice", Limits { bytes: Some(1000), files: None }, 0, 0);
        assert!(!book.retry_scheduled("alice"));
        assert_eq!(ask(&book, "alice", "R 10 0 100 0", &mut c), "G 110 0\n");
    }

    #[test]
    fn failed_counts_are_retried_later_and_later() {
        let book = QuotaBook::default();
        book.count_failed("alice", "EMFILE");
        assert!(book.take_needs_recount().is_empty(), "not due yet");
        let delay = |b: &QuotaBook| b.state.lock().unwrap().retries["alice"].delay;
        assert_eq!(delay(&book), RETRY_FIRST);
        book.count_failed("alice", "EMFILE");
        assert_eq!(delay(&book), RETRY_FIRST * 2);
        book.state.lock().unwrap().retries.get_mut("alice").unwrap().due = Instant::now();
        assert_eq!(book.take_needs_recount(), vec!["alice".to_string()]);
    }

    #[test]
    fn refusals_tell_used_from_held() {
        let book = QuotaBook::default();
        book.recount("alice", Limits { bytes: Some(1000), files: None }, 100, 1);
        let mut c = Credit::default();
        assert_eq!(ask(&book, "alice", "R 800 0 0 0", &mut c), "G 800 0\n");
        assert_eq!(ask(&book, "alice", "R 200 0 0 0", &mut c), "D bytes 100 800 1000\n");
        // Held credit raised no warning; usage does once reported.
        assert!(book.take_dirty().1.is_empty());
        assert_eq!(ask(&book, "alice", "U 800 0", &mut c), "K\n");
        assert_eq!(book.take_dirty().1.iter().map(|w| w.percent).collect::<Vec<_>>(), vec![80, 90]);
    }

    #[test]
    fn default_file_limit_applies_without_an_own_limit() {
        let book = QuotaBook::default();
        book.set_default_files(Some(2));
        book.recount("alice", Limits::default(), 0, 2);
        book.recount("bob", Limits { bytes: None, files: Some(5) }, 0, 2);
        let mut c = Credit::default();
        assert_eq!(ask(&book, "alice", "R 0 1 0 0", &mut c), "D files 2 0 2\n");
        assert_eq!(ask(&book, "bob", "R 0 1 0 0", &mut c), "G 0 1\n");
        book.set_limits("alice", Limits::default());
        assert_eq!(ask(&book, "alice", "R 0 1 0 0", &mut c), "D files 2 0 2\n");
    }

    #[test]
    fn credit_of_a_vanished_worker_stays_held_until_the_recount() {
        let book = Arc::new(QuotaBook::default());
        book.recount("alice", Limits { bytes: Some(1000), files: None }, 0, 0);
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let (ours, theirs) = tokio::net::UnixStream::pair().unwrap();
            let task = tokio::spawn(Arc::clone(&book).serve_worker("alice".into(), ours));
            let mut theirs = BufReader::new(theirs);
            theirs.get_mut().write_all(b"R 600 0 0 0\n").await.unwrap();
            let mut reply = String::new();
            theirs.read_line(&mut reply).await.unwrap();
            assert_eq!(reply, "G 600 0\n");
            // The worker dies without settling.
            drop(theirs);
            task.await.unwrap();
        });
        let mut c = Credit::default();
        assert_eq!(ask(&book, "alice", "R 500 0 0 0", &mut c), "D bytes 0 600 1000\n");
        assert_eq!(book.take_needs_recount(), vec!["alice".to_string()]);
        book.recount("alice", Limits { bytes: Some(1000), files: None }, 300, 1);
        assert_eq!(ask(&book, "alice", "R 500 0 0 0", &mut c), "G 500 0\n");
    }
}
