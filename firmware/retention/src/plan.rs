//! `plan(collection, policy, now)`: the decisions, and the files to delete.

use std::collections::{BTreeMap, HashSet};

use coffer_duplicity::{Collection, civil_from_unix};

use crate::policy::{RetentionPolicy, Rule};
use crate::provenance::Standing;

/// Why a set stays.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeepReason {
    /// A rule selected this restore point.
    Selected(Rule),
    /// A kept restore point later in the chain needs this set (its end time).
    NeededBy(i64),
    /// The set follows the chain's last selected point; chains go whole or not at all.
    SameChain,
    /// The newest chain is never deleted.
    NewestChain,
    /// The policy has no rules.
    NoPolicy,
    /// An incremental whose chain is missing: not restorable, left alone.
    Orphan,
    /// An incomplete set (no manifest) that is still within its grace period.
    IncompleteRecent,
    /// Its name does not fit when it arrived (or it is held back for
    /// comparison): kept, never counted, until an administrator adopts it.
    Unconfirmed,
    /// Follows an unconfirmed set in its chain, so it cannot be restored
    /// without it: kept and not counted either.
    FollowsUnconfirmed,
}

/// Why a set goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeleteReason {
    /// No point of its chain is selected by any rule.
    ChainNotSelected,
    /// No manifest and untouched for longer than the grace period.
    IncompleteExpired,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SetDecision {
    Keep(KeepReason),
    Delete(DeleteReason),
}

/// A non-duplicity file under the opt-in `max-age`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OtherDecision {
    Keep,
    DeleteOlderThanMaxAge,
}

/// The outcome for one directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// One decision per set of the collection, by index.
    pub sets: Vec<SetDecision>,
    pub others: Vec<OtherDecision>,
    /// Files to delete, in order: chains newest set first, each set manifest
    /// first, so an interruption leaves a shorter valid chain and incomplete
    /// sets, never a broken chain.
    pub delete_files: Vec<String>,
}

impl Plan {
    pub fn deletes_anything(&self) -> bool {
        !self.delete_files.is_empty()
    }
}

/// Period key of a time for a rule (UTC).
fn period(rule: Rule, t: i64) -> (i64, i64, i64, i64) {
    let (y, m, d, h, _, _) = civil_from_unix(t);
    match rule {
        Rule::Within | Rule::Last => (t, 0, 0, 0),
        Rule::Hourly => (y, m, d, h),
        Rule::Daily => (y, m, d, 0),
        Rule::Weekly => {
            let (iy, iw) = iso_week(t);
            (iy, iw, 0, 0)
        }
        Rule::Monthly => (y, m, 0, 0),
        Rule::Yearly => (y, 0, 0, 0),
    }
}

/// ISO 8601 week-numbering year and week of a UTC time.
fn iso_week(t: i64) -> (i64, i64) {
    let days = t.div_euclid(86_400);
    // 1970-01-01 was a Thursday; Monday = 0.
    let weekday = (days + 3).rem_euclid(7);
    let thursday = days - weekday + 3;
    let (year, _, _, _, _, _) = civil_from_unix(thursday * 86_400);
    let jan1 = coffer_duplicity::unix_from_civil(year, 1, 1, 0, 0, 0).unwrap_or(0) / 86_400;
    (year, (thursday - jan1) / 7 + 1)
}

/// Marks of the restore points, PBS style.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mark {
    Keep(Rule),
    Remove,
}

/// Applies the rules to restore points given newest first as (id, time).
///
/// The count rules run exactly as PBS prune does and do not depend on `now`;
/// `keep-within` is added on top (a union, as restic's `--keep-within`), so
/// advancing `now` can only shrink what is kept, never bring a deleted set back.
fn select(points: &[(usize, i64)], policy: &RetentionPolicy, now: i64) -> BTreeMap<usize, Mark> {
    let mut marks: BTreeMap<usize, Mark> = BTreeMap::new();
    for (rule, keep) in policy.count_rules() {
        // Periods already covered by a point kept earlier do not count again.
        let covered: HashSet<_> = points
            .iter()
            .filter(|(id, _)| matches!(marks.get(id), Some(Mark::Keep(_))))
            .map(|&(_, t)| period(rule, t))
            .collect();
        let mut counted = HashSet::new();
        for &(id, t) in points {
            if marks.contains_key(&id) {
                continue;
            }
            let key = period(rule, t);
            if covered.contains(&key) {
                continue;
            }
            if counted.contains(&key) {
                marks.insert(id, Mark::Remove);
            } else {
                if counted.len() >= keep as usize {
                    break;
                }
                counted.insert(key);
                marks.insert(id, Mark::Keep(rule));
            }
        }
    }
    if let Some(within) = policy.keep_within {
        for &(id, t) in points {
            if t >= now.saturating_sub(within) && !matches!(marks.get(&id), Some(Mark::Keep(_))) {
                marks.insert(id, Mark::Keep(Rule::Within));
            }
        }
    }
    marks
}

/// Decides every set of `col` under `policy` at time `now`; `standing`
/// says, by set index, which sets the rules may count (a missing entry
/// counts as [`Standing::Uncounted`]).
///
/// An uncounted set is kept, as is everything before it in its chain (its
/// restore needs them) and everything after it (their restores need it); no
/// restore point at or after it in its chain is counted, and only counted
/// points make a chain the newest. So uncounted sets never take a rule's
/// place and are never the reason another set is deleted.
pub fn plan(col: &Collection, policy: &RetentionPolicy, now: i64, standing: &[Standing]) -> Plan {
    let mut sets: Vec<Option<SetDecision>> = vec![None; col.sets.len()];
    let counted = |i: usize| standing.get(i) == Some(&Standing::Counted);

    // Per chain, how many sets lead it before the first uncounted one.
    let counted_len: Vec<usize> =
        col.chains.iter().map(|c| c.sets.iter().position(|&i| !counted(i)).unwrap_or(c.sets.len())).collect();
    // Restore points: every counted complete set in a chain, newest first.
    let mut points: Vec<(usize, i64)> = col
        .chains
        .iter()
        .zip(&counted_len)
        .flat_map(|(c, &n)| c.sets[..n].iter().map(|&i| (i, col.sets[i].end)))
        .collect();
    points.sort_by(|a, b| b.1.cmp(&a.1).then(b.0.cmp(&a.0)));
    let marks = select(&points, policy, now);

    let newest_chain = col
        .chains
        .iter()
        .zip(&counted_len)
        .enumerate()
        .filter_map(|(ci, (c, &n))| n.checked_sub(1).map(|last| (ci, col.sets[c.sets[last]].end)))
        .max_by_key(|&(_, end)| end)
        .map(|(ci, _)| ci);
    let mut delete_chains = Vec::new();
    for (ci, chain) in col.chains.iter().enumerate() {
        let (head, tail) = chain.sets.split_at(counted_len[ci]);
        for &i in tail {
            let reason = if counted(i) { KeepReason::FollowsUnconfirmed } else { KeepReason::Unconfirmed };
            sets[i] = Some(SetDecision::Keep(reason));
        }
        let selected = head.iter().any(|i| matches!(marks.get(i), Some(Mark::Keep(_))));
        if policy.keeps_everything() {
            for &i in head {
                sets[i] = Some(SetDecision::Keep(KeepReason::NoPolicy));
            }
        } else if selected || !tail.is_empty() {
            // Walk newest to oldest: sets after the last selected point stay
            // with the chain (or are needed by the uncounted tail); earlier
            // ones are needed by the next kept point.
            let mut needed_by: Option<i64> = tail.first().map(|&i| col.sets[i].end);
            for &i in head.iter().rev() {
                let decision = match (marks.get(&i), needed_by) {
                    (Some(Mark::Keep(rule)), _) => {
                        needed_by = Some(col.sets[i].end);
                        KeepReason::Selected(*rule)
                    }
                    (_, Some(t)) => KeepReason::NeededBy(t),
                    (_, None) => KeepReason::SameChain,
                };
                sets[i] = Some(SetDecision::Keep(decision));
            }
        } else if Some(ci) == newest_chain {
            for &i in head {
                sets[i] = Some(SetDecision::Keep(KeepReason::NewestChain));
            }
        } else {
            for &i in head {
                sets[i] = Some(SetDecision::Delete(DeleteReason::ChainNotSelected));
            }
            delete_chains.push(ci);
        }
    }
    for &i in &col.orphans {
        sets[i] = Some(SetDecision::Keep(KeepReason::Orphan));
    }
    let grace = policy.incomplete_grace();
    let mut expired = Vec::new();
    for &i in &col.incomplete {
        if now.saturating_sub(col.sets[i].newest_mtime) > grace {
            sets[i] = Some(SetDecision::Delete(DeleteReason::IncompleteExpired));
            expired.push(i);
        } else {
            sets[i] = Some(SetDecision::Keep(KeepReason::IncompleteRecent));
        }
    }

    let mut delete_files = Vec::new();
    for ci in delete_chains {
        for &i in col.chains[ci].sets.iter().rev() {
            delete_files.extend(col.sets[i].files_in_delete_order().into_iter().map(str::to_string));
        }
    }
    for i in expired {
        delete_files.extend(col.sets[i].files_in_delete_order().into_iter().map(str::to_string));
    }
    let others = col
        .others
        .iter()
        .map(|f| match policy.max_age {
            Some(age) if now.saturating_sub(f.mtime) > age => {
                delete_files.push(f.name.clone());
                OtherDecision::DeleteOlderThanMaxAge
            }
            _ => OtherDecision::Keep,
        })
        .collect();
    Plan {
        sets: sets.into_iter().map(|d| d.unwrap_or(SetDecision::Keep(KeepReason::Orphan))).collect(),
        others,
        delete_files,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use coffer_duplicity::{FileInfo, format_stamp, parse_stamp};

    const DAY: i64 = 86_400;

    /// A history: `(kind, time)` with 'F' full and 'I' incremental following the previous set.
    fn history(spec: &[(char, i64)]) -> Vec<FileInfo> {
        let mut files = Vec::new();
        let mut prev = 0;
        for &(k, t) in spec {
            let names = if k == 'F' {
                vec![
                    format!("duplicity-full.{}.manifest.gpg", format_stamp(t)),
                    format!("duplicity-full.{}.vol1.difftar.gpg", format_stamp(t)),
                    format!("duplicity-full-signatures.{}.sigtar.gpg", format_stamp(t)),
                ]
            } else {
                vec![
                    format!("duplicity-inc.{}.to.{}.manifest.gpg", format_stamp(prev), format_stamp(t)),
                    format!("duplicity-inc.{}.to.{}.vol1.difftar.gpg", format_stamp(prev), format_stamp(t)),
                    format!("duplicity-new-signatures.{}.to.{}.sigtar.gpg", format_stamp(prev), format_stamp(t)),
                ]
            };
            files.extend(names.into_iter().map(|name| FileInfo { name, mtime: t, ctime: t, size: 10 }));
            prev = t;
        }
        files
    }

    fn counted(col: &Collection) -> Vec<Standing> {
        vec![Standing::Counted; col.sets.len()]
    }

    fn kept_ends(col: &Collection, p: &Plan) -> Vec<i64> {
        col.sets.iter().zip(&p.sets).filter(|(_, d)| matches!(d, SetDecision::Keep(_))).map(|(s, _)| s.end).collect()
    }

    #[test]
    fn iso_weeks() {
        let t = |s: &str| parse_stamp(s).unwrap();
        assert_eq!(iso_week(t("20210103T120000Z")), (2020, 53));
        assert_eq!(iso_week(t("20210104T120000Z")), (2021, 1));
        assert_eq!(iso_week(t("20261127T000000Z")), (2026, 48));
        assert_eq!(iso_week(t("20241230T000000Z")), (2025, 1));
    }

    #[test]
    fn no_policy_keeps_everything() {
        let col = Collection::from_files(&history(&[('F', 10 * DAY), ('I', 11 * DAY), ('F', 20 * DAY)]));
        let p = plan(&col, &RetentionPolicy::default(), 100 * DAY, &counted(&col));
        assert!(!p.deletes_anything());
    }

    #[test]
    fn whole_chains_and_needed_fulls() {
        // Chain A: F day 1, I day 2, I day 3. Chain B: F day 10, I day 11.
        let col = Collection::from_files(&history(&[('F', DAY), ('I', 2 * DAY), ('I', 3 * DAY), ('F', 10 * DAY), ('I', 11 * DAY)]));
        // keep-last 1 keeps day 11, which needs day 10; chain A goes whole.
        let pol = RetentionPolicy { keep_last: Some(1), ..Default::default() };
        let p = plan(&col, &pol, 12 * DAY, &counted(&col));
        assert_eq!(kept_ends(&col, &p), vec![10 * DAY, 11 * DAY]);
        assert_eq!(p.delete_files.len(), 9);
        // Newest set of the deleted chain goes first, manifest first.
        assert!(p.delete_files[0].starts_with("duplicity-inc.") && p.delete_files[0].contains(&format_stamp(3 * DAY)) && p.delete_files[0].ends_with("manifest.gpg"));
        assert!(p.delete_files[8].starts_with("duplicity-full-signatures"));
        // keep-daily 4 reaches into chain A (day 3), which keeps A whole.
        let pol = RetentionPolicy { keep_daily: Some(4), ..Default::default() };
        let p = plan(&col, &pol, 12 * DAY, &counted(&col));
        assert!(!p.deletes_anything());
        assert_eq!(p.sets[0], SetDecision::Keep(KeepReason::NeededBy(2 * DAY)));
        assert_eq!(p.sets[1], SetDecision::Keep(KeepReason::Selected(Rule::Daily)));
    }

    #[test]
    fn periods_without_backups_do_not_count() {
        // Points on days 1, 2, 40, 41 (two per month region); keep-daily 3 keeps 41, 40, 2.
        let col = Collection::from_files(&history(&[('F', DAY), ('F', 2 * DAY), ('F', 40 * DAY), ('F', 41 * DAY)]));
        let pol = RetentionPolicy { keep_daily: Some(3), ..Default::default() };
        let p = plan(&col, &pol, 42 * DAY, &counted(&col));
        assert_eq!(kept_ends(&col, &p), vec![2 * DAY, 40 * DAY, 41 * DAY]);
    }

    #[test]
    fn newest_chain_is_never_deleted_and_within_counts() {
        let col = Collection::from_files(&history(&[('F', DAY), ('F', 5 * DAY)]));
        let pol = RetentionPolicy { keep_within: Some(DAY), ..Default::default() };
        let p = plan(&col, &pol, 100 * DAY, &counted(&col));
        assert_eq!(kept_ends(&col, &p), vec![5 * DAY]);
        assert_eq!(p.sets[1], SetDecision::Keep(KeepReason::NewestChain));
    }

    #[test]
    fn incomplete_sets_expire_after_grace() {
        let mut files = history(&[('F', DAY)]);
        files.push(FileInfo { name: format!("duplicity-full.{}.vol1.difftar.gpg", format_stamp(3 * DAY)), mtime: 3 * DAY, ctime: 3 * DAY, size: 5 });
        let col = Collection::from_files(&files);
        let pol = RetentionPolicy::default();
        assert!(!plan(&col, &pol, 3 * DAY + 3600, &counted(&col)).deletes_anything());
        let p = plan(&col, &pol, 5 * DAY, &counted(&col));
        assert_eq!(p.delete_files, vec![format!("duplicity-full.{}.vol1.difftar.gpg", format_stamp(3 * DAY))]);
    }

    proptest::proptest! {
        /// For any history and policy: every kept restore point is restorable
        /// (its full and every incremental before it kept), chains go whole,
        /// the newest chain stays, and advancing `now` never brings a deleted set back.
        #[test]
        fn plans_are_safe_and_monotonic(
            steps in proptest::collection::vec((proptest::bool::weighted(0.3), 1i64..(3 * DAY)), 1..40),
            within in proptest::option::of(0i64..(30 * DAY)),
            last in proptest::option::of(0u32..4),
            daily in proptest::option::of(0u32..6),
            weekly in proptest::option::of(0u32..4),
            monthly in proptest::option::of(0u32..3),
            advance in 0i64..(60 * DAY),
        ) {
            let mut spec = Vec::new();
            let mut t = 1_700_000_000i64;
            for (i, (full, gap)) in steps.iter().enumerate() {
                t += gap;
                spec.push((if i == 0 || *full { 'F' } else { 'I' }, t));
            }
            let col = Collection::from_files(&history(&spec));
            let pol = RetentionPolicy { keep_within: within, keep_last: last, keep_daily: daily, keep_weekly: weekly, keep_monthly: monthly, ..Default::default() };
            let now = t + DAY;
            let p1 = plan(&col, &pol, now, &counted(&col));
            for chain in &col.chains {
                let kept: Vec<bool> = chain.sets.iter().map(|&i| matches!(p1.sets[i], SetDecision::Keep(_))).collect();
                proptest::prop_assert!(kept.iter().all(|&k| k) || kept.iter().all(|&k| !k), "chain split: {:?}", kept);
            }
            let newest = col.chains.last().expect("one chain");
            proptest::prop_assert!(newest.sets.iter().all(|&i| matches!(p1.sets[i], SetDecision::Keep(_))));
            let p2 = plan(&col, &pol, now + advance, &counted(&col));
            for (i, d) in p1.sets.iter().enumerate() {
                if matches!(d, SetDecision::Delete(_)) {
                    proptest::prop_assert!(matches!(p2.sets[i], SetDecision::Delete(_)), "set {} came back", i);
                }
            }
            // Deleting the planned files leaves a collection whose kept points are all in intact chains.
            let remaining: Vec<FileInfo> = history(&spec).into_iter().filter(|f| !p1.delete_files.contains(&f.name)).collect();
            let after = Collection::from_files(&remaining);
            proptest::prop_assert!(after.orphans.is_empty() && after.incomplete.is_empty());
            proptest::prop_assert_eq!(after.chains.iter().map(|c| c.sets.len()).sum::<usize>(), p1.sets.iter().filter(|d| matches!(d, SetDecision::Keep(_))).count());
        }
    }
}
