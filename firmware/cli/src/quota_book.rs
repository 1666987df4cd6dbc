//! Quota bookkeeping around the front end's ledger, shared by `serve` and
//! the quota commands: counting a user's area, counting at start-up, and
//! the records in `quota/` with their rescan requests.

use std::path::Path;

use anyhow::{Context, Result};
use coffer_config::{QuotaRecord, QuotaWarning, User};
use coffer_quota::Limits;
use coffer_sshd::quota::QuotaBook;
use coffer_storage::UserJail;

use crate::state::State;

pub(crate) fn now() -> i64 {
    i64::try_from(coffer_runtime::clock::now()).unwrap_or(0)
}

pub(crate) fn limits(user: &User) -> Limits {
    Limits { bytes: user.quota_bytes, files: user.quota_files }
}

/// Counts a user's area from disk.
pub(crate) fn count(state: &State, user: &str) -> Result<(u64, u64)> {
    let area = state.data_dir().join(user);
    UserJail::open(&area).and_then(|j| j.usage()).with_context(|| format!("counting the data of {user} in {}", area.display()))
}

/// At start-up: recount, compare with the usage kept incrementally, log any disagreement.
pub(crate) fn count_at_start(state: &State, book: &QuotaBook, user: &User) {
    let name = user.name.as_str();
    let dir = state.paths.quota_dir();
    let kept = QuotaRecord::load(&dir, name).ok();
    match count(state, name) {
        Ok((bytes, files)) => {
            if let Some(k) = kept.filter(|k| k.updated_at > 0 && (k.used_bytes, k.used_files) != (bytes, files)) {
                log::warn!(
                    "user {name}: usage on disk is {bytes} bytes in {files} files, the record said {} bytes in {} files; using the count",
                    k.used_bytes,
                    k.used_files
                );
            }
            book.recount(name, limits(user), bytes, files);
        }
        Err(e) => book.count_failed(name, &format!("{e:#}")),
    }
}

/// Runs every 2 s while serving: writes changed records, serves rescan
/// requests (from `quota rescan` and `retention run`) and recounts users
/// whose sessions ended without settling their accounts.
pub(crate) fn housekeeping(dir: &Path, book: &QuotaBook) {
    let Ok(state) = State::open(dir) else { return };
    let qdir = state.paths.quota_dir();
    let users = state.users().unwrap_or_default();
    let mut recount: Vec<String> = book.take_needs_recount();
    if let Ok(entries) = std::fs::read_dir(&qdir) {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if let Some(user) = name.strip_suffix(".rescan") {
                let _ = std::fs::remove_file(e.path());
                recount.push(user.to_string());
            }
        }
    }
    for user in recount {
        let Some(u) = users.get(&user) else {
            book.forget_retry(&user);
            continue;
        };
        match count(&state, &user) {
            Ok((bytes, files)) => {
                if let Some((ob, of)) = book.recount(&user, limits(u), bytes, files) {
                    log::warn!("user {user}: recount found {bytes} bytes in {files} files; the ledger had {ob} bytes in {of} files");
                }
            }
            Err(e) => book.count_failed(&user, &format!("{e:#}")),
        }
    }
    let (dirty, warnings) = book.take_dirty();
    for (user, ledger) in dirty {
        let mut record = QuotaRecord::load(&qdir, &user).unwrap_or_default();
        record.used_bytes = ledger.used_bytes;
        record.used_files = ledger.used_files;
        record.updated_at = now();
        for w in warnings.iter().filter(|w| w.user == user) {
            record.warnings.push(QuotaWarning { percent: w.percent, at: now(), used_bytes: w.used_bytes, limit_bytes: w.limit_bytes });
        }
        if let Err(e) = record.save(&qdir, &user) {
            log::error!("cannot save the quota record of {user}: {e}");
        }
    }
}
