//! The metadata duplicity stores for a path, read from `lstat`: type (with a
//! link's target and a device's numbers), permission bits, owner and group
//! by number and by name, whole-second mtime. Names come from /etc/passwd
//! and /etc/group, read once, as duplicity's `pwd`/`grp` lookups would find
//! them for local accounts.

use std::collections::HashMap;
use std::fs::Metadata;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use coffer_archive::{FileType, Meta};

/// User and group names by id.
#[derive(Debug, Default)]
pub(super) struct Names {
    users: HashMap<u32, Vec<u8>>,
    groups: HashMap<u32, Vec<u8>>,
}

impl Names {
    /// The local accounts; missing files give no names (empty in the tar).
    pub(super) fn load() -> Names {
        Names { users: ids(Path::new("/etc/passwd")), groups: ids(Path::new("/etc/group")) }
    }
}

/// `name:x:id:…` lines: id → name.
fn ids(file: &Path) -> HashMap<u32, Vec<u8>> {
    let Ok(text) = std::fs::read(file) else { return HashMap::new() };
    let mut out = HashMap::new();
    for line in text.split(|&b| b == b'\n') {
        let mut fields = line.split(|&b| b == b':');
        let (Some(name), Some(_), Some(id)) = (fields.next(), fields.next(), fields.next()) else { continue };
        if let Some(id) = std::str::from_utf8(id).ok().and_then(|s| s.parse().ok()) {
            out.entry(id).or_insert_with(|| name.to_vec());
        }
    }
    out
}

/// What kind of entry `meta` is; `None` for sockets, which duplicity skips.
pub(super) fn file_type(path: &Path, meta: &Metadata) -> std::io::Result<Option<FileType>> {
    let t = meta.file_type();
    Ok(Some(if t.is_file() {
        FileType::Regular
    } else if t.is_dir() {
        FileType::Directory
    } else if t.is_symlink() {
        FileType::Symlink(std::fs::read_link(path)?.as_os_str().as_bytes().to_vec())
    } else if t.is_fifo() {
        FileType::Fifo
    } else if t.is_char_device() || t.is_block_device() {
        let (major, minor) = device_numbers(meta.rdev());
        if t.is_char_device() { FileType::CharDevice { major, minor } } else { FileType::BlockDevice { major, minor } }
    } else {
        return Ok(None);
    }))
}

/// glibc's `major()`/`minor()` of a `dev_t`.
fn device_numbers(rdev: u64) -> (u32, u32) {
    let major = ((rdev >> 8) & 0xfff) | ((rdev >> 32) & !0xfff);
    let minor = (rdev & 0xff) | ((rdev >> 12) & !0xff);
    (u32::try_from(major).unwrap_or(u32::MAX), u32::try_from(minor).unwrap_or(u32::MAX))
}

/// The stored metadata of a path whose type is `file_type`.
pub(super) fn stored_meta(meta: &Metadata, file_type: FileType, names: &Names) -> Meta {
    Meta {
        file_type,
        mode: meta.mode() & 0o7777,
        uid: u64::from(meta.uid()),
        gid: u64::from(meta.gid()),
        uname: names.users.get(&meta.uid()).cloned().unwrap_or_default(),
        gname: names.groups.get(&meta.gid()).cloned().unwrap_or_default(),
        // duplicity stores a negative mtime as 0.
        mtime: u64::try_from(meta.mtime()).unwrap_or(0),
        extra_pax: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_numbers_as_glibc_splits_them() {
        // makedev(8, 1) and makedev(259, 65537).
        assert_eq!(device_numbers(0x801), (8, 1));
        assert_eq!(device_numbers((259 << 8) | (0x1_0000 << 12) | 1), (259, 65537));
    }

    #[test]
    fn names_come_from_the_account_files() {
        let names = Names::load();
        assert_eq!(names.users.get(&0).map(Vec::as_slice), Some(&b"root"[..]));
    }
}
