//! `quota rescan` and `user show`: a user's usage counted or read from the
//! record, with limits, keys, warnings and retention in words.

use std::path::Path;

use anyhow::{Context, Result};
use coffer_config::QuotaRecord;
use coffer_quota::human_bytes;

use crate::quota_book::{count, now};
use crate::state::State;

/// `quota rescan [--user NAME]`.
pub(crate) fn rescan(dir: &Path, user: Option<&str>) -> Result<()> {
    let state = State::open(dir)?;
    let db = state.users()?;
    let names: Vec<String> = match user {
        Some(u) => {
            db.get(u).with_context(|| format!("no user named {u}; `coffer user list` shows the users"))?;
            vec![u.to_string()]
        }
        None => db.users.iter().map(|u| u.name.to_string()).collect(),
    };
    let qdir = state.paths.quota_dir();
    for name in names {
        let (bytes, files) = count(&state, &name)?;
        let mut record = QuotaRecord::load(&qdir, &name)?;
        if record.updated_at > 0 && (record.used_bytes, record.used_files) != (bytes, files) {
            println!(
                "{name}: counted {bytes} bytes in {files} files; the record said {} bytes in {} files",
                record.used_bytes, record.used_files
            );
        } else {
            println!("{name}: {bytes} bytes in {files} files");
        }
        record.used_bytes = bytes;
        record.used_files = files;
        record.updated_at = now();
        record.save(&qdir, &name)?;
        crate::rescan::request(&state, &name)?;
    }
    Ok(())
}

/// `user show NAME`.
pub(crate) fn show_user(dir: &Path, name: &str) -> Result<()> {
    let state = State::open(dir)?;
    let db = state.users()?;
    let user = db.get(name).with_context(|| format!("no user named {name}; `coffer user list` shows the users"))?;
    let record = QuotaRecord::load(&state.paths.quota_dir(), name)?;
    let (bytes, files) = if record.updated_at > 0 { (record.used_bytes, record.used_files) } else { count(&state, name)? };
    println!("user:    {name} (uid {}, gid {})", user.uid, user.gid);
    println!("data:    {}", state.data_dir().join(name).display());
    match user.quota_bytes {
        Some(limit) => {
            let pct = if limit == 0 { 100 } else { u128::from(bytes) * 100 / u128::from(limit) };
            println!("usage:   {} of {} ({pct}%)", human_bytes(bytes), human_bytes(limit));
        }
        None => println!("usage:   {} (no byte limit)", human_bytes(bytes)),
    }
    println!("files:   {files} of {}", crate::file_limits::describe(user.quota_files, crate::file_limits::default_limit(&state.data_dir())));
    for k in &user.keys {
        let fp = coffer_sshd::parse_authorized_key(&k.key).map(|p| p.fingerprint(Default::default()).to_string()).unwrap_or_default();
        let comment = k.key.split_whitespace().nth(2).unwrap_or("");
        println!("key:     {fp} {comment} ({})", crate::state::profile_name(k.profile));
    }
    if record.warnings.is_empty() {
        println!("warnings: none");
    }
    for w in &record.warnings {
        println!(
            "warning: {}% of the quota reached at {} ({} of {})",
            w.percent,
            coffer_duplicity::format_stamp(w.at),
            human_bytes(w.used_bytes),
            human_bytes(w.limit_bytes)
        );
    }
    let (policy, own) = coffer_config::RetentionFile::load(&state.paths.retention())?.effective(name);
    println!("retention: {}{}", policy.describe(), if own { "" } else { " (the default)" });
    Ok(())
}
