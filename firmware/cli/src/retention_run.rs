//! Running retention for one user: the plan reviewed against when sets
//! arrived, reported line by line, and applied by listing the user's area
//! and deleting through their jail (so no path a user controls can send a
//! deletion outside their area). Shared by `retention run` and the
//! scheduled run of `serve`.

use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result};
use coffer_alert::{Alert, Severity};
use coffer_duplicity::format_stamp;
use coffer_retention::{DeleteReason, KeepReason, OtherDecision, RetentionPolicy, Review, SetDecision, format_duration, review};
use coffer_runtime::Paths;
use coffer_runtime::event::{self, Event};

use crate::arrivals::{DirView, Observed, describe_set, observe};
use crate::state::State;

/// What one run did.
#[derive(Debug, Default)]
pub(crate) struct Summary {
    pub(crate) deleted_sets: usize,
    pub(crate) deleted_files: usize,
    pub(crate) freed_bytes: u64,
    /// Nothing was deleted: new sets displaced others in a burst.
    pub(crate) held: bool,
}

/// Plans and (unless `dry_run`) applies retention to one user's area: every
/// directory is reviewed first, and if any would lose sets to a burst of new
/// arrivals nothing of the user's is deleted and an alert is raised.
pub(crate) fn run_user(state: &State, user: &str, policy: &RetentionPolicy, now: i64, dry_run: bool, out: &mut impl Write) -> Result<Summary> {
    let seen_at = accepted_until();
    let observed = observe(state, user)?;
    let mut summary = Summary::default();
    let mut reviews = Vec::new();
    for d in &observed.dirs {
        if d.col.sets.is_empty() && policy.max_age.is_none() {
            continue;
        }
        let r = review(&d.col, policy, now, &d.arrivals, observed.accepted_at);
        report(user, d, &r, out, &mut summary)?;
        reviews.push((d, r));
    }
    summary.held = reviews.iter().any(|(_, r)| r.holds());
    if summary.held {
        let mut body = format!(
            "{} new backup set(s) of {user} arrived in a burst (more than {} within {}); until they are adopted they \
             count for nothing and nothing of {user}'s is deleted. If the new sets are not genuine, a key of {user} may be compromised: \
             lock or remove it, delete the sets with a full key, then run retention again. If they are genuine, \
             run `coffer retention adopt --user {user}`.\nWould have been deleted:\n",
            reviews.iter().map(|(_, r)| r.new_points.len()).sum::<usize>(),
            coffer_retention::BURST_POINTS,
            format_duration(coffer_retention::BURST_WINDOW),
        );
        let mut would = Vec::new();
        for (d, r) in reviews.iter().filter(|(_, r)| r.holds()) {
            for &i in &r.displaced {
                let what = format!("{} {}", d.shown, describe_set(&d.col.sets[i]));
                writeln!(out, "{user} {what}: held: displaced by {} new set(s) that arrived in a burst", r.new_points.len())?;
                body.push_str(&format!("  {what}\n"));
                would.push(what);
            }
        }
        if !dry_run {
            event::emit(&Event::RetentionHeld { user: user.to_string(), would_delete: would });
            if !observed.held {
                raise_hold(state.paths.root(), user, true, &body);
            }
            crate::arrivals::update(state, user, |r| r.held = true)?;
        }
        summary.deleted_sets = 0;
        return Ok(summary);
    }
    for (d, r) in &reviews {
        delete(&observed, user, d, r, dry_run, &mut summary)?;
    }
    if !dry_run {
        crate::arrivals::update(state, user, |r| {
            r.accepted_at = Some(r.accepted_at.map_or(seen_at, |t| t.max(seen_at)));
            r.held = false;
        })?;
        if observed.held {
            raise_hold(state.paths.root(), user, false, "No burst of new sets pushes older ones out any more; retention runs again.");
        }
    }
    Ok(summary)
}

/// Prints every decision of one directory.
fn report(user: &str, d: &DirView, r: &Review, out: &mut impl Write, summary: &mut Summary) -> Result<()> {
    for (i, (set, decision)) in d.col.sets.iter().zip(&r.plan.sets).enumerate() {
        let verdict = match decision {
            SetDecision::Keep(KeepReason::Unconfirmed) => format!(
                "keep: unconfirmed (arrived {}; counted by no rule until `retention adopt --user {user}`)",
                crate::arrivals::when(d.arrivals.get(i).map_or(0, |a| a.at))
            ),
            SetDecision::Keep(k) => format!("keep: {}", keep_text(k)),
            SetDecision::Delete(k) => {
                summary.deleted_sets += 1;
                format!("delete: {}", delete_text(k))
            }
        };
        writeln!(out, "{user} {} {}: {verdict}", d.shown, describe_set(set))?;
    }
    for (f, o) in d.col.others.iter().zip(&r.plan.others) {
        if *o == OtherDecision::DeleteOlderThanMaxAge {
            writeln!(out, "{user} {} {}: delete: older than max-age", d.shown, f.name)?;
        }
    }
    Ok(())
}

/// Deletes one directory's planned files through the jail.
fn delete(observed: &Observed, user: &str, d: &DirView, r: &Review, dry_run: bool, summary: &mut Summary) -> Result<()> {
    for name in &r.plan.delete_files {
        let path = d.dir.join(name.as_bytes()).map_err(|e| anyhow::anyhow!("{user}:{}/{name}: {e}", d.shown))?;
        let size = observed.jail.lstat(&path).map(|m| m.size).unwrap_or(0);
        if !dry_run {
            // Stop at the first failure: the order guarantees that what is left is consistent.
            observed
                .jail
                .remove_file(&path)
                .with_context(|| format!("deleting {user}:{}/{name}; the remaining sets are intact, run retention again", d.shown))?;
        }
        summary.deleted_files += 1;
        summary.freed_bytes += size;
    }
    Ok(())
}

fn keep_text(r: &KeepReason) -> String {
    match r {
        KeepReason::Selected(rule) => rule.name().to_string(),
        KeepReason::NeededBy(t) => format!("needed by the restore point {}", format_stamp(*t)),
        KeepReason::SameChain => "part of a kept chain (chains are deleted whole)".into(),
        KeepReason::NewestChain => "newest chain".into(),
        KeepReason::NoPolicy => "no retention rule set".into(),
        KeepReason::Orphan => "orphaned incremental (its chain is missing); left alone".into(),
        KeepReason::IncompleteRecent => "incomplete, still within the grace period".into(),
        KeepReason::Unconfirmed => "unconfirmed (its name does not fit when it arrived)".into(),
        KeepReason::FollowsUnconfirmed => "follows an unconfirmed set in its chain; counted by no rule until it is adopted".into(),
    }
}

fn delete_text(r: &DeleteReason) -> String {
    match r {
        DeleteReason::ChainNotSelected => "no restore point of its chain is kept by any rule".into(),
        DeleteReason::IncompleteExpired => "incomplete (no manifest) and older than the grace period".into(),
    }
}

/// Raises (or resolves) the alert of a held run.
pub(crate) fn raise_hold(dir: &Path, user: &str, held: bool, body: &str) {
    coffer_runtime::alert::raise(
        &Paths::appliance().with_state(dir),
        &Alert {
            key: format!("retention:{user}:held"),
            severity: Severity::Critical,
            title: if held {
                format!("retention of {user} is held: a burst of new backup sets would push history out")
            } else {
                format!("retention of {user} runs again")
            },
            body: body.to_string(),
            resolved: !held,
            time: coffer_runtime::clock::now(),
        },
    );
}

/// What a run or an adoption that starts looking now may accept: sets that
/// arrived before the current second. Arrivals are whole seconds, so a set
/// arriving in this second, perhaps after its directory was listed, stays new.
pub(crate) fn accepted_until() -> i64 {
    wall_clock() - 1
}

/// The current time, seconds since the epoch.
pub(crate) fn wall_clock() -> i64 {
    i64::try_from(coffer_runtime::clock::now()).unwrap_or(0)
}
