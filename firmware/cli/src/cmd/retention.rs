//! `retention set|show|run|adopt`: policies in retention.toml, a run on
//! demand, and adopting sets. The run itself (shared with the scheduled
//! run of `serve`) is in `crate::retention_run`.
//!
//! Every run first records when new sets arrived (`crate::arrivals`); sets
//! whose names do not fit their arrival are kept and not counted until
//! `retention adopt`, and a run whose deletions were caused by a burst of
//! new sets is held: it deletes nothing for that user and raises an alert.

use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result, bail};
use coffer_config::{PolicyText, RetentionFile, UserDb};
use coffer_duplicity::{format_stamp, parse_stamp};
use coffer_retention::{RetentionPolicy, format_duration, parse_duration};
use coffer_runtime::event::{self, Event};

use crate::arrivals::{Observed, describe_set, observe, when};
use crate::retention_run::{accepted_until, raise_hold, run_user};
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
