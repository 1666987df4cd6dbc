//! `user add|list|set|lock|unlock|keys|key-remove|remove`: changing the
//! users in users.toml, with key files read as the person who runs the
//! command and an administrator always kept.

use std::path::{Path, PathBuf};
use anyhow::{Context, Result, bail};
use coffer_config::{AuthorizedKey, ConfigError, KeyProfile, Role, UserDb, UserName};
use russh::keys::HashAlg;

use crate::state::{State, chown_tree, ensure_dir, is_root, profile_name};

/// Key files are small; a bigger input is a mistake (or /dev/zero).
const MAX_KEY_TEXT: u64 = 64 << 10;

/// Parses a `--quota`/`--files` value: `None` leaves the limit, `Some(None)` removes it.
fn limit_arg(v: Option<&str>, what: &str, parse: impl Fn(&str) -> Option<u64>) -> Result<Option<Option<u64>>> {
    match v {
        None => Ok(None),
        Some("none") => Ok(Some(None)),
        Some(s) => parse(s).map(|n| Some(Some(n))).with_context(|| format!("invalid {what} {s:?}: use a number{} or `none`", if what == "--quota" { " with an optional unit K, M, G, T (50G)" } else { "" })),
    }
}

/// What `user add` is given besides the name and key.
pub(crate) struct NewKey<'a> {
    pub(crate) profile: KeyProfile,
    pub(crate) quota: Option<&'a str>,
    pub(crate) files: Option<&'a str>,
    pub(crate) role: Option<Role>,
}

/// Reads public keys from a file, or from standard input for `-` (how keys
/// arrive over `ssh admin@box user add bob --key - < bob.pub`; `coffer
/// admin` refuses a file name).
///
/// A file is read with the rights of the person who ran the command, not
/// root's: `sudo coffer user add x --key /etc/shadow` must not read the
/// file for them.
fn read_key_text(key_file: &Path) -> Result<String> {
    use std::io::Read;
    let mut text = String::new();
    if key_file == Path::new("-") {
        std::io::stdin()
            .lock()
            .take(MAX_KEY_TEXT + 1)
            .read_to_string(&mut text)
            .context("reading public keys from standard input")?;
    } else {
        let invoker = invoking_user();
        text = read_as(invoker, key_file).with_context(|| match invoker {
            Some((uid, _)) => format!(
                "reading public key file {} as uid {uid}, who ran this command (the file must be readable by you; or pipe it: --key - < FILE)",
                key_file.display()
            ),
            None => format!("reading public key file {}", key_file.display()),
        })?;
    }
    if text.len() as u64 > MAX_KEY_TEXT {
        bail!("{} is larger than 64 KiB: that is not a list of public keys", key_name(key_file));
    }
    Ok(text)
}

/// Whom to read a key file as, when that is not simply this process: the
/// user behind `sudo` (`SUDO_UID`/`SUDO_GID`; only trusted when root runs
/// us, who could read the file anyway), or the real user of a process
/// whose effective uid is root. `None`: read with this process's rights.
fn invoking_user() -> Option<(u32, u32)> {
    use rustix::process::{geteuid, getgid, getuid};
    if !geteuid().is_root() {
        return None;
    }
    if !getuid().is_root() {
        return Some((getuid().as_raw(), getgid().as_raw()));
    }
    let env = |name| std::env::var(name).ok().and_then(|v| v.parse::<u32>().ok());
    // Without SUDO_GID, no group's rights (nogroup) rather than root's.
    env("SUDO_UID").filter(|&uid| uid != 0).map(|uid| (uid, env("SUDO_GID").unwrap_or(65534)))
}

/// Reads at most `MAX_KEY_TEXT + 1` bytes of `path` (opened as `who`). The
/// kernel checks the open against that user's credentials (every
/// directory on the way and the file), so there is no check-then-open race.
/// The credentials change only for a thread made for this (Linux keeps
/// credentials per thread; rustix's calls are the raw per-thread system
/// calls), which ends with the read: the rest of the process stays root.
fn read_as(who: Option<(u32, u32)>, path: &Path) -> std::io::Result<String> {
    use std::io::Read;
    let read = |path: &Path| {
        let mut text = String::new();
        std::fs::File::open(path)?.take(MAX_KEY_TEXT + 1).read_to_string(&mut text)?;
        Ok(text)
    };
    let Some((uid, gid)) = who else { return read(path) };
    let path = path.to_path_buf();
    std::thread::spawn(move || {
        use rustix::process::{Gid, Uid};
        let gid = Gid::from_raw(gid);
        let uid = Uid::from_raw(uid);
        rustix::thread::set_thread_groups(&[gid])?;
        rustix::thread::set_thread_res_gid(gid, gid, gid)?;
        // Leaving uid 0 for good also drops this thread's capabilities.
        rustix::thread::set_thread_res_uid(uid, uid, uid)?;
        read(&path)
    })
    .join()
    .unwrap_or_else(|_| Err(std::io::Error::other("the thread reading the key file panicked")))
}

/// How a key source is named in messages.
fn key_name(key_file: &Path) -> String {
    if key_file == Path::new("-") { "standard input".into() } else { key_file.display().to_string() }
}

/// Why line `n` of a key file is refused, without a byte of the line: the
/// file may be one the administrator could not otherwise read.
fn bad_key_line(key_file: &Path, n: usize, e: &coffer_sshd::KeyPolicyError) -> ConfigError {
    use coffer_sshd::KeyPolicyError;
    let message = match e {
        KeyPolicyError::Malformed(_) => {
            format!("line {n} is not an OpenSSH public key (expected a line like `ssh-ed25519 AAAA… comment`)")
        }
        KeyPolicyError::UnsupportedType(_) => format!("line {n}: this key type is not accepted; use ed25519, ecdsa-sha2-nistp256/384 or RSA"),
        // Names only ssh-rsa or ssh-dss: fixed text, not the file's.
        KeyPolicyError::WeakAlgorithm(_) => format!("line {n}: {e}"),
        _ => format!("line {n} is not an accepted public key; use the .pub file of an ed25519, ecdsa or RSA key"),
    };
    ConfigError::BadKey { path: PathBuf::from(key_name(key_file)), message }
}

/// The keys of an authorized_keys-style text (blank and `#` lines skipped).
fn parse_key_lines(text: &str, key_file: &Path, profile: KeyProfile) -> Result<Vec<AuthorizedKey>> {
    let mut keys = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        coffer_sshd::parse_authorized_key(line).map_err(|e| bad_key_line(key_file, n + 1, &e))?;
        keys.push(AuthorizedKey { key: line.to_string(), profile });
    }
    if keys.is_empty() {
        bail!("{} holds no public key; give the .pub file of an ed25519, ecdsa or RSA key", key_name(key_file));
    }
    Ok(keys)
}

pub(crate) fn user_add(dir: &Path, name: &str, key_file: &Path, new: NewKey<'_>) -> Result<()> {
    let NewKey { profile, quota, files, role } = new;
    let state = State::open(dir)?;
    let name = UserName::try_from(name.to_string())?;
    let quota = limit_arg(quota, "--quota", coffer_quota::parse_size)?;
    let files = limit_arg(files, "--files", |s| s.parse().ok())?;
    let keys = parse_key_lines(&read_key_text(key_file)?, key_file, profile)?;
    let mut db = state.users()?;
    let mut created = false;
    for key in keys {
        created |= db.add_key(name.clone(), key);
    }
    if let Some(u) = db.get_mut(name.as_str()) {
        if let Some(r) = role {
            u.role = r;
        }
        if let Some(q) = quota {
            u.quota_bytes = q;
        }
        if let Some(f) = files {
            u.quota_files = f;
        }
    }
    let user = db.get(name.as_str()).context("user vanished after adding")?.clone();
    let home = state.data_dir().join(name.as_str());
    let existed = home.exists();
    ensure_dir(&home, 0o700)?;
    if is_root() {
        // Data kept from an earlier user of this name is handed over whole; an
        // existing user's area (a further key) only needs its top directory.
        chown_tree(&home, user.uid, user.gid, existed && created)?;
    }
    db.save(&state.paths.users())?;
    if created {
        let admin = if user.role == Role::Admin { ", administrator" } else { "" };
        println!("coffer: added user {name} (uid {}) with {} key(s), profile {}{admin}", user.uid, user.keys.len(), profile_name(profile));
    } else {
        println!("coffer: user {name} now has {} key(s)", user.keys.len());
    }
    Ok(())
}

pub(crate) fn user_list(dir: &Path) -> Result<()> {
    let state = State::open(dir)?;
    let db = state.users()?;
    if db.users.is_empty() {
        println!("no users; add one with `coffer --state {} user add NAME --key KEY.pub`", dir.display());
        return Ok(());
    }
    let default_files = crate::file_limits::default_limit(&state.data_dir());
    println!("{:<24} {:>6} {:>10} {:>10}  KEYS", "USER", "UID", "QUOTA", "FILES");
    for u in &db.users {
        let keys: Vec<String> = u
            .keys
            .iter()
            .map(|k| {
                let comment = k.key.split_whitespace().nth(2).unwrap_or("");
                let fp = coffer_sshd::parse_authorized_key(&k.key)
                    .map(|p| p.fingerprint(HashAlg::Sha256).to_string())
                    .unwrap_or_else(|_| "invalid key".into());
                format!("{fp} {comment} ({})", profile_name(k.profile))
            })
            .collect();
        let mut name = u.name.to_string();
        if u.role == Role::Admin {
            name.push_str(" (admin)");
        }
        if u.locked {
            name.push_str(" (locked)");
        }
        let quota = u.quota_bytes.map_or("-".into(), coffer_quota::human_bytes);
        let files = match (u.quota_files, default_files) {
            (Some(n), _) => n.to_string(),
            (None, Some(n)) => format!("{n}*"),
            (None, None) => "-".into(),
        };
        println!("{:<24} {:>6} {:>10} {:>10}  {}", name, u.uid, quota, files, keys.join("; "));
    }
    if default_files.is_some() && db.users.iter().any(|u| u.quota_files.is_none()) {
        println!("* the default file limit: 1/{} of the data area's inodes", coffer_quota::DEFAULT_FILES_DIVISOR);
    }
    Ok(())
}

pub(crate) fn user_set(dir: &Path, name: &str, quota: Option<&str>, files: Option<&str>, role: Option<Role>) -> Result<()> {
    let state = State::open(dir)?;
    let quota = limit_arg(quota, "--quota", coffer_quota::parse_size)?;
    let files = limit_arg(files, "--files", |s| s.parse().ok())?;
    if quota.is_none() && files.is_none() && role.is_none() {
        bail!("nothing to change: give --quota SIZE, --files N and/or --role admin|user");
    }
    let mut db = state.users()?;
    if role == Some(Role::User) {
        keep_an_admin(&db, name, "take the administrator role from")?;
    }
    let user = db.get_mut(name).ok_or_else(|| ConfigError::NoSuchUser(name.into()))?;
    if let Some(r) = role {
        user.role = r;
        println!("coffer: {name} is now {}", if r == Role::Admin { "an administrator" } else { "a user (not an administrator)" });
    }
    if let Some(q) = quota {
        user.quota_bytes = q;
    }
    if let Some(f) = files {
        user.quota_files = f;
    }
    let (qb, qf) = (user.quota_bytes, user.quota_files);
    db.save(&state.paths.users())?;
    println!(
        "coffer: {name}: byte limit {}, file limit {}",
        qb.map_or("none".into(), coffer_quota::human_bytes),
        crate::file_limits::describe(qf, crate::file_limits::default_limit(&state.data_dir()))
    );
    Ok(())
}

/// Refuses a change that would leave no unlocked administrator with a key:
/// the box has no other way in.
fn keep_an_admin(db: &UserDb, name: &str, what: &str) -> Result<()> {
    let target = db.get(name).ok_or_else(|| ConfigError::NoSuchUser(name.into()))?;
    let usable = |u: &&coffer_config::User| u.role == Role::Admin && !u.locked && !u.keys.is_empty();
    if usable(&target) && db.users.iter().filter(usable).count() == 1 {
        bail!("refusing to {what} {name}: they are the only administrator who can log in; add another administrator first");
    }
    Ok(())
}

pub(crate) fn user_lock(dir: &Path, name: &str, locked: bool) -> Result<()> {
    let state = State::open(dir)?;
    let mut db = state.users()?;
    if locked {
        keep_an_admin(&db, name, "lock")?;
    }
    let user = db.get_mut(name).ok_or_else(|| ConfigError::NoSuchUser(name.into()))?;
    user.locked = locked;
    db.save(&state.paths.users())?;
    if locked {
        println!("coffer: locked {name}: their keys no longer log in (data and keys kept; `user unlock {name}` undoes it)");
    } else {
        println!("coffer: unlocked {name}");
    }
    Ok(())
}

fn key_fingerprint(k: &AuthorizedKey) -> String {
    coffer_sshd::parse_authorized_key(&k.key).map(|p| p.fingerprint(HashAlg::Sha256).to_string()).unwrap_or_else(|_| "invalid key".into())
}

pub(crate) fn user_keys(dir: &Path, name: &str) -> Result<()> {
    let state = State::open(dir)?;
    let db = state.users()?;
    let user = db.get(name).ok_or_else(|| ConfigError::NoSuchUser(name.into()))?;
    for k in &user.keys {
        let (kind, _) = k.identity();
        let comment = k.key.split_whitespace().nth(2).unwrap_or("");
        println!("{}  {kind}  {:<11}  {comment}", key_fingerprint(k), profile_name(k.profile));
    }
    Ok(())
}

/// Removes the key whose SHA256 fingerprint (with or without `SHA256:`) is `fingerprint`.
pub(crate) fn user_key_remove(dir: &Path, name: &str, fingerprint: &str) -> Result<()> {
    let state = State::open(dir)?;
    let mut db = state.users()?;
    let wanted = fingerprint.strip_prefix("SHA256:").unwrap_or(fingerprint);
    let user = db.get(name).ok_or_else(|| ConfigError::NoSuchUser(name.into()))?;
    let Some(pos) = user.keys.iter().position(|k| key_fingerprint(k).strip_prefix("SHA256:") == Some(wanted)) else {
        bail!("user {name} has no key with fingerprint {fingerprint}; `user keys {name}` lists them");
    };
    if user.keys.len() == 1 {
        keep_an_admin(&db, name, "remove the last key of")?;
    }
    if let Some(u) = db.get_mut(name) {
        u.keys.remove(pos);
    }
    db.save(&state.paths.users())?;
    println!("coffer: removed key {fingerprint} from {name}");
    Ok(())
}

pub(crate) fn user_remove(dir: &Path, name: &str, purge: bool) -> Result<()> {
    let state = State::open(dir)?;
    let mut db = state.users()?;
    keep_an_admin(&db, name, "remove")?;
    db.remove(name)?;
    db.save(&state.paths.users())?;
    let home = state.data_dir().join(name);
    if purge {
        if home.exists() {
            std::fs::remove_dir_all(&home).with_context(|| format!("deleting {}", home.display()))?;
        }
        println!("coffer: removed user {name} and deleted their data");
    } else {
        println!("coffer: removed user {name}; their data is kept in {} (use --purge to delete it)", home.display());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::test_support::{Scratch, skip_unless_root};
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn bad_key_lines_are_refused_without_showing_them() {
        let file = Path::new("/etc/shadow");
        for line in [
            "root:$6$Zq8secretsalt$Zq8hash:19000:0:99999:7:::",
            "Zq8secret",
            "Zq8secret Zq8more words",
            "ssh-ed25519 Zq8notbase64 comment",
            "Zq8type AAAAC3NzaC1lZDI1NTE5AAAAIH2Fsa7LLYk7CceNeHDHPNToTh+IVWxPkEd1Y1cOm6+m me",
        ] {
            let text = format!("# comment\n\n{line}\n");
            let message = format!("{:#}", parse_key_lines(&text, file, KeyProfile::Full).expect_err(line));
            assert!(!message.contains("Zq8"), "{message} shows part of {line:?}");
            assert!(message.contains("/etc/shadow") && message.contains("line 3"), "{message}");
        }
        let message = format!("{:#}", parse_key_lines("root:x:0:0\n", file, KeyProfile::Full).expect_err("not a key"));
        assert!(message.contains("is not an OpenSSH public key (expected a line like `ssh-ed25519 AAAA… comment`)"), "{message}");
        let message = format!("{:#}", parse_key_lines("# only\n", Path::new("-"), KeyProfile::Full).expect_err("empty"));
        assert!(message.starts_with("standard input holds no public key"), "{message}");
        let keys = parse_key_lines(
            "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIH2Fsa7LLYk7CceNeHDHPNToTh+IVWxPkEd1Y1cOm6+m me\n",
            file,
            KeyProfile::ReadOnly,
        )
        .expect("a key");
        assert_eq!(keys.len(), 1);
    }

    #[test]
    fn key_files_are_opened_with_the_invokers_rights() {
        if skip_unless_root("key_files_are_opened_with_the_invokers_rights") {
            return;
        }
        let scratch = Scratch::new("read-as");
        let secret = scratch.0.join("secret");
        std::fs::write(&secret, "only root reads this\n").unwrap();
        std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
        let public = scratch.0.join("public");
        std::fs::write(&public, "anyone reads this\n").unwrap();
        std::fs::set_permissions(&public, std::fs::Permissions::from_mode(0o644)).unwrap();
        let nobody = Some((65534, 65534));
        let err = read_as(nobody, &secret).expect_err("nobody cannot read a root-only file");
        assert_eq!(err.kind(), std::io::ErrorKind::PermissionDenied, "{err}");
        assert_eq!(read_as(nobody, &public).unwrap(), "anyone reads this\n");
        assert_eq!(read_as(None, &secret).unwrap(), "only root reads this\n");
        // The rest of the process is still root.
        assert!(rustix::process::geteuid().is_root() && std::fs::read(&secret).is_ok());
    }
}
