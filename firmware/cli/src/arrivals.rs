//! When each backup set arrived: a user's area listed through their jail,
//! every set's earliest status change time recorded in
//! `STATE/arrivals/NAME.toml` the first time it is seen, and the record's
//! view (which sets are unconfirmed) for retention, `status` and `retention
//! adopt`.
//!
//! `serve` records at start and every few minutes, and every retention
//! command and `status` record before they decide, so a set's first-seen
//! arrival survives a later chmod, rename or copy of its files.

use std::collections::BTreeSet;

use anyhow::{Context, Result};
use coffer_config::{ArrivalRecord, SetArrival};
use coffer_duplicity::{BackupSet, Collection, FileInfo, format_stamp};
use coffer_retention::Arrival;
use coffer_storage::{JailPath, UserJail};

use crate::state::State;

/// One directory of a user's area as retention sees it.
#[derive(Debug)]
pub(crate) struct DirView {
    pub(crate) dir: JailPath,
    /// The directory as the client sees it (`/backup/home`).
    pub(crate) shown: String,
    pub(crate) col: Collection,
    /// By set index: when it arrived (as recorded) and whether it was adopted.
    pub(crate) arrivals: Vec<Arrival>,
}

impl DirView {
    /// Indices of the sets whose names do not fit their arrival.
    pub(crate) fn unconfirmed(&self) -> impl Iterator<Item = usize> + '_ {
        self.col.sets.iter().zip(&self.arrivals).enumerate().filter(|(_, (s, a))| !a.confirms(s.end)).map(|(i, _)| i)
    }
}

/// A user's area, observed.
#[derive(Debug)]
pub(crate) struct Observed {
    pub(crate) jail: UserJail,
    pub(crate) dirs: Vec<DirView>,
    /// Sets that arrived after this were not seen by the last accepted run.
    pub(crate) accepted_at: Option<i64>,
    /// The last run was held and its alert is open.
    pub(crate) held: bool,
}

/// The record's key of a set: `DIRECTORY/SET`, the directory's bytes
/// escaped so that every directory has its own key.
pub(crate) fn set_key(dir: &JailPath, set: &BackupSet) -> String {
    if dir.is_root() { set.key() } else { format!("{}/{}", dir.relative().escape_ascii(), set.key()) }
}

/// A set as people read it: `full 20261127T052936Z`, `inc A to B`.
pub(crate) fn describe_set(set: &BackupSet) -> String {
    let what = match (set.kind, set.start) {
        (coffer_duplicity::SetKind::Full, _) => format!("full {}", format_stamp(set.end)),
        (_, Some(s)) => format!("inc {} to {}", format_stamp(s), format_stamp(set.end)),
        (_, None) => format!("inc {}", format_stamp(set.end)),
    };
    if set.is_complete() { what } else { format!("incomplete {what}") }
}

/// Lists `user`'s area, records the sets seen for the first time (their
/// earliest ctime), forgets sets that are gone, and returns every directory
/// with its sets' recorded arrivals.
pub(crate) fn observe(state: &State, user: &str) -> Result<Observed> {
    let area = state.data_dir().join(user);
    let jail = UserJail::open(&area).with_context(|| format!("opening the data area of {user} ({})", area.display()))?;
    let mut dirs = Vec::new();
    let mut stack = vec![JailPath::root()];
    while let Some(dir) = stack.pop() {
        let shown = String::from_utf8_lossy(&dir.display()).into_owned();
        let entries = jail.read_dir(&dir).with_context(|| format!("listing {user}:{shown}"))?;
        let mut files = Vec::new();
        for e in entries {
            if e.meta.is_dir() {
                if let Ok(child) = dir.join(&e.name) {
                    stack.push(child);
                }
            } else if e.meta.is_file()
                && let Ok(name) = String::from_utf8(e.name)
            {
                files.push(FileInfo { name, mtime: e.meta.mtime, ctime: e.meta.ctime, size: e.meta.size });
            }
        }
        let col = Collection::from_files(&files);
        dirs.push(DirView { dir, shown, col, arrivals: Vec::new() });
    }

    let record_dir = state.paths.arrivals_dir();
    let _lock = ArrivalRecord::lock(&record_dir, user)?;
    let mut record = ArrivalRecord::load(&record_dir, user)?;
    let before = record.clone();
    let mut seen = BTreeSet::new();
    for d in &dirs {
        for s in &d.col.sets {
            let key = set_key(&d.dir, s);
            record.sets.entry(key.clone()).or_insert(SetArrival { arrival: s.earliest_ctime, adopted: false });
            seen.insert(key);
        }
    }
    // A set that is gone (deleted by retention or a full key) starts afresh
    // if a set of that name ever comes back: it arrives then.
    record.sets.retain(|k, _| seen.contains(k));
    // The sets present when the box first sees the area are its accepted
    // history; sets arriving later are new to retention.
    if record.accepted_at.is_none() {
        record.accepted_at = record.sets.values().map(|a| a.arrival).max();
    }
    if record != before {
        record.save(&record_dir, user)?;
    }
    for d in &mut dirs {
        d.arrivals = d
            .col
            .sets
            .iter()
            .map(|s| {
                let a = record.sets.get(&set_key(&d.dir, s)).copied().unwrap_or(SetArrival { arrival: s.earliest_ctime, adopted: false });
                Arrival { at: a.arrival, adopted: a.adopted }
            })
            .collect();
    }
    Ok(Observed { jail, dirs, accepted_at: record.accepted_at, held: record.held })
}

/// Records every user's sets (the server does this at start and then every
/// few minutes, so a set's first-seen arrival is kept).
pub(crate) fn observe_all(state: &State) {
    let users = match state.users() {
        Ok(db) => db.users,
        Err(e) => {
            log::warn!("recording backup arrivals: {e:#}");
            return;
        }
    };
    for u in users {
        if let Err(e) = observe(state, u.name.as_str()) {
            log::warn!("recording backup arrivals of {}: {e:#}", u.name);
        }
    }
}

/// Changes `user`'s record under its lock: the run's outcome, an adoption.
pub(crate) fn update(state: &State, user: &str, change: impl FnOnce(&mut ArrivalRecord)) -> Result<()> {
    let record_dir = state.paths.arrivals_dir();
    let _lock = ArrivalRecord::lock(&record_dir, user)?;
    let mut record = ArrivalRecord::load(&record_dir, user)?;
    change(&mut record);
    record.save(&record_dir, user)?;
    Ok(())
}

/// `YYYY-MM-DD HH:MM UTC`, for arrivals in listings.
pub(crate) fn when(t: i64) -> String {
    let (y, mo, d, h, mi, _) = coffer_duplicity::civil_from_unix(t);
    format!("{y:04}-{mo:02}-{d:02} {h:02}:{mi:02} UTC")
}
