//! `retention set|show|run|adopt`: policies in retention.toml, and the
//! effects of a plan (listing a user's area and deleting through their jail,
//! so no path a user controls can send a deletion outside their area).
//!
//! Every run first records when new sets arrived (`crate::arrivals`); sets
//! whose names do not fit their arrival are kept and not counted until
//! `retention adopt`, and a run whose deletions were caused by a burst of
//! new sets is held: it deletes nothing for that user and raises an alert.

use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result, bail};
use coffer_alert::{Alert, Severity};
use coffer_config::{PolicyText, RetentionFile, UserDb};
use coffer_duplicity::{format_stamp, parse_stamp};
use coffer_retention::{DeleteReason, KeepReason, OtherDecision, RetentionPolicy, Review, SetDecision, format_duration, parse_duration, review};
use coffer_runtime::Paths;
use coffer_runtime::event::{self, Event};

use crate::arrivals::{DirView, Observed, describe_set, observe, when};
use crate::state::State;

/// Policy fields given on the command line; `None` leaves a field as it is.
#[derive(Debug, Default, clap::Args)]
pub(crate) struct PolicyArgs {
    /// Keep every restore point newer than this (2M, 3W, 10D, 12h).
    #[arg(long)]
    keep_within: Option<String>,
    #[arg(long)]
    keep_last: Option<u32>,
    #[arg(long)]
    keep_hourly: Option<u32>,
    #[arg(long)]
    keep_daily: Option<u32>,
    #[arg(long)]
    keep_weekly: Option<u32>,
    #[arg(long)]
    keep_monthly: Option<u32>,
    #[arg(long)]
    keep_yearly: Option<u32>,
    /// Remove incomplete sets (no manifest) untouched for this long (default 1D).
    #[arg(long)]
    incomplete_grace: Option<String>,
    /// Opt-in: also remove files that are not duplicity archives when older than this.
    #[arg(long)]
    max_age: Option<String>,
    /// Start from an empty policy instead of the current one (for a user: fall back to the default).
    #[arg(long)]
    clear: bool,
}

pub(crate) fn set(dir: &Path, user: Option<&str>, args: &PolicyArgs) -> Result<()> {
    let state = State::open(dir)?;
    if let Some(u) = user {
        state.users()?.get(u).with_context(|| format!("no user named {u}; `coffer user list` shows the users"))?;
    }
    for d in [&args.keep_within, &args.incomplete_grace, &args.max_age].into_iter().flatten() {
        parse_duration(d)?;
    }
    let path = state.paths.retention();
    let mut file = RetentionFile::load(&path)?;
    let slot = match user {
        Some(u) => file.user.entry(u.to_string()).or_default(),
        None => &mut file.default,
    };
    if args.clear {
        *slot = PolicyText::default();
    }
    let merge_s = |field: &mut Option<String>, v: &Option<String>| {
        if v.is_some() {
            field.clone_from(v);
        }
    };
    let merge_n = |field: &mut Option<u32>, v: Option<u32>| {
        if v.is_some() {
            *field = v.filter(|&n| n > 0);
        }
    };
    merge_s(&mut slot.keep_within, &args.keep_within);
    merge_n(&mut slot.keep_last, args.keep_last);
    merge_n(&mut slot.keep_hourly, args.keep_hourly);
    merge_n(&mut slot.keep_daily, args.keep_daily);
    merge_n(&mut slot.keep_weekly, args.keep_weekly);
    merge_n(&mut slot.keep_monthly, args.keep_monthly);
    merge_n(&mut slot.keep_yearly, args.keep_yearly);
    merge_s(&mut slot.incomplete_grace, &args.incomplete_grace);
    merge_s(&mut slot.max_age, &args.max_age);
    if let (true, Some(u)) = (args.clear && *slot == PolicyText::default(), user) {
        file.user.remove(u);
    }
    file.save(&path)?;
    show(dir, user)
}

pub(crate) fn show(dir: &Path, user: Option<&str>) -> Result<()> {
    let state = State::open(dir)?;
    let file = RetentionFile::load(&state.paths.retention())?;
    let print = |who: &str, p: &RetentionPolicy, own: bool| {
        let source = if own { "" } else { " (the default)" };
        println!("{who}: {}{source}", p.describe());
        println!("  incomplete sets removed after {}", format_duration(p.incomplete_grace()));
        match p.max_age {
            Some(a) => println!("  other files removed after {}", format_duration(a)),
            None => println!("  other files are never removed"),
        }
    };
    let users: Vec<String> = match user {
        Some(u) => {
            state.users()?.get(u).with_context(|| format!("no user named {u}; `coffer user list` shows the users"))?;
            let (p, own) = file.effective(u);
            print(u, &p, own);
            vec![u.to_string()]
        }
        None => {
            print("default", &file.default.to_policy().map_err(anyhow::Error::msg)?, true);
            for (u, p) in &file.user {
                print(u, &p.to_policy().map_err(anyhow::Error::msg)?, true);
            }
            state.users()?.users.iter().map(|u| u.name.to_string()).collect()
        }
    };
    for u in users {
        match observe(&state, &u) {
            Ok(observed) => print_standing(&u, &observed),
            Err(e) => println!("{u}: cannot list the backup sets: {e:#}"),
        }
    }
    Ok(())
}

/// The sets of `user` that no rule counts until adopted, and an open hold.
fn print_standing(user: &str, observed: &Observed) {
    let mut listed = false;
    for d in &observed.dirs {
        for i in d.unconfirmed() {
            if !listed {
                println!("{user}: unconfirmed sets (kept, counted by no rule; `retention adopt --user {user}` confirms them):");
                listed = true;
            }
            println!("  {} {}: arrived {}", d.shown, describe_set(&d.col.sets[i]), when(d.arrivals[i].at));
        }
    }
    if observed.held {
        println!("{user}: retention is held: new sets arrived in a burst; nothing is deleted until `retention adopt --user {user}`");
    }
}

/// `retention adopt --user NAME`: confirms every unconfirmed set of the user
/// (archives migrated onto the box, back-dated tests) and accepts every set
/// that has arrived so far, which ends a hold.
pub(crate) fn adopt(dir: &Path, user: &str) -> Result<()> {
    let state = State::open(dir)?;
    state.users()?.get(user).with_context(|| format!("no user named {user}; `coffer user list` shows the users"))?;
    let seen_at = accepted_until();
    let observed = observe(&state, user)?;
    let mut adopted = Vec::new();
    for d in &observed.dirs {
        for i in d.unconfirmed() {
            let set = &d.col.sets[i];
            println!("{user}: adopted {} {} (arrived {})", d.shown, describe_set(set), when(d.arrivals[i].at));
            adopted.push(crate::arrivals::set_key(&d.dir, set));
        }
    }
    crate::arrivals::update(&state, user, |r| {
        for key in &adopted {
            if let Some(a) = r.sets.get_mut(key) {
                a.adopted = true;
            }
        }
        // Everything listed above is accepted, even a set that arrived in this very second.
        let newest = observed.dirs.iter().flat_map(|d| d.arrivals.iter().map(|a| a.at)).max().unwrap_or(seen_at);
        r.accepted_at = Some(r.accepted_at.unwrap_or(seen_at).max(seen_at).max(newest));
        r.held = false;
    })?;
    println!("{user}: {} set(s) confirmed; every set that arrived until now counts as accepted", adopted.len());
    if observed.held {
        raise_hold(dir, user, false, "An administrator adopted the sets that had arrived; retention runs again.");
    }
    event::emit(&Event::RetentionAdopted { user: user.to_string(), sets: adopted.len() as u64 });
    Ok(())
}

/// Raises (or resolves) the alert of a held run.
fn raise_hold(dir: &Path, user: &str, held: bool, body: &str) {
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

/// Parses `--now`: a duplicity time (20261127T052936Z), a date (2026-11-27) or `@SECONDS`.
pub(crate) fn parse_now(s: &str) -> Result<i64> {
    if let Some(secs) = s.strip_prefix('@') {
        return secs.parse().with_context(|| format!("--now {s}: not a number of seconds"));
    }
    if let Some(t) = parse_stamp(s) {
        return Ok(t);
    }
    let parts: Vec<&str> = s.split('-').collect();
    if let [y, m, d] = parts.as_slice()
        && let (Ok(y), Ok(m), Ok(d)) = (y.parse(), m.parse(), d.parse())
        && let Some(t) = coffer_duplicity::unix_from_civil(y, m, d, 0, 0, 0)
    {
        return Ok(t);
    }
    bail!("--now {s}: use a duplicity time such as 20261127T052936Z, a date such as 2026-11-27, or @SECONDS")
}

/// What a run or an adoption that starts looking now may accept: sets that
/// arrived before the current second. Arrivals are whole seconds, so a set
/// arriving in this second, perhaps after its directory was listed, stays new.
fn accepted_until() -> i64 {
    wall_clock() - 1
}

/// The current time, seconds since the epoch.
pub(crate) fn wall_clock() -> i64 {
    i64::try_from(coffer_runtime::clock::now()).unwrap_or(0)
}

/// The scheduled run while serving: every user, logged, with an event per
/// user that lost anything or was held.
pub(crate) fn scheduled(dir: &Path) {
    if !coffer_runtime::clock::trusted(&Paths::appliance()) {
        log::info!("retention waits: the clock has not been set from a time server yet");
        return;
    }
    let result = (|| -> Result<()> {
        let state = State::open(dir)?;
        let file = RetentionFile::load(&state.paths.retention())?;
        for u in state.users()?.users {
            let name = u.name.to_string();
            let (policy, _) = file.effective(&name);
            let mut lines = Vec::new();
            let summary = run_user(&state, &name, &policy, wall_clock(), false, &mut lines);
            for line in String::from_utf8_lossy(&lines).lines() {
                log::info!("retention: {line}");
            }
            let summary = match summary {
                Ok(s) => s,
                Err(e) => {
                    log::error!("retention of {name} failed: {e:#}");
                    continue;
                }
            };
            if summary.deleted_files > 0 {
                event::emit(&Event::RetentionDeleted { user: name.to_string(), sets: summary.deleted_sets as u64, bytes: summary.freed_bytes });
                crate::rescan::request(&state, &name)?;
            }
        }
        Ok(())
    })();
    if let Err(e) = result {
        log::error!("scheduled retention failed: {e:#}");
    }
}

/// What one run did.
#[derive(Debug, Default)]
pub(crate) struct Summary {
    pub(crate) deleted_sets: usize,
    pub(crate) deleted_files: usize,
    pub(crate) freed_bytes: u64,
    /// Nothing was deleted: new sets displaced others in a burst.
    pub(crate) held: bool,
}

pub(crate) fn run(dir: &Path, user: Option<&str>, dry_run: bool, now: i64) -> Result<()> {
    let state = State::open(dir)?;
    let db: UserDb = state.users()?;
    let file = RetentionFile::load(&state.paths.retention())?;
    let users: Vec<String> = match user {
        Some(u) => {
            db.get(u).with_context(|| format!("no user named {u}"))?;
            vec![u.to_string()]
        }
        None => db.users.iter().map(|u| u.name.to_string()).collect(),
    };
    let mut out = std::io::stdout().lock();
    writeln!(out, "retention at {}{}", format_stamp(now), if dry_run { " (dry run: nothing is deleted)" } else { "" })?;
    for u in users {
        let (policy, _) = file.effective(&u);
        let summary = run_user(&state, &u, &policy, now, dry_run, &mut out)?;
        if summary.held {
            writeln!(out, "{u}: held: nothing {} deleted; see the lines above, then `retention adopt --user {u}` if the new sets are genuine", if dry_run { "would be" } else { "was" })?;
            continue;
        }
        writeln!(
            out,
            "{u}: {} set(s), {} file(s), {} bytes {}",
            summary.deleted_sets,
            summary.deleted_files,
            summary.freed_bytes,
            if dry_run { "would be deleted" } else { "deleted" }
        )?;
        if !dry_run && summary.deleted_files > 0 {
            crate::rescan::request(&state, &u)?;
        }
    }
    Ok(())
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
