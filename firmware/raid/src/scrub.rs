//! Scheduled, resumable mirror scrubs (md `check`).
//!
//! md forgets a running `check` at reboot. [`ScrubRecord`] remembers, in the
//! state partition, where the check had got to; the next boot resumes from
//! there (`sync_min`) rather than starting a multi-hour read again.
//! [`ScrubRecord::observe`] follows md, [`plan`] decides when to start or
//! resume. Both are pure; the mirror watcher does the sysfs writes.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", default)]
pub struct ScrubRecord {
    /// A check is under way (or was, when the box went down).
    pub running: bool,
    pub started_at: Option<i64>,
    /// When the last complete check ended; the schedule counts from here.
    pub finished_at: Option<i64>,
    /// Mismatches found by the last complete check.
    pub mismatches: u64,
    /// Sector the running check had reached; a resumed check starts here.
    pub position: u64,
    /// Mismatches counted before the check was interrupted and resumed.
    pub carried: u64,
    /// Mismatches md reports for the part of the check done since the last resume.
    pub current: u64,
    /// The check was interrupted; nothing to report until md checks again.
    pub awaiting_resume: bool,
}

/// What the array looks like now, for the scrub's purposes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScrubView<'a> {
    pub sync_action: &'a str,
    pub sync_completed: Option<(u64, u64)>,
    pub mismatch_cnt: u64,
    /// Both members present and in sync: a check only makes sense then.
    pub redundant: bool,
}

/// What happened to the scrub in one observation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScrubChange {
    Finished { mismatches: u64 },
    /// md stopped the check before the end (a disk left, or it was stopped):
    /// it resumes once the mirror is whole again.
    Interrupted { position: u64 },
}

impl ScrubRecord {
    /// Follows md: records progress while `check` runs; a check that ends
    /// while the mirror is whole and had reached its end is finished.
    pub fn observe(&mut self, view: ScrubView<'_>, now: i64) -> Option<ScrubChange> {
        if view.sync_action == "check" {
            if !self.running {
                *self = ScrubRecord { running: true, started_at: Some(now), finished_at: self.finished_at, mismatches: self.mismatches, ..ScrubRecord::default() };
            }
            self.awaiting_resume = false;
            if let Some((done, _)) = view.sync_completed {
                self.position = self.position.max(done);
            }
            self.current = view.mismatch_cnt;
            return None;
        }
        if !self.running || self.awaiting_resume {
            return None;
        }
        // The check just ended. md leaves no flag saying whether it completed;
        // a whole, idle mirror (and no stop request, which cancels first) means
        // it ran to the end.
        if view.redundant && view.sync_action == "idle" {
            let mismatches = self.carried + view.mismatch_cnt.max(self.current);
            *self = ScrubRecord { finished_at: Some(now), mismatches, started_at: self.started_at, ..ScrubRecord::default() };
            Some(ScrubChange::Finished { mismatches })
        } else {
            self.interrupt();
            Some(ScrubChange::Interrupted { position: self.position })
        }
    }

    /// Records a check this watcher just started at `from_sector` (a small
    /// mirror may finish before the next look, so the start is not left to
    /// [`ScrubRecord::observe`]).
    pub fn started(&mut self, from_sector: u64, now: i64) {
        if self.running {
            // A resume: progress and carried mismatches stay.
            self.awaiting_resume = false;
            self.current = 0;
        } else {
            *self = ScrubRecord {
                running: true,
                started_at: Some(now),
                finished_at: self.finished_at,
                mismatches: self.mismatches,
                position: from_sector,
                ..ScrubRecord::default()
            };
        }
    }

    /// Marks the running check as interrupted (md stopped, or the box went
    /// down): progress and mismatches so far are kept for the resume.
    pub fn interrupt(&mut self) {
        self.carried += self.current;
        self.current = 0;
        self.awaiting_resume = true;
    }

    /// The saved record as the watcher starts: a check md no longer runs
    /// (it forgot it at reboot) resumes from the saved position, and a new
    /// mirror's first check is one interval after `now`.
    pub fn at_start(mut self, md_checking: bool, now: i64) -> Self {
        if self.running && !md_checking {
            self.interrupt();
        }
        self.finished_at = self.finished_at.or(Some(now));
        self
    }

    /// Forgets a running check (an administrator stopped it).
    pub fn cancel(&mut self) {
        *self = ScrubRecord { finished_at: self.finished_at, mismatches: self.mismatches, started_at: self.started_at, ..ScrubRecord::default() };
    }
}

/// When a check should start, and from which sector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScrubStart {
    pub from_sector: u64,
}

/// Starts a check when one was interrupted (resume), when one was asked for,
/// or when the last one is `every` seconds old and the clock can be trusted.
/// Never while md is busy or the mirror is not whole.
pub fn plan(record: &ScrubRecord, view: ScrubView<'_>, now: i64, every: Option<i64>, clock_trusted: bool, requested: bool) -> Option<ScrubStart> {
    if view.sync_action != "idle" || !view.redundant {
        return None;
    }
    if record.running {
        return Some(ScrubStart { from_sector: record.position });
    }
    let due = match (every, record.finished_at) {
        (Some(every), Some(last)) => clock_trusted && now - last >= every,
        _ => false,
    };
    (requested || due).then_some(ScrubStart { from_sector: 0 })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(action: &str, done: Option<(u64, u64)>, mismatches: u64, redundant: bool) -> ScrubView<'_> {
        ScrubView { sync_action: action, sync_completed: done, mismatch_cnt: mismatches, redundant }
    }

    const DAY: i64 = 86_400;

    #[test]
    fn a_check_runs_to_the_end() {
        let mut r = ScrubRecord { finished_at: Some(0), ..ScrubRecord::default() };
        assert_eq!(plan(&r, view("idle", None, 0, true), 29 * DAY, Some(30 * DAY), true, false), None);
        assert_eq!(plan(&r, view("idle", None, 0, true), 30 * DAY, Some(30 * DAY), false, false), None, "untrusted clock waits");
        assert_eq!(plan(&r, view("idle", None, 0, true), 30 * DAY, Some(30 * DAY), true, false), Some(ScrubStart { from_sector: 0 }));
        assert_eq!(r.observe(view("check", Some((100, 1000)), 0, true), 10), None);
        assert!(r.running);
        assert_eq!(r.observe(view("check", Some((900, 1000)), 2, true), 11), None);
        assert_eq!(r.observe(view("idle", None, 2, true), 12), Some(ScrubChange::Finished { mismatches: 2 }));
        assert_eq!(r.finished_at, Some(12));
        assert!(!r.running);
        assert_eq!(r.observe(view("idle", None, 2, true), 13), None, "said once");
    }

    #[test]
    fn a_reboot_mid_check_resumes_where_it_was() {
        let mut r = ScrubRecord::default();
        r.observe(view("check", Some((400, 1000)), 3, true), 10);
        // The box went down here; the saved record is loaded on the next boot.
        let mut after = r.clone();
        after.interrupt();
        assert_eq!(plan(&after, view("idle", None, 0, true), 20, None, false, false), Some(ScrubStart { from_sector: 400 }));
        assert_eq!(after.observe(view("idle", None, 0, true), 20), None, "no finish reported before the resume");
        after.observe(view("check", Some((500, 1000)), 1, true), 21);
        assert_eq!(after.observe(view("idle", None, 1, true), 30), Some(ScrubChange::Finished { mismatches: 4 }));
    }

    #[test]
    fn a_disk_leaving_interrupts_and_nothing_starts_until_whole() {
        let mut r = ScrubRecord::default();
        r.observe(view("check", Some((400, 1000)), 0, true), 10);
        assert_eq!(r.observe(view("idle", None, 0, false), 11), Some(ScrubChange::Interrupted { position: 400 }));
        assert_eq!(plan(&r, view("idle", None, 0, false), 12, None, true, true), None);
        assert_eq!(plan(&r, view("recover", None, 0, true), 12, None, true, true), None);
        assert_eq!(plan(&r, view("idle", None, 0, true), 12, None, true, false), Some(ScrubStart { from_sector: 400 }));
    }

    #[test]
    fn a_check_that_ends_between_two_looks_is_still_reported() {
        let mut r = ScrubRecord { finished_at: Some(0), ..ScrubRecord::default() };
        r.started(0, 5);
        assert!(r.running);
        assert_eq!(r.observe(view("idle", None, 3, true), 10), Some(ScrubChange::Finished { mismatches: 3 }));
        // A resumed check keeps what the earlier part found.
        let mut r = ScrubRecord::default();
        r.observe(view("check", Some((400, 1000)), 2, true), 1);
        r.interrupt();
        r.started(400, 20);
        assert_eq!(r.observe(view("idle", None, 1, true), 30), Some(ScrubChange::Finished { mismatches: 3 }));
    }

    #[test]
    fn requested_checks_start_at_once_and_cancel_forgets() {
        let mut r = ScrubRecord::default();
        assert_eq!(plan(&r, view("idle", None, 0, true), 5, Some(DAY), false, true), Some(ScrubStart { from_sector: 0 }));
        r.observe(view("check", Some((10, 100)), 0, true), 6);
        r.cancel();
        assert_eq!(r.observe(view("idle", None, 0, true), 7), None);
        assert_eq!(plan(&r, view("idle", None, 0, true), 8, None, true, false), None);
    }
}
