//! `retention set|show|run`: policies in retention.toml, and the effects of
//! a plan (listing a user's area and deleting through their jail, so no
//! path a user controls can send a deletion outside their area).

use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result, bail};
use coffer_config::{PolicyText, RetentionFile, UserDb};
use coffer_duplicity::{Collection, FileInfo, format_stamp, parse_stamp};
use coffer_retention::{DeleteReason, KeepReason, OtherDecision, RetentionPolicy, SetDecision, format_duration, parse_duration, plan};
use coffer_storage::{JailPath, UserJail};

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

pub(crate) fn describe(p: &RetentionPolicy) -> String {
    if p.keeps_everything() {
        return "keep everything (no rule set)".into();
    }
    let mut parts = Vec::new();
    if let Some(w) = p.keep_within {
        parts.push(format!("keep-within {}", format_duration(w)));
    }
    for (rule, n) in p.count_rules() {
        parts.push(format!("{} {n}", rule.name()));
    }
    parts.join(", ")
}

pub(crate) fn show(dir: &Path, user: Option<&str>) -> Result<()> {
    let state = State::open(dir)?;
    let file = RetentionFile::load(&state.paths.retention())?;
    let print = |who: &str, p: &RetentionPolicy, own: bool| {
        let source = if own { "" } else { " (the default)" };
        println!("{who}: {}{source}", describe(p));
        println!("  incomplete sets removed after {}", format_duration(p.incomplete_grace()));
        match p.max_age {
            Some(a) => println!("  other files removed after {}", format_duration(a)),
            None => println!("  other files are never removed"),
        }
    };
    match user {
        Some(u) => {
            let (p, own) = file.effective(u);
            print(u, &p, own);
        }
        None => {
            print("default", &file.default.to_policy().map_err(anyhow::Error::msg)?, true);
            for (u, p) in &file.user {
                print(u, &p.to_policy().map_err(anyhow::Error::msg)?, true);
            }
        }
    }
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

/// The current time, seconds since the epoch.
pub(crate) fn wall_clock() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(0))
}

/// The scheduled run while serving: every user, logged, with an event per user that lost anything.
pub(crate) fn scheduled(dir: &Path) {
    if !crate::clock::trusted() {
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
            let summary = run_user(&state.data_dir().join(&name), &name, &policy, wall_clock(), false, &mut lines)?;
            for line in String::from_utf8_lossy(&lines).lines() {
                log::info!("retention: {line}");
            }
            if summary.deleted_files > 0 {
                coffer_sshd::event::emit(
                    "retention.deleted",
                    &[
                        ("user", serde_json::json!(name)),
                        ("sets", serde_json::json!(summary.deleted_sets)),
                        ("bytes", serde_json::json!(summary.freed_bytes)),
                    ],
                );
                crate::quota::request_rescan(&state, &name)?;
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
        let area = state.data_dir().join(&u);
        let summary = run_user(&area, &u, &policy, now, dry_run, &mut out)?;
        writeln!(
            out,
            "{u}: {} set(s), {} file(s), {} bytes {}",
            summary.deleted_sets,
            summary.deleted_files,
            summary.freed_bytes,
            if dry_run { "would be deleted" } else { "deleted" }
        )?;
        if !dry_run && summary.deleted_files > 0 {
            crate::quota::request_rescan(&state, &u)?;
        }
    }
    Ok(())
}

/// Plans and (unless `dry_run`) applies retention to one user's area.
pub(crate) fn run_user(area: &Path, user: &str, policy: &RetentionPolicy, now: i64, dry_run: bool, out: &mut impl Write) -> Result<Summary> {
    let jail = UserJail::open(area).with_context(|| format!("opening the data area of {user} ({})", area.display()))?;
    let mut summary = Summary::default();
    let mut dirs = vec![JailPath::root()];
    while let Some(dir) = dirs.pop() {
        let entries = jail.read_dir(&dir).with_context(|| format!("listing {user}:{}", String::from_utf8_lossy(&dir.display())))?;
        let mut files = Vec::new();
        for e in entries {
            if e.meta.is_dir() {
                if let Ok(child) = dir.join(&e.name) {
                    dirs.push(child);
                }
            } else if e.meta.is_file()
                && let Ok(name) = String::from_utf8(e.name)
            {
                files.push(FileInfo { name, mtime: e.meta.mtime, size: e.meta.size });
            }
        }
        let col = Collection::from_files(&files);
        if col.sets.is_empty() && policy.max_age.is_none() {
            continue;
        }
        apply(&jail, user, &dir, &col, policy, now, dry_run, out, &mut summary)?;
    }
    Ok(summary)
}

#[allow(clippy::too_many_arguments)]
fn apply(
    jail: &UserJail,
    user: &str,
    dir: &JailPath,
    col: &Collection,
    policy: &RetentionPolicy,
    now: i64,
    dry_run: bool,
    out: &mut impl Write,
    summary: &mut Summary,
) -> Result<()> {
    let p = plan(col, policy, now);
    let shown = String::from_utf8_lossy(&dir.display()).into_owned();
    for (set, decision) in col.sets.iter().zip(&p.sets) {
        let what = match (set.kind, set.start) {
            (coffer_duplicity::SetKind::Full, _) => format!("full {}", format_stamp(set.end)),
            (_, Some(s)) => format!("inc {} to {}", format_stamp(s), format_stamp(set.end)),
            (_, None) => format!("inc {}", format_stamp(set.end)),
        };
        let what = if set.is_complete() { what } else { format!("incomplete {what}") };
        let verdict = match decision {
            SetDecision::Keep(r) => format!("keep: {}", keep_text(r)),
            SetDecision::Delete(r) => {
                summary.deleted_sets += 1;
                format!("delete: {}", delete_text(r))
            }
        };
        writeln!(out, "{user} {shown} {what}: {verdict}")?;
    }
    for (f, d) in col.others.iter().zip(&p.others) {
        if *d == OtherDecision::DeleteOlderThanMaxAge {
            writeln!(out, "{user} {shown} {}: delete: older than max-age", f.name)?;
        }
    }
    for name in &p.delete_files {
        let path = dir.join(name.as_bytes()).map_err(|e| anyhow::anyhow!("{name}: {e}"))?;
        let size = jail.lstat(&path).map(|m| m.size).unwrap_or(0);
        if !dry_run {
            // Stop at the first failure: the order guarantees that what is left is consistent.
            jail.remove_file(&path).with_context(|| format!("deleting {user}:{shown}/{name}; the remaining sets are intact, run retention again"))?;
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
    }
}

fn delete_text(r: &DeleteReason) -> String {
    match r {
        DeleteReason::ChainNotSelected => "no restore point of its chain is kept by any rule".into(),
        DeleteReason::IncompleteExpired => "incomplete (no manifest) and older than the grace period".into(),
    }
}
