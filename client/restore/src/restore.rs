//! Writing the chain's last state under a destination, safely against a
//! hostile archive: every file is made relative to a directory descriptor
//! opened from the destination one component at a time with `O_NOFOLLOW`,
//! so neither `..` (refused by the tar reader) nor a symlink restored
//! earlier (`a` -> `/etc`, then `a/passwd`) can lead a write outside it.
//! Non-directories are made under a temporary name in their directory and
//! renamed into place once their data and metadata are set; directories get
//! their mode and mtime when the walk leaves them, after their contents.
//!
//! Hard links: an entry carrying [`HARDLINK_PAX_KEY`] is linked to the path
//! it names when that path was restored in this run as a regular file (its
//! device and inode recorded then and checked again before linking);
//! otherwise its own data is written, as stock duplicity would.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::io::{self, BufWriter, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use coffer_archive::{FileType, HARDLINK_PAX_KEY, Index, Meta};
use rustix::fs::{AtFlags, FileType as NodeType, Gid, Mode, OFlags, Timespec, Timestamps, UTIME_NOW, Uid};
use rustix::io::Errno;

use crate::chain::{Chain, VolumeSource};
use crate::error::{EntryError, RestoreError};
use crate::merge::{self, Content, Limits, Scratch, Sink, copy_limited, relative_to};
use crate::stream::{PathProblem, VolumeProblem};

/// The deepest path restored (the same bound as the appliance's own
/// descriptor walks): each level holds one open directory.
pub const MAX_DEPTH: usize = 400;

/// What a restore did and what it could not do.
#[derive(Debug, Default)]
pub struct RestoreReport {
    /// Regular files written with their data.
    pub files: u64,
    /// Regular files made as hard links to an earlier path.
    pub hard_links: u64,
    pub directories: u64,
    /// Symlinks, FIFOs and devices.
    pub others: u64,
    /// Volumes that could not be read (whole or in part); the paths in
    /// their ranges that no other set held are missing.
    pub volumes: Vec<VolumeProblem>,
    /// Paths that could not be restored, with the reason.
    pub paths: Vec<PathProblem>,
    /// Paths restored from an older set although a lost volume of a later
    /// set covered them: they may be out of date.
    pub uncertain: Vec<Index>,
}

impl RestoreReport {
    /// True when everything the chain holds was restored.
    pub fn is_complete(&self) -> bool {
        self.volumes.is_empty() && self.paths.is_empty() && self.uncertain.is_empty()
    }
}

/// Restores the state at the end of `chain` to `dest`: the whole tree, or
/// with `selection` only that path (a file or a subtree), written at
/// `dest` itself as duplicity's `--file-to-restore` does. `dest` may exist
/// as a directory (its entries are replaced); its parent must exist.
/// Ownership is restored (numerically) only when running as root.
pub fn restore(
    chain: &Chain,
    source: &mut dyn VolumeSource,
    dest: &Path,
    selection: Option<&Index>,
    limits: &Limits,
) -> Result<RestoreReport, RestoreError> {
    let destination = |source: io::Error| RestoreError::Destination { path: dest.display().to_string(), source };
    let name = dest.file_name().ok_or_else(|| destination(io::Error::from(io::ErrorKind::InvalidInput)))?;
    let parent = match dest.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let outer = rustix::fs::open(parent, OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())
        .map_err(|e| destination(e.into()))?;
    let mut restorer = Restorer {
        outer,
        dest_name: name.as_bytes().to_vec(),
        dirs: Vec::new(),
        root: rustix::process::geteuid().is_root(),
        selection: selection.cloned(),
        restored: HashMap::new(),
        temp_counter: 0,
        max_file_size: limits.max_file_size,
        report: RestoreReport::default(),
    };
    let damage = merge::run(chain, source, selection, limits, &mut restorer);
    while !restorer.dirs.is_empty() {
        restorer.pop_dir();
    }
    let mut report = restorer.report;
    report.volumes = damage.volumes;
    report.paths.extend(damage.names);
    Ok(report)
}

/// An open directory on the current path, with the metadata to give it
/// when the walk leaves it (none for one made only to hold its contents).
struct Frame {
    index: Index,
    fd: OwnedFd,
    meta: Option<Meta>,
}

struct Restorer {
    /// The destination's parent directory.
    outer: OwnedFd,
    dest_name: Vec<u8>,
    /// `dirs[k]` is the directory of the first `k` components; `dirs[0]` the destination.
    dirs: Vec<Frame>,
    root: bool,
    selection: Option<Index>,
    /// Regular files restored in this run: hash of the path -> (device, inode).
    restored: HashMap<u64, (u64, u64)>,
    temp_counter: u64,
    max_file_size: u64,
    report: RestoreReport,
}

fn path_key(index: &Index) -> u64 {
    let mut hasher = DefaultHasher::new();
    index.as_bytes().hash(&mut hasher);
    hasher.finish()
}

fn mode(meta: &Meta) -> Mode {
    Mode::from_raw_mode(meta.mode & 0o7777)
}

fn times(meta: &Meta) -> Timestamps {
    // duplicity sets the access time to now and the mtime from the archive.
    Timestamps {
        last_access: Timespec { tv_sec: 0, tv_nsec: UTIME_NOW },
        last_modification: Timespec { tv_sec: i64::try_from(meta.mtime).unwrap_or(i64::MAX), tv_nsec: 0 },
    }
}

fn owner(meta: &Meta) -> (Option<Uid>, Option<Gid>) {
    (u32::try_from(meta.uid).ok().map(Uid::from_raw), u32::try_from(meta.gid).ok().map(Gid::from_raw))
}

/// Gives an open file or directory its owner (as root), mode and mtime.
fn apply_fd(fd: BorrowedFd<'_>, meta: &Meta, root: bool) -> Result<(), EntryError> {
    if root {
        let (uid, gid) = owner(meta);
        rustix::fs::fchown(fd, uid, gid).map_err(|e| EntryError::Io { what: "setting the owner", source: e.into() })?;
    }
    // After chown, which clears set-id bits.
    rustix::fs::fchmod(fd, mode(meta)).map_err(|e| EntryError::Io { what: "setting the mode", source: e.into() })?;
    rustix::fs::futimens(fd, &times(meta)).map_err(|e| EntryError::Io { what: "setting the mtime", source: e.into() })
}

fn io_err(what: &'static str) -> impl FnOnce(Errno) -> EntryError {
    move |e| EntryError::Io { what, source: e.into() }
}

/// Opens directory `name` in `parent` without following a link, making it
/// (with `mode`) if it does not exist.
fn open_dir(parent: BorrowedFd<'_>, name: &[u8], mode: Mode) -> Result<OwnedFd, EntryError> {
    match rustix::fs::mkdirat(parent, name, mode) {
        Ok(()) | Err(Errno::EXIST) => {}
        Err(e) => return Err(io_err("making the directory")(e)),
    }
    rustix::fs::openat(
        parent,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(io_err("opening the directory (not a directory, or a link)"))
}

/// The components of a path to write, checked.
fn components(index: &Index) -> Result<Vec<&[u8]>, EntryError> {
    let parts: Vec<&[u8]> = index.components().collect();
    if parts.iter().any(|c| c.is_empty() || *c == b".") {
        return Err(EntryError::BadName);
    }
    if parts.len() > MAX_DEPTH {
        return Err(EntryError::TooDeep { limit: MAX_DEPTH });
    }
    Ok(parts)
}

impl Restorer {
    /// Leaves the innermost open directory, giving it its metadata.
    fn pop_dir(&mut self) {
        let Some(frame) = self.dirs.pop() else { return };
        if let Some(meta) = &frame.meta
            && let Err(error) = apply_fd(frame.fd.as_fd(), meta, self.root)
        {
            self.report.paths.push(PathProblem { index: frame.index, error });
        }
    }

    /// Opens the destination as the root directory if it is not open yet.
    fn ensure_root(&mut self) -> Result<(), EntryError> {
        if self.dirs.is_empty() {
            let fd = open_dir(self.outer.as_fd(), &self.dest_name, Mode::from_raw_mode(0o755))?;
            self.dirs.push(Frame { index: Index::root(), fd, meta: None });
        }
        Ok(())
    }

    /// The directory `index` goes in and its name there, opening (or
    /// making) the directories between and leaving those not on its path.
    fn place(&mut self, index: &Index) -> Result<(BorrowedFd<'_>, Vec<u8>), EntryError> {
        if index.is_root() {
            return Ok((self.outer.as_fd(), self.dest_name.clone()));
        }
        let parts = components(index)?;
        let n = parts.len();
        self.ensure_root()?;
        while self.dirs.len() > 1
            && (self.dirs.len() > n || self.dirs.last().is_some_and(|top| !index.starts_with(&top.index)))
        {
            self.pop_dir();
        }
        while self.dirs.len() < n {
            let k = self.dirs.len();
            let fd = open_dir(self.dirs[k - 1].fd.as_fd(), parts[k - 1], Mode::from_raw_mode(0o755))?;
            self.dirs.push(Frame { index: Index::from_components(&parts[..k]), fd, meta: None });
        }
        let name = parts[n - 1].to_vec();
        Ok((self.dirs[n - 1].fd.as_fd(), name))
    }

    /// Makes something under a fresh temporary name in `dir` with `make`,
    /// retrying the name while it exists.
    fn temporary<T>(
        counter: &mut u64,
        dir: BorrowedFd<'_>,
        mut make: impl FnMut(BorrowedFd<'_>, &[u8]) -> rustix::io::Result<T>,
    ) -> Result<(T, Vec<u8>), EntryError> {
        loop {
            *counter += 1;
            let name = format!(".coffer-restore.{}.{}", std::process::id(), counter).into_bytes();
            match make(dir, &name) {
                Ok(made) => return Ok((made, name)),
                Err(Errno::EXIST) if !counter.is_multiple_of(1000) => {}
                Err(e) => return Err(io_err("making a temporary file")(e)),
            }
        }
    }

    /// Renames the temporary `tmp` in `dir` onto `name`, removing it on failure.
    fn commit(dir: BorrowedFd<'_>, tmp: &[u8], name: &[u8]) -> Result<(), EntryError> {
        rustix::fs::renameat(dir, tmp, dir, name).map_err(|e| {
            let _ = rustix::fs::unlinkat(dir, tmp, AtFlags::empty());
            io_err("renaming into place")(e)
        })
    }

    /// Links `index` to the earlier path its hard-link key names, if that
    /// path is the regular file this run restored there.
    fn link(&mut self, index: &Index, meta: &Meta) -> Result<bool, EntryError> {
        let Some((_, value)) = meta.extra_pax.iter().find(|(k, _)| k == HARDLINK_PAX_KEY) else {
            return Ok(false);
        };
        let Some(target) = relative_to(&Index::from_bytes(value), self.selection.as_ref()) else {
            return Ok(false);
        };
        if target.is_root() || target == *index {
            return Ok(false);
        }
        let Some(&(dev, ino)) = self.restored.get(&path_key(&target)) else { return Ok(false) };
        let parts = components(&target)?;
        self.ensure_root()?;
        let mut dir: Option<OwnedFd> = None;
        for part in &parts[..parts.len() - 1] {
            let from = dir.as_ref().map_or(self.dirs[0].fd.as_fd(), |d| d.as_fd());
            let flags = OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
            dir =
                Some(rustix::fs::openat(from, *part, flags, Mode::empty()).map_err(io_err("opening the link target"))?);
        }
        let last = parts[parts.len() - 1];
        let target_dir = match dir {
            Some(dir) => dir,
            None => rustix::fs::openat(
                self.dirs[0].fd.as_fd(),
                ".",
                OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .map_err(io_err("opening the destination"))?,
        };
        let stat = rustix::fs::statat(&target_dir, last, AtFlags::SYMLINK_NOFOLLOW)
            .map_err(io_err("looking at the link target"))?;
        if NodeType::from_raw_mode(stat.st_mode) != NodeType::RegularFile || stat.st_dev != dev || stat.st_ino != ino {
            return Ok(false);
        }
        let mut counter = self.temp_counter;
        let (dir, name) = self.place(index)?;
        let made = Self::temporary(&mut counter, dir, |d, tmp| {
            rustix::fs::linkat(&target_dir, last, d, tmp, AtFlags::empty())
        });
        let result = made.and_then(|((), tmp)| Self::commit(dir, &tmp, &name));
        self.temp_counter = counter;
        result.map(|()| true)
    }
}

impl Sink for Restorer {
    fn shortcut(&mut self, index: &Index, meta: &Meta) -> bool {
        match self.link(index, meta) {
            Ok(true) => {
                self.report.hard_links += 1;
                true
            }
            // Whatever kept the link from being made, the data makes a copy.
            Ok(false) | Err(_) => false,
        }
    }

    fn scratch(&mut self, index: &Index) -> Result<Scratch, EntryError> {
        let mut counter = self.temp_counter;
        let (dir, _) = self.place(index)?;
        let flags = OFlags::RDWR | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let made =
            Self::temporary(&mut counter, dir, |d, tmp| rustix::fs::openat(d, tmp, flags, Mode::from_raw_mode(0o600)));
        let scratch = made.and_then(|(fd, name)| match rustix::io::fcntl_dupfd_cloexec(dir, 0) {
            Ok(held) => Ok(Scratch { file: fd.into(), place: Some((held, name)) }),
            Err(e) => {
                let _ = rustix::fs::unlinkat(dir, name.as_slice(), AtFlags::empty());
                Err(io_err("holding the directory")(e))
            }
        });
        self.temp_counter = counter;
        scratch
    }

    fn discard(&mut self, scratch: Scratch) {
        if let Some((dir, name)) = scratch.place {
            let _ = rustix::fs::unlinkat(&dir, name.as_slice(), AtFlags::empty());
        }
    }

    fn file(&mut self, index: &Index, meta: &Meta, content: Content<'_>) -> Result<(), EntryError> {
        let scratch = match content {
            Content::Patched(scratch) => scratch,
            Content::Stream(reader) => {
                let mut scratch = self.scratch(index)?;
                let mut writer = BufWriter::new(&mut scratch.file);
                let written = copy_limited(reader, &mut writer, self.max_file_size)
                    .and_then(|_| writer.flush().map_err(EntryError::io("writing the file")));
                drop(writer);
                if let Err(e) = written {
                    self.discard(scratch);
                    return Err(e);
                }
                scratch
            }
        };
        let root = self.root;
        let done = apply_fd(scratch.file.as_fd(), meta, root)
            .and_then(|()| rustix::fs::fstat(&scratch.file).map_err(io_err("looking at the restored file")));
        let stat = match done {
            Ok(stat) => stat,
            Err(e) => {
                self.discard(scratch);
                return Err(e);
            }
        };
        let name = match index.components().last() {
            Some(last) => last.to_vec(),
            None => self.dest_name.clone(),
        };
        let Some((dir, tmp)) = &scratch.place else { return Err(EntryError::BadName) };
        Self::commit(dir.as_fd(), tmp, &name)?;
        self.restored.insert(path_key(index), (stat.st_dev, stat.st_ino));
        self.report.files += 1;
        Ok(())
    }

    fn other(&mut self, index: &Index, meta: &Meta) -> Result<(), EntryError> {
        let root = self.root;
        if meta.file_type == FileType::Directory {
            let fd = if index.is_root() {
                while !self.dirs.is_empty() {
                    self.pop_dir();
                }
                open_dir(self.outer.as_fd(), &self.dest_name, Mode::from_raw_mode(0o700))?
            } else {
                let (dir, name) = self.place(index)?;
                open_dir(dir, &name, Mode::from_raw_mode(0o700))?
            };
            self.dirs.push(Frame { index: index.clone(), fd, meta: Some(meta.clone()) });
            self.report.directories += 1;
            return Ok(());
        }
        let device = |kind, major, minor| (kind, rustix::fs::makedev(major, minor));
        let node = match &meta.file_type {
            FileType::Fifo => Some((NodeType::Fifo, 0)),
            FileType::CharDevice { major, minor } => Some(device(NodeType::CharacterDevice, *major, *minor)),
            FileType::BlockDevice { major, minor } => Some(device(NodeType::BlockDevice, *major, *minor)),
            _ => None,
        };
        if node.is_some_and(|(kind, _)| kind != NodeType::Fifo) && !root {
            return Err(EntryError::DeviceNotRoot);
        }
        let mut counter = self.temp_counter;
        let (dir, name) = self.place(index)?;
        let made = match (&meta.file_type, node) {
            (FileType::Symlink(target), _) => {
                Self::temporary(&mut counter, dir, |d, tmp| rustix::fs::symlinkat(OsStr::from_bytes(target), d, tmp))
            }
            (_, Some((kind, dev))) => Self::temporary(&mut counter, dir, |d, tmp| {
                rustix::fs::mknodat(d, tmp, kind, Mode::from_raw_mode(0o600), dev)
            }),
            _ => return Err(EntryError::BadName),
        };
        let ((), tmp) = made?;
        let attributes = (|| {
            if matches!(meta.file_type, FileType::Symlink(_)) {
                // duplicity gives a symlink nothing but, as root, its owner.
                if root {
                    let (uid, gid) = owner(meta);
                    rustix::fs::chownat(dir, tmp.as_slice(), uid, gid, AtFlags::SYMLINK_NOFOLLOW)
                        .map_err(io_err("setting the owner"))?;
                }
                return Ok(());
            }
            // A node just made under a fresh name in a directory held open:
            // nothing else can have put a link there.
            if root {
                let (uid, gid) = owner(meta);
                rustix::fs::chownat(dir, tmp.as_slice(), uid, gid, AtFlags::SYMLINK_NOFOLLOW)
                    .map_err(io_err("setting the owner"))?;
            }
            rustix::fs::chmodat(dir, tmp.as_slice(), mode(meta), AtFlags::empty())
                .map_err(io_err("setting the mode"))?;
            rustix::fs::utimensat(dir, tmp.as_slice(), &times(meta), AtFlags::SYMLINK_NOFOLLOW)
                .map_err(io_err("setting the mtime"))
        })();
        let result = attributes.and_then(|()| Self::commit(dir, &tmp, &name));
        if result.is_err() {
            let _ = rustix::fs::unlinkat(dir, tmp.as_slice(), AtFlags::empty());
        }
        self.temp_counter = counter;
        result?;
        self.report.others += 1;
        Ok(())
    }

    fn failed(&mut self, index: &Index, error: EntryError) {
        self.report.paths.push(PathProblem { index: index.clone(), error });
    }

    fn uncertain(&mut self, index: &Index) {
        self.report.uncertain.push(index.clone());
    }
}
