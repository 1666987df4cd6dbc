//! [`UserJail`]: every file operation of a session, confined to one directory.

use std::fs::File;
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, FileType, Mode, OFlags, RenameFlags, ResolveFlags, Timespec, Timestamps, CWD};

use crate::path::{JailPath, UPLOAD_PREFIX};
use crate::upload::Upload;

/// The metadata the endpoint reports for a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Meta {
    pub mode: u32,
    pub size: u64,
    pub uid: u32,
    pub gid: u32,
    pub nlink: u64,
    pub atime: i64,
    pub mtime: i64,
    /// Status change time: set by the kernel, never by a client (unlike
    /// mtime and atime), so retention can tell when a file arrived.
    pub ctime: i64,
    /// Identity of the inode, (device, inode number).
    pub inode: (u64, u64),
}

impl Meta {
    pub fn is_dir(&self) -> bool {
        self.mode & 0o170_000 == 0o040_000
    }

    pub fn is_file(&self) -> bool {
        self.mode & 0o170_000 == 0o100_000
    }

    pub fn is_symlink(&self) -> bool {
        self.mode & 0o170_000 == 0o120_000
    }

    fn from_stat(st: &rustix::fs::Stat) -> Self {
        Meta {
            mode: st.st_mode,
            size: u64::try_from(st.st_size).unwrap_or(0),
            uid: st.st_uid,
            gid: st.st_gid,
            // u32 on 32-bit x86 (board epia-ml8000a), u64 elsewhere.
            #[allow(clippy::useless_conversion)]
            nlink: u64::from(st.st_nlink),
            atime: st.st_atime,
            mtime: st.st_mtime,
            ctime: st.st_ctime,
            inode: (st.st_dev, st.st_ino),
        }
    }

    pub(crate) fn of(st: &rustix::fs::Stat) -> Self {
        Self::from_stat(st)
    }
}

/// One entry of a directory listing (temporary uploads are never listed).
#[derive(Debug, Clone)]
pub struct DirEntry {
    pub name: Vec<u8>,
    pub meta: Meta,
}

/// Which inode a name denoted, in a form a later inode cannot match.
///
/// An inode number alone is not an identity: once a file is deleted, the
/// file system hands its number to the next file created, whoever creates
/// it. So the identity also holds the birth time (`statx` `stx_btime`,
/// nanoseconds) and the inode generation (`FS_IOC_GETVERSION`), which ext4
/// (the data area), xfs and tmpfs draw at random for every inode they
/// allocate: a reused number comes with a new generation (a 1 in 2^32
/// chance to repeat) and a later birth time. Where a file system reports
/// neither, the number is all there is (never the case on the appliance).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FileId {
    pub dev: u64,
    pub ino: u64,
    /// Birth time (seconds, nanoseconds), when the file system records it.
    pub btime: Option<(i64, u32)>,
    /// Inode generation, when the file system reports it.
    pub generation: Option<u32>,
}

impl FileId {
    /// The identity of an open file (or directory).
    pub fn of(fd: &impl AsFd) -> io::Result<Self> {
        use rustix::fs::{StatxFlags, statx};
        // Device and number as fstat reports them, so keys match [`Meta::inode`].
        let st = rustix::fs::fstat(fd)?;
        let x = statx(fd, "", AtFlags::EMPTY_PATH, StatxFlags::BTIME)?;
        let btime = (x.stx_mask & StatxFlags::BTIME.bits() != 0).then_some((x.stx_btime.tv_sec, x.stx_btime.tv_nsec));
        Ok(FileId { dev: st.st_dev, ino: st.st_ino, btime, generation: inode_generation(fd) })
    }

    /// (device, inode number): the key under which an identity is filed;
    /// the same as [`Meta::inode`].
    pub fn key(&self) -> (u64, u64) {
        (self.dev, self.ino)
    }
}

/// The inode generation (`FS_IOC_GETVERSION`), or `None` when the file
/// system has no such ioctl.
#[allow(unsafe_code)]
fn inode_generation(fd: &impl AsFd) -> Option<u32> {
    use rustix::ioctl::{Opcode, Updater, ioctl, opcode};
    // `_IOR('v', 1, long)`; the kernel writes an `int` (ext4, xfs, btrfs, tmpfs).
    const FS_IOC_GETVERSION: Opcode = opcode::read::<std::ffi::c_long>(b'v', 1);
    let mut generation: std::ffi::c_int = 0;
    // SAFETY: FS_IOC_GETVERSION writes one `int` through its argument, which
    // points at `generation`, an initialised `c_int` that outlives the call.
    let result = unsafe { ioctl(fd, Updater::<FS_IOC_GETVERSION, std::ffi::c_int>::new(&mut generation)) };
    result.ok().map(|()| generation.cast_unsigned())
}

/// A directory being listed, read from the kernel a batch at a time, so a
/// huge directory never sits in memory whole.
pub struct DirStream {
    dir: rustix::fs::Dir,
}

impl std::fmt::Debug for DirStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DirStream").finish_non_exhaustive()
    }
}

impl DirStream {
    /// The next entries (at most `max`) with their metadata, not following
    /// symlinks; empty at the end. `.`, `..` and upload temporaries are
    /// skipped, and so is an entry removed between readdir and stat.
    pub fn next_batch(&mut self, max: usize) -> io::Result<Vec<DirEntry>> {
        let mut out = Vec::new();
        while out.len() < max {
            let Some(entry) = self.dir.read() else { break };
            let entry = entry?;
            let name = entry.file_name().to_bytes();
            if name == b"." || name == b".." || name.starts_with(UPLOAD_PREFIX) {
                continue;
            }
            match rustix::fs::statat(self.dir.fd()?, name, AtFlags::SYMLINK_NOFOLLOW) {
                Ok(st) => out.push(DirEntry { name: name.to_vec(), meta: Meta::from_stat(&st) }),
                Err(rustix::io::Errno::NOENT) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(out)
    }
}

/// A user's data area. All paths are client paths, resolved inside the area.
#[derive(Debug)]
pub struct UserJail {
    root: OwnedFd,
    root_path: PathBuf,
    no_symlinks: bool,
}

fn invalid(msg: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, msg.to_string())
}

/// Path of a descriptor through procfs, for the few calls (chmod, utimes)
/// that have no form taking an O_PATH descriptor on Linux 6.1.
fn proc_fd_path(fd: &OwnedFd) -> String {
    format!("/proc/self/fd/{}", fd.as_raw_fd())
}

impl UserJail {
    /// Opens the area at `root`, which must be a directory.
    pub fn open(root: &Path) -> io::Result<Self> {
        let fd = rustix::fs::open(root, OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())?;
        Ok(UserJail { root: fd, root_path: root.to_path_buf(), no_symlinks: false })
    }

    /// Never follows a symlink anywhere in a path (for keys whose rules are
    /// about which file a name denotes: a link would lead them elsewhere).
    pub fn without_symlinks(mut self) -> Self {
        self.no_symlinks = true;
        self
    }

    fn resolve_flags(&self) -> ResolveFlags {
        let base = ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS;
        if self.no_symlinks { base | ResolveFlags::NO_SYMLINKS } else { base }
    }

    pub fn root_path(&self) -> &Path {
        &self.root_path
    }

    /// Opens `path` (following symlinks, inside the jail) with `flags`.
    fn open_in_root(&self, path: &JailPath, flags: OFlags, mode: Mode) -> io::Result<OwnedFd> {
        Ok(rustix::fs::openat2(&self.root, path.relative(), flags | OFlags::CLOEXEC, mode, self.resolve_flags())?)
    }

    /// The parent directory of `path` and the final component, which the
    /// caller must use with calls that do not follow symlinks.
    fn parent<'p>(&self, path: &'p JailPath) -> io::Result<(OwnedFd, &'p [u8])> {
        self.parent_opened(path, OFlags::PATH)
    }

    /// As [`Self::parent`], with the directory opened with `access` (`O_PATH`
    /// cannot be fsynced, so uploads open their directory for reading).
    fn parent_opened<'p>(&self, path: &'p JailPath, access: OFlags) -> io::Result<(OwnedFd, &'p [u8])> {
        // The root has no parent: removing or renaming it is refused as busy.
        let (parent, name) = path.split_last().ok_or_else(|| io::Error::from_raw_os_error(EBUSY))?;
        let fd = self.open_in_root(&parent, access | OFlags::DIRECTORY, Mode::empty())?;
        Ok((fd, name))
    }

    pub fn stat(&self, path: &JailPath) -> io::Result<Meta> {
        let fd = self.open_in_root(path, OFlags::PATH, Mode::empty())?;
        Ok(Meta::from_stat(&rustix::fs::fstat(&fd)?))
    }

    pub fn lstat(&self, path: &JailPath) -> io::Result<Meta> {
        if path.is_root() {
            return Ok(Meta::from_stat(&rustix::fs::fstat(&self.root)?));
        }
        let (dir, name) = self.parent(path)?;
        Ok(Meta::from_stat(&rustix::fs::statat(&dir, name, AtFlags::SYMLINK_NOFOLLOW)?))
    }

    pub fn open_read(&self, path: &JailPath) -> io::Result<File> {
        let fd = self.open_in_root(path, OFlags::RDONLY, Mode::empty())?;
        let st = rustix::fs::fstat(&fd)?;
        if FileType::from_raw_mode(st.st_mode) == FileType::Directory {
            return Err(io::Error::from_raw_os_error(21)); // EISDIR
        }
        Ok(File::from(fd))
    }

    /// Opens an existing file for writing in place (append, or resume without truncation).
    pub fn open_write_in_place(&self, path: &JailPath, append: bool, read: bool) -> io::Result<File> {
        let mut flags = if read { OFlags::RDWR } else { OFlags::WRONLY };
        if append {
            flags |= OFlags::APPEND;
        }
        let fd = self.open_in_root(path, flags, Mode::empty())?;
        Ok(File::from(fd))
    }

    /// Starts an upload to `path`. With `exclusive`, fails if `path` exists
    /// now and refuses to replace one that appears before the commit.
    pub fn create_upload(&self, path: &JailPath, mode: u32, exclusive: bool) -> io::Result<Upload> {
        let (dir, name) = self.parent_opened(path, OFlags::RDONLY)?;
        match rustix::fs::statat(&dir, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(_) if exclusive => return Err(io::Error::from_raw_os_error(EEXIST)),
            Ok(st) if FileType::from_raw_mode(st.st_mode) == FileType::Directory => {
                return Err(io::Error::from_raw_os_error(21)); // EISDIR
            }
            Ok(_) => {}
            Err(rustix::io::Errno::NOENT) => {}
            Err(e) => return Err(e.into()),
        }
        let mut tmp_name = UPLOAD_PREFIX.to_vec();
        tmp_name.extend(format!("{:016x}", rand::random::<u64>()).bytes());
        let fd = rustix::fs::openat(
            &dir,
            tmp_name.as_slice(),
            OFlags::CREATE | OFlags::EXCL | OFlags::RDWR | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(mode & 0o777),
        )?;
        Ok(Upload {
            dir,
            tmp_name,
            final_name: name.to_vec(),
            file: File::from(fd),
            no_replace: exclusive,
            finished: false,
        })
    }

    pub fn mkdir(&self, path: &JailPath, mode: u32) -> io::Result<()> {
        if path.is_root() {
            return Err(io::Error::from_raw_os_error(EEXIST));
        }
        let (dir, name) = self.parent(path)?;
        Ok(rustix::fs::mkdirat(&dir, name, Mode::from_raw_mode(mode & 0o777))?)
    }

    pub fn rmdir(&self, path: &JailPath) -> io::Result<()> {
        let (dir, name) = self.parent(path)?;
        Ok(rustix::fs::unlinkat(&dir, name, AtFlags::REMOVEDIR)?)
    }

    pub fn remove_file(&self, path: &JailPath) -> io::Result<()> {
        let (dir, name) = self.parent(path)?;
        Ok(rustix::fs::unlinkat(&dir, name, AtFlags::empty())?)
    }

    /// Renames `from` to `to`; with `replace` an existing `to` is replaced
    /// atomically (posix-rename), otherwise the rename fails (SFTP RENAME).
    pub fn rename(&self, from: &JailPath, to: &JailPath, replace: bool) -> io::Result<()> {
        let (fdir, fname) = self.parent(from)?;
        let (tdir, tname) = self.parent(to)?;
        let flags = if replace { RenameFlags::empty() } else { RenameFlags::NOREPLACE };
        Ok(rustix::fs::renameat_with(&fdir, fname, &tdir, tname, flags)?)
    }

    pub fn hardlink(&self, from: &JailPath, to: &JailPath) -> io::Result<()> {
        let (fdir, fname) = self.parent(from)?;
        let (tdir, tname) = self.parent(to)?;
        Ok(rustix::fs::linkat(&fdir, fname, &tdir, tname, AtFlags::empty())?)
    }

    /// Creates a symlink. Its target is stored as given; it can only ever be
    /// followed inside this jail.
    pub fn symlink(&self, target: &[u8], link: &JailPath) -> io::Result<()> {
        if target.contains(&0) {
            return Err(invalid("symlink target contains a NUL byte"));
        }
        let (dir, name) = self.parent(link)?;
        Ok(rustix::fs::symlinkat(target, &dir, name)?)
    }

    pub fn readlink(&self, path: &JailPath) -> io::Result<Vec<u8>> {
        let (dir, name) = self.parent(path)?;
        Ok(rustix::fs::readlinkat(&dir, name, Vec::new())?.into_bytes())
    }

    /// Changes permission bits (never set-id or sticky bits).
    pub fn set_mode(&self, path: &JailPath, mode: u32) -> io::Result<()> {
        let fd = self.open_in_root(path, OFlags::PATH, Mode::empty())?;
        Ok(rustix::fs::chmodat(CWD, proc_fd_path(&fd), Mode::from_raw_mode(mode & 0o777), AtFlags::empty())?)
    }

    pub fn set_times(&self, path: &JailPath, atime: i64, mtime: i64) -> io::Result<()> {
        let fd = self.open_in_root(path, OFlags::PATH, Mode::empty())?;
        let ts = Timestamps {
            last_access: Timespec { tv_sec: atime, tv_nsec: 0 },
            last_modification: Timespec { tv_sec: mtime, tv_nsec: 0 },
        };
        Ok(rustix::fs::utimensat(CWD, proc_fd_path(&fd), &ts, AtFlags::empty())?)
    }

    pub fn set_size(&self, path: &JailPath, size: u64) -> io::Result<()> {
        let fd = self.open_in_root(path, OFlags::WRONLY, Mode::empty())?;
        Ok(rustix::fs::ftruncate(&fd, size)?)
    }

    /// Lists a whole directory with each entry's metadata (not following
    /// symlinks). For listings a client drives, [`Self::open_dir`] streams.
    pub fn read_dir(&self, path: &JailPath) -> io::Result<Vec<DirEntry>> {
        let mut stream = self.open_dir(path)?;
        let mut out = Vec::new();
        loop {
            let batch = stream.next_batch(1024)?;
            if batch.is_empty() {
                return Ok(out);
            }
            out.extend(batch);
        }
    }

    /// Opens a directory for listing in batches.
    pub fn open_dir(&self, path: &JailPath) -> io::Result<DirStream> {
        let fd = self.open_in_root(path, OFlags::RDONLY | OFlags::DIRECTORY, Mode::empty())?;
        Ok(DirStream { dir: rustix::fs::Dir::new(fd)? })
    }

    /// The identity of the inode `path` names, not following a final
    /// symlink (a symlink has none: it fails with `ELOOP`).
    pub fn identity(&self, path: &JailPath) -> io::Result<FileId> {
        let fd = if path.is_root() {
            self.open_in_root(path, OFlags::RDONLY | OFlags::DIRECTORY, Mode::empty())?
        } else {
            let (dir, name) = self.parent(path)?;
            // Reading opens nothing but the inode: NONBLOCK keeps a FIFO from waiting for a writer.
            rustix::fs::openat(&dir, name, OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC, Mode::empty())?
        };
        FileId::of(&fd)
    }

    pub fn statvfs(&self) -> io::Result<rustix::fs::StatVfs> {
        Ok(rustix::fs::fstatvfs(self.root.as_fd())?)
    }
}

const EEXIST: i32 = 17;
const EBUSY: i32 = 16;

/// Directories the usage count keeps open at once. The walk holds one
/// descriptor per level above the directory it lists, up to this many; a
/// level whose descriptor was closed is opened again through `..` from its
/// child (and checked to be the same directory). So neither a wide tree (one
/// descriptor per pending directory ran out of descriptors at 1,100 empty
/// directories) nor a deep one can exhaust the server's descriptors.
const COUNT_OPEN_DIRS: usize = 16;

/// Bytes of the area's top directory that are not the user's: `user add`
/// made it, so a fresh area counts as empty. What it grows beyond (a
/// directory of thousands of names) counts.
const ROOT_DIR_ALLOWANCE: u64 = 4096;

/// What a new directory is charged until a recount measures it: one block
/// of ext4, the data area's file system.
pub const NEW_DIR_BYTES: u64 = 4096;

/// Space a directory occupies: its blocks, or its size on file systems that
/// allocate none (tmpfs).
fn dir_bytes(st: &rustix::fs::Stat) -> u64 {
    let blocks = u64::try_from(st.st_blocks).unwrap_or(0).saturating_mul(512);
    blocks.max(u64::try_from(st.st_size).unwrap_or(0))
}

/// One directory on the path of the usage walk.
struct Level {
    /// Closed for levels far above the directory being listed.
    fd: Option<OwnedFd>,
    id: (u64, u64),
    /// Subdirectories still to walk.
    subdirs: Vec<Vec<u8>>,
}

/// Running totals of a usage count.
#[derive(Default)]
struct Tally {
    seen: std::collections::HashSet<(u64, u64)>,
    bytes: u64,
    files: u64,
}

impl Tally {
    /// Counts the entries of one directory; returns its subdirectories.
    fn list(&mut self, dir: &OwnedFd) -> io::Result<Vec<Vec<u8>>> {
        let mut subdirs = Vec::new();
        for entry in rustix::fs::Dir::read_from(dir)? {
            let entry = entry?;
            let name = entry.file_name().to_bytes();
            if name == b"." || name == b".." {
                continue;
            }
            let st = match rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
                Ok(st) => st,
                Err(rustix::io::Errno::NOENT) => continue,
                Err(e) => return Err(e.into()),
            };
            if !self.seen.insert((st.st_dev, st.st_ino)) {
                continue;
            }
            self.files += 1;
            if FileType::from_raw_mode(st.st_mode) == FileType::Directory {
                self.bytes = self.bytes.saturating_add(dir_bytes(&st));
                subdirs.push(name.to_vec());
            } else {
                self.bytes = self.bytes.saturating_add(u64::try_from(st.st_size).unwrap_or(0));
            }
        }
        Ok(subdirs)
    }
}

impl UserJail {
    /// Counts what the area holds: bytes of files and symlinks (each inode
    /// once, so hard links are not counted twice), the space directories
    /// occupy (the top directory's beyond its first block), and the number
    /// of inodes below the root. Temporaries of unfinished uploads count
    /// too: they take space until they are committed or removed. Uses at
    /// most [`COUNT_OPEN_DIRS`] + 2 descriptors whatever the tree's shape.
    pub fn usage(&self) -> io::Result<(u64, u64)> {
        let mut tally = Tally::default();
        let root = self.open_in_root(&JailPath::root(), OFlags::RDONLY | OFlags::DIRECTORY, Mode::empty())?;
        let st = rustix::fs::fstat(&root)?;
        tally.bytes = dir_bytes(&st).saturating_sub(ROOT_DIR_ALLOWANCE);
        let subdirs = tally.list(&root)?;
        let mut levels = vec![Level { fd: Some(root), id: (st.st_dev, st.st_ino), subdirs }];
        // Levels from this index on hold a descriptor; those before it do not.
        let mut lowest_open = 0;
        while let Some(top) = levels.last_mut() {
            let Some(name) = top.subdirs.pop() else {
                let Some(done) = levels.pop() else { break };
                let Some(parent) = levels.last_mut() else { break };
                if parent.fd.is_none() {
                    parent.fd = Some(reopen_parent(done.fd.as_ref(), parent.id)?);
                    lowest_open = levels.len() - 1;
                }
                continue;
            };
            let Some(parent) = top.fd.as_ref() else { return Err(io::Error::other("usage count lost a directory descriptor")) };
            let fd = match rustix::fs::openat(parent, name.as_slice(), OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC, Mode::empty()) {
                Ok(fd) => fd,
                // Removed, or replaced by a file or a link, since it was listed.
                Err(rustix::io::Errno::NOENT | rustix::io::Errno::NOTDIR | rustix::io::Errno::LOOP) => continue,
                Err(e) => return Err(e.into()),
            };
            let st = rustix::fs::fstat(&fd)?;
            let subdirs = tally.list(&fd)?;
            levels.push(Level { fd: Some(fd), id: (st.st_dev, st.st_ino), subdirs });
            if levels.len() - lowest_open > COUNT_OPEN_DIRS {
                levels[lowest_open].fd = None;
                lowest_open += 1;
            }
        }
        Ok((tally.bytes, tally.files))
    }
}

/// Opens `..` of `child` and checks that it is the directory `id` the walk
/// came from: a directory moved meanwhile would make the count wrong.
fn reopen_parent(child: Option<&OwnedFd>, id: (u64, u64)) -> io::Result<OwnedFd> {
    let child = child.ok_or_else(|| io::Error::other("usage count lost a directory descriptor"))?;
    let fd = rustix::fs::openat(child, "..", OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())?;
    let st = rustix::fs::fstat(&fd)?;
    if (st.st_dev, st.st_ino) != id {
        return Err(io::Error::other("a directory was moved while its usage was counted; count again"));
    }
    Ok(fd)
}
