//! The state directory: opening it (`State`), creating it (`init`), and
//! handing a user's area over to them (`chown_tree`), shared by the user
//! commands and the services.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use coffer_config::{Config, ConfigError, KeyProfile, StatePaths, UserDb};
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

pub(crate) fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// Creates `dir` with `mode` if missing; an existing directory keeps its contents.
pub(crate) fn ensure_dir(dir: &Path, mode: u32) -> Result<()> {
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

pub(crate) fn write_new(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
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

pub(crate) fn profile_name(p: KeyProfile) -> &'static str {
    match p {
        KeyProfile::Full => "full",
        KeyProfile::AppendOnly => "append-only",
        KeyProfile::ReadOnly => "read-only",
    }
}

/// Scratch directories and owner checks for the tests of this module and of
/// the user commands.
#[cfg(test)]
pub(crate) mod test_support {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    use std::path::{Path, PathBuf};

    /// A fresh directory under the system's temporary directory, removed on drop.
    pub(crate) struct Scratch(pub(crate) PathBuf);

    impl Scratch {
        pub(crate) fn new(tag: &str) -> Self {
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

    pub(crate) fn owner(p: &Path) -> u32 {
        std::fs::symlink_metadata(p).unwrap().uid()
    }

    pub(crate) fn skip_unless_root(test: &str) -> bool {
        if super::is_root() {
            return false;
        }
        eprintln!("{test}: skipped, needs root (changes owners and uids)");
        true
    }
}

#[cfg(test)]
mod tests {
    use super::test_support::{Scratch, owner, skip_unless_root};
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};

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
