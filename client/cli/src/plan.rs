//! What a backup run writes, decided from the target's file names alone:
//! a full set (the first run, `--full`, or a chain older than
//! `--full-if-older-than`) or an incremental that continues the newest
//! chain exactly where its last set ended, as duplicity requires; and the
//! files of interrupted sets (no manifest) to clear away first.

use coffer_duplicity::{Collection, format_stamp};

/// The choices of the command line that shape the plan.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct BackupOptions {
    /// `--full`.
    pub force_full: bool,
    /// `--full-if-older-than`, in seconds.
    pub full_if_older_than: Option<i64>,
}

/// The set a run writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SetPlan {
    Full { time: i64 },
    /// Continues the chain whose last set ended at `start`.
    Incremental { start: i64, end: i64 },
}

/// Why a set was chosen, in words for the run's first line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reason {
    NoChain,
    Forced,
    ChainTooOld { full_time: i64 },
    Continues,
}

/// A run's plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BackupPlan {
    pub set: SetPlan,
    pub reason: Reason,
    /// Files of incomplete sets (an interrupted run), manifest-less; the
    /// new run leaves them or clears them, and they never count.
    pub leftovers: Vec<String>,
}

/// Why no plan can be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum PlanError {
    #[error(
        "the newest backup set at the target is from {}, not earlier than this machine's clock ({}); \
         set the clock right, or wait until it has passed that time",
        format_stamp(*newest),
        format_stamp(*now)
    )]
    ClockBehind { newest: i64, now: i64 },
}

/// The plan for a run at `now` against the target's `collection`.
pub(crate) fn plan_backup(collection: &Collection, options: BackupOptions, now: i64) -> Result<BackupPlan, PlanError> {
    let newest = collection.sets.iter().filter(|s| s.is_complete()).map(|s| s.end).max();
    if let Some(newest) = newest
        && newest >= now
    {
        return Err(PlanError::ClockBehind { newest, now });
    }
    let leftovers = collection.incomplete.iter().flat_map(|&i| collection.sets[i].files_in_delete_order()).map(str::to_string).collect();
    let chain = collection.chains.last().map(|c| (collection.sets[c.sets[0]].end, collection.sets[*c.sets.last().unwrap_or(&c.sets[0])].end));
    let (set, reason) = match chain {
        None => (SetPlan::Full { time: now }, Reason::NoChain),
        Some(_) if options.force_full => (SetPlan::Full { time: now }, Reason::Forced),
        Some((full_time, _)) if options.full_if_older_than.is_some_and(|age| now - full_time > age) => {
            (SetPlan::Full { time: now }, Reason::ChainTooOld { full_time })
        }
        Some((_, last_end)) => (SetPlan::Incremental { start: last_end, end: now }, Reason::Continues),
    };
    Ok(BackupPlan { set, reason, leftovers })
}

#[cfg(test)]
mod tests {
    use super::*;
    use coffer_duplicity::FileInfo;

    const DAY: i64 = 86_400;
    const T0: i64 = 1_795_737_600;

    fn files(names: &[String]) -> Collection {
        let infos: Vec<FileInfo> = names.iter().map(|n| FileInfo { name: n.clone(), mtime: 0, ctime: 0, size: 1 }).collect();
        Collection::from_files(&infos)
    }

    fn full(t: i64) -> Vec<String> {
        let s = format_stamp(t);
        vec![format!("duplicity-full.{s}.vol1.difftar.gpg"), format!("duplicity-full.{s}.manifest.gpg"), format!("duplicity-full-signatures.{s}.sigtar.gpg")]
    }

    fn inc(a: i64, b: i64, manifest: bool) -> Vec<String> {
        let (a, b) = (format_stamp(a), format_stamp(b));
        let mut v = vec![format!("duplicity-inc.{a}.to.{b}.vol1.difftar.gpg"), format!("duplicity-new-signatures.{a}.to.{b}.sigtar.gpg")];
        if manifest {
            v.push(format!("duplicity-inc.{a}.to.{b}.manifest.gpg"));
        }
        v
    }

    #[test]
    fn decisions() {
        let chain: Vec<String> = [full(T0), inc(T0, T0 + DAY, true)].concat();
        let month = Some(30 * DAY);
        let table: &[(&[String], BackupOptions, i64, SetPlan, Reason)] = &[
            (&[], BackupOptions::default(), T0, SetPlan::Full { time: T0 }, Reason::NoChain),
            (&chain, BackupOptions::default(), T0 + 2 * DAY, SetPlan::Incremental { start: T0 + DAY, end: T0 + 2 * DAY }, Reason::Continues),
            (&chain, BackupOptions { force_full: true, ..Default::default() }, T0 + 2 * DAY, SetPlan::Full { time: T0 + 2 * DAY }, Reason::Forced),
            (&chain, BackupOptions { full_if_older_than: month, ..Default::default() }, T0 + 30 * DAY, SetPlan::Incremental { start: T0 + DAY, end: T0 + 30 * DAY }, Reason::Continues),
            (&chain, BackupOptions { full_if_older_than: month, ..Default::default() }, T0 + 31 * DAY, SetPlan::Full { time: T0 + 31 * DAY }, Reason::ChainTooOld { full_time: T0 }),
        ];
        for (i, (names, options, now, set, reason)) in table.iter().enumerate() {
            let plan = plan_backup(&files(names), *options, *now).unwrap();
            assert_eq!((plan.set, plan.reason), (*set, *reason), "case {i}");
        }
    }

    #[test]
    fn an_interrupted_incremental_is_left_over_and_the_chain_continues_from_the_last_complete_set() {
        let names: Vec<String> = [full(T0), inc(T0, T0 + DAY, false)].concat();
        let plan = plan_backup(&files(&names), BackupOptions::default(), T0 + 2 * DAY).unwrap();
        assert_eq!(plan.set, SetPlan::Incremental { start: T0, end: T0 + 2 * DAY });
        assert_eq!(plan.leftovers.len(), 2);
        assert!(plan.leftovers.iter().all(|n| n.starts_with("duplicity-inc.") || n.starts_with("duplicity-new-signatures.")));
    }

    #[test]
    fn a_clock_behind_the_newest_set_is_refused() {
        let e = plan_backup(&files(&full(T0)), BackupOptions::default(), T0).unwrap_err();
        assert_eq!(e, PlanError::ClockBehind { newest: T0, now: T0 });
        assert!(e.to_string().contains("set the clock right"));
    }
}
