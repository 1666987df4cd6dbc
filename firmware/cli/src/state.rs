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

/// Reads public keys from a file, or from standard input for `-` (how keys
/// arrive over `ssh admin@box user add bob --key - < bob.pub`).
fn read_key_text(key_file: &Path) -> Result<String> {
    use std::io::Read;
    // Key files are small; a bigger input is a mistake (or /dev/zero).
    const MAX: u64 = 64 << 10;
    let mut text = String::new();
    if key_file == Path::new("-") {
        std::io::stdin().lock().take(MAX + 1).read_to_string(&mut text).context("reading public keys from standard input")?;
    } else {
        let f = std::fs::File::open(key_file).with_context(|| format!("reading public key file {}", key_file.display()))?;
        f.take(MAX + 1).read_to_string(&mut text).with_context(|| format!("reading public key file {}", key_file.display()))?;
    }
    if text.len() as u64 > MAX {
        bail!("{} is larger than 64 KiB: that is not a list of public keys", key_file.display());
    }
    Ok(text)
}

pub(crate) fn user_add(dir: &Path, name: &str, key_file: &Path, new: NewKey<'_>) -> Result<()> {
    let NewKey { profile, quota, files, role } = new;
    let state = State::open(dir)?;
    let name = UserName::try_from(name.to_string())?;
    let quota = limit_arg(quota, "--quota", coffer_quota::parse_size)?;
    let files = limit_arg(files, "--files", |s| s.parse().ok())?;
    let text = read_key_text(key_file)?;
    let mut keys = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        coffer_sshd::parse_authorized_key(line)
            .map_err(|e| ConfigError::BadKey { path: key_file.to_path_buf(), message: format!("line {}: {e}", n + 1) })?;
        keys.push(AuthorizedKey { key: line.to_string(), profile });
    }
    if keys.is_empty() {
        bail!("{} holds no public key; give the .pub file of an ed25519, ecdsa or RSA key", key_file.display());
    }
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

/// Gives a user's area to the user's uid; data left from an earlier user of
/// the same name (kept by `user remove`) is handed over whole.
pub(crate) fn chown_tree(dir: &Path, uid: u32, gid: u32, recursive: bool) -> Result<()> {
    let owner = (Some(rustix::fs::Uid::from_raw(uid)), Some(rustix::fs::Gid::from_raw(gid)));
    rustix::fs::chown(dir, owner.0, owner.1).with_context(|| format!("changing owner of {}", dir.display()))?;
    if recursive {
        for entry in std::fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))? {
            let entry = entry?;
            let path = entry.path();
            let ft = entry.file_type()?;
            if ft.is_dir() {
                chown_tree(&path, uid, gid, true)?;
            } else {
                rustix::fs::chownat(rustix::fs::CWD, &path, owner.0, owner.1, rustix::fs::AtFlags::SYMLINK_NOFOLLOW)
                    .with_context(|| format!("changing owner of {}", path.display()))?;
            }
        }
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
    let default_files = crate::quota::default_file_limit(&state);
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
        crate::quota::describe_file_limit(qf, crate::quota::default_file_limit(&state))
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
