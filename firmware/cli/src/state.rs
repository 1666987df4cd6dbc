//! `init` and `user …`: creating and changing the state directory.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use coffer_config::{AuthorizedKey, Config, ConfigError, KeyProfile, Role, StatePaths, UserDb, UserName};
use russh::keys::ssh_key::LineEnding;
use russh::keys::{Algorithm, HashAlg, PrivateKey};

/// Loaded, validated state directory.
pub(crate) struct State {
    pub(crate) paths: StatePaths,
    pub(crate) config: Config,
}

impl State {
    pub(crate) fn open(dir: &Path) -> Result<Self> {
        let paths = StatePaths::new(dir);
        if !paths.config().exists() {
            return Err(ConfigError::NotInitialised(dir.to_path_buf()).into());
        }
        let config = Config::load(&paths.config())?;
        Ok(State { paths, config })
    }

    pub(crate) fn data_dir(&self) -> PathBuf {
        self.paths.data_dir(&self.config.server.data_dir)
    }

    pub(crate) fn users(&self) -> Result<UserDb> {
        Ok(UserDb::load(&self.paths.users())?)
    }
}

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// Creates `dir` with `mode` if missing; an existing directory keeps its contents.
fn ensure_dir(dir: &Path, mode: u32) -> Result<()> {
    if !dir.is_dir() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(mode)
            .create(dir)
            .with_context(|| format!("creating directory {}", dir.display()))?;
    }
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode))
        .with_context(|| format!("setting permissions of {}", dir.display()))?;
    Ok(())
}

pub(crate) fn init(dir: &Path) -> Result<()> {
    let paths = StatePaths::new(dir);
    // 0711: session workers, running as each user's uid, must pass through
    // to their own data directory; nothing here can be listed by them.
    ensure_dir(dir, 0o711)?;
    let key_path = paths.host_key();
    let key_dir = key_path.parent().context("host key path has no parent")?;
    ensure_dir(key_dir, 0o700)?;
    let key = if key_path.exists() {
        russh::keys::load_secret_key(&key_path, None).with_context(|| format!("reading host key {}", key_path.display()))?
    } else {
        let key = PrivateKey::random(&mut russh::keys::key::safe_rng(), Algorithm::Ed25519)
            .context("generating the ed25519 host key")?;
        let text = key.to_openssh(LineEnding::LF).context("encoding the host key")?;
        write_new(&key_path, text.as_bytes(), 0o600)?;
        let public = key.public_key().to_openssh().context("encoding the public host key")?;
        write_new(&key_path.with_extension("pub"), format!("{public}\n").as_bytes(), 0o644)?;
        println!("coffer: created host key {}", key_path.display());
        key
    };
    if !paths.config().exists() {
        write_new(&paths.config(), Config::default().to_toml().as_bytes(), 0o600)?;
        println!("coffer: created {}", paths.config().display());
    }
    let config = Config::load(&paths.config())?;
    if !paths.users().exists() {
        UserDb::default().save(&paths.users())?;
    }
    std::fs::set_permissions(paths.users(), std::fs::Permissions::from_mode(0o600))?;
    ensure_dir(&paths.data_dir(&config.server.data_dir), 0o711)?;
    println!("coffer: state directory {} is ready", dir.display());
    println!("coffer: host key fingerprint {}", key.public_key().fingerprint(HashAlg::Sha256));
    Ok(())
}

/// `host-keys`: each host key's SHA256 fingerprint, as `ssh` shows it.
pub(crate) fn host_keys(dir: &Path) -> Result<()> {
    let state = State::open(dir)?;
    let key = russh::keys::load_secret_key(state.paths.host_key(), None)
        .with_context(|| format!("reading host key {}", state.paths.host_key().display()))?;
    println!("{} {}", key.algorithm().as_str(), key.public_key().fingerprint(HashAlg::Sha256));
    Ok(())
}

fn write_new(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    f.write_all(bytes).and_then(|()| f.sync_all()).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

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

/// Key files are small; a bigger input is a mistake (or /dev/zero).
const MAX_KEY_TEXT: u64 = 64 << 10;

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

/// Deepest directory `chown_tree` descends to: it holds one descriptor per
/// level, and the CLI runs with the default limit of 1024.
const MAX_CHOWN_DEPTH: usize = 400;

/// Gives a user's area to the user's uid; data left from an earlier user of
/// the same name (kept by `user remove`) is handed over whole.
///
/// The walk runs as root over data a removed user's session may still be
/// changing, so it never resolves a path from the top: each directory is
/// opened relative to its parent's descriptor with `O_NOFOLLOW`, and
/// everything else is changed with `AT_SYMLINK_NOFOLLOW`. A directory
/// swapped for a symlink after it was listed is then changed itself (as a
/// link), never followed out of the area.
pub(crate) fn chown_tree(dir: &Path, uid: u32, gid: u32, recursive: bool) -> Result<()> {
    use rustix::fs::{AtFlags, Dir, FileType, Mode, OFlags};
    use rustix::io::Errno;
    use std::os::unix::ffi::OsStrExt;
    let owner = (Some(rustix::fs::Uid::from_raw(uid)), Some(rustix::fs::Gid::from_raw(gid)));
    let dir_flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let changing = |p: &Path| format!("changing the owner of {} to uid {uid}", p.display());
    let top = rustix::fs::open(dir, dir_flags, Mode::empty()).with_context(|| format!("opening {} (a directory, not a link)", dir.display()))?;
    rustix::fs::fchown(&top, owner.0, owner.1).with_context(|| changing(dir))?;
    if !recursive {
        return Ok(());
    }
    let mut stack = vec![(Dir::new(top).with_context(|| format!("listing {}", dir.display()))?, dir.to_path_buf())];
    while let Some((listing, path)) = stack.last_mut() {
        let Some(entry) = listing.read() else {
            stack.pop();
            continue;
        };
        let entry = entry.with_context(|| format!("listing {}", path.display()))?;
        let name = entry.file_name();
        if name == c"." || name == c".." {
            continue;
        }
        let parent = listing.fd().with_context(|| format!("listing {}", path.display()))?;
        let child = path.join(std::ffi::OsStr::from_bytes(name.to_bytes()));
        let opened = if matches!(entry.file_type(), FileType::Directory | FileType::Unknown) {
            match rustix::fs::openat(parent, name, dir_flags, Mode::empty()) {
                Ok(fd) => Some(fd),
                // Not a directory (any more): changed below without following it.
                Err(Errno::NOTDIR | Errno::LOOP) => None,
                // Deleted since it was listed: nothing left to hand over.
                Err(Errno::NOENT) => continue,
                Err(e) => return Err(e).with_context(|| format!("opening {}", child.display())),
            }
        } else {
            None
        };
        let Some(fd) = opened else {
            match rustix::fs::chownat(parent, name, owner.0, owner.1, AtFlags::SYMLINK_NOFOLLOW) {
                Ok(()) | Err(Errno::NOENT) => {}
                Err(e) => return Err(e).with_context(|| changing(&child)),
            }
            continue;
        };
        rustix::fs::fchown(&fd, owner.0, owner.1).with_context(|| changing(&child))?;
        if stack.len() >= MAX_CHOWN_DEPTH {
            bail!(
                "{} is more than {MAX_CHOWN_DEPTH} directories below {}; the hand-over stopped there: finish it with `chown -R {uid}:{gid} {}` (which does not follow links)",
                child.display(),
                dir.display(),
                dir.display()
            );
        }
        stack.push((Dir::new(fd).with_context(|| format!("listing {}", child.display()))?, child));
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

pub(crate) fn profile_name(p: KeyProfile) -> &'static str {
    match p {
        KeyProfile::Full => "full",
        KeyProfile::AppendOnly => "append-only",
        KeyProfile::ReadOnly => "read-only",
    }
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
    use std::os::unix::fs::MetadataExt;
    use std::sync::atomic::{AtomicBool, Ordering};

    /// A fresh directory under the system's temporary directory, removed on drop.
    struct Scratch(PathBuf);

    impl Scratch {
        fn new(tag: &str) -> Self {
            let dir = std::env::temp_dir().join(format!("coffer-state-test-{tag}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            // Other uids (the read-as test's nobody) must pass through.
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o711)).unwrap();
            Scratch(dir)
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn owner(p: &Path) -> u32 {
        std::fs::symlink_metadata(p).unwrap().uid()
    }

    fn skip_unless_root(test: &str) -> bool {
        if is_root() {
            return false;
        }
        eprintln!("{test}: skipped, needs root (changes owners and uids)");
        true
    }

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

    /// A tree inside an area with links out of it: nothing outside changes owner.
    #[test]
    fn chown_tree_never_follows_links_out_of_the_area() {
        if skip_unless_root("chown_tree_never_follows_links_out_of_the_area") {
            return;
        }
        let scratch = Scratch::new("chown-static");
        let outside = scratch.0.join("outside");
        std::fs::create_dir_all(outside.join("sub")).unwrap();
        std::fs::write(outside.join("file"), "x").unwrap();
        let area = scratch.0.join("area");
        std::fs::create_dir_all(area.join("a/b/c")).unwrap();
        std::fs::write(area.join("a/b/c/data"), "d").unwrap();
        std::os::unix::fs::symlink(&outside, area.join("dir-link")).unwrap();
        std::os::unix::fs::symlink(&outside, area.join("a/b/deep-link")).unwrap();
        std::os::unix::fs::symlink(outside.join("file"), area.join("file-link")).unwrap();
        std::os::unix::fs::symlink("../../outside", area.join("relative-link")).unwrap();
        chown_tree(&area, 4242, 4243, true).unwrap();
        for inside in ["", "a", "a/b", "a/b/c", "a/b/c/data", "dir-link", "a/b/deep-link", "file-link", "relative-link"] {
            assert_eq!(owner(&area.join(inside)), 4242, "{inside} handed over");
        }
        for p in [&outside, &outside.join("sub"), &outside.join("file")] {
            assert_eq!(owner(p), 0, "{} changed owner", p.display());
        }
        // Only the top without `recursive`.
        chown_tree(&area, 4244, 4244, false).unwrap();
        assert_eq!((owner(&area), owner(&area.join("a"))), (4244, 4242));
    }

    /// A user's session swaps directories for links to outside while the
    /// walk runs (`RENAME_EXCHANGE`, so each name is always one or the
    /// other): the walk must never change anything outside.
    #[test]
    fn a_directory_swapped_for_a_link_mid_walk_is_not_followed() {
        if skip_unless_root("a_directory_swapped_for_a_link_mid_walk_is_not_followed") {
            return;
        }
        let scratch = Scratch::new("chown-race");
        let outside = scratch.0.join("outside");
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::write(outside.join("file"), "x").unwrap();
        let area = scratch.0.join("area");
        const DIRS: usize = 64;
        for i in 0..DIRS {
            std::fs::create_dir_all(area.join(format!("d{i}"))).unwrap();
            std::fs::write(area.join(format!("d{i}/f")), "d").unwrap();
            std::os::unix::fs::symlink(&outside, area.join(format!("l{i}"))).unwrap();
        }
        let stop = AtomicBool::new(false);
        std::thread::scope(|s| {
            s.spawn(|| {
                while !stop.load(Ordering::Relaxed) {
                    for i in 0..DIRS {
                        let (d, l) = (area.join(format!("d{i}")), area.join(format!("l{i}")));
                        rustix::fs::renameat_with(rustix::fs::CWD, &d, rustix::fs::CWD, &l, rustix::fs::RenameFlags::EXCHANGE).unwrap();
                    }
                }
            });
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(3);
            let mut runs = 0;
            while std::time::Instant::now() < deadline {
                runs += 1;
                let result = chown_tree(&area, 4242, 4243, true);
                let escaped = (owner(&outside), owner(&outside.join("file")));
                if escaped != (0, 0) || result.is_err() {
                    stop.store(true, Ordering::Relaxed);
                    panic!("run {runs}: outside owned by {escaped:?} after the walk ({result:?})");
                }
            }
            stop.store(true, Ordering::Relaxed);
            assert!(runs > 10, "only {runs} walks");
        });
    }
}
