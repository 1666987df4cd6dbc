//! File attributes (the ATTRS structure of SFTP v3).

use crate::codec::{DecodeError, Reader, Writer};

const SIZE: u32 = 0x1;
const UIDGID: u32 = 0x2;
const PERMISSIONS: u32 = 0x4;
const ACMODTIME: u32 = 0x8;
const EXTENDED: u32 = 0x8000_0000;

/// Attributes as sent or received; absent fields are `None`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Attrs {
    pub size: Option<u64>,
    pub uid_gid: Option<(u32, u32)>,
    /// Full `st_mode`, including the file-type bits when the server sends it.
    pub permissions: Option<u32>,
    /// (atime, mtime) in seconds since the epoch.
    pub times: Option<(u32, u32)>,
}

/// The file type encoded in `st_mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    Regular,
    Directory,
    Symlink,
    Other,
}

impl Attrs {
    pub fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let flags = r.u32()?;
        let mut a = Attrs::default();
        if flags & SIZE != 0 {
            a.size = Some(r.u64()?);
        }
        if flags & UIDGID != 0 {
            a.uid_gid = Some((r.u32()?, r.u32()?));
        }
        if flags & PERMISSIONS != 0 {
            a.permissions = Some(r.u32()?);
        }
        if flags & ACMODTIME != 0 {
            a.times = Some((r.u32()?, r.u32()?));
        }
        if flags & EXTENDED != 0 {
            // Extended attribute pairs carry nothing Coffer acts on.
            let count = r.u32()?;
            for _ in 0..count {
                r.string()?;
                r.string()?;
            }
        }
        Ok(a)
    }

    pub fn encode(&self, w: &mut Writer) {
        let mut flags = 0;
        if self.size.is_some() {
            flags |= SIZE;
        }
        if self.uid_gid.is_some() {
            flags |= UIDGID;
        }
        if self.permissions.is_some() {
            flags |= PERMISSIONS;
        }
        if self.times.is_some() {
            flags |= ACMODTIME;
        }
        w.u32(flags);
        if let Some(size) = self.size {
            w.u64(size);
        }
        if let Some((uid, gid)) = self.uid_gid {
            w.u32(uid).u32(gid);
        }
        if let Some(p) = self.permissions {
            w.u32(p);
        }
        if let Some((atime, mtime)) = self.times {
            w.u32(atime).u32(mtime);
        }
    }

    pub fn kind(&self) -> Option<FileKind> {
        self.permissions.map(|p| match p & 0o170_000 {
            0o100_000 => FileKind::Regular,
            0o040_000 => FileKind::Directory,
            0o120_000 => FileKind::Symlink,
            _ => FileKind::Other,
        })
    }
}
