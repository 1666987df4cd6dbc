//! `review`: a directory's plan with the guards against sets a hostile
//! append-only key could add.
//!
//! 1. Sets whose names do not fit their arrival are uncounted (see
//!    [`crate::provenance`]).
//! 2. Displacement. With arrival checked, the time-bucket rules (within,
//!    hourly … yearly) can only be fed sets named about "now", one point per
//!    period, so a flood cannot push history out of them; `keep-last N` can
//!    (N fresh sets in a minute). So the plan is compared with the plan that
//!    counts only the points that had arrived by the last accepted run: the
//!    sets the first deletes and the second keeps were *displaced* by new
//!    arrivals. When the new points came in a burst (more than
//!    [`BURST_POINTS`] arriving within [`BURST_WINDOW`]), the run holds
//!    (deletes nothing and alerts) whether or not they displace anything
//!    yet: a run that let them pass would accept them as history, and a
//!    later run would let them push real sets out of `keep-last` once
//!    `keep-within` stopped covering those. Backups every hour or every 15 minutes, and a
//!    catch-up after a laptop slept for a week (one set), never come that fast;
//!    a thief who paces uploads like such a cadence looks like one, which is why
//!    `keep-last` is best combined with the time-bucket rules.

use coffer_duplicity::Collection;

use crate::plan::{Plan, SetDecision, plan};
use crate::policy::RetentionPolicy;
use crate::provenance::{Arrival, Standing};

/// The window in which arrivals are counted for a burst.
pub const BURST_WINDOW: i64 = 3600;

/// More new restore points than this arriving within [`BURST_WINDOW`] in one
/// directory are a burst. A backup every 15 minutes makes 4, or 5 when one
/// upload starts late; 6 leaves room.
pub const BURST_POINTS: usize = 6;

/// One directory's plan and what the guards found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Review {
    pub plan: Plan,
    /// By set index: whether its name fits its arrival, or it was adopted.
    pub confirmed: Vec<bool>,
    /// Counted restore points that arrived after the last accepted run.
    pub new_points: Vec<usize>,
    /// Sets the plan deletes that it would keep without the new points.
    pub displaced: Vec<usize>,
    /// The new points arrived in a burst.
    pub burst: bool,
}

impl Review {
    /// Whether the run must delete nothing and alert: new points came in a
    /// burst. Until an administrator adopts them they are never accepted as
    /// history, even by a run they displace nothing in.
    pub fn holds(&self) -> bool {
        self.burst
    }
}

/// Whether more than [`BURST_POINTS`] of these arrival times fall within one
/// [`BURST_WINDOW`].
pub fn is_burst(arrivals: &[i64]) -> bool {
    let mut sorted = arrivals.to_vec();
    sorted.sort_unstable();
    sorted.windows(BURST_POINTS + 1).any(|w| w[BURST_POINTS].saturating_sub(w[0]) < BURST_WINDOW)
}

/// Plans one directory. `arrivals` is by set index (a set without one is
/// unconfirmed); `accepted_at` is when the last run that was not held (or
/// an adoption) looked at the directory: points that arrived later are new.
pub fn review(col: &Collection, policy: &RetentionPolicy, now: i64, arrivals: &[Arrival], accepted_at: Option<i64>) -> Review {
    let confirmed: Vec<bool> =
        col.sets.iter().enumerate().map(|(i, s)| arrivals.get(i).is_some_and(|a| a.confirms(s.end))).collect();
    let standing: Vec<Standing> =
        confirmed.iter().map(|&c| if c { Standing::Counted } else { Standing::Uncounted }).collect();
    let full = plan(col, policy, now, &standing);
    let new_points: Vec<usize> = match accepted_at {
        Some(accepted) => col
            .chains
            .iter()
            .flat_map(|c| c.sets.iter().copied())
            .filter(|&i| confirmed[i] && arrivals.get(i).is_some_and(|a| a.at > accepted))
            .collect(),
        None => Vec::new(),
    };
    let displaced = if new_points.is_empty() {
        Vec::new()
    } else {
        let mut before = standing.clone();
        for &i in &new_points {
            before[i] = Standing::Uncounted;
        }
        let baseline = plan(col, policy, now, &before);
        (0..col.sets.len())
            .filter(|&i| matches!(full.sets[i], SetDecision::Delete(_)) && matches!(baseline.sets[i], SetDecision::Keep(_)))
            .collect()
    };
    let burst = is_burst(&new_points.iter().filter_map(|&i| arrivals.get(i).map(|a| a.at)).collect::<Vec<_>>());
    Review { plan: full, confirmed, new_points, displaced, burst }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::KeepReason;
    use crate::provenance::plausible;
    use coffer_duplicity::{FileInfo, format_stamp};

    const HOUR: i64 = 3600;
    const DAY: i64 = 86_400;
    /// 2026-12-06, about when these tests were written.
    const NOW: i64 = 1_796_550_000;

    fn full(t: i64, arrived: i64) -> Vec<FileInfo> {
        [
            format!("duplicity-full.{}.manifest.gpg", format_stamp(t)),
            format!("duplicity-full.{}.vol1.difftar.gpg", format_stamp(t)),
            format!("duplicity-full-signatures.{}.sigtar.gpg", format_stamp(t)),
        ]
        .into_iter()
        .map(|name| FileInfo { name, mtime: t, ctime: arrived, size: 10 })
        .collect()
    }

    fn inc(from: i64, t: i64, arrived: i64) -> Vec<FileInfo> {
        [
            format!("duplicity-inc.{}.to.{}.manifest.gpg", format_stamp(from), format_stamp(t)),
            format!("duplicity-inc.{}.to.{}.vol1.difftar.gpg", format_stamp(from), format_stamp(t)),
            format!("duplicity-new-signatures.{}.to.{}.sigtar.gpg", format_stamp(from), format_stamp(t)),
        ]
        .into_iter()
        .map(|name| FileInfo { name, mtime: t, ctime: arrived, size: 10 })
        .collect()
    }

    /// Arrivals as the box records them: each set's earliest ctime, the
    /// sets named in `adopted` confirmed by an administrator.
    fn arrivals(col: &Collection, adopted: &[i64]) -> Vec<Arrival> {
        col.sets.iter().map(|s| Arrival { at: s.earliest_ctime, adopted: adopted.contains(&s.end) }).collect()
    }

    fn readme_policy() -> RetentionPolicy {
        RetentionPolicy {
            keep_within: Some(60 * DAY),
            keep_daily: Some(7),
            keep_weekly: Some(4),
            keep_monthly: Some(12),
            ..Default::default()
        }
    }

    /// Twelve monthly fulls, Dec 2025 to Nov 2026, made long ago (migrated: adopted).
    fn monthly_history(migrated_at: i64) -> (Vec<FileInfo>, Vec<i64>) {
        let times: Vec<i64> = (0..12).map(|m| NOW - 5 * DAY - (11 - m) * 30 * DAY).collect();
        (times.iter().flat_map(|&t| full(t, migrated_at)).collect(), times)
    }

    fn deleted(r: &Review, col: &Collection) -> Vec<i64> {
        col.sets.iter().zip(&r.plan.sets).filter(|(_, d)| matches!(d, SetDecision::Delete(_))).map(|(s, _)| s.end).collect()
    }

    #[test]
    fn the_issue_attack_deletes_nothing() {
        // With the full key: 12 monthly sets (adopted). With the append-only
        // key: 24 sets dated 2098-2099 and 11 back-dated into the gaps.
        let (mut files, real) = monthly_history(NOW - DAY);
        let future = 4_070_908_800; // 2099-01-01
        for k in 0..24 {
            files.extend(full(future - k * 30 * DAY, NOW - HOUR));
        }
        for &t in &real[1..] {
            files.extend(full(t - 2 * DAY, NOW - HOUR));
        }
        let col = Collection::from_files(&files);
        let r = review(&col, &readme_policy(), NOW, &arrivals(&col, &real), Some(NOW - DAY));
        assert!(!r.plan.deletes_anything(), "{:?}", deleted(&r, &col));
        assert_eq!(r.confirmed.iter().filter(|&&c| !c).count(), 24 + 11);
        for (s, d) in col.sets.iter().zip(&r.plan.sets) {
            if !real.contains(&s.end) {
                assert_eq!(*d, SetDecision::Keep(KeepReason::Unconfirmed));
            }
        }
        // keep-last 1 keeps only the newest real set, not a 2099 one.
        let last = RetentionPolicy { keep_last: Some(1), ..Default::default() };
        let r = review(&col, &last, NOW, &arrivals(&col, &real), Some(NOW - DAY));
        assert_eq!(deleted(&r, &col), real[..11].to_vec());
    }

    #[test]
    fn unconfirmed_incremental_does_not_extend_its_chain() {
        // Chain A: a full and an incremental, both real. Chain B: a newer real
        // full. An incremental dated 2099 appended to A must not make A the
        // newest chain, and keeps A (its base) whole.
        let (a, a1, b) = (NOW - 20 * DAY, NOW - 19 * DAY, NOW - 2 * DAY);
        let mut files = full(a, a);
        files.extend(inc(a, a1, a1));
        files.extend(full(b, b));
        files.extend(inc(a1, 4_070_908_800, NOW));
        let col = Collection::from_files(&files);
        let r = review(&col, &RetentionPolicy { keep_last: Some(1), ..Default::default() }, NOW, &arrivals(&col, &[]), None);
        let reasons: Vec<_> = r.plan.sets.clone();
        assert!(!r.plan.deletes_anything());
        assert_eq!(reasons[0], SetDecision::Keep(KeepReason::NeededBy(4_070_908_800)));
        assert_eq!(reasons[3], SetDecision::Keep(KeepReason::Unconfirmed));
        // Adopted, it is an ordinary newest point: B goes.
        let r = review(&col, &RetentionPolicy { keep_last: Some(1), ..Default::default() }, NOW, &arrivals(&col, &[4_070_908_800]), None);
        assert_eq!(deleted(&r, &col), vec![b]);
    }

    #[test]
    fn keep_last_burst_holds_and_cadence_does_not() {
        let (mut files, real) = monthly_history(NOW - 10 * DAY);
        let pol = RetentionPolicy { keep_last: Some(12), ..Default::default() };
        // Twelve plausible sets (named in the last hours) uploaded within a minute.
        for k in 0..12 {
            files.extend(full(NOW - 3 * HOUR + k * 60, NOW - 60 + k * 5));
        }
        let col = Collection::from_files(&files);
        let r = review(&col, &pol, NOW, &arrivals(&col, &real), Some(NOW - DAY));
        assert!(r.burst && r.holds(), "{r:?}");
        assert_eq!(r.displaced.len(), 12);
        // The same twelve arriving hourly are a normal cadence.
        let (mut files, real) = monthly_history(NOW - 10 * DAY);
        for k in 0..12 {
            let t = NOW - 12 * HOUR + k * HOUR;
            files.extend(full(t, t + 600));
        }
        let col = Collection::from_files(&files);
        let r = review(&col, &pol, NOW, &arrivals(&col, &real), Some(NOW - DAY));
        assert!(!r.burst && !r.holds() && r.displaced.len() == 12, "{r:?}");
    }

    /// A burst that displaces nothing today (keep-within still covers every
    /// set) holds all the same: accepted, it would push real sets out of
    /// keep-last once they age past keep-within.
    #[test]
    fn a_burst_holds_even_when_it_displaces_nothing_yet() {
        let (mut files, real) = monthly_history(NOW - 10 * DAY);
        let pol = RetentionPolicy { keep_within: Some(400 * DAY), keep_last: Some(10), ..Default::default() };
        for k in 0..10 {
            files.extend(full(NOW - 3 * HOUR + k * 60, NOW - 60 + k * 5));
        }
        let col = Collection::from_files(&files);
        let r = review(&col, &pol, NOW, &arrivals(&col, &real), Some(NOW - DAY));
        assert!(r.displaced.is_empty() && !r.plan.deletes_anything(), "{r:?}");
        assert!(r.burst && r.holds(), "{r:?}");
    }

    #[test]
    fn bursts() {
        assert!(!is_burst(&[]));
        assert!(!is_burst(&[0, 600, 1200, 1800, 2400, 3000]));
        assert!(!is_burst(&[0, 600, 1200, 1800, 2400, 3000, 3600]), "every 10 minutes");
        assert!(is_burst(&[0, 600, 1200, 1800, 2400, 3000, 3599]));
        assert!(is_burst(&[7, 6, 5, 4, 3, 2, 1]));
    }

    proptest::proptest! {
        /// Sets a hostile key adds with names that do not fit their arrival
        /// (future-dated, or back-dated into gaps) change nothing about the
        /// real sets: what the plan without them keeps, the plan with them
        /// keeps, and they are all kept.
        #[test]
        fn unconfirmed_sets_never_cost_history(
            steps in proptest::collection::vec((proptest::bool::weighted(0.3), HOUR..(3 * DAY)), 1..25),
            forged in proptest::collection::vec((0u8..3, 0i64..(400 * DAY), 0usize..25), 0..12),
            within in proptest::option::of(0i64..(30 * DAY)),
            last in proptest::option::of(0u32..4),
            daily in proptest::option::of(0u32..6),
            weekly in proptest::option::of(0u32..4),
            monthly in proptest::option::of(0u32..3),
        ) {
            let mut real = Vec::new();
            let mut ends = Vec::new();
            let mut t = NOW - 60 * DAY;
            for (i, (is_full, gap)) in steps.iter().enumerate() {
                t += gap;
                if i == 0 || *is_full { real.extend(full(t, t + 60)); } else { real.extend(inc(*ends.last().unwrap_or(&t), t, t + 60)); }
                ends.push(t);
            }
            let uploaded = t + HOUR;
            let mut hostile = real.clone();
            for (kind, offset, at) in &forged {
                let named = match kind {
                    0 => uploaded + 2 * HOUR + offset,          // in the future
                    1 => uploaded - 2 * DAY - offset,           // back-dated into the past
                    _ => ends[at % ends.len()] + 1 + offset % DAY, // into a gap, or after a real end
                };
                proptest::prop_assume!(!plausible(named, uploaded) && !ends.contains(&named));
                if *kind == 2 && at % 2 == 0 {
                    hostile.extend(inc(*ends.last().unwrap_or(&t), named, uploaded));
                } else {
                    hostile.extend(full(named, uploaded));
                }
            }
            let pol = RetentionPolicy { keep_within: within, keep_last: last, keep_daily: daily, keep_weekly: weekly, keep_monthly: monthly, ..Default::default() };
            let honest = Collection::from_files(&real);
            let attacked = Collection::from_files(&hostile);
            let before = review(&honest, &pol, uploaded, &arrivals(&honest, &[]), Some(uploaded - DAY));
            let after = review(&attacked, &pol, uploaded, &arrivals(&attacked, &[]), Some(uploaded - DAY));
            let kept = |col: &Collection, r: &Review| -> Vec<i64> {
                col.sets.iter().zip(&r.plan.sets).filter(|(_, d)| matches!(d, SetDecision::Keep(_))).map(|(s, _)| s.end).collect()
            };
            let kept_after = kept(&attacked, &after);
            for end in kept(&honest, &before) {
                proptest::prop_assert!(kept_after.contains(&end), "real set {} lost", end);
            }
            for (i, s) in attacked.sets.iter().enumerate() {
                if !ends.contains(&s.end) {
                    proptest::prop_assert!(matches!(after.plan.sets[i], SetDecision::Keep(_)));
                }
            }
        }

        /// Backups at a normal cadence (hourly to daily, with jitter, gaps
        /// of up to a week while a laptop sleeps, a catch-up afterwards)
        /// never look like a burst, whenever the runs happen.
        #[test]
        fn normal_cadence_is_never_a_burst(
            cadence in proptest::sample::select(vec![15 * 60, HOUR, 6 * HOUR, DAY]),
            jitter in proptest::collection::vec(0i64..600, 1..200),
            sleeps in proptest::collection::vec((0usize..200, 0i64..(7 * DAY)), 0..4),
            run_every in proptest::sample::select(vec![HOUR, DAY, 7 * DAY]),
        ) {
            let mut arrivals = Vec::new();
            let mut t = NOW - 300 * DAY;
            for (k, j) in jitter.iter().enumerate() {
                t += cadence;
                for &(at, gap) in &sleeps {
                    if at == k { t += gap; }
                }
                // A backup's first file arrives a few minutes after it starts;
                // the next one starts on schedule, never before the last ended.
                arrivals.push(t + j);
            }
            let mut since = 0;
            while since < arrivals.len() {
                let accepted = arrivals[since] - 1;
                let new: Vec<i64> = arrivals.iter().copied().filter(|&a| a > accepted && a <= accepted + run_every).collect();
                proptest::prop_assert!(!is_burst(&new), "{:?}", new);
                since += new.len().max(1);
            }
        }

        /// However many points a burst brings, the run holds, and the sets
        /// it reports displaced are exactly the real ones keep-last would lose.
        #[test]
        fn bursts_that_displace_hold(count in (BURST_POINTS + 1)..30, keep in 1u32..20, spread in 0i64..3000) {
            let (mut files, real) = monthly_history(NOW - 10 * DAY);
            for k in 0..count {
                let k = i64::try_from(k).unwrap_or(0);
                files.extend(full(NOW - 20 * HOUR + k * 60, NOW - 3000 + k * spread / 30));
            }
            let col = Collection::from_files(&files);
            let r = review(&col, &RetentionPolicy { keep_last: Some(keep), ..Default::default() }, NOW, &arrivals(&col, &real), Some(NOW - DAY));
            proptest::prop_assert!(r.burst);
            let displaces_real = r.displaced.iter().any(|&i| real.contains(&col.sets[i].end));
            proptest::prop_assert!(r.holds());
            // keep-last K over 12 real points and the newer burst: real ones are pushed out
            // unless K covers them all.
            proptest::prop_assert_eq!(displaces_real, (keep as usize) < 12 + count);
        }
    }
}
